//! Hosts and the jobs vigil hands their agents: the wire types both sides share.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// An enrolled host, as the API and CLI show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Host {
    pub name: String,
    pub appcode: Option<String>,
    pub instance_id: Option<String>,
    pub enrolled_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub last_seen_at: Option<Timestamp>,
    pub agent_version: Option<String>,
    pub uptime_secs: Option<u64>,
    /// How often the agent reports, in seconds (from its heartbeat).
    pub interval_secs: Option<u64>,
    /// The agent's own account of its metric collector (`running`, last sample, last error).
    pub collector: Option<serde_json::Value>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Whether `name` may be enrolled as a host: DNS characters (plus `_`), at most 253 bytes,
/// not starting with `-` or `.`, so it is safe in logs, URLs and file names.
pub fn valid_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        && !name.starts_with(['-', '.'])
}

/// What an agent says about itself every interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    pub agent_version: String,
    pub uptime_secs: u64,
    pub interval_secs: u64,
    #[serde(default)]
    pub collector: Option<serde_json::Value>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub appcode: Option<String>,
}

/// One measurement from an agent. `timestamp_ms` is Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSample {
    pub name: String,
    pub value: f64,
    #[serde(default)]
    pub dimensions: BTreeMap<String, String>,
    pub timestamp_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricBatch {
    pub samples: Vec<MetricSample>,
}

/// A probe for an agent to run: only a probe name and plain arguments travel, never a
/// command line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: i64,
    pub probe: String,
    #[serde(default)]
    pub args: serde_json::Value,
    pub timeout_ms: u64,
    /// When the server created the job, so the agent can report queueing delay.
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Done,
    /// The agent would not run it: unknown probe, command not in its allow-list.
    Refused,
    Failed,
    TimedOut,
    /// No agent picked it up or answered in time.
    Expired,
    /// A remediation waiting for an approver.
    AwaitingApproval,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Refused => "refused",
            JobStatus::Failed => "failed",
            JobStatus::TimedOut => "timed_out",
            JobStatus::Expired => "expired",
            JobStatus::AwaitingApproval => "awaiting_approval",
        }
    }

    pub fn parse(s: &str) -> Option<JobStatus> {
        [
            JobStatus::Queued,
            JobStatus::Running,
            JobStatus::Done,
            JobStatus::Refused,
            JobStatus::Failed,
            JobStatus::TimedOut,
            JobStatus::Expired,
            JobStatus::AwaitingApproval,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// What an agent reports back for a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobResult {
    pub status: JobStatus,
    #[serde(default)]
    pub output: String,
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub truncated: bool,
    /// Why it was refused or failed.
    #[serde(default)]
    pub error: Option<String>,
    /// From the job's creation on the server to the probe starting on the host.
    #[serde(default)]
    pub queued_ms: Option<u64>,
    #[serde(default)]
    pub duration_ms: u64,
}

/// Which probes fit an alarm, judged from its metric name and state: CPU → `top_cpu`,
/// memory → `top_mem`, disk → `disk_usage`; no data → the collector's status and a restart.
pub fn probes_for(metric_name: Option<&str>, no_data: bool) -> Vec<&'static str> {
    if no_data {
        return vec!["collector_status", "collector_restart"];
    }
    let metric = metric_name.unwrap_or_default().to_ascii_lowercase();
    if metric.contains("cpu") || metric.starts_with("load") {
        vec!["top_cpu"]
    } else if metric.contains("mem") || metric.contains("swap") {
        vec!["top_mem"]
    } else if metric.contains("disk") || metric.contains("filesystem") || metric.contains("fs_") {
        vec!["disk_usage"]
    } else {
        vec!["system_summary"]
    }
}

impl JobResult {
    /// The incident timeline's entry for this answer to `probe` on `host`.
    pub fn describe(&self, host: &str, probe: &str) -> (crate::TimelineKind, String) {
        use crate::TimelineKind;
        let timing = match self.queued_ms {
            Some(queued) => format!(
                "{} ms, started {queued} ms after queueing",
                self.duration_ms
            ),
            None => format!("{} ms", self.duration_ms),
        };
        let truncated = if self.truncated {
            ", output truncated"
        } else {
            ""
        };
        let error = self.error.as_deref().unwrap_or("no reason given");
        match self.status {
            JobStatus::Done => {
                let exit = self
                    .exit_code
                    .map_or_else(|| "no exit code".to_string(), |c| format!("exit {c}"));
                (
                    TimelineKind::Diagnostics,
                    format!(
                        "{probe} on {host} ({exit}, {timing}{truncated}):\n{}",
                        self.output
                    ),
                )
            }
            JobStatus::Refused => (
                TimelineKind::HostCheck,
                format!("the agent on {host} refused probe `{probe}`: {error}"),
            ),
            JobStatus::TimedOut => (
                TimelineKind::HostCheck,
                format!("probe `{probe}` timed out on {host} ({timing}): {error}"),
            ),
            _ => (
                TimelineKind::HostCheck,
                format!(
                    "probe `{probe}` failed on {host} ({timing}): {error}\n{}",
                    self.output
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_follow_dns() {
        let long = "a".repeat(253);
        for ok in ["web-1", "db_2.eu.example.com", "1host", long.as_str()] {
            assert!(valid_host_name(ok), "{ok}");
        }
        let too_long = "a".repeat(254);
        for bad in [
            "",
            "-web",
            ".web",
            "web 1",
            "web/1",
            "wéb",
            "a:9100",
            too_long.as_str(),
        ] {
            assert!(!valid_host_name(bad), "{bad}");
        }
    }

    #[test]
    fn probes_follow_the_metric() {
        assert_eq!(probes_for(Some("CPUUtilization"), false), ["top_cpu"]);
        assert_eq!(probes_for(Some("mem_used_percent"), false), ["top_mem"]);
        assert_eq!(probes_for(Some("disk_used_percent"), false), ["disk_usage"]);
        assert_eq!(probes_for(Some("NetworkIn"), false), ["system_summary"]);
        assert_eq!(
            probes_for(Some("CPUUtilization"), true),
            ["collector_status", "collector_restart"]
        );
    }

    #[test]
    fn job_status_round_trips() {
        for status in [
            "queued",
            "running",
            "done",
            "refused",
            "failed",
            "timed_out",
            "expired",
        ] {
            assert_eq!(
                JobStatus::parse(status).map(JobStatus::as_str),
                Some(status)
            );
        }
    }
}
