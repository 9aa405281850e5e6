//! SNS HTTP(S) subscription messages. SNS posts `text/plain` JSON with the message type in
//! the `x-amz-sns-message-type` header (also inside the body as `Type`). Every message is
//! signed; decoding keeps what the signature covers and the signature itself, and the
//! caller — who can fetch the signing certificate — checks it before acting on anything.

use base64::Engine;
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

/// A message with what its signature must cover. Not yet trusted: its content is read
/// ([`SignedMessage::read`]) only once the server has verified [`SignatureFields`] over
/// [`SignedMessage::string_to_sign`].
#[derive(Debug, Clone, PartialEq)]
pub struct SignedMessage {
    fields: Map<String, Value>,
    /// AWS's canonical "string to sign" for this message ([`string_to_sign`]).
    pub string_to_sign: String,
    pub signature: SignatureFields,
}

/// The signature fields as the message carries them; absent ones are `None`, so that a
/// missing signature is refused as unsigned rather than as malformed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SignatureFields {
    pub signature_version: Option<String>,
    pub signature: Option<String>,
    pub signing_cert_url: Option<String>,
}

/// `SignatureVersion` "1" signs with SHA1withRSA, "2" with SHA256withRSA (both RSA
/// PKCS#1 v1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureVersion {
    Sha1Rsa,
    Sha256Rsa,
}

impl SignatureVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureVersion::Sha1Rsa => "1",
            SignatureVersion::Sha256Rsa => "2",
        }
    }
}

/// A signature ready to check: its algorithm, its bytes and where its certificate is.
#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    pub version: SignatureVersion,
    pub bytes: Vec<u8>,
    pub signing_cert_url: String,
}

/// Why a message's signature cannot even be checked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SignatureError {
    #[error("SNS message has no `{0}`; vigil accepts only messages signed by SNS")]
    Missing(&'static str),
    #[error(
        "SNS `SignatureVersion` `{0}` is unknown; vigil verifies versions 1 (SHA1withRSA) and 2 (SHA256withRSA)"
    )]
    UnknownVersion(String),
    #[error("SNS `Signature` is not base64 ({0})")]
    NotBase64(String),
}

impl SignatureFields {
    pub fn parse(&self) -> Result<Signature, SignatureError> {
        let version = match self.signature_version.as_deref() {
            None => return Err(SignatureError::Missing("SignatureVersion")),
            Some("1") => SignatureVersion::Sha1Rsa,
            Some("2") => SignatureVersion::Sha256Rsa,
            Some(other) => return Err(SignatureError::UnknownVersion(other.to_string())),
        };
        let signature = self
            .signature
            .as_deref()
            .ok_or(SignatureError::Missing("Signature"))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(signature)
            .map_err(|e| SignatureError::NotBase64(e.to_string()))?;
        let signing_cert_url = self
            .signing_cert_url
            .clone()
            .ok_or(SignatureError::Missing("SigningCertURL"))?;
        Ok(Signature {
            version,
            bytes,
            signing_cert_url,
        })
    }
}

/// Reads the message's envelope: its type, the fields its signature covers and the
/// signature itself. What the message says is left for [`SignedMessage::read`].
pub fn decode(body: &[u8]) -> Result<SignedMessage, DecodeError> {
    let Value::Object(fields) = parse_json(body)? else {
        return Err(DecodeError::Invalid(
            "SNS message must be a JSON object".into(),
        ));
    };
    Ok(SignedMessage {
        string_to_sign: string_to_sign(&fields)?,
        signature: SignatureFields {
            signature_version: optional_string_field(&fields, "SignatureVersion")?
                .map(str::to_string),
            signature: optional_string_field(&fields, "Signature")?.map(str::to_string),
            signing_cert_url: optional_string_field(&fields, "SigningCertURL")?.map(str::to_string),
        },
        fields,
    })
}

impl SignedMessage {
    /// What the message says, for a message whose signature holds. `header_type` is the
    /// `x-amz-sns-message-type` header when present; it must agree with the body's `Type`.
    pub fn read(&self, header_type: Option<&str>) -> Result<SnsMessage, DecodeError> {
        let map = &self.fields;
        let kind = string_field(map, "Type")?;
        if let Some(header) = header_type {
            if header != kind {
                return Err(DecodeError::Invalid(format!(
                    "header x-amz-sns-message-type is `{header}` but the body's `Type` is `{kind}`"
                )));
            }
        }
        let topic_arn = string_field(map, "TopicArn")?.to_string();
        Ok(match kind {
            "SubscriptionConfirmation" => SnsMessage::SubscriptionConfirmation {
                subscribe_url: string_field(map, "SubscribeURL")?.to_string(),
                message_id: string_field(map, "MessageId")?.to_string(),
                topic_arn,
            },
            "UnsubscribeConfirmation" => SnsMessage::UnsubscribeConfirmation { topic_arn },
            "Notification" => {
                let message_id = string_field(map, "MessageId")?;
                let message = string_field(map, "Message")?;
                let alarm = serde_json::from_str::<Value>(message).map_err(|e| {
                    DecodeError::Invalid(format!(
                        "`Message` is not a CloudWatch alarm JSON document ({e}); vigil accepts alarm notifications on this endpoint"
                    ))
                })?;
                let timestamp = string_field(map, "Timestamp")?;
                let event = cloudwatch_alarm_event(&alarm, message_id, timestamp)?;
                SnsMessage::Notification {
                    topic_arn,
                    event: Box::new(event),
                }
            }
            other => {
                return Err(DecodeError::Invalid(format!(
                    "unknown SNS message `Type` `{other}`"
                )))
            }
        })
    }
}

/// A field of the canonical string: always there, or only when the message has it.
enum Signed {
    Always(&'static str),
    IfPresent(&'static str),
}

/// AWS's canonical "string to sign" of an SNS message: each signed field as its name, a
/// newline, its value and a newline, in the documented (byte-wise sorted) order — for a
/// `Notification` Message, MessageId, Subject (when present), Timestamp, TopicArn, Type;
/// for a `SubscriptionConfirmation` or `UnsubscribeConfirmation` Message, MessageId,
/// SubscribeURL, Timestamp, Token, TopicArn, Type. Values are the decoded JSON strings.
pub fn string_to_sign(message: &Map<String, Value>) -> Result<String, DecodeError> {
    use Signed::{Always, IfPresent};
    const NOTIFICATION: &[Signed] = &[
        Always("Message"),
        Always("MessageId"),
        IfPresent("Subject"),
        Always("Timestamp"),
        Always("TopicArn"),
        Always("Type"),
    ];
    const CONFIRMATION: &[Signed] = &[
        Always("Message"),
        Always("MessageId"),
        Always("SubscribeURL"),
        Always("Timestamp"),
        Always("Token"),
        Always("TopicArn"),
        Always("Type"),
    ];
    let fields = match string_field(message, "Type")? {
        "Notification" => NOTIFICATION,
        "SubscriptionConfirmation" | "UnsubscribeConfirmation" => CONFIRMATION,
        other => {
            return Err(DecodeError::Invalid(format!(
                "unknown SNS message `Type` `{other}`"
            )))
        }
    };
    let mut out = String::new();
    for field in fields {
        let (name, value) = match field {
            Always(name) => (name, Some(string_field(message, name)?)),
            IfPresent(name) => (name, optional_string_field(message, name)?),
        };
        if let Some(value) = value {
            out.push_str(name);
            out.push('\n');
            out.push_str(value);
            out.push('\n');
        }
    }
    Ok(out)
}

fn string_field<'a>(
    map: &'a Map<String, Value>,
    field: &'static str,
) -> Result<&'a str, DecodeError> {
    optional_string_field(map, field)?.ok_or(DecodeError::Missing {
        at: "SNS message".into(),
        field,
    })
}

fn optional_string_field<'a>(
    map: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, DecodeError> {
    match map.get(field) {
        Some(Value::String(s)) => Ok(Some(s)),
        None | Some(Value::Null) => Ok(None),
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

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn header_and_body_must_agree() {
        let body = br#"{"Type":"Notification","TopicArn":"t","MessageId":"m","Timestamp":"ts","Message":"{}"}"#;
        let err = decode(body)
            .unwrap()
            .read(Some("SubscriptionConfirmation"))
            .unwrap_err();
        assert!(err.to_string().contains("x-amz-sns-message-type"), "{err}");
    }

    #[test]
    fn notification_without_alarm_name_names_the_field() {
        let body = br#"{"Type":"Notification","TopicArn":"t","MessageId":"m","Timestamp":"2026-01-01T00:00:00Z","Message":"{\"NewStateValue\":\"ALARM\"}"}"#;
        let err = decode(body).unwrap().read(None).unwrap_err();
        assert!(err.to_string().contains("`AlarmName`"), "{err}");
    }

    #[test]
    fn non_json_message_is_refused() {
        let body = br#"{"Type":"Notification","TopicArn":"t","MessageId":"m","Timestamp":"ts","Message":"hello"}"#;
        assert!(decode(body)
            .unwrap()
            .read(None)
            .unwrap_err()
            .to_string()
            .contains("CloudWatch alarm"));
    }

    #[test]
    fn notification_string_to_sign_follows_the_documented_order() {
        // Fields in a shuffled order, with unsigned ones mixed in: only the signed fields
        // appear, each as name and value lines, Subject between MessageId and Timestamp.
        let message = object(json!({
            "UnsubscribeURL": "https://sns.example/unsubscribe",
            "Type": "Notification",
            "TopicArn": "arn:aws:sns:eu-west-1:1:t",
            "Timestamp": "2026-01-02T03:04:05.678Z",
            "Subject": "the subject",
            "SignatureVersion": "2",
            "Signature": "c2ln",
            "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/c.pem",
            "MessageId": "id-1",
            "Message": "line one\nline two \u{e9}",
        }));
        assert_eq!(
            string_to_sign(&message).unwrap(),
            "Message\nline one\nline two \u{e9}\nMessageId\nid-1\nSubject\nthe subject\nTimestamp\n2026-01-02T03:04:05.678Z\nTopicArn\narn:aws:sns:eu-west-1:1:t\nType\nNotification\n"
        );
    }

    #[test]
    fn notification_without_subject_leaves_it_out() {
        let message = object(json!({
            "Type": "Notification", "TopicArn": "t", "Timestamp": "ts", "MessageId": "m",
            "Message": "x", "Subject": null,
        }));
        assert_eq!(
            string_to_sign(&message).unwrap(),
            "Message\nx\nMessageId\nm\nTimestamp\nts\nTopicArn\nt\nType\nNotification\n"
        );
    }

    #[test]
    fn confirmations_sign_the_subscribe_url_and_token() {
        for kind in ["SubscriptionConfirmation", "UnsubscribeConfirmation"] {
            let message = object(json!({
                "Type": kind, "TopicArn": "t", "Timestamp": "ts", "MessageId": "m",
                "Message": "x", "Token": "tok", "SubscribeURL": "https://sns/confirm",
                "Subject": "never signed for confirmations",
            }));
            assert_eq!(
                string_to_sign(&message).unwrap(),
                format!("Message\nx\nMessageId\nm\nSubscribeURL\nhttps://sns/confirm\nTimestamp\nts\nToken\ntok\nTopicArn\nt\nType\n{kind}\n")
            );
        }
    }

    #[test]
    fn a_missing_signed_field_is_named() {
        let message = object(json!({
            "Type": "UnsubscribeConfirmation", "TopicArn": "t", "Timestamp": "ts",
            "MessageId": "m", "Message": "x", "SubscribeURL": "u",
        }));
        let err = string_to_sign(&message).unwrap_err();
        assert!(err.to_string().contains("`Token`"), "{err}");
        let message = object(
            json!({"Type": "Notification", "TopicArn": "t", "MessageId": "m", "Message": "x", "Timestamp": 5}),
        );
        let err = string_to_sign(&message).unwrap_err();
        assert!(
            err.to_string().contains("`Timestamp` must be a string"),
            "{err}"
        );
    }

    #[test]
    fn decode_keeps_the_signature_fields_and_what_they_cover() {
        // JSON escapes are decoded before signing: SNS signs the text, not its JSON spelling.
        let body = br#"{"Type": "UnsubscribeConfirmation", "TopicArn": "t", "Timestamp": "ts",
            "MessageId": "m", "Message": "x\n\u00e9\ud83c\udf4c\/", "SubscribeURL": "u", "Token": "k",
            "SignatureVersion": "2", "Signature": "AQID",
            "SigningCertURL": "https://sns.us-east-1.amazonaws.com/c.pem"}"#;
        let signed = decode(body).unwrap();
        assert_eq!(
            signed.read(Some("UnsubscribeConfirmation")).unwrap(),
            SnsMessage::UnsubscribeConfirmation {
                topic_arn: "t".into()
            }
        );
        assert_eq!(
            signed.string_to_sign,
            "Message\nx\n\u{e9}\u{1f34c}/\nMessageId\nm\nSubscribeURL\nu\nTimestamp\nts\nToken\nk\nTopicArn\nt\nType\nUnsubscribeConfirmation\n"
        );
        assert_eq!(
            signed.signature.parse().unwrap(),
            Signature {
                version: SignatureVersion::Sha256Rsa,
                bytes: vec![1, 2, 3],
                signing_cert_url: "https://sns.us-east-1.amazonaws.com/c.pem".into(),
            }
        );
    }

    #[test]
    fn signature_fields_say_what_is_wrong() {
        let good = SignatureFields {
            signature_version: Some("1".into()),
            signature: Some("AQID".into()),
            signing_cert_url: Some("https://sns.us-east-1.amazonaws.com/c.pem".into()),
        };
        assert_eq!(good.parse().unwrap().version, SignatureVersion::Sha1Rsa);
        let without = |change: fn(&mut SignatureFields)| {
            let mut fields = good.clone();
            change(&mut fields);
            fields.parse().unwrap_err()
        };
        assert_eq!(
            without(|f| f.signature = None),
            SignatureError::Missing("Signature")
        );
        assert_eq!(
            without(|f| f.signature_version = None),
            SignatureError::Missing("SignatureVersion")
        );
        assert_eq!(
            without(|f| f.signing_cert_url = None),
            SignatureError::Missing("SigningCertURL")
        );
        assert_eq!(
            without(|f| f.signature_version = Some("3".into())),
            SignatureError::UnknownVersion("3".into())
        );
        assert!(matches!(
            without(|f| f.signature = Some("not base64!".into())),
            SignatureError::NotBase64(_)
        ));
    }
}
