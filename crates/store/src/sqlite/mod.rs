//! The embedded backend: one SQLite file in WAL mode.
//!
//! SQLite allows one writer at a time. Every write of this process goes through one
//! connection behind one first-come-first-served lock, so writers queue in order and never
//! meet SQLite's busy handler (which sleeps in growing steps up to 100 ms: the seconds-long
//! stalls ingest used to see). Reads use a small pool of their own connections; WAL lets
//! them run beside the writer. Checkpoints run on a thread of their own, never inside a
//! commit, and rewind the WAL once it passes a few megabytes (see [`checkpoint`]).
//!
//! Durability per write: what the outside world was promised — accepted events, tokens,
//! configuration — commits with `synchronous = FULL` (fsync before the answer). The busy
//! journal — processing, step claims and outcomes, job and heartbeat updates — commits
//! with `NORMAL`: a process crash loses none of it (the WAL is in the OS), and a power cut
//! can only lose a tail of it, in order, which replays (the events are not marked processed
//! either); the next FULL commit makes all of it durable.
//!
//! The contract is async; SQLite is not. Every call runs on tokio's blocking pool, never on
//! a worker thread.

mod access;
mod alarms;
mod events;
mod hosts;
mod incidents;
mod migrations;
mod runs;
mod series;
mod storms;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::{Result, StoreError, Timestamp};

/// An embedded store on one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    db: Arc<Db>,
}

pub(crate) struct Db {
    path: PathBuf,
    writer: tokio::sync::Mutex<Writer>,
    readers: Mutex<Vec<Connection>>,
}

/// The one write connection and the durability it is set to.
struct Writer {
    conn: Connection,
    synchronous: Durability,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// fsync at every commit: survives power loss.
    Full,
    /// fsync at checkpoints: survives a crash of the process.
    Normal,
}

/// How often the checkpoint thread folds the WAL back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// WAL frames (pages) beyond which a checkpoint rewinds the WAL: about 16 MB of 4 KiB pages.
const WAL_RESTART_FRAMES: i64 = 4096;

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub async fn open(path: &Path) -> Result<SqliteStore> {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || SqliteStore::open_blocking(&path))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    fn open_blocking(path: &Path) -> Result<SqliteStore> {
        let writer = connect(path)?;
        // Checkpoints happen on their own thread, not inside whichever commit crosses the
        // threshold.
        writer.pragma_update(None, "wal_autocheckpoint", 0)?;
        migrations::apply(&writer)?;
        let db = Arc::new(Db {
            path: path.to_path_buf(),
            writer: tokio::sync::Mutex::new(Writer {
                conn: writer,
                synchronous: Durability::Full,
            }),
            readers: Mutex::new(Vec::new()),
        });
        spawn_checkpointer(Arc::downgrade(&db), connect(path)?);
        Ok(SqliteStore { db })
    }

    /// The schema version of the file (for upgrade checks and tests).
    pub async fn schema_version(&self) -> Result<i64> {
        self.blocking(|db| {
            db.read(|conn| Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?))
        })
        .await
    }

    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        call: impl FnOnce(&Db) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || call(&db))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

impl crate::Store for SqliteStore {
    fn describe(&self) -> String {
        format!("sqlite:{}", self.db.path.display())
    }
}

impl Db {
    /// Runs `work` in one write transaction that is on disk when this returns (FULL).
    pub(crate) fn write<T>(&self, work: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        self.write_with(Durability::Full, work)
    }

    /// Runs `work` in one write transaction of the busy journal (NORMAL; see the module).
    pub(crate) fn write_journal<T>(
        &self,
        work: impl FnOnce(&Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        self.write_with(Durability::Normal, work)
    }

    fn write_with<T>(
        &self,
        synchronous: Durability,
        work: impl FnOnce(&Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        // A FIFO lock (tokio's, taken from a blocking-pool thread): writers are served in
        // the order they came, so a burst of journal writes cannot starve ingest.
        let mut writer = self.writer.blocking_lock();
        if writer.synchronous != synchronous {
            let mode = match synchronous {
                Durability::Full => "FULL",
                Durability::Normal => "NORMAL",
            };
            writer.conn.pragma_update(None, "synchronous", mode)?;
            writer.synchronous = synchronous;
        }
        let tx = writer
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = work(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Runs `work` on a reader connection inside one read transaction: every statement
    /// sees the same snapshot.
    pub(crate) fn read<T>(&self, work: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = match self.pool().pop() {
            Some(conn) => conn,
            None => connect(&self.path)?,
        };
        let out = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
            let out = work(&tx)?;
            tx.finish()?;
            Ok(out)
        })();
        let mut pool = self.pool();
        if pool.len() < 8 {
            pool.push(conn);
        }
        out
    }

    fn pool(&self) -> MutexGuard<'_, Vec<Connection>> {
        self.readers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn connect(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(|source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    // Only another process (a second vigil on a copied file, the sqlite3 shell) can make
    // this wait: this process's writers queue on the writer lock.
    conn.busy_timeout(Duration::from_secs(10))?;
    // FULL: an acknowledged event survives power loss, not only a killed process.
    // Pages through a memory map and a larger cache: reads cost memory accesses, not a
    // pread and a copy each.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;
         PRAGMA mmap_size = 268435456; PRAGMA cache_size = -32768;
         PRAGMA journal_size_limit = 67108864;",
    )?;
    Ok(conn)
}

fn spawn_checkpointer(db: Weak<Db>, conn: Connection) {
    let spawned = std::thread::Builder::new()
        .name("vigil-checkpoint".into())
        .spawn(move || loop {
            std::thread::sleep(CHECKPOINT_EVERY);
            let Some(db) = db.upgrade() else {
                return;
            };
            if let Err(e) = checkpoint(&db, &conn) {
                tracing_free_log(&format!("WAL checkpoint failed: {e}"));
            }
        });
    if let Err(e) = spawned {
        tracing_free_log(&format!("cannot start the WAL checkpoint thread: {e}"));
    }
}

/// Folds the WAL back into the database file. A PASSIVE checkpoint never waits for
/// anyone, but under a steady stream of commits it never catches up either, and SQLite only
/// rewinds the WAL once it has: the file would grow without bound (gigabytes in a minute
/// of storm), every commit extending it. So once the WAL holds more than
/// [`WAL_RESTART_FRAMES`], the checkpoint copies the few frames committed since the passive
/// pass with this process's writers held off (they queue on the writer lock for that
/// moment) and rewinds the WAL to its start.
fn checkpoint(db: &Db, conn: &Connection) -> Result<()> {
    let (_, wal_frames, _): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    if wal_frames > WAL_RESTART_FRAMES {
        let _writers_wait = db.writer.blocking_lock();
        conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()))?;
    }
    Ok(())
}

/// The store has no logging dependency; what little it must say goes to stderr.
fn tracing_free_log(message: &str) {
    eprintln!("vigil-store: {message}");
}

/// Times are stored as RFC 3339 text with milliseconds (sortable as text), or as Unix
/// milliseconds where they are compared with arithmetic.
pub(crate) fn text(t: Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub(crate) fn parse_time(value: &str, what: impl FnOnce() -> String) -> Result<Timestamp> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| StoreError::Corrupt(format!("{}: time `{value}`: {e}", what())))
}

pub(crate) fn parse_opt_time(
    value: Option<String>,
    what: impl FnOnce() -> String,
) -> Result<Option<Timestamp>> {
    value.map(|v| parse_time(&v, what)).transpose()
}

pub(crate) fn millis(t: Timestamp) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_millis(ms: i64, what: impl FnOnce() -> String) -> Result<Timestamp> {
    chrono::DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Corrupt(format!("{}: time {ms} ms is out of range", what())))
}

/// Reads an enum stored as text; an unknown value names the row.
pub(crate) fn parse_enum<T>(
    value: &str,
    parse: impl FnOnce(&str) -> Option<T>,
    what: impl FnOnce() -> String,
) -> Result<T> {
    parse(value).ok_or_else(|| StoreError::Corrupt(format!("{}: unknown value `{value}`", what())))
}

/// `execute` through the connection's statement cache: the hot paths run the same
/// statements thousands of times a second, and parsing SQL each time shows in profiles.
pub(crate) fn exec(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// `query_row` through the connection's statement cache (see [`exec`]).
pub(crate) fn one<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    row: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.prepare_cached(sql)?.query_row(params, row)
}

pub(crate) fn json_text<T: serde::Serialize>(value: &T, what: &str) -> Result<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}
