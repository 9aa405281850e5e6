//! What the collector loop tells the probes about itself, and how a probe asks it to
//! restart.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use serde::{Serialize, Serializer};

use super::text::rfc3339;

/// The CloudWatch agent's default `metrics_collection_interval`.
pub const DEFAULT_COLLECTION_INTERVAL: Duration = Duration::from_secs(60);

/// Shared between the agent's collector loop and the probes.
///
/// The loop is expected to go like this:
///
/// ```no_run
/// # use std::sync::Arc;
/// # use std::time::{Duration, SystemTime};
/// # use vigil_agent::{collect::Collector, probes::CollectorHealth};
/// # let health = Arc::new(CollectorHealth::new());
/// # let interval = Duration::from_secs(60);
/// health.set_interval(interval);
/// let mut collector = Collector::new();
/// health.set_running(true);
/// loop {
///     match collector.collect() {
///         Ok(samples) => health.record_success(SystemTime::now(), samples.len()),
///         Err(e) => health.record_error(SystemTime::now(), e.to_string()),
///     }
///     // Sleeps one interval, but wakes as soon as `collector_restart` asks.
///     if health.wait_restart(interval) {
///         health.set_running(false);
///         collector = Collector::new();
///         health.set_running(true);
///     }
/// }
/// ```
#[derive(Debug)]
pub struct CollectorHealth {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug)]
struct State {
    running: bool,
    interval: Duration,
    last_sample_at: Option<SystemTime>,
    last_sample_count: usize,
    samples_total: u64,
    rounds_total: u64,
    last_error: Option<String>,
    last_error_at: Option<SystemTime>,
    restarts: u64,
    restart_pending: bool,
    /// Restart requests made so far; each request gets the count as its ticket.
    requests: u64,
    /// The ticket of the newest request the loop has taken.
    honoured: u64,
    /// `rounds_total` when the loop took that request: a later round proves it is back.
    rounds_at_honour: u64,
}

/// The collector's state at one moment. Times serialise as RFC 3339 strings.
#[derive(Debug, Clone, Serialize)]
pub struct CollectorSnapshot {
    pub running: bool,
    #[serde(serialize_with = "optional_time")]
    pub last_sample_at: Option<SystemTime>,
    /// Samples in the last successful round.
    pub last_sample_count: usize,
    pub samples_total: u64,
    pub last_error: Option<String>,
    #[serde(serialize_with = "optional_time")]
    pub last_error_at: Option<SystemTime>,
    /// Restart requests the loop has honoured.
    pub restarts: u64,
    #[serde(rename = "interval_ms", serialize_with = "millis")]
    pub interval: Duration,
}

impl CollectorSnapshot {
    /// Running, and the last sample is younger than three collection intervals — the
    /// same grace CloudWatch alarms usually give before treating data as missing.
    pub fn is_healthy(&self, now: SystemTime) -> bool {
        self.running
            && self.last_sample_at.is_some_and(|at| {
                now.duration_since(at).unwrap_or(Duration::ZERO) < self.interval * 3
            })
    }
}

fn optional_time<S: Serializer>(time: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match time {
        Some(t) => s.serialize_str(&rfc3339(*t)),
        None => s.serialize_none(),
    }
}

fn millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Default for CollectorHealth {
    fn default() -> Self {
        Self::new()
    }
}

impl CollectorHealth {
    pub fn new() -> Self {
        CollectorHealth {
            state: Mutex::new(State {
                running: false,
                interval: DEFAULT_COLLECTION_INTERVAL,
                last_sample_at: None,
                last_sample_count: 0,
                samples_total: 0,
                rounds_total: 0,
                last_error: None,
                last_error_at: None,
                restarts: 0,
                restart_pending: false,
                requests: 0,
                honoured: 0,
                rounds_at_honour: 0,
            }),
            changed: Condvar::new(),
        }
    }

    // A panic elsewhere while holding the lock leaves plain counters behind, which are
    // still worth reporting; refusing to report would hide the collector's state exactly
    // when something went wrong.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.lock());
        self.changed.notify_all();
    }

    /// How often the loop collects; `collector_status` judges staleness by it.
    pub fn set_interval(&self, interval: Duration) {
        self.update(|s| s.interval = interval);
    }

    pub fn record_success(&self, at: SystemTime, samples: usize) {
        self.update(|s| {
            s.last_sample_at = Some(at);
            s.last_sample_count = samples;
            s.samples_total += samples as u64;
            s.rounds_total += 1;
        });
    }

    pub fn record_error(&self, at: SystemTime, error: String) {
        self.update(|s| {
            s.last_error = Some(error);
            s.last_error_at = Some(at);
        });
    }

    pub fn set_running(&self, running: bool) {
        self.update(|s| s.running = running);
    }

    pub fn is_running(&self) -> bool {
        self.lock().running
    }

    /// Asks the loop to restart; it sees this through [`take_restart_request`] or
    /// [`wait_restart`].
    ///
    /// [`take_restart_request`]: CollectorHealth::take_restart_request
    /// [`wait_restart`]: CollectorHealth::wait_restart
    pub fn request_restart(&self) {
        self.request_restart_ticket();
    }

    pub(crate) fn request_restart_ticket(&self) -> u64 {
        let mut state = self.lock();
        state.restart_pending = true;
        state.requests += 1;
        let ticket = state.requests;
        drop(state);
        self.changed.notify_all();
        ticket
    }

    /// True once per pending request; the loop should then restart.
    pub fn take_restart_request(&self) -> bool {
        let taken = Self::take(&mut self.lock());
        if taken {
            self.changed.notify_all();
        }
        taken
    }

    /// Blocks up to `timeout` for a restart request, so the loop can sleep its interval
    /// and still react at once. True if a request was taken.
    pub fn wait_restart(&self, timeout: Duration) -> bool {
        let guard = self.lock();
        let (mut guard, _) = self
            .changed
            .wait_timeout_while(guard, timeout, |s| !s.restart_pending)
            .unwrap_or_else(PoisonError::into_inner);
        let taken = Self::take(&mut guard);
        drop(guard);
        if taken {
            self.changed.notify_all();
        }
        taken
    }

    fn take(state: &mut State) -> bool {
        if !state.restart_pending {
            return false;
        }
        state.restart_pending = false;
        state.restarts += 1;
        state.honoured = state.requests;
        state.rounds_at_honour = state.rounds_total;
        true
    }

    /// Waits until the loop has taken request `ticket`, is running and has completed a
    /// round since; returns that round's time, or `None` at `deadline`.
    pub(crate) fn wait_restarted(&self, ticket: u64, deadline: Instant) -> Option<SystemTime> {
        let mut guard = self.lock();
        loop {
            let back = guard.honoured >= ticket
                && guard.running
                && guard.rounds_total > guard.rounds_at_honour;
            // A completed round always set last_sample_at.
            if let (true, Some(at)) = (back, guard.last_sample_at) {
                return Some(at);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            if left.is_zero() {
                return None;
            }
            guard = self
                .changed
                .wait_timeout(guard, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    pub fn snapshot(&self) -> CollectorSnapshot {
        let s = self.lock();
        CollectorSnapshot {
            running: s.running,
            last_sample_at: s.last_sample_at,
            last_sample_count: s.last_sample_count,
            samples_total: s.samples_total,
            last_error: s.last_error.clone(),
            last_error_at: s.last_error_at,
            restarts: s.restarts,
            interval: s.interval,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::UNIX_EPOCH;

    #[test]
    fn records_show_in_snapshot() {
        let health = CollectorHealth::new();
        assert!(!health.is_running());
        health.set_running(true);
        let t1 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        health.record_success(t1, 10);
        health.record_success(t1 + Duration::from_secs(60), 12);
        health.record_error(
            t1 + Duration::from_secs(120),
            "cannot read /proc/stat".into(),
        );
        let snap = health.snapshot();
        assert!(snap.running);
        assert_eq!(snap.samples_total, 22);
        assert_eq!(snap.last_sample_count, 12);
        assert_eq!(snap.last_sample_at, Some(t1 + Duration::from_secs(60)));
        assert_eq!(snap.last_error.as_deref(), Some("cannot read /proc/stat"));
        let json = serde_json::to_value(&snap).unwrap();
        assert_eq!(json["last_sample_at"], "2023-11-14T22:14:20Z");
        assert_eq!(json["last_error_at"], "2023-11-14T22:15:20Z");
        assert_eq!(json["interval_ms"], 60_000);
    }

    #[test]
    fn health_needs_a_recent_sample() {
        let health = CollectorHealth::new();
        health.set_interval(Duration::from_secs(10));
        let now = SystemTime::now();
        health.set_running(true);
        assert!(!health.snapshot().is_healthy(now), "no sample yet");
        health.record_success(now - Duration::from_secs(29), 1);
        assert!(health.snapshot().is_healthy(now));
        health.record_success(now - Duration::from_secs(31), 1);
        assert!(!health.snapshot().is_healthy(now), "stale");
        health.record_success(now, 1);
        health.set_running(false);
        assert!(!health.snapshot().is_healthy(now), "stopped");
    }

    #[test]
    fn a_request_is_taken_once() {
        let health = CollectorHealth::new();
        assert!(!health.take_restart_request());
        health.request_restart();
        health.request_restart();
        assert!(health.take_restart_request());
        assert!(!health.take_restart_request());
        assert_eq!(health.snapshot().restarts, 1);
    }

    #[test]
    fn wait_restart_wakes_on_request() {
        let health = Arc::new(CollectorHealth::new());
        let start = Instant::now();
        assert!(!health.wait_restart(Duration::from_millis(50)));
        assert!(start.elapsed() >= Duration::from_millis(50));

        let waiter = {
            let health = Arc::clone(&health);
            std::thread::spawn(move || health.wait_restart(Duration::from_secs(10)))
        };
        std::thread::sleep(Duration::from_millis(50));
        let asked = Instant::now();
        health.request_restart();
        assert!(waiter.join().unwrap());
        assert!(asked.elapsed() < Duration::from_secs(5));
        assert_eq!(health.snapshot().restarts, 1);
    }

    #[test]
    fn wait_restarted_ignores_rounds_from_before_the_restart() {
        let health = CollectorHealth::new();
        health.set_running(true);
        let ticket = health.request_restart_ticket();
        // A round the old loop finishes before it notices the request does not count.
        health.record_success(SystemTime::now(), 3);
        let soon = Instant::now() + Duration::from_millis(30);
        assert_eq!(health.wait_restarted(ticket, soon), None);
        assert!(health.take_restart_request());
        let soon = Instant::now() + Duration::from_millis(30);
        assert_eq!(health.wait_restarted(ticket, soon), None);
        let t = SystemTime::now();
        health.record_success(t, 3);
        let soon = Instant::now() + Duration::from_millis(30);
        assert_eq!(health.wait_restarted(ticket, soon), Some(t));
    }
}
