//! RFC 4180 CSV through the `csv` crate: commas, `"` quoting with `""` escapes, quoted
//! newlines, CRLF or LF. The crate is lenient about stray quotes (`a"b`, `"a"b`, a quote
//! never closed); an import must not guess, so each record's raw text is also checked and
//! those are refused with the line they are on.

use crate::error::{OwnershipError, Result};

/// One record and the line it starts on (for error messages).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub line: usize,
    pub fields: Vec<String>,
}

/// Splits `text` into records. Unquoted fields are trimmed (spreadsheets and hand edits
/// leave stray spaces); quoted fields are kept verbatim. Blank lines are skipped.
pub(crate) fn read(text: &str) -> Result<Vec<Record>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(::csv::Trim::None)
        .from_reader(text.as_bytes());
    let mut parsed = Vec::new();
    for result in reader.records() {
        let record = result.map_err(|e| OwnershipError::Csv {
            line: e.position().map_or(0, |p| p.line() as usize),
            reason: e.to_string(),
        })?;
        // A record's position is where the reader stood, before any blank lines it then
        // skipped (which its line count also misses); step over them and count lines here.
        let mut start = record.position().map_or(0, |p| p.byte() as usize);
        while matches!(text.as_bytes().get(start), Some(b'\n' | b'\r')) {
            start += 1;
        }
        let line = 1 + text.as_bytes()[..start]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        parsed.push((line, start, record));
    }

    let mut records = Vec::with_capacity(parsed.len());
    for (i, (line, start, record)) in parsed.iter().enumerate() {
        let end = parsed.get(i + 1).map_or(text.len(), |next| next.1);
        let shapes = quoting(text.get(*start..end).unwrap_or(""), *line)?;
        let fields: Vec<String> = record
            .iter()
            .zip(shapes.iter().chain(std::iter::repeat(&Shape::Unquoted)))
            .map(|(value, shape)| match shape {
                Shape::Unquoted => value.trim().to_string(),
                // The crate appends what follows the closing quote; only blanks may.
                Shape::Quoted { trailing } => value
                    .get(..value.len().saturating_sub(*trailing))
                    .unwrap_or(value)
                    .to_string(),
            })
            .collect();
        let blank = matches!(fields.as_slice(), [only] if only.is_empty());
        if !blank {
            records.push(Record {
                line: *line,
                fields,
            });
        }
    }
    Ok(records)
}

/// How a field was written in the raw text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Unquoted,
    /// Quoted, followed by `trailing` bytes of blanks before the separator.
    Quoted {
        trailing: usize,
    },
}

/// Walks one record's raw text (up to the next record) and says how each field was
/// written, or why its quoting is wrong.
fn quoting(raw: &str, first_line: usize) -> Result<Vec<Shape>> {
    #[derive(Clone, Copy)]
    enum State {
        Start,
        /// Only blanks so far: the crate would read a quote now as text.
        Leading,
        Unquoted,
        Quoted {
            opened_on: usize,
        },
        Closed {
            trailing: usize,
        },
    }
    let error = |line: usize, reason: &str| OwnershipError::Csv {
        line,
        reason: reason.to_string(),
    };
    let mut shapes = Vec::new();
    let mut state = State::Start;
    let mut line = first_line;
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        state = match (state, c) {
            (State::Quoted { .. }, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                state
            }
            (State::Quoted { .. }, '"') => State::Closed { trailing: 0 },
            (State::Quoted { .. }, c) => {
                if c == '\n' {
                    line += 1;
                }
                state
            }
            (State::Start, '"') => State::Quoted { opened_on: line },
            (State::Start | State::Leading, ' ' | '\t') => State::Leading,
            (State::Leading, '"') => {
                return Err(error(
                    line,
                    "a blank before an opening quote; start the field with the '\"'",
                ))
            }
            (State::Unquoted, '"') => {
                return Err(error(
                    line,
                    "a quote inside an unquoted field; quote the whole field and double the inner quote (\"\")",
                ))
            }
            (State::Closed { trailing }, ' ' | '\t') => State::Closed {
                trailing: trailing + 1,
            },
            (_, ',' | '\n' | '\r') => {
                shapes.push(match state {
                    State::Closed { trailing } => Shape::Quoted { trailing },
                    _ => Shape::Unquoted,
                });
                if c == ',' {
                    State::Start
                } else {
                    // The end of the record; what follows is blank lines or line endings.
                    return Ok(shapes);
                }
            }
            (State::Closed { .. }, _) => {
                return Err(error(
                    line,
                    "unexpected text after a closing quote; write a literal quote as \"\" inside a quoted field",
                ))
            }
            (State::Start | State::Leading | State::Unquoted, _) => State::Unquoted,
        };
    }
    match state {
        State::Quoted { opened_on } => Err(error(
            opened_on,
            "a quoted field is never closed; add the closing '\"'",
        )),
        State::Closed { trailing } => {
            shapes.push(Shape::Quoted { trailing });
            Ok(shapes)
        }
        State::Start | State::Leading | State::Unquoted => {
            shapes.push(Shape::Unquoted);
            Ok(shapes)
        }
    }
}

/// Appends one record, quoting only the fields that need it, ending with `\n`. Unquoted
/// fields are trimmed on reading, so a record with a padded field is written all quoted.
pub(crate) fn write_record(out: &mut String, fields: &[&str]) {
    let padded = fields
        .iter()
        .any(|f| f.starts_with(char::is_whitespace) || f.ends_with(char::is_whitespace));
    let style = if padded {
        ::csv::QuoteStyle::Always
    } else {
        ::csv::QuoteStyle::Necessary
    };
    let mut writer = ::csv::WriterBuilder::new()
        .quote_style(style)
        .terminator(::csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    // Writing into memory cannot fail; the bytes are the UTF-8 of `fields` plus ASCII.
    let bytes = writer
        .write_record(fields)
        .ok()
        .and_then(|()| writer.into_inner().ok())
        .unwrap_or_default();
    out.push_str(&String::from_utf8_lossy(&bytes));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> Vec<Vec<String>> {
        read(text).unwrap().into_iter().map(|r| r.fields).collect()
    }

    #[test]
    fn plain_and_quoted() {
        assert_eq!(
            fields("a,b , c\r\n\"x, y\",\"say \"\"hi\"\"\",\n"),
            vec![vec!["a", "b", "c"], vec!["x, y", "say \"hi\"", ""]]
        );
    }

    #[test]
    fn quoted_commas_quotes_and_newlines() {
        let records =
            read("name,note\n\"a, b\",\"he said \"\"no,\nnever\"\"\"  \nz,\"\"\n").unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(records[1].fields, ["a, b", "he said \"no,\nnever\""]);
        assert_eq!(records[1].line, 2);
        assert_eq!(
            (records[2].line, records[2].fields.clone()),
            (4, vec!["z".to_string(), String::new()])
        );
    }

    #[test]
    fn quoted_newline_keeps_line_numbers() {
        let records = read("h1,h2\n\"two\nlines\",x\n\nlast,y").unwrap();
        assert_eq!(records[1].fields, ["two\nlines", "x"]);
        assert_eq!(records[1].line, 2);
        assert_eq!(records[2].line, 5);
        assert_eq!(records.len(), 3);
    }

    #[test]
    fn quoted_spaces_are_kept() {
        assert_eq!(fields("\" a \" ,b"), vec![vec![" a ", "b"]]);
    }

    #[test]
    fn errors_name_the_line() {
        let err = read("a,b\nc,\"open\n").unwrap_err().to_string();
        assert!(
            err.starts_with("CSV line 2") && err.contains("never closed"),
            "{err}"
        );
        let err = read("a,b\nc,d\"e\n").unwrap_err().to_string();
        assert!(
            err.starts_with("CSV line 2") && err.contains("unquoted field"),
            "{err}"
        );
        let err = read("a\n\"x\"y\n").unwrap_err().to_string();
        assert!(
            err.starts_with("CSV line 2") && err.contains("after a closing quote"),
            "{err}"
        );
        let err = read("a,b\n\"x, \"\"y\"\"\ny\",z\nc, \"d\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("CSV line 4") && err.contains("blank before an opening quote"),
            "{err}"
        );
    }

    #[test]
    fn write_then_read() {
        let tricky = [
            "plain",
            "with,comma",
            "with \"quote\"",
            "two\nlines",
            " padded ",
            "",
        ];
        let mut out = String::new();
        write_record(&mut out, &tricky);
        write_record(&mut out, &["x", "y,z"]);
        assert!(out.ends_with("x,\"y,z\"\n"), "{out}");
        assert_eq!(fields(&out), vec![tricky.to_vec(), vec!["x", "y,z"]]);
    }
}
