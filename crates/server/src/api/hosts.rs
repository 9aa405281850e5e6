//! Host enrollment (admin): `vigil host add|revoke`, `vigil hosts`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use vigil_core::valid_host_name;
use vigil_store::Enrollment;

use super::{ApiError, JsonBody};
use crate::access::Principal;
use crate::auth::{generate_token, hash_token};
use crate::service::{
    self,
    hosts::{HostDetail, HostQuery},
};
use crate::{now, AppState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewHost {
    name: String,
    #[serde(default)]
    appcode: Option<String>,
    #[serde(default)]
    instance_id: Option<String>,
}

fn valid_instance_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// `POST /api/v1/hosts`: enrolls a host and returns its agent token, shown only here.
pub async fn add(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Result<JsonBody<NewHost>, ApiError>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let JsonBody(new) = body?;
    if !who.sees(&state.ownership, new.appcode.as_deref()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "a scoped token enrolls hosts only with an appcode inside its scope",
        ));
    }
    if !valid_host_name(&new.name) {
        return Err(ApiError::bad_request(format!(
            "name `{}` is not a host name: use letters, digits, '-', '.', '_' (at most 253)",
            new.name
        )));
    }
    if let Some(code) = new.appcode.as_deref() {
        vigil_ownership::Appcode::parse(code)
            .map_err(|e| ApiError::bad_request(format!("appcode: {e}")))?;
    }
    if let Some(id) = new.instance_id.as_deref().filter(|i| !valid_instance_id(i)) {
        return Err(ApiError::bad_request(format!(
            "instance_id `{id}` is not an EC2 instance id such as i-0123456789abcdef0"
        )));
    }
    let token = generate_token();
    let hash = hash_token(&token);
    let name = new.name.clone();
    let appcode = new.appcode.clone();
    let enrollment = vigil_store::NewHost {
        name: new.name,
        appcode: new.appcode,
        instance_id: new.instance_id,
        token_hash: hash,
    };
    let outcome = state.store.enroll_host(enrollment, now()).await?;
    // A renewed host's old token must stop working now, not when it falls out of a cache.
    state.auth.forget_cached();
    if let Some(appcode) = &appcode {
        let mut inner = state.ownership.write();
        let crate::ownership::Inner { tree, hosts } = &mut *inner;
        if tree.get(appcode).is_some() {
            if let Err(e) = hosts.bind(tree, &name, appcode) {
                tracing::warn!(host = %name, appcode = %appcode, error = %e, "host not bound");
            }
        }
    }
    tracing::info!(host = %name, renewed = outcome == Enrollment::Renewed, "host enrolled");
    let status = match outcome {
        Enrollment::Created => StatusCode::CREATED,
        Enrollment::Renewed => StatusCode::OK,
    };
    Ok((
        status,
        Json(json!({"host": name, "token": token, "renewed": outcome == Enrollment::Renewed})),
    ))
}

/// `GET /api/v1/hosts[?state=silent]`: every host vigil knows of, with its lifecycle.
pub async fn list(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    query: Result<Query<HostQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query?;
    let hosts = service::hosts::list(&state, &who, &query).await?;
    Ok(Json(json!({"hosts": hosts})))
}

/// `GET /api/v1/hosts/{name}`: with the last metrics its agent sent.
pub async fn show(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<HostDetail>, ApiError> {
    Ok(Json(service::hosts::detail(&state, &who, &name).await?))
}

/// `POST /api/v1/hosts/{name}/revoke`: its agent's token stops working immediately.
pub async fn revoke(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    service::hosts::visible(&state, &who, &name).await?;
    let revoked = state.store.revoke_host(&name, now()).await?;
    state.auth.forget_cached();
    tracing::info!(host = %name, "host revoked");
    Ok(Json(
        json!({"host": name, "revoked": true, "changed": revoked}),
    ))
}
