//! Incidents, their timelines, and the work an incident change journals with it.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Row, Transaction};
use vigil_core::{
    AlarmFacts, Incident, IncidentKind, IncidentStatus, Severity, TimelineEntry, TimelineKind,
};

use super::{
    exec, json_text, millis, one, parse_enum, parse_opt_time, parse_time, text, SqliteStore,
};
use crate::{
    AlarmAction, AlarmUpdate, Escalation, IncidentChange, IncidentFilter, IncidentStore,
    ManualChange, NewRun, Note, Result, StoreError, Timestamp, Unacknowledged, Work,
};

const COLUMNS: &str = "id, key, group_key, status, severity, title, count, opened_at, acknowledged_at, resolved_at, last_event_at, facts, kind,
    (SELECT s.key FROM incidents s WHERE s.id = incidents.storm_id)";

#[async_trait]
impl IncidentStore for SqliteStore {
    async fn list_incidents(&self, filter: IncidentFilter) -> Result<Vec<Incident>> {
        self.blocking(move |db| db.read(|tx| list_incidents(tx, &filter)))
            .await
    }

    async fn incident(&self, key: &str) -> Result<Option<Incident>> {
        let key = key.to_string();
        self.blocking(move |db| db.read(|tx| incident(tx, &key)))
            .await
    }

    async fn transition(&self, change: ManualChange) -> Result<Option<(Incident, bool)>> {
        self.blocking(move |db| {
            db.write(|tx| {
                let Some(changed) = transition(tx, &change)? else {
                    return Ok(None);
                };
                Ok(incident(tx, &change.key)?.map(|i| (i, changed)))
            })
        })
        .await
    }

    async fn add_timeline_entry(&self, key: &str, note: Note, now: Timestamp) -> Result<bool> {
        let key = key.to_string();
        self.blocking(move |db| {
            db.write(|tx| {
                let Some(id) = incident_id(tx, &key)? else {
                    return Ok(false);
                };
                add_timeline(tx, id, now, note.kind, &note.message, None)?;
                Ok(true)
            })
        })
        .await
    }

    async fn incident_appcode(&self, key: &str) -> Result<Option<String>> {
        let key = key.to_string();
        self.blocking(move |db| {
            db.read(|tx| {
                Ok(one(
                    tx,
                    "SELECT appcode FROM incidents WHERE key = ?1",
                    [&key],
                    |r| r.get(0),
                )
                .optional()?
                .flatten())
            })
        })
        .await
    }

    async fn escalations_due(
        &self,
        cutoffs: &[Timestamp],
        limit: usize,
    ) -> Result<Vec<Unacknowledged>> {
        let cutoffs: Vec<String> = cutoffs.iter().map(|c| text(*c)).collect();
        self.blocking(move |db| {
            db.read(|tx| {
                // One index range per level (opened_at is sortable text).
                let mut stmt = tx.prepare_cached(
                    "SELECT key, opened_at FROM incidents
                     WHERE status = 'open' AND escalation_level = ?1 AND storm_id IS NULL AND opened_at <= ?2
                     ORDER BY opened_at, id LIMIT ?3",
                )?;
                let mut out = Vec::new();
                for (level, cutoff) in cutoffs.iter().enumerate() {
                    let rows = stmt
                        .query_map(params![level as i64, cutoff, limit as i64], |r| {
                            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                        })?;
                    for row in rows {
                        let (key, opened_at) = row?;
                        out.push(Unacknowledged {
                            opened_at: parse_time(&opened_at, || {
                                format!("incident {key}: opened_at")
                            })?,
                            level: level as u32,
                            key,
                        });
                    }
                }
                out.sort_by_key(|u| u.opened_at);
                out.truncate(limit);
                Ok(out)
            })
        })
        .await
    }

    async fn oldest_unacknowledged(&self, levels: usize) -> Result<Vec<Unacknowledged>> {
        self.blocking(move |db| {
            db.read(|tx| {
                let mut stmt = tx.prepare_cached(
                    "SELECT key, opened_at FROM incidents
                     WHERE status = 'open' AND escalation_level = ?1 AND storm_id IS NULL
                     ORDER BY opened_at, id LIMIT 1",
                )?;
                let mut out = Vec::new();
                for level in 0..levels {
                    let Some((key, opened_at)) = stmt
                        .query_row([level as i64], |r| {
                            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                        })
                        .optional()?
                    else {
                        continue;
                    };
                    out.push(Unacknowledged {
                        opened_at: parse_time(&opened_at, || format!("incident {key}: opened_at"))?,
                        level: level as u32,
                        key,
                    });
                }
                Ok(out)
            })
        })
        .await
    }

    async fn escalate(&self, escalation: Escalation) -> Result<bool> {
        self.blocking(move |db| {
            db.write(|tx| {
                let changed = exec(
                    tx,
                    "UPDATE incidents SET escalation_level = ?3 WHERE key = ?1 AND status = 'open' AND escalation_level = ?2",
                    params![escalation.key, escalation.from, escalation.to],
                )?;
                if changed == 0 {
                    return Ok(false);
                }
                if let Some(id) = incident_id(tx, &escalation.key)? {
                    add_timeline(tx, id, escalation.now, escalation.note.kind, &escalation.note.message, None)?;
                }
                super::events::insert_one(tx, "escalation", &escalation.event, escalation.now)?;
                Ok(true)
            })
        })
        .await
    }
}

/// Applies one alarm event to its group's incident, with the work the outcome causes.
/// A group's unresolved incident as a batch has left it: row id, key, count.
type Unresolved = Option<(i64, String, i64)>;

/// The unresolved incident of each group a batch has touched, kept up to date as the
/// batch goes: the transaction holds the only writer, so what it read stays true.
#[derive(Default)]
pub(super) struct BatchIncidents(std::collections::HashMap<String, Unresolved>);

impl BatchIncidents {
    fn unresolved(&mut self, tx: &Transaction<'_>, group: &str) -> Result<Unresolved> {
        if let Some(known) = self.0.get(group) {
            return Ok(known.clone());
        }
        let found: Unresolved = tx
            .prepare_cached(
                "SELECT id, key, count FROM incidents WHERE group_key = ?1 AND status != 'resolved'",
            )?
            .query_row([group], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        self.0.insert(group.to_string(), found.clone());
        Ok(found)
    }

    fn set(&mut self, group: &str, now: Unresolved) {
        self.0.insert(group.to_string(), now);
    }
}

/// `facts_superseded`: a later repeat of the group in the same batch writes the incident's
/// count and facts, so a repeat here only counts (in `batch`).
pub(super) fn apply_alarm(
    tx: &Transaction<'_>,
    event_id: &str,
    update: &AlarmUpdate,
    facts_superseded: bool,
    batch: &mut BatchIncidents,
    now: Timestamp,
) -> Result<IncidentChange> {
    let unresolved = batch.unresolved(tx, &update.group_key)?;
    let facts: &AlarmFacts = &update.facts;
    let stamp = text(now);
    Ok(match (update.action, unresolved) {
        (AlarmAction::OpenOrRepeat, Some((id, key, count))) => {
            let count = count.max(0) as u64 + 1;
            batch.set(&update.group_key, Some((id, key.clone(), count as i64)));
            if facts_superseded {
                // The group's last repeat in the batch writes the count.
            } else {
                tx.prepare_cached(
                    "UPDATE incidents SET count = ?2, last_event_at = ?3, facts = ?4 WHERE id = ?1",
                )?
                .execute(params![
                    id,
                    count as i64,
                    stamp,
                    json_text(facts, "alarm facts")?
                ])?;
            }
            if vigil_core::repeat_is_noted(count) {
                let message = update.repeat_message(count);
                add_timeline(tx, id, now, TimelineKind::Repeat, &message, Some(event_id))?;
            }
            IncidentChange::Repeated { key, count }
        }
        (AlarmAction::OpenOrRepeat, None) => {
            let facts_json = json_text(facts, "alarm facts")?;
            let next_id: i64 = one(
                    tx,
                "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'incidents'), 0) + 1",
                [],
                |r| r.get(0),
            )?;
            let key = format!("INC-{next_id}");
            tx.prepare_cached(
                "INSERT INTO incidents (id, key, group_key, status, severity, title, count, host, opened_at, last_event_at, facts, appcode, storm_scope)
                 VALUES (?1, ?2, ?3, 'open', ?4, ?5, 1, ?6, ?7, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                next_id,
                key,
                update.group_key,
                update.severity.as_str(),
                facts.title(),
                facts.host,
                stamp,
                facts_json,
                facts.appcode,
                update.storm.as_ref().map(|p| p.scope.as_str())
            ])?;
            batch.set(&update.group_key, Some((next_id, key.clone(), 1)));
            let message = update.opened_message();
            add_timeline(
                tx,
                next_id,
                now,
                TimelineKind::Opened,
                &message,
                Some(event_id),
            )?;
            let storm = match &update.storm {
                Some(plan) => super::storms::on_opening(tx, next_id, &key, plan, update, now)?,
                None => None,
            };
            if storm.is_some() {
                // The storm carries the telling; the member's probes still run.
                let work = Work {
                    run: None,
                    ..update.on_open.clone()
                };
                journal_work(tx, next_id, &work, now)?;
            } else {
                journal_work(tx, next_id, &update.on_open, now)?;
            }
            IncidentChange::Opened { key, storm }
        }
        (AlarmAction::Resolve, Some((id, key, _))) => {
            batch.set(&update.group_key, None);
            tx.prepare_cached(
                "UPDATE incidents SET status = 'resolved', resolved_at = ?2, last_event_at = ?2 WHERE id = ?1",
            )?
            .execute(params![id, stamp])?;
            let message = update.resolved_message();
            add_timeline(
                tx,
                id,
                now,
                TimelineKind::Resolved,
                &message,
                Some(event_id),
            )?;
            journal_work(tx, id, &update.on_resolve, now)?;
            let on_storm_resolve = update.storm.as_ref().and_then(|p| p.on_resolve.as_ref());
            let storm = super::storms::on_member_resolved(tx, id, on_storm_resolve, now)?;
            IncidentChange::Resolved { key, storm }
        }
        (AlarmAction::Resolve, None) => IncidentChange::NothingToResolve,
    })
}

/// Writes an incident change's work: timeline notes, probe jobs, the run.
pub(super) fn journal_work(
    tx: &Transaction<'_>,
    incident: i64,
    work: &Work,
    now: Timestamp,
) -> Result<()> {
    for note in &work.notes {
        add_timeline(tx, incident, now, note.kind, &note.message, None)?;
    }
    if !work.jobs.is_empty() {
        super::hosts::insert_jobs(tx, incident, &work.jobs, now)?;
    }
    if let Some(run) = &work.run {
        journal_run(tx, incident, run, now)?;
    }
    Ok(())
}

pub(super) fn journal_run(
    tx: &Transaction<'_>,
    incident: i64,
    run: &NewRun,
    now: Timestamp,
) -> Result<()> {
    if run.steps.is_empty() {
        return Ok(());
    }
    tx.prepare_cached("INSERT INTO runs (incident_id, kind, created_at) VALUES (?1, ?2, ?3)")?
        .execute(params![incident, run.kind.as_string(), text(now)])?;
    let run_id = tx.last_insert_rowid();
    let not_before = run.not_before.map_or(0, millis);
    for (position, step) in run.steps.iter().enumerate() {
        tx.prepare_cached(
            "INSERT INTO run_steps (run_id, position, name, channel, recipients, status, deadline_ms, updated_at, due_ms, next_attempt_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7, ?8, ?9)",
        )?
        .execute(params![
            run_id,
            position as i64,
            step.name.as_str(),
            step.channel.as_str(),
            json_text(&step.recipients, "recipients")?,
            millis(step.deadline),
            text(now),
            // The first step is the run's head: due at once, or when the run may start.
            (position == 0).then_some(not_before),
            not_before
        ])?;
    }
    Ok(())
}

/// `None`: no such incident; otherwise whether the status changed.
fn transition(tx: &Transaction<'_>, change: &ManualChange) -> Result<Option<bool>> {
    let found: Option<(i64, String)> = one(
        tx,
        "SELECT id, status FROM incidents WHERE key = ?1",
        [&change.key],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()?;
    let Some((id, status)) = found else {
        return Ok(None);
    };
    let status = parse_enum(&status, IncidentStatus::parse, || {
        format!("incident {}: status", change.key)
    })?;
    let stamp = text(change.now);
    let changed = match (change.to, status) {
        (IncidentStatus::Acknowledged, IncidentStatus::Open) => exec(
            tx,
            "UPDATE incidents SET status = 'acknowledged', acknowledged_at = ?2 WHERE id = ?1",
            params![id, stamp],
        )?,
        (IncidentStatus::Resolved, IncidentStatus::Open | IncidentStatus::Acknowledged) => tx
            .execute(
                "UPDATE incidents SET status = 'resolved', resolved_at = ?2 WHERE id = ?1",
                params![id, stamp],
            )?,
        _ => 0,
    };
    if changed == 0 {
        return Ok(Some(false));
    }
    let kind = if change.to == IncidentStatus::Resolved {
        TimelineKind::Resolved
    } else {
        TimelineKind::Acknowledged
    };
    add_timeline(
        tx,
        id,
        change.now,
        kind,
        &format!("{} by {}", change.to.as_str(), change.by),
        None,
    )?;
    journal_work(tx, id, &change.work, change.now)?;
    if change.to == IncidentStatus::Resolved {
        super::storms::on_member_resolved(tx, id, None, change.now)?;
    }
    Ok(Some(true))
}

pub(super) fn add_timeline(
    tx: &Transaction<'_>,
    incident_id: i64,
    at: Timestamp,
    kind: TimelineKind,
    message: &str,
    event_id: Option<&str>,
) -> Result<()> {
    tx.prepare_cached("INSERT INTO timeline (incident_id, at, kind, message, event_id) VALUES (?1, ?2, ?3, ?4, ?5)")?
        .execute(params![incident_id, text(at), kind.as_str(), message, event_id])?;
    Ok(())
}

pub(super) fn incident_id(tx: &Transaction<'_>, key: &str) -> Result<Option<i64>> {
    Ok(tx
        .prepare_cached("SELECT id FROM incidents WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

pub(super) fn incident_key(tx: &Transaction<'_>, id: i64) -> Result<Option<String>> {
    Ok(tx
        .prepare_cached("SELECT key FROM incidents WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?)
}

fn list_incidents(tx: &Transaction<'_>, filter: &IncidentFilter) -> Result<Vec<Incident>> {
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
    if let Some(kind) = filter.kind {
        args.push(kind.as_str().to_string().into());
        sql.push_str(&format!(" AND kind = ?{}", args.len()));
    }
    args.push(limit.into());
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ?{}", args.len()));
    let mut stmt = tx.prepare(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args), raw_incident)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row?.decode()?.1);
    }
    Ok(out)
}

/// The incident with its whole timeline, or `None` for an unknown key.
pub(super) fn incident(tx: &Transaction<'_>, key: &str) -> Result<Option<Incident>> {
    let found = one(
        tx,
        &format!("SELECT {COLUMNS} FROM incidents WHERE key = ?1"),
        [key],
        raw_incident,
    )
    .optional()?;
    let Some(raw) = found else {
        return Ok(None);
    };
    let (id, mut incident) = raw.decode()?;
    if incident.kind == IncidentKind::Storm {
        incident.members = super::storms::members(tx, id)?;
    }
    let mut stmt = tx.prepare_cached(
        "SELECT id, at, kind, message, event_id FROM timeline WHERE incident_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([id], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, Option<String>>(4)?,
        ))
    })?;
    for row in rows {
        let (entry, at, kind, message, event_id) = row?;
        let what = || format!("timeline entry {entry} of {key}");
        incident.timeline.push(TimelineEntry {
            at: parse_time(&at, what)?,
            kind: parse_enum(&kind, TimelineKind::parse, what)?,
            message,
            event_id,
        });
    }
    Ok(Some(incident))
}

/// An incident row as stored, before its text is judged.
struct RawIncident {
    id: i64,
    key: String,
    group_key: String,
    status: String,
    severity: String,
    title: String,
    count: i64,
    opened_at: String,
    acknowledged_at: Option<String>,
    resolved_at: Option<String>,
    last_event_at: String,
    facts: String,
    kind: String,
    storm: Option<String>,
}

fn raw_incident(r: &Row<'_>) -> rusqlite::Result<RawIncident> {
    Ok(RawIncident {
        id: r.get(0)?,
        key: r.get(1)?,
        group_key: r.get(2)?,
        status: r.get(3)?,
        severity: r.get(4)?,
        title: r.get(5)?,
        count: r.get(6)?,
        opened_at: r.get(7)?,
        acknowledged_at: r.get(8)?,
        resolved_at: r.get(9)?,
        last_event_at: r.get(10)?,
        facts: r.get(11)?,
        kind: r.get(12)?,
        storm: r.get(13)?,
    })
}

impl RawIncident {
    fn decode(self) -> Result<(i64, Incident)> {
        let key = self.key;
        let what = |field: &str| format!("incident {key}: {field}");
        let status = parse_enum(&self.status, IncidentStatus::parse, || what("status"))?;
        let severity = parse_enum(&self.severity, Severity::parse, || what("severity"))?;
        let alarm: AlarmFacts = serde_json::from_str(&self.facts)
            .map_err(|e| StoreError::Corrupt(format!("{}: {e}", what("facts"))))?;
        let incident = Incident {
            status,
            severity,
            group_key: self.group_key,
            title: self.title,
            count: self.count.max(0) as u64,
            opened_at: parse_time(&self.opened_at, || what("opened_at"))?,
            acknowledged_at: parse_opt_time(self.acknowledged_at, || what("acknowledged_at"))?,
            resolved_at: parse_opt_time(self.resolved_at, || what("resolved_at"))?,
            last_event_at: parse_time(&self.last_event_at, || what("last_event_at"))?,
            alarm,
            timeline: Vec::new(),
            kind: parse_enum(&self.kind, IncidentKind::parse, || what("kind"))?,
            storm: self.storm,
            members: Vec::new(),
            key,
        };
        Ok((self.id, incident))
    }
}
