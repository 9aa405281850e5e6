//! What an alarm is: the statistic, the threshold test, the M-of-N window and the
//! missing-data treatment, named and spelled as CloudWatch spells them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{AlarmError, ParseError};

/// How the raw points of one period become the period's datapoint.
///
/// Parsed from and printed as CloudWatch's names: `Average`, `Sum`, `Minimum`, `Maximum`,
/// `SampleCount`, and percentiles `p0` … `p100` with optional decimals (`p99.9`).
/// Serialized as that string too.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Statistic {
    Average,
    Sum,
    Minimum,
    Maximum,
    SampleCount,
    /// The nearest-rank percentile, 0 to 100: the smallest value of the period such that at
    /// least this percentage of the period's values are less than or equal to it. `p0` is
    /// the minimum, `p100` the maximum; it is always one of the values that were pushed.
    Percentile(f64),
}

impl FromStr for Statistic {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "Average" => Ok(Statistic::Average),
            "Sum" => Ok(Statistic::Sum),
            "Minimum" => Ok(Statistic::Minimum),
            "Maximum" => Ok(Statistic::Maximum),
            "SampleCount" => Ok(Statistic::SampleCount),
            _ => parse_percentile(s),
        }
    }
}

/// `p` followed by digits with at most one decimal point (`p99`, `p99.9`, `p0.5`). Rust's
/// float parser alone would also take `p1e1`, `pinf` or `p+5`, none of which CloudWatch
/// accepts, so the shape is checked first.
fn parse_percentile(s: &str) -> Result<Statistic, ParseError> {
    let unknown = || ParseError::UnknownStatistic(s.to_string());
    let digits = s.strip_prefix('p').ok_or_else(unknown)?;
    let (whole, fraction) = match digits.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (digits, None),
    };
    let all_digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || !fraction.is_none_or(all_digits) {
        return Err(unknown());
    }
    let value: f64 = digits.parse().map_err(|_| unknown())?;
    if value > 100.0 {
        return Err(ParseError::PercentileOutOfRange(s.to_string()));
    }
    Ok(Statistic::Percentile(value))
}

impl fmt::Display for Statistic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Statistic::Average => f.write_str("Average"),
            Statistic::Sum => f.write_str("Sum"),
            Statistic::Minimum => f.write_str("Minimum"),
            Statistic::Maximum => f.write_str("Maximum"),
            Statistic::SampleCount => f.write_str("SampleCount"),
            // Rust prints 99.0 as "99" and 99.9 as "99.9": exactly CloudWatch's spelling.
            Statistic::Percentile(p) => write!(f, "p{p}"),
        }
    }
}

impl TryFrom<String> for Statistic {
    type Error = ParseError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Statistic> for String {
    fn from(statistic: Statistic) -> String {
        statistic.to_string()
    }
}

/// The threshold test a datapoint must pass to be *breaching*.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Comparison {
    GreaterThanThreshold,
    GreaterThanOrEqualToThreshold,
    LessThanThreshold,
    LessThanOrEqualToThreshold,
}

impl Comparison {
    /// Whether `value` breaches `threshold` under this operator.
    pub fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::GreaterThanThreshold => value > threshold,
            Comparison::GreaterThanOrEqualToThreshold => value >= threshold,
            Comparison::LessThanThreshold => value < threshold,
            Comparison::LessThanOrEqualToThreshold => value <= threshold,
        }
    }

    /// CloudWatch's name of the operator.
    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::GreaterThanThreshold => "GreaterThanThreshold",
            Comparison::GreaterThanOrEqualToThreshold => "GreaterThanOrEqualToThreshold",
            Comparison::LessThanThreshold => "LessThanThreshold",
            Comparison::LessThanOrEqualToThreshold => "LessThanOrEqualToThreshold",
        }
    }

    /// The words CloudWatch's state reasons use: "greater than", "less than or equal to"…
    pub fn words(self) -> &'static str {
        match self {
            Comparison::GreaterThanThreshold => "greater than",
            Comparison::GreaterThanOrEqualToThreshold => "greater than or equal to",
            Comparison::LessThanThreshold => "less than",
            Comparison::LessThanOrEqualToThreshold => "less than or equal to",
        }
    }
}

impl FromStr for Comparison {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "GreaterThanThreshold" => Ok(Comparison::GreaterThanThreshold),
            "GreaterThanOrEqualToThreshold" => Ok(Comparison::GreaterThanOrEqualToThreshold),
            "LessThanThreshold" => Ok(Comparison::LessThanThreshold),
            "LessThanOrEqualToThreshold" => Ok(Comparison::LessThanOrEqualToThreshold),
            _ => Err(ParseError::UnknownComparison(s.to_string())),
        }
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How periods without any raw point count, spelled as CloudWatch's `TreatMissingData`
/// (`missing`, `ignore`, `breaching`, `notBreaching`). See the crate documentation for the
/// full evaluation rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TreatMissingData {
    /// CloudWatch's default: missing periods are neither breaching nor not breaching; with
    /// no datapoint at all in the evaluation range the alarm goes to `INSUFFICIENT_DATA`.
    #[default]
    Missing,
    /// Missing periods never change the state: the current state is kept.
    Ignore,
    /// Missing periods count as breaching.
    Breaching,
    /// Missing periods count as not breaching.
    NotBreaching,
}

impl TreatMissingData {
    /// CloudWatch's name of the treatment.
    pub fn as_str(self) -> &'static str {
        match self {
            TreatMissingData::Missing => "missing",
            TreatMissingData::Ignore => "ignore",
            TreatMissingData::Breaching => "breaching",
            TreatMissingData::NotBreaching => "notBreaching",
        }
    }
}

impl FromStr for TreatMissingData {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "missing" => Ok(TreatMissingData::Missing),
            "ignore" => Ok(TreatMissingData::Ignore),
            "breaching" => Ok(TreatMissingData::Breaching),
            "notBreaching" => Ok(TreatMissingData::NotBreaching),
            _ => Err(ParseError::UnknownTreatMissingData(s.to_string())),
        }
    }
}

impl fmt::Display for TreatMissingData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alarm definition. The same spec can judge many series (one
/// [`AlarmInstance`](crate::AlarmInstance) per series).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmSpec {
    pub name: String,
    pub statistic: Statistic,
    /// Length of one period; periods are aligned to multiples of it since the Unix epoch.
    pub period_secs: u32,
    /// N: how many of the most recent datapoints are evaluated.
    pub evaluation_periods: u32,
    /// M: how many of those N must breach for `ALARM`.
    pub datapoints_to_alarm: u32,
    pub comparison: Comparison,
    pub threshold: f64,
    #[serde(default)]
    pub treat_missing_data: TreatMissingData,
}

impl AlarmSpec {
    /// The longest evaluation window (`period_secs × evaluation_periods`) accepted: one day,
    /// CloudWatch's limit.
    pub const MAX_WINDOW_SECS: u64 = 86_400;

    /// How many periods beyond N the evaluation range reaches back. CloudWatch retrieves
    /// "a higher number of data points than Evaluation Periods" without saying how many for
    /// every shape; its documented examples use a range of 5 for N = 3, which is N + 2.
    pub const EXTRA_RANGE_PERIODS: u32 = 2;

    /// Checks the spec. [`AlarmInstance::evaluate`](crate::AlarmInstance::evaluate) never
    /// panics on a spec that fails this, but judges it as if clamped to the nearest valid
    /// one, so callers should refuse invalid specs up front.
    pub fn validate(&self) -> Result<(), AlarmError> {
        if self.name.trim().is_empty() {
            return Err(AlarmError::EmptyName);
        }
        if self.period_secs == 0 {
            return Err(AlarmError::ZeroPeriod);
        }
        if self.evaluation_periods == 0 {
            return Err(AlarmError::ZeroEvaluationPeriods);
        }
        if self.datapoints_to_alarm == 0 {
            return Err(AlarmError::ZeroDatapointsToAlarm);
        }
        if self.datapoints_to_alarm > self.evaluation_periods {
            return Err(AlarmError::DatapointsExceedPeriods {
                datapoints_to_alarm: self.datapoints_to_alarm,
                evaluation_periods: self.evaluation_periods,
            });
        }
        if self.window_secs() > Self::MAX_WINDOW_SECS {
            return Err(AlarmError::WindowTooLong {
                window_secs: self.window_secs(),
                max_secs: Self::MAX_WINDOW_SECS,
            });
        }
        if !self.threshold.is_finite() {
            return Err(AlarmError::ThresholdNotFinite(self.threshold));
        }
        if let Statistic::Percentile(p) = self.statistic {
            if !(0.0..=100.0).contains(&p) {
                return Err(AlarmError::PercentileOutOfRange(p));
            }
        }
        Ok(())
    }

    /// The evaluation window, `period_secs × evaluation_periods`. The restart grace of a
    /// [restored](crate::AlarmInstance::restored) instance lasts this long.
    pub fn window_secs(&self) -> u64 {
        u64::from(self.period_secs) * u64::from(self.evaluation_periods)
    }

    /// How many periods back an evaluation looks for datapoints:
    /// `evaluation_periods + EXTRA_RANGE_PERIODS`.
    pub fn evaluation_range_periods(&self) -> u32 {
        self.evaluation_periods
            .saturating_add(Self::EXTRA_RANGE_PERIODS)
    }

    /// The retention a [`Series`](crate::Series) needs for this alarm: the evaluation range
    /// plus the period still in progress. Give a series the largest value among the alarms
    /// that judge it.
    pub fn required_retention_secs(&self) -> u32 {
        let periods = u64::from(self.evaluation_range_periods()) + 1;
        let secs = periods * u64::from(self.period_secs);
        u32::try_from(secs).unwrap_or(u32::MAX)
    }
}
