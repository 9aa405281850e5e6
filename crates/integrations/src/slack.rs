//! [`SlackNotifier`]: a post to a Slack incoming webhook, `{"text": …, "blocks": […]}`:
//! a header, the main text (a template), what a diagnostics follow-up is or that probes are
//! still running, a section of fields, each diagnostic in a code block, and the links. Everything is cut to Slack's limits so a long probe output never
//! makes Slack refuse the whole message.

use reqwest::header::CONTENT_TYPE;
use serde_json::{json, Value};
use vigil_actions::{ActionError, BoxFuture, Delivery, Message, MessageKind, Notifier};

use crate::config::SlackConfig;
use crate::http::{self, parse_http_url};
use crate::render::{self, cut, mrkdwn_escape, pending_note, rfc3339, Facts, Templates};
use crate::IntegrationError;

const TEMPLATE: &str = "slack.template";
const DEFAULT_TEMPLATE: &str = r#"*{{ incident.title|mrkdwn }}*
*Impact:* {{ facts.impact|mrkdwn }}
*Observed:* {{ facts.observed|mrkdwn }}
*Desired:* {{ facts.desired|mrkdwn }}"#;

// Slack's Block Kit limits, in characters.
const HEADER_MAX: usize = 150;
const SECTION_MAX: usize = 3000;
const FIELD_MAX: usize = 2000;
const FIELDS_MAX: usize = 10;
/// Slack allows 50 blocks; header, text, fields, links and the "more" note take five, and
/// the notes of a follow-up or of a message sent before the probes answered come out of
/// these.
const DIAGNOSTIC_BLOCKS_MAX: usize = 45;
const ANSWER_LIMIT: usize = 4096;

/// Posts notifications to one Slack incoming webhook. Built from [`SlackConfig`].
pub struct SlackNotifier {
    http: reqwest::Client,
    webhook_url: String,
    /// Scheme and host only: the URL's path is the secret.
    shown_url: String,
    templates: Templates,
}

impl SlackNotifier {
    /// Checks the URL and the template; nothing is sent until the first message.
    pub fn new(config: &SlackConfig) -> Result<SlackNotifier, IntegrationError> {
        if config.webhook_url.trim().is_empty() {
            return Err(IntegrationError::Missing {
                field: "slack.webhook_url",
                env: "VIGIL_SLACK_WEBHOOK_URL",
            });
        }
        parse_http_url("slack.webhook_url", config.webhook_url.trim())?;
        let source = config
            .template
            .clone()
            .unwrap_or_else(|| DEFAULT_TEMPLATE.to_string());
        Ok(SlackNotifier {
            http: http::client("slack")?,
            webhook_url: config.webhook_url.trim().to_string(),
            shown_url: http::redact_url(config.webhook_url.trim()),
            templates: Templates::new(vec![(TEMPLATE, source)])?,
        })
    }
}

impl Notifier for SlackNotifier {
    fn channel(&self) -> &str {
        "slack"
    }

    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<Delivery, ActionError>> {
        Box::pin(async move {
            let text = self.templates.render(TEMPLATE, &render::context(message))?;
            let body = payload(message, &text);
            let action = "the message";
            let response = self
                .http
                .post(&self.webhook_url)
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_string())
                .send()
                .await
                .map_err(|e| http::request_error("Slack", action, e))?;
            let status = response.status();
            let headers = response.headers().clone();
            let answer = http::read_body(response, ANSWER_LIMIT)
                .await
                .map_err(|e| http::request_error("Slack", action, e))?;
            if !status.is_success() {
                // Slack answers with a word: invalid_payload, no_service, channel_is_archived…
                return Err(http::status_error(
                    "Slack",
                    action,
                    status,
                    &headers,
                    &http::snippet(&answer, 300),
                ));
            }
            tracing::info!(incident = %message.incident.key, "slack: message accepted");
            Ok(Delivery {
                channel: "slack".into(),
                external_id: None,
                detail: Some(format!("accepted by {}", self.shown_url)),
            })
        })
    }
}

/// `raw`, mrkdwn-escaped, in at most `max` characters; also how many characters of `raw`
/// did not fit.
fn escape_within(raw: &str, max: usize) -> (String, usize) {
    let mut out = String::new();
    let mut used = 0;
    for (taken, c) in raw.chars().enumerate() {
        let piece = mrkdwn_escape(c.encode_utf8(&mut [0; 4]));
        let len = piece.chars().count();
        if used + len > max {
            return (out, raw.chars().count() - taken);
        }
        out.push_str(&piece);
        used += len;
    }
    (out, 0)
}

fn mrkdwn_section(text: String) -> Value {
    json!({ "type": "section", "text": { "type": "mrkdwn", "text": cut(&text, SECTION_MAX) } })
}

/// The webhook body for `message`, `main_text` being the rendered template.
fn payload(message: &Message, main_text: &str) -> Value {
    let incident = &message.incident;
    let facts = Facts::of(incident, message.kind);
    let icon = match message.kind {
        MessageKind::Opened => ":rotating_light:",
        MessageKind::Resolved => ":white_check_mark:",
        MessageKind::Diagnostics => ":mag:",
        MessageKind::Digest => ":cyclone:",
    };
    let mut blocks = vec![
        json!({ "type": "header", "text": {
            "type": "plain_text", "emoji": true,
            "text": cut(&format!("{icon} {}", facts.subject), HEADER_MAX) } }),
        mrkdwn_section(main_text.to_string()),
    ];
    // Said outside the template, so a configured one cannot leave it out.
    let mut notes = Vec::new();
    if let Some(lead) = &facts.lead {
        notes.push(mrkdwn_section(mrkdwn_escape(lead)));
    }
    if message.diagnostics.is_empty() && !facts.host_checks.is_empty() {
        let (checks, _) = escape_within(&facts.host_checks.join("\n"), SECTION_MAX);
        notes.push(mrkdwn_section(checks));
    }
    if let Some(note) = pending_note(message) {
        notes.push(mrkdwn_section(format!("*{}*", mrkdwn_escape(&note))));
    }
    let diagnostic_blocks = DIAGNOSTIC_BLOCKS_MAX - notes.len();

    let a = &incident.alarm;
    let candidates = [
        ("Severity", Some(incident.severity.as_str().to_string())),
        ("State", Some(facts.state.clone())),
        (
            if a.host.is_some() { "Host" } else { "Target" },
            Some(facts.target.clone()),
        ),
        ("Appcode", facts.appcode.clone()),
        ("Account", Some(a.account.clone())),
        ("Region", Some(a.region.clone())),
        ("Metric", facts.metric.clone()),
        ("Value", facts.value.clone()),
        ("Threshold", facts.threshold.clone()),
        ("Opened", Some(rfc3339(incident.opened_at))),
    ];
    let fields: Vec<Value> = candidates
        .into_iter()
        .filter_map(|(name, value)| {
            let value = value.filter(|v| !v.is_empty())?;
            let (value, _) = escape_within(&value, FIELD_MAX - name.len() - 3);
            Some(json!({ "type": "mrkdwn", "text": format!("*{name}*\n{value}") }))
        })
        .take(FIELDS_MAX)
        .collect();
    blocks.push(json!({ "type": "section", "fields": fields }));
    blocks.extend(notes);

    for diagnostic in message.diagnostics.iter().take(diagnostic_blocks) {
        let (title, _) =
            escape_within(&format!("{} on {}", diagnostic.probe, diagnostic.host), 200);
        let head = format!("*{title}*\n```\n");
        let tail_room = 90; // "\n```" plus the trim note
                            // Three backticks in the output would end the code block.
        let output = diagnostic.output.trim_end().replace("```", "'''");
        let (shown, omitted) =
            escape_within(&output, SECTION_MAX - head.chars().count() - tail_room);
        let note = if omitted > 0 {
            format!("\n_{omitted} more characters on the incident page_")
        } else {
            String::new()
        };
        blocks.push(mrkdwn_section(format!("{head}{shown}\n```{note}")));
    }
    let hidden = message.diagnostics.len().saturating_sub(diagnostic_blocks);
    if hidden > 0 {
        blocks.push(json!({ "type": "context", "elements": [{ "type": "mrkdwn",
            "text": format!("{hidden} more diagnostics on the incident page") }] }));
    }

    let mut links = vec![link(
        &message.incident_url,
        &format!("Incident {}", incident.key),
    )];
    for ticket in &message.tickets {
        links.push(link(
            &ticket.url,
            &format!("{} {}", capitalize(&ticket.tracker), ticket.id),
        ));
    }
    if let Some(url) = &a.generator_url {
        links.push(link(url, "Source"));
    }
    blocks.push(mrkdwn_section(links.join("  ·  ")));

    json!({ "text": cut(&mrkdwn_escape(&facts.subject), SECTION_MAX), "blocks": blocks })
}

/// `<url|text>`: the URL may not hold the characters that end the link.
fn link(url: &str, text: &str) -> String {
    let url = url
        .replace('|', "%7C")
        .replace('<', "%3C")
        .replace('>', "%3E");
    format!("<{url}|{}>", mrkdwn_escape(text))
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample_message;
    use vigil_actions::Diagnostic;

    fn section_texts(payload: &Value) -> Vec<String> {
        payload["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|b| b["text"]["text"].as_str().map(str::to_string))
            .collect()
    }

    #[test]
    fn blocks_hold_header_fields_diagnostics_and_links() {
        let message = sample_message(MessageKind::Opened);
        let p = payload(&message, "main");
        assert_eq!(p["blocks"][0]["type"], "header");
        assert_eq!(
            p["blocks"][0]["text"]["text"],
            ":rotating_light: High CPU Utilization Alert : web-01"
        );
        let fields = p["blocks"][2]["fields"].as_array().unwrap();
        assert!(fields.len() <= FIELDS_MAX);
        assert!(fields
            .iter()
            .any(|f| f["text"] == "*Appcode*\nhotel_booking_api"));
        let texts = section_texts(&p);
        assert!(texts.iter().any(|t| t.contains("```\n  PID USER")));
        assert!(texts
            .iter()
            .any(|t| t.contains("<https://jira.example.com/browse/OPS-1|Jira OPS-1>")));
    }

    #[test]
    fn long_and_many_diagnostics_stay_within_slack_limits() {
        let mut message = sample_message(MessageKind::Opened);
        message.diagnostics = (0..60)
            .map(|i| Diagnostic {
                probe: format!("p{i}"),
                host: "web-01".into(),
                output: "<&>".repeat(5000),
            })
            .collect();
        let p = payload(&message, &"m".repeat(5000));
        let blocks = p["blocks"].as_array().unwrap();
        assert!(blocks.len() <= 50, "{}", blocks.len());
        for text in section_texts(&p) {
            assert!(
                text.chars().count() <= SECTION_MAX,
                "{}",
                text.chars().count()
            );
        }
        let texts = section_texts(&p);
        let first = texts
            .iter()
            .find(|t| t.starts_with("*p0 on web-01*"))
            .unwrap();
        assert!(
            first.contains("more characters on the incident page"),
            "{first}"
        );
        assert!(first.contains("&lt;&amp;&gt;"));
        assert!(blocks
            .iter()
            .any(|b| b["elements"][0]["text"] == "15 more diagnostics on the incident page"));
    }

    #[test]
    fn pending_probes_and_follow_ups_are_said_outside_the_template() {
        let mut message = sample_message(MessageKind::Opened);
        message.diagnostics_pending = true;
        let p = payload(&message, "main");
        assert_eq!(p["blocks"][2]["type"], "section");
        assert!(p["blocks"][2]["fields"].is_array());
        assert_eq!(
            p["blocks"][3]["text"]["text"],
            "*Diagnostics: more probes were still running at the deadline; a follow-up message will carry them.*"
        );

        let mut message = sample_message(MessageKind::Diagnostics);
        message.diagnostics.clear();
        message.incident.timeline.push(vigil_core::TimelineEntry {
            at: message.incident.opened_at,
            kind: vigil_core::TimelineKind::HostCheck,
            message: "probe `top_cpu` timed out on web-01 (30000 ms): <killed>".into(),
            event_id: None,
        });
        let p = payload(&message, "main");
        assert!(p["blocks"][0]["text"]["text"]
            .as_str()
            .is_some_and(|h| h.starts_with(":mag: [vigil] INC-7 diagnostics: ")));
        let texts = section_texts(&p);
        assert!(
            texts[2].starts_with("Probe results for incident INC-7"),
            "{texts:?}"
        );
        assert_eq!(
            texts[3],
            "probe `top_cpu` timed out on web-01 (30000 ms): &lt;killed&gt;"
        );
    }

    #[test]
    fn pending_notes_name_the_probes_escaped() {
        let mut message = sample_message(MessageKind::Opened);
        message.diagnostics.clear();
        message.diagnostics_pending = true;
        message.pending_probes = vec!["command:a<b> on web-01".into()];
        let texts = section_texts(&payload(&message, "main"));
        assert!(
            texts.iter().any(|t| t
                == "*Diagnostics: still running at the deadline: command:a&lt;b&gt; on web-01; a follow-up message will carry them.*"),
            "{texts:?}"
        );
    }

    #[test]
    fn notes_leave_room_within_the_block_limit() {
        let mut message = sample_message(MessageKind::Diagnostics);
        message.diagnostics_pending = true;
        message.diagnostics = (0..60)
            .map(|i| Diagnostic {
                probe: format!("p{i}"),
                host: "web-01".into(),
                output: "x".into(),
            })
            .collect();
        let p = payload(&message, "main");
        let blocks = p["blocks"].as_array().unwrap();
        assert!(blocks.len() <= 50, "{}", blocks.len());
        assert!(blocks
            .iter()
            .any(|b| b["elements"][0]["text"] == "17 more diagnostics on the incident page"));
    }

    #[test]
    fn escaping_never_splits_an_entity() {
        assert_eq!(escape_within("a<b", 10), ("a&lt;b".to_string(), 0));
        assert_eq!(escape_within("a<b", 4), ("a".to_string(), 2));
    }
}
