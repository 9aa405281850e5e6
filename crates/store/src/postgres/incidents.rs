//! Incidents, their timelines and escalation levels.

use std::sync::LazyLock;

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use vigil_core::{Incident, IncidentStatus, TimelineKind};

use super::{
    add_timeline, events, exec, incident_row, known, load_incident, query, query_one, query_opt,
    storms, write_journal, Journal, PostgresStore, INCIDENT_COLUMNS,
};
use crate::contract::IncidentStore;
use crate::types::*;
use crate::{Result, StoreError};

/// A group's unresolved incident, as processing knows it while it holds the group's lock.
pub(crate) struct Unresolved {
    pub(crate) id: i64,
    pub(crate) key: String,
    pub(crate) count: i64,
}

static OPEN: LazyLock<String> = LazyLock::new(|| {
    Journal::sql(
        "i AS (INSERT INTO incidents (key, group_key, status, severity, title, count, host, appcode,
           opened_at, last_event_at, facts, storm_scope)
         VALUES ('INC-' || nextval('incident_key_seq'), $1, 'open', $2, $3, 1, $4, $5, $6, $6, $7,
           $8)
         RETURNING id, key)",
        8,
    )
});

static REPEAT: LazyLock<String> = LazyLock::new(|| {
    Journal::sql(
        "i AS (UPDATE incidents SET count = $2, last_event_at = $3, facts = COALESCE($4, facts)
           WHERE id = $1 RETURNING id, key)",
        4,
    )
});

/// Resolves an incident (an alarm's, or a storm with its last member), with its work.
pub(crate) static RESOLVE: LazyLock<String> = LazyLock::new(|| {
    Journal::sql(
        "i AS (UPDATE incidents SET status = 'resolved', resolved_at = $2, last_event_at = $2
           WHERE id = $1 RETURNING id, key)",
        2,
    )
});

/// Applies one alarm event to its group's incidents, with the work the outcome causes, in
/// one statement (an opening or recovery in a storm's scope takes a few more: the storm's
/// part). The caller holds the group's advisory lock and its storm group's, has looked
/// up its unresolved incident (`unresolved`, kept up to date here for the batch's next
/// events), and flushes `storm_batch` before it commits. `facts_superseded`: a later repeat of the group in the batch writes the
/// incident's facts, so a repeat here need not.
pub(crate) async fn apply_alarm<C: GenericClient>(
    client: &C,
    event_id: &str,
    update: &AlarmUpdate,
    unresolved: &mut Option<Unresolved>,
    storm_batch: &mut storms::StormBatch,
    facts_superseded: bool,
    now: Timestamp,
) -> Result<IncidentChange> {
    let facts = &update.facts;
    let facts_value = || {
        serde_json::to_value(facts)
            .map_err(|e| StoreError::Corrupt(format!("alarm facts of event {event_id}: {e}")))
    };
    let mut journal = Journal::default();
    let change = match (update.action, unresolved.as_mut()) {
        (AlarmAction::OpenOrRepeat, Some(open)) => {
            let count = open.count + 1;
            if vigil_core::repeat_is_noted(count.max(0) as u64) {
                let message = update.repeat_message(count.max(0) as u64);
                journal.entry(TimelineKind::Repeat, message, Some(event_id));
            }
            // The group's last repeat in the batch writes the count and facts; one before
            // it writes only a timeline entry, if any.
            if !facts_superseded || !journal.is_empty() {
                let facts_json = if facts_superseded {
                    None
                } else {
                    Some(facts_value()?)
                };
                let mut params: Vec<&(dyn ToSql + Sync)> =
                    vec![&open.id, &count, &now, &facts_json];
                params.extend(journal.params(&now));
                query_one(client, &REPEAT, &params).await?;
            }
            open.count = count;
            IncidentChange::Repeated {
                key: open.key.clone(),
                count: count.max(0) as u64,
            }
        }
        (AlarmAction::OpenOrRepeat, None) => {
            let message = update.opened_message();
            journal.entry(TimelineKind::Opened, message, Some(event_id));
            // In a storm's scope the run waits for the storm's decision, which needs the
            // opening in place: an incident reported with a storm journals no run of its
            // own. Its probes run either way.
            if update.storm.is_some() {
                journal.notes_and_jobs(&update.on_open, now)?;
            } else {
                journal.work(&update.on_open, now)?;
            }
            let title = facts.title();
            let severity = update.severity.as_str();
            let scope = update.storm.as_ref().map(|plan| plan.scope.as_str());
            let facts_json = facts_value()?;
            let mut params: Vec<&(dyn ToSql + Sync)> = vec![
                &update.group_key,
                &severity,
                &title,
                &facts.host,
                &facts.appcode,
                &now,
                &facts_json,
                &scope,
            ];
            params.extend(journal.params(&now));
            let row = query_one(client, &OPEN, &params).await?;
            let id: i64 = row.try_get("id")?;
            let key: String = row.try_get("key")?;
            let storm = match &update.storm {
                Some(plan) => {
                    let storm =
                        storms::on_opening(client, storm_batch, id, &key, plan, update, now)
                            .await?;
                    if let (None, Some(run)) = (&storm, &update.on_open.run) {
                        let mut own = Journal::default();
                        own.run(run);
                        write_journal(client, id, &own, now).await?;
                    }
                    storm
                }
                None => None,
            };
            *unresolved = Some(Unresolved {
                id,
                key: key.clone(),
                count: 1,
            });
            IncidentChange::Opened { key, storm }
        }
        (AlarmAction::Resolve, Some(open)) => {
            let message = update.resolved_message();
            journal.entry(TimelineKind::Resolved, message, Some(event_id));
            journal.work(&update.on_resolve, now)?;
            let mut params: Vec<&(dyn ToSql + Sync)> = vec![&open.id, &now];
            params.extend(journal.params(&now));
            query_one(client, &RESOLVE, &params).await?;
            let key = open.key.clone();
            let on_storm_resolve = update.storm.as_ref().and_then(|p| p.on_resolve.as_ref());
            let storm =
                storms::on_member_resolved(client, storm_batch, open.id, on_storm_resolve, now)
                    .await?;
            *unresolved = None;
            IncidentChange::Resolved { key, storm }
        }
        (AlarmAction::Resolve, None) => IncidentChange::NothingToResolve,
    };
    Ok(change)
}

#[async_trait]
impl IncidentStore for PostgresStore {
    async fn list_incidents(&self, filter: IncidentFilter) -> Result<Vec<Incident>> {
        if filter.appcodes.as_ref().is_some_and(Vec::is_empty) {
            return Ok(Vec::new());
        }
        let limit = if filter.limit == 0 { 500 } else { filter.limit };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let status = filter.status.map(|s| s.as_str());
        let client = self.client().await?;
        let sql = format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents
             WHERE ($1::text IS NULL OR status = $1)
               AND ($2::text[] IS NULL OR appcode = ANY($2))
               AND ($4::text IS NULL OR kind = $4)
             ORDER BY id DESC LIMIT $3"
        );
        let kind = filter.kind.map(|k| k.as_str());
        let rows = query(
            &client,
            sql.as_str(),
            &[&status, &filter.appcodes, &limit, &kind],
        )
        .await?;
        rows.iter()
            .map(|row| incident_row(row).map(|(_, incident)| incident))
            .collect()
    }

    async fn incident(&self, key: &str) -> Result<Option<Incident>> {
        let mut client = self.client().await?;
        // One snapshot: the incident and its timeline as of the same moment.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let found = load_incident(&tx, key).await?;
        tx.commit().await?;
        Ok(found.map(|(_, incident)| incident))
    }

    async fn transition(&self, change: ManualChange) -> Result<Option<(Incident, bool)>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some(row) = query_opt(
            &tx,
            "SELECT id, status FROM incidents WHERE key = $1 FOR UPDATE",
            &[&change.key],
        )
        .await?
        else {
            return Ok(None);
        };
        let id: i64 = row.try_get("id")?;
        let status: String = row.try_get("status")?;
        let status = known(&status, IncidentStatus::parse, &change.key, "status")?;
        let changed = match (change.to, status) {
            (IncidentStatus::Acknowledged, IncidentStatus::Open) => exec(
                &tx,
                "UPDATE incidents SET status = 'acknowledged', acknowledged_at = $2 WHERE id = $1",
                &[&id, &change.now],
            )
            .await?,
            (IncidentStatus::Resolved, IncidentStatus::Open | IncidentStatus::Acknowledged) => {
                exec(
                    &tx,
                    "UPDATE incidents SET status = 'resolved', resolved_at = $2 WHERE id = $1",
                    &[&id, &change.now],
                )
                .await?
            }
            _ => 0,
        };
        let changed = changed > 0;
        if changed {
            let kind = if change.to == IncidentStatus::Resolved {
                TimelineKind::Resolved
            } else {
                TimelineKind::Acknowledged
            };
            let mut journal = Journal::default();
            journal.entry(
                kind,
                format!("{} by {}", change.to.as_str(), change.by),
                None,
            );
            journal.work(&change.work, change.now)?;
            write_journal(&tx, id, &journal, change.now).await?;
            if change.to == IncidentStatus::Resolved {
                // A storm's last member resolved by hand resolves the storm too. A manual
                // change knows no storm plan, so the storm journals no run of its own.
                storms::on_member_resolved(
                    &tx,
                    &mut storms::StormBatch::default(),
                    id,
                    None,
                    change.now,
                )
                .await?;
            }
        }
        let incident = load_incident(&tx, &change.key).await?;
        tx.commit().await?;
        Ok(incident.map(|(_, incident)| (incident, changed)))
    }

    async fn add_timeline_entry(&self, key: &str, note: Note, now: Timestamp) -> Result<bool> {
        let client = self.client().await?;
        let added = exec(
            &client,
            "INSERT INTO timeline (incident_id, at, kind, message)
                 SELECT id, $2, $3, $4 FROM incidents WHERE key = $1",
            &[&key, &now, &note.kind.as_str(), &note.message],
        )
        .await?;
        Ok(added > 0)
    }

    async fn incident_appcode(&self, key: &str) -> Result<Option<String>> {
        let client = self.client().await?;
        let row = query_opt(
            &client,
            "SELECT appcode FROM incidents WHERE key = $1",
            &[&key],
        )
        .await?;
        Ok(match row {
            Some(row) => row.try_get(0)?,
            None => None,
        })
    }

    async fn escalations_due(
        &self,
        cutoffs: &[Timestamp],
        limit: usize,
    ) -> Result<Vec<Unacknowledged>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.client().await?;
        // One index range per level.
        let rows = query(
            &client,
            "SELECT d.key, d.opened_at, d.escalation_level
             FROM unnest($1::timestamptz[]) WITH ORDINALITY AS c (cutoff, n)
             CROSS JOIN LATERAL (
               SELECT key, opened_at, escalation_level FROM incidents
               WHERE status = 'open' AND escalation_level = c.n - 1 AND opened_at <= c.cutoff
                 AND storm_id IS NULL
               ORDER BY opened_at, id LIMIT $2
             ) d
             ORDER BY d.opened_at LIMIT $2",
            &[&cutoffs, &limit],
        )
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let key: String = row.try_get("key")?;
            let level: i32 = row.try_get("escalation_level")?;
            out.push(Unacknowledged {
                level: super::unsigned(i64::from(level), &key, "escalation level")?,
                opened_at: row.try_get("opened_at")?,
                key,
            });
        }
        Ok(out)
    }

    async fn oldest_unacknowledged(&self, levels: usize) -> Result<Vec<Unacknowledged>> {
        let levels = i32::try_from(levels).unwrap_or(i32::MAX);
        let client = self.client().await?;
        // One index lookup per level.
        let rows = query(
            &client,
            "SELECT d.key, d.opened_at, d.escalation_level
             FROM generate_series(0, $1 - 1) AS l (level)
             CROSS JOIN LATERAL (
               SELECT key, opened_at, escalation_level FROM incidents
               WHERE status = 'open' AND escalation_level = l.level AND storm_id IS NULL
               ORDER BY opened_at, id LIMIT 1
             ) d
             ORDER BY d.escalation_level",
            &[&levels],
        )
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let key: String = row.try_get("key")?;
            let level: i32 = row.try_get("escalation_level")?;
            out.push(Unacknowledged {
                level: super::unsigned(i64::from(level), &key, "escalation level")?,
                opened_at: row.try_get("opened_at")?,
                key,
            });
        }
        Ok(out)
    }

    async fn escalate(&self, escalation: Escalation) -> Result<bool> {
        let from = i32::try_from(escalation.from)
            .map_err(|_| StoreError::Task(format!("escalation level {}", escalation.from)))?;
        let to = i32::try_from(escalation.to)
            .map_err(|_| StoreError::Task(format!("escalation level {}", escalation.to)))?;
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some(row) = query_opt(
            &tx,
            "UPDATE incidents SET escalation_level = $3
                 WHERE key = $1 AND status = 'open' AND escalation_level = $2
                 RETURNING id",
            &[&escalation.key, &from, &to],
        )
        .await?
        else {
            return Ok(false);
        };
        let id: i64 = row.try_get(0)?;
        add_timeline(
            &tx,
            id,
            escalation.now,
            escalation.note.kind,
            &escalation.note.message,
            None,
        )
        .await?;
        events::insert_event(&tx, "escalation", &escalation.event, escalation.now).await?;
        tx.commit().await?;
        Ok(true)
    }
}
