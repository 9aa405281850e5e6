//! Incidents, their timelines and escalation levels.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use vigil_core::{Incident, IncidentStatus, TimelineKind};

use super::{
    add_timeline, events, incident_row, journal_work, known, load_incident, PostgresStore,
    INCIDENT_COLUMNS,
};
use crate::contract::IncidentStore;
use crate::types::*;
use crate::{Result, StoreError};

/// Applies one alarm event to its group's incidents, with the work the outcome causes.
pub(crate) async fn apply_alarm<C: GenericClient>(
    client: &C,
    event_id: &str,
    update: &AlarmUpdate,
    now: Timestamp,
) -> Result<IncidentChange> {
    let facts = &update.facts;
    // Everyone deciding about this group waits here, so the lookup below and the insert
    // that may follow are one step: two servers cannot both open an incident for it.
    client
        .execute(
            "SELECT pg_advisory_xact_lock(hashtext('vigil group ' || $1::text))",
            &[&update.group_key],
        )
        .await?;
    let unresolved = client
        .query_opt(
            "SELECT id, key, count FROM incidents WHERE group_key = $1 AND status <> 'resolved'
             FOR UPDATE",
            &[&update.group_key],
        )
        .await?;
    let unresolved = match unresolved {
        Some(row) => Some((
            row.try_get::<_, i64>("id")?,
            row.try_get::<_, String>("key")?,
            row.try_get::<_, i64>("count")?,
        )),
        None => None,
    };
    let facts_json = serde_json::to_value(facts)
        .map_err(|e| StoreError::Corrupt(format!("alarm facts of event {event_id}: {e}")))?;
    let state = facts.state.map(|s| s.as_str()).unwrap_or("unknown");
    let change = match (update.action, unresolved) {
        (AlarmAction::OpenOrRepeat, Some((id, key, count))) => {
            let count = count + 1;
            client
                .execute(
                    "UPDATE incidents SET count = $2, last_event_at = $3, facts = $4 WHERE id = $1",
                    &[&id, &count, &now, &facts_json],
                )
                .await?;
            let message = format!(
                "repeat #{count}: {state} — {}",
                facts.reason.as_deref().unwrap_or("no reason given")
            );
            add_timeline(
                client,
                id,
                now,
                TimelineKind::Repeat,
                &message,
                Some(event_id),
            )
            .await?;
            IncidentChange::Repeated {
                key,
                count: count.max(0) as u64,
            }
        }
        (AlarmAction::OpenOrRepeat, None) => {
            let row = client
                .query_one(
                    "INSERT INTO incidents (key, group_key, status, severity, title, count, host,
                       appcode, opened_at, last_event_at, facts)
                     VALUES ('INC-' || nextval('incident_key_seq'), $1, 'open', $2, $3, 1, $4, $5,
                       $6, $6, $7)
                     RETURNING id, key",
                    &[
                        &update.group_key,
                        &update.severity.as_str(),
                        &facts.title(),
                        &facts.host,
                        &facts.appcode,
                        &now,
                        &facts_json,
                    ],
                )
                .await?;
            let id: i64 = row.try_get("id")?;
            let key: String = row.try_get("key")?;
            let message = format!(
                "opened: {state} — {}",
                facts.reason.as_deref().unwrap_or("no reason given")
            );
            add_timeline(
                client,
                id,
                now,
                TimelineKind::Opened,
                &message,
                Some(event_id),
            )
            .await?;
            journal_work(client, id, &update.on_open, now).await?;
            IncidentChange::Opened { key }
        }
        (AlarmAction::Resolve, Some((id, key, _))) => {
            client
                .execute(
                    "UPDATE incidents SET status = 'resolved', resolved_at = $2, last_event_at = $2
                     WHERE id = $1",
                    &[&id, &now],
                )
                .await?;
            let message = format!(
                "resolved: alarm is {state} — {}",
                facts.reason.as_deref().unwrap_or("recovered")
            );
            add_timeline(
                client,
                id,
                now,
                TimelineKind::Resolved,
                &message,
                Some(event_id),
            )
            .await?;
            journal_work(client, id, &update.on_resolve, now).await?;
            IncidentChange::Resolved { key }
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
             ORDER BY id DESC LIMIT $3"
        );
        let rows = client
            .query(sql.as_str(), &[&status, &filter.appcodes, &limit])
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
        let Some(row) = tx
            .query_opt(
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
            (IncidentStatus::Acknowledged, IncidentStatus::Open) => {
                tx.execute(
                    "UPDATE incidents SET status = 'acknowledged', acknowledged_at = $2 WHERE id = $1",
                    &[&id, &change.now],
                )
                .await?
            }
            (
                IncidentStatus::Resolved,
                IncidentStatus::Open | IncidentStatus::Acknowledged,
            ) => {
                tx.execute(
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
            let message = format!("{} by {}", change.to.as_str(), change.by);
            add_timeline(&tx, id, change.now, kind, &message, None).await?;
            journal_work(&tx, id, &change.work, change.now).await?;
        }
        let incident = load_incident(&tx, &change.key).await?;
        tx.commit().await?;
        Ok(incident.map(|(_, incident)| (incident, changed)))
    }

    async fn add_timeline_entry(&self, key: &str, note: Note, now: Timestamp) -> Result<bool> {
        let client = self.client().await?;
        let added = client
            .execute(
                "INSERT INTO timeline (incident_id, at, kind, message)
                 SELECT id, $2, $3, $4 FROM incidents WHERE key = $1",
                &[&key, &now, &note.kind.as_str(), &note.message],
            )
            .await?;
        Ok(added > 0)
    }

    async fn incident_appcode(&self, key: &str) -> Result<Option<String>> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT appcode FROM incidents WHERE key = $1", &[&key])
            .await?;
        Ok(match row {
            Some(row) => row.try_get(0)?,
            None => None,
        })
    }

    async fn unacknowledged(&self) -> Result<Vec<Unacknowledged>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT key, opened_at, escalation_level FROM incidents WHERE status = 'open'
                 ORDER BY id",
                &[],
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
        let Some(row) = tx
            .query_opt(
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
