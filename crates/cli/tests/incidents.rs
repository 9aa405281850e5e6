//! Events in, incidents out: grouping, idempotent re-posts, recovery, Alertmanager, SNS and
//! the CLI, all against the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{alarm_event, fixture, recovery_event, temp_dir, Server};
use serde_json::{json, Value};

fn open_for<'a>(incidents: &'a [Value], alarm: &str) -> Vec<&'a Value> {
    incidents
        .iter()
        .filter(|i| i["alarm_name"] == alarm && i["status"] != "resolved")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_alarms_make_one_incident_and_recovery_resolves_it() {
    let dir = temp_dir();
    let server = Arc::new(Server::start(dir.path()).await);

    // 1,000 distinct ALARM events for one alarm, all in flight at once.
    let mut posts = Vec::new();
    for n in 0..1000 {
        let server = server.clone();
        posts.push(tokio::spawn(async move {
            let event = alarm_event(&format!("burst-{n}"), "ServerCpuTooHigh");
            server.post("/api/v1/events", event.to_string()).await.0
        }));
    }
    for post in posts {
        assert_eq!(post.await.expect("post task"), 202);
    }
    let incidents = server
        .wait_for_incidents("one incident counting 1000 alarms", |all| {
            all.iter().any(|i| i["count"] == 1000)
        })
        .await;
    let open = open_for(&incidents, "ServerCpuTooHigh");
    assert_eq!(open.len(), 1, "exactly one open incident: {incidents:?}");
    let incident = open[0];
    assert_eq!(incident["key"], "INC-1");
    assert_eq!(incident["state"], "ALARM");
    assert_eq!(incident["account"], "123456789012");
    assert_eq!(incident["region"], "us-east-1");
    assert_eq!(incident["metric_name"], "CPUUtilization");
    assert_eq!(incident["metric_namespace"], "AWS/EC2");
    assert_eq!(incident["instance_id"], "i-12345678901234567");
    assert_eq!(incident["threshold"], 50.0);
    assert_eq!(incident["value"], 99.50160229693434);

    // One event id re-posted 1,000 times (a sender retrying) counts once.
    let mut retries = Vec::new();
    for _ in 0..1000 {
        let server = server.clone();
        retries.push(tokio::spawn(async move {
            let event = alarm_event("retried-once", "ServerCpuTooHigh");
            server.post("/api/v1/events", event.to_string()).await.0
        }));
    }
    for retry in retries {
        assert_eq!(
            retry.await.expect("retry task"),
            202,
            "a re-post is acknowledged again"
        );
    }
    server
        .wait_for_incidents("the retried event counted once", |all| {
            all.iter().any(|i| i["count"] == 1001)
        })
        .await;
    let (status, event) = server.get("/api/v1/events/retried-once").await;
    assert_eq!(status, 200, "{event}");
    // Every post was answered after its commit, and only 1,001 events were stored, all
    // of them counted already: nothing is left to (wrongly) count a duplicate.
    assert_eq!(
        server
            .metric("vigil_events_accepted_total{endpoint=\"events\"}")
            .await,
        Some(1001),
        "the re-posts were stored as new events"
    );
    let incidents = server.incidents().await;
    assert_eq!(open_for(&incidents, "ServerCpuTooHigh")[0]["count"], 1001);

    // Recovery resolves it; the next ALARM opens a new incident with a new key.
    let (status, _) = server
        .post(
            "/api/v1/events",
            recovery_event("recovered", "ServerCpuTooHigh").to_string(),
        )
        .await;
    assert_eq!(status, 202);
    server
        .wait_for_incidents("INC-1 resolved", |all| {
            all.iter()
                .any(|i| i["key"] == "INC-1" && i["status"] == "resolved")
        })
        .await;
    let (status, _) = server
        .post(
            "/api/v1/events",
            alarm_event("again", "ServerCpuTooHigh").to_string(),
        )
        .await;
    assert_eq!(status, 202);
    let incidents = server
        .wait_for_incidents("a new incident after recovery", |all| {
            all.iter().any(|i| i["key"] == "INC-2")
        })
        .await;
    let open = open_for(&incidents, "ServerCpuTooHigh");
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["key"], "INC-2");
    assert_eq!(open[0]["count"], 1);

    let (status, detail) = server.get("/api/v1/incidents/INC-1").await;
    assert_eq!(status, 200);
    let timeline = detail["timeline"].as_array().expect("timeline");
    assert!(
        timeline.iter().any(|t| t["kind"] == "resolved"),
        "{timeline:?}"
    );
}

#[tokio::test]
async fn alertmanager_alerts_become_incidents_with_their_labels() {
    let dir = temp_dir();
    let server = Server::start(dir.path()).await;
    let mut webhook = fixture("alertmanager-webhook-v4.json");
    let mut third = webhook["alerts"][0].clone();
    third["labels"]["alertname"] = json!("HostHighCpuLoad");
    third["labels"]["instance"] = json!("app-14.example.com:9100");
    third["labels"]["severity"] = json!("warning");
    third["annotations"]["summary"] = json!("CPU load is high");
    third["fingerprint"] = json!("0123456789abcdef");
    webhook["alerts"]
        .as_array_mut()
        .expect("alerts")
        .push(third);
    let statuses: Vec<&str> = webhook["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .map(|a| a["status"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(statuses, ["firing", "resolved", "firing"]);

    let (status, body) = server
        .post("/api/v1/ingest/alertmanager", webhook.to_string())
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"].as_array().map(Vec::len), Some(3));
    let incidents = server
        .wait_for_incidents("two firing alerts as incidents", |all| all.len() == 2)
        .await;
    let disk = incidents
        .iter()
        .find(|i| i["alarm_name"] == "NodeFilesystemAlmostOutOfSpace")
        .expect("the firing filesystem alert has an incident");
    assert_eq!(disk["status"], "open");
    assert_eq!(disk["state"], "ALARM");
    assert_eq!(disk["severity"], "critical");
    assert_eq!(disk["labels"]["instance"], "app-12.example.com:9100");
    assert_eq!(disk["labels"]["mountpoint"], "/");
    assert_eq!(
        disk["annotations"]["summary"],
        "Filesystem has less than 5% space left."
    );
    assert_eq!(disk["starts_at"], "2026-11-20T09:58:30.123Z");
    assert!(disk["generator_url"]
        .as_str()
        .is_some_and(|u| u.starts_with("http://prometheus")));
    let cpu = incidents
        .iter()
        .find(|i| i["alarm_name"] == "HostHighCpuLoad")
        .expect("the third alert has an incident");
    assert_eq!(cpu["severity"], "warning");
    assert_eq!(cpu["labels"]["instance"], "app-14.example.com:9100");
    assert!(
        !incidents
            .iter()
            .any(|i| i["labels"]["instance"] == "app-13.example.com:9100"),
        "the resolved alert opens nothing"
    );

    // The same alert resolving resolves its incident.
    let mut resolved = webhook.clone();
    resolved["alerts"] = json!([webhook["alerts"][0].clone()]);
    resolved["alerts"][0]["status"] = json!("resolved");
    resolved["alerts"][0]["endsAt"] = json!("2026-11-20T10:30:00Z");
    let (status, _) = server
        .post("/api/v1/ingest/alertmanager", resolved.to_string())
        .await;
    assert_eq!(status, 202);
    server
        .wait_for_incidents("the filesystem incident resolved", |all| {
            all.iter().any(|i| {
                i["alarm_name"] == "NodeFilesystemAlmostOutOfSpace" && i["status"] == "resolved"
            })
        })
        .await;
}

/// A loopback HTTP listener standing in for SNS's SubscribeURL: answers 200 and reports
/// each request line it receives.
async fn subscribe_url_listener() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = vec![0u8; 8192];
            let n = socket.read(&mut buf).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n])
                .lines()
                .next()
                .unwrap_or_default()
                .to_string();
            let _ = tx.send(request);
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
        }
    });
    (format!("http://127.0.0.1:{}", addr.port()), rx)
}

#[tokio::test]
async fn sns_confirms_only_allowed_topics_and_turns_notifications_into_alarms() {
    let dir = temp_dir();
    let (confirm_base, mut confirmations) = subscribe_url_listener().await;
    let signer = common::sns::SnsSigner::start(2).await;
    let config = dir.path().join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[ingest.sns]
allowed_topic_arns = ["arn:aws:sns:us-east-1:123456789012:ops-alarms"]
confirm_url_hosts = ["127.0.0.1"]
signing_cert_url_hosts = ["{}"]
"#,
            signer.host
        ),
    )
    .expect("write config");
    let data = dir.path().join("data");
    let server =
        Server::start_with(&data, &["--config", config.to_str().expect("utf-8 path")]).await;

    let post_sns = |body: Value, kind: &'static str| {
        let request = server
            .http
            .post(format!("{}/api/v1/ingest/sns", server.url))
            .bearer_auth(&server.token)
            .header("content-type", "text/plain; charset=UTF-8")
            .header("x-amz-sns-message-type", kind)
            .body(body.to_string());
        async move {
            let answer = request.send().await.expect("request reaches vigil");
            let status = answer.status().as_u16();
            (status, answer.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    // A topic that is not allowed: refused, and its URL never fetched.
    let mut foreign = fixture("sns-subscription-confirmation.json");
    foreign["TopicArn"] = json!("arn:aws:sns:us-east-1:999999999999:someone-else");
    foreign["SubscribeURL"] = json!(format!(
        "{confirm_base}/?Action=ConfirmSubscription&topic=foreign"
    ));
    signer.sign(&mut foreign, "1");
    let (status, body) = post_sns(foreign, "SubscriptionConfirmation").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("allowed_topic_arns")),
        "{body}"
    );

    // The allowed topic: accepted and confirmed by fetching SubscribeURL.
    let mut allowed = fixture("sns-subscription-confirmation.json");
    allowed["SubscribeURL"] = json!(format!(
        "{confirm_base}/?Action=ConfirmSubscription&topic=ops"
    ));
    signer.sign(&mut allowed, "1");
    let (status, body) = post_sns(allowed, "SubscriptionConfirmation").await;
    assert_eq!(status, 202, "{body}");
    let request = tokio::time::timeout(std::time::Duration::from_secs(10), confirmations.recv())
        .await
        .expect("vigil fetched SubscribeURL")
        .expect("listener alive");
    assert!(
        request.contains("topic=ops"),
        "confirmation fetched the allowed topic's URL: {request}"
    );
    assert!(
        confirmations.try_recv().is_err(),
        "the refused topic's URL was never fetched"
    );

    // A notification carrying a CloudWatch alarm becomes an alarm incident.
    let mut notification = fixture("sns-notification-cloudwatch-alarm.json");
    signer.sign(&mut notification, "2");
    let message: Value = serde_json::from_str(notification["Message"].as_str().expect("Message"))
        .expect("Message is alarm JSON");
    let alarm_name = message["AlarmName"]
        .as_str()
        .expect("AlarmName")
        .to_string();
    let (status, body) = post_sns(notification.clone(), "Notification").await;
    assert_eq!(status, 202, "{body}");
    let (status, _) = post_sns(notification, "Notification").await;
    assert_eq!(status, 202, "SNS retries are acknowledged");
    let incidents = server
        .wait_for_incidents("the SNS alarm as an incident", |all| {
            all.iter().any(|i| i["alarm_name"] == alarm_name.as_str())
        })
        .await;
    let incident = incidents
        .iter()
        .find(|i| i["alarm_name"] == alarm_name.as_str())
        .expect("incident");
    assert_eq!(incident["state"], "ALARM");
    assert_eq!(
        incident["count"], 1,
        "the retried notification (same MessageId) counts once"
    );
    assert_eq!(incident["source"], "aws.cloudwatch");
}

#[tokio::test]
async fn the_cli_lists_shows_acknowledges_and_resolves() {
    let dir = temp_dir();
    let server = Server::start(dir.path()).await;
    let event_file = dir.path().join("alarm.json");
    std::fs::write(
        &event_file,
        alarm_event("cli-1", "DiskAlmostFull").to_string(),
    )
    .expect("write event");

    let sent = server.cli(&["event", "send", event_file.to_str().expect("path")]);
    assert!(
        sent.status.success(),
        "event send: {}",
        String::from_utf8_lossy(&sent.stderr)
    );
    server
        .wait_for_incidents("the sent event's incident", |all| all.len() == 1)
        .await;

    let listed = server.cli(&["incidents", "--json"]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let listed: Value = serde_json::from_slice(&listed.stdout).expect("--json prints JSON");
    let listed = listed
        .as_array()
        .or_else(|| listed["incidents"].as_array())
        .cloned()
        .expect("a list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["key"], "INC-1");

    let table = server.cli(&["incidents", "--status", "open"]);
    let table = String::from_utf8_lossy(&table.stdout).to_string();
    assert!(
        table.contains("INC-1") && table.contains("DiskAlmostFull"),
        "{table}"
    );

    let shown = server.cli(&["incident", "show", "INC-1"]);
    let shown_text = String::from_utf8_lossy(&shown.stdout).to_string();
    assert!(
        shown.status.success() && shown_text.contains("DiskAlmostFull"),
        "{shown_text}"
    );

    let acked = server.cli(&["incident", "ack", "INC-1"]);
    assert!(
        acked.status.success(),
        "{}",
        String::from_utf8_lossy(&acked.stderr)
    );
    let (_, incident) = server.get("/api/v1/incidents/INC-1").await;
    assert_eq!(incident["status"], "acknowledged");
    assert!(incident["acknowledged_at"].is_string());

    let resolved = server.cli(&["incident", "resolve", "INC-1"]);
    assert!(
        resolved.status.success(),
        "{}",
        String::from_utf8_lossy(&resolved.stderr)
    );
    let (_, incident) = server.get("/api/v1/incidents/INC-1").await;
    assert_eq!(incident["status"], "resolved");

    let missing = server.cli(&["incident", "show", "INC-99"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("INC-99"));

    // The CLI finds the server and token through the data directory alone.
    let output = std::process::Command::new(common::VIGIL)
        .args(["incidents", "--json", "--data"])
        .arg(dir.path())
        .env_remove("VIGIL_SERVER")
        .env_remove("VIGIL_TOKEN")
        .output()
        .expect("run the CLI");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn rule_test_exit_codes_follow_aws_test_event_pattern() {
    let pattern = r#"{"source":["aws.cloudwatch"],"detail-type":["CloudWatch Alarm State Change"],"detail":{"state":{"value":["ALARM"]},"previousState":{"value":["OK"]}}}"#;
    let dir = temp_dir();
    let to_alarm = dir.path().join("to-alarm.json");
    let to_ok = dir.path().join("to-ok.json");
    std::fs::write(
        &to_alarm,
        fixture("cloudwatch-alarm-ok-to-alarm.json").to_string(),
    )
    .expect("write");
    std::fs::write(
        &to_ok,
        fixture("cloudwatch-alarm-alarm-to-ok.json").to_string(),
    )
    .expect("write");
    let run = |pattern: &str, event: String| {
        std::process::Command::new(common::VIGIL)
            .args(["rule", "test", "--pattern", pattern, "--event", &event])
            .output()
            .expect("run vigil rule test")
            .status
            .code()
    };
    assert_eq!(run(pattern, format!("@{}", to_alarm.display())), Some(0));
    assert_eq!(run(pattern, format!("@{}", to_ok.display())), Some(1));
    assert_eq!(
        run(
            r#"{"source":"aws.cloudwatch"}"#,
            format!("@{}", to_ok.display())
        ),
        Some(2)
    );
}

#[tokio::test]
async fn vigil_up_watches_its_own_host_with_the_default_alarms() {
    let dir = temp_dir();
    let server = Server::start(dir.path()).await;
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("hostname")
        .trim()
        .to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    loop {
        let (_, hosts) = server.get("/api/v1/hosts").await;
        let (_, alarms) = server.get("/api/v1/alarms").await;
        let reporting = hosts["hosts"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|h| h["name"] == hostname.as_str() && h["last_seen_at"].is_string());
        let watched: Vec<&str> = alarms["alarms"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|a| a["instances"].as_array().into_iter().flatten())
            .filter(|i| i["dimensions"]["host"] == hostname.as_str())
            .filter_map(|i| i["alarm"].as_str())
            .collect();
        if reporting
            && [
                "High CPU Utilization",
                "High Memory Utilization",
                "High Disk Utilization",
            ]
            .iter()
            .all(|a| watched.contains(a))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the local agent did not report or the default alarms do not watch it: {hosts} {alarms}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn without_channels_each_notification_is_recorded_as_not_delivered() {
    let dir = temp_dir();
    let server = Server::start_with(dir.path(), &["--no-agent"]).await;
    let (status, _) = server
        .post(
            "/api/v1/events",
            alarm_event("undelivered-1", "NoChannelsYet").to_string(),
        )
        .await;
    assert_eq!(status, 202);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, incident) = server.get("/api/v1/incidents/INC-1").await;
        let noted = incident["timeline"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| {
                t["message"].as_str().is_some_and(|m| {
                    m.contains("notification not delivered") && m.contains("VIGIL_SMTP_URL")
                })
            });
        let logged = incident["deliveries"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| d["name"] == "undelivered" && d["status"] == "failed");
        if noted && logged {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no undelivered note: {incident}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processing_lag_is_reported_in_status_and_metrics() {
    let dir = temp_dir();
    let held = Server::start_env(
        dir.path(),
        &["--no-agent"],
        &[
            ("VIGIL_FAULT_HOLD_PROCESSING", "1"),
            ("VIGIL_TEST_CLOCK", "1"),
        ],
    )
    .await;
    for id in ["held-1", "held-2", "held-3"] {
        let (status, body) = held
            .post("/api/v1/events", alarm_event(id, id).to_string())
            .await;
        assert_eq!(status, 202, "{body}");
    }
    let (status, _) = held
        .post(
            "/api/v1/test/clock",
            serde_json::json!({"seconds": 30}).to_string(),
        )
        .await;
    assert_eq!(status, 200);
    let (status, report) = held.get("/api/v1/status").await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["processing"]["backlog"], 3, "{report}");
    assert_eq!(report["processing"]["behind"], true, "{report}");
    let lag = report["processing"]["lag_seconds"].as_f64().unwrap_or(0.0);
    assert!((30.0..40.0).contains(&lag), "{report}");
    assert_eq!(held.metric("vigil_processing_backlog").await, Some(3));
    let metrics = held
        .http
        .get(format!("{}/metrics", held.url))
        .bearer_auth(&held.token)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    let lag_line = metrics
        .lines()
        .find_map(|l| l.strip_prefix("vigil_processing_lag_seconds "))
        .and_then(|v| v.parse::<f64>().ok());
    assert!(lag_line.is_some_and(|l| l >= 30.0), "{metrics}");
    let shown = held.cli(&["status"]);
    let said = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.status.success() && said.contains("3 events waiting") && said.contains("behind"),
        "{shown:?}"
    );
    drop(held);

    // Processing as usual: nothing waits once the events are in.
    let dir = temp_dir();
    let server = Server::start_with(dir.path(), &["--no-agent"]).await;
    let (status, _) = server
        .post(
            "/api/v1/events",
            alarm_event("flowing", "flowing").to_string(),
        )
        .await;
    assert_eq!(status, 202);
    server
        .wait_for_incidents("the incident", |all| all.len() == 1)
        .await;
    let (_, report) = server.get("/api/v1/status").await;
    assert_eq!(report["processing"]["backlog"], 0, "{report}");
    assert_eq!(report["processing"]["behind"], false, "{report}");
    let shown = server.cli(&["status"]);
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains("up to date"),
        "{shown:?}"
    );
}

/// An OK→ALARM event graded `severity`, in its own group.
fn graded(id: &str, alarm: &str, severity: &str) -> Value {
    let mut event = alarm_event(id, alarm);
    event["detail"]["severity"] = json!(severity);
    event
}

fn key_number(incident: &Value) -> u64 {
    incident["key"]
        .as_str()
        .and_then(|k| k.strip_prefix("INC-"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("an INC-n key: {incident}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_backlog_recoveries_and_critical_alarms_go_first_in_their_groups_order() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let mut server = Server::start_with(&data, &["--no-agent"]).await;
    let (status, _) = server
        .post(
            "/api/v1/events",
            graded("first", "recover-me", "warning").to_string(),
        )
        .await;
    assert_eq!(status, 202);
    server
        .wait_for_incidents("the first incident", |all| all.len() == 1)
        .await;
    server.kill();

    // A backlog: 100 warnings, then the first alarm's recovery, its next ALARM, and one
    // critical alarm, all accepted while processing is held.
    let mut held = Server::start_env(
        &data,
        &["--no-agent"],
        &[("VIGIL_FAULT_HOLD_PROCESSING", "1")],
    )
    .await;
    let mut backlog: Vec<Value> = (0..100)
        .map(|n| graded(&format!("w{n}"), &format!("warning {n}"), "warning"))
        .collect();
    let mut recovery = recovery_event("recovered", "recover-me");
    recovery["detail"]["severity"] = json!("warning");
    backlog.push(recovery);
    backlog.push(graded("again", "recover-me", "warning"));
    backlog.push(graded("crit", "critical one", "critical"));
    let (status, body) = held
        .post("/api/v1/events", Value::Array(backlog).to_string())
        .await;
    assert_eq!(status, 202, "{body}");
    held.kill();

    // Storm grouping off: this is about order, and 100 warnings of one scope would form a
    // storm (whose key would take a number).
    let server = Server::start_env(&data, &["--no-agent"], &[("VIGIL_STORM_THRESHOLD", "0")]).await;
    let all = server
        .wait_for_incidents("every incident", |all| all.len() == 103)
        .await;
    let of =
        |alarm: &str| -> Vec<&Value> { all.iter().filter(|i| i["alarm_name"] == alarm).collect() };
    let mut recover_me = of("recover-me");
    recover_me.sort_by_key(|i| key_number(i));
    assert_eq!(
        recover_me.len(),
        2,
        "resolved, then opened again: {recover_me:?}"
    );
    assert_eq!(recover_me[0]["status"], "resolved", "{recover_me:?}");
    assert_eq!(
        key_number(recover_me[1]),
        2,
        "its group went first: {recover_me:?}"
    );
    assert_eq!(
        key_number(of("critical one")[0]),
        3,
        "then the critical alarm"
    );
    let first_warning = all
        .iter()
        .filter(|i| {
            i["alarm_name"]
                .as_str()
                .is_some_and(|a| a.starts_with("warning "))
        })
        .map(key_number)
        .min();
    assert_eq!(first_warning, Some(4), "the warnings after them, none lost");
    drop(server);
}
