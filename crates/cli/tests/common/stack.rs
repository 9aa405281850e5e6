//! Real parts around a real server: jira_fake.py (the one stand-in, shared/tools), a real
//! SMTP server (aiosmtpd, crates/integrations/tests/smtp_sink.py) and a real agent.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{fixture, temp_dir, Server, VIGIL};

pub const INSTANCE: &str = "i-12345678901234567";

pub fn shared(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared")
        .join(path)
}

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a child and reads its first stdout line.
pub fn start_reporting(mut command: Command, what: &str) -> (Proc, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e} (python3 is needed; scripts/test installs what is missing)"));
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("first line");
    assert!(
        !line.trim().is_empty(),
        "{what} did not start (aiosmtpd missing? run scripts/test)"
    );
    (Proc(child), line.trim().to_string())
}

pub fn jira(extra: &[&str]) -> (Proc, String) {
    let mut command = Command::new("python3");
    command
        .arg(shared("tools/jira_fake.py"))
        .args(["--port", "0", "--projects", "OPS", "--quiet"])
        .args(extra);
    let (proc, line) = start_reporting(command, "jira_fake.py");
    let url = line.rsplit(' ').next().expect("url").to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    (proc, url)
}

pub fn smtp_sink(folder: &Path, port: u16) -> Proc {
    let mut command = Command::new("python3");
    command
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../integrations/tests/smtp_sink.py"))
        .arg(folder)
        .args(["--port", &port.to_string()]);
    let (proc, line) = start_reporting(command, "smtp_sink.py");
    assert_eq!(line, format!("ready {port}"));
    proc
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub fn mails(folder: &Path) -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter_map(|t| serde_json::from_str(&t).ok())
        .collect()
}

pub async fn jira_state(http: &reqwest::Client, url: &str) -> Value {
    http.get(format!("{url}/_fake/issues"))
        .send()
        .await
        .expect("jira_fake")
        .json()
        .await
        .expect("json")
}

pub async fn until<T>(
    what: &str,
    within: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub struct Stack {
    pub server: Server,
    pub jira: Proc,
    pub jira_url: String,
    pub mail_dir: PathBuf,
    pub smtp: Option<Proc>,
    pub smtp_port: u16,
    pub agent: Option<Proc>,
    pub dir: tempfile::TempDir,
}

impl Stack {
    pub async fn start(
        jira_faults: &[&str],
        smtp_up: bool,
        with_agent: bool,
        extra_env: &[(&str, &str)],
    ) -> Stack {
        let dir = temp_dir();
        let (jira_proc, jira_url) = jira(jira_faults);
        let mail_dir = dir.path().join("mail");
        std::fs::create_dir_all(&mail_dir).expect("mail dir");
        let smtp_port = free_port();
        let smtp = smtp_up.then(|| smtp_sink(&mail_dir, smtp_port));
        let smtp_url = format!("smtp://127.0.0.1:{smtp_port}");
        let mut env = vec![
            ("VIGIL_JIRA_URL", jira_url.as_str()),
            ("VIGIL_JIRA_TOKEN", "test-token"),
            ("VIGIL_JIRA_PROJECT", "OPS"),
            ("VIGIL_SMTP_URL", smtp_url.as_str()),
            ("VIGIL_EMAIL_FROM", "vigil@example.com"),
            ("VIGIL_EMAIL_TO", "ops@example.com"),
        ];
        env.extend_from_slice(extra_env);
        let data = dir.path().join("data");
        let server = Server::start_env(&data, &["--no-agent"], &env).await;
        let agent = if with_agent {
            Some(start_agent(&server, dir.path()))
        } else {
            None
        };
        Stack {
            server,
            jira: jira_proc,
            jira_url,
            mail_dir,
            smtp,
            smtp_port,
            agent,
            dir,
        }
    }

    pub async fn restart(&mut self, env: &[(&str, &str)]) {
        let smtp_url = format!("smtp://127.0.0.1:{}", self.smtp_port);
        let mut all = vec![
            ("VIGIL_JIRA_URL", self.jira_url.as_str()),
            ("VIGIL_JIRA_TOKEN", "test-token"),
            ("VIGIL_JIRA_PROJECT", "OPS"),
            ("VIGIL_SMTP_URL", smtp_url.as_str()),
            ("VIGIL_EMAIL_FROM", "vigil@example.com"),
            ("VIGIL_EMAIL_TO", "ops@example.com"),
        ];
        all.extend_from_slice(env);
        // Same address as before: the agent keeps talking to it across the restart.
        let address = self.server.url.trim_start_matches("http://").to_string();
        self.server.kill();
        self.server = Server::start_env(
            &self.dir.path().join("data"),
            &["--no-agent", "--listen", &address],
            &all,
        )
        .await;
    }
}

/// Enrolls `web-01` (with the fixture's EC2 instance id) and runs a real agent for it.
pub fn start_agent(server: &Server, dir: &Path) -> Proc {
    let token = server.cli_last_line(&["host", "add", "web-01", "--instance-id", INSTANCE]);
    run_agent(server, dir, "web-01", &token)
}

/// A real agent for `name`, with the token its enrollment printed; logs in DIR/agent.log.
pub fn run_agent(server: &Server, dir: &Path, name: &str, token: &str) -> Proc {
    let log = std::fs::File::create(dir.join("agent.log")).expect("agent log");
    Proc(
        Command::new(VIGIL)
            .args([
                "agent",
                "--server",
                &server.url,
                "--name",
                name,
                "--interval",
                "1",
            ])
            .env("VIGIL_AGENT_TOKEN", token)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("agent"),
    )
}

pub fn event(name: &str, id: &str) -> Value {
    let mut event = fixture(name);
    event["id"] = json!(id);
    event
}

/// The requests a [`receiver`] got: (path, headers, body).
pub type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<(String, String)>, Vec<u8>)>>>;

/// Collects every HTTP request sent to it: (path, headers, body).
pub async fn receiver() -> (String, Seen) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let store = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let store = store.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let headers: Vec<(String, String)> = head
                        .lines()
                        .skip(1)
                        .filter_map(|l| {
                            l.split_once(':')
                                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                        })
                        .collect();
                    let length: usize = headers
                        .iter()
                        .find(|(k, _)| k == "content-length")
                        .and_then(|(_, v)| v.parse().ok())
                        .unwrap_or(0);
                    if buf.len() < end + 4 + length {
                        continue;
                    }
                    let path = head
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or_default()
                        .to_string();
                    let body = buf[end + 4..end + 4 + length].to_vec();
                    store.lock().expect("lock").push((path, headers, body));
                    let _ = socket
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        )
                        .await;
                    return;
                }
            });
        }
    });
    (url, seen)
}
