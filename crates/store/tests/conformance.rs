//! The store contract's conformance suite: one set of test bodies, run against every
//! backend. Each backend provides a [`Harness`] (a fresh, empty store plus raw access to
//! its database, to break rows on purpose) and instantiates the suite with
//! `conformance_suite!(name, open_harness())`.
//!
//! PostgreSQL: the server at `VIGIL_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); every test gets a schema of its own, dropped
//! when the test passes (a failed test leaves it for inspection). An unreachable server
//! fails the tests: it never skips them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use vigil_core::{
    AlarmFacts, AlarmState, Event, Heartbeat, HostLifecycle, IncidentStatus, JobResult, JobStatus,
    Severity, TimelineKind,
};
use vigil_store::*;

/// The wall clock at the store's precision; the store itself takes every time from its
/// caller.
fn now() -> Timestamp {
    to_millis(chrono::Utc::now())
}

// ---------------------------------------------------------------------------------------
// Harnesses
// ---------------------------------------------------------------------------------------

/// A fresh store and raw access to the database under it.
#[async_trait]
trait Harness: Send + Sync {
    fn store(&self) -> Arc<dyn Store>;

    /// Runs raw SQL on the store's database (to write what the store never would).
    async fn execute(&self, sql: &str);

    /// Marks the schema as migrated to `version`.
    async fn set_schema_version(&self, version: i64);

    /// Forgets that the newest `n` migrations ran, so the next open runs them again over
    /// the rows a test wrote as an older vigil would have.
    async fn unmark_last_migrations(&self, n: i64);

    /// Opens another store on the same database.
    async fn reopen(&self) -> vigil_store::Result<Arc<dyn Store>>;

    /// Removes what the test created; called when the test passed.
    async fn cleanup(&self) {}
}

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

struct Postgres {
    store: Arc<dyn Store>,
    /// A connection of the test's own, in the test's schema.
    admin: tokio_postgres::Client,
    schema: String,
    url: String,
}

fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

async fn open_postgres() -> Box<dyn Harness> {
    let base =
        std::env::var("VIGIL_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into());
    let (admin, connection) = match tokio_postgres::connect(&base, tokio_postgres::NoTls).await {
        Ok(connected) => connected,
        Err(e) => panic!(
            "PostgreSQL is not reachable at {base}: {e}; start it with: \
             pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start \
             (or point VIGIL_TEST_POSTGRES_URL at another server)"
        ),
    };
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("test connection to PostgreSQL: {e}");
        }
    });
    let schema = unique_name("t");
    admin
        .batch_execute(&format!(
            "CREATE SCHEMA {schema}; SET search_path TO {schema}"
        ))
        .await
        .unwrap_or_else(|e| panic!("creating schema {schema}: {e}"));
    eprintln!("PostgreSQL schema of this test: {schema}");
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
    let store = PostgresStore::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("opening the store at {url}: {e}"));
    // The store's tables must be in the test's schema, not wherever the server defaults.
    let tables: i64 = admin
        .query_one(
            "SELECT COUNT(*) FROM information_schema.tables
             WHERE table_schema = $1 AND table_name IN ('events', 'incidents', 'run_steps')",
            &[&schema],
        )
        .await
        .map(|row| row.get(0))
        .unwrap_or_else(|e| panic!("inspecting schema {schema}: {e}"));
    assert_eq!(tables, 3, "the store did not create its tables in {schema}");
    Box::new(Postgres {
        store: Arc::new(store),
        admin,
        schema,
        url,
    })
}

#[async_trait]
impl Harness for Postgres {
    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    async fn execute(&self, sql: &str) {
        self.admin
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    async fn set_schema_version(&self, version: i64) {
        self.execute(&format!(
            "INSERT INTO schema_version (version) VALUES ({version})"
        ))
        .await;
    }

    async fn unmark_last_migrations(&self, n: i64) {
        self.execute(&format!(
            "DELETE FROM schema_version WHERE version > (SELECT MAX(version) FROM schema_version) - {n}"
        ))
        .await;
    }

    async fn reopen(&self) -> vigil_store::Result<Arc<dyn Store>> {
        Ok(Arc::new(PostgresStore::connect(&self.url).await?))
    }

    async fn cleanup(&self) {
        let _ = self
            .admin
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .await;
    }
}

/// SQLite: a fresh file in a temporary directory per test.
struct Sqlite {
    store: Arc<dyn Store>,
    dir: tempfile::TempDir,
}

async fn open_sqlite() -> Box<dyn Harness> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open(&dir.path().join("vigil.db"))
        .await
        .expect("opening the SQLite store");
    Box::new(Sqlite {
        store: Arc::new(store),
        dir,
    })
}

#[async_trait]
impl Harness for Sqlite {
    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    async fn execute(&self, sql: &str) {
        let conn = rusqlite::Connection::open(self.dir.path().join("vigil.db"))
            .expect("open the database file");
        conn.busy_timeout(Duration::from_secs(10))
            .expect("busy timeout");
        conn.execute_batch(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    async fn set_schema_version(&self, version: i64) {
        self.execute(&format!("PRAGMA user_version = {version}"))
            .await;
    }

    async fn unmark_last_migrations(&self, n: i64) {
        let conn = rusqlite::Connection::open(self.dir.path().join("vigil.db"))
            .expect("open the database file");
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("schema version");
        conn.pragma_update(None, "user_version", version - n)
            .expect("set the schema version");
    }

    async fn reopen(&self) -> vigil_store::Result<Arc<dyn Store>> {
        Ok(Arc::new(
            SqliteStore::open(&self.dir.path().join("vigil.db")).await?,
        ))
    }
}

macro_rules! conformance_suite {
    ($backend:ident, $open:expr) => {
        conformance_suite!(@tests $backend, $open;
            duplicate_event_ids_are_stored_once,
            pending_events_come_oldest_first,
            the_backlog_counts_pending_events_and_dates_the_oldest,
            alarms_open_repeat_and_resolve_incidents,
            a_storm_of_repeats_keeps_the_timeline_short_and_the_count_exact,
            a_batch_leaves_each_incident_with_its_latest_facts,
            storms_form_past_the_threshold_and_gather_their_members,
            a_storm_resolves_when_its_last_member_recovers,
            one_batch_forms_joins_and_resolves_a_storm,
            few_or_old_openings_form_no_storm_and_held_runs_wait,
            concurrent_alarms_of_a_group_open_one_incident,
            processing_commits_the_change_with_its_work,
            processing_an_event_twice_changes_nothing,
            runs_are_journaled_on_existing_incidents_only,
            incidents_are_listed_by_status_appcode_and_limit,
            manual_transitions_journal_work_only_when_they_change,
            escalation_writes_its_event_once_per_level,
            escalations_come_oldest_first_per_level,
            oldest_unacknowledged_names_the_next_escalation,
            concurrent_workers_never_claim_the_same_step,
            an_expired_lease_lets_another_worker_claim,
            steps_of_a_run_go_in_order,
            finishing_a_step_records_ticket_note_and_followup,
            step_context_is_one_snapshot,
            hosts_enroll_renew_revoke_and_report,
            jobs_are_claimed_answered_and_expired,
            held_jobs_wait_for_approval,
            job_deadlines_are_renewed_at_start,
            alarm_definitions_and_states,
            series_blocks_page_in_key_order_with_their_bytes,
            series_blocks_are_replaced_by_series_and_start,
            series_blocks_since_keeps_those_ending_later,
            old_series_blocks_are_deleted_and_counted,
            many_series_blocks_are_written_in_one_call,
            tokens_by_hash_and_scoped_tokens,
            tokens_are_listed_and_revoked_by_name,
            sessions_expire,
            apps_and_host_bindings,
            hosts_bound_by_an_older_vigil_migrate_as_declared,
            sns_subscriptions_keep_their_status,
            unknown_enum_values_are_corrupt,
            a_newer_schema_is_refused,
            reopening_keeps_data,
        );
    };
    (@tests $backend:ident, $open:expr; $($test:ident),+ $(,)?) => {
        mod $backend {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let harness = $open.await;
                    super::$test(&*harness).await;
                    harness.cleanup().await;
                }
            )+
        }
    };
}

conformance_suite!(postgres, open_postgres());
conformance_suite!(sqlite, open_sqlite());

/// What only the PostgreSQL backend has: a server to reach.
mod postgres_connection {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_server_is_a_connect_error_without_the_password() {
        // Nothing listens on port 1.
        let url = "postgres://vigil:s3cret@127.0.0.1:1/vigil?connect_timeout=5";
        let error = match PostgresStore::connect(url).await {
            Err(error) => error,
            Ok(_) => panic!("connected to a port nobody listens on"),
        };
        let message = error.to_string();
        eprintln!("{message}");
        match &error {
            StoreError::Connect { url, reason } => {
                assert!(!url.contains("s3cret"), "{url}");
                assert!(url.contains("127.0.0.1:1"), "{url}");
                assert!(!reason.is_empty());
            }
            other => panic!("expected a Connect error, got {other:?}"),
        }
        assert!(!message.contains("s3cret"), "{message}");
        assert!(message.contains("cannot reach PostgreSQL"), "{message}");
    }

    #[tokio::test]
    async fn an_unknown_database_is_a_connect_error() {
        let base = std::env::var("VIGIL_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into());
        let Some((server, _)) = base.rsplit_once('/') else {
            panic!("unexpected test URL {base}");
        };
        let url = format!("{server}/{}", unique_name("no_such_db"));
        match PostgresStore::connect(&url).await {
            Err(StoreError::Connect { reason, url }) => {
                eprintln!("{url}: {reason}");
                assert!(reason.contains("does not exist"), "{reason}")
            }
            Err(other) => panic!("expected a Connect error, got {other:?}"),
            Ok(_) => panic!("connected to a database that does not exist"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn servers_starting_together_migrate_once() {
        let harness = open_postgres().await;
        // A schema of its own, still empty, that four servers open at the same moment.
        let schema = unique_name("t");
        harness.execute(&format!("CREATE SCHEMA {schema}")).await;
        let base = std::env::var("VIGIL_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into());
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
        let (a, b, c, d) = tokio::join!(
            PostgresStore::connect(&url),
            PostgresStore::connect(&url),
            PostgresStore::connect(&url),
            PostgresStore::connect(&url),
        );
        for store in [a, b, c, d] {
            let store = store.unwrap_or_else(|e| panic!("a concurrent start failed: {e}"));
            assert_eq!(store.event_count().await.unwrap(), 0);
        }
        harness
            .execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await;
        harness.cleanup().await;
    }

    #[tokio::test]
    async fn describe_names_the_server_not_the_password() {
        let harness = open_postgres().await;
        let shown = harness.store().describe();
        assert!(shown.starts_with("PostgreSQL postgres://"), "{shown}");
        harness.cleanup().await;
    }
}

// ---------------------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------------------

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

fn event(id: &str) -> Event {
    Event {
        version: "0".into(),
        id: id.into(),
        detail_type: "CloudWatch Alarm State Change".into(),
        source: "aws.cloudwatch".into(),
        account: "123456789012".into(),
        time: "2026-11-29T10:00:00Z".into(),
        region: "eu-west-1".into(),
        resources: vec!["arn:aws:cloudwatch:eu-west-1:123456789012:alarm:cpu".into()],
        detail: json!({"alarmName": "cpu", "state": {"value": "ALARM"}, "n": 1.5}),
    }
}

fn facts(state: AlarmState, reason: &str) -> AlarmFacts {
    AlarmFacts {
        alarm_name: "cpu".into(),
        state: Some(state),
        reason: Some(reason.into()),
        resource: "arn:a".into(),
        host: Some("web-1".into()),
        appcode: Some("SHOP".into()),
        ..Default::default()
    }
}

fn alarm(group: &str, action: AlarmAction, state: AlarmState, on_open: Work) -> Effect {
    Effect::Alarm(Box::new(AlarmUpdate {
        facts: facts(
            state,
            if state == AlarmState::Ok {
                "back to normal"
            } else {
                "cpu high"
            },
        ),
        group_key: group.into(),
        severity: Severity::Critical,
        action,
        on_open,
        on_resolve: Work::default(),
        storm: None,
    }))
}

fn fire(group: &str) -> Effect {
    alarm(
        group,
        AlarmAction::OpenOrRepeat,
        AlarmState::Alarm,
        Work::default(),
    )
}

fn recover(group: &str) -> Effect {
    alarm(group, AlarmAction::Resolve, AlarmState::Ok, Work::default())
}

fn step(name: StepName, channel: Channel, deadline: Timestamp) -> NewStep {
    NewStep {
        name,
        channel,
        recipients: Vec::new(),
        deadline,
    }
}

fn run(kind: RunKind, steps: Vec<NewStep>) -> NewRun {
    NewRun {
        kind,
        steps,
        not_before: None,
    }
}

fn job(host: &str, probe: &str, needs_approval: bool) -> NewJob {
    NewJob {
        host: host.into(),
        probe: probe.into(),
        args: json!({"top": 5}),
        timeout: Duration::from_secs(20),
        claim_within: Duration::from_secs(10),
        needs_approval,
    }
}

/// Accepts events and returns their sequence numbers.
async fn accept(store: &dyn Store, ids: &[&str], now: Timestamp) -> Vec<i64> {
    let batch = EventBatch {
        endpoint: "events".into(),
        events: ids.iter().map(|id| event(id)).collect(),
    };
    let fresh = store.insert_events(vec![batch], now).await.unwrap();
    assert!(
        fresh[0].iter().all(|f| *f),
        "event ids must be new: {ids:?}"
    );
    let pending = store.pending_events(10_000).await.unwrap();
    ids.iter()
        .map(|id| {
            pending
                .iter()
                .find(|p| p.event.id == *id)
                .map(|p| p.seq)
                .unwrap_or_else(|| panic!("event {id} is not pending"))
        })
        .collect()
}

/// Accepts one event and processes it with `effect`.
async fn apply(store: &dyn Store, id: &str, effect: Effect, now: Timestamp) -> IncidentChange {
    let seq = accept(store, &[id], now).await[0];
    let processed = store
        .process_events(
            vec![Decision {
                seq,
                event_id: id.into(),
                effect,
            }],
            now,
        )
        .await
        .unwrap();
    assert_eq!(processed.len(), 1);
    assert_eq!(processed[0].seq, seq);
    processed[0].change.clone()
}

/// Opens an incident for `group` with `work`; returns its key.
async fn open(store: &dyn Store, id: &str, group: &str, work: Work, now: Timestamp) -> String {
    let effect = alarm(group, AlarmAction::OpenOrRepeat, AlarmState::Alarm, work);
    match apply(store, id, effect, now).await {
        IncidentChange::Opened { key, .. } => key,
        other => panic!("expected an incident to open, got {other:?}"),
    }
}

/// Journals a run on an incident through an event; returns the run's steps.
async fn journal(store: &dyn Store, id: &str, key: &str, new: NewRun, now: Timestamp) {
    let effect = Effect::Run {
        incident_key: key.into(),
        run: new,
    };
    assert_eq!(
        apply(store, id, effect, now).await,
        IncidentChange::RunJournaled { key: key.into() }
    );
}

fn messages(incident: &vigil_core::Incident) -> Vec<(TimelineKind, String)> {
    incident
        .timeline
        .iter()
        .map(|e| (e.kind, e.message.clone()))
        .collect()
}

fn expect_corrupt<T: std::fmt::Debug>(result: vigil_store::Result<T>, names: &[&str]) {
    match result {
        Err(StoreError::Corrupt(message)) => {
            for name in names {
                assert!(
                    message.contains(name),
                    "the error `{message}` should name `{name}`"
                );
            }
        }
        other => panic!("expected a Corrupt error naming {names:?}, got {other:?}"),
    }
}

/// An alarm of `group` whose reason is `reason`.
fn said(group: &str, action: AlarmAction, reason: &str) -> Effect {
    let state = if action == AlarmAction::Resolve {
        AlarmState::Ok
    } else {
        AlarmState::Alarm
    };
    Effect::Alarm(Box::new(AlarmUpdate {
        facts: facts(state, reason),
        group_key: group.into(),
        severity: Severity::High,
        action,
        on_open: Work::default(),
        on_resolve: Work::default(),
        storm: None,
    }))
}

async fn a_batch_leaves_each_incident_with_its_latest_facts(h: &dyn Harness) {
    let store = h.store();
    let t0 = now();
    let ids = ["b1", "b2", "b3", "b4", "b5", "b6", "b7"];
    let seqs = accept(&*store, &ids, t0).await;
    let effects = [
        said("g", AlarmAction::OpenOrRepeat, "first"),
        said("g", AlarmAction::OpenOrRepeat, "second"),
        said("g", AlarmAction::OpenOrRepeat, "third"),
        said("g", AlarmAction::Resolve, "recovered"),
        said("g", AlarmAction::OpenOrRepeat, "again"),
        said("g", AlarmAction::OpenOrRepeat, "again, louder"),
        said("h", AlarmAction::OpenOrRepeat, "other group"),
    ];
    let decisions: Vec<Decision> = seqs
        .iter()
        .zip(ids)
        .zip(effects)
        .map(|((seq, id), effect)| Decision {
            seq: *seq,
            event_id: id.into(),
            effect,
        })
        .collect();
    let processed = store.process_events(decisions, t0).await.unwrap();
    let keys: Vec<String> = processed
        .iter()
        .filter_map(|p| match &p.change {
            IncidentChange::Opened { key, .. } => Some(key.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(keys.len(), 3, "{processed:?}");
    let reason = |incident: vigil_core::Incident| incident.alarm.reason.unwrap_or_default();
    let first = store.incident(&keys[0]).await.unwrap().unwrap();
    assert_eq!(first.count, 3);
    assert_eq!(
        reason(first),
        "third",
        "resolved with its last alarm's facts"
    );
    let second = store.incident(&keys[1]).await.unwrap().unwrap();
    assert_eq!(second.count, 2);
    assert_eq!(reason(second), "again, louder");
    assert_eq!(
        reason(store.incident(&keys[2]).await.unwrap().unwrap()),
        "other group"
    );

    // A replayed event in a later batch changes nothing; the pending one before it still
    // writes its facts.
    let more = accept(&*store, &["c1"], t0).await;
    let replay = vec![
        Decision {
            seq: more[0],
            event_id: "c1".into(),
            effect: said("h", AlarmAction::OpenOrRepeat, "newest"),
        },
        Decision {
            seq: seqs[6],
            event_id: "b7".into(),
            effect: said("h", AlarmAction::OpenOrRepeat, "replayed"),
        },
    ];
    store.process_events(replay, t0).await.unwrap();
    let other = store.incident(&keys[2]).await.unwrap().unwrap();
    assert_eq!(other.count, 2);
    assert_eq!(reason(other), "newest");
}

// ---------------------------------------------------------------------------------------
// Alarm storms
// ---------------------------------------------------------------------------------------

fn storm_plan(threshold: u32, t0: Timestamp) -> StormPlan {
    StormPlan {
        scope: "respond|SHOP".into(),
        threshold,
        window: Duration::from_secs(60),
        title: "Alarm storm under application SHOP".into(),
        on_form: Some(NewRun {
            not_before: Some(t0 + secs(10)),
            ..run(
                RunKind::Opened,
                vec![step(StepName::Ticket, Channel::Jira, t0 + secs(900))],
            )
        }),
        digest: Some(run(
            RunKind::Digest,
            vec![step(StepName::Notify, Channel::Email, t0 + secs(900))],
        )),
        digest_interval: Duration::from_secs(300),
        on_resolve: Some(run(
            RunKind::Resolved,
            vec![step(StepName::Notify, Channel::Email, t0 + secs(900))],
        )),
    }
}

/// An alarm of `host` in the storm scope of `plan`, with a message and a probe job.
fn storm_alarm(host: &str, action: AlarmAction, plan: &StormPlan, t0: Timestamp) -> Effect {
    let state = if action == AlarmAction::Resolve {
        AlarmState::Ok
    } else {
        AlarmState::Alarm
    };
    Effect::Alarm(Box::new(AlarmUpdate {
        facts: AlarmFacts {
            host: Some(host.into()),
            ..facts(state, "cpu high")
        },
        group_key: format!("cpu|{host}"),
        severity: Severity::High,
        action,
        on_open: Work {
            jobs: vec![job(host, "top_cpu", false)],
            run: Some(run(
                RunKind::Opened,
                vec![step(StepName::Notify, Channel::Email, t0 + secs(900))],
            )),
            ..Work::default()
        },
        on_resolve: Work::default(),
        storm: Some(Box::new(plan.clone())),
    }))
}

async fn storm_open(
    store: &dyn Store,
    host: &str,
    plan: &StormPlan,
    at: Timestamp,
) -> (String, Option<String>) {
    let effect = storm_alarm(host, AlarmAction::OpenOrRepeat, plan, at);
    match apply(store, &format!("open-{host}"), effect, at).await {
        IncidentChange::Opened { key, storm } => (key, storm),
        other => panic!("expected {host}'s incident to open, got {other:?}"),
    }
}

async fn storms_form_past_the_threshold_and_gather_their_members(h: &dyn Harness) {
    let store = h.store();
    let t0 = now();
    let plan = storm_plan(3, t0);
    let lease = Duration::from_secs(60);
    let mut members = Vec::new();
    for n in 1..=3 {
        let (key, storm) = storm_open(&*store, &format!("web-{n}"), &plan, t0).await;
        assert_eq!(
            storm, None,
            "{n} openings are not more than the threshold of 3"
        );
        members.push(key);
    }
    // web-1's message is under way: it has been reported on its own.
    let claimed = store.claim_steps("w", t0, lease, 1).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].incident_key, members[0]);

    let t1 = t0 + secs(5);
    let (fourth, storm) = storm_open(&*store, "web-4", &plan, t1).await;
    let storm = storm.expect("the fourth opening within the window forms a storm");
    members.push(fourth.clone());
    let incident = store.incident(&storm).await.unwrap().expect("the storm");
    assert_eq!(incident.kind, vigil_core::IncidentKind::Storm);
    assert_eq!(incident.count, 4);
    assert_eq!(incident.title, plan.title);
    assert_eq!(incident.alarm.host, None);
    let listed: Vec<&str> = incident.members.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(
        listed,
        members.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(incident.members[3].host.as_deref(), Some("web-4"));
    assert_eq!(incident.members[3].alarm_name, "cpu");
    assert_eq!(
        incident.members[3].probes.pending, 1,
        "each member's probe still runs"
    );
    assert!(
        messages(&incident)[0]
            .1
            .contains("1 of them had already been reported"),
        "{:?}",
        messages(&incident)
    );

    for (n, member) in members.iter().enumerate() {
        let m = store.incident(member).await.unwrap().expect("member");
        assert_eq!(m.storm.as_deref(), Some(storm.as_str()), "{member}");
        let steps = store.run_steps(member).await.unwrap();
        match n {
            0 => assert_eq!(
                steps[0].status,
                StepStatus::Pending,
                "web-1 was under way: kept"
            ),
            1 | 2 => {
                assert_eq!(steps.len(), 1);
                assert_eq!(steps[0].status, StepStatus::Skipped, "{member}: superseded");
                assert_eq!(
                    steps[0].last_error.as_deref(),
                    Some(format!("reported with storm {storm}").as_str())
                );
            }
            _ => assert!(
                steps.is_empty(),
                "the opening that formed the storm journals no run of its own"
            ),
        }
        assert_eq!(
            store.incident_jobs(member).await.unwrap().len(),
            1,
            "{member}: its probe"
        );
    }
    let listed_storms = store
        .list_incidents(IncidentFilter {
            kind: Some(vigil_core::IncidentKind::Storm),
            ..IncidentFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        listed_storms
            .iter()
            .map(|i| i.key.as_str())
            .collect::<Vec<_>>(),
        vec![storm.as_str()]
    );
    // Members do not escalate one by one: the storm does.
    let due: Vec<String> = store
        .escalations_due(&[t1 + secs(3600)], 100)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.key)
        .collect();
    assert_eq!(due, vec![storm.clone()]);
    // The storm's own run waits for its hold.
    let storm_steps = store.run_steps(&storm).await.unwrap();
    assert_eq!(storm_steps.len(), 1);
    assert_eq!(storm_steps[0].name, StepName::Ticket);
    assert_eq!(storm_steps[0].next_attempt_at, t0 + secs(10));
    let early = store.claim_steps("w", t1, lease, 10).await.unwrap();
    assert!(
        early.iter().all(|s| s.incident_key != storm),
        "held: {early:?}"
    );

    // Later openings join; one digest waits, no sooner than the interval after the storm's
    // previous run.
    let t2 = t0 + secs(20);
    let (fifth, joined) = storm_open(&*store, "web-5", &plan, t2).await;
    assert_eq!(joined.as_deref(), Some(storm.as_str()));
    let (_, joined) = storm_open(&*store, "web-6", &plan, t2).await;
    assert_eq!(joined.as_deref(), Some(storm.as_str()));
    assert!(store.run_steps(&fifth).await.unwrap().is_empty());
    let incident = store.incident(&storm).await.unwrap().expect("the storm");
    assert_eq!(incident.count, 6);
    assert_eq!(incident.members.len(), 6);
    let digests: Vec<RunStep> = store
        .run_steps(&storm)
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.kind == RunKind::Digest)
        .collect();
    assert_eq!(digests.len(), 1, "one digest waits however many join");
    assert_eq!(digests[0].next_attempt_at, t1 + secs(300));
    // A member's recovery leaves the storm open while others alarm.
    let change = apply(
        &*store,
        "ok-web-5",
        storm_alarm("web-5", AlarmAction::Resolve, &plan, t2),
        t2,
    )
    .await;
    assert_eq!(
        change,
        IncidentChange::Resolved {
            key: fifth,
            storm: None
        }
    );
    let incident = store.incident(&storm).await.unwrap().expect("the storm");
    assert_eq!(incident.status, IncidentStatus::Open);
}

async fn a_storm_resolves_when_its_last_member_recovers(h: &dyn Harness) {
    let store = h.store();
    let t0 = now();
    let plan = storm_plan(1, t0);
    let (first, none) = storm_open(&*store, "db-1", &plan, t0).await;
    assert_eq!(none, None);
    let (second, storm) = storm_open(&*store, "db-2", &plan, t0).await;
    let storm = storm.expect("a storm");
    let t1 = t0 + secs(30);
    let recover = |host: &str| storm_alarm(host, AlarmAction::Resolve, &plan, t1);
    assert_eq!(
        apply(&*store, "ok-1", recover("db-1"), t1).await,
        IncidentChange::Resolved {
            key: first,
            storm: None
        }
    );
    assert_eq!(
        apply(&*store, "ok-2", recover("db-2"), t1).await,
        IncidentChange::Resolved {
            key: second,
            storm: Some(storm.clone())
        }
    );
    let incident = store.incident(&storm).await.unwrap().expect("the storm");
    assert_eq!(incident.status, IncidentStatus::Resolved);
    assert_eq!(incident.resolved_at, Some(t1));
    assert!(incident
        .members
        .iter()
        .all(|m| m.status == IncidentStatus::Resolved));
    assert!(
        messages(&incident).contains(&(
            TimelineKind::Resolved,
            "resolved: all 2 members recovered".into()
        )),
        "{:?}",
        messages(&incident)
    );
    let resolved_runs = store
        .run_steps(&storm)
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.kind == RunKind::Resolved)
        .count();
    assert_eq!(resolved_runs, 1, "the storm tells its recovery");
    // The next opening of the scope is on its own again.
    let (_, storm_again) = storm_open(&*store, "db-3", &plan, t1).await;
    assert_eq!(storm_again, None);
}

/// A storm's life inside one batch: openings form it, more join, members recover (one that
/// joined in the same batch among them), the last recovery resolves it, and the scope's next
/// opening is on its own again — as if each event had been its own batch.
async fn one_batch_forms_joins_and_resolves_a_storm(h: &dyn Harness) {
    let store = h.store();
    let t0 = now();
    let plan = storm_plan(2, t0);
    let mut ids = Vec::new();
    let mut effects = Vec::new();
    for n in 1..=6 {
        let host = format!("app-{n}");
        ids.push(format!("open-{host}"));
        effects.push(storm_alarm(&host, AlarmAction::OpenOrRepeat, &plan, t0));
    }
    for n in 1..=6 {
        let host = format!("app-{n}");
        ids.push(format!("ok-{host}"));
        effects.push(storm_alarm(&host, AlarmAction::Resolve, &plan, t0));
    }
    ids.push("open-app-7".into());
    effects.push(storm_alarm("app-7", AlarmAction::OpenOrRepeat, &plan, t0));
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let seqs = accept(&*store, &id_refs, t0).await;
    let decisions = seqs
        .iter()
        .zip(ids.iter().zip(effects))
        .map(|(seq, (id, effect))| Decision {
            seq: *seq,
            event_id: id.clone(),
            effect,
        })
        .collect();
    let changes: Vec<IncidentChange> = store
        .process_events(decisions, t0)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.change)
        .collect();
    let storm_of = |change: &IncidentChange| match change {
        IncidentChange::Opened { storm, .. } | IncidentChange::Resolved { storm, .. } => {
            storm.clone()
        }
        other => panic!("expected an opening or recovery, got {other:?}"),
    };
    let key_of = |change: &IncidentChange| match change {
        IncidentChange::Opened { key, .. } | IncidentChange::Resolved { key, .. } => key.clone(),
        other => panic!("expected an opening or recovery, got {other:?}"),
    };
    assert_eq!(storm_of(&changes[0]), None);
    assert_eq!(storm_of(&changes[1]), None);
    let storm = storm_of(&changes[2]).expect("the third opening forms the storm");
    for change in &changes[3..6] {
        assert_eq!(storm_of(change).as_deref(), Some(storm.as_str()), "joins");
    }
    for change in &changes[6..11] {
        assert_eq!(storm_of(change), None, "members are left: {change:?}");
    }
    assert_eq!(
        storm_of(&changes[11]).as_deref(),
        Some(storm.as_str()),
        "the last recovery resolves the storm"
    );
    assert_eq!(
        storm_of(&changes[12]),
        None,
        "the next opening is on its own"
    );

    let incident = store.incident(&storm).await.unwrap().expect("the storm");
    assert_eq!(incident.status, IncidentStatus::Resolved);
    assert_eq!(incident.count, 6);
    let members: Vec<String> = incident.members.iter().map(|m| m.key.clone()).collect();
    let opened: Vec<String> = changes[..6].iter().map(key_of).collect();
    assert_eq!(members, opened);
    for member in &members[3..] {
        let m = store.incident(member).await.unwrap().expect("member");
        assert_eq!(m.storm.as_deref(), Some(storm.as_str()));
        let notes: Vec<String> = messages(&m)
            .into_iter()
            .filter(|(kind, _)| *kind == TimelineKind::Note)
            .map(|(_, message)| message)
            .collect();
        assert_eq!(
            notes,
            vec![format!(
                "part of storm {storm}: reported there, not on its own"
            )],
            "{member}"
        );
        assert!(
            store.run_steps(member).await.unwrap().is_empty(),
            "{member}"
        );
    }
    assert!(
        messages(&incident).contains(&(
            TimelineKind::Resolved,
            "resolved: all 6 members recovered".into()
        )),
        "{:?}",
        messages(&incident)
    );
    let digests = store
        .run_steps(&storm)
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.kind == RunKind::Digest)
        .count();
    assert_eq!(digests, 1, "one digest for the members that joined");
    let alone = store
        .incident(&key_of(&changes[12]))
        .await
        .unwrap()
        .expect("app-7's incident");
    assert_eq!(alone.storm, None);
    assert_eq!(
        store.run_steps(&alone.key).await.unwrap().len(),
        1,
        "its own run"
    );
}

async fn few_or_old_openings_form_no_storm_and_held_runs_wait(h: &dyn Harness) {
    let store = h.store();
    let t0 = now();
    let plan = storm_plan(2, t0);
    storm_open(&*store, "app-1", &plan, t0).await;
    storm_open(&*store, "app-2", &plan, t0).await;
    // A minute later the first two are outside the window.
    let t1 = t0 + secs(61);
    let (_, storm) = storm_open(&*store, "app-3", &plan, t1).await;
    assert_eq!(storm, None);
    let (_, storm) = storm_open(&*store, "app-4", &plan, t1).await;
    assert_eq!(storm, None);
    assert!(store
        .list_incidents(IncidentFilter::default())
        .await
        .unwrap()
        .iter()
        .all(|i| i.kind == vigil_core::IncidentKind::Alarm && i.storm.is_none()));

    // A run held until a time is not claimed before it.
    let key = open(&*store, "held", "held-group", Work::default(), t0).await;
    let held = NewRun {
        not_before: Some(t0 + secs(30)),
        ..run(
            RunKind::Opened,
            vec![step(StepName::Notify, Channel::Email, t0 + secs(900))],
        )
    };
    journal(&*store, "held-run", &key, held, t0).await;
    let early = store
        .claim_steps("w", t0 + secs(29), Duration::from_secs(60), 100)
        .await
        .unwrap();
    assert!(early.iter().all(|s| s.incident_key != key), "{early:?}");
    let on_time = store
        .claim_steps("w", t0 + secs(30), Duration::from_secs(60), 100)
        .await
        .unwrap();
    assert!(on_time.iter().any(|s| s.incident_key == key));
}

// ---------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------

async fn duplicate_event_ids_are_stored_once(h: &dyn Harness) {
    let store = h.store();
    let t0 = now();
    let fresh = store
        .insert_events(
            vec![
                EventBatch {
                    endpoint: "events".into(),
                    events: vec![event("a"), event("b"), event("a")],
                },
                EventBatch {
                    endpoint: "sns".into(),
                    events: vec![event("b"), event("c")],
                },
            ],
            t0,
        )
        .await
        .unwrap();
    assert_eq!(fresh, vec![vec![true, true, false], vec![false, true]]);
    let again = store
        .insert_events(
            vec![EventBatch {
                endpoint: "events".into(),
                events: vec![event("c"), event("d")],
            }],
            t0 + secs(1),
        )
        .await
        .unwrap();
    assert_eq!(again, vec![vec![false, true]]);
    assert_eq!(store.event_count().await.unwrap(), 4);
    assert_eq!(store.pending_events(10).await.unwrap().len(), 4);

    let record = store.event("c").await.unwrap().expect("event c");
    assert_eq!(record.endpoint, "sns", "the first acceptance wins");
    assert_eq!(record.received_at, t0, "timestamps read back as written");
    assert!(!record.processed);
    assert_eq!(record.event, event("c"));
    assert!(store.event("nope").await.unwrap().is_none());
}

async fn pending_events_come_oldest_first(h: &dyn Harness) {
    let store = h.store();
    let t0 = now();
    accept(&*store, &["e1", "e2", "e3"], t0).await;
    accept(&*store, &["e4", "e5"], t0).await;
    let first = store.pending_events(3).await.unwrap();
    let ids: Vec<&str> = first.iter().map(|p| p.event.id.as_str()).collect();
    assert_eq!(ids, ["e1", "e2", "e3"]);
    let all = store.pending_events(10).await.unwrap();
    assert_eq!(all.len(), 5);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(all.iter().all(|p| p.endpoint == "events"));
    assert_eq!(all[4].event, event("e5"));

    // Processing removes an event from the pending list, whatever its position.
    let seq = all[1].seq;
    store
        .process_events(
            vec![Decision {
                seq,
                event_id: "e2".into(),
                effect: Effect::Nothing,
            }],
            t0,
        )
        .await
        .unwrap();
    let ids: Vec<String> = store
        .pending_events(10)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.event.id)
        .collect();
    assert_eq!(ids, ["e1", "e3", "e4", "e5"]);
    assert!(store.event("e2").await.unwrap().unwrap().processed);
}

async fn the_backlog_counts_pending_events_and_dates_the_oldest(h: &dyn Harness) {
    let store = h.store();
    assert_eq!(store.backlog().await.unwrap(), Backlog::default());
    let t0 = now();
    let t1 = t0 + chrono::Duration::seconds(5);
    let seqs = accept(&*store, &["b1", "b2"], t0).await;
    accept(&*store, &["b3"], t1).await;
    let backlog = store.backlog().await.unwrap();
    assert_eq!(backlog.events, 3);
    assert_eq!(
        backlog.oldest_accepted_at.map(|t| t.timestamp_millis()),
        Some(t0.timestamp_millis())
    );
    let decisions = ["b1", "b2"]
        .iter()
        .zip(seqs)
        .map(|(id, seq)| Decision {
            seq,
            event_id: id.to_string(),
            effect: Effect::Nothing,
        })
        .collect();
    store.process_events(decisions, t1).await.unwrap();
    let backlog = store.backlog().await.unwrap();
    assert_eq!(backlog.events, 1);
    assert_eq!(
        backlog.oldest_accepted_at.map(|t| t.timestamp_millis()),
        Some(t1.timestamp_millis()),
        "the oldest left is the one accepted later"
    );
}

// ---------------------------------------------------------------------------------------
// Incidents
// ---------------------------------------------------------------------------------------

async fn a_storm_of_repeats_keeps_the_timeline_short_and_the_count_exact(h: &dyn Harness) {
    let store = h.store();
    let t0 = now();
    let ids: Vec<String> = (0..250).map(|n| format!("s{n}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let seqs = accept(&*store, &refs, t0).await;
    let decisions = ids
        .iter()
        .zip(seqs)
        .map(|(id, seq)| Decision {
            seq,
            event_id: id.clone(),
            effect: fire("cpu|storm"),
        })
        .collect();
    store.process_events(decisions, t0).await.unwrap();
    let inc = store.incident("INC-1").await.unwrap().expect("INC-1");
    assert_eq!(inc.count, 250, "every alarm counted");
    let repeats: Vec<String> = messages(&inc)
        .into_iter()
        .filter(|(kind, _)| *kind == TimelineKind::Repeat)
        .map(|(_, message)| message)
        .collect();
    let numbers: Vec<u64> = repeats
        .iter()
        .filter_map(|m| m.strip_prefix("repeat #")?.split(':').next()?.parse().ok())
        .collect();
    assert_eq!(
        numbers,
        [2, 3, 4, 5, 6, 7, 8, 9, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 200],
        "noted one by one, then at round numbers"
    );
}

async fn alarms_open_repeat_and_resolve_incidents(h: &dyn Harness) {
    let store = h.store();
    let t0 = now();
    let t1 = t0 + secs(60);
    let t2 = t0 + secs(120);

    assert_eq!(
        apply(&*store, "r0", recover("cpu|web-1"), t0).await,
        IncidentChange::NothingToResolve
    );
    assert_eq!(
        apply(&*store, "a1", fire("cpu|web-1"), t0).await,
        IncidentChange::Opened {
            key: "INC-1".into(),
            storm: None,
        }
    );
    assert_eq!(
        apply(&*store, "a2", fire("cpu|web-1"), t1).await,
        IncidentChange::Repeated {
            key: "INC-1".into(),
            count: 2
        }
    );
    // Another group is another incident.
    assert_eq!(
        apply(&*store, "b1", fire("disk|web-1"), t1).await,
        IncidentChange::Opened {
            key: "INC-2".into(),
            storm: None,
        }
    );
    assert_eq!(
        apply(&*store, "r1", recover("cpu|web-1"), t2).await,
        IncidentChange::Resolved {
            key: "INC-1".into(),
            storm: None,
        }
    );

    let inc = store.incident("INC-1").await.unwrap().expect("INC-1");
    assert_eq!(inc.status, IncidentStatus::Resolved);
    assert_eq!(inc.severity, Severity::Critical);
    assert_eq!(inc.count, 2);
    assert_eq!(inc.group_key, "cpu|web-1");
    assert_eq!(inc.title, facts(AlarmState::Alarm, "").title());
    assert_eq!(inc.opened_at, t0);
    assert_eq!(inc.resolved_at, Some(t2));
    assert_eq!(inc.last_event_at, t2);
    assert_eq!(inc.alarm.host.as_deref(), Some("web-1"));
    assert_eq!(
        messages(&inc),
        [
            (TimelineKind::Opened, "opened: ALARM — cpu high".to_string()),
            (TimelineKind::Repeat, "repeat #2: ALARM — cpu high".into()),
            (
                TimelineKind::Resolved,
                "resolved: alarm is OK — back to normal".into()
            ),
        ]
    );
    let event_ids: Vec<Option<&str>> = inc.timeline.iter().map(|e| e.event_id.as_deref()).collect();
    assert_eq!(event_ids, [Some("a1"), Some("a2"), Some("r1")]);
    assert_eq!(inc.timeline[1].at, t1);
    assert_eq!(
        store.incident_appcode("INC-1").await.unwrap().as_deref(),
        Some("SHOP")
    );

    // The next alarm of a resolved group opens a new incident.
    assert_eq!(
        apply(&*store, "a3", fire("cpu|web-1"), t2).await,
        IncidentChange::Opened {
            key: "INC-3".into(),
            storm: None,
        }
    );
    let unresolved = store
        .list_incidents(IncidentFilter {
            status: Some(IncidentStatus::Open),
            ..Default::default()
        })
        .await
        .unwrap();
    let keys: Vec<&str> = unresolved.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["INC-3", "INC-2"]);
    assert!(store.incident("INC-9").await.unwrap().is_none());
    assert!(store.incident_appcode("INC-9").await.unwrap().is_none());
}

async fn concurrent_alarms_of_a_group_open_one_incident(h: &dyn Harness) {
    let store = h.store();
    let t0 = now();
    let ids: Vec<String> = (0..8).map(|i| format!("c{i}")).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let seqs = accept(&*store, &id_refs, t0).await;
    let mut tasks = Vec::new();
    for (seq, id) in seqs.into_iter().zip(ids) {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .process_events(
                    vec![Decision {
                        seq,
                        event_id: id,
                        effect: fire("same-group"),
                    }],
                    t0,
                )
                .await
                .unwrap()
        }));
    }
    let mut opened = 0;
    let mut counts = Vec::new();
    for task in tasks {
        for processed in task.await.unwrap() {
            match processed.change {
                IncidentChange::Opened { key, .. } => {
                    assert_eq!(key, "INC-1");
                    opened += 1;
                }
                IncidentChange::Repeated { key, count } => {
                    assert_eq!(key, "INC-1");
                    counts.push(count);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(opened, 1, "one incident per group");
    counts.sort_unstable();
    assert_eq!(counts, (2..=8).collect::<Vec<u64>>());
    let all = store
        .list_incidents(IncidentFilter::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].count, 8);
}

async fn processing_commits_the_change_with_its_work(h: &dyn Harness) {
    let store = h.store();
    let t0 = now();
    let deadline = t0 + secs(3600);
    let mut notify = step(StepName::Notify, Channel::Email, deadline);
    notify.recipients = vec!["oncall@example.com".into(), "lead@example.com".into()];
    let work = Work {
        notes: vec![Note::new(
            TimelineKind::HostCheck,
            "the agent on web-1 was last seen 3 s ago",
        )],
        jobs: vec![
            job("web-1", "top_cpu", false),
            job("web-1", "restart", true),
        ],
        run: Some(run(
            RunKind::Opened,
            vec![step(StepName::Ticket, Channel::Jira, deadline), notify],
        )),
    };
    let seqs = accept(&*store, &["w1", "w2"], t0).await;
    let processed = store
        .process_events(
            vec![
                Decision {
                    seq: seqs[0],
                    event_id: "w1".into(),
                    effect: alarm(
                        "g",
                        AlarmAction::OpenOrRepeat,
                        AlarmState::Alarm,
                        work.clone(),
                    ),
                },
                // The repeat in the same batch sees the incident the first one opened, and
                // journals no work.
                Decision {
                    seq: seqs[1],
                    event_id: "w2".into(),
                    effect: alarm("g", AlarmAction::OpenOrRepeat, AlarmState::Alarm, work),
                },
            ],
            t0,
        )
        .await
        .unwrap();
    assert_eq!(
        processed,
        [
            Processed {
                seq: seqs[0],
                change: IncidentChange::Opened {
                    key: "INC-1".into(),
                    storm: None,
                }
            },
            Processed {
                seq: seqs[1],
                change: IncidentChange::Repeated {
                    key: "INC-1".into(),
                    count: 2
                }
            },
        ]
    );

    assert!(store.pending_events(10).await.unwrap().is_empty());
    assert!(store.event("w1").await.unwrap().unwrap().processed);
    assert!(store.event("w2").await.unwrap().unwrap().processed);

    let inc = store.incident("INC-1").await.unwrap().unwrap();
    assert_eq!(
        messages(&inc),
        [
            (TimelineKind::Opened, "opened: ALARM — cpu high".to_string()),
            (
                TimelineKind::HostCheck,
                "the agent on web-1 was last seen 3 s ago".into()
            ),
            (TimelineKind::Repeat, "repeat #2: ALARM — cpu high".into()),
        ]
    );

    let jobs = store.incident_jobs("INC-1").await.unwrap();
    let summary: Vec<(&str, &str, JobStatus)> = jobs
        .iter()
        .map(|j| (j.host.as_str(), j.probe.as_str(), j.status))
        .collect();
    assert_eq!(
        summary,
        [
            ("web-1", "top_cpu", JobStatus::Queued),
            ("web-1", "restart", JobStatus::AwaitingApproval)
        ]
    );
    assert!(jobs.iter().all(|j| j.created_at == t0));

    let steps = store.run_steps("INC-1").await.unwrap();
    assert_eq!(steps.len(), 2);
    assert!(steps.iter().all(|s| s.run_id == steps[0].run_id));
    assert_eq!(steps[0].position, 0);
    assert_eq!(steps[0].name, StepName::Ticket);
    assert_eq!(steps[0].channel, Channel::Jira);
    assert_eq!(steps[1].position, 1);
    assert_eq!(steps[1].name, StepName::Notify);
    assert_eq!(
        steps[1].recipients,
        ["oncall@example.com", "lead@example.com"]
    );
    for s in &steps {
        assert_eq!(s.incident_key, "INC-1");
        assert_eq!(s.kind, RunKind::Opened);
        assert_eq!(s.status, StepStatus::Pending);
        assert_eq!(s.attempts, 0);
        assert_eq!(s.deadline, deadline);
        assert_eq!(s.updated_at, t0);
        assert!(s.next_attempt_at <= t0);
        assert_eq!(s.lease_owner, None);
    }
}

async fn processing_an_event_twice_changes_nothing(h: &dyn Harness) {
    let store = h.store();
    let t0 = now();
    let work = Work {
        jobs: vec![job("web-1", "top_cpu", false)],
        run: Some(run(
            RunKind::Opened,
            vec![step(StepName::Notify, Channel::Slack, t0 + secs(60))],
        )),
        ..Work::default()
    };
    let seq = accept(&*store, &["once"], t0).await[0];
    let decision = Decision {
        seq,
        event_id: "once".into(),
        effect: alarm("g", AlarmAction::OpenOrRepeat, AlarmState::Alarm, work),
    };
    let first = store
        .process_events(vec![decision.clone()], t0)
        .await
        .unwrap();
    assert_eq!(
        first[0].change,
        IncidentChange::Opened {
            key: "INC-1".into(),
            storm: None,
        }
    );
    assert!(store.pending_events(10).await.unwrap().is_empty());

    // A second server that read the same pending event before the first committed.
    let second = store.process_events(vec![decision], t0).await.unwrap();
    assert_eq!(second[0].change, IncidentChange::Unchanged);
    let inc = store.incident("INC-1").await.unwrap().unwrap();
    assert_eq!(inc.count, 1);
    assert_eq!(inc.timeline.len(), 1);
    assert_eq!(store.incident_jobs("INC-1").await.unwrap().len(), 1);
    assert_eq!(store.run_steps("INC-1").await.unwrap().len(), 1);
}

async fn runs_are_journaled_on_existing_incidents_only(h: &dyn Harness) {
    let store = h.store();
    let t0 = now();
    let key = open(&*store, "o", "g", Work::default(), t0).await;
    let escalated = run(
        RunKind::Escalated(2),
        vec![step(StepName::Notify, Channel::Webhook, t0 + secs(60))],
    );
    journal(&*store, "run-1", &key, escalated.clone(), t0).await;
    let unknown = Effect::Run {
        incident_key: "INC-404".into(),
        run: escalated,
    };
    assert_eq!(
        apply(&*store, "run-2", unknown, t0).await,
        IncidentChange::Unchanged
    );
    assert_eq!(
        apply(&*store, "nothing", Effect::Nothing, t0).await,
        IncidentChange::Unchanged
    );
    assert!(store.pending_events(10).await.unwrap().is_empty());
    let steps = store.run_steps(&key).await.unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].kind, RunKind::Escalated(2));
    assert_eq!(steps[0].channel, Channel::Webhook);
}

async fn incidents_are_listed_by_status_appcode_and_limit(h: &dyn Harness) {
    let store = h.store();
    let t0 = now();
    for i in 0..4 {
        open(
            &*store,
            &format!("l{i}"),
            &format!("g{i}"),
            Work::default(),
            t0,
        )
        .await;
    }
    let other = Effect::Alarm(Box::new(AlarmUpdate {
        facts: AlarmFacts {
            appcode: Some("PAY".into()),
            ..facts(AlarmState::Alarm, "x")
        },
        group_key: "pay".into(),
        severity: Severity::Warning,
        action: AlarmAction::OpenOrRepeat,
        on_open: Work::default(),
        on_resolve: Work::default(),
        storm: None,
    }));
    assert_eq!(
        apply(&*store, "p", other, t0).await,
        IncidentChange::Opened {
            key: "INC-5".into(),
            storm: None,
        }
    );
    apply(&*store, "r", recover("g0"), t0).await;

    let keys = |list: Vec<vigil_core::Incident>| -> Vec<String> {
        list.into_iter().map(|i| i.key).collect()
    };
    let all = store
        .list_incidents(IncidentFilter::default())
        .await
        .unwrap();
    assert_eq!(keys(all), ["INC-5", "INC-4", "INC-3", "INC-2", "INC-1"]);
    let two = store
        .list_incidents(IncidentFilter {
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(keys(two), ["INC-5", "INC-4"]);
    let resolved = store
        .list_incidents(IncidentFilter {
            status: Some(IncidentStatus::Resolved),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(keys(resolved), ["INC-1"]);
    let pay = store
        .list_incidents(IncidentFilter {
            appcodes: Some(vec!["PAY".into(), "NONE".into()]),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(pay.len(), 1);
    assert_eq!(pay[0].severity, Severity::Warning);
    let none = store
        .list_incidents(IncidentFilter {
            appcodes: Some(Vec::new()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());
}

async fn manual_transitions_journal_work_only_when_they_change(h: &dyn Harness) {
    let store = h.store();
    let t0 = now();
    let t1 = t0 + secs(10);
    let t2 = t0 + secs(20);
    let key = open(&*store, "m", "g", Work::default(), t0).await;
    let resolved_run = || Work {
        run: Some(run(
            RunKind::Resolved,
            vec![step(StepName::ResolveTicket, Channel::Jira, t0 + secs(600))],
        )),
        ..Work::default()
    };
    let change = |to, by: &str, work, now| ManualChange {
        key: key.clone(),
        to,
        by: by.into(),
        work,
        now,
    };

    let (inc, changed) = store
        .transition(change(
            IncidentStatus::Acknowledged,
            "alice",
            Work::default(),
            t1,
        ))
        .await
        .unwrap()
        .unwrap();
    assert!(changed);
    assert_eq!(inc.status, IncidentStatus::Acknowledged);
    assert_eq!(inc.acknowledged_at, Some(t1));
    assert!(store
        .escalations_due(&[t2 + secs(3600)], 10)
        .await
        .unwrap()
        .is_empty());

    // Acknowledging twice changes nothing and journals nothing.
    let (_, changed) = store
        .transition(change(
            IncidentStatus::Acknowledged,
            "bob",
            resolved_run(),
            t2,
        ))
        .await
        .unwrap()
        .unwrap();
    assert!(!changed);
    assert!(store.run_steps(&key).await.unwrap().is_empty());

    let (inc, changed) = store
        .transition(change(IncidentStatus::Resolved, "bob", resolved_run(), t2))
        .await
        .unwrap()
        .unwrap();
    assert!(changed);
    assert_eq!(inc.status, IncidentStatus::Resolved);
    assert_eq!(inc.resolved_at, Some(t2));
    assert_eq!(store.run_steps(&key).await.unwrap().len(), 1);

    let (inc, changed) = store
        .transition(change(
            IncidentStatus::Resolved,
            "carol",
            resolved_run(),
            t2,
        ))
        .await
        .unwrap()
        .unwrap();
    assert!(!changed);
    assert_eq!(store.run_steps(&key).await.unwrap().len(), 1);
    assert_eq!(
        messages(&inc),
        [
            (TimelineKind::Opened, "opened: ALARM — cpu high".to_string()),
            (TimelineKind::Acknowledged, "acknowledged by alice".into()),
            (TimelineKind::Resolved, "resolved by bob".into()),
        ]
    );
    let unknown = ManualChange {
        key: "INC-77".into(),
        to: IncidentStatus::Acknowledged,
        by: "alice".into(),
        work: Work::default(),
        now: t2,
    };
    assert!(store.transition(unknown).await.unwrap().is_none());

    // A manual resolution frees the group: its next alarm opens a new incident.
    assert_eq!(
        apply(&*store, "m2", fire("g"), t2).await,
        IncidentChange::Opened {
            key: "INC-2".into(),
            storm: None,
        }
    );

    assert!(store
        .add_timeline_entry("INC-2", Note::new(TimelineKind::Note, "looking"), t2)
        .await
        .unwrap());
    assert!(!store
        .add_timeline_entry("INC-404", Note::new(TimelineKind::Note, "x"), t2)
        .await
        .unwrap());
    let inc = store.incident("INC-2").await.unwrap().unwrap();
    assert_eq!(inc.timeline[1].message, "looking");
    assert_eq!(inc.timeline[1].at, t2);
}

async fn escalation_writes_its_event_once_per_level(h: &dyn Harness) {
    let store = h.store();
    let t0 = now();
    let t1 = t0 + secs(300);
    let key = open(&*store, "x", "g", Work::default(), t0).await;
    // Due once its level's cutoff reaches its opening, not before.
    assert!(store
        .escalations_due(&[t0 - secs(1)], 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.escalations_due(&[t0], 10).await.unwrap(),
        [Unacknowledged {
            key: key.clone(),
            opened_at: t0,
            level: 0
        }]
    );
    let escalation = |from, to, id: &str| Escalation {
        key: key.clone(),
        from,
        to,
        note: Note::new(TimelineKind::Note, format!("escalated to level {to}")),
        event: event(id),
        now: t1,
    };
    assert!(store.escalate(escalation(0, 1, "esc-1")).await.unwrap());
    let record = store
        .event("esc-1")
        .await
        .unwrap()
        .expect("escalation event");
    assert_eq!(record.endpoint, "escalation");
    assert_eq!(record.received_at, t1);
    assert!(!record.processed);
    assert_eq!(store.pending_events(10).await.unwrap().len(), 1);

    // Another server escalating from the same level is refused and writes nothing.
    assert!(!store.escalate(escalation(0, 1, "esc-1b")).await.unwrap());
    assert!(store.event("esc-1b").await.unwrap().is_none());
    // At level 1 it waits for the second cutoff; past the last level it is never due.
    assert!(store.escalations_due(&[t1], 10).await.unwrap().is_empty());
    assert!(store
        .escalations_due(&[t1, t0 - secs(1)], 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.escalations_due(&[t1, t0], 10).await.unwrap()[0].level,
        1
    );
    let inc = store.incident(&key).await.unwrap().unwrap();
    assert_eq!(
        messages(&inc)[1],
        (TimelineKind::Note, "escalated to level 1".to_string())
    );
    assert_eq!(inc.timeline.len(), 2);

    store
        .transition(ManualChange {
            key: key.clone(),
            to: IncidentStatus::Acknowledged,
            by: "alice".into(),
            work: Work::default(),
            now: t1,
        })
        .await
        .unwrap();
    assert!(!store.escalate(escalation(1, 2, "esc-2")).await.unwrap());
    assert!(store.event("esc-2").await.unwrap().is_none());
}

async fn escalations_come_oldest_first_per_level(h: &dyn Harness) {
    let store = h.store();
    let t0 = now();
    let mut keys = Vec::new();
    for n in 0..4i64 {
        let key = open(
            &*store,
            &format!("e{n}"),
            &format!("g{n}"),
            Work::default(),
            t0 + secs(n),
        )
        .await;
        keys.push(key);
    }
    // The second one is already at level 1.
    assert!(store
        .escalate(Escalation {
            key: keys[1].clone(),
            from: 0,
            to: 1,
            note: Note::new(TimelineKind::Note, "escalated to level 1"),
            event: event("esc-e1"),
            now: t0 + secs(10),
        })
        .await
        .unwrap());
    let due = |list: Vec<Unacknowledged>| {
        list.into_iter()
            .map(|u| (u.key, u.level))
            .collect::<Vec<_>>()
    };
    // Level 0 due up to t0+2, level 1 not yet: the oldest first, at most the limit.
    let found = store
        .escalations_due(&[t0 + secs(2), t0 - secs(1)], 10)
        .await
        .unwrap();
    assert_eq!(due(found), [(keys[0].clone(), 0), (keys[2].clone(), 0)]);
    let found = store
        .escalations_due(&[t0 + secs(60), t0 + secs(60)], 3)
        .await
        .unwrap();
    assert_eq!(
        due(found),
        [
            (keys[0].clone(), 0),
            (keys[1].clone(), 1),
            (keys[2].clone(), 0)
        ]
    );
    // Resolved incidents are never due.
    store
        .transition(ManualChange {
            key: keys[0].clone(),
            to: IncidentStatus::Resolved,
            by: "alice".into(),
            work: Work::default(),
            now: t0 + secs(20),
        })
        .await
        .unwrap();
    let found = store
        .escalations_due(&[t0 + secs(60), t0 + secs(60)], 10)
        .await
        .unwrap();
    assert_eq!(found.len(), 3);
    assert!(found.iter().all(|u| u.key != keys[0]));
}

async fn oldest_unacknowledged_names_the_next_escalation(h: &dyn Harness) {
    let store = h.store();
    let t0 = now();
    assert!(store.oldest_unacknowledged(3).await.unwrap().is_empty());
    let mut keys = Vec::new();
    for n in 0..3i64 {
        let key = open(
            &*store,
            &format!("o{n}"),
            &format!("g{n}"),
            Work::default(),
            t0 + secs(n),
        )
        .await;
        keys.push(key);
    }
    // The oldest moves to level 1; the next one is then the oldest at level 0.
    assert!(store
        .escalate(Escalation {
            key: keys[0].clone(),
            from: 0,
            to: 1,
            note: Note::new(TimelineKind::Note, "escalated to level 1"),
            event: event("esc-o0"),
            now: t0 + secs(10),
        })
        .await
        .unwrap());
    let oldest = |list: Vec<Unacknowledged>| {
        list.into_iter()
            .map(|u| (u.key, u.level, u.opened_at))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        oldest(store.oldest_unacknowledged(2).await.unwrap()),
        [(keys[1].clone(), 0, t0 + secs(1)), (keys[0].clone(), 1, t0)]
    );
    // Levels at or past `levels` never escalate again, so they are not named.
    assert_eq!(
        oldest(store.oldest_unacknowledged(1).await.unwrap()),
        [(keys[1].clone(), 0, t0 + secs(1))]
    );
    // Acknowledged incidents never escalate.
    store
        .transition(ManualChange {
            key: keys[1].clone(),
            to: IncidentStatus::Acknowledged,
            by: "alice".into(),
            work: Work::default(),
            now: t0 + secs(20),
        })
        .await
        .unwrap();
    assert_eq!(
        oldest(store.oldest_unacknowledged(2).await.unwrap()),
        [(keys[2].clone(), 0, t0 + secs(2)), (keys[0].clone(), 1, t0)]
    );
}

// ---------------------------------------------------------------------------------------
// Runs
// ---------------------------------------------------------------------------------------

async fn concurrent_workers_never_claim_the_same_step(h: &dyn Harness) {
    let store = h.store();
    let t0 = now();
    let key = open(&*store, "o", "g", Work::default(), t0).await;
    const RUNS: usize = 24;
    for i in 0..RUNS {
        let steps = vec![
            step(StepName::Notify, Channel::Slack, t0 + secs(600)),
            step(StepName::Notify, Channel::Email, t0 + secs(600)),
        ];
        journal(
            &*store,
            &format!("run-{i}"),
            &key,
            run(RunKind::Opened, steps),
            t0,
        )
        .await;
    }
    let mut tasks = Vec::new();
    for w in 0..6 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let worker = format!("worker-{w}");
            let mut claimed = Vec::new();
            loop {
                let steps = store
                    .claim_steps(&worker, t0, Duration::from_secs(60), 2)
                    .await
                    .unwrap();
                if steps.is_empty() {
                    break;
                }
                for s in steps {
                    assert_eq!(s.lease_owner.as_deref(), Some(worker.as_str()));
                    claimed.push((s.run_id, s.position));
                }
            }
            claimed
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let distinct: HashSet<(i64, i64)> = all.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        all.len(),
        "a step was claimed twice: {all:?}"
    );
    assert_eq!(all.len(), RUNS, "one step (the first) of each run");
    assert!(all.iter().all(|(_, position)| *position == 0));
}

async fn an_expired_lease_lets_another_worker_claim(h: &dyn Harness) {
    let store = h.store();
    let t0 = now();
    let lease = Duration::from_secs(30);
    let key = open(&*store, "o", "g", Work::default(), t0).await;
    journal(
        &*store,
        "r",
        &key,
        run(
            RunKind::Opened,
            vec![step(StepName::Ticket, Channel::Jira, t0 + secs(600))],
        ),
        t0,
    )
    .await;
    let claimed = store.claim_steps("w1", t0, lease, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].lease_owner.as_deref(), Some("w1"));
    assert_eq!(store.next_step_due().await.unwrap(), Some(t0 + secs(30)));
    assert!(store
        .claim_steps("w2", t0 + secs(29), lease, 10)
        .await
        .unwrap()
        .is_empty());

    let t1 = t0 + secs(31);
    let reclaimed = store.claim_steps("w2", t1, lease, 10).await.unwrap();
    assert_eq!(reclaimed.len(), 1);
    assert_eq!(reclaimed[0].run_id, claimed[0].run_id);
    assert_eq!(reclaimed[0].lease_owner.as_deref(), Some("w2"));

    // The first worker lost its lease: nothing it reports is written.
    let lost = claimed[0].reference("w1");
    assert!(!store
        .finish_step(lost.clone(), StepFinish::new(StepStatus::Done, 1), t1)
        .await
        .unwrap());
    let retry = StepRetry {
        attempts: 1,
        error: Some("timeout".into()),
        next_attempt_at: t1 + secs(10),
        note: None,
    };
    assert!(!store.retry_step(lost, retry, t1).await.unwrap());
    let steps = store.run_steps(&key).await.unwrap();
    assert_eq!(steps[0].status, StepStatus::Pending);
    assert_eq!(steps[0].attempts, 0);
    assert_eq!(steps[0].lease_owner.as_deref(), Some("w2"));

    let mut finish = StepFinish::new(StepStatus::Done, 1);
    finish.external_id = Some("OPS-1".into());
    finish.link = Some("https://jira.example/browse/OPS-1".into());
    assert!(store
        .finish_step(reclaimed[0].reference("w2"), finish, t1)
        .await
        .unwrap());
    let steps = store.run_steps(&key).await.unwrap();
    assert_eq!(steps[0].status, StepStatus::Done);
    assert_eq!(steps[0].attempts, 1);
    assert_eq!(steps[0].external_id.as_deref(), Some("OPS-1"));
    assert_eq!(
        steps[0].link.as_deref(),
        Some("https://jira.example/browse/OPS-1")
    );
    assert_eq!(steps[0].updated_at, t1);
    assert_eq!(steps[0].lease_owner, None);
    assert_eq!(store.next_step_due().await.unwrap(), None);
    // Finishing twice is refused: the lease is gone with the first.
    assert!(!store
        .finish_step(
            reclaimed[0].reference("w2"),
            StepFinish::new(StepStatus::Done, 2),
            t1
        )
        .await
        .unwrap());
}

async fn steps_of_a_run_go_in_order(h: &dyn Harness) {
    let store = h.store();
    let t0 = now();
    let lease = Duration::from_secs(60);
    let key = open(&*store, "o", "g", Work::default(), t0).await;
    assert_eq!(store.next_step_due().await.unwrap(), None);
    journal(
        &*store,
        "r",
        &key,
        run(
            RunKind::Opened,
            vec![
                step(StepName::Ticket, Channel::Jira, t0 + secs(600)),
                step(StepName::Notify, Channel::Email, t0 + secs(600)),
                step(StepName::Undelivered, Channel::None, t0 + secs(600)),
            ],
        ),
        t0,
    )
    .await;
    let due = store.next_step_due().await.unwrap().expect("a step is due");
    assert!(due <= t0);

    let first = store.claim_steps("w", t0, lease, 10).await.unwrap();
    assert_eq!(first.len(), 1, "only the first step of a run is claimable");
    assert_eq!(first[0].position, 0);
    assert_eq!(first[0].name, StepName::Ticket);
    assert!(store
        .claim_steps("w", t0, lease, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .finish_step(
            first[0].reference("w"),
            StepFinish::new(StepStatus::Done, 1),
            t0
        )
        .await
        .unwrap());

    let second = store.claim_steps("w", t0, lease, 10).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].position, 1);
    let later = t0 + secs(120);
    let retry = StepRetry {
        attempts: 1,
        error: Some("SMTP 451".into()),
        next_attempt_at: later,
        note: Some(Note::new(TimelineKind::Note, "email failed, retrying")),
    };
    assert!(store
        .retry_step(second[0].reference("w"), retry, t0)
        .await
        .unwrap());
    assert_eq!(store.next_step_due().await.unwrap(), Some(later));
    assert!(store
        .claim_steps("w", t0 + secs(119), lease, 10)
        .await
        .unwrap()
        .is_empty());
    let again = store.claim_steps("w", later, lease, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].position, 1);
    assert_eq!(again[0].attempts, 1);
    assert_eq!(again[0].last_error.as_deref(), Some("SMTP 451"));
    assert_eq!(again[0].next_attempt_at, later);
    let mut failed = StepFinish::new(StepStatus::Failed, 2);
    failed.error = Some("SMTP 550".into());
    assert!(store
        .finish_step(again[0].reference("w"), failed, later)
        .await
        .unwrap());

    let third = store.claim_steps("w", later, lease, 10).await.unwrap();
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].position, 2);
    assert_eq!(third[0].channel, Channel::None);
    assert!(store
        .finish_step(
            third[0].reference("w"),
            StepFinish::new(StepStatus::Skipped, 1),
            later
        )
        .await
        .unwrap());

    assert_eq!(
        store.next_step_due().await.unwrap(),
        None,
        "the run is closed"
    );
    assert!(store
        .claim_steps("w", later, lease, 10)
        .await
        .unwrap()
        .is_empty());
    let steps = store.run_steps(&key).await.unwrap();
    let statuses: Vec<(StepStatus, u32)> = steps.iter().map(|s| (s.status, s.attempts)).collect();
    assert_eq!(
        statuses,
        [
            (StepStatus::Done, 1),
            (StepStatus::Failed, 2),
            (StepStatus::Skipped, 1)
        ]
    );
    assert_eq!(steps[1].last_error.as_deref(), Some("SMTP 550"));
    let inc = store.incident(&key).await.unwrap().unwrap();
    assert_eq!(
        messages(&inc).last().unwrap(),
        &(TimelineKind::Note, "email failed, retrying".to_string())
    );
}

async fn finishing_a_step_records_ticket_note_and_followup(h: &dyn Harness) {
    let store = h.store();
    let t0 = now();
    let lease = Duration::from_secs(60);
    let key = open(&*store, "o", "g", Work::default(), t0).await;
    journal(
        &*store,
        "r",
        &key,
        run(
            RunKind::Opened,
            vec![step(StepName::Ticket, Channel::Jira, t0 + secs(600))],
        ),
        t0,
    )
    .await;
    let claimed = store.claim_steps("w", t0, lease, 10).await.unwrap();
    let mut finish = StepFinish::new(StepStatus::Done, 1);
    finish.ticket = Some(TicketRecord {
        tracker: Channel::Jira,
        id: "OPS-7".into(),
        url: "https://jira.example/browse/OPS-7".into(),
    });
    finish.note = Some(Note::new(TimelineKind::Note, "ticket OPS-7 opened"));
    finish.followup = Some(run(
        RunKind::Diagnostics,
        vec![step(StepName::Comment, Channel::Jira, t0 + secs(900))],
    ));
    assert!(store
        .finish_step(claimed[0].reference("w"), finish, t0)
        .await
        .unwrap());

    assert_eq!(
        store.tickets(&key).await.unwrap(),
        [TicketRecord {
            tracker: Channel::Jira,
            id: "OPS-7".into(),
            url: "https://jira.example/browse/OPS-7".into(),
        }]
    );
    let inc = store.incident(&key).await.unwrap().unwrap();
    assert_eq!(
        messages(&inc).last().unwrap(),
        &(TimelineKind::Note, "ticket OPS-7 opened".to_string())
    );
    let steps = store.run_steps(&key).await.unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[1].kind, RunKind::Diagnostics);
    assert_eq!(steps[1].name, StepName::Comment);
    assert_eq!(steps[1].status, StepStatus::Pending);
    assert_ne!(steps[1].run_id, steps[0].run_id);

    // The follow-up is claimable; a ticket for the same tracker replaces the first.
    let followup = store.claim_steps("w", t0, lease, 10).await.unwrap();
    assert_eq!(followup.len(), 1);
    assert_eq!(followup[0].kind, RunKind::Diagnostics);
    let mut finish = StepFinish::new(StepStatus::Done, 1);
    finish.ticket = Some(TicketRecord {
        tracker: Channel::Jira,
        id: "OPS-8".into(),
        url: "https://jira.example/browse/OPS-8".into(),
    });
    assert!(store
        .finish_step(followup[0].reference("w"), finish, t0)
        .await
        .unwrap());
    let tickets = store.tickets(&key).await.unwrap();
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0].id, "OPS-8");
    assert!(store.tickets("INC-404").await.unwrap().is_empty());
}

async fn step_context_is_one_snapshot(h: &dyn Harness) {
    let store = h.store();
    let t0 = now();
    assert!(store.step_context("INC-1").await.unwrap().is_none());
    let work = Work {
        jobs: vec![job("web-1", "top_cpu", false)],
        run: Some(run(
            RunKind::Opened,
            vec![step(StepName::Ticket, Channel::Jira, t0 + secs(600))],
        )),
        ..Work::default()
    };
    let key = open(&*store, "o", "g", work, t0).await;
    let context = store.step_context(&key).await.unwrap().unwrap();
    assert_eq!(
        context.incident,
        store.incident(&key).await.unwrap().unwrap()
    );
    assert!(!context.jobs_settled, "top_cpu is still queued");
    assert!(context.tickets.is_empty());
    assert_eq!(context.history, store.run_steps(&key).await.unwrap());
    assert_eq!(context.history.len(), 1);

    let claimed = store.claim_jobs("web-1", t0, 10).await.unwrap();
    let context = store.step_context(&key).await.unwrap().unwrap();
    assert!(!context.jobs_settled, "top_cpu is running");
    let result = JobResult {
        status: JobStatus::Done,
        output: "load 3.2".into(),
        exit_code: Some(0),
        truncated: false,
        error: None,
        queued_ms: Some(12),
        duration_ms: 40,
    };
    store
        .finish_job("web-1", claimed[0].id, result, t0)
        .await
        .unwrap()
        .unwrap();
    let steps = store
        .claim_steps("w", t0, Duration::from_secs(60), 1)
        .await
        .unwrap();
    let mut finish = StepFinish::new(StepStatus::Done, 1);
    finish.ticket = Some(TicketRecord {
        tracker: Channel::Jira,
        id: "OPS-1".into(),
        url: "u".into(),
    });
    store
        .finish_step(steps[0].reference("w"), finish, t0)
        .await
        .unwrap();
    let context = store.step_context(&key).await.unwrap().unwrap();
    assert!(context.jobs_settled);
    assert_eq!(context.tickets.len(), 1);
    assert_eq!(context.history[0].status, StepStatus::Done);
    assert_eq!(context.incident.timeline.len(), 2, "opened + diagnostics");
}

// ---------------------------------------------------------------------------------------
// Hosts and jobs
// ---------------------------------------------------------------------------------------

fn new_host(name: &str, hash: &str) -> NewHost {
    NewHost {
        name: name.into(),
        appcode: Some("SHOP".into()),
        instance_id: Some(format!("i-{name}")),
        token_hash: hash.into(),
    }
}

async fn hosts_enroll_renew_revoke_and_report(h: &dyn Harness) {
    let store = h.store();
    let t0 = now();
    let t1 = t0 + secs(5);
    assert_eq!(
        store
            .enroll_host(new_host("web-2", "h-web2"), t0)
            .await
            .unwrap(),
        Enrollment::Created
    );
    assert_eq!(
        store
            .enroll_host(new_host("web-1", "h1"), t0)
            .await
            .unwrap(),
        Enrollment::Created
    );
    let token = store
        .token_by_hash("h1")
        .await
        .unwrap()
        .expect("host token");
    assert_eq!(token.name, host_token_name("web-1"));
    assert_eq!(token.role, TokenRole::Host);
    assert!(!token.revoked);

    // A new token replaces the old one.
    let renewal = NewHost {
        appcode: None,
        instance_id: None,
        ..new_host("web-1", "h2")
    };
    assert_eq!(
        store.enroll_host(renewal, t1).await.unwrap(),
        Enrollment::Renewed
    );
    assert!(store.token_by_hash("h1").await.unwrap().is_none());
    assert!(store.token_by_hash("h2").await.unwrap().is_some());
    let host = store.host("web-1").await.unwrap().unwrap();
    assert_eq!(host.appcode.as_deref(), Some("SHOP"), "kept when not given");
    assert_eq!(host.instance_id.as_deref(), Some("i-web-1"));
    assert_eq!(
        host.enrolled_at,
        Some(t0),
        "the first enrollment's time is kept"
    );
    assert_eq!(host.revoked_at, None);
    assert_eq!(host.last_seen_at, None);

    assert!(store.revoke_host("web-1", t1).await.unwrap());
    assert!(!store.revoke_host("web-1", t1).await.unwrap());
    assert!(!store.revoke_host("nobody", t1).await.unwrap());
    assert!(store.token_by_hash("h2").await.unwrap().unwrap().revoked);
    assert_eq!(
        store.host("web-1").await.unwrap().unwrap().revoked_at,
        Some(t1)
    );
    assert_eq!(
        store
            .enroll_host(new_host("web-1", "h3"), t1)
            .await
            .unwrap(),
        Enrollment::Renewed
    );
    assert_eq!(store.host("web-1").await.unwrap().unwrap().revoked_at, None);
    assert!(!store.token_by_hash("h3").await.unwrap().unwrap().revoked);

    let heartbeat = Heartbeat {
        agent_version: "0.3.1".into(),
        uptime_secs: 3600,
        interval_secs: 10,
        collector: Some(json!({"running": true, "last_error": null})),
        labels: [("role".to_string(), "web".to_string())].into(),
        appcode: Some("OTHER".into()),
    };
    store
        .record_heartbeat("web-1", heartbeat, t1)
        .await
        .unwrap();
    let host = store.host("web-1").await.unwrap().unwrap();
    assert_eq!(host.last_seen_at, Some(t1));
    assert_eq!(host.agent_version.as_deref(), Some("0.3.1"));
    assert_eq!(host.uptime_secs, Some(3600));
    assert_eq!(host.interval_secs, Some(10));
    assert_eq!(
        host.collector,
        Some(json!({"running": true, "last_error": null}))
    );
    assert_eq!(host.labels.get("role").map(String::as_str), Some("web"));
    assert_eq!(
        host.appcode.as_deref(),
        Some("SHOP"),
        "a heartbeat's appcode does not override the binding"
    );

    assert_eq!(store.last_metrics("web-1").await.unwrap(), None);
    let batch = r#"{"samples":[{"name":"cpu","value":1.5,"timestamp_ms":1}]}"#.to_string();
    store
        .record_metrics("web-1", batch.clone(), t1 + secs(1))
        .await
        .unwrap();
    assert_eq!(store.last_metrics("web-1").await.unwrap(), Some(batch));
    assert_eq!(
        store.host("web-1").await.unwrap().unwrap().last_seen_at,
        Some(t1 + secs(1))
    );

    let names: Vec<String> = store
        .hosts()
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.name)
        .collect();
    assert_eq!(names, ["web-1", "web-2"]);

    let by_name = store
        .host_for_alarm(Some("web-2"), Some("i-web-1"))
        .await
        .unwrap();
    assert_eq!(by_name.map(|h| h.name).as_deref(), Some("web-2"));
    let by_instance = store
        .host_for_alarm(Some("ip-10-0-0-1"), Some("i-web-1"))
        .await
        .unwrap();
    assert_eq!(by_instance.map(|h| h.name).as_deref(), Some("web-1"));
    assert!(store
        .host_for_alarm(Some("nobody"), Some("i-nobody"))
        .await
        .unwrap()
        .is_none());
    assert!(store.host_for_alarm(None, None).await.unwrap().is_none());
    assert!(store.host("nobody").await.unwrap().is_none());
}

fn answer(status: JobStatus, output: &str) -> JobResult {
    JobResult {
        status,
        output: output.into(),
        exit_code: Some(0),
        truncated: false,
        error: None,
        queued_ms: Some(250),
        duration_ms: 120,
    }
}

async fn jobs_are_claimed_answered_and_expired(h: &dyn Harness) {
    let store = h.store();
    let t0 = now();
    store
        .enroll_host(new_host("web-1", "h1"), t0)
        .await
        .unwrap();
    store
        .record_heartbeat(
            "web-1",
            Heartbeat {
                agent_version: "1".into(),
                uptime_secs: 1,
                interval_secs: 10,
                collector: None,
                labels: Default::default(),
                appcode: None,
            },
            t0,
        )
        .await
        .unwrap();
    let work = Work {
        jobs: vec![
            job("web-1", "top_cpu", false),
            job("web-1", "disk_usage", false),
            job("web-1", "top_mem", false),
            job("web-2", "system_summary", false),
        ],
        ..Work::default()
    };
    let key = open(&*store, "o", "g", work, t0).await;
    let records = store.incident_jobs(&key).await.unwrap();
    assert_eq!(records.len(), 4);
    // The job sweeper sleeps until the first claim window closes.
    assert_eq!(
        store.next_job_deadline().await.unwrap(),
        Some(t0 + secs(10))
    );

    let claimed = store.claim_jobs("web-1", t0, 2).await.unwrap();
    let probes: Vec<&str> = claimed.iter().map(|j| j.probe.as_str()).collect();
    assert_eq!(
        probes,
        ["top_cpu", "disk_usage"],
        "oldest first, up to the limit"
    );
    assert_eq!(claimed[0].id, records[0].id);
    assert_eq!(claimed[0].args, json!({"top": 5}));
    assert_eq!(claimed[0].timeout_ms, 20_000);
    assert_eq!(claimed[0].created_at, t0);
    assert_eq!(
        store.job_status(claimed[0].id).await.unwrap(),
        Some(JobStatus::Running)
    );
    assert!(store.job_status(999_999).await.unwrap().is_none());

    // The answer and its timeline entry.
    let result = answer(JobStatus::Done, "PID 1 99% cpu");
    let (kind, message) = result.describe("web-1", "top_cpu");
    let end = store
        .finish_job("web-1", claimed[0].id, result.clone(), t0 + secs(1))
        .await
        .unwrap()
        .expect("the job was running");
    assert_eq!(end.id, claimed[0].id);
    assert_eq!(end.probe, "top_cpu");
    assert_eq!(end.incident_key.as_deref(), Some(key.as_str()));
    assert_eq!(end.status, JobStatus::Done);
    assert_eq!(end.claim_within, Duration::from_secs(10));
    assert_eq!(
        store.job_status(claimed[0].id).await.unwrap(),
        Some(JobStatus::Done)
    );
    assert!(
        store
            .finish_job("web-1", claimed[0].id, result.clone(), t0)
            .await
            .unwrap()
            .is_none(),
        "an ended job takes no second answer"
    );
    assert!(
        store
            .finish_job("web-2", claimed[1].id, result, t0)
            .await
            .unwrap()
            .is_none(),
        "another host's job"
    );
    let inc = store.incident(&key).await.unwrap().unwrap();
    assert_eq!(messages(&inc)[1], (kind, message));
    assert_eq!(inc.timeline[1].at, t0 + secs(1));

    // Nothing is overdue yet.
    assert!(store.expire_jobs(t0 + secs(5)).await.unwrap().is_empty());
    // Past the claim window: the queued jobs nobody took expire (top_mem on web-1 and
    // system_summary on web-2); disk_usage is running with 20 s + grace to answer.
    let t11 = t0 + secs(11);
    let mut expired = store.expire_jobs(t11).await.unwrap();
    expired.sort_by_key(|j| j.id);
    let probes: Vec<&str> = expired.iter().map(|j| j.probe.as_str()).collect();
    assert_eq!(probes, ["top_mem", "system_summary"]);
    for end in &expired {
        assert_eq!(end.status, JobStatus::Expired);
        assert!(!end.was_claimed);
        assert_eq!(end.claim_within, Duration::from_secs(10));
        assert_eq!(end.incident_key.as_deref(), Some(key.as_str()));
    }
    // Only the running job is left: its answer's deadline is next.
    let answer_by = store
        .next_job_deadline()
        .await
        .unwrap()
        .expect("a job is running");
    assert!(
        answer_by >= t0 + secs(20) && answer_by <= t0 + secs(60),
        "{answer_by}"
    );
    assert_eq!(expired[0].host_last_seen_at, Some(t0));
    assert_eq!(expired[1].host_last_seen_at, None, "web-2 never enrolled");
    assert!(expired[0]
        .describe_expiry()
        .contains("did not pick up probe `top_mem` within 10 s"));

    // The running job expires once its timeout and grace have passed.
    let late = t0 + secs(60);
    let expired_running = store.expire_jobs(late).await.unwrap();
    assert_eq!(expired_running.len(), 1);
    assert_eq!(expired_running[0].probe, "disk_usage");
    assert!(expired_running[0].was_claimed);
    assert!(store.expire_jobs(late).await.unwrap().is_empty());
    assert_eq!(store.next_job_deadline().await.unwrap(), None);
    assert_eq!(
        store.job_status(claimed[1].id).await.unwrap(),
        Some(JobStatus::Expired)
    );

    let inc = store.incident(&key).await.unwrap().unwrap();
    let host_checks: Vec<&str> = inc
        .timeline
        .iter()
        .filter(|e| e.kind == TimelineKind::HostCheck)
        .map(|e| e.message.as_str())
        .collect();
    assert_eq!(host_checks.len(), 3);
    assert_eq!(host_checks[0], expired[0].describe_expiry());
    assert_eq!(host_checks[1], expired[1].describe_expiry());
    assert_eq!(host_checks[2], expired_running[0].describe_expiry());
    assert!(host_checks[2].contains("took probe `disk_usage` but never answered"));
    let statuses: Vec<JobStatus> = store
        .incident_jobs(&key)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.status)
        .collect();
    assert_eq!(
        statuses,
        [
            JobStatus::Done,
            JobStatus::Expired,
            JobStatus::Expired,
            JobStatus::Expired
        ]
    );
}

async fn held_jobs_wait_for_approval(h: &dyn Harness) {
    let store = h.store();
    let t0 = now();
    let work = Work {
        jobs: vec![
            job("web-1", "restart_service", true),
            job("web-2", "restart_service", true),
            job("web-1", "clear_cache", true),
        ],
        ..Work::default()
    };
    let key = open(&*store, "o", "g", work, t0).await;
    assert!(store.claim_jobs("web-1", t0, 10).await.unwrap().is_empty());
    // Held jobs have no deadline.
    assert!(store.expire_jobs(t0 + secs(3600)).await.unwrap().is_empty());
    assert_eq!(store.next_job_deadline().await.unwrap(), None);

    let t1 = t0 + secs(3600);
    let hosts = store
        .approve_jobs(&key, "alice", Duration::from_secs(30), t1)
        .await
        .unwrap();
    assert_eq!(hosts, ["web-1", "web-2"]);
    assert_eq!(
        store.next_job_deadline().await.unwrap(),
        Some(t1 + secs(30))
    );
    let inc = store.incident(&key).await.unwrap().unwrap();
    let stamp = t1.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    assert_eq!(
        messages(&inc).last().unwrap(),
        &(
            TimelineKind::Note,
            format!(
                "approved by alice at {stamp}: restart_service, restart_service, clear_cache released"
            )
        )
    );
    let claimed = store.claim_jobs("web-1", t1, 10).await.unwrap();
    assert_eq!(claimed.len(), 2);
    // The released job that nobody takes expires `claim_within` after the approval (the
    // claimed ones once their 20 s timeout and grace have passed, before that).
    assert!(store.expire_jobs(t1 + secs(24)).await.unwrap().is_empty());
    let expired = store.expire_jobs(t1 + secs(29)).await.unwrap();
    assert_eq!(expired.len(), 2);
    assert!(expired.iter().all(|j| j.host == "web-1" && j.was_claimed));
    let expired = store.expire_jobs(t1 + secs(30)).await.unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].host, "web-2");
    assert!(!expired[0].was_claimed);
    assert_eq!(expired[0].claim_within, Duration::from_secs(30));

    let hosts = store
        .approve_jobs(&key, "bob", Duration::from_secs(30), t1)
        .await
        .unwrap();
    assert!(hosts.is_empty());
    let inc = store.incident(&key).await.unwrap().unwrap();
    assert_eq!(
        inc.timeline.last().unwrap().message,
        format!("approved by bob at {stamp} (nothing was waiting)")
    );
    assert!(store
        .approve_jobs("INC-404", "bob", Duration::from_secs(30), t1)
        .await
        .unwrap()
        .is_empty());
}

async fn job_deadlines_are_renewed_at_start(h: &dyn Harness) {
    let store = h.store();
    let t0 = now();
    let work = Work {
        jobs: vec![
            job("web-1", "top_cpu", false),
            job("web-1", "top_mem", false),
        ],
        ..Work::default()
    };
    open(&*store, "o", "g", work, t0).await;
    let handed_out = store.claim_jobs("web-1", t0, 1).await.unwrap();
    assert_eq!(handed_out.len(), 1);
    // The server was down for an hour: neither job may be taken for unreachable yet.
    let restart = t0 + secs(3600);
    let renewed = store
        .renew_job_deadlines(restart, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(renewed, 2);
    // The job handed out before the crash is offered again: the answer that carried it
    // may never have reached the agent (which runs a job id once, and re-sends a kept
    // answer instead).
    assert_eq!(
        store.job_status(handed_out[0].id).await.unwrap(),
        Some(JobStatus::Queued)
    );
    assert!(store
        .expire_jobs(restart + secs(9))
        .await
        .unwrap()
        .is_empty());
    let queued = store.expire_jobs(restart + secs(10)).await.unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].probe, "top_mem");
    // The job offered again gets time for its agent to take it or resend the answer.
    assert!(store
        .expire_jobs(restart + secs(29))
        .await
        .unwrap()
        .is_empty());
    let running = store.expire_jobs(restart + secs(30)).await.unwrap();
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].probe, "top_cpu");
    assert_eq!(
        store
            .renew_job_deadlines(restart, Duration::from_secs(10))
            .await
            .unwrap(),
        0
    );
}

// ---------------------------------------------------------------------------------------
// Alarms, tokens, sessions, apps, SNS
// ---------------------------------------------------------------------------------------

async fn alarm_definitions_and_states(h: &dyn Harness) {
    let store = h.store();
    let t0 = now();
    store
        .put_alarm("mem", r#"{"AlarmName":"mem"}"#, t0)
        .await
        .unwrap();
    store
        .put_alarm("cpu", r#"{"AlarmName":"cpu","v":1}"#, t0)
        .await
        .unwrap();
    store
        .put_alarm("cpu", r#"{"AlarmName":"cpu","v":2}"#, t0)
        .await
        .unwrap();
    assert_eq!(
        store.alarms().await.unwrap(),
        [
            (
                "cpu".to_string(),
                r#"{"AlarmName":"cpu","v":2}"#.to_string()
            ),
            ("mem".to_string(), r#"{"AlarmName":"mem"}"#.to_string()),
        ]
    );

    let state = |alarm: &str, series: &str, state: AlarmState, since| AlarmStateRecord {
        alarm: alarm.into(),
        series: series.into(),
        state,
        since,
        reason: Some(format!("{alarm} on {series} went {state}")),
        reason_data: Some(serde_json::json!({"version": "1.0", "threshold": 80.0})),
        value: Some(91.5),
    };
    store
        .record_alarm_changes(
            vec![
                state("cpu", "web-1", AlarmState::Alarm, t0),
                state("cpu", "web-2", AlarmState::Ok, t0),
                state("mem", "web-1", AlarmState::InsufficientData, t0),
            ],
            vec![event("alarm-1"), event("alarm-2")],
            t0,
        )
        .await
        .unwrap();
    let t1 = t0 + secs(60);
    store
        .record_alarm_changes(
            vec![state("cpu", "web-1", AlarmState::Ok, t1)],
            vec![event("alarm-3"), event("alarm-1")],
            t1,
        )
        .await
        .unwrap();
    // A state without a deciding datapoint or reason (INSUFFICIENT_DATA) keeps none.
    let no_data = AlarmStateRecord {
        reason: None,
        reason_data: None,
        value: None,
        ..state("mem", "web-2", AlarmState::InsufficientData, t1)
    };
    store
        .record_alarm_changes(vec![no_data.clone()], Vec::new(), t1)
        .await
        .unwrap();
    let mut states = store.alarm_states().await.unwrap();
    states.sort_by(|a, b| (&a.alarm, &a.series).cmp(&(&b.alarm, &b.series)));
    assert_eq!(
        states,
        [
            state("cpu", "web-1", AlarmState::Ok, t1),
            state("cpu", "web-2", AlarmState::Ok, t0),
            state("mem", "web-1", AlarmState::InsufficientData, t0),
            no_data,
        ]
    );
    assert_eq!(
        states[0].reason.as_deref(),
        Some("cpu on web-1 went OK"),
        "a change replaces the reason with its own"
    );
    let pending = store.pending_events(10).await.unwrap();
    let ids: Vec<&str> = pending.iter().map(|p| p.event.id.as_str()).collect();
    assert_eq!(ids, ["alarm-1", "alarm-2", "alarm-3"]);
    assert!(pending.iter().all(|p| p.endpoint == "alarms"));
    assert_eq!(
        store.event("alarm-1").await.unwrap().unwrap().received_at,
        t0
    );

    assert!(store.delete_alarm("cpu").await.unwrap());
    assert!(!store.delete_alarm("cpu").await.unwrap());
    assert_eq!(store.alarms().await.unwrap().len(), 1);
    let states = store.alarm_states().await.unwrap();
    assert_eq!(states.len(), 2);
    assert!(states.iter().all(|s| s.alarm == "mem"));
}

fn block(series: &str, start_ms: i64, end_ms: i64, data: &[u8]) -> SeriesBlock {
    SeriesBlock {
        series: series.into(),
        start_ms,
        end_ms,
        data: data.to_vec(),
    }
}

/// Every block with `end_ms > since_ms`, read `limit` at a time through the keyset cursor.
async fn all_series_blocks(store: &dyn Store, since_ms: i64, limit: usize) -> Vec<SeriesBlock> {
    let mut out: Vec<SeriesBlock> = Vec::new();
    let mut after = None;
    loop {
        let page = store.series_blocks(since_ms, after, limit).await.unwrap();
        assert!(
            page.len() <= limit,
            "a page of {} for limit {limit}",
            page.len()
        );
        let Some(last) = page.last() else {
            return out;
        };
        after = Some((last.series.clone(), last.start_ms));
        out.extend(page);
    }
}

/// `(series, start_ms)` of each block.
fn block_keys(blocks: &[SeriesBlock]) -> Vec<(String, i64)> {
    blocks
        .iter()
        .map(|b| (b.series.clone(), b.start_ms))
        .collect()
}

async fn series_blocks_page_in_key_order_with_their_bytes(h: &dyn Harness) {
    let store = h.store();
    assert!(store.series_blocks(0, None, 10).await.unwrap().is_empty());
    // Series names that sort differently by bytes than by a language's collation; block
    // bytes that are no UTF-8 (a lone continuation byte, an invalid lead, NUL) or nothing.
    let not_utf8: &[u8] = &[0xff, 0xfe, 0x00, 0x80, 0xc3, 0x28, 0x00];
    let mut blocks = Vec::new();
    for (n, series) in [
        "web-1|cpu",
        "Web-1|cpu",
        "web-1|cpu.user",
        "wéb|mem",
        "web_1|cpu",
        "a",
    ]
    .into_iter()
    .enumerate()
    {
        for k in 0..4_i64 {
            let start = 1_700_000_000_000 + k * 7_200_000;
            let mut data = not_utf8.to_vec();
            data.extend(series.as_bytes());
            data.extend(k.to_be_bytes());
            data.extend(std::iter::repeat_n(n as u8, k as usize * 100));
            blocks.push(block(series, start, start + 7_200_000, &data));
        }
    }
    blocks.push(block("zz|empty", 5, 10, &[]));
    let mut expected = blocks.clone();
    expected
        .sort_by(|a, b| (a.series.as_bytes(), a.start_ms).cmp(&(b.series.as_bytes(), b.start_ms)));
    // Written in another order than they are read.
    blocks.reverse();
    blocks.swap(3, 17);
    store.put_series_blocks(blocks).await.unwrap();

    for limit in [1, 3, 5, 25, 1000] {
        assert_eq!(
            all_series_blocks(&*store, i64::MIN, limit).await,
            expected,
            "pages of {limit}"
        );
    }
    // A page ends exactly at the last block: the next one is empty.
    let first = store.series_blocks(i64::MIN, None, 25).await.unwrap();
    assert_eq!(first, expected);
    let last = &first[24];
    assert!(store
        .series_blocks(i64::MIN, Some((last.series.clone(), last.start_ms)), 25)
        .await
        .unwrap()
        .is_empty());
    // The cursor is exclusive and need not name a stored block.
    let after = store
        .series_blocks(i64::MIN, Some(("web-1|cpu".into(), 1_700_000_000_000)), 2)
        .await
        .unwrap();
    assert_eq!(after, expected[9..11]);
    let between = store
        .series_blocks(i64::MIN, Some(("web-1|cpu".into(), 1_700_000_000_001)), 1)
        .await
        .unwrap();
    assert_eq!(between, expected[9..10]);
    let between = store
        .series_blocks(i64::MIN, Some(("web-1|c".into(), i64::MAX)), 1)
        .await
        .unwrap();
    assert_eq!(between, expected[8..9]);
    assert!(store
        .series_blocks(i64::MIN, None, 0)
        .await
        .unwrap()
        .is_empty());
}

async fn series_blocks_are_replaced_by_series_and_start(h: &dyn Harness) {
    let store = h.store();
    store
        .put_series_blocks(vec![
            block("s1", 0, 100, b"old-0"),
            block("s1", 100, 200, b"old-100"),
            block("s2", 0, 100, b"s2-0"),
        ])
        .await
        .unwrap();
    // A block of the same (series, start) replaces data and end; within one call the
    // later of two blocks of a key wins.
    store
        .put_series_blocks(vec![
            block("s1", 100, 150, &[0xde, 0xad]),
            block("s1", 0, 100, b"first of two"),
            block("s3", 0, 100, b"s3-0"),
            block("s1", 0, 120, &[0xbe, 0xef, 0xff]),
        ])
        .await
        .unwrap();
    assert_eq!(
        all_series_blocks(&*store, i64::MIN, 2).await,
        [
            block("s1", 0, 120, &[0xbe, 0xef, 0xff]),
            block("s1", 100, 150, &[0xde, 0xad]),
            block("s2", 0, 100, b"s2-0"),
            block("s3", 0, 100, b"s3-0"),
        ]
    );
    // An empty call writes nothing and is no error.
    store.put_series_blocks(Vec::new()).await.unwrap();
    assert_eq!(all_series_blocks(&*store, i64::MIN, 10).await.len(), 4);
}

async fn series_blocks_since_keeps_those_ending_later(h: &dyn Harness) {
    let store = h.store();
    store
        .put_series_blocks(vec![
            block("a", 0, 100, b"a0"),
            block("a", 100, 200, b"a1"),
            block("a", 200, 300, b"a2"),
            block("b", 0, 150, b"b0"),
            block("b", 150, 250, b"b1"),
            block("c", -500, -100, b"c-negative"),
        ])
        .await
        .unwrap();
    let keys = |blocks: Vec<SeriesBlock>| block_keys(&blocks);
    let key = |s: &str, start: i64| (s.to_string(), start);
    assert_eq!(
        keys(all_series_blocks(&*store, 200, 1).await),
        [key("a", 200), key("b", 150)],
        "a block ending at since_ms is left out"
    );
    assert_eq!(
        keys(all_series_blocks(&*store, 199, 1).await),
        [key("a", 100), key("a", 200), key("b", 150)]
    );
    assert_eq!(keys(all_series_blocks(&*store, -101, 2).await).len(), 6);
    assert_eq!(keys(all_series_blocks(&*store, -100, 2).await).len(), 5);
    assert!(all_series_blocks(&*store, 300, 2).await.is_empty());
    // A cursor and since_ms together: after ("a", 200), of those ending after 100.
    assert_eq!(
        keys(
            store
                .series_blocks(100, Some(("a".into(), 200)), 10)
                .await
                .unwrap()
        ),
        [key("b", 0), key("b", 150)]
    );
}

async fn old_series_blocks_are_deleted_and_counted(h: &dyn Harness) {
    let store = h.store();
    assert_eq!(
        store.delete_series_blocks_before(i64::MAX).await.unwrap(),
        0
    );
    store
        .put_series_blocks(vec![
            block("a", 0, 100, b"a0"),
            block("a", 100, 200, b"a1"),
            block("a", 200, 300, b"a2"),
            block("b", 0, 150, b"b0"),
            block("b", 150, 250, b"b1"),
        ])
        .await
        .unwrap();
    // A block ending at before_ms goes; one ending after it stays.
    assert_eq!(store.delete_series_blocks_before(99).await.unwrap(), 0);
    assert_eq!(store.delete_series_blocks_before(150).await.unwrap(), 2);
    assert_eq!(
        block_keys(&all_series_blocks(&*store, i64::MIN, 10).await),
        [
            ("a".to_string(), 100),
            ("a".to_string(), 200),
            ("b".to_string(), 150)
        ]
    );
    assert_eq!(store.delete_series_blocks_before(150).await.unwrap(), 0);
    assert_eq!(store.delete_series_blocks_before(250).await.unwrap(), 2);
    assert_eq!(
        all_series_blocks(&*store, i64::MIN, 10).await,
        [block("a", 200, 300, b"a2")]
    );
    assert_eq!(
        store.delete_series_blocks_before(i64::MAX).await.unwrap(),
        1
    );
    assert!(all_series_blocks(&*store, i64::MIN, 10).await.is_empty());
}

/// One call with tens of thousands of blocks (more than one statement's worth on a backend
/// that writes them in chunks, by count and by bytes), each read back once.
async fn many_series_blocks_are_written_in_one_call(h: &dyn Harness) {
    let store = h.store();
    let mut blocks: Vec<SeriesBlock> = (0..24_000_i64)
        .map(|n| {
            let series = format!("host-{:05}|cpu", n / 2);
            let start = (n % 2) * 7_200_000;
            let mut data = n.to_le_bytes().to_vec();
            data.push(0xff);
            block(&series, start, start + 7_200_000, &data)
        })
        .collect();
    // A few large blocks, together beyond what one statement should carry.
    for n in 0..20_u8 {
        blocks.push(block(&format!("big-{n:02}"), 0, 10, &vec![n; 1 << 20]));
    }
    // Replacements of keys written earlier in the same call.
    blocks.push(block("host-00000|cpu", 0, 7_200_000, b"replaced"));
    blocks.push(block(
        "host-11999|cpu",
        7_200_000,
        14_400_000,
        b"replaced too",
    ));
    store.put_series_blocks(blocks).await.unwrap();

    let read = all_series_blocks(&*store, i64::MIN, 997).await;
    assert_eq!(read.len(), 24_020);
    let keys = block_keys(&read);
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "in key order, each once"
    );
    for (n, b) in read[..20].iter().enumerate() {
        assert_eq!(b.series, format!("big-{n:02}"));
        assert_eq!(b.data.len(), 1 << 20);
        assert!(b.data.iter().all(|&byte| usize::from(byte) == n));
    }
    assert_eq!(read[20].data, b"replaced");
    assert_eq!(read[24_019].data, b"replaced too");
    assert_eq!(
        read[21].data,
        [1_i64.to_le_bytes().as_slice(), &[0xff]].concat()
    );
    assert_eq!(
        store.delete_series_blocks_before(7_200_000).await.unwrap(),
        12_020
    );
    assert_eq!(
        all_series_blocks(&*store, i64::MIN, 5_000).await.len(),
        12_000
    );
}

async fn tokens_by_hash_and_scoped_tokens(h: &dyn Harness) {
    let store = h.store();
    let t0 = now();
    store
        .put_token("admin", "h1", TokenRole::Admin, t0)
        .await
        .unwrap();
    assert_eq!(
        store.token_by_hash("h1").await.unwrap(),
        Some(TokenRecord {
            name: "admin".into(),
            role: TokenRole::Admin,
            revoked: false,
            scope: None,
        })
    );
    assert!(store.token_by_hash("h2").await.unwrap().is_none());
    // Rotation: the same name with a new hash.
    store
        .put_token("admin", "h2", TokenRole::Admin, t0)
        .await
        .unwrap();
    assert!(store.token_by_hash("h1").await.unwrap().is_none());
    assert_eq!(
        store.token_by_hash("h2").await.unwrap().unwrap().name,
        "admin"
    );

    store
        .add_scoped_token("shop-team", "h3", Some("SHOP"), t0)
        .await
        .unwrap();
    assert_eq!(
        store.token_by_hash("h3").await.unwrap(),
        Some(TokenRecord {
            name: "shop-team".into(),
            role: TokenRole::Admin,
            revoked: false,
            scope: Some("SHOP".into()),
        })
    );
    match store.add_scoped_token("shop-team", "h4", None, t0).await {
        Err(StoreError::Conflict(what)) => assert!(what.contains("shop-team"), "{what}"),
        other => panic!("a duplicate token name must conflict, got {other:?}"),
    }
    assert!(store.token_by_hash("h4").await.unwrap().is_none());
    assert_eq!(
        store
            .token_by_hash("h3")
            .await
            .unwrap()
            .unwrap()
            .scope
            .as_deref(),
        Some("SHOP")
    );
}

async fn tokens_are_listed_and_revoked_by_name(h: &dyn Harness) {
    let store = h.store();
    let t0 = now();
    let t1 = t0 + chrono::Duration::seconds(5);
    store
        .put_token("admin", "h1", TokenRole::Admin, t0)
        .await
        .unwrap();
    store
        .put_token(&host_token_name("web-1"), "h2", TokenRole::Host, t0)
        .await
        .unwrap();
    store
        .add_scoped_token("shop-team", "h3", Some("SHOP"), t0)
        .await
        .unwrap();
    let listed = store.tokens().await.unwrap();
    assert_eq!(
        listed,
        vec![
            TokenListing {
                name: "admin".into(),
                role: TokenRole::Admin,
                scope: None,
                created_at: t0,
                revoked_at: None,
            },
            TokenListing {
                name: host_token_name("web-1"),
                role: TokenRole::Host,
                scope: None,
                created_at: t0,
                revoked_at: None,
            },
            TokenListing {
                name: "shop-team".into(),
                role: TokenRole::Admin,
                scope: Some("SHOP".into()),
                created_at: t0,
                revoked_at: None,
            },
        ]
    );

    assert!(store.revoke_token("shop-team", t1).await.unwrap());
    assert!(store.token_by_hash("h3").await.unwrap().unwrap().revoked);
    // Once is enough; an unknown name changes nothing.
    assert!(!store.revoke_token("shop-team", t1).await.unwrap());
    assert!(!store.revoke_token("nobody", t1).await.unwrap());
    let listed = store.tokens().await.unwrap();
    let shop = listed.iter().find(|t| t.name == "shop-team").unwrap();
    assert_eq!(shop.revoked_at, Some(t1));
    assert!(listed
        .iter()
        .filter(|t| t.name != "shop-team")
        .all(|t| t.revoked_at.is_none()));
    // A revoked name stays taken: a new token cannot pose as the old one in timelines.
    assert!(matches!(
        store.add_scoped_token("shop-team", "h4", None, t1).await,
        Err(StoreError::Conflict(_))
    ));
}

async fn sessions_expire(h: &dyn Harness) {
    let store = h.store();
    let t0 = now();
    let session = |id: &str, expires_at| SessionRecord {
        id_hash: id.into(),
        principal: "admin".into(),
        scope: Some("SHOP".into()),
        csrf: format!("csrf-{id}"),
        expires_at,
    };
    store
        .create_session(session("s1", t0 + secs(3600)), t0)
        .await
        .unwrap();
    assert_eq!(
        store.session("s1", t0).await.unwrap(),
        Some(session("s1", t0 + secs(3600)))
    );
    assert!(store
        .session("s1", t0 + secs(3600))
        .await
        .unwrap()
        .is_none());
    assert!(store.session("s9", t0).await.unwrap().is_none());

    // A new session sweeps expired ones: s1 is gone even for a clock that says it is not.
    let later = t0 + secs(7200);
    store
        .create_session(session("s2", later + secs(3600)), later)
        .await
        .unwrap();
    assert!(store.session("s1", t0).await.unwrap().is_none());
    assert!(store.session("s2", later).await.unwrap().is_some());
    store.delete_session("s2").await.unwrap();
    assert!(store.session("s2", later).await.unwrap().is_none());
}

async fn apps_and_host_bindings(h: &dyn Harness) {
    let store = h.store();
    let t0 = now();
    store
        .save_apps(
            vec![
                ("SHOP".into(), r#"{"name":"Shop"}"#.into()),
                ("PAY".into(), r#"{"name":"Pay"}"#.into()),
            ],
            vec![("web-9".into(), "SHOP".into())],
            t0,
        )
        .await
        .unwrap();
    store
        .save_apps(
            vec![("SHOP".into(), r#"{"name":"Shop v2"}"#.into())],
            Vec::new(),
            t0,
        )
        .await
        .unwrap();
    store
        .retire_apps(vec!["PAY".into(), "OLD".into()], t0)
        .await
        .unwrap();
    assert_eq!(
        store.apps().await.unwrap(),
        [
            ("OLD".to_string(), "{}".to_string(), true),
            ("PAY".to_string(), r#"{"name":"Pay"}"#.to_string(), true),
            (
                "SHOP".to_string(),
                r#"{"name":"Shop v2"}"#.to_string(),
                false
            ),
        ]
    );
    assert_eq!(
        store.host_bindings().await.unwrap(),
        [("web-9".to_string(), "SHOP".to_string())]
    );
    // A bound host that never enrolled is declared: neither enrolled nor revoked, and
    // there is no token to revoke. Enrolling it renews the row and starts its enrollment.
    let bound = store
        .host("web-9")
        .await
        .unwrap()
        .expect("the binding's row");
    assert_eq!(bound.enrolled_at, None);
    assert_eq!(bound.revoked_at, None);
    assert_eq!(bound.lifecycle(t0), HostLifecycle::Declared);
    assert_eq!(bound.appcode.as_deref(), Some("SHOP"));
    assert!(!store.revoke_host("web-9", t0).await.unwrap());
    assert_eq!(
        store.host("web-9").await.unwrap().unwrap().lifecycle(t0),
        HostLifecycle::Declared
    );
    let t1 = t0 + secs(5);
    let enroll = NewHost {
        appcode: None,
        ..new_host("web-9", "h9")
    };
    assert_eq!(
        store.enroll_host(enroll, t1).await.unwrap(),
        Enrollment::Renewed
    );
    let host = store.host("web-9").await.unwrap().unwrap();
    assert_eq!(host.enrolled_at, Some(t1));
    assert_eq!(host.revoked_at, None);
    assert_eq!(host.lifecycle(t1), HostLifecycle::Enrolled);
    assert_eq!(host.appcode.as_deref(), Some("SHOP"));
    // Binding it again (a re-import) keeps its enrollment.
    store
        .save_apps(Vec::new(), vec![("web-9".into(), "SHOP".into())], t1)
        .await
        .unwrap();
    assert_eq!(
        store.host("web-9").await.unwrap().unwrap().enrolled_at,
        Some(t1)
    );
    assert!(store.revoke_host("web-9", t1).await.unwrap());
    assert_eq!(
        store.host("web-9").await.unwrap().unwrap().lifecycle(t1),
        HostLifecycle::Revoked
    );
}

/// Before hosts had a lifecycle, binding a host that never enrolled wrote it enrolled and
/// revoked at the binding's time. The migration that made enrollment optional (the one
/// before alarm storms) turns such rows into declared hosts and leaves enrolled ones alone.
async fn hosts_bound_by_an_older_vigil_migrate_as_declared(h: &dyn Harness) {
    let store = h.store();
    let t0 = now();
    store
        .enroll_host(new_host("web-1", "h1"), t0)
        .await
        .unwrap();
    assert!(store.revoke_host("web-1", t0).await.unwrap());
    store
        .enroll_host(new_host("web-2", "h2"), t0)
        .await
        .unwrap();
    h.execute(
        "INSERT INTO hosts (name, appcode, enrolled_at, revoked_at)
         VALUES ('web-7', 'SHOP', '2026-01-02T03:04:05.000Z', '2026-01-02T03:04:05.000Z')",
    )
    .await;
    // Undo the migrations after it too (alarm storms, series history), so all run again in
    // order.
    for undo in [
        "DROP TABLE series_blocks",
        "DROP INDEX incidents_storm_scope",
        "DROP INDEX incidents_storm_members",
        "ALTER TABLE incidents DROP COLUMN storm_id",
        "ALTER TABLE incidents DROP COLUMN storm_scope",
        "ALTER TABLE incidents DROP COLUMN kind",
    ] {
        h.execute(undo).await;
    }
    h.unmark_last_migrations(3).await;
    drop(store);
    let store = h.reopen().await.expect("reopen and migrate");
    let host = |name: &'static str| {
        let store = store.clone();
        async move { store.host(name).await.unwrap().expect(name) }
    };
    let declared = host("web-7").await;
    assert_eq!(declared.enrolled_at, None);
    assert_eq!(declared.revoked_at, None);
    assert_eq!(declared.appcode.as_deref(), Some("SHOP"));
    assert_eq!(declared.lifecycle(t0), HostLifecycle::Declared);
    let revoked = host("web-1").await;
    assert_eq!(
        (revoked.enrolled_at, revoked.revoked_at),
        (Some(t0), Some(t0))
    );
    assert_eq!(revoked.lifecycle(t0), HostLifecycle::Revoked);
    let enrolled = host("web-2").await;
    assert_eq!(enrolled.instance_id.as_deref(), Some("i-web-2"));
    assert_eq!(enrolled.lifecycle(t0), HostLifecycle::Enrolled);
    assert_eq!(store.hosts().await.unwrap().len(), 3);
    assert_eq!(
        store
            .host_for_alarm(None, Some("i-web-2"))
            .await
            .unwrap()
            .map(|h| h.name),
        Some("web-2".to_string()),
        "the instance index still answers"
    ); // The series history's table is back.
    store
        .put_series_blocks(vec![block("web-2|cpu", 0, 60_000, &[0xff])])
        .await
        .unwrap();
    assert_eq!(store.series_blocks(0, None, 10).await.unwrap().len(), 1);
}

async fn sns_subscriptions_keep_their_status(h: &dyn Harness) {
    let store = h.store();
    let t0 = now();
    let subscription = |topic: &str, id: &str| SnsSubscription {
        topic_arn: topic.into(),
        message_id: id.into(),
        subscribe_url: format!("https://sns.eu-west-1.amazonaws.com/?Action=Confirm&m={id}"),
    };
    store
        .record_sns_subscription(subscription("arn:topic:a", "m1"), SnsStatus::Confirming, t0)
        .await
        .unwrap();
    store
        .record_sns_subscription(
            subscription("arn:topic:b", "m2"),
            SnsStatus::Refused,
            t0 + secs(1),
        )
        .await
        .unwrap();
    // A message id seen before changes nothing.
    store
        .record_sns_subscription(
            subscription("arn:topic:c", "m1"),
            SnsStatus::Failed,
            t0 + secs(2),
        )
        .await
        .unwrap();
    assert_eq!(
        store.sns_subscriptions().await.unwrap(),
        [
            ("arn:topic:b".to_string(), SnsStatus::Refused),
            ("arn:topic:a".to_string(), SnsStatus::Confirming),
        ]
    );
    store
        .set_sns_subscription_status("m1", SnsStatus::Confirmed, "confirmed in 120 ms")
        .await
        .unwrap();
    store
        .set_sns_subscription_status("m404", SnsStatus::Failed, "unknown")
        .await
        .unwrap();
    assert_eq!(
        store.sns_subscriptions().await.unwrap(),
        [
            ("arn:topic:b".to_string(), SnsStatus::Refused),
            ("arn:topic:a".to_string(), SnsStatus::Confirmed),
        ]
    );
}

// ---------------------------------------------------------------------------------------
// Stored data this vigil does not understand, and schema versions
// ---------------------------------------------------------------------------------------

async fn unknown_enum_values_are_corrupt(h: &dyn Harness) {
    let store = h.store();
    let t0 = now();
    let work = Work {
        jobs: vec![job("web-1", "top_cpu", false)],
        run: Some(run(
            RunKind::Opened,
            vec![
                step(StepName::Ticket, Channel::Jira, t0 + secs(600)),
                step(StepName::Notify, Channel::Slack, t0 + secs(600)),
            ],
        )),
        ..Work::default()
    };
    let key = open(&*store, "o", "g", work, t0).await;
    let run_id = store.run_steps(&key).await.unwrap()[0].run_id;
    let ticket_step = store
        .claim_steps("w", t0, Duration::from_secs(60), 10)
        .await
        .unwrap();
    let mut finish = StepFinish::new(StepStatus::Done, 1);
    finish.ticket = Some(TicketRecord {
        tracker: Channel::Jira,
        id: "OPS-1".into(),
        url: "u".into(),
    });
    assert!(store
        .finish_step(ticket_step[0].reference("w"), finish, t0)
        .await
        .unwrap());
    let job_id = store.incident_jobs(&key).await.unwrap()[0].id;
    store
        .put_token("admin", "h1", TokenRole::Admin, t0)
        .await
        .unwrap();
    store
        .record_sns_subscription(
            SnsSubscription {
                topic_arn: "arn:topic".into(),
                message_id: "m1".into(),
                subscribe_url: "https://sns".into(),
            },
            SnsStatus::Confirming,
            t0,
        )
        .await
        .unwrap();
    store
        .record_alarm_changes(
            vec![AlarmStateRecord {
                alarm: "cpu".into(),
                series: "web-1".into(),
                state: AlarmState::Alarm,
                since: t0,
                reason: None,
                reason_data: None,
                value: None,
            }],
            Vec::new(),
            t0,
        )
        .await
        .unwrap();

    let run_row = format!("run {run_id}");
    h.execute("UPDATE run_steps SET channel = 'fax'").await;
    expect_corrupt(store.run_steps(&key).await, &[&run_row, "`fax`"]);
    expect_corrupt(
        store
            .claim_steps("w", t0, Duration::from_secs(60), 10)
            .await,
        &[&run_row, "`fax`"],
    );
    h.execute("UPDATE run_steps SET channel = 'jira', name = 'dance'")
        .await;
    expect_corrupt(store.run_steps(&key).await, &[&run_row, "`dance`"]);
    h.execute("UPDATE run_steps SET name = 'notify'; UPDATE run_steps SET status = 'sleeping' WHERE status = 'pending'").await;
    expect_corrupt(store.step_context(&key).await, &[&run_row, "`sleeping`"]);
    h.execute(
        "UPDATE run_steps SET status = 'pending' WHERE status = 'sleeping';
         UPDATE runs SET kind = 'escalated-x'",
    )
    .await;
    expect_corrupt(store.run_steps(&key).await, &[&run_row, "`escalated-x`"]);
    h.execute("UPDATE runs SET kind = 'opened'").await;
    assert_eq!(store.run_steps(&key).await.unwrap().len(), 2);

    h.execute("UPDATE jobs SET status = 'lost'").await;
    let job_row = format!("job {job_id}");
    expect_corrupt(store.job_status(job_id).await, &[&job_row, "`lost`"]);
    expect_corrupt(store.incident_jobs(&key).await, &[&job_row, "`lost`"]);
    h.execute("UPDATE jobs SET status = 'queued'").await;

    h.execute("UPDATE timeline SET kind = 'gossip'").await;
    expect_corrupt(store.incident(&key).await, &[&key, "`gossip`"]);
    h.execute("UPDATE timeline SET kind = 'opened'").await;

    h.execute("UPDATE incidents SET status = 'snoozed'").await;
    expect_corrupt(
        store.list_incidents(IncidentFilter::default()).await,
        &[&key, "`snoozed`"],
    );
    h.execute("UPDATE incidents SET status = 'open'").await;
    assert!(store.incident(&key).await.unwrap().is_some());

    h.execute("UPDATE tokens SET role = 'root'").await;
    expect_corrupt(store.token_by_hash("h1").await, &["admin", "`root`"]);

    h.execute("UPDATE sns_subscriptions SET status = 'maybe'")
        .await;
    expect_corrupt(store.sns_subscriptions().await, &["m1", "`maybe`"]);

    h.execute("UPDATE alarm_states SET state = 'PURPLE'").await;
    expect_corrupt(store.alarm_states().await, &["cpu", "web-1", "`PURPLE`"]);
    h.execute("UPDATE alarm_states SET state = 'ALARM'").await;
    assert_eq!(store.alarm_states().await.unwrap().len(), 1);

    assert_eq!(store.tickets(&key).await.unwrap().len(), 1);
    h.execute("UPDATE tickets SET tracker = 'telex'").await;
    expect_corrupt(store.tickets(&key).await, &[&key, "`telex`"]);
}

async fn a_newer_schema_is_refused(h: &dyn Harness) {
    // Opening again at the same version is fine (migrations are not re-applied).
    h.reopen().await.expect("reopening at the same version");
    h.set_schema_version(999).await;
    match h.reopen().await {
        Err(error @ StoreError::TooNew { found: 999, known }) => {
            assert!(known < 999);
            let message = error.to_string();
            assert!(
                message.contains("999") && message.contains("newer than this vigil knows"),
                "{message}"
            );
        }
        Err(other) => panic!("expected TooNew, got {other}"),
        Ok(_) => panic!("a schema newer than this vigil must be refused"),
    }
}

async fn reopening_keeps_data(h: &dyn Harness) {
    let store = h.store();
    let t0 = now();
    let key = open(&*store, "k", "g", Work::default(), t0).await;
    let reopened = h.reopen().await.expect("reopening");
    assert_eq!(reopened.event_count().await.unwrap(), 1);
    assert_eq!(
        reopened.incident(&key).await.unwrap(),
        store.incident(&key).await.unwrap()
    );
    assert!(!reopened.describe().is_empty());
    // Keys keep counting after a reopen.
    assert_eq!(
        apply(&*reopened, "k2", fire("g2"), t0).await,
        IncidentChange::Opened {
            key: "INC-2".into(),
            storm: None,
        }
    );
}
