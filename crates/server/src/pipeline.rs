//! From accepted bytes to incidents.
//!
//! ```text
//! handler ──submit──► ingest writer ──one transaction per burst──► events
//!                         │ (replies 202 only after commit)           │
//!                         └──wake──► processor ──rules──► decisions ──► one transaction:
//!                                                      incident change + probe jobs +
//!                                                      journaled run + processed mark
//! ```
//! The processor reads unprocessed events from the store, not from memory, so events
//! accepted before a crash are processed after restart. Everything an event causes commits
//! with its processed mark (the outbox): a crash replays the event or finds all its work
//! journaled, never half.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, Notify};
use vigil_actions::Step;
use vigil_core::{group_key, AlarmFacts, AlarmState, Event, Severity};
use vigil_store::{
    AlarmAction, AlarmUpdate, Decision, Effect, EventBatch, IncidentChange, RunKind, Store,
    StoreError, StoredEvent, StormPlan, Work,
};

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

/// Starts the ingest writer: requests that arrive while a commit is under way go into the
/// next one together (group commit). `wake` is rung after every commit that stored new
/// events.
pub fn start_ingest(store: Arc<dyn Store>, wake: Wake) -> Ingest {
    let (queue, mut requests) = mpsc::channel::<WriteRequest>(WRITE_QUEUE);
    tokio::spawn(async move {
        while let Some(first) = requests.recv().await {
            let mut burst = vec![first];
            while burst.len() < MAX_REQUESTS_PER_COMMIT {
                match requests.try_recv() {
                    Ok(next) => burst.push(next),
                    Err(_) => break,
                }
            }
            let mut replies = Vec::with_capacity(burst.len());
            let batches: Vec<EventBatch> = burst
                .into_iter()
                .map(|request| {
                    replies.push(request.reply);
                    EventBatch {
                        endpoint: request.endpoint.to_string(),
                        events: request.events,
                    }
                })
                .collect();
            match store.insert_events(batches, crate::now()).await {
                Ok(results) => {
                    let any_new = results.iter().flatten().any(|fresh| *fresh);
                    if any_new {
                        wake.poke();
                    }
                    for (reply, fresh) in replies.into_iter().zip(results) {
                        let _ = reply.send(Ok(fresh));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not store accepted events");
                    for reply in replies {
                        let _ = reply.send(Err(e.to_string()));
                    }
                }
            }
        }
    });
    Ingest { queue }
}

/// A level-triggered doorbell: many pokes while the processor is busy make one wake-up.
/// A shared one ([`Wake::shared`]) also rings its counterpart on every other member.
#[derive(Clone, Default)]
pub struct Wake {
    local: Arc<Notify>,
    others: Option<(crate::bus::Bus, crate::bus::Signal)>,
}

impl Wake {
    pub fn shared(bus: crate::bus::Bus, signal: crate::bus::Signal) -> Wake {
        Wake {
            local: Arc::default(),
            others: Some((bus, signal)),
        }
    }

    pub fn poke(&self) {
        self.poke_local();
        if let Some((bus, signal)) = &self.others {
            bus.publish(signal.clone());
        }
    }

    /// Rings this member only (a signal that came from another one).
    pub fn poke_local(&self) {
        self.local.notify_one();
    }

    pub(crate) async fn rung(&self) {
        self.local.notified().await
    }
}

pub struct Processor {
    pub store: Arc<dyn Store>,
    pub rules: Arc<Rules>,
    pub group_by: Vec<String>,
    pub storm: crate::config::StormConfig,
    pub metrics: Arc<Metrics>,
    pub responder: crate::jobs::Responder,
    pub hub: Arc<crate::jobs::JobHub>,
    pub runner: Arc<crate::runner::Runner>,
    pub ownership: Arc<crate::ownership::Ownership>,
    /// Rung when an incident opens: it may be the next to escalate.
    pub escalation: Wake,
    /// A member cut off from the bus processes nothing until it is back.
    pub bus: crate::bus::Bus,
}

/// Events committed together: one transaction (one fsync) for up to this many events.
const PROCESS_BATCH: usize = 64;
/// Pending events read per round. Under a backlog they are put in order of urgency
/// ([`Processor::urgent_first`]) and committed batch by batch.
const PROCESS_WINDOW: usize = 4096;
/// After a store error, wait before retrying so a broken disk doesn't spin a core.
const ERROR_BACKOFF: Duration = Duration::from_millis(500);

/// What deciding a batch remembers from event to event.
struct BatchMemory {
    /// Hosts looked up, for the whole window.
    hosts: crate::jobs::HostLookups,
    /// Groups whose alarm was decided earlier in this batch and not resolved since.
    unresolved_groups: std::collections::HashSet<String>,
}

/// An event waiting to be processed, with what it says about its alarm
/// (`Ownership::facts_of`).
struct Pending {
    stored: StoredEvent,
    facts: AlarmFacts,
}

/// What the processor keeps of a decision to act on after the commit.
struct Planned {
    /// The alarm's name and host, for the log.
    alarm: Option<(String, Option<String>)>,
    rules: Vec<String>,
    /// Hosts whose agents get jobs if the incident opens.
    hosts: Vec<String>,
}

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

    pub fn spawn(self, wake: Wake) {
        tokio::spawn(async move {
            loop {
                if !self.bus.is_connected() {
                    tokio::time::sleep(ERROR_BACKOFF).await;
                    continue;
                }
                match self.process_pending().await {
                    // Every writer of events rings `wake` after its commit (ingest, the
                    // alarm ticker, escalation) and a ring while busy is kept, so idle
                    // waits need no timer; events left by a crash are read on the first
                    // round after start.
                    Ok(0) => wake.rung().await,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "event processing failed; retrying");
                        tokio::time::sleep(ERROR_BACKOFF).await;
                    }
                }
            }
        });
    }

    /// Processes the pending events of one window, batch by batch; returns how many.
    async fn process_pending(&self) -> Result<usize, StoreError> {
        let pending = self.store.pending_events(PROCESS_WINDOW).await?;
        let count = pending.len();
        if count == 0 {
            return Ok(0);
        }
        // What each event says about its alarm, worked out once for ordering and deciding.
        let pending: Vec<Pending> = pending
            .into_iter()
            .map(|stored| Pending {
                facts: self.ownership.facts_of(&stored.event),
                stored,
            })
            .collect();
        let mut pending = if count > PROCESS_BATCH {
            self.urgent_first(pending)
        } else {
            pending
        };
        let mut hosts = crate::jobs::HostLookups::default();
        for batch in pending.chunks_mut(PROCESS_BATCH) {
            self.process_batch(batch, &mut hosts).await?;
        }
        Ok(count)
    }

    /// Under a backlog, what matters most goes first: every group (of the incident an
    /// event belongs to) holding a recovery or a critical alarm, then groups holding a
    /// high-severity one, then the rest. Within a group events keep the order they were
    /// accepted in, so a recovery never overtakes its own alarm; groups of one tier keep
    /// the order of their first event. Nothing is dropped.
    fn urgent_first(&self, pending: Vec<Pending>) -> Vec<Pending> {
        let mut groups: HashMap<String, (u8, usize, Vec<Pending>)> = HashMap::new();
        for (index, event) in pending.into_iter().enumerate() {
            let facts = &event.facts;
            let severity = Severity::from_label(facts.severity.as_deref());
            let tier = if facts.state == Some(AlarmState::Ok) || severity == Severity::Critical {
                0
            } else if severity == Severity::High {
                1
            } else {
                2
            };
            let key = group_key(facts, &self.group_by).unwrap_or_default();
            let group = groups.entry(key).or_insert((2, index, Vec::new()));
            group.0 = group.0.min(tier);
            group.2.push(event);
        }
        let mut ordered: Vec<(u8, usize, Vec<Pending>)> = groups.into_values().collect();
        ordered.sort_by_key(|(tier, first, _)| (*tier, *first));
        ordered
            .into_iter()
            .flat_map(|(_, _, events)| events)
            .collect()
    }

    /// Decides and commits one batch of events, then reports what they did.
    async fn process_batch(
        &self,
        batch: &mut [Pending],
        hosts: &mut crate::jobs::HostLookups,
    ) -> Result<(), StoreError> {
        let now = crate::now();
        let mut decisions = Vec::with_capacity(batch.len());
        let mut planned = Vec::with_capacity(batch.len());
        let mut memory = BatchMemory {
            hosts: std::mem::take(hosts),
            unresolved_groups: std::collections::HashSet::new(),
        };
        for pending in batch {
            let (decision, plan) = self.decide(pending, now, &mut memory).await?;
            decisions.push(decision);
            planned.push(plan);
        }
        *hosts = memory.hosts;
        let processed = self.store.process_events(decisions, now).await?;
        crate::fault::crash_point("processed");
        let mut journaled = false;
        for (done, plan) in processed.iter().zip(planned) {
            journaled |= self.report(&done.change, plan);
        }
        if journaled {
            self.runner.wake();
        }
        Ok(())
    }

    /// Decides what an event does, with all the work each outcome would cause.
    async fn decide(
        &self,
        pending: &mut Pending,
        now: vigil_core::Timestamp,
        batch: &mut BatchMemory,
    ) -> Result<(Decision, Planned), StoreError> {
        let started = Instant::now();
        let rules = &self.rules;
        let (rule_names, steps) = pending.stored.event.with_value(|value| rules.plan(value));
        self.metrics.observe_rule_match(started.elapsed());
        let stored = &pending.stored;
        let event = &stored.event;
        self.metrics
            .inc("vigil_events_processed_total", String::new());
        let decision = |effect| Decision {
            seq: stored.seq,
            event_id: event.id.clone(),
            effect,
        };
        // An incident belongs to the application of its host unless the alarm says otherwise.
        let facts = std::mem::take(&mut pending.facts);
        let opens = steps.contains(&Step::Incident);
        let resolves = steps.contains(&Step::Resolve);
        let action = match (opens, resolves) {
            (false, false) => {
                let effect = self.escalation(event, &steps).unwrap_or(Effect::Nothing);
                let plan = Planned {
                    alarm: None,
                    rules: rule_names.iter().map(|r| r.to_string()).collect(),
                    hosts: Vec::new(),
                };
                return Ok((decision(effect), plan));
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
        // After an alarm of the same group earlier in this batch, another is a repeat
        // whatever the store finds (the first opened or repeated the incident, nothing
        // resolved it since): what an opening would cause need not be planned.
        let surely_repeat = match action {
            AlarmAction::OpenOrRepeat => !batch.unresolved_groups.insert(key.clone()),
            AlarmAction::Resolve => {
                batch.unresolved_groups.remove(&key);
                false
            }
        };
        let (on_open, on_resolve) = match action {
            AlarmAction::OpenOrRepeat if surely_repeat => (Work::default(), Work::default()),
            AlarmAction::OpenOrRepeat => {
                let outward = self.with_recipients(&steps, facts.appcode.as_deref(), 0);
                let mut work = self
                    .responder
                    .plan(&facts, &steps, now, &mut batch.hosts)
                    .await?;
                work.run = self.runner.plan(RunKind::Opened, &outward);
                (work, Work::default())
            }
            AlarmAction::Resolve => {
                let outward = self.with_recipients(&steps, facts.appcode.as_deref(), 0);
                (
                    Work::default(),
                    Work {
                        run: self.runner.plan(RunKind::Resolved, &outward),
                        ..Work::default()
                    },
                )
            }
        };
        let hosts = on_open.jobs.iter().map(|j| j.host.clone()).collect();
        let storm = if surely_repeat {
            None
        } else {
            self.storm_plan(rule_names.first().copied(), &facts, &steps)?
        };
        let alarm = Some((facts.alarm_name.clone(), facts.host.clone()));
        let update = AlarmUpdate {
            facts,
            group_key: key,
            severity,
            action,
            on_open,
            on_resolve,
            storm,
        };
        Ok((
            decision(Effect::Alarm(Box::new(update))),
            Planned {
                alarm,
                rules: rule_names.iter().map(|r| r.to_string()).collect(),
                hosts,
            },
        ))
    }

    /// How an alarm under `rule` takes part in storms: its scope, and the storm's runs
    /// should it form, grow or resolve. `None` when storms are off.
    fn storm_plan(
        &self,
        rule: Option<&str>,
        facts: &AlarmFacts,
        steps: &[Step],
    ) -> Result<Option<Box<StormPlan>>, StoreError> {
        let config = &self.storm;
        let Some(rule) = rule.filter(|_| config.threshold > 0) else {
            return Ok(None);
        };
        let scope = vigil_core::storm_scope(rule, facts, &config.by)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let outward = self.with_recipients(steps, facts.appcode.as_deref(), 0);
        Ok(Some(Box::new(StormPlan {
            scope,
            threshold: config.threshold,
            window: Duration::from_secs(config.window_secs),
            title: vigil_core::storm_title(rule, facts, &config.by),
            on_form: self.runner.plan(RunKind::Opened, &outward),
            digest: self.runner.plan(RunKind::Digest, &outward),
            digest_interval: Duration::from_secs(config.group_interval_secs),
            on_resolve: self.runner.plan(RunKind::Resolved, &outward),
        })))
    }

    /// A `vigil.incidents` escalation event: notify the level it names.
    fn escalation(&self, event: &Event, steps: &[Step]) -> Option<Effect> {
        if event.source != crate::escalation::SOURCE
            || !steps.iter().any(|s| matches!(s, Step::Notify { .. }))
        {
            return None;
        }
        let key = event.detail.get("key")?.as_str()?;
        let level = event.detail.get("level")?.as_u64()?;
        let appcode = event.detail.get("appcode").and_then(|a| a.as_str());
        let steps = self.with_recipients(steps, appcode, level as usize);
        let run = self.runner.plan(
            RunKind::Escalated(level.min(u32::MAX as u64) as u32),
            &steps,
        )?;
        Some(Effect::Run {
            incident_key: key.to_string(),
            run,
        })
    }

    /// Logs and counts what an event did once it is committed, and wakes the agents that
    /// now have jobs. Returns whether a run was journaled.
    fn report(&self, change: &IncidentChange, plan: Planned) -> bool {
        let alarm = plan.alarm.as_ref().map_or("-", |(name, _)| name.as_str());
        match change {
            IncidentChange::Opened { key, storm } => {
                self.metrics
                    .inc("vigil_incidents_opened_total", String::new());
                if let Some(storm) = storm {
                    self.metrics.inc("vigil_storm_members_total", String::new());
                    tracing::debug!(incident = %key, storm = %storm, "reported with a storm");
                }
                let host = plan
                    .alarm
                    .as_ref()
                    .and_then(|(_, host)| host.as_deref())
                    .unwrap_or("-");
                tracing::info!(incident = %key, alarm, host, rules = ?plan.rules, "incident opened");
                for host in &plan.hosts {
                    self.hub.ring(host);
                }
                self.escalation.poke();
                true
            }
            IncidentChange::Repeated { key, count } => {
                self.metrics
                    .inc("vigil_incidents_repeats_total", String::new());
                tracing::debug!(incident = %key, alarm, count, "repeat grouped");
                false
            }
            IncidentChange::Resolved { key, storm } => {
                self.metrics.inc(
                    "vigil_incidents_resolved_total",
                    labels(&[("by", "recovery")]),
                );
                tracing::info!(incident = %key, alarm, "incident resolved by recovery");
                if let Some(storm) = storm {
                    tracing::info!(incident = %storm, "storm resolved: its last member recovered");
                }
                true
            }
            IncidentChange::RunJournaled { key } => {
                tracing::info!(incident = %key, "escalation notifications journaled");
                true
            }
            IncidentChange::NothingToResolve => {
                tracing::debug!(alarm, "recovery with no open incident");
                false
            }
            IncidentChange::Unchanged => false,
        }
    }
}
