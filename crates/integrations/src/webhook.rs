//! [`WebhookNotifier`]: the notification as JSON, POSTed to a receiver of the operator's.
//!
//! ```json
//! {"kind": "opened", "incident": {…}, "diagnostics": [{"probe","host","output"}],
//!  "diagnostics_pending": false, "diagnostics_note": null, "pending_probes": [],
//!  "tickets": [{"tracker","id","url"}], "incident_url": "…", "delivery_id": "vigil-INC-7-…"}
//! ```
//!
//! `kind` is `opened`, `resolved`, `diagnostics` (a follow-up carrying probe results that
//! were still running when the first message went out) or `digest` (a storm's news: its
//! `incident` has `kind: "storm"` and lists its `members`). `diagnostics_pending` is true when
//! the message went out before every probe answered; `diagnostics_note` then says so in a
//! sentence, `pending_probes` lists the probes still running (`"top_cpu on web-01"`), and a
//! `diagnostics` delivery follows.
//!
//! Headers: `X-Vigil-Delivery: <delivery id>` (the same on every retry of one notification,
//! so receivers can drop repeats) and, with a secret, `X-Vigil-Signature: sha256=<hex
//! HMAC-SHA256(secret, raw body)>` — see [`signature`].

use hmac::{Hmac, Mac};
use reqwest::header::CONTENT_TYPE;
use serde_json::json;
use sha2::Sha256;
use vigil_actions::{ActionError, BoxFuture, Delivery, Message, Notifier};

use crate::config::WebhookConfig;
use crate::http::{self, parse_http_url};
use crate::IntegrationError;

/// Carries [`signature`] of the body when a secret is configured.
pub const SIGNATURE_HEADER: &str = "X-Vigil-Signature";
/// Carries the delivery id (the message's idempotency key), the same on every retry.
pub const DELIVERY_HEADER: &str = "X-Vigil-Delivery";
const ANSWER_LIMIT: usize = 4096;

/// `sha256=<lowercase hex HMAC-SHA256(secret, body)>`: what a receiver recomputes over the
/// raw body it got and compares (in constant time) with `X-Vigil-Signature`.
#[expect(
    clippy::expect_used,
    reason = "HMAC takes keys of every length: new_from_slice cannot fail"
)]
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of every length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Posts notifications to one URL. Built from [`WebhookConfig`].
pub struct WebhookNotifier {
    http: reqwest::Client,
    url: String,
    /// Scheme and host only: paths and queries of webhook URLs often carry tokens.
    shown_url: String,
    secret: Option<Vec<u8>>,
}

impl WebhookNotifier {
    /// Checks the URL; nothing is sent until the first message.
    pub fn new(config: &WebhookConfig) -> Result<WebhookNotifier, IntegrationError> {
        if config.url.trim().is_empty() {
            return Err(IntegrationError::Missing {
                field: "webhook.url",
                env: "VIGIL_WEBHOOK_URL",
            });
        }
        parse_http_url("webhook.url", config.url.trim())?;
        Ok(WebhookNotifier {
            http: http::client("webhook")?,
            url: config.url.trim().to_string(),
            shown_url: http::redact_url(config.url.trim()),
            secret: config
                .secret
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(|s| s.as_bytes().to_vec()),
        })
    }
}

/// The JSON body for `message`.
fn body(message: &Message) -> Vec<u8> {
    json!({
        "kind": message.kind,
        "incident": message.incident.to_value(),
        "diagnostics": message.diagnostics,
        "diagnostics_pending": message.diagnostics_pending,
        "diagnostics_note": crate::render::pending_note(message),
        "pending_probes": message.pending_probes,
        "tickets": message.tickets,
        "incident_url": message.incident_url,
        "delivery_id": message.key.0,
    })
    .to_string()
    .into_bytes()
}

impl Notifier for WebhookNotifier {
    fn channel(&self) -> &str {
        "webhook"
    }

    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<Delivery, ActionError>> {
        Box::pin(async move {
            let body = body(message);
            let mut request = self
                .http
                .post(&self.url)
                .header(CONTENT_TYPE, "application/json")
                .header(DELIVERY_HEADER, &message.key.0);
            if let Some(secret) = &self.secret {
                request = request.header(SIGNATURE_HEADER, signature(secret, &body));
            }
            let action = format!("delivery {}", message.key.0);
            let response = request
                .body(body)
                .send()
                .await
                .map_err(|e| http::request_error("webhook", &action, e))?;
            let status = response.status();
            let headers = response.headers().clone();
            let answer = http::read_body(response, ANSWER_LIMIT)
                .await
                .map_err(|e| http::request_error("webhook", &action, e))?;
            if !status.is_success() {
                return Err(http::status_error(
                    &format!("webhook {}", self.shown_url),
                    &action,
                    status,
                    &headers,
                    &http::snippet(&answer, 300),
                ));
            }
            tracing::info!(incident = %message.incident.key, delivery = %message.key.0,
                "webhook: delivery accepted");
            Ok(Delivery {
                channel: "webhook".into(),
                external_id: Some(message.key.0.clone()),
                detail: Some(format!("accepted by {} ({status})", self.shown_url)),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample_message;
    use vigil_actions::MessageKind;

    #[test]
    fn signature_matches_rfc_4231_test_case_2() {
        // RFC 4231 §4.3: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn body_carries_the_whole_notification() {
        let message = sample_message(MessageKind::Resolved);
        let value: serde_json::Value = serde_json::from_slice(&body(&message)).unwrap();
        assert_eq!(value["kind"], "resolved");
        assert_eq!(value["incident"]["key"], "INC-7");
        assert_eq!(value["incident"]["metric_name"], "CPUUtilization");
        assert_eq!(value["diagnostics"][0]["probe"], "top_cpu");
        assert_eq!(value["tickets"][0]["id"], "OPS-1");
        assert_eq!(value["delivery_id"], "vigil-INC-7-notify-resolved");
        assert_eq!(
            value["incident_url"],
            "https://vigil.example.com/ui/incidents/INC-7"
        );
        assert_eq!(value["pending_probes"], serde_json::json!([]));
    }

    #[test]
    fn body_names_the_probes_still_running() {
        let mut message = sample_message(MessageKind::Opened);
        message.diagnostics.clear();
        message.diagnostics_pending = true;
        message.pending_probes = vec!["top_cpu on web-01".into()];
        let value: serde_json::Value = serde_json::from_slice(&body(&message)).unwrap();
        assert_eq!(value["diagnostics_pending"], true);
        assert_eq!(
            value["pending_probes"],
            serde_json::json!(["top_cpu on web-01"])
        );
        assert_eq!(
            value["diagnostics_note"],
            "Diagnostics: still running at the deadline: top_cpu on web-01; a follow-up message \
             will carry them."
        );
    }
}
