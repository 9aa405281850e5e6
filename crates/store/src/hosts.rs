//! Enrolled hosts and the probe jobs handed to their agents.

use std::collections::BTreeMap;

use rusqlite::{params, OptionalExtension, Row, Transaction};
use vigil_core::{Heartbeat, Host, Job, JobResult, JobStatus, TimelineKind};

use crate::incidents::add_timeline;
use crate::{Result, Store, StoreError};

/// The token name a host's agent authenticates with.
pub fn host_token_name(host: &str) -> String {
    format!("host:{host}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enrollment {
    Created,
    /// The host existed (perhaps revoked); it now has the new token.
    Renewed,
}

/// A job to queue. `claim_within_ms`: if no agent takes it by then, it expires.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    pub host: &'a str,
    pub incident_key: Option<&'a str>,
    pub probe: &'a str,
    pub args: &'a serde_json::Value,
    pub timeout_ms: u64,
    pub claim_within_ms: u64,
    /// Held until an approver approves the incident (`awaiting_approval`).
    pub needs_approval: bool,
}

/// A job that reached an end, with what the incident timeline needs.
#[derive(Debug, Clone, PartialEq)]
pub struct JobEnd {
    pub id: i64,
    pub host: String,
    pub probe: String,
    pub incident_key: Option<String>,
    /// For expired jobs: whether an agent had taken it (then it never answered).
    pub was_claimed: bool,
    pub host_last_seen_at: Option<String>,
}

/// Extra time past a probe's own timeout before a running job is given up on.
const ANSWER_GRACE_MS: i64 = 5_000;

const HOST_COLUMNS: &str = "name, appcode, instance_id, enrolled_at, revoked_at, last_seen_at, agent_version, uptime_secs, interval_secs, collector, labels";

impl Store {
    /// Enrolls `name` with a token (by hash), or gives an existing host a new token.
    pub fn enroll_host(
        &self,
        name: &str,
        appcode: Option<&str>,
        instance_id: Option<&str>,
        token_hash: &str,
        now: &str,
    ) -> Result<Enrollment> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let existed: bool = tx
            .query_row("SELECT 1 FROM hosts WHERE name = ?1", [name], |_| Ok(true))
            .optional()?
            .unwrap_or(false);
        if existed {
            tx.execute(
                "UPDATE hosts SET revoked_at = NULL, appcode = COALESCE(?2, appcode),
                   instance_id = COALESCE(?3, instance_id) WHERE name = ?1",
                params![name, appcode, instance_id],
            )?;
        } else {
            tx.execute(
                "INSERT INTO hosts (name, appcode, instance_id, enrolled_at) VALUES (?1, ?2, ?3, ?4)",
                params![name, appcode, instance_id, now],
            )?;
        }
        tx.execute(
            "INSERT INTO tokens (name, hash, role, created_at) VALUES (?1, ?2, 'host', ?3)
             ON CONFLICT (name) DO UPDATE SET hash = excluded.hash, role = 'host',
               created_at = excluded.created_at, revoked_at = NULL",
            params![host_token_name(name), token_hash, now],
        )?;
        tx.commit()?;
        Ok(if existed {
            Enrollment::Renewed
        } else {
            Enrollment::Created
        })
    }

    /// Revokes a host's token; its agent is refused from then on. False if unknown.
    pub fn revoke_host(&self, name: &str, now: &str) -> Result<bool> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let changed = tx.execute(
            "UPDATE hosts SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
            params![name, now],
        )?;
        tx.execute(
            "UPDATE tokens SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
            params![host_token_name(name), now],
        )?;
        tx.commit()?;
        Ok(changed > 0)
    }

    pub fn hosts(&self) -> Result<Vec<Host>> {
        let conn = self.reader();
        let mut stmt =
            conn.prepare_cached(&format!("SELECT {HOST_COLUMNS} FROM hosts ORDER BY name"))?;
        let rows = stmt.query_map([], host_row)?;
        rows.map(|r| r?).collect()
    }

    pub fn host(&self, name: &str) -> Result<Option<Host>> {
        let conn = self.reader();
        let mut stmt =
            conn.prepare_cached(&format!("SELECT {HOST_COLUMNS} FROM hosts WHERE name = ?1"))?;
        stmt.query_row([name], host_row).optional()?.transpose()
    }

    /// The enrolled host an alarm is about: by name first, then by EC2 instance id.
    pub fn host_for_alarm(
        &self,
        host: Option<&str>,
        instance_id: Option<&str>,
    ) -> Result<Option<Host>> {
        if let Some(name) = host {
            if let Some(found) = self.host(name)? {
                return Ok(Some(found));
            }
        }
        let Some(instance_id) = instance_id else {
            return Ok(None);
        };
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {HOST_COLUMNS} FROM hosts WHERE instance_id = ?1 OR name = ?1 LIMIT 1"
        ))?;
        stmt.query_row([instance_id], host_row)
            .optional()?
            .transpose()
    }

    pub fn record_heartbeat(&self, name: &str, heartbeat: &Heartbeat, now: &str) -> Result<()> {
        let collector = heartbeat
            .collector
            .as_ref()
            .map(serde_json::Value::to_string);
        let labels = serde_json::to_string(&heartbeat.labels)
            .map_err(|e| StoreError::Corrupt(format!("labels: {e}")))?;
        self.writer().execute(
            "UPDATE hosts SET last_seen_at = ?2, agent_version = ?3, uptime_secs = ?4,
               interval_secs = ?5, collector = ?6, labels = ?7,
               appcode = COALESCE(appcode, ?8) WHERE name = ?1",
            params![
                name,
                now,
                heartbeat.agent_version,
                heartbeat.uptime_secs as i64,
                heartbeat.interval_secs as i64,
                collector,
                labels,
                heartbeat.appcode
            ],
        )?;
        Ok(())
    }

    /// Keeps the latest metric batch of a host (for `vigil hosts` and the UI).
    pub fn record_metrics(&self, name: &str, batch_json: &str, now: &str) -> Result<()> {
        self.writer().execute(
            "UPDATE hosts SET last_metrics = ?2, last_seen_at = ?3 WHERE name = ?1",
            params![name, batch_json, now],
        )?;
        Ok(())
    }

    pub fn last_metrics(&self, name: &str) -> Result<Option<String>> {
        Ok(self
            .reader()
            .query_row(
                "SELECT last_metrics FROM hosts WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    }

    /// Queues jobs; returns their ids in order.
    pub fn create_jobs(&self, jobs: &[NewJob<'_>], now: &str, now_ms: i64) -> Result<Vec<i64>> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut ids = Vec::with_capacity(jobs.len());
        for job in jobs {
            let incident_id = match job.incident_key {
                Some(key) => incident_id(&tx, key)?,
                None => None,
            };
            tx.prepare_cached(
                "INSERT INTO jobs (host, incident_id, probe, args, timeout_ms, status, created_at, claim_by_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                job.host,
                incident_id,
                job.probe,
                job.args.to_string(),
                job.timeout_ms as i64,
                if job.needs_approval { "awaiting_approval" } else { "queued" },
                now,
                now_ms + job.claim_within_ms as i64
            ])?;
            ids.push(tx.last_insert_rowid());
        }
        tx.commit()?;
        Ok(ids)
    }

    /// Hands the host's queued jobs to its agent, oldest first, marking them running.
    pub fn claim_jobs(&self, host: &str, now: &str, now_ms: i64, limit: usize) -> Result<Vec<Job>> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let jobs = {
            let mut stmt = tx.prepare_cached(
                "SELECT id, probe, args, timeout_ms, created_at FROM jobs
                 WHERE host = ?1 AND status = 'queued' ORDER BY id LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![host, limit as i64], |r| {
                let args: String = r.get(2)?;
                Ok(Job {
                    id: r.get(0)?,
                    probe: r.get(1)?,
                    args: serde_json::from_str(&args).unwrap_or(serde_json::Value::Null),
                    timeout_ms: r.get::<_, i64>(3)?.max(0) as u64,
                    created_at: r.get(4)?,
                })
            })?;
            rows.collect::<rusqlite::Result<Vec<Job>>>()?
        };
        for job in &jobs {
            tx.prepare_cached(
                "UPDATE jobs SET status = 'running', claimed_at = ?2, finish_by_ms = ?3 WHERE id = ?1",
            )?
            .execute(params![
                job.id,
                now,
                now_ms + job.timeout_ms as i64 + ANSWER_GRACE_MS
            ])?;
        }
        tx.commit()?;
        Ok(jobs)
    }

    /// Records an agent's answer, and the timeline entry `describe` makes of it, in one
    /// transaction. `None` when the job is not this host's or already ended.
    pub fn finish_job(
        &self,
        host: &str,
        id: i64,
        result: &JobResult,
        now: &str,
        describe: impl FnOnce(&str) -> (TimelineKind, String),
    ) -> Result<Option<JobEnd>> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let found: Option<(String, Option<i64>)> = tx
            .query_row(
                "SELECT probe, incident_id FROM jobs
                 WHERE id = ?1 AND host = ?2 AND status IN ('queued', 'running')",
                params![id, host],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((probe, incident_id)) = found else {
            return Ok(None);
        };
        tx.execute(
            "UPDATE jobs SET status = ?2, finished_at = ?3, output = ?4, exit_code = ?5,
               error = ?6, duration_ms = ?7 WHERE id = ?1",
            params![
                id,
                result.status.as_str(),
                now,
                result.output,
                result.exit_code,
                result.error,
                result.duration_ms as i64
            ],
        )?;
        let incident_key = match incident_id {
            Some(incident) => {
                let (kind, message) = describe(&probe);
                add_timeline(&tx, incident, now, kind, &message, None)?;
                incident_key(&tx, incident)?
            }
            None => None,
        };
        tx.commit()?;
        Ok(Some(JobEnd {
            id,
            host: host.to_string(),
            probe,
            incident_key,
            was_claimed: true,
            host_last_seen_at: None,
        }))
    }

    /// Ends jobs no agent took or answered in time, adding `describe`'s entry to each
    /// job's incident.
    pub fn expire_jobs(
        &self,
        now: &str,
        now_ms: i64,
        describe: impl Fn(&JobEnd) -> String,
    ) -> Result<Vec<JobEnd>> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let overdue: Vec<(JobEnd, Option<i64>)> = {
            let mut stmt = tx.prepare_cached(
                "SELECT j.id, j.host, j.probe, j.status, j.incident_id, h.last_seen_at
                 FROM jobs j LEFT JOIN hosts h ON h.name = j.host
                 WHERE (j.status = 'queued' AND j.claim_by_ms <= ?1)
                    OR (j.status = 'running' AND j.finish_by_ms <= ?1)",
            )?;
            let rows = stmt.query_map([now_ms], |r| {
                let status: String = r.get(3)?;
                Ok((
                    JobEnd {
                        id: r.get(0)?,
                        host: r.get(1)?,
                        probe: r.get(2)?,
                        incident_key: None,
                        was_claimed: status == "running",
                        host_last_seen_at: r.get(5)?,
                    },
                    r.get::<_, Option<i64>>(4)?,
                ))
            })?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut ended = Vec::with_capacity(overdue.len());
        for (mut job, incident) in overdue {
            tx.execute(
                "UPDATE jobs SET status = 'expired', finished_at = ?2 WHERE id = ?1",
                params![job.id, now],
            )?;
            if let Some(incident) = incident {
                job.incident_key = incident_key(&tx, incident)?;
                add_timeline(
                    &tx,
                    incident,
                    now,
                    TimelineKind::HostCheck,
                    &describe(&job),
                    None,
                )?;
            }
            ended.push(job);
        }
        tx.commit()?;
        Ok(ended)
    }

    /// Adds an entry to an incident's timeline. False if there is no such incident.
    pub fn add_timeline_entry(
        &self,
        incident_key: &str,
        kind: TimelineKind,
        message: &str,
        now: &str,
    ) -> Result<bool> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let Some(id) = incident_id(&tx, incident_key)? else {
            return Ok(false);
        };
        add_timeline(&tx, id, now, kind, message, None)?;
        tx.commit()?;
        Ok(true)
    }

    /// Releases an incident's jobs held for approval and records who approved and when.
    /// Returns the hosts whose agents now have work.
    pub fn approve_jobs(
        &self,
        incident_key: &str,
        by: &str,
        now: &str,
        now_ms: i64,
    ) -> Result<Vec<String>> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let Some(incident) = incident_id(&tx, incident_key)? else {
            return Ok(Vec::new());
        };
        let held: Vec<(i64, String, String)> = {
            let mut stmt = tx.prepare_cached(
                "SELECT id, host, probe FROM jobs WHERE incident_id = ?1 AND status = 'awaiting_approval' ORDER BY id",
            )?;
            let rows = stmt.query_map([incident], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for (id, _, _) in &held {
            tx.execute(
                "UPDATE jobs SET status = 'queued', claim_by_ms = ?2 + 10000 WHERE id = ?1",
                params![id, now_ms],
            )?;
        }
        let probes: Vec<&str> = held.iter().map(|(_, _, p)| p.as_str()).collect();
        let message = if probes.is_empty() {
            format!("approved by {by} at {now} (nothing was waiting)")
        } else {
            format!("approved by {by} at {now}: {} released", probes.join(", "))
        };
        add_timeline(&tx, incident, now, TimelineKind::Note, &message, None)?;
        tx.commit()?;
        let mut hosts: Vec<String> = held.into_iter().map(|(_, h, _)| h).collect();
        hosts.dedup();
        Ok(hosts)
    }

    /// At start: jobs that were waiting on this server while it was down get their
    /// deadlines counted from now, so a restart is not mistaken for an unreachable host.
    pub fn renew_job_deadlines(&self, now_ms: i64, claim_within_ms: i64) -> Result<usize> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let queued = tx.execute(
            "UPDATE jobs SET claim_by_ms = MAX(claim_by_ms, ?1 + ?2) WHERE status = 'queued'",
            params![now_ms, claim_within_ms],
        )?;
        // An agent keeps a finished probe's answer for about half a minute while it cannot
        // reach the server.
        let running = tx.execute(
            "UPDATE jobs SET finish_by_ms = MAX(COALESCE(finish_by_ms, 0), ?1 + 30000) WHERE status = 'running'",
            params![now_ms],
        )?;
        tx.commit()?;
        Ok(queued + running)
    }

    /// Status of a job, for tests and the API.
    pub fn job_status(&self, id: i64) -> Result<Option<JobStatus>> {
        let status: Option<String> = self
            .reader()
            .query_row("SELECT status FROM jobs WHERE id = ?1", [id], |r| r.get(0))
            .optional()?;
        Ok(status.as_deref().and_then(JobStatus::parse))
    }
}

fn incident_id(tx: &Transaction<'_>, key: &str) -> Result<Option<i64>> {
    Ok(tx
        .query_row("SELECT id FROM incidents WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .optional()?)
}

fn incident_key(tx: &Transaction<'_>, id: i64) -> Result<Option<String>> {
    Ok(tx
        .query_row("SELECT key FROM incidents WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?)
}

fn host_row(r: &Row<'_>) -> rusqlite::Result<Result<Host>> {
    let name: String = r.get(0)?;
    let collector: Option<String> = r.get(9)?;
    let labels: String = r.get(10)?;
    let collector = match collector.map(|c| serde_json::from_str(&c)).transpose() {
        Ok(c) => c,
        Err(e) => {
            return Ok(Err(StoreError::Corrupt(format!(
                "collector of {name}: {e}"
            ))))
        }
    };
    let labels: BTreeMap<String, String> = match serde_json::from_str(&labels) {
        Ok(l) => l,
        Err(e) => return Ok(Err(StoreError::Corrupt(format!("labels of {name}: {e}")))),
    };
    Ok(Ok(Host {
        name,
        appcode: r.get(1)?,
        instance_id: r.get(2)?,
        enrolled_at: r.get(3)?,
        revoked_at: r.get(4)?,
        last_seen_at: r.get(5)?,
        agent_version: r.get(6)?,
        uptime_secs: r.get::<_, Option<i64>>(7)?.map(|v| v.max(0) as u64),
        interval_secs: r.get::<_, Option<i64>>(8)?.map(|v| v.max(0) as u64),
        collector,
        labels,
    }))
}
