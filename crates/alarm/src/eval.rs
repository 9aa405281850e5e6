//! Judging one alarm over one series: periods → datapoints → M of N → state.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};

use crate::reason;
use crate::series::{Sample, Series};
use crate::spec::{AlarmSpec, Statistic, TreatMissingData};

/// An alarm's state: the one definition, shared with events and incidents.
pub use vigil_core::AlarmState as State;

/// The datapoint of one period: the statistic over the raw points stamped in
/// `[period_start_ms, period_start_ms + period)`, or `None` when the period had no point.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Datapoint {
    pub period_start_ms: i64,
    pub value: Option<f64>,
    /// How many raw points the period held (0 when missing).
    pub sample_count: u32,
}

/// A state change, with everything CloudWatch would report about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    pub previous: State,
    pub state: State,
    /// The evaluation time that decided it (the `now_ms` given to `evaluate`).
    pub at_ms: i64,
    /// CloudWatch's `StateReason`, e.g. `Threshold Crossed: 3 out of the last 3 datapoints
    /// [91.2 (23/11/26 06:00:00), …] were greater than the threshold (80.0) (minimum 3
    /// datapoints for OK -> ALARM transition).`
    pub reason: String,
    /// CloudWatch's `StateReasonData`: `version`, `queryDate`, `startDate`, `statistic`,
    /// `period`, `recentDatapoints`, `threshold`, `evaluatedDatapoints`.
    pub reason_data: serde_json::Value,
    /// The N datapoints the decision rests on, newest first. Missing periods that were
    /// counted (filled in per `treat_missing_data`, or simply absent) have `value: None`.
    pub evaluated: Vec<Datapoint>,
}

/// The evaluated state of one alarm instance (one alarm × one series).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmInstance {
    pub state: State,
    /// When the instance entered `state` (Unix milliseconds).
    pub state_since_ms: i64,
    /// The process start of a restored instance: missing data cannot change its state until
    /// one evaluation window has passed since then. `None` for a new instance.
    restarted_ms: Option<i64>,
}

/// Where a judgement landed before it is compared with the current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Keep whatever the current state is (`ignore`, or a breach too young to alarm on).
    Keep,
    Go(State),
}

/// The alarm's window shape, clamped so that an unvalidated spec cannot panic or loop for
/// ages: at least one period of at least one second, N within the one-day window, 1 ≤ M ≤ N.
#[derive(Debug, Clone, Copy)]
struct Shape {
    period_ms: i64,
    n: u32,
    m: u32,
    range: u32,
}

impl Shape {
    fn of(spec: &AlarmSpec) -> Shape {
        let period_secs = spec.period_secs.max(1);
        let max_n = u32::try_from(AlarmSpec::MAX_WINDOW_SECS / u64::from(period_secs))
            .unwrap_or(u32::MAX)
            .max(1);
        let n = spec.evaluation_periods.clamp(1, max_n);
        Shape {
            period_ms: i64::from(period_secs) * 1000,
            n,
            m: spec.datapoints_to_alarm.clamp(1, n),
            range: n + AlarmSpec::EXTRA_RANGE_PERIODS,
        }
    }

    /// The end (exclusive) of the newest period that ended at or before `now_ms`. Periods
    /// are aligned to multiples of the period since the epoch, as CloudWatch aligns them.
    fn newest_end(self, now_ms: i64) -> i64 {
        now_ms.div_euclid(self.period_ms) * self.period_ms
    }

    fn start_of(self, newest_end: i64, age: u32) -> i64 {
        newest_end.saturating_sub(i64::from(age) * self.period_ms)
    }
}

/// What one walk over the evaluation range learnt, newest period first, without keeping
/// the datapoints: enough to decide, so that the common no-change case allocates nothing.
#[derive(Debug, Default)]
struct Tally {
    /// Periods with data seen so far (the walk stops at N).
    real: u32,
    /// Breaching among the first (most recent) N periods with data.
    breaching_recent: u32,
    /// Whether any period with data in the range was not breaching.
    any_not_breaching: bool,
    /// Age (1 = newest period) of the oldest breaching period with data.
    oldest_breaching_age: u32,
}

thread_local! {
    /// The values of one period, for percentiles. Reused across calls so that evaluation
    /// does not allocate once it has seen its largest period.
    static PERIOD_VALUES: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

impl AlarmInstance {
    /// A new instance: `INSUFFICIENT_DATA` since `now_ms`, as a new CloudWatch alarm starts.
    pub fn new(now_ms: i64) -> AlarmInstance {
        AlarmInstance {
            state: State::InsufficientData,
            state_since_ms: now_ms,
            restarted_ms: None,
        }
    }

    /// An instance brought back after a restart, in `state` since `since_ms`, in a process
    /// that started at `started_ms`.
    ///
    /// The process kept no raw points across the restart, so for a while every series looks
    /// empty although nothing happened to the metric. Until one evaluation window
    /// (`period_secs × evaluation_periods`) has passed since `started_ms`, an evaluation
    /// that finds **no** datapoint in its range keeps the current state, whatever
    /// `treat_missing_data` says: missing data can neither push the instance to
    /// `INSUFFICIENT_DATA` nor fill it into `ALARM`/`OK`. Real data still moves it between
    /// `OK` and `ALARM` at once. After the window the usual rules apply.
    pub fn restored(state: State, since_ms: i64, started_ms: i64) -> AlarmInstance {
        AlarmInstance {
            state,
            state_since_ms: since_ms,
            restarted_ms: Some(started_ms),
        }
    }

    /// Judges the alarm at `now_ms` over the periods that ended at or before `now_ms`, and
    /// moves to the resulting state. Returns the transition when the state changed.
    ///
    /// Cost: one binary search plus one pass over the points in the evaluation range
    /// (stopping early once N periods with data are found); for percentiles the values of
    /// each period are selected in a reused buffer. Nothing is allocated unless the state
    /// changes.
    pub fn evaluate(
        &mut self,
        spec: &AlarmSpec,
        series: &Series,
        now_ms: i64,
    ) -> Option<Transition> {
        let shape = Shape::of(spec);
        let newest_end = shape.newest_end(now_ms);
        let tally = PERIOD_VALUES
            .with_borrow_mut(|values| tally(spec, shape, series.points(), newest_end, values));
        let target = match verdict(&tally, shape, spec.treat_missing_data) {
            Verdict::Keep => return None,
            Verdict::Go(state) => state,
        };
        if target == self.state || (tally.real == 0 && self.in_restart_grace(shape, now_ms)) {
            return None;
        }
        let evaluated = PERIOD_VALUES
            .with_borrow_mut(|values| evaluated(spec, shape, series.points(), newest_end, values));
        let transition = Transition {
            previous: self.state,
            state: target,
            at_ms: now_ms,
            reason: reason::text(spec, shape.n, shape.m, self.state, target, &evaluated),
            reason_data: reason::data(spec, now_ms, &evaluated),
            evaluated,
        };
        self.state = target;
        self.state_since_ms = now_ms;
        Some(transition)
    }

    fn in_restart_grace(&self, shape: Shape, now_ms: i64) -> bool {
        let window_ms = i64::from(shape.n) * shape.period_ms;
        self.restarted_ms
            .is_some_and(|started| now_ms < started.saturating_add(window_ms))
    }
}

/// CloudWatch's decision ("How alarm state is evaluated when data is missing"), over an
/// evaluation range of N + 2 periods:
///
/// 1. At least N periods with data: the most recent N of them are evaluated; the
///    treatment of missing data does not matter. ALARM if at least M breach, else OK.
/// 2. No period with data: `missing` → INSUFFICIENT_DATA, `ignore` → keep the state,
///    `breaching` → ALARM, `notBreaching` → OK.
/// 3. Some, fewer than N: every period with data in the range is evaluated, plus as few
///    missing periods as make N.
///    - `breaching` / `notBreaching`: the missing ones count as breaching / not breaching.
///    - `missing` / `ignore`: the missing ones count as neither. ALARM if at least M
///      periods with data breach. Otherwise, if one period with data does not breach, OK.
///      Otherwise every period with data breaches, too few of them for M: this is
///      CloudWatch's "premature alarm" case. When the oldest breaching period is at least
///      M periods old, `missing` goes to ALARM ("the alarm goes into ALARM state even if the
///      total number of datapoints available is lower than M") and `ignore` keeps its state
///      (CloudWatch's table: "Retain current state"). When it is younger, the alarm "does not
///      go immediately into ALARM state"; going to OK on nothing but breaching data would be
///      a false recovery, so it keeps its state (a new alarm stays INSUFFICIENT_DATA, as
///      the 2018 edition of CloudWatch's table shows for `- - - - X`).
fn verdict(tally: &Tally, shape: Shape, treat: TreatMissingData) -> Verdict {
    let alarm_if = |breaching: bool| Verdict::Go(if breaching { State::Alarm } else { State::Ok });
    if tally.real >= shape.n {
        return alarm_if(tally.breaching_recent >= shape.m);
    }
    if tally.real == 0 {
        return match treat {
            TreatMissingData::Missing => Verdict::Go(State::InsufficientData),
            TreatMissingData::Ignore => Verdict::Keep,
            TreatMissingData::Breaching => Verdict::Go(State::Alarm),
            TreatMissingData::NotBreaching => Verdict::Go(State::Ok),
        };
    }
    // Fewer than N periods with data, so the walk covered the whole range and
    // `breaching_recent` counts every breaching period in it.
    let filled = shape.n - tally.real;
    match treat {
        TreatMissingData::Breaching => alarm_if(tally.breaching_recent + filled >= shape.m),
        TreatMissingData::NotBreaching => alarm_if(tally.breaching_recent >= shape.m),
        TreatMissingData::Missing | TreatMissingData::Ignore => {
            if tally.breaching_recent >= shape.m {
                Verdict::Go(State::Alarm)
            } else if tally.any_not_breaching {
                Verdict::Go(State::Ok)
            } else if tally.oldest_breaching_age >= shape.m && treat == TreatMissingData::Missing {
                Verdict::Go(State::Alarm)
            } else {
                Verdict::Keep
            }
        }
    }
}

fn tally(
    spec: &AlarmSpec,
    shape: Shape,
    points: &VecDeque<Sample>,
    newest_end: i64,
    values: &mut Vec<f64>,
) -> Tally {
    let mut tally = Tally::default();
    walk_periods(
        spec.statistic,
        shape,
        points,
        newest_end,
        values,
        |age, datapoint| {
            let Some(value) = datapoint.value else {
                return ControlFlow::Continue(());
            };
            tally.real += 1;
            if spec.comparison.breaches(value, spec.threshold) {
                tally.breaching_recent += 1;
                tally.oldest_breaching_age = age;
            } else {
                tally.any_not_breaching = true;
            }
            // The most recent N periods with data decide alone; older ones do not matter.
            if tally.real == shape.n {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
    );
    tally
}

/// The N datapoints a decision rests on, newest first: the most recent N periods with data
/// when there are that many; otherwise every period with data in the range plus the most
/// recent missing periods, as few as make N ("CloudWatch uses missing data points only as
/// few times as possible").
fn evaluated(
    spec: &AlarmSpec,
    shape: Shape,
    points: &VecDeque<Sample>,
    newest_end: i64,
    values: &mut Vec<f64>,
) -> Vec<Datapoint> {
    let mut range = Vec::with_capacity(shape.range as usize);
    walk_periods(
        spec.statistic,
        shape,
        points,
        newest_end,
        values,
        |_, datapoint| {
            range.push(datapoint);
            ControlFlow::Continue(())
        },
    );
    let real = range.iter().filter(|d| d.value.is_some()).count();
    let n = shape.n as usize;
    let mut missing_to_use = n.saturating_sub(real);
    let mut chosen = Vec::with_capacity(n);
    for datapoint in range {
        if chosen.len() == n {
            break;
        }
        if datapoint.value.is_some() {
            chosen.push(datapoint);
        } else if missing_to_use > 0 {
            missing_to_use -= 1;
            chosen.push(datapoint);
        }
    }
    chosen
}

/// Visits the periods of the evaluation range newest first, with their age (1 = the newest
/// period that ended at or before now) and datapoint, until `visit` breaks. The points are
/// sorted, so one binary search finds the end of the range and each period is the run of
/// points just before the previous one.
fn walk_periods(
    statistic: Statistic,
    shape: Shape,
    points: &VecDeque<Sample>,
    newest_end: i64,
    values: &mut Vec<f64>,
    mut visit: impl FnMut(u32, Datapoint) -> ControlFlow<()>,
) {
    let mut cursor = points.partition_point(|s| s.timestamp_ms < newest_end);
    for age in 1..=shape.range {
        let start = shape.start_of(newest_end, age);
        let mut aggregate = Aggregate::new();
        values.clear();
        while let Some(sample) = cursor.checked_sub(1).and_then(|i| points.get(i)) {
            if sample.timestamp_ms < start {
                break;
            }
            aggregate.add(sample.value);
            if matches!(statistic, Statistic::Percentile(_)) {
                values.push(sample.value);
            }
            cursor -= 1;
        }
        let datapoint = Datapoint {
            period_start_ms: start,
            value: aggregate.value(statistic, values),
            sample_count: aggregate.count,
        };
        if visit(age, datapoint).is_break() {
            return;
        }
    }
}

/// Running aggregate of one period's values.
struct Aggregate {
    count: u32,
    sum: f64,
    min: f64,
    max: f64,
}

impl Aggregate {
    fn new() -> Aggregate {
        Aggregate {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    fn add(&mut self, value: f64) {
        self.count += 1;
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    /// The statistic, or `None` for a period without points. `values` holds the period's
    /// values when the statistic is a percentile.
    fn value(&self, statistic: Statistic, values: &mut [f64]) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        Some(match statistic {
            Statistic::Average => self.sum / f64::from(self.count),
            Statistic::Sum => self.sum,
            Statistic::Minimum => self.min,
            Statistic::Maximum => self.max,
            Statistic::SampleCount => f64::from(self.count),
            Statistic::Percentile(p) => nearest_rank(values, p),
        })
    }
}

/// The nearest-rank percentile of a non-empty set: the value of rank ⌈p/100 × n⌉ (at least
/// 1) in ascending order. Found by selection, O(n), reordering `values`.
fn nearest_rank(values: &mut [f64], p: f64) -> f64 {
    let n = values.len();
    let exact = p / 100.0 * n as f64;
    // p99.9 × 1000 is 999.0000000000001 in floating point; its rank is 999, not 1000.
    let nearest = exact.round();
    let rank = if (exact - nearest).abs() <= 1e-9 * nearest.max(1.0) {
        nearest
    } else {
        exact.ceil()
    };
    // `as` saturates (NaN → 0), and the clamp keeps the index inside the set.
    let index = (rank as usize).clamp(1, n) - 1;
    let (_, value, _) = values.select_nth_unstable_by(index, f64::total_cmp);
    *value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_on_one_to_a_hundred() {
        let set: Vec<f64> = (1..=100).map(f64::from).collect();
        for (p, expected) in [
            (0.0, 1.0),
            (1.0, 1.0),
            (10.5, 11.0),
            (50.0, 50.0),
            (99.0, 99.0),
            (99.9, 100.0),
            (100.0, 100.0),
        ] {
            assert_eq!(nearest_rank(&mut set.clone(), p), expected, "p{p}");
        }
    }

    #[test]
    fn nearest_rank_is_not_fooled_by_float_products() {
        let mut set: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(nearest_rank(&mut set, 99.9), 999.0);
    }

    #[test]
    fn periods_align_to_the_epoch_even_before_it() {
        let shape = Shape::of(&AlarmSpec {
            name: "a".into(),
            statistic: Statistic::Average,
            period_secs: 60,
            evaluation_periods: 1,
            datapoints_to_alarm: 1,
            comparison: crate::Comparison::GreaterThanThreshold,
            threshold: 0.0,
            treat_missing_data: TreatMissingData::Missing,
        });
        assert_eq!(shape.newest_end(59_999), 0);
        assert_eq!(shape.newest_end(60_000), 60_000);
        assert_eq!(shape.newest_end(-1), -60_000);
    }

    #[test]
    fn an_invalid_spec_is_clamped_not_panicked_on() {
        let shape = Shape::of(&AlarmSpec {
            name: String::new(),
            statistic: Statistic::Percentile(f64::NAN),
            period_secs: 0,
            evaluation_periods: u32::MAX,
            datapoints_to_alarm: 0,
            comparison: crate::Comparison::GreaterThanThreshold,
            threshold: f64::NAN,
            treat_missing_data: TreatMissingData::Missing,
        });
        assert_eq!(
            (shape.period_ms, shape.n, shape.m, shape.range),
            (1000, 86_400, 1, 86_402)
        );
    }
}
