//! From accepted bytes to incidents.
//!
//! ```text
//! handler ──submit──► ingest writer thread ──one transaction per burst──► events table
//!                         │ (replies 202 only after commit)                   │
//!                         └──wake──► processor thread ──rules──► steps ──► incidents
//! ```
//! The processor reads unprocessed events from the store, not from memory, so events
//! accepted before a crash are processed after restart.

use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use vigil_actions::Step;
use vigil_core::{group_key, AlarmFacts, AlarmState, Event, Severity};
use vigil_store::{AlarmAction, IncidentChange, Store, StoreError};

use crate::metrics::{labels, Metrics};
use crate::rules::Rules;

/// Requests gathered into one transaction at most; bounds a burst's commit latency.
const MAX_REQUESTS_PER_COMMIT: usize = 256;
/// Requests waiting for the writer; beyond this, handlers wait (backpressure).
const WRITE_QUEUE: usize = 4096;

struct WriteRequest {
    endpoint: &'static str,
    events: Vec<Event>,
    reply: oneshot::Sender<Result<Vec<bool>, String>>,
}

#[derive(Clone)]
pub struct Ingest {
    queue: mpsc::Sender<WriteRequest>,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("the event store is unavailable: {0}")]
    Store(String),
    #[error("vigil is shutting down")]
    Closed,
}

impl Ingest {
    /// Commits the events; returns for each whether it was new. Resolves only after the
    /// transaction holding them has committed.
    pub async fn submit(
        &self,
        endpoint: &'static str,
        events: Vec<Event>,
    ) -> Result<Vec<bool>, IngestError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(WriteRequest {
                endpoint,
                events,
                reply,
            })
            .await
            .map_err(|_| IngestError::Closed)?;
        match answer.await {
            Ok(Ok(fresh)) => Ok(fresh),
            Ok(Err(e)) => Err(IngestError::Store(e)),
            Err(_) => Err(IngestError::Closed),
        }
    }
}

/// Starts the writer thread. `wake` is poked after every commit that stored new events.
pub fn start_ingest(store: &Store, wake: Wake, now: fn() -> String) -> Result<Ingest, StoreError> {
    let mut writer = store.ingest_writer()?;
    let (queue, mut requests) = mpsc::channel::<WriteRequest>(WRITE_QUEUE);
    std::thread::Builder::new()
        .name("vigil-ingest".into())
        .spawn(move || {
            while let Some(first) = requests.blocking_recv() {
                let mut burst = vec![first];
                while burst.len() < MAX_REQUESTS_PER_COMMIT {
                    match requests.try_recv() {
                        Ok(next) => burst.push(next),
                        Err(_) => break,
                    }
                }
                let batches: Vec<(&str, &[Event])> =
                    burst.iter().map(|r| (r.endpoint, &r.events[..])).collect();
                match writer.insert_batches(&batches, &now()) {
                    Ok(results) => {
                        let any_new = results.iter().flatten().any(|fresh| *fresh);
                        for (request, fresh) in burst.into_iter().zip(results) {
                            let _ = request.reply.send(Ok(fresh));
                        }
                        if any_new {
                            wake.poke();
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "could not store accepted events");
                        for request in burst {
                            let _ = request.reply.send(Err(e.to_string()));
                        }
                    }
                }
            }
        })
        .map_err(|e| StoreError::Corrupt(format!("cannot start the ingest thread: {e}")))?;
    Ok(Ingest { queue })
}

/// A level-triggered doorbell: many pokes while the processor is busy make one wake-up.
#[derive(Clone)]
pub struct Wake(SyncSender<()>);

impl Wake {
    pub fn new() -> (Wake, Receiver<()>) {
        let (tx, rx) = sync_channel(1);
        (Wake(tx), rx)
    }

    pub fn poke(&self) {
        match self.0.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
        }
    }
}

pub struct Processor {
    pub store: Arc<Store>,
    pub rules: Arc<Rules>,
    pub group_by: Vec<String>,
    pub metrics: Arc<Metrics>,
    pub now: fn() -> String,
    pub responder: crate::jobs::Responder,
    pub runner: Arc<crate::runner::Runner>,
    pub ownership: Arc<crate::ownership::Ownership>,
}

/// Batch read from the store per round.
const PROCESS_BATCH: usize = 256;
/// Safety net: look for work this often even without a wake-up.
const IDLE_RECHECK: Duration = Duration::from_secs(1);
/// After a store error, wait before retrying so a broken disk doesn't spin a core.
const ERROR_BACKOFF: Duration = Duration::from_millis(500);

impl Processor {
    /// Names in `notify` steps (`owners`, `oncall`, `escalation`) become addresses from the
    /// application tree.
    fn with_recipients(&self, steps: &[Step], appcode: Option<&str>, level: usize) -> Vec<Step> {
        steps
            .iter()
            .map(|step| match step {
                Step::Notify { to } => Step::Notify {
                    to: self.ownership.resolve_recipients(to, appcode, level),
                },
                other => other.clone(),
            })
            .collect()
    }

    /// A `vigil.incidents` escalation event: notify the level it names.
    fn escalate(&self, event: &Event, steps: &[Step]) -> Result<(), StoreError> {
        if event.source != crate::escalation::SOURCE
            || !steps.iter().any(|s| matches!(s, Step::Notify { .. }))
        {
            return Ok(());
        }
        let (Some(key), Some(level)) = (
            event.detail.get("key").and_then(|k| k.as_str()),
            event.detail.get("level").and_then(|l| l.as_u64()),
        ) else {
            return Ok(());
        };
        let appcode = event.detail.get("appcode").and_then(|a| a.as_str());
        let steps = self.with_recipients(steps, appcode, level as usize);
        self.runner.start_named_run(
            key,
            vigil_actions::MessageKind::Opened,
            &format!("escalated-{level}"),
            &steps,
        )
    }

    pub fn start(self, wake: Receiver<()>) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name("vigil-processor".into())
            .spawn(move || self.run(wake))
            .map(|_| ())
    }

    fn run(self, wake: Receiver<()>) {
        loop {
            match self.process_pending() {
                Ok(0) => match wake.recv_timeout(IDLE_RECHECK) {
                    Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                },
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "event processing failed; retrying");
                    std::thread::sleep(ERROR_BACKOFF);
                }
            }
        }
    }

    /// Processes one batch of pending events; returns how many.
    fn process_pending(&self) -> Result<usize, StoreError> {
        let pending = self.store.pending_events(PROCESS_BATCH)?;
        for stored in &pending {
            self.process(stored.seq, &stored.event)?;
        }
        Ok(pending.len())
    }

    fn process(&self, seq: i64, event: &Event) -> Result<(), StoreError> {
        let started = Instant::now();
        let (rule_names, steps) = self.rules.plan(&event.to_value());
        self.metrics.observe_rule_match(started.elapsed());
        self.metrics
            .inc("vigil_events_processed_total", String::new());

        let mut facts =
            AlarmFacts::from_event(event).unwrap_or_else(|| AlarmFacts::from_other_event(event));
        // An incident belongs to the application of its host unless the alarm says otherwise.
        if facts.appcode.is_none() {
            if let Some(host) = facts.host.clone().or_else(|| facts.instance_id.clone()) {
                facts.appcode = self.ownership.appcode_for_host(&host, &facts.labels);
            }
        }
        let opens = steps.contains(&Step::Incident);
        let resolves = steps.contains(&Step::Resolve);
        let action = match (opens, resolves) {
            (false, false) => {
                self.escalate(event, &steps)?;
                return self.store.mark_processed(seq);
            }
            (true, false) => AlarmAction::OpenOrRepeat,
            (false, true) => AlarmAction::Resolve,
            // A playbook with both follows the alarm: recovery resolves, anything else opens.
            (true, true) if facts.state == Some(AlarmState::Ok) => AlarmAction::Resolve,
            (true, true) => AlarmAction::OpenOrRepeat,
        };
        let key =
            group_key(&facts, &self.group_by).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let severity = Severity::from_label(facts.severity.as_deref());
        let change = self.store.apply_alarm(
            seq,
            &event.id,
            &facts,
            &key,
            severity,
            action,
            &(self.now)(),
        )?;
        match &change {
            IncidentChange::Opened { key: incident } => {
                self.metrics
                    .inc("vigil_incidents_opened_total", String::new());
                tracing::info!(incident = %incident, alarm = %facts.alarm_name, host = facts.host.as_deref().unwrap_or("-"), rules = ?rule_names, "incident opened");
                // Diagnostics are queued after the incident commits; a crash in between
                // leaves the incident without them (the durable playbook runner closes this).
                if let Err(e) = self
                    .responder
                    .run_steps(incident, &facts, &steps, &(self.now)())
                {
                    tracing::error!(incident = %incident, error = %e, "could not queue diagnostics");
                }
                let steps = self.with_recipients(&steps, facts.appcode.as_deref(), 0);
                self.runner
                    .start_run(incident, vigil_actions::MessageKind::Opened, &steps)?;
            }
            IncidentChange::Repeated {
                key: incident,
                count,
            } => {
                self.metrics
                    .inc("vigil_incidents_repeats_total", String::new());
                tracing::debug!(incident = %incident, alarm = %facts.alarm_name, count, "repeat grouped");
            }
            IncidentChange::Resolved { key: incident } => {
                self.metrics.inc(
                    "vigil_incidents_resolved_total",
                    labels(&[("by", "recovery")]),
                );
                tracing::info!(incident = %incident, alarm = %facts.alarm_name, "incident resolved by recovery");
                let steps = self.with_recipients(&steps, facts.appcode.as_deref(), 0);
                self.runner
                    .start_run(incident, vigil_actions::MessageKind::Resolved, &steps)?;
            }
            IncidentChange::NothingToResolve => {
                tracing::debug!(alarm = %facts.alarm_name, "recovery with no open incident");
            }
        }
        Ok(())
    }
}
