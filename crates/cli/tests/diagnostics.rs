//! Diagnostics are never silently missing, end to end with a real agent, jira_fake.py and a
//! real SMTP server:
//!
//! * probes that answer within `[incidents] diagnostics_wait_secs` are in the one email and
//!   the one Jira comment, and nothing follows;
//! * probes still running at that deadline: the email and the comment go out saying so
//!   (naming the probes), and a `diagnostics` follow-up carries the results when they come
//!   — each exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::stack::*;
use common::{Server, VIGIL};
use serde_json::Value;

/// What the slow allow-listed command prints once it is done: it appears only in its output.
const MARKER: &str = "SLOW-PROBE-FINISHED-4f2a";
/// The allow-list entry; the probe is `command:slow_probe`.
const SLOW_COMMAND: &str = "slow_probe";

/// Waits until the server has heard from the agent on web-01, so the probe jobs of the
/// alarm posted next are claimed at once rather than raced against the agent's start.
async fn wait_for_agent(server: &Server) {
    until(
        "the agent on web-01 to report",
        Duration::from_secs(30),
        async || {
            let (status, body) = server.get("/api/v1/hosts/web-01").await;
            (status == 200 && !body["last_seen_at"].is_null()).then_some(())
        },
    )
    .await;
}

fn comments(issue: &Value) -> Vec<String> {
    issue["fields"]["comment"]["comments"]
        .as_array()
        .map(|c| {
            c.iter()
                .map(|c| c["body"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn text(mail: &Value) -> &str {
    mail["text"].as_str().unwrap_or_default()
}

fn subject(mail: &Value) -> &str {
    mail["subject"].as_str().unwrap_or_default()
}

/// The incident's delivery log as (kind, name, channel, status) rows.
async fn deliveries(server: &Server, key: &str) -> Vec<(String, String, String, String)> {
    let (status, incident) = server.get(&format!("/api/v1/incidents/{key}")).await;
    assert_eq!(status, 200, "{incident}");
    incident["deliveries"]
        .as_array()
        .expect("delivery log")
        .iter()
        .map(|d| {
            let field = |name: &str| d[name].as_str().unwrap_or_default().to_string();
            (
                field("kind"),
                field("name"),
                field("channel"),
                field("status"),
            )
        })
        .collect()
}

/// The delivery log once every step has finished (`Server::settled`).
async fn settled(server: &Server, key: &str) -> Vec<(String, String, String, String)> {
    server.settled(key).await;
    deliveries(server, key).await
}

fn row(kind: &str, name: &str, channel: &str, status: &str) -> (String, String, String, String) {
    (kind.into(), name.into(), channel.into(), status.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn probes_that_answer_in_time_are_in_the_one_email_and_nothing_follows() {
    // diagnostics_wait_secs as shipped (30 s): top_cpu answers well within it.
    let stack = Stack::start(&[], true, true, &[]).await;
    let http = reqwest::Client::new();
    wait_for_agent(&stack.server).await;
    let (status, body) = stack
        .server
        .post(
            "/api/v1/events",
            event("cloudwatch-alarm-ok-to-alarm.json", "diag-in-time").to_string(),
        )
        .await;
    assert_eq!(status, 202, "{body}");

    let mail = until("the alarm email", Duration::from_secs(60), async || {
        mails(&stack.mail_dir).first().cloned()
    })
    .await;
    let body = text(&mail);
    for needle in ["top_cpu", "%CPU"] {
        assert!(body.contains(needle), "the email has {needle}:\n{body}");
    }
    for absent in ["still running", "follow-up", "follow up"] {
        assert!(
            !body.to_lowercase().contains(absent),
            "the email says nothing about pending probes ({absent}):\n{body}"
        );
    }
    assert!(
        !subject(&mail).contains("diagnostics"),
        "{}",
        subject(&mail)
    );

    let issue = until(
        "the Jira issue with its comment",
        Duration::from_secs(30),
        async || {
            let state = jira_state(&http, &stack.jira_url).await;
            let issues = state["issues"].as_array()?.clone();
            (issues.len() == 1 && !comments(&issues[0]).is_empty()).then(|| issues[0].clone())
        },
    )
    .await;
    let first = comments(&issue);
    assert!(
        first[0].contains("top_cpu") && first[0].contains("%CPU"),
        "{first:?}"
    );
    assert!(!first[0].contains("still running"), "{first:?}");

    // No follow-up: once the journal is done with the incident, nothing more arrives.
    let log = settled(&stack.server, "INC-1").await;
    let all = mails(&stack.mail_dir);
    assert_eq!(
        all.len(),
        1,
        "one email, no follow-up: {:?}",
        all.iter().map(subject).collect::<Vec<_>>()
    );
    let state = jira_state(&http, &stack.jira_url).await;
    let issues = state["issues"].as_array().cloned().unwrap_or_default();
    assert_eq!(issues.len(), 1);
    assert_eq!(comments(&issues[0]).len(), 1, "one comment, no follow-up");
    assert!(
        log.iter().all(|(kind, ..)| kind == "opened"),
        "no diagnostics run: {log:?}"
    );
    assert!(
        log.contains(&row("opened", "notify", "email", "done")),
        "{log:?}"
    );
}

/// jira_fake, SMTP and a server configured with `config`, plus an agent for web-01 whose
/// allow-list has a command that takes 6 s.
struct SlowStack {
    server: Server,
    jira_url: String,
    mail_dir: std::path::PathBuf,
    _jira: Proc,
    _smtp: Proc,
    _agent: Proc,
    _dir: tempfile::TempDir,
}

impl SlowStack {
    async fn start(config: &str) -> SlowStack {
        let dir = common::temp_dir();
        let (jira_proc, jira_url) = jira(&[]);
        let mail_dir = dir.path().join("mail");
        std::fs::create_dir_all(&mail_dir).expect("mail dir");
        let smtp_port = free_port();
        let smtp = smtp_sink(&mail_dir, smtp_port);
        let smtp_url = format!("smtp://127.0.0.1:{smtp_port}");
        let config_path = dir.path().join("vigil.toml");
        std::fs::write(&config_path, config).expect("write the server config");
        let config_arg = config_path.to_string_lossy().to_string();
        let server = Server::start_env(
            &dir.path().join("data"),
            &["--no-agent", "--config", &config_arg],
            &[
                ("VIGIL_JIRA_URL", jira_url.as_str()),
                ("VIGIL_JIRA_TOKEN", "test-token"),
                ("VIGIL_JIRA_PROJECT", "OPS"),
                ("VIGIL_SMTP_URL", smtp_url.as_str()),
                ("VIGIL_EMAIL_FROM", "vigil@example.com"),
                ("VIGIL_EMAIL_TO", "ops@example.com"),
            ],
        )
        .await;
        let agent = start_slow_agent(&server, dir.path());
        SlowStack {
            server,
            jira_url,
            mail_dir,
            _jira: jira_proc,
            _smtp: smtp,
            _agent: agent,
            _dir: dir,
        }
    }
}

/// Enrolls web-01 (with the fixtures' instance id) and runs its agent with an allow-list
/// whose `slow_probe` sleeps 6 s, then prints [`MARKER`].
fn start_slow_agent(server: &Server, dir: &Path) -> Proc {
    let token = server.cli_last_line(&["host", "add", "web-01", "--instance-id", INSTANCE]);
    let allow_list = dir.join("allow.toml");
    std::fs::write(
        &allow_list,
        format!("[commands]\n{SLOW_COMMAND} = [\"/bin/sh\", \"-c\", \"sleep 6; echo {MARKER}\"]\n"),
    )
    .expect("write the allow-list");
    let agent_config = dir.join("agent.toml");
    std::fs::write(
        &agent_config,
        // The probe's own limit (10 s by default) well above its 6 s.
        format!(
            "allow_list = {:?}\nprobe_timeout_secs = 12\n",
            allow_list.to_string_lossy()
        ),
    )
    .expect("write the agent config");
    let log = std::fs::File::create(dir.join("agent.log")).expect("agent log");
    Proc(
        Command::new(VIGIL)
            .arg("agent")
            .arg("--config")
            .arg(&agent_config)
            .args([
                "--server",
                &server.url,
                "--name",
                "web-01",
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn probes_still_running_at_the_deadline_are_said_and_followed_up_once() {
    // Messages wait 1 s for probes; the one probe takes 6 s.
    let config = format!(
        r#"
[incidents]
diagnostics_wait_secs = 1

[playbooks.respond]
steps = [
  {{ type = "incident" }},
  {{ type = "check_host" }},
  {{ type = "diagnose", probes = ["command:{SLOW_COMMAND}"] }},
  {{ type = "ticket" }},
  {{ type = "notify", to = ["owners", "oncall"] }},
]
"#
    );
    let stack = SlowStack::start(&config).await;
    let http = reqwest::Client::new();
    wait_for_agent(&stack.server).await;
    let (status, body) = stack
        .server
        .post(
            "/api/v1/events",
            event("cloudwatch-alarm-ok-to-alarm.json", "diag-slow").to_string(),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let pending_name = format!("command:{SLOW_COMMAND} on web-01");

    // The first email: out at the deadline, saying the probe was still running.
    let first = until("the first email", Duration::from_secs(30), async || {
        mails(&stack.mail_dir).first().cloned()
    })
    .await;
    let first_text = text(&first);
    assert!(
        first_text.contains("still running at the deadline"),
        "the first email says the probes were still running:\n{first_text}"
    );
    assert!(
        first_text.contains(&pending_name),
        "the first email names the probe ({pending_name}):\n{first_text}"
    );
    assert!(
        !first_text.contains(MARKER),
        "the probe had not finished:\n{first_text}"
    );
    assert!(
        !subject(&first).contains("diagnostics"),
        "{}",
        subject(&first)
    );

    // The follow-up: its own message, carrying the probe's output.
    let second = until(
        "the diagnostics follow-up email",
        Duration::from_secs(20),
        async || mails(&stack.mail_dir).get(1).cloned(),
    )
    .await;
    assert!(
        subject(&second).contains("diagnostics"),
        "the follow-up's subject: {}",
        subject(&second)
    );
    assert!(
        text(&second).contains(MARKER),
        "the follow-up carries the probe's output:\n{}",
        text(&second)
    );
    assert!(
        !text(&second).contains("still running at the deadline"),
        "{}",
        text(&second)
    );
    assert_ne!(
        first["message_id"], second["message_id"],
        "distinct Message-IDs"
    );
    assert!(
        first["message_id"].as_str().is_some_and(|m| !m.is_empty()),
        "{first}"
    );

    // Jira: a first comment saying the results follow, a second with them.
    let issue = until(
        "the two Jira comments",
        Duration::from_secs(20),
        async || {
            let state = jira_state(&http, &stack.jira_url).await;
            let issues = state["issues"].as_array()?.clone();
            (issues.len() == 1 && comments(&issues[0]).len() >= 2).then(|| issues[0].clone())
        },
    )
    .await;
    let said = comments(&issue);
    assert!(
        said[0].contains("still running") && said[0].contains("results follow"),
        "the first comment says the results follow: {said:?}"
    );
    assert!(!said[0].contains(MARKER), "{said:?}");
    assert!(
        said[1].contains(MARKER),
        "the second comment carries the output: {said:?}"
    );

    // Each exactly once: nothing more turns up once the journal is done with it.
    let log = settled(&stack.server, "INC-1").await;
    let all = mails(&stack.mail_dir);
    assert_eq!(
        all.len(),
        2,
        "the alarm email and one follow-up: {:?}",
        all.iter().map(subject).collect::<Vec<_>>()
    );
    let state = jira_state(&http, &stack.jira_url).await;
    let issues = state["issues"].as_array().cloned().unwrap_or_default();
    assert_eq!(issues.len(), 1, "one issue");
    assert_eq!(comments(&issues[0]).len(), 2, "two comments");
    for expected in [
        row("opened", "ticket", "jira", "done"),
        row("opened", "comment", "jira", "done"),
        row("opened", "notify", "email", "done"),
        row("diagnostics", "comment", "jira", "done"),
        row("diagnostics", "notify", "email", "done"),
    ] {
        assert_eq!(
            log.iter().filter(|r| **r == expected).count(),
            1,
            "{expected:?} once in {log:?}"
        );
    }
    assert_eq!(log.len(), 5, "nothing else journaled: {log:?}");
}
