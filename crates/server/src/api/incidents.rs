//! Incidents (`vigil incidents`, `vigil incident show|ack|resolve`).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use serde::Serialize;
use utoipa::ToSchema;
use vigil_core::{Incident, IncidentStatus};

use super::ApiError;
use crate::access::Principal;
use crate::service::incidents::{self, IncidentDetail, IncidentQuery};
use crate::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentList {
    /// Newest first.
    pub incidents: Vec<Incident>,
}

/// Incidents the token may see, newest first.
#[utoipa::path(get, path = "/api/v1/incidents", tag = "incidents", params(IncidentQuery),
    responses((status = 200, body = IncidentList)))]
pub async fn list(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    query: Result<Query<IncidentQuery>, QueryRejection>,
) -> Result<Json<IncidentList>, ApiError> {
    let Query(query) = query?;
    let incidents = incidents::list(&state, &who, &query).await?;
    Ok(Json(IncidentList { incidents }))
}

/// One incident with its timeline, tickets and deliveries.
#[utoipa::path(get, path = "/api/v1/incidents/{key}", tag = "incidents",
    params(("key" = String, Path, description = "The incident's key")),
    responses((status = 200, body = IncidentDetail)))]
pub async fn show(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(key): Path<String>,
) -> Result<Json<IncidentDetail>, ApiError> {
    Ok(Json(incidents::detail(&state, &who, &key).await?))
}

/// Acknowledges an incident: escalation stops. Acknowledging twice changes nothing.
#[utoipa::path(post, path = "/api/v1/incidents/{key}/ack", tag = "incidents",
    params(("key" = String, Path, description = "The incident's key")),
    responses((status = 200, description = "The incident as it is now", body = Incident)))]
pub async fn acknowledge(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(key): Path<String>,
) -> Result<Json<Incident>, ApiError> {
    let by = who.name.clone();
    let incident = incidents::change(&state, &who, &key, IncidentStatus::Acknowledged, &by).await?;
    Ok(Json(incident))
}

/// Resolves an incident by hand: its ticket is resolved and everyone told hears it is over.
#[utoipa::path(post, path = "/api/v1/incidents/{key}/resolve", tag = "incidents",
    params(("key" = String, Path, description = "The incident's key")),
    responses((status = 200, description = "The incident as it is now", body = Incident)))]
pub async fn resolve(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(key): Path<String>,
) -> Result<Json<Incident>, ApiError> {
    let by = who.name.clone();
    let incident = incidents::change(&state, &who, &key, IncidentStatus::Resolved, &by).await?;
    Ok(Json(incident))
}
