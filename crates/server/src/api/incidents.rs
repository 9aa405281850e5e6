use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use vigil_core::{Incident, IncidentStatus};
use vigil_store::{IncidentFilter, Store};

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
/// that heard of the incident hears it is over.
pub(crate) fn announce_resolution(state: &AppState, incident: &Incident) {
    let to = state.ownership.resolve_recipients(
        &["owners".to_string(), "oncall".to_string()],
        incident.alarm.appcode.as_deref(),
        0,
    );
    let steps = [
        vigil_actions::Step::Ticket,
        vigil_actions::Step::Notify { to },
    ];
    if let Err(e) =
        state
            .runner
            .start_run(&incident.key, vigil_actions::MessageKind::Resolved, &steps)
    {
        tracing::error!(incident = %incident.key, error = %e, "could not journal the resolution's notifications");
    }
}

/// Answers 404 for an incident outside a scoped caller's subtree, as if it did not exist.
pub(super) async fn in_scope(state: &AppState, who: &Principal, key: &str) -> Result<(), ApiError> {
    if who.scope.is_none() {
        return Ok(());
    }
    let lookup = key.to_string();
    let appcode = blocking(state, move |store| store.incident_appcode(&lookup)).await?;
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
    let incidents = blocking(&state, move |store| store.list_incidents(&filter)).await?;
    Ok(Json(json!({"incidents": incidents})))
}

pub async fn show(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    in_scope(&state, &who, &key).await?;
    let lookup = key.clone();
    let (incident, tickets, deliveries) = blocking(&state, move |store| {
        Ok((
            store.incident(&lookup)?,
            store.tickets(&lookup)?,
            store.run_steps(&lookup)?,
        ))
    })
    .await?;
    let Json(mut body) = found(incident, &key)?;
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
    let lookup = key.clone();
    let outcome = blocking(&state, move |store| {
        store.acknowledge(&lookup, &who.name, &now())
    })
    .await?;
    if let Some((incident, true)) = &outcome {
        tracing::info!(incident = %incident.key, "incident acknowledged");
    }
    found(outcome.map(|(incident, _)| incident), &key)
}

pub async fn resolve(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    in_scope(&state, &who, &key).await?;
    let lookup = key.clone();
    let outcome = blocking(&state, move |store| {
        store.resolve(&lookup, &who.name, &now())
    })
    .await?;
    if let Some((incident, true)) = &outcome {
        state
            .metrics
            .inc("vigil_incidents_resolved_total", labels(&[("by", "hand")]));
        tracing::info!(incident = %incident.key, "incident resolved by hand");
        announce_resolution(&state, incident);
    }
    found(outcome.map(|(incident, _)| incident), &key)
}

fn found(incident: Option<Incident>, key: &str) -> Result<Json<Value>, ApiError> {
    incident.map(|i| Json(i.to_value())).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no incident with key `{key}`"),
        )
    })
}

/// Runs a store call on the blocking pool; store errors are vigil's fault (500).
pub(super) async fn blocking<T: Send + 'static>(
    state: &AppState,
    call: impl FnOnce(&Store) -> vigil_store::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || call(&store))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}
