//! vigil's durable state behind one contract ([`Store`]: a trait per aggregate), with two
//! backends: an embedded SQLite file (the default, `vigil up`) and PostgreSQL (several
//! servers, large fleets). Both pass the same conformance suite (`tests/conformance.rs`).
//!
//! Invariants the schema enforces rather than trusts code for, on both backends:
//! * an event id is stored once — re-posts are acknowledged, not processed twice;
//! * at most one unresolved incident per group key (partial unique index);
//! * an event's effect on incidents, the work that effect causes (probe jobs, the journaled
//!   run) and its `processed` mark commit in one transaction, so a crash replays the event
//!   or not at all, never half;
//! * a run step is leased to one worker at a time.

mod contract;
mod postgres;
mod sqlite;
mod types;

use std::path::PathBuf;
use std::sync::Arc;

pub use contract::{
    AccessStore, AlarmStore, EventStore, HostStore, IncidentStore, RunStore, SeriesHistoryStore,
    Store,
};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
pub use types::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL: {}", with_causes(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error(
        "cannot reach PostgreSQL at {url}: {reason} (is it running, and does the database exist?)"
    )]
    Connect { url: String, reason: String },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("{0} already exists")]
    Conflict(String),
    #[error(
        "the database schema is version {found}, newer than this vigil knows ({known}); upgrade vigil, or point it at another database"
    )]
    TooNew { found: i64, known: i64 },
    #[error("store task failed: {0}")]
    Task(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// An error with its causes (the driver's own message is only the kind: `db error`).
pub(crate) fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Where the store lives: `[store] url` or `VIGIL_STORE_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A SQLite file (created if missing).
    Sqlite(PathBuf),
    /// A PostgreSQL connection string (`postgres://user@host:port/db`); an optional
    /// `?options=-csearch_path%3Dname` style schema is honoured by the driver.
    Postgres(String),
}

impl StoreLocation {
    /// `postgres://…` or `postgresql://…` is PostgreSQL; `sqlite://PATH` or a bare path is
    /// a SQLite file.
    pub fn parse(url: &str) -> StoreLocation {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            StoreLocation::Postgres(url.to_string())
        } else {
            StoreLocation::Sqlite(PathBuf::from(url.strip_prefix("sqlite://").unwrap_or(url)))
        }
    }
}

impl std::fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreLocation::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            // A URL may carry a password: show where, not how.
            StoreLocation::Postgres(url) => {
                let shown = match url.rsplit_once('@') {
                    Some((_, host)) => format!("postgres://…@{host}"),
                    None => url.clone(),
                };
                f.write_str(&shown)
            }
        }
    }
}

/// Opens the store, applying pending migrations; refuses a schema newer than it knows.
pub async fn open(location: &StoreLocation) -> Result<Arc<dyn Store>> {
    Ok(match location {
        StoreLocation::Sqlite(path) => Arc::new(SqliteStore::open(path).await?),
        StoreLocation::Postgres(url) => Arc::new(PostgresStore::connect(url).await?),
    })
}

/// For each decision of a batch, whether a later one writes the same incident's facts: the
/// next pending alarm decision of its group in the batch is another alarm (a repeat), not
/// a recovery. An incident keeps the facts of its latest event, so the earlier write can
/// be left out. `pending[i]`: decision `i`'s event is not processed yet (one that is
/// changes nothing).
pub(crate) fn facts_superseded(decisions: &[Decision], pending: &[bool]) -> Vec<bool> {
    let mut next_action: std::collections::HashMap<&str, AlarmAction> =
        std::collections::HashMap::new();
    let mut out = vec![false; decisions.len()];
    for (index, decision) in decisions.iter().enumerate().rev() {
        if !pending.get(index).copied().unwrap_or(false) {
            continue;
        }
        if let Effect::Alarm(update) = &decision.effect {
            out[index] = update.action == AlarmAction::OpenOrRepeat
                && next_action.get(update.group_key.as_str()) == Some(&AlarmAction::OpenOrRepeat);
            next_action.insert(update.group_key.as_str(), update.action);
        }
    }
    out
}

/// What one `put_series_blocks` call writes: each `(series, start_ms)` once, the latest of
/// the call's blocks with that key winning, in key order (so concurrent writers take row
/// locks in one order, and SQLite's B-tree is filled front to back).
pub(crate) fn latest_series_blocks(mut blocks: Vec<SeriesBlock>) -> Vec<SeriesBlock> {
    // Stable: blocks of one key keep the order they came in.
    blocks.sort_by(|a, b| (a.series.as_str(), a.start_ms).cmp(&(b.series.as_str(), b.start_ms)));
    // `dedup_by` drops `next` when it names `kept`'s key: the later block's bytes move into
    // the kept slot first.
    blocks.dedup_by(|next, kept| {
        let same = next.series == kept.series && next.start_ms == kept.start_ms;
        if same {
            std::mem::swap(next, kept);
        }
        same
    });
    blocks
}
