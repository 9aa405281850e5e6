//! M of N, operators, statistics, sample handling and period alignment.

use vigil_alarm::{
    AlarmInstance, AlarmSpec, Comparison, Datapoint, SampleError, Series, State, Statistic,
    TreatMissingData,
};

use crate::common::{instance, judge, spec, MINUTE, T0};

#[test]
fn m_out_of_n() {
    // (M, N, pattern with every period present, expected state)
    let cases = [
        (1, 1, "X", State::Alarm),
        (1, 1, "0", State::Ok),
        (1, 1, "X 0", State::Ok),
        (2, 3, "X 0 X", State::Alarm),
        (2, 3, "0 X X", State::Alarm),
        (2, 3, "X 0 0", State::Ok),
        (2, 3, "X X 0 0 X", State::Ok),
        (3, 5, "X 0 X 0 X", State::Alarm),
        (3, 5, "0 X X 0 X", State::Alarm),
        (3, 5, "X X 0 X 0 0", State::Ok),
        (3, 3, "X X X", State::Alarm),
        (3, 3, "X X 0", State::Ok),
        (3, 3, "0 X X", State::Ok),
    ];
    for (m, n, pattern, want) in cases {
        for treat in [TreatMissingData::Missing, TreatMissingData::Breaching] {
            for start in [State::Ok, State::Alarm, State::InsufficientData] {
                let got = judge(&spec(m, n, treat), pattern, start);
                assert_eq!(got, want, "{m} of {n} `{pattern}` {treat} from {start}");
            }
        }
    }
}

fn one_of_one(comparison: Comparison, threshold: f64) -> AlarmSpec {
    AlarmSpec {
        comparison,
        threshold,
        ..spec(1, 1, TreatMissingData::Missing)
    }
}

/// The state after one minute holding one `value`, for a 1-of-1 alarm.
fn state_for(spec: &AlarmSpec, value: f64) -> State {
    let mut series = Series::new(spec.required_retention_secs());
    series.push(T0 + 1, value).unwrap();
    let mut alarm = AlarmInstance::new(T0);
    alarm.evaluate(spec, &series, T0 + MINUTE);
    alarm.state
}

#[test]
fn every_operator_on_both_sides_of_and_exactly_at_the_threshold() {
    use Comparison::*;
    let cases = [
        (GreaterThanThreshold, 79.9, State::Ok),
        (GreaterThanThreshold, 80.0, State::Ok),
        (GreaterThanThreshold, 80.1, State::Alarm),
        (GreaterThanOrEqualToThreshold, 79.9, State::Ok),
        (GreaterThanOrEqualToThreshold, 80.0, State::Alarm),
        (GreaterThanOrEqualToThreshold, 80.1, State::Alarm),
        (LessThanThreshold, 79.9, State::Alarm),
        (LessThanThreshold, 80.0, State::Ok),
        (LessThanThreshold, 80.1, State::Ok),
        (LessThanOrEqualToThreshold, 79.9, State::Alarm),
        (LessThanOrEqualToThreshold, 80.0, State::Alarm),
        (LessThanOrEqualToThreshold, 80.1, State::Ok),
    ];
    for (comparison, value, want) in cases {
        assert_eq!(
            state_for(&one_of_one(comparison, 80.0), value),
            want,
            "{value} {comparison} 80"
        );
    }
}

#[test]
fn nan_and_infinities_are_refused_and_not_counted() {
    let spec = AlarmSpec {
        statistic: Statistic::SampleCount,
        ..spec(1, 1, TreatMissingData::Missing)
    };
    let mut series = Series::new(spec.required_retention_secs());
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert!(matches!(
            series.push(T0 + 1_000, bad),
            Err(SampleError::NotFinite { .. })
        ));
    }
    assert!(series.is_empty());
    // Only refused values in the period: it is missing, so the new alarm stays
    // INSUFFICIENT_DATA.
    let mut alarm = AlarmInstance::new(T0);
    assert_eq!(alarm.evaluate(&spec, &series, T0 + MINUTE), None);
    // One good value among refused ones: a sample count of one.
    series.push(T0 + 2_000, 7.0).unwrap();
    assert!(series.push(T0 + 3_000, f64::NAN).is_err());
    let transition = alarm.evaluate(&spec, &series, T0 + MINUTE).unwrap();
    assert_eq!(
        transition.evaluated,
        [Datapoint {
            period_start_ms: T0,
            value: Some(1.0),
            sample_count: 1
        }]
    );
}

#[test]
fn out_of_order_points_land_in_their_period() {
    let spec = AlarmSpec {
        statistic: Statistic::Sum,
        ..spec(3, 3, TreatMissingData::Missing)
    };
    let mut series = Series::new(spec.required_retention_secs());
    // Newest period first, then the older ones, then a late point for the middle period
    // and one exactly on a period boundary (it belongs to the period it starts).
    series.push(T0 + 2 * MINUTE + 59_999, 100.0).unwrap();
    series.push(T0 + 10_000, 60.0).unwrap();
    series.push(T0 + MINUTE + 20_000, 30.0).unwrap();
    series.push(T0 + MINUTE + 5_000, 40.0).unwrap();
    series.push(T0 + 2 * MINUTE, 1.0).unwrap();
    let mut alarm = AlarmInstance::new(T0);
    let transition = alarm.evaluate(&spec, &series, T0 + 3 * MINUTE).unwrap();
    let sums: Vec<(i64, Option<f64>, u32)> = transition
        .evaluated
        .iter()
        .map(|d| (d.period_start_ms, d.value, d.sample_count))
        .collect();
    assert_eq!(
        sums,
        [
            (T0 + 2 * MINUTE, Some(101.0), 2),
            (T0 + MINUTE, Some(70.0), 2),
            (T0, Some(60.0), 1),
        ]
    );
    assert_eq!(transition.state, State::Alarm);
}

#[test]
fn a_repeated_timestamp_replaces_the_earlier_value() {
    let spec = AlarmSpec {
        statistic: Statistic::Sum,
        ..spec(1, 1, TreatMissingData::Missing)
    };
    let mut series = Series::new(spec.required_retention_secs());
    series.push(T0 + 1_000, 90.0).unwrap();
    series.push(T0 + 2_000, 5.0).unwrap();
    series.push(T0 + 1_000, 10.0).unwrap();
    assert_eq!(series.len(), 2);
    let mut alarm = AlarmInstance::new(T0);
    let transition = alarm.evaluate(&spec, &series, T0 + MINUTE).unwrap();
    assert_eq!(transition.evaluated[0].value, Some(15.0));
    assert_eq!(transition.evaluated[0].sample_count, 2);
    assert_eq!(transition.state, State::Ok);
}

#[test]
fn every_statistic_on_one_to_a_hundred() {
    let cases = [
        ("Average", 50.5),
        ("Sum", 5050.0),
        ("Minimum", 1.0),
        ("Maximum", 100.0),
        ("SampleCount", 100.0),
        ("p0", 1.0),
        ("p1", 1.0),
        ("p50", 50.0),
        ("p90", 90.0),
        ("p99", 99.0),
        ("p99.5", 100.0),
        ("p99.9", 100.0),
        ("p100", 100.0),
    ];
    for (name, want) in cases {
        let spec = AlarmSpec {
            statistic: name.parse().unwrap(),
            ..spec(1, 1, TreatMissingData::Missing)
        };
        let mut series = Series::new(spec.required_retention_secs());
        // 1..=100 in a scrambled order (37 is coprime with 100), one per 500 ms.
        for i in 0..100_i64 {
            let value = ((i * 37) % 100 + 1) as f64;
            series.push(T0 + i * 500, value).unwrap();
        }
        let mut alarm = AlarmInstance::new(T0);
        let transition = alarm.evaluate(&spec, &series, T0 + MINUTE).unwrap();
        assert_eq!(transition.evaluated[0].value, Some(want), "{name}");
        assert_eq!(transition.evaluated[0].sample_count, 100, "{name}");
    }
}

#[test]
fn only_periods_that_ended_count() {
    let spec = spec(1, 1, TreatMissingData::Missing);
    let mut series = Series::new(spec.required_retention_secs());
    series.push(T0 + MINUTE + 10_000, 100.0).unwrap();
    let mut alarm = AlarmInstance::new(T0);
    // The breach is in the period still in progress at T0 + 1:59.999.
    assert_eq!(alarm.evaluate(&spec, &series, T0 + 2 * MINUTE - 1), None);
    assert_eq!(alarm.state, State::InsufficientData);
    // It ended at T0 + 2:00.
    let transition = alarm.evaluate(&spec, &series, T0 + 2 * MINUTE).unwrap();
    assert_eq!(transition.state, State::Alarm);
    assert_eq!(transition.evaluated[0].period_start_ms, T0 + MINUTE);
    // Evaluating again changes nothing.
    assert_eq!(
        alarm.evaluate(&spec, &series, T0 + 2 * MINUTE + 30_000),
        None
    );
}

#[test]
fn periods_are_aligned_to_the_epoch_not_to_the_first_point() {
    let spec = AlarmSpec {
        period_secs: 300,
        ..spec(1, 1, TreatMissingData::Missing)
    };
    let mut series = Series::new(spec.required_retention_secs());
    // T0 is 05:55:00, a five-minute boundary; these two points straddle 06:00:00.
    series.push(T0 + 4 * MINUTE + 59_000, 100.0).unwrap();
    series.push(T0 + 5 * MINUTE + 1_000, 10.0).unwrap();
    let mut alarm = instance(State::Alarm);
    let transition = alarm.evaluate(&spec, &series, T0 + 10 * MINUTE).unwrap();
    assert_eq!(transition.state, State::Ok);
    assert_eq!(transition.evaluated[0].period_start_ms, T0 + 5 * MINUTE);
    assert_eq!(transition.evaluated[0].value, Some(10.0));
}
