//! Alarms (CloudWatch PutMetricAlarm JSON), series for charts, and Prometheus
//! remote_write.

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use vigil_core::AlarmState;
use vigil_ingest::remote_write;

use super::{ApiError, JsonBody};
use crate::alarm_engine::{AlarmDefinition, InstanceView};
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
    body: Result<JsonBody<AlarmDefinition>, ApiError>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let JsonBody(definition) = body?;
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

/// `GET /api/v1/alarms` filters, DescribeAlarms' `StateValue` and vigil's Appcode.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    state: Option<String>,
    appcode: Option<String>,
}

/// Every instance of the visible alarms, each with its Appcode (the alarm's, else its
/// host's binding), as the engine judges it now.
pub(crate) fn instances_with_appcodes(
    state: &AppState,
    definitions: &[AlarmDefinition],
) -> Vec<InstanceView> {
    let appcodes: HashMap<&str, Option<&str>> = definitions
        .iter()
        .map(|d| (d.alarm_name.as_str(), d.appcode.as_deref()))
        .collect();
    let mut instances = state.engine.instances();
    instances.retain_mut(|i| {
        let Some(appcode) = appcodes.get(i.alarm.as_str()) else {
            return false;
        };
        i.appcode = appcode.map(str::to_string).or_else(|| {
            i.host
                .as_deref()
                .and_then(|host| state.ownership.appcode_for_host(host, &i.dimensions))
        });
        true
    });
    instances
}

/// `GET /api/v1/alarms[?state=ALARM&appcode=CODE]`: like CloudWatch's DescribeAlarms, each
/// definition with its instances' state, value, reason and time of the last change. A
/// filter keeps the matching instances; a definition none of whose instances match is
/// left out, unless only `appcode` is asked and it is the definition's own.
pub async fn list(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let wanted_state = match query.state.as_deref() {
        None | Some("") => None,
        Some(text) => Some(AlarmState::parse(text).ok_or_else(|| {
            ApiError::bad_request(format!(
                "state `{text}` is not one of OK, ALARM, INSUFFICIENT_DATA"
            ))
        })?),
    };
    let wanted_appcode = query.appcode.as_deref().filter(|c| !c.is_empty());
    let definitions: Vec<AlarmDefinition> = state
        .engine
        .definitions()
        .into_iter()
        .filter(|d| alarm_visible(&state, &who, d))
        .collect();
    let mut by_alarm: HashMap<String, Vec<InstanceView>> = HashMap::new();
    for instance in instances_with_appcodes(&state, &definitions) {
        if wanted_state.is_some_and(|s| s != instance.state)
            || wanted_appcode.is_some_and(|c| instance.appcode.as_deref() != Some(c))
        {
            continue;
        }
        by_alarm
            .entry(instance.alarm.clone())
            .or_default()
            .push(instance);
    }
    let mut alarms = Vec::with_capacity(definitions.len());
    for definition in definitions {
        let instances = by_alarm.remove(&definition.alarm_name).unwrap_or_default();
        let listed = !instances.is_empty()
            || wanted_state.is_none()
                && wanted_appcode.is_none_or(|c| definition.appcode.as_deref() == Some(c));
        if !listed {
            continue;
        }
        let mut view = serde_json::to_value(&definition).map_err(ApiError::internal)?;
        view["instances"] = json!(instances);
        alarms.push(view);
    }
    Ok(Json(json!({"alarms": alarms})))
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
    let instances = instances_with_appcodes(&state, std::slice::from_ref(&definition));
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
