//! Parsing, printing, serde and validation of alarm definitions.

use serde_json::json;
use vigil_alarm::{
    AlarmError, AlarmSpec, Comparison, ParseError, State, Statistic, TreatMissingData,
};

use crate::common::spec;

#[test]
fn statistics_parse_and_print_as_cloudwatch_names() {
    for (text, statistic) in [
        ("Average", Statistic::Average),
        ("Sum", Statistic::Sum),
        ("Minimum", Statistic::Minimum),
        ("Maximum", Statistic::Maximum),
        ("SampleCount", Statistic::SampleCount),
        ("p0", Statistic::Percentile(0.0)),
        ("p50", Statistic::Percentile(50.0)),
        ("p99", Statistic::Percentile(99.0)),
        ("p99.9", Statistic::Percentile(99.9)),
        ("p0.5", Statistic::Percentile(0.5)),
        ("p100", Statistic::Percentile(100.0)),
    ] {
        assert_eq!(text.parse::<Statistic>(), Ok(statistic), "{text}");
        assert_eq!(statistic.to_string(), text);
    }
}

#[test]
fn bad_statistics_are_refused_with_clear_errors() {
    for text in [
        "", "avg", "average", "P99", "p", "p-1", "p+5", "p.5", "p99.", "p9.9.9", "p1e1", "pinf",
        "pNaN", " p99", "p99 ",
    ] {
        assert_eq!(
            text.parse::<Statistic>(),
            Err(ParseError::UnknownStatistic(text.to_string())),
            "{text:?}"
        );
    }
    for text in ["p100.1", "p101", "p1000"] {
        assert_eq!(
            text.parse::<Statistic>(),
            Err(ParseError::PercentileOutOfRange(text.to_string()))
        );
    }
    assert_eq!(
        "avg".parse::<Statistic>().unwrap_err().to_string(),
        "unknown statistic \"avg\": expected Average, Sum, Minimum, Maximum, SampleCount or a \
         percentile such as p99 or p99.9"
    );
    assert_eq!(
        "p101".parse::<Statistic>().unwrap_err().to_string(),
        "percentile \"p101\" is out of range: expected p0 to p100, e.g. p50, p99 or p99.9"
    );
}

#[test]
fn operators_and_treatments_parse() {
    for op in [
        Comparison::GreaterThanThreshold,
        Comparison::GreaterThanOrEqualToThreshold,
        Comparison::LessThanThreshold,
        Comparison::LessThanOrEqualToThreshold,
    ] {
        assert_eq!(op.as_str().parse::<Comparison>(), Ok(op));
    }
    for treat in [
        TreatMissingData::Missing,
        TreatMissingData::Ignore,
        TreatMissingData::Breaching,
        TreatMissingData::NotBreaching,
    ] {
        assert_eq!(treat.as_str().parse::<TreatMissingData>(), Ok(treat));
    }
    assert_eq!(
        ">".parse::<Comparison>().unwrap_err().to_string(),
        "unknown comparison operator \">\": expected GreaterThanThreshold, \
         GreaterThanOrEqualToThreshold, LessThanThreshold or LessThanOrEqualToThreshold"
    );
    assert_eq!(
        "not_breaching"
            .parse::<TreatMissingData>()
            .unwrap_err()
            .to_string(),
        "unknown treat_missing_data \"not_breaching\": expected missing, ignore, breaching or \
         notBreaching"
    );
}

#[test]
fn serde_uses_cloudwatch_spellings() {
    assert_eq!(
        serde_json::to_value([State::Ok, State::Alarm, State::InsufficientData]).unwrap(),
        json!(["OK", "ALARM", "INSUFFICIENT_DATA"])
    );
    let spec = AlarmSpec {
        statistic: Statistic::Percentile(99.9),
        treat_missing_data: TreatMissingData::NotBreaching,
        ..spec(2, 3, TreatMissingData::Missing)
    };
    let value = serde_json::to_value(&spec).unwrap();
    assert_eq!(
        value,
        json!({
            "name": "test",
            "statistic": "p99.9",
            "period_secs": 60,
            "evaluation_periods": 3,
            "datapoints_to_alarm": 2,
            "comparison": "GreaterThanThreshold",
            "threshold": 50.0,
            "treat_missing_data": "notBreaching"
        })
    );
    assert_eq!(serde_json::from_value::<AlarmSpec>(value).unwrap(), spec);

    let mut without_treatment = serde_json::to_value(&spec).unwrap();
    without_treatment
        .as_object_mut()
        .unwrap()
        .remove("treat_missing_data");
    assert_eq!(
        serde_json::from_value::<AlarmSpec>(without_treatment)
            .unwrap()
            .treat_missing_data,
        TreatMissingData::Missing,
        "CloudWatch's default"
    );

    let bad = json!({"name": "x", "statistic": "p200", "period_secs": 60,
        "evaluation_periods": 1, "datapoints_to_alarm": 1,
        "comparison": "GreaterThanThreshold", "threshold": 1.0});
    let err = serde_json::from_value::<AlarmSpec>(bad).unwrap_err();
    assert!(
        err.to_string()
            .contains("percentile \"p200\" is out of range"),
        "{err}"
    );
}

#[test]
fn validation() {
    let good = spec(2, 3, TreatMissingData::Missing);
    assert_eq!(good.validate(), Ok(()));
    let day = AlarmSpec {
        period_secs: 86_400,
        evaluation_periods: 1,
        datapoints_to_alarm: 1,
        ..good.clone()
    };
    assert_eq!(day.validate(), Ok(()), "exactly one day is allowed");

    let cases = [
        (
            AlarmSpec {
                name: " ".into(),
                ..good.clone()
            },
            AlarmError::EmptyName,
            "alarm name is empty",
        ),
        (
            AlarmSpec {
                period_secs: 0,
                ..good.clone()
            },
            AlarmError::ZeroPeriod,
            "period_secs must be at least 1",
        ),
        (
            AlarmSpec {
                evaluation_periods: 0,
                ..good.clone()
            },
            AlarmError::ZeroEvaluationPeriods,
            "evaluation_periods must be at least 1",
        ),
        (
            AlarmSpec {
                datapoints_to_alarm: 0,
                ..good.clone()
            },
            AlarmError::ZeroDatapointsToAlarm,
            "datapoints_to_alarm must be at least 1",
        ),
        (
            AlarmSpec {
                datapoints_to_alarm: 4,
                ..good.clone()
            },
            AlarmError::DatapointsExceedPeriods {
                datapoints_to_alarm: 4,
                evaluation_periods: 3,
            },
            "datapoints_to_alarm (4) exceeds evaluation_periods (3): an alarm can need at most \
             as many breaching datapoints as it evaluates",
        ),
        (
            AlarmSpec {
                period_secs: 3_600,
                evaluation_periods: 25,
                ..good.clone()
            },
            AlarmError::WindowTooLong {
                window_secs: 90_000,
                max_secs: 86_400,
            },
            "evaluation window is 90000 s (period_secs × evaluation_periods); the maximum is \
             86400 s (one day)",
        ),
        (
            AlarmSpec {
                threshold: f64::INFINITY,
                ..good.clone()
            },
            AlarmError::ThresholdNotFinite(f64::INFINITY),
            "threshold must be a finite number, got inf",
        ),
        (
            AlarmSpec {
                statistic: Statistic::Percentile(-1.0),
                ..good.clone()
            },
            AlarmError::PercentileOutOfRange(-1.0),
            "percentile p-1 is out of range: expected p0 to p100",
        ),
    ];
    for (spec, error, message) in cases {
        let got = spec.validate().unwrap_err();
        assert_eq!(got, error);
        assert_eq!(got.to_string(), message);
    }
    assert!(matches!(
        AlarmSpec {
            threshold: f64::NAN,
            ..good
        }
        .validate(),
        Err(AlarmError::ThresholdNotFinite(_))
    ));
}

#[test]
fn retention_covers_the_range_and_the_period_in_progress() {
    let spec = spec(3, 3, TreatMissingData::Missing);
    assert_eq!(spec.window_secs(), 180);
    assert_eq!(spec.evaluation_range_periods(), 5);
    assert_eq!(spec.required_retention_secs(), 360);
}
