//! Ownership end to end: the application tree routes incidents to the right people through
//! moves and splits, scoped tokens see only their subtree, escalation follows a test clock,
//! and remediations wait for an approver.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{alarm_event, temp_dir, Server, VIGIL};
use serde_json::{json, Value};

const TREE: &str = r#"
[[apps]]
appcode = "travel"
name = "Travel"
kind = "business_unit"
owners = ["alice@example.com"]
approvers = ["erin"]

[[apps]]
appcode = "flights"
name = "Flights"
kind = "department"
parent = "travel"
owners = ["dave@example.com"]

[[apps]]
appcode = "flight_search_api"
name = "Flight search"
kind = "application"
parent = "flights"
oncall = ["bob@example.com"]

[[apps]]
appcode = "hotels"
name = "Hotels"
kind = "department"
parent = "travel"
owners = ["carol@example.com"]

[[apps]]
appcode = "hotel_api"
name = "Hotel API"
kind = "application"
parent = "hotels"

[[hosts]]
name = "web-01"
appcode = "flight_search_api"

[[hosts]]
name = "hotel-01"
appcode = "hotel_api"
"#;

async fn import_tree(server: &Server, dir: &std::path::Path) {
    let file = dir.join("tree.toml");
    std::fs::write(&file, TREE).expect("tree file");
    let first = server.cli(&["app", "import", file.to_str().expect("path")]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let again = server.cli(&["app", "import", file.to_str().expect("path")]);
    let again = String::from_utf8_lossy(&again.stdout).to_string();
    assert!(
        again.contains("unchanged") || again.contains("0 change"),
        "a second import changes nothing: {again}"
    );
}

/// An alarm about `host`, in its own group.
fn alarm_for(id: &str, alarm: &str, host: &str) -> Value {
    let mut event = alarm_event(id, alarm);
    event["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"] =
        json!({"host": host});
    event
}

/// A delivery's recipients (a list in the delivery log), comma-separated.
fn recipients(delivery: &Value) -> Option<String> {
    let list: Vec<&str> = delivery["recipients"]
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    Some(list.join(","))
}

/// Waits for the incident of `alarm` and the note naming whom it was for.
async fn recipients_of(server: &Server, alarm: &str) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let incidents = server.incidents().await;
        if let Some(key) = incidents
            .iter()
            .find(|i| i["alarm_name"] == alarm)
            .and_then(|i| i["key"].as_str())
        {
            let (_, incident) = server.get(&format!("/api/v1/incidents/{key}")).await;
            let note = incident["deliveries"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|d| d["name"] == "undelivered" && d["kind"] == "opened")
                .and_then(recipients);
            if let Some(note) = note {
                return (key.to_string(), note);
            }
        }
        assert!(
            Instant::now() < deadline,
            "no routed notification for {alarm}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn moves_and_splits_keep_hosts_alarms_and_incidents_routed() {
    let dir = temp_dir();
    let server = Server::start_with(dir.path(), &["--no-agent"]).await;
    import_tree(&server, dir.path()).await;

    let (_, app) = server.get("/api/v1/apps/flight_search_api").await;
    assert_eq!(
        app["inherited"]["owners"],
        json!(["dave@example.com"]),
        "nearest ancestor with owners"
    );
    assert_eq!(app["inherited"]["from"], "flights");
    assert_eq!(app["inherited"]["oncall"], json!(["bob@example.com"]));
    assert_eq!(app["inherited"]["approvers"], json!(["erin"]));

    let (status, _) = server
        .post(
            "/api/v1/events",
            alarm_for("before-move", "search CPU", "web-01").to_string(),
        )
        .await;
    assert_eq!(status, 202);
    let (first, routed) = recipients_of(&server, "search CPU").await;
    assert_eq!(routed, "dave@example.com,bob@example.com");
    let (_, incident) = server.get(&format!("/api/v1/incidents/{first}")).await;
    assert_eq!(incident["appcode"], "flight_search_api");

    // Move the application under Hotels: same Appcode, same host, new owners.
    let moved = server.cli(&["app", "mv", "flight_search_api", "hotels"]);
    assert!(
        moved.status.success(),
        "{}",
        String::from_utf8_lossy(&moved.stderr)
    );
    let (_, app) = server.get("/api/v1/apps/flight_search_api").await;
    assert_eq!(app["inherited"]["owners"], json!(["carol@example.com"]));
    assert_eq!(app["hosts"], json!(["web-01"]));
    let (status, _) = server
        .post(
            "/api/v1/events",
            alarm_for("after-move", "search memory", "web-01").to_string(),
        )
        .await;
    assert_eq!(status, 202);
    let (_, routed) = recipients_of(&server, "search memory").await;
    assert_eq!(routed, "carol@example.com,bob@example.com");
    // The earlier incident still names its Appcode: nothing refers to positions.
    let (_, incident) = server.get(&format!("/api/v1/incidents/{first}")).await;
    assert_eq!(incident["appcode"], "flight_search_api");

    // Split: a new child application takes over a host; it inherits from its parent.
    let added = server.cli(&[
        "app",
        "add",
        "flight_search_ranker",
        "--name",
        "Ranker",
        "--parent",
        "flight_search_api",
    ]);
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let bound = server.cli(&["host", "bind", "web-01", "flight_search_ranker"]);
    assert!(
        bound.status.success(),
        "{}",
        String::from_utf8_lossy(&bound.stderr)
    );
    let (status, _) = server
        .post(
            "/api/v1/events",
            alarm_for("after-split", "ranker disk", "web-01").to_string(),
        )
        .await;
    assert_eq!(status, 202);
    let (key, routed) = recipients_of(&server, "ranker disk").await;
    assert_eq!(
        routed, "carol@example.com,bob@example.com",
        "owners and on-call inherited through the split"
    );
    let (_, incident) = server.get(&format!("/api/v1/incidents/{key}")).await;
    assert_eq!(incident["appcode"], "flight_search_ranker");

    // An Appcode can be renamed for display, never changed or reused.
    let (status, body) = server
        .http
        .patch(format!("{}/api/v1/apps/hotel_api", server.url))
        .bearer_auth(&server.token)
        .json(&json!({"appcode": "lodging_api", "name": "Lodging API"}))
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .expect("patch");
    assert_eq!(status, 400, "{:?}", body.text().await);
    let renamed = server
        .http
        .patch(format!("{}/api/v1/apps/hotel_api", server.url))
        .bearer_auth(&server.token)
        .json(&json!({"name": "Lodging API"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(renamed.status(), 200);
    let (_, app) = server.get("/api/v1/apps/hotel_api").await;
    assert_eq!(app["node"]["name"], "Lodging API");
    let (status, body) = server
        .post("/api/v1/apps", json!({"appcode": "hotel_api", "name": "Again", "kind": "application", "parent": "hotels"}).to_string())
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = server
        .post(
            "/api/v1/apps/travel/move",
            json!({"parent": "hotel_api"}).to_string(),
        )
        .await;
    assert_eq!(status, 400, "a cycle is refused: {body}");

    let exported = server.cli(&["app", "export"]);
    let exported = String::from_utf8_lossy(&exported.stdout).to_string();
    assert!(
        exported.contains("flight_search_ranker") && exported.contains("web-01"),
        "{exported}"
    );
}

#[tokio::test]
async fn a_scoped_token_sees_only_its_subtree() {
    let dir = temp_dir();
    let server = Server::start_with(dir.path(), &["--no-agent"]).await;
    import_tree(&server, dir.path()).await;
    for (id, alarm, host) in [
        ("s1", "search alarm", "web-01"),
        ("s2", "hotel alarm", "hotel-01"),
    ] {
        let (status, _) = server
            .post("/api/v1/events", alarm_for(id, alarm, host).to_string())
            .await;
        assert_eq!(status, 202);
    }
    server
        .wait_for_incidents("two incidents", |all| all.len() == 2)
        .await;
    for (name, appcode) in [
        ("search-alarm", "flight_search_api"),
        ("hotel-alarm", "hotel_api"),
    ] {
        let definition = json!({"AlarmName": name, "MetricName": "CPUUtilization", "Statistic": "Average", "Period": 60,
            "EvaluationPeriods": 1, "Threshold": 90, "ComparisonOperator": "GreaterThanThreshold", "Appcode": appcode});
        let (status, _) = server.post("/api/v1/alarms", definition.to_string()).await;
        assert_eq!(status, 201);
    }
    let scoped = server.cli_last_line(&["token", "add", "flights-team", "--scope", "flights"]);
    let as_scoped = |method: &str, path: &str| {
        let url = format!("{}{path}", server.url);
        let request = match method {
            "POST" => server.http.post(url).json(&json!({})),
            "DELETE" => server.http.delete(url),
            _ => server.http.get(url),
        };
        request.bearer_auth(&scoped)
    };

    let incidents: Value = as_scoped("GET", "/api/v1/incidents")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let names: Vec<&str> = incidents["incidents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["alarm_name"].as_str())
        .collect();
    assert_eq!(names, ["search alarm"], "only the subtree's incidents");
    let hotel_key = server
        .incidents()
        .await
        .iter()
        .find(|i| i["alarm_name"] == "hotel alarm")
        .and_then(|i| i["key"].as_str().map(str::to_string))
        .expect("hotel incident");
    let search_key = server
        .incidents()
        .await
        .iter()
        .find(|i| i["alarm_name"] == "search alarm")
        .and_then(|i| i["key"].as_str().map(str::to_string))
        .expect("search incident");

    // Outside the subtree: 404 for every kind of resource, as if it did not exist.
    for (method, path) in [
        ("GET", format!("/api/v1/incidents/{hotel_key}")),
        ("POST", format!("/api/v1/incidents/{hotel_key}/ack")),
        ("POST", format!("/api/v1/incidents/{hotel_key}/resolve")),
        ("GET", "/api/v1/hosts/hotel-01".to_string()),
        ("POST", "/api/v1/hosts/hotel-01/revoke".to_string()),
        ("GET", "/api/v1/alarms/hotel-alarm".to_string()),
        ("DELETE", "/api/v1/alarms/hotel-alarm".to_string()),
        ("GET", "/api/v1/apps/hotel_api".to_string()),
        ("GET", "/api/v1/apps/travel".to_string()),
        ("GET", "/api/v1/reports?appcode=hotels".to_string()),
        ("GET", "/api/v1/events/s2".to_string()),
    ] {
        let answer = as_scoped(method, &path).send().await.expect("request");
        assert_eq!(answer.status(), 404, "{method} {path}");
    }
    // The export holds the subtree only: no other team's nodes, owners or hosts.
    let export = as_scoped("GET", "/api/v1/apps/export")
        .send()
        .await
        .expect("export");
    assert_eq!(export.status(), 200);
    let export = export.text().await.expect("text");
    assert!(
        export.contains("appcode = \"flight_search_api\""),
        "{export}"
    );
    for outside in [
        "appcode = \"hotel_api\"",
        "appcode = \"travel\"",
        "hotel-01",
    ] {
        assert!(
            !export.contains(outside),
            "`{outside}` in a scoped export:\n{export}"
        );
    }
    let csv = as_scoped("GET", "/api/v1/apps/export?format=csv")
        .send()
        .await
        .expect("export")
        .text()
        .await
        .expect("text");
    assert!(csv.contains("flight_search_api"), "{csv}");
    assert!(!csv.contains("hotel"), "{csv}");
    // Inside: allowed.
    for path in [
        format!("/api/v1/incidents/{search_key}"),
        "/api/v1/events/s1".into(),
        "/api/v1/apps/flight_search_api".into(),
        "/api/v1/alarms/search-alarm".into(),
        "/api/v1/reports?appcode=flights&since=1d".into(),
    ] {
        let answer = as_scoped("GET", &path).send().await.expect("request");
        assert_eq!(answer.status(), 200, "{path}");
    }
    let alarms: Value = as_scoped("GET", "/api/v1/alarms")
        .send()
        .await
        .expect("alarms")
        .json()
        .await
        .expect("json");
    let visible: Vec<&str> = alarms["alarms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["AlarmName"].as_str())
        .collect();
    assert_eq!(visible, ["search-alarm"]);
    let hosts: Value = as_scoped("GET", "/api/v1/hosts")
        .send()
        .await
        .expect("hosts")
        .json()
        .await
        .expect("json");
    assert!(
        hosts["hosts"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|h| h["name"] != "hotel-01"),
        "{hosts}"
    );

    // It cannot mint an unscoped token (403), nor one for an application beyond its
    // subtree, wider or sideways (404, as for any name it cannot see); a narrower one is fine.
    for (body, status) in [
        (json!({"name": "wider", "scope": "travel"}), 404),
        (json!({"name": "unscoped"}), 403),
        (json!({"name": "sideways", "scope": "hotels"}), 404),
    ] {
        let answer = server
            .http
            .post(format!("{}/api/v1/tokens", server.url))
            .bearer_auth(&scoped)
            .json(&body)
            .send()
            .await
            .expect("token");
        assert_eq!(answer.status(), status, "{body}");
    }
    let narrower = server
        .http
        .post(format!("{}/api/v1/tokens", server.url))
        .bearer_auth(&scoped)
        .json(&json!({"name": "search-only", "scope": "flight_search_api"}))
        .send()
        .await
        .expect("token");
    assert_eq!(narrower.status(), 201);
    let report: Value = as_scoped("GET", "/api/v1/reports?appcode=flights&since=1d")
        .send()
        .await
        .expect("report")
        .json()
        .await
        .expect("json");
    assert_eq!(report["incidents"], 1, "{report}");
}

#[tokio::test]
async fn escalation_follows_the_clock_and_stops_when_acknowledged() {
    let dir = temp_dir();
    let server = Server::start_env(dir.path(), &["--no-agent"], &[("VIGIL_TEST_CLOCK", "1")]).await;
    import_tree(&server, dir.path()).await;
    for (id, alarm) in [("e1", "ignored alarm"), ("e2", "handled alarm")] {
        let (status, _) = server
            .post("/api/v1/events", alarm_for(id, alarm, "web-01").to_string())
            .await;
        assert_eq!(status, 202);
    }
    let incidents = server
        .wait_for_incidents("two incidents", |all| all.len() == 2)
        .await;
    let key = |alarm: &str| {
        incidents
            .iter()
            .find(|i| i["alarm_name"] == alarm)
            .and_then(|i| i["key"].as_str())
            .map(str::to_string)
            .expect("key")
    };
    let (ignored, handled) = (key("ignored alarm"), key("handled alarm"));
    let acked = server.cli(&["incident", "ack", &handled]);
    assert!(acked.status.success());

    let escalations = |incident: Value| -> Vec<String> {
        incident["timeline"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["message"].as_str())
            .filter(|m| m.contains("escalated to level"))
            .map(str::to_string)
            .collect()
    };
    // Ten minutes: not yet (the sweeper has looked at the moved clock).
    server.move_clock_and_settle(600).await;
    let (_, incident) = server.get(&format!("/api/v1/incidents/{ignored}")).await;
    assert!(
        escalations(incident).is_empty(),
        "no escalation before 15 minutes"
    );

    // Sixteen minutes: the next level up (Travel's owners) is told.
    server
        .post("/api/v1/test/clock", json!({"seconds": 360}).to_string())
        .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let escalated = loop {
        let (_, incident) = server.get(&format!("/api/v1/incidents/{ignored}")).await;
        let found = escalations(incident.clone());
        if !found.is_empty() {
            break (found, incident);
        }
        assert!(
            Instant::now() < deadline,
            "no escalation after 16 minutes: {incident}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        escalated.0[0].contains("level 1") && escalated.0[0].contains("alice@example.com"),
        "{:?}",
        escalated.0
    );
    let deliveries = escalated.1["deliveries"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut routed = deliveries.iter().any(|d| {
        d["kind"] == "escalated-1" && recipients(d).is_some_and(|r| r.contains("alice@example.com"))
    });
    while !routed {
        assert!(
            Instant::now() < deadline,
            "the escalate playbook did not notify Travel's owners"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (_, incident) = server.get(&format!("/api/v1/incidents/{ignored}")).await;
        routed = incident["deliveries"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| {
                d["kind"] == "escalated-1"
                    && recipients(d).is_some_and(|r| r.contains("alice@example.com"))
            });
    }
    let (_, incident) = server.get(&format!("/api/v1/incidents/{handled}")).await;
    assert!(
        escalations(incident).is_empty(),
        "an incident acknowledged in time does not escalate"
    );
}

#[tokio::test]
async fn escalation_wakes_on_the_clock_move_not_on_a_tick() {
    let dir = temp_dir();
    let server = Server::start_env(dir.path(), &["--no-agent"], &[("VIGIL_TEST_CLOCK", "1")]).await;
    let (status, _) = server
        .post(
            "/api/v1/events",
            alarm_for("w1", "quiet alarm", "web-01").to_string(),
        )
        .await;
    assert_eq!(status, 202);
    let key = server
        .wait_for_incidents("the incident", |all| all.len() == 1)
        .await[0]["key"]
        .as_str()
        .expect("key")
        .to_string();
    // One minute in: the sweeper has looked and now sleeps until the 15-minute mark.
    server.move_clock_and_settle(60).await;
    let checks = || async {
        server
            .metric("vigil_escalation_checks_total")
            .await
            .expect("escalation checks are counted")
    };
    let idle_from = checks().await;
    // Idle, it does not look at all: this measures the absence of a periodic check (a
    // half-second tick would have looked twice), so it has to let real time pass.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        checks().await,
        idle_from,
        "the escalation sweeper looked without being woken"
    );

    // Past the threshold on the test clock: the move wakes it at once, although its timer
    // is still fourteen minutes of real time away.
    let moved = Instant::now();
    let (status, _) = server
        .post(
            "/api/v1/test/clock",
            json!({"seconds": 15 * 60}).to_string(),
        )
        .await;
    assert_eq!(status, 200);
    loop {
        let (_, incident) = server.get(&format!("/api/v1/incidents/{key}")).await;
        if incident["timeline"]
            .to_string()
            .contains("escalated to level 1")
        {
            break;
        }
        assert!(
            moved.elapsed() < Duration::from_secs(5),
            "no escalation within 5 s of moving the clock past 15 minutes: {incident}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Woken once by the move (a wake rung during that round may add one more).
    let woken = checks().await - idle_from;
    assert!(
        (1..=2).contains(&woken),
        "{woken} checks for one clock move"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remediation_waits_for_an_approver() {
    let dir = temp_dir();
    let config = dir.path().join("vigil.toml");
    std::fs::write(
        &config,
        r#"
[[rules]]
name = "restart-collector"
pattern = '{"detail": {"alarmName": [{"prefix": "collector"}]}}'
playbook = "careful"

[playbooks.careful]
steps = [{ type = "incident" }, { type = "remediate", probe = "collector_restart", approval = true }]
"#,
    )
    .expect("config");
    let data = dir.path().join("data");
    let server = Server::start_with(
        &data,
        &["--no-agent", "--config", config.to_str().expect("path")],
    )
    .await;
    import_tree(&server, dir.path()).await;
    let enrolled = server.cli(&["host", "add", "web-01"]);
    let token = String::from_utf8_lossy(&enrolled.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string();
    let mut agent = std::process::Command::new(VIGIL)
        .args([
            "agent",
            "--server",
            &server.url,
            "--name",
            "web-01",
            "--interval",
            "1",
        ])
        .env("VIGIL_AGENT_TOKEN", token)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("agent");

    let (status, _) = server
        .post(
            "/api/v1/events",
            alarm_for("r1", "collector silent", "web-01").to_string(),
        )
        .await;
    assert_eq!(status, 202);
    let incidents = server
        .wait_for_incidents("the incident", |all| all.len() == 1)
        .await;
    let key = incidents[0]["key"].as_str().expect("key").to_string();
    let remediated = |incident: &Value| {
        incident["timeline"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| {
                t["kind"] == "diagnostics"
                    && t["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("collector_restart"))
            })
    };
    // Held: the agent answers the incident's diagnostics, queued with the held job, yet
    // the remediation does not run. Each poll hands an agent every job it may run, so
    // once an answer is in, the held job was passed over.
    let deadline = Instant::now() + Duration::from_secs(30);
    let incident = loop {
        let (_, incident) = server.get(&format!("/api/v1/incidents/{key}")).await;
        let diagnosed = incident["timeline"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| {
                t["kind"] == "diagnostics"
                    && t["message"]
                        .as_str()
                        .is_some_and(|m| !m.starts_with("collector_restart"))
            });
        if diagnosed {
            break incident;
        }
        assert!(
            Instant::now() < deadline,
            "the agent answered none of the incident's probes: {incident}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        !remediated(&incident),
        "the remediation ran without approval"
    );
    assert!(
        incident["timeline"]
            .to_string()
            .contains("waits for an approver"),
        "{incident}"
    );

    // A non-approver is refused; the approver (erin, inherited from Travel) releases it.
    let mallory = server.cli(&["token", "add", "mallory"]);
    let mallory = String::from_utf8_lossy(&mallory.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string();
    let refused = server
        .http
        .post(format!("{}/api/v1/incidents/{key}/approve", server.url))
        .bearer_auth(&mallory)
        .send()
        .await
        .expect("approve");
    assert_eq!(refused.status(), 403);
    let erin = server.cli(&["token", "add", "erin"]);
    let erin = String::from_utf8_lossy(&erin.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string();
    let approved = std::process::Command::new(VIGIL)
        .args(["incident", "approve", &key])
        .env("VIGIL_SERVER", &server.url)
        .env("VIGIL_TOKEN", &erin)
        .output()
        .expect("approve");
    assert!(
        approved.status.success(),
        "{}",
        String::from_utf8_lossy(&approved.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, incident) = server.get(&format!("/api/v1/incidents/{key}")).await;
        if remediated(&incident) {
            assert!(
                incident["timeline"]
                    .to_string()
                    .contains("approved by erin at"),
                "{incident}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the approved remediation did not run: {incident}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = agent.kill();
    let _ = agent.wait();
}

/// An alarm about `host` naming it only by its EC2 instance id, as CloudWatch does.
fn alarm_for_instance(id: &str, alarm: &str, instance_id: &str) -> Value {
    let mut event = alarm_event(id, alarm);
    event["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"] =
        json!({"InstanceId": instance_id});
    event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_naming_an_enrolled_instance_reaches_its_owners_and_its_approver() {
    let dir = temp_dir();
    let server = Server::start_with(&dir.path().join("data"), &["--no-agent"]).await;
    import_tree(&server, dir.path()).await;
    let added = server.cli(&[
        "host",
        "add",
        "web-02",
        "--appcode",
        "flight_search_api",
        "--instance-id",
        "i-0def4567890abcdef",
    ]);
    assert!(added.status.success(), "{added:?}");
    let (status, body) = server
        .post(
            "/api/v1/events",
            alarm_for_instance("i1", "web-02 cpu", "i-0def4567890abcdef").to_string(),
        )
        .await;
    assert_eq!(status, 202, "{body}");

    let (key, routed) = recipients_of(&server, "web-02 cpu").await;
    assert_eq!(
        routed, "dave@example.com,bob@example.com",
        "the owners and on-call of the host's application"
    );
    let (_, incident) = server.get(&format!("/api/v1/incidents/{key}")).await;
    assert_eq!(incident["appcode"], "flight_search_api", "{incident}");
    assert_eq!(incident["host"], "web-02", "named as enrolled: {incident}");

    // Its approver (erin, inherited from Travel) may approve; another token may not.
    let mallory = server.cli_last_line(&["token", "add", "mallory"]);
    let refused = server
        .http
        .post(format!("{}/api/v1/incidents/{key}/approve", server.url))
        .bearer_auth(&mallory)
        .send()
        .await
        .expect("approve");
    assert_eq!(refused.status(), 403);
    let refusal = refused.text().await.unwrap_or_default();
    assert!(refusal.contains("approvers: erin"), "{refusal}");
    let erin = server.cli_last_line(&["token", "add", "erin"]);
    let approved = std::process::Command::new(VIGIL)
        .args(["incident", "approve", &key])
        .env("VIGIL_SERVER", &server.url)
        .env("VIGIL_TOKEN", &erin)
        .output()
        .expect("approve");
    assert!(approved.status.success(), "{approved:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebinding_a_host_mid_alarm_keeps_one_incident_which_resolves_on_recovery() {
    let dir = temp_dir();
    let server = Server::start_with(&dir.path().join("data"), &["--no-agent"]).await;
    import_tree(&server, dir.path()).await;
    let (status, body) = server
        .post(
            "/api/v1/hosts",
            json!({"name": "web-03", "appcode": "flight_search_api"}).to_string(),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().expect("host token").to_string();
    let definition = json!({"AlarmName": "load high", "MetricName": "load1", "Statistic": "Maximum",
        "Dimensions": [{"Name": "host", "Value": "*"}], "Period": 1, "EvaluationPeriods": 1,
        "Threshold": 5, "ComparisonOperator": "GreaterThanThreshold"});
    let (status, body) = server.post("/api/v1/alarms", definition.to_string()).await;
    assert_eq!(status, 201, "{body}");
    let send = |value: f64| {
        let sample = json!({"samples": [{"name": "load1", "value": value,
            "timestamp_ms": chrono::Utc::now().timestamp_millis()}]});
        server
            .http
            .post(format!("{}/api/v1/agent/metrics", server.url))
            .bearer_auth(&token)
            .json(&sample)
            .send()
    };
    let load_incidents = |all: &[Value]| -> Vec<Value> {
        all.iter()
            .filter(|i| i["alarm_name"] == "load high")
            .cloned()
            .collect()
    };
    // Load until the alarm opens its incident.
    let deadline = Instant::now() + Duration::from_secs(30);
    while load_incidents(&server.incidents().await).is_empty() {
        assert!(Instant::now() < deadline, "the load alarm never opened");
        assert_eq!(send(9.0).await.expect("metrics").status(), 202);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // The host moves to another application while the load stays high.
    let bound = server.cli(&["host", "bind", "web-03", "hotel_api"]);
    assert!(bound.status.success(), "{bound:?}");
    for _ in 0..6 {
        assert_eq!(send(9.5).await.expect("metrics").status(), 202);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (_, alarm) = server.get("/api/v1/alarms/load high").await;
    let instances = alarm["instances"].as_array().cloned().unwrap_or_default();
    assert_eq!(instances.len(), 1, "one series, one instance: {alarm}");
    assert_eq!(
        instances[0]["appcode"], "hotel_api",
        "ownership read now: {alarm}"
    );
    let open: Vec<Value> = load_incidents(&server.incidents().await)
        .into_iter()
        .filter(|i| i["status"] != "resolved")
        .collect();
    assert_eq!(open.len(), 1, "one open incident: {open:?}");

    // The load falls: the one incident resolves.
    let key = open[0]["key"].as_str().expect("key").to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert_eq!(send(0.5).await.expect("metrics").status(), 202);
        let (_, incident) = server.get(&format!("/api/v1/incidents/{key}")).await;
        if incident["status"] == "resolved" {
            break;
        }
        assert!(Instant::now() < deadline, "never resolved: {incident}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let all = load_incidents(&server.incidents().await);
    assert_eq!(all.len(), 1, "no second incident: {all:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_be_taken_is_refused_at_the_edge_naming_it() {
    let dir = temp_dir();
    let server = Server::start_with(&dir.path().join("data"), &["--no-agent"]).await;
    import_tree(&server, dir.path()).await;

    // A host of an application nobody created: refused, not enrolled half-way.
    let (status, body) = server
        .post(
            "/api/v1/hosts",
            json!({"name": "web-09", "appcode": "no_such_app"}).to_string(),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("no_such_app")),
        "{body}"
    );
    let (status, _) = server.get("/api/v1/hosts/web-09").await;
    assert_eq!(status, 404, "nothing was enrolled");
    let cli = server.cli(&["host", "add", "web-09", "--appcode", "no_such_app"]);
    assert!(!cli.status.success());
    assert!(
        String::from_utf8_lossy(&cli.stderr).contains("no_such_app"),
        "{cli:?}"
    );

    // A bind never invents a host.
    let (status, body) = server
        .post(
            "/api/v1/hosts/ghost-01/bind",
            json!({"appcode": "hotel_api"}).to_string(),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("ghost-01")),
        "{body}"
    );
    let (_, hosts) = server.get("/api/v1/hosts").await;
    assert!(!hosts.to_string().contains("ghost-01"), "{hosts}");

    // What `aws cloudwatch put-metric-alarm --generate-cli-skeleton` prints, filled in.
    let mut skeleton = json!({
        "AlarmName": "disk-full", "AlarmDescription": "", "ActionsEnabled": true,
        "OKActions": [""], "AlarmActions": [""], "InsufficientDataActions": [""],
        "MetricName": "disk_used_percent", "Namespace": "vigil", "Statistic": "SampleCount",
        "ExtendedStatistic": "", "Dimensions": [{"Name": "", "Value": ""}], "Period": 60,
        "Unit": "Seconds", "EvaluationPeriods": 3, "DatapointsToAlarm": 0, "Threshold": 90.0,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold", "TreatMissingData": "",
        "EvaluateLowSampleCountPercentile": "",
        "Metrics": [{"Id": "", "MetricStat": {"Metric": {"Namespace": "", "MetricName": "",
            "Dimensions": [{"Name": "", "Value": ""}]}, "Period": 0, "Stat": "", "Unit": "Seconds"},
            "Expression": "", "Label": "", "ReturnData": true, "Period": 0, "AccountId": ""}],
        "Tags": [{"Key": "", "Value": ""}], "ThresholdMetricId": ""
    });
    let (status, body) = server.post("/api/v1/alarms", skeleton.to_string()).await;
    assert_eq!(status, 201, "{body}");
    skeleton["AlarmName"] = json!("disk-math");
    skeleton["Metrics"][0]["Id"] = json!("m1");
    skeleton["Metrics"][0]["Expression"] = json!("m1 * 100");
    let (status, body) = server.post("/api/v1/alarms", skeleton.to_string()).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("Metrics") && e.contains("ThresholdMetricId")),
        "{body}"
    );

    // A playbook naming a probe no agent has: vigil does not start, and says which.
    let config = dir.path().join("bad-probe.toml");
    std::fs::write(
        &config,
        "[playbooks.careful]\nsteps = [{ type = \"remediate\", probe = \"reboot_now\" }]\n",
    )
    .expect("config");
    let refused = std::process::Command::new(VIGIL)
        .args(["up", "--no-agent", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("other-data"))
        .arg("--config")
        .arg(&config)
        .output()
        .expect("vigil up");
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("no probe named `reboot_now`"), "{said}");
}
