//! Enrolled hosts and the probe jobs handed to their agents.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use vigil_core::{Heartbeat, Host, Job, JobResult, JobStatus, TimelineKind};

use super::{add_timeline, after, incident_id, known, shown, unsigned, PostgresStore};
use crate::contract::HostStore;
use crate::types::*;
use crate::{Result, StoreError};

/// Extra time past a probe's own timeout before a running job is given up on.
const ANSWER_GRACE_MS: i64 = 5_000;
/// An agent keeps a finished probe's answer for about half a minute while it cannot
/// reach the server.
const ANSWER_KEPT: Duration = Duration::from_secs(30);

const HOST_COLUMNS: &str = "name, appcode, instance_id, enrolled_at, revoked_at, last_seen_at, agent_version, uptime_secs, interval_secs, collector, labels";

fn host_row(row: &Row) -> Result<Host> {
    let name: String = row.try_get("name")?;
    let labels: serde_json::Value = row.try_get("labels")?;
    let labels: BTreeMap<String, String> = serde_json::from_value(labels)
        .map_err(|e| StoreError::Corrupt(format!("host {name}: labels: {e}")))?;
    let uptime: Option<i64> = row.try_get("uptime_secs")?;
    let interval: Option<i64> = row.try_get("interval_secs")?;
    Ok(Host {
        appcode: row.try_get("appcode")?,
        instance_id: row.try_get("instance_id")?,
        enrolled_at: row.try_get("enrolled_at")?,
        revoked_at: row.try_get("revoked_at")?,
        last_seen_at: row.try_get("last_seen_at")?,
        agent_version: row.try_get("agent_version")?,
        uptime_secs: uptime
            .map(|v| unsigned(v, format_args!("host {name}"), "uptime"))
            .transpose()?,
        interval_secs: interval
            .map(|v| unsigned(v, format_args!("host {name}"), "interval"))
            .transpose()?,
        collector: row.try_get("collector")?,
        labels,
        name,
    })
}

fn job_status(text: &str, id: i64) -> Result<JobStatus> {
    known(text, JobStatus::parse, format_args!("job {id}"), "status")
}

/// How long an agent had to take a job (from its creation, or from its approval).
/// A job's end may be what an incident's comments and messages wait for: they become due
/// now instead of at their wait's deadline.
async fn wake_waiting_steps(
    tx: &tokio_postgres::Transaction<'_>,
    incident: i64,
    now: Timestamp,
) -> Result<()> {
    tx.execute(
        "UPDATE run_steps SET next_attempt_at = $2
         WHERE status = 'pending' AND name IN ('comment', 'notify') AND next_attempt_at > $2
           AND run_id IN (SELECT id FROM runs WHERE incident_id = $1 AND finished_at IS NULL)",
        &[&incident, &now],
    )
    .await?;
    Ok(())
}

fn claim_window(row: &Row) -> Result<Duration> {
    let ms: i64 = row.try_get("claim_within_ms")?;
    Ok(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

async fn host_by<C: GenericClient>(client: &C, column: &str, value: &str) -> Result<Option<Host>> {
    let sql = format!("SELECT {HOST_COLUMNS} FROM hosts WHERE {column} = $1 ORDER BY name LIMIT 1");
    client
        .query_opt(sql.as_str(), &[&value])
        .await?
        .map(|row| host_row(&row))
        .transpose()
}

#[async_trait]
impl HostStore for PostgresStore {
    async fn enroll_host(&self, enrollment: NewHost, now: Timestamp) -> Result<Enrollment> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // `xmax = 0` only on a freshly inserted row: tells created from renewed in the
        // same statement, so two enrollments racing cannot both create.
        let created: bool = tx
            .query_one(
                "INSERT INTO hosts (name, appcode, instance_id, enrolled_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (name) DO UPDATE SET revoked_at = NULL,
                   appcode = COALESCE(EXCLUDED.appcode, hosts.appcode),
                   instance_id = COALESCE(EXCLUDED.instance_id, hosts.instance_id)
                 RETURNING (xmax = 0)",
                &[
                    &enrollment.name,
                    &enrollment.appcode,
                    &enrollment.instance_id,
                    &now,
                ],
            )
            .await?
            .try_get(0)?;
        tx.execute(
            "INSERT INTO tokens (name, hash, role, created_at) VALUES ($1, $2, 'host', $3)
             ON CONFLICT (name) DO UPDATE SET hash = EXCLUDED.hash, role = 'host',
               created_at = EXCLUDED.created_at, revoked_at = NULL",
            &[
                &host_token_name(&enrollment.name),
                &enrollment.token_hash,
                &now,
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(if created {
            Enrollment::Created
        } else {
            Enrollment::Renewed
        })
    }

    async fn revoke_host(&self, name: &str, now: Timestamp) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let changed = tx
            .execute(
                "UPDATE hosts SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
                &[&name, &now],
            )
            .await?;
        tx.execute(
            "UPDATE tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
            &[&host_token_name(name), &now],
        )
        .await?;
        tx.commit().await?;
        Ok(changed > 0)
    }

    async fn hosts(&self) -> Result<Vec<Host>> {
        let client = self.client().await?;
        let sql = format!("SELECT {HOST_COLUMNS} FROM hosts ORDER BY name");
        let rows = client.query(sql.as_str(), &[]).await?;
        rows.iter().map(host_row).collect()
    }

    async fn host(&self, name: &str) -> Result<Option<Host>> {
        let client = self.client().await?;
        host_by(&client, "name", name).await
    }

    async fn host_for_alarm(
        &self,
        host: Option<&str>,
        instance_id: Option<&str>,
    ) -> Result<Option<Host>> {
        let client = self.client().await?;
        if let Some(name) = host {
            if let Some(found) = host_by(&client, "name", name).await? {
                return Ok(Some(found));
            }
        }
        let Some(instance_id) = instance_id else {
            return Ok(None);
        };
        if let Some(found) = host_by(&client, "instance_id", instance_id).await? {
            return Ok(Some(found));
        }
        // Hosts enrolled under their instance id.
        host_by(&client, "name", instance_id).await
    }

    async fn record_heartbeat(
        &self,
        name: &str,
        heartbeat: Heartbeat,
        now: Timestamp,
    ) -> Result<()> {
        let labels = serde_json::to_value(&heartbeat.labels)
            .map_err(|e| StoreError::Corrupt(format!("host {name}: labels: {e}")))?;
        let uptime = i64::try_from(heartbeat.uptime_secs).unwrap_or(i64::MAX);
        let interval = i64::try_from(heartbeat.interval_secs).unwrap_or(i64::MAX);
        let client = self.client().await?;
        client
            .execute(
                "UPDATE hosts SET last_seen_at = $2, agent_version = $3, uptime_secs = $4,
                   interval_secs = $5, collector = $6, labels = $7,
                   appcode = COALESCE(appcode, $8) WHERE name = $1",
                &[
                    &name,
                    &now,
                    &heartbeat.agent_version,
                    &uptime,
                    &interval,
                    &heartbeat.collector,
                    &labels,
                    &heartbeat.appcode,
                ],
            )
            .await?;
        Ok(())
    }

    async fn record_metrics(&self, name: &str, batch_json: String, now: Timestamp) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE hosts SET last_metrics = $2, last_seen_at = $3 WHERE name = $1",
                &[&name, &batch_json, &now],
            )
            .await?;
        Ok(())
    }

    async fn last_metrics(&self, name: &str) -> Result<Option<String>> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT last_metrics FROM hosts WHERE name = $1", &[&name])
            .await?;
        Ok(match row {
            Some(row) => row.try_get(0)?,
            None => None,
        })
    }

    async fn claim_jobs(&self, host: &str, now: Timestamp, limit: usize) -> Result<Vec<Job>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let rows = client
            .query(
                "WITH picked AS (
                   SELECT id FROM jobs WHERE host = $1 AND status = 'queued'
                   ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED
                 )
                 UPDATE jobs j SET status = 'running', claimed_at = $3,
                   finish_by = $3::timestamptz + (j.timeout_ms + $4::bigint) * interval '1 millisecond'
                 FROM picked WHERE j.id = picked.id
                 RETURNING j.id, j.probe, j.args, j.timeout_ms, j.created_at",
                &[&host, &limit, &now, &ANSWER_GRACE_MS],
            )
            .await?;
        let mut jobs = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get("id")?;
            let timeout: i64 = row.try_get("timeout_ms")?;
            jobs.push(Job {
                id,
                probe: row.try_get("probe")?,
                args: row.try_get("args")?,
                timeout_ms: unsigned(timeout, format_args!("job {id}"), "timeout")?,
                created_at: row.try_get("created_at")?,
            });
        }
        jobs.sort_by_key(|job| job.id);
        Ok(jobs)
    }

    async fn finish_job(
        &self,
        host: &str,
        id: i64,
        result: JobResult,
        now: Timestamp,
    ) -> Result<Option<JobEnd>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some(row) = tx
            .query_opt(
                "SELECT j.probe, j.incident_id, j.claim_within_ms, i.key, h.last_seen_at
                 FROM jobs j LEFT JOIN incidents i ON i.id = j.incident_id
                   LEFT JOIN hosts h ON h.name = j.host
                 WHERE j.id = $1 AND j.host = $2 AND j.status IN ('queued', 'running')
                 FOR UPDATE OF j",
                &[&id, &host],
            )
            .await?
        else {
            return Ok(None);
        };
        let probe: String = row.try_get("probe")?;
        let incident: Option<i64> = row.try_get("incident_id")?;
        let duration = i64::try_from(result.duration_ms).unwrap_or(i64::MAX);
        tx.execute(
            "UPDATE jobs SET status = $2, finished_at = $3, output = $4, exit_code = $5,
               error = $6, duration_ms = $7 WHERE id = $1",
            &[
                &id,
                &result.status.as_str(),
                &now,
                &result.output,
                &result.exit_code,
                &result.error,
                &duration,
            ],
        )
        .await?;
        if let Some(incident) = incident {
            let (kind, message) = result.describe(host, &probe);
            add_timeline(&tx, incident, now, kind, &message, None).await?;
            wake_waiting_steps(&tx, incident, now).await?;
        }
        tx.commit().await?;
        Ok(Some(JobEnd {
            id,
            host: host.to_string(),
            probe,
            incident_key: row.try_get("key")?,
            status: result.status,
            was_claimed: true,
            host_last_seen_at: row.try_get("last_seen_at")?,
            claim_within: claim_window(&row)?,
        }))
    }

    async fn expire_jobs(&self, now: Timestamp) -> Result<Vec<JobEnd>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let rows = tx
            .query(
                "SELECT j.id, j.host, j.probe, j.status, j.incident_id, j.claim_within_ms,
                   i.key, h.last_seen_at
                 FROM jobs j LEFT JOIN incidents i ON i.id = j.incident_id
                   LEFT JOIN hosts h ON h.name = j.host
                 WHERE (j.status = 'queued' AND j.claim_by <= $1)
                    OR (j.status = 'running' AND j.finish_by <= $1)
                 ORDER BY j.id
                 FOR UPDATE OF j SKIP LOCKED",
                &[&now],
            )
            .await?;
        let mut ended = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get("id")?;
            let status: String = row.try_get("status")?;
            let was_claimed = job_status(&status, id)? == JobStatus::Running;
            let job = JobEnd {
                id,
                host: row.try_get("host")?,
                probe: row.try_get("probe")?,
                incident_key: row.try_get("key")?,
                status: JobStatus::Expired,
                was_claimed,
                host_last_seen_at: row.try_get("last_seen_at")?,
                claim_within: claim_window(&row)?,
            };
            tx.execute(
                "UPDATE jobs SET status = 'expired', finished_at = $2 WHERE id = $1",
                &[&id, &now],
            )
            .await?;
            let incident: Option<i64> = row.try_get("incident_id")?;
            if let Some(incident) = incident {
                wake_waiting_steps(&tx, incident, now).await?;
                add_timeline(
                    &tx,
                    incident,
                    now,
                    TimelineKind::HostCheck,
                    &job.describe_expiry(),
                    None,
                )
                .await?;
            }
            ended.push(job);
        }
        tx.commit().await?;
        Ok(ended)
    }

    async fn approve_jobs(
        &self,
        incident_key: &str,
        by: &str,
        claim_within: Duration,
        now: Timestamp,
    ) -> Result<Vec<String>> {
        let claim_by = after(now, claim_within)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some(incident) = incident_id(&tx, incident_key).await? else {
            return Ok(Vec::new());
        };
        let rows = tx
            .query(
                "UPDATE jobs SET status = 'queued', claim_by = $2, claim_within_ms = $3
                 WHERE incident_id = $1 AND status = 'awaiting_approval'
                 RETURNING id, host, probe",
                &[&incident, &claim_by, &super::millis(claim_within)],
            )
            .await?;
        let mut held = Vec::with_capacity(rows.len());
        for row in rows {
            held.push((
                row.try_get::<_, i64>("id")?,
                row.try_get::<_, String>("host")?,
                row.try_get::<_, String>("probe")?,
            ));
        }
        held.sort_by_key(|(id, _, _)| *id);
        let message = if held.is_empty() {
            format!("approved by {by} at {} (nothing was waiting)", shown(now))
        } else {
            let probes: Vec<&str> = held.iter().map(|(_, _, p)| p.as_str()).collect();
            format!(
                "approved by {by} at {}: {} released",
                shown(now),
                probes.join(", ")
            )
        };
        add_timeline(&tx, incident, now, TimelineKind::Note, &message, None).await?;
        tx.commit().await?;
        let mut hosts: Vec<String> = Vec::new();
        for (_, host, _) in held {
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
        Ok(hosts)
    }

    async fn renew_job_deadlines(&self, now: Timestamp, claim_within: Duration) -> Result<u64> {
        let claim_by = after(now, claim_within)?;
        let answer_by = after(now, ANSWER_KEPT)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let queued = tx
            .execute(
                "UPDATE jobs SET claim_by = GREATEST(claim_by, $1) WHERE status = 'queued'",
                &[&claim_by],
            )
            .await?;
        let running = tx
            .execute(
                "UPDATE jobs SET status = 'queued', claim_by = GREATEST(claim_by, $1), finish_by = NULL
                 WHERE status = 'running'",
                &[&answer_by],
            )
            .await?;
        tx.commit().await?;
        Ok(queued + running)
    }

    async fn job_status(&self, id: i64) -> Result<Option<JobStatus>> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT status FROM jobs WHERE id = $1", &[&id])
            .await?;
        match row {
            Some(row) => {
                let status: String = row.try_get(0)?;
                Ok(Some(job_status(&status, id)?))
            }
            None => Ok(None),
        }
    }

    async fn incident_jobs(&self, incident_key: &str) -> Result<Vec<JobRecord>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT j.id, j.host, j.probe, j.status, j.created_at
                 FROM jobs j JOIN incidents i ON i.id = j.incident_id
                 WHERE i.key = $1 ORDER BY j.id",
                &[&incident_key],
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get("id")?;
            let status: String = row.try_get("status")?;
            out.push(JobRecord {
                id,
                host: row.try_get("host")?,
                probe: row.try_get("probe")?,
                status: job_status(&status, id)?,
                created_at: row.try_get("created_at")?,
            });
        }
        Ok(out)
    }
}
