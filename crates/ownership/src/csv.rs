//! A tiny RFC 4180 CSV reader/writer: commas, `"` quoting with `""` escapes, quoted
//! newlines, CRLF or LF. Enough for the two import shapes without another dependency.

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
    let mut records = Vec::new();
    let mut fields: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut line = 1;
    let mut record_line = 1;
    let mut chars = text.chars().peekable();

    // Ends the current field; `quoted` fields skip the trim.
    let finish_field = |field: &mut String, quoted: &mut bool, fields: &mut Vec<String>| {
        let value = std::mem::take(field);
        fields.push(if *quoted {
            value
        } else {
            value.trim().to_string()
        });
        *quoted = false;
    };

    while let Some(c) = chars.next() {
        match c {
            '"' if field.trim().is_empty() && !quoted => {
                // Opening quote: read up to the closing one.
                field.clear();
                quoted = true;
                let opened_on = line;
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            field.push('"');
                        }
                        Some('"') => break,
                        Some(c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            field.push(c);
                        }
                        None => {
                            return Err(OwnershipError::Csv {
                                line: opened_on,
                                reason: "a quoted field is never closed; add the closing '\"'"
                                    .to_string(),
                            })
                        }
                    }
                }
                // After the closing quote only spaces, a separator or the end may follow.
                while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
                    chars.next();
                }
                if !matches!(chars.peek(), None | Some(',') | Some('\n') | Some('\r')) {
                    return Err(OwnershipError::Csv {
                        line,
                        reason: "unexpected text after a closing quote; write a literal quote as \"\" inside a quoted field".to_string(),
                    });
                }
            }
            '"' => {
                return Err(OwnershipError::Csv {
                    line,
                    reason: "a quote inside an unquoted field; quote the whole field and double the inner quote (\"\")".to_string(),
                });
            }
            ',' => finish_field(&mut field, &mut quoted, &mut fields),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => {
                finish_field(&mut field, &mut quoted, &mut fields);
                push_record(&mut records, record_line, std::mem::take(&mut fields));
                line += 1;
                record_line = line;
            }
            c => field.push(c),
        }
    }
    if !fields.is_empty() || !field.is_empty() || quoted {
        finish_field(&mut field, &mut quoted, &mut fields);
        push_record(&mut records, record_line, fields);
    }
    Ok(records)
}

fn push_record(records: &mut Vec<Record>, line: usize, fields: Vec<String>) {
    let blank = matches!(fields.as_slice(), [only] if only.is_empty());
    if !blank {
        records.push(Record { line, fields });
    }
}

/// Appends one record, quoting only the fields that need it, ending with `\n`.
pub(crate) fn write_record(out: &mut String, fields: &[&str]) {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let needs_quotes = field.contains([',', '"', '\n', '\r'])
            || field.starts_with(char::is_whitespace)
            || field.ends_with(char::is_whitespace);
        if needs_quotes {
            out.push('"');
            out.push_str(&field.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(field);
        }
    }
    out.push('\n');
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
    fn quoted_newline_keeps_line_numbers() {
        let records = read("h1,h2\n\"two\nlines\",x\n\nlast,y").unwrap();
        assert_eq!(records[1].fields, ["two\nlines", "x"]);
        assert_eq!(records[1].line, 2);
        assert_eq!(records[2].line, 5);
        assert_eq!(records.len(), 3);
    }

    #[test]
    fn quoted_spaces_are_kept() {
        assert_eq!(fields(" \" a \" ,b"), vec![vec![" a ", "b"]]);
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
        write_record(&mut out, &["x"]);
        assert_eq!(fields(&out), vec![tricky.to_vec(), vec!["x"]]);
    }
}
