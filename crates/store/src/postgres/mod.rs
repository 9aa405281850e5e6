//! The PostgreSQL backend: several vigil servers may share one database. Every table lives
//! in the connection's schema (its `search_path`), so one database can hold several
//! vigils, or one test per schema.
//!
//! Concurrency is the database's job here, not a process lock's:
//! * migrations run under a transaction-scoped advisory lock, so servers starting together
//!   apply them once;
//! * an alarm event locks its group key (advisory lock) before looking up the group's
//!   unresolved incident, so two servers never open two incidents for one group;
//! * run steps and probe jobs are claimed with `FOR UPDATE SKIP LOCKED`.

mod access;
mod alarms;
mod events;
mod hosts;
mod incidents;
mod migrations;
mod runs;

use std::fmt::Display;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::{NoTls, Row};
use vigil_core::{Incident, IncidentStatus, Severity, TimelineEntry, TimelineKind};

use crate::contract::Store;
use crate::types::*;
use crate::{Result, StoreError};

/// Connections kept open per server.
const POOL_SIZE: usize = 16;
/// How long to wait for the server to answer a new connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// vigil's state in a PostgreSQL database.
pub struct PostgresStore {
    pool: Pool,
    /// The connection string without its password, for messages.
    shown_url: String,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user[:password]@host[:port]/database[?options=…]`),
    /// applying pending migrations. Fails with [`StoreError::Connect`] when the server
    /// cannot be reached or refuses the connection, and [`StoreError::TooNew`] when the
    /// schema is newer than this vigil.
    pub async fn connect(url: &str) -> Result<PostgresStore> {
        let shown_url = redact(url);
        let mut config: tokio_postgres::Config =
            url.parse()
                .map_err(|e: tokio_postgres::Error| StoreError::Connect {
                    url: shown_url.clone(),
                    reason: crate::with_causes(&e),
                })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("vigil");
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .create_timeout(Some(CONNECT_TIMEOUT + Duration::from_secs(1)))
            .build()
            .map_err(|e| StoreError::Connect {
                url: shown_url.clone(),
                reason: format!("cannot set up the connection pool: {e}"),
            })?;
        let store = PostgresStore { pool, shown_url };
        // The first connection tells whether the server is there at all: every failure
        // here (refused, unknown database, authentication) is a connection problem.
        let mut client = store.pool.get().await.map_err(|e| StoreError::Connect {
            url: store.shown_url.clone(),
            reason: pool_error_text(&e),
        })?;
        migrations::apply(&mut client, &store.shown_url).await?;
        drop(client);
        Ok(store)
    }

    /// A pooled connection.
    async fn client(&self) -> Result<Object> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) if e.as_db_error().is_some() => {
                StoreError::Postgres(e)
            }
            other => StoreError::Connect {
                url: self.shown_url.clone(),
                reason: pool_error_text(&other),
            },
        })
    }
}

impl Store for PostgresStore {
    fn describe(&self) -> String {
        format!("PostgreSQL {}", self.shown_url)
    }
}

fn pool_error_text(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Timeout(_) => {
            "no connection within the timeout (the server does not answer)".to_string()
        }
        deadpool_postgres::PoolError::Backend(e) => crate::with_causes(e),
        other => other.to_string(),
    }
}

/// The connection string with any password taken out (in the user info or as a
/// `password=` parameter).
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // A key=value string: drop the password pair.
        return url
            .split_whitespace()
            .filter(|pair| !pair.starts_with("password="))
            .collect::<Vec<_>>()
            .join(" ");
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{user}@{host}")
        }
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|pair| !pair.starts_with("password="))
                .collect();
            if kept.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{}", kept.join("&"))
            }
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// Reads a stored enum's text back, naming the row when this vigil does not know it.
pub(crate) fn known<T>(
    text: &str,
    parse: impl FnOnce(&str) -> Option<T>,
    row: impl Display,
    what: &str,
) -> Result<T> {
    parse(text).ok_or_else(|| StoreError::Corrupt(format!("{row}: unknown {what} `{text}`")))
}

pub(crate) fn parse_severity(text: &str) -> Option<Severity> {
    [
        Severity::Critical,
        Severity::High,
        Severity::Warning,
        Severity::Info,
    ]
    .into_iter()
    .find(|s| s.as_str() == text)
}

/// A count or size kept as a signed integer, read back as unsigned.
pub(crate) fn unsigned<T: TryFrom<i64>>(value: i64, row: impl Display, what: &str) -> Result<T> {
    T::try_from(value)
        .map_err(|_| StoreError::Corrupt(format!("{row}: {what} {value} is out of range")))
}

/// `now + span`, at the store's precision.
pub(crate) fn after(now: Timestamp, span: Duration) -> Result<Timestamp> {
    let span = chrono::TimeDelta::from_std(span)
        .map_err(|e| StoreError::Task(format!("duration {span:?} out of range: {e}")))?;
    now.checked_add_signed(span)
        .map(to_millis)
        .ok_or_else(|| StoreError::Task(format!("{now} + {span} is out of range")))
}

/// Milliseconds of a duration, as stored.
pub(crate) fn millis(span: Duration) -> i64 {
    i64::try_from(span.as_millis()).unwrap_or(i64::MAX)
}

pub(crate) const INCIDENT_COLUMNS: &str = "id, key, group_key, status, severity, title, count, opened_at, acknowledged_at, resolved_at, last_event_at, facts";

/// An incident row (selected with [`INCIDENT_COLUMNS`]) without its timeline.
pub(crate) fn incident_row(row: &Row) -> Result<(i64, Incident)> {
    let id: i64 = row.try_get("id")?;
    let key: String = row.try_get("key")?;
    let status: String = row.try_get("status")?;
    let status = known(&status, IncidentStatus::parse, &key, "status")?;
    let severity: String = row.try_get("severity")?;
    let severity = known(&severity, parse_severity, &key, "severity")?;
    let facts: serde_json::Value = row.try_get("facts")?;
    let alarm = serde_json::from_value(facts)
        .map_err(|e| StoreError::Corrupt(format!("{key}: alarm facts: {e}")))?;
    let count: i64 = row.try_get("count")?;
    Ok((
        id,
        Incident {
            count: unsigned(count, &key, "count")?,
            group_key: row.try_get("group_key")?,
            title: row.try_get("title")?,
            status,
            severity,
            opened_at: row.try_get("opened_at")?,
            acknowledged_at: row.try_get("acknowledged_at")?,
            resolved_at: row.try_get("resolved_at")?,
            last_event_at: row.try_get("last_event_at")?,
            alarm,
            timeline: Vec::new(),
            key,
        },
    ))
}

/// An incident with its whole timeline, read through `client` (a transaction when the
/// caller needs one snapshot).
pub(crate) async fn load_incident<C: GenericClient>(
    client: &C,
    key: &str,
) -> Result<Option<(i64, Incident)>> {
    let sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE key = $1");
    let Some(row) = client.query_opt(sql.as_str(), &[&key]).await? else {
        return Ok(None);
    };
    let (id, mut incident) = incident_row(&row)?;
    let rows = client
        .query(
            "SELECT id, at, kind, message, event_id FROM timeline WHERE incident_id = $1 ORDER BY id",
            &[&id],
        )
        .await?;
    for row in rows {
        let entry: i64 = row.try_get("id")?;
        let kind: String = row.try_get("kind")?;
        let kind = known(
            &kind,
            TimelineKind::parse,
            format_args!("{key} timeline entry {entry}"),
            "kind",
        )?;
        incident.timeline.push(TimelineEntry {
            at: row.try_get("at")?,
            kind,
            message: row.try_get("message")?,
            event_id: row.try_get("event_id")?,
        });
    }
    Ok(Some((id, incident)))
}

pub(crate) async fn incident_id<C: GenericClient>(client: &C, key: &str) -> Result<Option<i64>> {
    Ok(client
        .query_opt("SELECT id FROM incidents WHERE key = $1", &[&key])
        .await?
        .map(|row| row.try_get::<_, i64>(0))
        .transpose()?)
}

pub(crate) async fn add_timeline<C: GenericClient>(
    client: &C,
    incident: i64,
    at: Timestamp,
    kind: TimelineKind,
    message: &str,
    event_id: Option<&str>,
) -> Result<()> {
    client
        .execute(
            "INSERT INTO timeline (incident_id, at, kind, message, event_id) VALUES ($1, $2, $3, $4, $5)",
            &[&incident, &at, &kind.as_str(), &message, &event_id],
        )
        .await?;
    Ok(())
}

/// Journals the work an incident change causes: its notes, its probe jobs and its run.
pub(crate) async fn journal_work<C: GenericClient>(
    client: &C,
    incident: i64,
    work: &Work,
    now: Timestamp,
) -> Result<()> {
    for note in &work.notes {
        add_timeline(client, incident, now, note.kind, &note.message, None).await?;
    }
    for job in &work.jobs {
        let status = if job.needs_approval {
            JobStatus::AwaitingApproval
        } else {
            JobStatus::Queued
        };
        let claim_by = after(now, job.claim_within)?;
        client
            .execute(
                "INSERT INTO jobs (host, incident_id, probe, args, timeout_ms, status, created_at,
                   claim_by, claim_within_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &job.host,
                    &incident,
                    &job.probe,
                    &job.args,
                    &millis(job.timeout),
                    &status.as_str(),
                    &now,
                    &claim_by,
                    &millis(job.claim_within),
                ],
            )
            .await?;
    }
    if let Some(run) = &work.run {
        create_run(client, incident, run, now).await?;
    }
    Ok(())
}

/// Journals a run and its steps, all pending and due at once. Returns the run's id.
pub(crate) async fn create_run<C: GenericClient>(
    client: &C,
    incident: i64,
    run: &NewRun,
    now: Timestamp,
) -> Result<i64> {
    let row = client
        .query_one(
            "INSERT INTO runs (incident_id, kind, created_at) VALUES ($1, $2, $3) RETURNING id",
            &[&incident, &run.kind.as_string(), &now],
        )
        .await?;
    let run_id: i64 = row.try_get(0)?;
    for (position, step) in run.steps.iter().enumerate() {
        let position = position as i64;
        client
            .execute(
                "INSERT INTO run_steps (run_id, position, name, channel, recipients, status, attempts,
                   next_attempt_at, deadline, updated_at)
                 VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $7, $6)",
                &[
                    &run_id,
                    &position,
                    &step.name.as_str(),
                    &step.channel.as_str(),
                    &step.recipients,
                    &now,
                    &step.deadline,
                ],
            )
            .await?;
    }
    Ok(run_id)
}

/// The text timestamps take in timeline messages.
pub(crate) fn shown(t: Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redact("postgres://vigil:s3cret@db.example:5432/vigil?options=-c%20x"),
            "postgres://vigil@db.example:5432/vigil?options=-c%20x"
        );
        assert_eq!(
            redact("postgres://vigil@db/vigil?password=s3cret&sslmode=disable"),
            "postgres://vigil@db/vigil?sslmode=disable"
        );
        assert_eq!(
            redact("host=db user=vigil password=s3cret"),
            "host=db user=vigil"
        );
    }
}
