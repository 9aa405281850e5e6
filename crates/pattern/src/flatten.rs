//! Walking an event: as a parsed `serde_json::Value`, or straight from its JSON bytes.
//! Both walks visit only keys on some rule's path and report scalars to the [`Run`].

use serde_json::Value;

use crate::condition::Leaf;
use crate::matcher::{PathTree, Run, ROOT};
use crate::EventError;

pub(crate) fn walk_value<K>(paths: &PathTree, event: &Value, run: &mut Run<'_, K>) {
    if event.is_object() {
        value(paths, ROOT, event, run);
    }
}

fn value<K>(paths: &PathTree, node: u32, v: &Value, run: &mut Run<'_, K>) {
    match v {
        Value::Object(fields) => {
            if paths.has_children(node) {
                for (key, inner) in fields {
                    if let Some(child) = paths.descend(node, key.as_bytes()) {
                        value(paths, child, inner, run);
                    }
                }
            }
        }
        Value::Array(elements) => {
            let array = run.new_array();
            for (index, element) in elements.iter().enumerate() {
                if element.is_object() || element.is_array() {
                    run.trail.push((array, index as u32));
                    value(paths, node, element, run);
                    run.trail.pop();
                } else {
                    value(paths, node, element, run);
                }
            }
        }
        scalar => {
            if let Some(path) = paths.path(node) {
                let leaf = match scalar {
                    Value::String(s) => Leaf::Str(s),
                    Value::Number(n) => Leaf::Num(n.as_f64().unwrap_or(f64::NAN)),
                    Value::Bool(b) => Leaf::Bool(*b),
                    _ => Leaf::Null,
                };
                run.leaf(path, leaf);
            }
        }
    }
}

/// Deeper nesting than this is refused rather than risking the stack.
const MAX_DEPTH: usize = 256;

pub(crate) fn walk_bytes<K>(
    paths: &PathTree,
    bytes: &[u8],
    run: &mut Run<'_, K>,
) -> Result<(), EventError> {
    let mut text = run.take_text();
    let mut scanner = Scanner {
        bytes,
        pos: 0,
        paths,
        text: &mut text,
    };
    let result = scanner.event(run);
    run.put_text(text);
    result
}

struct Scanner<'b, 'p, 't> {
    bytes: &'b [u8],
    pos: usize,
    paths: &'p PathTree,
    /// Holds a string value whose escapes had to be decoded.
    text: &'t mut String,
}

impl<'b> Scanner<'b, '_, '_> {
    fn error(&self, message: &'static str) -> EventError {
        EventError {
            offset: self.pos,
            message,
        }
    }

    #[inline]
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn event<K>(&mut self, run: &mut Run<'_, K>) -> Result<(), EventError> {
        self.skip_ws();
        if self.peek() != Some(b'{') {
            return Err(self.error("an event must be a JSON object"));
        }
        self.value(Some(ROOT), run, 0)?;
        self.skip_ws();
        if self.pos != self.bytes.len() {
            return Err(self.error("unexpected characters after the event"));
        }
        Ok(())
    }

    /// Reads one value. `node` is where it sits in the rules' path tree; `None` means no rule
    /// looks inside, so it is only checked and skipped.
    fn value<K>(
        &mut self,
        node: Option<u32>,
        run: &mut Run<'_, K>,
        depth: usize,
    ) -> Result<(), EventError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        self.skip_ws();
        let Some(first) = self.peek() else {
            return Err(self.error("unexpected end of input"));
        };
        let path = node.and_then(|n| self.paths.path(n));
        match first {
            b'{' => self.object(node.filter(|n| self.paths.has_children(*n)), run, depth),
            b'[' => self.array(node, run, depth),
            b'"' => {
                let (raw, escaped) = self.string_raw()?;
                if let Some(path) = path {
                    if escaped {
                        let start = self.pos;
                        unescape(raw, self.text).map_err(|message| EventError {
                            offset: start,
                            message,
                        })?;
                        run.leaf(path, Leaf::Str(self.text));
                    } else {
                        let s = std::str::from_utf8(raw)
                            .map_err(|_| self.error("invalid UTF-8 in a string"))?;
                        run.leaf(path, Leaf::Str(s));
                    }
                }
                Ok(())
            }
            b't' => self.literal(b"true", path.map(|p| (p, Leaf::Bool(true))), run),
            b'f' => self.literal(b"false", path.map(|p| (p, Leaf::Bool(false))), run),
            b'n' => self.literal(b"null", path.map(|p| (p, Leaf::Null)), run),
            b'-' | b'0'..=b'9' => {
                let raw = self.number_raw()?;
                if let Some(path) = path {
                    // The number grammar was checked, so the text is ASCII and parses.
                    let text =
                        std::str::from_utf8(raw).map_err(|_| self.error("invalid number"))?;
                    let n: f64 = text.parse().map_err(|_| self.error("invalid number"))?;
                    run.leaf(path, Leaf::Num(n));
                }
                Ok(())
            }
            _ => Err(self.error("expected a JSON value")),
        }
    }

    fn literal<K>(
        &mut self,
        word: &'static [u8],
        leaf: Option<(u32, Leaf<'static>)>,
        run: &mut Run<'_, K>,
    ) -> Result<(), EventError> {
        if !self.bytes[self.pos..].starts_with(word) {
            return Err(self.error("expected true, false or null"));
        }
        self.pos += word.len();
        if let Some((path, leaf)) = leaf {
            run.leaf(path, leaf);
        }
        Ok(())
    }

    fn object<K>(
        &mut self,
        node: Option<u32>,
        run: &mut Run<'_, K>,
        depth: usize,
    ) -> Result<(), EventError> {
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.error("expected a key"));
            }
            let (raw, escaped) = self.string_raw()?;
            let child = match node {
                None => None,
                Some(node) if !escaped => self.paths.descend(node, raw),
                Some(node) => {
                    let mut key = String::new();
                    unescape(raw, &mut key).map_err(|message| self.error(message))?;
                    self.paths.descend(node, key.as_bytes())
                }
            };
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(self.error("expected ':' after a key"));
            }
            self.pos += 1;
            self.value(child, run, depth + 1)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.error("expected ',' or '}'")),
            }
        }
    }

    fn array<K>(
        &mut self,
        node: Option<u32>,
        run: &mut Run<'_, K>,
        depth: usize,
    ) -> Result<(), EventError> {
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        let array = if node.is_some() { run.new_array() } else { 0 };
        let mut index = 0u32;
        loop {
            self.skip_ws();
            let nested = matches!(self.peek(), Some(b'{' | b'['));
            if node.is_some() && nested {
                run.trail.push((array, index));
                let result = self.value(node, run, depth + 1);
                run.trail.pop();
                result?;
            } else {
                self.value(node, run, depth + 1)?;
            }
            index += 1;
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.error("expected ',' or ']'")),
            }
        }
    }

    /// The raw bytes between the quotes, and whether they contain escapes.
    #[inline]
    fn string_raw(&mut self) -> Result<(&'b [u8], bool), EventError> {
        let bytes = self.bytes;
        let start = self.pos + 1;
        let mut i = start;
        let mut escaped = false;
        loop {
            i = skip_plain(bytes, i);
            match bytes.get(i) {
                Some(b'"') => {
                    self.pos = i + 1;
                    return Ok((&bytes[start..i], escaped));
                }
                Some(b'\\') => {
                    escaped = true;
                    i += 2;
                }
                Some(b) if *b < 0x20 => {
                    self.pos = i;
                    return Err(self.error("control character in a string"));
                }
                Some(_) => i += 1,
                None => {
                    self.pos = bytes.len();
                    return Err(self.error("unterminated string"));
                }
            }
        }
    }

    fn number_raw(&mut self) -> Result<&'b [u8], EventError> {
        let bytes = self.bytes;
        let start = self.pos;
        let mut i = start;
        let digits = |i: &mut usize| {
            let from = *i;
            while bytes.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i > from
        };
        if bytes.get(i) == Some(&b'-') {
            i += 1;
        }
        let leading_zero = bytes.get(i) == Some(&b'0');
        let int_start = i;
        if !digits(&mut i) || (leading_zero && i - int_start > 1) {
            self.pos = i;
            return Err(self.error("invalid number"));
        }
        if bytes.get(i) == Some(&b'.') {
            i += 1;
            if !digits(&mut i) {
                self.pos = i;
                return Err(self.error("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = bytes.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = bytes.get(i) {
                i += 1;
            }
            if !digits(&mut i) {
                self.pos = i;
                return Err(self.error("invalid number"));
            }
        }
        self.pos = i;
        Ok(&bytes[start..i])
    }
}

/// The first index at or after `i` holding a quote, a backslash or a control character,
/// looking at eight bytes per step.
#[inline]
fn skip_plain(bytes: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
        let quote = has_zero(x ^ (ONES * u64::from(b'"')));
        let backslash = has_zero(x ^ (ONES * u64::from(b'\\')));
        // Bytes below 0x20: subtracting 0x20 borrows into the high bit (ASCII bytes only).
        let control = x.wrapping_sub(ONES * 0x20) & !x & HIGHS;
        let found = quote | backslash | control;
        if found != 0 {
            return i + (found.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i
}

/// Decodes a JSON string body with escapes into `out`.
fn unescape(raw: &[u8], out: &mut String) -> Result<(), &'static str> {
    out.clear();
    let mut bytes = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b != b'\\' {
            bytes.push(b);
            i += 1;
            continue;
        }
        let Some(&kind) = raw.get(i + 1) else {
            return Err("invalid escape");
        };
        i += 2;
        let c = match kind {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let high = hex4(raw, i)?;
                i += 4;
                let code = if (0xD800..0xDC00).contains(&high) {
                    if raw.get(i) != Some(&b'\\') || raw.get(i + 1) != Some(&b'u') {
                        return Err("unpaired surrogate in a \\u escape");
                    }
                    let low = hex4(raw, i + 2)?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return Err("unpaired surrogate in a \\u escape");
                    }
                    i += 6;
                    0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                } else {
                    high
                };
                char::from_u32(code).ok_or("invalid \\u escape")?
            }
            _ => return Err("invalid escape"),
        };
        let mut buf = [0u8; 4];
        bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
    let decoded = String::from_utf8(bytes).map_err(|_| "invalid UTF-8 in a string")?;
    out.push_str(&decoded);
    Ok(())
}

fn hex4(raw: &[u8], at: usize) -> Result<u32, &'static str> {
    let digits = raw.get(at..at + 4).ok_or("short \\u escape")?;
    let text = std::str::from_utf8(digits).map_err(|_| "invalid \\u escape")?;
    u32::from_str_radix(text, 16).map_err(|_| "invalid \\u escape")
}
