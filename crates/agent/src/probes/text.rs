//! Plain-text building blocks for probe output: aligned tables, human sizes, timestamps.

use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    Left,
    Right,
}

/// Columns separated by one space and padded to the widest cell, as `ps` and `df` print
/// them. The last column is not padded so long commands do not drag trailing blanks.
pub(crate) fn table(headers: &[(&str, Align)], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|(h, _)| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header_row: Vec<String> = headers.iter().map(|(h, _)| h.to_string()).collect();
    let mut out = String::new();
    for row in std::iter::once(&header_row).chain(rows) {
        let last = row.len().saturating_sub(1);
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push(' ');
            }
            let width = widths.get(i).copied().unwrap_or(0);
            let align = headers.get(i).map_or(Align::Left, |(_, a)| *a);
            match align {
                Align::Right => line.push_str(&format!("{cell:>width$}")),
                Align::Left if i == last => line.push_str(cell),
                Align::Left => line.push_str(&format!("{cell:<width$}")),
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Sizes the way `df -h` prints them: powers of 1024, rounded up, one decimal below 10.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["K", "M", "G", "T", "P", "E"];
    if bytes < 1024 {
        return bytes.to_string();
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    loop {
        let shown = if value < 10.0 {
            (value * 10.0).ceil() / 10.0
        } else {
            value.ceil()
        };
        if shown >= 1024.0 && unit + 1 < UNITS.len() {
            value /= 1024.0;
            unit += 1;
            continue;
        }
        return if shown < 10.0 {
            format!("{shown:.1}{}", UNITS[unit])
        } else {
            format!("{shown:.0}{}", UNITS[unit])
        };
    }
}

/// `2024-05-01T12:00:00Z`. Times before 1970 print as the epoch.
pub(crate) fn rfc3339(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// `3 days 04:05:06`, or `04:05:06` under a day.
pub(crate) fn duration_dhms(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let clock = format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60);
    match days {
        0 => clock,
        1 => format!("1 day {clock}"),
        n => format!("{n} days {clock}"),
    }
}

/// Cuts `text` to at most `max` bytes at a char boundary.
pub(crate) fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn table_aligns_columns() {
        let out = table(
            &[
                ("USER", Align::Left),
                ("PID", Align::Right),
                ("COMMAND", Align::Left),
            ],
            &[
                vec!["root".into(), "1".into(), "/sbin/init".into()],
                vec!["www-data".into(), "12345".into(), "nginx: worker".into()],
            ],
        );
        assert_eq!(
            out,
            "USER       PID COMMAND\nroot         1 /sbin/init\nwww-data 12345 nginx: worker\n"
        );
    }

    #[test]
    fn human_bytes_like_df() {
        assert_eq!(human_bytes(0), "0");
        assert_eq!(human_bytes(1023), "1023");
        assert_eq!(human_bytes(1024), "1.0K");
        assert_eq!(human_bytes(1025), "1.1K");
        assert_eq!(human_bytes(10 * 1024), "10K");
        assert_eq!(human_bytes(1024 * 1024 - 1), "1.0M");
        assert_eq!(human_bytes(5 * 1024 * 1024 * 1024), "5.0G");
        assert_eq!(human_bytes(99 * 1024 * 1024 * 1024 + 1), "100G");
    }

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // leap day
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_767_225_599);
        assert_eq!(rfc3339(t), "2025-12-31T23:59:59Z");
        let t = UNIX_EPOCH + Duration::from_secs(4_107_542_400);
        assert_eq!(rfc3339(t), "2100-03-01T00:00:00Z");
    }

    #[test]
    fn durations() {
        assert_eq!(duration_dhms(59), "00:00:59");
        assert_eq!(duration_dhms(86_400 + 3661), "1 day 01:01:01");
        assert_eq!(duration_dhms(3 * 86_400), "3 days 00:00:00");
    }

    #[test]
    fn cut_respects_char_boundaries() {
        assert_eq!(cut("héllo", 2), "h");
        assert_eq!(cut("héllo", 3), "hé");
        assert_eq!(cut("abc", 10), "abc");
    }
}
