//! An agent's token never leaves its host, end to end with real parts: a real server,
//! jira_fake.py, a real SMTP server, a webhook receiver and two real agents — one started
//! as the README shows (`--config agent.toml` with `token_file`), one the old way with
//! `--token vgl_…` on its command line. CPU burners carrying both tokens in their
//! arguments (`--token vgl_…`, `--token=vgl_…`, a bare `vgl_…`) keep `top_cpu` busy listing
//! them; the token strings must then appear in no incident, no Jira issue or comment, no
//! email and no webhook body, while the masked rows do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::stack::*;
use common::{Server, VIGIL};
use serde_json::{json, Value};

/// Enrolls `name` and returns its token.
fn enroll(server: &Server, name: &str, instance: Option<&str>) -> String {
    let mut args = vec!["host", "add", name];
    if let Some(instance) = instance {
        args.extend(["--instance-id", instance]);
    }
    let token = server.cli_last_line(&args);
    assert!(token.starts_with("vgl_"), "{token}");
    token
}

fn spawn(command: &mut Command, log: &Path) -> Proc {
    let log = std::fs::File::create(log).expect("log file");
    Proc(
        command
            .env_remove("VIGIL_AGENT_TOKEN")
            .env_remove("VIGIL_TOKEN")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start a process"),
    )
}

/// A busy loop whose command line carries `args`, so top_cpu lists it with them.
fn burner(args: &[&str], log: &Path) -> Proc {
    spawn(
        Command::new("/bin/sh")
            .args(["-c", "while :; do :; done", "agent"])
            .args(args),
        log,
    )
}

/// An alarm about `host`, CloudWatch-shaped, in a group of its own.
fn alarm_about(id: &str, alarm: &str, host: &str) -> Value {
    let mut event = event("cloudwatch-alarm-ok-to-alarm.json", id);
    event["detail"]["alarmName"] = json!(alarm);
    event["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"] =
        json!({ "host": host });
    event
}

async fn reported(server: &Server, host: &str) -> bool {
    let (status, body) = server.get(&format!("/api/v1/hosts/{host}")).await;
    status == 200 && !body["last_seen_at"].is_null()
}

/// Every file the SMTP sink wrote, as text (the parsed JSON and any raw message).
fn mail_files(folder: &Path) -> Vec<String> {
    std::fs::read_dir(folder)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read(e.path()).ok())
                .map(|b| String::from_utf8_lossy(&b).to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agent_tokens_reach_no_incident_ticket_email_or_webhook() {
    let (hook_base, seen) = receiver().await;
    let hook = format!("{hook_base}/hook");
    let stack = Stack::start(
        &[],
        true,
        false,
        &[
            ("VIGIL_WEBHOOK_URL", hook.as_str()),
            ("VIGIL_WEBHOOK_SECRET", "s3cret"),
        ],
    )
    .await;
    let server = &stack.server;
    let dir = stack.dir.path();
    let http = reqwest::Client::new();

    // web-01 as the README shows: the token in a file, named by agent.toml.
    let readme_token = enroll(server, "web-01", Some(INSTANCE));
    let token_file = dir.join("agent.token");
    std::fs::write(&token_file, format!("{readme_token}\n")).expect("token file");
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "server = \"{}\"\nname = \"web-01\"\ntoken_file = \"{}\"\ninterval_secs = 1\n",
            server.url,
            token_file.display()
        ),
    )
    .expect("agent.toml");
    let _readme_agent = spawn(
        Command::new(VIGIL)
            .arg("agent")
            .arg("--config")
            .arg(&config),
        &dir.join("agent-web-01.log"),
    );
    // web-02 the old way: the token on the command line, where `ps` shows it.
    let old_token = enroll(server, "web-02", None);
    let _old_agent = spawn(
        Command::new(VIGIL).args([
            "agent",
            "--server",
            &server.url,
            "--token",
            &old_token,
            "--name",
            "web-02",
            "--interval",
            "1",
        ]),
        &dir.join("agent-web-02.log"),
    );
    for host in ["web-01", "web-02"] {
        until(
            &format!("the agent on {host} to report"),
            Duration::from_secs(60),
            async || reported(server, host).await.then_some(()),
        )
        .await;
    }

    // Busy processes whose arguments carry the tokens in every shape.
    let equals = format!("--token={readme_token}");
    let _burners = [
        burner(&["--token", &old_token], &dir.join("burner-1.log")),
        burner(&[&equals], &dir.join("burner-2.log")),
        burner(
            &["--name", "x", &old_token, &readme_token],
            &dir.join("burner-3.log"),
        ),
    ];
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A CPU alarm on each host: top_cpu runs on both agents.
    let (status, _) = server
        .post(
            "/api/v1/events",
            event("cloudwatch-alarm-ok-to-alarm.json", "cpu-web-01").to_string(),
        )
        .await;
    assert_eq!(status, 202);
    let (status, _) = server
        .post(
            "/api/v1/events",
            alarm_about("cpu-web-02", "web-02 CPU high", "web-02").to_string(),
        )
        .await;
    assert_eq!(status, 202);

    // Both incidents ticketed with their diagnostics, mailed and posted to the webhook.
    until(
        "two Jira issues with a comment each, two emails and two webhook posts",
        Duration::from_secs(90),
        async || {
            let state = jira_state(&http, &stack.jira_url).await;
            let issues = state["issues"].as_array()?.clone();
            let commented = issues.iter().all(|i| {
                i["fields"]["comment"]["comments"]
                    .as_array()
                    .is_some_and(|c| !c.is_empty())
            });
            let hooks = seen
                .lock()
                .expect("lock")
                .iter()
                .filter(|(p, ..)| p == "/hook")
                .count();
            (issues.len() == 2 && commented && mails(&stack.mail_dir).len() >= 2 && hooks >= 2)
                .then_some(())
        },
    )
    .await;
    let incidents = server.incidents().await;
    assert_eq!(incidents.len(), 2, "{incidents:?}");
    let mut incident_texts = vec![Value::Array(incidents.clone()).to_string()];
    for incident in &incidents {
        let key = incident["key"].as_str().expect("key");
        server.settled(key).await;
        let (status, full) = server.get(&format!("/api/v1/incidents/{key}")).await;
        assert_eq!(status, 200);
        incident_texts.push(full.to_string());
    }
    let jira = jira_state(&http, &stack.jira_url).await.to_string();
    let emails = mail_files(&stack.mail_dir);
    let webhooks: Vec<String> = seen
        .lock()
        .expect("lock")
        .iter()
        .map(|(path, headers, body)| {
            format!("{path} {headers:?} {}", String::from_utf8_lossy(body))
        })
        .collect();

    // The probe output is really there in each of the four, masked.
    let masked_rows = [
        "agent --token ***",
        "agent --token=***",
        "agent --name x vgl_*** vgl_***",
    ];
    let all_incidents = incident_texts.join("\n");
    for (what, text) in [
        ("the incidents", all_incidents.clone()),
        ("Jira", jira.clone()),
        ("the emails", emails.join("\n")),
        ("the webhook bodies", webhooks.join("\n")),
    ] {
        assert!(
            text.contains("top_cpu"),
            "no top_cpu output in {what}: {text}"
        );
        for row in masked_rows {
            assert!(
                text.contains(row),
                "{what} lack the masked burner row `{row}`: {text}"
            );
        }
    }
    // And neither token, nor any long piece of one, is anywhere.
    for token in [&readme_token, &old_token] {
        let secret = token.trim_start_matches("vgl_");
        let piece = &secret[..12];
        for (what, texts) in [
            ("an incident", &incident_texts),
            ("Jira", &vec![jira.clone()]),
            ("an email", &emails),
            ("a webhook body", &webhooks),
        ] {
            for text in texts {
                assert!(
                    !text.contains(piece),
                    "a token ({token}) is in {what}:\n{text}"
                );
            }
        }
    }
}
