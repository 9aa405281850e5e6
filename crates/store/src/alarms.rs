//! Alarm definitions and the persisted state of every alarm instance, so a restart resumes
//! where it stopped instead of starting every alarm from INSUFFICIENT_DATA.

use rusqlite::params;

use crate::{Result, Store};

/// The last known state of one alarm instance (alarm × series).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmStateRecord {
    pub alarm: String,
    pub series: String,
    pub state: String,
    pub since_ms: i64,
}

impl Store {
    /// Stores a definition (JSON text) under its name, replacing an older one.
    pub fn put_alarm(&self, name: &str, definition: &str, now: &str) -> Result<()> {
        self.writer().execute(
            "INSERT INTO alarms (name, definition, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at",
            params![name, definition, now],
        )?;
        Ok(())
    }

    /// Deletes a definition and its instances' states. False if there was none.
    pub fn delete_alarm(&self, name: &str) -> Result<bool> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let deleted = tx.execute("DELETE FROM alarms WHERE name = ?1", [name])?;
        tx.execute("DELETE FROM alarm_states WHERE alarm = ?1", [name])?;
        tx.commit()?;
        Ok(deleted > 0)
    }

    /// Every stored definition: (name, JSON text).
    pub fn alarms(&self) -> Result<Vec<(String, String)>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached("SELECT name, definition FROM alarms ORDER BY name")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records state changes, all in one transaction.
    pub fn save_alarm_states(&self, states: &[AlarmStateRecord]) -> Result<()> {
        if states.is_empty() {
            return Ok(());
        }
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for s in states {
            tx.prepare_cached(
                "INSERT INTO alarm_states (alarm, series, state, since_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (alarm, series) DO UPDATE SET state = excluded.state, since_ms = excluded.since_ms",
            )?
            .execute(params![s.alarm, s.series, s.state, s.since_ms])?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn alarm_states(&self) -> Result<Vec<AlarmStateRecord>> {
        let conn = self.reader();
        let mut stmt =
            conn.prepare_cached("SELECT alarm, series, state, since_ms FROM alarm_states")?;
        let rows = stmt.query_map([], |r| {
            Ok(AlarmStateRecord {
                alarm: r.get(0)?,
                series: r.get(1)?,
                state: r.get(2)?,
                since_ms: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
