//! `command:NAME`: runs an allow-listed argv directly — no shell, a fixed environment,
//! output captured up to the cap, the whole process group killed at the deadline.

use std::fs::File;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{ProbeError, ProbeOutput};

/// The only environment a command gets besides `LANG=C`; nothing of the agent's own
/// environment (tokens, proxies) leaks into it.
pub(crate) const COMMAND_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
/// How often to look whether a command that closed its output has exited.
const EXIT_POLL: Duration = Duration::from_millis(10);

/// Runs `argv` and returns its combined stdout and stderr, in the order written, as a
/// terminal with `2>&1` would show them. At most `cap` bytes are kept; the rest is read
/// and dropped so the command does not block on a full pipe.
pub(crate) fn run_argv(
    argv: &[String],
    cap: usize,
    timeout: Duration,
    deadline: Instant,
) -> Result<ProbeOutput, ProbeError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(ProbeError::Failed(
            "the allow-list entry has no program".into(),
        ));
    };
    let failed = |what: &str, e: std::io::Error| {
        ProbeError::Failed(format!("cannot {what} `{program}`: {e}"))
    };
    let (read_end, write_end) = pipe().map_err(|e| failed("create a pipe for", e))?;
    let stderr_end = write_end
        .try_clone()
        .map_err(|e| failed("create a pipe for", e))?;
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .env("PATH", COMMAND_PATH)
        .env("LANG", "C")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::from(write_end))
        .stderr(Stdio::from(stderr_end))
        // Its own process group, so the timeout also kills whatever it started.
        .process_group(0);
    let spawned = command.spawn();
    // Our copies of the write end must close, or the reader would never see EOF.
    drop(command);
    let mut child = spawned.map_err(|e| failed("start", e))?;

    let (sender, receiver) = mpsc::channel();
    let reader = std::thread::Builder::new()
        .name("vigil-command-output".into())
        .spawn(move || {
            let _ = sender.send(read_capped(File::from(read_end), cap));
        });
    if let Err(e) = reader {
        kill(&mut child);
        return Err(failed("read the output of", e));
    }

    let timed_out = || ProbeError::TimedOut(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
    let left = deadline.saturating_duration_since(Instant::now());
    let Ok((bytes, overflowed)) = receiver.recv_timeout(left) else {
        kill(&mut child);
        return Err(timed_out());
    };
    // The output is closed, but the command may still be running.
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(EXIT_POLL),
            Ok(None) => {
                kill(&mut child);
                return Err(timed_out());
            }
            Err(e) => {
                kill(&mut child);
                return Err(failed("wait for", e));
            }
        }
    };

    let mut output = String::from_utf8_lossy(&bytes).into_owned();
    if let Some(signal) = status.signal() {
        if !output.is_empty() && !output.ends_with('\n') {
            output.push('\n');
        }
        output.push_str(&format!("[terminated by signal {signal}]\n"));
    }
    Ok(ProbeOutput {
        output,
        exit_code: status.code(),
        truncated: overflowed,
    })
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // Close-on-exec, so commands other threads start at the same time do not inherit
    // the write end and hold the pipe open.
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both are open descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Reads to EOF keeping the first `cap` bytes; the flag says whether more came.
fn read_capped(mut from: impl Read, cap: usize) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut overflowed = false;
    let mut buf = [0u8; 8192];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let room = cap.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
        overflowed |= n > room;
    }
    (kept, overflowed)
}

/// Kills the command's whole process group and reaps the command.
fn kill(child: &mut Child) {
    // The child is not reaped yet, so its pid (= its process group id) cannot have been
    // reused by another process.
    if let Ok(pgid) = i32::try_from(child.id()) {
        // SAFETY: kill only sends a signal.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_capped_keeps_the_head_and_drains_the_rest() {
        let data = vec![b'x'; 100_000];
        let (kept, overflowed) = read_capped(&data[..], 1000);
        assert_eq!(kept.len(), 1000);
        assert!(overflowed);
        let (kept, overflowed) = read_capped(&data[..10], 10);
        assert_eq!(kept.len(), 10);
        assert!(!overflowed);
    }

    #[test]
    fn stdout_and_stderr_are_both_captured() {
        let argv: Vec<String> = ["/bin/ls", "/", "/nonexistent-vigil"]
            .map(String::from)
            .to_vec();
        let far = Instant::now() + Duration::from_secs(10);
        let out = run_argv(&argv, 1 << 20, Duration::from_secs(10), far).unwrap();
        assert_eq!(out.exit_code, Some(2));
        assert!(out.output.contains("nonexistent-vigil"), "{}", out.output);
        assert!(out.output.contains("proc"), "{}", out.output);
        assert!(!out.truncated);
    }

    #[test]
    fn missing_program_fails_with_its_name() {
        let argv = vec!["/nonexistent/vigil-tool".to_string()];
        let far = Instant::now() + Duration::from_secs(10);
        let err = run_argv(&argv, 1024, Duration::from_secs(10), far).unwrap_err();
        assert!(
            matches!(&err, ProbeError::Failed(m) if m.contains("/nonexistent/vigil-tool")),
            "{err}"
        );
    }

    #[test]
    fn signal_deaths_are_reported() {
        // `kill -9 $$` without a shell: /bin/kill sends SIGKILL to its own process group,
        // which is just itself.
        let argv: Vec<String> = ["/bin/kill", "-9", "0"].map(String::from).to_vec();
        let far = Instant::now() + Duration::from_secs(10);
        let out = run_argv(&argv, 1024, Duration::from_secs(10), far).unwrap();
        assert_eq!(out.exit_code, None);
        assert!(
            out.output.contains("[terminated by signal 9]"),
            "{}",
            out.output
        );
    }
}
