//! The AWS EventBridge event-pattern language: parse, compile, match. Pure: no I/O.
//!
//! ```
//! use vigil_pattern::Pattern;
//! let pattern = Pattern::parse(r#"{"detail":{"state":{"value":["ALARM"]}}}"#).unwrap();
//! let event = serde_json::json!({"detail": {"state": {"value": "ALARM"}}});
//! assert!(pattern.matches(&event));
//! ```
//!
//! [`Matcher`] holds many rules and finds every rule an event matches in one walk over the
//! event; [`Pattern`] is a matcher of one rule.

mod complexity;
mod condition;
mod error;
mod flatten;
mod index;
mod matcher;
mod parse;

pub use error::{EventError, PatternError};
pub use matcher::{MatchState, Matcher};

use serde_json::Value;

/// One compiled pattern.
#[derive(Debug)]
pub struct Pattern {
    matcher: Matcher<()>,
}

impl Pattern {
    /// Compiles pattern JSON text.
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        let value: Value = serde_json::from_str(text).map_err(|e| PatternError::Invalid {
            path: String::new(),
            message: format!("not valid JSON: {e}"),
        })?;
        Self::from_value(&value)
    }

    pub fn from_value(pattern: &Value) -> Result<Pattern, PatternError> {
        let mut matcher = Matcher::new();
        matcher.add((), pattern)?;
        Ok(Pattern { matcher })
    }

    pub fn matches(&self, event: &Value) -> bool {
        !self.matcher.matches_value(event).is_empty()
    }

    /// Matches event JSON text without building a tree of it.
    pub fn matches_json(&self, event_json: &[u8]) -> Result<bool, EventError> {
        let mut out = Vec::with_capacity(1);
        self.matcher
            .matches_json(event_json, &mut MatchState::default(), &mut out)?;
        Ok(!out.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn both(pattern: &Value, event: &Value) -> bool {
        let compiled = Pattern::from_value(pattern).unwrap();
        let by_tree = compiled.matches(event);
        let by_bytes = compiled.matches_json(event.to_string().as_bytes()).unwrap();
        assert_eq!(
            by_tree, by_bytes,
            "tree and byte walks disagree on {pattern} / {event}"
        );
        by_tree
    }

    #[test]
    fn alarm_transition_pattern() {
        let pattern = json!({"source":["aws.cloudwatch"],"detail-type":["CloudWatch Alarm State Change"],
            "detail":{"state":{"value":["ALARM"]},"previousState":{"value":["OK"]}}});
        let mut event = json!({"source":"aws.cloudwatch","detail-type":"CloudWatch Alarm State Change",
            "detail":{"state":{"value":"ALARM"},"previousState":{"value":"OK"}}});
        assert!(both(&pattern, &event));
        event["detail"]["state"]["value"] = json!("OK");
        event["detail"]["previousState"]["value"] = json!("ALARM");
        assert!(!both(&pattern, &event));
    }

    #[test]
    fn array_consistency() {
        let pattern = json!({"employees":{"firstName":["Anna"],"lastName":["Jones"]}});
        let same = json!({"employees":[{"firstName":"John","lastName":"Doe"},{"firstName":"Anna","lastName":"Jones"}]});
        let split = json!({"employees":[{"firstName":"Anna","lastName":"Doe"},{"firstName":"John","lastName":"Jones"}]});
        assert!(both(&pattern, &same));
        assert!(!both(&pattern, &split));
    }

    #[test]
    fn many_rules_one_walk() {
        let mut matcher = Matcher::new();
        matcher.add("exact", &json!({"a":["x"]})).unwrap();
        matcher
            .add("prefix", &json!({"a":[{"prefix":"x"}]}))
            .unwrap();
        matcher
            .add("absent", &json!({"b":[{"exists":false}]}))
            .unwrap();
        matcher
            .add("numeric", &json!({"n":[{"numeric":[">",1,"<=",3]}]}))
            .unwrap();
        assert_eq!(
            matcher.matches_value(&json!({"a":"x","n":3.0})),
            vec!["exact", "prefix", "absent", "numeric"]
        );
        assert_eq!(
            matcher.matches_value(&json!({"a":"xy","b":1,"n":1})),
            vec!["prefix"]
        );
    }

    #[test]
    fn errors_name_the_field() {
        let error = Pattern::parse(r#"{"detail":{"state":[{"EXISTS":true}]}}"#).unwrap_err();
        assert_eq!(error.path(), "detail.state");
        assert!(
            error.to_string().contains("Unrecognized match type EXISTS"),
            "{error}"
        );
    }
}
