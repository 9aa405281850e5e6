//! Helpers shared by the integration tests: alarms over one-minute periods and series drawn
//! from CloudWatch's notation (`0` not breaching, `X` breaching, `-` missing, oldest first).

use vigil_alarm::{
    AlarmInstance, AlarmSpec, Comparison, Series, State, Statistic, TreatMissingData,
};

pub const MINUTE: i64 = 60_000;

/// 2026-11-23T05:55:00Z, a minute boundary.
pub const T0: i64 = 1_795_413_300_000;

/// Value of a breaching (`X`) and of a not-breaching (`0`) period for [`spec`].
pub const BREACHING: f64 = 100.0;
pub const NOT_BREACHING: f64 = 10.0;

/// `M` of `N` over one-minute periods, `Maximum > 50`.
pub fn spec(m: u32, n: u32, treat: TreatMissingData) -> AlarmSpec {
    AlarmSpec {
        name: "test".into(),
        statistic: Statistic::Maximum,
        period_secs: 60,
        evaluation_periods: n,
        datapoints_to_alarm: m,
        comparison: Comparison::GreaterThanThreshold,
        threshold: 50.0,
        treat_missing_data: treat,
    }
}

/// A series holding `pattern`'s periods, the first starting at [`T0`], and the time at
/// which its last period has just ended. Each present period gets one point in its middle.
pub fn series(pattern: &str, spec: &AlarmSpec) -> (Series, i64) {
    let mut series = Series::new(spec.required_retention_secs());
    let mut start = T0;
    for symbol in pattern.split_whitespace() {
        let value = match symbol {
            "X" => Some(BREACHING),
            "0" => Some(NOT_BREACHING),
            "-" => None,
            other => panic!("bad pattern symbol {other:?} in {pattern:?}"),
        };
        if let Some(value) = value {
            series.push(start + 30_000, value).unwrap();
        }
        start += MINUTE;
    }
    (series, start)
}

/// An instance in `state`. `INSUFFICIENT_DATA` is a new alarm's state; the others are
/// restored from a start long before any test time, so no restart grace applies.
pub fn instance(state: State) -> AlarmInstance {
    match state {
        State::InsufficientData => AlarmInstance::new(0),
        other => AlarmInstance::restored(other, 0, 0),
    }
}

/// The state after one evaluation of `pattern` from `initial`, checking that a transition is
/// reported exactly when the state changes.
pub fn judge(spec: &AlarmSpec, pattern: &str, initial: State) -> State {
    let (series, now) = series(pattern, spec);
    let mut alarm = instance(initial);
    let transition = alarm.evaluate(spec, &series, now);
    match &transition {
        Some(t) => {
            assert_eq!((t.previous, t.state), (initial, alarm.state));
            assert_ne!(t.state, initial, "a transition must change the state");
            assert_eq!(t.at_ms, now);
            assert_eq!(alarm.state_since_ms, now);
        }
        None => assert_eq!(alarm.state, initial, "state changed without a transition"),
    }
    alarm.state
}
