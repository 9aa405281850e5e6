//! Incidents (`vigil incidents`, `vigil incident show|ack|resolve`).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use serde_json::{json, Value};
use vigil_core::{Incident, IncidentStatus};

use super::ApiError;
use crate::access::Principal;
use crate::service::incidents::{self, IncidentDetail, IncidentQuery};
use crate::AppState;

/// `GET /api/v1/incidents?status=&severity=&appcode=&host=&q=&limit=`, newest first.
pub async fn list(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    query: Result<Query<IncidentQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query?;
    let incidents = incidents::list(&state, &who, &query).await?;
    Ok(Json(json!({"incidents": incidents})))
}

/// `GET /api/v1/incidents/{key}`: with its timeline, tickets and deliveries.
pub async fn show(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(key): Path<String>,
) -> Result<Json<IncidentDetail>, ApiError> {
    Ok(Json(incidents::detail(&state, &who, &key).await?))
}

pub async fn acknowledge(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(key): Path<String>,
) -> Result<Json<Incident>, ApiError> {
    let by = who.name.clone();
    let incident = incidents::change(&state, &who, &key, IncidentStatus::Acknowledged, &by).await?;
    Ok(Json(incident))
}

pub async fn resolve(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(key): Path<String>,
) -> Result<Json<Incident>, ApiError> {
    let by = who.name.clone();
    let incident = incidents::change(&state, &who, &key, IncidentStatus::Resolved, &by).await?;
    Ok(Json(incident))
}
