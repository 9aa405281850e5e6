//! The web UI: pages and assets embedded in the binary, served at `/` and under `/ui/`.
//!
//! Pages are one shell (`assets/index.html`) that `assets/app.js` fills from JSON under
//! `/ui/api/…`; there is no build step. Access is by session cookie, obtained by logging in
//! with an admin token (see [`session`]). Every response carries a strict CSP, so the pages
//! have no inline script or style and the JS builds the DOM without `innerHTML`.

mod data;
mod session;

use axum::extract::{DefaultBodyLimit, Path};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde_json::json;
use vigil_integrations::html_escape;

use crate::AppState;

/// What the UI's handlers share: the server's state (sessions live in its store).
#[derive(Clone)]
pub(crate) struct UiState {
    app: AppState,
}

/// Login requests and the UI's JSON posts are tiny; nothing bigger is read.
const BODY_LIMIT: usize = 16 * 1024;

/// Routes for `/` and `/ui/…`; everything else belongs to the API.
pub fn router(state: AppState) -> Router {
    let ui = UiState { app: state };
    let json_api = Router::new()
        .route("/ui/api/session", get(session::show))
        .route("/ui/api/logout", post(session::logout))
        .route("/ui/api/incidents", get(data::incidents))
        .route("/ui/api/incidents/{key}", get(data::incident))
        .route("/ui/api/incidents/{key}/ack", post(data::acknowledge))
        .route("/ui/api/incidents/{key}/resolve", post(data::resolve))
        .route("/ui/api/alarms", get(data::alarms))
        .route("/ui/api/alarms/{name}", get(data::alarm))
        .route("/ui/api/series", get(data::series))
        .route("/ui/api/hosts", get(data::hosts))
        .route("/ui/api/apps", get(data::apps))
        .route("/ui/api/status", get(data::status))
        .route("/ui/api/{*rest}", any(api_not_found))
        .route_layer(middleware::from_fn_with_state(
            ui.clone(),
            session::require_for_api,
        ));
    let pages = Router::new()
        .route("/", get(shell))
        .route("/ui", get(shell))
        .route("/ui/incidents/{key}", get(shell))
        .route("/ui/alarms", get(shell))
        .route("/ui/alarms/{name}", get(shell))
        .route("/ui/hosts", get(shell))
        .route("/ui/apps", get(shell))
        .route("/ui/{*rest}", get(page_not_found))
        .route_layer(middleware::from_fn_with_state(
            ui.clone(),
            session::require_for_page,
        ));
    let public = Router::new()
        .route("/ui/login", get(login_page))
        .route("/ui/api/login", post(session::login))
        .route("/ui/assets/{file}", get(asset));
    Router::new()
        .merge(json_api)
        .merge(pages)
        .merge(public)
        .layer(middleware::map_response(security_headers))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(ui)
}

async fn shell() -> Response {
    html(StatusCode::OK, include_str!("assets/index.html"))
}

async fn login_page() -> Response {
    html(StatusCode::OK, include_str!("assets/login.html"))
}

async fn asset(Path(file): Path<String>) -> Response {
    let (content_type, body): (&str, &'static [u8]) = match file.as_str() {
        "app.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("assets/app.js"),
        ),
        "login.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("assets/login.js"),
        ),
        "app.css" => ("text/css; charset=utf-8", include_bytes!("assets/app.css")),
        "favicon.svg" => ("image/svg+xml", include_bytes!("assets/favicon.svg")),
        _ => {
            return error_page(
                StatusCode::NOT_FOUND,
                "Not found",
                "There is no such asset.",
            )
        }
    };
    // Assets change only with the binary; revalidating each time keeps an upgrade visible.
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn page_not_found() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no such page in vigil's UI.",
    )
}

async fn api_not_found() -> UiError {
    UiError::new(StatusCode::NOT_FOUND, "no such UI API route")
}

/// Headers every UI response carries: no inline code, no framing, no referrer leaks.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let fixed: [(HeaderName, &str); 4] = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    // Pages and JSON show live incident data: never keep them in a cache.
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

fn html(status: StatusCode, body: impl Into<axum::body::Body>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

/// A readable page for errors met while browsing.
fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let title = html_escape(title);
    let message = html_escape(message);
    html(
        status,
        format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{title} · vigil</title><link rel=\"stylesheet\" href=\"/ui/assets/app.css\">\
             </head><body><main class=\"narrow\"><h1>{title}</h1><p>{message}</p>\
             <p><a href=\"/\">Back to incidents</a></p></main></body></html>\n"
        ),
    )
}

/// An error of the UI's JSON API: `{"error": "…"}`. Unlike the token API's errors it
/// carries no `WWW-Authenticate`, which would make a browser pop up a password dialog.
#[derive(Debug)]
pub(crate) struct UiError {
    status: StatusCode,
    message: String,
}

impl UiError {
    fn new(status: StatusCode, message: impl Into<String>) -> UiError {
        UiError {
            status,
            message: message.into(),
        }
    }

    /// vigil's own fault: logged in full, reported without internals.
    fn internal(error: impl std::fmt::Display) -> UiError {
        tracing::error!(error = %error, "UI request failed");
        UiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; see the server log",
        )
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"error": self.message}))).into_response()
    }
}

impl From<crate::service::ServiceError> for UiError {
    fn from(error: crate::service::ServiceError) -> UiError {
        use crate::access::Denied;
        use crate::service::ServiceError;
        match error {
            ServiceError::Denied(denied @ Denied::Hidden(_)) => {
                UiError::new(StatusCode::NOT_FOUND, denied.to_string())
            }
            ServiceError::Denied(denied @ Denied::Forbidden(_)) => {
                UiError::new(StatusCode::FORBIDDEN, denied.to_string())
            }
            ServiceError::NotFound(message) => UiError::new(StatusCode::NOT_FOUND, message),
            ServiceError::Invalid(message) => UiError::new(StatusCode::BAD_REQUEST, message),
            ServiceError::Store(error) => UiError::internal(error),
        }
    }
}

impl From<axum::extract::rejection::QueryRejection> for UiError {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> UiError {
        UiError::new(StatusCode::BAD_REQUEST, rejection.body_text())
    }
}

/// A store failure is vigil's own fault (500).
impl From<vigil_store::StoreError> for UiError {
    fn from(error: vigil_store::StoreError) -> UiError {
        UiError::internal(error)
    }
}
