//! WebhookNotifier against a local receiver that checks the signature the way a real
//! receiver would: HMAC-SHA256 over the raw body, compared in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use vigil_actions::{MessageKind, Notifier};
use vigil_integrations::{sample_message, WebhookConfig, WebhookNotifier};

use crate::support::http_receiver::{Answer, Receiver, Request};
use crate::support::{bounded, expect_permanent, expect_transient};

const SECRET: &str = "whsec-test-123";

fn verify(request: &Request, secret: &str) -> bool {
    let Some(header) = request.header("x-vigil-signature") else {
        return false;
    };
    let Some(hex) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Some(signature) = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(&request.body);
    mac.verify_slice(&signature).is_ok()
}

fn notifier(url: String, secret: Option<&str>) -> WebhookNotifier {
    WebhookNotifier::new(&WebhookConfig {
        url,
        secret: secret.map(str::to_string),
    })
    .expect("webhook settings are valid")
}

#[tokio::test]
async fn deliveries_are_signed_and_carry_the_incident() {
    bounded(async {
        let mut receiver = Receiver::start(vec![Answer::new(202, "")]).await;
        let hook = notifier(
            format!("{}/hooks/vigil?token=abc", receiver.base),
            Some(SECRET),
        );
        let message = sample_message(MessageKind::Opened);
        let delivery = hook.send(&message).await.expect("send");
        assert_eq!(
            delivery.external_id.as_deref(),
            Some("vigil-INC-7-notify-opened")
        );
        let detail = delivery.detail.expect("detail");
        assert!(
            detail.contains("202") && !detail.contains("token=abc"),
            "{detail}"
        );

        let mut request = receiver.next().await;
        assert_eq!(request.path, "/hooks/vigil?token=abc");
        assert_eq!(
            request.header("x-vigil-delivery"),
            Some("vigil-INC-7-notify-opened")
        );
        assert!(verify(&request, SECRET), "signature does not verify");
        assert!(!verify(&request, "another-secret"));
        let body = request.json();
        assert_eq!(body["kind"], "opened");
        assert_eq!(body["delivery_id"], "vigil-INC-7-notify-opened");
        assert_eq!(body["incident"]["key"], "INC-7");
        assert_eq!(body["incident"]["host"], "web-01");
        assert_eq!(body["incident"]["value"], 91.2);
        assert_eq!(
            body["diagnostics"][0]["output"]
                .as_str()
                .map(|o| o.contains("java")),
            Some(true)
        );
        assert_eq!(
            body["tickets"][0]["url"],
            "https://jira.example.com/browse/OPS-1"
        );
        assert_eq!(
            body["incident_url"],
            "https://vigil.example.com/ui/incidents/INC-7"
        );

        // Any change to the body breaks the signature.
        request.body.push(b' ');
        assert!(!verify(&request, SECRET));
    })
    .await;
}

#[tokio::test]
async fn without_a_secret_deliveries_are_unsigned() {
    bounded(async {
        let mut receiver = Receiver::start(vec![Answer::new(200, "")]).await;
        notifier(receiver.base.clone(), None)
            .send(&sample_message(MessageKind::Resolved))
            .await
            .expect("send");
        let request = receiver.next().await;
        assert_eq!(request.header("x-vigil-signature"), None);
        assert_eq!(request.json()["kind"], "resolved");
    })
    .await;
}

#[tokio::test]
async fn a_message_sent_before_the_probes_answered_says_so() {
    bounded(async {
        let mut receiver = Receiver::start(vec![Answer::new(200, "")]).await;
        let mut message = sample_message(MessageKind::Opened);
        message.diagnostics.clear();
        message.diagnostics_pending = true;
        notifier(receiver.base.clone(), Some(SECRET))
            .send(&message)
            .await
            .expect("send");
        let request = receiver.next().await;
        assert!(verify(&request, SECRET));
        let body = request.json();
        assert_eq!(body["kind"], "opened");
        assert_eq!(body["diagnostics_pending"], true);
        assert_eq!(
            body["diagnostics_note"],
            "Diagnostics: still running at the deadline; a follow-up message will carry them."
        );
        assert_eq!(body["diagnostics"], serde_json::json!([]));
    })
    .await;
}

#[tokio::test]
async fn a_pending_delivery_lists_the_probes_still_running() {
    bounded(async {
        let mut receiver = Receiver::start(vec![Answer::new(200, "")]).await;
        let mut message = sample_message(MessageKind::Opened);
        message.diagnostics.clear();
        message.diagnostics_pending = true;
        message.pending_probes = vec!["top_cpu on web-01".into()];
        notifier(receiver.base.clone(), Some(SECRET))
            .send(&message)
            .await
            .expect("send");
        let request = receiver.next().await;
        assert!(verify(&request, SECRET));
        let body = request.json();
        assert_eq!(
            body["pending_probes"],
            serde_json::json!(["top_cpu on web-01"])
        );
        assert_eq!(
            body["diagnostics_note"],
            "Diagnostics: still running at the deadline: top_cpu on web-01; a follow-up message \
             will carry them."
        );
    })
    .await;
}

#[tokio::test]
async fn a_diagnostics_follow_up_is_its_own_delivery() {
    bounded(async {
        let mut receiver = Receiver::start(vec![Answer::new(200, "")]).await;
        notifier(receiver.base.clone(), None)
            .send(&sample_message(MessageKind::Diagnostics))
            .await
            .expect("send");
        let request = receiver.next().await;
        assert_eq!(
            request.header("x-vigil-delivery"),
            Some("vigil-INC-7-notify-diagnostics")
        );
        let body = request.json();
        assert_eq!(body["kind"], "diagnostics");
        assert_eq!(body["diagnostics_pending"], false);
        assert_eq!(body["diagnostics_note"], serde_json::Value::Null);
        assert_eq!(body["diagnostics"][0]["probe"], "top_cpu");
    })
    .await;
}

#[tokio::test]
async fn receiver_errors_are_sorted() {
    bounded(async {
        let receiver = Receiver::start(vec![
            Answer::new(503, "busy").with_header("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT"),
            Answer::new(410, "gone for good"),
        ])
        .await;
        let hook = notifier(receiver.base.clone(), Some(SECRET));
        let message = sample_message(MessageKind::Opened);
        let (what, retry_after) = expect_transient(hook.send(&message).await);
        assert!(what.contains("503") && what.contains("busy"), "{what}");
        // A date in the past means: retry now.
        assert_eq!(retry_after, Some(0));
        let error = expect_permanent(hook.send(&message).await);
        assert!(
            error.contains("410") && error.contains("gone for good"),
            "{error}"
        );
    })
    .await;
}
