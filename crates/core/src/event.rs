use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `detail-type` CloudWatch uses for alarm transitions.
pub const CLOUDWATCH_ALARM_STATE_CHANGE: &str = "CloudWatch Alarm State Change";
/// `detail-type` of vigil's own alarm transitions and of normalised Alertmanager alerts.
pub const ALARM_STATE_CHANGE: &str = "Alarm State Change";

/// An event in the EventBridge envelope. Unknown top-level fields are kept out:
/// the envelope is fixed and `detail` carries everything else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    pub version: String,
    pub id: String,
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub source: String,
    pub account: String,
    pub time: String,
    pub region: String,
    pub resources: Vec<String>,
    /// Always a JSON object.
    #[schema(value_type = Object)]
    pub detail: Value,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EventError {
    #[error("{at}: expected a JSON object (an event in the EventBridge envelope)")]
    NotAnObject { at: String },
    #[error("{at}: required field `{field}` is missing")]
    Missing { at: String, field: &'static str },
    #[error("{at}: field `{field}` must be {expected}")]
    WrongType {
        at: String,
        field: &'static str,
        expected: &'static str,
    },
    #[error("{at}: field `{field}` must not be empty")]
    Empty { at: String, field: &'static str },
    #[error("{at}: field `{field}` is longer than {max} characters")]
    TooLong {
        at: String,
        field: &'static str,
        max: usize,
    },
}

/// Longest `id` accepted; EventBridge ids are UUIDs, senders' own ids stay well below this.
const MAX_ID_LEN: usize = 256;

impl Event {
    /// Validates an envelope received from outside. `at` names the position for error
    /// messages (`event[3]`); `fresh_id` and `now` fill a missing `id`/`time` as PutEvents does.
    pub fn from_value(
        value: Value,
        at: &str,
        fresh_id: impl FnOnce() -> String,
        now: &str,
    ) -> Result<Event, EventError> {
        let Value::Object(mut map) = value else {
            return Err(EventError::NotAnObject { at: at.to_string() });
        };
        let source = required_string(&mut map, at, "source")?;
        let detail_type = required_string(&mut map, at, "detail-type")?;
        let detail = match map.remove("detail") {
            None | Some(Value::Null) => {
                return Err(EventError::Missing {
                    at: at.to_string(),
                    field: "detail",
                })
            }
            Some(Value::Object(detail)) => Value::Object(detail),
            Some(_) => {
                return Err(EventError::WrongType {
                    at: at.to_string(),
                    field: "detail",
                    expected: "a JSON object",
                })
            }
        };
        let id = match optional_string(&mut map, at, "id")? {
            Some(id) if id.is_empty() => {
                return Err(EventError::Empty {
                    at: at.to_string(),
                    field: "id",
                })
            }
            Some(id) if id.chars().count() > MAX_ID_LEN => {
                return Err(EventError::TooLong {
                    at: at.to_string(),
                    field: "id",
                    max: MAX_ID_LEN,
                })
            }
            Some(id) => id,
            None => fresh_id(),
        };
        let time = optional_string(&mut map, at, "time")?.unwrap_or_else(|| now.to_string());
        let version = optional_string(&mut map, at, "version")?.unwrap_or_else(|| "0".to_string());
        let account = optional_string(&mut map, at, "account")?.unwrap_or_default();
        let region = optional_string(&mut map, at, "region")?.unwrap_or_default();
        let resources = match map.remove("resources") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s),
                    _ => Err(EventError::WrongType {
                        at: at.to_string(),
                        field: "resources",
                        expected: "an array of strings",
                    }),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(EventError::WrongType {
                    at: at.to_string(),
                    field: "resources",
                    expected: "an array of strings",
                })
            }
        };
        Ok(Event {
            version,
            id,
            detail_type,
            source,
            account,
            time,
            region,
            resources,
            detail,
        })
    }

    /// The event as JSON, the shape patterns are matched against.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Runs `f` on the event as JSON ([`Event::to_value`]'s shape) without copying its
    /// detail, which is lent to the JSON and given back: matching a storm of events must
    /// not copy each one.
    pub fn with_value<T>(&mut self, f: impl FnOnce(&Value) -> T) -> T {
        let mut fields = Map::with_capacity(9);
        let text = |s: &str| Value::String(s.to_string());
        fields.insert("version".into(), text(&self.version));
        fields.insert("id".into(), text(&self.id));
        fields.insert("detail-type".into(), text(&self.detail_type));
        fields.insert("source".into(), text(&self.source));
        fields.insert("account".into(), text(&self.account));
        fields.insert("time".into(), text(&self.time));
        fields.insert("region".into(), text(&self.region));
        fields.insert(
            "resources".into(),
            Value::Array(self.resources.iter().map(|r| text(r)).collect()),
        );
        fields.insert("detail".into(), std::mem::take(&mut self.detail));
        let value = Value::Object(fields);
        let answer = f(&value);
        if let Value::Object(mut fields) = value {
            if let Some(detail) = fields.remove("detail") {
                self.detail = detail;
            }
        }
        answer
    }
}

/// The schema of an event as senders may give it, what [`Event::from_value`] accepts:
/// `source`, `detail-type` (non-empty) and `detail` (an object) are required; `id` (1 to
/// 256 characters), `time`, `version`, `account`, `region` and `resources` may be missing or
/// null; other top-level fields are ignored. [`Event`]'s own schema is what vigil sends back.
pub enum EventInput {}

impl utoipa::PartialSchema for EventInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
        let text = |min_length: Option<usize>| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(min_length)
        };
        let optional_text =
            || ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::String, Type::Null]));
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "An event in the EventBridge envelope as senders give it: a missing `id` or \
                 `time` is filled in as PutEvents does.",
            ))
            .property("source", text(Some(1)))
            .required("source")
            .property("detail-type", text(Some(1)))
            .required("detail-type")
            .property("detail", ObjectBuilder::new().schema_type(Type::Object))
            .required("detail")
            .property(
                "id",
                optional_text()
                    .min_length(Some(1))
                    .max_length(Some(MAX_ID_LEN)),
            )
            .property("time", optional_text())
            .property("version", optional_text())
            .property("account", optional_text())
            .property("region", optional_text())
            .property(
                "resources",
                ArrayBuilder::new()
                    .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
                    .items(text(None)),
            )
            .into()
    }
}

impl utoipa::ToSchema for EventInput {}

fn required_string(
    map: &mut Map<String, Value>,
    at: &str,
    field: &'static str,
) -> Result<String, EventError> {
    match optional_string(map, at, field)? {
        None => Err(EventError::Missing {
            at: at.to_string(),
            field,
        }),
        Some(s) if s.is_empty() => Err(EventError::Empty {
            at: at.to_string(),
            field,
        }),
        Some(s) => Ok(s),
    }
}

fn optional_string(
    map: &mut Map<String, Value>,
    at: &str,
    field: &'static str,
) -> Result<Option<String>, EventError> {
    match map.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(EventError::WrongType {
            at: at.to_string(),
            field,
            expected: "a string",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_value_shows_what_to_value_shows_and_gives_the_detail_back() {
        let mut event = Event::from_value(
            serde_json::json!({
                "id": "e-1", "source": "aws.cloudwatch", "detail-type": "X",
                "resources": ["arn:a"], "detail": {"alarmName": "cpu", "n": [1, 2]}
            }),
            "event",
            || "fresh".into(),
            "2026-12-04T00:00:00Z",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let before = event.clone();
        let seen = event.with_value(|v| v.clone());
        assert_eq!(seen, before.to_value());
        assert_eq!(event, before);
    }
    use serde_json::json;

    fn parse(v: Value) -> Result<Event, EventError> {
        Event::from_value(v, "event", || "generated".into(), "2026-11-23T00:00:00Z")
    }

    #[test]
    fn fills_missing_id_and_time() {
        let e = parse(json!({"source": "a", "detail-type": "b", "detail": {}})).unwrap();
        assert_eq!(e.id, "generated");
        assert_eq!(e.time, "2026-11-23T00:00:00Z");
        assert_eq!(e.version, "0");
    }

    #[test]
    fn names_the_missing_field() {
        let err = parse(json!({"source": "a", "detail": {}})).unwrap_err();
        assert!(err.to_string().contains("`detail-type`"), "{err}");
        let err = parse(json!({"source": "a", "detail-type": "b"})).unwrap_err();
        assert!(err.to_string().contains("`detail`"), "{err}");
        let err = parse(json!({"source": 3, "detail-type": "b", "detail": {}})).unwrap_err();
        assert!(
            err.to_string().contains("`source` must be a string"),
            "{err}"
        );
        let err = parse(json!({"source": "a", "detail-type": "b", "detail": {}, "resources": [1]}))
            .unwrap_err();
        assert!(err.to_string().contains("`resources`"), "{err}");
        assert!(matches!(
            parse(json!([1])),
            Err(EventError::NotAnObject { .. })
        ));
    }

    #[test]
    fn keeps_given_id() {
        let e = parse(json!({"id": "x-1", "source": "a", "detail-type": "b", "detail": {"k": 1}}))
            .unwrap();
        assert_eq!(e.id, "x-1");
        assert_eq!(e.to_value()["detail-type"], "b");
    }
}
