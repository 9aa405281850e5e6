//! The recent raw points of one metric series.

use std::collections::VecDeque;

use crate::error::SampleError;

/// One raw point: Unix milliseconds and a finite value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Sample {
    pub(crate) timestamp_ms: i64,
    pub(crate) value: f64,
}

/// Recent raw points of one series, sorted by timestamp and bounded in time.
///
/// The series keeps the points whose timestamp is within `retention_secs` of the newest
/// timestamp it has seen, and drops older ones as newer points arrive. Size the retention
/// with [`AlarmSpec::required_retention_secs`](crate::AlarmSpec::required_retention_secs)
/// (the largest among the alarms that judge this series): anything shorter makes old
/// periods look missing.
///
/// The horizon follows the newest *timestamp*, not a clock (this crate has none): a point
/// stamped far in the future would push every real point out, so callers should refuse
/// such points before pushing them.
#[derive(Debug, Clone)]
pub struct Series {
    points: VecDeque<Sample>,
    retention_ms: i64,
}

impl Series {
    /// An empty series that keeps `retention_secs` of points behind its newest one.
    pub fn new(retention_secs: u32) -> Series {
        Series {
            points: VecDeque::new(),
            retention_ms: i64::from(retention_secs) * 1000,
        }
    }

    /// The points held, oldest first, as (Unix milliseconds, value): for charts.
    pub fn iter(&self) -> impl Iterator<Item = (i64, f64)> + '_ {
        self.points.iter().map(|s| (s.timestamp_ms, s.value))
    }

    /// Adds one raw point stamped `timestamp_ms` (Unix milliseconds).
    ///
    /// - NaN and ±infinity are refused with [`SampleError::NotFinite`] and not stored, so
    ///   they never count as data (nor as a sample in `SampleCount`); the caller counts them.
    /// - Points may arrive out of order: one older than the newest is inserted in timestamp
    ///   order, so it lands in the period it belongs to, as long as it is within the
    ///   retention; an older one is refused with [`SampleError::TooOld`].
    /// - A point with a timestamp already present **replaces** the earlier value (last write
    ///   wins). Agents re-send a point when they did not see it acknowledged, so a repeated
    ///   timestamp is the same observation; keeping both would double-count it in `Sum`
    ///   and `SampleCount`.
    ///
    /// Appending in order is O(1) amortised; an out-of-order insert shifts the points after
    /// it.
    pub fn push(&mut self, timestamp_ms: i64, value: f64) -> Result<(), SampleError> {
        if !value.is_finite() {
            return Err(SampleError::NotFinite { value });
        }
        let sample = Sample {
            timestamp_ms,
            value,
        };
        let Some(newest_ms) = self.newest_timestamp_ms() else {
            self.points.push_back(sample);
            return Ok(());
        };
        if timestamp_ms > newest_ms {
            self.points.push_back(sample);
            self.prune(timestamp_ms);
            return Ok(());
        }
        let oldest_kept_ms = self.horizon(newest_ms);
        if timestamp_ms < oldest_kept_ms {
            return Err(SampleError::TooOld {
                timestamp_ms,
                oldest_kept_ms,
            });
        }
        let at = self
            .points
            .partition_point(|s| s.timestamp_ms < timestamp_ms);
        match self.points.get_mut(at) {
            Some(existing) if existing.timestamp_ms == timestamp_ms => existing.value = value,
            _ => self.points.insert(at, sample),
        }
        Ok(())
    }

    /// How many raw points the series holds.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether the series holds no point.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The retention this series keeps.
    pub fn retention_secs(&self) -> u32 {
        u32::try_from(self.retention_ms / 1000).unwrap_or(u32::MAX)
    }

    /// Changes the retention: a longer one keeps more from now on (what was dropped stays
    /// dropped); a shorter one drops what is now beyond it and gives back the room.
    pub fn set_retention_secs(&mut self, retention_secs: u32) {
        self.retention_ms = i64::from(retention_secs) * 1000;
        if let Some(newest_ms) = self.newest_timestamp_ms() {
            self.prune(newest_ms);
        }
        if self.points.capacity() > 2 * self.points.len() + 8 {
            self.points.shrink_to_fit();
        }
    }

    /// Points the series has room for without growing: its memory, for accounting.
    pub fn capacity(&self) -> usize {
        self.points.capacity()
    }

    /// The newest timestamp held, which is what the retention is measured back from.
    pub fn newest_timestamp_ms(&self) -> Option<i64> {
        self.points.back().map(|s| s.timestamp_ms)
    }

    pub(crate) fn points(&self) -> &VecDeque<Sample> {
        &self.points
    }

    /// The oldest timestamp kept when the newest is `newest_ms`.
    fn horizon(&self, newest_ms: i64) -> i64 {
        newest_ms.saturating_sub(self.retention_ms)
    }

    fn prune(&mut self, newest_ms: i64) {
        let horizon = self.horizon(newest_ms);
        while self
            .points
            .front()
            .is_some_and(|s| s.timestamp_ms < horizon)
        {
            self.points.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timestamps(series: &Series) -> Vec<i64> {
        series.points().iter().map(|s| s.timestamp_ms).collect()
    }

    #[test]
    fn keeps_points_sorted_whatever_the_arrival_order() {
        let mut series = Series::new(60);
        for ts in [5_000, 1_000, 3_000, 4_000, 2_000] {
            series.push(ts, ts as f64).unwrap();
        }
        assert_eq!(timestamps(&series), [1_000, 2_000, 3_000, 4_000, 5_000]);
    }

    #[test]
    fn drops_points_older_than_the_retention_behind_the_newest() {
        let mut series = Series::new(10);
        series.push(0, 1.0).unwrap();
        series.push(10_000, 2.0).unwrap();
        assert_eq!(series.len(), 2, "a point exactly at the horizon is kept");
        series.push(10_001, 3.0).unwrap();
        assert_eq!(timestamps(&series), [10_000, 10_001]);
    }

    #[test]
    fn refuses_out_of_order_points_beyond_the_retention() {
        let mut series = Series::new(10);
        series.push(20_000, 1.0).unwrap();
        let err = series.push(9_999, 2.0).unwrap_err();
        assert_eq!(
            err,
            SampleError::TooOld {
                timestamp_ms: 9_999,
                oldest_kept_ms: 10_000
            }
        );
        assert_eq!(
            err.to_string(),
            "sample at 9999 ms is older than the series keeps (oldest kept: 10000 ms)"
        );
        series.push(10_000, 3.0).unwrap();
        assert_eq!(timestamps(&series), [10_000, 20_000]);
    }

    #[test]
    fn a_repeated_timestamp_replaces_the_value() {
        let mut series = Series::new(60);
        series.push(1_000, 1.0).unwrap();
        series.push(2_000, 2.0).unwrap();
        series.push(2_000, 20.0).unwrap();
        series.push(1_000, 10.0).unwrap();
        let values: Vec<f64> = series.points().iter().map(|s| s.value).collect();
        assert_eq!(values, [10.0, 20.0]);
    }

    #[test]
    fn a_shorter_retention_drops_what_is_beyond_it_and_a_longer_one_keeps_more() {
        let mut series = Series::new(10);
        for ts in [0, 5_000, 10_000] {
            series.push(ts, 1.0).unwrap();
        }
        series.set_retention_secs(4);
        assert_eq!(timestamps(&series), [10_000]);
        series.set_retention_secs(60);
        series.push(20_000, 1.0).unwrap();
        series.push(70_000, 1.0).unwrap();
        assert_eq!(timestamps(&series), [10_000, 20_000, 70_000]);
        assert_eq!(series.retention_secs(), 60);
    }

    #[test]
    fn refuses_non_finite_values_and_stores_nothing() {
        let mut series = Series::new(60);
        for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(matches!(
                series.push(1_000, value),
                Err(SampleError::NotFinite { .. })
            ));
        }
        assert!(series.is_empty());
        assert_eq!(
            series.push(1_000, f64::NAN).unwrap_err().to_string(),
            "sample value must be a finite number, got NaN"
        );
    }
}
