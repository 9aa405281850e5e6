//! Real counterparts for the integrations: the Jira fake and an SMTP server as child
//! processes, a scripted HTTP receiver in-process.

pub mod http_receiver;
pub mod process;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use vigil_actions::ActionError;
use vigil_integrations::{JiraConfig, JiraTracker};

use process::ChildGuard;

/// Every test finishes within this, or fails saying so.
pub async fn bounded<F: Future>(test: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(90), test)
        .await
        .expect("test took longer than 90 s")
}

pub fn expect_transient<T: std::fmt::Debug>(
    result: Result<T, ActionError>,
) -> (String, Option<u64>) {
    match result {
        Err(ActionError::Transient {
            what,
            retry_after_ms,
        }) => (what, retry_after_ms),
        other => panic!("expected a transient error, got {other:?}"),
    }
}

pub fn expect_permanent<T: std::fmt::Debug>(result: Result<T, ActionError>) -> String {
    match result {
        Err(ActionError::Permanent(what)) => what,
        other => panic!("expected a permanent error, got {other:?}"),
    }
}

pub const JIRA_USER: &str = "bot@example.com";
pub const JIRA_TOKEN: &str = "s3cret-token";

/// `../shared/tools/jira_fake.py` on a free port, with Basic/Bearer auth and project OPS.
pub struct JiraFake {
    pub url: String,
    http: reqwest::Client,
    process: ChildGuard,
}

impl JiraFake {
    pub fn start(extra: &[&str]) -> JiraFake {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/tools/jira_fake.py");
        let mut args = vec![
            "--port",
            "0",
            "--quiet",
            "--user",
            JIRA_USER,
            "--token",
            JIRA_TOKEN,
            "--projects",
            "OPS",
        ];
        args.extend_from_slice(extra);
        let (process, url) = process::start_python(&script, &args, "jira_fake listening on");
        JiraFake {
            url,
            http: reqwest::Client::new(),
            process,
        }
    }

    /// A Cloud-style tracker (Basic auth) for this fake; `adjust` changes its settings.
    pub fn tracker(&self, adjust: impl FnOnce(&mut JiraConfig)) -> JiraTracker {
        let mut config = JiraConfig {
            url: self.url.clone(),
            user: Some(JIRA_USER.into()),
            token: JIRA_TOKEN.into(),
            project: "OPS".into(),
            ..JiraConfig::default()
        };
        adjust(&mut config);
        JiraTracker::new(&config).expect("tracker settings are valid")
    }

    /// `GET /_fake/issues`: every issue with its comments, and request counters.
    pub async fn state(&self) -> Value {
        let answer = self
            .http
            .get(format!("{}/_fake/issues", self.url))
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "jira_fake does not answer ({e}); stderr:\n{}",
                    self.process.stderr()
                )
            });
        answer.json().await.expect("/_fake/issues is JSON")
    }

    pub async fn issues(&self) -> Vec<Value> {
        self.state().await["issues"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// `POST /_fake/reset` with new fault settings; clears issues.
    pub async fn reset(&self, faults: Value) {
        let answer = self
            .http
            .post(format!("{}/_fake/reset", self.url))
            .json(&faults)
            .send()
            .await
            .expect("jira_fake answers");
        assert!(
            answer.status().is_success(),
            "reset refused: {}",
            answer.status()
        );
    }
}

/// `tests/smtp_sink.py`: aiosmtpd on a free port, writing each message as JSON into a
/// temporary folder.
pub struct SmtpSink {
    pub port: u16,
    folder: tempfile::TempDir,
    process: ChildGuard,
}

impl SmtpSink {
    pub fn start(extra: &[&str]) -> SmtpSink {
        let folder = tempfile::tempdir().expect("temp dir");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_sink.py");
        let folder_arg = folder.path().to_str().expect("UTF-8 temp path").to_string();
        let mut args = vec![folder_arg.as_str()];
        args.extend_from_slice(extra);
        let (process, port) = process::start_python(&script, &args, "ready");
        SmtpSink {
            port: port.parse().expect("smtp_sink prints its port"),
            folder,
            process,
        }
    }

    /// Messages received so far, oldest first.
    pub fn messages(&self) -> Vec<Value> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(self.folder.path())
            .expect("read sink folder")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p).expect("read message");
                serde_json::from_str(&text).expect("message JSON")
            })
            .collect()
    }

    /// Waits (at most 10 s) until `count` messages arrived and returns them.
    pub async fn wait_for(&self, count: usize) -> Vec<Value> {
        for _ in 0..200 {
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "smtp_sink got {} of {count} messages in 10 s; its stderr:\n{}",
            self.messages().len(),
            self.process.stderr()
        );
    }
}
