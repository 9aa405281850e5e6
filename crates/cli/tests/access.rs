//! The access rule, walked route by route. Every route of the token API and of the web UI's
//! JSON is called by an unscoped admin token, by a token scoped to the `alpha` subtree (on
//! its own resources and on the `zulu` subtree's), and by a host's agent token; each answer
//! is checked against the table, and nothing the scoped caller is given may mention `zulu`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::{json, Value};

const TREE: &str = r#"
[[apps]]
appcode = "org"
name = "Org"
kind = "business_unit"
owners = ["root@example.com"]

[[apps]]
appcode = "alpha"
name = "Alpha"
kind = "department"
parent = "org"
owners = ["alpha@example.com"]
approvers = ["alpha-team"]

[[apps]]
appcode = "alpha_web"
name = "Alpha web"
kind = "application"
parent = "alpha"

[[apps]]
appcode = "alpha_db"
name = "Alpha db"
kind = "application"
parent = "alpha"

[[apps]]
appcode = "zulu"
name = "Zulu"
kind = "department"
parent = "org"
owners = ["zulu@example.com"]
approvers = ["admin"]

[[apps]]
appcode = "zulu_web"
name = "Zulu web"
kind = "application"
parent = "zulu"

[[apps]]
appcode = "zulu_db"
name = "Zulu db"
kind = "application"
parent = "zulu"
"#;

/// How a request authenticates.
#[derive(Clone, Copy, Debug)]
enum Caller<'a> {
    Token(&'a str),
    Session { cookie: &'a str, csrf: &'a str },
}

async fn send(
    server: &Server,
    caller: Caller<'_>,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, String) {
    let url = format!("{}{path}", server.url);
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = server.http.request(method, url);
    request = match caller {
        Caller::Token(token) => request.bearer_auth(token),
        Caller::Session { cookie, csrf } => request
            .header("cookie", cookie)
            .header("x-csrf-token", csrf),
    };
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let answer = request.send().await.expect("vigil answers");
    let status = answer.status().as_u16();
    (status, answer.text().await.unwrap_or_default())
}

/// One route: what each kind of caller is answered. The admin acts on the `zulu` subtree
/// (an unscoped token sees everything); the scoped token first on `zulu`'s resource
/// (`other`), then on its own (`own`); the host token on the scoped token's path.
struct Row {
    method: &'static str,
    /// The route as the router declares it.
    route: &'static str,
    own: (String, Option<String>),
    other: (String, Option<String>),
    admin: u16,
    scoped_own: u16,
    scoped_other: u16,
    host: u16,
}

fn row(
    method: &'static str,
    route: &'static str,
    own: &str,
    other: &str,
    statuses: [u16; 4],
) -> Row {
    Row {
        method,
        route,
        own: (own.to_string(), None),
        other: (other.to_string(), None),
        admin: statuses[0],
        scoped_own: statuses[1],
        scoped_other: statuses[2],
        host: statuses[3],
    }
}

fn with_bodies(mut row: Row, own: Value, other: Value) -> Row {
    row.own.1 = Some(own.to_string());
    row.other.1 = Some(other.to_string());
    row
}

/// An alarm event about `host`.
fn alarm_about(id: &str, alarm: &str, host: &str) -> Value {
    let mut event = alarm_event(id, alarm);
    event["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"] =
        json!({"host": host});
    event
}

/// An SNS notification of a CloudWatch alarm about `host`, signed as SNS signs.
fn sns_about(signer: &common::sns::SnsSigner, id: &str, host: &str) -> Value {
    let mut envelope = fixture("sns-notification-cloudwatch-alarm.json");
    let mut message: Value =
        serde_json::from_str(envelope["Message"].as_str().expect("Message")).expect("JSON");
    message["AlarmName"] = json!(format!("{host} sns alarm"));
    message["Trigger"]["Dimensions"] = json!([{"name": "host", "value": host}]);
    envelope["Message"] = json!(message.to_string());
    envelope["MessageId"] = json!(id);
    signer.sign(&mut envelope, "1");
    envelope
}

fn alertmanager_for(appcode: &str) -> Value {
    json!({
        "version": "4", "status": "firing", "receiver": "vigil", "groupKey": format!("{{}}:{{app=\"{appcode}\"}}"),
        "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am",
        "alerts": [{"status": "firing", "labels": {"alertname": format!("{appcode} disk"), "appcode": appcode},
            "annotations": {}, "startsAt": "2026-12-01T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prom", "fingerprint": format!("{appcode}-fp")}]
    })
}

fn alarm_definition(name: &str, appcode: &str) -> Value {
    json!({"AlarmName": name, "MetricName": "load1", "Statistic": "Average", "Period": 60,
        "EvaluationPeriods": 1, "Threshold": 90, "ComparisonOperator": "GreaterThanThreshold",
        "Appcode": appcode})
}

async fn enroll(server: &Server, name: &str, appcode: &str) -> String {
    let (status, body) = server
        .post(
            "/api/v1/hosts",
            json!({"name": name, "appcode": appcode}).to_string(),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().expect("host token").to_string()
}

async fn incident_key(server: &Server, alarm: &str) -> String {
    server
        .incidents()
        .await
        .iter()
        .find(|i| i["alarm_name"] == alarm)
        .and_then(|i| i["key"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("an incident for {alarm}"))
}

async fn ui_login(server: &Server, token: &str) -> (String, String) {
    let answer = server
        .http
        .post(format!("{}/ui/api/login", server.url))
        .json(&json!({"token": token}))
        .send()
        .await
        .expect("login answers");
    assert_eq!(answer.status(), 200);
    let cookie = answer.headers()["set-cookie"]
        .to_str()
        .expect("cookie text")
        .split(';')
        .next()
        .expect("name=value")
        .to_string();
    let session: Value = server
        .http
        .get(format!("{}/ui/api/session", server.url))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("session")
        .json()
        .await
        .expect("JSON");
    let csrf = session["csrf_token"].as_str().expect("csrf").to_string();
    (cookie, csrf)
}

/// Walks the rows: each answer must be the expected one, and no successful answer to the
/// scoped caller may mention the other subtree.
async fn walk(
    server: &Server,
    rows: &[Row],
    admin: Caller<'_>,
    scoped: Caller<'_>,
    host: Option<Caller<'_>>,
) -> Vec<String> {
    let mut wrong = Vec::new();
    for row in rows {
        let mut check = |who: &str, path: &str, got: (u16, String), want: u16| {
            if got.0 != want {
                wrong.push(format!(
                    "{} {} ({path}) as {who}: {} (want {want}): {}",
                    row.method, row.route, got.0, got.1
                ));
            } else if who.starts_with("scoped") && got.0 < 300 && got.1.contains("zulu") {
                wrong.push(format!(
                    "{} {} ({path}) as {who} leaks the other subtree: {}",
                    row.method, row.route, got.1
                ));
            }
        };
        let (path, body) = &row.other;
        let got = send(server, scoped, row.method, path, body.as_deref()).await;
        check("scoped, other subtree", path, got, row.scoped_other);
        let (path, body) = &row.own;
        let got = send(server, scoped, row.method, path, body.as_deref()).await;
        check("scoped, own subtree", path, got, row.scoped_own);
        let (path, body) = &row.other;
        let got = send(server, admin, row.method, path, body.as_deref()).await;
        check("admin", path, got, row.admin);
        if let Some(host) = host {
            let (path, body) = &row.own;
            let got = send(server, host, row.method, path, body.as_deref()).await;
            check("host", path, got, row.host);
        }
    }
    wrong
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_each_kind_of_token_by_the_one_access_rule() {
    let dir = temp_dir();
    let signer = common::sns::SnsSigner::start(1).await;
    let config = dir.path().join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "[ingest.sns]\nsigning_cert_url_hosts = [{:?}]\n",
            signer.host
        ),
    )
    .expect("config");
    let server = Server::start_with(
        &dir.path().join("data"),
        &["--no-agent", "--config", config.to_str().expect("path")],
    )
    .await;
    let tree = dir.path().join("tree.toml");
    std::fs::write(&tree, TREE).expect("tree file");
    let imported = server.cli(&["app", "import", tree.to_str().expect("path")]);
    assert!(imported.status.success(), "{imported:?}");

    let alpha_host = enroll(&server, "alpha-web", "alpha_web").await;
    let zulu_host = enroll(&server, "zulu-web", "zulu_web").await;
    for (name, appcode) in [("alpha-old", "alpha_db"), ("zulu-old", "zulu_db")] {
        enroll(&server, name, appcode).await;
    }
    for (name, appcode) in [("alpha-cpu", "alpha_web"), ("zulu-cpu", "zulu_web")] {
        let (status, body) = server
            .post(
                "/api/v1/alarms",
                alarm_definition(name, appcode).to_string(),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    for (id, alarm, host) in [
        ("ev-alpha", "alpha alarm", "alpha-web"),
        ("ev-zulu", "zulu alarm", "zulu-web"),
    ] {
        let (status, body) = server
            .post("/api/v1/events", alarm_about(id, alarm, host).to_string())
            .await;
        assert_eq!(status, 202, "{body}");
    }
    server
        .wait_for_incidents("both incidents", |all| all.len() == 2)
        .await;
    let alpha_key = incident_key(&server, "alpha alarm").await;
    let zulu_key = incident_key(&server, "zulu alarm").await;
    for token in [&alpha_host, &zulu_host] {
        let sample = json!({"samples": [{"name": "load1", "value": 0.5, "timestamp_ms": 1_764_000_000_000i64}]});
        let answer = server
            .http
            .post(format!("{}/api/v1/agent/metrics", server.url))
            .bearer_auth(token)
            .json(&sample)
            .send()
            .await
            .expect("metrics");
        assert_eq!(answer.status(), 202);
    }
    let (status, body) = server
        .post(
            "/api/v1/tokens",
            json!({"name": "alpha-team", "scope": "alpha"}).to_string(),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let scoped = body["token"].as_str().expect("scoped token").to_string();
    let (_, export) = send(
        &server,
        Caller::Token(&server.token),
        "GET",
        "/api/v1/apps/export",
        None,
    )
    .await;
    assert!(export.contains("zulu_db"), "the admin exports everything");

    let alarm = |id: &str, host: &str| alarm_about(id, &format!("{host} second alarm"), host);
    let rows = vec![
        row(
            "GET",
            "/healthz",
            "/healthz",
            "/healthz",
            [200, 200, 200, 200],
        ),
        with_bodies(
            row(
                "POST",
                "/api/v1/events",
                "/api/v1/events",
                "/api/v1/events",
                [202, 202, 403, 403],
            ),
            alarm("ev-alpha-2", "alpha-web"),
            alarm("ev-zulu-2", "zulu-web"),
        ),
        row(
            "GET",
            "/api/v1/events/{id}",
            "/api/v1/events/ev-alpha",
            "/api/v1/events/ev-zulu",
            [200, 200, 404, 403],
        ),
        with_bodies(
            row(
                "POST",
                "/api/v1/ingest/alertmanager",
                "/api/v1/ingest/alertmanager",
                "/api/v1/ingest/alertmanager",
                [202, 202, 403, 403],
            ),
            alertmanager_for("alpha_db"),
            alertmanager_for("zulu_db"),
        ),
        with_bodies(
            row(
                "POST",
                "/api/v1/ingest/sns",
                "/api/v1/ingest/sns",
                "/api/v1/ingest/sns",
                [202, 202, 403, 403],
            ),
            sns_about(&signer, "sns-alpha", "alpha-web"),
            sns_about(&signer, "sns-zulu", "zulu-web"),
        ),
        row(
            "GET",
            "/api/v1/incidents",
            "/api/v1/incidents",
            "/api/v1/incidents?appcode=zulu_web",
            [200, 200, 200, 403],
        ),
        row(
            "GET",
            "/api/v1/incidents/{key}",
            &format!("/api/v1/incidents/{alpha_key}"),
            &format!("/api/v1/incidents/{zulu_key}"),
            [200, 200, 404, 403],
        ),
        row(
            "POST",
            "/api/v1/incidents/{key}/approve",
            &format!("/api/v1/incidents/{alpha_key}/approve"),
            &format!("/api/v1/incidents/{zulu_key}/approve"),
            [200, 200, 404, 403],
        ),
        row(
            "POST",
            "/api/v1/incidents/{key}/ack",
            &format!("/api/v1/incidents/{alpha_key}/ack"),
            &format!("/api/v1/incidents/{zulu_key}/ack"),
            [200, 200, 404, 403],
        ),
        row(
            "POST",
            "/api/v1/incidents/{key}/resolve",
            &format!("/api/v1/incidents/{alpha_key}/resolve"),
            &format!("/api/v1/incidents/{zulu_key}/resolve"),
            [200, 200, 404, 403],
        ),
        with_bodies(
            row(
                "POST",
                "/api/v1/hosts",
                "/api/v1/hosts",
                "/api/v1/hosts",
                [201, 201, 403, 403],
            ),
            json!({"name": "alpha-new", "appcode": "alpha_db"}),
            json!({"name": "zulu-new", "appcode": "zulu_db"}),
        ),
        row(
            "GET",
            "/api/v1/hosts",
            "/api/v1/hosts",
            "/api/v1/hosts?state=enrolled",
            [200, 200, 200, 403],
        ),
        row(
            "GET",
            "/api/v1/hosts/{name}",
            "/api/v1/hosts/alpha-web",
            "/api/v1/hosts/zulu-web",
            [200, 200, 404, 403],
        ),
        row(
            "POST",
            "/api/v1/hosts/{name}/revoke",
            "/api/v1/hosts/alpha-old/revoke",
            "/api/v1/hosts/zulu-old/revoke",
            [200, 200, 404, 403],
        ),
        with_bodies(
            row(
                "POST",
                "/api/v1/hosts/{name}/bind",
                "/api/v1/hosts/alpha-new/bind",
                "/api/v1/hosts/zulu-new/bind",
                [200, 200, 404, 403],
            ),
            json!({"appcode": "alpha_web"}),
            json!({"appcode": "zulu_web"}),
        ),
        with_bodies(
            row(
                "POST",
                "/api/v1/agent/heartbeat",
                "/api/v1/agent/heartbeat",
                "/api/v1/agent/heartbeat",
                [403, 403, 403, 204],
            ),
            json!({"agent_version": "1", "uptime_secs": 5, "interval_secs": 10}),
            json!({"agent_version": "1", "uptime_secs": 5, "interval_secs": 10}),
        ),
        with_bodies(
            row(
                "POST",
                "/api/v1/agent/metrics",
                "/api/v1/agent/metrics",
                "/api/v1/agent/metrics",
                [403, 403, 403, 202],
            ),
            json!({"samples": [{"name": "load1", "value": 0.7, "timestamp_ms": 1_764_000_060_000i64}]}),
            json!({"samples": []}),
        ),
        row(
            "GET",
            "/api/v1/agent/jobs",
            "/api/v1/agent/jobs?wait=0",
            "/api/v1/agent/jobs?wait=0",
            [403, 403, 403, 200],
        ),
        with_bodies(
            row(
                "POST",
                "/api/v1/agent/jobs/{id}/result",
                "/api/v1/agent/jobs/999999/result",
                "/api/v1/agent/jobs/999999/result",
                [403, 403, 403, 404],
            ),
            json!({"status": "done"}),
            json!({"status": "done"}),
        ),
        with_bodies(
            row(
                "POST",
                "/api/v1/alarms",
                "/api/v1/alarms",
                "/api/v1/alarms",
                [201, 201, 403, 403],
            ),
            alarm_definition("alpha-cpu-2", "alpha_db"),
            alarm_definition("zulu-cpu-2", "zulu_db"),
        ),
        row(
            "GET",
            "/api/v1/alarms",
            "/api/v1/alarms",
            "/api/v1/alarms?appcode=zulu_web",
            [200, 200, 200, 403],
        ),
        row(
            "GET",
            "/api/v1/alarms/{name}",
            "/api/v1/alarms/alpha-cpu",
            "/api/v1/alarms/zulu-cpu",
            [200, 200, 404, 403],
        ),
        row(
            "DELETE",
            "/api/v1/alarms/{name}",
            "/api/v1/alarms/alpha-cpu-2",
            "/api/v1/alarms/zulu-cpu-2",
            [200, 200, 404, 403],
        ),
        row(
            "GET",
            "/api/v1/series",
            "/api/v1/series?name=load1",
            "/api/v1/series?name=load1&host=zulu-web",
            [200, 200, 200, 403],
        ),
        row(
            "GET",
            "/api/v1/series/top",
            "/api/v1/series/top",
            "/api/v1/series/top?limit=5",
            [200, 403, 403, 403],
        ),
        // Samples name no application: only an unscoped token may write them (this body
        // is no remote_write message, so the admin is told that).
        row(
            "POST",
            "/api/v1/write",
            "/api/v1/write",
            "/api/v1/write",
            [400, 403, 403, 403],
        ),
        with_bodies(
            row(
                "POST",
                "/api/v1/apps",
                "/api/v1/apps",
                "/api/v1/apps",
                [201, 201, 404, 403],
            ),
            json!({"appcode": "alpha_new", "name": "New", "kind": "application", "parent": "alpha"}),
            json!({"appcode": "zulu_new", "name": "New", "kind": "application", "parent": "zulu"}),
        ),
        row(
            "GET",
            "/api/v1/apps",
            "/api/v1/apps",
            "/api/v1/apps",
            [200, 200, 200, 403],
        ),
        row(
            "GET",
            "/api/v1/apps/{code}",
            "/api/v1/apps/alpha_web",
            "/api/v1/apps/zulu_web",
            [200, 200, 404, 403],
        ),
        with_bodies(
            row(
                "PATCH",
                "/api/v1/apps/{code}",
                "/api/v1/apps/alpha_web",
                "/api/v1/apps/zulu_web",
                [200, 200, 404, 403],
            ),
            json!({"name": "Renamed"}),
            json!({"name": "Renamed"}),
        ),
        with_bodies(
            row(
                "POST",
                "/api/v1/apps/{code}/move",
                "/api/v1/apps/alpha_db/move",
                "/api/v1/apps/zulu_db/move",
                [200, 200, 404, 403],
            ),
            json!({"parent": "alpha_web"}),
            json!({"parent": "zulu_web"}),
        ),
        row(
            "GET",
            "/api/v1/apps/export",
            "/api/v1/apps/export",
            "/api/v1/apps/export?format=csv",
            [200, 200, 200, 403],
        ),
        row(
            "GET",
            "/api/v1/reports",
            "/api/v1/reports?appcode=alpha",
            "/api/v1/reports?appcode=zulu",
            [200, 200, 404, 403],
        ),
        with_bodies(
            row(
                "POST",
                "/api/v1/tokens",
                "/api/v1/tokens",
                "/api/v1/tokens",
                // A scope beyond its subtree is a name it cannot see: 404.
                [201, 201, 404, 403],
            ),
            json!({"name": "alpha-web-team", "scope": "alpha_web"}),
            json!({"name": "zulu-team", "scope": "zulu"}),
        ),
        // The scoped caller's list holds its subtree's tokens only (no `zulu-team`).
        row(
            "GET",
            "/api/v1/tokens",
            "/api/v1/tokens",
            "/api/v1/tokens",
            [200, 200, 200, 403],
        ),
        row(
            "POST",
            "/api/v1/tokens/{name}/revoke",
            "/api/v1/tokens/alpha-web-team/revoke",
            "/api/v1/tokens/zulu-team/revoke",
            [200, 200, 404, 403],
        ),
        // Only with VIGIL_TEST_CLOCK=1; otherwise not even there.
        with_bodies(
            row(
                "POST",
                "/api/v1/test/clock",
                "/api/v1/test/clock",
                "/api/v1/test/clock",
                [404, 404, 404, 403],
            ),
            json!({"seconds": 1}),
            json!({"seconds": 1}),
        ),
        row(
            "GET",
            "/api/v1/status",
            "/api/v1/status",
            "/api/v1/status",
            [200, 200, 200, 403],
        ),
        row(
            "GET",
            "/api/v1/openapi.json",
            "/api/v1/openapi.json",
            "/api/v1/openapi.json",
            [200, 200, 200, 403],
        ),
        // The whole server's counters are the organisation's, not a team's.
        row(
            "GET",
            "/metrics",
            "/metrics",
            "/metrics",
            [200, 403, 403, 403],
        ),
    ];
    // Importing needs the whole organisation; the admin re-imports what it exported.
    let mut import = row(
        "POST",
        "/api/v1/apps/import",
        "/api/v1/apps/import",
        "/api/v1/apps/import",
        [200, 403, 403, 403],
    );
    import.own.1 = Some(export.clone());
    import.other.1 = Some(export);

    let admin = Caller::Token(&server.token);
    let as_scoped = Caller::Token(&scoped);
    let host = Caller::Token(&alpha_host);
    let mut wrong = walk(&server, &rows, admin, as_scoped, Some(host)).await;
    wrong.extend(walk(&server, &[import], admin, as_scoped, Some(host)).await);

    // The web UI's JSON, by session: the same rule through the same service functions.
    let (admin_cookie, admin_csrf) = ui_login(&server, &server.token).await;
    let (scoped_cookie, scoped_csrf) = ui_login(&server, &scoped).await;
    let refused = server
        .http
        .post(format!("{}/ui/api/login", server.url))
        .json(&json!({"token": alpha_host}))
        .send()
        .await
        .expect("login answers");
    assert_eq!(refused.status(), 401, "a host token does not log in");
    let ui_rows = vec![
        row(
            "GET",
            "/ui/api/session",
            "/ui/api/session",
            "/ui/api/session",
            [200, 200, 200, 0],
        ),
        row(
            "GET",
            "/ui/api/incidents",
            "/ui/api/incidents",
            "/ui/api/incidents?appcode=zulu_web",
            [200, 200, 200, 0],
        ),
        row(
            "GET",
            "/ui/api/incidents/{key}",
            &format!("/ui/api/incidents/{alpha_key}"),
            &format!("/ui/api/incidents/{zulu_key}"),
            [200, 200, 404, 0],
        ),
        row(
            "POST",
            "/ui/api/incidents/{key}/ack",
            &format!("/ui/api/incidents/{alpha_key}/ack"),
            &format!("/ui/api/incidents/{zulu_key}/ack"),
            [200, 200, 404, 0],
        ),
        row(
            "POST",
            "/ui/api/incidents/{key}/resolve",
            &format!("/ui/api/incidents/{alpha_key}/resolve"),
            &format!("/ui/api/incidents/{zulu_key}/resolve"),
            [200, 200, 404, 0],
        ),
        row(
            "GET",
            "/ui/api/alarms",
            "/ui/api/alarms",
            "/ui/api/alarms",
            [200, 200, 200, 0],
        ),
        row(
            "GET",
            "/ui/api/alarms/{name}",
            "/ui/api/alarms/alpha-cpu",
            "/ui/api/alarms/zulu-cpu",
            [200, 200, 404, 0],
        ),
        row(
            "GET",
            "/ui/api/series",
            "/ui/api/series?name=load1",
            "/ui/api/series?name=load1&host=zulu-web",
            [200, 200, 200, 0],
        ),
        row(
            "GET",
            "/ui/api/hosts",
            "/ui/api/hosts",
            "/ui/api/hosts",
            [200, 200, 200, 0],
        ),
        row(
            "GET",
            "/ui/api/status",
            "/ui/api/status",
            "/ui/api/status",
            [200, 200, 200, 0],
        ),
        row(
            "GET",
            "/ui/api/apps",
            "/ui/api/apps",
            "/ui/api/apps",
            [200, 200, 200, 0],
        ),
    ];
    wrong.extend(
        walk(
            &server,
            &ui_rows,
            Caller::Session {
                cookie: &admin_cookie,
                csrf: &admin_csrf,
            },
            Caller::Session {
                cookie: &scoped_cookie,
                csrf: &scoped_csrf,
            },
            None,
        )
        .await,
    );
    assert!(
        wrong.is_empty(),
        "{} wrong answers:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // What the scoped export holds is the subtree, whole.
    let (_, mine) = send(&server, as_scoped, "GET", "/api/v1/apps/export", None).await;
    for code in ["alpha", "alpha_web", "alpha_db", "alpha_new"] {
        assert!(
            mine.contains(&format!("\"{code}\"")),
            "{code} in the scoped export:\n{mine}"
        );
    }

    // Every route of the API is in the table.
    let (_, spec) = server.get("/api/v1/openapi.json").await;
    let mut listed: BTreeSet<String> = rows
        .iter()
        .map(|r| format!("{} {}", r.method, r.route))
        .collect();
    listed.insert("POST /api/v1/apps/import".into());
    let documented: BTreeSet<String> = spec["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, operations)| {
            operations
                .as_object()
                .into_iter()
                .flat_map(|o| o.keys())
                .filter(|m| ["get", "post", "put", "patch", "delete"].contains(&m.as_str()))
                .map(move |m| format!("{} {path}", m.to_uppercase()))
        })
        .collect();
    let untested: Vec<&String> = documented.difference(&listed).collect();
    assert!(
        untested.is_empty(),
        "routes in the spec but not in this table: {untested:?}"
    );
    let undocumented: Vec<&String> = listed.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routes in this table but not in the spec: {undocumented:?}"
    );
}
