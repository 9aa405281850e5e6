//! What agents call, with their host token: heartbeat, metrics, the job long poll, results.

use std::time::Duration;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vigil_core::{Heartbeat, Job, JobResult, MetricBatch, FINAL_JOB_STATUSES};

use super::{ApiError, JsonBody};
use crate::access::{Principal, Role};
use crate::alarm_engine::MetricSource;
use crate::metrics::labels;
use crate::now_ms;
use crate::{now, AppState};

/// Longest a job poll is held open; agents reconnect at once.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// Most jobs handed out per poll.
const JOBS_PER_POLL: usize = 16;
/// Most samples in one batch.
const MAX_SAMPLES: usize = 10_000;
/// Probe output kept per job; agents cap theirs (64 KiB by default) well below this.
const MAX_OUTPUT: usize = 256 * 1024;

fn host_of(principal: &Principal) -> Result<&str, ApiError> {
    match &principal.role {
        Role::Host(host) => Ok(host),
        Role::Admin => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "agent routes need a host token",
        )),
    }
}

/// The agent says it is alive, with its version, uptime, interval and collector state.
#[utoipa::path(post, path = "/api/v1/agent/heartbeat", tag = "agent", request_body = Heartbeat,
    security(("host_token" = [])), responses((status = 204, description = "Recorded")))]
pub async fn heartbeat(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Result<JsonBody<Heartbeat>, ApiError>,
) -> Result<StatusCode, ApiError> {
    let host = host_of(&principal)?.to_string();
    let JsonBody(heartbeat) = body?;
    heartbeat.check().map_err(ApiError::bad_request)?;
    state
        .store
        .record_heartbeat(&host, heartbeat, now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SamplesAccepted {
    pub accepted: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    pub jobs: Vec<Job>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResultRecorded {
    pub job: i64,
    pub recorded: bool,
}

/// The agent's metric samples (at most 10,000 per batch); its host and Appcode become labels.
#[utoipa::path(post, path = "/api/v1/agent/metrics", tag = "agent", request_body = MetricBatch,
    security(("host_token" = [])), responses((status = 202, body = SamplesAccepted)))]
pub async fn metrics(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Result<JsonBody<MetricBatch>, ApiError>,
) -> Result<(StatusCode, Json<SamplesAccepted>), ApiError> {
    let host = host_of(&principal)?.to_string();
    let JsonBody(batch) = body?;
    if batch.samples.len() > MAX_SAMPLES {
        return Err(ApiError::bad_request(format!(
            "samples: {} in one batch; send at most {MAX_SAMPLES}",
            batch.samples.len()
        )));
    }
    if let Some((index, sample)) = batch
        .samples
        .iter()
        .enumerate()
        .find(|(_, s)| !s.value.is_finite())
    {
        return Err(ApiError::bad_request(format!(
            "samples[{index}] ({}): value must be a finite number",
            sample.name
        )));
    }
    let count = batch.samples.len();
    let text = serde_json::to_string(&batch).map_err(ApiError::internal)?;
    state.store.record_metrics(&host, text, now()).await?;
    // Every agent series carries its host, so one alarm can watch every host, including
    // hosts that report for the first time. Not its Appcode: ownership changes (a host is
    // rebound, an application moves) while the measurement stays the same series; whose
    // it is is looked up when an incident opens.
    let mut points: Vec<vigil_ingest::MetricPoint> = batch
        .samples
        .into_iter()
        .map(|s| {
            let mut labels = s.dimensions;
            labels.insert("host".into(), host.clone());
            vigil_ingest::MetricPoint {
                name: s.name,
                labels,
                value: s.value,
                timestamp_ms: s.timestamp_ms,
            }
        })
        .collect();
    let outcome = state
        .engine
        .push(&mut points, now_ms(), MetricSource::Agent, &mut |labels| {
            crate::metric_sources::series_appcode(&state.ownership, labels)
        });
    crate::metric_sources::count_push(&state.metrics, MetricSource::Agent, &outcome);
    state.forward.offer(&points);
    if let Some(cap) = &outcome.cap {
        return Err(ApiError::bad_request(format!(
            "{} samples kept, {} refused: {cap}",
            outcome.accepted, outcome.over_cap
        )));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(SamplesAccepted { accepted: count }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PollQuery {
    /// Seconds to hold the poll open when there is nothing to do (default 25, at most 30).
    wait: Option<u64>,
}

/// Jobs for this host: answers at once with queued jobs, or holds the request until one is
/// queued or `wait` seconds pass.
#[utoipa::path(get, path = "/api/v1/agent/jobs", tag = "agent", params(PollQuery),
    security(("host_token" = [])), responses((status = 200, body = JobList)))]
pub async fn poll_jobs(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<PollQuery>, QueryRejection>,
) -> Result<Json<JobList>, ApiError> {
    let host = host_of(&principal)?.to_string();
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let wait = Duration::from_secs(query.wait.unwrap_or(25)).min(MAX_WAIT);
    let deadline = tokio::time::Instant::now() + wait;
    let doorbell = state.jobs.doorbell(&host);
    loop {
        let jobs = state.store.claim_jobs(&host, now(), JOBS_PER_POLL).await?;
        if !jobs.is_empty() {
            tracing::debug!(host = %host, jobs = jobs.len(), "jobs handed to agent");
            return Ok(Json(JobList { jobs }));
        }
        if tokio::time::timeout_at(deadline, doorbell.notified())
            .await
            .is_err()
        {
            return Ok(Json(JobList { jobs: Vec::new() }));
        }
    }
}

/// A job's final answer; output past 256 KiB is cut and marked truncated.
#[utoipa::path(post, path = "/api/v1/agent/jobs/{id}/result", tag = "agent", request_body = JobResult,
    params(("id" = i64, Path, description = "The job's id")),
    security(("host_token" = [])), responses((status = 200, body = ResultRecorded)))]
pub async fn job_result(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    id: Result<Path<i64>, PathRejection>,
    body: Result<JsonBody<JobResult>, ApiError>,
) -> Result<Json<ResultRecorded>, ApiError> {
    let host = host_of(&principal)?.to_string();
    let Path(id) = id?;
    let JsonBody(mut result) = body?;
    result.check().map_err(ApiError::bad_request)?;
    if !FINAL_JOB_STATUSES.contains(&result.status) {
        return Err(ApiError::bad_request(format!(
            "status: `{}` is not a final answer; use done, refused, failed or timed_out",
            result.status.as_str()
        )));
    }
    if result.output.len() > MAX_OUTPUT {
        let mut cut = MAX_OUTPUT;
        while !result.output.is_char_boundary(cut) {
            cut -= 1;
        }
        result.output.truncate(cut);
        result.truncated = true;
    }
    let status = result.status;
    // The store writes the answer's timeline entry with it (`JobResult::describe`).
    let ended = state.store.finish_job(&host, id, result, now()).await?;
    if ended.is_some() {
        crate::fault::crash_point("job_finished");
    }
    let Some(ended) = ended else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no open job {id} for host {host}"),
        ));
    };
    // Messages held back for this incident's diagnostics may go out now.
    state.runner.wake();
    state.metrics.inc(
        "vigil_probe_jobs_total",
        labels(&[("status", status.as_str())]),
    );
    tracing::info!(host = %host, probe = %ended.probe, job = id, status = status.as_str(), incident = ended.incident_key.as_deref().unwrap_or("-"), "probe answered");
    Ok(Json(ResultRecorded {
        job: id,
        recorded: true,
    }))
}
