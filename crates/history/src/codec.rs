//! The chunk format: header bytes, then one bit stream of minute entries. See the crate
//! documentation for why it is shaped this way.
//!
//! Chunk bytes (in memory and, with a checksum appended, in a persisted block):
//!
//! ```text
//! byte 0   format version (in memory only, bit 7 marks a sealed chunk not yet handed out)
//! byte 1   number of minutes in the chunk, 1..=240
//! byte 2   offset of the first minute in its window, 0..240
//! varint   window index (zigzag LEB128), start_ms = index * CHUNK_MS
//! bits     entries, MSB first, zero padded to a whole byte
//! ```
//!
//! Entry grammar, "first stream" being the single-value stream when the current count is 1
//! and the min stream otherwise:
//!
//! ```text
//! normal   value codes (single | min max sum)      gap and count as the previous minute
//! run      ESC(first stream) 0 len:8               len minutes, every value as predicted
//! special  ESC(first stream) 1 gap count values    gap: 0 | 1 gap:8, count: 0 | 1 (L-1):5 low:(L-1)
//! ```
//!
//! Value code, decimal modes (mantissa m of value = m / 10^e, residual z = zigzag(m - prediction)):
//!
//! ```text
//! 1^q 0 low:k                   q < 12: Rice code of z with parameter k
//! 1^12 0 L:6 z:L                large residual
//! 1^12 1 id:4                   escape: id 7 = entry escape, else switch mode and code the value
//! ulp modes then add: 0 | 10 s:1 | 11 u:11   (zigzag of f64 bit distance from m / 10^e)
//! ```
//!
//! Value code, float mode (x = bits XOR previous bits): `0` same value, `10` bits in the
//! previous window, `110 lead:6 (len-1):6 bits:len` new window, `111 id:4` escape.

use crate::{DecodeError, Rollup, CHUNK_MINUTES, CHUNK_MS, MINUTE_MS};

pub(crate) const VERSION: u8 = 1;
/// In-memory marker on byte 0 of a sealed chunk: changed since last handed out.
pub(crate) const DIRTY: u8 = 0x80;

/// Unary part of a Rice code longer than this is an escape.
const QMAX: u32 = 12;
/// Predicted minutes in a row before they are folded into a run.
const RUN_MIN: u8 = 6;
/// Values in a row that a cheaper mode could code before switching down to it.
const DOWN_AFTER: u8 = 16;
const MAX_EXP: u8 = 6;
const ULP_BASE: u8 = 8;
const FLOAT: u8 = 15;
const ENTRY_ESCAPE: u8 = 7;
const ULP_LIMIT: u64 = 1023;
const POW10: [f64; 7] = [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6];
const MANTISSA_LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53
const DELTA_LIMIT: i64 = 1 << 50;
/// Byte growth step of an open chunk's buffer: bounded slack, few reallocations.
const GROW: usize = 16;
const GARBAGE: DecodeError = DecodeError::Malformed("bad bit stream");

fn zz(i: i64) -> u64 {
    ((i << 1) ^ (i >> 63)) as u64
}

fn unzz(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

fn bitlen(u: u64) -> u32 {
    64 - u.leading_zeros()
}

// ---------------------------------------------------------------------------------------
// Bits

#[derive(Clone, Default)]
pub(crate) struct BitWriter {
    buf: Vec<u8>,
    bits: u32,
}

impl BitWriter {
    fn push_byte(&mut self, b: u8) {
        if self.buf.len() == self.buf.capacity() {
            self.buf.reserve_exact(GROW);
        }
        self.buf.push(b);
    }

    fn bit(&mut self, b: bool) {
        self.write(u64::from(b), 1);
    }

    fn ones(&mut self, n: u32) {
        self.write(u64::MAX, n);
    }

    /// Writes the low `n` (<= 64) bits of `value`, most significant first.
    fn write(&mut self, value: u64, mut n: u32) {
        while n > 0 {
            let used = self.bits % 8;
            if used == 0 {
                self.push_byte(0);
            }
            let free = 8 - used;
            let take = free.min(n);
            let chunk = ((value >> (n - take)) & ((1u64 << take) - 1)) as u8;
            if let Some(last) = self.buf.last_mut() {
                *last |= chunk << (free - take);
            }
            self.bits += take;
            n -= take;
        }
    }

    /// Forgets everything from bit `pos` on.
    fn truncate(&mut self, pos: u32) {
        self.buf.truncate(pos.div_ceil(8) as usize);
        let rem = pos % 8;
        if rem != 0 {
            if let Some(last) = self.buf.last_mut() {
                *last &= 0xFFu8 << (8 - rem);
            }
        }
        self.bits = pos;
    }

    /// Overwrites `n` bits at `pos` (already written).
    fn set(&mut self, pos: u32, value: u64, n: u32) {
        for i in 0..n {
            let p = pos + i;
            let mask = 0x80u8 >> (p % 8);
            if let Some(b) = self.buf.get_mut((p / 8) as usize) {
                if (value >> (n - 1 - i)) & 1 == 1 {
                    *b |= mask;
                } else {
                    *b &= !mask;
                }
            }
        }
    }
}

struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl BitReader<'_> {
    fn bit(&mut self) -> Result<bool, DecodeError> {
        let byte = self.data.get(self.pos / 8).ok_or(DecodeError::Truncated)?;
        let b = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Ok(b == 1)
    }

    fn read(&mut self, mut n: u32) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        while n > 0 {
            let byte = *self.data.get(self.pos / 8).ok_or(DecodeError::Truncated)?;
            let avail = 8 - (self.pos % 8) as u32;
            let take = avail.min(n);
            let bits = (u64::from(byte) >> (avail - take)) & ((1u64 << take) - 1);
            v = (v << take) | bits;
            self.pos += take as usize;
            n -= take;
        }
        Ok(v)
    }

    /// Counts 1 bits up to `max`, consuming the terminating 0 when there is one.
    fn unary(&mut self, max: u32) -> Result<u32, DecodeError> {
        let mut q = 0;
        while q < max && self.bit()? {
            q += 1;
        }
        Ok(q)
    }
}

// ---------------------------------------------------------------------------------------
// Value streams

fn mantissa(v: f64, e: u8) -> Option<i64> {
    let t = v * POW10[usize::from(e.min(MAX_EXP))];
    (t.abs() < MANTISSA_LIMIT).then(|| t.round() as i64)
}

fn from_mantissa(m: i64, e: u8) -> f64 {
    m as f64 / POW10[usize::from(e.min(MAX_EXP))]
}

/// (mantissa, bit distance) when `v` can be coded in decimal `mode`.
fn codable(v: f64, mode: u8) -> Option<(i64, i64)> {
    if mode == FLOAT {
        return None;
    }
    let e = mode & 7;
    let m = mantissa(v, e)?;
    let a = from_mantissa(m, e);
    if mode < ULP_BASE {
        return (a.to_bits() == v.to_bits()).then_some((m, 0));
    }
    if a.is_sign_negative() != v.is_sign_negative() {
        return None;
    }
    let d = (v.to_bits() as i64).wrapping_sub(a.to_bits() as i64);
    (d.unsigned_abs() <= ULP_LIMIT).then_some((m, d))
}

/// Cost order of modes: fewer decimals first, exact before "nearly".
fn rank(mode: u8) -> u8 {
    if mode == FLOAT {
        u8::MAX
    } else {
        (mode & 7) * 2 + u8::from(mode >= ULP_BASE)
    }
}

fn best_mode(v: f64) -> u8 {
    for e in 0..=MAX_EXP {
        if codable(v, e).is_some() {
            return e;
        }
        if codable(v, ULP_BASE + e).is_some() {
            return ULP_BASE + e;
        }
    }
    FLOAT
}

fn valid_mode(id: u8) -> bool {
    id <= MAX_EXP || (ULP_BASE..=FLOAT).contains(&id)
}

enum Got {
    Value(f64),
    Escape,
}

/// Predictor state of one value stream (the single value, or min, max or sum).
#[derive(Clone, Copy, Default)]
pub(crate) struct Pred {
    /// Bits of the previous value.
    prev: u64,
    /// Moving average of the mantissa delta, x16.
    avg: i64,
    /// Moving average of the coded residual, x16 (sets the Rice parameter).
    rice: u32,
    /// > 0 when "previous + average delta" has been predicting better than "previous".
    bias: i16,
    mode: u8,
    win_lead: u8,
    win_len: u8,
    /// Encoder only: values in a row a cheaper mode could have coded, and that mode.
    down_len: u8,
    down_mode: u8,
    /// Decimal values coded since the chunk start or the last mode switch (saturating).
    seen: u8,
}

impl Pred {
    fn k(&self) -> u32 {
        bitlen(u64::from(self.rice >> 5))
    }

    fn base(&self) -> i64 {
        mantissa(f64::from_bits(self.prev), self.mode & 7).unwrap_or(0)
    }

    fn predict(&self, base: i64) -> i64 {
        if self.bias > 0 {
            base.wrapping_add(self.avg.wrapping_add(8) >> 4)
        } else {
            base
        }
    }

    fn switch(&mut self, mode: u8) {
        self.mode = mode;
        self.avg = 0;
        self.bias = 0;
        self.down_len = 0;
        self.seen = 0;
    }

    /// State update after a decimal value with mantissa `m` (shared by coder and decoder).
    /// The first value after a chunk start or mode switch has no real predecessor: it
    /// only seeds the state. The first averages are plain means, so a steady counter is
    /// predicted exactly from its second step on.
    fn update(&mut self, m: i64, base: i64, z: u64, bits: u64) {
        if self.seen > 0 {
            let n = i64::from(self.seen.min(12));
            let delta = m.wrapping_sub(base).clamp(-DELTA_LIMIT, DELTA_LIMIT);
            let trend = base.wrapping_add(self.avg.wrapping_add(8) >> 4);
            let cost_last = bitlen(zz(m.wrapping_sub(base))) as i32;
            let cost_trend = bitlen(zz(m.wrapping_sub(trend))) as i32;
            let bias = i32::from(self.bias) * 7 / 8 + (cost_last - cost_trend) * 4;
            self.bias = bias.clamp(-4096, 4096) as i16;
            self.avg += (delta * 16 - self.avg) / i64::from(self.seen.min(16));
            // The first steps of a counter are whole increments, not prediction errors
            // (the trend is learnt from them): they would inflate the Rice parameter for
            // dozens of minutes.
            if self.seen > 2 {
                let rice = i64::from(self.rice);
                let zc = z.min(1 << 24) as i64;
                self.rice = (rice + (zc * 16 - rice) / (n - 2)) as u32;
            }
        }
        self.seen = self.seen.saturating_add(1);
        self.prev = bits;
    }

    fn write_escape(&self, w: &mut BitWriter, id: u8) {
        if self.mode == FLOAT {
            w.write(0b111, 3);
        } else {
            w.ones(QMAX);
            w.bit(true);
        }
        w.write(u64::from(id), 4);
    }

    /// Which mode codes `v` (and how), keeping the encoder's switch-down bookkeeping.
    fn choose(&mut self, v: f64) -> (u8, Option<(i64, i64)>) {
        if self.mode == FLOAT {
            let b = best_mode(v);
            return (b, codable(v, b));
        }
        let Some(c) = codable(v, self.mode) else {
            let b = best_mode(v);
            return (b, codable(v, b));
        };
        let b = best_mode(v);
        if rank(b) < rank(self.mode) {
            if self.down_len == 0 || rank(b) > rank(self.down_mode) {
                self.down_mode = b;
            }
            self.down_len += 1;
            if self.down_len >= DOWN_AFTER {
                self.down_len = 0;
                if let Some(c2) = codable(v, self.down_mode) {
                    return (self.down_mode, Some(c2));
                }
            }
        } else {
            self.down_len = 0;
        }
        (self.mode, Some(c))
    }

    /// Codes `v`; true when it cost nothing but a zero residual (a run candidate).
    fn encode(&mut self, w: &mut BitWriter, v: f64) -> bool {
        let (mode, c) = self.choose(v);
        let switched = mode != self.mode;
        if switched {
            self.write_escape(w, mode);
            self.switch(mode);
        }
        let bits = v.to_bits();
        let zero = match c {
            None => self.write_float(w, bits),
            Some((m, d)) => self.write_decimal(w, m, d, bits),
        };
        zero && !switched
    }

    fn write_float(&mut self, w: &mut BitWriter, bits: u64) -> bool {
        let x = bits ^ self.prev;
        self.prev = bits;
        if x == 0 {
            w.bit(false);
            return true;
        }
        let lead = x.leading_zeros().min(63);
        let trail = x.trailing_zeros();
        let (wl, wn) = (u32::from(self.win_lead), u32::from(self.win_len));
        if wn != 0 && lead >= wl && trail >= 64 - wl - wn {
            w.write(0b10, 2);
            w.write(x >> (64 - wl - wn), wn);
        } else {
            let len = 64 - lead - trail;
            w.write(0b110, 3);
            w.write(u64::from(lead), 6);
            w.write(u64::from(len - 1), 6);
            w.write(x >> trail, len);
            self.win_lead = lead as u8;
            self.win_len = len as u8;
        }
        false
    }

    fn write_decimal(&mut self, w: &mut BitWriter, m: i64, d: i64, bits: u64) -> bool {
        let base = self.base();
        let z = zz(m.wrapping_sub(self.predict(base)));
        let k = self.k();
        let q = z >> k;
        if q < u64::from(QMAX) {
            w.ones(q as u32);
            w.bit(false);
            w.write(z, k);
        } else {
            w.ones(QMAX);
            w.bit(false);
            let len = bitlen(z);
            w.write(u64::from(len), 6);
            w.write(z, len);
        }
        if self.mode >= ULP_BASE {
            let u = zz(d);
            match u {
                0 => w.bit(false),
                1 | 2 => {
                    w.write(0b10, 2);
                    w.write(u - 1, 1);
                }
                _ => {
                    w.write(0b11, 2);
                    w.write(u, 11);
                }
            }
        }
        self.update(m, base, z, bits);
        z == 0 && d == 0
    }

    /// Reads one value code; an entry escape is returned only when `escape_ok`.
    fn decode(&mut self, r: &mut BitReader, escape_ok: bool) -> Result<Got, DecodeError> {
        let mut switched = false;
        loop {
            let escape = if self.mode == FLOAT {
                match r.unary(3)? {
                    0 => return Ok(Got::Value(f64::from_bits(self.prev))),
                    1 => {
                        let (wl, wn) = (u32::from(self.win_lead), u32::from(self.win_len));
                        if wn == 0 {
                            return Err(GARBAGE);
                        }
                        let x = r.read(wn)? << (64 - wl - wn);
                        self.prev ^= x;
                        return Ok(Got::Value(f64::from_bits(self.prev)));
                    }
                    2 => {
                        let lead = r.read(6)? as u32;
                        let len = r.read(6)? as u32 + 1;
                        if lead + len > 64 {
                            return Err(GARBAGE);
                        }
                        let x = r.read(len)? << (64 - lead - len);
                        self.win_lead = lead as u8;
                        self.win_len = len as u8;
                        self.prev ^= x;
                        return Ok(Got::Value(f64::from_bits(self.prev)));
                    }
                    _ => r.read(4)? as u8,
                }
            } else {
                let k = self.k();
                let q = r.unary(QMAX)?;
                let z = if q < QMAX {
                    (u64::from(q) << k) | r.read(k)?
                } else if !r.bit()? {
                    let len = r.read(6)? as u32;
                    r.read(len)?
                } else {
                    let id = r.read(4)? as u8;
                    if id == ENTRY_ESCAPE && escape_ok && !switched {
                        return Ok(Got::Escape);
                    }
                    if switched || !valid_mode(id) {
                        return Err(GARBAGE);
                    }
                    self.switch(id);
                    switched = true;
                    continue;
                };
                let base = self.base();
                let m = self.predict(base).wrapping_add(unzz(z));
                let d = if self.mode >= ULP_BASE {
                    match r.unary(2)? {
                        0 => 0,
                        1 => unzz(r.read(1)? + 1),
                        _ => unzz(r.read(11)?),
                    }
                } else {
                    0
                };
                let a = from_mantissa(m, self.mode & 7).to_bits();
                let bits = (a as i64).wrapping_add(d) as u64;
                self.update(m, base, z, bits);
                return Ok(Got::Value(f64::from_bits(bits)));
            };
            // Escape in float mode.
            if escape == ENTRY_ESCAPE && escape_ok && !switched {
                return Ok(Got::Escape);
            }
            if switched || !valid_mode(escape) {
                return Err(GARBAGE);
            }
            self.switch(escape);
            switched = true;
        }
    }

    fn decode_value(&mut self, r: &mut BitReader) -> Result<f64, DecodeError> {
        match self.decode(r, false)? {
            Got::Value(v) => Ok(v),
            Got::Escape => Err(GARBAGE),
        }
    }

    /// The value of a run minute: exactly the prediction.
    fn replay(&mut self) -> f64 {
        if self.mode == FLOAT {
            return f64::from_bits(self.prev);
        }
        let base = self.base();
        let m = self.predict(base);
        let bits = from_mantissa(m, self.mode & 7).to_bits();
        self.update(m, base, 0, bits);
        f64::from_bits(bits)
    }
}

// ---------------------------------------------------------------------------------------
// Chunks

/// Per-chunk coding state, the same on both sides.
#[derive(Clone, Default)]
struct Codec {
    last_off: i16,
    gap: u8,
    count: u32,
    single: Pred,
    multi: Option<Box<[Pred; 3]>>,
}

impl Codec {
    fn new(first_off: u8) -> Self {
        Codec {
            last_off: i16::from(first_off) - 1,
            gap: 1,
            count: 1,
            ..Codec::default()
        }
    }

    fn multi(&mut self) -> &mut [Pred; 3] {
        self.multi.get_or_insert_with(Default::default)
    }

    fn first(&mut self) -> &mut Pred {
        if self.count == 1 {
            &mut self.single
        } else {
            &mut self.multi()[0]
        }
    }
}

/// The chunk being appended to: its bytes so far and the coder state to continue them.
#[derive(Clone)]
pub(crate) struct ChunkEncoder {
    w: BitWriter,
    window: i64,
    codec: Codec,
    /// Bit where the current streak of predicted minutes (or its run) starts.
    streak_start: u32,
    /// Bit of the 8-bit length field of the run being extended.
    run_field: u32,
    streak_len: u8,
    in_run: bool,
}

impl ChunkEncoder {
    pub(crate) fn new(window: i64, first_off: u8, first: &Rollup) -> Self {
        let mut w = BitWriter::default();
        w.push_byte(VERSION);
        w.push_byte(0);
        w.push_byte(first_off);
        let mut u = zz(window);
        loop {
            let low = (u & 0x7F) as u8;
            u >>= 7;
            if u == 0 {
                w.push_byte(low);
                break;
            }
            w.push_byte(low | 0x80);
        }
        w.bits = (w.buf.len() * 8) as u32;
        let mut enc = ChunkEncoder {
            w,
            window,
            codec: Codec::new(first_off),
            streak_start: 0,
            run_field: 0,
            streak_len: 0,
            in_run: false,
        };
        enc.push(first_off, first);
        enc
    }

    /// Builds a chunk from sorted, distinct minutes of one window (at least one).
    pub(crate) fn from_minutes(window: i64, mins: &[Rollup]) -> Option<Self> {
        let (first, rest) = mins.split_first()?;
        let mut enc = ChunkEncoder::new(window, offset(first.minute_ms), first);
        for r in rest {
            enc.push(offset(r.minute_ms), r);
        }
        Some(enc)
    }

    pub(crate) fn window(&self) -> i64 {
        self.window
    }

    pub(crate) fn last_minute_ms(&self) -> i64 {
        self.window * CHUNK_MS + i64::from(self.codec.last_off) * MINUTE_MS
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.w.buf
    }

    pub(crate) fn heap_extra(&self) -> usize {
        self.w.buf.capacity()
            + self
                .codec
                .multi
                .as_ref()
                .map_or(0, |_| std::mem::size_of::<[Pred; 3]>())
    }

    pub(crate) fn into_sealed(self) -> Box<[u8]> {
        self.w.buf.into_boxed_slice()
    }

    /// Appends a minute at `off` (after every minute already held, same window).
    pub(crate) fn push(&mut self, off: u8, r: &Rollup) {
        let gap = (i16::from(off) - self.codec.last_off).clamp(1, 255) as u8;
        let normal = gap == self.codec.gap && r.count == self.codec.count;
        let start = self.w.bits;
        let w = &mut self.w;
        let c = &mut self.codec;
        if !normal {
            c.first().write_escape(w, ENTRY_ESCAPE);
            w.bit(true);
            if gap == c.gap {
                w.bit(false);
            } else {
                w.bit(true);
                w.write(u64::from(gap), 8);
                c.gap = gap;
            }
            if r.count == c.count {
                w.bit(false);
            } else {
                let count = r.count.max(1);
                let len = bitlen(u64::from(count));
                w.bit(true);
                w.write(u64::from(len - 1), 5);
                w.write(u64::from(count), len - 1);
                c.count = count;
            }
        }
        let mut predicted = true;
        if c.count == 1 {
            predicted &= c.single.encode(w, r.sum);
        } else {
            let m = c.multi();
            predicted &= m[0].encode(w, r.min);
            predicted &= m[1].encode(w, r.max);
            predicted &= m[2].encode(w, r.sum);
        }
        c.last_off = i16::from(off);
        if let Some(n) = w.buf.get_mut(1) {
            *n += 1;
        }
        if !(normal && predicted) {
            self.streak_len = 0;
            self.in_run = false;
            return;
        }
        if self.in_run {
            w.truncate(start);
            self.streak_len += 1;
            w.set(self.run_field, u64::from(self.streak_len), 8);
            return;
        }
        if self.streak_len == 0 {
            self.streak_start = start;
        }
        self.streak_len += 1;
        if self.streak_len >= RUN_MIN {
            // The predictor states after a run equal those after the same minutes coded one
            // by one, so the bits can simply be replaced.
            w.truncate(self.streak_start);
            c.first().write_escape(w, ENTRY_ESCAPE);
            w.bit(false);
            self.run_field = w.bits;
            w.write(u64::from(self.streak_len), 8);
            self.in_run = true;
        }
    }
}

fn offset(minute_ms: i64) -> u8 {
    minute_ms.div_euclid(MINUTE_MS).rem_euclid(CHUNK_MINUTES) as u8
}

/// Window index of a chunk's bytes, read from its header.
pub(crate) fn header_window(data: &[u8]) -> Result<(i64, usize), DecodeError> {
    let mut u = 0u64;
    let mut i = 3;
    for shift in (0..70).step_by(7) {
        let b = *data.get(i).ok_or(DecodeError::Truncated)?;
        i += 1;
        if shift == 63 && b > 1 {
            return Err(DecodeError::Malformed("window index overflows"));
        }
        u |= u64::from(b & 0x7F) << shift;
        if b & 0x80 == 0 {
            return Ok((unzz(u), i));
        }
    }
    Err(DecodeError::Malformed("window index overflows"))
}

/// Decodes chunk bytes (byte 0 may carry the in-memory dirty mark).
pub(crate) fn decode_chunk(data: &[u8]) -> Result<(i64, Vec<Rollup>), DecodeError> {
    let (&version, rest) = data.split_first().ok_or(DecodeError::Truncated)?;
    if version & !DIRTY != VERSION {
        return Err(DecodeError::Version(version));
    }
    let n = *rest.first().ok_or(DecodeError::Truncated)?;
    let first_off = *rest.get(1).ok_or(DecodeError::Truncated)?;
    if n == 0 || i64::from(n) > CHUNK_MINUTES || i64::from(first_off) >= CHUNK_MINUTES {
        return Err(DecodeError::Malformed("bad header"));
    }
    let (window, header_len) = header_window(data)?;
    let start = window
        .checked_mul(CHUNK_MS)
        .filter(|s| s.checked_add(CHUNK_MS).is_some())
        .ok_or(DecodeError::Malformed("window out of range"))?;
    let mut r = BitReader {
        data,
        pos: header_len * 8,
    };
    let mut c = Codec::new(first_off);
    let mut out = Vec::with_capacity(usize::from(n));
    let next = |c: &mut Codec, out: &mut Vec<Rollup>, v: [f64; 3]| {
        let off = c.last_off + i16::from(c.gap);
        if i64::from(off) >= CHUNK_MINUTES || out.len() >= usize::from(n) {
            return Err(GARBAGE);
        }
        c.last_off = off;
        out.push(Rollup {
            minute_ms: start + i64::from(off) * MINUTE_MS,
            min: v[0],
            max: v[1],
            sum: v[2],
            count: c.count,
        });
        Ok(())
    };
    while out.len() < usize::from(n) {
        match c.first().decode(&mut r, true)? {
            Got::Value(v) => {
                let v = if c.count == 1 {
                    [v; 3]
                } else {
                    let m = c.multi();
                    [v, m[1].decode_value(&mut r)?, m[2].decode_value(&mut r)?]
                };
                next(&mut c, &mut out, v)?;
            }
            Got::Escape if r.bit()? => {
                if r.bit()? {
                    let gap = r.read(8)? as u8;
                    if gap == 0 {
                        return Err(GARBAGE);
                    }
                    c.gap = gap;
                }
                if r.bit()? {
                    let len = r.read(5)? as u32 + 1;
                    c.count = ((1u64 << (len - 1)) | r.read(len - 1)?) as u32;
                }
                let v = if c.count == 1 {
                    [c.single.decode_value(&mut r)?; 3]
                } else {
                    let m = c.multi();
                    [
                        m[0].decode_value(&mut r)?,
                        m[1].decode_value(&mut r)?,
                        m[2].decode_value(&mut r)?,
                    ]
                };
                next(&mut c, &mut out, v)?;
            }
            Got::Escape => {
                let len = r.read(8)?;
                if len == 0 || out.len() + len as usize > usize::from(n) {
                    return Err(GARBAGE);
                }
                for _ in 0..len {
                    let v = if c.count == 1 {
                        [c.single.replay(); 3]
                    } else {
                        let m = c.multi();
                        [m[0].replay(), m[1].replay(), m[2].replay()]
                    };
                    next(&mut c, &mut out, v)?;
                }
            }
        }
    }
    if r.pos.div_ceil(8) != data.len() {
        return Err(DecodeError::Malformed("trailing bytes"));
    }
    Ok((window, out))
}

fn fnv1a(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Persisted form of chunk bytes: clean version byte, checksum appended.
pub(crate) fn seal_block_data(chunk: &[u8]) -> Vec<u8> {
    let mut d = Vec::with_capacity(chunk.len() + 4);
    d.extend_from_slice(chunk);
    if let Some(v) = d.first_mut() {
        *v = VERSION;
    }
    let h = fnv1a(&d);
    d.extend_from_slice(&h.to_le_bytes());
    d
}

/// Checks a persisted block and returns its chunk bytes.
pub(crate) fn open_block_data(data: &[u8]) -> Result<&[u8], DecodeError> {
    if data.len() < 8 {
        return Err(DecodeError::Truncated);
    }
    let (body, sum) = data.split_at(data.len() - 4);
    if fnv1a(body).to_le_bytes() != sum {
        return Err(DecodeError::Checksum);
    }
    match body.first() {
        Some(&VERSION) => Ok(body),
        Some(&v) => Err(DecodeError::Version(v)),
        None => Err(DecodeError::Truncated),
    }
}
