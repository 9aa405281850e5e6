//! Accepted events and SNS subscription requests.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use vigil_core::Event;

use super::{create_run, incident_id, incidents, known, unsigned, PostgresStore};
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
    let statement = client.prepare_cached(INSERT_EVENT).await?;
    let inserted = client
        .execute(&statement, &[&event.id, &endpoint, &received_at, &body])
        .await?;
    Ok(inserted == 1)
}

fn event_body(body: &str, row: impl std::fmt::Display) -> Result<Event> {
    serde_json::from_str(body).map_err(|e| StoreError::Corrupt(format!("{row}: {e}")))
}

#[async_trait]
impl EventStore for PostgresStore {
    async fn insert_events(
        &self,
        batches: Vec<EventBatch>,
        received_at: Timestamp,
    ) -> Result<Vec<Vec<bool>>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let mut out = Vec::with_capacity(batches.len());
        for batch in &batches {
            let mut fresh = Vec::with_capacity(batch.events.len());
            for event in &batch.events {
                fresh.push(insert_event(&tx, &batch.endpoint, event, received_at).await?);
            }
            out.push(fresh);
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn pending_events(&self, limit: usize) -> Result<Vec<StoredEvent>> {
        let client = self.client().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(
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
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let mut out = Vec::with_capacity(decisions.len());
        for decision in &decisions {
            // The mark comes first: it locks the event's row, so when two servers process
            // the same event, the second finds it processed and applies nothing.
            let marked = tx
                .execute(
                    "UPDATE events SET processed = true WHERE seq = $1 AND NOT processed",
                    &[&decision.seq],
                )
                .await?;
            let change = if marked == 0 {
                IncidentChange::Unchanged
            } else {
                match &decision.effect {
                    Effect::Nothing => IncidentChange::Unchanged,
                    Effect::Alarm(update) => {
                        incidents::apply_alarm(&tx, &decision.event_id, update, now).await?
                    }
                    Effect::Run { incident_key, run } => {
                        match incident_id(&tx, incident_key).await? {
                            Some(incident) => {
                                create_run(&tx, incident, run, now).await?;
                                IncidentChange::RunJournaled {
                                    key: incident_key.clone(),
                                }
                            }
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
        tx.commit().await?;
        Ok(out)
    }

    async fn event(&self, id: &str) -> Result<Option<EventRecord>> {
        let client = self.client().await?;
        let Some(row) = client
            .query_opt(
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

    async fn event_count(&self) -> Result<u64> {
        let client = self.client().await?;
        let count: i64 = client
            .query_one("SELECT COUNT(*) FROM events", &[])
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
        client
            .execute(
                "INSERT INTO sns_subscriptions (topic_arn, message_id, subscribe_url, received_at, status)
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
        client
            .execute(
                "UPDATE sns_subscriptions SET status = $2, detail = $3 WHERE message_id = $1",
                &[&message_id, &status.as_str(), &detail],
            )
            .await?;
        Ok(())
    }

    async fn sns_subscriptions(&self) -> Result<Vec<(String, SnsStatus)>> {
        let client = self.client().await?;
        let rows = client
            .query(
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
