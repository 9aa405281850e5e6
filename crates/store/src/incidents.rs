use rusqlite::{params, OptionalExtension, Row, Transaction};
use vigil_core::{AlarmFacts, Incident, IncidentStatus, Severity, TimelineEntry, TimelineKind};

use crate::{Result, Store, StoreError};

/// What an alarm event does to incidents, decided by the playbook step its rule names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmAction {
    /// Open an incident for the group, or count a repeat on the unresolved one.
    OpenOrRepeat,
    /// Resolve the group's unresolved incident, if any.
    Resolve,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncidentChange {
    Opened {
        key: String,
    },
    Repeated {
        key: String,
        count: u64,
    },
    Resolved {
        key: String,
    },
    /// A recovery for a group with nothing open: the event is recorded, nothing changes.
    NothingToResolve,
}

#[derive(Debug, Clone, Default)]
pub struct IncidentFilter {
    pub status: Option<IncidentStatus>,
    pub limit: usize,
    /// Only incidents of these Appcodes (a scoped token's subtree); `None` for all.
    pub appcodes: Option<Vec<String>>,
}

const COLUMNS: &str = "id, key, group_key, status, severity, title, count, opened_at, acknowledged_at, resolved_at, last_event_at, facts";

impl Store {
    /// Applies one alarm event to the incidents and marks it processed, atomically.
    #[allow(clippy::too_many_arguments)]
    pub fn apply_alarm(
        &self,
        seq: i64,
        event_id: &str,
        facts: &AlarmFacts,
        group_key: &str,
        severity: Severity,
        action: AlarmAction,
        now: &str,
    ) -> Result<IncidentChange> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let unresolved: Option<(i64, String, u64)> = tx
            .query_row(
                "SELECT id, key, count FROM incidents WHERE group_key = ?1 AND status != 'resolved'",
                [group_key],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let facts_json = serde_json::to_string(facts)
            .map_err(|e| StoreError::Corrupt(format!("alarm facts: {e}")))?;
        let state = facts.state.map(|s| s.as_str()).unwrap_or("unknown");
        let change = match (action, unresolved) {
            (AlarmAction::OpenOrRepeat, Some((id, key, count))) => {
                let count = count + 1;
                tx.execute(
                    "UPDATE incidents SET count = ?2, last_event_at = ?3, facts = ?4 WHERE id = ?1",
                    params![id, count as i64, now, facts_json],
                )?;
                let message = format!(
                    "repeat #{count}: {state} — {}",
                    facts.reason.as_deref().unwrap_or("no reason given")
                );
                add_timeline(&tx, id, now, TimelineKind::Repeat, &message, Some(event_id))?;
                IncidentChange::Repeated { key, count }
            }
            (AlarmAction::OpenOrRepeat, None) => {
                let next_id: i64 = tx.query_row(
                    "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'incidents'), 0) + 1",
                    [],
                    |r| r.get(0),
                )?;
                let key = format!("INC-{next_id}");
                tx.execute(
                    "INSERT INTO incidents (id, key, group_key, status, severity, title, count, host, opened_at, last_event_at, facts, appcode)
                     VALUES (?1, ?2, ?3, 'open', ?4, ?5, 1, ?6, ?7, ?7, ?8, ?9)",
                    params![next_id, key, group_key, severity.as_str(), facts.title(), facts.host, now, facts_json, facts.appcode],
                )?;
                let message = format!(
                    "opened: {state} — {}",
                    facts.reason.as_deref().unwrap_or("no reason given")
                );
                add_timeline(
                    &tx,
                    next_id,
                    now,
                    TimelineKind::Opened,
                    &message,
                    Some(event_id),
                )?;
                IncidentChange::Opened { key }
            }
            (AlarmAction::Resolve, Some((id, key, _))) => {
                tx.execute(
                    "UPDATE incidents SET status = 'resolved', resolved_at = ?2, last_event_at = ?2 WHERE id = ?1",
                    params![id, now],
                )?;
                let message = format!(
                    "resolved: alarm is {state} — {}",
                    facts.reason.as_deref().unwrap_or("recovered")
                );
                add_timeline(
                    &tx,
                    id,
                    now,
                    TimelineKind::Resolved,
                    &message,
                    Some(event_id),
                )?;
                IncidentChange::Resolved { key }
            }
            (AlarmAction::Resolve, None) => IncidentChange::NothingToResolve,
        };
        tx.execute("UPDATE events SET processed = 1 WHERE seq = ?1", [seq])?;
        tx.commit()?;
        Ok(change)
    }

    pub fn list_incidents(&self, filter: &IncidentFilter) -> Result<Vec<Incident>> {
        let conn = self.reader();
        let limit = if filter.limit == 0 { 500 } else { filter.limit } as i64;
        let mut sql = format!("SELECT {COLUMNS} FROM incidents WHERE 1 = 1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(status) = filter.status {
            args.push(status.as_str().to_string().into());
            sql.push_str(&format!(" AND status = ?{}", args.len()));
        }
        if let Some(appcodes) = &filter.appcodes {
            if appcodes.is_empty() {
                return Ok(Vec::new());
            }
            let mut marks = Vec::with_capacity(appcodes.len());
            for code in appcodes {
                args.push(code.clone().into());
                marks.push(format!("?{}", args.len()));
            }
            sql.push_str(&format!(" AND appcode IN ({})", marks.join(", ")));
        }
        args.push(limit.into());
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ?{}", args.len()));
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args), incident_row)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row??);
        }
        Ok(out)
    }

    /// The incident with its whole timeline, or `None` for an unknown key.
    pub fn incident(&self, key: &str) -> Result<Option<Incident>> {
        let conn = self.reader();
        let found = conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM incidents WHERE key = ?1"),
                [key],
                |r| Ok((r.get::<_, i64>(0)?, incident_row(r)?)),
            )
            .optional()?;
        let Some((id, incident)) = found else {
            return Ok(None);
        };
        let mut incident = incident?;
        let mut stmt = conn.prepare_cached(
            "SELECT at, kind, message, event_id FROM timeline WHERE incident_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })?;
        for row in rows {
            let (at, kind, message, event_id) = row?;
            let kind = TimelineKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("timeline kind `{kind}` of {key}")))?;
            incident.timeline.push(TimelineEntry {
                at,
                kind,
                message,
                event_id,
            });
        }
        Ok(Some(incident))
    }

    /// Moves an open incident to acknowledged. `Ok(None)`: no such incident. Acknowledging
    /// an acknowledged or resolved incident changes nothing (the flag says whether it did).
    pub fn acknowledge(&self, key: &str, by: &str, now: &str) -> Result<Option<(Incident, bool)>> {
        let changed = self.transition(key, IncidentStatus::Acknowledged, by, now)?;
        Ok(self.incident(key)?.map(|i| (i, changed)))
    }

    /// Resolves an incident by hand. Resolving twice changes nothing.
    pub fn resolve(&self, key: &str, by: &str, now: &str) -> Result<Option<(Incident, bool)>> {
        let changed = self.transition(key, IncidentStatus::Resolved, by, now)?;
        Ok(self.incident(key)?.map(|i| (i, changed)))
    }

    fn transition(&self, key: &str, to: IncidentStatus, by: &str, now: &str) -> Result<bool> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let found: Option<(i64, String)> = tx
            .query_row(
                "SELECT id, status FROM incidents WHERE key = ?1",
                [key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((id, status)) = found else {
            return Ok(false);
        };
        let changed = match (to, status.as_str()) {
            (IncidentStatus::Acknowledged, "open") => tx.execute(
                "UPDATE incidents SET status = 'acknowledged', acknowledged_at = ?2 WHERE id = ?1",
                params![id, now],
            )?,
            (IncidentStatus::Resolved, "open" | "acknowledged") => tx.execute(
                "UPDATE incidents SET status = 'resolved', resolved_at = ?2 WHERE id = ?1",
                params![id, now],
            )?,
            _ => 0,
        };
        if changed > 0 {
            let kind = if to == IncidentStatus::Resolved {
                TimelineKind::Resolved
            } else {
                TimelineKind::Acknowledged
            };
            add_timeline(
                &tx,
                id,
                now,
                kind,
                &format!("{} by {by}", to.as_str()),
                None,
            )?;
        }
        tx.commit()?;
        Ok(changed > 0)
    }
}

pub(crate) fn add_timeline(
    tx: &Transaction<'_>,
    incident_id: i64,
    at: &str,
    kind: TimelineKind,
    message: &str,
    event_id: Option<&str>,
) -> Result<()> {
    tx.prepare_cached("INSERT INTO timeline (incident_id, at, kind, message, event_id) VALUES (?1, ?2, ?3, ?4, ?5)")?
        .execute(params![incident_id, at, kind.as_str(), message, event_id])?;
    Ok(())
}

/// Rows decode in two layers: SQL errors, then stored-data errors.
fn incident_row(r: &Row<'_>) -> rusqlite::Result<Result<Incident>> {
    let key: String = r.get(1)?;
    let status: String = r.get(3)?;
    let severity: String = r.get(4)?;
    let facts: String = r.get(11)?;
    let Some(status) = IncidentStatus::parse(&status) else {
        return Ok(Err(StoreError::Corrupt(format!(
            "status `{status}` of {key}"
        ))));
    };
    let facts: AlarmFacts = match serde_json::from_str(&facts) {
        Ok(f) => f,
        Err(e) => return Ok(Err(StoreError::Corrupt(format!("facts of {key}: {e}")))),
    };
    Ok(Ok(Incident {
        key,
        group_key: r.get(2)?,
        status,
        severity: Severity::from_label(Some(&severity)),
        title: r.get(5)?,
        count: r.get::<_, i64>(6)?.max(0) as u64,
        opened_at: r.get(7)?,
        acknowledged_at: r.get(8)?,
        resolved_at: r.get(9)?,
        last_event_at: r.get(10)?,
        alarm: facts,
        timeline: Vec::new(),
    }))
}
