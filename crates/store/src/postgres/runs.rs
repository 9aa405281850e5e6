//! Durable playbook runs: one journal row per step, leased to one worker at a time.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{add_timeline, after, create_run, known, load_incident, unsigned, PostgresStore};
use crate::contract::RunStore;
use crate::types::*;
use crate::Result;

const STEP_COLUMNS: &str = "s.run_id, s.position, i.key, r.kind, s.name, s.channel, s.recipients, s.status, s.attempts, s.last_error, s.external_id, s.link, s.next_attempt_at, s.deadline, s.updated_at, s.lease_owner";

const STEP_FROM: &str =
    "run_steps s JOIN runs r ON r.id = s.run_id JOIN incidents i ON i.id = r.incident_id";

fn step_row(row: &Row) -> Result<RunStep> {
    let run_id: i64 = row.try_get("run_id")?;
    let position: i64 = row.try_get("position")?;
    let at = format!("run {run_id} step {position}");
    let kind: String = row.try_get("kind")?;
    let name: String = row.try_get("name")?;
    let channel: String = row.try_get("channel")?;
    let status: String = row.try_get("status")?;
    let attempts: i32 = row.try_get("attempts")?;
    Ok(RunStep {
        run_id,
        position,
        incident_key: row.try_get("key")?,
        kind: known(&kind, RunKind::parse, &at, "run kind")?,
        name: known(&name, StepName::parse, &at, "step name")?,
        channel: known(&channel, Channel::parse, &at, "channel")?,
        recipients: row.try_get("recipients")?,
        status: known(&status, StepStatus::parse, &at, "status")?,
        attempts: unsigned(i64::from(attempts), &at, "attempts")?,
        last_error: row.try_get("last_error")?,
        external_id: row.try_get("external_id")?,
        link: row.try_get("link")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        deadline: row.try_get("deadline")?,
        updated_at: row.try_get("updated_at")?,
        lease_owner: row.try_get("lease_owner")?,
    })
}

async fn incident_steps<C: GenericClient>(client: &C, incident_key: &str) -> Result<Vec<RunStep>> {
    let sql = format!(
        "SELECT {STEP_COLUMNS} FROM {STEP_FROM} WHERE i.key = $1 ORDER BY s.run_id, s.position"
    );
    let rows = client.query(sql.as_str(), &[&incident_key]).await?;
    rows.iter().map(step_row).collect()
}

async fn incident_tickets<C: GenericClient>(
    client: &C,
    incident_key: &str,
) -> Result<Vec<TicketRecord>> {
    let rows = client
        .query(
            "SELECT t.tracker, t.ticket_id, t.url FROM tickets t JOIN incidents i ON i.id = t.incident_id
             WHERE i.key = $1 ORDER BY t.tracker",
            &[&incident_key],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let tracker: String = row.try_get("tracker")?;
        out.push(TicketRecord {
            tracker: known(
                &tracker,
                Channel::parse,
                format_args!("ticket of {incident_key}"),
                "tracker",
            )?,
            id: row.try_get("ticket_id")?,
            url: row.try_get("url")?,
        });
    }
    Ok(out)
}

/// Closes a run when none of its steps is pending any more.
async fn close_if_done<C: GenericClient>(client: &C, run_id: i64, now: Timestamp) -> Result<()> {
    client
        .execute(
            "UPDATE runs SET finished_at = $2 WHERE id = $1 AND finished_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM run_steps WHERE run_id = $1 AND status = 'pending')",
            &[&run_id, &now],
        )
        .await?;
    Ok(())
}

async fn run_incident<C: GenericClient>(client: &C, run_id: i64) -> Result<i64> {
    Ok(client
        .query_one("SELECT incident_id FROM runs WHERE id = $1", &[&run_id])
        .await?
        .try_get(0)?)
}

#[async_trait]
impl RunStore for PostgresStore {
    async fn claim_steps(
        &self,
        worker: &str,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<RunStep>> {
        let until = after(now, lease)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // The first pending step of each open run; of those, the due and unleased ones,
        // locked (skipping any another worker is claiming right now) and leased at once.
        // The conditions on `s` in `due` are checked again on the latest row version when
        // a concurrent claim committed first, so a step is never leased twice.
        let claimed = tx
            .query(
                "WITH firsts AS (
                   SELECT DISTINCT ON (s.run_id) s.run_id, s.position
                   FROM run_steps s JOIN runs r ON r.id = s.run_id
                   WHERE r.finished_at IS NULL AND s.status = 'pending'
                   ORDER BY s.run_id, s.position
                 ), due AS (
                   SELECT s.run_id, s.position FROM run_steps s
                   JOIN firsts f ON f.run_id = s.run_id AND f.position = s.position
                   WHERE s.status = 'pending' AND s.next_attempt_at <= $1
                     AND (s.lease_until IS NULL OR s.lease_until <= $1)
                   ORDER BY s.next_attempt_at, s.run_id
                   LIMIT $4
                   FOR UPDATE OF s SKIP LOCKED
                 )
                 UPDATE run_steps s SET lease_owner = $2, lease_until = $3
                 FROM due WHERE s.run_id = due.run_id AND s.position = due.position
                 RETURNING s.run_id, s.position",
                &[&now, &worker, &until, &limit],
            )
            .await?;
        let mut steps = Vec::with_capacity(claimed.len());
        if !claimed.is_empty() {
            let runs: Vec<i64> = claimed
                .iter()
                .map(|row| row.try_get::<_, i64>(0))
                .collect::<std::result::Result<_, _>>()?;
            let positions: Vec<i64> = claimed
                .iter()
                .map(|row| row.try_get::<_, i64>(1))
                .collect::<std::result::Result<_, _>>()?;
            let sql = format!(
                "SELECT {STEP_COLUMNS} FROM {STEP_FROM}
                 JOIN unnest($1::bigint[], $2::bigint[]) AS c (run_id, position)
                   ON c.run_id = s.run_id AND c.position = s.position
                 ORDER BY s.next_attempt_at, s.run_id"
            );
            for row in tx.query(sql.as_str(), &[&runs, &positions]).await? {
                steps.push(step_row(&row)?);
            }
        }
        tx.commit().await?;
        Ok(steps)
    }

    async fn release_leases(&self, worker: &str) -> Result<u64> {
        let client = self.client().await?;
        Ok(client
            .execute(
                "UPDATE run_steps SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1",
                &[&worker],
            )
            .await?)
    }

    async fn next_step_due(&self) -> Result<Option<Timestamp>> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT MIN(GREATEST(s.next_attempt_at, COALESCE(s.lease_until, s.next_attempt_at)))
                 FROM run_steps s JOIN runs r ON r.id = s.run_id
                 WHERE r.finished_at IS NULL AND s.status = 'pending'
                   AND s.position = (SELECT MIN(p.position) FROM run_steps p
                                     WHERE p.run_id = s.run_id AND p.status = 'pending')",
                &[],
            )
            .await?;
        Ok(row.try_get(0)?)
    }

    async fn finish_step(&self, step: StepRef, finish: StepFinish, now: Timestamp) -> Result<bool> {
        let attempts = i32::try_from(finish.attempts).unwrap_or(i32::MAX);
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let updated = tx
            .execute(
                "UPDATE run_steps SET status = $3, attempts = $4, last_error = $5, external_id = $6,
                   link = $7, updated_at = $8, lease_owner = NULL, lease_until = NULL
                 WHERE run_id = $1 AND position = $2 AND status = 'pending' AND lease_owner = $9",
                &[
                    &step.run_id,
                    &step.position,
                    &finish.status.as_str(),
                    &attempts,
                    &finish.error,
                    &finish.external_id,
                    &finish.link,
                    &now,
                    &step.worker,
                ],
            )
            .await?;
        if updated == 0 {
            return Ok(false);
        }
        let incident = run_incident(&tx, step.run_id).await?;
        if let Some(ticket) = &finish.ticket {
            tx.execute(
                "INSERT INTO tickets (incident_id, tracker, ticket_id, url) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (incident_id, tracker)
                 DO UPDATE SET ticket_id = EXCLUDED.ticket_id, url = EXCLUDED.url",
                &[&incident, &ticket.tracker.as_str(), &ticket.id, &ticket.url],
            )
            .await?;
        }
        if let Some(note) = &finish.note {
            add_timeline(&tx, incident, now, note.kind, &note.message, None).await?;
        }
        if let Some(run) = &finish.followup {
            create_run(&tx, incident, run, now).await?;
        }
        close_if_done(&tx, step.run_id, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn retry_step(&self, step: StepRef, retry: StepRetry, now: Timestamp) -> Result<bool> {
        let attempts = i32::try_from(retry.attempts).unwrap_or(i32::MAX);
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let updated = tx
            .execute(
                "UPDATE run_steps SET attempts = $3, last_error = $4, next_attempt_at = $5,
                   updated_at = $6, lease_owner = NULL, lease_until = NULL
                 WHERE run_id = $1 AND position = $2 AND status = 'pending' AND lease_owner = $7",
                &[
                    &step.run_id,
                    &step.position,
                    &attempts,
                    &retry.error,
                    &retry.next_attempt_at,
                    &now,
                    &step.worker,
                ],
            )
            .await?;
        if updated == 0 {
            return Ok(false);
        }
        if let Some(note) = &retry.note {
            let incident = run_incident(&tx, step.run_id).await?;
            add_timeline(&tx, incident, now, note.kind, &note.message, None).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn step_context(&self, incident_key: &str) -> Result<Option<StepContext>> {
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let Some((id, incident)) = load_incident(&tx, incident_key).await? else {
            return Ok(None);
        };
        let tickets = incident_tickets(&tx, incident_key).await?;
        let open: i64 = tx
            .query_one(
                "SELECT COUNT(*) FROM jobs WHERE incident_id = $1 AND status IN ('queued', 'running')",
                &[&id],
            )
            .await?
            .try_get(0)?;
        let history = incident_steps(&tx, incident_key).await?;
        tx.commit().await?;
        Ok(Some(StepContext {
            incident,
            tickets,
            jobs_settled: open == 0,
            history,
        }))
    }

    async fn run_steps(&self, incident_key: &str) -> Result<Vec<RunStep>> {
        let client = self.client().await?;
        incident_steps(&client, incident_key).await
    }

    async fn tickets(&self, incident_key: &str) -> Result<Vec<TicketRecord>> {
        let client = self.client().await?;
        incident_tickets(&client, incident_key).await
    }
}
