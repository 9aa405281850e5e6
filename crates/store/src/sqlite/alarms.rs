//! Alarm definitions and the persisted state of every alarm instance, so a restart resumes
//! where it stopped instead of starting every alarm from INSUFFICIENT_DATA.

use async_trait::async_trait;
use rusqlite::params;
use vigil_core::{AlarmState, Event};

use super::{from_millis, millis, parse_enum, text, SqliteStore};
use crate::{AlarmStateRecord, AlarmStore, Result, StoreError, Timestamp};

#[async_trait]
impl AlarmStore for SqliteStore {
    async fn put_alarm(&self, name: &str, definition: &str, now: Timestamp) -> Result<()> {
        let (name, definition) = (name.to_string(), definition.to_string());
        self.blocking(move |db| {
            db.write(|tx| {
                tx.execute(
                    "INSERT INTO alarms (name, definition, updated_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at",
                    params![name, definition, text(now)],
                )?;
                Ok(())
            })
        })
        .await
    }

    async fn delete_alarm(&self, name: &str) -> Result<bool> {
        let name = name.to_string();
        self.blocking(move |db| {
            db.write(|tx| {
                let deleted = tx.execute("DELETE FROM alarms WHERE name = ?1", [&name])?;
                tx.execute("DELETE FROM alarm_states WHERE alarm = ?1", [&name])?;
                Ok(deleted > 0)
            })
        })
        .await
    }

    async fn alarms(&self) -> Result<Vec<(String, String)>> {
        self.blocking(|db| {
            db.read(|tx| {
                let mut stmt =
                    tx.prepare_cached("SELECT name, definition FROM alarms ORDER BY name")?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                Ok(rows.collect::<rusqlite::Result<_>>()?)
            })
        })
        .await
    }

    async fn alarm_states(&self) -> Result<Vec<AlarmStateRecord>> {
        self.blocking(|db| {
            db.read(|tx| {
                let mut stmt = tx.prepare_cached(
                    "SELECT alarm, series, state, since_ms, reason, reason_data, value FROM alarm_states",
                )?;
                let rows = stmt.query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, Option<String>>(5)?,
                        r.get::<_, Option<f64>>(6)?,
                    ))
                })?;
                let mut out = Vec::new();
                for row in rows {
                    let (alarm, series, state, since_ms, reason, reason_data, value) = row?;
                    let what = || format!("alarm {alarm} series {series}");
                    let reason_data = reason_data
                        .map(|text| serde_json::from_str(&text))
                        .transpose()
                        .map_err(|e| StoreError::Corrupt(format!("{}: reason_data: {e}", what())))?;
                    out.push(AlarmStateRecord {
                        state: parse_enum(&state, AlarmState::parse, what)?,
                        since: from_millis(since_ms, what)?,
                        alarm,
                        series,
                        reason,
                        reason_data,
                        value,
                    });
                }
                Ok(out)
            })
        })
        .await
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
        self.blocking(move |db| {
            db.write(|tx| {
                for s in &states {
                    tx.prepare_cached(
                        "INSERT INTO alarm_states (alarm, series, state, since_ms, reason, reason_data, value)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                         ON CONFLICT (alarm, series) DO UPDATE SET state = excluded.state,
                           since_ms = excluded.since_ms, reason = excluded.reason,
                           reason_data = excluded.reason_data, value = excluded.value",
                    )?
                    .execute(params![
                        s.alarm,
                        s.series,
                        s.state.as_str(),
                        millis(s.since),
                        s.reason,
                        s.reason_data.as_ref().map(serde_json::Value::to_string),
                        s.value
                    ])?;
                }
                for event in &events {
                    super::events::insert_one(tx, "alarms", event, now)?;
                }
                Ok(())
            })
        })
        .await
    }
}
