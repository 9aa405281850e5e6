//! Accepted events, their processing (the outbox transaction), SNS subscriptions.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::incidents::{apply_alarm, journal_run};
use super::{exec, json_text, one, parse_enum, parse_time, text, SqliteStore};
use crate::{
    Decision, Effect, EventBatch, EventRecord, EventStore, IncidentChange, Result, SnsStatus,
    SnsSubscription, StoreError, StoredEvent, Timestamp,
};

#[async_trait]
impl EventStore for SqliteStore {
    async fn insert_events(
        &self,
        batches: Vec<EventBatch>,
        received_at: Timestamp,
    ) -> Result<Vec<Vec<bool>>> {
        self.blocking(move |db| db.write(|tx| insert_events(tx, &batches, received_at)))
            .await
    }

    async fn pending_events(&self, limit: usize) -> Result<Vec<StoredEvent>> {
        self.blocking(move |db| db.read(|tx| pending_events(tx, limit)))
            .await
    }

    async fn process_events(
        &self,
        decisions: Vec<Decision>,
        now: Timestamp,
    ) -> Result<Vec<crate::Processed>> {
        self.blocking(move |db| {
            db.write_journal(|tx| {
                // The marks come first, and tell which events were still pending: one
                // already processed (a second processor, a replay) changes nothing.
                let mut pending = Vec::with_capacity(decisions.len());
                for decision in &decisions {
                    let marked = tx
                        .prepare_cached(
                            "UPDATE events SET processed = 1 WHERE seq = ?1 AND processed = 0",
                        )?
                        .execute([decision.seq])?;
                    pending.push(marked == 1);
                }
                let superseded = crate::facts_superseded(&decisions, &pending);
                let mut incidents = super::incidents::BatchIncidents::default();
                let mut out = Vec::with_capacity(decisions.len());
                for ((decision, pending), superseded) in
                    decisions.iter().zip(pending).zip(superseded)
                {
                    out.push(process_one(
                        tx,
                        decision,
                        pending,
                        superseded,
                        &mut incidents,
                        now,
                    )?);
                }
                Ok(out)
            })
        })
        .await
    }

    async fn backlog(&self) -> Result<crate::Backlog> {
        self.blocking(|db| {
            db.read(|tx| {
                // Both answers come from the pending index: its size, and its first row
                // (events are numbered as they are accepted).
                let events: i64 = one(
                    tx,
                    "SELECT COUNT(*) FROM events WHERE processed = 0",
                    [],
                    |r| r.get(0),
                )?;
                let oldest: Option<String> = one(
                    tx,
                    "SELECT received_at FROM events WHERE processed = 0 ORDER BY seq LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
                Ok(crate::Backlog {
                    events: u64::try_from(events).unwrap_or_default(),
                    oldest_accepted_at: oldest
                        .map(|t| parse_time(&t, || "the oldest pending event".into()))
                        .transpose()?,
                })
            })
        })
        .await
    }

    async fn event(&self, id: &str) -> Result<Option<EventRecord>> {
        let id = id.to_string();
        self.blocking(move |db| db.read(|tx| event(tx, &id))).await
    }

    async fn event_count(&self) -> Result<u64> {
        self.blocking(|db| {
            db.read(|tx| {
                let n: i64 = one(tx, "SELECT COUNT(*) FROM events", [], |r| r.get(0))?;
                Ok(n.max(0) as u64)
            })
        })
        .await
    }

    async fn record_sns_subscription(
        &self,
        sub: SnsSubscription,
        status: SnsStatus,
        now: Timestamp,
    ) -> Result<()> {
        self.blocking(move |db| {
            db.write(|tx| {
                exec(
                    tx,
                    "INSERT INTO sns_subscriptions (topic_arn, message_id, subscribe_url, received_at, status)
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (message_id) DO NOTHING",
                    params![sub.topic_arn, sub.message_id, sub.subscribe_url, text(now), status.as_str()],
                )?;
                Ok(())
            })
        })
        .await
    }

    async fn set_sns_subscription_status(
        &self,
        message_id: &str,
        status: SnsStatus,
        detail: &str,
    ) -> Result<()> {
        let (message_id, detail) = (message_id.to_string(), detail.to_string());
        self.blocking(move |db| {
            db.write(|tx| {
                exec(
                    tx,
                    "UPDATE sns_subscriptions SET status = ?2, detail = ?3 WHERE message_id = ?1",
                    params![message_id, status.as_str(), detail],
                )?;
                Ok(())
            })
        })
        .await
    }

    async fn sns_subscriptions(&self) -> Result<Vec<(String, SnsStatus)>> {
        self.blocking(|db| {
            db.read(|tx| {
                let mut stmt = tx.prepare_cached(
                    "SELECT message_id, topic_arn, status FROM sns_subscriptions ORDER BY received_at DESC",
                )?;
                let rows = stmt.query_map([], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
                })?;
                let mut out = Vec::new();
                for row in rows {
                    let (id, topic, status) = row?;
                    let status = parse_enum(&status, SnsStatus::parse, || {
                        format!("SNS subscription {id}: status")
                    })?;
                    out.push((topic, status));
                }
                Ok(out)
            })
        })
        .await
    }
}

fn insert_events(
    tx: &rusqlite::Transaction<'_>,
    batches: &[EventBatch],
    received_at: Timestamp,
) -> Result<Vec<Vec<bool>>> {
    let received_at = text(received_at);
    let mut stmt = tx.prepare_cached(
        "INSERT INTO events (id, endpoint, received_at, body) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (id) DO NOTHING",
    )?;
    let mut out = Vec::with_capacity(batches.len());
    for batch in batches {
        let mut fresh = Vec::with_capacity(batch.events.len());
        for event in &batch.events {
            let body = json_text(event, &format!("event {}", event.id))?;
            fresh.push(stmt.execute((&event.id, &batch.endpoint, &received_at, body))? == 1);
        }
        out.push(fresh);
    }
    Ok(out)
}

pub(super) fn insert_one(
    tx: &rusqlite::Transaction<'_>,
    endpoint: &str,
    event: &vigil_core::Event,
    received_at: Timestamp,
) -> Result<bool> {
    let body = json_text(event, &format!("event {}", event.id))?;
    Ok(tx
        .prepare_cached(
            "INSERT INTO events (id, endpoint, received_at, body) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (id) DO NOTHING",
        )?
        .execute((&event.id, endpoint, text(received_at), body))?
        == 1)
}

fn pending_events(tx: &rusqlite::Transaction<'_>, limit: usize) -> Result<Vec<StoredEvent>> {
    let mut stmt = tx.prepare_cached(
        "SELECT seq, endpoint, body FROM events WHERE processed = 0 ORDER BY seq LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit as i64], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, endpoint, body) = row?;
        let event = serde_json::from_str(&body)
            .map_err(|e| StoreError::Corrupt(format!("event seq {seq}: {e}")))?;
        out.push(StoredEvent {
            seq,
            endpoint,
            event,
        });
    }
    Ok(out)
}

fn process_one(
    tx: &rusqlite::Transaction<'_>,
    decision: &Decision,
    pending: bool,
    facts_superseded: bool,
    incidents: &mut super::incidents::BatchIncidents,
    now: Timestamp,
) -> Result<crate::Processed> {
    let change = if !pending {
        IncidentChange::Unchanged
    } else {
        match &decision.effect {
            Effect::Nothing => IncidentChange::Unchanged,
            Effect::Alarm(update) => apply_alarm(
                tx,
                &decision.event_id,
                update,
                facts_superseded,
                incidents,
                now,
            )?,
            Effect::Run { incident_key, run } => {
                let id: Option<i64> = one(
                    tx,
                    "SELECT id FROM incidents WHERE key = ?1",
                    [incident_key],
                    |r| r.get(0),
                )
                .optional()?;
                match id {
                    Some(id) => {
                        journal_run(tx, id, run, now)?;
                        IncidentChange::RunJournaled {
                            key: incident_key.clone(),
                        }
                    }
                    None => IncidentChange::Unchanged,
                }
            }
        }
    };
    Ok(crate::Processed {
        seq: decision.seq,
        change,
    })
}

fn event(tx: &rusqlite::Transaction<'_>, id: &str) -> Result<Option<EventRecord>> {
    let found: Option<(String, String, bool, String)> = one(
        tx,
        "SELECT endpoint, received_at, processed, body FROM events WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )
    .optional()?;
    let Some((endpoint, received_at, processed, body)) = found else {
        return Ok(None);
    };
    let event =
        serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(format!("event {id}: {e}")))?;
    Ok(Some(EventRecord {
        endpoint,
        received_at: parse_time(&received_at, || format!("event {id}: received_at"))?,
        processed,
        event,
    }))
}
