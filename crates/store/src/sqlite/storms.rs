//! Alarm storms inside the processing transaction: an opening joins its scope's unresolved
//! storm, or forms one when its scope has opened more than the threshold within the
//! window; a member's recovery resolves the storm once no member is left unresolved.

use rusqlite::{params, OptionalExtension, Transaction};
use vigil_core::{IncidentStatus, ProbeTally, StormMember, TimelineKind};

use super::incidents::{add_timeline, journal_run};
use super::{json_text, one, parse_enum, parse_time, text};
use crate::{AlarmUpdate, NewRun, Result, StormPlan, Timestamp};

/// Why a member's own unstarted messages were dropped.
fn superseded_reason(storm_key: &str) -> String {
    format!("reported with storm {storm_key}")
}

/// Decides the storm of a just-inserted opening (`id`, `key`). Returns the storm's key
/// when the incident is reported with one: its own outward run is then not journaled.
pub(super) fn on_opening(
    tx: &Transaction<'_>,
    id: i64,
    key: &str,
    plan: &StormPlan,
    update: &AlarmUpdate,
    now: Timestamp,
) -> Result<Option<String>> {
    let storm_group = plan.group_key();
    let open: Option<(i64, String, i64)> = tx
        .prepare_cached(
            "SELECT id, key, count FROM incidents WHERE group_key = ?1 AND status != 'resolved'",
        )?
        .query_row([&storm_group], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    if let Some((storm_id, storm_key, count)) = open {
        join(tx, storm_id, &storm_key, id, key, count + 1, update, now)?;
        if let Some(digest) = &plan.digest {
            plan_digest(tx, storm_id, digest, plan.digest_interval, now)?;
        }
        return Ok(Some(storm_key));
    }
    let since = text(now - chrono::Duration::from_std(plan.window).unwrap_or_default());
    let recent: i64 = tx
        .prepare_cached(
            "SELECT COUNT(*) FROM incidents
             WHERE storm_scope = ?1 AND storm_id IS NULL AND kind = 'alarm'
               AND status != 'resolved' AND opened_at >= ?2",
        )?
        .query_row(params![plan.scope, since], |r| r.get(0))?;
    if recent <= i64::from(plan.threshold) {
        return Ok(None);
    }
    let storm_key = form(tx, plan, update, recent, &since, now)?;
    Ok(Some(storm_key))
}

/// Opens the storm incident and gathers the scope's recent unresolved openings into it.
fn form(
    tx: &Transaction<'_>,
    plan: &StormPlan,
    update: &AlarmUpdate,
    members: i64,
    since: &str,
    now: Timestamp,
) -> Result<String> {
    let storm_id: i64 = one(
        tx,
        "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'incidents'), 0) + 1",
        [],
        |r| r.get(0),
    )?;
    let storm_key = format!("INC-{storm_id}");
    // The storm shows the alarm that tipped it, without that alarm's host.
    let mut facts = update.facts.clone();
    facts.host = None;
    facts.instance_id = None;
    let stamp = text(now);
    tx.prepare_cached(
        "INSERT INTO incidents (id, key, group_key, status, severity, title, count, host, opened_at,
           last_event_at, facts, appcode, kind, storm_scope)
         VALUES (?1, ?2, ?3, 'open', ?4, ?5, ?6, NULL, ?7, ?7, ?8, ?9, 'storm', ?10)",
    )?
    .execute(params![
        storm_id,
        storm_key,
        plan.group_key(),
        update.severity.as_str(),
        plan.title,
        members,
        stamp,
        json_text(&facts, "alarm facts")?,
        facts.appcode,
        plan.scope
    ])?;
    let ids: Vec<i64> = tx
        .prepare_cached(
            "SELECT id FROM incidents
             WHERE storm_scope = ?1 AND storm_id IS NULL AND kind = 'alarm'
               AND status != 'resolved' AND opened_at >= ?2
             ORDER BY id",
        )?
        .query_map(params![plan.scope, since], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut reported_alone = 0;
    for member in ids {
        exec_member(tx, member, storm_id)?;
        let superseded = supersede_unstarted(tx, member, &storm_key, now)?;
        let message = if superseded {
            format!("part of storm {storm_key}: reported there, not on its own")
        } else {
            reported_alone += 1;
            format!("part of storm {storm_key} (it had already been reported on its own)")
        };
        add_timeline(tx, member, now, TimelineKind::Note, &message, None)?;
    }
    let window = plan.window.as_secs();
    let mut message = format!(
        "storm: {members} incidents of this scope opened within {window} s (more than {}); \
         they are reported here together, and later ones join while it is unresolved",
        plan.threshold
    );
    if reported_alone > 0 {
        message.push_str(&format!(
            "; {reported_alone} of them had already been reported on their own"
        ));
    }
    add_timeline(tx, storm_id, now, TimelineKind::Opened, &message, None)?;
    if let Some(run) = &plan.on_form {
        journal_run(tx, storm_id, run, now)?;
    }
    Ok(storm_key)
}

fn exec_member(tx: &Transaction<'_>, member: i64, storm: i64) -> Result<()> {
    tx.prepare_cached("UPDATE incidents SET storm_id = ?2 WHERE id = ?1")?
        .execute(params![member, storm])?;
    Ok(())
}

/// Drops a member's opening run if none of its steps has been tried: the storm tells
/// instead. Returns whether it was dropped (or there was none).
fn supersede_unstarted(
    tx: &Transaction<'_>,
    member: i64,
    storm_key: &str,
    now: Timestamp,
) -> Result<bool> {
    let started: i64 = tx
        .prepare_cached(
            "SELECT COUNT(*) FROM runs r JOIN run_steps s ON s.run_id = r.id
             WHERE r.incident_id = ?1 AND r.kind = 'opened'
               AND (s.status != 'pending' OR s.attempts > 0 OR s.lease_owner IS NOT NULL)",
        )?
        .query_row([member], |r| r.get(0))?;
    if started > 0 {
        return Ok(false);
    }
    let stamp = text(now);
    tx.prepare_cached(
        "UPDATE run_steps SET status = 'skipped', last_error = ?2, due_ms = NULL, updated_at = ?3
         WHERE status = 'pending'
           AND run_id IN (SELECT id FROM runs WHERE incident_id = ?1 AND kind = 'opened')",
    )?
    .execute(params![member, superseded_reason(storm_key), stamp])?;
    tx.prepare_cached(
        "UPDATE runs SET finished_at = ?2
         WHERE incident_id = ?1 AND kind = 'opened' AND finished_at IS NULL",
    )?
    .execute(params![member, stamp])?;
    Ok(true)
}

/// A new opening joins the scope's unresolved storm.
#[allow(clippy::too_many_arguments)]
fn join(
    tx: &Transaction<'_>,
    storm_id: i64,
    storm_key: &str,
    member: i64,
    member_key: &str,
    count: i64,
    update: &AlarmUpdate,
    now: Timestamp,
) -> Result<()> {
    exec_member(tx, member, storm_id)?;
    tx.prepare_cached("UPDATE incidents SET count = ?2, last_event_at = ?3 WHERE id = ?1")?
        .execute(params![storm_id, count, text(now)])?;
    add_timeline(
        tx,
        member,
        now,
        TimelineKind::Note,
        &format!("part of storm {storm_key}: reported there, not on its own"),
        None,
    )?;
    if vigil_core::repeat_is_noted(count.max(0) as u64) {
        let host = update.facts.host.as_deref().unwrap_or("no host");
        add_timeline(
            tx,
            storm_id,
            now,
            TimelineKind::Repeat,
            &format!(
                "member #{count}: {member_key} — {} on {host}",
                update.facts.alarm_name
            ),
            None,
        )?;
    }
    Ok(())
}

/// Makes sure a digest waits for the storm's next message: none is journaled while one is
/// waiting, and it goes no sooner than `interval` after the storm's previous run.
fn plan_digest(
    tx: &Transaction<'_>,
    storm_id: i64,
    digest: &NewRun,
    interval: std::time::Duration,
    now: Timestamp,
) -> Result<()> {
    let waiting: i64 = tx
        .prepare_cached(
            "SELECT COUNT(*) FROM runs WHERE incident_id = ?1 AND kind = 'digest' AND finished_at IS NULL",
        )?
        .query_row([storm_id], |r| r.get(0))?;
    if waiting > 0 {
        return Ok(());
    }
    let previous: Option<String> = tx
        .prepare_cached("SELECT MAX(created_at) FROM runs WHERE incident_id = ?1")?
        .query_row([storm_id], |r| r.get(0))?;
    let previous = match previous {
        Some(at) => Some(parse_time(&at, || {
            format!("storm {storm_id}: run created_at")
        })?),
        None => None,
    };
    let interval = chrono::Duration::from_std(interval).unwrap_or_default();
    let not_before = previous.map_or(now, |p| (p + interval).max(now));
    let mut run = digest.clone();
    run.not_before = Some(not_before);
    journal_run(tx, storm_id, &run, now)
}

/// After a member resolved: the storm resolves when none of its members is left open.
pub(super) fn on_member_resolved(
    tx: &Transaction<'_>,
    member: i64,
    on_resolve: Option<&NewRun>,
    now: Timestamp,
) -> Result<Option<String>> {
    let storm: Option<(i64, String, String)> = tx
        .prepare_cached(
            "SELECT s.id, s.key, s.status FROM incidents m JOIN incidents s ON s.id = m.storm_id
             WHERE m.id = ?1",
        )?
        .query_row([member], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((storm_id, storm_key, status)) = storm else {
        return Ok(None);
    };
    if status == IncidentStatus::Resolved.as_str() {
        return Ok(None);
    }
    let (open, all): (i64, i64) = tx
        .prepare_cached(
            "SELECT COALESCE(SUM(status != 'resolved'), 0), COUNT(*) FROM incidents WHERE storm_id = ?1",
        )?
        .query_row([storm_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    if open > 0 {
        return Ok(None);
    }
    let stamp = text(now);
    tx.prepare_cached(
        "UPDATE incidents SET status = 'resolved', resolved_at = ?2, last_event_at = ?2 WHERE id = ?1",
    )?
    .execute(params![storm_id, stamp])?;
    add_timeline(
        tx,
        storm_id,
        now,
        TimelineKind::Resolved,
        &format!("resolved: all {all} members recovered"),
        None,
    )?;
    if let Some(run) = on_resolve {
        journal_run(tx, storm_id, run, now)?;
    }
    Ok(Some(storm_key))
}

/// A storm's members, oldest first, with how their probes ended.
pub(super) fn members(tx: &Transaction<'_>, storm_id: i64) -> Result<Vec<StormMember>> {
    let mut stmt = tx.prepare_cached(
        "SELECT i.key, i.host, json_extract(i.facts, '$.alarm_name'), i.status, i.opened_at,
           COALESCE(SUM(j.status IN ('queued', 'running')), 0),
           COALESCE(SUM(j.status IN ('done', 'failed', 'refused', 'timed_out')), 0),
           COALESCE(SUM(j.status = 'expired'), 0)
         FROM incidents i LEFT JOIN jobs j ON j.incident_id = i.id
         WHERE i.storm_id = ?1 GROUP BY i.id ORDER BY i.id",
    )?;
    let rows = stmt.query_map([storm_id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Option<String>>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, i64>(5)?,
            r.get::<_, i64>(6)?,
            r.get::<_, i64>(7)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (key, host, alarm_name, status, opened_at, pending, answered, unreachable) = row?;
        let what = || format!("storm member {key}");
        out.push(StormMember {
            status: parse_enum(&status, IncidentStatus::parse, what)?,
            opened_at: parse_time(&opened_at, what)?,
            probes: ProbeTally {
                pending: pending.clamp(0, u32::MAX as i64) as u32,
                answered: answered.clamp(0, u32::MAX as i64) as u32,
                unreachable: unreachable.clamp(0, u32::MAX as i64) as u32,
            },
            alarm_name: alarm_name.unwrap_or_default(),
            host,
            key,
        });
    }
    Ok(out)
}
