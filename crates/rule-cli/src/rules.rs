//! Rule-set files for `vigil rule bench`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// A named list of patterns, benchmarked together in one matcher.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSet {
    pub name: String,
    pub patterns: Vec<Value>,
}

/// Reads a rule-set file (optionally gzip-compressed); see [`parse_rule_sets`].
pub fn load_rule_sets(path: &Path) -> Result<Vec<RuleSet>> {
    let text = crate::read_maybe_gzip(path)?;
    let value: Value = serde_json::from_slice(&text)
        .with_context(|| format!("{}: not valid JSON", path.display()))?;
    parse_rule_sets(&value, &default_set_name(path))
        .with_context(|| format!("{}: not a rule-set file", path.display()))
}

/// The set name for a file that is a plain array of patterns: the file name without its
/// extensions (`rules.json.gz` → `rules`).
fn default_set_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.split('.').next() {
        Some(stem) if !stem.is_empty() => stem.to_string(),
        _ => "rules".to_string(),
    }
}

/// Rule sets from either shape:
///
/// * an object whose keys name rule sets and whose values are arrays of `{"pattern": …}`
///   (other keys of an entry, such as a name or a description, are ignored);
/// * a plain array of patterns, which becomes one set called `array_name`. Its elements are
///   taken as patterns as they are: `{"pattern": …}` there would be a pattern on a field named
///   `pattern`, so wrappers are not unwrapped.
///
/// Sets come back sorted by name, so output does not depend on how the JSON map is ordered.
pub fn parse_rule_sets(value: &Value, array_name: &str) -> Result<Vec<RuleSet>> {
    match value {
        Value::Array(patterns) => Ok(vec![RuleSet {
            name: array_name.to_string(),
            patterns: patterns.clone(),
        }]),
        Value::Object(sets) => {
            let mut out = Vec::with_capacity(sets.len());
            for (name, entries) in sets {
                let Value::Array(entries) = entries else {
                    bail!("rule set `{name}`: expected an array of {{\"pattern\": …}} objects");
                };
                let mut patterns = Vec::with_capacity(entries.len());
                for (index, entry) in entries.iter().enumerate() {
                    match entry.get("pattern") {
                        Some(pattern) if entry.is_object() => patterns.push(pattern.clone()),
                        _ => bail!(
                            "rule set `{name}`, rule {index}: expected {{\"pattern\": …}}, found {}",
                            abbreviate(&entry.to_string(), 60)
                        ),
                    }
                }
                out.push(RuleSet {
                    name: name.clone(),
                    patterns,
                });
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        }
        _ => bail!("expected an object of rule sets or an array of patterns"),
    }
}

/// `text` cut to at most `max` characters, with `…` when cut.
pub(crate) fn abbreviate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{gzip, TempDir};
    use serde_json::json;

    #[test]
    fn object_of_sets() {
        let file = json!({
            "PREFIX": [{"pattern": {"name": [{"prefix": "San "}]}}],
            "EXACT": [
                {"pattern": {"name": ["Paris"]}},
                {"pattern": {"country": ["IS"]}, "name": "ignored"}
            ]
        });
        let sets = parse_rule_sets(&file, "unused").unwrap();
        assert_eq!(
            sets,
            [
                RuleSet {
                    name: "EXACT".into(),
                    patterns: vec![json!({"name": ["Paris"]}), json!({"country": ["IS"]})]
                },
                RuleSet {
                    name: "PREFIX".into(),
                    patterns: vec![json!({"name": [{"prefix": "San "}]})]
                },
            ]
        );
    }

    #[test]
    fn plain_array_is_one_set_named_after_the_file() {
        let dir = TempDir::new();
        let path = dir.write("my_rules.json", br#"[{"a": ["x"]}, {"pattern": ["y"]}]"#);
        let sets = load_rule_sets(&path).unwrap();
        assert_eq!(sets.len(), 1);
        assert_eq!(sets[0].name, "my_rules");
        // Elements are patterns as they are, even one that looks like a wrapper.
        assert_eq!(
            sets[0].patterns,
            [json!({"a": ["x"]}), json!({"pattern": ["y"]})]
        );

        let gz = dir.write("more.json.gz", &gzip(br#"[{"a": ["x"]}]"#));
        assert_eq!(load_rule_sets(&gz).unwrap()[0].name, "more");
    }

    #[test]
    fn malformed_files_are_errors() {
        let err = parse_rule_sets(&json!({"EXACT": {"pattern": {}}}), "x").unwrap_err();
        assert!(err.to_string().contains("rule set `EXACT`"), "{err}");

        let err =
            parse_rule_sets(&json!({"EXACT": [{"pattern": {}}, {"a": ["b"]}]}), "x").unwrap_err();
        assert!(
            err.to_string().contains("rule set `EXACT`, rule 1"),
            "{err}"
        );

        assert!(parse_rule_sets(&json!("rules"), "x").is_err());

        let dir = TempDir::new();
        let path = dir.write("broken.json", b"{\"EXACT\": [");
        let err = format!("{:#}", load_rule_sets(&path).unwrap_err());
        assert!(err.contains("broken.json: not valid JSON"), "{err}");
    }

    #[test]
    fn abbreviate_cuts_on_char_boundaries() {
        assert_eq!(abbreviate("héllo", 2), "hé…");
        assert_eq!(abbreviate("hé", 2), "hé");
    }
}
