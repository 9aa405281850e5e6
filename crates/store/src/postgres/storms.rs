//! Alarm storms inside the processing transaction: an opening joins its scope's unresolved
//! storm, or forms one when its scope has opened more than the threshold within the
//! window; a member's recovery resolves the storm once no member is left unresolved.
//!
//! Processing holds the advisory lock of the scope's storm group (taken with the batch's
//! groups), so one server at a time decides a scope's storm: two never form two storms,
//! and an opening counted by one is seen by the next. A manual resolve takes no advisory
//! lock; the storm's row lock orders it against processing instead.

use std::collections::HashMap;
use std::sync::LazyLock;

use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use vigil_core::{IncidentStatus, ProbeTally, StormMember, TimelineKind};

use super::incidents::RESOLVE;
use super::{after, before, exec, known, query, query_one, query_opt, unsigned, Journal};
use crate::{AlarmUpdate, NewRun, Result, StoreError, StormPlan, Timestamp};

/// Why a member's own unstarted messages were dropped.
fn superseded_reason(storm_key: &str) -> String {
    format!("reported with storm {storm_key}")
}

/// The scope's unresolved storm, locked: a storm resolved meanwhile (its last member
/// resolved by hand) is seen as resolved once that commits, and is not joined.
const UNRESOLVED_STORM: &str = "SELECT id, key, count FROM incidents
     WHERE group_key = $1 AND status <> 'resolved'
     FOR NO KEY UPDATE";

/// The scope's unresolved openings of the window that no storm has gathered.
const RECENT: &str = "SELECT COUNT(*) FROM incidents
     WHERE storm_scope = $1 AND storm_id IS NULL AND kind = 'alarm'
       AND status <> 'resolved' AND opened_at >= $2";

/// The storm incident, keyed from the incidents' own sequence. It shows the alarm that
/// tipped it (its facts without the host) and counts the openings it was formed for.
const FORM: &str = "INSERT INTO incidents (key, group_key, status, severity, title, count, host,
       appcode, opened_at, last_event_at, facts, kind, storm_scope)
     VALUES ('INC-' || nextval('incident_key_seq'), $1, 'open', $2, $3, $4, NULL, $5, $6, $6,
       $7, 'storm', $8)
     RETURNING id, key";

/// Gathers the scope's recent unresolved openings into storm `$1`, in one statement: each
/// member names the storm; a member's opening run none of whose steps has been tried is
/// dropped (the storm tells instead: its pending steps are skipped and the run finished);
/// each member's timeline says which. Answers every member and whether it had already been
/// reported on its own. (Its parts share one snapshot, which does not show the members' new
/// `storm_id`; none needs it: after `m`, only runs and steps are read.)
const GATHER: &str = "WITH m AS (
       UPDATE incidents SET storm_id = $1
       WHERE storm_scope = $2 AND storm_id IS NULL AND kind = 'alarm'
         AND status <> 'resolved' AND opened_at >= $3
       RETURNING id
     ), started AS (
       SELECT DISTINCT r.incident_id AS id FROM runs r JOIN run_steps s ON s.run_id = r.id
       WHERE r.incident_id IN (SELECT id FROM m) AND r.kind = 'opened'
         AND (s.status <> 'pending' OR s.attempts > 0 OR s.lease_owner IS NOT NULL)
     ), quiet AS (
       SELECT id FROM m WHERE id NOT IN (SELECT id FROM started)
     ), skipped AS (
       UPDATE run_steps SET status = 'skipped', last_error = $4, due_at = NULL, updated_at = $5
       WHERE status = 'pending'
         AND run_id IN (SELECT id FROM runs
                        WHERE incident_id IN (SELECT id FROM quiet) AND kind = 'opened')
     ), finished AS (
       UPDATE runs SET finished_at = $5
       WHERE incident_id IN (SELECT id FROM quiet) AND kind = 'opened' AND finished_at IS NULL
     ), notes AS (
       INSERT INTO timeline (incident_id, at, kind, message)
       SELECT m.id, $5, 'note', CASE WHEN s.id IS NULL THEN $6::text ELSE $7::text END
       FROM m LEFT JOIN started s ON s.id = m.id
       ORDER BY m.id
     )
     SELECT m.id, s.id IS NOT NULL AS alone FROM m LEFT JOIN started s ON s.id = m.id
     ORDER BY m.id";

/// The formed storm, with its opening entry and run. Its count becomes the members actually
/// gathered: one resolved by hand since they were counted is not among them.
static FORMED: LazyLock<String> = LazyLock::new(|| {
    Journal::sql(
        "i AS (UPDATE incidents SET count = $2 WHERE id = $1 RETURNING id, key)",
        2,
    )
});

/// New members name their storm, each with the note saying so.
const JOIN: &str = "WITH m AS (
       UPDATE incidents SET storm_id = $1 WHERE id = ANY($2) RETURNING id
     )
     INSERT INTO timeline (incident_id, at, kind, message)
     SELECT id, $3, 'note', $4 FROM m ORDER BY id";

/// The storm counts its new members, with their entries and any digest.
static COUNT: LazyLock<String> = LazyLock::new(|| {
    Journal::sql(
        "i AS (UPDATE incidents SET count = $2, last_event_at = $3 WHERE id = $1
           RETURNING id, key)",
        3,
    )
});

/// What one processing batch knows of the storms it touches. It holds their groups'
/// advisory locks and their rows' locks from the first read to its commit, so a storm read
/// once stays as read; the members joining one are written together by [`Self::flush`],
/// which must run before anything in the batch reads storm membership (a recovery) and
/// before the batch commits.
#[derive(Default)]
pub(crate) struct StormBatch {
    /// By storm group key: the scope's unresolved storm.
    storms: HashMap<String, Joining>,
}

/// An unresolved storm, and what the batch has added to it so far.
struct Joining {
    id: i64,
    key: String,
    /// Its members, counting those joining in this batch.
    count: i64,
    /// The batch has already asked whether a digest should wait for the next member.
    digest_decided: bool,
    joining: Vec<i64>,
    journal: JoiningJournal,
}

#[derive(Default)]
struct JoiningJournal {
    entries: Vec<String>,
    digest: Option<NewRun>,
}

impl StormBatch {
    /// Writes the members that joined storms since the last flush, and the storms' counts.
    pub(crate) async fn flush<C: GenericClient>(
        &mut self,
        client: &C,
        now: Timestamp,
    ) -> Result<()> {
        for storm in self.storms.values_mut() {
            if storm.joining.is_empty() {
                continue;
            }
            let note = format!(
                "part of storm {}: reported there, not on its own",
                storm.key
            );
            exec(client, JOIN, &[&storm.id, &storm.joining, &now, &note]).await?;
            storm.joining.clear();
            let pending = std::mem::take(&mut storm.journal);
            let mut journal = Journal::default();
            for message in pending.entries {
                journal.entry(TimelineKind::Repeat, message, None);
            }
            if let Some(run) = &pending.digest {
                journal.run(run);
            }
            let mut params: Vec<&(dyn ToSql + Sync)> = vec![&storm.id, &storm.count, &now];
            params.extend(journal.params(&now));
            query_one(client, &COUNT, &params).await?;
        }
        Ok(())
    }

    /// Forgets a storm that resolved.
    fn resolved(&mut self, storm_id: i64) {
        self.storms.retain(|_, storm| storm.id != storm_id);
    }
}

/// Decides the storm of a just-inserted opening (`id`, `key`). Returns the storm's key
/// when the incident is reported with one: its own outward run is then not journaled.
pub(crate) async fn on_opening<C: GenericClient>(
    client: &C,
    batch: &mut StormBatch,
    id: i64,
    key: &str,
    plan: &StormPlan,
    update: &AlarmUpdate,
    now: Timestamp,
) -> Result<Option<String>> {
    let storm_group = plan.group_key();
    if !batch.storms.contains_key(&storm_group) {
        if let Some(row) = query_opt(client, UNRESOLVED_STORM, &[&storm_group]).await? {
            batch.storms.insert(
                storm_group.clone(),
                Joining {
                    id: row.try_get("id")?,
                    key: row.try_get("key")?,
                    count: row.try_get("count")?,
                    digest_decided: false,
                    joining: Vec::new(),
                    journal: JoiningJournal::default(),
                },
            );
        }
    }
    if let Some(storm) = batch.storms.get_mut(&storm_group) {
        if !storm.digest_decided {
            storm.digest_decided = true;
            if let Some(digest) = &plan.digest {
                storm.journal.digest =
                    plan_digest(client, storm.id, digest, plan.digest_interval, now).await?;
            }
        }
        storm.count += 1;
        storm.joining.push(id);
        if vigil_core::repeat_is_noted(storm.count.max(0) as u64) {
            let host = update.facts.host.as_deref().unwrap_or("no host");
            storm.journal.entries.push(format!(
                "member #{}: {key} — {} on {host}",
                storm.count, update.facts.alarm_name
            ));
        }
        return Ok(Some(storm.key.clone()));
    }
    let since = before(now, plan.window)?;
    let recent: i64 = query_one(client, RECENT, &[&plan.scope, &since])
        .await?
        .try_get(0)?;
    if recent <= i64::from(plan.threshold) {
        return Ok(None);
    }
    let (storm_id, storm_key, members) = form(client, plan, update, recent, since, now).await?;
    batch.storms.insert(
        storm_group,
        Joining {
            id: storm_id,
            key: storm_key.clone(),
            count: members,
            digest_decided: false,
            joining: Vec::new(),
            journal: JoiningJournal::default(),
        },
    );
    Ok(Some(storm_key))
}

/// Opens the storm incident and gathers the scope's recent unresolved openings into it;
/// the storm's row id, key and members.
async fn form<C: GenericClient>(
    client: &C,
    plan: &StormPlan,
    update: &AlarmUpdate,
    recent: i64,
    since: Timestamp,
    now: Timestamp,
) -> Result<(i64, String, i64)> {
    // The storm shows the alarm that tipped it, without that alarm's host.
    let mut facts = update.facts.clone();
    facts.host = None;
    facts.instance_id = None;
    let facts_json = serde_json::to_value(&facts)
        .map_err(|e| StoreError::Corrupt(format!("alarm facts of storm {}: {e}", plan.scope)))?;
    let group_key = plan.group_key();
    let severity = update.severity.as_str();
    let row = query_one(
        client,
        FORM,
        &[
            &group_key,
            &severity,
            &plan.title,
            &recent,
            &facts.appcode,
            &now,
            &facts_json,
            &plan.scope,
        ],
    )
    .await?;
    let storm_id: i64 = row.try_get("id")?;
    let storm_key: String = row.try_get("key")?;
    let reported_there = format!("part of storm {storm_key}: reported there, not on its own");
    let reported_alone =
        format!("part of storm {storm_key} (it had already been reported on its own)");
    let gathered = query(
        client,
        GATHER,
        &[
            &storm_id,
            &plan.scope,
            &since,
            &superseded_reason(&storm_key),
            &now,
            &reported_there,
            &reported_alone,
        ],
    )
    .await?;
    let members = i64::try_from(gathered.len()).unwrap_or(i64::MAX);
    let mut alone = 0;
    for row in &gathered {
        if row.try_get::<_, bool>("alone")? {
            alone += 1;
        }
    }
    let window = plan.window.as_secs();
    let mut message = format!(
        "storm: {members} incidents of this scope opened within {window} s (more than {}); \
         they are reported here together, and later ones join while it is unresolved",
        plan.threshold
    );
    if alone > 0 {
        message.push_str(&format!(
            "; {alone} of them had already been reported on their own"
        ));
    }
    let mut journal = Journal::default();
    journal.entry(TimelineKind::Opened, message, None);
    if let Some(run) = &plan.on_form {
        journal.run(run);
    }
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&storm_id, &members];
    params.extend(journal.params(&now));
    query_one(client, &FORMED, &params).await?;
    Ok((storm_id, storm_key, members))
}

/// The digest to journal as a member joins, so that one waits for the storm's next
/// message: none while one is waiting, and it goes no sooner than `interval` after the
/// storm's previous run.
async fn plan_digest<C: GenericClient>(
    client: &C,
    storm_id: i64,
    digest: &NewRun,
    interval: std::time::Duration,
    now: Timestamp,
) -> Result<Option<NewRun>> {
    let row = query_one(
        client,
        "SELECT EXISTS (SELECT 1 FROM runs
                         WHERE incident_id = $1 AND kind = 'digest' AND finished_at IS NULL)
                 AS waiting,
               (SELECT MAX(created_at) FROM runs WHERE incident_id = $1) AS previous",
        &[&storm_id],
    )
    .await?;
    if row.try_get::<_, bool>("waiting")? {
        return Ok(None);
    }
    let previous: Option<Timestamp> = row.try_get("previous")?;
    let not_before = match previous {
        Some(previous) => after(previous, interval)?.max(now),
        None => now,
    };
    let mut run = digest.clone();
    run.not_before = Some(not_before);
    Ok(Some(run))
}

/// After a member resolved: the storm resolves when none of its members is left open.
/// Returns the storm's key when it resolved.
pub(crate) async fn on_member_resolved<C: GenericClient>(
    client: &C,
    batch: &mut StormBatch,
    member: i64,
    on_resolve: Option<&NewRun>,
    now: Timestamp,
) -> Result<Option<String>> {
    batch.flush(client, now).await?;
    // The storm's row lock orders two members resolving at once (by processing and by
    // hand): the second counts after the first committed, so one of them sees the last.
    let Some(row) = query_opt(
        client,
        "SELECT s.id, s.key FROM incidents m JOIN incidents s ON s.id = m.storm_id
         WHERE m.id = $1 AND s.status <> 'resolved'
         FOR NO KEY UPDATE OF s",
        &[&member],
    )
    .await?
    else {
        return Ok(None);
    };
    let storm_id: i64 = row.try_get("id")?;
    let storm_key: String = row.try_get("key")?;
    let row = query_one(
        client,
        "SELECT COUNT(*) FILTER (WHERE status <> 'resolved') AS unresolved, COUNT(*) AS members
         FROM incidents WHERE storm_id = $1",
        &[&storm_id],
    )
    .await?;
    let unresolved: i64 = row.try_get("unresolved")?;
    let all: i64 = row.try_get("members")?;
    if unresolved > 0 {
        return Ok(None);
    }
    let mut journal = Journal::default();
    journal.entry(
        TimelineKind::Resolved,
        format!("resolved: all {all} members recovered"),
        None,
    );
    if let Some(run) = on_resolve {
        journal.run(run);
    }
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&storm_id, &now];
    params.extend(journal.params(&now));
    query_one(client, &RESOLVE, &params).await?;
    batch.resolved(storm_id);
    Ok(Some(storm_key))
}

/// The members of the storm `storm_key`, oldest first, with how their probes ended; none
/// when `storm_key` is not a storm's.
pub(crate) async fn members<C: GenericClient>(
    client: &C,
    storm_key: &str,
) -> Result<Vec<StormMember>> {
    let rows = query(
        client,
        "SELECT i.key, i.host, i.facts->>'alarm_name' AS alarm_name, i.status, i.opened_at,
           COUNT(j.id) FILTER (WHERE j.status IN ('queued', 'running')) AS pending,
           COUNT(j.id) FILTER (WHERE j.status IN ('done', 'failed', 'refused', 'timed_out'))
             AS answered,
           COUNT(j.id) FILTER (WHERE j.status = 'expired') AS unreachable
         FROM incidents s JOIN incidents i ON i.storm_id = s.id
           LEFT JOIN jobs j ON j.incident_id = i.id
         WHERE s.key = $1 AND s.kind = 'storm'
         GROUP BY i.id ORDER BY i.id",
        &[&storm_key],
    )
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let key: String = row.try_get("key")?;
        let what = format!("storm member {key}");
        let status: String = row.try_get("status")?;
        let alarm_name: Option<String> = row.try_get("alarm_name")?;
        out.push(StormMember {
            status: known(&status, IncidentStatus::parse, &what, "status")?,
            opened_at: row.try_get("opened_at")?,
            probes: ProbeTally {
                pending: unsigned(row.try_get("pending")?, &what, "pending probes")?,
                answered: unsigned(row.try_get("answered")?, &what, "answered probes")?,
                unreachable: unsigned(row.try_get("unreachable")?, &what, "unreachable probes")?,
            },
            alarm_name: alarm_name.unwrap_or_default(),
            host: row.try_get("host")?,
            key,
        });
    }
    Ok(out)
}
