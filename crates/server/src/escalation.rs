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

use crate::ownership::Ownership;
use crate::pipeline::Wake;

pub const UNACKNOWLEDGED: &str = "Incident Unacknowledged";
/// Incidents escalated per check at most; the rest follow on the next (a storm's worth of
/// escalations must not hold the store in one round).
const ESCALATIONS_PER_ROUND: usize = 500;
pub const SOURCE: &str = "vigil.incidents";

pub fn spawn(
    store: Arc<dyn Store>,
    ownership: Arc<Ownership>,
    processor: Wake,
    after_minutes: Vec<u64>,
) {
    if after_minutes.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match escalate_due(store.as_ref(), &ownership, &after_minutes).await {
                Ok(0) => {}
                Ok(_) => processor.poke(),
                Err(e) => tracing::error!(error = %e, "escalation check failed"),
            }
        }
    });
}

/// Escalates every incident whose time has come; returns how many.
async fn escalate_due(
    store: &dyn Store,
    ownership: &Ownership,
    after_minutes: &[u64],
) -> Result<usize, vigil_store::StoreError> {
    let now_ms = crate::now_ms();
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
