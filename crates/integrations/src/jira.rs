//! [`JiraTracker`]: one Jira issue per incident, over the REST API v2.
//!
//! Every call is safe to repeat after an unknown outcome (a timeout, a crash between the
//! call and the journal):
//!
//! * `open` first searches for the label `vigil-<incident key>` and returns the issue it
//!   finds; only when there is none does it create one (carrying that label).
//! * `comment` and `resolve` look for a comment containing `[vigil:<idempotency key>]`
//!   before posting one with that marker on its last line.
//! * `resolve` moves the issue only when it is not already in the target status.

use base64::Engine;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use vigil_actions::{ActionError, BoxFuture, ExternalTicket, IdempotencyKey, Tracker};
use vigil_core::{Incident, Severity};

use crate::config::JiraConfig;
use crate::http::{self, parse_http_url};
use crate::render::{cut, metric_label, num, one_line, rfc3339};
use crate::IntegrationError;

/// Jira's limit for a summary.
const SUMMARY_MAX: usize = 255;
/// Jira's limit for a text field (description, comment body), in characters.
pub const TEXT_MAX: usize = 32_767;
/// Largest answer read from Jira: a page of long comments fits easily.
const BODY_LIMIT: usize = 16 * 1024 * 1024;
/// Comments fetched per page while looking for a marker.
const COMMENT_PAGE: usize = 1000;

/// Optional fields a project's create screen may not have; an issue without them beats no
/// issue, so creation is retried once without the ones Jira refuses.
const OPTIONAL_FIELDS: [&str; 2] = ["priority", "assignee"];

/// Keeps a Jira issue in step with each incident. Built from [`JiraConfig`]; cheap to share.
pub struct JiraTracker {
    http: reqwest::Client,
    base: String,
    auth: HeaderValue,
    project: String,
    issue_type: String,
    resolve_status: String,
    assignee: Option<Value>,
    incident_links: Option<String>,
}

impl JiraTracker {
    /// Checks the settings (url, token and project are required) and prepares the client;
    /// nothing is sent until the first call.
    pub fn new(config: &JiraConfig) -> Result<JiraTracker, IntegrationError> {
        if config.url.trim().is_empty() {
            return Err(IntegrationError::Missing {
                field: "jira.url",
                env: "VIGIL_JIRA_URL",
            });
        }
        if config.token.is_empty() {
            return Err(IntegrationError::Missing {
                field: "jira.token",
                env: "VIGIL_JIRA_TOKEN",
            });
        }
        if config.project.trim().is_empty() {
            return Err(IntegrationError::Missing {
                field: "jira.project",
                env: "VIGIL_JIRA_PROJECT",
            });
        }
        for (field, value) in [
            ("jira.issue_type", &config.issue_type),
            ("jira.resolve_status", &config.resolve_status),
        ] {
            if value.trim().is_empty() {
                return Err(IntegrationError::invalid(field, "must not be empty"));
            }
        }
        parse_http_url("jira.url", config.url.trim())?;
        let user = config.user.as_deref().filter(|u| !u.is_empty());
        let credentials = match user {
            Some(user) => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{user}:{}", config.token))
            ),
            None => format!("Bearer {}", config.token),
        };
        let mut auth = HeaderValue::from_str(&credentials).map_err(|_| {
            IntegrationError::invalid("jira.token", "holds characters an HTTP header cannot carry")
        })?;
        // Keeps the header out of reqwest's and hyper's debug output.
        auth.set_sensitive(true);
        // Cloud identifies people by account id, Data Center by user name.
        let assignee = config
            .assignee
            .as_deref()
            .filter(|a| !a.is_empty())
            .map(|a| match user {
                Some(_) => json!({ "accountId": a }),
                None => json!({ "name": a }),
            });
        Ok(JiraTracker {
            http: http::client("jira")?,
            base: config.url.trim().trim_end_matches('/').to_string(),
            auth,
            project: config.project.trim().to_string(),
            issue_type: config.issue_type.trim().to_string(),
            resolve_status: config.resolve_status.trim().to_string(),
            assignee,
            incident_links: None,
        })
    }

    /// Descriptions then link to `{public_url}/ui/incidents/<key>`, vigil's incident page.
    pub fn with_incident_links(mut self, public_url: &str) -> JiraTracker {
        self.incident_links = Some(format!(
            "{}/ui/incidents/",
            public_url.trim_end_matches('/')
        ));
        self
    }

    fn ticket(&self, key: String) -> ExternalTicket {
        ExternalTicket {
            tracker: "jira".into(),
            url: format!("{}/browse/{key}", self.base),
            id: key,
        }
    }

    /// Sends one request; `Err` only when no HTTP answer came back.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        action: &str,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), ActionError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(AUTHORIZATION, self.auth.clone())
            .header(ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| http::request_error("Jira", action, e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = http::read_body(response, BODY_LIMIT)
            .await
            .map_err(|e| http::request_error("Jira", action, e))?;
        Ok((status, headers, body))
    }

    /// Sends one request and reads a successful JSON answer as `T`.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        action: &str,
    ) -> Result<T, ActionError> {
        let (status, headers, bytes) = self.send(method, path, body, action).await?;
        read(action, status, &headers, &bytes)
    }

    async fn find_by_label(&self, label: &str) -> Result<Option<String>, ActionError> {
        let jql = format!(
            "project = {} AND labels = {} ORDER BY created ASC",
            jql_string(&self.project),
            jql_string(label)
        );
        let query = json!({ "jql": jql, "maxResults": 1, "fields": ["status"] });
        let action = format!("search for label {label}");
        let (mut status, mut headers, mut bytes) = self
            .send(Method::POST, "/rest/api/2/search", Some(&query), &action)
            .await?;
        if status == StatusCode::GONE {
            // Jira Cloud replaced /search with /search/jql (410 Gone since 2025, CHANGE-2046);
            // Data Center only has /search. Same request body, same `issues[].key`.
            (status, headers, bytes) = self
                .send(
                    Method::POST,
                    "/rest/api/2/search/jql",
                    Some(&query),
                    &action,
                )
                .await?;
        }
        let found: SearchPage = read(&action, status, &headers, &bytes)?;
        Ok(found.issues.into_iter().next().map(|i| i.key))
    }

    async fn create(&self, incident: &Incident, label: &str) -> Result<String, ActionError> {
        let action = format!("create an issue for {}", incident.key);
        let mut fields = self.issue_fields(incident, label);
        let mut dropped: Vec<String> = Vec::new();
        loop {
            let body = json!({ "fields": fields });
            let (status, headers, bytes) = self
                .send(Method::POST, "/rest/api/2/issue", Some(&body), &action)
                .await?;
            if status.is_success() {
                let created: Created = serde_json::from_slice(&bytes).map_err(|e| {
                    ActionError::Permanent(format!(
                        "Jira's answer to {action} has no issue key ({e})"
                    ))
                })?;
                if !dropped.is_empty() {
                    tracing::warn!(
                        issue = %created.key,
                        fields = %dropped.join(", "),
                        "jira: the project's create screen refused these fields; the issue was \
                         created without them"
                    );
                }
                return Ok(created.key);
            }
            let refused = if status == StatusCode::BAD_REQUEST && dropped.is_empty() {
                refused_optional_fields(&bytes)
            } else {
                Vec::new()
            };
            if refused.is_empty() {
                return Err(failure(&action, status, &headers, &bytes));
            }
            for name in &refused {
                fields.remove(name);
            }
            dropped = refused;
        }
    }

    fn issue_fields(&self, incident: &Incident, label: &str) -> Map<String, Value> {
        let mut fields = Map::new();
        fields.insert("project".into(), json!({ "key": self.project }));
        fields.insert("issuetype".into(), json!({ "name": self.issue_type }));
        fields.insert("summary".into(), json!(summary(incident)));
        fields.insert(
            "description".into(),
            json!(description(incident, self.incident_links.as_deref())),
        );
        fields.insert("labels".into(), json!(["vigil", label]));
        fields.insert(
            "priority".into(),
            json!({ "name": priority(incident.severity) }),
        );
        if let Some(assignee) = &self.assignee {
            fields.insert("assignee".into(), assignee.clone());
        }
        fields
    }

    async fn has_marker(&self, issue: &str, marker: &str) -> Result<bool, ActionError> {
        let mut start = 0usize;
        loop {
            let page: CommentPage = self
                .call(
                    Method::GET,
                    &format!(
                        "/rest/api/2/issue/{issue}/comment?startAt={start}&maxResults={COMMENT_PAGE}"
                    ),
                    None,
                    &format!("read the comments of {issue}"),
                )
                .await?;
            if page.comments.iter().any(|c| c.body.contains(marker)) {
                return Ok(true);
            }
            // An empty page ends the walk even if `total` says otherwise, so a server that
            // miscounts cannot keep it going.
            start += page.comments.len();
            if page.comments.is_empty() || start >= page.total {
                return Ok(false);
            }
        }
    }

    async fn comment_once(
        &self,
        issue: &str,
        key: &IdempotencyKey,
        body: impl FnOnce(&str) -> String,
    ) -> Result<(), ActionError> {
        let marker = format!("[vigil:{}]", key.0);
        if self.has_marker(issue, &marker).await? {
            tracing::debug!(%issue, key = %key.0, "jira: comment already there");
            return Ok(());
        }
        let _: Value = self
            .call(
                Method::POST,
                &format!("/rest/api/2/issue/{issue}/comment"),
                Some(&json!({ "body": body(&marker) })),
                &format!("comment on {issue}"),
            )
            .await?;
        tracing::info!(%issue, key = %key.0, "jira: comment added");
        Ok(())
    }

    async fn transition(&self, issue: &str) -> Result<(), ActionError> {
        let current: IssueStatus = self
            .call(
                Method::GET,
                &format!("/rest/api/2/issue/{issue}?fields=status"),
                None,
                &format!("read the status of {issue}"),
            )
            .await?;
        let target = &self.resolve_status;
        if current.fields.status.name.eq_ignore_ascii_case(target) {
            return Ok(());
        }
        let offered: Transitions = self
            .call(
                Method::GET,
                &format!("/rest/api/2/issue/{issue}/transitions"),
                None,
                &format!("list the transitions of {issue}"),
            )
            .await?;
        // A transition leading to the status is the surest match; its name is what
        // workflows call it when the status is named differently ("Close" → "Closed").
        let chosen = offered
            .transitions
            .iter()
            .find(|t| {
                t.to.as_ref()
                    .is_some_and(|to| to.name.eq_ignore_ascii_case(target))
            })
            .or_else(|| {
                offered
                    .transitions
                    .iter()
                    .find(|t| t.name.eq_ignore_ascii_case(target))
            });
        let Some(chosen) = chosen else {
            let names: Vec<&str> = offered
                .transitions
                .iter()
                .map(|t| t.name.as_str())
                .collect();
            return Err(ActionError::Permanent(format!(
                "Jira offers no transition of {issue} to status {target:?} (from {:?}; \
                 offered: {}); set jira.resolve_status",
                current.fields.status.name,
                names.join(", ")
            )));
        };
        let _: Value = self
            .call(
                Method::POST,
                &format!("/rest/api/2/issue/{issue}/transitions"),
                Some(&json!({ "transition": { "id": chosen.id } })),
                &format!("move {issue} to {target}"),
            )
            .await?;
        tracing::info!(%issue, status = %target, "jira: issue transitioned");
        Ok(())
    }
}

impl Tracker for JiraTracker {
    fn name(&self) -> &str {
        "jira"
    }

    fn open<'a>(
        &'a self,
        incident: &'a Incident,
        _key: &'a IdempotencyKey,
    ) -> BoxFuture<'a, Result<ExternalTicket, ActionError>> {
        // The label, not the step's key, identifies the issue: it is the incident's issue
        // whichever step or attempt created it.
        Box::pin(async move {
            let label = issue_label(&incident.key);
            if let Some(key) = self.find_by_label(&label).await? {
                tracing::info!(incident = %incident.key, issue = %key, "jira: issue already exists");
                return Ok(self.ticket(key));
            }
            let key = self.create(incident, &label).await?;
            tracing::info!(incident = %incident.key, issue = %key, "jira: issue created");
            Ok(self.ticket(key))
        })
    }

    fn comment<'a>(
        &'a self,
        ticket: &'a ExternalTicket,
        text: &'a str,
        key: &'a IdempotencyKey,
    ) -> BoxFuture<'a, Result<(), ActionError>> {
        Box::pin(async move {
            let issue = issue_id(ticket)?;
            self.comment_once(issue, key, |marker| noformat_comment(text, marker))
                .await
        })
    }

    fn resolve<'a>(
        &'a self,
        ticket: &'a ExternalTicket,
        incident: &'a Incident,
        key: &'a IdempotencyKey,
    ) -> BoxFuture<'a, Result<(), ActionError>> {
        Box::pin(async move {
            let issue = issue_id(ticket)?;
            self.comment_once(issue, key, |marker| {
                format!("{}\n{marker}", resolution_text(incident))
            })
            .await?;
            self.transition(issue).await
        })
    }
}

#[derive(Deserialize)]
struct SearchPage {
    #[serde(default)]
    issues: Vec<IssueKey>,
}

#[derive(Deserialize)]
struct IssueKey {
    key: String,
}

#[derive(Deserialize)]
struct Created {
    key: String,
}

#[derive(Deserialize)]
struct CommentPage {
    #[serde(default)]
    total: usize,
    #[serde(default)]
    comments: Vec<Comment>,
}

#[derive(Deserialize)]
struct Comment {
    #[serde(default)]
    body: String,
}

#[derive(Deserialize)]
struct IssueStatus {
    fields: StatusField,
}

#[derive(Deserialize)]
struct StatusField {
    status: Named,
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

#[derive(Deserialize)]
struct Transitions {
    #[serde(default)]
    transitions: Vec<Transition>,
}

#[derive(Deserialize)]
struct Transition {
    id: String,
    name: String,
    to: Option<Named>,
}

/// A successful JSON answer as `T`; anything else as an [`ActionError`].
fn read<T: DeserializeOwned>(
    action: &str,
    status: StatusCode,
    headers: &HeaderMap,
    bytes: &[u8],
) -> Result<T, ActionError> {
    if !status.is_success() {
        return Err(failure(action, status, headers, bytes));
    }
    // A 204 has no body; `Value` reads it as JSON null.
    let bytes: &[u8] = if bytes.is_empty() { b"null" } else { bytes };
    serde_json::from_slice(bytes).map_err(|e| {
        ActionError::Permanent(format!(
            "Jira's answer to {action} is not what the REST API v2 returns ({e}); is jira.url \
             the site's base URL?"
        ))
    })
}

/// Jira's error body: `{"errorMessages": [...], "errors": {"field": "message"}}`.
#[derive(Deserialize, Default)]
struct JiraErrors {
    #[serde(default, rename = "errorMessages")]
    messages: Vec<String>,
    #[serde(default)]
    errors: Map<String, Value>,
}

fn parse_errors(body: &[u8]) -> Option<JiraErrors> {
    serde_json::from_slice(body).ok()
}

/// A non-success answer as an [`ActionError`], with Jira's own words.
fn failure(action: &str, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> ActionError {
    let mut detail = match parse_errors(body) {
        Some(errors) => {
            let mut parts = errors.messages;
            parts.extend(errors.errors.iter().map(|(field, message)| {
                let message = message
                    .as_str()
                    .map_or_else(|| message.to_string(), str::to_string);
                format!("{field}: {message}")
            }));
            parts.join("; ")
        }
        None => http::snippet(body, 300),
    };
    match status {
        StatusCode::UNAUTHORIZED => detail.push_str(" (check jira.user and jira.token)"),
        StatusCode::FORBIDDEN => detail.push_str(" (the account lacks a permission this needs)"),
        _ => {}
    }
    http::status_error("Jira", action, status, headers, detail.trim())
}

/// Optional fields a 400 says cannot be set ("Field 'priority' cannot be set. It is not on
/// the appropriate screen, or unknown.") — only when nothing else is wrong.
fn refused_optional_fields(body: &[u8]) -> Vec<String> {
    let Some(errors) = parse_errors(body) else {
        return Vec::new();
    };
    let all_optional = !errors.errors.is_empty()
        && errors.messages.is_empty()
        && errors.errors.iter().all(|(field, message)| {
            OPTIONAL_FIELDS.contains(&field.as_str())
                && message
                    .as_str()
                    .is_some_and(|m| m.contains("cannot be set"))
        });
    if all_optional {
        errors.errors.keys().cloned().collect()
    } else {
        Vec::new()
    }
}

/// Issue keys go into URL paths; anything but a key (`OPS-42`) or id (`10001`) is refused
/// rather than escaped, since no Jira issue is named otherwise.
fn issue_id(ticket: &ExternalTicket) -> Result<&str, ActionError> {
    let id = ticket.id.as_str();
    if !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Ok(id)
    } else {
        Err(ActionError::Permanent(format!(
            "{id:?} is not a Jira issue key"
        )))
    }
}

/// `vigil-INC-7`. Labels cannot hold blanks.
fn issue_label(incident_key: &str) -> String {
    let key: String = incident_key
        .chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect();
    format!("vigil-{key}")
}

/// A JQL string literal.
fn jql_string(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

fn priority(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "Highest",
        Severity::High => "High",
        Severity::Warning => "Medium",
        Severity::Info => "Low",
    }
}

/// `123456789012 | web-01 | %CPU Utilization | Metric Value: 91.2`: what a queue of tickets
/// needs to be scanned. One line, at most 255 characters.
pub fn summary(incident: &Incident) -> String {
    let a = &incident.alarm;
    let mut parts: Vec<String> = Vec::new();
    if !a.account.is_empty() {
        parts.push(a.account.clone());
    }
    match &a.metric_name {
        Some(metric) => {
            if let Some(host) = a.host.as_ref().or(a.instance_id.as_ref()) {
                parts.push(host.clone());
            }
            parts.push(metric_label(metric));
            if a.state == Some(vigil_core::AlarmState::InsufficientData) {
                parts.push("Insufficient Data".into());
            } else if let Some(value) = a.value {
                parts.push(format!("Metric Value: {}", num(value)));
            }
        }
        None => parts.push(incident.title.clone()),
    }
    cut(&one_line(&parts.join(" | ")), SUMMARY_MAX)
}

/// Every alarm detail, in a `{noformat}` block so values are shown as written (no wiki
/// markup, aligned columns), with the links after it where Jira makes them clickable.
pub fn description(incident: &Incident, incident_links: Option<&str>) -> String {
    let a = &incident.alarm;
    let join = |map: &std::collections::BTreeMap<String, String>| {
        map.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let state = |s: Option<vigil_core::AlarmState>| s.map(|s| s.as_str().to_string());
    let rows: Vec<(&str, Option<String>)> = vec![
        ("Title", Some(incident.title.clone())),
        ("Severity", Some(incident.severity.as_str().to_string())),
        ("Alarm", Some(a.alarm_name.clone())),
        ("State", state(a.state)),
        ("Previous state", state(a.previous_state)),
        ("Reason", a.reason.clone()),
        ("Alarm description", a.description.clone()),
        ("Account", Some(a.account.clone())),
        ("Region", Some(a.region.clone())),
        ("Host", a.host.clone()),
        ("Instance id", a.instance_id.clone()),
        ("Metric namespace", a.metric_namespace.clone()),
        ("Metric name", a.metric_name.clone()),
        ("Dimensions", Some(join(&a.dimensions))),
        ("Statistic", a.statistic.clone()),
        ("Period", a.period.map(|p| format!("{} s", num(p)))),
        ("Threshold", a.threshold.map(num)),
        ("Value", a.value.map(num)),
        ("Labels", Some(join(&a.labels))),
        ("Annotations", Some(join(&a.annotations))),
        ("Resource", Some(a.resource.clone())),
        ("Source", Some(a.source.clone())),
        ("State changed at", a.state_time.clone()),
        ("Opened at", Some(rfc3339(incident.opened_at))),
        ("Events", Some(incident.count.to_string())),
        ("Incident", Some(incident.key.clone())),
    ];
    let mut rows = rows;
    if incident.kind == vigil_core::IncidentKind::Storm {
        // A storm names its hosts here; the full member list follows in comments.
        let members = &incident.members;
        rows.retain(|(name, _)| !matches!(*name, "Host" | "Instance id" | "Events"));
        rows.insert(1, ("Members", Some(format!("{} incidents", members.len()))));
        rows.insert(
            2,
            (
                "Findings",
                Some(vigil_core::StormFindings::of(members).summary()),
            ),
        );
        rows.insert(3, ("Hosts", Some(vigil_core::first_hosts(members, 50))));
    }
    let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0) + 2;
    let mut table = String::new();
    for (name, value) in rows {
        let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        // Continuation lines of a multi-line value stay in the value column.
        let value = value.replace('\n', &format!("\n{}", " ".repeat(width)));
        table.push_str(&format!("{:<width$}{value}\n", format!("{name}:")));
    }
    let mut links = Vec::new();
    match incident_links {
        Some(base) => links.push(format!("Incident {}: {base}{}", incident.key, incident.key)),
        None => links.push(format!("vigil incident {}", incident.key)),
    }
    if let Some(url) = &a.generator_url {
        links.push(format!("Source: {url}"));
    }
    noformat_block(
        "Opened by vigil.\n",
        table.trim_end(),
        &links.join("\n"),
        TEXT_MAX,
    )
}

/// Diagnostics keep their columns in a `{noformat}` block; the marker goes on the last line.
pub fn noformat_comment(text: &str, marker: &str) -> String {
    noformat_block("", text.trim_end(), marker, TEXT_MAX)
}

/// `head`, `text` in a `{noformat}` block, then `tail`, in at most `limit` characters: when
/// too long, `text` is cut (at a line end if one is near) and a note says how much is missing.
fn noformat_block(head: &str, text: &str, tail: &str, limit: usize) -> String {
    // A `{noformat}` inside the text would end the block early.
    let text = text.replace("{noformat}", "{ noformat}");
    let assemble =
        |body: &str, note: &str| format!("{head}{{noformat}}\n{body}\n{{noformat}}\n{note}{tail}");
    let whole = assemble(&text, "");
    if whole.chars().count() <= limit {
        return whole;
    }
    let total = text.chars().count();
    let note = |omitted: usize| {
        format!("[trimmed: {omitted} more characters; the full output is on the incident]\n")
    };
    // Sized for the longest note (every character omitted), so one pass is enough.
    let overhead = assemble("", &note(total)).chars().count();
    let keep = limit.saturating_sub(overhead);
    let mut kept: String = text.chars().take(keep).collect();
    if let Some(line_end) = kept.rfind('\n') {
        if kept[..line_end].chars().count() > keep / 2 {
            kept.truncate(line_end);
        }
    }
    let omitted = total - kept.chars().count();
    assemble(&kept, &note(omitted))
}

fn resolution_text(incident: &Incident) -> String {
    let mut text = format!(
        "Recovered: {} is back to OK; vigil resolved incident {}",
        incident.alarm.alarm_name, incident.key
    );
    if let Some(at) = incident.resolved_at {
        text.push_str(&format!(" at {}", rfc3339(at)));
    }
    text.push_str(&format!(" (opened {}).", rfc3339(incident.opened_at)));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample_incident;

    #[test]
    fn summary_names_account_host_metric_and_value() {
        let incident = sample_incident();
        assert_eq!(
            summary(&incident),
            "123456789012 | web-01 | %CPU Utilization | Metric Value: 91.2"
        );
        let mut memory = incident.clone();
        memory.alarm.metric_name = Some("mem_used_percent".into());
        memory.alarm.value = Some(93.456);
        assert_eq!(
            summary(&memory),
            "123456789012 | web-01 | %Memory Used | Metric Value: 93.46"
        );
        let mut no_metric = incident.clone();
        no_metric.alarm.metric_name = None;
        no_metric.title = "EC2 Instance State-change\nNotification".into();
        assert_eq!(
            summary(&no_metric),
            "123456789012 | EC2 Instance State-change Notification"
        );
        let mut long = incident;
        long.alarm.host = Some("h".repeat(400));
        let s = summary(&long);
        assert_eq!(s.chars().count(), 255);
        assert!(s.ends_with('…'));
    }

    #[test]
    fn trimmed_comment_fits_and_says_how_much_is_missing() {
        let line = "x".repeat(99);
        let text = vec![line.as_str(); 500].join("\n"); // 49,999 characters
        let body = noformat_comment(&text, "[vigil:k]");
        assert!(body.chars().count() <= TEXT_MAX, "{}", body.chars().count());
        assert!(body.ends_with("\n[vigil:k]"));
        let kept = body
            .strip_prefix("{noformat}\n")
            .and_then(|b| b.split("\n{noformat}\n").next())
            .unwrap();
        // Cut at a line end, so no half line.
        assert!(kept.lines().all(|l| l.len() == 99));
        let omitted = text.chars().count() - kept.chars().count();
        assert!(
            body.contains(&format!(
                "[trimmed: {omitted} more characters; the full output is on the incident]"
            )),
            "{}",
            &body[body.len() - 200..]
        );
    }

    #[test]
    fn noformat_in_text_cannot_close_the_block() {
        let body = noformat_comment("a {noformat} b", "[vigil:k]");
        assert_eq!(body, "{noformat}\na { noformat} b\n{noformat}\n[vigil:k]");
    }

    #[test]
    fn only_refused_optional_fields_are_dropped() {
        let priority = br#"{"errorMessages":[],"errors":{"priority":"Field 'priority' cannot be set. It is not on the appropriate screen, or unknown."}}"#;
        assert_eq!(refused_optional_fields(priority), ["priority"]);
        let summary = br#"{"errorMessages":[],"errors":{"priority":"Field 'priority' cannot be set.","summary":"You must specify a summary of the issue."}}"#;
        assert!(refused_optional_fields(summary).is_empty());
        assert!(refused_optional_fields(b"<html>").is_empty());
    }

    #[test]
    fn labels_and_jql_are_quoted() {
        assert_eq!(issue_label("INC 7"), "vigil-INC_7");
        assert_eq!(jql_string(r#"a"b\c"#), r#""a\"b\\c""#);
        let bad = ExternalTicket {
            tracker: "jira".into(),
            id: "OPS-1/../x".into(),
            url: String::new(),
        };
        assert!(matches!(issue_id(&bad), Err(ActionError::Permanent(_))));
    }
}
