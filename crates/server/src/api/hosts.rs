//! Host enrollment (admin): `vigil host add|revoke`, `vigil hosts`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vigil_core::valid_host_name;
use vigil_store::Enrollment;

use super::{ApiError, JsonBody};
use crate::access::Principal;
use crate::auth::{generate_token, hash_token};
use crate::service;
use crate::service::hosts::{HostDetail, HostQuery, HostView};
use crate::{now, AppState};

/// A host to enroll (or to give a new token: enrolling again renews it).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewHost {
    /// Letters, digits, `-`, `.`, `_`; at most 253 characters.
    #[schema(
        min_length = 1,
        max_length = 253,
        pattern = r"^[A-Za-z0-9_][A-Za-z0-9._-]*$"
    )]
    name: String,
    /// The application it belongs to.
    #[serde(default)]
    #[schema(value_type = Option<vigil_ownership::Appcode>)]
    appcode: Option<String>,
    /// Its EC2 instance id, so CloudWatch alarms naming it find it.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9-]+$")]
    instance_id: Option<String>,
}

/// An enrolled host's agent token: shown here once, stored only as a hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct Enrolled {
    pub host: String,
    pub token: String,
    /// Whether the host was enrolled before (its old token stops working).
    pub renewed: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HostList {
    pub hosts: Vec<HostView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Revoked {
    pub host: String,
    pub revoked: bool,
    /// False when it was revoked already, or never had a token.
    pub changed: bool,
}

fn valid_instance_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Enrolls a host and returns its agent token, shown only here.
#[utoipa::path(post, path = "/api/v1/hosts", tag = "hosts", request_body = NewHost,
    responses((status = 201, description = "Enrolled", body = Enrolled),
        (status = 200, description = "Enrolled before: a new token, the old one revoked", body = Enrolled),
        (status = 404, description = "No application of that Appcode (or none the token may see)", body = super::doc::ErrorBody)))]
pub async fn add(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Result<JsonBody<NewHost>, ApiError>,
) -> Result<(StatusCode, Json<Enrolled>), ApiError> {
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
        // A host of an application nobody created would belong to nobody: refused, as a
        // bind to it is (create the application first, or import the tree).
        who.check_app(&state.ownership, code)?;
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
    let instance_id = enrollment.instance_id.clone();
    let outcome = state.store.enroll_host(enrollment, now()).await?;
    if let Some(instance_id) = &instance_id {
        state.ownership.add_alias(instance_id, &name);
    }
    // A renewed host's old token must stop working now, not when it falls out of a cache.
    state.auth.forget_cached();
    // Other members learn its other names and binding from the store.
    state.bus.publish(crate::bus::Signal::Tree);
    if let Some(appcode) = &appcode {
        let mut inner = state.ownership.write();
        let crate::ownership::Inner { tree, hosts, .. } = &mut *inner;
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
        Json(Enrolled {
            host: name,
            token,
            renewed: outcome == Enrollment::Renewed,
        }),
    ))
}

/// Every host vigil knows of that the token may see, with its lifecycle state.
#[utoipa::path(get, path = "/api/v1/hosts", tag = "hosts", params(HostQuery),
    responses((status = 200, body = HostList)))]
pub async fn list(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    query: Result<Query<HostQuery>, QueryRejection>,
) -> Result<Json<HostList>, ApiError> {
    let Query(query) = query?;
    let hosts = service::hosts::list(&state, &who, &query).await?;
    Ok(Json(HostList { hosts }))
}

/// One host, with the last metrics its agent sent.
#[utoipa::path(get, path = "/api/v1/hosts/{name}", tag = "hosts",
    params(("name" = String, Path, description = "The host's name")),
    responses((status = 200, body = HostDetail)))]
pub async fn show(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<HostDetail>, ApiError> {
    Ok(Json(service::hosts::detail(&state, &who, &name).await?))
}

/// Revokes a host's agent token: it stops working immediately.
#[utoipa::path(post, path = "/api/v1/hosts/{name}/revoke", tag = "hosts",
    params(("name" = String, Path, description = "The host's name")),
    responses((status = 200, body = Revoked)))]
pub async fn revoke(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<Revoked>, ApiError> {
    service::hosts::visible(&state, &who, &name).await?;
    let revoked = state.store.revoke_host(&name, now()).await?;
    state.auth.forget_cached();
    tracing::info!(host = %name, "host revoked");
    Ok(Json(Revoked {
        host: name,
        revoked: true,
        changed: revoked,
    }))
}
