use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use vigil_core::{Incident, IncidentStatus};
use vigil_store::{IncidentFilter, ManualChange, RunKind, StoreError, Work};

use super::ApiError;
use crate::auth::Principal;
use crate::metrics::labels;
use crate::{now, AppState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    limit: Option<usize>,
}

/// Most incidents one list call returns.
const MAX_LIST: usize = 1000;

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

/// Acknowledges or resolves an incident by hand, for the API and the web UI alike: the
/// status change and the work it causes (a resolution's notifications) commit together.
/// `by` is who the timeline names. `Ok(None)` for an unknown incident; acknowledging twice,
/// or resolving a resolved incident, changes nothing and tells nobody.
pub(crate) async fn change_by_hand(
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

/// Answers 404 for an incident outside a scoped caller's subtree, as if it did not exist.
pub(super) async fn in_scope(state: &AppState, who: &Principal, key: &str) -> Result<(), ApiError> {
    if who.scope.is_none() {
        return Ok(());
    }
    let appcode = state.store.incident_appcode(key).await?;
    if state
        .ownership
        .allowed(who.scope.as_deref(), appcode.as_deref())
    {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no incident with key `{key}`"),
        ))
    }
}

pub async fn list(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let status = match query.status.as_deref() {
        None | Some("") | Some("all") => None,
        Some(s) => Some(IncidentStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "status `{s}` is not one of open, acknowledged, resolved, all"
            ))
        })?),
    };
    let filter = IncidentFilter {
        status,
        limit: query.limit.unwrap_or(200).clamp(1, MAX_LIST),
        appcodes: who
            .scope
            .as_deref()
            .map(|scope| state.ownership.subtree(scope)),
    };
    let incidents = state.store.list_incidents(filter).await?;
    Ok(Json(json!({"incidents": incidents})))
}

pub async fn show(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    in_scope(&state, &who, &key).await?;
    let store = &state.store;
    let incident = store.incident(&key).await?;
    let Json(mut body) = found(incident, &key)?;
    let tickets = store.tickets(&key).await?;
    let deliveries = store.run_steps(&key).await?;
    body["tickets"] = json!(tickets);
    body["deliveries"] = json!(deliveries);
    Ok(Json(body))
}

pub async fn acknowledge(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    in_scope(&state, &who, &key).await?;
    let incident = change_by_hand(&state, &key, IncidentStatus::Acknowledged, &who.name).await?;
    found(incident, &key)
}

pub async fn resolve(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    in_scope(&state, &who, &key).await?;
    let incident = change_by_hand(&state, &key, IncidentStatus::Resolved, &who.name).await?;
    found(incident, &key)
}

fn found(incident: Option<Incident>, key: &str) -> Result<Json<Value>, ApiError> {
    incident.map(|i| Json(i.to_value())).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no incident with key `{key}`"),
        )
    })
}
