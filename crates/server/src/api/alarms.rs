//! Alarms (CloudWatch PutMetricAlarm JSON), series for charts, and Prometheus
//! remote_write.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::{json, Value};
use vigil_ingest::remote_write;

use super::ApiError;
use crate::alarm_engine::AlarmDefinition;
use crate::auth::Principal;
use crate::metric_sources::count_push;
use crate::metrics::labels;
use crate::now_ms;
use crate::{now, AppState};

/// Whether a scoped caller may see an alarm: by its Appcode.
fn alarm_visible(state: &AppState, who: &Principal, definition: &AlarmDefinition) -> bool {
    state
        .ownership
        .allowed(who.scope.as_deref(), definition.appcode.as_deref())
}

fn no_alarm(name: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no alarm named `{name}`"))
}

/// `POST /api/v1/alarms`: create or replace an alarm.
pub async fn put(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Result<Json<AlarmDefinition>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(definition) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if !alarm_visible(&state, &who, &definition) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "a scoped token defines alarms only with an Appcode inside its scope",
        ));
    }
    if let Some(existing) = state.engine.definition(definition.alarm_name.trim()) {
        if !alarm_visible(&state, &who, &existing) {
            return Err(no_alarm(&definition.alarm_name));
        }
    }
    let alarm = definition
        .compile()
        .map_err(|e| ApiError::bad_request(format!("alarm `{}`: {e}", definition.alarm_name)))?;
    let name = alarm.spec.name.clone();
    let existed = state.engine.definition(&name).is_some();
    let text = serde_json::to_string(&definition).map_err(ApiError::internal)?;
    state.store.put_alarm(&name, &text, now()).await?;
    state.engine.put_alarm(alarm);
    tracing::info!(alarm = %name, replaced = existed, "alarm defined");
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(json!({"alarm": name, "replaced": existed}))))
}

/// `GET /api/v1/alarms`: definitions and every instance's state and value.
pub async fn list(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Json<Value> {
    let definitions: Vec<AlarmDefinition> = state
        .engine
        .definitions()
        .into_iter()
        .filter(|d| alarm_visible(&state, &who, d))
        .collect();
    let names: std::collections::HashSet<&str> =
        definitions.iter().map(|d| d.alarm_name.as_str()).collect();
    let instances: Vec<_> = state
        .engine
        .instances()
        .into_iter()
        .filter(|i| names.contains(i.alarm.as_str()))
        .collect();
    Json(json!({"alarms": definitions, "instances": instances}))
}

pub async fn show(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let definition = state
        .engine
        .definition(&name)
        .filter(|d| alarm_visible(&state, &who, d))
        .ok_or_else(|| no_alarm(&name))?;
    let instances: Vec<_> = state
        .engine
        .instances()
        .into_iter()
        .filter(|i| i.alarm == name)
        .collect();
    Ok(Json(json!({"alarm": definition, "instances": instances})))
}

pub async fn delete(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if let Some(existing) = state.engine.definition(&name) {
        if !alarm_visible(&state, &who, &existing) {
            return Err(no_alarm(&name));
        }
    }
    let stored = state.store.delete_alarm(&name).await?;
    let live = state.engine.delete_alarm(&name);
    if !stored && !live {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no alarm named `{name}`"),
        ));
    }
    Ok(Json(json!({"alarm": name, "deleted": true})))
}

/// Most series one `GET /api/v1/series` returns.
const MAX_SERIES: usize = 100;

/// `GET /api/v1/series?name=METRIC&LABEL=VALUE…`: points of matching series, for charts.
pub async fn series(
    State(state): State<AppState>,
    Query(mut query): Query<BTreeMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let name = query
        .remove("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request("query parameter `name` (the metric name) is required")
        })?;
    let series = state.engine.series(&name, &query, MAX_SERIES);
    Ok(Json(json!({"series": series})))
}

/// `POST /api/v1/write`: Prometheus remote_write v1 (snappy-compressed protobuf).
pub async fn remote_write(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = body.map_err(|r| ApiError::from_body(r, state.config.server.body_limit_bytes))?;
    let decoded = remote_write::decode(&body, &remote_write::Limits::default()).map_err(|e| {
        state.metrics.inc(
            "vigil_samples_rejected_total",
            labels(&[("source", "remote_write")]),
        );
        ApiError::bad_request(format!("remote_write body: {e}"))
    })?;
    let mut outcome = state.engine.push(decoded.points, now_ms());
    outcome.rejected += decoded.rejected_non_finite;
    count_push(&state.metrics, "remote_write", outcome);
    Ok((
        StatusCode::ACCEPTED,
        Json(
            json!({"accepted": outcome.accepted, "rejected": outcome.rejected, "over_cap": outcome.over_cap}),
        ),
    ))
}
