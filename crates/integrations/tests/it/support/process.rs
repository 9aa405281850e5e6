//! Child processes for tests: started, awaited until they say they are ready, killed and
//! reaped when the test's handle drops (also when the test panics).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct ChildGuard {
    child: Child,
    /// Keeps the file the child's stderr goes to until the child is gone.
    stderr: tempfile::NamedTempFile,
}

impl ChildGuard {
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr.path()).unwrap_or_default()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `python3 script args…` and waits (at most 20 s) for a stdout line starting with
/// `ready_prefix`; returns the guard and the rest of that line.
pub fn start_python(script: &Path, args: &[&str], ready_prefix: &str) -> (ChildGuard, String) {
    assert!(
        script.is_file(),
        "{} is missing; the tests need it beside the repository",
        script.display()
    );
    let stderr = tempfile::NamedTempFile::new().expect("temp file for the child's stderr");
    let mut child = match Command::new("python3")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr.reopen().expect("stderr file"))
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "python3 is not installed; these tests run {} with it (scripts/test installs it)",
            script.display()
        ),
        Err(e) => panic!("cannot start python3 {}: {e}", script.display()),
    };
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().and_then(Result::ok);
        let _ = tx.send(first);
        // Keep draining so the child never blocks on a full pipe.
        for _ in lines {}
    });
    let guard = ChildGuard { child, stderr };
    let line = rx.recv_timeout(Duration::from_secs(20));
    match line {
        Ok(Some(line)) if line.starts_with(ready_prefix) => {
            let rest = line[ready_prefix.len()..].trim().to_string();
            (guard, rest)
        }
        Ok(other) => panic!(
            "{} did not start (first line {other:?}); its stderr:\n{}",
            script.display(),
            guard.stderr()
        ),
        Err(_) => panic!(
            "{} printed nothing within 20 s; its stderr:\n{}",
            script.display(),
            guard.stderr()
        ),
    }
}

/// A loopback port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}
