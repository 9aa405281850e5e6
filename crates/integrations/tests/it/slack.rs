//! SlackNotifier against a scripted local receiver standing in for hooks.slack.com.

use vigil_actions::{MessageKind, Notifier};
use vigil_integrations::{sample_message, SlackConfig, SlackNotifier};

use crate::support::http_receiver::{Answer, Receiver};
use crate::support::{bounded, expect_permanent, expect_transient, process};

const HOOK_PATH: &str = "/services/T000/B000/XXXXsecretXXXX";

fn notifier(base: &str, template: Option<&str>) -> SlackNotifier {
    SlackNotifier::new(&SlackConfig {
        webhook_url: format!("{base}{HOOK_PATH}"),
        template: template.map(str::to_string),
    })
    .expect("slack settings are valid")
}

#[tokio::test]
async fn posts_header_fields_diagnostics_and_links() {
    bounded(async {
        let mut receiver = Receiver::start(vec![Answer::new(200, "ok")]).await;
        let slack = notifier(&receiver.base, None);
        let delivery = slack
            .send(&sample_message(MessageKind::Opened))
            .await
            .expect("send");
        assert_eq!(delivery.channel, "slack");
        let detail = delivery.detail.expect("detail");
        assert_eq!(detail, format!("accepted by {}/…", receiver.base));

        let request = receiver.next().await;
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, HOOK_PATH);
        assert_eq!(request.header("content-type"), Some("application/json"));
        let body = request.json();
        assert_eq!(body["text"], "High CPU Utilization Alert : web-01");
        let blocks = body["blocks"].as_array().expect("blocks");
        assert_eq!(blocks[0]["type"], "header");
        let main = blocks[1]["text"]["text"].as_str().expect("main text");
        assert!(main.starts_with("*ServerCpuTooHigh on web-01"), "{main}");
        assert!(main.contains("*Impact:* Applications on web-01"), "{main}");
        let fields: Vec<&str> = blocks[2]["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .filter_map(|f| f["text"].as_str())
            .collect();
        assert!(fields.contains(&"*Severity*\nhigh"), "{fields:?}");
        assert!(fields.contains(&"*Value*\n91.2"), "{fields:?}");
        let all = body.to_string();
        assert!(
            all.contains("*top_cpu on web-01*\\n```\\n  PID USER"),
            "{all}"
        );
        assert!(all.contains("<https://jira.example.com/browse/OPS-1|Jira OPS-1>"));
        assert!(all.contains("<https://vigil.example.com/ui/incidents/INC-7|Incident INC-7>"));
    })
    .await;
}

#[tokio::test]
async fn a_configured_template_writes_the_main_text() {
    bounded(async {
        let mut receiver = Receiver::start(vec![Answer::new(200, "ok")]).await;
        let slack = notifier(
            &receiver.base,
            Some("{{ incident.key }} for *{{ facts.appcode|mrkdwn }}* ({{ kind }})"),
        );
        slack
            .send(&sample_message(MessageKind::Resolved))
            .await
            .expect("send");
        let body = receiver.next().await.json();
        assert_eq!(
            body["blocks"][1]["text"]["text"],
            "INC-7 for *hotel_booking_api* (resolved)"
        );
        assert_eq!(
            body["blocks"][0]["text"]["text"],
            ":white_check_mark: Resolved: High CPU Utilization Alert : web-01"
        );
    })
    .await;
}

#[tokio::test]
async fn a_message_sent_before_the_probes_answered_says_so() {
    bounded(async {
        let mut receiver = Receiver::start(vec![Answer::new(200, "ok")]).await;
        let slack = notifier(&receiver.base, None);
        let mut message = sample_message(MessageKind::Opened);
        message.diagnostics.clear();
        message.diagnostics_pending = true;
        slack.send(&message).await.expect("send");
        let body = receiver.next().await.json();
        let texts: Vec<String> = body["blocks"]
            .as_array()
            .expect("blocks")
            .iter()
            .filter_map(|b| b["text"]["text"].as_str().map(str::to_string))
            .collect();
        assert!(
            texts.iter().any(|t| t
                == "*Diagnostics: still running at the deadline; a follow-up message will carry them.*"),
            "{texts:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_pending_message_names_the_probes_still_running() {
    bounded(async {
        let mut receiver = Receiver::start(vec![Answer::new(200, "ok")]).await;
        let slack = notifier(&receiver.base, None);
        let mut message = sample_message(MessageKind::Opened);
        message.diagnostics.clear();
        message.diagnostics_pending = true;
        message.pending_probes = vec!["top_cpu on web-01".into()];
        slack.send(&message).await.expect("send");
        let body = receiver.next().await.json();
        let texts: Vec<String> = body["blocks"]
            .as_array()
            .expect("blocks")
            .iter()
            .filter_map(|b| b["text"]["text"].as_str().map(str::to_string))
            .collect();
        assert!(
            texts.iter().any(|t| t
                == "*Diagnostics: still running at the deadline: top_cpu on web-01; a follow-up message will carry them.*"),
            "{texts:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_diagnostics_follow_up_carries_the_probe_output() {
    bounded(async {
        let mut receiver = Receiver::start(vec![Answer::new(200, "ok")]).await;
        let slack = notifier(&receiver.base, None);
        let message = sample_message(MessageKind::Diagnostics);
        slack.send(&message).await.expect("send");
        let body = receiver.next().await.json();
        assert_eq!(
            body["blocks"][0]["text"]["text"],
            format!(
                ":mag: [vigil] INC-7 diagnostics: {}",
                message.incident.title
            )
        );
        let all = body.to_string();
        assert!(
            all.contains("Probe results for incident INC-7 that were still running"),
            "{all}"
        );
        assert!(
            all.contains("*top_cpu on web-01*\\n```\\n  PID USER"),
            "{all}"
        );
        assert!(!all.contains("still running at the deadline"), "{all}");
    })
    .await;
}

#[tokio::test]
async fn slack_errors_are_sorted_and_never_show_the_hook_path() {
    bounded(async {
        let receiver = Receiver::start(vec![
            Answer::new(429, "rate_limited").with_header("Retry-After", "3"),
            Answer::new(404, "no_service"),
        ])
        .await;
        let slack = notifier(&receiver.base, None);
        let message = sample_message(MessageKind::Opened);
        let (what, retry_after) = expect_transient(slack.send(&message).await);
        assert_eq!(retry_after, Some(3000));
        assert!(what.contains("429"), "{what}");
        let error = expect_permanent(slack.send(&message).await);
        assert!(
            error.contains("404") && error.contains("no_service"),
            "{error}"
        );
        assert!(!error.contains("secret") && !what.contains("secret"));

        let down = notifier(
            &format!("http://127.0.0.1:{}", process::closed_port()),
            None,
        );
        let (what, _) = expect_transient(down.send(&message).await);
        assert!(!what.contains("secret"), "{what}");
    })
    .await;
}
