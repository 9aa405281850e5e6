//! Alarm definitions and the persisted state of every alarm instance.

use async_trait::async_trait;
use vigil_core::{AlarmState, Event};

use super::{events, exec, known, query, PostgresStore};
use crate::contract::AlarmStore;
use crate::types::*;
use crate::Result;

#[async_trait]
impl AlarmStore for PostgresStore {
    async fn put_alarm(&self, name: &str, definition: &str, now: Timestamp) -> Result<()> {
        let client = self.client().await?;
        exec(
            &client,
            "INSERT INTO alarms (name, definition, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET definition = EXCLUDED.definition,
                   updated_at = EXCLUDED.updated_at",
            &[&name, &definition, &now],
        )
        .await?;
        Ok(())
    }

    async fn delete_alarm(&self, name: &str) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let deleted = exec(&tx, "DELETE FROM alarms WHERE name = $1", &[&name]).await?;
        exec(&tx, "DELETE FROM alarm_states WHERE alarm = $1", &[&name]).await?;
        tx.commit().await?;
        Ok(deleted > 0)
    }

    async fn alarms(&self) -> Result<Vec<(String, String)>> {
        let client = self.client().await?;
        let rows = query(
            &client,
            "SELECT name, definition FROM alarms ORDER BY name",
            &[],
        )
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push((row.try_get("name")?, row.try_get("definition")?));
        }
        Ok(out)
    }

    async fn alarm_states(&self) -> Result<Vec<AlarmStateRecord>> {
        let client = self.client().await?;
        let rows = query(
            &client,
            "SELECT alarm, series, state, since, reason, reason_data, value FROM alarm_states
             ORDER BY alarm, series",
            &[],
        )
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let alarm: String = row.try_get("alarm")?;
            let series: String = row.try_get("series")?;
            let state: String = row.try_get("state")?;
            let state = known(
                &state,
                AlarmState::parse,
                format_args!("alarm {alarm} series {series}"),
                "state",
            )?;
            out.push(AlarmStateRecord {
                alarm,
                series,
                state,
                since: row.try_get("since")?,
                reason: row.try_get("reason")?,
                reason_data: row.try_get("reason_data")?,
                value: row.try_get("value")?,
            });
        }
        Ok(out)
    }

    async fn record_alarm_changes(
        &self,
        states: Vec<AlarmStateRecord>,
        events: Vec<Event>,
        now: Timestamp,
    ) -> Result<()> {
        if states.is_empty() && events.is_empty() {
            return Ok(());
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        for s in &states {
            exec(
                &tx,
                "INSERT INTO alarm_states (alarm, series, state, since, reason, reason_data, value)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (alarm, series) DO UPDATE SET state = EXCLUDED.state,
                   since = EXCLUDED.since, reason = EXCLUDED.reason,
                   reason_data = EXCLUDED.reason_data, value = EXCLUDED.value",
                &[
                    &s.alarm,
                    &s.series,
                    &s.state.as_str(),
                    &s.since,
                    &s.reason,
                    &s.reason_data,
                    &s.value,
                ],
            )
            .await?;
        }
        for event in &events {
            events::insert_event(&tx, "alarms", event, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
