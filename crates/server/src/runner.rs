//! The durable playbook runner: the outward steps of a playbook (tickets, comments,
//! notifications) journaled in the store, one row per step. Steps of a run go in order; a
//! transient failure is retried with capped exponential backoff and jitter (honouring
//! `Retry-After`) until the step's deadline, then the incident says it gave up; a crash
//! resumes at the first unfinished step. Every external call carries an idempotency key
//! derived from (incident, step), so a repeat after an unknown outcome changes nothing.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::sync::Notify;
use vigil_actions::{
    ActionError, Diagnostic, ExternalTicket, IdempotencyKey, Message, MessageKind, Notifier, Step,
    Tracker,
};
use vigil_core::{Incident, TimelineKind};
use vigil_store::{NewStep, RunStep, StepStatus, Store, TicketRecord};

use crate::jobs::now_ms;

/// How long a step may keep retrying before the incident records the failure.
const STEP_DEADLINE: Duration = Duration::from_secs(15 * 60);
/// How often a step waiting for the incident's probes looks again: short, because the
/// email's latency after an alarm includes this wait.
const DIAGNOSTICS_POLL_MS: i64 = 50;
/// How long tickets' comments and notifications wait for the incident's probes.
const DIAGNOSTICS_WAIT: Duration = Duration::from_secs(30);
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
/// Short enough that a recovered service is noticed within seconds, long enough not to
/// hammer one that is down.
const BACKOFF_CAP: Duration = Duration::from_secs(15);
/// Runs worked on at once.
const PARALLEL_RUNS: usize = 16;

/// Set (test-only) to a step name such as `ticket`: the process aborts right after that
/// step's external call succeeded and before the journal records it — the worst moment for
/// idempotency, which is what the crash test needs.
pub const FAULT_CRASH_AFTER_ENV: &str = "VIGIL_FAULT_CRASH_AFTER";

pub struct Runner {
    store: Arc<Store>,
    trackers: Vec<Arc<dyn Tracker>>,
    notifiers: Vec<Arc<dyn Notifier>>,
    wake: Notify,
    in_flight: Mutex<HashSet<i64>>,
    /// Where incident pages live, for links in tickets and messages.
    incident_base_url: Mutex<String>,
    crash_after: Option<String>,
    now: fn() -> String,
}

impl Runner {
    pub fn new(
        store: Arc<Store>,
        trackers: Vec<Arc<dyn Tracker>>,
        notifiers: Vec<Arc<dyn Notifier>>,
        now: fn() -> String,
    ) -> Runner {
        Runner {
            store,
            trackers,
            notifiers,
            wake: Notify::new(),
            in_flight: Mutex::new(HashSet::new()),
            incident_base_url: Mutex::new(String::new()),
            crash_after: std::env::var(FAULT_CRASH_AFTER_ENV).ok(),
            now,
        }
    }

    pub fn set_base_url(&self, url: &str) {
        *self
            .incident_base_url
            .lock()
            .unwrap_or_else(|p| p.into_inner()) =
            format!("{}/ui/incidents/", url.trim_end_matches('/'));
    }

    /// Journals the outward steps of `steps` for an incident change and wakes the runner.
    pub fn start_run(
        &self,
        incident: &str,
        kind: MessageKind,
        steps: &[Step],
    ) -> Result<(), vigil_store::StoreError> {
        let name = match kind {
            MessageKind::Opened => "opened",
            MessageKind::Resolved => "resolved",
        };
        self.start_named_run(incident, kind, name, steps)
    }

    /// As `start_run`, with the run's own name (`escalated-1`), which keys its messages.
    pub fn start_named_run(
        &self,
        incident: &str,
        kind: MessageKind,
        run_name: &str,
        steps: &[Step],
    ) -> Result<(), vigil_store::StoreError> {
        let deadline_ms = now_ms() + STEP_DEADLINE.as_millis() as i64;
        let mut planned = Vec::new();
        let recipients: Vec<String> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Notify { to } => Some(to.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        let recipients = recipients.join(",");
        let step = |name: &str, channel: &str| NewStep {
            name: name.to_string(),
            channel: channel.to_string(),
            // Email uses them; an undelivered note keeps them so the log says who was missed.
            recipients: if channel == "email" || channel == "none" {
                recipients.clone()
            } else {
                String::new()
            },
            deadline_ms,
        };
        if steps.contains(&Step::Ticket) {
            for tracker in &self.trackers {
                match kind {
                    MessageKind::Opened => {
                        planned.push(step("ticket", tracker.name()));
                        planned.push(step("comment", tracker.name()));
                    }
                    MessageKind::Resolved => planned.push(step("resolve_ticket", tracker.name())),
                }
            }
        }
        if steps.iter().any(|s| matches!(s, Step::Notify { .. })) {
            if self.notifiers.is_empty() {
                planned.push(step("undelivered", "none"));
            }
            for notifier in &self.notifiers {
                planned.push(step("notify", notifier.channel()));
            }
        }
        if planned.is_empty() {
            return Ok(());
        }
        self.store
            .create_run(incident, run_name, &planned, &(self.now)())?;
        self.wake.notify_one();
        Ok(())
    }

    /// Works the journal for as long as the server runs.
    pub fn spawn(self: Arc<Self>) {
        tokio::spawn(async move {
            loop {
                let store = self.store.clone();
                let steps = match tokio::task::spawn_blocking(move || store.next_steps()).await {
                    Ok(Ok(steps)) => steps,
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "cannot read the playbook journal");
                        Vec::new()
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "journal read failed");
                        Vec::new()
                    }
                };
                let now = now_ms();
                let mut next_due = now + 1_000;
                for step in steps {
                    if step.next_attempt_ms > now {
                        next_due = next_due.min(step.next_attempt_ms);
                        continue;
                    }
                    {
                        let mut in_flight =
                            self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
                        if in_flight.len() >= PARALLEL_RUNS || !in_flight.insert(step.run_id) {
                            continue;
                        }
                    }
                    let runner = self.clone();
                    tokio::spawn(async move {
                        let run_id = step.run_id;
                        runner.work(step).await;
                        runner
                            .in_flight
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&run_id);
                        runner.wake.notify_one();
                    });
                }
                let wait = Duration::from_millis((next_due - now).clamp(10, 1_000) as u64);
                let _ = tokio::time::timeout(wait, self.wake.notified()).await;
            }
        });
    }

    async fn work(&self, step: RunStep) {
        let key = step.incident_key.clone();
        let store = self.store.clone();
        let lookup = key.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            Ok::<_, vigil_store::StoreError>((
                store.incident(&lookup)?,
                store.tickets(&lookup)?,
                store.jobs_settled(&lookup)?,
                store.run_steps(&lookup)?,
            ))
        })
        .await;
        let (incident, tickets, settled, history) = match loaded {
            Ok(Ok((Some(incident), tickets, settled, history))) => {
                (incident, tickets, settled, history)
            }
            Ok(Ok((None, ..))) => {
                self.record(
                    &step,
                    StepStatus::Failed,
                    step.attempts,
                    Some("the incident no longer exists"),
                    None,
                    None,
                )
                .await;
                return;
            }
            Ok(Err(e)) => {
                tracing::error!(incident = %key, error = %e, "cannot load the incident for a playbook step");
                return;
            }
            Err(e) => {
                tracing::error!(incident = %key, error = %e, "playbook step task failed");
                return;
            }
        };
        // Comments and messages carry the diagnostics: give the probes time to answer.
        let carries_diagnostics = matches!(step.name.as_str(), "comment" | "notify");
        if carries_diagnostics
            && step.kind == "opened"
            && !settled
            && !diagnostics_wait_over(&incident)
        {
            self.postpone(&step, DIAGNOSTICS_POLL_MS).await;
            return;
        }
        let kind = if step.kind == "resolved" {
            MessageKind::Resolved
        } else {
            MessageKind::Opened
        };
        let idempotency = IdempotencyKey::new(
            &key,
            &format!("{}-{}-{}", step.name, step.channel, step.kind),
        );
        let external: Vec<ExternalTicket> = tickets
            .iter()
            .map(|t| ExternalTicket {
                tracker: t.tracker.clone(),
                id: t.id.clone(),
                url: t.url.clone(),
            })
            .collect();
        let outcome: Result<StepOutcome, ActionError> = match step.name.as_str() {
            "ticket" => match self.tracker(&step.channel) {
                Some(tracker) => tracker.open(&incident, &idempotency).await.map(|ticket| {
                    self.crash_point("ticket");
                    StepOutcome::Ticket(ticket)
                }),
                None => Err(ActionError::Permanent(format!(
                    "tracker `{}` is no longer configured",
                    step.channel
                ))),
            },
            "comment" => {
                let ticket = external.iter().find(|t| t.tracker == step.channel);
                let text = diagnostics_text(&incident);
                match (self.tracker(&step.channel), ticket, text) {
                    (_, None, _) => Ok(StepOutcome::Skipped("no ticket was opened".into())),
                    (_, _, None) => Ok(StepOutcome::Skipped("no diagnostics to attach".into())),
                    (None, ..) => Err(ActionError::Permanent(format!(
                        "tracker `{}` is no longer configured",
                        step.channel
                    ))),
                    (Some(tracker), Some(ticket), Some(text)) => tracker
                        .comment(ticket, &text, &idempotency)
                        .await
                        .map(|()| StepOutcome::Done {
                            external_id: Some(ticket.id.clone()),
                            link: Some(ticket.url.clone()),
                        }),
                }
            }
            "resolve_ticket" => {
                let ticket = external.iter().find(|t| t.tracker == step.channel);
                match (self.tracker(&step.channel), ticket) {
                    (_, None) => Ok(StepOutcome::Skipped("no ticket was opened".into())),
                    (None, _) => Err(ActionError::Permanent(format!(
                        "tracker `{}` is no longer configured",
                        step.channel
                    ))),
                    (Some(tracker), Some(ticket)) => tracker
                        .resolve(ticket, &incident, &idempotency)
                        .await
                        .map(|()| StepOutcome::Done {
                            external_id: Some(ticket.id.clone()),
                            link: Some(ticket.url.clone()),
                        }),
                }
            }
            "notify" => {
                let told_before = history.iter().any(|h| {
                    h.kind == "opened"
                        && h.name == "notify"
                        && h.channel == step.channel
                        && h.status == StepStatus::Done
                });
                if kind == MessageKind::Resolved && !told_before {
                    Ok(StepOutcome::Skipped(
                        "this channel was not told of the incident".into(),
                    ))
                } else {
                    match self.notifier(&step.channel) {
                        Some(notifier) => {
                            let message = Message {
                                key: idempotency.clone(),
                                kind,
                                diagnostics: diagnostics(&incident),
                                tickets: external.clone(),
                                incident_url: format!(
                                    "{}{key}",
                                    self.incident_base_url
                                        .lock()
                                        .unwrap_or_else(|p| p.into_inner())
                                ),
                                recipients: step
                                    .recipients
                                    .split(',')
                                    .filter(|r| !r.is_empty())
                                    .map(str::to_string)
                                    .collect(),
                                incident,
                            };
                            notifier
                                .send(&message)
                                .await
                                .map(|delivery| StepOutcome::Done {
                                    external_id: delivery.external_id,
                                    link: delivery.detail,
                                })
                        }
                        None => Err(ActionError::Permanent(format!(
                            "channel `{}` is no longer configured",
                            step.channel
                        ))),
                    }
                }
            }
            "undelivered" => Ok(StepOutcome::Undelivered),
            other => Err(ActionError::Permanent(format!(
                "unknown playbook step `{other}`"
            ))),
        };
        self.settle(step, outcome).await;
    }

    async fn settle(&self, step: RunStep, outcome: Result<StepOutcome, ActionError>) {
        let attempts = step.attempts + 1;
        let what = format!("{} via {}", step.name.replace('_', " "), step.channel);
        match outcome {
            Ok(StepOutcome::Ticket(ticket)) => {
                let store = self.store.clone();
                let incident = step.incident_key.clone();
                let record = TicketRecord {
                    tracker: ticket.tracker.clone(),
                    id: ticket.id.clone(),
                    url: ticket.url.clone(),
                };
                let saved =
                    tokio::task::spawn_blocking(move || store.record_ticket(&incident, &record))
                        .await;
                if !matches!(saved, Ok(Ok(()))) {
                    tracing::error!(incident = %step.incident_key, "could not record the ticket; the step will run again and find it");
                    self.postpone(&step, 1_000).await;
                    return;
                }
                self.note(
                    &step.incident_key,
                    TimelineKind::Note,
                    format!(
                        "{} ticket {} opened: {}",
                        ticket.tracker, ticket.id, ticket.url
                    ),
                )
                .await;
                self.record(
                    &step,
                    StepStatus::Done,
                    attempts,
                    None,
                    Some(&ticket.id),
                    Some(&ticket.url),
                )
                .await;
            }
            Ok(StepOutcome::Done { external_id, link }) => {
                self.note(
                    &step.incident_key,
                    TimelineKind::Note,
                    format!("{what}: done after {attempts} attempt(s)"),
                )
                .await;
                self.record(
                    &step,
                    StepStatus::Done,
                    attempts,
                    None,
                    external_id.as_deref(),
                    link.as_deref(),
                )
                .await;
            }
            Ok(StepOutcome::Skipped(why)) => {
                self.record(
                    &step,
                    StepStatus::Skipped,
                    step.attempts,
                    Some(&why),
                    None,
                    None,
                )
                .await;
            }
            Ok(StepOutcome::Undelivered) => {
                let who = if step.recipients.is_empty() {
                    String::new()
                } else {
                    format!(" (for {})", step.recipients.replace(',', ", "))
                };
                let hint = format!("notification not delivered{who}: no channel is configured; set VIGIL_SMTP_URL and VIGIL_EMAIL_TO, VIGIL_SLACK_WEBHOOK_URL or VIGIL_WEBHOOK_URL (or [integrations] in the config)");
                self.note(&step.incident_key, TimelineKind::Note, hint.clone())
                    .await;
                self.record(&step, StepStatus::Failed, 0, Some(&hint), None, None)
                    .await;
            }
            Err(ActionError::Transient {
                what: error,
                retry_after_ms,
            }) if now_ms() < step.deadline_ms => {
                let delay = backoff(attempts, retry_after_ms);
                // Attempts 1, 2, 4, 8, … go on the timeline, so a long outage stays
                // readable; the delivery log counts every attempt.
                if (attempts as u64).is_power_of_two() {
                    self.note(
                        &step.incident_key,
                        TimelineKind::Note,
                        format!(
                            "{what}: attempt {attempts} failed ({error}); retrying in {:.1} s",
                            delay.as_secs_f64()
                        ),
                    )
                    .await;
                }
                let store = self.store.clone();
                let now = (self.now)();
                let next = now_ms() + delay.as_millis() as i64;
                let (run, position) = (step.run_id, step.position);
                let _ = tokio::task::spawn_blocking(move || {
                    store.retry_step(run, position, attempts, &error, next, &now)
                })
                .await;
            }
            Err(error) => {
                let error = error.to_string();
                self.note(
                    &step.incident_key,
                    TimelineKind::Note,
                    format!("{what}: gave up after {attempts} attempt(s): {error}"),
                )
                .await;
                self.record(
                    &step,
                    StepStatus::Failed,
                    attempts,
                    Some(&error),
                    None,
                    None,
                )
                .await;
            }
        }
    }

    fn tracker(&self, name: &str) -> Option<&Arc<dyn Tracker>> {
        self.trackers.iter().find(|t| t.name() == name)
    }

    fn notifier(&self, channel: &str) -> Option<&Arc<dyn Notifier>> {
        self.notifiers.iter().find(|n| n.channel() == channel)
    }

    fn crash_point(&self, step: &str) {
        if self.crash_after.as_deref() == Some(step) {
            tracing::error!(step, "{FAULT_CRASH_AFTER_ENV} is set: aborting on purpose");
            std::process::abort();
        }
    }

    async fn postpone(&self, step: &RunStep, millis: i64) {
        let store = self.store.clone();
        let (run, position, attempts) = (step.run_id, step.position, step.attempts);
        let error = step.last_error.clone().unwrap_or_default();
        let now = (self.now)();
        let _ = tokio::task::spawn_blocking(move || {
            store.retry_step(run, position, attempts, &error, now_ms() + millis, &now)
        })
        .await;
    }

    async fn record(
        &self,
        step: &RunStep,
        status: StepStatus,
        attempts: i64,
        error: Option<&str>,
        external_id: Option<&str>,
        link: Option<&str>,
    ) {
        let store = self.store.clone();
        let (run, position) = (step.run_id, step.position);
        let (error, external_id, link) = (
            error.map(str::to_string),
            external_id.map(str::to_string),
            link.map(str::to_string),
        );
        let now = (self.now)();
        let saved = tokio::task::spawn_blocking(move || {
            store.finish_step(
                run,
                position,
                status,
                attempts,
                error.as_deref(),
                external_id.as_deref(),
                link.as_deref(),
                &now,
            )
        })
        .await;
        if !matches!(saved, Ok(Ok(()))) {
            tracing::error!(
                run,
                position,
                "could not journal a playbook step; it will run again"
            );
        }
    }

    async fn note(&self, incident: &str, kind: TimelineKind, message: String) {
        let store = self.store.clone();
        let incident = incident.to_string();
        let now = (self.now)();
        let _ = tokio::task::spawn_blocking(move || {
            store.add_timeline_entry(&incident, kind, &message, &now)
        })
        .await;
    }
}

enum StepOutcome {
    Ticket(ExternalTicket),
    Done {
        external_id: Option<String>,
        link: Option<String>,
    },
    Skipped(String),
    Undelivered,
}

/// Capped exponential backoff with ±20 % jitter; when the server says when to come back
/// (`Retry-After`), that, plus up to 20 % so retries do not arrive together.
fn backoff(attempts: i64, retry_after_ms: Option<u64>) -> Duration {
    let mut rng = rand::thread_rng();
    if let Some(ms) = retry_after_ms {
        return Duration::from_millis(ms)
            .mul_f64(rng.gen_range(1.0..1.2))
            .min(BACKOFF_CAP.max(Duration::from_millis(ms)));
    }
    let exponent = attempts.clamp(1, 16) as u32 - 1;
    let base = BACKOFF_FIRST.saturating_mul(1 << exponent).min(BACKOFF_CAP);
    base.mul_f64(rng.gen_range(0.8..1.2))
}

fn diagnostics_wait_over(incident: &Incident) -> bool {
    incident
        .opened_at
        .parse::<chrono::DateTime<chrono::Utc>>()
        .map(|opened| {
            (chrono::Utc::now() - opened).num_milliseconds() > DIAGNOSTICS_WAIT.as_millis() as i64
        })
        .unwrap_or(true)
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

fn diagnostics_text(incident: &Incident) -> Option<String> {
    let all = diagnostics(incident);
    (!all.is_empty()).then(|| {
        all.iter()
            .map(|d| d.output.as_str())
            .collect::<Vec<_>>()
            .join("\n\n")
    })
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
