//! Enrolled hosts and the probe jobs handed to their agents.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use vigil_core::{Heartbeat, Host, Job, JobResult, JobStatus, TimelineKind};

use super::{
    add_timeline, after, exec, incident_id, known, query, query_one, query_opt, shown, unsigned,
    PostgresStore,
};
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

/// A job's end may be what an incident's comments and messages wait for: they become due
/// now instead of at their wait's deadline. With the job's timeline entry, in one
/// statement: `$1` the incident, `$2` now, `$3` the entry's kind, `$4` its message.
const JOB_ENDED: &str = "WITH tl AS (
       INSERT INTO timeline (incident_id, at, kind, message) VALUES ($1, $2, $3, $4)
     )
     UPDATE run_steps SET next_attempt_at = $2,
       due_at = CASE WHEN due_at IS NOT NULL THEN GREATEST($2, COALESCE(lease_until, $2)) END
     WHERE status = 'pending' AND name IN ('comment', 'notify') AND next_attempt_at > $2
       AND run_id IN (SELECT id FROM runs WHERE incident_id = $1 AND finished_at IS NULL)";

/// [`JOB_ENDED`] for many jobs: `$1` their ids, `$2` now, `$3` their incidents and `$4`
/// the entries' messages (in order), `$5` the entries' kind.
const JOBS_EXPIRED: &str = "WITH ex AS (
       UPDATE jobs SET status = 'expired', finished_at = $2 WHERE id = ANY($1)
     ), wake AS (
       UPDATE run_steps SET next_attempt_at = $2,
         due_at = CASE WHEN due_at IS NOT NULL THEN GREATEST($2, COALESCE(lease_until, $2)) END
       WHERE status = 'pending' AND name IN ('comment', 'notify') AND next_attempt_at > $2
         AND run_id IN (SELECT id FROM runs WHERE incident_id = ANY($3) AND finished_at IS NULL)
     )
     INSERT INTO timeline (incident_id, at, kind, message)
     SELECT t.incident_id, $2, $5, t.message
     FROM unnest($3::bigint[], $4::text[]) WITH ORDINALITY AS t (incident_id, message, n)
     ORDER BY t.n";

/// How long an agent had to take a job (from its creation, or from its approval).
fn claim_window(row: &Row) -> Result<Duration> {
    let ms: i64 = row.try_get("claim_within_ms")?;
    Ok(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

async fn host_by<C: GenericClient>(client: &C, column: &str, value: &str) -> Result<Option<Host>> {
    let sql = format!("SELECT {HOST_COLUMNS} FROM hosts WHERE {column} = $1 ORDER BY name LIMIT 1");
    query_opt(client, sql.as_str(), &[&value])
        .await?
        .map(|row| host_row(&row))
        .transpose()
}

/// The host an alarm names, in one query: by its name (`$1`), else by its instance id
/// (`$2`), else enrolled under the instance id as its name.
static HOST_FOR_ALARM: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {HOST_COLUMNS} FROM hosts
         WHERE name = $1 OR instance_id = $2 OR name = $2
         ORDER BY CASE WHEN name = $1 THEN 0 WHEN instance_id = $2 THEN 1 ELSE 2 END, name
         LIMIT 1"
    )
});

#[async_trait]
impl HostStore for PostgresStore {
    async fn enroll_host(&self, enrollment: NewHost, now: Timestamp) -> Result<Enrollment> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // `xmax = 0` only on a freshly inserted row: tells created from renewed in the
        // same statement, so two enrollments racing cannot both create.
        let created: bool = query_one(
            &tx,
            "INSERT INTO hosts (name, appcode, instance_id, enrolled_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (name) DO UPDATE SET revoked_at = NULL,
                   enrolled_at = COALESCE(hosts.enrolled_at, EXCLUDED.enrolled_at),
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
        exec(
            &tx,
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
        let changed = exec(
            &tx,
            "UPDATE hosts SET revoked_at = $2
             WHERE name = $1 AND revoked_at IS NULL AND enrolled_at IS NOT NULL",
            &[&name, &now],
        )
        .await?;
        exec(
            &tx,
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
        let rows = query(&client, sql.as_str(), &[]).await?;
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
        if host.is_none() && instance_id.is_none() {
            return Ok(None);
        }
        let client = self.client().await?;
        query_opt(&client, &HOST_FOR_ALARM, &[&host, &instance_id])
            .await?
            .map(|row| host_row(&row))
            .transpose()
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
        exec(
            &client,
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
        exec(
            &client,
            "UPDATE hosts SET last_metrics = $2, last_seen_at = $3 WHERE name = $1",
            &[&name, &batch_json, &now],
        )
        .await?;
        Ok(())
    }

    async fn last_metrics(&self, name: &str) -> Result<Option<String>> {
        let client = self.client().await?;
        let row = query_opt(
            &client,
            "SELECT last_metrics FROM hosts WHERE name = $1",
            &[&name],
        )
        .await?;
        Ok(match row {
            Some(row) => row.try_get(0)?,
            None => None,
        })
    }

    async fn claim_jobs(&self, host: &str, now: Timestamp, limit: usize) -> Result<Vec<Job>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let rows = query(&client, "WITH picked AS (
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
        let duration = i64::try_from(result.duration_ms).unwrap_or(i64::MAX);
        let status = result.status.as_str();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // The status condition is checked again on the latest row version when a
        // concurrent end committed first, so a job ends once.
        let Some(row) = query_opt(
            &tx,
            "UPDATE jobs j SET status = $3, finished_at = $4, output = $5, exit_code = $6,
               error = $7, duration_ms = $8
             WHERE j.id = $1 AND j.host = $2 AND j.status IN ('queued', 'running')
             RETURNING j.probe, j.incident_id, j.claim_within_ms,
               (SELECT i.key FROM incidents i WHERE i.id = j.incident_id) AS key,
               (SELECT h.last_seen_at FROM hosts h WHERE h.name = j.host) AS last_seen_at",
            &[
                &id,
                &host,
                &status,
                &now,
                &result.output,
                &result.exit_code,
                &result.error,
                &duration,
            ],
        )
        .await?
        else {
            return Ok(None);
        };
        let probe: String = row.try_get("probe")?;
        let incident: Option<i64> = row.try_get("incident_id")?;
        if let Some(incident) = incident {
            let (kind, message) = result.describe(host, &probe);
            exec(&tx, JOB_ENDED, &[&incident, &now, &kind.as_str(), &message]).await?;
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
        let rows = query(
            &tx,
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
        let mut ids: Vec<i64> = Vec::with_capacity(rows.len());
        let mut incidents: Vec<i64> = Vec::new();
        let mut messages: Vec<String> = Vec::new();
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
            let incident: Option<i64> = row.try_get("incident_id")?;
            if let Some(incident) = incident {
                incidents.push(incident);
                messages.push(job.describe_expiry());
            }
            ids.push(id);
            ended.push(job);
        }
        if !ids.is_empty() {
            exec(
                &tx,
                JOBS_EXPIRED,
                &[
                    &ids,
                    &now,
                    &incidents,
                    &messages,
                    &TimelineKind::HostCheck.as_str(),
                ],
            )
            .await?;
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
        let rows = query(
            &tx,
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
        let queued = exec(
            &tx,
            "UPDATE jobs SET claim_by = GREATEST(claim_by, $1) WHERE status = 'queued'",
            &[&claim_by],
        )
        .await?;
        let running = exec(
            &tx,
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
        let row = query_opt(&client, "SELECT status FROM jobs WHERE id = $1", &[&id]).await?;
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
        let rows = query(
            &client,
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
