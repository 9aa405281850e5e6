//! Bearer tokens. Only SHA-256 hashes are stored; the plaintext exists in the admin.token
//! file (mode 0600) and with whoever holds it. Basic auth with the token as password is
//! accepted too, so an SNS endpoint URL can carry it (`https://x:TOKEN@host/...`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use vigil_store::{Store, TokenRecord, TokenRole};

use crate::access::{Principal, Role};
use crate::api::ApiError;
use crate::AppState;

pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// Where agents talk to the server; host tokens work here and nowhere else.
pub const AGENT_PREFIX: &str = "/api/v1/agent/";

pub struct Auth {
    store: Arc<dyn Store>,
    /// Known-good token hashes; the store is asked only on a miss.
    cache: RwLock<HashMap<String, TokenRecord>>,
    bus: crate::bus::Bus,
}

impl Auth {
    pub fn new(store: Arc<dyn Store>) -> Auth {
        Auth {
            store,
            cache: RwLock::new(HashMap::new()),
            bus: crate::bus::Bus::alone(),
        }
    }

    /// Revocations here also reach every other member's cache.
    pub fn with_bus(self, bus: crate::bus::Bus) -> Auth {
        Auth { bus, ..self }
    }

    /// Drops cached tokens, here and on every other member, so a revocation takes effect on
    /// the next request wherever it arrives.
    pub fn forget_cached(&self) {
        self.forget_cached_local();
        self.bus.publish(crate::bus::Signal::Tokens);
    }

    /// Drops this member's cached tokens (another member changed them).
    pub fn forget_cached_local(&self) {
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    async fn lookup(&self, token: &str) -> Result<Option<TokenRecord>, vigil_store::StoreError> {
        let hash = hash_token(token);
        if let Some(found) = self
            .cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&hash)
        {
            return Ok(Some(found.clone()));
        }
        let found = self
            .store
            .token_by_hash(&hash)
            .await?
            .filter(|t| !t.revoked);
        if let Some(record) = &found {
            self.cache
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(hash, record.clone());
        }
        Ok(found)
    }
}

pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!(
        "vgl_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Makes sure an admin token exists: reads `DIR/admin.token`, or creates one on first
/// start. Returns the token and whether it was just created.
pub async fn ensure_admin_token(
    store: &dyn Store,
    data_dir: &Path,
) -> std::io::Result<(String, bool)> {
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    let (token, created) = match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => (text.trim().to_string(), false),
        Ok(_) => (generate_token(), true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (generate_token(), true),
        Err(e) => return Err(e),
    };
    // Re-registering the file's token keeps a copied data dir or a restored database usable.
    store
        .put_token("admin", &hash_token(&token), TokenRole::Admin, crate::now())
        .await
        .map_err(std::io::Error::other)?;
    if created {
        crate::write_private_file(&path, &token)?;
    }
    Ok((token, created))
}

/// The token a request carries: `Bearer T`, or Basic with T as the password.
fn presented_token(req: &Request) -> Option<String> {
    let header = req.headers().get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = header.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.trim().to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (_, password) = text.split_once(':')?;
        return Some(password.to_string());
    }
    None
}

/// Paths anyone may call: load balancers and orchestrators probe them without secrets.
const PUBLIC_PATHS: [&str; 1] = ["/healthz"];

pub async fn require_token(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    if PUBLIC_PATHS.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let Some(token) = presented_token(&req) else {
        return ApiError::unauthorized("missing credentials: send `Authorization: Bearer <token>`")
            .into_response();
    };
    match state.auth.lookup(&token).await {
        Ok(Some(record)) => {
            let role = match (record.role, record.name.strip_prefix("host:")) {
                (TokenRole::Host, Some(host)) => Role::Host(host.to_string()),
                (TokenRole::Admin, _) => Role::Admin,
                (TokenRole::Host, None) => {
                    return ApiError::new(StatusCode::FORBIDDEN, "this token has no known role")
                        .into_response()
                }
            };
            let agent_path = req.uri().path().starts_with(AGENT_PREFIX);
            match (&role, agent_path) {
                (Role::Host(_), false) => {
                    return ApiError::new(
                        StatusCode::FORBIDDEN,
                        "a host token may only call /api/v1/agent/ routes",
                    )
                    .into_response()
                }
                (Role::Admin, true) => {
                    return ApiError::new(
                        StatusCode::FORBIDDEN,
                        "agent routes need a host token (vigil host add NAME)",
                    )
                    .into_response()
                }
                _ => {}
            }
            req.extensions_mut().insert(Principal {
                name: record.name,
                role,
                scope: record.scope,
            });
            next.run(req).await
        }
        Ok(None) => ApiError::unauthorized("invalid or revoked token").into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hash_stably() {
        let a = generate_token();
        assert!(a.starts_with("vgl_") && a.len() > 40);
        assert_ne!(a, generate_token());
        assert_eq!(hash_token("x"), hash_token("x"));
        assert_eq!(hash_token("x").len(), 64);
    }
}
