use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::alarm::AlarmFacts;
use crate::storm::{IncidentKind, StormMember};
use crate::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
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

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TimelineEntry {
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    pub kind: TimelineKind,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

/// The record a human reads. Alarm details are flattened in so the API, CLI and
/// templates see one object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Incident {
    pub key: String,
    pub title: String,
    pub status: IncidentStatus,
    pub severity: Severity,
    /// Alarm events grouped into this incident, the first one included.
    pub count: u64,
    pub group_key: String,
    #[schema(value_type = String, format = DateTime)]
    pub opened_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub acknowledged_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub resolved_at: Option<Timestamp>,
    #[schema(value_type = String, format = DateTime)]
    pub last_event_at: Timestamp,
    #[serde(flatten)]
    pub alarm: AlarmFacts,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub timeline: Vec<TimelineEntry>,
    /// `alarm` for one alarm group's incident, `storm` for one reporting many at once.
    #[serde(default)]
    pub kind: IncidentKind,
    /// The storm this incident is reported with, when it is one of a storm's members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storm: Option<String>,
    /// A storm's members, oldest first (filled when the storm is read on its own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<StormMember>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unknown incident group field `{0}`; use alarm_name, resource, host, source, account, region, metric_name, appcode or label:NAME")]
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
            "appcode" => facts.appcode.clone().unwrap_or_default(),
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

/// Whether the timeline notes an incident's `count`-th alarm: each of the first ten, then
/// 20, 30 … 100, then 200, 300 … 1,000, and so on. A storm of repeats keeps its incident
/// readable — a hundred thousand repeats make some fifty entries — while the incident's
/// count and the time of its last alarm stay exact.
pub fn repeat_is_noted(count: u64) -> bool {
    if count <= 10 {
        return true;
    }
    let mut step = 10;
    while count / step >= 10 {
        step *= 10;
    }
    count.is_multiple_of(step)
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
    use crate::AlarmState;
    use serde_json::json;

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
    fn repeats_are_noted_one_by_one_then_at_round_numbers() {
        let noted: Vec<u64> = (1..=2_500).filter(|c| repeat_is_noted(*c)).collect();
        let mut expected: Vec<u64> = (1..=10).collect();
        expected.extend((2..=10).map(|n| n * 10));
        expected.extend((2..=10).map(|n| n * 100));
        expected.extend([2_000]);
        assert_eq!(noted, expected);
        assert_eq!(
            (1..=100_000u64).filter(|c| repeat_is_noted(*c)).count(),
            10 + 9 * 4
        );
    }

    #[test]
    fn severity_words() {
        assert_eq!(Severity::from_label(Some("CRITICAL")), Severity::Critical);
        assert_eq!(Severity::from_label(Some("warning")), Severity::Warning);
        assert_eq!(Severity::from_label(None), Severity::High);
    }

    /// The schema's properties and required keys, through `$ref`s and `allOf`.
    fn schema_keys(
        schema: &Value,
        components: &serde_json::Map<String, Value>,
    ) -> (serde_json::Map<String, Value>, Vec<String>) {
        if let Some(reference) = schema["$ref"].as_str() {
            let name = reference.trim_start_matches("#/components/schemas/");
            return schema_keys(&components[name], components);
        }
        let mut properties = schema["properties"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let mut required: Vec<String> = schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|k| k.as_str().unwrap().to_string())
            .collect();
        for part in schema["allOf"].as_array().into_iter().flatten() {
            let (more, more_required) = schema_keys(part, components);
            properties.extend(more);
            required.extend(more_required);
        }
        (properties, required)
    }

    fn nullable(property: &Value) -> bool {
        let null = json!("null");
        property.as_object().is_some_and(|o| o.is_empty())
            || property["type"] == null
            || property["type"]
                .as_array()
                .is_some_and(|t| t.contains(&null))
            || property["oneOf"]
                .as_array()
                .is_some_and(|o| o.iter().any(nullable))
    }

    fn incident(full: bool) -> Incident {
        let at = |secs: i64| chrono::DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap();
        let some = |s: &str| full.then(|| s.to_string());
        let map = |k: &str, v: &str| {
            if full {
                [(k.to_string(), v.to_string())].into()
            } else {
                BTreeMap::new()
            }
        };
        Incident {
            key: "INC-1".into(),
            title: "cpu on web-01".into(),
            status: IncidentStatus::Acknowledged,
            severity: Severity::Critical,
            count: 3,
            group_key: "cpu|web-01".into(),
            opened_at: at(0),
            acknowledged_at: full.then(|| at(60)),
            resolved_at: full.then(|| at(120)),
            last_event_at: at(30),
            alarm: AlarmFacts {
                alarm_name: "cpu".into(),
                state: full.then_some(AlarmState::Alarm),
                previous_state: full.then_some(AlarmState::Ok),
                reason: some("Threshold Crossed"),
                resource: "arn:aws:cloudwatch:us-east-1:1:alarm:cpu".into(),
                source: "aws.cloudwatch".into(),
                account: "123456789012".into(),
                region: "us-east-1".into(),
                state_time: some("2026-10-02T17:04:40.989+0000"),
                metric_namespace: some("AWS/EC2"),
                metric_name: some("CPUUtilization"),
                statistic: some("Average"),
                period: full.then_some(300.0),
                dimensions: map("InstanceId", "i-1"),
                threshold: full.then_some(50.0),
                value: full.then_some(99.5),
                description: some("CPU too high"),
                host: some("web-01"),
                instance_id: some("i-1"),
                labels: map("team", "web"),
                annotations: map("summary", "hot"),
                generator_url: some("http://prometheus/graph"),
                starts_at: some("2026-10-02T17:04:40Z"),
                severity: some("page"),
                appcode: some("shop_web"),
            },
            timeline: if full {
                vec![TimelineEntry {
                    at: at(0),
                    kind: TimelineKind::HostCheck,
                    message: "opened".into(),
                    event_id: Some("e-1".into()),
                }]
            } else {
                Vec::new()
            },
            kind: IncidentKind::Alarm,
            storm: full.then(|| "INC-9".to_string()),
            members: if full {
                vec![crate::StormMember {
                    key: "INC-2".into(),
                    host: some("web-02"),
                    alarm_name: "cpu".into(),
                    status: IncidentStatus::Open,
                    opened_at: at(1),
                    probes: crate::ProbeTally::default(),
                }]
            } else {
                Vec::new()
            },
        }
    }

    /// What `to_value` emits (the API's incident) and the schema agree: every key emitted
    /// is a property, every required key is emitted, every null emitted is allowed.
    #[test]
    fn schema_describes_to_value() {
        use utoipa::{PartialSchema, ToSchema};
        let mut components = Vec::new();
        Incident::schemas(&mut components);
        let components: serde_json::Map<String, Value> = components
            .into_iter()
            .map(|(name, schema)| (name, serde_json::to_value(schema).unwrap()))
            .collect();
        let schema = serde_json::to_value(Incident::schema()).unwrap();
        let (properties, required) = schema_keys(&schema, &components);
        for full in [true, false] {
            let value = incident(full).to_value();
            let emitted = value.as_object().unwrap();
            for (key, item) in emitted {
                let property = properties
                    .get(key)
                    .unwrap_or_else(|| panic!("`{key}` is emitted but not in the schema"));
                if item.is_null() {
                    assert!(nullable(property), "`{key}` is emitted as null: {property}");
                }
            }
            for key in &required {
                assert!(
                    emitted.contains_key(key),
                    "`{key}` is required but not emitted: {value}"
                );
            }
            if full {
                let unseen: Vec<&String> = properties
                    .keys()
                    .filter(|k| !emitted.contains_key(*k))
                    .collect();
                assert!(unseen.is_empty(), "never emitted: {unseen:?}");
            }
        }
        // Enumerations list what serde writes.
        let words = |name: &str| components[name]["enum"].clone();
        assert_eq!(
            words("IncidentStatus"),
            json!(["open", "acknowledged", "resolved"])
        );
        assert_eq!(
            words("Severity"),
            json!(["critical", "high", "warning", "info"])
        );
        assert_eq!(
            words("AlarmState"),
            json!(["OK", "ALARM", "INSUFFICIENT_DATA"])
        );
        assert_eq!(
            words("TimelineKind"),
            json!([
                "opened",
                "repeat",
                "acknowledged",
                "resolved",
                "note",
                "diagnostics",
                "host_check"
            ])
        );
        assert_eq!(
            serde_json::to_value(TimelineKind::HostCheck).unwrap(),
            json!(TimelineKind::HostCheck.as_str())
        );
    }
}
