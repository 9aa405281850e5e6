//! The durable playbook runner: the outward steps of a playbook (tickets, comments,
//! notifications) are journaled in the store with the incident change that caused them.
//! The runner only works that journal: it claims due steps through the store (a lease, so
//! one worker and only one acts on a step), makes the external call with an idempotency
//! key derived from (incident, step), and records the outcome — with the ticket it opened,
//! the timeline note and any follow-up run — in one transaction. Steps of a run go in order;
//! a transient failure is retried with capped exponential backoff and jitter (honouring
//! `Retry-After`) until the step's deadline, then the incident says it gave up; a crash
//! resumes at the first unfinished step.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::sync::{Notify, Semaphore};
use vigil_actions::{
    ActionError, Diagnostic, ExternalTicket, IdempotencyKey, Message, MessageKind, Notifier, Step,
    Tracker,
};
use vigil_core::{
    member_lines, pages, Incident, IncidentKind, StormFindings, StormMember, TimelineKind,
    Timestamp,
};
use vigil_store::{
    Channel, NewRun, NewStep, Note, RunKind, RunStep, StepContext, StepFinish, StepName, StepRetry,
    StepStatus, Store, TicketRecord,
};

use crate::fault;

/// How long a step may keep retrying before the incident records the failure.
const STEP_DEADLINE: Duration = Duration::from_secs(15 * 60);
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
/// Short enough that a recovered service is noticed within seconds, long enough not to
/// hammer one that is down.
const BACKOFF_CAP: Duration = Duration::from_secs(15);
/// Steps worked on at once.
const PARALLEL_STEPS: usize = 16;
/// How long a claimed step is this worker's. Longer than any external call may take
/// (every integration's own timeout is under a minute); a worker that dies holding a lease
/// leaves the step to be claimed again when it runs out.
const LEASE: Duration = Duration::from_secs(120);
/// How often a member that lost the bus looks whether it is back.
const BUS_RETRY: Duration = Duration::from_secs(1);
/// After a store error, wait this long before looking at the journal again.
const ERROR_BACKOFF: Duration = Duration::from_secs(1);

pub struct Runner {
    store: Arc<dyn Store>,
    trackers: Vec<Arc<dyn Tracker>>,
    notifiers: Vec<Arc<dyn Notifier>>,
    wake: Notify,
    /// Wakes reach the other members' runners too: any of them may claim the step.
    bus: crate::bus::Bus,
    /// This process's name in step leases.
    worker: String,
    /// How long tickets' comments and notifications wait for the incident's probes; past
    /// it they go out saying the probes are still running, and a follow-up carries them.
    diagnostics_wait: Duration,
    /// How long a new incident's (or storm's) outward steps wait before going out, so a
    /// storm can gather its members first.
    group_wait: Duration,
    slots: Arc<Semaphore>,
    /// Where incident pages live, for links in tickets and messages.
    incident_base_url: Mutex<String>,
    /// Whether, at its last look, the journal held nothing due and no step was in flight.
    idle: std::sync::atomic::AtomicBool,
}

/// What a worked step came to, before it is recorded.
enum StepOutcome {
    Ticket(ExternalTicket),
    Done {
        external_id: Option<String>,
        link: Option<String>,
        /// Sent before the probes answered: journal a follow-up that carries them.
        followup: Option<NewRun>,
    },
    Skipped(String),
    Undelivered,
    /// Waiting for the incident's probes until this time.
    WaitForDiagnostics(Timestamp),
}

impl Runner {
    /// `worker` names this server in step leases; it must stay the same across restarts
    /// (the member id) so a restart can free what its previous life held.
    pub fn new(
        store: Arc<dyn Store>,
        trackers: Vec<Arc<dyn Tracker>>,
        notifiers: Vec<Arc<dyn Notifier>>,
        worker: String,
        diagnostics_wait: Duration,
        group_wait: Duration,
    ) -> Runner {
        Runner {
            store,
            trackers,
            notifiers,
            wake: Notify::new(),
            bus: crate::bus::Bus::alone(),
            worker,
            diagnostics_wait,
            group_wait,
            slots: Arc::new(Semaphore::new(PARALLEL_STEPS)),
            incident_base_url: Mutex::new(String::new()),
            idle: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// True once the runner has looked at the journal and found nothing due and nothing in
    /// flight (`vigil_runner_idle`): from then on nothing goes out until something changes.
    pub fn is_idle(&self) -> bool {
        self.idle.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn set_base_url(&self, url: &str) {
        *self
            .incident_base_url
            .lock()
            .unwrap_or_else(|p| p.into_inner()) =
            format!("{}/ui/incidents/", url.trim_end_matches('/'));
    }

    pub fn with_bus(self, bus: crate::bus::Bus) -> Runner {
        Runner { bus, ..self }
    }

    /// Looks at the journal now, here and on every other member: something was journaled,
    /// or a wait may be over.
    pub fn wake(&self) {
        self.wake_local();
        self.bus.publish(crate::bus::Signal::Runner);
    }

    /// Looks at the journal now (another member journaled something).
    pub fn wake_local(&self) {
        self.wake.notify_one();
    }

    /// The outward steps of a playbook for one incident change, ready to journal with it:
    /// a ticket (and a comment with the diagnostics) per tracker, a message per channel.
    /// `None` when the playbook has nothing outward to do.
    pub fn plan(&self, kind: RunKind, steps: &[Step]) -> Option<NewRun> {
        let deadline = crate::now()
            + chrono::Duration::from_std(STEP_DEADLINE).unwrap_or(chrono::Duration::zero());
        let recipients: Vec<String> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Notify { to } => Some(to.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        let step = |name: StepName, channel: Channel| NewStep {
            name,
            channel,
            // Email uses them; an undelivered note keeps them so the log says who was missed.
            recipients: if matches!(channel, Channel::Email | Channel::None) {
                recipients.clone()
            } else {
                Vec::new()
            },
            deadline,
        };
        let mut planned = Vec::new();
        if steps.contains(&Step::Ticket) {
            for tracker in self.tracker_channels() {
                match kind {
                    RunKind::Opened => {
                        planned.push(step(StepName::Ticket, tracker));
                        planned.push(step(StepName::Comment, tracker));
                    }
                    RunKind::Resolved => planned.push(step(StepName::ResolveTicket, tracker)),
                    // A storm's news goes on its ticket.
                    RunKind::Digest => planned.push(step(StepName::Comment, tracker)),
                    RunKind::Escalated(_) | RunKind::Diagnostics => {}
                }
            }
        }
        if steps.iter().any(|s| matches!(s, Step::Notify { .. })) {
            let channels = self.notifier_channels();
            if channels.is_empty() {
                planned.push(step(StepName::Undelivered, Channel::None));
            }
            for channel in channels {
                planned.push(step(StepName::Notify, channel));
            }
        }
        // A new incident's telling waits for group_wait: if a storm forms meanwhile, the
        // storm tells instead.
        let not_before =
            (kind == RunKind::Opened && !self.group_wait.is_zero()).then(|| later(self.group_wait));
        (!planned.is_empty()).then_some(NewRun {
            kind,
            steps: planned,
            not_before,
        })
    }

    fn tracker_channels(&self) -> Vec<Channel> {
        self.trackers
            .iter()
            .filter_map(|t| Channel::parse(t.name()))
            .collect()
    }

    fn notifier_channels(&self) -> Vec<Channel> {
        self.notifiers
            .iter()
            .filter_map(|n| Channel::parse(n.channel()))
            .collect()
    }

    /// Works the journal for as long as the server runs.
    pub fn spawn(self: Arc<Self>) {
        tokio::spawn(async move {
            match self.store.release_leases(&self.worker).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    steps = n,
                    "playbook steps held before a restart are free again"
                ),
                Err(e) => {
                    tracing::error!(error = %e, "cannot release this server's old step leases; they run out in two minutes")
                }
            }
            loop {
                let wait = self.claim_and_start().await;
                match wait {
                    Some(wait) => {
                        let _ = tokio::time::timeout(wait, self.wake.notified()).await;
                    }
                    None => self.wake.notified().await,
                }
            }
        });
    }

    /// Claims what is due and starts working it; returns how long the journal has nothing
    /// for this worker, `None` for "until woken". No periodic look: whatever makes a step
    /// due sooner than the journal says rings [`Runner::wake`] — the processor and a
    /// manual resolve after journaling a run, the agent API and the job sweeper when a
    /// job ends (the store makes the steps waiting for it due), a finished step (its
    /// successor, a follow-up run, a free slot); retries, diagnostics waits and leases
    /// running out are times in the journal.
    async fn claim_and_start(self: &Arc<Self>) -> Option<Duration> {
        if !self.bus.is_connected() {
            // A member cut off from the others claims nothing; it looks again each second
            // until the bus is back.
            return Some(BUS_RETRY);
        }
        let free = self.slots.available_permits();
        if free == 0 {
            // Every slot is busy; each finished step rings.
            return None;
        }
        match self
            .store
            .claim_steps(&self.worker, crate::now(), LEASE, free)
            .await
        {
            Ok(claimed) => {
                if !claimed.is_empty() {
                    self.idle.store(false, std::sync::atomic::Ordering::SeqCst);
                    fault::crash_point("claimed");
                }
                for step in claimed {
                    let Ok(permit) = self.slots.clone().acquire_owned().await else {
                        return None;
                    };
                    let runner = self.clone();
                    tokio::spawn(async move {
                        runner.work(step).await;
                        drop(permit);
                        runner.wake();
                    });
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot claim playbook steps; retrying");
                return Some(ERROR_BACKOFF);
            }
        }
        let next = self.store.next_step_due().await;
        let in_flight = self.slots.available_permits() < PARALLEL_STEPS;
        self.idle.store(
            matches!(next, Ok(None)) && !in_flight,
            std::sync::atomic::Ordering::SeqCst,
        );
        match next {
            Ok(Some(due)) => Some(
                (due - crate::now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .max(Duration::from_millis(5)),
            ),
            Ok(None) => None,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the playbook journal; retrying");
                Some(ERROR_BACKOFF)
            }
        }
    }

    async fn work(&self, step: RunStep) {
        // Nothing to send and nothing to read: only the note that nobody was told.
        if step.name == StepName::Undelivered {
            self.settle(step, Ok(StepOutcome::Undelivered)).await;
            return;
        }
        let key = step.incident_key.clone();
        let context = match self.store.step_context(&key).await {
            Ok(Some(context)) => context,
            Ok(None) => {
                let mut finish = StepFinish::new(StepStatus::Failed, step.attempts);
                finish.error = Some("the incident no longer exists".into());
                self.record(&step, finish).await;
                return;
            }
            Err(e) => {
                tracing::error!(incident = %key, error = %e, "cannot load the incident for a playbook step");
                self.retry_later(&step, Duration::from_secs(1), None).await;
                return;
            }
        };
        let outcome = self.act(&step, &context).await;
        self.settle(step, outcome).await;
    }

    /// Makes the step's external call.
    async fn act(&self, step: &RunStep, context: &StepContext) -> Result<StepOutcome, ActionError> {
        let incident = &context.incident;
        let key = &incident.key;
        let idempotency = IdempotencyKey::new(
            key,
            &format!("{}-{}-{}", step.name, step.channel, step.kind.as_string()),
        );
        let external: Vec<ExternalTicket> = context
            .tickets
            .iter()
            .map(|t| ExternalTicket {
                tracker: t.tracker.to_string(),
                id: t.id.clone(),
                url: t.url.clone(),
            })
            .collect();
        let is_storm = incident.kind == IncidentKind::Storm;
        // A digest tells what changed since the storm's first word on this channel; before
        // that word has gone out there is nothing to add (it will name every member).
        if step.kind == RunKind::Digest
            && !context.history.iter().any(|h| {
                h.kind == RunKind::Opened
                    && h.name == step.name
                    && h.channel == step.channel
                    && h.status == StepStatus::Done
            })
        {
            return Ok(StepOutcome::Skipped(
                "the storm's first message had not gone out yet; it names every member".into(),
            ));
        }
        // Comments and messages carry the diagnostics: give the probes time to answer; a
        // follow-up waits for them however long they take (jobs always end: they expire).
        // A storm's message goes at once with what its members' probes found so far (its
        // digest tells the rest): one message per owner, not one more per follow-up.
        let carries_diagnostics = matches!(step.name, StepName::Comment | StepName::Notify)
            && matches!(step.kind, RunKind::Opened | RunKind::Diagnostics)
            && !(is_storm && step.name == StepName::Notify);
        let mut pending = false;
        if carries_diagnostics && !context.jobs_settled {
            let until = incident.opened_at
                + chrono::Duration::from_std(self.diagnostics_wait)
                    .unwrap_or(chrono::Duration::zero());
            if step.kind == RunKind::Diagnostics || crate::now() < until {
                return Ok(StepOutcome::WaitForDiagnostics(until));
            }
            pending = true;
        }
        let followup = pending.then(|| NewRun {
            not_before: None,
            kind: RunKind::Diagnostics,
            steps: vec![NewStep {
                name: step.name,
                channel: step.channel,
                recipients: step.recipients.clone(),
                deadline: step.deadline,
            }],
        });
        match step.name {
            StepName::Ticket => {
                let tracker = self.tracker(step.channel)?;
                let ticket = tracker.open(incident, &idempotency).await?;
                fault::crash_point("after_call:ticket");
                Ok(StepOutcome::Ticket(ticket))
            }
            StepName::Comment if is_storm => {
                let Some(ticket) = external.iter().find(|t| t.tracker == step.channel.as_str())
                else {
                    return Ok(StepOutcome::Skipped("no ticket was opened".into()));
                };
                let pages = storm_comments(context, step, pending);
                if pages.is_empty() {
                    return Ok(StepOutcome::Skipped(
                        "no member joined since the storm's last comment".into(),
                    ));
                }
                let tracker = self.tracker(step.channel)?;
                for (part, text) in pages.iter().enumerate() {
                    let part_key = IdempotencyKey::new(
                        key,
                        &format!(
                            "{}-{}-{}-{}-part-{part}",
                            step.name,
                            step.channel,
                            step.kind.as_string(),
                            step.run_id
                        ),
                    );
                    tracker.comment(ticket, text, &part_key).await?;
                }
                fault::crash_point("after_call:comment");
                Ok(StepOutcome::Done {
                    external_id: Some(ticket.id.clone()),
                    link: Some(ticket.url.clone()),
                    followup,
                })
            }
            StepName::Comment => {
                let Some(ticket) = external.iter().find(|t| t.tracker == step.channel.as_str())
                else {
                    return Ok(StepOutcome::Skipped("no ticket was opened".into()));
                };
                let Some(text) = comment_text(context, pending, step.kind, self.diagnostics_wait)
                else {
                    return Ok(StepOutcome::Skipped("no diagnostics to attach".into()));
                };
                let tracker = self.tracker(step.channel)?;
                tracker.comment(ticket, &text, &idempotency).await?;
                fault::crash_point("after_call:comment");
                Ok(StepOutcome::Done {
                    external_id: Some(ticket.id.clone()),
                    link: Some(ticket.url.clone()),
                    followup,
                })
            }
            StepName::ResolveTicket => {
                let Some(ticket) = external.iter().find(|t| t.tracker == step.channel.as_str())
                else {
                    return Ok(StepOutcome::Skipped("no ticket was opened".into()));
                };
                let tracker = self.tracker(step.channel)?;
                tracker.resolve(ticket, incident, &idempotency).await?;
                fault::crash_point("after_call:resolve_ticket");
                Ok(StepOutcome::Done {
                    external_id: Some(ticket.id.clone()),
                    link: Some(ticket.url.clone()),
                    followup: None,
                })
            }
            StepName::Notify => {
                let told_before = context.history.iter().any(|h| {
                    h.kind == RunKind::Opened
                        && h.name == StepName::Notify
                        && h.channel == step.channel
                        && h.status == StepStatus::Done
                });
                if step.kind == RunKind::Resolved && !told_before {
                    return Ok(StepOutcome::Skipped(
                        "this channel was not told of the incident".into(),
                    ));
                }
                if step.kind == RunKind::Digest
                    && joined_since(context, StepName::Notify, step.channel).is_empty()
                {
                    return Ok(StepOutcome::Skipped(
                        "no member joined since the storm's last message".into(),
                    ));
                }
                let kind = match step.kind {
                    RunKind::Resolved => MessageKind::Resolved,
                    RunKind::Diagnostics => MessageKind::Diagnostics,
                    RunKind::Digest => MessageKind::Digest,
                    RunKind::Opened | RunKind::Escalated(_) => MessageKind::Opened,
                };
                let notifier = self.notifier(step.channel)?;
                // The context is a snapshot: read the jobs now so the message names the
                // probes still running as it goes out (unreadable: named by none).
                let pending_probes = if pending {
                    self.store
                        .incident_jobs(key)
                        .await
                        .unwrap_or_else(|e| {
                            tracing::warn!(incident = %key, error = %e, "cannot read the incident's probe jobs; the message names none");
                            Vec::new()
                        })
                        .into_iter()
                        .filter(|j| {
                            matches!(
                                j.status,
                                vigil_core::JobStatus::Queued | vigil_core::JobStatus::Running
                            )
                        })
                        .map(|j| format!("{} on {}", j.probe, j.host))
                        .collect()
                } else {
                    Vec::new()
                };
                let message = Message {
                    key: idempotency.clone(),
                    kind,
                    diagnostics: diagnostics(incident),
                    diagnostics_pending: pending,
                    pending_probes,
                    tickets: external.clone(),
                    incident_url: format!(
                        "{}{key}",
                        self.incident_base_url
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                    ),
                    recipients: step.recipients.clone(),
                    incident: incident.clone(),
                };
                let delivery = notifier.send(&message).await?;
                fault::crash_point("after_call:notify");
                Ok(StepOutcome::Done {
                    external_id: delivery.external_id,
                    link: delivery.detail,
                    followup,
                })
            }
            StepName::Undelivered => Ok(StepOutcome::Undelivered),
        }
    }

    async fn settle(&self, step: RunStep, outcome: Result<StepOutcome, ActionError>) {
        let attempts = step.attempts + 1;
        let what = format!(
            "{} via {}",
            step.name.as_str().replace('_', " "),
            step.channel
        );
        match outcome {
            Ok(StepOutcome::WaitForDiagnostics(until)) => {
                // A job's end makes this step due at once (the store does that); the
                // deadline is when it goes out regardless. A follow-up past it looks again
                // each second (a storm's members' jobs ring no step of the storm's).
                let wait = match (until - crate::now()).to_std() {
                    Ok(wait) if !wait.is_zero() => wait,
                    _ => Duration::from_secs(1),
                };
                self.retry_later(&step, wait, None).await;
            }
            Ok(StepOutcome::Ticket(ticket)) => {
                let Some(tracker) = Channel::parse(&ticket.tracker) else {
                    tracing::error!(incident = %step.incident_key, tracker = %ticket.tracker, "a tracker answered with an unknown name");
                    return;
                };
                let mut finish = StepFinish::new(StepStatus::Done, attempts);
                finish.note = Some(Note::new(
                    TimelineKind::Note,
                    format!(
                        "{} ticket {} opened: {}",
                        ticket.tracker, ticket.id, ticket.url
                    ),
                ));
                finish.external_id = Some(ticket.id.clone());
                finish.link = Some(ticket.url.clone());
                finish.ticket = Some(TicketRecord {
                    tracker,
                    id: ticket.id,
                    url: ticket.url,
                });
                self.record(&step, finish).await;
            }
            Ok(StepOutcome::Done {
                external_id,
                link,
                followup,
            }) => {
                let mut finish = StepFinish::new(StepStatus::Done, attempts);
                let pending_note = if followup.is_some() {
                    " (probes still running; their results follow)"
                } else {
                    ""
                };
                finish.note = Some(Note::new(
                    TimelineKind::Note,
                    format!("{what}: done after {attempts} attempt(s){pending_note}"),
                ));
                finish.external_id = external_id;
                finish.link = link;
                finish.followup = followup;
                self.record(&step, finish).await;
            }
            Ok(StepOutcome::Skipped(why)) => {
                let mut finish = StepFinish::new(StepStatus::Skipped, step.attempts);
                finish.error = Some(why);
                self.record(&step, finish).await;
            }
            Ok(StepOutcome::Undelivered) => {
                let who = if step.recipients.is_empty() {
                    String::new()
                } else {
                    format!(" (for {})", step.recipients.join(", "))
                };
                let hint = format!("notification not delivered{who}: no channel is configured; set VIGIL_SMTP_URL and VIGIL_EMAIL_TO, VIGIL_SLACK_WEBHOOK_URL or VIGIL_WEBHOOK_URL (or [integrations] in the config)");
                let mut finish = StepFinish::new(StepStatus::Failed, 0);
                finish.error = Some(hint.clone());
                finish.note = Some(Note::new(TimelineKind::Note, hint));
                self.record(&step, finish).await;
            }
            Err(ActionError::Transient {
                what: error,
                retry_after_ms,
            }) if crate::now() < step.deadline => {
                let delay = backoff(attempts, retry_after_ms);
                // Attempts 1, 2, 4, 8, … go on the timeline, so a long outage stays
                // readable; the delivery log counts every attempt.
                let note = attempts.is_power_of_two().then(|| {
                    Note::new(
                        TimelineKind::Note,
                        format!(
                            "{what}: attempt {attempts} failed ({error}); retrying in {:.1} s",
                            delay.as_secs_f64()
                        ),
                    )
                });
                let retry = StepRetry {
                    attempts,
                    error: Some(error),
                    next_attempt_at: later(delay),
                    note,
                };
                self.retry(&step, retry).await;
            }
            Err(error) => {
                let error = error.to_string();
                let mut finish = StepFinish::new(StepStatus::Failed, attempts);
                finish.note = Some(Note::new(
                    TimelineKind::Note,
                    format!("{what}: gave up after {attempts} attempt(s): {error}"),
                ));
                finish.error = Some(error);
                self.record(&step, finish).await;
            }
        }
    }

    fn tracker(&self, channel: Channel) -> Result<&Arc<dyn Tracker>, ActionError> {
        self.trackers
            .iter()
            .find(|t| t.name() == channel.as_str())
            .ok_or_else(|| {
                ActionError::Permanent(format!("tracker `{channel}` is no longer configured"))
            })
    }

    fn notifier(&self, channel: Channel) -> Result<&Arc<dyn Notifier>, ActionError> {
        self.notifiers
            .iter()
            .find(|n| n.channel() == channel.as_str())
            .ok_or_else(|| {
                ActionError::Permanent(format!("channel `{channel}` is no longer configured"))
            })
    }

    /// Puts the step back to be claimed again after `delay`, attempts unchanged.
    async fn retry_later(&self, step: &RunStep, delay: Duration, note: Option<Note>) {
        let retry = StepRetry {
            attempts: step.attempts,
            error: step.last_error.clone(),
            next_attempt_at: later(delay),
            note,
        };
        self.retry(step, retry).await;
    }

    async fn retry(&self, step: &RunStep, retry: StepRetry) {
        match self
            .store
            .retry_step(step.reference(&self.worker), retry, crate::now())
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(incident = %step.incident_key, run = step.run_id, position = step.position, "lost the lease on a playbook step; another worker has it")
            }
            Err(e) => {
                tracing::error!(incident = %step.incident_key, error = %e, "could not reschedule a playbook step; its lease will run out and it will run again")
            }
        }
    }

    async fn record(&self, step: &RunStep, finish: StepFinish) {
        match self
            .store
            .finish_step(step.reference(&self.worker), finish, crate::now())
            .await
        {
            Ok(true) => fault::crash_point(&format!("journaled:{}", step.name)),
            Ok(false) => {
                tracing::warn!(incident = %step.incident_key, run = step.run_id, position = step.position, "lost the lease on a playbook step; another worker has it")
            }
            Err(e) => tracing::error!(
                incident = %step.incident_key,
                run = step.run_id,
                position = step.position,
                error = %e,
                "could not journal a playbook step; it will run again (its idempotency key keeps that harmless)"
            ),
        }
    }
}

fn later(delay: Duration) -> Timestamp {
    crate::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::zero())
}

/// Capped exponential backoff with ±20 % jitter; when the server says when to come back
/// (`Retry-After`), that, plus up to 20 % so retries do not arrive together.
fn backoff(attempts: u32, retry_after_ms: Option<u64>) -> Duration {
    let mut rng = rand::thread_rng();
    if let Some(ms) = retry_after_ms {
        return Duration::from_millis(ms)
            .mul_f64(rng.gen_range(1.0..1.2))
            .min(BACKOFF_CAP.max(Duration::from_millis(ms)));
    }
    let exponent = attempts.clamp(1, 16) - 1;
    let base = BACKOFF_FIRST.saturating_mul(1 << exponent).min(BACKOFF_CAP);
    base.mul_f64(rng.gen_range(0.8..1.2))
}

/// The probe outputs on an incident's timeline.
pub fn diagnostics(incident: &Incident) -> Vec<Diagnostic> {
    incident
        .timeline
        .iter()
        .filter(|t| t.kind == TimelineKind::Diagnostics)
        .map(|t| {
            let (header, output) = t.message.split_once('\n').unwrap_or((&t.message, ""));
            let mut words = header.split_whitespace();
            let probe = words.next().unwrap_or_default().to_string();
            let host = header
                .split(" on ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .unwrap_or_default()
                .to_string();
            Diagnostic {
                probe,
                host,
                output: format!("{header}\n{output}"),
            }
        })
        .collect()
}

/// Largest storm comment: under Jira's 32,767 characters, with room for its marker.
const STORM_COMMENT_MAX: usize = 30_000;

/// A storm's members that joined after its last `name` step on `channel` was done (all of
/// them when none was).
fn joined_since(context: &StepContext, name: StepName, channel: Channel) -> Vec<StormMember> {
    let last = context
        .history
        .iter()
        .filter(|h| h.name == name && h.channel == channel && h.status == StepStatus::Done)
        .map(|h| h.updated_at)
        .max();
    context
        .incident
        .members
        .iter()
        .filter(|m| last.is_none_or(|at| m.opened_at > at))
        .cloned()
        .collect()
}

/// A storm's ticket comments: what its members' probes found and the member list, in
/// pages a tracker takes. A digest lists only the members that joined since the last
/// comment (none: no comment).
fn storm_comments(context: &StepContext, step: &RunStep, pending: bool) -> Vec<String> {
    let incident = &context.incident;
    let total = incident.members.len();
    let findings = StormFindings::of(&incident.members).summary();
    let (head, listed) = match step.kind {
        RunKind::Digest => {
            let news = joined_since(context, StepName::Comment, step.channel);
            if news.is_empty() {
                return Vec::new();
            }
            (
                format!(
                    "Storm {}: {total} member incidents now, {} joined since the last comment. {findings}.",
                    incident.key,
                    news.len()
                ),
                news,
            )
        }
        _ => {
            let mut head = format!(
                "Storm {}: {total} member incidents. {findings}.",
                incident.key
            );
            if pending {
                head.push_str(" Some probes are still running; their results follow.");
            }
            (head, incident.members.clone())
        }
    };
    let mut lines = vec![head, String::new()];
    lines.extend(member_lines(&listed));
    pages(&lines, STORM_COMMENT_MAX)
}

/// A ticket comment: the probes' output, or what is known of the host when none answered;
/// `None` when there is nothing to say.
fn comment_text(
    context: &StepContext,
    pending: bool,
    kind: RunKind,
    waited: Duration,
) -> Option<String> {
    let incident = &context.incident;
    let outputs: Vec<String> = diagnostics(incident)
        .into_iter()
        .map(|d| d.output)
        .collect();
    let host_checks: Vec<&str> = incident
        .timeline
        .iter()
        .filter(|t| t.kind == TimelineKind::HostCheck)
        .map(|t| t.message.as_str())
        .collect();
    let mut text = outputs.join("\n\n");
    if pending {
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        text.push_str(&format!(
            "Diagnostics: probes were still running {} s after the incident opened; their results follow in another comment.",
            waited.as_secs()
        ));
    } else if outputs.is_empty() && kind == RunKind::Diagnostics && !host_checks.is_empty() {
        text = host_checks.join("\n");
    }
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_honours_retry_after() {
        let first = backoff(1, None);
        assert!(
            first >= Duration::from_millis(400) && first <= Duration::from_millis(600),
            "{first:?}"
        );
        let late = backoff(12, None);
        assert!(
            late <= BACKOFF_CAP.mul_f64(1.2) && late >= BACKOFF_CAP.mul_f64(0.8),
            "{late:?}"
        );
        assert!(backoff(1, Some(5_000)) >= Duration::from_secs(5));
    }
}
