//! Errors. Each message names the offending value and what would have been accepted.

use thiserror::Error;

/// A statistic, comparison operator or missing-data treatment that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error(
        "unknown statistic {0:?}: expected Average, Sum, Minimum, Maximum, SampleCount or a \
         percentile such as p99 or p99.9"
    )]
    UnknownStatistic(String),
    #[error("percentile {0:?} is out of range: expected p0 to p100, e.g. p50, p99 or p99.9")]
    PercentileOutOfRange(String),
    #[error(
        "unknown comparison operator {0:?}: expected GreaterThanThreshold, \
         GreaterThanOrEqualToThreshold, LessThanThreshold or LessThanOrEqualToThreshold"
    )]
    UnknownComparison(String),
    #[error(
        "unknown treat_missing_data {0:?}: expected missing, ignore, breaching or notBreaching"
    )]
    UnknownTreatMissingData(String),
}

/// An [`AlarmSpec`](crate::AlarmSpec) that [`validate`](crate::AlarmSpec::validate) refused.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum AlarmError {
    #[error("alarm name is empty")]
    EmptyName,
    #[error("period_secs must be at least 1")]
    ZeroPeriod,
    #[error("evaluation_periods must be at least 1")]
    ZeroEvaluationPeriods,
    #[error("datapoints_to_alarm must be at least 1")]
    ZeroDatapointsToAlarm,
    #[error(
        "datapoints_to_alarm ({datapoints_to_alarm}) exceeds evaluation_periods \
         ({evaluation_periods}): an alarm can need at most as many breaching datapoints as it \
         evaluates"
    )]
    DatapointsExceedPeriods {
        datapoints_to_alarm: u32,
        evaluation_periods: u32,
    },
    #[error(
        "evaluation window is {window_secs} s (period_secs × evaluation_periods); \
         the maximum is {max_secs} s (one day)"
    )]
    WindowTooLong { window_secs: u64, max_secs: u64 },
    #[error("threshold must be a finite number, got {0}")]
    ThresholdNotFinite(f64),
    #[error("percentile p{0} is out of range: expected p0 to p100")]
    PercentileOutOfRange(f64),
}

/// A sample that [`Series::push`](crate::Series::push) refused. The series is unchanged.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum SampleError {
    #[error("sample value must be a finite number, got {value}")]
    NotFinite { value: f64 },
    #[error(
        "sample at {timestamp_ms} ms is older than the series keeps (oldest kept: \
         {oldest_kept_ms} ms)"
    )]
    TooOld {
        timestamp_ms: i64,
        oldest_kept_ms: i64,
    },
}
