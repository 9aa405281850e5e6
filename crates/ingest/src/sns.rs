//! SNS HTTP(S) subscription messages. SNS posts `text/plain` JSON with the message type in
//! the `x-amz-sns-message-type` header (also inside the body as `Type`).

use serde_json::{json, Map, Value};
use vigil_core::{Event, CLOUDWATCH_ALARM_STATE_CHANGE};

use crate::{parse_json, rfc3339_utc, DecodeError};

#[derive(Debug, Clone, PartialEq)]
pub enum SnsMessage {
    SubscriptionConfirmation {
        topic_arn: String,
        subscribe_url: String,
        message_id: String,
    },
    UnsubscribeConfirmation {
        topic_arn: String,
    },
    /// A CloudWatch alarm notification, already in the EventBridge shape.
    Notification {
        topic_arn: String,
        event: Box<Event>,
    },
}

/// `header_type` is the `x-amz-sns-message-type` header when present; it must agree with
/// the body's `Type`.
pub fn decode(body: &[u8], header_type: Option<&str>) -> Result<SnsMessage, DecodeError> {
    let value = parse_json(body)?;
    let Value::Object(map) = value else {
        return Err(DecodeError::Invalid(
            "SNS message must be a JSON object".into(),
        ));
    };
    let kind = string_field(&map, "Type")?;
    if let Some(header) = header_type {
        if header != kind {
            return Err(DecodeError::Invalid(format!(
                "header x-amz-sns-message-type is `{header}` but the body's `Type` is `{kind}`"
            )));
        }
    }
    let topic_arn = string_field(&map, "TopicArn")?;
    match kind.as_str() {
        "SubscriptionConfirmation" => Ok(SnsMessage::SubscriptionConfirmation {
            subscribe_url: string_field(&map, "SubscribeURL")?,
            message_id: string_field(&map, "MessageId")?,
            topic_arn,
        }),
        "UnsubscribeConfirmation" => Ok(SnsMessage::UnsubscribeConfirmation { topic_arn }),
        "Notification" => {
            let message_id = string_field(&map, "MessageId")?;
            let message = string_field(&map, "Message")?;
            let alarm = serde_json::from_str::<Value>(&message).map_err(|e| {
                DecodeError::Invalid(format!(
                    "`Message` is not a CloudWatch alarm JSON document ({e}); vigil accepts alarm notifications on this endpoint"
                ))
            })?;
            let timestamp = map
                .get("Timestamp")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let event = cloudwatch_alarm_event(&alarm, &message_id, timestamp)?;
            Ok(SnsMessage::Notification {
                topic_arn,
                event: Box::new(event),
            })
        }
        other => Err(DecodeError::Invalid(format!(
            "unknown SNS message `Type` `{other}`"
        ))),
    }
}

fn string_field(map: &Map<String, Value>, field: &'static str) -> Result<String, DecodeError> {
    match map.get(field) {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) => Err(DecodeError::Missing {
            at: "SNS message".into(),
            field,
        }),
        Some(_) => Err(DecodeError::WrongType {
            at: "SNS message".into(),
            field,
            expected: "a string",
        }),
    }
}

/// The alarm JSON CloudWatch publishes to SNS (`NewStateValue`, `Trigger`, …) rewritten as
/// the EventBridge "CloudWatch Alarm State Change" event, so one set of rules serves both.
/// The event id is the SNS MessageId: SNS redelivers with the same id, so retries dedupe.
fn cloudwatch_alarm_event(
    alarm: &Value,
    message_id: &str,
    sns_timestamp: &str,
) -> Result<Event, DecodeError> {
    let at = "SNS Message";
    let text = |field: &'static str| alarm.get(field).and_then(Value::as_str);
    let required = |field: &'static str| {
        text(field).ok_or(DecodeError::Missing {
            at: at.to_string(),
            field,
        })
    };
    let alarm_name = required("AlarmName")?;
    let new_state = required("NewStateValue")?;
    let alarm_arn = text("AlarmArn").unwrap_or_default();
    // arn:aws:cloudwatch:REGION:ACCOUNT:alarm:NAME — the Region field is the long name.
    let arn_parts: Vec<&str> = alarm_arn.split(':').collect();
    let region = arn_parts.get(3).copied().unwrap_or_default();
    let account = text("AWSAccountId")
        .or(arn_parts.get(4).copied())
        .unwrap_or_default();
    let change_time = text("StateChangeTime").unwrap_or(sns_timestamp);
    let time = rfc3339_utc(change_time)
        .or_else(|| rfc3339_utc(sns_timestamp))
        .unwrap_or_default();

    let trigger = alarm.get("Trigger").cloned().unwrap_or(Value::Null);
    let dimensions: Map<String, Value> = trigger
        .get("Dimensions")
        .and_then(Value::as_array)
        .map(|dims| {
            dims.iter()
                .filter_map(|d| {
                    let name = d.get("name").or_else(|| d.get("Name"))?.as_str()?;
                    let value = d.get("value").or_else(|| d.get("Value"))?.clone();
                    Some((name.to_string(), value))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut metric_stat = json!({
        "metric": {
            "namespace": trigger.get("Namespace"),
            "name": trigger.get("MetricName"),
            "dimensions": dimensions,
        },
        "period": trigger.get("Period"),
        "stat": trigger.get("Statistic").or(trigger.get("ExtendedStatistic")),
    });
    if let Some(stat) = metric_stat.get_mut("stat") {
        // SNS spells statistics in capitals (AVERAGE); EventBridge events say Average.
        if let Some(s) = stat.as_str() {
            *stat = Value::String(capitalise(s));
        }
    }
    let mut configuration = json!({
        "description": alarm.get("AlarmDescription"),
        "metrics": [{"id": "m1", "metricStat": metric_stat, "returnData": true}],
    });
    // Not part of EventBridge's shape, but SNS gives them and responders want them.
    for (field, key) in [
        ("Threshold", "threshold"),
        ("ComparisonOperator", "comparisonOperator"),
        ("EvaluationPeriods", "evaluationPeriods"),
        ("DatapointsToAlarm", "datapointsToAlarm"),
        ("TreatMissingData", "treatMissingData"),
    ] {
        if let Some(v) = trigger.get(field).filter(|v| !v.is_null()) {
            configuration[key] = v.clone();
        }
    }
    let mut state = json!({"value": new_state, "reason": alarm.get("NewStateReason"), "timestamp": change_time});
    if let Some(reason_data) = text("NewStateReasonData") {
        state["reasonData"] = Value::String(reason_data.to_string());
    }
    let detail = json!({
        "alarmName": alarm_name,
        "state": state,
        "previousState": {"value": alarm.get("OldStateValue")},
        "configuration": configuration,
    });
    Ok(Event {
        version: "0".into(),
        id: message_id.to_string(),
        detail_type: CLOUDWATCH_ALARM_STATE_CHANGE.into(),
        source: "aws.cloudwatch".into(),
        account: account.to_string(),
        time,
        region: region.to_string(),
        resources: if alarm_arn.is_empty() {
            Vec::new()
        } else {
            vec![alarm_arn.to_string()]
        },
        detail,
    })
}

fn capitalise(s: &str) -> String {
    let lower = s.to_ascii_lowercase();
    let mut chars = lower.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_body_must_agree() {
        let body = br#"{"Type":"Notification","TopicArn":"t","MessageId":"m","Message":"{}"}"#;
        let err = decode(body, Some("SubscriptionConfirmation")).unwrap_err();
        assert!(err.to_string().contains("x-amz-sns-message-type"), "{err}");
    }

    #[test]
    fn notification_without_alarm_name_names_the_field() {
        let body = br#"{"Type":"Notification","TopicArn":"t","MessageId":"m","Message":"{\"NewStateValue\":\"ALARM\"}"}"#;
        let err = decode(body, None).unwrap_err();
        assert!(err.to_string().contains("`AlarmName`"), "{err}");
    }

    #[test]
    fn non_json_message_is_refused() {
        let body = br#"{"Type":"Notification","TopicArn":"t","MessageId":"m","Message":"hello"}"#;
        assert!(decode(body, None)
            .unwrap_err()
            .to_string()
            .contains("CloudWatch alarm"));
    }
}
