//! The probes as the agent runtime calls them, against real processes on this machine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use vigil_agent::allowlist::AllowList;
use vigil_agent::collect::Collector;
use vigil_agent::probes::{run, CollectorHealth, ProbeContext, ProbeError};
use vigil_agent::redact::Redactor;

const ALLOW_LIST: &str = r#"
[commands]
echo_ok = ["/bin/echo", "ok"]
fail = ["/usr/bin/false"]
env = ["/usr/bin/env"]
count = ["/usr/bin/seq", "1", "100000"]
nap = ["/usr/bin/sleep", "987"]
secrets = ["/bin/echo", "db token=abc123 licence corp-4242"]
"#;

fn ctx() -> ProbeContext {
    ProbeContext::new(
        Arc::new(CollectorHealth::new()),
        AllowList::from_toml(ALLOW_LIST).unwrap(),
    )
}

/// Tests that burn CPU (or measure who does) take turns, so that one cannot push the
/// other's process out of a top-3 list.
static CPU_HEAVY: Mutex<()> = Mutex::new(());

fn cpu_heavy() -> MutexGuard<'static, ()> {
    CPU_HEAVY.lock().unwrap_or_else(PoisonError::into_inner)
}

fn no_args() -> Value {
    json!({})
}

/// Kills the child when the test ends, pass or fail.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// (pid, cells) of the first `n` rows of the first ps-style table in `output`.
fn table_rows(output: &str, n: usize) -> Vec<(u32, Vec<String>)> {
    output
        .lines()
        .skip_while(|l| !l.starts_with("USER "))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .take(n)
        .map(|l| {
            let cells: Vec<String> = l.split_whitespace().map(String::from).collect();
            (cells[1].parse().unwrap(), cells)
        })
        .collect()
}

#[test]
fn top_cpu_finds_a_cpu_burner() {
    let _turn = cpu_heavy();
    let burner = Reaped(
        Command::new("/usr/bin/yes")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(100));
    let out = run("top_cpu", &json!({"top": 5}), &ctx()).unwrap();
    let text = &out.output;
    assert_eq!(out.exit_code, Some(0));
    assert!(text.starts_with("CPU utilisation "), "{text}");
    assert!(
        text.lines().next().unwrap().contains(" ms, load "),
        "{text}"
    );
    let header = text.lines().nth(1).unwrap();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["USER", "PID", "PPID", "%CPU", "%MEM", "RSS", "COMMAND"]
    );
    assert_eq!(
        table_rows(text, 100).len(),
        5,
        "top: 5 gives 5 rows\n{text}"
    );

    let rows = table_rows(text, 3);
    let (_, row) = rows
        .iter()
        .find(|(pid, _)| *pid == burner.0.id())
        .unwrap_or_else(|| panic!("yes (pid {}) not in the top 3:\n{text}", burner.0.id()));
    let cpu: f64 = row[3].parse().unwrap();
    assert!(cpu > 20.0, "yes at {cpu}%\n{text}");
    assert_eq!(row[6], "/usr/bin/yes");
    assert_eq!(row[2], std::process::id().to_string(), "PPID");
}

/// A shell that spins with a password on its command line.
fn secret_burner() -> Reaped {
    Reaped(
        Command::new("/bin/sh")
            .args([
                "-c",
                "while :; do :; done",
                "sh",
                "--password=hunter2",
                "--token",
                "vgl_AbCdEfGhIjKlMnOpQrStUv",
            ])
            .spawn()
            .unwrap(),
    )
}

#[test]
fn process_tables_mask_secrets_in_command_lines() {
    let _turn = cpu_heavy();
    let burner = secret_burner();
    let pid = burner.0.id();
    let expected = "sh -c while :; do :; done sh --password=*** --token ***";
    std::thread::sleep(Duration::from_millis(100));
    for (probe, args) in [
        ("top_cpu", json!({"top": 3})),
        ("top_mem", json!({"top": 100000})),
        ("system_summary", json!({})),
    ] {
        let out = run(probe, &args, &ctx()).unwrap();
        let text = &out.output;
        assert!(!text.contains("hunter2"), "{probe}:\n{text}");
        assert!(!text.contains("vgl_AbCd"), "{probe}:\n{text}");
        let row = text
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(&pid.to_string()))
            .unwrap_or_else(|| panic!("{probe} does not list the burner (pid {pid}):\n{text}"));
        assert!(row.ends_with(expected), "{probe}: {row}");
    }
}

#[test]
fn every_probe_output_is_redacted_with_extra_patterns_too() {
    let mut ctx = ctx();
    let out = run("command:secrets", &no_args(), &ctx).unwrap();
    assert_eq!(out.output, "db token=*** licence corp-4242\n");
    ctx.redactor = Redactor::new(&["corp-[0-9]+"]).unwrap();
    let out = run("command:secrets", &no_args(), &ctx).unwrap();
    assert_eq!(out.output, "db token=*** licence ***\n");
}

#[test]
fn top_mem_finds_a_big_allocation() {
    let _turn = cpu_heavy();
    // bytes * n writes every byte, so all of it is resident.
    let script = "import os, sys, time\n\
                  b = b'x' * (800 * 1024 * 1024)\n\
                  print(os.getpid(), flush=True)\n\
                  time.sleep(30)\n";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = Reaped(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    // The pid python reports itself, in case python3 is a wrapper that forks.
    let pid: u32 = line.trim().parse().unwrap();

    let out = run("top_mem", &json!({"top": 3}), &ctx()).unwrap();
    drop(child);
    let text = &out.output;
    assert!(text.starts_with("memory "), "{text}");
    let rows = table_rows(text, 3);
    assert_eq!(rows.len(), 3, "{text}");
    let (_, row) = rows
        .iter()
        .find(|(p, _)| *p == pid)
        .unwrap_or_else(|| panic!("python (pid {pid}) not in the top 3:\n{text}"));
    let rss_kib: u64 = row[5].parse().unwrap();
    assert!(rss_kib >= 800 * 1024, "RSS {rss_kib} KiB\n{text}");
    let rss: Vec<u64> = rows.iter().map(|(_, r)| r[5].parse().unwrap()).collect();
    assert!(
        rss.windows(2).all(|w| w[0] >= w[1]),
        "sorted by RSS\n{text}"
    );
}

#[test]
fn allowed_command_runs_with_exit_code() {
    let out = run("command:echo_ok", &no_args(), &ctx()).unwrap();
    assert_eq!(out.output, "ok\n");
    assert_eq!(out.exit_code, Some(0));
    assert!(!out.truncated);

    let out = run("command:fail", &Value::Null, &ctx()).unwrap();
    assert_eq!(out.output, "");
    assert_eq!(out.exit_code, Some(1));
}

#[test]
fn command_not_in_the_list_is_refused() {
    assert_eq!(
        run("command:rm_rf", &no_args(), &ctx()),
        Err(ProbeError::NotAllowed("rm_rf".into()))
    );
    let err = run("command:", &no_args(), &ctx()).unwrap_err();
    assert_eq!(err, ProbeError::NotAllowed(String::new()));
    assert!(err.to_string().contains("allow-list"));
}

#[test]
fn long_output_is_truncated_with_a_note() {
    let mut ctx = ctx();
    ctx.output_cap = 1000;
    let out = run("command:count", &no_args(), &ctx).unwrap();
    assert!(out.truncated);
    assert_eq!(out.exit_code, Some(0), "seq ran to the end");
    assert!(out.output.starts_with("1\n2\n3\n"));
    assert!(
        out.output.ends_with("\n[output truncated at 1000 bytes]\n"),
        "{}",
        out.output
    );
    let body = out
        .output
        .trim_end_matches("[output truncated at 1000 bytes]\n");
    assert!(body.len() <= 1001, "{} bytes kept", body.len());

    // Built-in probes are capped the same way.
    ctx.output_cap = 200;
    let out = run("top_mem", &no_args(), &ctx).unwrap();
    assert!(out.truncated);
    assert!(out.output.ends_with("[output truncated at 200 bytes]\n"));
    assert!(out.output.len() <= 200 + "\n[output truncated at 200 bytes]\n".len());
}

fn sleeping_naps() -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let pid = e.ok()?.file_name().to_str()?.parse::<u32>().ok()?;
            std::fs::read(format!("/proc/{pid}/cmdline")).ok()
        })
        .filter(|cmdline| cmdline == b"/usr/bin/sleep\0987\0")
        .count()
}

#[test]
fn command_is_killed_at_the_timeout() {
    let mut ctx = ctx();
    ctx.timeout = Duration::from_millis(500);
    let started = Instant::now();
    assert_eq!(
        run("command:nap", &no_args(), &ctx),
        Err(ProbeError::TimedOut(500))
    );
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(500), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(sleeping_naps(), 0, "sleep 987 survived the timeout");
}

#[test]
fn command_environment_is_cleared() {
    let inherited: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
    assert!(
        inherited.iter().any(|k| k.starts_with("CARGO")),
        "{inherited:?}"
    );
    let out = run("command:env", &no_args(), &ctx()).unwrap();
    let mut lines: Vec<&str> = out.output.lines().collect();
    lines.sort();
    assert_eq!(lines, ["LANG=C", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"]);
}

#[test]
fn unknown_probe_is_refused() {
    let err = run("top_cpus", &no_args(), &ctx()).unwrap_err();
    assert_eq!(err, ProbeError::Unknown("top_cpus".into()));
    assert!(err.to_string().contains("command:NAME"), "{err}");
    assert!(matches!(
        run("", &no_args(), &ctx()),
        Err(ProbeError::Unknown(_))
    ));
}

#[test]
fn wrong_argument_types_are_errors() {
    let err = run("top_mem", &json!({"top": "ten"}), &ctx()).unwrap_err();
    assert!(
        matches!(&err, ProbeError::Failed(m) if m.contains("`top`")),
        "{err}"
    );
    let err = run("disk_usage", &json!({"path": 42}), &ctx()).unwrap_err();
    assert!(
        matches!(&err, ProbeError::Failed(m) if m.contains("`path`")),
        "{err}"
    );
}

#[test]
fn shell_metacharacters_do_nothing() {
    let marker = |n: u32| PathBuf::from(format!("/tmp/vigil-pwned-{}-{n}", std::process::id()));
    let markers: Vec<PathBuf> = (0..12).map(marker).collect();
    let m = |n: usize| markers[n].display().to_string();
    let ctx = ctx();

    for name in [
        format!("command:echo_ok; touch {}", m(0)),
        format!("command:echo_ok && touch {}", m(1)),
        format!("command:$(touch {})", m(2)),
        format!("command:`touch {}`", m(3)),
        format!("command:echo_ok|touch {}", m(4)),
        format!("command:echo_ok\ntouch {}", m(5)),
    ] {
        let err = run(&name, &no_args(), &ctx).unwrap_err();
        assert!(matches!(err, ProbeError::NotAllowed(_)), "{name}: {err}");
    }
    let name = format!("echo_ok; touch {}", m(6));
    assert!(matches!(
        run(&name, &no_args(), &ctx),
        Err(ProbeError::Unknown(_))
    ));

    // Arguments never reach the command line.
    let args = json!({
        "args": [format!("$(touch {})", m(7))],
        "argv": format!("`touch {}`", m(8)),
        "path": format!("; touch {}", m(9)),
    });
    let out = run("command:echo_ok", &args, &ctx).unwrap();
    assert_eq!(out.output, "ok\n");

    for path in [
        format!("$(touch {})", m(10)),
        format!("/tmp/`touch {}`", m(11)),
    ] {
        let err = run("disk_usage", &json!({ "path": path }), &ctx).unwrap_err();
        assert!(matches!(err, ProbeError::Failed(_)), "{path}: {err}");
    }

    std::thread::sleep(Duration::from_millis(200));
    for marker in &markers {
        assert!(!marker.exists(), "{} was created", marker.display());
    }
}

#[test]
fn disk_usage_breaks_down_a_directory() {
    let root = std::env::temp_dir().join(format!("vigil-disk-usage-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("alpha/inner")).unwrap();
    std::fs::create_dir_all(root.join("beta")).unwrap();
    std::fs::write(root.join("alpha/inner/a.bin"), vec![1u8; 2 << 20]).unwrap();
    std::fs::write(root.join("beta/b.bin"), vec![1u8; 256 << 10]).unwrap();

    let args = json!({ "path": root.display().to_string() });
    let out = run("disk_usage", &args, &ctx());
    std::fs::remove_dir_all(&root).unwrap();
    let text = out.unwrap().output;

    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        [
            "Filesystem",
            "Type",
            "Size",
            "Used",
            "Avail",
            "Use%",
            "Mounted",
            "on"
        ]
    );
    assert!(
        text.lines().any(|l| l.ends_with(" /") && l.contains('%')),
        "no row for /\n{text}"
    );
    assert!(
        text.contains(&format!("largest directories under {}", root.display())),
        "{text}"
    );
    let listed: Vec<(&str, &str)> = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("SIZE PATH"))
        .skip(1)
        .take_while(|l| !l.starts_with("total "))
        .filter_map(|l| l.trim_start().split_once(' '))
        .collect();
    let names: Vec<String> = listed
        .iter()
        .map(|(_, p)| {
            p.trim_start_matches(&root.display().to_string())
                .to_string()
        })
        .collect();
    assert_eq!(names, ["/alpha", "/alpha/inner", "/beta"], "{text}");
    assert!(
        listed[0].0.starts_with("2.") && listed[0].0.ends_with('M'),
        "{text}"
    );
    assert!(!text.contains("cut short"), "{text}");
}

#[test]
fn disk_usage_defaults_to_the_fullest_filesystem_within_the_timeout() {
    let _turn = cpu_heavy();
    let mut ctx = ctx();
    ctx.timeout = Duration::from_secs(2);
    let started = Instant::now();
    let out = run("disk_usage", &no_args(), &ctx).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(
        out.output.contains("largest directories under /"),
        "{}",
        out.output
    );
    assert!(out.output.contains("\ntotal "), "{}", out.output);
}

#[test]
fn system_summary_reports_kernel_log_either_way() {
    let out = run("system_summary", &no_args(), &ctx()).unwrap();
    assert_eq!(out.exit_code, Some(0));
    assert!(
        out.output.contains("OOM-killer messages")
            || out.output.contains("kernel log not readable"),
        "{}",
        out.output
    );
}

/// The agent runtime's collector loop, reduced to the CollectorHealth protocol.
fn simulated_loop(health: Arc<CollectorHealth>, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let interval = Duration::from_millis(100);
        health.set_interval(interval);
        let mut collector = Collector::new();
        health.set_running(true);
        while !stop.load(Ordering::SeqCst) {
            match collector.collect() {
                Ok(samples) => health.record_success(SystemTime::now(), samples.len()),
                Err(e) => health.record_error(SystemTime::now(), e.to_string()),
            }
            if health.wait_restart(interval) {
                health.set_running(false);
                std::thread::sleep(Duration::from_millis(50));
                collector = Collector::new();
                health.set_running(true);
            }
        }
        health.set_running(false);
    })
}

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn collector_status_follows_the_loop() {
    let _turn = cpu_heavy();
    let ctx = ctx();
    let out = run("collector_status", &no_args(), &ctx).unwrap();
    assert!(
        out.output.starts_with("collector stopped\n"),
        "{}",
        out.output
    );
    assert!(out.output.contains("last sample never"), "{}", out.output);
    assert_eq!(out.exit_code, Some(3));

    let stop = Arc::new(AtomicBool::new(false));
    let handle = simulated_loop(Arc::clone(&ctx.collector), Arc::clone(&stop));
    wait_for("a first sample", || {
        ctx.collector.snapshot().samples_total > 0
    });
    let out = run("collector_status", &no_args(), &ctx).unwrap();
    assert_eq!(out.exit_code, Some(0), "{}", out.output);
    assert!(
        out.output.starts_with("collector running\n"),
        "{}",
        out.output
    );
    assert!(out.output.contains("last error none"), "{}", out.output);
    assert!(
        out.output.contains("collection interval 0.1 s"),
        "{}",
        out.output
    );

    stop.store(true, Ordering::SeqCst);
    handle.join().unwrap();
    let out = run("collector_status", &no_args(), &ctx).unwrap();
    assert_eq!(out.exit_code, Some(3));
    assert!(
        out.output.starts_with("collector stopped\n"),
        "{}",
        out.output
    );

    // Running but silent for more than three intervals.
    ctx.collector.set_running(true);
    ctx.collector
        .record_error(SystemTime::now(), "cannot read /proc/stat".into());
    std::thread::sleep(Duration::from_millis(350));
    let out = run("collector_status", &no_args(), &ctx).unwrap();
    assert_eq!(out.exit_code, Some(3), "{}", out.output);
    assert!(out.output.contains("stale"), "{}", out.output);
    assert!(
        out.output.contains("cannot read /proc/stat"),
        "{}",
        out.output
    );
}

#[test]
fn collector_restart_waits_for_a_new_sample() {
    let _turn = cpu_heavy();
    let mut ctx = ctx();
    ctx.timeout = Duration::from_secs(5);
    let stop = Arc::new(AtomicBool::new(false));
    let handle = simulated_loop(Arc::clone(&ctx.collector), Arc::clone(&stop));
    wait_for("a first sample", || {
        ctx.collector.snapshot().samples_total > 0
    });

    let asked = SystemTime::now();
    let out = run("collector_restart", &no_args(), &ctx).unwrap();
    let snapshot = ctx.collector.snapshot();
    stop.store(true, Ordering::SeqCst);
    handle.join().unwrap();
    assert!(
        out.output
            .starts_with("collector restarted; first sample at "),
        "{}",
        out.output
    );
    assert_eq!(snapshot.restarts, 1);
    assert!(snapshot.running);
    assert!(snapshot.last_sample_at.unwrap() >= asked);

    // Nobody honours the request now.
    ctx.timeout = Duration::from_millis(300);
    let started = Instant::now();
    let err = run("collector_restart", &no_args(), &ctx).unwrap_err();
    assert!(
        matches!(&err, ProbeError::Failed(m) if m.contains("did not come back")),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn the_library_never_starts_a_shell() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![src.clone()];
    let mut checked = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.strip_prefix(&src).unwrap().display().to_string();
        checked += 1;
        for needle in ["/bin/sh", "\"sh\"", "\"bash\"", "\"-c\""] {
            assert!(!text.contains(needle), "{name} mentions {needle}");
        }
        if name != "probes/command.rs" {
            assert!(!text.contains("Command::new"), "{name} spawns processes");
        }
    }
    assert!(checked >= 8, "{checked} files");
}
