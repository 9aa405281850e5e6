//! Browser sessions: an admin token is exchanged once for a random session id in an
//! HttpOnly, SameSite=Strict cookie. Sessions live in the store, so a restart logs nobody
//! out, and are kept by the id's SHA-256: neither a copy of the database nor lookup timing
//! gives away a usable id. Every state-changing request must also carry the session's CSRF
//! token in `X-CSRF-Token`, compared in constant time.

use std::time::Duration;

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
use vigil_store::{SessionRecord, Store, StoreError, Timestamp, TokenRole};

use super::{UiError, UiState};
use crate::auth::hash_token;
use crate::now;

const COOKIE: &str = "vigil_session";
const CSRF_HEADER: &str = "x-csrf-token";
/// How long a login lasts, whatever the activity: a stolen cookie is good for a day at most.
const LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// A logged-in caller, put in request extensions for handlers.
#[derive(Debug, Clone)]
pub(super) struct SessionInfo {
    /// The token's name (`admin`): timeline entries say who acted.
    pub principal: String,
    /// The Appcode subtree a scoped token is limited to; `None` sees everything.
    pub scope: Option<String>,
    csrf: String,
    expires_at: Timestamp,
}

impl SessionInfo {
    /// Who this session acts as, for the access rule the token API applies too.
    pub fn principal(&self) -> crate::access::Principal {
        crate::access::Principal {
            name: self.principal.clone(),
            role: crate::access::Role::Admin,
            scope: self.scope.clone(),
        }
    }
}

impl From<SessionRecord> for SessionInfo {
    fn from(record: SessionRecord) -> SessionInfo {
        SessionInfo {
            principal: record.principal,
            scope: record.scope,
            csrf: record.csrf,
            expires_at: record.expires_at,
        }
    }
}

/// Starts a session for a token's holder; returns its id, which only the cookie holds
/// from then on (the store keeps its hash).
async fn start(
    store: &dyn Store,
    principal: &str,
    scope: Option<String>,
    now: Timestamp,
) -> Result<String, StoreError> {
    let id = random_text();
    let lifetime = chrono::Duration::from_std(LIFETIME).unwrap_or(chrono::Duration::hours(12));
    let record = SessionRecord {
        id_hash: hash_token(&id),
        principal: principal.to_string(),
        scope,
        csrf: random_text(),
        expires_at: vigil_store::to_millis(now + lifetime),
    };
    store.create_session(record, now).await?;
    Ok(id)
}

/// The unexpired session an id names.
async fn find(
    store: &dyn Store,
    id: &str,
    now: Timestamp,
) -> Result<Option<SessionInfo>, StoreError> {
    Ok(store
        .session(&hash_token(id), now)
        .await?
        .map(SessionInfo::from))
}

/// The session the request's cookie names, if it is still good.
async fn current(state: &UiState, headers: &HeaderMap) -> Result<Option<SessionInfo>, StoreError> {
    match session_id(headers) {
        Some(id) => find(state.app.store.as_ref(), &id, now()).await,
        None => Ok(None),
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
    let store = state.app.store.as_ref();
    let record = store
        .token_by_hash(&hash_token(request.token.trim()))
        .await?;
    // Scoped tokens log in too: every page's data is filtered to their subtree.
    let Some(record) = record.filter(|r| !r.revoked && r.role == TokenRole::Admin) else {
        tracing::warn!("UI login refused: not a valid admin token");
        return Err(UiError::new(
            StatusCode::UNAUTHORIZED,
            "that is not a valid admin token",
        ));
    };
    let id = start(store, &record.name, record.scope.clone(), now()).await?;
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
        "expires_at": session
            .expires_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }))
}

/// `POST /ui/api/logout`: ends the session here and in the browser.
pub(super) async fn logout(State(state): State<UiState>, headers: HeaderMap) -> Response {
    if let Some(id) = session_id(&headers) {
        if let Err(e) = state.app.store.delete_session(&hash_token(&id)).await {
            return UiError::from(e).into_response();
        }
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
    let session = match current(&state, req.headers()).await {
        Ok(session) => session,
        Err(e) => return UiError::from(e).into_response(),
    };
    let Some(session) = session else {
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
    match current(&state, req.headers()).await {
        Ok(Some(_)) => next.run(req).await,
        Ok(None) => Redirect::to("/ui/login").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "UI session lookup failed");
            super::error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "vigil could not check your session; see the server log.",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_store::AccessStore;

    #[tokio::test]
    async fn sessions_live_in_the_store_by_hash_and_expire() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = vigil_store::SqliteStore::open(&dir.path().join("vigil.db"))
            .await
            .expect("store opens");
        let start_at = now();
        let id = start(&store, "admin", Some("web".into()), start_at)
            .await
            .expect("session starts");
        assert!(
            store
                .session(&id, start_at)
                .await
                .expect("lookup")
                .is_none(),
            "the raw id is not stored"
        );
        let info = find(&store, &id, start_at)
            .await
            .expect("lookup")
            .expect("fresh session");
        assert_eq!(info.principal, "admin");
        assert_eq!(info.scope.as_deref(), Some("web"));
        assert_ne!(info.csrf, id);
        assert!(find(&store, "forged", start_at)
            .await
            .expect("lookup")
            .is_none());
        let lifetime = chrono::Duration::from_std(LIFETIME).expect("lifetime");
        assert!(
            find(&store, &id, start_at + lifetime)
                .await
                .expect("lookup")
                .is_none(),
            "expired"
        );
        let id = start(&store, "admin", None, start_at)
            .await
            .expect("session starts");
        store
            .delete_session(&hash_token(&id))
            .await
            .expect("logout");
        assert!(find(&store, &id, start_at).await.expect("lookup").is_none());
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
