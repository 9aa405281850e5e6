//! The PostgreSQL schema, versioned. Each entry moves the schema one version forward;
//! never edit a released entry, add one. Tables are created in the connection's current
//! schema (the first schema of its `search_path`).

use deadpool_postgres::Object;

use crate::{Result, StoreError};

const MIGRATIONS: &[&str] = &[
    // 1: everything the contract needs.
    "CREATE TABLE events (
        seq bigserial PRIMARY KEY,
        id text NOT NULL UNIQUE,
        endpoint text NOT NULL,
        received_at timestamptz NOT NULL,
        body text NOT NULL,
        processed boolean NOT NULL DEFAULT false
    );
    CREATE INDEX events_pending ON events (seq) WHERE NOT processed;

    CREATE SEQUENCE incident_key_seq;
    CREATE TABLE incidents (
        id bigserial PRIMARY KEY,
        key text NOT NULL UNIQUE,
        group_key text NOT NULL,
        status text NOT NULL,
        severity text NOT NULL,
        title text NOT NULL,
        count bigint NOT NULL,
        host text,
        appcode text,
        escalation_level integer NOT NULL DEFAULT 0,
        opened_at timestamptz NOT NULL,
        acknowledged_at timestamptz,
        resolved_at timestamptz,
        last_event_at timestamptz NOT NULL,
        facts jsonb NOT NULL
    );
    CREATE UNIQUE INDEX incidents_one_unresolved_per_group ON incidents (group_key)
        WHERE status <> 'resolved';
    CREATE INDEX incidents_status ON incidents (status, id);
    CREATE INDEX incidents_appcode ON incidents (appcode, id);

    CREATE TABLE timeline (
        id bigserial PRIMARY KEY,
        incident_id bigint NOT NULL REFERENCES incidents (id),
        at timestamptz NOT NULL,
        kind text NOT NULL,
        message text NOT NULL,
        event_id text
    );
    CREATE INDEX timeline_incident ON timeline (incident_id, id);

    CREATE TABLE tokens (
        id bigserial PRIMARY KEY,
        name text NOT NULL UNIQUE,
        hash text NOT NULL UNIQUE,
        role text NOT NULL,
        scope text,
        created_at timestamptz NOT NULL,
        revoked_at timestamptz
    );

    CREATE TABLE sessions (
        id_hash text PRIMARY KEY,
        principal text NOT NULL,
        scope text,
        csrf text NOT NULL,
        expires_at timestamptz NOT NULL
    );
    CREATE INDEX sessions_expiry ON sessions (expires_at);

    CREATE TABLE sns_subscriptions (
        id bigserial NOT NULL,
        message_id text PRIMARY KEY,
        topic_arn text NOT NULL,
        subscribe_url text NOT NULL,
        received_at timestamptz NOT NULL,
        status text NOT NULL,
        detail text
    );

    CREATE TABLE hosts (
        name text PRIMARY KEY,
        appcode text,
        instance_id text,
        enrolled_at timestamptz NOT NULL,
        revoked_at timestamptz,
        last_seen_at timestamptz,
        agent_version text,
        uptime_secs bigint,
        interval_secs bigint,
        collector jsonb,
        labels jsonb NOT NULL DEFAULT '{}',
        last_metrics text
    );
    CREATE INDEX hosts_instance ON hosts (instance_id);

    CREATE TABLE jobs (
        id bigserial PRIMARY KEY,
        host text NOT NULL,
        incident_id bigint REFERENCES incidents (id),
        probe text NOT NULL,
        args jsonb NOT NULL DEFAULT 'null',
        timeout_ms bigint NOT NULL,
        status text NOT NULL,
        created_at timestamptz NOT NULL,
        claim_by timestamptz NOT NULL,
        claim_within_ms bigint NOT NULL,
        claimed_at timestamptz,
        finish_by timestamptz,
        finished_at timestamptz,
        output text,
        exit_code integer,
        error text,
        duration_ms bigint
    );
    CREATE INDEX jobs_queued ON jobs (host, id) WHERE status = 'queued';
    CREATE INDEX jobs_open ON jobs (status) WHERE status IN ('queued', 'running');
    CREATE INDEX jobs_incident ON jobs (incident_id, id);

    CREATE TABLE alarms (
        name text PRIMARY KEY,
        definition text NOT NULL,
        updated_at timestamptz NOT NULL
    );
    CREATE TABLE alarm_states (
        alarm text NOT NULL,
        series text NOT NULL,
        state text NOT NULL,
        since timestamptz NOT NULL,
        PRIMARY KEY (alarm, series)
    );

    CREATE TABLE runs (
        id bigserial PRIMARY KEY,
        incident_id bigint NOT NULL REFERENCES incidents (id),
        kind text NOT NULL,
        created_at timestamptz NOT NULL,
        finished_at timestamptz
    );
    CREATE INDEX runs_open ON runs (id) WHERE finished_at IS NULL;
    CREATE INDEX runs_incident ON runs (incident_id, id);
    CREATE TABLE run_steps (
        run_id bigint NOT NULL REFERENCES runs (id),
        position bigint NOT NULL,
        name text NOT NULL,
        channel text NOT NULL,
        recipients text[] NOT NULL DEFAULT '{}',
        status text NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        last_error text,
        external_id text,
        link text,
        next_attempt_at timestamptz NOT NULL,
        deadline timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        lease_owner text,
        lease_until timestamptz,
        PRIMARY KEY (run_id, position)
    );
    CREATE INDEX run_steps_pending ON run_steps (run_id, position) WHERE status = 'pending';
    CREATE TABLE tickets (
        incident_id bigint NOT NULL REFERENCES incidents (id),
        tracker text NOT NULL,
        ticket_id text NOT NULL,
        url text NOT NULL,
        PRIMARY KEY (incident_id, tracker)
    );

    CREATE TABLE apps (
        appcode text PRIMARY KEY,
        definition text NOT NULL,
        retired boolean NOT NULL DEFAULT false,
        updated_at timestamptz NOT NULL
    );",
    // 2: the head of each open run (its first pending step) carries when it may next be
    // claimed, and open incidents are indexed by escalation level and age: claiming, "when
    // is the next step due" and "which incidents escalate now" are index lookups, not
    // scans of everything pending or open.
    "ALTER TABLE run_steps ADD COLUMN due_at timestamptz;
    UPDATE run_steps s SET due_at = GREATEST(s.next_attempt_at, COALESCE(s.lease_until, s.next_attempt_at))
    FROM runs r
    WHERE r.id = s.run_id AND r.finished_at IS NULL AND s.status = 'pending'
      AND s.position = (SELECT MIN(p.position) FROM run_steps p
                        WHERE p.run_id = s.run_id AND p.status = 'pending');
    CREATE INDEX run_steps_due ON run_steps (due_at, run_id) WHERE due_at IS NOT NULL;
    CREATE INDEX incidents_escalation ON incidents (escalation_level, opened_at) WHERE status = 'open';",
    // 3: an alarm instance's state keeps its reason, reason data and deciding value, so the
    // alarms list tells the same after a restart.
    "ALTER TABLE alarm_states ADD COLUMN reason text;
    ALTER TABLE alarm_states ADD COLUMN reason_data jsonb;
    ALTER TABLE alarm_states ADD COLUMN value double precision;",
    // 4: a host only declared (bound by an import, never enrolled) has no enrollment time
    // and is not revoked; such rows were written enrolled and revoked at the binding. A
    // host was enrolled if its agent was ever given a token.
    "ALTER TABLE hosts ALTER COLUMN enrolled_at DROP NOT NULL;
    UPDATE hosts SET enrolled_at = NULL, revoked_at = NULL
        WHERE NOT EXISTS (SELECT 1 FROM tokens t WHERE t.name = 'host:' || hosts.name);",
    // 5: alarm storms: an incident is an alarm's or a storm's; openings carry their storm
    // scope (counted over a window to detect a storm) and members name their storm.
    "ALTER TABLE incidents ADD COLUMN kind text NOT NULL DEFAULT 'alarm';
    ALTER TABLE incidents ADD COLUMN storm_scope text;
    ALTER TABLE incidents ADD COLUMN storm_id bigint;
    CREATE INDEX incidents_storm_scope ON incidents (storm_scope, opened_at)
        WHERE storm_scope IS NOT NULL AND storm_id IS NULL;
    CREATE INDEX incidents_storm_members ON incidents (storm_id, id) WHERE storm_id IS NOT NULL;",
    // 6: metric series' compressed chart history, in blocks (opaque bytes), so a restart
    // keeps the charts; old blocks are swept by their end. Series names sort by their bytes
    // (as in SQLite), whatever the database's collation.
    "CREATE TABLE series_blocks (
        series text COLLATE \"C\" NOT NULL,
        start_ms bigint NOT NULL,
        end_ms bigint NOT NULL,
        data bytea NOT NULL,
        PRIMARY KEY (series, start_ms)
    );
    CREATE INDEX series_blocks_end ON series_blocks (end_ms);",
];

/// The schema version this vigil knows.
pub(crate) const KNOWN: i64 = MIGRATIONS.len() as i64;

/// Brings the schema up to [`KNOWN`] in one transaction, under an advisory lock scoped to
/// the connection's schema so servers starting together apply each migration once.
pub(crate) async fn apply(client: &mut Object, shown_url: &str) -> Result<()> {
    let tx = client.transaction().await?;
    let schema: Option<String> = tx
        .query_one("SELECT current_schema()", &[])
        .await?
        .try_get(0)?;
    let Some(schema) = schema else {
        return Err(StoreError::Connect {
            url: shown_url.to_string(),
            reason: "no schema of the connection's search_path exists; create it first".to_string(),
        });
    };
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('vigil migrations ' || $1::text))",
        &[&schema],
    )
    .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_version (
            version bigint PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )
    .await?;
    let found: i64 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
        .await?
        .try_get(0)?;
    if found > KNOWN {
        return Err(StoreError::TooNew {
            found,
            known: KNOWN,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&(index as i64 + 1)],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
