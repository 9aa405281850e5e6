//! Durable playbook runs. A run is the outward half of a playbook for one incident change
//! (open a ticket, comment, notify); each step is journaled here, so a crash resumes at the
//! first unfinished step and a retry knows how many attempts came before.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use crate::{Result, Store};

/// One step to journal when a run is created.
#[derive(Debug, Clone)]
pub struct NewStep {
    /// What to do: `ticket`, `comment`, `resolve_ticket`, `notify`, `undelivered`.
    pub name: String,
    /// Which integration: `jira`, `email`, `slack`, `webhook`, or `none`.
    pub channel: String,
    /// Addresses beyond the channel's own (email), comma-separated; empty for none.
    pub recipients: String,
    /// Give up (and say so on the incident) after this time.
    pub deadline_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    Done,
    Failed,
    Skipped,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Done => "done",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
        }
    }

    fn parse(s: &str) -> StepStatus {
        match s {
            "done" => StepStatus::Done,
            "failed" => StepStatus::Failed,
            "skipped" => StepStatus::Skipped,
            _ => StepStatus::Pending,
        }
    }
}

/// A journaled step, as the runner and the delivery log see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunStep {
    pub run_id: i64,
    pub position: i64,
    pub incident_key: String,
    pub kind: String,
    pub name: String,
    pub channel: String,
    pub recipients: String,
    pub status: StepStatus,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub external_id: Option<String>,
    pub link: Option<String>,
    pub next_attempt_ms: i64,
    pub deadline_ms: i64,
    pub updated_at: String,
}

/// A ticket opened for an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TicketRecord {
    pub tracker: String,
    pub id: String,
    pub url: String,
}

const STEP_COLUMNS: &str = "s.run_id, s.position, i.key, r.kind, s.name, s.channel, s.status, s.attempts, s.last_error, s.external_id, s.link, s.next_attempt_ms, s.deadline_ms, s.updated_at, s.recipients";

fn step_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunStep> {
    let status: String = r.get(6)?;
    Ok(RunStep {
        run_id: r.get(0)?,
        position: r.get(1)?,
        incident_key: r.get(2)?,
        kind: r.get(3)?,
        name: r.get(4)?,
        channel: r.get(5)?,
        status: StepStatus::parse(&status),
        attempts: r.get(7)?,
        last_error: r.get(8)?,
        external_id: r.get(9)?,
        link: r.get(10)?,
        next_attempt_ms: r.get(11)?,
        deadline_ms: r.get(12)?,
        updated_at: r.get(13)?,
        recipients: r.get(14)?,
    })
}

impl Store {
    /// Journals a run of `steps` for the incident; returns its id, or None without such
    /// an incident.
    pub fn create_run(
        &self,
        incident_key: &str,
        kind: &str,
        steps: &[NewStep],
        now: &str,
    ) -> Result<Option<i64>> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let incident: Option<i64> = tx
            .query_row(
                "SELECT id FROM incidents WHERE key = ?1",
                [incident_key],
                |r| r.get(0),
            )
            .optional()?;
        let Some(incident) = incident else {
            return Ok(None);
        };
        tx.execute(
            "INSERT INTO runs (incident_id, kind, created_at) VALUES (?1, ?2, ?3)",
            params![incident, kind, now],
        )?;
        let run = tx.last_insert_rowid();
        for (position, step) in steps.iter().enumerate() {
            tx.execute(
                "INSERT INTO run_steps (run_id, position, name, channel, recipients, status, deadline_ms, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7)",
                params![run, position as i64, step.name, step.channel, step.recipients, step.deadline_ms, now],
            )?;
        }
        tx.commit()?;
        Ok(Some(run))
    }

    /// The first unfinished step of every unfinished run: steps of one run go in order.
    pub fn next_steps(&self) -> Result<Vec<RunStep>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {STEP_COLUMNS} FROM run_steps s
             JOIN runs r ON r.id = s.run_id JOIN incidents i ON i.id = r.incident_id
             WHERE r.finished_at IS NULL AND s.status = 'pending'
               AND s.position = (SELECT MIN(position) FROM run_steps WHERE run_id = s.run_id AND status = 'pending')
             ORDER BY s.next_attempt_ms, s.run_id"
        ))?;
        let rows = stmt.query_map([], step_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Every step of an incident's runs, oldest first: its delivery log.
    pub fn run_steps(&self, incident_key: &str) -> Result<Vec<RunStep>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {STEP_COLUMNS} FROM run_steps s
             JOIN runs r ON r.id = s.run_id JOIN incidents i ON i.id = r.incident_id
             WHERE i.key = ?1 ORDER BY s.run_id, s.position"
        ))?;
        let rows = stmt.query_map([incident_key], step_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records a step's outcome; closes the run when no step is pending any more.
    #[allow(clippy::too_many_arguments)]
    pub fn finish_step(
        &self,
        run_id: i64,
        position: i64,
        status: StepStatus,
        attempts: i64,
        error: Option<&str>,
        external_id: Option<&str>,
        link: Option<&str>,
        now: &str,
    ) -> Result<()> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "UPDATE run_steps SET status = ?3, attempts = ?4, last_error = ?5, external_id = ?6, link = ?7, updated_at = ?8
             WHERE run_id = ?1 AND position = ?2",
            params![run_id, position, status.as_str(), attempts, error, external_id, link, now],
        )?;
        let pending: i64 = tx.query_row(
            "SELECT COUNT(*) FROM run_steps WHERE run_id = ?1 AND status = 'pending'",
            [run_id],
            |r| r.get(0),
        )?;
        if pending == 0 {
            tx.execute(
                "UPDATE runs SET finished_at = ?2 WHERE id = ?1",
                params![run_id, now],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Counts a failed attempt and schedules the next.
    pub fn retry_step(
        &self,
        run_id: i64,
        position: i64,
        attempts: i64,
        error: &str,
        next_attempt_ms: i64,
        now: &str,
    ) -> Result<()> {
        self.writer().execute(
            "UPDATE run_steps SET attempts = ?3, last_error = ?4, next_attempt_ms = ?5, updated_at = ?6
             WHERE run_id = ?1 AND position = ?2",
            params![run_id, position, attempts, error, next_attempt_ms, now],
        )?;
        Ok(())
    }

    pub fn record_ticket(&self, incident_key: &str, ticket: &TicketRecord) -> Result<()> {
        self.writer().execute(
            "INSERT INTO tickets (incident_id, tracker, ticket_id, url)
             SELECT id, ?2, ?3, ?4 FROM incidents WHERE key = ?1
             ON CONFLICT (incident_id, tracker) DO UPDATE SET ticket_id = excluded.ticket_id, url = excluded.url",
            params![incident_key, ticket.tracker, ticket.id, ticket.url],
        )?;
        Ok(())
    }

    pub fn tickets(&self, incident_key: &str) -> Result<Vec<TicketRecord>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT t.tracker, t.ticket_id, t.url FROM tickets t JOIN incidents i ON i.id = t.incident_id
             WHERE i.key = ?1 ORDER BY t.tracker",
        )?;
        let rows = stmt.query_map([incident_key], |r| {
            Ok(TicketRecord {
                tracker: r.get(0)?,
                id: r.get(1)?,
                url: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Whether every probe job of the incident has ended (for steps that carry diagnostics).
    pub fn jobs_settled(&self, incident_key: &str) -> Result<bool> {
        let open: i64 = self.reader().query_row(
            "SELECT COUNT(*) FROM jobs j JOIN incidents i ON i.id = j.incident_id
             WHERE i.key = ?1 AND j.status IN ('queued', 'running')",
            [incident_key],
            |r| r.get(0),
        )?;
        Ok(open == 0)
    }
}
