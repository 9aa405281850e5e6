//! The PostgreSQL backend: several vigil servers may share one database. Every table lives
//! in the connection's schema (its `search_path`), so one database can hold several
//! vigils, or one test per schema.
//!
//! Concurrency is the database's job here, not a process lock's:
//! * migrations run under a transaction-scoped advisory lock, so servers starting together
//!   apply them once;
//! * processing locks the group keys of a batch's alarm events (advisory locks, taken
//!   together in one order) before looking up the groups' unresolved incidents, so two
//!   servers never open two incidents for one group;
//! * run steps and probe jobs are claimed with `FOR UPDATE SKIP LOCKED`.
//!
//! Statements are prepared once per pooled connection (deadpool's statement cache, through
//! [`exec`], [`query`], [`query_one`] and [`query_opt`]), and what one operation writes is
//! gathered into as few statements as it can: each costs a round trip.

mod access;
mod alarms;
mod events;
mod hosts;
mod incidents;
mod migrations;
mod runs;
mod series;
mod storms;

use std::fmt::Display;
use std::sync::LazyLock;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};
use vigil_core::{Incident, IncidentKind, IncidentStatus, Severity, TimelineEntry, TimelineKind};

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

/// `now - span`, at the store's precision.
pub(crate) fn before(now: Timestamp, span: Duration) -> Result<Timestamp> {
    let span = chrono::TimeDelta::from_std(span)
        .map_err(|e| StoreError::Task(format!("duration {span:?} out of range: {e}")))?;
    now.checked_sub_signed(span)
        .map(to_millis)
        .ok_or_else(|| StoreError::Task(format!("{now} - {span} is out of range")))
}

/// Milliseconds of a duration, as stored.
pub(crate) fn millis(span: Duration) -> i64 {
    i64::try_from(span.as_millis()).unwrap_or(i64::MAX)
}

/// An incident's columns, selected `FROM incidents` (the storm key's subquery names it).
pub(crate) const INCIDENT_COLUMNS: &str = "id, key, group_key, status, severity, title, count, opened_at, acknowledged_at, resolved_at, last_event_at, facts, kind,
    (SELECT s.key FROM incidents s WHERE s.id = incidents.storm_id) AS storm";

/// An incident row (selected with [`INCIDENT_COLUMNS`]) without its timeline or members.
pub(crate) fn incident_row(row: &Row) -> Result<(i64, Incident)> {
    let id: i64 = row.try_get("id")?;
    let key: String = row.try_get("key")?;
    let status: String = row.try_get("status")?;
    let status = known(&status, IncidentStatus::parse, &key, "status")?;
    let severity: String = row.try_get("severity")?;
    let severity = known(&severity, parse_severity, &key, "severity")?;
    let kind: String = row.try_get("kind")?;
    let kind = known(&kind, IncidentKind::parse, &key, "kind")?;
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
            kind,
            storm: row.try_get("storm")?,
            members: Vec::new(),
            key,
        },
    ))
}

/// Runs `sql` as a statement prepared once per connection (deadpool's statement cache):
/// one round trip instead of two. Only for statement text drawn from a fixed set.
pub(crate) async fn exec<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.execute(&statement, params).await?)
}

/// [`exec`] for the rows of a query.
pub(crate) async fn query<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.query(&statement, params).await?)
}

/// [`exec`] for a query answering exactly one row.
pub(crate) async fn query_one<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Row> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.query_one(&statement, params).await?)
}

/// [`exec`] for a query answering at most one row.
pub(crate) async fn query_opt<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<Row>> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.query_opt(&statement, params).await?)
}

static LOAD_INCIDENT: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE key = $1"));

/// An incident with its whole timeline (and a storm with its members), read through
/// `client` (a transaction when the caller needs one snapshot). The queries go out
/// together: one round trip. (The members' query answers nothing for an alarm's incident.)
pub(crate) async fn load_incident<C: GenericClient>(
    client: &C,
    key: &str,
) -> Result<Option<(i64, Incident)>> {
    let by_key: &[&(dyn ToSql + Sync)] = &[&key];
    let (row, rows, members) = tokio::try_join!(
        query_opt(client, &LOAD_INCIDENT, by_key),
        query(
            client,
            "SELECT t.id, t.at, t.kind, t.message, t.event_id
             FROM timeline t JOIN incidents i ON i.id = t.incident_id
             WHERE i.key = $1 ORDER BY t.id",
            by_key,
        ),
        storms::members(client, key),
    )?;
    let Some(row) = row else {
        return Ok(None);
    };
    let (id, mut incident) = incident_row(&row)?;
    if incident.kind == IncidentKind::Storm {
        incident.members = members;
    }
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
    Ok(
        query_opt(client, "SELECT id FROM incidents WHERE key = $1", &[&key])
            .await?
            .map(|row| row.try_get::<_, i64>(0))
            .transpose()?,
    )
}

pub(crate) async fn add_timeline<C: GenericClient>(
    client: &C,
    incident: i64,
    at: Timestamp,
    kind: TimelineKind,
    message: &str,
    event_id: Option<&str>,
) -> Result<()> {
    exec(
        client,
        "INSERT INTO timeline (incident_id, at, kind, message, event_id) VALUES ($1, $2, $3, $4, $5)",
        &[&incident, &at, &kind.as_str(), &message, &event_id],
    )
    .await?;
    Ok(())
}

/// What one statement writes about an incident: timeline entries (in the order added),
/// probe jobs, and a run with its steps, all pending and due at once (or when the run may
/// start, its `not_before`). The incident itself comes from the statement's head (see
/// [`Journal::sql`]), so opening an incident and journaling what that causes is one round
/// trip.
#[derive(Default)]
pub(crate) struct Journal<'a> {
    kinds: Vec<&'static str>,
    messages: Vec<String>,
    event_ids: Vec<Option<&'a str>>,
    job_hosts: Vec<&'a str>,
    job_probes: Vec<&'a str>,
    job_args: Vec<&'a serde_json::Value>,
    job_timeouts: Vec<i64>,
    job_statuses: Vec<&'static str>,
    job_claim_by: Vec<Timestamp>,
    job_claim_within: Vec<i64>,
    run_kind: Option<String>,
    run_not_before: Option<Timestamp>,
    step_names: Vec<&'static str>,
    step_channels: Vec<&'static str>,
    step_recipients: Vec<serde_json::Value>,
    step_deadlines: Vec<Timestamp>,
}

/// How many parameters [`Journal::sql`] adds after the head's.
const JOURNAL_PARAMS: usize = 17;

impl<'a> Journal<'a> {
    pub(crate) fn entry(&mut self, kind: TimelineKind, message: String, event_id: Option<&'a str>) {
        self.kinds.push(kind.as_str());
        self.messages.push(message);
        self.event_ids.push(event_id);
    }

    /// The notes, probe jobs and run `work` causes, queued at `now`.
    pub(crate) fn work(&mut self, work: &'a Work, now: Timestamp) -> Result<()> {
        self.notes_and_jobs(work, now)?;
        if let Some(run) = &work.run {
            self.run(run);
        }
        Ok(())
    }

    /// The notes and probe jobs of `work`, queued at `now`, without its run.
    pub(crate) fn notes_and_jobs(&mut self, work: &'a Work, now: Timestamp) -> Result<()> {
        for note in &work.notes {
            self.entry(note.kind, note.message.clone(), None);
        }
        for job in &work.jobs {
            let status = if job.needs_approval {
                JobStatus::AwaitingApproval
            } else {
                JobStatus::Queued
            };
            self.job_hosts.push(&job.host);
            self.job_probes.push(&job.probe);
            self.job_args.push(&job.args);
            self.job_timeouts.push(millis(job.timeout));
            self.job_statuses.push(status.as_str());
            self.job_claim_by.push(after(now, job.claim_within)?);
            self.job_claim_within.push(millis(job.claim_within));
        }
        Ok(())
    }

    /// A run to journal. One per statement.
    pub(crate) fn run(&mut self, run: &NewRun) {
        debug_assert!(self.run_kind.is_none(), "one run per journal");
        self.run_kind = Some(run.kind.as_string());
        self.run_not_before = run.not_before;
        for step in &run.steps {
            self.step_names.push(step.name.as_str());
            self.step_channels.push(step.channel.as_str());
            self.step_recipients
                .push(serde_json::Value::from(step.recipients.clone()));
            self.step_deadlines.push(step.deadline);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.kinds.is_empty() && self.job_hosts.is_empty() && self.run_kind.is_none()
    }

    /// The statement: `head`, its first common table expressions, defines `i (id, key)`,
    /// the incident journaled about (no row: nothing is written), with parameters `$1` to
    /// `$head_params`; the journal's own follow. Answers `i`'s row.
    pub(crate) fn sql(head: &str, head_params: usize) -> String {
        // In the order of `params`.
        let [at, kinds, messages, events, hosts, probes, args, timeouts, statuses, claim_by, claim_within, run_kind, not_before, names, channels, recipients, deadlines] =
            std::array::from_fn::<String, JOURNAL_PARAMS, _>(|n| {
                format!("${}", head_params + n + 1)
            });
        // A held run's steps are not tried, nor its head due, before its `not_before`.
        let start = format!("COALESCE({not_before}::timestamptz, {at})");
        format!(
            "WITH {head},
             tl AS (
               INSERT INTO timeline (incident_id, at, kind, message, event_id)
               SELECT i.id, {at}, t.kind, t.message, t.event_id
               FROM i, unnest({kinds}::text[], {messages}::text[], {events}::text[])
                 WITH ORDINALITY AS t (kind, message, event_id, n)
               ORDER BY t.n
             ),
             jb AS (
               INSERT INTO jobs (host, incident_id, probe, args, timeout_ms, status, created_at,
                 claim_by, claim_within_ms)
               SELECT j.host, i.id, j.probe, j.args, j.timeout_ms, j.status, {at}, j.claim_by,
                 j.claim_within_ms
               FROM i, unnest({hosts}::text[], {probes}::text[], {args}::jsonb[],
                   {timeouts}::bigint[], {statuses}::text[], {claim_by}::timestamptz[],
                   {claim_within}::bigint[])
                 WITH ORDINALITY AS j (host, probe, args, timeout_ms, status, claim_by,
                   claim_within_ms, n)
               ORDER BY j.n
             ),
             r AS (
               INSERT INTO runs (incident_id, kind, created_at)
               SELECT i.id, {run_kind}, {at} FROM i WHERE {run_kind}::text IS NOT NULL
               RETURNING id
             ),
             st AS (
               INSERT INTO run_steps (run_id, position, name, channel, recipients, status,
                 attempts, next_attempt_at, deadline, updated_at, due_at)
               SELECT r.id, s.n - 1, s.name, s.channel,
                 ARRAY(SELECT jsonb_array_elements_text(s.recipients)), 'pending', 0, {start},
                 s.deadline, {at}, CASE WHEN s.n = 1 THEN {start} END
               FROM r, unnest({names}::text[], {channels}::text[], {recipients}::jsonb[],
                   {deadlines}::timestamptz[])
                 WITH ORDINALITY AS s (name, channel, recipients, deadline, n)
               ORDER BY s.n
             )
             SELECT i.id, i.key FROM i"
        )
    }

    /// The journal's parameters, to follow the head's.
    pub(crate) fn params<'p>(
        &'p self,
        now: &'p Timestamp,
    ) -> [&'p (dyn ToSql + Sync); JOURNAL_PARAMS] {
        [
            now,
            &self.kinds,
            &self.messages,
            &self.event_ids,
            &self.job_hosts,
            &self.job_probes,
            &self.job_args,
            &self.job_timeouts,
            &self.job_statuses,
            &self.job_claim_by,
            &self.job_claim_within,
            &self.run_kind,
            &self.run_not_before,
            &self.step_names,
            &self.step_channels,
            &self.step_recipients,
            &self.step_deadlines,
        ]
    }
}

static JOURNAL_BY_ID: LazyLock<String> =
    LazyLock::new(|| Journal::sql("i AS (SELECT $1::bigint AS id, NULL::text AS key)", 1));

/// Writes `journal` for the incident with row id `incident`, in one statement.
pub(crate) async fn write_journal<C: GenericClient>(
    client: &C,
    incident: i64,
    journal: &Journal<'_>,
    now: Timestamp,
) -> Result<()> {
    if journal.is_empty() {
        return Ok(());
    }
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&incident];
    params.extend(journal.params(&now));
    exec(client, &JOURNAL_BY_ID, &params).await?;
    Ok(())
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
