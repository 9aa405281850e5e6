//! Listing and revoking API tokens by name (`vigil token ls`, `vigil token revoke`). Made
//! with `POST /api/v1/tokens` (apps.rs). Nothing here ever carries a hash or a secret.
//!
//! A scoped caller sees and revokes only tokens scoped inside its own subtree; every other
//! name answers 404, as if it did not exist (the one access rule, crate::access). The admin
//! token and host tokens are listed to an unscoped caller but not revocable here: the
//! admin token lives in DATA_DIR/admin.token, a host's token goes with `vigil host revoke`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Serialize;
use utoipa::ToSchema;
use vigil_store::{Timestamp, TokenRole};

use super::ApiError;
use crate::access::Principal;
use crate::{now, AppState};

/// What kind of token: `admin` (unscoped or scoped, made with `vigil token add`, or the
/// server's own `admin`) or `host` (an agent's, from `vigil host add`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Admin,
    Host,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenSummary {
    pub name: String,
    pub kind: TokenKind,
    /// The Appcode whose subtree the token is limited to; `null` for an unscoped token.
    pub scope: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When it was revoked; `null` while it works.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Timestamp>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    /// By name; revoked tokens included.
    pub tokens: Vec<TokenSummary>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenRevoked {
    pub name: String,
    pub revoked: bool,
    /// False when it was revoked already.
    pub changed: bool,
}

/// Every token the caller may see, by name, with its scope and times; never a hash.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "apps",
    responses((status = 200, body = TokenList)))]
pub async fn list(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Json<TokenList>, ApiError> {
    let tokens = state
        .store
        .tokens()
        .await?
        .into_iter()
        .filter(|t| who.sees(&state.ownership, t.scope.as_deref()))
        .map(|t| TokenSummary {
            name: t.name,
            kind: match t.role {
                TokenRole::Admin => TokenKind::Admin,
                TokenRole::Host => TokenKind::Host,
            },
            scope: t.scope,
            created_at: t.created_at,
            revoked_at: t.revoked_at,
        })
        .collect();
    Ok(Json(TokenList { tokens }))
}

/// Revokes a token made with `vigil token add`: it is refused from the next request on.
/// The admin token and host tokens are not revoked here (400 says where).
#[utoipa::path(post, path = "/api/v1/tokens/{name}/revoke", tag = "apps",
    params(("name" = String, Path, description = "The token's name")),
    responses((status = 200, body = TokenRevoked),
        (status = 422, description = "The admin token or a host token, which this route does not revoke; the message says how they are", body = super::doc::ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<TokenRevoked>, ApiError> {
    let token = state
        .store
        .tokens()
        .await?
        .into_iter()
        .find(|t| t.name == name);
    let hidden = || format!("token `{name}`");
    let Some(token) = token else {
        return Err(crate::access::Denied::Hidden(hidden()).into());
    };
    who.check(&state.ownership, token.scope.as_deref(), hidden)?;
    if token.role == TokenRole::Host {
        let host = name.strip_prefix("host:").unwrap_or(&name);
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!(
            "`{name}` is a host's agent token; revoke it with `vigil host revoke {host}` (POST /api/v1/hosts/{host}/revoke)"
        )));
    }
    if name == "admin" {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "`admin` is the server's own token (DATA_DIR/admin.token) and cannot be revoked; to replace it, stop vigil, delete that file and start it again",
        ));
    }
    let changed = state.store.revoke_token(&name, now()).await?;
    // Cached tokens would otherwise keep working until the cache is next cleared.
    state.auth.forget_cached();
    tracing::info!(token = %name, by = %who.name, "token revoked");
    Ok(Json(TokenRevoked {
        name,
        revoked: true,
        changed,
    }))
}
