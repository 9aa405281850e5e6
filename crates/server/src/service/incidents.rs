//! Incidents: the list with its filters, one incident with its tickets and deliveries,
//! and acknowledging or resolving by hand.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vigil_core::{Incident, IncidentKind, IncidentStatus, Severity, StormFindings};
use vigil_store::{IncidentFilter, ManualChange, RunKind, RunStep, StoreError, TicketRecord, Work};

use super::{given, ServiceError};
use crate::access::{Denied, Principal};
use crate::metrics::labels;
use crate::{now, AppState};

/// Most incidents one list call returns.
pub const MAX_LIST: usize = 1000;
/// Incidents one list call returns when the caller names no limit.
pub const DEFAULT_LIST: usize = 200;

/// Which incidents by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatusFilter {
    #[default]
    All,
    /// Open or acknowledged.
    Unresolved,
    Open,
    Acknowledged,
    Resolved,
}

/// `?status=&severity=&appcode=&host=&q=&kind=&limit=`: every filter optional.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct IncidentQuery {
    #[serde(default)]
    #[param(inline)]
    pub status: StatusFilter,
    pub severity: Option<Severity>,
    /// Exactly this Appcode (case does not matter).
    pub appcode: Option<String>,
    /// Host names containing this text (case does not matter).
    pub host: Option<String>,
    /// Text in the key, title, alarm name, host, reason or description.
    pub q: Option<String>,
    /// `storm` for storms only, `alarm` for alarms' incidents only.
    pub kind: Option<IncidentKind>,
    /// 1 to 1000; 200 when not given.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// Incidents a filtered list looks through, newest first, when a filter the store cannot
/// apply (severity, host, text, unresolved) narrows the answer.
const SCAN: usize = 1000;

fn no_incident(key: &str) -> impl FnOnce() -> String + '_ {
    move || format!("incident with key `{key}`")
}

/// The incidents `who` may see that match `query`, newest first.
pub async fn list(
    state: &AppState,
    who: &Principal,
    query: &IncidentQuery,
) -> Result<Vec<Incident>, ServiceError> {
    let limit = match query.limit {
        None => DEFAULT_LIST,
        Some(n) if (1..=MAX_LIST).contains(&n) => n,
        Some(n) => {
            return Err(ServiceError::Invalid(format!(
                "limit {n} is outside 1..={MAX_LIST}"
            )))
        }
    };
    let mut appcodes = who.appcodes(&state.ownership);
    if let Some(wanted) = given(query.appcode.as_deref()) {
        let wanted = canonical_appcode(state, wanted);
        appcodes = Some(match appcodes {
            None => vec![wanted],
            Some(visible) => visible.into_iter().filter(|c| *c == wanted).collect(),
        });
    }
    let status = match query.status {
        StatusFilter::Open => Some(IncidentStatus::Open),
        StatusFilter::Acknowledged => Some(IncidentStatus::Acknowledged),
        StatusFilter::Resolved => Some(IncidentStatus::Resolved),
        StatusFilter::All | StatusFilter::Unresolved => None,
    };
    let folded = |v: &Option<String>| given(v.as_deref()).map(str::to_lowercase);
    let (host, text) = (folded(&query.host), folded(&query.q));
    let narrowed = query.status == StatusFilter::Unresolved
        || query.severity.is_some()
        || host.is_some()
        || text.is_some();
    let filter = IncidentFilter {
        status,
        limit: if narrowed { SCAN } else { limit },
        appcodes,
        kind: query.kind,
    };
    let contains = |field: &str, needle: &str| field.to_lowercase().contains(needle);
    let incidents = state.store.list_incidents(filter).await?;
    Ok(incidents
        .into_iter()
        .filter(|i| {
            query.status != StatusFilter::Unresolved || i.status != IncidentStatus::Resolved
        })
        .filter(|i| query.severity.is_none_or(|s| i.severity == s))
        .filter(|i| {
            host.as_deref().is_none_or(|h| {
                i.alarm
                    .host
                    .as_deref()
                    .is_some_and(|name| contains(name, h))
            })
        })
        .filter(|i| {
            text.as_deref().is_none_or(|t| {
                [
                    i.key.as_str(),
                    i.title.as_str(),
                    i.alarm.alarm_name.as_str(),
                    i.alarm.host.as_deref().unwrap_or_default(),
                    i.alarm.reason.as_deref().unwrap_or_default(),
                    i.alarm.description.as_deref().unwrap_or_default(),
                ]
                .iter()
                .any(|field| contains(field, t))
            })
        })
        .take(limit)
        .collect())
}

/// The tree's spelling of an Appcode typed in any case; as given when the tree has none.
fn canonical_appcode(state: &AppState, typed: &str) -> String {
    state
        .ownership
        .read()
        .tree
        .nodes()
        .into_iter()
        .map(|n| n.appcode.to_string())
        .find(|code| code.eq_ignore_ascii_case(typed))
        .unwrap_or_else(|| typed.to_string())
}

/// One incident with its timeline, the external tickets it opened and the delivery log of
/// its notifications.
#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentDetail {
    #[serde(flatten)]
    pub incident: Incident,
    pub tickets: Vec<TicketRecord>,
    pub deliveries: Vec<RunStep>,
    /// For a storm: what its members' probes found, host by host, and what that suggests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub findings: Option<Findings>,
}

/// What a storm's members' probes found.
#[derive(Debug, Serialize, ToSchema)]
pub struct Findings {
    #[serde(flatten)]
    pub counts: StormFindings,
    /// The counts in a sentence, with what they suggest ("probably the network").
    pub summary: String,
}

pub async fn detail(
    state: &AppState,
    who: &Principal,
    key: &str,
) -> Result<IncidentDetail, ServiceError> {
    let incident = state
        .store
        .incident(key)
        .await?
        .ok_or_else(|| Denied::Hidden(no_incident(key)()))?;
    who.check(
        &state.ownership,
        incident.alarm.appcode.as_deref(),
        no_incident(key),
    )?;
    let findings = (incident.kind == IncidentKind::Storm).then(|| {
        let counts = StormFindings::of(&incident.members);
        Findings {
            summary: counts.summary(),
            counts,
        }
    });
    Ok(IncidentDetail {
        tickets: state.store.tickets(key).await?,
        deliveries: state.store.run_steps(key).await?,
        findings,
        incident,
    })
}

/// Acknowledges or resolves an incident `who` may see; `by` is who the timeline names.
pub async fn change(
    state: &AppState,
    who: &Principal,
    key: &str,
    to: IncidentStatus,
    by: &str,
) -> Result<Incident, ServiceError> {
    let appcode = state.store.incident_appcode(key).await?;
    who.check(&state.ownership, appcode.as_deref(), no_incident(key))?;
    change_by_hand(state, key, to, by)
        .await?
        .ok_or_else(|| Denied::Hidden(no_incident(key)()).into())
}

/// Unresolved incidents per host name, among those `who` may see.
pub async fn open_by_host(
    state: &AppState,
    who: &Principal,
) -> Result<HashMap<String, usize>, ServiceError> {
    let mut counts = HashMap::new();
    for status in [IncidentStatus::Open, IncidentStatus::Acknowledged] {
        let filter = IncidentFilter {
            status: Some(status),
            limit: SCAN,
            appcodes: who.appcodes(&state.ownership),
            kind: None,
        };
        for incident in state.store.list_incidents(filter).await? {
            if let Some(host) = incident.alarm.host {
                *counts.entry(host).or_insert(0) += 1;
            }
        }
    }
    Ok(counts)
}

/// A resolution by hand is told like a recovery: the ticket is resolved and every channel
/// that heard of the incident hears it is over. The run is journaled with the status change,
/// in one transaction, so a crash cannot leave a resolution nobody is told about.
async fn resolution_work(state: &AppState, key: &str) -> Result<Work, StoreError> {
    let appcode = state.store.incident_appcode(key).await?;
    let to = state.ownership.resolve_recipients(
        &["owners".to_string(), "oncall".to_string()],
        appcode.as_deref(),
        0,
    );
    let steps = [
        vigil_actions::Step::Ticket,
        vigil_actions::Step::Notify { to },
    ];
    Ok(Work {
        run: state.runner.plan(RunKind::Resolved, &steps),
        ..Default::default()
    })
}

/// Acknowledges or resolves an incident by hand: the status change and the work it causes
/// (a resolution's notifications) commit together. `Ok(None)` for an unknown incident;
/// acknowledging twice, or resolving a resolved incident, changes nothing and tells nobody.
async fn change_by_hand(
    state: &AppState,
    key: &str,
    to: IncidentStatus,
    by: &str,
) -> Result<Option<Incident>, StoreError> {
    let work = match to {
        IncidentStatus::Resolved => resolution_work(state, key).await?,
        _ => Work::default(),
    };
    let journals_run = work.run.is_some();
    let change = ManualChange {
        key: key.to_string(),
        to,
        by: by.to_string(),
        work,
        now: now(),
    };
    let Some((incident, changed)) = state.store.transition(change).await? else {
        return Ok(None);
    };
    if changed {
        match to {
            IncidentStatus::Resolved => {
                crate::fault::crash_point("manual_resolve");
                state
                    .metrics
                    .inc("vigil_incidents_resolved_total", labels(&[("by", "hand")]));
                tracing::info!(incident = %incident.key, by, "incident resolved by hand");
                if journals_run {
                    state.runner.wake();
                }
            }
            _ => {
                tracing::info!(incident = %incident.key, by, "incident acknowledged");
                state.escalation.poke();
            }
        }
    }
    Ok(Some(incident))
}
