//! Starts the real `vigil` binary on a free loopback port over a fresh data directory and
//! talks to it over HTTP, as an operator's tools would.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod sns;
pub mod stack;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");

pub struct Server {
    child: Child,
    pub url: String,
    pub token: String,
    pub data: PathBuf,
    pub http: reqwest::Client,
}

/// The suite runs once more against PostgreSQL with `VIGIL_TEST_STORE_URL` set (scripts/test
/// does): every data directory then keeps its state in a schema of its own there, the same
/// schema across restarts of that directory.
async fn test_store_url(data: &Path) -> Option<String> {
    let base = std::env::var("VIGIL_TEST_STORE_URL")
        .ok()
        .filter(|u| !u.is_empty())?;
    let marker = data.join("test-store.url");
    if let Ok(url) = std::fs::read_to_string(&marker) {
        return Some(url);
    }
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let schema = format!(
        "e2e_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    );
    let (client, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "VIGIL_TEST_STORE_URL is set but PostgreSQL at {base} does not answer: {e}; start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
            )
        });
    tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap_or_else(|e| panic!("cannot create schema {schema} on {base}: {e}"));
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
    std::fs::write(&marker, &url).expect("remember the test schema");
    Some(url)
}

impl Server {
    /// `vigil up --listen 127.0.0.1:0 --data DATA`, waiting until it answers `/healthz`.
    pub async fn start(data: &Path) -> Server {
        Self::start_with(data, &[]).await
    }

    pub async fn start_with(data: &Path, extra_args: &[&str]) -> Server {
        Self::start_env(data, extra_args, &[]).await
    }

    /// As `start_with`, with extra environment variables for the server process.
    pub async fn start_env(data: &Path, extra_args: &[&str], env: &[(&str, &str)]) -> Server {
        std::fs::create_dir_all(data).expect("create data dir");
        let store = test_store_url(data).await;
        let url_file = data.join("server.url");
        let _ = std::fs::remove_file(&url_file);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data.join("server.log"))
            .expect("open server log");
        // Parallel tests must not fight over Graphite's fixed default port.
        let graphite: &[&str] = if extra_args.contains(&"--graphite") {
            &[]
        } else {
            &["--graphite", "127.0.0.1:0"]
        };
        // A restart can keep its address (agents keep talking to it) with its own --listen.
        let listen: &[&str] = if extra_args.contains(&"--listen") {
            &[]
        } else {
            &["--listen", "127.0.0.1:0"]
        };
        // New incidents' messages go at once unless a test asks for storm grouping's wait:
        // tests count messages, and ten seconds each would add up.
        let group_wait: &[(&str, &str)] =
            if env.iter().any(|(k, _)| *k == "VIGIL_STORM_GROUP_WAIT_SECS") {
                &[]
            } else {
                &[("VIGIL_STORM_GROUP_WAIT_SECS", "0")]
            };
        let child = Command::new(VIGIL)
            .arg("up")
            .args(listen)
            .arg("--data")
            .arg(data)
            .args(graphite)
            .args(extra_args)
            .envs(group_wait.iter().copied())
            .envs(env.iter().copied())
            .envs(store.iter().map(|url| ("VIGIL_STORE_URL", url.as_str())))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("start the vigil binary");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client");
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = loop {
            if let Ok(url) = std::fs::read_to_string(&url_file) {
                let url = url.trim().to_string();
                if let Ok(answer) = http.get(format!("{url}/healthz")).send().await {
                    if answer.status().is_success() {
                        break url;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "vigil did not start within 30 s; its log:\n{}",
                std::fs::read_to_string(data.join("server.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        let token = std::fs::read_to_string(data.join("admin.token"))
            .expect("vigil up writes admin.token")
            .trim()
            .to_string();
        Server {
            child,
            url,
            token,
            data: data.to_path_buf(),
            http,
        }
    }

    /// SIGKILL: no shutdown path runs.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits up to `bound` for the process to end: how long it took and
    /// how it ended, or `None` if it was still running (it is then killed).
    pub fn terminate(&mut self, bound: Duration) -> Option<(Duration, std::process::ExitStatus)> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {}", self.pid());
        let start = Instant::now();
        while start.elapsed() < bound {
            if let Some(status) = self.child.try_wait().expect("wait for vigil") {
                return Some((start.elapsed(), status));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill();
        None
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory of the server process, in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("server process is alive");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc status")
    }

    /// Alive and not a zombie, by its /proc entry.
    pub fn is_running(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).is_ok_and(|stat| {
            stat.rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next())
                .is_some_and(|s| s != "Z" && s != "X")
        })
    }

    pub async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let answer = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request reaches vigil");
        let status = answer.status().as_u16();
        let text = answer.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let answer = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("request reaches vigil");
        let status = answer.status().as_u16();
        let text = answer.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn incidents(&self) -> Vec<Value> {
        let (status, body) = self.get("/api/v1/incidents?limit=1000").await;
        assert_eq!(status, 200, "{body}");
        body["incidents"].as_array().cloned().unwrap_or_default()
    }

    /// Polls the incident list until `done` holds (processing is asynchronous after 202).
    pub async fn wait_for_incidents(
        &self,
        what: &str,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let incidents = self.incidents().await;
            if done(&incidents) {
                return incidents;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; incidents now: {}",
                serde_json::to_string_pretty(&incidents).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every step of the incident's playbook runs has finished and returns the
    /// incident. A follow-up run is journaled in the transaction that finishes the step it
    /// follows, so from here on nothing more goes out for the incident until it changes.
    pub async fn settled(&self, key: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, incident) = self.get(&format!("/api/v1/incidents/{key}")).await;
            let steps = incident["deliveries"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if status == 200 && !steps.is_empty() && steps.iter().all(|d| d["status"] != "pending")
            {
                return incident;
            }
            assert!(
                Instant::now() < deadline,
                "the deliveries of {key} did not finish: {incident}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the playbook runner has looked at its journal and found nothing due and
    /// nothing in flight (`vigil_runner_idle`): from then on nothing more goes out until
    /// something changes. What a test asserts did not happen, it asserts after this.
    pub async fn runner_idle(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.metric("vigil_runner_idle").await != Some(1) {
            assert!(
                Instant::now() < deadline,
                "the playbook runner did not come to rest within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A value of the server's own metrics (`/metrics`), `None` while the line is absent.
    pub async fn metric(&self, name: &str) -> Option<i64> {
        let answer = self
            .http
            .get(format!("{}/metrics", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("metrics reach vigil");
        assert_eq!(answer.status().as_u16(), 200, "metrics");
        let text = answer.text().await.unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// Moves the test clock forward and waits until the escalation sweeper has finished a
    /// check at the new time or later: whatever was due by then has escalated, and whatever
    /// has not was not due. Returns the new clock time (Unix ms).
    pub async fn move_clock_and_settle(&self, seconds: i64) -> i64 {
        let (status, moved) = self
            .post(
                "/api/v1/test/clock",
                serde_json::json!({ "seconds": seconds }).to_string(),
            )
            .await;
        assert_eq!(
            status, 200,
            "the test clock moves (VIGIL_TEST_CLOCK=1): {moved}"
        );
        let now_ms = moved["now_ms"].as_i64().expect("now_ms");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let checked = self.metric("vigil_escalation_checked_at_ms").await;
            if checked.is_some_and(|at| at >= now_ms) {
                return now_ms;
            }
            assert!(
                Instant::now() < deadline,
                "the escalation sweeper did not look at the moved clock ({now_ms}); last check at {checked:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs the CLI against this server's data directory.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(VIGIL)
            .args(args)
            .env("VIGIL_SERVER", &self.url)
            .env("VIGIL_TOKEN", &self.token)
            .output()
            .expect("run the vigil CLI")
    }
}

impl Server {
    /// Runs the CLI, which must succeed, and returns the last line it printed (where
    /// `host add` and `token add` print the new token).
    pub fn cli_last_line(&self, args: &[&str]) -> String {
        let output = self.cli(args);
        assert!(
            output.status.success(),
            "vigil {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A payload from the shared fixtures; a missing fixture is a failure, not a skip.
pub fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/events")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "fixture {} is missing ({e}); the shared fixtures must sit beside the repository",
            path.display()
        )
    });
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// The CloudWatch OK→ALARM event with a new id (and optionally another alarm name).
pub fn alarm_event(id: &str, alarm: &str) -> Value {
    let mut event = fixture("cloudwatch-alarm-ok-to-alarm.json");
    event["id"] = Value::from(id);
    set_alarm(&mut event, alarm);
    event
}

pub fn recovery_event(id: &str, alarm: &str) -> Value {
    let mut event = fixture("cloudwatch-alarm-alarm-to-ok.json");
    event["id"] = Value::from(id);
    set_alarm(&mut event, alarm);
    event
}

fn set_alarm(event: &mut Value, alarm: &str) {
    event["detail"]["alarmName"] = Value::from(alarm);
    event["resources"] = serde_json::json!([format!(
        "arn:aws:cloudwatch:us-east-1:123456789012:alarm:{alarm}"
    )]);
}

pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("vigil-test-")
        .tempdir()
        .expect("temp dir")
}

/// Runs `workers` copies of a future concurrently and collects their results.
pub async fn join_all<F, Fut, T>(workers: usize, make: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut pending: Vec<std::pin::Pin<Box<Fut>>> =
        (0..workers).map(|w| Box::pin(make(w))).collect();
    let mut results: Vec<Option<T>> = (0..workers).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (i, future) in pending.iter_mut().enumerate() {
            if results[i].is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => results[i] = Some(value),
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    results.into_iter().flatten().collect()
}
