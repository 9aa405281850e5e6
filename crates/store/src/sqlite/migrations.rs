use rusqlite::Connection;

use crate::{Result, StoreError};

/// Each entry moves the schema one version forward; never edit a released entry, add one.
const MIGRATIONS: &[&str] = &[
    // 1: events, incidents, timeline, tokens, SNS subscriptions.
    "CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        endpoint TEXT NOT NULL,
        received_at TEXT NOT NULL,
        body TEXT NOT NULL,
        processed INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX events_pending ON events (seq) WHERE processed = 0;
    CREATE TABLE incidents (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL UNIQUE,
        group_key TEXT NOT NULL,
        status TEXT NOT NULL,
        severity TEXT NOT NULL,
        title TEXT NOT NULL,
        count INTEGER NOT NULL,
        host TEXT,
        opened_at TEXT NOT NULL,
        acknowledged_at TEXT,
        resolved_at TEXT,
        last_event_at TEXT NOT NULL,
        facts TEXT NOT NULL
    );
    CREATE UNIQUE INDEX incidents_one_unresolved_per_group ON incidents (group_key) WHERE status != 'resolved';
    CREATE INDEX incidents_status ON incidents (status, id);
    CREATE TABLE timeline (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        incident_id INTEGER NOT NULL REFERENCES incidents (id),
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        message TEXT NOT NULL,
        event_id TEXT
    );
    CREATE INDEX timeline_incident ON timeline (incident_id, id);
    CREATE TABLE tokens (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        hash TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        created_at TEXT NOT NULL,
        revoked_at TEXT
    );
    CREATE TABLE sns_subscriptions (
        topic_arn TEXT NOT NULL,
        message_id TEXT NOT NULL PRIMARY KEY,
        subscribe_url TEXT NOT NULL,
        received_at TEXT NOT NULL,
        status TEXT NOT NULL,
        detail TEXT
    );",
    // 2: enrolled hosts and the probe jobs handed to their agents.
    "CREATE TABLE hosts (
        name TEXT PRIMARY KEY,
        appcode TEXT,
        instance_id TEXT,
        enrolled_at TEXT NOT NULL,
        revoked_at TEXT,
        last_seen_at TEXT,
        agent_version TEXT,
        uptime_secs INTEGER,
        interval_secs INTEGER,
        collector TEXT,
        labels TEXT NOT NULL DEFAULT '{}',
        last_metrics TEXT
    );
    CREATE INDEX hosts_instance ON hosts (instance_id);
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        host TEXT NOT NULL,
        incident_id INTEGER REFERENCES incidents (id),
        probe TEXT NOT NULL,
        args TEXT NOT NULL DEFAULT 'null',
        timeout_ms INTEGER NOT NULL,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        claim_by_ms INTEGER NOT NULL,
        claimed_at TEXT,
        finish_by_ms INTEGER,
        finished_at TEXT,
        output TEXT,
        exit_code INTEGER,
        error TEXT,
        duration_ms INTEGER
    );
    CREATE INDEX jobs_queued ON jobs (host, id) WHERE status = 'queued';
    CREATE INDEX jobs_open ON jobs (status) WHERE status IN ('queued', 'running');",
    // 3: alarm definitions (CloudWatch PutMetricAlarm JSON) and the state of each instance.
    "CREATE TABLE alarms (
        name TEXT PRIMARY KEY,
        definition TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE alarm_states (
        alarm TEXT NOT NULL,
        series TEXT NOT NULL,
        state TEXT NOT NULL,
        since_ms INTEGER NOT NULL,
        PRIMARY KEY (alarm, series)
    );",
    // 4: durable playbook runs: one journal row per step; tickets and deliveries hang on them.
    "CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        incident_id INTEGER NOT NULL REFERENCES incidents (id),
        kind TEXT NOT NULL,
        created_at TEXT NOT NULL,
        finished_at TEXT
    );
    CREATE INDEX runs_open ON runs (id) WHERE finished_at IS NULL;
    CREATE TABLE run_steps (
        run_id INTEGER NOT NULL REFERENCES runs (id),
        position INTEGER NOT NULL,
        name TEXT NOT NULL,
        channel TEXT NOT NULL,
        recipients TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        external_id TEXT,
        link TEXT,
        next_attempt_ms INTEGER NOT NULL DEFAULT 0,
        deadline_ms INTEGER NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (run_id, position)
    );
    CREATE TABLE tickets (
        incident_id INTEGER NOT NULL REFERENCES incidents (id),
        tracker TEXT NOT NULL,
        ticket_id TEXT NOT NULL,
        url TEXT NOT NULL,
        PRIMARY KEY (incident_id, tracker)
    );",
    // 5: the application tree, Appcodes on incidents, scoped tokens, escalation levels.
    "CREATE TABLE apps (
        appcode TEXT PRIMARY KEY,
        definition TEXT NOT NULL,
        retired INTEGER NOT NULL DEFAULT 0,
        updated_at TEXT NOT NULL
    );
    ALTER TABLE incidents ADD COLUMN appcode TEXT;
    ALTER TABLE incidents ADD COLUMN escalation_level INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX incidents_appcode ON incidents (appcode, id);
    ALTER TABLE tokens ADD COLUMN scope TEXT;",
    // 6: step claims (leases), recipients as JSON lists, web sessions, SNS statuses as
    // enum text with the reason apart. Addresses never contain `"`, so the list is built
    // by text replacement.
    r#"ALTER TABLE run_steps ADD COLUMN lease_owner TEXT;
    ALTER TABLE run_steps ADD COLUMN lease_until_ms INTEGER;
    UPDATE run_steps SET recipients = CASE WHEN recipients = '' THEN '[]'
        ELSE '["' || replace(recipients, ',', '","') || '"]' END;
    CREATE INDEX run_steps_pending ON run_steps (run_id, position) WHERE status = 'pending';
    CREATE INDEX jobs_incident ON jobs (incident_id, status);
    CREATE INDEX runs_incident ON runs (incident_id, id);
    ALTER TABLE jobs ADD COLUMN claim_within_ms INTEGER;
    CREATE TABLE sessions (
        id_hash TEXT PRIMARY KEY,
        principal TEXT NOT NULL,
        scope TEXT,
        csrf TEXT NOT NULL,
        expires_at TEXT NOT NULL
    );
    UPDATE sns_subscriptions SET detail = COALESCE(detail, trim(substr(status, 9))), status = 'refused'
        WHERE status LIKE 'refused:%';"#,
    // 7: the head of each unfinished run (its first pending step) carries when it may next
    // be claimed, and open incidents are indexed by escalation level and age: claiming,
    // "when is the next step due" and "which incidents escalate now" are index lookups,
    // not scans of everything pending or open.
    "ALTER TABLE run_steps ADD COLUMN due_ms INTEGER;
    UPDATE run_steps SET due_ms = MAX(next_attempt_ms, COALESCE(lease_until_ms, 0))
        WHERE status = 'pending'
          AND run_id IN (SELECT id FROM runs WHERE finished_at IS NULL)
          AND position = (SELECT MIN(p.position) FROM run_steps p
                          WHERE p.run_id = run_steps.run_id AND p.status = 'pending');
    CREATE INDEX run_steps_due ON run_steps (due_ms, run_id) WHERE due_ms IS NOT NULL;
    CREATE INDEX incidents_escalation ON incidents (escalation_level, opened_at) WHERE status = 'open';",
    // 8: an alarm instance's state keeps its reason, reason data and deciding value, so the
    // alarms list tells the same after a restart.
    "ALTER TABLE alarm_states ADD COLUMN reason TEXT;
    ALTER TABLE alarm_states ADD COLUMN reason_data TEXT;
    ALTER TABLE alarm_states ADD COLUMN value REAL;",
    // 9: a host only declared (bound by an import, never enrolled) has no enrollment time
    // and is not revoked; such rows were written enrolled and revoked at the binding. A
    // host was enrolled if its agent was ever given a token. SQLite cannot drop NOT NULL,
    // so the table is rebuilt.
    "CREATE TABLE hosts_new (
        name TEXT PRIMARY KEY,
        appcode TEXT,
        instance_id TEXT,
        enrolled_at TEXT,
        revoked_at TEXT,
        last_seen_at TEXT,
        agent_version TEXT,
        uptime_secs INTEGER,
        interval_secs INTEGER,
        collector TEXT,
        labels TEXT NOT NULL DEFAULT '{}',
        last_metrics TEXT
    );
    INSERT INTO hosts_new
        SELECT h.name, h.appcode, h.instance_id,
               CASE WHEN t.name IS NOT NULL THEN h.enrolled_at END,
               CASE WHEN t.name IS NOT NULL THEN h.revoked_at END,
               h.last_seen_at, h.agent_version, h.uptime_secs, h.interval_secs, h.collector,
               h.labels, h.last_metrics
        FROM hosts h LEFT JOIN tokens t ON t.name = 'host:' || h.name;
    DROP TABLE hosts;
    ALTER TABLE hosts_new RENAME TO hosts;
    CREATE INDEX hosts_instance ON hosts (instance_id);",
    // 10: alarm storms: an incident is an alarm's or a storm's; openings carry their storm
    // scope (counted over a window to detect a storm) and members name their storm.
    "ALTER TABLE incidents ADD COLUMN kind TEXT NOT NULL DEFAULT 'alarm';
    ALTER TABLE incidents ADD COLUMN storm_scope TEXT;
    ALTER TABLE incidents ADD COLUMN storm_id INTEGER;
    CREATE INDEX incidents_storm_scope ON incidents (storm_scope, opened_at)
        WHERE storm_scope IS NOT NULL AND storm_id IS NULL;
    CREATE INDEX incidents_storm_members ON incidents (storm_id, id) WHERE storm_id IS NOT NULL;",
    // 11: metric series' compressed chart history, in blocks (opaque bytes), so a restart
    // keeps the charts; old blocks are swept by their end.
    "CREATE TABLE series_blocks (
        series TEXT NOT NULL,
        start_ms INTEGER NOT NULL,
        end_ms INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (series, start_ms)
    );
    CREATE INDEX series_blocks_end ON series_blocks (end_ms);",
];

/// The schema version this vigil writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub(crate) fn apply(conn: &Connection) -> Result<()> {
    apply_up_to(conn, SCHEMA_VERSION)
}

/// Applies migrations up to `target` only: how tests build a database as an older vigil
/// left it.
pub(crate) fn apply_up_to(conn: &Connection, target: i64) -> Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = SCHEMA_VERSION;
    if version > known {
        return Err(StoreError::TooNew {
            found: version,
            known,
        });
    }
    for (index, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .take(target.clamp(0, known) as usize)
        .skip(version as usize)
    {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}
