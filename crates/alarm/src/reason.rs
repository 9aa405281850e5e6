//! CloudWatch's `StateReason` text and `StateReasonData` JSON for a transition.

use std::fmt::Write;

use chrono::{DateTime, Datelike, Timelike};
use serde_json::{json, Map, Value};

use crate::eval::{Datapoint, State};
use crate::spec::{AlarmSpec, TreatMissingData};

/// The `StateReason` of a move from `previous` to `state`, decided on `evaluated` (newest
/// first), in CloudWatch's words:
///
/// - `Insufficient Data: 3 datapoints were unknown.`
/// - `Threshold Crossed: no datapoints were received for 3 periods and 3 missing datapoints
///   were treated as [Breaching].`
/// - `Threshold Crossed: 2 out of the last 3 datapoints [95.0 (23/11/26 06:00:00), 91.0
///   (23/11/26 05:58:00)] were greater than the threshold (80.0) (minimum 2 datapoints for
///   OK -> ALARM transition).` The list holds the datapoints that voted for the new state:
///   breaching ones for ALARM, not-breaching ones for OK; an OK needs N − M + 1 of them,
///   the fewest that make ALARM impossible.
/// - When missing periods were filled in and voted too, ` and 2 missing datapoints were
///   treated as [Breaching]` follows the threshold, or stands alone after `Threshold
///   Crossed: ` when no real datapoint voted.
pub(crate) fn text(
    spec: &AlarmSpec,
    n: u32,
    m: u32,
    previous: State,
    state: State,
    evaluated: &[Datapoint],
) -> String {
    if state == State::InsufficientData {
        return format!(
            "Insufficient Data: {n} {} unknown.",
            counted(n, "datapoint was", "datapoints were")
        );
    }
    let label = fill_label(spec.treat_missing_data);
    let missing = count(evaluated.iter().filter(|d| d.value.is_none()).count());
    if missing == count(evaluated.len()) {
        return format!(
            "Threshold Crossed: no datapoints were received for {n} {} and {missing} missing \
             {} treated as [{label}].",
            counted(n, "period", "periods"),
            counted(missing, "datapoint was", "datapoints were"),
        );
    }
    let to_alarm = state == State::Alarm;
    // The real datapoints that voted for the new state: (value, period start).
    let voting = || {
        evaluated
            .iter()
            .filter_map(|d| Some((d.value?, d.period_start_ms)))
            .filter(|&(value, _)| spec.comparison.breaches(value, spec.threshold) == to_alarm)
    };
    let voters = count(voting().count());
    let filled_voters = match (to_alarm, spec.treat_missing_data) {
        (true, TreatMissingData::Breaching) | (false, TreatMissingData::NotBreaching) => missing,
        _ => 0,
    };
    let minimum = if to_alarm { m } else { n - m + 1 };
    // Transitions can come by the hundred thousand in one tick (every alarm leaving
    // INSUFFICIENT_DATA at start-up), so the text is written into one buffer.
    let mut reason = String::with_capacity(128 + 40 * voters as usize);
    reason.push_str("Threshold Crossed: ");
    if voters > 0 {
        let _ = write!(reason, "{voters} out of the last {n} datapoints [");
        for (i, (value, start)) in voting().enumerate() {
            if i > 0 {
                reason.push_str(", ");
            }
            push_java_double(&mut reason, value);
            reason.push_str(" (");
            push_date(&mut reason, start, DateStyle::Short);
            reason.push(')');
        }
        let _ = write!(
            reason,
            "] {} {}{} the threshold (",
            counted(voters, "was", "were"),
            if to_alarm { "" } else { "not " },
            spec.comparison.words(),
        );
        push_java_double(&mut reason, spec.threshold);
        reason.push(')');
        if filled_voters > 0 {
            reason.push_str(" and ");
        }
    }
    if filled_voters > 0 {
        let _ = write!(
            reason,
            "{filled_voters} missing {} treated as [{label}]",
            counted(filled_voters, "datapoint was", "datapoints were")
        );
    }
    let _ = write!(
        reason,
        " (minimum {minimum} {} for {previous} -> {state} transition).",
        counted(minimum, "datapoint", "datapoints")
    );
    reason
}

/// The `StateReasonData` JSON: `version`, `queryDate` (now), `statistic`, `period`,
/// `recentDatapoints` (the values evaluated, oldest first), `threshold`, and when any
/// datapoint had data, `startDate` (the oldest evaluated period) and `evaluatedDatapoints`
/// (newest first; `sampleCount` and `value` only for periods with data). Like CloudWatch's,
/// the JSON of a decision taken on no data at all has no `startDate` and no
/// `evaluatedDatapoints`. Keys come out in serde_json's (alphabetical) order.
pub(crate) fn data(spec: &AlarmSpec, now_ms: i64, evaluated: &[Datapoint]) -> Value {
    let recent: Vec<f64> = evaluated.iter().rev().filter_map(|d| d.value).collect();
    let mut data = Map::new();
    data.insert("version".into(), json!("1.0"));
    data.insert("queryDate".into(), json!(iso_date(now_ms)));
    if let (false, Some(oldest)) = (recent.is_empty(), evaluated.last()) {
        data.insert("startDate".into(), json!(iso_date(oldest.period_start_ms)));
    }
    data.insert("statistic".into(), json!(spec.statistic.to_string()));
    data.insert("period".into(), json!(spec.period_secs));
    data.insert("recentDatapoints".into(), json!(recent));
    data.insert("threshold".into(), json!(spec.threshold));
    if !recent.is_empty() {
        let points: Vec<Value> = evaluated
            .iter()
            .map(|d| {
                let mut point = Map::new();
                point.insert("timestamp".into(), json!(iso_date(d.period_start_ms)));
                if let Some(value) = d.value {
                    point.insert("sampleCount".into(), json!(f64::from(d.sample_count)));
                    point.insert("value".into(), json!(value));
                }
                Value::Object(point)
            })
            .collect();
        data.insert("evaluatedDatapoints".into(), Value::Array(points));
    }
    Value::Object(data)
}

/// How the reason names a treatment of missing data: `[Breaching]`, `[NonBreaching]`.
fn fill_label(treat: TreatMissingData) -> &'static str {
    match treat {
        TreatMissingData::Breaching => "Breaching",
        TreatMissingData::NotBreaching => "NonBreaching",
        TreatMissingData::Missing => "Missing",
        TreatMissingData::Ignore => "Ignore",
    }
}

fn counted(n: u32, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// Evaluated lists hold at most N (≤ 86 400) datapoints, so this never saturates.
fn count(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// A number as CloudWatch (Java's `Double.toString`) prints it: the shortest digits that
/// read back to the same double, always with a decimal point (`80.0`, `0.0666851903306472`),
/// and in `1.0E7` / `1.0E-4` notation outside [10⁻³, 10⁷).
fn push_java_double(out: &mut String, value: f64) {
    let magnitude = value.abs();
    if value == 0.0 || (1e-3..1e7).contains(&magnitude) {
        let start = out.len();
        let _ = write!(out, "{value}");
        if !out[start..].contains('.') {
            out.push_str(".0");
        }
        return;
    }
    let scientific = format!("{value:e}");
    match scientific.split_once('e') {
        Some((mantissa, exponent)) => {
            out.push_str(mantissa);
            if !mantissa.contains('.') {
                out.push_str(".0");
            }
            out.push('E');
            out.push_str(exponent);
        }
        None => out.push_str(&scientific),
    }
}

#[derive(Debug, Clone, Copy)]
enum DateStyle {
    /// `23/11/26 06:00:00`, as in the reason text.
    Short,
    /// `2026-11-23T06:00:00.000+0000`, as in the reason data.
    Iso,
}

/// Writes a UTC timestamp digit by digit: chrono's strftime interpreter, and even
/// `write!` with `{:02}`, cost several times more, and every transition prints a few
/// dates. Timestamps beyond chrono's range (±262 000 years) print as raw milliseconds
/// rather than failing: a reason must always be produced.
fn push_date(out: &mut String, ms: i64, style: DateStyle) {
    let Some(at) = DateTime::from_timestamp_millis(ms) else {
        let _ = write!(out, "{ms}");
        return;
    };
    let (hour, minute, second) = (at.hour(), at.minute(), at.second());
    match style {
        DateStyle::Short => {
            push_digits(out, at.day(), 2);
            out.push('/');
            push_digits(out, at.month(), 2);
            out.push('/');
            push_digits(out, at.year().rem_euclid(100).unsigned_abs(), 2);
            out.push(' ');
        }
        DateStyle::Iso => {
            match u32::try_from(at.year()) {
                Ok(year) if year <= 9999 => push_digits(out, year, 4),
                _ => {
                    let _ = write!(out, "{:+05}", at.year());
                }
            }
            out.push('-');
            push_digits(out, at.month(), 2);
            out.push('-');
            push_digits(out, at.day(), 2);
            out.push('T');
        }
    }
    push_digits(out, hour, 2);
    out.push(':');
    push_digits(out, minute, 2);
    out.push(':');
    push_digits(out, second, 2);
    if let DateStyle::Iso = style {
        out.push('.');
        push_digits(out, at.timestamp_subsec_millis() % 1000, 3);
        out.push_str("+0000");
    }
}

/// The last `width` decimal digits of `value`, zero-padded.
fn push_digits(out: &mut String, value: u32, width: u32) {
    for place in (0..width).rev() {
        let digit = value / 10_u32.pow(place) % 10;
        out.push(char::from(b'0' + digit as u8));
    }
}

fn iso_date(ms: i64) -> String {
    let mut out = String::with_capacity(28);
    push_date(&mut out, ms, DateStyle::Iso);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_like_java_doubles() {
        for (value, expected) in [
            (80.0, "80.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (91.2, "91.2"),
            (-5.0, "-5.0"),
            (0.0666851903306472, "0.0666851903306472"),
            (0.001, "0.001"),
            (1234567.0, "1234567.0"),
            (1e7, "1.0E7"),
            (12345678.9, "1.23456789E7"),
            (0.0001, "1.0E-4"),
            (-2.5e-5, "-2.5E-5"),
        ] {
            let mut out = String::new();
            push_java_double(&mut out, value);
            assert_eq!(out, expected, "{value:?}");
        }
    }

    #[test]
    fn dates_print_like_cloudwatch() {
        // 2026-10-02T16:59:00Z
        let ms = 1_790_960_340_000;
        let short = |ms| {
            let mut out = String::new();
            push_date(&mut out, ms, DateStyle::Short);
            out
        };
        assert_eq!(short(ms), "02/10/26 16:59:00");
        assert_eq!(iso_date(ms), "2026-10-02T16:59:00.000+0000");
        assert_eq!(iso_date(ms + 7), "2026-10-02T16:59:00.007+0000");
        assert_eq!(iso_date(-1), "1969-12-31T23:59:59.999+0000");
        assert_eq!(short(i64::MAX), i64::MAX.to_string());
        // Year 10000 and year -1, as chrono's `%Y` prints them.
        assert_eq!(
            iso_date(253_402_300_800_000),
            "+10000-01-01T00:00:00.000+0000"
        );
        assert_eq!(
            iso_date(-62_198_755_200_000),
            "-0001-01-01T00:00:00.000+0000"
        );
    }
}
