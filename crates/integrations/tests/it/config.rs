//! IntegrationsConfig: parsing, the environment overlay, build-time checks, redaction.

use std::collections::HashMap;

use serde_json::json;
use vigil_integrations::{IntegrationError, IntegrationsConfig};

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

fn parse(value: serde_json::Value) -> Result<IntegrationsConfig, serde_json::Error> {
    serde_json::from_value(value)
}

#[test]
fn defaults_and_unknown_fields() {
    let config = parse(json!({
        "jira": { "url": "https://jira.example.com", "token": "t", "project": "OPS" }
    }))
    .expect("parses");
    let jira = config.jira.as_ref().expect("jira section");
    assert_eq!(jira.issue_type, "Incident");
    assert_eq!(jira.resolve_status, "Done");
    assert_eq!(jira.user, None);
    assert!(config.email.is_none() && config.slack.is_none() && config.webhook.is_none());

    let typo = parse(json!({ "jira": { "url": "x", "tokn": "t" } })).unwrap_err();
    assert!(typo.to_string().contains("tokn"), "{typo}");
    let typo = parse(json!({ "emial": {} })).unwrap_err();
    assert!(typo.to_string().contains("emial"), "{typo}");
}

#[test]
fn the_environment_turns_integrations_on_and_build_makes_them() {
    let config = IntegrationsConfig::default()
        .with_env(env(&[
            ("VIGIL_PUBLIC_URL", "https://vigil.example.com"),
            ("VIGIL_JIRA_URL", "https://example.atlassian.net"),
            ("VIGIL_JIRA_USER", "bot@example.com"),
            ("VIGIL_JIRA_TOKEN", "api-token"),
            ("VIGIL_JIRA_PROJECT", "OPS"),
            ("VIGIL_JIRA_ISSUE_TYPE", "Bug"),
            ("VIGIL_SMTP_URL", "smtps://bot:pw@mail.example.com"),
            ("VIGIL_EMAIL_FROM", "vigil@example.com"),
            ("VIGIL_EMAIL_TO", "a@example.com, b@example.com,"),
            (
                "VIGIL_SLACK_WEBHOOK_URL",
                "https://hooks.slack.com/services/T/B/x",
            ),
            ("VIGIL_WEBHOOK_URL", "https://hooks.example.com/vigil"),
            ("VIGIL_WEBHOOK_SECRET", "whsec"),
            // Empty counts as unset.
            ("VIGIL_JIRA_ASSIGNEE_UNUSED", ""),
        ]))
        .expect("env overlay");
    let jira = config.jira.as_ref().expect("jira");
    assert_eq!(jira.issue_type, "Bug");
    assert_eq!(jira.user.as_deref(), Some("bot@example.com"));
    let email = config.email.as_ref().expect("email");
    assert_eq!(email.to, ["a@example.com", "b@example.com"]);
    let built = config.build().expect("build");
    let trackers: Vec<&str> = built.trackers.iter().map(|t| t.name()).collect();
    let channels: Vec<&str> = built.notifiers.iter().map(|n| n.channel()).collect();
    assert_eq!(trackers, ["jira"]);
    assert_eq!(channels, ["email", "slack", "webhook"]);
    assert_eq!(
        format!("{built:?}"),
        r#"Integrations { trackers: ["jira"], notifiers: ["email", "slack", "webhook"] }"#
    );

    // The environment wins over the file; empty values leave the file's.
    let file =
        parse(json!({ "jira": { "url": "https://old", "token": "file-token", "project": "OPS" } }))
            .expect("parses");
    let merged = file
        .with_env(env(&[
            ("VIGIL_JIRA_URL", "https://new"),
            ("VIGIL_JIRA_TOKEN", ""),
        ]))
        .expect("overlay");
    let jira = merged.jira.expect("jira");
    assert_eq!(jira.url, "https://new");
    assert_eq!(jira.token, "file-token");

    assert!(IntegrationsConfig::default()
        .with_env(env(&[]))
        .expect("nothing set")
        .build()
        .expect("nothing to build")
        .notifiers
        .is_empty());
}

#[test]
fn missing_and_malformed_settings_are_named() {
    let error = IntegrationsConfig::default()
        .with_env(env(&[("VIGIL_JIRA_URL", "https://jira.example.com")]))
        .expect("overlay")
        .build()
        .unwrap_err();
    assert!(
        matches!(
            error,
            IntegrationError::Missing {
                field: "jira.token",
                env: "VIGIL_JIRA_TOKEN"
            }
        ),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        "jira.token is required: set it in the config or with VIGIL_JIRA_TOKEN"
    );

    let error = IntegrationsConfig::default()
        .with_env(env(&[(
            "VIGIL_SMTP_URL",
            "smtp://bot:hunter2@mail?tls=sometimes",
        )]))
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("VIGIL_SMTP_URL: "), "{error}");
    assert!(!error.contains("hunter2"), "{error}");

    let config = parse(json!({
        "email": { "smtp_url": "smtp://mail", "from": "vigil@example.com", "to": ["oops"] }
    }))
    .expect("parses");
    let error = config.build().unwrap_err().to_string();
    assert!(
        error.starts_with("email.to: \"oops\" is not an e-mail address"),
        "{error}"
    );

    let config = parse(json!({ "webhook": { "url": "ftp://hooks.example.com" } })).expect("parses");
    let error = config.build().unwrap_err().to_string();
    assert!(error.starts_with("webhook.url: must be an http"), "{error}");
}

#[test]
fn broken_templates_fail_the_build_with_their_name() {
    let email = |templates: serde_json::Value| {
        parse(json!({ "email": {
            "smtp_url": "smtp://mail", "from": "vigil@example.com", "templates": templates
        }}))
        .expect("parses")
        .build()
        .unwrap_err()
    };
    match email(json!({ "html": "<p>{% for x in %}</p>" })) {
        IntegrationError::Template { name, error } => {
            assert_eq!(name, "email.templates.html");
            assert!(error.contains("syntax error"), "{error}");
        }
        other => panic!("expected a template error, got {other}"),
    }
    // Parses, but fails to render: a misspelt field.
    let error = email(json!({ "text": "{{ incident.hots }}" }));
    let text = error.to_string();
    assert!(
        text.starts_with("template email.templates.text does not work: undefined value"),
        "{text}"
    );
    let error = email(json!({ "subject": "{% if false %}x{% endif %}" }));
    assert!(error.to_string().contains("empty subject"), "{error}");

    let slack = parse(json!({ "slack": {
        "webhook_url": "https://hooks.slack.com/services/T/B/x",
        "template": "{{ incident.key | nosuchfilter }}"
    }}))
    .expect("parses")
    .build()
    .unwrap_err()
    .to_string();
    assert!(
        slack.starts_with("template slack.template does not work: "),
        "{slack}"
    );
    assert!(slack.contains("nosuchfilter"), "{slack}");
}

#[test]
fn debug_output_never_shows_secrets() {
    let config = parse(json!({
        "public_url": "https://vigil.example.com",
        "jira": { "url": "https://jira.example.com", "user": "bot", "token": "jira-SECRET-1",
                  "project": "OPS" },
        "email": { "smtp_url": "smtp://bot:smtp-SECRET-2@mail.example.com:587?tls=starttls",
                   "from": "vigil@example.com" },
        "slack": { "webhook_url": "https://hooks.slack.com/services/T0/B0/slack-SECRET-3" },
        "webhook": { "url": "https://hooks.example.com/in?token=hook-SECRET-4",
                     "secret": "hmac-SECRET-5" }
    }))
    .expect("parses");
    let shown = format!("{config:?} {config:#?}");
    assert!(!shown.contains("SECRET"), "{shown}");
    for visible in [
        "https://jira.example.com",
        "mail.example.com:587",
        "https://hooks.slack.com/…",
        "https://hooks.example.com/…",
        "<redacted>",
    ] {
        assert!(shown.contains(visible), "{visible:?} missing from {shown}");
    }
    let built = config.build().expect("builds");
    assert!(!format!("{built:?}").contains("SECRET"));
}
