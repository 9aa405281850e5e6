//! Escalation: an incident nobody acknowledged within the configured minutes emits a
//! `vigil.incidents` "Incident Unacknowledged" event, one per level; the built-in
//! `escalation` rule sends it to the `escalate` playbook, which notifies the next level up
//! the application tree. Acknowledging stops it: only open (unacknowledged) incidents are
//! looked at, and the level only rises while the incident is still open. The level, the
//! timeline note and the event commit together, so an escalation is never lost between
//! deciding it and telling anyone.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use vigil_core::{Event, TimelineKind};
use vigil_store::{Escalation, Note, Store};

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::ownership::Ownership;
use crate::pipeline::Wake;

pub const UNACKNOWLEDGED: &str = "Incident Unacknowledged";
/// Incidents escalated per check at most; the rest follow on the next (a storm's worth of
/// escalations must not hold the store in one round).
const ESCALATIONS_PER_ROUND: usize = 500;
/// After a store error, wait this long before looking again.
const ERROR_BACKOFF: Duration = Duration::from_secs(1);
pub const SOURCE: &str = "vigil.incidents";

/// Sleeps until the next open incident falls due (on the server clock), escalates what is
/// due, and again. `wake` is rung when an incident opens or is acknowledged; a move of the
/// test clock wakes it too. Nothing else can make an escalation due sooner, so there is no
/// periodic check.
pub fn spawn(
    store: Arc<dyn Store>,
    ownership: Arc<Ownership>,
    clock: Arc<Clock>,
    wake: Wake,
    processor: Wake,
    metrics: Arc<Metrics>,
    after_minutes: Vec<u64>,
) {
    if after_minutes.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let mut moves = clock.moves();
        loop {
            metrics.inc("vigil_escalation_checks_total", String::new());
            let checked_at = crate::clock::now_ms();
            let wait = match escalate_due(store.as_ref(), &ownership, checked_at, &after_minutes)
                .await
            {
                Ok(escalated) => {
                    if escalated > 0 {
                        processor.poke();
                    }
                    if escalated < ESCALATIONS_PER_ROUND {
                        metrics.set("vigil_escalation_checked_at_ms", checked_at);
                    }
                    match next_due(store.as_ref(), &after_minutes).await {
                        Ok(wait) => wait,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot read when the next escalation is due; retrying");
                            Some(ERROR_BACKOFF)
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "escalation check failed; retrying");
                    Some(ERROR_BACKOFF)
                }
            };
            let timer = async {
                match wait {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = timer => {}
                _ = wake.rung() => {}
                // The sender lives in `clock`, which this task holds: never an error.
                _ = moves.changed() => {}
            }
        }
    });
}

/// How long until the next open incident falls due; `None` when none will without a new
/// incident.
async fn next_due(
    store: &dyn Store,
    after_minutes: &[u64],
) -> Result<Option<Duration>, vigil_store::StoreError> {
    let oldest = store.oldest_unacknowledged(after_minutes.len()).await?;
    let due_ms = oldest
        .iter()
        .filter_map(|open| {
            let minutes = after_minutes.get(open.level as usize)?;
            Some(
                open.opened_at
                    .timestamp_millis()
                    .saturating_add((*minutes as i64).saturating_mul(60_000)),
            )
        })
        .min();
    // One millisecond more: the store's times may be finer than the clock's milliseconds.
    Ok(due_ms.map(|due| {
        Duration::from_millis(due.saturating_sub(crate::clock::now_ms()).max(0) as u64 + 1)
    }))
}

/// Escalates every incident whose time has come by `now_ms` on the server clock, up to a
/// round's worth; returns how many.
async fn escalate_due(
    store: &dyn Store,
    ownership: &Ownership,
    now_ms: i64,
    after_minutes: &[u64],
) -> Result<usize, vigil_store::StoreError> {
    let cutoffs = after_minutes
        .iter()
        .map(|minutes| {
            let ms = now_ms.saturating_sub((*minutes as i64).saturating_mul(60_000));
            chrono::DateTime::from_timestamp_millis(ms).unwrap_or(chrono::DateTime::UNIX_EPOCH)
        })
        .collect::<Vec<_>>();
    let mut escalated = 0;
    for open in store
        .escalations_due(&cutoffs, ESCALATIONS_PER_ROUND)
        .await?
    {
        let Some(minutes) = after_minutes.get(open.level as usize) else {
            continue;
        };
        let key = open.key;
        let appcode = store.incident_appcode(&key).await?;
        let next = open.level + 1;
        let targets = appcode
            .as_deref()
            .map(|a| ownership.escalation_targets(a))
            .unwrap_or_default();
        let who = match targets.get(next as usize - 1) {
            Some((from, people)) => format!("{from}: {}", people.join(", ")),
            None => "nobody further up the application tree".to_string(),
        };
        let now = crate::now();
        let event = Event {
            version: "0".into(),
            id: format!("escalation-{key}-{next}"),
            detail_type: UNACKNOWLEDGED.into(),
            source: SOURCE.into(),
            account: "vigil".into(),
            time: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            region: "local".into(),
            resources: vec![format!("vigil:incident/{key}")],
            detail: json!({"key": key, "level": next, "minutes": minutes, "appcode": appcode}),
        };
        let escalation = Escalation {
            key: key.clone(),
            from: open.level,
            to: next,
            note: Note::new(
                TimelineKind::Note,
                format!("not acknowledged within {minutes} min: escalated to level {next} ({who})"),
            ),
            event,
            now,
        };
        if !store.escalate(escalation).await? {
            continue; // acknowledged or resolved meanwhile
        }
        crate::fault::crash_point("escalated");
        tracing::warn!(incident = %key, level = next, minutes, "incident escalated");
        escalated += 1;
    }
    Ok(escalated)
}
