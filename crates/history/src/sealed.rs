//! Sealed chunks of one series, oldest first, in a single exact-size allocation: each chunk
//! as a LEB128 length then its bytes. One allocation instead of one per chunk saves a
//! slice header and an allocator block per chunk, which matters across a million series.
//! Every change rebuilds the buffer; changes are rare (a seal every 4 h, a prune, an
//! out-of-order point, a load).

use crate::codec::{header_window, DIRTY};

#[derive(Default)]
pub(crate) struct Sealed {
    buf: Box<[u8]>,
}

fn window(data: &[u8]) -> i64 {
    header_window(data).map_or(i64::MIN, |(w, _)| w)
}

pub(crate) fn is_dirty(data: &[u8]) -> bool {
    data.first().is_some_and(|b| b & DIRTY != 0)
}

pub(crate) fn set_dirty(data: &mut [u8], dirty: bool) {
    if let Some(b) = data.first_mut() {
        if dirty {
            *b |= DIRTY;
        } else {
            *b &= !DIRTY;
        }
    }
}

impl Sealed {
    /// (start, end) of each chunk's bytes in `buf`.
    fn spans(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < self.buf.len() {
            let mut len = 0usize;
            let mut shift = 0;
            while let Some(&b) = self.buf.get(pos) {
                pos += 1;
                len |= usize::from(b & 0x7F) << shift;
                shift += 7;
                if b & 0x80 == 0 || shift > 28 {
                    break;
                }
            }
            let end = (pos + len).min(self.buf.len());
            out.push((pos, end));
            pos = end;
        }
        out
    }

    fn rebuild<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Box<[u8]> {
        let mut buf = Vec::new();
        for p in parts {
            let mut len = p.len();
            loop {
                let low = (len & 0x7F) as u8;
                len >>= 7;
                if len == 0 {
                    buf.push(low);
                    break;
                }
                buf.push(low | 0x80);
            }
            buf.extend_from_slice(p);
        }
        buf.into_boxed_slice()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.spans()
            .into_iter()
            .filter_map(|(s, e)| self.buf.get(s..e))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.buf.len()
    }

    /// The chunk of window `w`: `Ok(index)`, or `Err(index it would be inserted at)`.
    pub(crate) fn find(&self, w: i64) -> Result<usize, usize> {
        let windows: Vec<i64> = self.iter().map(window).collect();
        windows.binary_search(&w)
    }

    pub(crate) fn get(&self, i: usize) -> Option<&[u8]> {
        self.iter().nth(i)
    }

    /// Puts `data` at index `i`, replacing the chunk there when `replace`.
    pub(crate) fn put(&mut self, i: usize, data: &[u8], replace: bool) {
        let old: Vec<&[u8]> = self.iter().collect();
        let skip = usize::from(replace);
        let parts = old
            .iter()
            .take(i)
            .copied()
            .chain(std::iter::once(data))
            .chain(old.iter().skip(i + skip).copied());
        self.buf = Self::rebuild(parts);
    }

    pub(crate) fn push(&mut self, data: &[u8]) {
        let n = self.spans().len();
        self.put(n, data, false);
    }

    /// Removes and returns the newest chunk.
    pub(crate) fn pop(&mut self) -> Option<Vec<u8>> {
        let old: Vec<&[u8]> = self.iter().collect();
        let (last, rest) = old.split_last()?;
        let last = last.to_vec();
        self.buf = Self::rebuild(rest.iter().copied());
        Some(last)
    }

    /// Keeps the chunks whose window passes `keep`.
    pub(crate) fn retain(&mut self, keep: impl Fn(i64) -> bool) {
        let old: Vec<&[u8]> = self.iter().collect();
        if old.iter().all(|d| keep(window(d))) {
            return;
        }
        self.buf = Self::rebuild(old.into_iter().filter(|d| keep(window(d))));
    }

    /// Calls `f` on each chunk's bytes, oldest first, allowing the dirty mark to change.
    pub(crate) fn for_each_mut(&mut self, mut f: impl FnMut(&mut [u8])) {
        for (s, e) in self.spans() {
            if let Some(d) = self.buf.get_mut(s..e) {
                f(d);
            }
        }
    }

    /// Window of a chunk's bytes.
    pub(crate) fn window_of(data: &[u8]) -> i64 {
        window(data)
    }
}
