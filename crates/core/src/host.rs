//! Hosts and the jobs vigil hands their agents: the wire types both sides share.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// A host vigil knows of (enrolled, or only declared by a binding), as the API and CLI
/// show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Host {
    pub name: String,
    pub appcode: Option<String>,
    pub instance_id: Option<String>,
    /// When its agent was first given a token; `None` for a host only declared (bound to
    /// an application by an import) and never enrolled.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub enrolled_at: Option<Timestamp>,
    /// When its agent's token was revoked; `None` while it works.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_seen_at: Option<Timestamp>,
    pub agent_version: Option<String>,
    pub uptime_secs: Option<u64>,
    /// How often the agent reports, in seconds (from its heartbeat).
    pub interval_secs: Option<u64>,
    /// The agent's own account of its metric collector (`running`, last sample, last error).
    pub collector: Option<serde_json::Value>,
    /// Always present in what vigil sends.
    #[serde(default)]
    #[schema(required = true)]
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

/// Where a host stands with vigil, derived from what is known of it
/// ([`Host::lifecycle`]): whether it was ever enrolled, whether its token was revoked, and
/// when its agent last reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HostLifecycle {
    /// Bound to an application (declared by an import), but no agent was ever enrolled.
    Declared,
    /// Given a token, but its agent has never reported.
    Enrolled,
    /// Its agent reported within the silence window.
    Reporting,
    /// Its agent reported once, but not within the silence window.
    Silent,
    /// Its agent's token was revoked.
    Revoked,
}

impl HostLifecycle {
    pub const ALL: &'static [HostLifecycle] = &[
        HostLifecycle::Declared,
        HostLifecycle::Enrolled,
        HostLifecycle::Reporting,
        HostLifecycle::Silent,
        HostLifecycle::Revoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HostLifecycle::Declared => "declared",
            HostLifecycle::Enrolled => "enrolled",
            HostLifecycle::Reporting => "reporting",
            HostLifecycle::Silent => "silent",
            HostLifecycle::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<HostLifecycle> {
        Self::ALL.iter().copied().find(|l| l.as_str() == s)
    }
}

impl std::fmt::Display for HostLifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The reporting interval assumed for an agent that has not said its own.
const DEFAULT_INTERVAL_SECS: u64 = 10;
/// Reports an agent may miss before its host counts as silent.
const MISSED_REPORTS: u64 = 3;

impl Host {
    /// How long the agent may stay quiet before the host counts as silent: three of its
    /// reporting intervals (10 s when it never said).
    pub fn silent_after(&self) -> chrono::TimeDelta {
        let interval = self
            .interval_secs
            .unwrap_or(DEFAULT_INTERVAL_SECS)
            .clamp(1, 24 * 3600);
        chrono::TimeDelta::seconds((MISSED_REPORTS * interval) as i64)
    }

    /// Where the host stands at `now`. A revoked token outweighs everything else; a host
    /// never enrolled is declared whatever else is recorded of it.
    pub fn lifecycle(&self, now: Timestamp) -> HostLifecycle {
        if self.enrolled_at.is_none() {
            return HostLifecycle::Declared;
        }
        if self.revoked_at.is_some() {
            return HostLifecycle::Revoked;
        }
        match self.last_seen_at {
            None => HostLifecycle::Enrolled,
            Some(seen) if now - seen > self.silent_after() => HostLifecycle::Silent,
            Some(_) => HostLifecycle::Reporting,
        }
    }
}

/// What an agent says about itself every interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    pub agent_version: String,
    #[schema(maximum = 9223372036854775807_u64)]
    pub uptime_secs: u64,
    /// At most a day.
    #[schema(maximum = 86400)]
    pub interval_secs: u64,
    #[serde(default)]
    pub collector: Option<serde_json::Value>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub appcode: Option<String>,
}

/// The largest count the store keeps (a signed 64-bit column).
const STORED_MAX: u64 = i64::MAX as u64;

impl Heartbeat {
    /// What in the heartbeat is out of range, naming the field.
    pub fn check(&self) -> Result<(), String> {
        if self.uptime_secs > STORED_MAX {
            return Err(format!("uptime_secs: at most {STORED_MAX}"));
        }
        if self.interval_secs > 86_400 {
            return Err("interval_secs: at most 86400 (a day)".into());
        }
        Ok(())
    }
}

/// One measurement from an agent. `timestamp_ms` is Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricSample {
    pub name: String,
    pub value: f64,
    #[serde(default)]
    pub dimensions: BTreeMap<String, String>,
    pub timestamp_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricBatch {
    pub samples: Vec<MetricSample>,
}

/// A probe for an agent to run: only a probe name and plain arguments travel, never a
/// command line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Job {
    pub id: i64,
    pub probe: String,
    /// Always present in what vigil sends.
    #[serde(default)]
    #[schema(required = true)]
    pub args: serde_json::Value,
    pub timeout_ms: u64,
    /// When the server created the job, so the agent can report queueing delay.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobResult {
    /// A final answer: `done`, `refused`, `failed` or `timed_out`.
    #[schema(schema_with = final_job_status)]
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
    #[schema(maximum = 9223372036854775807_u64)]
    pub queued_ms: Option<u64>,
    #[serde(default)]
    #[schema(maximum = 9223372036854775807_u64)]
    pub duration_ms: u64,
}

/// The statuses an agent may report ([`JobResult::status`]); the others are the server's.
pub const FINAL_JOB_STATUSES: [JobStatus; 4] = [
    JobStatus::Done,
    JobStatus::Refused,
    JobStatus::Failed,
    JobStatus::TimedOut,
];

fn final_job_status() -> utoipa::openapi::schema::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(FINAL_JOB_STATUSES.map(JobStatus::as_str)))
        .build()
}

/// The probes every agent knows, by the names playbooks and jobs use. An agent may also
/// run `command:NAME` probes its own config allows.
pub const BUILT_IN_PROBES: [&str; 6] = [
    "top_cpu",
    "top_mem",
    "disk_usage",
    "system_summary",
    "collector_status",
    "collector_restart",
];

/// Whether a playbook may name `probe`: a built-in one, or `command:NAME` for a command
/// the host's agent config allows (checked by the agent, which refuses others).
pub fn is_known_probe(probe: &str) -> bool {
    BUILT_IN_PROBES.contains(&probe)
        || probe
            .strip_prefix("command:")
            .is_some_and(|name| !name.is_empty())
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
    /// What in the answer is out of range, naming the field.
    pub fn check(&self) -> Result<(), String> {
        if self.duration_ms > STORED_MAX || self.queued_ms.is_some_and(|q| q > STORED_MAX) {
            return Err(format!("duration_ms and queued_ms: at most {STORED_MAX}"));
        }
        Ok(())
    }

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
    fn counts_past_what_the_store_keeps_are_refused_naming_the_field() {
        let heartbeat = Heartbeat {
            agent_version: "1".into(),
            uptime_secs: 60,
            interval_secs: 10,
            collector: None,
            labels: BTreeMap::new(),
            appcode: None,
        };
        assert!(heartbeat.check().is_ok());
        let huge = Heartbeat {
            uptime_secs: u64::MAX,
            ..heartbeat.clone()
        };
        assert!(huge.check().unwrap_err().contains("uptime_secs"));
        let slow = Heartbeat {
            interval_secs: 86_401,
            ..heartbeat
        };
        assert!(slow.check().unwrap_err().contains("interval_secs"));
    }

    fn at(secs: i64) -> Timestamp {
        chrono::DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn a_hosts_lifecycle_follows_its_facts() {
        // (enrolled at, revoked at, last seen, interval, now, expected)
        let table = [
            (None, None, None, None, 0, HostLifecycle::Declared),
            // Declared outweighs anything recorded of a host never enrolled.
            (None, Some(0), None, None, 0, HostLifecycle::Declared),
            (Some(0), None, None, None, 1_000, HostLifecycle::Enrolled),
            (
                Some(0),
                None,
                Some(100),
                Some(10),
                100,
                HostLifecycle::Reporting,
            ),
            // Silent past three intervals, not at them.
            (
                Some(0),
                None,
                Some(100),
                Some(10),
                130,
                HostLifecycle::Reporting,
            ),
            (
                Some(0),
                None,
                Some(100),
                Some(10),
                131,
                HostLifecycle::Silent,
            ),
            (
                Some(0),
                None,
                Some(100),
                Some(1),
                104,
                HostLifecycle::Silent,
            ),
            // No interval said: ten seconds assumed.
            (
                Some(0),
                None,
                Some(100),
                None,
                130,
                HostLifecycle::Reporting,
            ),
            (Some(0), None, Some(100), None, 131, HostLifecycle::Silent),
            // An interval of 0 counts as one second.
            (
                Some(0),
                None,
                Some(100),
                Some(0),
                104,
                HostLifecycle::Silent,
            ),
            // A heartbeat stamped after `now` (clocks apart) is reporting.
            (
                Some(0),
                None,
                Some(200),
                Some(10),
                100,
                HostLifecycle::Reporting,
            ),
            (Some(0), Some(50), None, None, 60, HostLifecycle::Revoked),
            (
                Some(0),
                Some(150),
                Some(100),
                Some(10),
                120,
                HostLifecycle::Revoked,
            ),
        ];
        for (enrolled, revoked, seen, interval, now, expected) in table {
            let host = Host {
                name: "web-07".into(),
                appcode: None,
                instance_id: None,
                enrolled_at: enrolled.map(at),
                revoked_at: revoked.map(at),
                last_seen_at: seen.map(at),
                agent_version: None,
                uptime_secs: None,
                interval_secs: interval,
                collector: None,
                labels: BTreeMap::new(),
            };
            assert_eq!(
                host.lifecycle(at(now)),
                expected,
                "enrolled {enrolled:?}, revoked {revoked:?}, seen {seen:?}, interval {interval:?}, now {now}"
            );
        }
    }

    #[test]
    fn lifecycle_names_round_trip() {
        for lifecycle in HostLifecycle::ALL {
            assert_eq!(HostLifecycle::parse(lifecycle.as_str()), Some(*lifecycle));
            assert_eq!(
                serde_json::to_value(lifecycle).unwrap(),
                serde_json::json!(lifecycle.as_str())
            );
        }
        assert_eq!(HostLifecycle::parse("Reporting"), None);
    }

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
