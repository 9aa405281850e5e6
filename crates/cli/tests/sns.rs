//! SNS signatures end to end: the real server, a certificate made and served on this
//! machine (trusted through `signing_cert_url_hosts`), messages signed with its key.
//! Good messages are accepted; unsigned, forged or changed ones are refused with 403 and
//! leave nothing behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::sns::{serve, SnsSigner};
use common::{fixture, join_all, temp_dir, Server};
use serde_json::{json, Value};

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:ops-alarms";

async fn start(dir: &std::path::Path, hosts: &[&str], env: &[(&str, &str)]) -> Server {
    let config = dir.join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "[ingest.sns]\nallowed_topic_arns = [{TOPIC:?}]\nconfirm_url_hosts = [\"127.0.0.1\"]\nsigning_cert_url_hosts = {hosts:?}\n"
        ),
    )
    .expect("write config");
    Server::start_env(
        &dir.join("data"),
        &["--config", config.to_str().expect("utf-8 path")],
        env,
    )
    .await
}

/// Posts as SNS does: text/plain, the type in `x-amz-sns-message-type`.
async fn post_sns(server: &Server, message: &Value) -> (u16, Value) {
    let kind = message["Type"]
        .as_str()
        .unwrap_or("Notification")
        .to_string();
    let answer = server
        .http
        .post(format!("{}/api/v1/ingest/sns", server.url))
        .bearer_auth(&server.token)
        .header("content-type", "text/plain; charset=UTF-8")
        .header("x-amz-sns-message-type", kind)
        .body(message.to_string())
        .send()
        .await
        .expect("request reaches vigil");
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

/// The shared fixture notification with its own MessageId and alarm name (unsigned).
fn notification(id: &str, alarm: &str) -> Value {
    let mut message = fixture("sns-notification-cloudwatch-alarm.json");
    let mut alarm_json: Value =
        serde_json::from_str(message["Message"].as_str().expect("Message")).expect("alarm JSON");
    alarm_json["AlarmName"] = json!(alarm);
    alarm_json["AlarmArn"] = json!(format!(
        "arn:aws:cloudwatch:us-east-1:123456789012:alarm:{alarm}"
    ));
    message["Message"] = json!(alarm_json.to_string());
    message["MessageId"] = json!(id);
    message["Subject"] = json!(format!("ALARM: \"{alarm}\" in US East (N. Virginia)"));
    message
}

/// A counter of the server's metrics text, 0 when the line is absent.
async fn metric(server: &Server, line_start: &str) -> u64 {
    let text = server
        .http
        .get(format!("{}/metrics", server.url))
        .bearer_auth(&server.token)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
        .unwrap_or(0)
}

const FORBIDDEN: &str = "vigil_events_rejected_total{endpoint=\"sns\",reason=\"forbidden\"}";
const UNAVAILABLE: &str = "vigil_events_rejected_total{endpoint=\"sns\",reason=\"unavailable\"}";

#[tokio::test]
async fn signed_notifications_are_accepted_and_unsigned_forged_or_changed_ones_refused() {
    let dir = temp_dir();
    let signer = SnsSigner::start(2).await;
    let forger = SnsSigner::start(2).await;
    let server = start(dir.path(), &[&signer.host], &[]).await;

    // Version 1 and 2, several at once: every one accepted, the certificate fetched once.
    let mut good = Vec::new();
    for n in 0..6 {
        let version = if n % 2 == 0 { "1" } else { "2" };
        let mut message = notification(&format!("good-{n}"), &format!("cpu-high-v{version}-{n}"));
        signer.sign(&mut message, version);
        good.push(message);
    }
    let answers = join_all(good.len(), |n| post_sns(&server, &good[n])).await;
    for ((status, body), message) in answers.iter().zip(&good) {
        assert_eq!(*status, 202, "{}: {body}", message["MessageId"]);
        assert_eq!(body["accepted"], json!([message["MessageId"]]));
    }
    assert_eq!(signer.fetches(), 1, "one fetch serves every message");
    let incidents = server
        .wait_for_incidents("an incident per signed notification", |all| all.len() == 6)
        .await;
    for name in ["cpu-high-v1-0", "cpu-high-v2-1"] {
        let incident = incidents
            .iter()
            .find(|i| i["alarm_name"] == name)
            .unwrap_or_else(|| panic!("no incident for {name}: {incidents:?}"));
        assert_eq!(incident["state"], "ALARM");
    }

    type Change<'a> = Box<dyn Fn(&mut Value) + 'a>;
    let cases: Vec<(&str, &str, Change)> =
        vec![
        (
            "missing Signature",
            "has no `Signature`",
            Box::new(|m| {
                m.as_object_mut().expect("object").remove("Signature");
            }),
        ),
        (
            "missing SigningCertURL",
            "has no `SigningCertURL`",
            Box::new(|m| {
                m.as_object_mut().expect("object").remove("SigningCertURL");
            }),
        ),
        (
            "unknown version",
            "`SignatureVersion` `3` is unknown",
            Box::new(|m| m["SignatureVersion"] = json!("3")),
        ),
        (
            "signature not base64",
            "is not base64",
            Box::new(|m| m["Signature"] = json!("not base64 at all!")),
        ),
        (
            "tampered Message",
            "does not verify",
            Box::new(|m| {
                let text = m["Message"].as_str().expect("Message").replace("ALARM", "OK");
                m["Message"] = json!(text);
            }),
        ),
        (
            "tampered Subject",
            "does not verify",
            Box::new(|m| m["Subject"] = json!("OK: all is well")),
        ),
        (
            "another message's signature",
            "does not verify",
            Box::new(|m| m["Signature"] = good[0]["Signature"].clone()),
        ),
        (
            "version 1 signature claimed as version 2",
            "(version 2) does not verify",
            Box::new(|m| m["SignatureVersion"] = json!("2")),
        ),
        (
            "signed by another key",
            "does not verify",
            Box::new(|m| {
                let signature = forger.signature(&common::sns::string_to_sign(m), "1");
                m["Signature"] = json!(signature);
            }),
        ),
        (
            "certificate on another host",
            "SigningCertURL host `sns.evil.example` is not in ingest.sns.signing_cert_url_hosts",
            Box::new(|m| m["SigningCertURL"] = json!("https://sns.evil.example/cert.pem")),
        ),
        (
            "certificate on another port",
            "is not in ingest.sns.signing_cert_url_hosts",
            Box::new(|m| m["SigningCertURL"] = json!(forger.cert_url.clone())),
        ),
        (
            "certificate that is not a .pem",
            "does not name a .pem certificate",
            Box::new(|m| {
                let url = m["SigningCertURL"].as_str().expect("url").replace(".pem", ".txt");
                m["SigningCertURL"] = json!(url);
            }),
        ),
        (
            "certificate over a scheme other than https",
            "is not allowed; SNS uses https",
            Box::new(|m| {
                let url = m["SigningCertURL"].as_str().expect("url").replace("http:", "ftp:");
                m["SigningCertURL"] = json!(url);
            }),
        ),
    ];
    for (n, (what, expected, change)) in cases.iter().enumerate() {
        let id = format!("refused-{n}");
        let mut message = notification(&id, "forged");
        signer.sign(&mut message, "1");
        change(&mut message);
        let (status, body) = post_sns(&server, &message).await;
        assert_eq!(status, 403, "{what}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(expected), "{what}: {error}");
        let (status, _) = server.get(&format!("/api/v1/events/{id}")).await;
        assert_eq!(
            status, 404,
            "{what}: nothing of a refused message is stored"
        );
    }
    assert_eq!(metric(&server, FORBIDDEN).await, cases.len() as u64);
    assert_eq!(
        signer.fetches(),
        1,
        "refusals by URL fetch nothing; the kept certificate serves the rest"
    );
    assert_eq!(forger.fetches(), 0, "a host not listed is never fetched");
    assert_eq!(
        server.incidents().await.len(),
        6,
        "no incident from a refused message"
    );

    // The refusals did not spoil the kept certificate.
    let mut late = notification("good-late", "cpu-high-late");
    signer.sign(&mut late, "2");
    let (status, body) = post_sns(&server, &late).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(signer.fetches(), 1);
}

#[tokio::test]
async fn a_forged_subscription_confirmation_is_refused_before_anything_is_recorded() {
    let dir = temp_dir();
    let signer = SnsSigner::start(2).await;
    let forger = SnsSigner::start(2).await;
    let confirmations = Arc::new(AtomicUsize::new(0));
    let confirm_port = serve(|_| (200, Vec::new()), confirmations.clone()).await;
    let server = start(dir.path(), &[&signer.host], &[]).await;
    let subscriptions =
        |outcome: &str| format!("vigil_sns_subscriptions_total{{outcome=\"{outcome}\"}}");
    let confirmation = |kind: &str, topic: &str| {
        let mut message = fixture("sns-subscription-confirmation.json");
        message["Type"] = json!(kind);
        message["TopicArn"] = json!(topic);
        message["SubscribeURL"] = json!(format!(
            "http://127.0.0.1:{confirm_port}/?Action=ConfirmSubscription"
        ));
        message
    };

    // Claims SNS's certificate, signed with another key; for an allowed topic, then for
    // one that is not (which, signed, would be recorded as refused).
    for topic in [TOPIC, "arn:aws:sns:us-east-1:999999999999:someone-else"] {
        let mut forged = confirmation("SubscriptionConfirmation", topic);
        forger.sign(&mut forged, "2");
        forged["SigningCertURL"] = json!(signer.cert_url.clone());
        let (status, body) = post_sns(&server, &forged).await;
        assert_eq!(status, 403, "{body}");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("does not verify")),
            "{body}"
        );
    }
    let mut unsigned = confirmation("SubscriptionConfirmation", TOPIC);
    unsigned
        .as_object_mut()
        .expect("object")
        .remove("Signature");
    let (status, body) = post_sns(&server, &unsigned).await;
    assert_eq!(status, 403, "{body}");
    let mut forged_unsubscribe = confirmation("UnsubscribeConfirmation", TOPIC);
    forger.sign(&mut forged_unsubscribe, "1");
    forged_unsubscribe["SigningCertURL"] = json!(signer.cert_url.clone());
    let (status, body) = post_sns(&server, &forged_unsubscribe).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(metric(&server, FORBIDDEN).await, 4);
    for outcome in ["refused", "confirmed", "failed"] {
        assert_eq!(
            metric(&server, &subscriptions(outcome)).await,
            0,
            "no subscription was recorded ({outcome})"
        );
    }

    // Signed by SNS's key: a foreign topic is recorded and refused, the allowed one confirmed.
    let mut foreign = confirmation(
        "SubscriptionConfirmation",
        "arn:aws:sns:us-east-1:999999999999:someone-else",
    );
    signer.sign(&mut foreign, "1");
    let (status, body) = post_sns(&server, &foreign).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("allowed_topic_arns")),
        "{body}"
    );
    assert_eq!(metric(&server, &subscriptions("refused")).await, 1);
    let mut genuine = confirmation("SubscriptionConfirmation", TOPIC);
    genuine["MessageId"] = json!("genuine-confirmation");
    signer.sign(&mut genuine, "2");
    let (status, body) = post_sns(&server, &genuine).await;
    assert_eq!(status, 202, "{body}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&server, &subscriptions("confirmed")).await < 1 {
        assert!(
            Instant::now() < deadline,
            "the genuine subscription was not confirmed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        confirmations.load(Ordering::SeqCst),
        1,
        "only the genuine confirmation's SubscribeURL was fetched"
    );
    let mut unsubscribe = confirmation("UnsubscribeConfirmation", TOPIC);
    signer.sign(&mut unsubscribe, "1");
    let (status, body) = post_sns(&server, &unsubscribe).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["unsubscribed"], TOPIC);
}

#[tokio::test]
async fn the_certificate_must_be_valid_now_and_one_that_cannot_be_fetched_asks_for_a_retry() {
    let dir = temp_dir();
    let signer = SnsSigner::start(1).await;
    let count = || Arc::new(AtomicUsize::new(0));
    let missing = serve(|_| (404, b"no such certificate".to_vec()), count()).await;
    let junk = serve(|_| (200, b"-----BEGIN NONSENSE-----".to_vec()), count()).await;
    let failing = serve(|_| (500, Vec::new()), count()).await;
    let huge = serve(|_| (200, vec![b'A'; 200 * 1024]), count()).await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let hosts: Vec<String> = [missing, junk, failing, huge, closed]
        .iter()
        .map(|port| format!("127.0.0.1:{port}"))
        .chain([signer.host.clone()])
        .collect();
    let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let server = start(dir.path(), &hosts, &[("VIGIL_TEST_CLOCK", "1")]).await;

    let mut fresh = notification("while-valid", "cpu-high-valid");
    signer.sign(&mut fresh, "2");
    let (status, body) = post_sns(&server, &fresh).await;
    assert_eq!(status, 202, "{body}");

    for (port, status_wanted, expected) in [
        (missing, 403, "is not usable: it answered 404 Not Found"),
        (junk, 403, "is not usable: not a PEM X.509 certificate"),
        (huge, 403, "is not usable: larger than 65536 bytes"),
        (failing, 503, "could not be fetched (it answered 500"),
        (closed, 503, "could not be fetched"),
    ] {
        let id = format!("cert-on-{port}");
        let mut message = notification(&id, "cpu-high-elsewhere");
        signer.sign(&mut message, "1");
        message["SigningCertURL"] = json!(format!("http://127.0.0.1:{port}/cert.pem"));
        let (status, body) = post_sns(&server, &message).await;
        assert_eq!(status, status_wanted, "{expected}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(expected), "{error}");
        let (status, _) = server.get(&format!("/api/v1/events/{id}")).await;
        assert_eq!(status, 404, "nothing of a refused message is stored");
    }
    assert_eq!(metric(&server, FORBIDDEN).await, 3);
    assert_eq!(metric(&server, UNAVAILABLE).await, 2);

    // Two days on, the one-day certificate has expired: even a well-signed message is refused.
    let (status, body) = server
        .post(
            "/api/v1/test/clock",
            json!({"seconds": 2 * 86_400}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut late = notification("after-expiry", "cpu-high-late");
    signer.sign(&mut late, "2");
    let (status, body) = post_sns(&server, &late).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("is valid from") && e.contains("not at")),
        "{body}"
    );
    let (status, _) = server.get("/api/v1/events/after-expiry").await;
    assert_eq!(status, 404);
    assert_eq!(signer.fetches(), 1);
}
