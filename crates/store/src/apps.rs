//! The application tree as stored: one row per Appcode holding its node as JSON. Appcodes
//! are never deleted, only retired, so a code can never be reused.

use rusqlite::{params, OptionalExtension};

use crate::{Result, Store};

impl Store {
    /// Every node: (appcode, definition JSON, retired).
    pub fn apps(&self) -> Result<Vec<(String, String, bool)>> {
        let conn = self.reader();
        let mut stmt =
            conn.prepare_cached("SELECT appcode, definition, retired FROM apps ORDER BY appcode")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Writes nodes and host bindings in one transaction (an import, a move, an edit).
    pub fn save_apps(
        &self,
        nodes: &[(String, String)],
        bindings: &[(String, String)],
        now: &str,
    ) -> Result<()> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for (appcode, definition) in nodes {
            tx.prepare_cached(
                "INSERT INTO apps (appcode, definition, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (appcode) DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at",
            )?
            .execute(params![appcode, definition, now])?;
        }
        for (host, appcode) in bindings {
            // Binding a host not enrolled yet keeps the binding for when it is.
            tx.prepare_cached(
                "INSERT INTO hosts (name, appcode, enrolled_at, revoked_at) VALUES (?1, ?2, ?3, ?3)
                 ON CONFLICT (name) DO UPDATE SET appcode = excluded.appcode",
            )?
            .execute(params![host, appcode, now])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Marks Appcodes retired for good: they can never be used again.
    pub fn retire_apps(&self, codes: &[String], now: &str) -> Result<()> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for code in codes {
            tx.prepare_cached(
                "INSERT INTO apps (appcode, definition, retired, updated_at) VALUES (?1, '{}', 1, ?2)
                 ON CONFLICT (appcode) DO UPDATE SET retired = 1, updated_at = excluded.updated_at",
            )?
            .execute(params![code, now])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Every host's binding: (host, appcode).
    pub fn host_bindings(&self) -> Result<Vec<(String, String)>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT name, appcode FROM hosts WHERE appcode IS NOT NULL ORDER BY name",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The Appcode an incident belongs to.
    pub fn incident_appcode(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .reader()
            .query_row("SELECT appcode FROM incidents WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?
            .flatten())
    }

    /// Unacknowledged open incidents with their escalation level: (key, opened_at, level).
    pub fn unacknowledged(&self) -> Result<Vec<(String, String, i64)>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT key, opened_at, escalation_level FROM incidents WHERE status = 'open' ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Raises an open incident's escalation level from `from` to `to`; false when someone
    /// acknowledged it or another escalation got there first.
    pub fn escalate(&self, key: &str, from: i64, to: i64) -> Result<bool> {
        let changed = self.writer().execute(
            "UPDATE incidents SET escalation_level = ?3 WHERE key = ?1 AND status = 'open' AND escalation_level = ?2",
            params![key, from, to],
        )?;
        Ok(changed > 0)
    }
}
