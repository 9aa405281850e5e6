//! EmailNotifier against a real SMTP server (aiosmtpd, tests/smtp_sink.py).

use std::time::{Duration, Instant};

use vigil_actions::{MessageKind, Notifier};
use vigil_integrations::{sample_message, EmailConfig, EmailNotifier, EmailTemplates};

use crate::support::{bounded, expect_permanent, expect_transient, process, SmtpSink};

fn notifier(smtp_url: String, adjust: impl FnOnce(&mut EmailConfig)) -> EmailNotifier {
    let mut config = EmailConfig {
        smtp_url,
        from: "vigil <vigil@example.com>".into(),
        to: vec!["oncall@example.com".into()],
        ..EmailConfig::default()
    };
    adjust(&mut config);
    EmailNotifier::new(&config).expect("email settings are valid")
}

/// A decoded part, with SMTP's CRLF line ends made plain newlines.
fn text(message: &serde_json::Value, part: &str) -> String {
    message[part]
        .as_str()
        .unwrap_or_else(|| panic!("no {part} part in {message}"))
        .replace("\r\n", "\n")
}

#[tokio::test]
async fn the_message_arrives_with_subject_both_parts_diagnostics_and_links() {
    bounded(async {
        let sink = SmtpSink::start(&[]);
        let email = notifier(format!("smtp://127.0.0.1:{}", sink.port), |_| {});
        let message = sample_message(MessageKind::Opened);
        let delivery = email.send(&message).await.expect("send");
        assert_eq!(delivery.channel, "email");
        assert_eq!(
            delivery.external_id.as_deref(),
            Some("<vigil-INC-7-notify-opened@vigil>")
        );
        let detail = delivery.detail.expect("detail");
        assert!(
            detail.starts_with(&format!(
                "accepted by 127.0.0.1:{} for 1 recipient (250",
                sink.port
            )),
            "{detail}"
        );

        let received = sink.wait_for(1).await;
        let m = &received[0];
        assert_eq!(m["subject"], "High CPU Utilization Alert : web-01");
        assert_eq!(m["message_id"], "<vigil-INC-7-notify-opened@vigil>");
        assert_eq!(m["rcpt_tos"], serde_json::json!(["oncall@example.com"]));
        assert_eq!(m["mail_from"], "vigil@example.com");
        assert_eq!(m["content_type"], "multipart/alternative");

        let plain = text(m, "text");
        for needle in [
            "ServerCpuTooHigh on web-01",
            "Severity:       high",
            "Impact:         Applications on web-01 may respond slowly",
            "Observed state: %CPU Utilization is 91.2 against a threshold of 80",
            "Desired state:  %CPU Utilization back below 80",
            "Account:    123456789012",
            "Region:     us-east-1",
            "Host:       web-01",
            "Appcode:    hotel_booking_api",
            "Metric:     AWS/EC2 / CPUUtilization",
            "Reason:     Threshold Crossed",
            "--- top_cpu on web-01 ---\n  PID USER     %CPU COMMAND\n 4242 app      97.0 java",
            "Incident INC-7: https://vigil.example.com/ui/incidents/INC-7",
            "Jira OPS-1: https://jira.example.com/browse/OPS-1",
            "Runbook: https://wiki.example.com/cpu",
        ] {
            assert!(
                plain.contains(needle),
                "text part lacks {needle:?}:\n{plain}"
            );
        }
        let html = text(m, "html");
        for needle in [
            "<pre style=",
            " 4242 app      97.0 java",
            "<a href=\"https://jira.example.com/browse/OPS-1\">Jira OPS-1</a>",
            "<a href=\"https://vigil.example.com/ui/incidents/INC-7\">Incident INC-7</a>",
            "<th align=\"left\">Appcode</th><td>hotel_booking_api</td>",
        ] {
            assert!(html.contains(needle), "html part lacks {needle:?}:\n{html}");
        }
    })
    .await;
}

#[tokio::test]
async fn recovery_goes_to_the_messages_recipients_and_says_resolved() {
    bounded(async {
        let sink = SmtpSink::start(&[]);
        let email = notifier(format!("smtp://127.0.0.1:{}", sink.port), |_| {});
        let mut message = sample_message(MessageKind::Resolved);
        message.incident.resolved_at = "2024-08-23T06:20:00Z".parse().ok();
        message.recipients = vec!["a@example.com".into(), "B <b@example.com>".into()];
        let delivery = email.send(&message).await.expect("send");
        assert!(
            delivery
                .detail
                .as_deref()
                .unwrap_or_default()
                .contains("for 2 recipients"),
            "{delivery:?}"
        );
        let m = &sink.wait_for(1).await[0];
        assert_eq!(
            m["subject"],
            "Resolved: High CPU Utilization Alert : web-01"
        );
        assert_eq!(
            m["rcpt_tos"],
            serde_json::json!(["a@example.com", "b@example.com"])
        );
        assert!(
            text(m, "text")
                .contains("back to OK; the incident was resolved at 2024-08-23T06:20:00Z"),
            "{}",
            text(m, "text")
        );
    })
    .await;
}

#[tokio::test]
async fn a_message_sent_before_the_probes_answered_says_so() {
    bounded(async {
        let sink = SmtpSink::start(&[]);
        let email = notifier(format!("smtp://127.0.0.1:{}", sink.port), |_| {});
        let mut message = sample_message(MessageKind::Opened);
        message.diagnostics.clear();
        message.diagnostics_pending = true;
        email.send(&message).await.expect("send");
        let m = &sink.wait_for(1).await[0];
        assert_eq!(m["subject"], "High CPU Utilization Alert : web-01");
        let note =
            "Diagnostics: still running at the deadline; a follow-up message will carry them.";
        assert!(text(m, "text").contains(note), "{}", text(m, "text"));
        assert!(
            text(m, "html").contains(&format!("<b>{note}</b>")),
            "{}",
            text(m, "html")
        );
    })
    .await;
}

#[tokio::test]
async fn a_pending_message_names_the_probes_still_running() {
    bounded(async {
        let sink = SmtpSink::start(&[]);
        let email = notifier(format!("smtp://127.0.0.1:{}", sink.port), |_| {});
        let mut message = sample_message(MessageKind::Opened);
        message.diagnostics_pending = true;
        message.pending_probes = vec!["top_mem on web-01".into(), "command:slow on web-01".into()];
        email.send(&message).await.expect("send");
        let m = &sink.wait_for(1).await[0];
        let note = "Diagnostics: more probes were still running at the deadline: top_mem on \
                    web-01, command:slow on web-01; a follow-up message will carry them.";
        assert!(text(m, "text").contains(note), "{}", text(m, "text"));
        assert!(
            text(m, "html").contains(&format!("<b>{note}</b>")),
            "{}",
            text(m, "html")
        );
        // The output that did arrive is there too.
        assert!(text(m, "text").contains("--- top_cpu on web-01 ---"));
    })
    .await;
}

#[tokio::test]
async fn a_diagnostics_follow_up_has_its_own_subject_and_the_probe_output() {
    bounded(async {
        let sink = SmtpSink::start(&[]);
        let email = notifier(format!("smtp://127.0.0.1:{}", sink.port), |_| {});
        let message = sample_message(MessageKind::Diagnostics);
        let delivery = email.send(&message).await.expect("send");
        assert_eq!(
            delivery.external_id.as_deref(),
            Some("<vigil-INC-7-notify-diagnostics@vigil>")
        );
        let m = &sink.wait_for(1).await[0];
        assert_eq!(
            m["subject"],
            format!("[vigil] INC-7 diagnostics: {}", message.incident.title)
        );
        let plain = text(m, "text");
        for needle in [
            "Probe results for incident INC-7 that were still running when the first message went out.",
            "--- top_cpu on web-01 ---\n  PID USER     %CPU COMMAND",
        ] {
            assert!(plain.contains(needle), "text part lacks {needle:?}:\n{plain}");
        }
        assert!(!plain.contains("still running at the deadline"), "{plain}");
    })
    .await;
}

#[tokio::test]
async fn credentials_in_the_url_authenticate() {
    bounded(async {
        let sink = SmtpSink::start(&["--auth", "bot@example.com:p@ss:word"]);
        let good = notifier(
            format!(
                "smtp://bot%40example.com:p%40ss%3Aword@127.0.0.1:{}",
                sink.port
            ),
            |_| {},
        );
        good.send(&sample_message(MessageKind::Opened))
            .await
            .expect("authenticated send");
        assert_eq!(sink.wait_for(1).await.len(), 1);

        let wrong = notifier(
            format!("smtp://bot%40example.com:nope@127.0.0.1:{}", sink.port),
            |_| {},
        );
        let error = expect_permanent(wrong.send(&sample_message(MessageKind::Opened)).await);
        assert!(error.contains("535"), "{error}");
        assert!(!error.contains("nope"), "{error}");
        // Without credentials the server refuses the mail (530 authentication required).
        let anonymous = notifier(format!("smtp://127.0.0.1:{}", sink.port), |_| {});
        expect_permanent(anonymous.send(&sample_message(MessageKind::Opened)).await);
        assert_eq!(sink.messages().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn refusals_are_permanent_deferrals_and_outages_transient() {
    bounded(async {
        let sink = SmtpSink::start(&[]);
        let email = notifier(format!("smtp://127.0.0.1:{}", sink.port), |_| {});
        let mut message = sample_message(MessageKind::Opened);
        message.recipients = vec!["reject@example.com".into()];
        let error = expect_permanent(email.send(&message).await);
        assert!(
            error.contains("550") || error.contains("no such user"),
            "{error}"
        );
        message.recipients = vec!["later@example.com".into()];
        let (what, _) = expect_transient(email.send(&message).await);
        assert!(what.contains("try again later"), "{what}");
        message.recipients = vec!["not an address".into()];
        let error = expect_permanent(email.send(&message).await);
        assert!(error.contains("not an address"), "{error}");
        assert!(sink.messages().is_empty());

        let down = notifier(
            format!("smtp://127.0.0.1:{}", process::closed_port()),
            |_| {},
        );
        expect_transient(down.send(&sample_message(MessageKind::Opened)).await);
    })
    .await;
}

#[tokio::test]
async fn a_server_that_stalls_is_cut_off_as_transient() {
    bounded(async {
        // Accepts connections and never says a word, not even the greeting.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        let email = notifier(format!("smtp://127.0.0.1:{port}"), |_| {})
            .with_send_timeout(Duration::from_millis(500));
        let started = Instant::now();
        let (what, _) = expect_transient(email.send(&sample_message(MessageKind::Opened)).await);
        assert!(what.contains("no answer within 0.5 s"), "{what}");
        assert!(started.elapsed() < Duration::from_secs(5));
        silent.abort();
    })
    .await;
}

#[tokio::test]
async fn configured_templates_replace_the_built_in_ones() {
    bounded(async {
        let sink = SmtpSink::start(&[]);
        let email = notifier(format!("smtp://127.0.0.1:{}", sink.port), |c| {
            c.templates = EmailTemplates {
                subject: Some(
                    "[{{ incident.severity|upper }}] {{ incident.key }}\n{{ facts.target }}".into(),
                ),
                text: Some("{{ facts.appcode }} / {{ tickets[0].id }}".into()),
                html: Some("<p>{{ incident.title }} &lt;{{ kind }}&gt;</p>".into()),
            }
        });
        email
            .send(&sample_message(MessageKind::Opened))
            .await
            .expect("send");
        let m = &sink.wait_for(1).await[0];
        assert_eq!(m["subject"], "[HIGH] INC-7 web-01");
        assert_eq!(text(m, "text").trim_end(), "hotel_booking_api / OPS-1");
        assert_eq!(
            text(m, "html").trim_end(),
            "<p>ServerCpuTooHigh on web-01: CPUUtilization 91.2 (threshold 80) &lt;opened&gt;</p>"
        );
    })
    .await;
}
