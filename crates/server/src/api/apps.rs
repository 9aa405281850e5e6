//! The application tree (`vigil app …`), host bindings, scoped tokens, approvals and
//! per-Appcode reports. Callers with a scoped token see and change only their subtree:
//! anything outside it answers 404, as if it did not exist.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vigil_ownership::{import, report, AppNode, Appcode, Document, IncidentRecord, Report};
use vigil_store::{IncidentFilter, StoreError};

use super::{ApiError, JsonBody};
use crate::access::{Denied, Principal};
use crate::auth::{generate_token, hash_token};
use crate::ownership::node_rows;
use crate::service::{
    self,
    apps::{AppDetail, AppSummary, ExportQuery},
};
use crate::{now, AppState};

async fn save(
    state: &AppState,
    nodes: Vec<(String, String)>,
    bindings: Vec<(String, String)>,
) -> Result<(), ApiError> {
    state.store.save_apps(nodes, bindings, now()).await?;
    state.bus.publish(crate::bus::Signal::Tree);
    Ok(())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AppAdded {
    pub appcode: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AppList {
    /// In tree order: parents before children.
    pub apps: Vec<AppSummary>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AppChanged {
    pub appcode: String,
    pub changed: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AppMoved {
    pub appcode: String,
    /// The new parent; `null` for the root.
    pub parent: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HostBound {
    pub host: String,
    pub appcode: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Imported {
    /// What the import did, in words.
    pub report: String,
    /// How many nodes and bindings it added, changed or retired.
    pub changes: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenMade {
    pub name: String,
    pub scope: Option<String>,
    /// Shown here once; only its hash is stored.
    pub token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClockMoved {
    pub now_ms: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Approved {
    pub incident: String,
    pub approved_by: String,
    /// Remediation jobs released to their hosts.
    pub released: usize,
}

/// A document that is text but not a tree vigil can take (a TOML or CSV error, an unknown
/// parent, a cycle): 422 naming the line, as no schema can describe such text.
fn unprocessable(error: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, error.to_string())
}

/// The tree as TOML or CSV text: not blank.
pub enum TreeDocument {}

impl utoipa::PartialSchema for TreeDocument {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(r"\S"))
            .into()
    }
}

impl ToSchema for TreeDocument {}

/// Adds a node to the tree. A scoped token adds only under a parent inside its subtree.
#[utoipa::path(post, path = "/api/v1/apps", tag = "apps", request_body = AppNode,
    responses((status = 201, body = AppAdded),
        (status = 409, description = "The Appcode exists, or was retired", body = super::doc::ErrorBody)))]
pub async fn add(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Result<JsonBody<AppNode>, ApiError>,
) -> Result<(StatusCode, Json<AppAdded>), ApiError> {
    let JsonBody(node) = body?;
    let code = node.appcode.to_string();
    who.check_parent(&state.ownership, node.parent.as_deref())?;
    let rows = {
        let mut inner = state.ownership.write();
        inner
            .tree
            .add(node)
            .map_err(|e| ApiError::new(StatusCode::CONFLICT, e.to_string()))?;
        node_rows(&inner.tree, &[&code])
    };
    save(&state, rows, Vec::new()).await?;
    tracing::info!(appcode = %code, "application added");
    Ok((StatusCode::CREATED, Json(AppAdded { appcode: code })))
}

/// Every node the token may see, with the owners it inherits.
#[utoipa::path(get, path = "/api/v1/apps", tag = "apps", responses((status = 200, body = AppList)))]
pub async fn list(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Json<AppList> {
    Json(AppList {
        apps: service::apps::overview(&state, &who),
    })
}

/// One node: where it sits, who it inherits and whom escalation reaches.
#[utoipa::path(get, path = "/api/v1/apps/{code}", tag = "apps",
    params(("code" = String, Path, description = "The Appcode")),
    responses((status = 200, body = AppDetail)))]
pub async fn show(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(code): Path<String>,
) -> Result<Json<AppDetail>, ApiError> {
    Ok(Json(service::apps::detail(&state, &who, &code)?))
}

/// What to change; fields left out stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// Read only to refuse it clearly: an Appcode never changes.
    #[serde(default)]
    #[schema(ignore)]
    appcode: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    owners: Option<Vec<String>>,
    #[serde(default)]
    approvers: Option<Vec<String>>,
    #[serde(default)]
    oncall: Option<Vec<String>>,
    #[serde(default)]
    channels: Option<Vec<String>>,
}

/// Changes a node's display name, kind, people or channels — never its Appcode.
#[utoipa::path(patch, path = "/api/v1/apps/{code}", tag = "apps", request_body = Change,
    params(("code" = String, Path, description = "The Appcode")),
    responses((status = 200, body = AppChanged)))]
pub async fn change(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(code): Path<String>,
    body: Result<JsonBody<Change>, ApiError>,
) -> Result<Json<AppChanged>, ApiError> {
    let JsonBody(change) = body?;
    who.check_app(&state.ownership, &code)?;
    if change.appcode.as_deref().is_some_and(|c| c != code) {
        return Err(ApiError::bad_request(format!(
            "appcode: `{code}` cannot be changed; Appcodes are permanent (rename changes only the display name)"
        )));
    }
    let conflict = |e: vigil_ownership::OwnershipError| ApiError::bad_request(e.to_string());
    let rows = {
        let mut inner = state.ownership.write();
        let current = inner
            .tree
            .get(&code)
            .cloned()
            .ok_or_else(|| Denied::Hidden(format!("application `{code}`")))?;
        if let Some(name) = change.name {
            inner.tree.rename(&code, name).map_err(conflict)?;
        }
        if let Some(kind) = change.kind {
            inner.tree.set_kind(&code, kind).map_err(conflict)?;
        }
        if change.owners.is_some() || change.approvers.is_some() || change.oncall.is_some() {
            inner
                .tree
                .set_people(
                    &code,
                    change.owners.unwrap_or(current.owners),
                    change.approvers.unwrap_or(current.approvers),
                    change.oncall.unwrap_or(current.oncall),
                )
                .map_err(conflict)?;
        }
        if let Some(channels) = change.channels {
            inner.tree.set_channels(&code, channels).map_err(conflict)?;
        }
        node_rows(&inner.tree, &[&code])
    };
    save(&state, rows, Vec::new()).await?;
    Ok(Json(AppChanged {
        appcode: code,
        changed: true,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Move {
    parent: Option<String>,
}

/// Moves a node under another parent (`null`: to the root). Hosts, alarms and incidents
/// refer to the Appcode, so they all follow.
#[utoipa::path(post, path = "/api/v1/apps/{code}/move", tag = "apps", request_body = Move,
    params(("code" = String, Path, description = "The Appcode")),
    responses((status = 200, body = AppMoved)))]
pub async fn move_node(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(code): Path<String>,
    body: Result<JsonBody<Move>, ApiError>,
) -> Result<Json<AppMoved>, ApiError> {
    let JsonBody(target) = body?;
    who.check_move(&state.ownership, &code, target.parent.as_deref())?;
    let rows = {
        let mut inner = state.ownership.write();
        inner
            .tree
            .move_node(&code, target.parent.as_deref())
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        node_rows(&inner.tree, &[&code])
    };
    save(&state, rows, Vec::new()).await?;
    tracing::info!(appcode = %code, parent = target.parent.as_deref().unwrap_or("(root)"), "application moved");
    Ok(Json(AppMoved {
        appcode: code,
        parent: target.parent,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Bind {
    appcode: String,
}

/// Binds a host (enrolled, or declared by an import) to an application: its alarms and
/// incidents belong there from now on.
#[utoipa::path(post, path = "/api/v1/hosts/{name}/bind", tag = "apps", request_body = Bind,
    params(("name" = String, Path, description = "The host's name")),
    responses((status = 200, body = HostBound)))]
pub async fn bind_host(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(host): Path<String>,
    body: Result<JsonBody<Bind>, ApiError>,
) -> Result<Json<HostBound>, ApiError> {
    let JsonBody(bind) = body?;
    who.check_app(&state.ownership, &bind.appcode)?;
    // Only a host vigil knows of (enrolled, or declared by an import), and one the token
    // may see: a bind never invents a host.
    service::hosts::visible(&state, &who, &host).await?;
    {
        let mut inner = state.ownership.write();
        let Inner { tree, hosts, .. } = &mut *inner;
        hosts
            .bind(tree, &host, &bind.appcode)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    save(
        &state,
        Vec::new(),
        vec![(host.clone(), bind.appcode.clone())],
    )
    .await?;
    Ok(Json(HostBound {
        host,
        appcode: bind.appcode,
    }))
}

use crate::ownership::Inner;

/// Imports the tree and host bindings from TOML or CSV (by Content-Type, or sniffed);
/// importing the same document again changes nothing. Needs an unscoped token.
#[utoipa::path(post, path = "/api/v1/apps/import", tag = "apps",
    request_body(content(
        (TreeDocument = "application/toml"),
        (TreeDocument = "text/csv")
    ), description = "What `GET /api/v1/apps/export` gives"),
    responses((status = 200, body = Imported),
        (status = 422, description = "The text is not a tree vigil can take; the message names the line", body = super::doc::ErrorBody)))]
pub async fn import_tree(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Imported>, ApiError> {
    who.require_unscoped("importing the tree")?;
    let body = body.map_err(|r| ApiError::from_body(r, state.config.server.body_limit_bytes))?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the import is not UTF-8 text"))?;
    if text.trim().is_empty() {
        return Err(ApiError::bad_request(
            "the import is empty; send the TOML or CSV that `vigil app export` writes",
        ));
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let document = if content_type.contains("csv")
        || (!content_type.contains("toml") && text.starts_with("appcode,")
            || text.starts_with("host,"))
    {
        Document::from_csv(text)
    } else {
        Document::from_toml(text)
    }
    .map_err(unprocessable)?;
    let (report, rows, bindings) = {
        let mut inner = state.ownership.write();
        let Inner { tree, hosts, .. } = &mut *inner;
        let report = import(tree, hosts, &document).map_err(unprocessable)?;
        let codes: Vec<String> = document
            .apps
            .iter()
            .map(|a| a.node.appcode.to_string())
            .collect();
        let refs: Vec<&str> = codes.iter().map(String::as_str).collect();
        let mut rows = node_rows(tree, &refs);
        rows.extend(
            tree.retired()
                .into_iter()
                .map(|c| (c.to_string(), String::new())),
        );
        let bindings: Vec<(String, String)> = document
            .hosts
            .iter()
            .map(|(_, b)| (b.name.clone(), b.appcode.to_string()))
            .collect();
        (report, rows, bindings)
    };
    let (live, retired): (Vec<_>, Vec<_>) =
        rows.into_iter().partition(|(_, json)| !json.is_empty());
    let retired: Vec<String> = retired.into_iter().map(|(code, _)| code).collect();
    state.store.save_apps(live, bindings, now()).await?;
    state.store.retire_apps(retired, now()).await?;
    state.bus.publish(crate::bus::Signal::Tree);
    tracing::info!(%report, "application tree imported");
    Ok(Json(Imported {
        report: report.to_string(),
        changes: report.changes(),
    }))
}

/// The tree and host bindings as a document the import reads back; a scoped token gets
/// its subtree only.
#[utoipa::path(get, path = "/api/v1/apps/export", tag = "apps", params(ExportQuery),
    responses((status = 200, content(
        (String = "application/toml"),
        (String = "text/csv")
    ))))]
pub async fn export_tree(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    query: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<([(&'static str, &'static str); 1], String), ApiError> {
    let Query(query) = query?;
    let (content_type, text) = service::apps::export(&state, &who, query.format);
    Ok(([("content-type", content_type)], text))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// 1–100 characters; not `admin`, not starting with `host:`.
    #[schema(pattern = "^(?!admin$)(?!host:).{1,100}$")]
    name: String,
    /// The Appcode whose subtree the token is limited to; none for an unscoped token.
    #[serde(default)]
    #[schema(value_type = Option<Appcode>)]
    scope: Option<String>,
}

/// Makes a named token, optionally limited to an Appcode's subtree. A scoped token hands
/// out only its own scope or narrower.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "apps", request_body = NewToken,
    responses((status = 201, body = TokenMade),
        (status = 404, description = "No application of the scope's Appcode, or one outside the token's subtree", body = super::doc::ErrorBody),
        (status = 409, description = "A token of that name exists", body = super::doc::ErrorBody)))]
pub async fn add_token(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Result<JsonBody<NewToken>, ApiError>,
) -> Result<(StatusCode, Json<TokenMade>), ApiError> {
    let JsonBody(new) = body?;
    if new.name.is_empty()
        || new.name.len() > 100
        || new.name.starts_with("host:")
        || new.name == "admin"
    {
        return Err(ApiError::bad_request(
            "name: 1–100 characters, not `admin` nor starting with `host:`",
        ));
    }
    who.check_grant(&state.ownership, new.scope.as_deref())?;
    if let Some(wanted) = new.scope.as_deref() {
        who.check_app(&state.ownership, wanted)?;
    }
    let token = generate_token();
    let hash = hash_token(&token);
    match state
        .store
        .add_scoped_token(&new.name, &hash, new.scope.as_deref(), now())
        .await
    {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("token `{}` already exists; choose another name", new.name),
            ))
        }
        Err(e) => return Err(e.into()),
    }
    Ok((
        StatusCode::CREATED,
        Json(TokenMade {
            name: new.name,
            scope: new.scope,
            token,
        }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    #[param(value_type = Appcode)]
    appcode: String,
    /// `30d`, `12h`, `90m`; default 30 days.
    #[param(pattern = "^[0-9]{1,9}[dhm]$")]
    since: Option<String>,
}

/// `30d`, `12h`, `90m`: one to nine digits and a unit, as milliseconds.
fn parse_since(text: &str) -> Option<i64> {
    let unit_ms = match text.chars().last()? {
        'd' => 86_400_000,
        'h' => 3_600_000,
        'm' => 60_000,
        _ => return None,
    };
    // The unit is one ASCII byte, so this cut is on a character boundary.
    let number = &text[..text.len() - 1];
    if number.is_empty() || number.len() > 9 || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    number.parse::<i64>().ok()?.checked_mul(unit_ms)
}

/// An application's subtree over a period: incidents, open, MTTA, MTTR, noisiest alarms.
#[utoipa::path(get, path = "/api/v1/reports", tag = "apps", params(ReportQuery),
    responses((status = 200, body = Report),
        (status = 404, description = "No such application, or outside the token's subtree", body = super::doc::ErrorBody)))]
pub async fn report_for(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    query: Result<Query<ReportQuery>, QueryRejection>,
) -> Result<Json<Report>, ApiError> {
    let Query(query) = query?;
    who.check_app(&state.ownership, &query.appcode)?;
    let since = query.since.as_deref().unwrap_or("30d");
    let span = parse_since(since).ok_or_else(|| {
        ApiError::bad_request(format!("since: `{since}` is not like 30d, 12h or 90m"))
    })?;
    let codes = state.ownership.subtree(&query.appcode);
    let incidents = state
        .store
        .list_incidents(IncidentFilter {
            status: None,
            limit: 1_000_000,
            appcodes: Some(codes),
            kind: None,
        })
        .await?;
    let records: Vec<IncidentRecord> = incidents
        .iter()
        .map(|i| IncidentRecord {
            appcode: i
                .alarm
                .appcode
                .as_deref()
                .and_then(|a| Appcode::parse(a).ok()),
            alarm_name: i.alarm.alarm_name.clone(),
            opened_at_ms: i.opened_at.timestamp_millis(),
            acknowledged_at_ms: i.acknowledged_at.map(|t| t.timestamp_millis()),
            resolved_at_ms: i.resolved_at.map(|t| t.timestamp_millis()),
        })
        .collect();
    let now_ms = crate::now_ms();
    let tree = &state.ownership.read().tree;
    let report = report(tree, &query.appcode, &records, now_ms - span, now_ms)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Json(report))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Advance {
    seconds: i64,
}

/// Moves the server's clock forward, for tests of time: only on a server started with
/// `VIGIL_TEST_CLOCK=1` and for an unscoped token; 404 otherwise.
#[utoipa::path(post, path = "/api/v1/test/clock", tag = "server", request_body = Advance,
    responses((status = 200, body = ClockMoved),
        (status = 404, description = "The server's clock cannot be moved", body = super::doc::ErrorBody)))]
pub async fn advance_clock(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Result<JsonBody<Advance>, ApiError>,
) -> Result<Json<ClockMoved>, ApiError> {
    if !state.clock.movable() || who.scope.is_some() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no such route; see /api/v1/openapi.json",
        ));
    }
    let JsonBody(advance) = body?;
    state.clock.advance(advance.seconds.saturating_mul(1000));
    Ok(Json(ClockMoved {
        now_ms: crate::now_ms(),
    }))
}

/// Releases the incident's remediations waiting for approval. Only an approver of the
/// incident's application may (the token's name is matched against its approvers).
#[utoipa::path(post, path = "/api/v1/incidents/{key}/approve", tag = "incidents",
    params(("key" = String, Path, description = "The incident's key")),
    responses((status = 200, body = Approved)))]
pub async fn approve(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(key): Path<String>,
) -> Result<Json<Approved>, ApiError> {
    let appcode = state.store.incident_appcode(&key).await?;
    who.check(&state.ownership, appcode.as_deref(), || {
        format!("incident with key `{key}`")
    })?;
    let approvers = appcode
        .as_deref()
        .and_then(|a| state.ownership.owners_of(a))
        .map(|o| o.approvers)
        .unwrap_or_default();
    if !approvers.contains(&who.name) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "`{}` is not an approver of {} (approvers: {})",
                who.name,
                appcode.as_deref().unwrap_or("an application"),
                if approvers.is_empty() {
                    "none configured".into()
                } else {
                    approvers.join(", ")
                }
            ),
        ));
    }
    let released = state
        .store
        .approve_jobs(
            &key,
            &who.name,
            crate::jobs::JobTimes::default().claim_within,
            now(),
        )
        .await?;
    for host in &released {
        state.jobs.ring(host);
    }
    tracing::info!(incident = %key, by = %who.name, released = released.len(), "remediation approved");
    Ok(Json(Approved {
        incident: key,
        approved_by: who.name,
        released: released.len(),
    }))
}
