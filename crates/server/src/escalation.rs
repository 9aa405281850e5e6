//! Escalation: an incident nobody acknowledged within the configured minutes emits a
//! `vigil.incidents` "Incident Unacknowledged" event, one per level; the built-in
//! `escalation` rule sends it to the `escalate` playbook, which notifies the next level up
//! the application tree. Acknowledging stops it: only open (unacknowledged) incidents are
//! looked at, and the level only rises while the incident is still open.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use vigil_core::{Event, TimelineKind};
use vigil_store::Store;

use crate::clock::Clock;
use crate::ownership::Ownership;
use crate::pipeline::Ingest;

pub const UNACKNOWLEDGED: &str = "Incident Unacknowledged";
pub const SOURCE: &str = "vigil.incidents";

pub fn spawn(
    store: Arc<Store>,
    ownership: Arc<Ownership>,
    clock: Arc<Clock>,
    ingest: Ingest,
    after_minutes: Vec<u64>,
    now: fn() -> String,
) {
    if after_minutes.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (store_ref, ownership, clock, after) = (
                store.clone(),
                ownership.clone(),
                clock.clone(),
                after_minutes.clone(),
            );
            let due = tokio::task::spawn_blocking(move || {
                due_escalations(&store_ref, &ownership, &clock, &after, now)
            })
            .await;
            let events = match due {
                Ok(Ok(events)) => events,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "escalation check failed");
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "escalation task failed");
                    continue;
                }
            };
            if !events.is_empty() {
                if let Err(e) = ingest.submit("escalation", events).await {
                    tracing::error!(error = %e, "could not store escalation events");
                }
            }
        }
    });
}

fn due_escalations(
    store: &Store,
    ownership: &Ownership,
    clock: &Clock,
    after_minutes: &[u64],
    now: fn() -> String,
) -> Result<Vec<Event>, vigil_store::StoreError> {
    let now_ms = clock.now_ms();
    let mut events = Vec::new();
    for (key, opened_at, level) in store.unacknowledged()? {
        let Some(minutes) = after_minutes.get(level.max(0) as usize) else {
            continue;
        };
        let Ok(opened) = opened_at.parse::<chrono::DateTime<chrono::Utc>>() else {
            continue;
        };
        if now_ms - opened.timestamp_millis() < (*minutes as i64) * 60_000 {
            continue;
        }
        if !store.escalate(&key, level, level + 1)? {
            continue; // acknowledged or resolved meanwhile
        }
        let appcode = store.incident_appcode(&key)?;
        let next = (level + 1) as usize;
        let targets = appcode
            .as_deref()
            .map(|a| ownership.escalation_targets(a))
            .unwrap_or_default();
        let who = match targets.get(next - 1) {
            Some((from, people)) => format!("{from}: {}", people.join(", ")),
            None => "nobody further up the application tree".to_string(),
        };
        store.add_timeline_entry(
            &key,
            TimelineKind::Note,
            &format!("not acknowledged within {minutes} min: escalated to level {next} ({who})"),
            &now(),
        )?;
        tracing::warn!(incident = %key, level = next, minutes, "incident escalated");
        events.push(Event {
            version: "0".into(),
            id: format!("escalation-{key}-{next}"),
            detail_type: UNACKNOWLEDGED.into(),
            source: SOURCE.into(),
            account: "vigil".into(),
            time: now(),
            region: "local".into(),
            resources: vec![format!("vigil:incident/{key}")],
            detail: json!({"key": key, "level": next, "minutes": minutes, "appcode": appcode}),
        });
    }
    Ok(events)
}
