//! Alarms (CloudWatch PutMetricAlarm JSON), series for charts, and Prometheus
//! remote_write.

use crate::bus::Signal;
use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vigil_ingest::remote_write;

use super::{ApiError, JsonBody};
use crate::access::Principal;
use crate::alarm_engine::{AlarmDefinition, InstanceView, MetricSource, SeriesTop};
use crate::metric_sources::count_push;
use crate::metrics::labels;
use crate::now_ms;
use crate::service::alarms::SeriesList;
use crate::service::{
    self,
    alarms::{AlarmQuery, AlarmWithInstances},
};
use crate::{now, AppState};

#[derive(Debug, Serialize, ToSchema)]
pub struct AlarmSaved {
    pub alarm: String,
    /// Whether an alarm of that name existed and was replaced.
    pub replaced: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlarmList {
    pub alarms: Vec<AlarmWithInstances>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlarmShown {
    pub alarm: AlarmDefinition,
    pub instances: Vec<InstanceView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlarmDeleted {
    pub alarm: String,
    pub deleted: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SamplesWritten {
    pub accepted: usize,
    /// Samples refused (not finite, too old, unreadable labels).
    pub rejected: usize,
    /// Samples of new series dropped because `metrics.max_series` is reached.
    pub over_cap: usize,
}

/// Creates or replaces an alarm, in CloudWatch's PutMetricAlarm JSON.
#[utoipa::path(post, path = "/api/v1/alarms", tag = "alarms", request_body = AlarmDefinition,
    responses((status = 201, description = "Created", body = AlarmSaved),
        (status = 200, description = "Replaced", body = AlarmSaved),
        (status = 422, description = "The definition reads, but is not an alarm vigil can judge: both Statistic and ExtendedStatistic or neither, DatapointsToAlarm above EvaluationPeriods, an evaluation window over a day", body = super::doc::ErrorBody)))]
pub async fn put(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Result<JsonBody<AlarmDefinition>, ApiError>,
) -> Result<(StatusCode, Json<AlarmSaved>), ApiError> {
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
    // The body read; what it describes is not an alarm vigil can judge (both statistics,
    // a window too long, more datapoints than periods): 422, as its schema cannot say so.
    let alarm = definition.compile().map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("alarm `{}`: {e}", definition.alarm_name),
        )
    })?;
    let name = alarm.spec.name.clone();
    let existed = state.engine.definition(&name).is_some();
    let text = serde_json::to_string(&definition).map_err(ApiError::internal)?;
    state.store.put_alarm(&name, &text, now()).await?;
    state.engine.put_alarm(alarm);
    state.bus.publish(Signal::Alarm(name.clone()));
    tracing::info!(alarm = %name, replaced = existed, "alarm defined");
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(AlarmSaved {
            alarm: name,
            replaced: existed,
        }),
    ))
}

/// Like CloudWatch's DescribeAlarms: each alarm the token may see with its instances'
/// state, value, reason and time of the last change. A filter keeps the matching
/// instances; an alarm none of whose instances match is left out, unless only `appcode`
/// is asked and it is the alarm's own.
#[utoipa::path(get, path = "/api/v1/alarms", tag = "alarms", params(AlarmQuery),
    responses((status = 200, body = AlarmList)))]
pub async fn list(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    query: Result<Query<AlarmQuery>, QueryRejection>,
) -> Result<Json<AlarmList>, ApiError> {
    let Query(query) = query?;
    Ok(Json(AlarmList {
        alarms: service::alarms::list(&state, &who, &query),
    }))
}

/// One alarm with its instances.
#[utoipa::path(get, path = "/api/v1/alarms/{name}", tag = "alarms",
    params(("name" = String, Path, description = "The alarm's name")),
    responses((status = 200, body = AlarmShown)))]
pub async fn show(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<AlarmShown>, ApiError> {
    let found = service::alarms::detail(&state, &who, &name)?;
    Ok(Json(AlarmShown {
        alarm: found.definition,
        instances: found.instances,
    }))
}

/// Deletes an alarm; its instances are forgotten.
#[utoipa::path(delete, path = "/api/v1/alarms/{name}", tag = "alarms",
    params(("name" = String, Path, description = "The alarm's name")),
    responses((status = 200, body = AlarmDeleted)))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<AlarmDeleted>, ApiError> {
    if state.engine.definition(&name).is_some() {
        service::alarms::definition(&state, &who, &name)?;
    }
    let stored = state.store.delete_alarm(&name).await?;
    let live = state.engine.delete_alarm(&name);
    state.bus.publish(Signal::Alarm(name.clone()));
    if !stored && !live {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no alarm named `{name}`"),
        ));
    }
    Ok(Json(AlarmDeleted {
        alarm: name,
        deleted: true,
    }))
}

/// Points of the series named `name` whose labels include every other parameter given
/// (`?name=load1&host=web-01`), at most 100 series, for charts.
#[utoipa::path(get, path = "/api/v1/series", tag = "alarms",
    params(("name" = String, Query, min_length = 1,
        description = "The metric name; any other parameter is a label to match")),
    responses((status = 200, body = SeriesList)))]
pub async fn series(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    query: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Result<Json<SeriesList>, ApiError> {
    let Query(mut labels) = query?;
    let name = labels.remove("name").unwrap_or_default();
    Ok(Json(
        service::alarms::series(&state, &who, &name, &labels).await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TopQuery {
    /// Rows per list (default 20).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// Where the series are: the count per source and its cap, the metric names and Appcodes
/// with the most series, and the memory their chart history takes. Spans every
/// application, so only an unscoped token may ask.
#[utoipa::path(get, path = "/api/v1/series/top", tag = "alarms", params(TopQuery),
    responses((status = 200, body = SeriesTop)))]
pub async fn series_top(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    query: Result<Query<TopQuery>, QueryRejection>,
) -> Result<Json<SeriesTop>, ApiError> {
    who.require_unscoped("the series count of every application")?;
    let Query(query) = query?;
    let limit = query.limit.unwrap_or(20);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit: {limit}; give 1 to 1000 rows per list"
        )));
    }
    let limit = limit as usize;
    let engine = state.engine.clone();
    let top = tokio::task::spawn_blocking(move || engine.top(limit))
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(top))
}

/// Prometheus remote_write v1 (snappy-compressed protobuf). Samples carry no Appcode one
/// could check, so a scoped token may not write them.
#[utoipa::path(post, path = "/api/v1/write", tag = "alarms",
    request_body(content = Vec<u8>, content_type = "application/x-protobuf",
        description = "A snappy-compressed prometheus.WriteRequest"),
    responses((status = 202, body = SamplesWritten)))]
pub async fn remote_write(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<SamplesWritten>), ApiError> {
    who.require_unscoped("Prometheus remote_write")?;
    let body = body.map_err(|r| ApiError::from_body(r, state.config.server.body_limit_bytes))?;
    let decoded = remote_write::decode(&body, &remote_write::Limits::default()).map_err(|e| {
        state.metrics.inc(
            "vigil_samples_rejected_total",
            labels(&[("source", "remote_write")]),
        );
        ApiError::bad_request(format!("remote_write body: {e}"))
    })?;
    let mut points = decoded.points;
    let mut outcome = state.engine.push(
        &mut points,
        now_ms(),
        MetricSource::RemoteWrite,
        &mut |labels| crate::metric_sources::series_appcode(&state.ownership, labels),
    );
    outcome.rejected += decoded.rejected_non_finite;
    count_push(&state.metrics, MetricSource::RemoteWrite, &outcome);
    state.forward.offer(&points);
    // As Mimir does: 400, which remote_write senders do not retry; the points of known
    // series in the request are kept.
    if let Some(cap) = &outcome.cap {
        return Err(ApiError::bad_request(format!(
            "{} samples kept, {} refused: {cap}",
            outcome.accepted, outcome.over_cap
        )));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(SamplesWritten {
            accepted: outcome.accepted,
            rejected: outcome.rejected,
            over_cap: outcome.over_cap,
        }),
    ))
}
