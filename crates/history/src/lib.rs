//! Compressed one-minute chart history of one metric series. Pure: no I/O, no clock.
//!
//! # Why the format looks like this
//!
//! A server holds up to a million series and charts 24 h of each at one-minute resolution:
//! plain `(min, max, sum, count)` rollups cost ~72 KB a series, far too much. Metric values
//! are very redundant from one minute to the next, so each series keeps its minutes in a
//! bit stream and pays only for what the previous minutes did not predict:
//!
//! - **Chunks of 240 minutes aligned on the epoch.** The same 4 h window always has the
//!   same `start_ms`, so a store upserts it by (series, start) and never has to merge.
//!   Each chunk codes from a fresh state, so it decodes alone (after a restart, or for a
//!   chart that starts mid-day) and an out-of-order point costs at most one chunk re-coded.
//!   Sealed chunks are boxed slices: no capacity slack across a million series.
//! - **The newest minute stays open and uncoded.** Points in the current minute are the hot
//!   path; they update four plain fields. A minute is coded once, when it closes.
//! - **The normal minute costs no framing bits.** Time and count are implicit: "same gap
//!   and same count as the minute before". Only a change (a hole, a new scrape rate) pays
//!   for an escape, and the escape lives inside the first value's code space so the common
//!   case carries no flag bit at all.
//! - **Most metric values are short decimals** (37.5 %, 12 requests, 0.25 s). A value is
//!   coded as an integer mantissa at the fewest decimals that reproduce its exact f64 bits,
//!   predicted from the previous mantissa, and the residual is Rice-coded with a parameter
//!   that follows the recent residual size: a quiet gauge costs 1-3 bits, a noisy one about
//!   its entropy. Which predictor ("same as before" or "before + average step", for
//!   counters) is used is learned from the data on both sides, so it costs no bits.
//! - **Sums of several decimals carry float fuzz** (229.70000000000002): they are coded as
//!   the nearby short decimal plus a tiny distance in f64 bit patterns. Anything else
//!   (1/3, 1e-300, -0.0) falls back to Gorilla-style XOR of the bit pattern, so every value
//!   round-trips bit for bit.
//! - **Predictable stretches collapse into runs.** A constant or a perfectly steady counter
//!   costs a few bytes per chunk however many minutes it holds.
//!
//! The bit-level grammar is documented in `codec.rs`. A persisted block is the chunk bytes
//! (first byte: format version) plus a 32-bit checksum, so a corrupt block is refused
//! rather than silently decoded into wrong history.

mod codec;
mod sealed;
#[cfg(test)]
mod tests;

use serde::Serialize;

use codec::{decode_chunk, ChunkEncoder};
use sealed::{is_dirty, set_dirty, Sealed};

/// One minute of a series: min, max, sum and count of the raw points stamped in it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Rollup {
    /// Start of the minute, Unix ms (a multiple of 60,000).
    pub minute_ms: i64,
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub count: u32,
}

impl Rollup {
    fn single(minute_ms: i64, value: f64) -> Self {
        Rollup {
            minute_ms,
            min: value,
            max: value,
            sum: value,
            count: 1,
        }
    }

    fn merge(&mut self, value: f64) {
        if value < self.min {
            self.min = value;
        }
        if value > self.max {
            self.max = value;
        }
        self.sum += value;
        self.count = self.count.saturating_add(1);
    }
}

pub const MINUTE_MS: i64 = 60_000;
/// Minutes in a chunk window; windows are aligned on multiples of this since the epoch.
pub const CHUNK_MINUTES: i64 = 240;
/// Length of a chunk window, ms.
pub const CHUNK_MS: i64 = CHUNK_MINUTES * MINUTE_MS;

/// A persisted piece of history: one chunk window of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// Start of the 240-minute window (a multiple of [`CHUNK_MS`]); the store's key.
    pub start_ms: i64,
    /// The minute after the last minute in the block.
    pub end_ms: i64,
    /// Self-describing bytes: format version first, checksum last.
    pub data: Vec<u8>,
}

/// Why a block read back from a store was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("history block is truncated")]
    Truncated,
    #[error("history block has unknown format version {0}")]
    Version(u8),
    #[error("history block checksum does not match")]
    Checksum,
    #[error("history block is malformed: {0}")]
    Malformed(&'static str),
}

/// The chart history of one series: the current minute kept open, older minutes in
/// compressed chunks.
///
/// Invariants: sealed chunks are sorted by window and all older than the current chunk;
/// the current chunk is the newest coded window; the open minute is newer than every coded
/// minute.
#[derive(Default)]
pub struct History {
    sealed: Sealed,
    cur: Option<Box<ChunkEncoder>>,
    open_minute: i64,
    open_min: f64,
    open_max: f64,
    open_sum: f64,
    /// 0 = no open minute.
    open_count: u32,
    /// The current chunk or the open minute changed since the last `take_dirty_blocks`.
    dirty_tail: bool,
}

/// Start of the minute holding `ts`, if its whole chunk window is representable.
fn minute_of(ts: i64) -> Option<i64> {
    let m = ts.div_euclid(MINUTE_MS);
    let w = m.div_euclid(CHUNK_MINUTES);
    w.checked_mul(CHUNK_MS)?.checked_add(CHUNK_MS)?;
    m.checked_mul(MINUTE_MS)
}

fn split(minute_ms: i64) -> (i64, u8) {
    let m = minute_ms.div_euclid(MINUTE_MS);
    (
        m.div_euclid(CHUNK_MINUTES),
        m.rem_euclid(CHUNK_MINUTES) as u8,
    )
}

fn window_end(w: i64) -> i64 {
    w.saturating_mul(CHUNK_MS).saturating_add(CHUNK_MS)
}

fn encoder_block(enc: &ChunkEncoder) -> Block {
    Block {
        start_ms: enc.window() * CHUNK_MS,
        end_ms: enc.last_minute_ms() + MINUTE_MS,
        data: codec::seal_block_data(enc.bytes()),
    }
}

/// Minutes of `a` and `b` (both sorted), `a` winning on the same minute.
fn merge_prefer(a: &[Rollup], b: &[Rollup]) -> Vec<Rollup> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x.minute_ms == y.minute_ms => {
                out.push(*x);
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x.minute_ms < y.minute_ms => {
                out.push(*x);
                i += 1;
            }
            (Some(x), None) => {
                out.push(*x);
                i += 1;
            }
            (_, Some(y)) => {
                out.push(*y);
                j += 1;
            }
            (None, None) => break,
        }
    }
    out
}

fn same_bits(a: &[Rollup], b: &[Rollup]) -> bool {
    let key = |r: &Rollup| {
        (
            r.minute_ms,
            r.min.to_bits(),
            r.max.to_bits(),
            r.sum.to_bits(),
            r.count,
        )
    };
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| key(x) == key(y))
}

impl History {
    pub fn new() -> Self {
        Self::default()
    }

    fn open(&self) -> Option<Rollup> {
        (self.open_count > 0).then_some(Rollup {
            minute_ms: self.open_minute,
            min: self.open_min,
            max: self.open_max,
            sum: self.open_sum,
            count: self.open_count,
        })
    }

    fn set_open(&mut self, r: Option<Rollup>) {
        let r = r.unwrap_or(Rollup {
            minute_ms: 0,
            min: 0.0,
            max: 0.0,
            sum: 0.0,
            count: 0,
        });
        self.open_minute = r.minute_ms;
        self.open_min = r.min;
        self.open_max = r.max;
        self.open_sum = r.sum;
        self.open_count = r.count;
    }

    /// Adds one raw point (finite value; the caller has refused NaN/inf). Points in the
    /// current (newest) minute update it in place; a point in a later minute closes the open
    /// minute into the current chunk; a point in an older minute (out of order) is merged
    /// into its minute (that chunk is decoded and re-coded). Timestamps so far from the
    /// epoch that their 4 h window overflows i64 ms are ignored.
    pub fn add(&mut self, timestamp_ms: i64, value: f64) {
        let Some(minute) = minute_of(timestamp_ms) else {
            return;
        };
        if let Some(mut open) = self.open() {
            if minute == open.minute_ms {
                open.merge(value);
                self.set_open(Some(open));
                self.dirty_tail = true;
                return;
            }
            if minute > open.minute_ms {
                self.close_open();
                self.set_open(Some(Rollup::single(minute, value)));
                self.dirty_tail = true;
                return;
            }
        } else {
            match self.cur.as_ref().map(|c| c.last_minute_ms()) {
                Some(newest) if minute < newest => {}
                Some(newest) if minute == newest => {
                    // Typically the first point after a restart, in the minute saved last:
                    // reopen it so the following points are cheap again.
                    if let Some(mut r) = self.pop_newest() {
                        r.merge(value);
                        self.set_open(Some(r));
                        self.dirty_tail = true;
                        return;
                    }
                }
                _ => {
                    self.set_open(Some(Rollup::single(minute, value)));
                    self.dirty_tail = true;
                    return;
                }
            }
        }
        let (w, _) = split(minute);
        self.edit_window(w, |mins| {
            match mins.binary_search_by_key(&minute, |r| r.minute_ms) {
                Ok(i) => {
                    if let Some(r) = mins.get_mut(i) {
                        r.merge(value);
                    }
                }
                Err(i) => mins.insert(i, Rollup::single(minute, value)),
            }
            true
        });
    }

    /// Codes the open minute into the current chunk (sealing that one when the minute
    /// belongs to a later window).
    fn close_open(&mut self) {
        let Some(r) = self.open() else {
            return;
        };
        self.set_open(None);
        let (w, off) = split(r.minute_ms);
        match self.cur.as_mut() {
            Some(c) if c.window() == w => c.push(off, &r),
            _ => {
                self.seal_cur();
                self.cur = Some(Box::new(ChunkEncoder::new(w, off, &r)));
            }
        }
    }

    fn seal_cur(&mut self) {
        if let Some(c) = self.cur.take() {
            let mut data = c.into_sealed();
            set_dirty(&mut data, self.dirty_tail);
            self.sealed.push(&data);
        }
    }

    /// Makes the newest sealed chunk the current one (when the current one went away).
    fn promote_sealed(&mut self) {
        while self.cur.is_none() {
            let Some(chunk) = self.sealed.pop() else {
                return;
            };
            if let Ok((w, mins)) = decode_chunk(&chunk) {
                self.cur = ChunkEncoder::from_minutes(w, &mins).map(Box::new);
                self.dirty_tail |= is_dirty(&chunk);
            }
        }
    }

    /// Removes the newest coded minute from the current chunk and returns it.
    fn pop_newest(&mut self) -> Option<Rollup> {
        let cur = self.cur.take()?;
        let Ok((w, mut mins)) = decode_chunk(cur.bytes()) else {
            self.cur = Some(cur);
            return None;
        };
        let last = mins.pop();
        self.cur = ChunkEncoder::from_minutes(w, &mins).map(Box::new);
        self.promote_sealed();
        last
    }

    /// Decodes window `w` (empty when not held), lets `edit` change its minutes, and stores
    /// the result. `edit` returns whether the result differs from what a store holds.
    fn edit_window(&mut self, w: i64, edit: impl FnOnce(&mut Vec<Rollup>) -> bool) {
        let cur_window = self.cur.as_ref().map(|c| c.window());
        if cur_window == Some(w) {
            let Some(Ok((_, mut mins))) = self.cur.as_ref().map(|c| decode_chunk(c.bytes())) else {
                return;
            };
            let changed = edit(&mut mins);
            if let Some(enc) = ChunkEncoder::from_minutes(w, &mins) {
                self.cur = Some(Box::new(enc));
                self.dirty_tail |= changed;
            }
            return;
        }
        if cur_window.is_none_or(|cw| w > cw) {
            let mut mins = Vec::new();
            let changed = edit(&mut mins);
            if let Some(enc) = ChunkEncoder::from_minutes(w, &mins) {
                self.seal_cur();
                self.cur = Some(Box::new(enc));
                self.dirty_tail |= changed;
            }
            return;
        }
        let idx = self.sealed.find(w);
        let (mut mins, was_dirty) = match idx {
            Ok(i) => match self.sealed.get(i).map(|c| (decode_chunk(c), is_dirty(c))) {
                Some((Ok((_, mins)), dirty)) => (mins, dirty),
                _ => (Vec::new(), true),
            },
            Err(_) => (Vec::new(), false),
        };
        let changed = edit(&mut mins);
        let Some(enc) = ChunkEncoder::from_minutes(w, &mins) else {
            return;
        };
        let mut data = enc.into_sealed();
        set_dirty(&mut data, changed || was_dirty);
        match idx {
            Ok(i) => self.sealed.put(i, &data, true),
            Err(i) => self.sealed.put(i, &data, false),
        }
    }

    /// Every minute held with `minute_ms >= since_ms`, oldest first.
    pub fn rollups(&self, since_ms: i64) -> Vec<Rollup> {
        let mut out = Vec::new();
        let chunks = self
            .sealed
            .iter()
            .filter(|c| window_end(Sealed::window_of(c)) > since_ms)
            .chain(self.cur.as_ref().map(|c| c.bytes()));
        for data in chunks {
            if let Ok((_, mins)) = decode_chunk(data) {
                out.extend(mins.into_iter().filter(|r| r.minute_ms >= since_ms));
            }
        }
        out.extend(self.open().filter(|r| r.minute_ms >= since_ms));
        out
    }

    /// Forgets chunks wholly older than `before_ms` (the 24 h horizon): those whose 4 h
    /// window ends at or before it. The current chunk and open minute go the same way, so
    /// a series silent for longer than the horizon ends up [`is_empty`](Self::is_empty).
    pub fn prune(&mut self, before_ms: i64) {
        let keep = |w: i64| window_end(w) > before_ms;
        self.sealed.retain(keep);
        if self.cur.as_ref().is_some_and(|c| !keep(c.window())) {
            self.cur = None;
        }
        if self.open_count > 0 && !keep(split(self.open_minute).0) {
            self.set_open(None);
        }
        if self.cur.is_none() && self.open_count == 0 {
            self.dirty_tail = false;
        }
    }

    /// Heap bytes held (for the memory benchmark and `series top`). The whole footprint is
    /// this plus `size_of::<History>()` (64 bytes on 64-bit targets).
    pub fn heap_bytes(&self) -> usize {
        self.sealed.heap_bytes()
            + self
                .cur
                .as_ref()
                .map_or(0, |c| std::mem::size_of::<ChunkEncoder>() + c.heap_extra())
    }

    /// Blocks changed since the last call — sealed chunks not handed out since they last
    /// changed, and the current chunk including the open minute when anything changed —
    /// marking them clean. Oldest first. Each block is self-describing (format version
    /// first, checksum last) so a store can persist it and [`load`](Self::load) read it.
    pub fn take_dirty_blocks(&mut self) -> Vec<Block> {
        let mut out = Vec::new();
        self.sealed.for_each_mut(|c| {
            if !is_dirty(c) {
                return;
            }
            set_dirty(c, false);
            if let Ok((w, mins)) = decode_chunk(c) {
                if let Some(last) = mins.last() {
                    out.push(Block {
                        start_ms: w * CHUNK_MS,
                        end_ms: last.minute_ms + MINUTE_MS,
                        data: codec::seal_block_data(c),
                    });
                }
            }
        });
        if !std::mem::take(&mut self.dirty_tail) {
            return out;
        }
        let open = self.open().map(|r| (split(r.minute_ms), r));
        match (self.cur.as_deref(), open) {
            (Some(cur), Some(((w, off), r))) if cur.window() == w => {
                let mut enc = cur.clone();
                enc.push(off, &r);
                out.push(encoder_block(&enc));
            }
            (cur, open) => {
                out.extend(cur.map(encoder_block));
                if let Some(((w, off), r)) = open {
                    out.push(encoder_block(&ChunkEncoder::new(w, off, &r)));
                }
            }
        }
        out
    }

    /// Installs a block read back from the store, merging it with the minutes already
    /// held; minutes held in memory win over loaded ones for the same minute. A corrupt
    /// block is an error and changes nothing. Loading what the store already had does not
    /// make anything dirty.
    pub fn load(&mut self, block: &Block) -> Result<(), DecodeError> {
        let body = codec::open_block_data(&block.data)?;
        let (w, mut mins) = decode_chunk(body)?;
        let last = mins.last().map_or(0, |r| r.minute_ms);
        if block.start_ms != w.saturating_mul(CHUNK_MS) || block.end_ms != last + MINUTE_MS {
            return Err(DecodeError::Malformed(
                "start_ms/end_ms do not match the data",
            ));
        }
        if self.open_count > 0 {
            if last > self.open_minute {
                // The store knows newer minutes than the one held open: it is no longer
                // the newest, so code it like any other.
                self.close_open();
            } else {
                let open = self.open_minute;
                mins.retain(|r| r.minute_ms != open);
            }
        }
        if mins.is_empty() {
            return Ok(());
        }
        // Fast path at start-up: a window older than the current chunk and not held yet
        // keeps the stored bytes as they are (already checked by decoding them).
        if self.cur.as_ref().is_some_and(|c| w < c.window()) {
            if let Err(i) = self.sealed.find(w) {
                self.sealed.put(i, body, false);
                return Ok(());
            }
        }
        self.edit_window(w, |held| {
            if held.is_empty() {
                *held = mins;
                return false;
            }
            let merged = merge_prefer(held, &mins);
            let changed = !same_bits(&merged, &mins);
            *held = merged;
            changed
        });
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.sealed.is_empty() && self.cur.is_none() && self.open_count == 0
    }

    /// The newest minute held (open or coded), Unix ms.
    pub fn newest_minute_ms(&self) -> Option<i64> {
        self.open()
            .map(|r| r.minute_ms)
            .or_else(|| self.cur.as_ref().map(|c| c.last_minute_ms()))
    }
}
