//! The JSON the pages are drawn from, under `/ui/api/…`: the token API's answers, from the
//! same service functions under the same access rule, with what a page needs added — open
//! incidents per host and the server's clock (ages are computed against it, not the
//! browser's) — and vigil tokens blanked from probe output.

use std::collections::{BTreeMap, HashMap};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use serde_json::{json, Value};
use vigil_core::IncidentStatus;

use super::session::SessionInfo;
use super::{UiError, UiState};
use crate::service::alarms::AlarmQuery;
use crate::service::hosts::{HostQuery, HostView};
use crate::service::incidents::IncidentQuery;
use crate::service::{alarms, apps, hosts, incidents};
use crate::{now, now_ms};

/// The shortest run after `vgl_` taken for a token (real ones have 43 characters; probes
/// may cut a command line, and with it a token, short).
const TOKEN_MIN_CHARS: usize = 8;

/// Replaces vigil tokens (`vgl_` and base64url) in `text`. They reach incidents through
/// probe output, such as an agent's command line in `top_cpu`, and pages never show them.
fn redact_tokens(text: &str) -> Option<String> {
    let token_char = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    let mut out = String::new();
    let mut copied = 0;
    let mut search = 0;
    while let Some(found) = text[search..].find("vgl_") {
        let start = search + found;
        let body = start + "vgl_".len();
        let len = text.as_bytes()[body..]
            .iter()
            .take_while(|&&b| token_char(b))
            .count();
        if len >= TOKEN_MIN_CHARS {
            out.push_str(&text[copied..start]);
            out.push_str("vgl_[redacted]");
            copied = body + len;
        }
        search = body + len;
    }
    (copied > 0).then(|| out + &text[copied..])
}

fn redact_value(value: &mut Value) {
    match value {
        Value::String(text) => {
            if let Some(clean) = redact_tokens(text) {
                *text = clean;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        Value::Object(fields) => fields.values_mut().for_each(redact_value),
        _ => {}
    }
}

fn redacted(value: impl serde::Serialize) -> Value {
    let mut value = json!(value);
    redact_value(&mut value);
    value
}

/// `GET /ui/api/incidents?status=&severity=&appcode=&host=&q=&limit=`, newest first.
pub(super) async fn incidents(
    State(state): State<UiState>,
    Extension(session): Extension<SessionInfo>,
    query: Result<Query<IncidentQuery>, QueryRejection>,
) -> Result<Json<Value>, UiError> {
    let Query(query) = query?;
    let found = incidents::list(&state.app, &session.principal(), &query).await?;
    Ok(Json(json!({"incidents": redacted(found), "now": now()})))
}

/// The incident page's data: the incident with its timeline, external tickets and the
/// delivery log of its notifications, as the token API shows them.
async fn incident_body(
    state: &UiState,
    session: &SessionInfo,
    key: &str,
) -> Result<Json<Value>, UiError> {
    let detail = incidents::detail(&state.app, &session.principal(), key).await?;
    Ok(Json(json!({"incident": redacted(detail), "now": now()})))
}

pub(super) async fn incident(
    State(state): State<UiState>,
    Extension(session): Extension<SessionInfo>,
    Path(key): Path<String>,
) -> Result<Json<Value>, UiError> {
    incident_body(&state, &session, &key).await
}

pub(super) async fn acknowledge(
    State(state): State<UiState>,
    Extension(session): Extension<SessionInfo>,
    Path(key): Path<String>,
) -> Result<Json<Value>, UiError> {
    change(state, session, key, IncidentStatus::Acknowledged).await
}

pub(super) async fn resolve(
    State(state): State<UiState>,
    Extension(session): Extension<SessionInfo>,
    Path(key): Path<String>,
) -> Result<Json<Value>, UiError> {
    change(state, session, key, IncidentStatus::Resolved).await
}

/// Acknowledges or resolves through the token API's own code (the same transaction, the
/// same notifications); the timeline names the web UI.
async fn change(
    state: UiState,
    session: SessionInfo,
    key: String,
    to: IncidentStatus,
) -> Result<Json<Value>, UiError> {
    let by = format!("{} (web UI)", session.principal);
    incidents::change(&state.app, &session.principal(), &key, to, &by).await?;
    incident_body(&state, &session, &key).await
}

/// `GET /ui/api/alarms`: definitions and every instance's state and value.
pub(super) async fn alarms(
    State(state): State<UiState>,
    Extension(session): Extension<SessionInfo>,
) -> Json<Value> {
    let listed = alarms::list(&state.app, &session.principal(), &AlarmQuery::default());
    let (definitions, instances): (Vec<_>, Vec<_>) = listed
        .into_iter()
        .map(|a| (a.definition, a.instances))
        .unzip();
    Json(json!({
        "alarms": definitions,
        "instances": instances.concat(),
        "now_ms": now_ms(),
    }))
}

/// `GET /ui/api/alarms/{name}`: one definition, its instances and their state changes.
pub(super) async fn alarm(
    State(state): State<UiState>,
    Extension(session): Extension<SessionInfo>,
    Path(name): Path<String>,
) -> Result<Json<Value>, UiError> {
    let engine = &state.app.engine;
    let found = alarms::detail(&state.app, &session.principal(), &name)?;
    let instances: Vec<Value> = found
        .instances
        .into_iter()
        .map(|i| {
            let changes: Vec<Value> = engine
                .state_changes(&i.alarm, &i.series)
                .into_iter()
                .map(|(at_ms, state)| json!({"at_ms": at_ms, "state": state}))
                .collect();
            let mut view = json!(i);
            view["changes"] = json!(changes);
            view
        })
        .collect();
    Ok(Json(
        json!({"alarm": found.definition, "instances": instances, "now_ms": now_ms()}),
    ))
}

/// `GET /ui/api/series?name=METRIC&LABEL=VALUE…`: raw points and minute rollups.
pub(super) async fn series(
    State(state): State<UiState>,
    Extension(session): Extension<SessionInfo>,
    query: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Result<Json<Value>, UiError> {
    let Query(mut labels) = query?;
    let name = labels.remove("name").unwrap_or_default();
    let list = alarms::series(&state.app, &session.principal(), &name, &labels).await?;
    Ok(Json(json!({
        "series": list.series,
        "history_source": list.history_source,
        "history_error": list.history_error,
        "now_ms": now_ms(),
    })))
}

fn host_view(host: &HostView, open: &HashMap<String, usize>) -> Value {
    let mut view = json!(host);
    view["open_incidents"] = json!(open.get(&host.host.name).copied().unwrap_or(0));
    view
}

/// `GET /ui/api/hosts`: the hosts the session may see, with their open incidents.
pub(super) async fn hosts(
    State(state): State<UiState>,
    Extension(session): Extension<SessionInfo>,
) -> Result<Json<Value>, UiError> {
    let who = session.principal();
    let hosts = hosts::list(&state.app, &who, &HostQuery::default()).await?;
    let open = incidents::open_by_host(&state.app, &who).await?;
    let rows: Vec<Value> = hosts.iter().map(|h| host_view(h, &open)).collect();
    Ok(Json(json!({"hosts": rows, "now": now()})))
}

/// `GET /ui/api/status`: whether processing keeps up, for the banner every page shows
/// while it does not.
pub(super) async fn status(State(state): State<UiState>) -> Result<Json<Value>, UiError> {
    Ok(Json(json!(
        crate::service::status::status(&state.app).await?
    )))
}

/// `GET /ui/api/apps`: the application tree (within the session's scope), each node with
/// its inherited owners, approvers and on-call, its hosts and open incidents; hosts bound
/// to no application come last, under `appcode: null`.
pub(super) async fn apps(
    State(state): State<UiState>,
    Extension(session): Extension<SessionInfo>,
) -> Result<Json<Value>, UiError> {
    let who = session.principal();
    let hosts = hosts::list(&state.app, &who, &HostQuery::default()).await?;
    let open = incidents::open_by_host(&state.app, &who).await?;
    let by_name: HashMap<&str, &HostView> =
        hosts.iter().map(|h| (h.host.name.as_str(), h)).collect();
    let open_of = |members: &[&HostView]| -> usize {
        members
            .iter()
            .map(|h| open.get(&h.host.name).copied().unwrap_or(0))
            .sum()
    };
    let mut rows: Vec<Value> = apps::overview(&state.app, &who)
        .into_iter()
        .map(|app| {
            let members: Vec<&HostView> = app
                .hosts
                .iter()
                .filter_map(|name| by_name.get(name.as_str()).copied())
                .collect();
            let inherited = app.inherited.as_ref();
            json!({
                "appcode": app.node.appcode,
                "name": app.node.name,
                "kind": app.node.kind,
                "parent": app.node.parent,
                "owners": inherited.map(|o| o.owners.clone()).unwrap_or_default(),
                "owners_from": inherited.map(|o| o.from.to_string()),
                "approvers": inherited.map(|o| o.approvers.clone()).unwrap_or_default(),
                "oncall": inherited.map(|o| o.oncall.clone()).unwrap_or_default(),
                "open_incidents": open_of(&members),
                "hosts": members.iter().map(|h| host_view(h, &open)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let names: Vec<&str> = by_name.keys().copied().collect();
    let mut unbound: Vec<&HostView> = apps::unbound_hosts(&state.app, &who, &names)
        .into_iter()
        .filter_map(|name| by_name.get(name).copied())
        .collect();
    unbound.sort_by(|a, b| a.host.name.cmp(&b.host.name));
    if !unbound.is_empty() {
        rows.push(json!({
            "appcode": null,
            "owners": [],
            "open_incidents": open_of(&unbound),
            "hosts": unbound.iter().map(|h| host_view(h, &open)).collect::<Vec<_>>(),
        }));
    }
    Ok(Json(json!({"apps": rows, "now": now()})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_in_probe_output_are_redacted() {
        let token = "vgl_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcde";
        let line = format!("root 42 vigil agent --token {token} --name web\nvgl_short stays");
        assert_eq!(
            redact_tokens(&line).as_deref(),
            Some("root 42 vigil agent --token vgl_[redacted] --name web\nvgl_short stays")
        );
        assert_eq!(redact_tokens("nothing secret, vgl_x"), None);
        let mut value = json!({"timeline": [{"message": token}], "count": 1});
        redact_value(&mut value);
        assert_eq!(
            value,
            json!({"timeline": [{"message": "vgl_[redacted]"}], "count": 1})
        );
    }
}
