//! State reason text and reason data, compared whole.

use serde_json::json;
use vigil_alarm::TreatMissingData::{self, Breaching, Missing, NotBreaching};
use vigil_alarm::{AlarmInstance, AlarmSpec, Comparison, Series, State, Statistic, Transition};

use crate::common::{instance, series, spec, MINUTE, T0};

/// 2026-11-23T05:58:00Z
const AT_0558: i64 = 1_795_413_480_000;

/// Evaluates `points` (timestamp, value) at `now` from `start`, expecting a transition.
fn transition(spec: &AlarmSpec, points: &[(i64, f64)], start: State, now: i64) -> Transition {
    let mut series = Series::new(spec.required_retention_secs());
    for &(at, value) in points {
        series.push(at, value).unwrap();
    }
    instance(start).evaluate(spec, &series, now).unwrap()
}

fn pattern_transition(
    m: u32,
    n: u32,
    treat: TreatMissingData,
    pattern: &str,
    start: State,
) -> Transition {
    let spec = spec(m, n, treat);
    let (series, now) = series(pattern, &spec);
    instance(start).evaluate(&spec, &series, now).unwrap()
}

fn cpu_spec() -> AlarmSpec {
    AlarmSpec {
        name: "cpu-high".into(),
        statistic: Statistic::Average,
        period_secs: 60,
        evaluation_periods: 3,
        datapoints_to_alarm: 3,
        comparison: Comparison::GreaterThanThreshold,
        threshold: 80.0,
        treat_missing_data: Missing,
    }
}

#[test]
fn three_of_three_into_alarm_text_and_data() {
    let t = transition(
        &cpu_spec(),
        &[
            (AT_0558 + 1_000, 86.0),
            (AT_0558 + 31_000, 90.0),
            (AT_0558 + MINUTE + 1_000, 90.1),
            (AT_0558 + 2 * MINUTE + 1_000, 91.2),
        ],
        State::Ok,
        AT_0558 + 3 * MINUTE + 250,
    );
    assert_eq!(
        t.reason,
        "Threshold Crossed: 3 out of the last 3 datapoints [91.2 (23/11/26 06:00:00), 90.1 \
         (23/11/26 05:59:00), 88.0 (23/11/26 05:58:00)] were greater than the threshold (80.0) \
         (minimum 3 datapoints for OK -> ALARM transition)."
    );
    assert_eq!(
        t.reason_data,
        json!({
            "version": "1.0",
            "queryDate": "2026-11-23T06:01:00.250+0000",
            "startDate": "2026-11-23T05:58:00.000+0000",
            "statistic": "Average",
            "period": 60,
            "recentDatapoints": [88.0, 90.1, 91.2],
            "threshold": 80.0,
            "evaluatedDatapoints": [
                {"timestamp": "2026-11-23T06:00:00.000+0000", "sampleCount": 1.0, "value": 91.2},
                {"timestamp": "2026-11-23T05:59:00.000+0000", "sampleCount": 1.0, "value": 90.1},
                {"timestamp": "2026-11-23T05:58:00.000+0000", "sampleCount": 2.0, "value": 88.0}
            ]
        })
    );
}

#[test]
fn one_of_one_recovery_text() {
    // 2026-10-01T13:46:00Z
    let at_1346 = 1_790_862_360_000;
    let spec = AlarmSpec {
        datapoints_to_alarm: 1,
        evaluation_periods: 1,
        threshold: 50.0,
        ..cpu_spec()
    };
    let t = transition(
        &spec,
        &[(at_1346 + 42_000, 0.0666851903306472)],
        State::Alarm,
        at_1346 + MINUTE,
    );
    assert_eq!(
        t.reason,
        "Threshold Crossed: 1 out of the last 1 datapoints [0.0666851903306472 (01/10/26 \
         13:46:00)] was not greater than the threshold (50.0) (minimum 1 datapoint for ALARM \
         -> OK transition)."
    );
}

/// Shaped like a real CloudWatch notification: 3 out of 5, the OK side needs N − M + 1 = 3
/// not-breaching datapoints and lists only those, newest first, skipping the others.
#[test]
fn three_of_five_recovery_lists_the_not_breaching_datapoints() {
    // 2021-12-21T06:41:00Z
    let at_0641 = 1_640_068_860_000;
    let spec = AlarmSpec {
        statistic: Statistic::Sum,
        evaluation_periods: 5,
        datapoints_to_alarm: 3,
        threshold: 0.0,
        ..cpu_spec()
    };
    let values = [1.0, 0.0, 1.0, 0.0, 0.0];
    let points: Vec<(i64, f64)> = (0..5_i64)
        .map(|i| (at_0641 + i * MINUTE + 5_000, values[i as usize]))
        .collect();
    let t = transition(&spec, &points, State::Alarm, at_0641 + 5 * MINUTE + 11_000);
    assert_eq!(
        t.reason,
        "Threshold Crossed: 3 out of the last 5 datapoints [0.0 (21/12/21 06:45:00), 0.0 \
         (21/12/21 06:44:00), 0.0 (21/12/21 06:42:00)] were not greater than the threshold \
         (0.0) (minimum 3 datapoints for ALARM -> OK transition)."
    );
}

#[test]
fn insufficient_data_text_and_data() {
    let t = pattern_transition(3, 3, Missing, "- - - - -", State::Ok);
    assert_eq!(t.state, State::InsufficientData);
    assert_eq!(t.reason, "Insufficient Data: 3 datapoints were unknown.");
    assert_eq!(
        t.reason_data,
        json!({
            "version": "1.0",
            "queryDate": "2026-11-23T06:00:00.000+0000",
            "statistic": "Maximum",
            "period": 60,
            "recentDatapoints": [],
            "threshold": 50.0
        })
    );
    assert_eq!(t.evaluated.len(), 3);
    assert!(t
        .evaluated
        .iter()
        .all(|d| d.value.is_none() && d.sample_count == 0));

    let t = pattern_transition(1, 1, Missing, "-", State::Alarm);
    assert_eq!(t.reason, "Insufficient Data: 1 datapoint was unknown.");
}

#[test]
fn all_missing_filled_text() {
    let t = pattern_transition(3, 3, Breaching, "- - - - -", State::Ok);
    assert_eq!(
        t.reason,
        "Threshold Crossed: no datapoints were received for 3 periods and 3 missing datapoints \
         were treated as [Breaching]."
    );
    let t = pattern_transition(1, 1, NotBreaching, "-", State::Alarm);
    assert_eq!(
        t.reason,
        "Threshold Crossed: no datapoints were received for 1 period and 1 missing datapoint \
         was treated as [NonBreaching]."
    );
}

/// CloudWatch does not document the wording when real and filled datapoints are evaluated
/// together; vigil names the real ones as usual and adds the filled ones.
#[test]
fn partly_filled_text_and_data() {
    let t = pattern_transition(3, 3, Breaching, "- - X - -", State::Ok);
    assert_eq!(
        t.reason,
        "Threshold Crossed: 1 out of the last 3 datapoints [100.0 (23/11/26 05:57:00)] was \
         greater than the threshold (50.0) and 2 missing datapoints were treated as \
         [Breaching] (minimum 3 datapoints for OK -> ALARM transition)."
    );

    let t = pattern_transition(2, 3, Breaching, "- - - - 0", State::InsufficientData);
    assert_eq!(
        t.reason,
        "Threshold Crossed: 2 missing datapoints were treated as [Breaching] (minimum 2 \
         datapoints for INSUFFICIENT_DATA -> ALARM transition)."
    );
    assert_eq!(
        t.reason_data,
        json!({
            "version": "1.0",
            "queryDate": "2026-11-23T06:00:00.000+0000",
            "startDate": "2026-11-23T05:57:00.000+0000",
            "statistic": "Maximum",
            "period": 60,
            "recentDatapoints": [10.0],
            "threshold": 50.0,
            "evaluatedDatapoints": [
                {"timestamp": "2026-11-23T05:59:00.000+0000", "sampleCount": 1.0, "value": 10.0},
                {"timestamp": "2026-11-23T05:58:00.000+0000"},
                {"timestamp": "2026-11-23T05:57:00.000+0000"}
            ]
        })
    );

    let t = pattern_transition(3, 3, NotBreaching, "- - - - X", State::Alarm);
    assert_eq!(
        t.reason,
        "Threshold Crossed: 2 missing datapoints were treated as [NonBreaching] (minimum 1 \
         datapoint for ALARM -> OK transition)."
    );
}

#[test]
fn premature_alarm_text() {
    let t = pattern_transition(3, 3, Missing, "- - X - -", State::Ok);
    assert_eq!(
        t.reason,
        "Threshold Crossed: 1 out of the last 3 datapoints [100.0 (23/11/26 05:57:00)] was \
         greater than the threshold (50.0) (minimum 3 datapoints for OK -> ALARM transition)."
    );
    assert_eq!(t.evaluated.len(), 3);
}

#[test]
fn operator_words_and_large_numbers() {
    let cases = [
        (
            Comparison::GreaterThanOrEqualToThreshold,
            2e7,
            State::InsufficientData,
            "Threshold Crossed: 1 out of the last 1 datapoints [2.0E7 (23/11/26 05:55:00)] was \
             greater than or equal to the threshold (1.0E7) (minimum 1 datapoint for \
             INSUFFICIENT_DATA -> ALARM transition).",
        ),
        (
            Comparison::LessThanThreshold,
            -3.5,
            State::Ok,
            "Threshold Crossed: 1 out of the last 1 datapoints [-3.5 (23/11/26 05:55:00)] was \
             less than the threshold (1.0E7) (minimum 1 datapoint for OK -> ALARM transition).",
        ),
        (
            Comparison::LessThanOrEqualToThreshold,
            2e7,
            State::Alarm,
            "Threshold Crossed: 1 out of the last 1 datapoints [2.0E7 (23/11/26 05:55:00)] was \
             not less than or equal to the threshold (1.0E7) (minimum 1 datapoint for ALARM -> \
             OK transition).",
        ),
    ];
    for (comparison, value, start, want) in cases {
        let spec = AlarmSpec {
            comparison,
            threshold: 1e7,
            ..spec(1, 1, Missing)
        };
        let t = transition(&spec, &[(T0 + 1, value)], start, T0 + MINUTE);
        assert_eq!(t.reason, want);
    }
}

#[test]
fn a_transition_updates_the_instance() {
    let spec = spec(1, 1, Missing);
    let mut series = Series::new(spec.required_retention_secs());
    series.push(T0 + 1, 100.0).unwrap();
    let mut alarm = AlarmInstance::new(T0);
    let t = alarm.evaluate(&spec, &series, T0 + MINUTE + 5).unwrap();
    assert_eq!(
        (t.previous, t.state, t.at_ms),
        (State::InsufficientData, State::Alarm, T0 + MINUTE + 5)
    );
    assert_eq!(
        (alarm.state, alarm.state_since_ms),
        (State::Alarm, T0 + MINUTE + 5)
    );
}
