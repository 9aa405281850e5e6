//! What the server does with callers it should not trust: no token, wrong token, oversized
//! and malformed bodies, and a storm of random and mutated payloads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{alarm_event, fixture, join_all, temp_dir, Server};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/v1/events"),
    ("GET", "/api/v1/events/some-id"),
    ("POST", "/api/v1/ingest/sns"),
    ("POST", "/api/v1/ingest/alertmanager"),
    ("GET", "/api/v1/incidents"),
    ("GET", "/api/v1/incidents/INC-1"),
    ("POST", "/api/v1/incidents/INC-1/ack"),
    ("POST", "/api/v1/incidents/INC-1/resolve"),
    ("GET", "/api/v1/openapi.json"),
    ("POST", "/api/v1/hosts"),
    ("GET", "/api/v1/hosts"),
    ("GET", "/api/v1/hosts/web-01"),
    ("POST", "/api/v1/hosts/web-01/revoke"),
    ("POST", "/api/v1/agent/heartbeat"),
    ("POST", "/api/v1/agent/metrics"),
    ("GET", "/api/v1/agent/jobs?wait=0"),
    ("POST", "/api/v1/agent/jobs/1/result"),
    ("POST", "/api/v1/alarms"),
    ("GET", "/api/v1/alarms"),
    ("GET", "/api/v1/alarms/cpu"),
    ("DELETE", "/api/v1/alarms/cpu"),
    ("GET", "/api/v1/series?name=CPUUtilization"),
    ("POST", "/api/v1/write"),
    ("GET", "/metrics"),
    ("GET", "/api/v1/no-such-route"),
];

#[tokio::test]
async fn every_route_but_healthz_needs_a_token() {
    let dir = temp_dir();
    let server = Server::start(dir.path()).await;
    let client = &server.http;
    for (method, path) in ROUTES {
        let url = format!("{}{path}", server.url);
        let request = |method: &str| match method {
            "POST" => client.post(&url).body("{}"),
            "DELETE" => client.delete(&url),
            _ => client.get(&url),
        };
        let none = request(method).send().await.expect("request");
        assert_eq!(none.status(), 401, "{method} {path} without a token");
        let body: Value = none.json().await.expect("401 has a JSON body");
        assert!(body["error"].is_string(), "{method} {path}: {body}");

        let wrong = request(method)
            .bearer_auth("vgl_not-a-real-token")
            .send()
            .await
            .expect("request");
        assert_eq!(wrong.status(), 401, "{method} {path} with a wrong token");

        let basic = request(method)
            .basic_auth("anyone", Some(&server.token))
            .send()
            .await
            .expect("request");
        assert_ne!(
            basic.status(),
            401,
            "{method} {path} with Basic auth and the token as password"
        );
        let bearer = request(method)
            .bearer_auth(&server.token)
            .send()
            .await
            .expect("request");
        assert_ne!(
            bearer.status(),
            401,
            "{method} {path} with the bearer token"
        );
    }
    let health = client
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);

    // The token on disk is the only copy in the clear: the database holds a hash.
    let token = server.token.as_bytes();
    match std::fs::read_to_string(dir.path().join("test-store.url")) {
        // The suite's PostgreSQL run: every token column as stored.
        Ok(url) => {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .expect("the test's PostgreSQL schema");
            tokio::spawn(connection);
            let rows = client
                .query("SELECT name, hash FROM tokens", &[])
                .await
                .expect("tokens");
            assert!(!rows.is_empty(), "the admin token is stored");
            for row in rows {
                for column in 0..2 {
                    let value: String = row.get(column);
                    assert!(!value.contains(&server.token), "token stored in the clear");
                }
            }
        }
        Err(_) => {
            let database = std::fs::read(dir.path().join("vigil.db")).expect("database file");
            assert!(
                !database.windows(token.len()).any(|w| w == token),
                "token stored in the clear"
            );
        }
    }
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.path().join("admin.token"))
            .expect("token file")
            .permissions(),
    );
    assert_eq!(mode & 0o077, 0, "admin.token is private to its owner");
}

#[tokio::test]
async fn bad_bodies_get_clear_4xx_answers() {
    let dir = temp_dir();
    let server = Server::start(dir.path()).await;

    let too_big = "x".repeat(1024 * 1024 + 1);
    for path in [
        "/api/v1/events",
        "/api/v1/ingest/sns",
        "/api/v1/ingest/alertmanager",
    ] {
        let (status, body) = server.post(path, too_big.clone()).await;
        assert_eq!(status, 413, "{path}: {body}");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("1048576")),
            "{path}: {body}"
        );
    }

    let (status, body) = server.post("/api/v1/events", "{\"source\": ").await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("JSON")),
        "{body}"
    );

    let mut missing = alarm_event("missing-detail-type", "X");
    missing
        .as_object_mut()
        .expect("object")
        .remove("detail-type");
    let (status, body) = server.post("/api/v1/events", missing.to_string()).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("detail-type")),
        "{body}"
    );

    // A batch with one bad event is refused whole, naming which one.
    let batch = json!([alarm_event("good-one", "X"), {"source": "x", "detail": {}}]);
    let (status, body) = server.post("/api/v1/events", batch.to_string()).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("event[1]") && e.contains("detail-type")),
        "{body}"
    );
    let (status, _) = server.get("/api/v1/events/good-one").await;
    assert_eq!(status, 404, "nothing from a refused batch is kept");

    let (status, body) = server
        .post(
            "/api/v1/ingest/alertmanager",
            json!({"version": "4"}).to_string(),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("alerts")),
        "{body}"
    );

    // Enrollment checks names with the same rules as everywhere else: the Appcode rules
    // of the application tree, the host-name rules of the domain types.
    for (body, names) in [
        (
            json!({"name": "web-1", "appcode": "1fleet"}),
            ["appcode", "position 1"],
        ),
        (
            json!({"name": "web-1", "appcode": "x"}),
            ["appcode", "2 to 64"],
        ),
        (
            json!({"name": "-web", "appcode": "fleet"}),
            ["-web", "not a host name"],
        ),
    ] {
        let (status, answer) = server.post("/api/v1/hosts", body.to_string()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(names.iter().all(|n| error.contains(n)), "{body}: {answer}");
    }

    let (status, body) = server.get("/api/v1/incidents?status=bogus").await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("bogus")),
        "{body}"
    );
}

/// Valid payloads to mutate: the endpoint they belong to, and the body. SNS messages are
/// signed by `signer`, which the server trusts.
fn seeds(signer: &common::sns::SnsSigner) -> Vec<(&'static str, String)> {
    let signed = |name: &str, version: &str| {
        let mut message = fixture(name);
        signer.sign(&mut message, version);
        message.to_string()
    };
    vec![
        (
            "/api/v1/events",
            fixture("cloudwatch-alarm-ok-to-alarm.json").to_string(),
        ),
        (
            "/api/v1/events",
            fixture("cloudwatch-alarm-ok-to-insufficient-data.json").to_string(),
        ),
        (
            "/api/v1/ingest/alertmanager",
            fixture("alertmanager-webhook-v4.json").to_string(),
        ),
        (
            "/api/v1/ingest/sns",
            signed("sns-notification-cloudwatch-alarm.json", "2"),
        ),
        (
            "/api/v1/ingest/sns",
            signed("sns-subscription-confirmation.json", "1"),
        ),
    ]
}

const ENDPOINTS: [&str; 3] = [
    "/api/v1/events",
    "/api/v1/ingest/sns",
    "/api/v1/ingest/alertmanager",
];

const NASTY: &[&str] = &[
    "null",
    "[]",
    "{}",
    "[[[[[[[[",
    "\"\"",
    "1e999999",
    "-",
    "{\"id\":{}}",
    "[null]",
    "{\"detail-type\":null}",
    "\u{0}",
    "\u{feff}{}",
    "{\"a\":\"\\ud800\"}",
    "9999999999999999999999",
];

fn mutate(rng: &mut StdRng, seed: &str) -> Vec<u8> {
    let mut bytes = seed.as_bytes().to_vec();
    match rng.gen_range(0..9) {
        0 => (0..rng.gen_range(1..2000)).map(|_| rng.gen()).collect(),
        1 => {
            let cut = rng.gen_range(0..bytes.len());
            bytes.truncate(cut);
            bytes
        }
        2 => {
            for _ in 0..rng.gen_range(1..20) {
                let at = rng.gen_range(0..bytes.len());
                bytes[at] = rng.gen();
            }
            bytes
        }
        3 => {
            let at = rng.gen_range(0..bytes.len());
            let nasty = NASTY[rng.gen_range(0..NASTY.len())];
            bytes.splice(at..at, nasty.bytes());
            bytes
        }
        4 => NASTY[rng.gen_range(0..NASTY.len())].as_bytes().to_vec(),
        5 => {
            // Same shape, values of the wrong type.
            let mut value: Value = serde_json::from_str(seed).unwrap_or(Value::Null);
            scramble(rng, &mut value);
            value.to_string().into_bytes()
        }
        6 => {
            let depth = rng.gen_range(1..5000);
            let mut deep = "[".repeat(depth);
            deep.push_str(&"]".repeat(rng.gen_range(0..=depth)));
            deep.into_bytes()
        }
        7 => {
            let mut value: Value = serde_json::from_str(seed).unwrap_or(Value::Null);
            if let Some(object) = value.as_object_mut() {
                let keys: Vec<String> = object.keys().cloned().collect();
                if !keys.is_empty() {
                    object.remove(&keys[rng.gen_range(0..keys.len())]);
                }
                object.insert(
                    "id".into(),
                    Value::from(format!("fuzz-{}", rng.gen::<u32>())),
                );
            }
            value.to_string().into_bytes()
        }
        _ => bytes,
    }
}

fn scramble(rng: &mut StdRng, value: &mut Value) {
    match value {
        Value::Object(map) => map.values_mut().for_each(|v| scramble(rng, v)),
        Value::Array(items) => items.iter_mut().for_each(|v| scramble(rng, v)),
        leaf if rng.gen_bool(0.2) => {
            *leaf = match rng.gen_range(0..6) {
                0 => Value::Null,
                1 => json!(rng.gen::<f64>() * 1e300),
                2 => json!([]),
                3 => json!({}),
                4 => json!(true),
                _ => json!("\u{1F525} ".repeat(rng.gen_range(0..50))),
            }
        }
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_hostile_bodies_get_only_2xx_or_4xx_and_memory_stays_bounded() {
    let dir = temp_dir();
    // Mutated signing-certificate URLs stay on this machine: only the signer's host and
    // port are trusted, so any other URL is refused before it is fetched.
    let signer = common::sns::SnsSigner::start(2).await;
    let config = dir.path().join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "[ingest.sns]\nsigning_cert_url_hosts = [\"{}\"]\n",
            signer.host
        ),
    )
    .expect("write config");
    let mut server = Server::start_with(
        &dir.path().join("data"),
        &["--config", config.to_str().expect("utf-8 path")],
    )
    .await;
    let seeds = Arc::new(seeds(&signer));
    let server_ref = &server;
    let total = 10_000usize;
    let workers = 8usize;
    let mut baseline_rss = 0;
    let mut statuses = std::collections::BTreeMap::new();
    for round in 0..2 {
        // Round one warms the server up (allocator pools, caches); memory is measured after it.
        let per_round = total / 2;
        let results = join_all(workers, |worker| {
            let seeds = seeds.clone();
            async move {
                let mut rng = StdRng::seed_from_u64((round * 1000 + worker) as u64);
                let mut seen = Vec::new();
                for _ in 0..per_round / workers {
                    let (endpoint, seed) = &seeds[rng.gen_range(0..seeds.len())];
                    let endpoint = if rng.gen_bool(0.2) {
                        ENDPOINTS[rng.gen_range(0..3)]
                    } else {
                        endpoint
                    };
                    let body = mutate(&mut rng, seed);
                    let mut request = server_ref
                        .http
                        .post(format!("{}{endpoint}", server_ref.url))
                        .bearer_auth(&server_ref.token)
                        .body(body);
                    if endpoint.ends_with("sns") {
                        let kind = ["Notification", "SubscriptionConfirmation", "Bogus"]
                            [rng.gen_range(0..3)];
                        request = request.header("x-amz-sns-message-type", kind);
                    }
                    let answer = request
                        .send()
                        .await
                        .expect("the server answers every request");
                    seen.push(answer.status().as_u16());
                }
                seen
            }
        })
        .await;
        for status in results.into_iter().flatten() {
            assert!(
                (200..500).contains(&status),
                "status {status}: only 2xx and 4xx are acceptable"
            );
            *statuses.entry(status).or_insert(0usize) += 1;
        }
        assert!(
            server.is_running(),
            "the server is still up after round {round}"
        );
        if round == 0 {
            baseline_rss = server.rss_kib();
        }
    }
    let final_rss = server.rss_kib();
    eprintln!(
        "statuses: {statuses:?}; RSS after warm-up {baseline_rss} KiB, at the end {final_rss} KiB"
    );
    assert_eq!(statuses.values().sum::<usize>(), total);
    assert!(
        statuses.keys().any(|s| *s == 202),
        "some mutations are still valid and accepted"
    );
    assert!(
        statuses.keys().any(|s| *s == 400),
        "most mutations are refused"
    );
    assert!(
        statuses.keys().any(|s| *s == 403),
        "mutated SNS messages fail their signature"
    );
    assert!(
        final_rss < 256 * 1024,
        "resident memory {final_rss} KiB exceeds 256 MiB"
    );
    assert!(
        final_rss < baseline_rss + 64 * 1024,
        "memory grew from {baseline_rss} KiB to {final_rss} KiB over 5,000 requests"
    );
    let health = server
        .http
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    tokio::time::sleep(Duration::from_millis(10)).await;
    server.kill();
}
