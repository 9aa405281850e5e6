//! One vigil per data directory.
//!
//! A server holds an exclusive `flock` on `DATA/vigil.lock` for its whole life. The kernel
//! drops the lock when the process ends, however it ends (`kill -9` included), so a crashed
//! server never leaves a stale lock behind: unlike a PID file, nothing has to guess whether
//! the recorded process still exists. The file's content (pid, start time, command line)
//! only serves the error message of the vigil that was refused.

use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = "vigil.lock";

/// How long a refused vigil waits for the holder to write its details, when it wins the
/// lock and has not written them yet.
const HOLDER_WAIT: Duration = Duration::from_millis(500);

/// Held while the server runs; dropping it (or the process ending) releases the directory.
#[derive(Debug)]
pub struct DataDirLock {
    file: File,
    path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum DataDirLockError {
    #[error(
        "data directory {} is in use by another vigil ({holder}); stop it or choose another --data (or server.data_dir)",
        dir.display()
    )]
    InUse { dir: PathBuf, holder: Holder },
    #[error("data directory {}: cannot lock {}: {source}", dir.display(), path.display())]
    Io {
        dir: PathBuf,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What the lock file says about the vigil holding it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holder {
    pub pid: Option<u32>,
    pub started: Option<String>,
    pub command: Option<String>,
}

impl Holder {
    fn current() -> Holder {
        Holder {
            pid: Some(std::process::id()),
            started: Some(crate::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            command: Some(
                std::env::args()
                    .map(|arg| quoted(&arg))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
        }
    }

    fn render(&self) -> String {
        let mut text = String::new();
        if let Some(pid) = self.pid {
            text.push_str(&format!("pid={pid}\n"));
        }
        if let Some(started) = &self.started {
            text.push_str(&format!("started={started}\n"));
        }
        if let Some(command) = &self.command {
            text.push_str(&format!("command={}\n", command.replace('\n', " ")));
        }
        text
    }

    fn parse(text: &str) -> Holder {
        let mut holder = Holder::default();
        for line in text.lines() {
            match line.split_once('=') {
                Some(("pid", pid)) => holder.pid = pid.trim().parse().ok(),
                Some(("started", started)) => holder.started = Some(started.trim().to_string()),
                Some(("command", command)) => holder.command = Some(command.trim().to_string()),
                _ => {}
            }
        }
        holder
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pid {
            Some(pid) => write!(f, "pid {pid}")?,
            None => write!(f, "pid not recorded")?,
        }
        if let Some(started) = &self.started {
            write!(f, ", started {started}")?;
        }
        if let Some(command) = &self.command {
            write!(f, ", command: {command}")?;
        }
        Ok(())
    }
}

impl DataDirLock {
    /// Takes `DIR/vigil.lock` without waiting, or says which vigil holds it.
    pub fn acquire(dir: &Path) -> Result<DataDirLock, DataDirLockError> {
        let path = dir.join(LOCK_FILE);
        let io_error = |source| DataDirLockError::Io {
            dir: dir.to_path_buf(),
            path: path.clone(),
            source,
        };
        // Not truncated on open: a refused vigil must leave the holder's details in place.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io_error)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(DataDirLockError::InUse {
                    dir: dir.to_path_buf(),
                    holder: read_holder(&mut file),
                })
            }
            Err(TryLockError::Error(source)) => return Err(io_error(source)),
        }
        let details = Holder::current().render();
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(details.as_bytes()))
            .map_err(io_error)?;
        Ok(DataDirLock { file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DataDirLock {
    fn drop(&mut self) {
        // Closing the file releases the lock too; this only makes the order explicit.
        let _ = self.file.unlock();
    }
}

/// An argument as a shell would need it, so the command line reads unambiguously.
fn quoted(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// The holder writes its details right after winning the lock; a vigil refused in that
/// instant waits briefly (bounded) for them.
fn read_holder(file: &mut File) -> Holder {
    let deadline = Instant::now() + HOLDER_WAIT;
    loop {
        let mut text = String::new();
        let holder = file
            .seek(SeekFrom::Start(0))
            .and_then(|_| file.read_to_string(&mut text))
            .map(|_| Holder::parse(&text))
            .unwrap_or_default();
        if holder.pid.is_some() || Instant::now() >= deadline {
            return holder;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("vigil-lock-")
            .tempdir()
            .expect("temp dir")
    }

    #[test]
    fn acquire_records_this_process() {
        let dir = temp_dir();
        let lock = DataDirLock::acquire(dir.path()).expect("a free directory locks");
        assert_eq!(lock.path(), dir.path().join(LOCK_FILE));
        let holder = Holder::parse(&std::fs::read_to_string(lock.path()).expect("lock file"));
        assert_eq!(holder.pid, Some(std::process::id()));
        assert!(holder.started.is_some(), "{holder:?}");
        assert!(holder.command.is_some(), "{holder:?}");
    }

    #[test]
    fn a_second_acquire_is_refused_and_names_the_holder() {
        let dir = temp_dir();
        let _held = DataDirLock::acquire(dir.path()).expect("first lock");
        // flock locks belong to the open file, so a second open in this same process
        // conflicts exactly as another process would.
        let refused = DataDirLock::acquire(dir.path()).expect_err("second lock is refused");
        match &refused {
            DataDirLockError::InUse {
                dir: in_use,
                holder,
            } => {
                assert_eq!(in_use, dir.path());
                assert_eq!(holder.pid, Some(std::process::id()));
            }
            other => panic!("expected InUse, got {other:?}"),
        }
        let message = refused.to_string();
        assert!(
            message.contains(&dir.path().display().to_string()),
            "{message}"
        );
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
        assert!(message.contains("choose another --data"), "{message}");
        // The refused attempt left the holder's details alone.
        let text = std::fs::read_to_string(dir.path().join(LOCK_FILE)).expect("lock file");
        assert_eq!(Holder::parse(&text).pid, Some(std::process::id()));
    }

    #[test]
    fn dropping_the_lock_releases_the_directory() {
        let dir = temp_dir();
        let first = DataDirLock::acquire(dir.path()).expect("first lock");
        drop(first);
        let _again = DataDirLock::acquire(dir.path()).expect("released by drop");
    }

    #[test]
    fn a_dead_holders_details_are_replaced() {
        let dir = temp_dir();
        // What a killed vigil leaves: the file with its details, and no lock on it.
        std::fs::write(
            dir.path().join(LOCK_FILE),
            "pid=999999999\nstarted=2001-01-01T00:00:00Z\ncommand=vigil up and a long line left behind\n",
        )
        .expect("write stale file");
        let lock = DataDirLock::acquire(dir.path()).expect("an unlocked file is free");
        let text = std::fs::read_to_string(lock.path()).expect("lock file");
        let holder = Holder::parse(&text);
        assert_eq!(holder.pid, Some(std::process::id()));
        assert!(!text.contains("left behind"), "{text}");
    }

    #[test]
    fn a_missing_directory_is_an_io_error() {
        let dir = temp_dir();
        let missing = dir.path().join("not-there");
        match DataDirLock::acquire(&missing) {
            Err(DataDirLockError::Io { path, .. }) => assert_eq!(path, missing.join(LOCK_FILE)),
            other => panic!("expected Io, got {other:?}"),
        }
    }

    #[test]
    fn arguments_are_quoted_only_when_needed() {
        assert_eq!(quoted("--data"), "--data");
        assert_eq!(quoted("./vigil-data"), "./vigil-data");
        assert_eq!(quoted("127.0.0.1:8080"), "127.0.0.1:8080");
        assert_eq!(quoted(""), "''");
        assert_eq!(quoted("my data"), "'my data'");
        assert_eq!(quoted("it's"), r"'it'\''s'");
    }

    #[test]
    fn holder_details_round_trip() {
        let holder = Holder {
            pid: Some(42),
            started: Some("2026-01-02T03:04:05Z".into()),
            command: Some("vigil up --data ./vigil-data".into()),
        };
        assert_eq!(Holder::parse(&holder.render()), holder);
        assert_eq!(
            holder.to_string(),
            "pid 42, started 2026-01-02T03:04:05Z, command: vigil up --data ./vigil-data"
        );
        assert_eq!(Holder::default().to_string(), "pid not recorded");
    }
}
