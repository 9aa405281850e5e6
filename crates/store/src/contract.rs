//! The store contract: what the server may ask of durable state, one trait per aggregate.
//! Every backend (SQLite, PostgreSQL) implements all of them and passes the same
//! conformance suite (`crate::conformance`).
//!
//! Two rules shape the methods:
//! * **Outbox.** A state change and the work it causes commit in one transaction: an
//!   incident opened together with its probe jobs and its journaled run, a resolution with
//!   its `resolved` run, an escalation with its event, an alarm state change with its
//!   `vigil.alarms` event. Workers only ever read the journal.
//! * **Claims.** A run step is worked by the one worker that claimed it through the store
//!   (a lease), so an effect without server-side idempotency (email, Slack) happens once.

use std::time::Duration;

use async_trait::async_trait;
use vigil_core::{Event, Heartbeat, Host, Incident, Job, JobResult, JobStatus};

use crate::types::*;
use crate::Result;

/// Accepted events: durable before they are acknowledged, processed once.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Stores every event of every batch in one transaction (one commit for a burst of
    /// requests). Returns, per batch and event, whether it was new (`false`: its id had been
    /// accepted before).
    async fn insert_events(
        &self,
        batches: Vec<EventBatch>,
        received_at: Timestamp,
    ) -> Result<Vec<Vec<bool>>>;

    /// Accepted events not yet processed, oldest first.
    async fn pending_events(&self, limit: usize) -> Result<Vec<StoredEvent>>;

    /// Applies what processing decided for each event and marks it processed, all in one
    /// transaction: the incident change, its timeline, its probe jobs and its journaled run.
    async fn process_events(
        &self,
        decisions: Vec<Decision>,
        now: Timestamp,
    ) -> Result<Vec<Processed>>;

    /// One accepted event by id, and whether processing has finished with it.
    async fn event(&self, id: &str) -> Result<Option<EventRecord>>;

    async fn event_count(&self) -> Result<u64>;

    /// How far processing is behind: events accepted but not processed, and when the
    /// oldest of them was accepted.
    async fn backlog(&self) -> Result<Backlog>;

    /// Records an SNS SubscriptionConfirmation and what vigil decided about it. A message
    /// id seen before changes nothing.
    async fn record_sns_subscription(
        &self,
        subscription: SnsSubscription,
        status: SnsStatus,
        now: Timestamp,
    ) -> Result<()>;

    async fn set_sns_subscription_status(
        &self,
        message_id: &str,
        status: SnsStatus,
        detail: &str,
    ) -> Result<()>;

    /// `(topic_arn, status)` of every recorded subscription, newest first.
    async fn sns_subscriptions(&self) -> Result<Vec<(String, SnsStatus)>>;
}

/// Incidents and their timelines.
#[async_trait]
pub trait IncidentStore: Send + Sync {
    async fn list_incidents(&self, filter: IncidentFilter) -> Result<Vec<Incident>>;

    /// The incident with its whole timeline, or `None` for an unknown key.
    async fn incident(&self, key: &str) -> Result<Option<Incident>>;

    /// Acknowledges or resolves by hand, with the work that causes (a resolution's run), in
    /// one transaction. `Ok(None)`: no such incident; the flag says whether anything changed
    /// (acknowledging twice, or resolving a resolved incident, changes nothing and journals
    /// nothing).
    async fn transition(&self, change: ManualChange) -> Result<Option<(Incident, bool)>>;

    /// Adds an entry to an incident's timeline. False if there is no such incident.
    async fn add_timeline_entry(&self, key: &str, note: Note, now: Timestamp) -> Result<bool>;

    /// The Appcode an incident belongs to.
    async fn incident_appcode(&self, key: &str) -> Result<Option<String>>;

    /// Open (unacknowledged) incidents due to escalate: at a level `L` below
    /// `cutoffs.len()` and opened at or before `cutoffs[L]`. The oldest first, at most
    /// `limit`.
    async fn escalations_due(
        &self,
        cutoffs: &[Timestamp],
        limit: usize,
    ) -> Result<Vec<Unacknowledged>>;

    /// The oldest open (unacknowledged) incident at each escalation level below `levels`,
    /// by level: whichever of them falls due first is the next escalation, so the sweeper
    /// can sleep until then.
    async fn oldest_unacknowledged(&self, levels: usize) -> Result<Vec<Unacknowledged>>;

    /// Raises an open incident's escalation level from `from` to `to`, records the note and
    /// stores the escalation event for processing, in one transaction. False (nothing
    /// written) when someone acknowledged it or another escalation got there first.
    async fn escalate(&self, escalation: Escalation) -> Result<bool>;
}

/// Durable playbook runs: one journal row per step, claimed by one worker at a time.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Claims up to `limit` steps that are due: the first unfinished step of each
    /// unfinished run whose next attempt is due and whose lease is free or expired. Each
    /// claimed step is leased to `worker` until `now + lease`.
    async fn claim_steps(
        &self,
        worker: &str,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<RunStep>>;

    /// Releases every lease `worker` holds: at start, a server whose previous life died
    /// holding steps frees them at once instead of waiting for the leases to run out.
    /// Returns how many were released.
    async fn release_leases(&self, worker: &str) -> Result<u64>;

    /// When the earliest unfinished step becomes due (or its lease runs out); `None` when
    /// the journal has no unfinished step.
    async fn next_step_due(&self) -> Result<Option<Timestamp>>;

    /// Records a claimed step's outcome, and what goes with it (the ticket it opened, a
    /// timeline note, a follow-up run), in one transaction; closes the run when no step is
    /// pending any more. False (nothing written) when `worker` no longer holds the lease.
    async fn finish_step(&self, step: StepRef, finish: StepFinish, now: Timestamp) -> Result<bool>;

    /// Releases a claimed step to be tried again at `next_attempt`, counting the attempt.
    /// False when `worker` no longer holds the lease.
    async fn retry_step(&self, step: StepRef, retry: StepRetry, now: Timestamp) -> Result<bool>;

    /// Everything a step needs to act, read in one consistent snapshot: the incident with
    /// its timeline, its tickets, whether its probe jobs have all ended, and its delivery
    /// log. `None` for an unknown incident.
    async fn step_context(&self, incident_key: &str) -> Result<Option<StepContext>>;

    /// Every step of an incident's runs, oldest first: its delivery log.
    async fn run_steps(&self, incident_key: &str) -> Result<Vec<RunStep>>;

    async fn tickets(&self, incident_key: &str) -> Result<Vec<TicketRecord>>;
}

/// Hosts (enrolled, or declared by a binding) and the probe jobs handed to their agents.
#[async_trait]
pub trait HostStore: Send + Sync {
    /// Enrolls `name` with a token (by hash), or gives an existing host a new token.
    async fn enroll_host(&self, enrollment: NewHost, now: Timestamp) -> Result<Enrollment>;

    /// Revokes a host's token; its agent is refused from then on. False if unknown, only
    /// declared (never enrolled, so there is no token), or already revoked.
    async fn revoke_host(&self, name: &str, now: Timestamp) -> Result<bool>;

    async fn hosts(&self) -> Result<Vec<Host>>;

    async fn host(&self, name: &str) -> Result<Option<Host>>;

    /// The host an alarm is about: by name first, then by EC2 instance id.
    async fn host_for_alarm(
        &self,
        host: Option<&str>,
        instance_id: Option<&str>,
    ) -> Result<Option<Host>>;

    async fn record_heartbeat(
        &self,
        name: &str,
        heartbeat: Heartbeat,
        now: Timestamp,
    ) -> Result<()>;

    /// Keeps the latest metric batch of a host (for `vigil hosts` and the UI).
    async fn record_metrics(&self, name: &str, batch_json: String, now: Timestamp) -> Result<()>;

    async fn last_metrics(&self, name: &str) -> Result<Option<String>>;

    /// Hands the host's queued jobs to its agent, oldest first, marking them running.
    async fn claim_jobs(&self, host: &str, now: Timestamp, limit: usize) -> Result<Vec<Job>>;

    /// Records an agent's answer and the timeline entry made of it, in one transaction.
    /// `None` when the job is not this host's or already ended.
    async fn finish_job(
        &self,
        host: &str,
        id: i64,
        result: JobResult,
        now: Timestamp,
    ) -> Result<Option<JobEnd>>;

    /// Ends jobs no agent took or answered in time, writing each one's "host unreachable"
    /// entry on its incident's timeline.
    async fn expire_jobs(&self, now: Timestamp) -> Result<Vec<JobEnd>>;

    /// When the earliest open job runs out of time (to be taken, or to be answered);
    /// `None` when no job is queued or running.
    async fn next_job_deadline(&self) -> Result<Option<Timestamp>>;

    /// Releases an incident's jobs held for approval and records who approved and when.
    /// Returns the hosts whose agents now have work.
    async fn approve_jobs(
        &self,
        incident_key: &str,
        by: &str,
        claim_within: Duration,
        now: Timestamp,
    ) -> Result<Vec<String>>;

    /// At start: jobs that waited on this server while it was down get their deadlines
    /// counted from now, so a restart is not mistaken for an unreachable host; jobs handed
    /// out before it are offered again (the answer carrying them may never have reached the
    /// agent, which runs a job id once and re-sends a kept answer instead), with time for
    /// the agent to take them or resend its answer.
    async fn renew_job_deadlines(&self, now: Timestamp, claim_within: Duration) -> Result<u64>;

    async fn job_status(&self, id: i64) -> Result<Option<JobStatus>>;

    /// The jobs queued for an incident, oldest first (for the delivery log and tests).
    async fn incident_jobs(&self, incident_key: &str) -> Result<Vec<JobRecord>>;
}

/// Alarm definitions and the state of every alarm instance.
#[async_trait]
pub trait AlarmStore: Send + Sync {
    /// Stores a definition (JSON text) under its name, replacing an older one.
    async fn put_alarm(&self, name: &str, definition: &str, now: Timestamp) -> Result<()>;

    /// Deletes a definition and its instances' states. False if there was none.
    async fn delete_alarm(&self, name: &str) -> Result<bool>;

    /// Every stored definition: (name, JSON text).
    async fn alarms(&self) -> Result<Vec<(String, String)>>;

    async fn alarm_states(&self) -> Result<Vec<AlarmStateRecord>>;

    /// Records state changes together with the `vigil.alarms` events announcing them, in
    /// one transaction: a change is never saved without its event, nor the reverse.
    async fn record_alarm_changes(
        &self,
        states: Vec<AlarmStateRecord>,
        events: Vec<Event>,
        now: Timestamp,
    ) -> Result<()>;
}

/// The compressed one-minute chart history of metric series, kept in blocks so a restarted
/// server shows the charts it showed before. Blocks are opaque bytes here (their format is
/// vigil-history's), known by `(series, start_ms)`.
#[async_trait]
pub trait SeriesHistoryStore: Send + Sync {
    /// Writes blocks in one transaction, replacing a stored block with the same
    /// `(series, start_ms)` (and, within one call, a block by a later one of the same key).
    /// Made for tens of thousands of blocks per call.
    async fn put_series_blocks(&self, blocks: Vec<SeriesBlock>) -> Result<()>;

    /// Blocks whose `end_ms > since_ms`, ordered by `(series, start_ms)` (series by their
    /// bytes), after the keyset cursor `after` (exclusive: the last block of the previous
    /// page), at most `limit`: a server loads a million series' history in pages.
    async fn series_blocks(
        &self,
        since_ms: i64,
        after: Option<(String, i64)>,
        limit: usize,
    ) -> Result<Vec<SeriesBlock>>;

    /// Deletes the blocks whose `end_ms <= before_ms`; returns how many.
    async fn delete_series_blocks_before(&self, before_ms: i64) -> Result<u64>;
}

/// The application tree, tokens and web sessions.
#[async_trait]
pub trait AccessStore: Send + Sync {
    /// Every node: (appcode, definition JSON, retired).
    async fn apps(&self) -> Result<Vec<(String, String, bool)>>;

    /// Writes nodes and host bindings in one transaction (an import, a move, an edit).
    async fn save_apps(
        &self,
        nodes: Vec<(String, String)>,
        bindings: Vec<(String, String)>,
        now: Timestamp,
    ) -> Result<()>;

    /// Marks Appcodes retired for good: they can never be used again.
    async fn retire_apps(&self, codes: Vec<String>, now: Timestamp) -> Result<()>;

    /// Every host's binding: (host, appcode).
    async fn host_bindings(&self) -> Result<Vec<(String, String)>>;

    /// Adds a token by hash; a token with the same name is replaced (rotation).
    async fn put_token(
        &self,
        name: &str,
        hash: &str,
        role: TokenRole,
        now: Timestamp,
    ) -> Result<()>;

    /// Adds a named admin token limited to `scope` (an Appcode's subtree). Fails with
    /// [`crate::StoreError::Conflict`] if the name exists.
    async fn add_scoped_token(
        &self,
        name: &str,
        hash: &str,
        scope: Option<&str>,
        now: Timestamp,
    ) -> Result<()>;

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>>;

    /// Every token (host tokens and revoked ones included), by name; no hashes.
    async fn tokens(&self) -> Result<Vec<TokenListing>>;

    /// Revokes the token `name` from `now` on. False if there is none of that name or it
    /// is revoked already.
    async fn revoke_token(&self, name: &str, now: Timestamp) -> Result<bool>;

    /// Stores a web session (by the hash of its id); expired ones are swept.
    async fn create_session(&self, session: SessionRecord, now: Timestamp) -> Result<()>;

    /// An unexpired session by the hash of its id.
    async fn session(&self, id_hash: &str, now: Timestamp) -> Result<Option<SessionRecord>>;

    async fn delete_session(&self, id_hash: &str) -> Result<()>;
}

/// The whole store, as the server holds it.
pub trait Store:
    EventStore + IncidentStore + RunStore + HostStore + AlarmStore + AccessStore + SeriesHistoryStore
{
    /// Which backend this is, for logs and `vigil` status output.
    fn describe(&self) -> String;
}
