//! Loading a corpus of events: JSON lines, optionally gzip-compressed.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use flate2::read::MultiGzDecoder;
use serde_json::Value;

/// Events held in memory as raw JSON bytes, one per non-blank line, so that timing measures
/// matching and not I/O or decompression.
#[derive(Debug)]
pub struct Corpus {
    pub path: PathBuf,
    pub events: Vec<Vec<u8>>,
    /// 1-based line number of each event in the (decompressed) file, for error messages.
    pub line_numbers: Vec<usize>,
}

impl Corpus {
    /// Total size of the events in bytes.
    pub fn bytes(&self) -> usize {
        self.events.iter().map(Vec::len).sum()
    }

    /// `FILE:LINE` of event `index`, for error messages.
    pub fn location(&self, index: usize) -> String {
        match self.line_numbers.get(index) {
            Some(line) => format!("{}:{line}", self.path.display()),
            None => format!("{} (event #{index})", self.path.display()),
        }
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// True when a file is to be read as gzip: its name ends in `.gz` or its content starts
/// with the gzip magic bytes (compressed files are not always named so).
pub fn is_gzip(path: &Path, head: &[u8]) -> bool {
    head.starts_with(&GZIP_MAGIC)
        || path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("gz"))
}

/// A file's contents, decompressed if it is gzip (see [`is_gzip`]).
pub fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !is_gzip(path, &raw) {
        return Ok(raw);
    }
    // JSON text usually compresses 5-10x; reserving avoids most regrowth.
    let mut text = Vec::with_capacity(raw.len().saturating_mul(6));
    // Multi-member, so that concatenated .gz files (cat a.gz b.gz) read in full.
    MultiGzDecoder::new(raw.as_slice())
        .read_to_end(&mut text)
        .with_context(|| format!("cannot decompress {} as gzip", path.display()))?;
    Ok(text)
}

/// Reads JSON lines from `path`: every non-blank line must be a JSON object.
pub fn load_events(path: &Path) -> Result<Corpus> {
    let text = read_maybe_gzip(path)?;
    let mut events = Vec::new();
    let mut line_numbers = Vec::new();
    for (index, line) in text.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let number = index + 1;
        // Validated here, outside any timing, so that a bad line is reported by its line
        // number instead of surfacing as a matcher error in the middle of a pass.
        let value: Value = serde_json::from_slice(line)
            .with_context(|| format!("{}:{number}: not valid JSON", path.display()))?;
        if !value.is_object() {
            bail!(
                "{}:{number}: an event must be a JSON object",
                path.display()
            );
        }
        events.push(line.to_vec());
        line_numbers.push(number);
    }
    if events.is_empty() {
        bail!(
            "{}: no events (expected one JSON object per line)",
            path.display()
        );
    }
    Ok(Corpus {
        path: path.to_path_buf(),
        events,
        line_numbers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{gzip, TempDir};

    const LINES: &str = "{\"a\":1}\n\n{\"a\":2}\r\n  \n{\"b\":\"x\"}";

    #[test]
    fn plain_lines_skip_blanks_and_keep_line_numbers() {
        let dir = TempDir::new();
        let corpus = load_events(&dir.write("events.jsonl", LINES.as_bytes())).unwrap();
        let events: Vec<&[u8]> = corpus.events.iter().map(Vec::as_slice).collect();
        assert_eq!(
            events,
            [&b"{\"a\":1}"[..], &b"{\"a\":2}"[..], &b"{\"b\":\"x\"}"[..]]
        );
        assert_eq!(corpus.line_numbers, [1, 3, 5]);
        assert_eq!(corpus.bytes(), 7 + 7 + 9);
    }

    #[test]
    fn gzip_detected_by_magic_bytes_whatever_the_name() {
        let dir = TempDir::new();
        let compressed = gzip(LINES.as_bytes());
        assert_eq!(compressed[..2], GZIP_MAGIC);
        let misnamed = dir.write("events.jsonl", &compressed);
        assert!(is_gzip(&misnamed, &compressed));
        assert_eq!(load_events(&misnamed).unwrap().events.len(), 3);
        let named = dir.write("events.jsonl.gz", &compressed);
        assert_eq!(load_events(&named).unwrap().events.len(), 3);
    }

    #[test]
    fn gzip_by_name_alone() {
        assert!(is_gzip(Path::new("x.jsonl.GZ"), b"{}"));
        assert!(!is_gzip(Path::new("x.jsonl"), b"{}"));
        assert!(!is_gzip(Path::new("x.jsonl"), &[0x1f]));
    }

    #[test]
    fn concatenated_gzip_members_are_all_read() {
        let dir = TempDir::new();
        let mut both = gzip(b"{\"a\":1}\n");
        both.extend(gzip(b"{\"a\":2}\n"));
        assert_eq!(
            load_events(&dir.write("e.gz", &both)).unwrap().events.len(),
            2
        );
    }

    #[test]
    fn gz_name_with_plain_content_is_an_error() {
        let dir = TempDir::new();
        let path = dir.write("events.jsonl.gz", LINES.as_bytes());
        let err = format!("{:#}", load_events(&path).unwrap_err());
        assert!(err.contains("cannot decompress"), "{err}");
        assert!(err.contains("events.jsonl.gz"), "{err}");
    }

    #[test]
    fn bad_lines_are_reported_with_file_and_line() {
        let dir = TempDir::new();
        let path = dir.write("bad.jsonl", b"{\"a\":1}\n\n{\"a\":\n");
        let err = format!("{:#}", load_events(&path).unwrap_err());
        assert!(err.contains("bad.jsonl:3: not valid JSON"), "{err}");

        let path = dir.write("array.jsonl", b"{\"a\":1}\n[1]\n");
        let err = format!("{:#}", load_events(&path).unwrap_err());
        assert!(
            err.contains("array.jsonl:2: an event must be a JSON object"),
            "{err}"
        );

        let path = dir.write("empty.jsonl", b"\n\n");
        let err = format!("{:#}", load_events(&path).unwrap_err());
        assert!(err.contains("no events"), "{err}");

        let err = format!("{:#}", load_events(&dir.path().join("nope")).unwrap_err());
        assert!(err.contains("cannot read") && err.contains("nope"), "{err}");
    }
}
