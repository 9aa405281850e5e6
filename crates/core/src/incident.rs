use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::alarm::AlarmFacts;
use crate::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IncidentStatus {
    Open,
    Acknowledged,
    Resolved,
}

impl IncidentStatus {
    pub fn parse(s: &str) -> Option<IncidentStatus> {
        match s {
            "open" => Some(IncidentStatus::Open),
            "acknowledged" => Some(IncidentStatus::Acknowledged),
            "resolved" => Some(IncidentStatus::Resolved),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            IncidentStatus::Open => "open",
            IncidentStatus::Acknowledged => "acknowledged",
            IncidentStatus::Resolved => "resolved",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    High,
    Warning,
    Info,
}

impl Severity {
    /// Reads the severity words monitoring systems use (`critical`, `page`, `warning`, …);
    /// anything unknown is `High`, because an alarm nobody graded still deserves attention.
    pub fn from_label(label: Option<&str>) -> Severity {
        match label.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
            Some("critical" | "crit" | "page" | "fatal" | "emergency" | "p1") => Severity::Critical,
            Some("warning" | "warn" | "medium" | "minor" | "p3") => Severity::Warning,
            Some("info" | "informational" | "low" | "none" | "p4" | "p5") => Severity::Info,
            _ => Severity::High,
        }
    }

    /// Reads a severity exactly as [`Severity::as_str`] writes it.
    pub fn parse(s: &str) -> Option<Severity> {
        [
            Severity::Critical,
            Severity::High,
            Severity::Warning,
            Severity::Info,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimelineKind {
    Opened,
    Repeat,
    Acknowledged,
    Resolved,
    Note,
    /// Output of a probe run on the affected host.
    Diagnostics,
    /// What vigil found out about the host itself: reachable, last seen, refused probes.
    HostCheck,
}

impl TimelineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TimelineKind::Opened => "opened",
            TimelineKind::Repeat => "repeat",
            TimelineKind::Acknowledged => "acknowledged",
            TimelineKind::Resolved => "resolved",
            TimelineKind::Note => "note",
            TimelineKind::Diagnostics => "diagnostics",
            TimelineKind::HostCheck => "host_check",
        }
    }

    pub fn parse(s: &str) -> Option<TimelineKind> {
        [
            TimelineKind::Opened,
            TimelineKind::Repeat,
            TimelineKind::Acknowledged,
            TimelineKind::Resolved,
            TimelineKind::Note,
            TimelineKind::Diagnostics,
            TimelineKind::HostCheck,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at: Timestamp,
    pub kind: TimelineKind,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

/// The record a human reads. Alarm details are flattened in so the API, CLI and
/// templates see one object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub key: String,
    pub title: String,
    pub status: IncidentStatus,
    pub severity: Severity,
    /// Alarm events grouped into this incident, the first one included.
    pub count: u64,
    pub group_key: String,
    pub opened_at: Timestamp,
    pub acknowledged_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    pub last_event_at: Timestamp,
    #[serde(flatten)]
    pub alarm: AlarmFacts,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub timeline: Vec<TimelineEntry>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unknown incident group field `{0}`; use alarm_name, resource, host, source, account, region, metric_name or label:NAME")]
pub struct GroupKeyError(pub String);

/// The grouping key of an alarm: the values of `fields` joined with `|`. Fields are
/// fact names or `label:NAME`. Checked once at config load with [`group_key_fields_valid`].
pub fn group_key(facts: &AlarmFacts, fields: &[String]) -> Result<String, GroupKeyError> {
    let mut parts = Vec::with_capacity(fields.len());
    for field in fields {
        let part = match field.as_str() {
            "alarm_name" => facts.alarm_name.clone(),
            "resource" => facts.resource.clone(),
            "host" => facts.host.clone().unwrap_or_default(),
            "source" => facts.source.clone(),
            "account" => facts.account.clone(),
            "region" => facts.region.clone(),
            "metric_name" => facts.metric_name.clone().unwrap_or_default(),
            other => match other.strip_prefix("label:") {
                Some(label) => facts.labels.get(label).cloned().unwrap_or_default(),
                None => return Err(GroupKeyError(other.to_string())),
            },
        };
        parts.push(part);
    }
    Ok(parts.join("|"))
}

/// Helper for config validation: fails on the first unknown field.
pub fn group_key_fields_valid(fields: &[String]) -> Result<(), GroupKeyError> {
    group_key(&AlarmFacts::default(), fields).map(|_| ())
}

impl Incident {
    /// The incident as JSON for APIs and templates.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.alarm.labels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_key_joins_fields() {
        let facts = AlarmFacts {
            alarm_name: "cpu".into(),
            resource: "arn:x".into(),
            labels: [("team".to_string(), "web".to_string())].into(),
            ..Default::default()
        };
        let key = group_key(
            &facts,
            &["alarm_name".into(), "resource".into(), "label:team".into()],
        )
        .unwrap();
        assert_eq!(key, "cpu|arn:x|web");
        assert!(group_key_fields_valid(&["nonsense".into()]).is_err());
    }

    #[test]
    fn severity_words() {
        assert_eq!(Severity::from_label(Some("CRITICAL")), Severity::Critical);
        assert_eq!(Severity::from_label(Some("warning")), Severity::Warning);
        assert_eq!(Severity::from_label(None), Severity::High);
    }
}
