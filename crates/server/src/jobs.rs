//! Probe jobs: queued by the processor when an incident opens, handed to the host's agent
//! over a long poll, answered onto the incident's timeline. A job no agent takes or answers
//! in time expires, and the incident says the host is unreachable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use vigil_actions::Step;
use vigil_core::{probes_for, AlarmFacts, AlarmState, Host, JobResult, JobStatus, TimelineKind};
use vigil_store::{JobEnd, NewJob, Store, StoreError};

/// Wakes a host's waiting long poll the moment a job is queued for it: job pickup has no
/// poll interval in its path.
#[derive(Default)]
pub struct JobHub {
    doorbells: Mutex<HashMap<String, Arc<Notify>>>,
}

impl JobHub {
    pub fn doorbell(&self, host: &str) -> Arc<Notify> {
        self.doorbells
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(host.to_string())
            .or_default()
            .clone()
    }

    /// `notify_one` keeps a permit when nobody waits, so a job queued between two polls is
    /// seen by the next one at once.
    pub fn ring(&self, host: &str) {
        self.doorbell(host).notify_one();
    }
}

/// How long probes may run and how long an agent has to pick a job up.
#[derive(Debug, Clone, Copy)]
pub struct JobTimes {
    pub probe_timeout_ms: u64,
    pub claim_within_ms: u64,
}

impl Default for JobTimes {
    fn default() -> Self {
        JobTimes {
            probe_timeout_ms: 15_000,
            claim_within_ms: 5_000,
        }
    }
}

/// Runs the host-facing steps of a playbook for a newly opened incident.
pub struct Responder {
    pub store: Arc<Store>,
    pub hub: Arc<JobHub>,
    pub times: JobTimes,
}

impl Responder {
    pub fn run_steps(
        &self,
        incident: &str,
        facts: &AlarmFacts,
        steps: &[Step],
        now: &str,
    ) -> Result<(), StoreError> {
        let wants_check = steps.contains(&Step::CheckHost);
        let probe_lists: Vec<&Vec<String>> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Diagnose { probes } => Some(probes),
                _ => None,
            })
            .collect();
        let remediations: Vec<(&String, bool)> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Remediate { probe, approval } => Some((probe, *approval)),
                _ => None,
            })
            .collect();
        if !wants_check && probe_lists.is_empty() && remediations.is_empty() {
            return Ok(());
        }
        let note = |message: String| {
            self.store
                .add_timeline_entry(incident, TimelineKind::HostCheck, &message, now)
                .map(|_| ())
        };
        let named = facts.host.as_deref().or(facts.instance_id.as_deref());
        let Some(named) = named else {
            return note("the alarm names no host (dimension host or InstanceId; label instance, host or nodename); no diagnostics".into());
        };
        let Some(host) = self
            .store
            .host_for_alarm(facts.host.as_deref(), facts.instance_id.as_deref())?
        else {
            return note(format!(
                "no agent is enrolled for host `{named}`; no diagnostics (enroll it with `vigil host add {named}`)"
            ));
        };
        if host.revoked_at.is_some() {
            return note(format!("host {} is revoked; no diagnostics", host.name));
        }
        if wants_check {
            note(describe_host(&host, now))?;
        }
        let no_data = facts.state == Some(AlarmState::InsufficientData);
        let mut probes: Vec<String> = Vec::new();
        for list in probe_lists {
            if list.is_empty() {
                probes.extend(
                    probes_for(facts.metric_name.as_deref(), no_data)
                        .into_iter()
                        .map(String::from),
                );
            } else {
                probes.extend(list.iter().cloned());
            }
        }
        probes.dedup();
        if probes.is_empty() && remediations.is_empty() {
            return Ok(());
        }
        let args = serde_json::Value::Object(Default::default());
        let mut jobs: Vec<NewJob<'_>> = probes
            .iter()
            .map(|probe| NewJob {
                host: &host.name,
                incident_key: Some(incident),
                probe,
                args: &args,
                timeout_ms: self.times.probe_timeout_ms,
                claim_within_ms: self.times.claim_within_ms,
                needs_approval: false,
            })
            .collect();
        for (probe, approval) in &remediations {
            jobs.push(NewJob {
                host: &host.name,
                incident_key: Some(incident),
                probe,
                args: &args,
                timeout_ms: self.times.probe_timeout_ms,
                claim_within_ms: self.times.claim_within_ms,
                needs_approval: *approval,
            });
            if *approval {
                note(format!(
                    "remediation `{probe}` on {} waits for an approver of {} (`vigil incident approve {incident}`)",
                    host.name,
                    facts.appcode.as_deref().unwrap_or("its application")
                ))?;
            }
        }
        let ids = self.store.create_jobs(&jobs, now, now_ms())?;
        tracing::info!(incident, host = %host.name, probes = ?probes, jobs = ?ids, "probes queued");
        self.hub.ring(&host.name);
        Ok(())
    }
}

/// The timeline's account of a host: reachable or not, by its last heartbeat.
fn describe_host(host: &Host, now: &str) -> String {
    let Some(last_seen) = &host.last_seen_at else {
        return format!(
            "host unreachable: the agent on {} has never reported",
            host.name
        );
    };
    let interval = host.interval_secs.unwrap_or(10).max(1);
    let age = seconds_between(last_seen, now);
    let collector = host
        .collector
        .as_ref()
        .map(|c| {
            let running = c["running"].as_bool().unwrap_or(false);
            let last = c["last_sample_at"].as_str().unwrap_or("never");
            format!(
                "collector {}, last sample at {last}",
                if running { "running" } else { "stopped" }
            )
        })
        .unwrap_or_else(|| "collector state unknown".into());
    match age {
        Some(age) if age > 3 * interval as i64 => format!(
            "host unreachable: agent last seen at {last_seen} ({age} s ago, reports every {interval} s)"
        ),
        Some(age) => format!(
            "host {} is reporting: agent {} last seen at {last_seen} ({age} s ago); {collector}",
            host.name,
            host.agent_version.as_deref().unwrap_or("?"),
        ),
        None => format!("agent on {} last seen at {last_seen}", host.name),
    }
}

fn seconds_between(earlier: &str, later: &str) -> Option<i64> {
    let a: DateTime<Utc> = earlier.parse().ok()?;
    let b: DateTime<Utc> = later.parse().ok()?;
    Some((b - a).num_seconds().max(0))
}

pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// The timeline entry for an agent's answer.
pub fn describe_result(host: &str, probe: &str, result: &JobResult) -> (TimelineKind, String) {
    let timing = match result.queued_ms {
        Some(queued) => format!(
            "{} ms, started {queued} ms after queueing",
            result.duration_ms
        ),
        None => format!("{} ms", result.duration_ms),
    };
    let truncated = if result.truncated {
        ", output truncated"
    } else {
        ""
    };
    let error = result.error.as_deref().unwrap_or("no reason given");
    match result.status {
        JobStatus::Done => {
            let exit = result
                .exit_code
                .map_or_else(|| "no exit code".to_string(), |c| format!("exit {c}"));
            (
                TimelineKind::Diagnostics,
                format!(
                    "{probe} on {host} ({exit}, {timing}{truncated}):\n{}",
                    result.output
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
                result.output
            ),
        ),
    }
}

fn describe_expired(job: &JobEnd, claim_within_ms: u64) -> String {
    let last_seen = job.host_last_seen_at.as_deref().unwrap_or("never");
    if job.was_claimed {
        format!(
            "host unreachable: the agent on {} took probe `{}` but never answered; agent last seen at {last_seen}",
            job.host, job.probe
        )
    } else {
        format!(
            "host unreachable: the agent on {} did not pick up probe `{}` within {} s; agent last seen at {last_seen}",
            job.host,
            job.probe,
            claim_within_ms / 1000
        )
    }
}

/// Expires overdue jobs every half second, for as long as the server runs.
pub fn spawn_sweeper(store: Arc<Store>, times: JobTimes, now: fn() -> String) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let store = store.clone();
            let swept = tokio::task::spawn_blocking(move || {
                store.expire_jobs(&now(), now_ms(), |job| {
                    describe_expired(job, times.claim_within_ms)
                })
            })
            .await;
            match swept {
                Ok(Ok(ended)) => {
                    for job in ended {
                        tracing::warn!(host = %job.host, probe = %job.probe, incident = job.incident_key.as_deref().unwrap_or("-"), "probe job expired: host unreachable");
                    }
                }
                Ok(Err(e)) => tracing::error!(error = %e, "could not expire overdue jobs"),
                Err(e) => tracing::error!(error = %e, "job sweeper task failed"),
            }
        }
    });
}
