//! vigil's domain types. Pure: no I/O, no clock, no randomness — callers pass those in.
//!
//! * [`Event`] — the EventBridge envelope every signal travels in.
//! * [`AlarmFacts`] — what an alarm-state-change event says, extracted once from
//!   CloudWatch-shaped `detail` (CloudWatch itself, vigil's own alarms, normalised
//!   Alertmanager alerts).
//! * [`Incident`] and its [`TimelineEntry`]s — the record a human reads.
//! * [`Host`], [`Job`] and the agent's wire types.

mod alarm;
mod event;
mod host;
mod incident;
mod storm;

/// Every time vigil records, UTC.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

pub use alarm::{AlarmFacts, AlarmState};
pub use event::{Event, EventError, EventInput, ALARM_STATE_CHANGE, CLOUDWATCH_ALARM_STATE_CHANGE};
pub use host::{
    is_known_probe, probes_for, valid_host_name, Heartbeat, Host, HostLifecycle, Job, JobResult,
    JobStatus, MetricBatch, MetricSample, BUILT_IN_PROBES, FINAL_JOB_STATUSES,
};
pub use incident::{
    group_key, group_key_fields_valid, repeat_is_noted, GroupKeyError, Incident, IncidentStatus,
    Severity, TimelineEntry, TimelineKind,
};
pub use storm::{
    first_hosts, member_lines, pages, storm_scope, storm_title, IncidentKind, ProbeTally,
    StormFindings, StormMember,
};
