//! Probe jobs: planned by the processor and committed with the incident they serve, handed to the host's agent
//! over a long poll, answered onto the incident's timeline. A job no agent takes or answers
//! in time expires, and the incident says the host is unreachable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use vigil_actions::Step;
use vigil_core::{
    probes_for, AlarmFacts, AlarmState, Host, HostLifecycle, TimelineKind, Timestamp,
};
use vigil_store::{NewJob, Note, Store, StoreError, Work};

/// Wakes a host's waiting long poll the moment a job is queued for it: job pickup has no
/// poll interval in its path.
#[derive(Default)]
pub struct JobHub {
    doorbells: Mutex<HashMap<String, Arc<Notify>>>,
    /// Rung with every host's doorbell: a job just queued may be the next to run out of
    /// time, so the sweeper looks at its deadline.
    queued: Notify,
    bus: crate::bus::Bus,
}

impl JobHub {
    /// A hub whose rings also reach the long polls held by the other members.
    pub fn with_bus(bus: crate::bus::Bus) -> JobHub {
        JobHub {
            bus,
            ..JobHub::default()
        }
    }

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
        self.ring_local(host);
        self.bus.publish(crate::bus::Signal::Jobs(host.to_string()));
    }

    /// Rings this member's doorbell for the host (jobs queued on another member).
    pub fn ring_local(&self, host: &str) {
        self.doorbell(host).notify_one();
        self.queued.notify_one();
    }
}

/// After a store error, wait this long before looking again.
const ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// How long probes may run and how long an agent has to pick a job up.
#[derive(Debug, Clone, Copy)]
pub struct JobTimes {
    pub probe_timeout: Duration,
    pub claim_within: Duration,
}

impl Default for JobTimes {
    fn default() -> Self {
        JobTimes {
            probe_timeout: Duration::from_secs(15),
            claim_within: Duration::from_secs(5),
        }
    }
}

/// Hosts looked up while deciding one batch of events: a storm names the same hosts again
/// and again, and each lookup is a round trip to the store.
#[derive(Default)]
pub struct HostLookups(HashMap<(Option<String>, Option<String>), Option<Host>>);

impl HostLookups {
    async fn find(
        &mut self,
        store: &dyn Store,
        host: Option<&str>,
        instance_id: Option<&str>,
    ) -> Result<Option<Host>, StoreError> {
        let key = (host.map(str::to_owned), instance_id.map(str::to_owned));
        if let Some(found) = self.0.get(&key) {
            return Ok(found.clone());
        }
        let found = store.host_for_alarm(host, instance_id).await?;
        self.0.insert(key, found.clone());
        Ok(found)
    }
}

/// Plans the host-facing steps of a playbook for an incident about to open: what vigil
/// knows of the host, and the probe jobs for its agent. The plan commits with the incident.
pub struct Responder {
    pub store: Arc<dyn Store>,
    pub times: JobTimes,
}

impl Responder {
    pub async fn plan(
        &self,
        facts: &AlarmFacts,
        steps: &[Step],
        now: Timestamp,
        hosts: &mut HostLookups,
    ) -> Result<Work, StoreError> {
        let mut work = Work::default();
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
            return Ok(work);
        }
        let mut note =
            |message: String| work.notes.push(Note::new(TimelineKind::HostCheck, message));
        let named = facts.host.as_deref().or(facts.instance_id.as_deref());
        let Some(named) = named else {
            note("the alarm names no host (dimension host or InstanceId; label instance, host or nodename); no diagnostics".into());
            return Ok(work);
        };
        let Some(host) = hosts
            .find(
                self.store.as_ref(),
                facts.host.as_deref(),
                facts.instance_id.as_deref(),
            )
            .await?
        else {
            note(format!(
                "no agent is enrolled for host `{named}`; no diagnostics (enroll it with `vigil host add {named}`)"
            ));
            return Ok(work);
        };
        // No agent can answer a declared or revoked host: say why instead of queueing
        // probes that could only expire.
        let lifecycle = host.lifecycle(now);
        if matches!(lifecycle, HostLifecycle::Declared | HostLifecycle::Revoked) {
            note(describe_host(&host, lifecycle, now));
            return Ok(work);
        }
        if wants_check {
            note(describe_host(&host, lifecycle, now));
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
        let job = |probe: &str, needs_approval: bool| NewJob {
            host: host.name.clone(),
            probe: probe.to_string(),
            args: serde_json::Value::Object(Default::default()),
            timeout: self.times.probe_timeout,
            claim_within: self.times.claim_within,
            needs_approval,
        };
        let mut jobs: Vec<NewJob> = probes.iter().map(|p| job(p, false)).collect();
        for (probe, approval) in &remediations {
            jobs.push(job(probe, *approval));
            if *approval {
                note(format!(
                    "remediation `{probe}` on {} waits for an approver of {} (`vigil incident approve INCIDENT`)",
                    host.name,
                    facts.appcode.as_deref().unwrap_or("its application")
                ));
            }
        }
        work.jobs = jobs;
        Ok(work)
    }
}

/// The timeline's account of a host: where it stands in its lifecycle, and so whether an
/// agent can answer probes.
fn describe_host(host: &Host, lifecycle: HostLifecycle, now: Timestamp) -> String {
    let name = &host.name;
    let stamp = |t: Timestamp| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    match lifecycle {
        HostLifecycle::Declared => format!(
            "host {name} is declared but no agent has enrolled; no diagnostics (enroll it with `vigil host add {name}` and start its agent)"
        ),
        HostLifecycle::Revoked => format!(
            "host {name} is revoked{}; no agent may answer, no diagnostics",
            host.revoked_at
                .map(|t| format!(" (its agent's token was revoked at {})", stamp(t)))
                .unwrap_or_default()
        ),
        HostLifecycle::Enrolled => format!(
            "host unreachable: host {name} is enrolled but its agent has never reported"
        ),
        HostLifecycle::Silent | HostLifecycle::Reporting => {
            let Some(last_seen) = host.last_seen_at else {
                return format!("host {name} is {lifecycle}");
            };
            let age = (now - last_seen).num_seconds().max(0);
            let seen = stamp(last_seen);
            if lifecycle == HostLifecycle::Silent {
                return format!(
                    "host unreachable: host {name} is silent, agent last seen at {seen} ({age} s ago; silent after {} s without a report)",
                    host.silent_after().num_seconds()
                );
            }
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
            format!(
                "host {name} is reporting: agent {} last seen at {seen} ({age} s ago); {collector}",
                host.agent_version.as_deref().unwrap_or("?"),
            )
        }
    }
}

/// Expires overdue jobs for as long as the server runs, sleeping until the earliest open
/// job's deadline. A job's deadline only comes sooner when a job is queued, which rings the
/// hub (a claim moves it later), so there is no periodic check. An expiry ends an
/// incident's wait for diagnostics, so the runner is woken.
pub fn spawn_sweeper(store: Arc<dyn Store>, runner: Arc<crate::runner::Runner>, hub: Arc<JobHub>) {
    tokio::spawn(async move {
        loop {
            let wait = match store.expire_jobs(crate::now()).await {
                Ok(ended) => {
                    for job in &ended {
                        tracing::warn!(host = %job.host, probe = %job.probe, incident = job.incident_key.as_deref().unwrap_or("-"), "probe job expired: host unreachable");
                    }
                    if !ended.is_empty() {
                        runner.wake();
                    }
                    match store.next_job_deadline().await {
                        // One millisecond more: the store's times may be finer than that.
                        Ok(Some(at)) => Some(
                            (at - crate::now()).to_std().unwrap_or(Duration::ZERO)
                                + Duration::from_millis(1),
                        ),
                        Ok(None) => None,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot read when the next probe job runs out of time; retrying");
                            Some(ERROR_BACKOFF)
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not expire overdue jobs; retrying");
                    Some(ERROR_BACKOFF)
                }
            };
            match wait {
                Some(wait) => {
                    let _ = tokio::time::timeout(wait, hub.queued.notified()).await;
                }
                None => hub.queued.notified().await,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        chrono::DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn the_timeline_says_where_the_host_stands() {
        let host = |enrolled: Option<i64>, revoked: Option<i64>, seen: Option<i64>| Host {
            name: "web-07".into(),
            appcode: None,
            instance_id: None,
            enrolled_at: enrolled.map(at),
            revoked_at: revoked.map(at),
            last_seen_at: seen.map(at),
            agent_version: Some("0.1.0".into()),
            uptime_secs: None,
            interval_secs: Some(10),
            collector: None,
            labels: Default::default(),
        };
        let cases = [
            (host(None, None, None), "host web-07 is declared but no agent has enrolled; no diagnostics"),
            (host(Some(0), Some(50), Some(40)), "host web-07 is revoked (its agent's token was revoked at 2027-01-15T08:00:50.000Z)"),
            (host(Some(0), None, None), "host unreachable: host web-07 is enrolled but its agent has never reported"),
            (host(Some(0), None, Some(60)), "host unreachable: host web-07 is silent, agent last seen at 2027-01-15T08:01:00.000Z (40 s ago; silent after 30 s without a report)"),
            (host(Some(0), None, Some(90)), "host web-07 is reporting: agent 0.1.0 last seen at 2027-01-15T08:01:30.000Z (10 s ago)"),
        ];
        for (host, expected) in cases {
            let text = describe_host(&host, host.lifecycle(at(100)), at(100));
            assert!(text.starts_with(expected), "{text}");
        }
    }
}
