//! Alertmanager webhook (payload version 4). Each alert becomes one "Alarm State Change"
//! event with CloudWatch's `detail` shape: `firing` → ALARM (from OK), `resolved` → OK
//! (from ALARM). Labels and annotations ride along unchanged.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use vigil_core::{AlarmState, Event, ALARM_STATE_CHANGE};

use crate::{parse_json, rfc3339_utc, DecodeError, IdSource};

pub const SOURCE: &str = "vigil.alertmanager";

/// Alertmanager caps a notification at `max_alerts` (unbounded by default); vigil bounds it.
pub const MAX_ALERTS_PER_REQUEST: usize = 1000;

pub fn decode(body: &[u8], ids: &mut dyn IdSource, now: &str) -> Result<Vec<Event>, DecodeError> {
    let Value::Object(payload) = parse_json(body)? else {
        return Err(DecodeError::Invalid(
            "Alertmanager payload must be a JSON object".into(),
        ));
    };
    match payload.get("version") {
        Some(Value::String(v)) if v == "4" => {}
        None => {}
        Some(other) => {
            return Err(DecodeError::Invalid(format!(
                "webhook payload `version` {other} is not supported; vigil reads version \"4\""
            )))
        }
    }
    let alerts = match payload.get("alerts") {
        Some(Value::Array(alerts)) => alerts,
        None => {
            return Err(DecodeError::Missing {
                at: "webhook".into(),
                field: "alerts",
            })
        }
        Some(_) => {
            return Err(DecodeError::WrongType {
                at: "webhook".into(),
                field: "alerts",
                expected: "an array",
            })
        }
    };
    if alerts.len() > MAX_ALERTS_PER_REQUEST {
        return Err(DecodeError::Invalid(format!(
            "{} alerts in one webhook; configure max_alerts ≤ {MAX_ALERTS_PER_REQUEST} in Alertmanager",
            alerts.len()
        )));
    }
    let shared = Shared {
        receiver: payload.get("receiver").cloned().unwrap_or(Value::Null),
        external_url: payload.get("externalURL").cloned().unwrap_or(Value::Null),
        group_key: payload.get("groupKey").cloned().unwrap_or(Value::Null),
    };
    alerts
        .iter()
        .enumerate()
        .map(|(i, alert)| alert_event(alert, &format!("alerts[{i}]"), &shared, ids, now))
        .collect()
}

struct Shared {
    receiver: Value,
    external_url: Value,
    group_key: Value,
}

fn alert_event(
    alert: &Value,
    at: &str,
    shared: &Shared,
    ids: &mut dyn IdSource,
    now: &str,
) -> Result<Event, DecodeError> {
    let Value::Object(alert) = alert else {
        return Err(DecodeError::Invalid(format!(
            "{at}: expected an alert object"
        )));
    };
    let (state, previous) = match alert.get("status").and_then(Value::as_str) {
        Some("firing") => (AlarmState::Alarm, AlarmState::Ok),
        Some("resolved") => (AlarmState::Ok, AlarmState::Alarm),
        Some(other) => {
            return Err(DecodeError::Invalid(format!(
                "{at}: `status` is `{other}`; expected `firing` or `resolved`"
            )))
        }
        None => {
            return Err(DecodeError::Missing {
                at: at.to_string(),
                field: "status",
            })
        }
    };
    let labels = string_object(alert, at, "labels", true)?;
    let annotations = string_object(alert, at, "annotations", false)?;
    let alarm_name = labels
        .get("alertname")
        .and_then(Value::as_str)
        .unwrap_or("unnamed Alertmanager alert")
        .to_string();
    let fingerprint = match optional_text(alert, at, "fingerprint")? {
        Some(fp) if !fp.is_empty() => fp.to_string(),
        _ => label_fingerprint(&labels),
    };
    let starts_at = optional_text(alert, at, "startsAt")?;
    let ends_at = optional_text(alert, at, "endsAt")?;
    let generator_url = optional_text(alert, at, "generatorURL")?;
    let changed_at = if state == AlarmState::Ok {
        ends_at.or(starts_at)
    } else {
        starts_at
    };
    let time = changed_at
        .and_then(rfc3339_utc)
        .unwrap_or_else(|| now.to_string());
    let reason = annotations
        .get("summary")
        .or_else(|| annotations.get("description"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            format!(
                "Alertmanager reports the alert {}",
                alert_status_word(state)
            )
        });

    let detail = json!({
        "alarmName": alarm_name,
        "state": {"value": state.as_str(), "reason": reason, "timestamp": changed_at.unwrap_or(now)},
        "previousState": {"value": previous.as_str()},
        "configuration": {"description": annotations.get("description")},
        "labels": labels,
        "annotations": annotations,
        "startsAt": starts_at,
        "endsAt": ends_at,
        "generatorURL": generator_url,
        "fingerprint": fingerprint,
        "receiver": shared.receiver,
        "externalURL": shared.external_url,
        "groupKey": shared.group_key,
    });
    Ok(Event {
        version: "0".into(),
        id: ids.next_id(),
        detail_type: ALARM_STATE_CHANGE.into(),
        source: SOURCE.into(),
        account: String::new(),
        time,
        region: String::new(),
        // The fingerprint identifies the label set: one incident per distinct alert,
        // resolved by the matching `resolved` notification.
        resources: vec![format!("alertmanager:alert/{fingerprint}")],
        detail,
    })
}

fn alert_status_word(state: AlarmState) -> &'static str {
    if state == AlarmState::Ok {
        "resolved"
    } else {
        "firing"
    }
}

/// A field that is text when present (`null` counts as absent).
fn optional_text<'a>(
    alert: &'a Map<String, Value>,
    at: &str,
    field: &'static str,
) -> Result<Option<&'a str>, DecodeError> {
    match alert.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(DecodeError::WrongType {
            at: at.to_string(),
            field,
            expected: "a string",
        }),
    }
}

fn string_object(
    alert: &Map<String, Value>,
    at: &str,
    field: &'static str,
    required: bool,
) -> Result<Map<String, Value>, DecodeError> {
    match alert.get(field) {
        Some(Value::Object(map)) => {
            if let Some((key, _)) = map.iter().find(|(_, v)| !v.is_string()) {
                return Err(DecodeError::Invalid(format!(
                    "{at}.{field}.{key}: label and annotation values must be strings"
                )));
            }
            Ok(map.clone())
        }
        None | Some(Value::Null) if !required => Ok(Map::new()),
        None | Some(Value::Null) => Err(DecodeError::Missing {
            at: at.to_string(),
            field,
        }),
        Some(_) => Err(DecodeError::WrongType {
            at: at.to_string(),
            field,
            expected: "an object of strings",
        }),
    }
}

/// Senders that omit `fingerprint` (older Alertmanagers, hand-written hooks) still get a
/// stable identity per label set.
fn label_fingerprint(labels: &Map<String, Value>) -> String {
    let mut sorted: Vec<(&String, &Value)> = labels.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    // A stable hash: the identity must survive restarts and upgrades.
    let mut hasher = Sha256::new();
    for (k, v) in sorted {
        hasher.update(k.as_bytes());
        hasher.update([0]);
        hasher.update(v.as_str().unwrap_or_default().as_bytes());
        hasher.update([0]);
    }
    hasher.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("id-{n}")
        }
    }

    #[test]
    fn firing_and_resolved() {
        let body = br#"{"version":"4","alerts":[
            {"status":"firing","labels":{"alertname":"A","instance":"h:9100"},"annotations":{"summary":"s"},"startsAt":"2026-11-20T09:58:30.123Z","fingerprint":"f1"},
            {"status":"resolved","labels":{"alertname":"A"},"endsAt":"2026-11-20T10:00:00Z"}]}"#;
        let events = decode(body, &mut ids(), "now").unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].detail["state"]["value"], "ALARM");
        assert_eq!(events[0].detail["labels"]["instance"], "h:9100");
        assert_eq!(events[0].resources, ["alertmanager:alert/f1"]);
        assert_eq!(events[0].time, "2026-11-20T09:58:30Z");
        assert_eq!(events[1].detail["state"]["value"], "OK");
        assert_eq!(events[1].detail["previousState"]["value"], "ALARM");
        assert_eq!(events[1].time, "2026-11-20T10:00:00Z");
    }

    #[test]
    fn errors_name_the_alert() {
        let err = decode(br#"{"alerts":[{"status":"firing"}]}"#, &mut ids(), "now").unwrap_err();
        assert_eq!(
            err.to_string(),
            "alerts[0]: required field `labels` is missing"
        );
        let err = decode(
            br#"{"alerts":[{"status":"x","labels":{}}]}"#,
            &mut ids(),
            "now",
        )
        .unwrap_err();
        assert!(err.to_string().contains("`status` is `x`"), "{err}");
        let err = decode(br#"{"version":"3","alerts":[]}"#, &mut ids(), "now").unwrap_err();
        assert!(err.to_string().contains("version"), "{err}");
        let err = decode(
            br#"{"alerts":[{"status":"firing","labels":{"a":1}}]}"#,
            &mut ids(),
            "now",
        )
        .unwrap_err();
        assert!(err.to_string().contains("labels.a"), "{err}");
    }

    #[test]
    fn fingerprint_from_labels_is_order_independent() {
        let a: Map<String, Value> = serde_json::from_str(r#"{"x":"1","y":"2"}"#).unwrap();
        let b: Map<String, Value> = serde_json::from_str(r#"{"y":"2","x":"1"}"#).unwrap();
        assert_eq!(label_fingerprint(&a), label_fingerprint(&b));
    }
}
