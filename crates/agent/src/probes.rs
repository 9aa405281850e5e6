//! The diagnostics vigil runs on a host when an alarm fires.
//!
//! | name | what an engineer would have typed |
//! |------|-----------------------------------|
//! | `top_cpu` | `ps -eo user,pid,ppid,%cpu,%mem,rss,cmd --sort=-%cpu \| head`, but %CPU over the last ~0.5 s |
//! | `top_mem` | the same sorted by RSS (%CPU there is over each process's lifetime, as in ps) |
//! | `disk_usage` | `df -hT`, then `du -xh -d 3 \| sort -rh \| head` on the fullest filesystem |
//! | `system_summary` | `uptime; free; top -bn1 \| head; dmesg \| grep -i oom` |
//! | `collector_status` | `systemctl status` for the agent's metric collector |
//! | `collector_restart` | `systemctl restart` for it, waiting for its first new sample |
//! | `command:NAME` | the argv the host's allow-list gives for NAME |
//!
//! Arguments (a JSON object; unknown keys are ignored, wrong types are errors):
//! `top` — rows to show (default 10); for `disk_usage` also `path` — directory to break
//! down instead of the fullest filesystem's mount point — and `depth` — levels to list
//! (default 3). `command:NAME` takes no arguments: nothing from the request ever
//! reaches the command line.
//!
//! Built-in probes succeed with `exit_code: Some(0)`, except `collector_status`, which
//! follows `systemctl status`: 0 when the collector is healthy, 3 when it is stopped or
//! its last sample is older than three collection intervals.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::allowlist::AllowList;
use crate::collect::CollectError;
use crate::redact::Redactor;

mod command;
mod disk;
mod health;
mod process;
mod summary;
mod text;

pub use health::{CollectorHealth, CollectorSnapshot, DEFAULT_COLLECTION_INTERVAL};

pub const DEFAULT_OUTPUT_CAP: usize = 64 * 1024;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_TOP: usize = 10;
const DEFAULT_DEPTH: usize = 3;
/// How much longer than the timeout `run` waits for probes that enforce the deadline
/// themselves (commands, collector_restart), so they can kill their child or say what
/// they were waiting for before the generic [`ProbeError::TimedOut`] applies.
const DEADLINE_GRACE: Duration = Duration::from_millis(250);

/// What probes need from the agent.
#[derive(Debug, Clone)]
pub struct ProbeContext {
    pub collector: Arc<CollectorHealth>,
    pub allow_list: AllowList,
    /// Output beyond this many bytes is cut at a char boundary and ends with a line
    /// `[output truncated at N bytes]`.
    pub output_cap: usize,
    /// Per probe.
    pub timeout: Duration,
    /// Masks secrets in every probe's output.
    pub redactor: Redactor,
}

impl ProbeContext {
    /// A context with [`DEFAULT_OUTPUT_CAP`], [`DEFAULT_TIMEOUT`] and the built-in
    /// redaction rules.
    pub fn new(collector: Arc<CollectorHealth>, allow_list: AllowList) -> ProbeContext {
        ProbeContext {
            collector,
            allow_list,
            output_cap: DEFAULT_OUTPUT_CAP,
            timeout: DEFAULT_TIMEOUT,
            redactor: Redactor::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeOutput {
    pub output: String,
    /// The command's exit code; `None` if a signal ended it.
    pub exit_code: Option<i32>,
    pub truncated: bool,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
pub enum ProbeError {
    #[error("unknown probe `{0}`; known probes: top_cpu, top_mem, disk_usage, system_summary, collector_status, collector_restart, command:NAME")]
    Unknown(String),
    #[error("command `{0}` is not in this agent's allow-list")]
    NotAllowed(String),
    #[error("probe timed out after {0} ms")]
    TimedOut(u64),
    #[error("probe failed: {0}")]
    Failed(String),
}

impl From<CollectError> for ProbeError {
    fn from(e: CollectError) -> Self {
        ProbeError::Failed(e.to_string())
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Probe {
    TopCpu,
    TopMem,
    DiskUsage,
    SystemSummary,
    CollectorStatus,
    CollectorRestart,
    Command(String),
}

impl Probe {
    fn parse(name: &str) -> Result<Probe, ProbeError> {
        Ok(match name {
            "top_cpu" => Probe::TopCpu,
            "top_mem" => Probe::TopMem,
            "disk_usage" => Probe::DiskUsage,
            "system_summary" => Probe::SystemSummary,
            "collector_status" => Probe::CollectorStatus,
            "collector_restart" => Probe::CollectorRestart,
            _ => match name.strip_prefix("command:") {
                Some(command) => Probe::Command(command.to_string()),
                None => return Err(ProbeError::Unknown(name.to_string())),
            },
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Args {
    top: usize,
    path: Option<String>,
    depth: usize,
}

impl Args {
    fn parse(args: &Value) -> Result<Args, ProbeError> {
        let mut parsed = Args {
            top: DEFAULT_TOP,
            path: None,
            depth: DEFAULT_DEPTH,
        };
        let map = match args {
            Value::Null => return Ok(parsed),
            Value::Object(map) => map,
            other => {
                return Err(ProbeError::Failed(format!(
                    "probe arguments must be a JSON object such as {{\"top\": 5}}, got {other}"
                )))
            }
        };
        let positive = |key: &str, v: &Value| {
            v.as_u64()
                .filter(|&n| n > 0)
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
                .ok_or_else(|| {
                    ProbeError::Failed(format!(
                        "argument `{key}` must be a positive integer, got {v}"
                    ))
                })
        };
        if let Some(v) = map.get("top") {
            parsed.top = positive("top", v)?;
        }
        if let Some(v) = map.get("depth") {
            parsed.depth = positive("depth", v)?;
        }
        if let Some(v) = map.get("path") {
            let path = v.as_str().ok_or_else(|| {
                ProbeError::Failed(format!(
                    "argument `path` must be a string such as \"/var\", got {v}"
                ))
            })?;
            parsed.path = Some(path.to_string());
        }
        Ok(parsed)
    }
}

/// Runs a probe by name, giving up after `ctx.timeout`. Its output is redacted (see
/// [`crate::redact`]) before it is capped, whatever the probe.
///
/// The probe runs on its own thread; if it overruns (a `statvfs` stuck on a dead NFS
/// server, say) `run` returns [`ProbeError::TimedOut`] and leaves the thread behind.
/// Commands are killed at the timeout instead.
pub fn run(name: &str, args: &Value, ctx: &ProbeContext) -> Result<ProbeOutput, ProbeError> {
    let probe = Probe::parse(name)?;
    let args = Args::parse(args)?;
    if let Probe::Command(command) = &probe {
        if ctx.allow_list.get(command).is_none() {
            return Err(ProbeError::NotAllowed(command.clone()));
        }
    }
    let deadline = Instant::now() + ctx.timeout;
    let thread_ctx = ctx.clone();
    let output = on_thread(ctx.timeout + DEADLINE_GRACE, move || {
        execute(probe, args, &thread_ctx, deadline)
    })
    .unwrap_or_else(|e| match e {
        RecvTimeoutError::Timeout => Err(timed_out(ctx.timeout)),
        RecvTimeoutError::Disconnected => Err(ProbeError::Failed(
            "the probe crashed; the agent's log has the panic message".into(),
        )),
    })?;
    Ok(cap_output(
        redact_output(output, &ctx.redactor),
        ctx.output_cap,
    ))
}

fn redact_output(mut out: ProbeOutput, redactor: &Redactor) -> ProbeOutput {
    if let std::borrow::Cow::Owned(clean) = redactor.text(&out.output) {
        out.output = clean;
    }
    if out.truncated {
        mask_token_at_the_cut(&mut out.output);
    }
    out
}

/// Output cut while it was read may end inside a token, leaving a piece too short for the
/// token rule to know: whatever of a `vgl_` token reaches the cut goes too.
fn mask_token_at_the_cut(text: &mut String) {
    let tail = text
        .trim_end_matches(|c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        .len();
    if let Some(at) = text[tail..].find("vgl_") {
        text.truncate(tail + at);
        text.push_str("vgl_[redacted]");
    }
}

fn timed_out(timeout: Duration) -> ProbeError {
    ProbeError::TimedOut(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX))
}

/// Runs `f` on a new thread and waits at most `limit` for its result.
fn on_thread<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, RecvTimeoutError> {
    let (sender, receiver) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("vigil-probe".into())
        .spawn(move || {
            let _ = sender.send(f());
        })
        // A thread that cannot start drops the sender, which reads as a crash.
        .ok();
    receiver.recv_timeout(limit)
}

fn execute(
    probe: Probe,
    args: Args,
    ctx: &ProbeContext,
    deadline: Instant,
) -> Result<ProbeOutput, ProbeError> {
    let text = match probe {
        Probe::TopCpu => process::top_cpu(args.top, deadline, &ctx.redactor)?,
        Probe::TopMem => process::top_mem(args.top, &ctx.redactor)?,
        Probe::DiskUsage => disk::disk_usage(
            disk::DiskArgs {
                path: args.path.as_deref(),
                top: args.top,
                depth: args.depth,
            },
            deadline,
        )?,
        Probe::SystemSummary => summary::system_summary(deadline, &ctx.redactor)?,
        Probe::CollectorStatus => return Ok(collector_status(&ctx.collector.snapshot())),
        Probe::CollectorRestart => collector_restart(&ctx.collector, ctx.timeout, deadline)?,
        Probe::Command(name) => {
            let argv = ctx
                .allow_list
                .get(&name)
                .ok_or(ProbeError::NotAllowed(name.clone()))?;
            return command::run_argv(argv, ctx.output_cap, ctx.timeout, deadline);
        }
    };
    Ok(ProbeOutput {
        output: text,
        exit_code: Some(0),
        truncated: false,
    })
}

/// Applies the output cap; output already cut while reading keeps its flag.
fn cap_output(mut out: ProbeOutput, cap: usize) -> ProbeOutput {
    if out.output.len() > cap {
        let kept = text::cut(&out.output, cap).len();
        out.output.truncate(kept);
        out.truncated = true;
    }
    if out.truncated {
        if !out.output.is_empty() && !out.output.ends_with('\n') {
            out.output.push('\n');
        }
        out.output
            .push_str(&format!("[output truncated at {cap} bytes]\n"));
    }
    out
}

fn ago(now: SystemTime, then: SystemTime) -> String {
    let secs = now.duration_since(then).unwrap_or(Duration::ZERO).as_secs();
    format!("{} ({secs} s ago)", text::rfc3339(then))
}

fn collector_status(snapshot: &CollectorSnapshot) -> ProbeOutput {
    let now = SystemTime::now();
    let healthy = snapshot.is_healthy(now);
    let interval = snapshot.interval.as_secs_f64();
    let mut out = format!(
        "collector {}\n",
        if snapshot.running {
            "running"
        } else {
            "stopped"
        }
    );
    match snapshot.last_sample_at {
        Some(at) => out.push_str(&format!(
            "last sample {}, {} samples in that round\n",
            ago(now, at),
            snapshot.last_sample_count
        )),
        None => out.push_str("last sample never\n"),
    }
    if snapshot.running && !healthy {
        out.push_str(&format!(
            "stale: no sample within 3 collection intervals ({:.0} s)\n",
            interval * 3.0
        ));
    }
    out.push_str(&format!("samples total {}\n", snapshot.samples_total));
    out.push_str(&format!("collection interval {interval} s\n"));
    match (&snapshot.last_error, snapshot.last_error_at) {
        (Some(error), Some(at)) => out.push_str(&format!("last error {}: {error}\n", ago(now, at))),
        (Some(error), None) => out.push_str(&format!("last error: {error}\n")),
        (None, _) => out.push_str("last error none\n"),
    }
    out.push_str(&format!("restarts {}\n", snapshot.restarts));
    ProbeOutput {
        output: out,
        exit_code: Some(if healthy { 0 } else { 3 }),
        truncated: false,
    }
}

fn collector_restart(
    health: &CollectorHealth,
    timeout: Duration,
    deadline: Instant,
) -> Result<String, ProbeError> {
    let ticket = health.request_restart_ticket();
    match health.wait_restarted(ticket, deadline) {
        Some(at) => Ok(format!(
            "collector restarted; first sample at {}\n",
            text::rfc3339(at)
        )),
        None => {
            let s = health.snapshot();
            let error = s.last_error.as_deref().unwrap_or("none");
            Err(ProbeError::Failed(format!(
                "the collector did not come back with a new sample within {} ms (running: {}, restarts honoured: {}, last error: {error}); check the agent's log and service",
                timeout.as_millis(),
                s.running,
                s.restarts
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_cut_short_at_the_output_cap_is_masked_too() {
        let cut = ProbeOutput {
            output: "root 42 /usr/bin/sync-keys vgl_AbCd1".into(),
            exit_code: Some(0),
            truncated: true,
        };
        let clean = redact_output(cut, &Redactor::default());
        assert_eq!(clean.output, "root 42 /usr/bin/sync-keys vgl_[redacted]");
        // Whole, the short piece is no token: only a cut makes it one.
        let whole = ProbeOutput {
            output: "name vgl_x".into(),
            exit_code: Some(0),
            truncated: false,
        };
        assert_eq!(
            redact_output(whole, &Redactor::default()).output,
            "name vgl_x"
        );
    }
    use serde_json::json;

    #[test]
    fn names_parse() {
        assert_eq!(Probe::parse("top_cpu"), Ok(Probe::TopCpu));
        // Every probe the server lets playbooks name, the agent runs.
        for name in vigil_core::BUILT_IN_PROBES {
            assert!(Probe::parse(name).is_ok(), "{name}");
        }
        assert_eq!(
            Probe::parse("command:df_inodes"),
            Ok(Probe::Command("df_inodes".into()))
        );
        assert_eq!(
            Probe::parse("TOP_CPU"),
            Err(ProbeError::Unknown("TOP_CPU".into()))
        );
        assert_eq!(
            Probe::parse("top_cpu; rm -rf /"),
            Err(ProbeError::Unknown("top_cpu; rm -rf /".into()))
        );
    }

    #[test]
    fn args_parse() {
        assert_eq!(
            Args::parse(&Value::Null).unwrap(),
            Args {
                top: 10,
                path: None,
                depth: 3
            }
        );
        let args =
            Args::parse(&json!({"top": 3, "path": "/var", "depth": 2, "colour": "red"})).unwrap();
        assert_eq!(
            args,
            Args {
                top: 3,
                path: Some("/var".into()),
                depth: 2
            }
        );
        for bad in [
            json!({"top": "ten"}),
            json!({"top": 0}),
            json!({"top": -1}),
            json!({"top": 2.5}),
            json!({"path": 7}),
            json!({"depth": null}),
            json!([1, 2]),
            json!("top"),
        ] {
            let err = Args::parse(&bad).unwrap_err();
            assert!(matches!(err, ProbeError::Failed(_)), "{bad}: {err}");
        }
    }

    #[test]
    fn cap_cuts_at_char_boundary_and_says_so() {
        let out = cap_output(
            ProbeOutput {
                output: "ééééé".into(),
                exit_code: Some(0),
                truncated: false,
            },
            5,
        );
        assert_eq!(out.output, "éé\n[output truncated at 5 bytes]\n");
        assert!(out.truncated);

        let short = cap_output(
            ProbeOutput {
                output: "ok\n".into(),
                exit_code: Some(0),
                truncated: false,
            },
            5,
        );
        assert_eq!(short.output, "ok\n");
        assert!(!short.truncated);

        let cut_while_reading = cap_output(
            ProbeOutput {
                output: "abc".into(),
                exit_code: Some(0),
                truncated: true,
            },
            3,
        );
        assert_eq!(
            cut_while_reading.output,
            "abc\n[output truncated at 3 bytes]\n"
        );
    }

    #[test]
    fn on_thread_gives_up_at_the_limit() {
        let started = Instant::now();
        let result = on_thread(Duration::from_millis(100), || {
            std::thread::sleep(Duration::from_secs(2));
        });
        assert_eq!(result, Err(RecvTimeoutError::Timeout));
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(on_thread(Duration::from_secs(1), || 7), Ok(7));
    }

    #[test]
    fn a_panicking_probe_is_a_failure_not_a_timeout() {
        let started = Instant::now();
        let result: Result<(), _> = on_thread(Duration::from_secs(5), || panic!("boom"));
        assert_eq!(result, Err(RecvTimeoutError::Disconnected));
        assert!(started.elapsed() < Duration::from_secs(4));
    }
}
