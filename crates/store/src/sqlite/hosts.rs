//! Enrolled hosts and the probe jobs handed to their agents.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Row, Transaction};
use vigil_core::{Heartbeat, Host, Job, JobResult, JobStatus, TimelineKind};

use super::incidents::{add_timeline, incident_id, incident_key};
use super::{
    exec, json_text, millis, one, parse_enum, parse_opt_time, parse_time, text, SqliteStore,
};
use crate::{
    host_token_name, Enrollment, HostStore, JobEnd, JobRecord, NewHost, NewJob, Result, StoreError,
    Timestamp,
};

/// Extra time past a probe's own timeout before a running job is given up on.
const ANSWER_GRACE_MS: i64 = 5_000;
/// An agent keeps a finished probe's answer for about half a minute while it cannot reach
/// the server.
const ANSWER_KEPT_MS: i64 = 30_000;

const HOST_COLUMNS: &str = "name, appcode, instance_id, enrolled_at, revoked_at, last_seen_at, agent_version, uptime_secs, interval_secs, collector, labels";

#[async_trait]
impl HostStore for SqliteStore {
    async fn enroll_host(&self, host: NewHost, now: Timestamp) -> Result<Enrollment> {
        self.blocking(move |db| {
            db.write(|tx| {
                let existed = one(tx, "SELECT 1 FROM hosts WHERE name = ?1", [&host.name], |_| Ok(()))
                    .optional()?
                    .is_some();
                if existed {
                    exec(
                    tx,
                        "UPDATE hosts SET revoked_at = NULL, appcode = COALESCE(?2, appcode),
                           instance_id = COALESCE(?3, instance_id),
                           enrolled_at = COALESCE(enrolled_at, ?4) WHERE name = ?1",
                        params![host.name, host.appcode, host.instance_id, text(now)],
                    )?;
                } else {
                    exec(
                    tx,
                        "INSERT INTO hosts (name, appcode, instance_id, enrolled_at) VALUES (?1, ?2, ?3, ?4)",
                        params![host.name, host.appcode, host.instance_id, text(now)],
                    )?;
                }
                exec(
                    tx,
                    "INSERT INTO tokens (name, hash, role, created_at) VALUES (?1, ?2, 'host', ?3)
                     ON CONFLICT (name) DO UPDATE SET hash = excluded.hash, role = 'host',
                       created_at = excluded.created_at, revoked_at = NULL",
                    params![host_token_name(&host.name), host.token_hash, text(now)],
                )?;
                Ok(if existed {
                    Enrollment::Renewed
                } else {
                    Enrollment::Created
                })
            })
        })
        .await
    }

    async fn revoke_host(&self, name: &str, now: Timestamp) -> Result<bool> {
        let name = name.to_string();
        self.blocking(move |db| {
            db.write(|tx| {
                let changed = exec(
                    tx,
                    "UPDATE hosts SET revoked_at = ?2
                     WHERE name = ?1 AND revoked_at IS NULL AND enrolled_at IS NOT NULL",
                    params![name, text(now)],
                )?;
                exec(
                    tx,
                    "UPDATE tokens SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
                    params![host_token_name(&name), text(now)],
                )?;
                Ok(changed > 0)
            })
        })
        .await
    }

    async fn hosts(&self) -> Result<Vec<Host>> {
        self.blocking(|db| {
            db.read(|tx| {
                let mut stmt =
                    tx.prepare_cached(&format!("SELECT {HOST_COLUMNS} FROM hosts ORDER BY name"))?;
                let rows = stmt.query_map([], raw_host)?;
                rows.map(|r| r?.decode()).collect()
            })
        })
        .await
    }

    async fn host(&self, name: &str) -> Result<Option<Host>> {
        let name = name.to_string();
        self.blocking(move |db| db.read(|tx| host(tx, &name))).await
    }

    async fn host_for_alarm(
        &self,
        host_name: Option<&str>,
        instance_id: Option<&str>,
    ) -> Result<Option<Host>> {
        let (host_name, instance_id) = (
            host_name.map(str::to_string),
            instance_id.map(str::to_string),
        );
        self.blocking(move |db| {
            db.read(|tx| {
                if let Some(name) = &host_name {
                    if let Some(found) = host(tx, name)? {
                        return Ok(Some(found));
                    }
                }
                let Some(instance_id) = instance_id else {
                    return Ok(None);
                };
                tx.prepare_cached(&format!(
                    "SELECT {HOST_COLUMNS} FROM hosts WHERE instance_id = ?1 OR name = ?1 LIMIT 1"
                ))?
                .query_row([instance_id], raw_host)
                .optional()?
                .map(RawHost::decode)
                .transpose()
            })
        })
        .await
    }

    async fn record_heartbeat(
        &self,
        name: &str,
        heartbeat: Heartbeat,
        now: Timestamp,
    ) -> Result<()> {
        let name = name.to_string();
        self.blocking(move |db| {
            let collector = heartbeat
                .collector
                .as_ref()
                .map(serde_json::Value::to_string);
            let labels = json_text(&heartbeat.labels, "labels")?;
            db.write_journal(|tx| {
                exec(
                    tx,
                    "UPDATE hosts SET last_seen_at = ?2, agent_version = ?3, uptime_secs = ?4,
                       interval_secs = ?5, collector = ?6, labels = ?7,
                       appcode = COALESCE(appcode, ?8) WHERE name = ?1",
                    params![
                        name,
                        text(now),
                        heartbeat.agent_version,
                        heartbeat.uptime_secs as i64,
                        heartbeat.interval_secs as i64,
                        collector,
                        labels,
                        heartbeat.appcode
                    ],
                )?;
                Ok(())
            })
        })
        .await
    }

    async fn record_metrics(&self, name: &str, batch_json: String, now: Timestamp) -> Result<()> {
        let name = name.to_string();
        self.blocking(move |db| {
            db.write_journal(|tx| {
                exec(
                    tx,
                    "UPDATE hosts SET last_metrics = ?2, last_seen_at = ?3 WHERE name = ?1",
                    params![name, batch_json, text(now)],
                )?;
                Ok(())
            })
        })
        .await
    }

    async fn last_metrics(&self, name: &str) -> Result<Option<String>> {
        let name = name.to_string();
        self.blocking(move |db| {
            db.read(|tx| {
                Ok(one(
                    tx,
                    "SELECT last_metrics FROM hosts WHERE name = ?1",
                    [name],
                    |r| r.get(0),
                )
                .optional()?
                .flatten())
            })
        })
        .await
    }

    async fn claim_jobs(&self, host: &str, now: Timestamp, limit: usize) -> Result<Vec<Job>> {
        let host = host.to_string();
        self.blocking(move |db| {
            db.write_journal(|tx| {
                let raw: Vec<(i64, String, String, i64, String)> = {
                    let mut stmt = tx.prepare_cached(
                        "SELECT id, probe, args, timeout_ms, created_at FROM jobs
                         WHERE host = ?1 AND status = 'queued' ORDER BY id LIMIT ?2",
                    )?;
                    let rows = stmt.query_map(params![host, limit as i64], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })?;
                    rows.collect::<rusqlite::Result<_>>()?
                };
                let mut jobs = Vec::with_capacity(raw.len());
                for (id, probe, args, timeout_ms, created_at) in raw {
                    let what = || format!("job {id}");
                    let job = Job {
                        id,
                        probe,
                        args: serde_json::from_str(&args)
                            .map_err(|e| StoreError::Corrupt(format!("{}: args: {e}", what())))?,
                        timeout_ms: timeout_ms.max(0) as u64,
                        created_at: parse_time(&created_at, what)?,
                    };
                    tx.prepare_cached(
                        "UPDATE jobs SET status = 'running', claimed_at = ?2, finish_by_ms = ?3 WHERE id = ?1",
                    )?
                    .execute(params![
                        job.id,
                        text(now),
                        millis(now) + job.timeout_ms as i64 + ANSWER_GRACE_MS
                    ])?;
                    jobs.push(job);
                }
                Ok(jobs)
            })
        })
        .await
    }

    async fn finish_job(
        &self,
        host: &str,
        id: i64,
        result: JobResult,
        now: Timestamp,
    ) -> Result<Option<JobEnd>> {
        let host = host.to_string();
        self.blocking(move |db| {
            db.write_journal(|tx| {
                let found: Option<(String, Option<i64>, String, i64, Option<i64>, Option<String>)> = one(
                    tx,
                        "SELECT j.probe, j.incident_id, j.created_at, j.claim_by_ms, j.claim_within_ms, h.last_seen_at
                         FROM jobs j LEFT JOIN hosts h ON h.name = j.host
                         WHERE j.id = ?1 AND j.host = ?2 AND j.status IN ('queued', 'running')",
                        params![id, host],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
                    )
                    .optional()?;
                let Some((probe, incident, created_at, claim_by_ms, claim_within_ms, last_seen)) = found else {
                    return Ok(None);
                };
                exec(
                    tx,
                    "UPDATE jobs SET status = ?2, finished_at = ?3, output = ?4, exit_code = ?5,
                       error = ?6, duration_ms = ?7 WHERE id = ?1",
                    params![
                        id,
                        result.status.as_str(),
                        text(now),
                        result.output,
                        result.exit_code,
                        result.error,
                        result.duration_ms as i64
                    ],
                )?;
                let incident_key = match incident {
                    Some(incident) => {
                        let (kind, message) = result.describe(&host, &probe);
                        add_timeline(tx, incident, now, kind, &message, None)?;
                        wake_waiting_steps(tx, incident, now)?;
                        incident_key(tx, incident)?
                    }
                    None => None,
                };
                let created = parse_time(&created_at, || format!("job {id}: created_at"))?;
                Ok(Some(JobEnd {
                    id,
                    host: host.clone(),
                    probe,
                    incident_key,
                    status: result.status,
                    was_claimed: true,
                    host_last_seen_at: parse_opt_time(last_seen, || format!("job {id}: host last seen"))?,
                    claim_within: claim_window(created, claim_by_ms, claim_within_ms),
                }))
            })
        })
        .await
    }

    async fn expire_jobs(&self, now: Timestamp) -> Result<Vec<JobEnd>> {
        self.blocking(move |db| {
            db.write_journal(|tx| {
                type Overdue = (i64, String, String, String, Option<i64>, Option<String>, String, i64, Option<i64>);
                let overdue: Vec<Overdue> = {
                    let mut stmt = tx.prepare_cached(
                        "SELECT j.id, j.host, j.probe, j.status, j.incident_id, h.last_seen_at, j.created_at, j.claim_by_ms, j.claim_within_ms
                         FROM jobs j LEFT JOIN hosts h ON h.name = j.host
                         WHERE (j.status = 'queued' AND j.claim_by_ms <= ?1)
                            OR (j.status = 'running' AND j.finish_by_ms <= ?1)",
                    )?;
                    let rows = stmt.query_map([millis(now)], |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                            r.get(6)?,
                            r.get(7)?,
                            r.get(8)?,
                        ))
                    })?;
                    rows.collect::<rusqlite::Result<_>>()?
                };
                let mut ended = Vec::with_capacity(overdue.len());
                for (id, host, probe, status, incident, last_seen, created_at, claim_by_ms, claim_within_ms) in overdue {
                    let what = || format!("job {id}");
                    let status = parse_enum(&status, JobStatus::parse, what)?;
                    let created = parse_time(&created_at, what)?;
                    let mut job = JobEnd {
                        id,
                        host,
                        probe,
                        incident_key: None,
                        status: JobStatus::Expired,
                        was_claimed: status == JobStatus::Running,
                        host_last_seen_at: parse_opt_time(last_seen, what)?,
                        claim_within: claim_window(created, claim_by_ms, claim_within_ms),
                    };
                    exec(
                    tx,
                        "UPDATE jobs SET status = 'expired', finished_at = ?2 WHERE id = ?1",
                        params![id, text(now)],
                    )?;
                    if let Some(incident) = incident {
                        wake_waiting_steps(tx, incident, now)?;
                        job.incident_key = incident_key(tx, incident)?;
                        add_timeline(
                            tx,
                            incident,
                            now,
                            TimelineKind::HostCheck,
                            &job.describe_expiry(),
                            None,
                        )?;
                    }
                    ended.push(job);
                }
                Ok(ended)
            })
        })
        .await
    }

    async fn approve_jobs(
        &self,
        incident_key: &str,
        by: &str,
        claim_within: Duration,
        now: Timestamp,
    ) -> Result<Vec<String>> {
        let (key, by) = (incident_key.to_string(), by.to_string());
        self.blocking(move |db| {
            db.write(|tx| {
                let Some(incident) = incident_id(tx, &key)? else {
                    return Ok(Vec::new());
                };
                let held: Vec<(i64, String, String)> = {
                    let mut stmt = tx.prepare_cached(
                        "SELECT id, host, probe FROM jobs WHERE incident_id = ?1 AND status = 'awaiting_approval' ORDER BY id",
                    )?;
                    let rows =
                        stmt.query_map([incident], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                    rows.collect::<rusqlite::Result<_>>()?
                };
                for (id, _, _) in &held {
                    exec(
                    tx,
                        "UPDATE jobs SET status = 'queued', claim_by_ms = ?2, claim_within_ms = ?3 WHERE id = ?1",
                        params![
                            id,
                            millis(now) + claim_within.as_millis() as i64,
                            claim_within.as_millis() as i64
                        ],
                    )?;
                }
                let probes: Vec<&str> = held.iter().map(|(_, _, p)| p.as_str()).collect();
                let at = text(now);
                let message = if probes.is_empty() {
                    format!("approved by {by} at {at} (nothing was waiting)")
                } else {
                    format!("approved by {by} at {at}: {} released", probes.join(", "))
                };
                add_timeline(tx, incident, now, TimelineKind::Note, &message, None)?;
                let mut hosts: Vec<String> = held.into_iter().map(|(_, h, _)| h).collect();
                hosts.sort();
                hosts.dedup();
                Ok(hosts)
            })
        })
        .await
    }

    async fn renew_job_deadlines(&self, now: Timestamp, claim_within: Duration) -> Result<u64> {
        self.blocking(move |db| {
            db.write(|tx| {
                let now_ms = millis(now);
                let queued = exec(
                    tx,
                    "UPDATE jobs SET claim_by_ms = MAX(claim_by_ms, ?1 + ?2) WHERE status = 'queued'",
                    params![now_ms, claim_within.as_millis() as i64],
                )?;
                let running = exec(
                    tx,
                    "UPDATE jobs SET status = 'queued', claim_by_ms = MAX(claim_by_ms, ?1 + ?2), finish_by_ms = NULL
                     WHERE status = 'running'",
                    params![now_ms, ANSWER_KEPT_MS],
                )?;
                Ok((queued + running) as u64)
            })
        })
        .await
    }

    async fn job_status(&self, id: i64) -> Result<Option<JobStatus>> {
        self.blocking(move |db| {
            db.read(|tx| {
                let status: Option<String> =
                    one(tx, "SELECT status FROM jobs WHERE id = ?1", [id], |r| {
                        r.get(0)
                    })
                    .optional()?;
                status
                    .map(|s| parse_enum(&s, JobStatus::parse, || format!("job {id}: status")))
                    .transpose()
            })
        })
        .await
    }

    async fn incident_jobs(&self, incident_key: &str) -> Result<Vec<JobRecord>> {
        let key = incident_key.to_string();
        self.blocking(move |db| {
            db.read(|tx| {
                let mut stmt = tx.prepare_cached(
                    "SELECT j.id, j.host, j.probe, j.status, j.created_at FROM jobs j
                     JOIN incidents i ON i.id = j.incident_id WHERE i.key = ?1 ORDER BY j.id",
                )?;
                let rows = stmt.query_map([&key], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                    ))
                })?;
                let mut out = Vec::new();
                for row in rows {
                    let (id, host, probe, status, created_at) = row?;
                    let what = || format!("job {id}");
                    out.push(JobRecord {
                        id,
                        host,
                        probe,
                        status: parse_enum(&status, JobStatus::parse, what)?,
                        created_at: parse_time(&created_at, what)?,
                    });
                }
                Ok(out)
            })
        })
        .await
    }
}

/// Queues an incident's probe jobs.
pub(super) fn insert_jobs(
    tx: &Transaction<'_>,
    incident: i64,
    jobs: &[NewJob],
    now: Timestamp,
) -> Result<()> {
    for job in jobs {
        tx.prepare_cached(
            "INSERT INTO jobs (host, incident_id, probe, args, timeout_ms, status, created_at, claim_by_ms, claim_within_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?
        .execute(params![
            job.host,
            incident,
            job.probe,
            job.args.to_string(),
            job.timeout.as_millis() as i64,
            if job.needs_approval {
                JobStatus::AwaitingApproval.as_str()
            } else {
                JobStatus::Queued.as_str()
            },
            text(now),
            millis(now) + job.claim_within.as_millis() as i64,
            job.claim_within.as_millis() as i64
        ])?;
    }
    Ok(())
}

/// A job's end may be what an incident's comments and messages wait for: they become due
/// now instead of at their wait's deadline.
fn wake_waiting_steps(tx: &Transaction<'_>, incident: i64, now: Timestamp) -> Result<()> {
    tx.prepare_cached(
        "UPDATE run_steps SET next_attempt_ms = ?2,
           due_ms = CASE WHEN due_ms IS NOT NULL THEN MAX(?2, COALESCE(lease_until_ms, 0)) END
         WHERE status = 'pending' AND name IN ('comment', 'notify') AND next_attempt_ms > ?2
           AND run_id IN (SELECT id FROM runs WHERE incident_id = ?1 AND finished_at IS NULL)",
    )?
    .execute(params![incident, millis(now)])?;
    Ok(())
}

/// How long an agent had to take a job; rows from before schema 6 did not keep it and
/// had only their first window.
fn claim_window(created: Timestamp, claim_by_ms: i64, claim_within_ms: Option<i64>) -> Duration {
    let ms = claim_within_ms.unwrap_or(claim_by_ms - millis(created));
    Duration::from_millis(ms.max(0) as u64)
}

fn host(tx: &Transaction<'_>, name: &str) -> Result<Option<Host>> {
    tx.prepare_cached(&format!("SELECT {HOST_COLUMNS} FROM hosts WHERE name = ?1"))?
        .query_row([name], raw_host)
        .optional()?
        .map(RawHost::decode)
        .transpose()
}

struct RawHost {
    name: String,
    appcode: Option<String>,
    instance_id: Option<String>,
    enrolled_at: Option<String>,
    revoked_at: Option<String>,
    last_seen_at: Option<String>,
    agent_version: Option<String>,
    uptime_secs: Option<i64>,
    interval_secs: Option<i64>,
    collector: Option<String>,
    labels: String,
}

fn raw_host(r: &Row<'_>) -> rusqlite::Result<RawHost> {
    Ok(RawHost {
        name: r.get(0)?,
        appcode: r.get(1)?,
        instance_id: r.get(2)?,
        enrolled_at: r.get(3)?,
        revoked_at: r.get(4)?,
        last_seen_at: r.get(5)?,
        agent_version: r.get(6)?,
        uptime_secs: r.get(7)?,
        interval_secs: r.get(8)?,
        collector: r.get(9)?,
        labels: r.get(10)?,
    })
}

impl RawHost {
    fn decode(self) -> Result<Host> {
        let name = self.name;
        let what = |field: &str| format!("host {name}: {field}");
        let collector = self
            .collector
            .map(|c| serde_json::from_str(&c))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("{}: {e}", what("collector"))))?;
        let labels: BTreeMap<String, String> = serde_json::from_str(&self.labels)
            .map_err(|e| StoreError::Corrupt(format!("{}: {e}", what("labels"))))?;
        Ok(Host {
            appcode: self.appcode,
            instance_id: self.instance_id,
            enrolled_at: parse_opt_time(self.enrolled_at, || what("enrolled_at"))?,
            revoked_at: parse_opt_time(self.revoked_at, || what("revoked_at"))?,
            last_seen_at: parse_opt_time(self.last_seen_at, || what("last_seen_at"))?,
            agent_version: self.agent_version,
            uptime_secs: self.uptime_secs.map(|v| v.max(0) as u64),
            interval_secs: self.interval_secs.map(|v| v.max(0) as u64),
            collector,
            labels,
            name,
        })
    }
}
