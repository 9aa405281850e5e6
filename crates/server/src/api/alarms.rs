//! Alarms (CloudWatch PutMetricAlarm JSON), series for charts, and Prometheus
//! remote_write.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::{json, Value};
use vigil_ingest::remote_write;

use super::{ApiError, JsonBody};
use crate::access::Principal;
use crate::alarm_engine::AlarmDefinition;
use crate::metric_sources::count_push;
use crate::metrics::labels;
use crate::now_ms;
use crate::service::{self, alarms::AlarmQuery};
use crate::{now, AppState};

/// `POST /api/v1/alarms`: create or replace an alarm.
pub async fn put(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Result<JsonBody<AlarmDefinition>, ApiError>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let JsonBody(definition) = body?;
    if !who.sees(&state.ownership, definition.appcode.as_deref()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "a scoped token defines alarms only with an Appcode inside its scope",
        ));
    }
    let name = definition.alarm_name.trim();
    if state.engine.definition(name).is_some() {
        service::alarms::definition(&state, &who, name)?;
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

/// `GET /api/v1/alarms[?state=ALARM&appcode=CODE]`: like CloudWatch's DescribeAlarms, each
/// definition with its instances' state, value, reason and time of the last change.
pub async fn list(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    query: Result<Query<AlarmQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query?;
    Ok(Json(
        json!({"alarms": service::alarms::list(&state, &who, &query)}),
    ))
}

/// `GET /api/v1/alarms/{name}`.
pub async fn show(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let found = service::alarms::detail(&state, &who, &name)?;
    Ok(Json(
        json!({"alarm": found.definition, "instances": found.instances}),
    ))
}

pub async fn delete(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if state.engine.definition(&name).is_some() {
        service::alarms::definition(&state, &who, &name)?;
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

/// `GET /api/v1/series?name=METRIC&LABEL=VALUE…`: points of matching series, for charts.
pub async fn series(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    query: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(mut labels) = query?;
    let name = labels.remove("name").unwrap_or_default();
    let series = service::alarms::series(&state, &who, &name, &labels)?;
    Ok(Json(json!({"series": series})))
}

/// `POST /api/v1/write`: Prometheus remote_write v1 (snappy-compressed protobuf).
/// Samples carry no Appcode one could check, so a scoped token may not write them.
pub async fn remote_write(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    who.require_unscoped("Prometheus remote_write")?;
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
