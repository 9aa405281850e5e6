//! Durable playbook runs: one journal row per step, leased to one worker at a time.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Transaction};

use super::incidents::{add_timeline, incident, journal_run};
use super::{exec, from_millis, millis, one, parse_enum, parse_time, text, SqliteStore};
use crate::{
    Channel, Result, RunKind, RunStep, RunStore, StepContext, StepFinish, StepName, StepRef,
    StepRetry, StepStatus, StoreError, TicketRecord, Timestamp,
};

const STEP_COLUMNS: &str = "s.run_id, s.position, i.key, r.kind, s.name, s.channel, s.recipients, s.status, s.attempts, s.last_error, s.external_id, s.link, s.next_attempt_ms, s.deadline_ms, s.updated_at, s.lease_owner";

/// Makes the first pending step of a run its head: due when its next attempt is and any
/// lease has run out. Steps of one run go in order, so only heads are ever claimed.
const PROMOTE_HEAD: &str = "UPDATE run_steps SET due_ms = MAX(next_attempt_ms, COALESCE(lease_until_ms, 0))
    WHERE run_id = ?1 AND status = 'pending'
      AND position = (SELECT MIN(position) FROM run_steps WHERE run_id = ?1 AND status = 'pending')";

#[async_trait]
impl RunStore for SqliteStore {
    async fn claim_steps(
        &self,
        worker: &str,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<RunStep>> {
        let worker = worker.to_string();
        self.blocking(move |db| {
            db.write_journal(|tx| {
                let now_ms = millis(now);
                let due: Vec<(i64, i64)> = {
                    let mut stmt = tx.prepare_cached(
                        "SELECT run_id, position FROM run_steps
                         WHERE due_ms IS NOT NULL AND due_ms <= ?1
                         ORDER BY due_ms, run_id LIMIT ?2",
                    )?;
                    let rows =
                        stmt.query_map(params![now_ms, limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
                    rows.collect::<rusqlite::Result<_>>()?
                };
                let until = now_ms + lease.as_millis() as i64;
                let mut claimed = Vec::with_capacity(due.len());
                for (run, position) in due {
                    tx.prepare_cached(
                        "UPDATE run_steps SET lease_owner = ?3, lease_until_ms = ?4, due_ms = ?4 WHERE run_id = ?1 AND position = ?2",
                    )?
                    .execute(params![run, position, worker, until])?;
                    claimed.push(one_step(tx, run, position)?);
                }
                Ok(claimed)
            })
        })
        .await
    }

    async fn release_leases(&self, worker: &str) -> Result<u64> {
        let worker = worker.to_string();
        self.blocking(move |db| {
            db.write(|tx| {
                Ok(exec(
                    tx,
                    "UPDATE run_steps SET lease_owner = NULL, lease_until_ms = NULL,
                       due_ms = CASE WHEN due_ms IS NOT NULL THEN next_attempt_ms END
                     WHERE lease_owner = ?1",
                    [worker],
                )? as u64)
            })
        })
        .await
    }

    async fn next_step_due(&self) -> Result<Option<Timestamp>> {
        self.blocking(|db| {
            db.read(|tx| {
                let due: Option<i64> = one(
                    tx,
                    "SELECT MIN(due_ms) FROM run_steps WHERE due_ms IS NOT NULL",
                    [],
                    |r| r.get(0),
                )?;
                due.map(|ms| from_millis(ms, || "next step due".into()))
                    .transpose()
            })
        })
        .await
    }

    async fn finish_step(&self, step: StepRef, finish: StepFinish, now: Timestamp) -> Result<bool> {
        self.blocking(move |db| db.write_journal(|tx| finish_step(tx, &step, &finish, now)))
            .await
    }

    async fn retry_step(&self, step: StepRef, retry: StepRetry, now: Timestamp) -> Result<bool> {
        self.blocking(move |db| {
            db.write_journal(|tx| {
                let changed = exec(
                    tx,
                    "UPDATE run_steps SET attempts = ?4, last_error = ?5, next_attempt_ms = ?6, updated_at = ?7,
                       lease_owner = NULL, lease_until_ms = NULL, due_ms = ?6
                     WHERE run_id = ?1 AND position = ?2 AND lease_owner = ?3 AND status = 'pending'",
                    params![
                        step.run_id,
                        step.position,
                        step.worker,
                        retry.attempts,
                        retry.error,
                        millis(retry.next_attempt_at),
                        text(now)
                    ],
                )?;
                if changed == 0 {
                    return Ok(false);
                }
                if let Some(note) = &retry.note {
                    add_timeline(tx, run_incident(tx, step.run_id)?, now, note.kind, &note.message, None)?;
                }
                Ok(true)
            })
        })
        .await
    }

    async fn step_context(&self, incident_key: &str) -> Result<Option<StepContext>> {
        let key = incident_key.to_string();
        self.blocking(move |db| {
            db.read(|tx| {
                let Some(incident) = incident(tx, &key)? else {
                    return Ok(None);
                };
                Ok(Some(StepContext {
                    incident,
                    tickets: tickets(tx, &key)?,
                    jobs_settled: jobs_settled(tx, &key)?,
                    history: run_steps(tx, &key)?,
                }))
            })
        })
        .await
    }

    async fn run_steps(&self, incident_key: &str) -> Result<Vec<RunStep>> {
        let key = incident_key.to_string();
        self.blocking(move |db| db.read(|tx| run_steps(tx, &key)))
            .await
    }

    async fn tickets(&self, incident_key: &str) -> Result<Vec<TicketRecord>> {
        let key = incident_key.to_string();
        self.blocking(move |db| db.read(|tx| tickets(tx, &key)))
            .await
    }
}

fn finish_step(
    tx: &Transaction<'_>,
    step: &StepRef,
    finish: &StepFinish,
    now: Timestamp,
) -> Result<bool> {
    let changed = exec(
                    tx,
        "UPDATE run_steps SET status = ?4, attempts = ?5, last_error = ?6, external_id = ?7, link = ?8,
           updated_at = ?9, lease_owner = NULL, lease_until_ms = NULL,
           due_ms = NULL
         WHERE run_id = ?1 AND position = ?2 AND lease_owner = ?3 AND status = 'pending'",
        params![
            step.run_id,
            step.position,
            step.worker,
            finish.status.as_str(),
            finish.attempts,
            finish.error,
            finish.external_id,
            finish.link,
            text(now)
        ],
    )?;
    if changed == 0 {
        return Ok(false);
    }
    let incident = run_incident(tx, step.run_id)?;
    if let Some(ticket) = &finish.ticket {
        exec(
                    tx,
            "INSERT INTO tickets (incident_id, tracker, ticket_id, url) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (incident_id, tracker) DO UPDATE SET ticket_id = excluded.ticket_id, url = excluded.url",
            params![incident, ticket.tracker.as_str(), ticket.id, ticket.url],
        )?;
    }
    if let Some(note) = &finish.note {
        add_timeline(tx, incident, now, note.kind, &note.message, None)?;
    }
    if let Some(run) = &finish.followup {
        journal_run(tx, incident, run, now)?;
    }
    let promoted = tx.prepare_cached(PROMOTE_HEAD)?.execute([step.run_id])?;
    if promoted == 0 {
        exec(
            tx,
            "UPDATE runs SET finished_at = ?2 WHERE id = ?1",
            params![step.run_id, text(now)],
        )?;
    }
    Ok(true)
}

fn run_incident(tx: &Transaction<'_>, run: i64) -> Result<i64> {
    one(
        tx,
        "SELECT incident_id FROM runs WHERE id = ?1",
        [run],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(|| StoreError::Corrupt(format!("run {run} has no row")))
}

fn one_step(tx: &Transaction<'_>, run: i64, position: i64) -> Result<RunStep> {
    let raw = one(
        tx,
        &format!(
            "SELECT {STEP_COLUMNS} FROM run_steps s
             JOIN runs r ON r.id = s.run_id JOIN incidents i ON i.id = r.incident_id
             WHERE s.run_id = ?1 AND s.position = ?2"
        ),
        params![run, position],
        raw_step,
    )?;
    raw.decode()
}

fn run_steps(tx: &Transaction<'_>, key: &str) -> Result<Vec<RunStep>> {
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {STEP_COLUMNS} FROM run_steps s
         JOIN runs r ON r.id = s.run_id JOIN incidents i ON i.id = r.incident_id
         WHERE i.key = ?1 ORDER BY s.run_id, s.position"
    ))?;
    let rows = stmt.query_map([key], raw_step)?;
    rows.map(|r| r?.decode()).collect()
}

fn tickets(tx: &Transaction<'_>, key: &str) -> Result<Vec<TicketRecord>> {
    let mut stmt = tx.prepare_cached(
        "SELECT t.tracker, t.ticket_id, t.url FROM tickets t JOIN incidents i ON i.id = t.incident_id
         WHERE i.key = ?1 ORDER BY t.tracker",
    )?;
    let rows = stmt.query_map([key], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (tracker, id, url) = row?;
        out.push(TicketRecord {
            tracker: parse_enum(&tracker, Channel::parse, || {
                format!("ticket {id} of {key}: tracker")
            })?,
            id,
            url,
        });
    }
    Ok(out)
}

/// Every probe job of the incident (of a storm: of its members) has ended.
fn jobs_settled(tx: &Transaction<'_>, key: &str) -> Result<bool> {
    let open: i64 = one(
        tx,
        "SELECT COUNT(*) FROM jobs j JOIN incidents i ON i.id = j.incident_id
         WHERE i.key = ?1 AND j.status IN ('queued', 'running')",
        [key],
        |r| r.get(0),
    )?;
    let members_open: i64 = one(
        tx,
        "SELECT COUNT(*) FROM incidents s JOIN incidents m ON m.storm_id = s.id
           JOIN jobs j ON j.incident_id = m.id
         WHERE s.key = ?1 AND s.kind = 'storm' AND j.status IN ('queued', 'running')",
        [key],
        |r| r.get(0),
    )?;
    Ok(open == 0 && members_open == 0)
}

struct RawStep {
    run_id: i64,
    position: i64,
    key: String,
    kind: String,
    name: String,
    channel: String,
    recipients: String,
    status: String,
    attempts: i64,
    last_error: Option<String>,
    external_id: Option<String>,
    link: Option<String>,
    next_attempt_ms: i64,
    deadline_ms: i64,
    updated_at: String,
    lease_owner: Option<String>,
}

fn raw_step(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawStep> {
    Ok(RawStep {
        run_id: r.get(0)?,
        position: r.get(1)?,
        key: r.get(2)?,
        kind: r.get(3)?,
        name: r.get(4)?,
        channel: r.get(5)?,
        recipients: r.get(6)?,
        status: r.get(7)?,
        attempts: r.get(8)?,
        last_error: r.get(9)?,
        external_id: r.get(10)?,
        link: r.get(11)?,
        next_attempt_ms: r.get(12)?,
        deadline_ms: r.get(13)?,
        updated_at: r.get(14)?,
        lease_owner: r.get(15)?,
    })
}

impl RawStep {
    fn decode(self) -> Result<RunStep> {
        let (run, position) = (self.run_id, self.position);
        let what = |field: &str| format!("run {run} step {position}: {field}");
        let recipients: Vec<String> = serde_json::from_str(&self.recipients)
            .map_err(|e| StoreError::Corrupt(format!("{}: {e}", what("recipients"))))?;
        Ok(RunStep {
            run_id: run,
            position,
            incident_key: self.key,
            kind: parse_enum(&self.kind, RunKind::parse, || what("run kind"))?,
            name: parse_enum(&self.name, StepName::parse, || what("step name"))?,
            channel: parse_enum(&self.channel, Channel::parse, || what("channel"))?,
            recipients,
            status: parse_enum(&self.status, StepStatus::parse, || what("status"))?,
            attempts: self.attempts.max(0) as u32,
            last_error: self.last_error,
            external_id: self.external_id,
            link: self.link,
            next_attempt_at: from_millis(self.next_attempt_ms, || what("next attempt"))?,
            deadline: from_millis(self.deadline_ms, || what("deadline"))?,
            updated_at: parse_time(&self.updated_at, || what("updated_at"))?,
            lease_owner: self.lease_owner,
        })
    }
}
