//! Browser sessions: an admin token is exchanged once for a random session id in an
//! HttpOnly, SameSite=Strict cookie. Sessions live in memory (a restart logs everyone out)
//! and are keyed by the id's SHA-256, so neither a dump of the map nor lookup timing gives
//! away a usable id. Every state-changing request must also carry the session's CSRF
//! token in `X-CSRF-Token`, compared in constant time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Json};
use base64::Engine;
use rand::RngCore;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{UiError, UiState};
use crate::auth::hash_token;

const COOKIE: &str = "vigil_session";
const CSRF_HEADER: &str = "x-csrf-token";
/// How long a login lasts, whatever the activity: a stolen cookie is good for a day at most.
const LIFETIME: Duration = Duration::from_secs(12 * 3600);

struct Session {
    principal: String,
    scope: Option<String>,
    csrf: String,
    expires: Instant,
    expires_at: String,
}

/// A logged-in caller, put in request extensions for handlers.
#[derive(Debug, Clone)]
pub(super) struct SessionInfo {
    /// The token's name (`admin`): timeline entries say who acted.
    pub principal: String,
    /// The Appcode subtree a scoped token is limited to; `None` sees everything.
    pub scope: Option<String>,
    csrf: String,
    expires_at: String,
}

#[derive(Default)]
pub(crate) struct Sessions {
    by_hash: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.by_hash.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a session; returns its id, which only the cookie holds from now on.
    fn create(&self, principal: &str, scope: Option<String>, now: Instant) -> String {
        let id = random_text();
        let session = Session {
            principal: principal.to_string(),
            scope,
            csrf: random_text(),
            expires: now + LIFETIME,
            expires_at: (chrono::Utc::now() + LIFETIME)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        let mut sessions = self.lock();
        // Logins are rare, so this is where expired sessions are swept.
        sessions.retain(|_, s| s.expires > now);
        sessions.insert(hash_token(&id), session);
        id
    }

    fn get(&self, id: &str, now: Instant) -> Option<SessionInfo> {
        let hash = hash_token(id);
        let mut sessions = self.lock();
        match sessions.get(&hash) {
            Some(s) if s.expires > now => Some(SessionInfo {
                principal: s.principal.clone(),
                scope: s.scope.clone(),
                csrf: s.csrf.clone(),
                expires_at: s.expires_at.clone(),
            }),
            Some(_) => {
                sessions.remove(&hash);
                None
            }
            None => None,
        }
    }

    fn remove(&self, id: &str) {
        self.lock().remove(&hash_token(id));
    }
}

fn random_text() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Equal-length secrets compared without an early exit, so timing does not tell how much
/// of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The session id from the request's `Cookie` headers.
fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
        .filter(|v| !v.is_empty())
}

/// The cookie, `Secure` too when a TLS-terminating proxy says the browser used HTTPS
/// (vigil itself speaks plain HTTP, where a `Secure` cookie would never come back).
fn cookie_header(headers: &HeaderMap, value: &str, max_age_secs: u64) -> HeaderValue {
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    let secure = if https { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_secs}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("vigil_session=; Path=/; Max-Age=0"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LoginRequest {
    token: String,
}

/// `POST /ui/api/login {"token": "…"}`: only admin tokens may log in. No CSRF token can
/// exist before a session does; a forged login would need an admin token anyway.
pub(super) async fn login(
    State(state): State<UiState>,
    headers: HeaderMap,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> Result<Response, UiError> {
    let Json(request) = body.map_err(|e| UiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let hash = hash_token(request.token.trim());
    let record = super::blocking(&state, move |store| store.token_by_hash(&hash)).await?;
    // Scoped tokens log in too: every page's data is filtered to their subtree.
    let Some(record) = record.filter(|r| !r.revoked && r.role == "admin") else {
        tracing::warn!("UI login refused: not a valid admin token");
        return Err(UiError::new(
            StatusCode::UNAUTHORIZED,
            "that is not a valid admin token",
        ));
    };
    let id = state
        .sessions
        .create(&record.name, record.scope.clone(), Instant::now());
    tracing::info!(principal = %record.name, "UI login");
    let mut response = Json(json!({"logged_in": true})).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        cookie_header(&headers, &id, LIFETIME.as_secs()),
    );
    Ok(response)
}

/// `GET /ui/api/session`: what the pages need to make changes.
pub(super) async fn show(Extension(session): Extension<SessionInfo>) -> Json<Value> {
    Json(json!({
        "user": session.principal,
        "csrf_token": session.csrf,
        "expires_at": session.expires_at,
    }))
}

/// `POST /ui/api/logout`: ends the session here and in the browser.
pub(super) async fn logout(State(state): State<UiState>, headers: HeaderMap) -> Response {
    if let Some(id) = session_id(&headers) {
        state.sessions.remove(&id);
    }
    let mut response = Json(json!({"logged_out": true})).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cookie_header(&headers, "", 0));
    response
}

/// Guards `/ui/api/…`: 401 without a session, 403 for a change without its CSRF token.
pub(super) async fn require_for_api(
    State(state): State<UiState>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(session) =
        session_id(req.headers()).and_then(|id| state.sessions.get(&id, Instant::now()))
    else {
        return UiError::new(
            StatusCode::UNAUTHORIZED,
            "not logged in (or the session expired)",
        )
        .into_response();
    };
    let reads_only = matches!(*req.method(), Method::GET | Method::HEAD);
    if !reads_only {
        let presented = req
            .headers()
            .get(CSRF_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !constant_time_eq(presented, session.csrf.as_bytes()) {
            tracing::warn!(path = %req.uri().path(), "UI change refused: missing or wrong CSRF token");
            return UiError::new(
                StatusCode::FORBIDDEN,
                "missing or wrong CSRF token (X-CSRF-Token)",
            )
            .into_response();
        }
    }
    req.extensions_mut().insert(session);
    next.run(req).await
}

/// Guards pages: without a session, off to the login page.
pub(super) async fn require_for_page(
    State(state): State<UiState>,
    req: Request,
    next: Next,
) -> Response {
    match session_id(req.headers()).and_then(|id| state.sessions.get(&id, Instant::now())) {
        Some(_) => next.run(req).await,
        None => Redirect::to("/ui/login").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_are_keyed_by_hash() {
        let sessions = Sessions::default();
        let start = Instant::now();
        let id = sessions.create("admin", None, start);
        assert!(
            !sessions.lock().contains_key(&id),
            "the raw id is not stored"
        );
        let info = sessions.get(&id, start).expect("fresh session");
        assert_eq!(info.principal, "admin");
        assert_ne!(info.csrf, id);
        assert!(sessions.get("forged", start).is_none());
        assert!(sessions.get(&id, start + LIFETIME).is_none(), "expired");
        assert!(sessions.lock().is_empty(), "an expired session is dropped");
        let id = sessions.create("admin", None, start);
        sessions.remove(&id);
        assert!(sessions.get(&id, start).is_none());
    }

    #[test]
    fn csrf_comparison_needs_the_exact_token() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"abc"));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; b=2"));
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; vigil_session=s3cr3t"),
        );
        assert_eq!(session_id(&headers).as_deref(), Some("s3cr3t"));
        assert_eq!(session_id(&HeaderMap::new()), None);
        let cookie = cookie_header(&headers, "x", 60);
        assert_eq!(
            cookie.to_str().unwrap(),
            "vigil_session=x; HttpOnly; SameSite=Strict; Path=/; Max-Age=60"
        );
    }
}
