//! vigil's own metrics in the Prometheus text format. A handful of counters, a gauge and
//! one histogram do not justify a metrics framework; labels are fixed strings chosen by code.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(&'static str, String), u64>>,
    gauges: Mutex<BTreeMap<&'static str, f64>>,
    rule_match: Mutex<Histogram>,
}

/// Upper bounds of the rule-match histogram, in seconds.
const MATCH_BUCKETS: [f64; 8] = [1e-6, 5e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 1e-2];

#[derive(Default)]
struct Histogram {
    buckets: [u64; MATCH_BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Every counter with its help text; unlabelled ones are shown as 0 before they move, so a
/// dashboard never has to guess whether the series exists.
const COUNTERS: &[(&str, &str, bool)] = &[
    (
        "vigil_events_accepted_total",
        "Events committed to the store, by endpoint.",
        true,
    ),
    (
        "vigil_events_duplicate_total",
        "Events whose id had been accepted before, by endpoint.",
        true,
    ),
    (
        "vigil_events_rejected_total",
        "Requests refused, by endpoint and reason.",
        true,
    ),
    (
        "vigil_events_processed_total",
        "Events run through the rules.",
        false,
    ),
    ("vigil_incidents_opened_total", "Incidents opened.", false),
    (
        "vigil_incidents_repeats_total",
        "Alarm events grouped into an open incident.",
        false,
    ),
    (
        "vigil_incidents_resolved_total",
        "Incidents resolved, by how.",
        true,
    ),
    (
        "vigil_sns_subscriptions_total",
        "SNS subscription confirmations, by outcome.",
        true,
    ),
    (
        "vigil_probe_jobs_total",
        "Probe jobs answered by agents, by status.",
        true,
    ),
    (
        "vigil_samples_accepted_total",
        "Metric points taken into series, by source (agent, graphite, remote_write).",
        true,
    ),
    (
        "vigil_samples_rejected_total",
        "Metric points refused (not finite, too old, from the future, unparsable), by source.",
        true,
    ),
    (
        "vigil_series_over_cap_total",
        "Points of new series refused because a series cap was reached, by cap (total = metrics.max_series; agent, graphite, remote_write, appcode = metrics.series_caps).",
        true,
    ),
    (
        "vigil_forward_samples_total",
        "Samples for the time-series database of metrics.forward.remote_write_url, by outcome: sent; refused (the database answered a 4xx other than 429; retrying would not help); dropped (the queue of metrics.forward.queue_samples was full, the database being down or slow).",
        true,
    ),
    (
        "vigil_forward_retries_total",
        "remote_write requests that failed (no answer, 5xx, 429) and were sent again.",
        false,
    ),
    (
        "vigil_escalation_checks_total",
        "Times the escalation sweeper looked for unacknowledged incidents (it looks when one opens or is acknowledged, when the next is due, and when the test clock moves; never on a fixed tick).",
        false,
    ),
    (
        "vigil_alarm_transitions_total",
        "Alarm state changes, by new state.",
        true,
    ),
];

/// Every gauge with its help text; shown only once set.
const GAUGES: &[(&str, &str)] = &[
    (
        "vigil_escalation_checked_at_ms",
        "Server-clock time (Unix milliseconds) of the escalation sweeper's last finished check: everything due by then has escalated.",
    ),
    (
        "vigil_processing_backlog",
        "Events accepted and not yet processed.",
    ),
    (
        "vigil_processing_lag_seconds",
        "How long the oldest event not yet processed has waited (0 when none waits).",
    ),
    (
        "vigil_series",
        "Metric series held in memory.",
    ),
    (
        "vigil_alarm_instances",
        "Alarm instances judged (alarm × series it selects).",
    ),
    (
        "vigil_alarm_tick_seconds",
        "How long the last alarm tick took to judge every instance.",
    ),
    (
        "vigil_history_blocks_saved",
        "Chart-history blocks written to the store by the last save.",
    ),
    (
        "vigil_forward_queue_samples",
        "Samples waiting to be sent to the time-series database, as of the last send.",
    ),
    (
        "vigil_runner_idle",
        "1 when the playbook runner last found nothing due in its journal and no step in flight: nothing goes out until something changes.",
    ),
];

impl Metrics {
    /// `labels` is the rendered label set, e.g. `endpoint="events"`, or empty.
    pub fn add(&self, name: &'static str, labels: String, by: u64) {
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        *counters.entry((name, labels)).or_default() += by;
    }

    pub fn inc(&self, name: &'static str, labels: String) {
        self.add(name, labels, 1);
    }

    pub fn set(&self, name: &'static str, value: i64) {
        self.set_float(name, value as f64);
    }

    pub fn set_float(&self, name: &'static str, value: f64) {
        self.gauges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name, value);
    }

    pub fn observe_rule_match(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let mut h = self.rule_match.lock().unwrap_or_else(|p| p.into_inner());
        for (bucket, bound) in h.buckets.iter_mut().zip(MATCH_BUCKETS) {
            if secs <= bound {
                *bucket += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        for &(name, help, labelled) in COUNTERS {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let mut any = false;
            for ((n, labels), value) in counters.iter() {
                if *n == name {
                    any = true;
                    if labels.is_empty() {
                        let _ = writeln!(out, "{name} {value}");
                    } else {
                        let _ = writeln!(out, "{name}{{{labels}}} {value}");
                    }
                }
            }
            if !any && !labelled {
                let _ = writeln!(out, "{name} 0");
            }
        }
        drop(counters);
        let gauges = self.gauges.lock().unwrap_or_else(|p| p.into_inner());
        for &(name, help) in GAUGES {
            if let Some(value) = gauges.get(name) {
                let _ = writeln!(
                    out,
                    "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
                );
            }
        }
        drop(gauges);
        let h = self.rule_match.lock().unwrap_or_else(|p| p.into_inner());
        let name = "vigil_rule_match_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time to match one event against every rule.\n# TYPE {name} histogram"
        );
        for (count, bound) in h.buckets.iter().zip(MATCH_BUCKETS) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
        let _ = writeln!(out, "{name}_sum {}\n{name}_count {}", h.sum, h.count);
        out
    }
}

/// Renders `key="value"` pairs; values are code-chosen words, escaped anyway.
pub fn labels(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}=\"{}\"",
                v.replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n")
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::default();
        m.add(
            "vigil_events_accepted_total",
            labels(&[("endpoint", "events")]),
            3,
        );
        m.inc("vigil_incidents_opened_total", String::new());
        m.observe_rule_match(Duration::from_micros(3));
        let text = m.render();
        assert!(
            text.contains("vigil_events_accepted_total{endpoint=\"events\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("vigil_incidents_opened_total 1\n"), "{text}");
        assert!(text.contains("vigil_events_processed_total 0\n"), "{text}");
        assert!(
            text.contains("vigil_rule_match_seconds_bucket{le=\"0.000005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("vigil_rule_match_seconds_count 1\n"),
            "{text}"
        );
    }
}
