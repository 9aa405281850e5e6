//! Accepted events and SNS subscription requests.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use vigil_core::Event;

use super::{
    exec, incidents, known, query, query_one, query_opt, storms, unsigned, Journal, PostgresStore,
};
use crate::contract::EventStore;
use crate::types::*;
use crate::{Result, StoreError};

pub(crate) const INSERT_EVENT: &str =
    "INSERT INTO events (id, endpoint, received_at, body) VALUES ($1, $2, $3, $4)
     ON CONFLICT (id) DO NOTHING";

/// Stores one event; true if its id is new.
pub(crate) async fn insert_event<C: GenericClient>(
    client: &C,
    endpoint: &str,
    event: &Event,
    received_at: Timestamp,
) -> Result<bool> {
    let body = serde_json::to_string(event)
        .map_err(|e| StoreError::Corrupt(format!("event {}: {e}", event.id)))?;
    let inserted = exec(
        client,
        INSERT_EVENT,
        &[&event.id, &endpoint, &received_at, &body],
    )
    .await?;
    Ok(inserted == 1)
}

fn event_body(body: &str, row: impl std::fmt::Display) -> Result<Event> {
    serde_json::from_str(body).map_err(|e| StoreError::Corrupt(format!("{row}: {e}")))
}

/// Stores a burst of events in one statement, in order; the ids it inserted.
const INSERT_EVENTS: &str = "INSERT INTO events (id, endpoint, received_at, body)
     SELECT e.id, e.endpoint, $3, e.body
     FROM unnest($1::text[], $2::text[], $4::text[]) WITH ORDINALITY AS e (id, endpoint, body, n)
     ORDER BY e.n
     ON CONFLICT (id) DO NOTHING
     RETURNING id";

/// Marks events processed, locking their rows in `seq` order (so two servers marking the
/// same events wait for each other instead of deadlocking); the seqs it marked. A row
/// another server marked first is skipped once that server commits.
const MARK_PROCESSED: &str = "WITH m AS (
       SELECT seq FROM events WHERE seq = ANY($1) AND NOT processed ORDER BY seq FOR UPDATE
     )
     UPDATE events e SET processed = true FROM m WHERE e.seq = m.seq
     RETURNING e.seq";

/// Takes the advisory lock of every group key given, in the locks' own order, so that
/// processors locking overlapping sets of groups never deadlock.
const LOCK_GROUPS: &str = "SELECT pg_advisory_xact_lock(l.h)
     FROM (SELECT DISTINCT hashtext('vigil group ' || k) AS h FROM unnest($1::text[]) AS k
           ORDER BY h) AS l";

/// The unresolved incident of each group given, locked against manual transitions.
const UNRESOLVED: &str = "SELECT group_key, id, key, count FROM incidents
     WHERE group_key = ANY($1) AND status <> 'resolved'
     FOR NO KEY UPDATE";

static JOURNAL_BY_KEY: LazyLock<String> =
    LazyLock::new(|| Journal::sql("i AS (SELECT id, key FROM incidents WHERE key = $1)", 1));

#[async_trait]
impl EventStore for PostgresStore {
    async fn insert_events(
        &self,
        batches: Vec<EventBatch>,
        received_at: Timestamp,
    ) -> Result<Vec<Vec<bool>>> {
        let total = batches.iter().map(|b| b.events.len()).sum();
        let mut ids = Vec::with_capacity(total);
        let mut endpoints = Vec::with_capacity(total);
        let mut bodies = Vec::with_capacity(total);
        for batch in &batches {
            for event in &batch.events {
                ids.push(event.id.as_str());
                endpoints.push(batch.endpoint.as_str());
                bodies.push(
                    serde_json::to_string(event)
                        .map_err(|e| StoreError::Corrupt(format!("event {}: {e}", event.id)))?,
                );
            }
        }
        let client = self.client().await?;
        // One statement, so no transaction: every event is stored or none is.
        let rows = query(
            &client,
            INSERT_EVENTS,
            &[&ids, &endpoints, &received_at, &bodies],
        )
        .await?;
        let mut inserted = HashSet::with_capacity(rows.len());
        for row in &rows {
            inserted.insert(row.try_get::<_, &str>(0)?);
        }
        // An id given twice was inserted once: its first occurrence is the fresh one.
        Ok(batches
            .iter()
            .map(|batch| {
                batch
                    .events
                    .iter()
                    .map(|event| inserted.remove(event.id.as_str()))
                    .collect()
            })
            .collect())
    }

    async fn pending_events(&self, limit: usize) -> Result<Vec<StoredEvent>> {
        let client = self.client().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = query(
            &client,
            "SELECT seq, endpoint, body FROM events WHERE NOT processed ORDER BY seq LIMIT $1",
            &[&limit],
        )
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let seq: i64 = row.try_get("seq")?;
            let body: String = row.try_get("body")?;
            out.push(StoredEvent {
                seq,
                endpoint: row.try_get("endpoint")?,
                event: event_body(&body, format_args!("event seq {seq}"))?,
            });
        }
        Ok(out)
    }

    async fn process_events(
        &self,
        decisions: Vec<Decision>,
        now: Timestamp,
    ) -> Result<Vec<Processed>> {
        if decisions.is_empty() {
            return Ok(Vec::new());
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // The marks come first: they lock the events' rows, so when two servers process
        // the same events, the second finds them processed and applies nothing.
        let seqs: Vec<i64> = decisions.iter().map(|d| d.seq).collect();
        let mut marked = HashSet::with_capacity(seqs.len());
        for row in query(&tx, MARK_PROCESSED, &[&seqs]).await? {
            marked.insert(row.try_get::<_, i64>(0)?);
        }
        // Everyone deciding about a group waits for its lock, taken for all the batch's
        // groups at once; only then are their unresolved incidents looked up (a statement
        // of its own, so it sees what the lock's previous holder committed). The lookup and
        // the inserts that may follow are one step: two servers cannot both open an
        // incident for a group. The alarms' storm groups are locked with them, so one server
        // at a time decides a scope's storm: two never form two storms for one scope.
        let alarms = || {
            decisions
                .iter()
                .filter(|d| marked.contains(&d.seq))
                .filter_map(|d| match &d.effect {
                    Effect::Alarm(update) => Some(update),
                    _ => None,
                })
        };
        let mut groups: Vec<&str> = alarms().map(|u| u.group_key.as_str()).collect();
        groups.sort_unstable();
        groups.dedup();
        let storm_groups: Vec<String> = alarms()
            .filter_map(|u| u.storm.as_ref().map(|plan| plan.group_key()))
            .collect();
        let mut locks: Vec<&str> = groups
            .iter()
            .copied()
            .chain(storm_groups.iter().map(String::as_str))
            .collect();
        locks.sort_unstable();
        locks.dedup();
        let mut unresolved: HashMap<&str, Option<incidents::Unresolved>> =
            groups.iter().map(|g| (*g, None)).collect();
        if !groups.is_empty() {
            exec(&tx, LOCK_GROUPS, &[&locks]).await?;
            for row in query(&tx, UNRESOLVED, &[&groups]).await? {
                let group: String = row.try_get("group_key")?;
                if let Some(slot) = unresolved.get_mut(group.as_str()) {
                    *slot = Some(incidents::Unresolved {
                        id: row.try_get("id")?,
                        key: row.try_get("key")?,
                        count: row.try_get("count")?,
                    });
                }
            }
        }
        let pending: Vec<bool> = decisions.iter().map(|d| marked.contains(&d.seq)).collect();
        let superseded = crate::facts_superseded(&decisions, &pending);
        let mut storm_batch = storms::StormBatch::default();
        let mut out = Vec::with_capacity(decisions.len());
        for (decision, facts_superseded) in decisions.iter().zip(superseded) {
            // A seq given twice is applied once.
            let change = if !marked.remove(&decision.seq) {
                IncidentChange::Unchanged
            } else {
                match &decision.effect {
                    Effect::Nothing => IncidentChange::Unchanged,
                    Effect::Alarm(update) => {
                        let slot =
                            unresolved
                                .get_mut(update.group_key.as_str())
                                .ok_or_else(|| {
                                    StoreError::Corrupt(format!(
                                        "event {}: its group `{}` was not looked up",
                                        decision.event_id, update.group_key
                                    ))
                                })?;
                        incidents::apply_alarm(
                            &tx,
                            &decision.event_id,
                            update,
                            slot,
                            &mut storm_batch,
                            facts_superseded,
                            now,
                        )
                        .await?
                    }
                    Effect::Run { incident_key, run } => {
                        let mut journal = Journal::default();
                        journal.run(run);
                        let mut params: Vec<&(dyn ToSql + Sync)> = vec![incident_key];
                        params.extend(journal.params(&now));
                        match query_opt(&tx, &JOURNAL_BY_KEY, &params).await? {
                            Some(_) => IncidentChange::RunJournaled {
                                key: incident_key.clone(),
                            },
                            None => IncidentChange::Unchanged,
                        }
                    }
                }
            };
            out.push(Processed {
                seq: decision.seq,
                change,
            });
        }
        storm_batch.flush(&tx, now).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn event(&self, id: &str) -> Result<Option<EventRecord>> {
        let client = self.client().await?;
        let Some(row) = query_opt(
            &client,
            "SELECT endpoint, received_at, processed, body FROM events WHERE id = $1",
            &[&id],
        )
        .await?
        else {
            return Ok(None);
        };
        let body: String = row.try_get("body")?;
        Ok(Some(EventRecord {
            endpoint: row.try_get("endpoint")?,
            received_at: row.try_get("received_at")?,
            processed: row.try_get("processed")?,
            event: event_body(&body, format_args!("event {id}"))?,
        }))
    }

    async fn backlog(&self) -> Result<crate::Backlog> {
        let client = self.client().await?;
        let count: i64 = query_one(
            &client,
            "SELECT COUNT(*) FROM events WHERE NOT processed",
            &[],
        )
        .await?
        .try_get(0)?;
        let oldest = query_opt(
            &client,
            "SELECT received_at FROM events WHERE NOT processed ORDER BY seq LIMIT 1",
            &[],
        )
        .await?
        .map(|row| row.try_get::<_, crate::Timestamp>(0))
        .transpose()?;
        Ok(crate::Backlog {
            events: unsigned(count, "events", "pending")?,
            oldest_accepted_at: oldest,
        })
    }

    async fn event_count(&self) -> Result<u64> {
        let client = self.client().await?;
        let count: i64 = query_one(&client, "SELECT COUNT(*) FROM events", &[])
            .await?
            .try_get(0)?;
        unsigned(count, "events", "count")
    }

    async fn record_sns_subscription(
        &self,
        subscription: SnsSubscription,
        status: SnsStatus,
        now: Timestamp,
    ) -> Result<()> {
        let client = self.client().await?;
        exec(&client, "INSERT INTO sns_subscriptions (topic_arn, message_id, subscribe_url, received_at, status)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (message_id) DO NOTHING",
                &[
                    &subscription.topic_arn,
                    &subscription.message_id,
                    &subscription.subscribe_url,
                    &now,
                    &status.as_str(),
                ],
            )
            .await?;
        Ok(())
    }

    async fn set_sns_subscription_status(
        &self,
        message_id: &str,
        status: SnsStatus,
        detail: &str,
    ) -> Result<()> {
        let client = self.client().await?;
        exec(
            &client,
            "UPDATE sns_subscriptions SET status = $2, detail = $3 WHERE message_id = $1",
            &[&message_id, &status.as_str(), &detail],
        )
        .await?;
        Ok(())
    }

    async fn sns_subscriptions(&self) -> Result<Vec<(String, SnsStatus)>> {
        let client = self.client().await?;
        let rows = query(
            &client,
            "SELECT message_id, topic_arn, status FROM sns_subscriptions
                 ORDER BY received_at DESC, id DESC",
            &[],
        )
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let message_id: String = row.try_get("message_id")?;
            let status: String = row.try_get("status")?;
            let status = known(
                &status,
                SnsStatus::parse,
                format_args!("SNS subscription {message_id}"),
                "status",
            )?;
            out.push((row.try_get("topic_arn")?, status));
        }
        Ok(out)
    }
}
