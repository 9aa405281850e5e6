//! What every channel says about an incident, worked out once: a readable metric name, the
//! subject line, impact / observed / desired state, the context rows; and the minijinja
//! environment templates are rendered in.

use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;
use serde_json::json;
use vigil_actions::{ActionError, Message, MessageKind};
use vigil_core::{
    first_hosts, AlarmFacts, AlarmState, Incident, IncidentKind, IncidentStatus, StormFindings,
    TimelineKind, Timestamp,
};

use crate::{sample_message, IntegrationError};

/// `text` cut to at most `max_chars` characters, ending in "…" when something was cut.
pub(crate) fn cut(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Newlines and runs of blanks become one space: for subjects and summaries.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A time as every channel writes it: RFC 3339 in UTC, `2024-08-23T06:00:33Z` (with
/// milliseconds when there are any), the way the incident's JSON spells it too.
pub(crate) fn rfc3339(at: Timestamp) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Most probes a pending note names; the rest are counted.
const PENDING_NAMED_MAX: usize = 10;

/// The probes still running, as the pending note names them: "top_cpu on web-01,
/// top_mem on web-01" (repeats once, at most [`PENDING_NAMED_MAX`], then "and N more");
/// `None` when none are known.
fn pending_names(probes: &[String]) -> Option<String> {
    let mut names: Vec<String> = Vec::new();
    for probe in probes {
        let probe = one_line(probe);
        if !probe.is_empty() && !names.contains(&probe) {
            names.push(probe);
        }
    }
    if names.is_empty() {
        return None;
    }
    let more = names.len().saturating_sub(PENDING_NAMED_MAX);
    names.truncate(PENDING_NAMED_MAX);
    let mut text = names.join(", ");
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    Some(text)
}

/// What a message says when probes were still running as it went out, naming them when
/// the message knows which ("…still running at the deadline: top_cpu on web-01; …");
/// `None` when none were.
pub(crate) fn pending_note(message: &Message) -> Option<String> {
    if !message.diagnostics_pending {
        return None;
    }
    let lead = if message.diagnostics.is_empty() {
        "Diagnostics: still running at the deadline"
    } else {
        "Diagnostics: more probes were still running at the deadline"
    };
    Some(match pending_names(&message.pending_probes) {
        Some(names) => format!("{lead}: {names}; a follow-up message will carry them."),
        None => format!("{lead}; a follow-up message will carry them."),
    })
}

/// 91.23456 → "91.23", 80.0 → "80": what a person reads, not what a float prints.
pub(crate) fn num(v: f64) -> String {
    if v.is_finite() {
        ((v * 100.0).round() / 100.0).to_string()
    } else {
        v.to_string()
    }
}

/// How the metric is named in tickets: the labels operators already know from the
/// CloudWatch/CloudWatch-agent consoles.
pub(crate) fn metric_label(metric: &str) -> String {
    match metric {
        "CPUUtilization" => "%CPU Utilization".into(),
        "mem_used_percent" => "%Memory Used".into(),
        "disk_used_percent" => "%Disk Used".into(),
        other => other.into(),
    }
}

/// How the metric is named in subject lines ("High CPU Utilization Alert").
fn metric_topic(metric: &str) -> String {
    match metric {
        "CPUUtilization" => "CPU Utilization".into(),
        "mem_used_percent" => "Memory Utilization".into(),
        "disk_used_percent" => "Disk Utilization".into(),
        other => other.into(),
    }
}

enum Resource {
    Cpu,
    Memory,
    Disk,
    Other,
}

/// Broader than [`metric_label`]: Prometheus and custom metrics name the same resources
/// many ways, and the impact text only needs to know which one.
fn resource(metric: &str) -> Resource {
    let m = metric.to_ascii_lowercase();
    if m.contains("cpu") {
        Resource::Cpu
    } else if m.contains("mem") {
        Resource::Memory
    } else if m.contains("disk") || m.contains("filesystem") {
        Resource::Disk
    } else {
        Resource::Other
    }
}

/// What the alarm is about, shortest first: the host, the instance, the last part of the
/// resource (`…:instance/i-1` → `i-1`), the alarm's name.
pub(crate) fn target(a: &AlarmFacts) -> String {
    let from_resource = a
        .resource
        .rsplit(['/', ':'])
        .next()
        .filter(|s| !s.is_empty());
    a.host
        .as_deref()
        .or(a.instance_id.as_deref())
        .or(from_resource)
        .unwrap_or(&a.alarm_name)
        .to_string()
}

/// True for an alarm on a value that went too low (free memory, request rate): CloudWatch
/// does not say which side of the threshold is bad, the numbers do.
fn too_low(a: &AlarmFacts) -> bool {
    match (a.value, a.threshold, a.state) {
        (Some(v), Some(t), Some(AlarmState::Alarm)) => v < t,
        (Some(v), Some(t), Some(AlarmState::Ok)) => v > t,
        _ => false,
    }
}

fn state_text(a: &AlarmFacts) -> String {
    match (a.state, a.previous_state) {
        (Some(s), Some(p)) => format!("{} (was {})", s.as_str(), p.as_str()),
        (Some(s), None) => s.as_str().to_string(),
        (None, _) => "unknown".to_string(),
    }
}

/// One line of the context table; `label` is padded for plain-text columns.
#[derive(Debug, Serialize)]
pub(crate) struct Row {
    pub name: &'static str,
    pub label: String,
    pub value: String,
}

/// Derived facts templates use under `facts`.
#[derive(Debug, Serialize)]
pub(crate) struct Facts {
    pub subject: String,
    pub target: String,
    /// The readable metric name (`%CPU Utilization`), when the alarm has a metric.
    pub metric: Option<String>,
    pub value: Option<String>,
    pub threshold: Option<String>,
    /// The application in vigil's application tree: the incident's, else `labels.appcode`.
    pub appcode: Option<String>,
    pub state: String,
    pub impact: String,
    pub observed: String,
    pub desired: String,
    pub context: Vec<Row>,
    /// For a diagnostics follow-up: what it is, in one sentence.
    pub lead: Option<String>,
    /// For a diagnostics follow-up without probe output: what is known of the host instead
    /// (probes refused, timed out, the agent unreachable).
    pub host_checks: Vec<String>,
}

impl Facts {
    pub(crate) fn of(incident: &Incident, kind: MessageKind) -> Facts {
        if incident.kind == IncidentKind::Storm {
            return Facts::of_storm(incident, kind);
        }
        let a = &incident.alarm;
        let target = target(a);
        let metric = a.metric_name.as_deref().map(metric_label);
        let value = a.value.map(num);
        let threshold = a.threshold.map(num);
        let insufficient = a.state == Some(AlarmState::InsufficientData);
        let low = too_low(a);

        let base_subject = match (a.metric_name.as_deref(), insufficient) {
            (Some(m), true) => format!("Insufficient {} Alarm : {target}", metric_topic(m)),
            (None, true) => format!("Insufficient Data Alarm : {target}"),
            (Some(m), false) => format!(
                "{} {} Alert : {target}",
                if low { "Low" } else { "High" },
                metric_topic(m)
            ),
            (None, false) if a.alarm_name.is_empty() || a.alarm_name == target => {
                format!("Alert : {}", incident.title)
            }
            (None, false) => format!("{} Alert : {target}", a.alarm_name),
        };
        let subject = one_line(&match kind {
            MessageKind::Opened => base_subject,
            MessageKind::Resolved => format!("Resolved: {base_subject}"),
            MessageKind::Diagnostics | MessageKind::Digest => {
                format!("[vigil] {} diagnostics: {}", incident.key, incident.title)
            }
        });

        let metric_text = metric.clone().unwrap_or_else(|| "metric".into());
        let impact = a.annotations.get("impact").cloned().unwrap_or_else(|| {
            if insufficient {
                return format!(
                    "vigil gets no {metric_text} data from {target}: the host, its agent or its \
                     collector may be down, and its other alarms cannot fire meanwhile."
                );
            }
            match a.metric_name.as_deref().map(resource) {
                Some(Resource::Cpu) => format!(
                    "Applications on {target} may respond slowly or time out while the CPU is \
                     saturated."
                ),
                Some(Resource::Memory) => format!(
                    "Processes on {target} may swap heavily or be killed by the out-of-memory \
                     killer."
                ),
                Some(Resource::Disk) => format!(
                    "Writes on {target} fail once the filesystem is full: logs, databases and \
                     deploys stop."
                ),
                Some(Resource::Other) | None => a
                    .description
                    .clone()
                    .or_else(|| a.annotations.get("description").cloned())
                    .unwrap_or_else(|| {
                        format!(
                            "{} is in {}; see the reason below.",
                            a.alarm_name,
                            state_text(a)
                        )
                    }),
            }
        });

        // A follow-up is told against the incident as it is now: resolved by then, or not.
        let told_as_resolved = match kind {
            MessageKind::Resolved => true,
            MessageKind::Diagnostics | MessageKind::Digest => {
                incident.status == IncidentStatus::Resolved
            }
            MessageKind::Opened => false,
        };
        let (observed, desired) = match kind {
            _ if told_as_resolved => (
                match incident.resolved_at {
                    Some(at) => format!(
                        "The alarm is back to OK; the incident was resolved at {}.",
                        rfc3339(at)
                    ),
                    None => "The alarm is back to OK; the incident is resolved.".to_string(),
                },
                "Reached: nothing more to do unless it fires again.".to_string(),
            ),
            _ if insufficient => (
                format!(
                    "No {metric_text} data points from {target} (state {}).",
                    state_text(a)
                ),
                format!("{target} reports {metric_text} again and the alarm returns to OK."),
            ),
            _ => (
                match (&value, &threshold) {
                    (Some(v), Some(t)) => format!(
                        "{metric_text} is {v} against a threshold of {t} (state {}).",
                        state_text(a)
                    ),
                    (Some(v), None) => format!("{metric_text} is {v} (state {}).", state_text(a)),
                    _ => format!("State {}.", state_text(a)),
                },
                match &threshold {
                    Some(t) => format!(
                        "{metric_text} back {} {t} and the alarm returns to OK.",
                        if low { "above" } else { "below" }
                    ),
                    None => "The alarm returns to OK.".to_string(),
                },
            ),
        };

        let appcode = a
            .appcode
            .clone()
            .or_else(|| a.labels.get("appcode").cloned());
        let metric_path = match (&a.metric_namespace, &a.metric_name) {
            (Some(ns), Some(m)) => Some(format!("{ns} / {m}")),
            (None, Some(m)) => Some(m.clone()),
            _ => None,
        };
        let instance = a.instance_id.clone().filter(|i| a.host.as_ref() != Some(i));
        let rows: [(&'static str, Option<String>); 10] = [
            ("Time", Some(rfc3339(incident.opened_at))),
            ("Account", Some(a.account.clone())),
            ("Region", Some(a.region.clone())),
            ("Host", a.host.clone()),
            ("Instance", instance),
            ("Appcode", appcode.clone()),
            ("Metric", metric_path),
            ("Value", value.clone()),
            ("Threshold", threshold.clone()),
            ("Reason", a.reason.clone()),
        ];
        let context = rows
            .into_iter()
            .filter_map(|(name, value)| {
                let value = value.filter(|v| !v.trim().is_empty())?;
                Some(Row {
                    name,
                    label: format!("{:<11}", format!("{name}:")),
                    value,
                })
            })
            .collect();

        let lead = (kind == MessageKind::Diagnostics).then(|| {
            format!(
                "Probe results for incident {} that were still running when the first message \
                 went out.",
                incident.key
            )
        });
        let host_checks = if kind == MessageKind::Diagnostics {
            incident
                .timeline
                .iter()
                .filter(|t| t.kind == TimelineKind::HostCheck)
                .map(|t| t.message.clone())
                .collect()
        } else {
            Vec::new()
        };

        Facts {
            subject,
            target,
            metric,
            value,
            threshold,
            appcode,
            state: state_text(a),
            impact,
            observed,
            desired,
            context,
            lead,
            host_checks,
        }
    }
}

impl Facts {
    /// A storm's facts: how many hosts, which first, what their probes found.
    fn of_storm(incident: &Incident, kind: MessageKind) -> Facts {
        let a = &incident.alarm;
        let members = &incident.members;
        let n = members.len();
        let findings = StormFindings::of(members).summary();
        let appcode = a.appcode.clone();
        let subject = one_line(&match kind {
            MessageKind::Opened => {
                format!("[vigil] {}: {n} hosts — {}", incident.key, incident.title)
            }
            MessageKind::Resolved => {
                format!("Resolved: [vigil] {}: {}", incident.key, incident.title)
            }
            MessageKind::Diagnostics | MessageKind::Digest => format!(
                "[vigil] {} update: {n} hosts — {}",
                incident.key, incident.title
            ),
        });
        let open = members
            .iter()
            .filter(|m| m.status != IncidentStatus::Resolved)
            .count();
        let (observed, desired) = if incident.status == IncidentStatus::Resolved {
            (
                format!("All {n} member incidents recovered; the storm is resolved."),
                "Reached: nothing more to do unless it fires again.".to_string(),
            )
        } else {
            (
                format!("{n} hosts alarm at once ({open} still open). {findings}."),
                "The members' alarms return to OK; the storm resolves with its last one."
                    .to_string(),
            )
        };
        let rows: [(&'static str, Option<String>); 6] = [
            ("Time", Some(rfc3339(incident.opened_at))),
            ("Appcode", appcode.clone()),
            ("Alarm", Some(a.alarm_name.clone())),
            ("Hosts", Some(first_hosts(members, 20))),
            ("Members", Some(format!("{n} incidents, {open} open"))),
            ("Findings", Some(findings.clone())),
        ];
        let context = rows
            .into_iter()
            .filter_map(|(name, value)| {
                let value = value.filter(|v| !v.trim().is_empty())?;
                Some(Row {
                    name,
                    label: format!("{:<11}", format!("{name}:")),
                    value,
                })
            })
            .collect();
        let lead = matches!(kind, MessageKind::Diagnostics | MessageKind::Digest).then(|| {
            format!(
                "News of storm {}: {n} member incidents so far; every member and its \
                 timeline is on the storm's page.",
                incident.key
            )
        });
        Facts {
            subject,
            target: format!("{n} hosts"),
            metric: a.metric_name.as_deref().map(metric_label),
            value: None,
            threshold: a.threshold.map(num),
            appcode,
            state: state_text(a),
            impact: format!(
                "{n} hosts alarm at once under one scope: probably one shared cause (a \
                 network, a zone, a dependency) rather than {n} separate faults."
            ),
            observed,
            desired,
            context,
            lead,
            host_checks: Vec::new(),
        }
    }
}

/// Everything a template sees: `kind` (`opened`, `resolved` or `diagnostics`), `key`,
/// `incident` (every field of the incident, the alarm's flattened in, `timeline` always
/// present, times as RFC 3339), `diagnostics`, `diagnostics_pending` (probes were still
/// running when the message went out; `pending_note` says so in a sentence, naming them,
/// null otherwise), `pending_probes` (those probes, "top_cpu on web-01"), `tickets`,
/// `incident_url` and the derived `facts`.
pub(crate) fn context(message: &Message) -> minijinja::Value {
    let mut incident = message.incident.to_value();
    if let Some(fields) = incident.as_object_mut() {
        // Incident skips an empty timeline when serialised; templates should not have to
        // guard against it being undefined.
        fields.entry("timeline").or_insert_with(|| json!([]));
    }
    minijinja::Value::from(Serde(json!({
        "kind": message.kind,
        "key": message.key.0,
        "incident": incident,
        "diagnostics": message.diagnostics,
        "diagnostics_pending": message.diagnostics_pending,
        "pending_note": pending_note(message),
        "pending_probes": message.pending_probes,
        "tickets": message.tickets,
        "incident_url": message.incident_url,
        "facts": Facts::of(&message.incident, message.kind),
    })))
}

/// Slack's mrkdwn treats `&`, `<` and `>` as markup; everything else is shown as written.
pub(crate) fn mrkdwn_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Text made safe inside HTML elements and quoted attributes: the five characters HTML
/// gives meaning to become entities.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A set of named templates, each checked when loaded.
pub(crate) struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// Parses each `(name, source)` and renders it for the sample message of every kind
    /// (opened, resolved, a diagnostics follow-up, and one sent before the probes answered),
    /// so a template that fails does so at start, not during an incident. A name
    /// ending in `.html` is HTML-escaped; templates also get the `mrkdwn` filter (Slack
    /// escaping). Blocks trim their own line (`trim_blocks`, `lstrip_blocks`).
    pub(crate) fn new(
        templates: Vec<(&'static str, String)>,
    ) -> Result<Templates, IntegrationError> {
        let mut env = Environment::new();
        // Every field is present in the context (missing values are null), so an undefined
        // name is a typo and should fail the build-time check.
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| IntegrationError::Template {
                name: "(syntax)".into(),
                error: e.to_string(),
            })?;
        env.set_syntax(syntax);
        env.add_filter("mrkdwn", |s: String| mrkdwn_escape(&s));
        // minijinja's HTML escaping also writes `/` as `&#x2f;`, which mangles every URL and
        // path in the source of a message; the five characters HTML needs are enough.
        env.set_formatter(
            |out, state, value| match (state.auto_escape(), value.as_str()) {
                (AutoEscape::Html, Some(text)) if !value.is_safe() => {
                    Ok(out.write_str(&html_escape(text))?)
                }
                _ => minijinja::escape_formatter(out, state, value),
            },
        );
        let names: Vec<&'static str> = templates.iter().map(|(name, _)| *name).collect();
        for (name, source) in templates {
            env.add_template_owned(name, source)
                .map_err(|e| IntegrationError::Template {
                    name: name.into(),
                    error: e.to_string(),
                })?;
        }
        let loaded = Templates { env };
        let mut pending = sample_message(MessageKind::Opened);
        pending.diagnostics_pending = true;
        pending.diagnostics.clear();
        pending.pending_probes = vec!["top_cpu on web-01".into()];
        let samples = [
            sample_message(MessageKind::Opened),
            sample_message(MessageKind::Resolved),
            sample_message(MessageKind::Diagnostics),
            pending,
        ];
        for sample in &samples {
            let ctx = context(sample);
            for name in &names {
                loaded
                    .try_render(name, &ctx)
                    .map_err(|error| IntegrationError::Template {
                        name: (*name).into(),
                        error,
                    })?;
            }
        }
        Ok(loaded)
    }

    /// Renders `name`, the error as minijinja's text.
    pub(crate) fn try_render(&self, name: &str, ctx: &minijinja::Value) -> Result<String, String> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| e.to_string())
    }

    /// A template that rendered the sample but fails on a real incident will fail the same
    /// way on every retry: permanent.
    pub(crate) fn render(&self, name: &str, ctx: &minijinja::Value) -> Result<String, ActionError> {
        self.try_render(name, ctx)
            .map_err(|e| ActionError::Permanent(format!("template {name} failed: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample_incident;

    #[test]
    fn html_escape_covers_the_five_characters() {
        assert_eq!(
            html_escape("<a href=\"x\">'&'</a> é"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt; é"
        );
    }

    #[test]
    fn subjects_follow_the_alarm() {
        let mut incident = sample_incident();
        assert_eq!(
            Facts::of(&incident, MessageKind::Opened).subject,
            "High CPU Utilization Alert : web-01"
        );
        assert_eq!(
            Facts::of(&incident, MessageKind::Resolved).subject,
            "Resolved: High CPU Utilization Alert : web-01"
        );
        incident.alarm.state = Some(AlarmState::InsufficientData);
        assert_eq!(
            Facts::of(&incident, MessageKind::Opened).subject,
            "Insufficient CPU Utilization Alarm : web-01"
        );
        incident.alarm.state = Some(AlarmState::Alarm);
        incident.alarm.metric_name = Some("FreeableMemory".into());
        incident.alarm.value = Some(10.0);
        assert_eq!(
            Facts::of(&incident, MessageKind::Opened).subject,
            "Low FreeableMemory Alert : web-01"
        );
    }

    #[test]
    fn events_without_metric_or_host_name_their_resource() {
        let mut incident = sample_incident();
        incident.alarm.metric_name = None;
        incident.alarm.host = None;
        incident.alarm.instance_id = None;
        incident.alarm.alarm_name = "EC2 Instance State-change Notification".into();
        incident.alarm.resource = "arn:aws:ec2:us-east-1:123:instance/i-0feed".into();
        assert_eq!(
            Facts::of(&incident, MessageKind::Opened).subject,
            "EC2 Instance State-change Notification Alert : i-0feed"
        );
    }

    #[test]
    fn observed_and_desired_state_use_the_numbers() {
        let facts = Facts::of(&sample_incident(), MessageKind::Opened);
        assert_eq!(
            facts.observed,
            "%CPU Utilization is 91.2 against a threshold of 80 (state ALARM (was OK))."
        );
        assert_eq!(
            facts.desired,
            "%CPU Utilization back below 80 and the alarm returns to OK."
        );
        assert!(facts.impact.contains("web-01"), "{}", facts.impact);
        assert_eq!(facts.appcode.as_deref(), Some("hotel_booking_api"));
        let names: Vec<_> = facts.context.iter().map(|r| r.name).collect();
        assert_eq!(
            names,
            [
                "Time",
                "Account",
                "Region",
                "Host",
                "Instance",
                "Appcode",
                "Metric",
                "Value",
                "Threshold",
                "Reason"
            ]
        );
    }

    #[test]
    fn follow_ups_and_pending_messages_say_what_they_are() {
        let mut incident = sample_incident();
        let facts = Facts::of(&incident, MessageKind::Diagnostics);
        assert_eq!(
            facts.subject,
            format!("[vigil] INC-7 diagnostics: {}", incident.title)
        );
        assert!(facts.lead.is_some_and(|l| l.contains("INC-7")));
        assert!(Facts::of(&incident, MessageKind::Opened).lead.is_none());
        incident.status = IncidentStatus::Resolved;
        incident.resolved_at = "2024-08-23T06:20:00.250Z".parse().ok();
        assert_eq!(
            Facts::of(&incident, MessageKind::Diagnostics).observed,
            "The alarm is back to OK; the incident was resolved at 2024-08-23T06:20:00.250Z."
        );
        incident.timeline.push(vigil_core::TimelineEntry {
            at: incident.opened_at,
            kind: TimelineKind::HostCheck,
            message: "probe `top_cpu` timed out on web-01".into(),
            event_id: None,
        });
        assert_eq!(
            Facts::of(&incident, MessageKind::Diagnostics).host_checks,
            ["probe `top_cpu` timed out on web-01"]
        );

        let mut message = sample_message(MessageKind::Opened);
        assert_eq!(pending_note(&message), None);
        message.diagnostics_pending = true;
        assert!(pending_note(&message).is_some_and(|n| n.contains("more probes")));
        message.diagnostics.clear();
        assert_eq!(
            pending_note(&message).as_deref(),
            Some(
                "Diagnostics: still running at the deadline; a follow-up message will carry them."
            )
        );
    }

    #[test]
    fn pending_notes_name_the_probes_still_running() {
        let mut message = sample_message(MessageKind::Opened);
        message.diagnostics_pending = true;
        message.pending_probes = vec!["top_cpu on web-01".into()];
        message.diagnostics.clear();
        assert_eq!(
            pending_note(&message).as_deref(),
            Some(
                "Diagnostics: still running at the deadline: top_cpu on web-01; a follow-up \
                 message will carry them."
            )
        );
        message.diagnostics = sample_message(MessageKind::Opened).diagnostics;
        message.pending_probes = vec![
            "command:slow on web-01".into(),
            "top_mem on web-01".into(),
            "command:slow on web-01".into(),
        ];
        assert_eq!(
            pending_note(&message).as_deref(),
            Some(
                "Diagnostics: more probes were still running at the deadline: command:slow on \
                 web-01, top_mem on web-01; a follow-up message will carry them."
            )
        );
        // Not pending: the names say nothing.
        message.diagnostics_pending = false;
        assert_eq!(pending_note(&message), None);
    }

    #[test]
    fn a_long_list_of_pending_probes_is_cut_and_counted() {
        let probes: Vec<String> = (0..13).map(|i| format!("p{i} on web-01")).collect();
        let names = pending_names(&probes).expect("names");
        assert!(names.starts_with("p0 on web-01, p1 on web-01"), "{names}");
        assert!(names.ends_with("p9 on web-01 and 3 more"), "{names}");
        assert_eq!(pending_names(&[]), None);
        assert_eq!(pending_names(&[" \n".into()]), None);
        assert_eq!(
            pending_names(&["top_cpu\non  web-01".into()]).as_deref(),
            Some("top_cpu on web-01")
        );
    }

    #[test]
    fn templates_see_the_pending_probes() {
        let t = Templates::new(vec![(
            "x.txt",
            "{% for p in pending_probes %}[{{ p }}]{% endfor %}{{ pending_note }}".into(),
        )])
        .expect("templates load");
        let mut message = sample_message(MessageKind::Opened);
        message.diagnostics.clear();
        message.diagnostics_pending = true;
        message.pending_probes = vec!["top_cpu on web-01".into()];
        assert_eq!(
            t.render("x.txt", &context(&message)).unwrap(),
            "[top_cpu on web-01]Diagnostics: still running at the deadline: top_cpu on web-01; \
             a follow-up message will carry them."
        );
    }

    #[test]
    fn times_are_rfc_3339_as_the_incident_json_has_them() {
        let incident = sample_incident();
        assert_eq!(rfc3339(incident.opened_at), "2024-08-23T06:00:33Z");
        assert_eq!(incident.to_value()["opened_at"], "2024-08-23T06:00:33Z");
        let facts = Facts::of(&incident, MessageKind::Opened);
        assert_eq!(facts.context[0].value, "2024-08-23T06:00:33Z");
    }

    #[test]
    fn cut_and_number_formatting() {
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abc", 3), "abc");
        assert_eq!(num(91.23456), "91.23");
        assert_eq!(num(80.0), "80");
        assert_eq!(one_line(" a\r\n b\tc "), "a b c");
    }

    #[test]
    fn templates_fail_at_load_with_their_name() {
        let broken = Templates::new(vec![("email.templates.text", "{% if %}".into())]);
        match broken {
            Err(IntegrationError::Template { name, error }) => {
                assert_eq!(name, "email.templates.text");
                assert!(error.contains("syntax error"), "{error}");
            }
            other => panic!("expected a template error, got {:?}", other.err()),
        }
        let typo = Templates::new(vec![("slack.template", "{{ incident.hots }}".into())]);
        match typo {
            Err(IntegrationError::Template { name, error }) => {
                assert_eq!(name, "slack.template");
                assert!(error.contains("undefined"), "{error}");
            }
            other => panic!("expected a template error, got {:?}", other.err()),
        }
    }

    #[test]
    fn html_templates_escape_and_mrkdwn_filter_escapes() {
        let t = Templates::new(vec![
            ("x.html", "{{ v }}".into()),
            ("x.txt", "{{ v|mrkdwn }}".into()),
        ]);
        // `v` is not in the sample context: SemiStrict refuses to print it.
        assert!(t.is_err());
        let t = Templates::new(vec![
            (
                "x.html",
                "{{ incident.title }}<{{ kind }}> {{ incident_url }}".into(),
            ),
            ("x.txt", "{{ incident.title|mrkdwn }}".into()),
        ])
        .expect("templates load");
        let mut message = sample_message(MessageKind::Opened);
        message.incident.title = "a <b> & c".into();
        message.incident_url = "https://x/\"y'".into();
        let ctx = context(&message);
        assert_eq!(
            t.render("x.html", &ctx).unwrap(),
            "a &lt;b&gt; &amp; c<opened> https://x/&quot;y&#39;"
        );
        assert_eq!(t.render("x.txt", &ctx).unwrap(), "a &lt;b&gt; &amp; c");
    }
}
