//! Several `vigil` servers as one cluster: the real PostgreSQL and the real NATS JetStream
//! on this machine, three real server processes sharing a schema and a cluster name of
//! their own, jira_fake and a real SMTP server, a real agent. Loopback only.
//!
//! Needs PostgreSQL on 127.0.0.1:5432 (trust auth, database `test`) and NATS with JetStream
//! on 127.0.0.1:4222; each test says so and fails when one does not answer.
//! The tests run alone (nextest test group `machine-load`): a SIGKILL test must not
//! decide other tests' timings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::stack::*;
use common::Server;
use serde_json::Value;

const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";
const NATS: &str = "nats://127.0.0.1:4222";

/// A schema of its own in the shared PostgreSQL, as a store URL every member uses.
async fn shared_store() -> String {
    let (client, connection) = tokio_postgres::connect(POSTGRES, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the cluster tests need PostgreSQL at {POSTGRES} and it does not answer: {e}; start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
            )
        });
    tokio::spawn(connection);
    let schema = format!("cluster_{}_{}", std::process::id(), unique());
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap_or_else(|e| panic!("cannot create schema {schema}: {e}"));
    format!("{POSTGRES}?options=-c%20search_path%3D{schema}")
}

fn unique() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

fn nats_answers() {
    if let Err(e) = std::net::TcpStream::connect_timeout(
        &"127.0.0.1:4222".parse().expect("address"),
        Duration::from_secs(2),
    ) {
        panic!("the cluster tests need NATS with JetStream at {NATS} and it does not answer: {e}; start it with `nats-server -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server &`");
    }
}

/// Three members of one cluster: the first makes the admin token, the others get a copy of
/// it (as an operator copies `admin.token`), all share the store and a cluster name.
async fn start_cluster(dir: &Path, env: &[(&str, &str)]) -> Vec<Server> {
    nats_answers();
    let store = shared_store().await;
    let config = dir.join("cluster.toml");
    std::fs::write(
        &config,
        format!(
            "[bus]\ncluster = \"test_{}_{}\"\n",
            std::process::id(),
            unique()
        ),
    )
    .expect("cluster config");
    let config = config.to_str().expect("path").to_string();
    let mut all_env = vec![("VIGIL_STORE_URL", store.as_str()), ("VIGIL_BUS_URL", NATS)];
    all_env.extend_from_slice(env);
    let mut members: Vec<Server> = Vec::new();
    for n in 0..3 {
        let data = dir.join(format!("member-{n}"));
        std::fs::create_dir_all(&data).expect("data dir");
        // The suite's PostgreSQL run gives each data directory a schema of its own unless
        // one is named there: members share theirs.
        std::fs::write(data.join("test-store.url"), &store).expect("store marker");
        if let Some(first) = members.first() {
            std::fs::copy(first.data.join("admin.token"), data.join("admin.token"))
                .expect("copy the admin token");
        }
        members
            .push(Server::start_env(&data, &["--no-agent", "--config", &config], &all_env).await);
    }
    members
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_acks_and_probe_jobs_hold_whichever_member_is_asked() {
    let dir = common::temp_dir();
    let mut members = start_cluster(dir.path(), &[]).await;
    let (a, b, c) = (&members[0], &members[1], &members[2]);

    // A token made through A works on B; revoked through A, B refuses it within 1 s.
    let (status, made) = a
        .post(
            "/api/v1/tokens",
            serde_json::json!({"name": "ci"}).to_string(),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    let token = made["token"].as_str().expect("token").to_string();
    let with_token = |server: &Server| {
        server
            .http
            .get(format!("{}/api/v1/incidents", server.url))
            .bearer_auth(&token)
            .send()
    };
    assert_eq!(with_token(b).await.expect("B answers").status(), 200);
    let (status, revoked) = a.post("/api/v1/tokens/ci/revoke", "").await;
    assert_eq!(status, 200, "{revoked}");
    let revoked_at = Instant::now();
    loop {
        let status = with_token(b).await.expect("B answers").status();
        if status == 401 {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "B still took the token revoked through A after {:?}",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("revocation in force on B after {:?}", revoked_at.elapsed());

    // A host enrolled through A, its agent long-polling A (B next, should A go); the alarm
    // arrives at B; the probe job queued by whichever member processes it wakes the agent
    // on A at once, and C shows the probes' output.
    let agent_token = a.cli_last_line(&["host", "add", "web-01", "--instance-id", INSTANCE]);
    let _agent = agent(dir.path(), &format!("{},{}", a.url, b.url), &agent_token);
    until(
        "the agent's first heartbeat",
        Duration::from_secs(30),
        async || {
            let (_, host) = a.get("/api/v1/hosts/web-01").await;
            host["last_seen_at"].is_string().then_some(())
        },
    )
    .await;
    let (status, body) = b
        .post(
            "/api/v1/events",
            event("cloudwatch-alarm-ok-to-alarm.json", "cluster-alarm-1").to_string(),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let incident = until("probe output on C", Duration::from_secs(30), async || {
        let (_, incidents) = c.get("/api/v1/incidents?limit=10").await;
        let key = incidents["incidents"][0]["key"].as_str()?.to_string();
        let (_, incident) = c.get(&format!("/api/v1/incidents/{key}")).await;
        incident["timeline"]
            .as_array()?
            .iter()
            .any(|t| t["kind"] == "diagnostics")
            .then_some(incident)
    })
    .await;
    let key = incident["key"].as_str().expect("key").to_string();

    // Acknowledged through B, A shows it at once: incidents are read from the store, and
    // the UI asks for them again every 2 s.
    let (status, acked) = b.post(&format!("/api/v1/incidents/{key}/ack"), "").await;
    assert_eq!(status, 200, "{acked}");
    let (_, on_a) = a.get(&format!("/api/v1/incidents/{key}")).await;
    assert_eq!(on_a["status"], "acknowledged", "{on_a}");

    // A dies: the agent moves to B, and the next alarm's probes still run.
    members[0].kill();
    let (b, c) = (&members[1], &members[2]);
    let killed_at = chrono::Utc::now();
    until(
        "the agent reporting through B",
        Duration::from_secs(30),
        async || {
            let (_, host) = b.get("/api/v1/hosts/web-01").await;
            let seen = chrono::DateTime::parse_from_rfc3339(host["last_seen_at"].as_str()?).ok()?;
            (seen > killed_at).then_some(())
        },
    )
    .await;
    let mut second = event("cloudwatch-alarm-ok-to-alarm.json", "cluster-alarm-2");
    second["detail"]["alarmName"] = Value::from("After the failover");
    let (status, body) = c.post("/api/v1/events", second.to_string()).await;
    assert_eq!(status, 202, "{body}");
    until(
        "probe output after the failover",
        Duration::from_secs(30),
        async || {
            let (_, incidents) = c.get("/api/v1/incidents?limit=10").await;
            let key = incidents["incidents"]
                .as_array()?
                .iter()
                .find(|i| i["alarm_name"] == "After the failover")?["key"]
                .as_str()?
                .to_string();
            let (_, incident) = b.get(&format!("/api/v1/incidents/{key}")).await;
            incident["timeline"]
                .as_array()?
                .iter()
                .any(|t| t["kind"] == "diagnostics")
                .then_some(())
        },
    )
    .await;
}

/// A real agent for web-01 given several servers; logs in DIR/agent.log.
fn agent(dir: &Path, servers: &str, token: &str) -> Proc {
    let log = std::fs::File::create(dir.join("agent.log")).expect("agent log");
    Proc(
        std::process::Command::new(common::VIGIL)
            .args([
                "agent",
                "--server",
                servers,
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

/// Labels of the form `vigil-INC-n` on jira_fake's issues.
fn incident_labels(issues: &[Value]) -> Vec<String> {
    issues
        .iter()
        .flat_map(|i| {
            i["fields"]["labels"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|l| l.as_str().map(str::to_string))
        .filter(|l| l.starts_with("vigil-INC-"))
        .collect()
}

const ALARMS: usize = 100;
const REPEATS: usize = 10;
const PER_REQUEST: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_killed_during_a_storm_loses_no_accepted_event_and_duplicates_nothing() {
    let dir = common::temp_dir();
    let (_jira, jira_url) = jira(&[]);
    let mail_dir = dir.path().join("mail");
    std::fs::create_dir_all(&mail_dir).expect("mail dir");
    let smtp_port = free_port();
    let _smtp = smtp_sink(&mail_dir, smtp_port);
    let smtp_url = format!("smtp://127.0.0.1:{smtp_port}");
    let mut members = start_cluster(
        dir.path(),
        &[
            ("VIGIL_JIRA_URL", jira_url.as_str()),
            ("VIGIL_JIRA_TOKEN", "test-token"),
            ("VIGIL_JIRA_PROJECT", "OPS"),
            ("VIGIL_SMTP_URL", smtp_url.as_str()),
            ("VIGIL_EMAIL_FROM", "vigil@example.com"),
            ("VIGIL_EMAIL_TO", "ops@example.com"),
            // Storm grouping off: every alarm is an incident of its own with its own
            // ticket and email.
            ("VIGIL_STORM_THRESHOLD", "0"),
        ],
    )
    .await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client");
    let template = common::fixture("cloudwatch-alarm-ok-to-alarm.json");
    let run = std::process::id();
    // 1,000 events: 100 alarms, each ten times, interleaved, in requests of 50 spread
    // over the members in turn.
    let events: Vec<Value> = (0..ALARMS * REPEATS)
        .map(|n| {
            let alarm = format!("ClusterAlarm-{:03}", n % ALARMS);
            let mut event = template.clone();
            event["id"] = Value::from(format!("cluster-{run}-{n}"));
            event["detail"]["alarmName"] = Value::from(alarm.as_str());
            event["resources"] = serde_json::json!([format!(
                "arn:aws:cloudwatch:us-east-1:123456789012:alarm:{alarm}"
            )]);
            event
        })
        .collect();
    let urls: Vec<String> = members.iter().map(|m| m.url.clone()).collect();
    let token = members[0].token.clone();
    let mut accepted: BTreeSet<String> = BTreeSet::new();
    let mut refused_by_the_dead = 0;
    for (r, chunk) in events.chunks(PER_REQUEST).enumerate() {
        if r == 6 {
            // A third of the way in, member 1 dies without a word.
            members[1].kill();
            eprintln!("member 1 killed after {} accepted events", accepted.len());
        }
        let body = Value::Array(chunk.to_vec()).to_string();
        // A sender whose member does not answer sends to the next one, as load balancers
        // and EventBridge retries do.
        let mut target = r % urls.len();
        loop {
            let answer = http
                .post(format!("{}/api/v1/events", urls[target]))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await;
            match answer {
                Ok(answer) if answer.status() == 202 => {
                    let body: Value = answer.json().await.expect("json");
                    for id in body["accepted"].as_array().expect("accepted ids") {
                        accepted.insert(id.as_str().expect("id").to_string());
                    }
                    break;
                }
                Ok(answer) => panic!("member {target} answered {}", answer.status()),
                Err(_) => {
                    refused_by_the_dead += 1;
                    target = (target + 1) % urls.len();
                }
            }
        }
    }
    assert_eq!(
        accepted.len(),
        ALARMS * REPEATS,
        "every event accepted once"
    );
    assert!(refused_by_the_dead > 0, "the dead member was asked");
    let survivor = &members[0];

    // Every accepted event counts on its alarm's one incident: ten per alarm, no incident
    // twice. A step the dead member held runs again when its lease runs out (two minutes).
    let incidents = until(
        "every accepted event processed",
        Duration::from_secs(120),
        async || {
            let incidents = survivor.incidents().await;
            let counted: u64 = incidents.iter().filter_map(|i| i["count"].as_u64()).sum();
            (counted >= (ALARMS * REPEATS) as u64).then_some(incidents)
        },
    )
    .await;
    let mut per_alarm: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for incident in &incidents {
        per_alarm
            .entry(incident["alarm_name"].as_str().unwrap_or("?").to_string())
            .or_default()
            .push(incident["count"].as_u64().unwrap_or(0));
    }
    assert_eq!(per_alarm.len(), ALARMS, "{per_alarm:?}");
    for (alarm, counts) in &per_alarm {
        assert_eq!(
            counts,
            &vec![REPEATS as u64],
            "{alarm}: one incident, every repeat counted once"
        );
    }
    for id in accepted.iter().step_by(37) {
        let (status, event) = survivor.get(&format!("/api/v1/events/{id}")).await;
        assert_eq!(status, 200, "{event}");
        assert_eq!(event["processed"], true, "{event}");
    }

    // Exactly one Jira issue and one email per incident.
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let issues = jira_state(&http, &jira_url).await["issues"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let sent = mails(&mail_dir).len();
        if issues.len() >= ALARMS && sent >= ALARMS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after 240 s: {} issues and {sent} emails for {ALARMS} incidents",
            issues.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for member in [&members[0], &members[2]] {
        member.runner_idle().await;
    }
    let issues = jira_state(&http, &jira_url).await["issues"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let labels = incident_labels(&issues);
    let distinct: BTreeSet<&String> = labels.iter().collect();
    assert_eq!(issues.len(), ALARMS, "one issue per incident");
    assert_eq!(
        distinct.len(),
        ALARMS,
        "no incident has two issues: {labels:?}"
    );
    // One email per incident as mail systems count them, by Message-ID. The one window
    // no mail server lets vigil close: the dead member's SMTP server accepted a message and
    // the member died before recording it. That step is sent again when its lease runs
    // out, with the same Message-ID (tests/crash.rs, `after_call:notify`, for one server).
    let mails = mails(&mail_dir);
    let mut per_message: BTreeMap<String, usize> = BTreeMap::new();
    for mail in &mails {
        *per_message
            .entry(mail["message_id"].as_str().unwrap_or("").to_string())
            .or_default() += 1;
    }
    assert_eq!(
        per_message.len(),
        ALARMS,
        "one email per incident: {per_message:?}"
    );
    assert!(
        per_message
            .keys()
            .all(|id| id.starts_with("<vigil-INC-") && id.ends_with("-notify-email-opened@vigil>")),
        "{per_message:?}"
    );
    let resent: Vec<(&String, &usize)> = per_message.iter().filter(|(_, n)| **n > 1).collect();
    eprintln!(
        "{} emails for {ALARMS} incidents; sent again with the same Message-ID after the kill: {resent:?}",
        mails.len()
    );
}
