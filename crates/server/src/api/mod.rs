//! The HTTP API. Every route but `/healthz` requires a token; errors are
//! `{"error": "..."}` with a 4xx naming what was wrong, 5xx only for vigil's own faults.

mod agent;
mod alarms;
mod apps;
mod hosts;
mod incidents;
mod ingest;

pub(crate) use incidents::change_by_hand;

use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use serde_json::json;

use crate::AppState;

/// The whole HTTP surface: the web UI (its own session login) beside the token-authenticated
/// API, which also answers every unknown path.
pub fn router(state: AppState) -> Router {
    crate::ui::router(state.clone()).merge(api_router(state))
}

fn api_router(state: AppState) -> Router {
    let body_limit = state.config.server.body_limit_bytes;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/api/v1/events", post(ingest::events))
        .route("/api/v1/events/{id}", get(ingest::show_event))
        .route("/api/v1/ingest/sns", post(ingest::sns))
        .route("/api/v1/ingest/alertmanager", post(ingest::alertmanager))
        .route("/api/v1/incidents", get(incidents::list))
        .route("/api/v1/incidents/{key}", get(incidents::show))
        .route("/api/v1/incidents/{key}/ack", post(incidents::acknowledge))
        .route("/api/v1/incidents/{key}/resolve", post(incidents::resolve))
        .route("/api/v1/hosts", post(hosts::add).get(hosts::list))
        .route("/api/v1/hosts/{name}", get(hosts::show))
        .route("/api/v1/hosts/{name}/revoke", post(hosts::revoke))
        .route("/api/v1/agent/heartbeat", post(agent::heartbeat))
        .route("/api/v1/agent/metrics", post(agent::metrics))
        .route("/api/v1/agent/jobs", get(agent::poll_jobs))
        .route("/api/v1/agent/jobs/{id}/result", post(agent::job_result))
        .route("/api/v1/alarms", post(alarms::put).get(alarms::list))
        .route(
            "/api/v1/alarms/{name}",
            get(alarms::show).delete(alarms::delete),
        )
        .route("/api/v1/series", get(alarms::series))
        .route("/api/v1/write", post(alarms::remote_write))
        .route("/api/v1/apps", post(apps::add).get(apps::list))
        .route(
            "/api/v1/apps/import",
            // A whole organisation (40,000 hosts) is a few MB of TOML.
            post(apps::import_tree).layer(DefaultBodyLimit::max(64 * 1024 * 1024)),
        )
        .route("/api/v1/apps/export", get(apps::export_tree))
        .route("/api/v1/apps/{code}", get(apps::show).patch(apps::change))
        .route("/api/v1/apps/{code}/move", post(apps::move_node))
        .route("/api/v1/hosts/{name}/bind", post(apps::bind_host))
        .route("/api/v1/tokens", post(apps::add_token))
        .route("/api/v1/reports", get(apps::report_for))
        .route("/api/v1/test/clock", post(apps::advance_clock))
        .route("/api/v1/incidents/{key}/approve", post(apps::approve))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // A layer, not a route_layer: unknown routes answer 401 too, so the API's shape
        // is not probeable without a token.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::require_token,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such route; see /api/v1/openapi.json",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this route",
    )
}

/// An error answer: status plus a message for the caller.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }

    /// vigil's own fault: logged in full, reported without internals.
    pub fn internal(error: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %error, "request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; see the server log",
        )
    }

    /// Body rejections keep their status (413 for too large) with a readable message.
    pub fn from_body(rejection: BytesRejection, limit: usize) -> ApiError {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(status, format!("request body is larger than the limit of {limit} bytes (server.body_limit_bytes)"))
        } else {
            ApiError::new(
                status,
                format!("could not read the request body: {}", rejection.body_text()),
            )
        }
    }
}

/// A store failure is vigil's own fault (500); handlers that expect a particular one (a
/// name taken: 409) match it before this applies.
impl From<vigil_store::StoreError> for ApiError {
    fn from(error: vigil_store::StoreError) -> ApiError {
        ApiError::internal(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({"error": self.message}))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"vigil\", Basic realm=\"vigil\""),
            );
        }
        response
    }
}
