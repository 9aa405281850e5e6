//! The outside world's side of playbooks: implementations of [`vigil_actions::Tracker`] and
//! [`vigil_actions::Notifier`].
//!
//! * [`jira`] — [`JiraTracker`]: one Jira issue per incident over the REST API v2 (Cloud with
//!   e-mail + API token, Data Center with a personal access token). Every call is safe to
//!   repeat: `open` searches for the label `vigil-<incident key>` before creating, comments
//!   carry a `[vigil:<idempotency key>]` marker that is looked for before posting, and
//!   `resolve` does nothing to an issue already in the target status.
//! * [`email`] — [`EmailNotifier`]: a text + HTML message over SMTP (plain, STARTTLS or TLS),
//!   rendered from minijinja templates, with a Message-ID derived from the idempotency key.
//! * [`slack`] — [`SlackNotifier`]: an incoming-webhook post with Block Kit blocks, kept
//!   within Slack's size limits.
//! * [`webhook`] — [`WebhookNotifier`]: the incident as JSON, signed with HMAC-SHA256
//!   (`X-Vigil-Signature: sha256=…`).
//! * [`config`] — [`IntegrationsConfig`]: the `[integrations]` settings, overlaid with
//!   `VIGIL_*` environment variables, built into [`Integrations`]. Templates are checked at
//!   build time by rendering them for [`sample_message`].
//!
//! Errors reaching a runner are [`vigil_actions::ActionError`]: `Transient` for timeouts,
//! refused connections, HTTP 408/429/5xx and SMTP 4xx (with `retry_after_ms` from a
//! `Retry-After` header); `Permanent` for everything retrying cannot fix (bad credentials,
//! validation errors, SMTP 5xx). Secrets never appear in errors, logs or `Debug` output.

pub mod config;
pub mod email;
mod http;
pub mod jira;
mod render;
pub mod slack;
pub mod webhook;

pub use config::{
    EmailConfig, EmailTemplates, Integrations, IntegrationsConfig, JiraConfig, SlackConfig,
    WebhookConfig,
};
pub use email::EmailNotifier;
pub use jira::JiraTracker;
pub use render::html_escape;
pub use slack::SlackNotifier;
pub use webhook::{signature, WebhookNotifier};

use std::collections::BTreeMap;

use vigil_actions::{Diagnostic, ExternalTicket, IdempotencyKey, Message, MessageKind};
use vigil_core::{
    AlarmFacts, AlarmState, Incident, IncidentStatus, Severity, TimelineEntry, TimelineKind,
    Timestamp,
};

/// A setting that keeps an integration from being built. Messages name the setting (and the
/// environment variable that can supply it) so an operator can fix it without reading code.
#[derive(Debug, thiserror::Error)]
pub enum IntegrationError {
    /// A required setting is empty.
    #[error("{field} is required: set it in the config or with {env}")]
    Missing {
        field: &'static str,
        env: &'static str,
    },
    /// A setting has a value that cannot work (a malformed URL or address).
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// A template does not parse, or fails to render the sample incident.
    #[error("template {name} does not work: {error}")]
    Template { name: String, error: String },
}

impl IntegrationError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        IntegrationError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// A fixed time of the sample incident (`2024-08-23T06:00:33Z`).
fn sample_time(text: &str) -> Timestamp {
    text.parse().unwrap_or_default()
}

/// A CPU alarm on `web-01` with every field filled in, as the built-in alarm engine would
/// produce it. Templates are rendered with it at build time, and tests elsewhere may use it.
pub fn sample_incident() -> Incident {
    let alarm = AlarmFacts {
        alarm_name: "ServerCpuTooHigh".into(),
        state: Some(AlarmState::Alarm),
        previous_state: Some(AlarmState::Ok),
        reason: Some(
            "Threshold Crossed: 3 out of the last 3 datapoints [91.2 (23/08/24 06:00:00)] were \
             greater than the threshold (80.0)."
                .into(),
        ),
        resource: "arn:aws:cloudwatch:us-east-1:123456789012:alarm:ServerCpuTooHigh".into(),
        source: "vigil.alarms".into(),
        account: "123456789012".into(),
        region: "us-east-1".into(),
        state_time: Some("2024-08-23T06:00:32Z".into()),
        metric_namespace: Some("AWS/EC2".into()),
        metric_name: Some("CPUUtilization".into()),
        statistic: Some("Average".into()),
        period: Some(60.0),
        dimensions: BTreeMap::from([("InstanceId".into(), "i-0abc123def4567890".into())]),
        threshold: Some(80.0),
        value: Some(91.2),
        description: Some("CPU above 80% for 3 minutes".into()),
        host: Some("web-01".into()),
        instance_id: Some("i-0abc123def4567890".into()),
        labels: BTreeMap::from([
            ("appcode".into(), "hotel_booking_api".into()),
            ("severity".into(), "high".into()),
        ]),
        annotations: BTreeMap::from([("runbook".into(), "https://wiki.example.com/cpu".into())]),
        generator_url: Some("https://grafana.example.com/alerting/list".into()),
        starts_at: Some("2024-08-23T06:00:00Z".into()),
        severity: Some("high".into()),
        ..AlarmFacts::default()
    };
    Incident {
        key: "INC-7".into(),
        title: alarm.title(),
        status: IncidentStatus::Open,
        severity: Severity::High,
        count: 1,
        group_key:
            "ServerCpuTooHigh|arn:aws:cloudwatch:us-east-1:123456789012:alarm:ServerCpuTooHigh"
                .into(),
        opened_at: sample_time("2024-08-23T06:00:33Z"),
        acknowledged_at: None,
        resolved_at: None,
        last_event_at: sample_time("2024-08-23T06:00:33Z"),
        alarm,
        timeline: vec![TimelineEntry {
            at: sample_time("2024-08-23T06:00:33Z"),
            kind: TimelineKind::Opened,
            message: "opened from ServerCpuTooHigh".into(),
            event_id: None,
        }],
        kind: vigil_core::IncidentKind::Alarm,
        storm: None,
        members: Vec::new(),
    }
}

/// A message about [`sample_incident`] with one diagnostic and one Jira ticket, sent after
/// every probe answered (`diagnostics_pending` false).
pub fn sample_message(kind: MessageKind) -> Message {
    let step = match kind {
        MessageKind::Opened => "notify-opened",
        MessageKind::Resolved => "notify-resolved",
        MessageKind::Diagnostics => "notify-diagnostics",
        MessageKind::Digest => "notify-digest",
    };
    Message {
        key: IdempotencyKey::new("INC-7", step),
        kind,
        incident: sample_incident(),
        diagnostics: vec![Diagnostic {
            probe: "top_cpu".into(),
            host: "web-01".into(),
            output:
                "  PID USER     %CPU COMMAND\n 4242 app      97.0 java\n  311 root      1.2 sshd"
                    .into(),
        }],
        diagnostics_pending: false,
        pending_probes: Vec::new(),
        tickets: vec![ExternalTicket {
            tracker: "jira".into(),
            id: "OPS-1".into(),
            url: "https://jira.example.com/browse/OPS-1".into(),
        }],
        incident_url: "https://vigil.example.com/ui/incidents/INC-7".into(),
        recipients: Vec::new(),
    }
}
