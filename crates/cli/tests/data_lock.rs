//! One vigil per data directory: a second server on a directory in use is refused at once,
//! naming the one that holds it, and leaves that one undisturbed; a killed server leaves no
//! stale lock behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{alarm_event, temp_dir, Server, VIGIL};

/// Runs a vigil command that is expected to give up on its own, killing it (and failing)
/// if it is still running after `limit`.
fn run_bounded(command: &mut Command, limit: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the vigil binary");
    loop {
        if child.try_wait().expect("poll the second vigil").is_some() {
            break;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let output = child.wait_with_output().expect("collect its output");
            panic!(
                "the second vigil was still running after {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("collect its output");
    (output, started.elapsed())
}

fn second_up(data: &Path) -> Command {
    let mut command = Command::new(VIGIL);
    command
        .args([
            "up",
            "--no-agent",
            "--listen",
            "127.0.0.1:0",
            "--graphite",
            "",
        ])
        .arg("--data")
        .arg(data)
        .env("RUST_LOG", "info");
    command
}

fn assert_refused(output: &Output, data: &Path, holder_pid: u32) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "the second vigil must fail; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("data directory {} is in use", data.display())),
        "stderr names the data directory:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("pid {holder_pid}")),
        "stderr names the first vigil's pid {holder_pid}:\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_vigil_on_a_data_directory_in_use_is_refused() {
    let dir = temp_dir();
    let first = Server::start_with(dir.path(), &["--no-agent"]).await;

    let (output, took) = run_bounded(&mut second_up(dir.path()), Duration::from_secs(10));
    assert_refused(&output, dir.path(), first.pid());
    assert!(
        took < Duration::from_secs(5),
        "refused within a few seconds, took {took:?}"
    );

    // `vigil server --config` on the same directory is refused the same way.
    let config = dir.path().join("other.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\n",
            dir.path().display().to_string()
        ),
    )
    .expect("write config");
    let mut server = Command::new(VIGIL);
    server
        .args(["server", "--graphite", ""])
        .arg("--config")
        .arg(&config);
    let (output, _) = run_bounded(&mut server, Duration::from_secs(10));
    assert_refused(&output, dir.path(), first.pid());

    // The first vigil is undisturbed: its address is still the one on record, it answers,
    // and it accepts and processes an event.
    let on_record = std::fs::read_to_string(dir.path().join("server.url")).expect("server.url");
    assert_eq!(
        on_record.trim(),
        first.url,
        "the refused vigil wrote no address"
    );
    let healthz = first
        .http
        .get(format!("{}/healthz", first.url))
        .send()
        .await
        .expect("healthz reaches the first vigil");
    assert!(healthz.status().is_success(), "{}", healthz.status());
    let (status, body) = first
        .post(
            "/api/v1/events",
            alarm_event("after-refusal", "LockedDirAlarm").to_string(),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    first
        .wait_for_incidents("the event posted after the refusal", |all| {
            all.iter().any(|i| i["alarm_name"] == "LockedDirAlarm")
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_vigil_leaves_no_stale_lock() {
    let dir = temp_dir();
    let mut first = Server::start_with(dir.path(), &["--no-agent"]).await;
    let (status, body) = first
        .post(
            "/api/v1/events",
            alarm_event("before-kill", "KilledHolderAlarm").to_string(),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let dead_pid = first.pid();
    first.kill();
    let left = std::fs::read_to_string(dir.path().join("vigil.lock")).expect("lock file left");
    assert!(
        left.contains(&format!("pid={dead_pid}")),
        "the killed vigil's details remain in the file: {left}"
    );

    // SIGKILL ran no shutdown code, yet the directory is free at once.
    let second = Server::start_with(dir.path(), &["--no-agent"]).await;
    let (status, body) = second
        .post(
            "/api/v1/events",
            alarm_event("after-kill", "AfterKillAlarm").to_string(),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    second
        .wait_for_incidents("both events, one from each vigil", |all| {
            all.iter().any(|i| i["alarm_name"] == "KilledHolderAlarm")
                && all.iter().any(|i| i["alarm_name"] == "AfterKillAlarm")
        })
        .await;

    // And the new holder is the one a third vigil is told about.
    let (output, _) = run_bounded(&mut second_up(dir.path()), Duration::from_secs(10));
    assert_refused(&output, dir.path(), second.pid());
}
