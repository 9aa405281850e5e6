use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::{Event, ALARM_STATE_CHANGE, CLOUDWATCH_ALARM_STATE_CHANGE};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlarmState {
    Ok,
    Alarm,
    InsufficientData,
}

impl std::fmt::Display for AlarmState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AlarmState {
    pub fn parse(s: &str) -> Option<AlarmState> {
        match s {
            "OK" => Some(AlarmState::Ok),
            "ALARM" => Some(AlarmState::Alarm),
            "INSUFFICIENT_DATA" => Some(AlarmState::InsufficientData),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Ok => "OK",
            AlarmState::Alarm => "ALARM",
            AlarmState::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

/// What an alarm-state-change event says, in one flat record. Extracted from the
/// CloudWatch-shaped `detail` that CloudWatch, vigil's alarm engine and the Alertmanager
/// decoder all produce, so incidents never look into event JSON themselves.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AlarmFacts {
    pub alarm_name: String,
    pub state: Option<AlarmState>,
    pub previous_state: Option<AlarmState>,
    pub reason: Option<String>,
    /// First resource of the envelope (the alarm ARN for CloudWatch), the grouping handle.
    pub resource: String,
    pub source: String,
    pub account: String,
    pub region: String,
    pub state_time: Option<String>,
    pub metric_namespace: Option<String>,
    pub metric_name: Option<String>,
    pub statistic: Option<String>,
    pub period: Option<f64>,
    pub dimensions: BTreeMap<String, String>,
    pub threshold: Option<f64>,
    /// The value that crossed the threshold, from `reasonData.evaluatedDatapoints`, or
    /// read from the reason text when only that is given (SNS).
    pub value: Option<f64>,
    pub description: Option<String>,
    pub host: Option<String>,
    pub instance_id: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub generator_url: Option<String>,
    pub starts_at: Option<String>,
    /// The severity word the alarm carried (label or detail). Serialised as
    /// `alarm_severity`: flattened into an incident, `severity` is the incident's own.
    #[serde(rename = "alarm_severity", alias = "severity")]
    pub severity: Option<String>,
    /// The application the alarm belongs to: from the alarm (`appcode` in its detail or
    /// labels), else from the host's binding when the incident opens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appcode: Option<String>,
}

impl AlarmFacts {
    /// `None` when the event is not an alarm state change.
    pub fn from_event(event: &Event) -> Option<AlarmFacts> {
        if event.detail_type != CLOUDWATCH_ALARM_STATE_CHANGE
            && event.detail_type != ALARM_STATE_CHANGE
        {
            return None;
        }
        let detail = &event.detail;
        let alarm_name = str_at(detail, &["alarmName"])?.to_string();
        let state = str_at(detail, &["state", "value"]).and_then(AlarmState::parse);
        let previous_state =
            str_at(detail, &["previousState", "value"]).and_then(AlarmState::parse);
        let reason = str_at(detail, &["state", "reason"]).map(str::to_string);
        // Only the two numbers are read from reasonData, so the rest is skipped unbuilt.
        let reason_data: Option<ReasonData> = str_at(detail, &["state", "reasonData"])
            .and_then(|text| serde_json::from_str(text).ok());

        let metric_stat = detail
            .pointer("/configuration/metrics/0/metricStat")
            .unwrap_or(&Value::Null);
        let dimensions: BTreeMap<String, String> = metric_stat
            .pointer("/metric/dimensions")
            .and_then(Value::as_object)
            .map(|dims| {
                dims.iter()
                    .map(|(k, v)| (k.clone(), scalar_text(v)))
                    .collect()
            })
            .unwrap_or_default();
        let labels = string_map(detail.get("labels"));
        let annotations = string_map(detail.get("annotations"));

        let threshold = reason_data
            .as_ref()
            .and_then(|rd| rd.threshold.as_ref())
            .and_then(Value::as_f64)
            .or_else(|| {
                detail
                    .pointer("/configuration/threshold")
                    .and_then(Value::as_f64)
            });
        let value = reason_data
            .as_ref()
            .and_then(|rd| rd.evaluated_datapoints.as_ref())
            .and_then(|points| points.pointer("/0/value"))
            .and_then(Value::as_f64)
            .or_else(|| reason.as_deref().and_then(first_datapoint_in_reason));

        let instance_id = dimensions
            .get("InstanceId")
            .cloned()
            .or_else(|| labels.get("instance_id").cloned());
        let host = dimensions
            .get("host")
            .cloned()
            .or_else(|| {
                ["host", "nodename", "instance"]
                    .iter()
                    .find_map(|k| labels.get(*k))
                    .map(|h| strip_port(h))
            })
            .or_else(|| instance_id.clone());

        Some(AlarmFacts {
            alarm_name,
            state,
            previous_state,
            reason,
            resource: event.resources.first().cloned().unwrap_or_default(),
            source: event.source.clone(),
            account: event.account.clone(),
            region: event.region.clone(),
            state_time: str_at(detail, &["state", "timestamp"]).map(str::to_string),
            metric_namespace: metric_stat
                .pointer("/metric/namespace")
                .and_then(Value::as_str)
                .map(str::to_string),
            metric_name: metric_stat
                .pointer("/metric/name")
                .and_then(Value::as_str)
                .map(str::to_string),
            statistic: metric_stat
                .get("stat")
                .and_then(Value::as_str)
                .map(str::to_string),
            period: metric_stat.get("period").and_then(Value::as_f64),
            dimensions,
            threshold,
            value,
            description: str_at(detail, &["configuration", "description"]).map(str::to_string),
            host,
            instance_id,
            severity: labels
                .get("severity")
                .cloned()
                .or_else(|| str_at(detail, &["severity"]).map(str::to_string)),
            generator_url: str_at(detail, &["generatorURL"]).map(str::to_string),
            appcode: str_at(detail, &["appcode"])
                .map(str::to_string)
                .or_else(|| labels.get("appcode").cloned()),
            starts_at: str_at(detail, &["startsAt"]).map(str::to_string),
            labels,
            annotations,
        })
    }

    /// Facts for an event that is not an alarm but that a rule sends to an incident step
    /// (an EC2 state change, a deploy failure): its detail-type names it, its first
    /// resource identifies it, and it counts as an alarm firing.
    pub fn from_other_event(event: &Event) -> AlarmFacts {
        AlarmFacts {
            alarm_name: event.detail_type.clone(),
            state: Some(AlarmState::Alarm),
            resource: event.resources.first().cloned().unwrap_or_default(),
            source: event.source.clone(),
            account: event.account.clone(),
            region: event.region.clone(),
            state_time: Some(event.time.clone()),
            ..AlarmFacts::default()
        }
    }

    /// A short human title: `ServerCpuTooHigh on i-0abc: CPUUtilization 91.2 > 80`.
    pub fn title(&self) -> String {
        let mut title = self.alarm_name.clone();
        if let Some(host) = &self.host {
            title.push_str(" on ");
            title.push_str(host);
        }
        if self.state == Some(AlarmState::InsufficientData) {
            title.push_str(": insufficient data");
        } else if let Some(summary) = self.annotations.get("summary") {
            title.push_str(": ");
            title.push_str(summary);
        } else if let (Some(metric), Some(value)) = (&self.metric_name, self.value) {
            title.push_str(&format!(": {metric} {}", round2(value)));
            if let Some(threshold) = self.threshold {
                title.push_str(&format!(" (threshold {})", round2(threshold)));
            }
        }
        title
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// What vigil reads of CloudWatch's `reasonData` (a JSON text inside the event); a field
/// of an unexpected type is read as missing, not as a broken event.
#[derive(Deserialize)]
struct ReasonData {
    threshold: Option<Value>,
    #[serde(rename = "evaluatedDatapoints")]
    evaluated_datapoints: Option<Value>,
}

fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(value, |v, key| v.get(*key))
        .and_then(Value::as_str)
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), scalar_text(v))).collect())
        .unwrap_or_default()
}

/// `app-12.example.com:9100` → `app-12.example.com`; IPv6 in brackets keeps its colons.
fn strip_port(instance: &str) -> String {
    if let Some(rest) = instance.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            return rest[..end].to_string();
        }
    }
    match instance.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => {
            host.to_string()
        }
        _ => instance.to_string(),
    }
}

/// CloudWatch reasons read `... datapoints [91.5 (20/11/26 10:04:00), 88.0 (...)] were ...`.
fn first_datapoint_in_reason(reason: &str) -> Option<f64> {
    let after = &reason[reason.find('[')? + 1..];
    let end = after.find([' ', ',', ']'])?;
    after[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(detail: Value, labels_source: &str) -> Event {
        Event {
            version: "0".into(),
            id: "1".into(),
            detail_type: CLOUDWATCH_ALARM_STATE_CHANGE.into(),
            source: labels_source.into(),
            account: "123".into(),
            time: "t".into(),
            region: "us-east-1".into(),
            resources: vec!["arn:alarm".into()],
            detail,
        }
    }

    #[test]
    fn alarm_states_parse_what_they_print() {
        for state in [
            AlarmState::Ok,
            AlarmState::Alarm,
            AlarmState::InsufficientData,
        ] {
            assert_eq!(AlarmState::parse(state.as_str()), Some(state));
            assert_eq!(
                serde_json::to_value(state).unwrap(),
                serde_json::json!(state.as_str())
            );
        }
        assert_eq!(
            AlarmState::parse("INSUFFICIENT_DATA"),
            Some(AlarmState::InsufficientData)
        );
        assert_eq!(AlarmState::parse("ok"), None);
        assert_eq!(AlarmState::parse("PENDING"), None);
    }

    #[test]
    fn extracts_value_and_threshold_from_reason_data() {
        let e = event(
            json!({"alarmName": "cpu", "state": {"value": "ALARM",
              "reasonData": "{\"threshold\":50.0,\"evaluatedDatapoints\":[{\"value\":99.5}]}"},
              "previousState": {"value": "OK"},
              "configuration": {"metrics": [{"metricStat": {"metric": {"name": "CPUUtilization",
                 "namespace": "AWS/EC2", "dimensions": {"InstanceId": "i-1"}}, "period": 300, "stat": "Average"}}]}}),
            "aws.cloudwatch",
        );
        let f = AlarmFacts::from_event(&e).unwrap();
        assert_eq!(f.state, Some(AlarmState::Alarm));
        assert_eq!(f.previous_state, Some(AlarmState::Ok));
        assert_eq!(f.threshold, Some(50.0));
        assert_eq!(f.value, Some(99.5));
        assert_eq!(f.instance_id.as_deref(), Some("i-1"));
        assert_eq!(f.host.as_deref(), Some("i-1"));
        assert_eq!(f.title(), "cpu on i-1: CPUUtilization 99.5 (threshold 50)");
    }

    #[test]
    fn reads_value_from_reason_text_when_no_reason_data() {
        assert_eq!(
            first_datapoint_in_reason(
                "2 out of the last 2 datapoints [91.5 (20/11/26 10:04:00), 88.0 (x)] were"
            ),
            Some(91.5)
        );
        assert_eq!(
            first_datapoint_in_reason("Insufficient Data: 1 datapoint was unknown."),
            None
        );
    }

    #[test]
    fn host_from_labels_drops_port() {
        let e = event(
            json!({"alarmName": "disk", "state": {"value": "ALARM"}, "labels": {"instance": "app-12:9100"}}),
            "vigil.alertmanager",
        );
        assert_eq!(
            AlarmFacts::from_event(&e).unwrap().host.as_deref(),
            Some("app-12")
        );
        assert_eq!(strip_port("[::1]:9100"), "::1");
        assert_eq!(strip_port("fe80::1"), "fe80::1");
    }

    #[test]
    fn other_events_are_not_alarms() {
        let mut e = event(json!({"alarmName": "x"}), "aws.ec2");
        e.detail_type = "EC2 Instance State-change Notification".into();
        assert!(AlarmFacts::from_event(&e).is_none());
    }
}
