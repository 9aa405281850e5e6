//! What vigil does about an event. A rule names a [`Playbook`]; a playbook is an ordered
//! list of [`Step`]s. Steps that reach the outside world go through three small traits, so
//! adding an integration is one new module implementing one of them:
//!
//! * [`Executor`] — runs a named probe on a host (the agent; later SSH, SSM);
//! * [`Tracker`] — keeps an external ticket in step with an incident (Jira, …);
//! * [`Notifier`] — tells people (email, Slack, webhooks).

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};
use vigil_core::Incident;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One step of a playbook, as written in config (`{ type = "incident" }`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Open an incident for the alarm's group, or count a repeat on the unresolved one.
    Incident,
    /// Resolve the group's unresolved incident (the alarm recovered).
    Resolve,
    /// Is the host up? Its agent's last heartbeat and collector state go on the timeline.
    CheckHost,
    /// Run probes on the affected host through its agent and attach their output. With no
    /// `probes`, they are chosen from the alarm's metric (CPU → top_cpu, memory → top_mem,
    /// disk → disk_usage; no data → collector_status, collector_restart).
    Diagnose {
        #[serde(default)]
        probes: Vec<String>,
    },
    /// Run a remediation probe on the host (e.g. `collector_restart`). With `approval =
    /// true` it waits until an approver of the incident's application approves it.
    Remediate {
        probe: String,
        #[serde(default)]
        approval: bool,
    },
    /// Open a ticket in every configured tracker (Jira) and comment the diagnostics on it;
    /// on recovery, comment and move it to its resolved status.
    Ticket,
    /// Tell people on every configured channel (email, Slack, webhook) — once per incident
    /// change, not per repeat. `to` lists email addresses and the words `owners`, `oncall`,
    /// `approvers` (from the incident's application, inherited up the tree) and
    /// `escalation` (the next level up); with nobody found, the channel's own recipients.
    Notify {
        #[serde(default)]
        to: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    pub steps: Vec<Step>,
}

/// Built-in playbooks; config may add more or replace these by name.
pub fn default_playbooks() -> Vec<(String, Playbook)> {
    vec![
        (
            "respond".to_string(),
            Playbook {
                steps: vec![
                    Step::Incident,
                    Step::CheckHost,
                    Step::Diagnose { probes: Vec::new() },
                    Step::Ticket,
                    Step::Notify {
                        to: vec!["owners".into(), "oncall".into()],
                    },
                ],
            },
        ),
        (
            "recover".to_string(),
            Playbook {
                steps: vec![
                    Step::Resolve,
                    Step::Ticket,
                    Step::Notify {
                        to: vec!["owners".into(), "oncall".into()],
                    },
                ],
            },
        ),
        (
            "escalate".to_string(),
            Playbook {
                steps: vec![Step::Notify {
                    to: vec!["escalation".into()],
                }],
            },
        ),
    ]
}

/// An effect's identity, derived from (incident, step), so a retried or resumed step is
/// recognised by the system it reaches (a Jira label, an email Message-ID).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(pub String);

impl IdempotencyKey {
    pub fn new(incident_key: &str, step: &str) -> IdempotencyKey {
        IdempotencyKey(format!("vigil-{incident_key}-{step}"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// Worth retrying: timeouts, 429/503, connection refused. `retry_after_ms` honours a
    /// server's `Retry-After`.
    #[error("{what} (will retry)")]
    Transient {
        what: String,
        retry_after_ms: Option<u64>,
    },
    /// Retrying cannot help: bad credentials, validation errors, refused probes.
    #[error("{0}")]
    Permanent(String),
}

/// A probe the server asks a host to run. Only the probe's name and plain parameters
/// travel; the host decides what that name means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeRequest {
    pub probe: String,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeOutcome {
    pub host: String,
    pub probe: String,
    pub exit_code: Option<i32>,
    pub output: String,
    pub truncated: bool,
    pub duration_ms: u64,
}

pub trait Executor: Send + Sync {
    fn run_probe<'a>(
        &'a self,
        host: &'a str,
        request: &'a ProbeRequest,
    ) -> BoxFuture<'a, Result<ProbeOutcome, ActionError>>;
}

/// A ticket in an external tracker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalTicket {
    /// The tracker's name, e.g. `jira`.
    pub tracker: String,
    /// The tracker's id for it, e.g. `OPS-42`.
    pub id: String,
    /// Where a human opens it.
    pub url: String,
}

/// Keeps an external ticket in step with an incident. Every call must be safe to repeat
/// with the same key: a crash or a timeout leaves the outcome unknown, and the runner
/// simply calls again.
pub trait Tracker: Send + Sync {
    fn name(&self) -> &str;
    /// Creates the ticket, or returns the one an earlier attempt with the same key made
    /// (Jira: searched by the label `vigil-<incident key>`).
    fn open<'a>(
        &'a self,
        incident: &'a Incident,
        key: &'a IdempotencyKey,
    ) -> BoxFuture<'a, Result<ExternalTicket, ActionError>>;
    /// Adds a comment unless one carrying `key` is already there.
    fn comment<'a>(
        &'a self,
        ticket: &'a ExternalTicket,
        text: &'a str,
        key: &'a IdempotencyKey,
    ) -> BoxFuture<'a, Result<(), ActionError>>;
    /// Records the recovery: a comment (carrying `key`) and the configured transition.
    fn resolve<'a>(
        &'a self,
        ticket: &'a ExternalTicket,
        incident: &'a Incident,
        key: &'a IdempotencyKey,
    ) -> BoxFuture<'a, Result<(), ActionError>>;
}

/// What a notification announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    Opened,
    Resolved,
    /// Probe results that were still running when the first message went out.
    Diagnostics,
    /// A storm's news since its last message.
    Digest,
}

/// Output of one probe, for messages and tickets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub probe: String,
    pub host: String,
    pub output: String,
}

/// Everything a channel needs to tell people about an incident; each notifier renders it
/// with its own templates.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Derived from (incident, step): becomes the email Message-ID, the webhook's delivery id.
    pub key: IdempotencyKey,
    pub kind: MessageKind,
    /// The incident with its timeline.
    pub incident: Incident,
    pub diagnostics: Vec<Diagnostic>,
    /// Probes were still running at the message's deadline: it says so, and a
    /// [`MessageKind::Diagnostics`] follow-up carries their results.
    pub diagnostics_pending: bool,
    /// With `diagnostics_pending`: the probes not yet ended, as "probe on host"
    /// (`top_cpu on web-01`), so the message can name them. May be empty when they could
    /// not be read.
    pub pending_probes: Vec<String>,
    pub tickets: Vec<ExternalTicket>,
    /// The incident's page in vigil's web UI.
    pub incident_url: String,
    /// Addresses for channels that have them (email); empty means the channel's defaults.
    pub recipients: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub channel: String,
    /// The receiving system's id for the message, when it gives one (email Message-ID).
    pub external_id: Option<String>,
    /// A human-readable note: "accepted by smtp.example.com:587 for 2 recipients".
    pub detail: Option<String>,
}

/// Tells people: email, chat, webhooks.
pub trait Notifier: Send + Sync {
    /// `email`, `slack`, `webhook`, …
    fn channel(&self) -> &str;
    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<Delivery, ActionError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_key_is_derived_from_incident_and_step() {
        assert_eq!(
            IdempotencyKey::new("INC-7", "ticket").0,
            "vigil-INC-7-ticket"
        );
    }
}
