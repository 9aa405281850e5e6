//! Storm grouping end to end, with Jira (jira_fake.py) and a real SMTP server: 2,000
//! distinct alarms for hosts of one Appcode within seconds make one storm incident, one
//! Jira issue naming every host, and one email to the application's owners — not 2,000 of
//! each. Every member keeps its own incident and timeline; later members come in a digest;
//! the storm resolves when its members recover. Below the threshold nothing changes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::stack::*;
use common::{alarm_event, recovery_event, temp_dir, Server};
use serde_json::{json, Value};

const APPCODE: &str = "pay_api";
const OWNERS: [&str; 2] = ["pay-team@example.com", "pay-lead@example.com"];
const ONCALL: &str = "pay-oncall@example.com";

/// A server with Jira and email, the application tree imported and `storm` settings.
struct Setup {
    server: Server,
    _jira: Proc,
    jira_url: String,
    _smtp: Proc,
    mail_dir: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn setup(storm: &str) -> Setup {
    let dir = temp_dir();
    let (jira, jira_url) = jira(&[]);
    let mail_dir = dir.path().join("mail");
    std::fs::create_dir_all(&mail_dir).expect("mail dir");
    let smtp_port = free_port();
    let smtp = smtp_sink(&mail_dir, smtp_port);
    let smtp_url = format!("smtp://127.0.0.1:{smtp_port}");
    let config = dir.path().join("vigil.toml");
    std::fs::write(&config, format!("[storm]\n{storm}\n")).expect("config");
    let env = [
        ("VIGIL_JIRA_URL", jira_url.as_str()),
        ("VIGIL_JIRA_TOKEN", "test-token"),
        ("VIGIL_JIRA_PROJECT", "OPS"),
        ("VIGIL_SMTP_URL", smtp_url.as_str()),
        ("VIGIL_EMAIL_FROM", "vigil@example.com"),
        // The file's storm settings decide, not the test harness's default.
        ("VIGIL_STORM_GROUP_WAIT_SECS", ""),
    ];
    let server = Server::start_env(
        &dir.path().join("data"),
        &["--no-agent", "--config", config.to_str().expect("path")],
        &env,
    )
    .await;
    let tree = dir.path().join("tree.toml");
    std::fs::write(
        &tree,
        format!(
            "[[apps]]\nappcode = \"{APPCODE}\"\nname = \"Payments API\"\nkind = \"application\"\n\
             owners = [\"{}\", \"{}\"]\noncall = [\"{ONCALL}\"]\n",
            OWNERS[0], OWNERS[1]
        ),
    )
    .expect("tree file");
    let imported = server.cli(&["app", "import", tree.to_str().expect("path")]);
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    Setup {
        server,
        _jira: jira,
        jira_url,
        _smtp: smtp,
        mail_dir,
        _dir: dir,
    }
}

fn host(n: usize) -> String {
    format!("pay-{n:04}")
}

/// A distinct alarm about host `n` of the application.
fn alarm(run: u32, n: usize) -> Value {
    let mut event = alarm_event(&format!("storm-{run}-{n}"), &format!("PayLatency-{n:04}"));
    event["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"] =
        json!({ "host": host(n) });
    event["detail"]["appcode"] = json!(APPCODE);
    event
}

fn recovery(run: u32, n: usize) -> Value {
    let mut event = recovery_event(&format!("ok-{run}-{n}"), &format!("PayLatency-{n:04}"));
    event["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"] =
        json!({ "host": host(n) });
    event["detail"]["appcode"] = json!(APPCODE);
    event
}

/// Posts `events` in concurrent requests of 100.
async fn post_all(server: &Server, events: Vec<Value>) {
    let mut posts = Vec::new();
    for chunk in events.chunks(100) {
        let body = Value::Array(chunk.to_vec()).to_string();
        let request = server
            .http
            .post(format!("{}/api/v1/events", server.url))
            .bearer_auth(&server.token)
            .header("content-type", "application/json")
            .body(body);
        posts.push(tokio::spawn(async move {
            let answer = request.send().await.expect("request reaches vigil");
            let status = answer.status().as_u16();
            (status, answer.text().await.unwrap_or_default())
        }));
    }
    for post in posts {
        let (status, body) = post.await.expect("post task");
        assert_eq!(status, 202, "{body}");
    }
}

/// Emails received, each with its subject and envelope recipients.
fn emails(setup: &Setup) -> Vec<(String, Vec<String>)> {
    mails(&setup.mail_dir)
        .iter()
        .map(|m| {
            let subject = m["subject"].as_str().unwrap_or_default().to_string();
            let to = m["rcpt_tos"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .filter_map(|r| r.as_str().map(str::to_string))
                .collect();
            (subject, to)
        })
        .collect()
}

async fn issues(setup: &Setup) -> Vec<Value> {
    jira_state(&setup.server.http, &setup.jira_url).await["issues"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The storm incidents, unresolved or not.
async fn storms(server: &Server) -> Vec<Value> {
    let (status, list) = server.get("/api/v1/incidents?kind=storm&status=all").await;
    assert_eq!(status, 200, "{list}");
    let list = list["incidents"].as_array().cloned().unwrap_or_default();
    assert!(list.iter().all(|i| i["kind"] == "storm"), "{list:?}");
    list
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_thousand_alarms_under_one_appcode_make_one_storm_one_issue_one_email_per_owner() {
    const ALARMS: usize = 2_000;
    const LATER: usize = 5;
    const ENROLLED: usize = 10;
    let setup =
        setup("threshold = 20\nwindow_secs = 60\ngroup_wait_secs = 10\ngroup_interval_secs = 2")
            .await;
    let server = &setup.server;
    let run = std::process::id();
    // Ten of the hosts are enrolled; only the first runs its agent. The others' probes go
    // unanswered: the storm's findings must say so.
    let mut tokens = Vec::new();
    for n in 0..ENROLLED {
        tokens.push(server.cli_last_line(&["host", "add", &host(n)]));
    }
    let _agent = run_agent(server, setup._dir.path(), &host(0), &tokens[0]);

    let started = Instant::now();
    post_all(server, (0..ALARMS).map(|n| alarm(run, n)).collect()).await;
    let posted = started.elapsed();
    assert!(posted < Duration::from_secs(10), "posting took {posted:?}");
    eprintln!(
        "storm: {ALARMS} alarms accepted in {:.1} s",
        posted.as_secs_f64()
    );

    // The storm's ticket and message go once its wait is over and the runner rests.
    until("the storm's email", Duration::from_secs(120), async || {
        (!emails(&setup).is_empty()).then_some(())
    })
    .await;
    server.runner_idle().await;
    eprintln!("storm: told after {:.1} s", started.elapsed().as_secs_f64());

    let storm_list = storms(server).await;
    assert_eq!(storm_list.len(), 1, "one storm: {storm_list:?}");
    let storm_key = storm_list[0]["key"]
        .as_str()
        .expect("storm key")
        .to_string();
    let (status, storm) = server.get(&format!("/api/v1/incidents/{storm_key}")).await;
    assert_eq!(status, 200, "{storm}");
    let members = storm["members"].as_array().cloned().unwrap_or_default();
    assert_eq!(members.len(), ALARMS, "every alarm's incident is a member");
    let member_hosts: BTreeSet<&str> = members.iter().filter_map(|m| m["host"].as_str()).collect();
    assert_eq!(member_hosts.len(), ALARMS);
    assert_eq!(storm["appcode"], APPCODE);
    // Every enrolled member was probed: one host answered, nine went unanswered.
    let findings = &storm["findings"];
    assert_eq!(findings["answered"], 1, "{findings}");
    assert_eq!(findings["unreachable"], ENROLLED - 1, "{findings}");
    assert_eq!(findings["unprobed"], ALARMS - ENROLLED, "{findings}");
    let summary = findings["summary"].as_str().unwrap_or_default().to_string();
    assert!(
        summary.contains("9 of 2000 hosts unreachable") && summary.contains("probably the network"),
        "{summary}"
    );

    // One Jira issue, naming all 2,000 hosts (its description names the first; its
    // comments list every member).
    let all_issues = issues(&setup).await;
    assert_eq!(all_issues.len(), 1, "one Jira issue, not one per alarm");
    let issue_text = all_issues[0].to_string();
    assert!(
        issue_text.contains(&summary),
        "the issue says what the probes found"
    );
    let unnamed: Vec<String> = (0..ALARMS)
        .map(host)
        .filter(|h| !issue_text.contains(h.as_str()))
        .collect();
    assert!(
        unnamed.is_empty(),
        "{} hosts missing from the issue, e.g. {:?}",
        unnamed.len(),
        &unnamed[..unnamed.len().min(5)]
    );
    assert!(
        issue_text.contains(&storm_key),
        "the issue names the storm incident"
    );

    // One email, to each owner and the on-call once.
    let sent = emails(&setup);
    assert_eq!(sent.len(), 1, "one email, not one per alarm: {sent:?}");
    let (subject, to) = &sent[0];
    assert!(
        subject.contains(&storm_key) && subject.contains("2000 hosts"),
        "{subject}"
    );
    for owner in OWNERS.iter().chain([&ONCALL]) {
        assert_eq!(
            to.iter().filter(|t| t == owner).count(),
            1,
            "{owner} in {to:?}"
        );
    }

    // Every member is an incident of its own with its own timeline, reported with the storm.
    let keys: Vec<String> = members
        .iter()
        .filter_map(|m| m["key"].as_str().map(str::to_string))
        .collect();
    let mut readers = Vec::new();
    for chunk in keys.chunks(ALARMS / 8) {
        let chunk = chunk.to_vec();
        let http = server.http.clone();
        let (url, token, storm_key) = (server.url.clone(), server.token.clone(), storm_key.clone());
        readers.push(tokio::spawn(async move {
            for key in chunk {
                let incident: Value = http
                    .get(format!("{url}/api/v1/incidents/{key}"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .expect("request reaches vigil")
                    .json()
                    .await
                    .expect("incident json");
                assert_eq!(incident["storm"], storm_key.as_str(), "{key}: {incident}");
                let timeline = incident["timeline"].as_array().cloned().unwrap_or_default();
                assert!(
                    timeline.iter().any(|t| t["kind"] == "opened"),
                    "{key}: {timeline:?}"
                );
                assert!(
                    timeline.iter().any(|t| t["message"]
                        .as_str()
                        .is_some_and(|m| m.contains(&format!("part of storm {storm_key}")))),
                    "{key}: {timeline:?}"
                );
                if incident["host"] == host(0) {
                    assert!(
                        timeline.iter().any(|t| t["kind"] == "diagnostics"),
                        "{key}: its agent's probe results land on its timeline: {timeline:?}"
                    );
                }
                let told = incident["deliveries"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                assert!(
                    told.iter().all(|d| d["status"] != "done"),
                    "{key}: a member told on its own: {told:?}"
                );
            }
        }));
    }
    for reader in readers {
        reader.await.expect("member reader");
    }

    // Later members come in one digest: one more email, one more comment naming them.
    let comments_before = all_issues[0]["fields"]["comment"]["comments"]
        .as_array()
        .map_or(0, Vec::len);
    post_all(
        server,
        (ALARMS..ALARMS + LATER).map(|n| alarm(run, n)).collect(),
    )
    .await;
    until("the storm's digest", Duration::from_secs(60), async || {
        (emails(&setup).len() >= 2).then_some(())
    })
    .await;
    server.runner_idle().await;
    let sent = emails(&setup);
    assert_eq!(sent.len(), 2, "one digest: {sent:?}");
    assert!(sent[1].0.contains("update"), "{:?}", sent[1]);
    let issue = issues(&setup).await.remove(0);
    let comments = issue["fields"]["comment"]["comments"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(comments.len(), comments_before + 1, "one digest comment");
    let digest = comments
        .last()
        .map(|c| c["body"].to_string())
        .unwrap_or_default();
    for n in ALARMS..ALARMS + LATER {
        assert!(
            digest.contains(&host(n)),
            "{} missing from the digest: {digest}",
            host(n)
        );
    }
    assert!(!digest.contains(&host(0)), "the digest lists only the news");

    // The storm resolves when its members recover, and says so once.
    post_all(
        server,
        (0..ALARMS + LATER).map(|n| recovery(run, n)).collect(),
    )
    .await;
    until(
        "the storm to resolve",
        Duration::from_secs(120),
        async || {
            let (_, storm) = server.get(&format!("/api/v1/incidents/{storm_key}")).await;
            (storm["status"] == "resolved").then_some(())
        },
    )
    .await;
    server.runner_idle().await;
    let sent = emails(&setup);
    assert_eq!(sent.len(), 3, "one recovery email for the storm: {sent:?}");
    assert!(sent[2].0.starts_with("Resolved"), "{:?}", sent[2]);
    let (_, storm) = server.get(&format!("/api/v1/incidents/{storm_key}")).await;
    let members = storm["members"].as_array().cloned().unwrap_or_default();
    assert_eq!(members.len(), ALARMS + LATER);
    assert!(members.iter().all(|m| m["status"] == "resolved"));
    assert_eq!(issues(&setup).await.len(), 1, "still one issue");
    eprintln!("storm: done after {:.1} s", started.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_the_threshold_five_alarms_make_five_incidents_and_five_messages() {
    const ALARMS: usize = 5;
    let setup = setup("threshold = 20\nwindow_secs = 60\ngroup_wait_secs = 1").await;
    let server = &setup.server;
    let run = std::process::id();
    post_all(server, (0..ALARMS).map(|n| alarm(run, n)).collect()).await;
    until("five emails", Duration::from_secs(60), async || {
        (emails(&setup).len() >= ALARMS).then_some(())
    })
    .await;
    server.runner_idle().await;
    assert!(
        storms(server).await.is_empty(),
        "no storm below the threshold"
    );
    let sent = emails(&setup);
    assert_eq!(sent.len(), ALARMS, "{sent:?}");
    let subjects: BTreeSet<&str> = sent.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        subjects.len(),
        ALARMS,
        "one message per incident: {subjects:?}"
    );
    assert_eq!(issues(&setup).await.len(), ALARMS, "one issue per incident");
    let incidents = server.incidents().await;
    assert_eq!(incidents.len(), ALARMS);
    assert!(incidents
        .iter()
        .all(|i| i["kind"] == "alarm" && i["storm"].is_null()));
}
