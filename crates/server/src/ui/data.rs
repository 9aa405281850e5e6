//! The JSON the pages are drawn from, under `/ui/api/…`. Shapes follow the token API's,
//! with what a page needs added: each incident's Appcode, open incidents per host, the
//! state changes of each alarm instance, and the server's clock (ages are computed
//! against it, not the browser's).

use std::collections::{BTreeMap, HashMap};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use vigil_core::{Host, Incident, IncidentStatus, Timestamp};
use vigil_store::{IncidentFilter, Store};

use super::session::SessionInfo;
use super::{UiError, UiState};
use crate::now;
use crate::now_ms;

/// Incidents one list call looks through, newest first; filters apply within them.
const SCAN: usize = 1000;
/// Most series a chart request returns.
const MAX_SERIES: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IncidentQuery {
    status: Option<String>,
    severity: Option<String>,
    appcode: Option<String>,
    host: Option<String>,
    q: Option<String>,
    limit: Option<usize>,
}

/// Where an incident's Appcode comes from when its alarm names none itself.
struct Appcodes {
    by_host: HashMap<String, String>,
    by_alarm: HashMap<String, String>,
}

impl Appcodes {
    fn load(state: &UiState, hosts: &[Host]) -> Appcodes {
        Appcodes {
            by_host: hosts
                .iter()
                .filter_map(|h| Some((h.name.clone(), h.appcode.clone()?)))
                .collect(),
            by_alarm: state
                .app
                .engine
                .definitions()
                .into_iter()
                .filter_map(|d| Some((d.alarm_name, d.appcode?)))
                .collect(),
        }
    }

    /// The alarm's own `appcode` label or dimension, then the Appcode of vigil's alarm
    /// definition, then that of the host it is about.
    fn of(&self, incident: &Incident) -> Option<String> {
        let facts = &incident.alarm;
        facts
            .labels
            .get("appcode")
            .or_else(|| facts.dimensions.get("appcode"))
            .or_else(|| {
                (facts.source == "vigil.alarms")
                    .then(|| self.by_alarm.get(&facts.alarm_name))
                    .flatten()
            })
            .or_else(|| facts.host.as_ref().and_then(|h| self.by_host.get(h)))
            .cloned()
    }
}

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

fn incident_view(incident: &Incident, appcodes: &Appcodes) -> Value {
    let mut view = incident.to_value();
    redact_value(&mut view);
    // The flattened alarm facts have a `severity` of their own (null when the alarm gave
    // none) that overwrites the incident's graded one in the JSON.
    view["severity"] = json!(incident.severity.as_str());
    if view.get("appcode").is_none_or(Value::is_null) {
        view["appcode"] = json!(appcodes.of(incident));
    }
    view
}

fn contains_folded(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().contains(needle)
}

/// `GET /ui/api/incidents?status=&severity=&appcode=&host=&q=&limit=`, newest first.
/// Whether a session may see something of `appcode`.
fn visible(state: &UiState, session: &SessionInfo, appcode: Option<&str>) -> bool {
    state
        .app
        .ownership
        .allowed(session.scope.as_deref(), appcode)
}

fn not_found(what: String) -> UiError {
    UiError::new(StatusCode::NOT_FOUND, what)
}

pub(super) async fn incidents(
    State(state): State<UiState>,
    Extension(session): Extension<SessionInfo>,
    query: Result<Query<IncidentQuery>, QueryRejection>,
) -> Result<Json<Value>, UiError> {
    let Query(query) = query.map_err(|e| UiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let (status, unresolved_only) = match query.status.as_deref().unwrap_or("") {
        "" | "all" => (None, false),
        "unresolved" => (None, true),
        s => (
            Some(IncidentStatus::parse(s).ok_or_else(|| {
                UiError::new(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "status `{s}` is not one of unresolved, open, acknowledged, resolved, all"
                    ),
                )
            })?),
            false,
        ),
    };
    let filter = IncidentFilter {
        status,
        limit: SCAN,
        appcodes: session
            .scope
            .as_deref()
            .map(|scope| state.app.ownership.subtree(scope)),
    };
    let incidents = state.app.store.list_incidents(filter).await?;
    let hosts = state.app.store.hosts().await?;
    let appcodes = Appcodes::load(&state, &hosts);
    let wanted = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_lowercase)
    };
    let (severity, appcode, host, text) = (
        wanted(&query.severity),
        wanted(&query.appcode),
        wanted(&query.host),
        wanted(&query.q),
    );
    let limit = query.limit.unwrap_or(200).clamp(1, SCAN);
    let rows: Vec<Value> = incidents
        .iter()
        .filter(|i| !unresolved_only || i.status != IncidentStatus::Resolved)
        .filter(|i| severity.as_ref().is_none_or(|s| i.severity.as_str() == s))
        .filter(|i| {
            host.as_ref().is_none_or(|h| {
                i.alarm
                    .host
                    .as_deref()
                    .is_some_and(|name| contains_folded(name, h))
            })
        })
        .filter(|i| {
            text.as_ref().is_none_or(|t| {
                [
                    i.key.as_str(),
                    i.title.as_str(),
                    i.alarm.alarm_name.as_str(),
                    i.alarm.host.as_deref().unwrap_or_default(),
                    i.alarm.reason.as_deref().unwrap_or_default(),
                    i.alarm.description.as_deref().unwrap_or_default(),
                ]
                .iter()
                .any(|field| contains_folded(field, t))
            })
        })
        .map(|i| (i, appcodes.of(i)))
        .filter(|(_, code)| {
            appcode
                .as_ref()
                .is_none_or(|a| code.as_deref().is_some_and(|c| c.to_lowercase() == *a))
        })
        .take(limit)
        .map(|(i, _)| incident_view(i, &appcodes))
        .collect();
    Ok(Json(json!({"incidents": rows, "now": now()})))
}

/// The incident page's data: the incident with its timeline, external tickets and the
/// delivery log of its notifications, as the token API shows them.
async fn incident_body(
    state: &UiState,
    session: &SessionInfo,
    key: String,
) -> Result<Json<Value>, UiError> {
    let store = state.app.store.as_ref();
    let incident = store
        .incident(&key)
        .await?
        .filter(|i| visible(state, session, i.alarm.appcode.as_deref()))
        .ok_or_else(|| not_found(format!("no incident with key `{key}`")))?;
    let tickets = store.tickets(&key).await?;
    let deliveries = store.run_steps(&key).await?;
    let hosts = store.hosts().await?;
    let appcodes = Appcodes::load(state, &hosts);
    let mut view = incident_view(&incident, &appcodes);
    for (field, mut value) in [
        ("tickets", json!(tickets)),
        ("deliveries", json!(deliveries)),
    ] {
        redact_value(&mut value);
        view[field] = value;
    }
    Ok(Json(json!({"incident": view, "now": now()})))
}

pub(super) async fn incident(
    State(state): State<UiState>,
    Extension(session): Extension<SessionInfo>,
    Path(key): Path<String>,
) -> Result<Json<Value>, UiError> {
    incident_body(&state, &session, key).await
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
    let appcode = state.app.store.incident_appcode(&key).await?;
    if !visible(&state, &session, appcode.as_deref()) {
        return Err(not_found(format!("no incident with key `{key}`")));
    }
    let by = format!("{} (web UI)", session.principal);
    if crate::api::change_by_hand(&state.app, &key, to, &by)
        .await?
        .is_none()
    {
        return Err(not_found(format!("no incident with key `{key}`")));
    }
    incident_body(&state, &session, key).await
}

/// `GET /ui/api/alarms`: definitions and every instance's state and value.
pub(super) async fn alarms(
    State(state): State<UiState>,
    Extension(session): Extension<SessionInfo>,
) -> Json<Value> {
    let definitions: Vec<_> = state
        .app
        .engine
        .definitions()
        .into_iter()
        .filter(|d| visible(&state, &session, d.appcode.as_deref()))
        .collect();
    let instances = crate::api::alarms::instances_with_appcodes(&state.app, &definitions);
    Json(json!({
        "alarms": definitions,
        "instances": instances,
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
    let definition = engine
        .definition(&name)
        .filter(|d| visible(&state, &session, d.appcode.as_deref()))
        .ok_or_else(|| UiError::new(StatusCode::NOT_FOUND, format!("no alarm named `{name}`")))?;
    let instances: Vec<Value> =
        crate::api::alarms::instances_with_appcodes(&state.app, std::slice::from_ref(&definition))
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
        json!({"alarm": definition, "instances": instances, "now_ms": now_ms()}),
    ))
}

/// `GET /ui/api/series?name=METRIC&LABEL=VALUE…`: raw points and minute rollups.
pub(super) async fn series(
    State(state): State<UiState>,
    Extension(session): Extension<SessionInfo>,
    query: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Result<Json<Value>, UiError> {
    let Query(mut query) =
        query.map_err(|e| UiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let name = query
        .remove("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            UiError::new(
                StatusCode::BAD_REQUEST,
                "query parameter `name` (the metric name) is required",
            )
        })?;
    let mut series = state.app.engine.series(&name, &query, MAX_SERIES);
    // A scoped session sees series of its applications' hosts only.
    series.retain(|s| {
        visible(
            &state,
            &session,
            s.labels.get("appcode").map(String::as_str),
        )
    });
    Ok(Json(json!({"series": series, "now_ms": now_ms()})))
}

/// Unresolved incidents per host name.
async fn open_by_host(store: &dyn Store) -> vigil_store::Result<HashMap<String, usize>> {
    let mut counts = HashMap::new();
    for status in [IncidentStatus::Open, IncidentStatus::Acknowledged] {
        let filter = IncidentFilter {
            status: Some(status),
            limit: SCAN,
            appcodes: None,
        };
        for incident in store.list_incidents(filter).await? {
            if let Some(host) = incident.alarm.host {
                *counts.entry(host).or_insert(0) += 1;
            }
        }
    }
    Ok(counts)
}

fn host_view(host: &Host, open: &HashMap<String, usize>, now: Timestamp) -> Value {
    let mut view = crate::api::hosts::host_view(host, now);
    view["open_incidents"] = json!(open.get(&host.name).copied().unwrap_or(0));
    view
}

/// `GET /ui/api/hosts`: enrolled hosts with their open incidents.
pub(super) async fn hosts(
    State(state): State<UiState>,
    Extension(session): Extension<SessionInfo>,
) -> Result<Json<Value>, UiError> {
    let hosts = state.app.store.hosts().await?;
    let open = open_by_host(state.app.store.as_ref()).await?;
    let at = crate::now();
    let rows: Vec<Value> = hosts
        .iter()
        .filter(|h| visible(&state, &session, h.appcode.as_deref()))
        .map(|h| host_view(h, &open, at))
        .collect();
    Ok(Json(json!({"hosts": rows, "now": now()})))
}

/// `GET /ui/api/apps`: the application tree (within the session's scope), each node with
/// its inherited owners, approvers and on-call, its hosts and open incidents; hosts bound
/// to no application come last, under `appcode: null`.
pub(super) async fn apps(
    State(state): State<UiState>,
    Extension(session): Extension<SessionInfo>,
) -> Result<Json<Value>, UiError> {
    let hosts = state.app.store.hosts().await?;
    let open = open_by_host(state.app.store.as_ref()).await?;
    let at = crate::now();
    let by_name: HashMap<&str, &Host> = hosts.iter().map(|h| (h.name.as_str(), h)).collect();
    let tree = state.app.ownership.read();
    let mut apps: Vec<Value> = tree
        .tree
        .nodes()
        .into_iter()
        .filter(|n| {
            session
                .scope
                .as_deref()
                .is_none_or(|scope| tree.tree.is_within(&n.appcode, scope))
        })
        .map(|node| {
            let inherited = tree.tree.owners_of(&node.appcode);
            let members: Vec<&Host> = tree
                .hosts
                .bindings()
                .into_iter()
                .filter(|(_, code)| code.as_str() == node.appcode.as_str())
                .filter_map(|(name, _)| by_name.get(name).copied())
                .collect();
            let open_incidents: usize = members
                .iter()
                .map(|h| open.get(&h.name).copied().unwrap_or(0))
                .sum();
            json!({
                "appcode": node.appcode,
                "name": node.name,
                "kind": node.kind,
                "parent": node.parent,
                "owners": inherited.as_ref().map(|o| o.owners.clone()).unwrap_or_default(),
                "owners_from": inherited.as_ref().map(|o| o.from.to_string()),
                "approvers": inherited.as_ref().map(|o| o.approvers.clone()).unwrap_or_default(),
                "oncall": inherited.as_ref().map(|o| o.oncall.clone()).unwrap_or_default(),
                "open_incidents": open_incidents,
                "hosts": members.iter().map(|h| host_view(h, &open, at)).collect::<Vec<_>>(),
            })
        })
        .collect();
    if session.scope.is_none() {
        let unbound: Vec<Value> = hosts
            .iter()
            .filter(|h| tree.hosts.appcode_of(&h.name).is_none())
            .map(|h| host_view(h, &open, at))
            .collect();
        if !unbound.is_empty() {
            let open_incidents: usize = hosts
                .iter()
                .filter(|h| tree.hosts.appcode_of(&h.name).is_none())
                .map(|h| open.get(&h.name).copied().unwrap_or(0))
                .sum();
            apps.push(json!({"appcode": null, "owners": [], "open_incidents": open_incidents, "hosts": unbound}));
        }
    }
    Ok(Json(json!({"apps": apps, "now": now()})))
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
