//! Graphite plaintext protocol: one line per sample, `path value [timestamp]`, where the
//! path may carry tags as `path;tag1=value1;tag2=value2`. Timestamps are Unix seconds
//! (integer or float); a missing timestamp or `-1` means "now", which the caller passes
//! in so parsing stays pure.
//!
//! Tag rules follow Graphite's own (`TaggedSeries.validateTagAndValue`): tag names are
//! non-empty and contain none of `;!^=`; values are non-empty and do not start with `~`.

use std::collections::BTreeMap;

use crate::MetricPoint;

/// carbon's line receiver refuses longer lines too; a cap keeps one bad sender from making
/// the caller buffer without bound while it looks for a newline.
pub const MAX_LINE_BYTES: usize = 4096;

/// 9999-12-31T23:59:59Z. Anything later is a sender bug, and the bound keeps the
/// seconds → milliseconds conversion far from `i64` overflow.
const MAX_TIMESTAMP_SECS: i64 = 253_402_300_799;

/// Errors quote at most this many bytes of the line: enough to find it in the sender's
/// output, short enough that a hostile line cannot flood the log.
const QUOTE_BYTES: usize = 120;

/// Graphite forbids these in tag names (`;` and `=` cannot reach a name after splitting,
/// but listing them keeps the rule readable as Graphite states it).
const PROHIBITED_TAG_NAME_CHARS: &[char] = &[';', '!', '^', '='];

/// Why a line was refused. Every message quotes (a bounded prefix of) the line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GraphiteError {
    #[error("line is {len} bytes, over the {MAX_LINE_BYTES}-byte limit: {line:?}")]
    TooLong { len: usize, line: String },
    #[error("line is empty")]
    Empty,
    #[error("line must be `path value [timestamp]` separated by spaces, found {fields} field(s): {line:?}")]
    FieldCount { fields: usize, line: String },
    #[error("metric path is empty: {line:?}")]
    EmptyPath { line: String },
    #[error("tag `{tag}` is invalid ({reason}): {line:?}")]
    BadTag {
        tag: String,
        reason: &'static str,
        line: String,
    },
    #[error("value `{value}` is not a number: {line:?}")]
    BadValue { value: String, line: String },
    /// Kept apart from [`GraphiteError::BadValue`] so callers can count these separately:
    /// the sender is working, it just measured nothing meaningful.
    #[error("value `{value}` is not finite (NaN or infinity) and cannot be stored: {line:?}")]
    NonFinite { value: String, line: String },
    #[error("timestamp `{timestamp}` is {reason}: {line:?}")]
    BadTimestamp {
        timestamp: String,
        reason: &'static str,
        line: String,
    },
}

/// Parses one line (with or without its `\n` / `\r\n` terminator).
pub fn parse_line(line: &str, now_ms: i64) -> Result<MetricPoint, GraphiteError> {
    let line = line.trim_end_matches(['\n', '\r']);
    if line.len() > MAX_LINE_BYTES {
        return Err(GraphiteError::TooLong {
            len: line.len(),
            line: quote(line),
        });
    }
    if line.trim().is_empty() {
        return Err(GraphiteError::Empty);
    }
    // carbon strips the line before splitting, which would silently shift " 12.5 1700000000"
    // into path "12.5"; a leading blank means the path is missing, so say so.
    if line.starts_with(|c: char| c.is_ascii_whitespace()) {
        return Err(GraphiteError::EmptyPath { line: quote(line) });
    }
    let fields: Vec<&str> = line.split_ascii_whitespace().collect();
    let (path, value, timestamp) = match fields.as_slice() {
        [path, value] => (*path, *value, None),
        [path, value, timestamp] => (*path, *value, Some(*timestamp)),
        _ => {
            return Err(GraphiteError::FieldCount {
                fields: fields.len(),
                line: quote(line),
            })
        }
    };
    let (name, labels) = parse_path(path, line)?;
    let value = parse_value(value, line)?;
    let timestamp_ms = parse_timestamp(timestamp, now_ms, line)?;
    Ok(MetricPoint {
        name: name.to_string(),
        labels,
        value,
        timestamp_ms,
    })
}

fn parse_path<'a>(
    path: &'a str,
    line: &str,
) -> Result<(&'a str, BTreeMap<String, String>), GraphiteError> {
    let mut segments = path.split(';');
    let name = segments.next().unwrap_or_default();
    if name.is_empty() {
        return Err(GraphiteError::EmptyPath { line: quote(line) });
    }
    let mut labels = BTreeMap::new();
    for segment in segments {
        let bad = |reason| GraphiteError::BadTag {
            tag: quote(segment),
            reason,
            line: quote(line),
        };
        let Some((tag, value)) = segment.split_once('=') else {
            return Err(bad("expected `name=value`"));
        };
        if tag.is_empty() {
            return Err(bad("tag name is empty"));
        }
        if tag.contains(PROHIBITED_TAG_NAME_CHARS) {
            return Err(bad("tag names may not contain `;`, `!`, `^` or `=`"));
        }
        // Graphite stores the path itself as tag `name`; a sender's own `name` tag would
        // be silently overwritten there, so refuse it rather than guess which one is meant.
        if tag == "name" {
            return Err(bad("tag name `name` is reserved for the metric path"));
        }
        if value.is_empty() {
            return Err(bad("tag value is empty"));
        }
        if value.starts_with('~') {
            return Err(bad("tag values may not start with `~`"));
        }
        // Graphite keeps the last of duplicate tags; two values for one tag is almost
        // always a sender bug, and picking one silently would merge distinct series.
        if labels.insert(tag.to_string(), value.to_string()).is_some() {
            return Err(bad("tag appears more than once"));
        }
    }
    Ok((name, labels))
}

fn parse_value(text: &str, line: &str) -> Result<f64, GraphiteError> {
    let value: f64 = text.parse().map_err(|_| GraphiteError::BadValue {
        value: quote(text),
        line: quote(line),
    })?;
    // `parse` accepts "nan", "inf" and overflowing literals like "1e999"; none can be
    // compared with a threshold, so they are refused (and counted by the caller).
    if !value.is_finite() {
        return Err(GraphiteError::NonFinite {
            value: quote(text),
            line: quote(line),
        });
    }
    Ok(value)
}

fn parse_timestamp(text: Option<&str>, now_ms: i64, line: &str) -> Result<i64, GraphiteError> {
    let Some(text) = text else {
        return Ok(now_ms);
    };
    let bad = |reason| GraphiteError::BadTimestamp {
        timestamp: quote(text),
        reason,
        line: quote(line),
    };
    const RANGE: &str = "not between 0 and 253402300799 Unix seconds (year 9999)";
    // Integers are read exactly; going through f64 first is only needed for fractions.
    if let Ok(secs) = text.parse::<i64>() {
        return match secs {
            -1 => Ok(now_ms),
            0..=MAX_TIMESTAMP_SECS => Ok(secs * 1000),
            _ => Err(bad(RANGE)),
        };
    }
    let secs: f64 = text
        .parse()
        .map_err(|_| bad("not a number of Unix seconds"))?;
    if secs == -1.0 {
        return Ok(now_ms);
    }
    // `contains` is false for NaN, so this also refuses "nan" and "inf".
    if !(0.0..=MAX_TIMESTAMP_SECS as f64).contains(&secs) {
        return Err(bad(RANGE));
    }
    // The range check above keeps this cast exact-to-the-millisecond and in range.
    Ok((secs * 1000.0).round() as i64)
}

/// A bounded prefix of `text`, cut on a character boundary, marked when cut.
fn quote(text: &str) -> String {
    if text.len() <= QUOTE_BYTES {
        return text.to_string();
    }
    let mut end = QUOTE_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_cuts_on_a_char_boundary() {
        let text = "é".repeat(QUOTE_BYTES);
        let quoted = quote(&text);
        assert!(quoted.ends_with('…'));
        assert!(quoted.len() <= QUOTE_BYTES + '…'.len_utf8());
        assert_eq!(quote("short"), "short");
    }

    #[test]
    fn timestamp_bounds() {
        let ts = |t| parse_timestamp(Some(t), 7, "l");
        assert_eq!(ts("0"), Ok(0));
        assert_eq!(ts("-1"), Ok(7));
        assert_eq!(ts("-1.0"), Ok(7));
        assert_eq!(ts("253402300799"), Ok(253_402_300_799_000));
        assert!(ts("253402300800").is_err());
        assert!(ts("-2").is_err());
        assert!(ts("9223372036854775807").is_err());
        assert!(ts("1e300").is_err());
        assert!(ts("nan").is_err());
        assert!(ts("-0.5").is_err());
        assert_eq!(ts("1700000000.25"), Ok(1_700_000_000_250));
        assert_eq!(ts("1700000000.123"), Ok(1_700_000_000_123));
    }
}
