//! Throughput of the alarm engine on one core.
//!
//! ```text
//! cargo run --release -p vigil-alarm --example alarm_bench
//! ```
//!
//! 1. Samples pushed per second into 10 000 series, round-robin, in time order (the
//!    shape of agents reporting every second), with retention pruning running.
//! 2. One tick over 400 000 alarm instances, each over its own series holding the last
//!    5 minutes of 10-second samples; 60 s period, 3 of 3. The first tick moves every new
//!    instance out of INSUFFICIENT_DATA (a transition each, with reason text and JSON); the
//!    following ticks are the steady state (no change). Once for Average, once for p99.
//!
//! Targets: ≥ 1 M samples/s; < 1 s per 400 000-instance tick.

use std::hint::black_box;
use std::time::Instant;

use vigil_alarm::{AlarmInstance, AlarmSpec, Comparison, Series, Statistic, TreatMissingData};

const PUSH_SERIES: usize = 10_000;
const PUSH_SAMPLES: usize = 20_000_000;
const INSTANCES: usize = 400_000;
/// 2026-11-23T06:00:00Z, a minute boundary.
const NOW: i64 = 1_795_413_600_000;

fn spec(statistic: Statistic) -> AlarmSpec {
    AlarmSpec {
        name: "bench".into(),
        statistic,
        period_secs: 60,
        evaluation_periods: 3,
        datapoints_to_alarm: 3,
        comparison: Comparison::GreaterThanThreshold,
        threshold: 80.0,
        treat_missing_data: TreatMissingData::Missing,
    }
}

/// A cheap deterministic value stream in 0..100, so that runs are comparable.
fn value(i: u64) -> f64 {
    (i.wrapping_mul(2_654_435_761) % 10_000) as f64 / 100.0
}

fn bench_push() {
    let retention = spec(Statistic::Average).required_retention_secs();
    let mut all: Vec<Series> = (0..PUSH_SERIES).map(|_| Series::new(retention)).collect();
    let rounds = PUSH_SAMPLES / PUSH_SERIES;
    let started = Instant::now();
    let mut refused = 0_u64;
    for round in 0..rounds {
        let at = NOW + round as i64 * 1_000;
        for (i, series) in all.iter_mut().enumerate() {
            if series
                .push(at, value((round * PUSH_SERIES + i) as u64))
                .is_err()
            {
                refused += 1;
            }
        }
    }
    let elapsed = started.elapsed();
    let held: usize = all.iter().map(Series::len).sum();
    println!(
        "push: {} samples into {PUSH_SERIES} series in {:.3} s = {:.1} M samples/s \
         ({held} held after pruning, {refused} refused)",
        rounds * PUSH_SERIES,
        elapsed.as_secs_f64(),
        (rounds * PUSH_SERIES) as f64 / elapsed.as_secs_f64() / 1e6,
    );
}

fn bench_ticks() {
    let average = spec(Statistic::Average);
    let p99 = spec(Statistic::Percentile(99.0));
    let build = Instant::now();
    // The last 5 minutes of 10-second samples before NOW: 30 points per series.
    let all: Vec<Series> = (0..INSTANCES)
        .map(|s| {
            let mut series = Series::new(average.required_retention_secs());
            for k in 0..30_i64 {
                let at = NOW - 300_000 + k * 10_000 + (s as i64 % 10_000);
                // Raw points fail only on NaN/inf or retention, neither possible here.
                let _ = series.push(at, value((s * 30) as u64 + k as u64));
            }
            series
        })
        .collect();
    println!(
        "setup: {INSTANCES} series × 30 points in {:.2} s",
        build.elapsed().as_secs_f64()
    );

    for (name, spec) in [("Average", &average), ("p99", &p99)] {
        let mut instances: Vec<AlarmInstance> =
            (0..INSTANCES).map(|_| AlarmInstance::new(NOW)).collect();
        for (label, now) in [
            ("first tick, every instance leaves INSUFFICIENT_DATA", NOW),
            ("steady tick", NOW + 10_000),
            ("steady tick", NOW + 20_000),
        ] {
            let started = Instant::now();
            let mut transitions = 0_usize;
            for (instance, series) in instances.iter_mut().zip(&all) {
                if let Some(t) = instance.evaluate(spec, series, now) {
                    transitions += 1;
                    black_box(t);
                }
            }
            let elapsed = started.elapsed();
            println!(
                "{name}, {label}: {INSTANCES} instances in {:.1} ms = {:.2} M evaluations/s, \
                 {transitions} transitions",
                elapsed.as_secs_f64() * 1e3,
                INSTANCES as f64 / elapsed.as_secs_f64() / 1e6,
            );
        }
    }
}

fn main() {
    bench_push();
    bench_ticks();
}
