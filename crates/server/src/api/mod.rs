//! The HTTP API. Every route but `/healthz` requires a token; errors are
//! `{"error": "..."}` with a 4xx naming what was wrong, 5xx only for vigil's own faults.

mod agent;
pub(crate) mod alarms;
mod apps;
pub mod doc;
pub(crate) mod hosts;
mod incidents;
mod ingest;
mod tokens;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{middleware, Json, Router};
use serde::de::DeserializeOwned;
use serde_json::json;
use utoipa::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::AppState;

/// The whole HTTP surface: the web UI (its own session login) beside the token-authenticated
/// API, which also answers every unknown path.
pub fn router(state: AppState) -> Router {
    crate::ui::router(state.clone()).merge(api_router(state))
}

/// The API's routes and their OpenAPI description, from one list: a handler is routed only
/// through `routes!`, which also records its `#[utoipa::path]`.
fn described_routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, openapi) = OpenApiRouter::with_openapi(doc::ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(ingest::events))
        .routes(routes!(ingest::show_event))
        .routes(routes!(ingest::sns))
        .routes(routes!(ingest::alertmanager))
        .routes(routes!(incidents::list))
        .routes(routes!(incidents::show))
        .routes(routes!(incidents::acknowledge))
        .routes(routes!(incidents::resolve))
        .routes(routes!(apps::approve))
        .routes(routes!(hosts::add, hosts::list))
        .routes(routes!(hosts::show))
        .routes(routes!(hosts::revoke))
        .routes(routes!(apps::bind_host))
        .routes(routes!(agent::heartbeat))
        .routes(routes!(agent::metrics))
        .routes(routes!(agent::poll_jobs))
        .routes(routes!(agent::job_result))
        .routes(routes!(alarms::put, alarms::list))
        .routes(routes!(alarms::show, alarms::delete))
        .routes(routes!(alarms::series))
        .routes(routes!(alarms::series_top))
        .routes(routes!(alarms::remote_write))
        .routes(routes!(apps::add, apps::list))
        // A whole organisation (40,000 hosts) is a few MB of TOML.
        .routes(routes!(apps::import_tree).layer(DefaultBodyLimit::max(64 * 1024 * 1024)))
        .routes(routes!(apps::export_tree))
        .routes(routes!(apps::show, apps::change))
        .routes(routes!(apps::move_node))
        .routes(routes!(apps::add_token, tokens::list))
        .routes(routes!(tokens::revoke))
        .routes(routes!(apps::report_for))
        .routes(routes!(apps::advance_clock))
        .routes(routes!(status))
        .routes(routes!(openapi))
        .routes(routes!(metrics))
        .split_for_parts();
    (router, doc::complete(openapi))
}

/// The OpenAPI description of every route, as `/api/v1/openapi.json` serves it.
pub fn openapi_spec() -> utoipa::openapi::OpenApi {
    described_routes().1
}

static SPEC: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    openapi_spec()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"the description does not serialise: {e}\"}}"))
});

fn api_router(state: AppState) -> Router {
    let body_limit = state.config.server.body_limit_bytes;
    described_routes()
        .0
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

/// Whether the server answers; needs no token.
#[utoipa::path(get, path = "/healthz", tag = "server", security(()),
    responses((status = 200, description = "The server is up", body = String, content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok\n"
}

/// The server's own metrics in Prometheus' text format. They are the whole organisation's,
/// so a scoped token may not read them.
#[utoipa::path(get, path = "/metrics", tag = "server",
    responses((status = 200, body = String, content_type = "text/plain; version=0.0.4")))]
async fn metrics(
    State(state): State<AppState>,
    axum::Extension(who): axum::Extension<crate::access::Principal>,
) -> Result<Response, ApiError> {
    who.require_unscoped("the server's metrics")?;
    state
        .metrics
        .set("vigil_runner_idle", i64::from(state.runner.is_idle()));
    let processing =
        crate::service::status::Processing::of(state.store.backlog().await?, crate::now());
    state.metrics.set(
        "vigil_processing_backlog",
        i64::try_from(processing.backlog).unwrap_or(i64::MAX),
    );
    state
        .metrics
        .set_float("vigil_processing_lag_seconds", processing.lag_seconds);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response())
}

/// Whether processing keeps up: events waiting, and how long the oldest has waited.
#[utoipa::path(get, path = "/api/v1/status", tag = "server",
    responses((status = 200, body = crate::service::status::Status)))]
async fn status(
    State(state): State<AppState>,
) -> Result<Json<crate::service::status::Status>, ApiError> {
    Ok(Json(crate::service::status::status(&state).await?))
}

/// This description.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "server",
    responses((status = 200, description = "OpenAPI 3.1", body = Object)))]
async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], SPEC.as_str()).into_response()
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

/// A JSON request body, read as JSON whatever its `Content-Type` says: `curl -d @alarm.json`
/// sends `application/x-www-form-urlencoded`, scripts often send none, and AWS-style APIs
/// take the body as JSON all the same. Bounded by `server.body_limit_bytes` (413 past it);
/// anything that is not the expected JSON is a 400 naming the error and the field's path.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|r| ApiError::from_body(r, state.config.server.body_limit_bytes))?;
        from_json(&body).map(JsonBody)
    }
}

fn from_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "the request body is empty; send a JSON document",
        ));
    }
    let mut reader = serde_json::Deserializer::from_slice(body);
    let error = match serde_path_to_error::deserialize(&mut reader) {
        Ok(value) => {
            reader.end().map_err(|e| {
                ApiError::bad_request(format!("request body is not valid JSON: {e}"))
            })?;
            return Ok(value);
        }
        Err(error) => error,
    };
    // JSON has one number type: `60.0` is the integer 60 to JSON Schema and to JavaScript
    // clients, but not to serde. Only a failed read pays for this second one.
    if error.inner().is_data() {
        if let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(body) {
            if integral_floats_to_integers(&mut value) {
                if let Ok(read) = serde_json::from_value(value) {
                    return Ok(read);
                }
            }
        }
    }
    let path = error.path().to_string();
    let error = error.into_inner();
    Err(if error.is_data() && path != "." {
        ApiError::bad_request(format!("request body: field `{path}`: {error}"))
    } else if error.is_data() {
        ApiError::bad_request(format!("request body: {error}"))
    } else {
        ApiError::bad_request(format!("request body is not valid JSON: {error}"))
    })
}

/// Rewrites numbers like `60.0` as `60` throughout `value`; whether any was.
fn integral_floats_to_integers(value: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::Number(number) => {
            let Some(float) = number.as_f64().filter(|_| number.is_f64()) else {
                return false;
            };
            // Within ±2^53 a float holds integers exactly.
            if float.fract() == 0.0 && float.abs() <= 9_007_199_254_740_992.0 {
                *number = serde_json::Number::from(float as i64);
                return true;
            }
            false
        }
        // Every number is rewritten, so no short-circuit.
        Value::Array(items) => items
            .iter_mut()
            .map(integral_floats_to_integers)
            .fold(false, |any, changed| any | changed),
        Value::Object(fields) => fields
            .values_mut()
            .map(integral_floats_to_integers)
            .fold(false, |any, changed| any | changed),
        _ => false,
    }
}

/// A store failure is vigil's own fault (500); handlers that expect a particular one (a
/// name taken: 409) match it before this applies.
impl From<vigil_store::StoreError> for ApiError {
    fn from(error: vigil_store::StoreError) -> ApiError {
        ApiError::internal(error)
    }
}

impl From<crate::access::Denied> for ApiError {
    fn from(denied: crate::access::Denied) -> ApiError {
        use crate::access::Denied;
        let status = match denied {
            Denied::Hidden(_) => StatusCode::NOT_FOUND,
            Denied::Forbidden(_) => StatusCode::FORBIDDEN,
        };
        ApiError::new(status, denied.to_string())
    }
}

impl From<crate::service::ServiceError> for ApiError {
    fn from(error: crate::service::ServiceError) -> ApiError {
        use crate::service::ServiceError;
        match error {
            ServiceError::Denied(denied) => denied.into(),
            ServiceError::NotFound(message) => ApiError::new(StatusCode::NOT_FOUND, message),
            ServiceError::Invalid(message) => ApiError::bad_request(message),
            ServiceError::Store(error) => ApiError::internal(error),
        }
    }
}

/// A path segment that does not read as the route's parameter (a job id that is no number).
impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::PathRejection) -> ApiError {
        ApiError::new(rejection.status(), rejection.body_text())
    }
}

/// A query string that does not read as the route's parameters: 400 naming the parameter.
impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> ApiError {
        ApiError::bad_request(rejection.body_text())
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

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::Method;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;
    use crate::{alarm_engine, auth, clock, jobs, metrics, ownership, pipeline, runner, Config};

    /// The API as `serve` wires it, over a real SQLite store in `dir`; with the admin token.
    async fn api(dir: &Path, body_limit_bytes: usize) -> (Router, String) {
        let mut config = Config::default();
        config.server.data_dir = dir.to_path_buf();
        config.server.body_limit_bytes = body_limit_bytes;
        let store = vigil_store::open(&vigil_store::StoreLocation::Sqlite(dir.join("vigil.db")))
            .await
            .expect("open the store");
        let (token, _) = auth::ensure_admin_token(store.as_ref(), dir)
            .await
            .expect("admin token");
        let wake = pipeline::Wake::default();
        let metrics = Arc::new(metrics::Metrics::default());
        let state = AppState {
            config: Arc::new(config),
            store: store.clone(),
            auth: Arc::new(auth::Auth::new(store.clone())),
            ingest: pipeline::start_ingest(store.clone(), wake.clone()),
            forward: Arc::new(crate::forward::Forwarder::disabled(metrics.clone())),
            query_api: None,
            bus: crate::bus::Bus::alone(),
            metrics,
            jobs: Arc::new(jobs::JobHub::default()),
            engine: Arc::new(alarm_engine::Engine::new(
                crate::now_ms(),
                alarm_engine::SeriesCaps {
                    total: 1000,
                    ..Default::default()
                },
            )),
            ownership: Arc::new(
                ownership::Ownership::load(store.as_ref(), Vec::new())
                    .await
                    .expect("ownership"),
            ),
            runner: Arc::new(runner::Runner::new(
                store.clone(),
                Vec::new(),
                Vec::new(),
                "test".into(),
                Duration::from_secs(30),
                Duration::ZERO,
            )),
            processor: wake,
            escalation: pipeline::Wake::default(),
            clock: Arc::new(clock::Clock::from_env()),
            sns_signatures: Arc::new(
                crate::sns_signature::Verifier::new(Vec::new()).expect("HTTP client"),
            ),
        };
        (router(state), token)
    }

    async fn call(
        app: &Router,
        token: &str,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<Body>,
    ) -> (StatusCode, Value) {
        let mut request = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let answer = app
            .clone()
            .oneshot(request.body(body.into()).expect("request"))
            .await
            .expect("the router answers");
        let status = answer.status();
        let bytes = axum::body::to_bytes(answer.into_body(), 1 << 20)
            .await
            .expect("answer body");
        let value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!(
                "{path} answered {status} with non-JSON {:?}",
                String::from_utf8_lossy(&bytes)
            )
        });
        (status, value)
    }

    fn alarm(name: &str) -> Value {
        json!({
            "AlarmName": name,
            "MetricName": "CPUUtilization",
            "Namespace": "vigil",
            "Dimensions": [{"Name": "host", "Value": "web-01"}],
            "Statistic": "Average",
            "Period": 60,
            "EvaluationPeriods": 3,
            "Threshold": 90,
            "ComparisonOperator": "GreaterThanThreshold"
        })
    }

    #[test]
    fn integral_floats_read_as_integers_and_nothing_else_changes() {
        #[derive(Debug, serde::Deserialize)]
        struct Sample {
            count: u64,
            value: f64,
        }
        let read: Sample = from_json(br#"{"count": 60.0, "value": 1.5}"#).unwrap();
        assert_eq!((read.count, read.value), (60, 1.5));
        let refused = from_json::<Sample>(br#"{"count": 60.5, "value": 1}"#).unwrap_err();
        assert!(refused.message.contains("`count`"), "{}", refused.message);
    }

    /// What `curl -d`, a bare script and a careful client send.
    const CONTENT_TYPES: [Option<&str>; 5] = [
        None,
        Some("application/x-www-form-urlencoded"),
        Some("text/plain"),
        Some("application/json"),
        Some("application/json; charset=utf-8"),
    ];

    #[tokio::test]
    async fn json_bodies_are_read_whatever_the_content_type() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (app, token) = api(dir.path(), 1 << 20).await;
        for (i, content_type) in CONTENT_TYPES.into_iter().enumerate() {
            let name = format!("cpu-{i}");
            let (status, body) = call(
                &app,
                &token,
                Method::POST,
                "/api/v1/alarms",
                content_type,
                alarm(&name).to_string(),
            )
            .await;
            assert_eq!(status, StatusCode::CREATED, "{content_type:?}: {body}");
            assert_eq!(body, json!({"alarm": name, "replaced": false}));
            let (status, body) = call(
                &app,
                &token,
                Method::GET,
                &format!("/api/v1/alarms/{name}"),
                None,
                Body::empty(),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{content_type:?}: {body}");
            assert_eq!(body["alarm"]["Threshold"], json!(90.0), "{body}");

            // A POST and a PATCH of another resource, the same way.
            let code = format!("app_{i}");
            let (status, body) = call(
                &app,
                &token,
                Method::POST,
                "/api/v1/apps",
                content_type,
                json!({"appcode": code, "name": "Shop", "kind": "application"}).to_string(),
            )
            .await;
            assert_eq!(status, StatusCode::CREATED, "{content_type:?}: {body}");
            let (status, body) = call(
                &app,
                &token,
                Method::PATCH,
                &format!("/api/v1/apps/{code}"),
                content_type,
                json!({"name": "Shop front"}).to_string(),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{content_type:?}: {body}");
            let (_, body) = call(
                &app,
                &token,
                Method::GET,
                &format!("/api/v1/apps/{code}"),
                None,
                Body::empty(),
            )
            .await;
            assert_eq!(body["node"]["name"], "Shop front", "{body}");
        }
    }

    #[tokio::test]
    async fn bad_bodies_are_400s_naming_the_error_and_the_field() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (app, token) = api(dir.path(), 1 << 20).await;
        let mut wrong_type = alarm("cpu");
        wrong_type["Dimensions"][0]["Value"] = json!(7);
        let mut missing = alarm("cpu");
        missing
            .as_object_mut()
            .expect("object")
            .remove("MetricName");
        let cases: [(&str, String, &str); 6] = [
            ("form fields", "AlarmName=cpu&Threshold=90".into(), "request body is not valid JSON: expected value at line 1 column 1"),
            ("empty", "  \n".into(), "the request body is empty; send a JSON document"),
            ("cut short", r#"{"AlarmName": "cpu""#.into(), "request body is not valid JSON: EOF while parsing an object at line 1 column 19"),
            ("trailing text", format!("{} x", alarm("cpu")), "request body is not valid JSON: trailing characters at line 1 column "),
            ("wrong type", wrong_type.to_string(), "request body: field `Dimensions[0].Value`: invalid type: integer `7`, expected a string at line 1 column "),
            ("missing field", missing.to_string(), "request body: missing field `MetricName` at line 1 column "),
        ];
        for content_type in CONTENT_TYPES {
            for (case, body, expected) in &cases {
                let (status, answer) = call(
                    &app,
                    &token,
                    Method::POST,
                    "/api/v1/alarms",
                    content_type,
                    body.clone(),
                )
                .await;
                assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: {answer}");
                let message = answer["error"].as_str().unwrap_or_default();
                assert!(
                    message.starts_with(expected),
                    "{case} ({content_type:?}): expected `{expected}…`, got {answer}"
                );
                assert_eq!(answer.as_object().map(|o| o.len()), Some(1), "{answer}");
            }
        }
        let (_, listed) = call(
            &app,
            &token,
            Method::GET,
            "/api/v1/alarms",
            None,
            Body::empty(),
        )
        .await;
        assert_eq!(listed["alarms"], json!([]), "nothing was defined");
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_413s() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (app, token) = api(dir.path(), 1024).await;
        let mut big = alarm("cpu");
        big["AlarmDescription"] = json!("x".repeat(2000));
        for content_type in CONTENT_TYPES {
            let (status, answer) = call(
                &app,
                &token,
                Method::POST,
                "/api/v1/alarms",
                content_type,
                big.to_string(),
            )
            .await;
            assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
            assert_eq!(
                answer,
                json!({"error": "request body is larger than the limit of 1024 bytes (server.body_limit_bytes)"})
            );
        }
    }
}
