//! vigil's restart rule: for one evaluation window after the process start, missing data
//! alone cannot move a restored alarm.

use vigil_alarm::TreatMissingData::{Breaching, Missing, NotBreaching};
use vigil_alarm::{AlarmInstance, Series, State};

use crate::common::{spec, MINUTE, T0};

/// The process started at T0; 3 × 60 s windows end at T0 + 3 min.
const STARTED: i64 = T0;
const WINDOW: i64 = 3 * MINUTE;

#[test]
fn restored_alarm_without_data_waits_one_window_before_insufficient_data() {
    let spec = spec(3, 3, Missing);
    let series = Series::new(spec.required_retention_secs());
    let mut alarm = AlarmInstance::restored(State::Alarm, T0 - 3_600_000, STARTED);
    for now in [STARTED, STARTED + MINUTE, STARTED + WINDOW - 1] {
        assert_eq!(
            alarm.evaluate(&spec, &series, now),
            None,
            "at +{} ms",
            now - STARTED
        );
        assert_eq!(alarm.state, State::Alarm);
        assert_eq!(alarm.state_since_ms, T0 - 3_600_000);
    }
    let t = alarm.evaluate(&spec, &series, STARTED + WINDOW).unwrap();
    assert_eq!(
        (t.previous, t.state),
        (State::Alarm, State::InsufficientData)
    );
    assert_eq!(t.reason, "Insufficient Data: 3 datapoints were unknown.");
}

#[test]
fn missing_data_cannot_fill_a_restored_alarm_into_another_state_during_the_window() {
    let series = Series::new(600);
    for (treat, from, to) in [
        (Breaching, State::Ok, State::Alarm),
        (NotBreaching, State::Alarm, State::Ok),
    ] {
        let spec = spec(3, 3, treat);
        let mut alarm = AlarmInstance::restored(from, 0, STARTED);
        assert_eq!(alarm.evaluate(&spec, &series, STARTED + WINDOW - 1), None);
        let t = alarm.evaluate(&spec, &series, STARTED + WINDOW).unwrap();
        assert_eq!(t.state, to, "{treat}");
    }
}

#[test]
fn real_data_moves_a_restored_alarm_at_once() {
    let spec = spec(1, 1, Missing);
    let mut series = Series::new(spec.required_retention_secs());
    series.push(STARTED + 10_000, 10.0).unwrap();
    let mut alarm = AlarmInstance::restored(State::Alarm, 0, STARTED);
    let t = alarm.evaluate(&spec, &series, STARTED + MINUTE).unwrap();
    assert_eq!((t.previous, t.state), (State::Alarm, State::Ok));
    series.push(STARTED + MINUTE + 10_000, 100.0).unwrap();
    let t = alarm
        .evaluate(&spec, &series, STARTED + 2 * MINUTE)
        .unwrap();
    assert_eq!(t.state, State::Alarm);
}

#[test]
fn a_new_alarm_has_no_grace() {
    let spec = spec(3, 3, Breaching);
    let series = Series::new(spec.required_retention_secs());
    let mut alarm = AlarmInstance::new(STARTED);
    let t = alarm.evaluate(&spec, &series, STARTED).unwrap();
    assert_eq!(t.state, State::Alarm);
}
