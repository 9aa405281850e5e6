//! Durable state on one SQLite file (WAL). Synchronous by design: the server calls it from
//! blocking threads, and SQLite serialises writers anyway.
//!
//! Invariants the schema enforces rather than trusts code for:
//! * an event id is stored once (`events.id` is unique) — re-posts are acknowledged, not
//!   processed twice;
//! * at most one unresolved incident per group key (partial unique index);
//! * an event's incident effect and its `processed` mark commit in one transaction, so a
//!   crash replays the event or not at all, never half.

mod alarms;
mod apps;
mod hosts;
mod incidents;
mod migrations;
mod runs;
mod sns;
mod tokens;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::Connection;

pub use alarms::AlarmStateRecord;
pub use hosts::{host_token_name, Enrollment, JobEnd, NewJob};
pub use incidents::{AlarmAction, IncidentChange, IncidentFilter};
pub use runs::{NewStep, RunStep, StepStatus, TicketRecord};
pub use sns::SnsSubscription;
pub use tokens::TokenRecord;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error(
        "the database schema is version {found}, newer than this vigil ({known}); upgrade vigil"
    )]
    TooNew { found: i64, known: i64 },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// An accepted event waiting for (or past) processing.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub seq: i64,
    pub endpoint: String,
    pub event: vigil_core::Event,
}

/// An accepted event as the API shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EventRecord {
    pub endpoint: String,
    pub received_at: String,
    pub processed: bool,
    pub event: vigil_core::Event,
}

pub struct Store {
    path: PathBuf,
    /// Writes other than ingest (processing, acknowledgements, tokens).
    writer: Mutex<Connection>,
    /// Reads for the API; WAL lets them run beside a writer.
    reader: Mutex<Connection>,
}

impl Store {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub fn open(path: &Path) -> Result<Store> {
        let writer = connect(path)?;
        migrations::apply(&writer)?;
        let reader = connect(path)?;
        Ok(Store {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
        })
    }

    /// A connection of its own for the ingest writer, which batches many requests into
    /// one transaction (group commit) without holding the shared writer.
    pub fn ingest_writer(&self) -> Result<IngestWriter> {
        Ok(IngestWriter {
            conn: connect(&self.path)?,
        })
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (transactions roll back
        // on drop), so a poisoned lock is still safe to use.
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        self.reader.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Accepted events not yet processed, oldest first.
    pub fn pending_events(&self, limit: usize) -> Result<Vec<StoredEvent>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT seq, endpoint, body FROM events WHERE processed = 0 ORDER BY seq LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, endpoint, body) = row?;
            let event = serde_json::from_str(&body)
                .map_err(|e| StoreError::Corrupt(format!("event seq {seq}: {e}")))?;
            out.push(StoredEvent {
                seq,
                endpoint,
                event,
            });
        }
        Ok(out)
    }

    /// Marks an event processed when no rule gave it anything to do.
    pub fn mark_processed(&self, seq: i64) -> Result<()> {
        self.writer()
            .execute("UPDATE events SET processed = 1 WHERE seq = ?1", [seq])?;
        Ok(())
    }

    /// One accepted event by id, and whether processing has finished with it.
    pub fn event(&self, id: &str) -> Result<Option<EventRecord>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT endpoint, received_at, processed, body FROM events WHERE id = ?1",
        )?;
        let mut rows = stmt.query([id])?;
        let Some(row) = rows.next()? else {
            return Ok(None);
        };
        let body: String = row.get(3)?;
        let event = serde_json::from_str(&body)
            .map_err(|e| StoreError::Corrupt(format!("event {id}: {e}")))?;
        Ok(Some(EventRecord {
            endpoint: row.get(0)?,
            received_at: row.get(1)?,
            processed: row.get(2)?,
            event,
        }))
    }

    pub fn event_count(&self) -> Result<i64> {
        Ok(self
            .reader()
            .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?)
    }
}

fn connect(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(|source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    conn.busy_timeout(Duration::from_secs(10))?;
    // FULL: an acknowledged event survives power loss, not only a killed process.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
    )?;
    Ok(conn)
}

/// Writes accepted events. Owned by one thread that gathers concurrent requests into a
/// single transaction, so a burst costs one fsync, not one per request.
pub struct IngestWriter {
    conn: Connection,
}

impl IngestWriter {
    /// Stores every event of every batch in one transaction. Returns, per batch and event,
    /// whether it was new (`false`: its id had been accepted before).
    pub fn insert_batches(
        &mut self,
        batches: &[(&str, &[vigil_core::Event])],
        received_at: &str,
    ) -> Result<Vec<Vec<bool>>> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut out = Vec::with_capacity(batches.len());
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO events (id, endpoint, received_at, body) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO NOTHING",
            )?;
            for (endpoint, events) in batches {
                let mut fresh = Vec::with_capacity(events.len());
                for event in events.iter() {
                    let body = serde_json::to_string(event)
                        .map_err(|e| StoreError::Corrupt(format!("event {}: {e}", event.id)))?;
                    fresh.push(stmt.execute((&event.id, endpoint, received_at, body))? == 1);
                }
                out.push(fresh);
            }
        }
        tx.commit()?;
        Ok(out)
    }
}
