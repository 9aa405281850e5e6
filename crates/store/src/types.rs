//! The values the store contract speaks in. States are enums: a value read back that this
//! vigil does not know is an error naming the row ([`crate::StoreError::Corrupt`]), never a
//! default.

use std::time::Duration;

use serde::Serialize;
use vigil_core::{AlarmFacts, AlarmState, Event, IncidentStatus, Severity, TimelineKind};

/// Every time the store keeps, UTC. Stored with millisecond precision.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// Truncates to what the store keeps, so a value read back equals the value written.
pub fn to_millis(t: Timestamp) -> Timestamp {
    chrono::DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// Accepted events from one request.
#[derive(Debug, Clone)]
pub struct EventBatch {
    /// Which endpoint took them (`events`, `sns`, `alertmanager`, `alarms`, `escalation`).
    pub endpoint: String,
    pub events: Vec<Event>,
}

/// An accepted event waiting for (or past) processing.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub seq: i64,
    pub endpoint: String,
    pub event: Event,
}

/// How far processing is behind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Events accepted and not yet processed.
    pub events: u64,
    /// When the oldest of them was accepted; `None` when there are none.
    pub oldest_accepted_at: Option<Timestamp>,
}

/// An accepted event as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EventRecord {
    pub endpoint: String,
    #[schema(value_type = String, format = DateTime)]
    pub received_at: Timestamp,
    pub processed: bool,
    pub event: Event,
}

/// What processing decided for one event.
#[derive(Debug, Clone)]
pub struct Decision {
    pub seq: i64,
    pub event_id: String,
    pub effect: Effect,
}

#[derive(Debug, Clone)]
pub enum Effect {
    /// No rule gave the event anything to do: it is only marked processed.
    Nothing,
    /// An alarm event: open, repeat or resolve its group's incident.
    Alarm(Box<AlarmUpdate>),
    /// A run for an existing incident (an escalation's notifications).
    Run { incident_key: String, run: NewRun },
}

/// An alarm event's effect on incidents, with the work each outcome causes. The store
/// decides which outcome it is inside the transaction and journals that outcome's work.
#[derive(Debug, Clone)]
pub struct AlarmUpdate {
    pub facts: AlarmFacts,
    pub group_key: String,
    pub severity: Severity,
    pub action: AlarmAction,
    /// Journaled when the event opens a new incident.
    pub on_open: Work,
    /// Journaled when the event resolves the group's incident.
    pub on_resolve: Work,
    /// Storm grouping for the alarm's scope; `None` when storms are off.
    pub storm: Option<Box<StormPlan>>,
}

/// How an opening incident takes part in a storm, decided inside the store's transaction:
/// when more than `threshold` incidents of one scope open within `window`, a storm
/// incident opens and lists them; while it is unresolved, later openings of the scope join
/// it. A member's own outward run is not journaled (or, if not started yet, is superseded):
/// the storm's carries it. Its probe jobs still run.
#[derive(Debug, Clone)]
pub struct StormPlan {
    /// Rule and scope values (`vigil_core::storm_scope`).
    pub scope: String,
    pub threshold: u32,
    pub window: Duration,
    pub title: String,
    /// The storm's own outward run when it forms.
    pub on_form: Option<NewRun>,
    /// Journaled when a member joins and no digest is waiting; its `not_before` is put at
    /// least `digest_interval` after the storm's previous run.
    pub digest: Option<NewRun>,
    pub digest_interval: Duration,
    /// The storm's run when its last member recovers.
    pub on_resolve: Option<NewRun>,
}

impl StormPlan {
    /// The group key of a scope's storm incident (one unresolved storm per scope). The
    /// unit separator keeps it apart from every alarm's group key, whose values are joined
    /// with `|` and could spell `storm|…`.
    pub fn group_key(&self) -> String {
        format!("storm\u{1f}{}", self.scope)
    }
}

impl AlarmUpdate {
    fn state(&self) -> &'static str {
        self.facts.state.map(|s| s.as_str()).unwrap_or("unknown")
    }

    /// The timeline entry of the event that opens an incident.
    pub fn opened_message(&self) -> String {
        format!(
            "opened: {} — {}",
            self.state(),
            self.facts.reason.as_deref().unwrap_or("no reason given")
        )
    }

    /// The timeline entry of a repeat, the incident's `count`th event.
    pub fn repeat_message(&self, count: u64) -> String {
        format!(
            "repeat #{count}: {} — {}",
            self.state(),
            self.facts.reason.as_deref().unwrap_or("no reason given")
        )
    }

    /// The timeline entry of the recovery that resolves an incident.
    pub fn resolved_message(&self) -> String {
        format!(
            "resolved: alarm is {} — {}",
            self.state(),
            self.facts.reason.as_deref().unwrap_or("recovered")
        )
    }
}

/// What an alarm event does to incidents, decided by the playbook step its rule names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmAction {
    /// Open an incident for the group, or count a repeat on the unresolved one.
    OpenOrRepeat,
    /// Resolve the group's unresolved incident, if any.
    Resolve,
}

/// What processing one event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processed {
    pub seq: i64,
    pub change: IncidentChange,
}

/// What processing one event changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncidentChange {
    Opened {
        key: String,
        /// The storm it is reported with, if any.
        storm: Option<String>,
    },
    Repeated {
        key: String,
        count: u64,
    },
    Resolved {
        key: String,
        /// The storm that resolved with it (its last member).
        storm: Option<String>,
    },
    /// A recovery for a group with nothing open: the event is recorded, nothing changes.
    NothingToResolve,
    /// A run was journaled for an existing incident.
    RunJournaled {
        key: String,
    },
    /// Nothing to do, or the run's incident does not exist.
    Unchanged,
}

/// The work an incident change causes, committed with it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Work {
    /// Timeline entries (what vigil found out about the host, approvals awaited).
    pub notes: Vec<Note>,
    /// Probe jobs for the host's agent.
    pub jobs: Vec<NewJob>,
    /// The outward steps (tickets, comments, notifications).
    pub run: Option<NewRun>,
}

impl Work {
    pub fn is_empty(&self) -> bool {
        self.notes.is_empty() && self.jobs.is_empty() && self.run.is_none()
    }
}

/// A timeline entry to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub kind: TimelineKind,
    pub message: String,
}

impl Note {
    pub fn new(kind: TimelineKind, message: impl Into<String>) -> Note {
        Note {
            kind,
            message: message.into(),
        }
    }
}

/// A probe job to queue. If no agent takes it within `claim_within`, it expires.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub host: String,
    pub probe: String,
    pub args: serde_json::Value,
    pub timeout: Duration,
    pub claim_within: Duration,
    /// Held until an approver approves the incident.
    pub needs_approval: bool,
}

/// Acknowledging or resolving by hand.
#[derive(Debug, Clone)]
pub struct ManualChange {
    pub key: String,
    /// `Acknowledged` or `Resolved`.
    pub to: IncidentStatus,
    pub by: String,
    /// Journaled only if the incident changed.
    pub work: Work,
    pub now: Timestamp,
}

#[derive(Debug, Clone, Default)]
pub struct IncidentFilter {
    pub status: Option<IncidentStatus>,
    /// At most this many, newest first; 0 means 500.
    pub limit: usize,
    /// Only incidents of these Appcodes (a scoped token's subtree); `None` for all.
    pub appcodes: Option<Vec<String>>,
    /// Only alarms' incidents or only storms; `None` for both.
    pub kind: Option<vigil_core::IncidentKind>,
}

/// An open incident nobody acknowledged yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unacknowledged {
    pub key: String,
    pub opened_at: Timestamp,
    pub level: u32,
}

#[derive(Debug, Clone)]
pub struct Escalation {
    pub key: String,
    pub from: u32,
    pub to: u32,
    pub note: Note,
    /// The `vigil.incidents` event that makes the next level's run.
    pub event: Event,
    pub now: Timestamp,
}

/// Which outward run of an incident this is; its name keys its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub enum RunKind {
    Opened,
    Resolved,
    /// Notifications to the next level up the application tree.
    Escalated(u32),
    /// Probe results that arrived after a message went out without them.
    Diagnostics,
    /// A storm's news since its last message: members that joined, what their probes found.
    Digest,
}

impl RunKind {
    pub fn as_string(self) -> String {
        match self {
            RunKind::Opened => "opened".into(),
            RunKind::Resolved => "resolved".into(),
            RunKind::Escalated(level) => format!("escalated-{level}"),
            RunKind::Diagnostics => "diagnostics".into(),
            RunKind::Digest => "digest".into(),
        }
    }

    pub fn parse(s: &str) -> Option<RunKind> {
        match s {
            "opened" => Some(RunKind::Opened),
            "resolved" => Some(RunKind::Resolved),
            "diagnostics" => Some(RunKind::Diagnostics),
            "digest" => Some(RunKind::Digest),
            _ => s
                .strip_prefix("escalated-")
                .and_then(|l| l.parse().ok())
                .map(RunKind::Escalated),
        }
    }
}

impl From<RunKind> for String {
    fn from(kind: RunKind) -> String {
        kind.as_string()
    }
}

/// Serialised as its name ([`RunKind::as_string`]): `opened`, `resolved`, `diagnostics`,
/// `digest` or `escalated-N`.
impl utoipa::PartialSchema for RunKind {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(
                "^(opened|resolved|diagnostics|digest|escalated-(0|[1-9][0-9]*))$",
            ))
            .description(Some(
                "Which outward run of an incident: `opened`, `resolved`, `diagnostics`, \
                 `digest` (a storm's news), or `escalated-N` for the notifications to level N \
                 of the application tree.",
            ))
            .into()
    }
}

impl utoipa::ToSchema for RunKind {}

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        /// Serialised as its text: one of the names listed here. (Written by hand: the
        /// schema derive does not see a `rename` built by this macro.)
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

text_enum!(
    /// What a run step does.
    StepName {
        /// Open a ticket in a tracker.
        Ticket = "ticket",
        /// Attach the diagnostics to the ticket.
        Comment = "comment",
        ResolveTicket = "resolve_ticket",
        /// Send a message on a channel.
        Notify = "notify",
        /// Record that nobody could be told (no channel configured).
        Undelivered = "undelivered",
    }
);

text_enum!(
    /// Which outside system a step talks to.
    Channel {
        Jira = "jira",
        Email = "email",
        Slack = "slack",
        Webhook = "webhook",
        /// No channel: the step only records something.
        None = "none",
    }
);

text_enum!(
    StepStatus {
        Pending = "pending",
        Done = "done",
        Failed = "failed",
        Skipped = "skipped",
    }
);

text_enum!(
    /// What a token may do.
    TokenRole {
        /// The API (limited to a subtree when scoped).
        Admin = "admin",
        /// One host's agent, on `/api/v1/agent/…` only.
        Host = "host",
    }
);

text_enum!(
    /// What vigil decided about an SNS subscription request.
    SnsStatus {
        /// Confirmation is being attempted.
        Confirming = "confirming",
        Confirmed = "confirmed",
        /// Its topic is not allowed, or its SubscribeURL is not SNS's.
        Refused = "refused",
        /// Confirming failed.
        Failed = "failed",
    }
);

/// One step to journal when a run is created.
#[derive(Debug, Clone, PartialEq)]
pub struct NewStep {
    pub name: StepName,
    pub channel: Channel,
    /// Addresses beyond the channel's own (email).
    pub recipients: Vec<String>,
    /// Give up (and say so on the incident) after this time.
    pub deadline: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    pub kind: RunKind,
    pub steps: Vec<NewStep>,
    /// Nothing of the run is done before this time (a new incident's `group_wait`, a
    /// storm digest's `group_interval`); `None`: at once.
    pub not_before: Option<Timestamp>,
}

/// A journaled step, as the runner and the delivery log see it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RunStep {
    pub run_id: i64,
    pub position: i64,
    pub incident_key: String,
    pub kind: RunKind,
    pub name: StepName,
    pub channel: Channel,
    pub recipients: Vec<String>,
    pub status: StepStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub external_id: Option<String>,
    pub link: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub next_attempt_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub deadline: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    /// The worker holding the step, while one does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_owner: Option<String>,
}

impl RunStep {
    pub fn reference(&self, worker: &str) -> StepRef {
        StepRef {
            run_id: self.run_id,
            position: self.position,
            worker: worker.to_string(),
        }
    }
}

/// A claimed step, named by the worker holding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRef {
    pub run_id: i64,
    pub position: i64,
    pub worker: String,
}

/// How a claimed step ended.
#[derive(Debug, Clone, PartialEq)]
pub struct StepFinish {
    pub status: StepStatus,
    pub attempts: u32,
    pub error: Option<String>,
    pub external_id: Option<String>,
    pub link: Option<String>,
    /// The ticket a `ticket` step opened.
    pub ticket: Option<TicketRecord>,
    pub note: Option<Note>,
    /// A run to journal with this outcome (probe results to send when they arrive).
    pub followup: Option<NewRun>,
}

impl StepFinish {
    pub fn new(status: StepStatus, attempts: u32) -> StepFinish {
        StepFinish {
            status,
            attempts,
            error: None,
            external_id: None,
            link: None,
            ticket: None,
            note: None,
            followup: None,
        }
    }
}

/// A claimed step to try again later.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRetry {
    pub attempts: u32,
    pub error: Option<String>,
    pub next_attempt_at: Timestamp,
    pub note: Option<Note>,
}

/// A ticket opened for an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TicketRecord {
    pub tracker: Channel,
    pub id: String,
    pub url: String,
}

/// What a step reads before acting, from one snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct StepContext {
    pub incident: vigil_core::Incident,
    pub tickets: Vec<TicketRecord>,
    /// Every probe job of the incident has ended (or it has none).
    pub jobs_settled: bool,
    pub history: Vec<RunStep>,
}

/// A host to enroll (or re-enroll with a new token).
#[derive(Debug, Clone)]
pub struct NewHost {
    pub name: String,
    pub appcode: Option<String>,
    pub instance_id: Option<String>,
    pub token_hash: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enrollment {
    Created,
    /// The host existed (perhaps revoked, or only bound by an import); it now has a token.
    Renewed,
}

/// The token name a host's agent authenticates with.
pub fn host_token_name(host: &str) -> String {
    format!("host:{host}")
}

/// A job that reached an end, with what the incident timeline needs.
#[derive(Debug, Clone, PartialEq)]
pub struct JobEnd {
    pub id: i64,
    pub host: String,
    pub probe: String,
    pub incident_key: Option<String>,
    pub status: JobStatus,
    /// For expired jobs: whether an agent had taken it (then it never answered).
    pub was_claimed: bool,
    pub host_last_seen_at: Option<Timestamp>,
    /// How long an agent had to take it.
    pub claim_within: Duration,
}

pub use vigil_core::JobStatus;

impl JobEnd {
    /// The timeline's account of a job nobody took or answered in time.
    pub fn describe_expiry(&self) -> String {
        let last_seen = self
            .host_last_seen_at
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_else(|| "never".into());
        if self.was_claimed {
            format!(
                "host unreachable: the agent on {} took probe `{}` but never answered; agent last seen at {last_seen}",
                self.host, self.probe
            )
        } else {
            format!(
                "host unreachable: the agent on {} did not pick up probe `{}` within {} s; agent last seen at {last_seen}",
                self.host,
                self.probe,
                self.claim_within.as_secs()
            )
        }
    }
}

/// A job as queued for an incident.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct JobRecord {
    pub id: i64,
    pub host: String,
    pub probe: String,
    pub status: JobStatus,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

/// The last known state of one alarm instance (alarm × series), with what CloudWatch's
/// DescribeAlarms tells of it, so a restart shows the same answer as before it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmStateRecord {
    pub alarm: String,
    pub series: String,
    pub state: AlarmState,
    pub since: Timestamp,
    /// CloudWatch's `StateReason` of the change. `None` for states saved before reasons
    /// were kept.
    pub reason: Option<String>,
    /// CloudWatch's `StateReasonData`.
    pub reason_data: Option<serde_json::Value>,
    /// The datapoint that decided the change, if it had one.
    pub value: Option<f64>,
}

/// A stored API token: only its SHA-256 hash is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub name: String,
    pub role: TokenRole,
    pub revoked: bool,
    /// The Appcode whose subtree this token is limited to; `None` for all.
    pub scope: Option<String>,
}

/// A token as `vigil token ls` shows it: never its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenListing {
    pub name: String,
    pub role: TokenRole,
    /// The Appcode whose subtree this token is limited to; `None` for all.
    pub scope: Option<String>,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// A web UI login, kept by the hash of its id (the id itself lives only in the cookie).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id_hash: String,
    /// The token's name (`admin`): timeline entries say who acted.
    pub principal: String,
    pub scope: Option<String>,
    pub csrf: String,
    pub expires_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnsSubscription {
    pub topic_arn: String,
    pub message_id: String,
    pub subscribe_url: String,
}

/// One compressed block of a series' one-minute chart history, covering
/// `start_ms..end_ms` (Unix milliseconds). The format of `data` is owned by vigil-history;
/// the store keeps it as opaque bytes. A block is known by `(series, start_ms)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesBlock {
    pub series: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub data: Vec<u8>,
}
