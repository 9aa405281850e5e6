use std::collections::BTreeMap;

use super::*;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in lo..=hi.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % ((hi - lo + 1) as u64)) as i64
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// The plain uncompressed model: what `rollups` must equal.
#[derive(Default)]
struct Model(BTreeMap<i64, Rollup>);

impl Model {
    fn add(&mut self, ts: i64, v: f64) {
        let minute = ts.div_euclid(MINUTE_MS) * MINUTE_MS;
        self.0
            .entry(minute)
            .and_modify(|r| r.merge(v))
            .or_insert(Rollup::single(minute, v));
    }

    fn rollups(&self, since: i64) -> Vec<Rollup> {
        self.0.range(since..).map(|(_, r)| *r).collect()
    }
}

fn key(r: &Rollup) -> (i64, u64, u64, u64, u32) {
    (
        r.minute_ms,
        r.min.to_bits(),
        r.max.to_bits(),
        r.sum.to_bits(),
        r.count,
    )
}

#[track_caller]
fn assert_same(got: &[Rollup], want: &[Rollup]) {
    assert_eq!(got.len(), want.len(), "number of minutes");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(key(g), key(w), "\n got {g:?}\nwant {w:?}");
    }
}

/// A day-aligned start (a multiple of the chunk window), in 2023.
const T0: i64 = 1_700_006_400_000;

#[test]
fn t0_is_window_aligned() {
    assert_eq!(T0 % CHUNK_MS, 0);
}

/// Value generators of different kinds, each a function of a running state.
fn value(kind: u64, i: i64, rng: &mut Rng, state: &mut f64) -> f64 {
    match kind % 13 {
        // 1-decimal noisy gauge, random walk.
        0 => {
            let m = (*state * 10.0).round() as i64 + rng.range(-50, 50);
            *state = m.clamp(0, 1000) as f64 / 10.0;
            *state
        }
        // Integer counter with jitter.
        1 => {
            *state += (1234 + rng.range(-5, 5)) as f64;
            *state
        }
        2 => 42.0,
        3 => 1.0 / 3.0 * (1 + rng.range(0, 3)) as f64,
        4 => 0.1 + 0.2 * rng.range(0, 5) as f64,
        5 => -(rng.range(0, 100_000) as f64) / 100.0,
        6 => {
            let huge = [
                1e300,
                -1e300,
                1e-300,
                5e-324,
                f64::MAX,
                f64::MIN_POSITIVE,
                1e22,
            ];
            huge[rng.range(0, huge.len() as i64 - 1) as usize]
        }
        7 => [0.0, -0.0][rng.range(0, 1) as usize],
        // Slow drifter with 2 decimals.
        8 => {
            let m = (*state * 100.0).round() as i64 + rng.range(-1, 1);
            *state = m as f64 / 100.0;
            *state
        }
        // Mixed decimals.
        9 => rng.range(-10_000, 10_000) as f64 / [1.0, 10.0, 100.0, 1000.0][(i % 4) as usize],
        // Raw random bits (finite).
        10 => {
            let v = f64::from_bits(rng.next());
            if v.is_finite() {
                v
            } else {
                1.5
            }
        }
        // Steady counter (runs of exactly predicted minutes).
        12 => {
            *state += 250.0;
            *state
        }
        // Large integers near the mantissa limit.
        _ => (9_007_199_254_740_000i64 + rng.range(-2000, 2000)) as f64,
    }
}

/// Feeds random-ish points into a History and the model, checking as it goes.
fn scenario(seed: u64, points: usize) -> (History, Model) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut h = History::default();
    let mut model = Model::default();
    let mut t = T0 + rng.range(0, CHUNK_MS);
    let mut kind = rng.next();
    let mut state = 50.0;
    for i in 0..points {
        if rng.chance(2) {
            kind = rng.next();
        }
        // Time: usually the next minute, sometimes several points in a minute, sometimes
        // a gap of hours, sometimes out of order (minutes to hours back).
        let step = match rng.range(0, 99) {
            0..=69 => MINUTE_MS,
            70..=84 => rng.range(0, 20_000),
            85..=89 => MINUTE_MS * rng.range(2, 10),
            90..=91 => MINUTE_MS * rng.range(60, 600),
            92..=96 => -rng.range(0, 5 * MINUTE_MS),
            _ => -rng.range(0, 600 * MINUTE_MS),
        };
        t += step;
        let ts = if step < 0 {
            let back = t;
            t -= step;
            back
        } else {
            t
        };
        let v = value(kind, i as i64, &mut rng, &mut state);
        h.add(ts, v);
        model.add(ts, v);
        if i % 97 == 0 {
            assert_same(&h.rollups(i64::MIN), &model.rollups(i64::MIN));
        }
    }
    assert_same(&h.rollups(i64::MIN), &model.rollups(i64::MIN));
    (h, model)
}

#[test]
fn round_trip_matches_plain_model() {
    for seed in 0..60 {
        let (h, model) = scenario(seed, 2500);
        for since in [T0, T0 + 3 * CHUNK_MS + 17 * MINUTE_MS, i64::MAX] {
            assert_same(&h.rollups(since), &model.rollups(since));
        }
        assert_eq!(
            h.newest_minute_ms(),
            model.0.keys().next_back().copied(),
            "seed {seed}"
        );
    }
}

#[test]
fn each_value_kind_round_trips_alone() {
    for kind in 0..13 {
        let mut rng = Rng(kind + 7);
        let mut h = History::default();
        let mut model = Model::default();
        let mut state = 50.0;
        for i in 0..1000 {
            // Every third minute has several points (count > 1).
            let per_minute = if i % 3 == 0 { 1 + rng.range(1, 5) } else { 1 };
            for p in 0..per_minute {
                let ts = T0 + i * MINUTE_MS + p * 1000;
                let v = value(kind, i, &mut rng, &mut state);
                h.add(ts, v);
                model.add(ts, v);
            }
        }
        assert_same(&h.rollups(i64::MIN), &model.rollups(i64::MIN));
    }
}

#[test]
fn scrape_every_ten_seconds_round_trips() {
    // Count 6 per minute and sums with float fuzz: the common server case.
    let mut rng = Rng(99);
    let mut h = History::default();
    let mut model = Model::default();
    let mut g = 500i64;
    for i in 0..1440 * 6 {
        g = (g + rng.range(-20, 20)).clamp(0, 1000);
        let ts = T0 + i * 10_000 + rng.range(0, 999);
        h.add(ts, g as f64 / 10.0);
        model.add(ts, g as f64 / 10.0);
    }
    assert_same(&h.rollups(i64::MIN), &model.rollups(i64::MIN));
    eprintln!(
        "10 s scrape, 1-decimal gauge, 24 h: {} heap bytes",
        h.heap_bytes()
    );
}

#[test]
fn edge_timestamps_do_not_panic() {
    let mut h = History::default();
    for ts in [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX] {
        h.add(ts, 1.0);
    }
    let got = h.rollups(i64::MIN);
    assert!(got.iter().all(|r| r.minute_ms % MINUTE_MS == 0));
    assert!(got.iter().any(|r| r.minute_ms == 0));
    assert!(got.iter().any(|r| r.minute_ms == -MINUTE_MS));
}

#[test]
fn out_of_order_and_repeated_minutes() {
    let mut h = History::default();
    let mut model = Model::default();
    let pts = [
        (T0 + 5 * MINUTE_MS, 1.0),
        (T0 + 6 * MINUTE_MS, 2.0),
        (T0 + 5 * MINUTE_MS + 10, 3.0),
        (T0 + 4 * MINUTE_MS, 4.0),
        (T0 + 400 * MINUTE_MS, 5.0),
        (T0 + 300 * MINUTE_MS, 6.0),
        (T0 + 6 * MINUTE_MS + 1, 7.0),
        (T0 + 400 * MINUTE_MS + 1, 8.0),
        (T0 + 401 * MINUTE_MS, 9.0),
        (T0 + 400 * MINUTE_MS + 1, 10.0),
        (T0 - 2 * CHUNK_MS, 11.0),
        (T0 + 1000 * MINUTE_MS, 12.0),
        (T0 + 700 * MINUTE_MS, 13.0),
    ];
    for (ts, v) in pts {
        h.add(ts, v);
        model.add(ts, v);
        assert_same(&h.rollups(i64::MIN), &model.rollups(i64::MIN));
    }
}

/// Moves every dirty block of `h` into `store` (keyed by start, replacing).
fn persist(h: &mut History, store: &mut BTreeMap<i64, Block>) -> usize {
    let blocks = h.take_dirty_blocks();
    let n = blocks.len();
    for b in blocks {
        assert_eq!(b.start_ms % CHUNK_MS, 0);
        assert!(b.end_ms > b.start_ms && b.end_ms <= b.start_ms + CHUNK_MS);
        assert_eq!(b.data[0], 1, "format version byte");
        store.insert(b.start_ms, b);
    }
    n
}

#[test]
fn dirty_blocks_reload_into_a_fresh_history() {
    for seed in 0..30 {
        let mut rng = Rng(seed + 1000);
        let mut h = History::default();
        let mut model = Model::default();
        let mut store = BTreeMap::new();
        let mut t = T0;
        let mut state = 50.0;
        let kind = rng.next();
        for i in 0..3000 {
            t += if rng.chance(10) {
                -rng.range(0, 300) * MINUTE_MS
            } else {
                MINUTE_MS
            };
            let v = value(kind, i, &mut rng, &mut state);
            h.add(t, v);
            model.add(t, v);
            if rng.chance(2) {
                persist(&mut h, &mut store);
            }
            t = t.max(T0);
        }
        persist(&mut h, &mut store);
        assert_eq!(h.take_dirty_blocks(), vec![], "nothing changed since");

        // Load in several orders: oldest first, newest first.
        for reverse in [false, true] {
            let mut fresh = History::default();
            let blocks: Vec<&Block> = if reverse {
                store.values().rev().collect()
            } else {
                store.values().collect()
            };
            for b in blocks {
                fresh.load(b).unwrap();
            }
            assert_same(&fresh.rollups(i64::MIN), &model.rollups(i64::MIN));
            assert_eq!(
                fresh.take_dirty_blocks(),
                vec![],
                "loaded = stored, so clean"
            );
            // The reloaded history carries on: points after the restart, in the last
            // minute saved and later.
            let newest = fresh.newest_minute_ms().unwrap();
            let mut m2 = Model(model.0.clone());
            for (ts, v) in [
                (newest + 5, 1.5),
                (newest + MINUTE_MS, 2.5),
                (newest + 7, 0.5),
            ] {
                fresh.add(ts, v);
                m2.add(ts, v);
            }
            assert_same(&fresh.rollups(i64::MIN), &m2.rollups(i64::MIN));
            let mut store2 = store.clone();
            persist(&mut fresh, &mut store2);
            let mut again = History::default();
            for b in store2.values() {
                again.load(b).unwrap();
            }
            assert_same(&again.rollups(i64::MIN), &m2.rollups(i64::MIN));
        }
    }
}

#[test]
fn memory_wins_over_loaded_minutes() {
    let mut old = History::default();
    for i in 0..10 {
        old.add(T0 + i * MINUTE_MS, 1.0);
    }
    let blocks = old.take_dirty_blocks();
    assert_eq!(blocks.len(), 1);

    let mut h = History::default();
    h.add(T0 + 3 * MINUTE_MS, 7.0); // held open, overlaps the block
    h.load(&blocks[0]).unwrap();
    let got = h.rollups(i64::MIN);
    assert_eq!(got.len(), 10);
    assert_eq!(got[3].sum, 7.0, "memory wins");
    assert_eq!(got[9].sum, 1.0);
    // Memory differs from what the store has: that must be persisted again.
    let again = h.take_dirty_blocks();
    assert!(!again.is_empty());
    let mut fresh = History::default();
    for b in &again {
        fresh.load(b).unwrap();
    }
    assert_same(&fresh.rollups(i64::MIN), &got);

    // A coded (not open) minute in memory also wins.
    let mut h = History::default();
    h.add(T0 + 2 * MINUTE_MS, 5.0);
    h.add(T0 + 20 * MINUTE_MS, 6.0);
    h.load(&blocks[0]).unwrap();
    let got = h.rollups(i64::MIN);
    assert_eq!(got.len(), 11);
    assert_eq!(got[2].sum, 5.0);
}

#[test]
fn corrupt_blocks_are_errors_not_panics() {
    let (mut h, _) = scenario(5, 3000);
    let blocks = h.take_dirty_blocks();
    assert!(blocks.len() > 3);
    for b in &blocks {
        for len in 0..b.data.len() {
            let cut = Block {
                data: b.data[..len].to_vec(),
                ..b.clone()
            };
            assert!(History::default().load(&cut).is_err(), "truncated to {len}");
        }
        for bit in 0..b.data.len() * 8 {
            let mut bad = b.clone();
            bad.data[bit / 8] ^= 0x80 >> (bit % 8);
            assert!(History::default().load(&bad).is_err(), "bit {bit} flipped");
        }
        let mut moved = b.clone();
        moved.start_ms += CHUNK_MS;
        assert!(History::default().load(&moved).is_err());
        let mut moved = b.clone();
        moved.end_ms += MINUTE_MS;
        assert!(History::default().load(&moved).is_err());
    }
    // A failed load changes nothing.
    let before = h.rollups(i64::MIN);
    let mut bad = blocks[0].clone();
    bad.data.pop();
    assert!(h.load(&bad).is_err());
    assert_same(&h.rollups(i64::MIN), &before);
}

#[test]
fn chunk_decoder_refuses_truncation_and_survives_garbage() {
    // Below the checksum: the decoder itself must never panic nor accept a cut chunk.
    let (h, _) = scenario(11, 3000);
    for c in h.sealed.iter() {
        for len in 0..c.len() {
            assert!(codec::decode_chunk(&c[..len]).is_err());
        }
        let mut rng = Rng(3);
        for _ in 0..2000 {
            let mut bad = c.to_vec();
            for _ in 0..rng.range(1, 4) {
                let i = rng.range(0, bad.len() as i64 - 1) as usize;
                bad[i] ^= 1 << rng.range(0, 7);
            }
            let _ = codec::decode_chunk(&bad);
        }
    }
    let mut rng = Rng(17);
    for _ in 0..20_000 {
        let len = rng.range(0, 64) as usize;
        let mut data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if let Some(b) = data.first_mut() {
            *b = 1;
        }
        if let Some(b) = data.get_mut(1) {
            *b %= 241;
        }
        let _ = codec::decode_chunk(&data);
        // Same garbage with a valid checksum through the public door.
        let data = codec::seal_block_data(&data);
        let _ = History::default().load(&Block {
            start_ms: 0,
            end_ms: 0,
            data,
        });
    }
}

#[test]
fn prune_drops_old_chunks() {
    let mut h = History::default();
    for i in 0..(3 * CHUNK_MINUTES) {
        h.add(T0 + i * MINUTE_MS, i as f64);
    }
    assert_eq!(h.rollups(i64::MIN).len(), 720);
    h.prune(T0 + CHUNK_MS); // exactly the end of the first window
    let got = h.rollups(i64::MIN);
    assert_eq!(got.len(), 480);
    assert_eq!(got[0].minute_ms, T0 + CHUNK_MS);
    h.prune(T0 + CHUNK_MS + 10 * MINUTE_MS); // second window not wholly older yet
    assert_eq!(h.rollups(i64::MIN).len(), 480);
    h.prune(T0 + 2 * CHUNK_MS);
    assert_eq!(h.rollups(i64::MIN).len(), 240);
    h.prune(T0 + 3 * CHUNK_MS);
    assert!(h.is_empty());
    assert_eq!(h.heap_bytes(), 0);
    assert_eq!(h.newest_minute_ms(), None);
    assert_eq!(h.take_dirty_blocks(), vec![]);
}

#[test]
fn small_fixed_overhead() {
    assert!(
        std::mem::size_of::<History>() <= 64,
        "{}",
        std::mem::size_of::<History>()
    );
    let mut h = History::default();
    assert!(h.is_empty());
    assert_eq!(h.heap_bytes(), 0);
    h.add(T0, 37.5);
    assert_eq!(h.heap_bytes(), 0, "one point lives in the open minute");
    assert!(!h.is_empty());
    h.add(T0 + MINUTE_MS, 37.5);
    eprintln!(
        "History: {} B struct; after 2 minutes {} B heap",
        std::mem::size_of::<History>(),
        h.heap_bytes()
    );
}

/// 1,440 one-point minutes from `f`, window aligned; returns heap bytes.
fn day_of(mut f: impl FnMut(i64) -> f64) -> (usize, History) {
    let mut h = History::default();
    let mut model = Model::default();
    for i in 0..1440 {
        let v = f(i);
        h.add(T0 + i * MINUTE_MS + 1234, v);
        model.add(T0 + i * MINUTE_MS + 1234, v);
    }
    assert_same(&h.rollups(i64::MIN), &model.rollups(i64::MIN));
    (h.heap_bytes(), h)
}

#[test]
fn size_budgets_for_a_day() {
    let mut rng = Rng(42);
    let mut g = 500i64;
    let (gauge, _) = day_of(|_| {
        g = (g + rng.range(-50, 50)).clamp(0, 1000);
        g as f64 / 10.0
    });
    let mut c = 1_000_000i64;
    let (counter, _) = day_of(|_| {
        c += 1234 + rng.range(-3, 3);
        c as f64
    });
    let (constant, _) = day_of(|_| 42.0);
    let mut d = 5000i64;
    let (drifter, _) = day_of(|_| {
        d += rng.range(-1, 1);
        d as f64 / 100.0
    });
    let mut s = 0i64;
    let (steady, _) = day_of(|_| {
        s += 1000;
        s as f64
    });
    let mut c1 = 1_000_000i64;
    let (counter1, _) = day_of(|_| {
        c1 += 1234 + rng.range(-1, 1);
        c1 as f64
    });
    eprintln!(
        "heap bytes for 24 h: gauge {gauge}, counter(+-3) {counter}, constant {constant}, \
         drifter {drifter}, steady counter {steady}, counter(+-1) {counter1}"
    );
    // Measured: 1519, 828, 190, 549, 250, 585. A counter with +-3 jitter carries 2.8 bits
    // of entropy a minute (505 B a day) before any framing, hence its budget.
    assert!(gauge <= 1_600, "gauge {gauge}");
    assert!(counter <= 900, "counter {counter}");
    assert!(constant <= 220, "constant {constant}");
    assert!(drifter <= 650, "drifter {drifter}");
    assert!(steady <= 300, "steady counter {steady}");
    assert!(counter1 <= 700, "counter +-1 {counter1}");
}
