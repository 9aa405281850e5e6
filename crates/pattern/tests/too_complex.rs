//! AWS refuses wildcard patterns that are too complex (event-ruler's MachineComplexityEvaluator
//! over the rule, more than 10); so does vigil, with AWS's message and the field it is about.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};
use vigil_pattern::{Matcher, Pattern, PatternError};

const AWS_MESSAGE: &str = "Rule is too complex - try using fewer wildcard characters or fewer repeating character sequences after a wildcard character";

fn key(wildcards: &[&str]) -> Value {
    Value::Array(wildcards.iter().map(|w| json!({ "wildcard": w })).collect())
}

/// (case, pattern, `None` when AWS accepts it, else the field AWS's refusal is about).
fn cases() -> Vec<(&'static str, Value, Option<&'static str>)> {
    let datasync = [
        "*/datasync/*.bif",
        "*/datasync/*.tif",
        "*/datasync/*.tiff",
        "*/datasync/*.svs",
    ];
    vec![
        // Seen on EventBridge: four extensions in one rule were accepted (complexity 8) …
        (
            "s3-extensions",
            json!({"source": ["aws.s3"], "detail": {"object": {"key": key(&["*.bif", "*.tiff", "*.tif", "*.svs"])}}}),
            None,
        ),
        // … four folder-and-extension wildcards were refused (16), two at a time accepted (8).
        (
            "s3-datasync-four",
            json!({"source": ["aws.s3"], "detail": {"object": {"key": key(&datasync)}}}),
            Some("detail.object.key"),
        ),
        (
            "s3-datasync-two",
            json!({"source": ["aws.s3"], "detail": {"object": {"key": key(&datasync[..2])}}}),
            None,
        ),
        (
            "eventbus-arn",
            json!({"EventBusArn": [{"wildcard": "arn:aws:events:us-east-1:*:event-bus/*"}]}),
            None,
        ),
        // Repeated characters after a star: each one more prefix a value of a's matches.
        ("nine-after-star", json!({"f": key(&["*aaaaaaaaa"])}), None),
        (
            "ten-after-star",
            json!({"f": key(&["*aaaaaaaaaa"])}),
            Some("f"),
        ),
        ("five-stars", json!({"f": key(&["a*a*a*a*a*"])}), None),
        ("six-stars", json!({"f": key(&["a*a*a*a*a*a*"])}), Some("f")),
        // event-ruler's own example: the wildcard field scores 11, the others nothing.
        (
            "event-ruler-nested",
            json!({
                "abc": [{"prefix": "a"}, "abcdef", {"suffix": "z"}],
                "def": [{"prefix": "b"}, {"wildcard": "a*a*a*a*a*a*"}, {"suffix": "c"}],
                "ghi": [{"prefix": "a"}, "abcdef", {"suffix": "z"}],
            }),
            Some("def"),
        ),
        // anything-but wildcards count like wildcards.
        (
            "anything-but-list",
            json!({"detail": {"object": {"key": [{"anything-but": {"wildcard": datasync}}]}}}),
            Some("detail.object.key"),
        ),
        // The same wildcard in several `$or` branches is one pattern.
        (
            "or-repeats-one-wildcard",
            json!({"$or": [
                {"a": ["x"], "key": key(&datasync[..2])},
                {"b": ["y"], "key": key(&datasync[..2])},
            ]}),
            None,
        ),
        // Branches that differ in a field tested before (`a` sorts before `key`) reach
        // different machines for `key`: 8 each …
        (
            "or-split-by-earlier-field",
            json!({"$or": [
                {"a": ["x"], "key": key(&datasync[..2])},
                {"a": ["y"], "key": key(&datasync[2..])},
            ]}),
            None,
        ),
        // … but when that field sorts after `key`, both branches fill the one machine: 16.
        (
            "or-split-by-later-field",
            json!({"$or": [
                {"z": ["x"], "key": key(&datasync[..2])},
                {"z": ["y"], "key": key(&datasync[2..])},
            ]}),
            Some("key"),
        ),
        // AWS does not weigh machines reached only through `exists: false`.
        (
            "after-exists-false",
            json!({"a": [{"exists": false}], "key": key(&datasync)}),
            None,
        ),
        (
            "after-exists-true",
            json!({"a": [{"exists": true}], "key": key(&datasync)}),
            Some("key"),
        ),
    ]
}

#[test]
fn refused_as_aws_refuses() {
    let mut failures = Vec::new();
    for (name, pattern, refused_at) in cases() {
        let compiled = Pattern::from_value(&pattern);
        let parsed = Pattern::parse(&pattern.to_string());
        let added = Matcher::new().add(name, &pattern);
        let results = [
            ("Pattern::from_value", compiled.err()),
            ("Pattern::parse", parsed.err()),
            ("Matcher::add", added.err()),
        ];
        for (how, error) in results {
            let expected = refused_at.map(|path| PatternError::TooComplex { path: path.into() });
            if error != expected {
                failures.push(format!(
                    "[{name}] {how}: expected {expected:?}, got {error:?}\n    pattern: {pattern}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_message_is_aws_and_names_the_field() {
    let pattern = json!({"detail": {"object": {"key": key(&["*/datasync/*.bif", "*/datasync/*.tif", "*/datasync/*.tiff", "*/datasync/*.svs"])}}});
    let error = Pattern::from_value(&pattern).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("invalid pattern at `detail.object.key`: {AWS_MESSAGE}")
    );
    assert_eq!(error.path(), "detail.object.key");
}

#[test]
fn a_refused_rule_leaves_the_matcher_as_it_was() {
    let mut matcher = Matcher::new();
    matcher.add("plain", &json!({"f": ["x"]})).unwrap();
    let refused = matcher.add("complex", &json!({"f": key(&["a*a*a*a*a*a*"])}));
    assert!(matches!(refused, Err(PatternError::TooComplex { .. })));
    assert_eq!(matcher.len(), 1);
    assert_eq!(matcher.matches_value(&json!({"f": "x"})), vec!["plain"]);
}
