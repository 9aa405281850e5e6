//! Durable playbook runs: one journal row per step, leased to one worker at a time.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::{
    after, exec, known, load_incident, query, query_one, query_opt, unsigned, Journal,
    PostgresStore,
};
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
    let rows = query(client, sql.as_str(), &[&incident_key]).await?;
    rows.iter().map(step_row).collect()
}

async fn incident_tickets<C: GenericClient>(
    client: &C,
    incident_key: &str,
) -> Result<Vec<TicketRecord>> {
    let rows = query(client, "SELECT t.tracker, t.ticket_id, t.url FROM tickets t JOIN incidents i ON i.id = t.incident_id
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

/// Leases the due heads of open runs (a run's head, its first pending step, carries
/// `due_at`: when its next attempt is and any lease has run out), locked (skipping any
/// another worker is claiming right now) and leased at once. The condition on `due_at` is
/// checked again on the latest row version when a concurrent claim committed first, so a
/// step is never leased twice. One statement: the claim and the claimed steps' rows.
static CLAIM_STEPS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH due AS (
           SELECT s.run_id, s.position FROM run_steps s
           WHERE s.due_at <= $1
           ORDER BY s.due_at, s.run_id
           LIMIT $4
           FOR UPDATE OF s SKIP LOCKED
         ), claimed AS (
           UPDATE run_steps s SET lease_owner = $2, lease_until = $3, due_at = $3
           FROM due WHERE s.run_id = due.run_id AND s.position = due.position
           RETURNING s.*
         )
         SELECT {STEP_COLUMNS}
         FROM claimed s JOIN runs r ON r.id = s.run_id JOIN incidents i ON i.id = r.incident_id
         ORDER BY s.next_attempt_at, s.run_id"
    )
});

/// Ends a step the worker holds, with what it leaves on its incident, in one statement:
/// `i` is the incident of the step updated (none when the worker lost the step: then
/// nothing else is written). The run's next pending step becomes its head, or the run
/// closes when no other step of it is pending (this statement's snapshot still shows the
/// step itself pending).
static FINISH_STEP: LazyLock<String> = LazyLock::new(|| {
    Journal::sql(
        "i AS (
           UPDATE run_steps s SET status = $3, attempts = $4, last_error = $5,
             external_id = $6, link = $7, updated_at = $8, lease_owner = NULL,
             lease_until = NULL, due_at = CASE WHEN $3 = 'pending' THEN s.next_attempt_at END
           FROM runs r
           WHERE r.id = s.run_id AND s.run_id = $1 AND s.position = $2 AND s.status = 'pending'
             AND s.lease_owner = $9
           RETURNING r.incident_id AS id, NULL::text AS key
         ), tk AS (
           INSERT INTO tickets (incident_id, tracker, ticket_id, url)
           SELECT i.id, $10::text, $11::text, $12::text FROM i WHERE $10::text IS NOT NULL
           ON CONFLICT (incident_id, tracker)
           DO UPDATE SET ticket_id = EXCLUDED.ticket_id, url = EXCLUDED.url
         ), head AS (
           UPDATE run_steps SET due_at = GREATEST(next_attempt_at, COALESCE(lease_until, next_attempt_at))
           WHERE run_id = $1 AND $3 <> 'pending' AND EXISTS (SELECT 1 FROM i)
             AND position = (SELECT MIN(position) FROM run_steps
                             WHERE run_id = $1 AND position <> $2 AND status = 'pending')
         ), closed AS (
           UPDATE runs SET finished_at = $8
           WHERE id = $1 AND finished_at IS NULL AND $3 <> 'pending' AND EXISTS (SELECT 1 FROM i)
             AND NOT EXISTS (SELECT 1 FROM run_steps
                             WHERE run_id = $1 AND position <> $2 AND status = 'pending')
         )",
        12,
    )
});

/// Puts a step the worker holds back for a later attempt, with its note, in one statement.
static RETRY_STEP: LazyLock<String> = LazyLock::new(|| {
    Journal::sql(
        "i AS (
           UPDATE run_steps s SET attempts = $3, last_error = $4, next_attempt_at = $5,
             updated_at = $6, lease_owner = NULL, lease_until = NULL, due_at = $5
           FROM runs r
           WHERE r.id = s.run_id AND s.run_id = $1 AND s.position = $2 AND s.status = 'pending'
             AND s.lease_owner = $7
           RETURNING r.incident_id AS id, NULL::text AS key
         )",
        7,
    )
});

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
        let client = self.client().await?;
        let rows = query(&client, &CLAIM_STEPS, &[&now, &worker, &until, &limit]).await?;
        rows.iter().map(step_row).collect()
    }

    async fn release_leases(&self, worker: &str) -> Result<u64> {
        let client = self.client().await?;
        Ok(exec(
            &client,
            "UPDATE run_steps SET lease_owner = NULL, lease_until = NULL,
               due_at = CASE WHEN due_at IS NOT NULL THEN next_attempt_at END
             WHERE lease_owner = $1",
            &[&worker],
        )
        .await?)
    }

    async fn next_step_due(&self) -> Result<Option<Timestamp>> {
        let client = self.client().await?;
        let row = query_one(
            &client,
            "SELECT MIN(due_at) FROM run_steps WHERE due_at IS NOT NULL",
            &[],
        )
        .await?;
        Ok(row.try_get(0)?)
    }

    async fn finish_step(&self, step: StepRef, finish: StepFinish, now: Timestamp) -> Result<bool> {
        let attempts = i32::try_from(finish.attempts).unwrap_or(i32::MAX);
        let mut journal = Journal::default();
        if let Some(note) = &finish.note {
            journal.entry(note.kind, note.message.clone(), None);
        }
        if let Some(run) = &finish.followup {
            journal.run(run);
        }
        let ticket = finish.ticket.as_ref();
        let tracker = ticket.map(|t| t.tracker.as_str());
        let ticket_id = ticket.map(|t| t.id.as_str());
        let url = ticket.map(|t| t.url.as_str());
        let status = finish.status.as_str();
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![
            &step.run_id,
            &step.position,
            &status,
            &attempts,
            &finish.error,
            &finish.external_id,
            &finish.link,
            &now,
            &step.worker,
            &tracker,
            &ticket_id,
            &url,
        ];
        params.extend(journal.params(&now));
        let client = self.client().await?;
        Ok(query_opt(&client, &FINISH_STEP, &params).await?.is_some())
    }

    async fn retry_step(&self, step: StepRef, retry: StepRetry, now: Timestamp) -> Result<bool> {
        let attempts = i32::try_from(retry.attempts).unwrap_or(i32::MAX);
        let mut journal = Journal::default();
        if let Some(note) = &retry.note {
            journal.entry(note.kind, note.message.clone(), None);
        }
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![
            &step.run_id,
            &step.position,
            &attempts,
            &retry.error,
            &retry.next_attempt_at,
            &now,
            &step.worker,
        ];
        params.extend(journal.params(&now));
        let client = self.client().await?;
        Ok(query_opt(&client, &RETRY_STEP, &params).await?.is_some())
    }

    async fn step_context(&self, incident_key: &str) -> Result<Option<StepContext>> {
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        // One snapshot, and the reads go out together: one round trip.
        let by_key: &[&(dyn ToSql + Sync)] = &[&incident_key];
        let (found, tickets, open, history) = tokio::try_join!(
            load_incident(&tx, incident_key),
            incident_tickets(&tx, incident_key),
            // The incident's open probe jobs; a storm's are its members'.
            query_one(
                &tx,
                "SELECT COUNT(*) FROM jobs j
                 WHERE j.status IN ('queued', 'running')
                   AND j.incident_id IN (
                     SELECT id FROM incidents WHERE key = $1
                     UNION ALL
                     SELECT m.id FROM incidents s JOIN incidents m ON m.storm_id = s.id
                     WHERE s.key = $1 AND s.kind = 'storm')",
                by_key,
            ),
            incident_steps(&tx, incident_key),
        )?;
        tx.commit().await?;
        let Some((_, incident)) = found else {
            return Ok(None);
        };
        let open: i64 = open.try_get(0)?;
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
