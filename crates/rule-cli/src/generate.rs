//! Rules generated from a corpus, to see how matching cost grows with the number of rules.
//!
//! Each rule is built from one event picked at random (fixed seed, so runs are repeatable)
//! and its scalar fields (strings and numbers inside nested objects; arrays are not entered).
//! Rule `i` is of kind `i % 10`:
//!
//! | `i % 10` | share | rule |
//! |---|---|---|
//! | 0–6 | 70% | exact: `{"f": [v]}` |
//! | 7 | 10% | prefix: `{"f": [{"prefix": the shortest start of v (≥ 3 characters) that is rare}]}` |
//! | 8 | 10% | numeric: `{"f": [{"numeric": [">=", v, "<", v + max(abs(v), 1) / 1000]}]}` |
//! | 9 | 10% | AND with anything-but: `{"f1": [v1], "f2": [{"anything-but": [v2]}]}` |
//!
//! Rules are kept selective, so that the cost measured is that of finding matches rather than
//! of reporting them: a field value (or prefix) is used only if it is *rare*, i.e. found in at
//! most 0.1% of a sample of the corpus (at most 1 event when the sample is under 2,000
//! events). Values like `"country": "US"` or `"admin2": ""` are skipped; an anything-but is
//! paired with a rare exact value because alone it would match nearly every event. The
//! sample is every k-th event, up to 20,000 events.
//!
//! A kind the picked event cannot supply (no rare number for numeric, no rare prefix, a
//! single field for the AND) falls back to exact, as does a rule the pattern compiler refuses.
//! An event without a rare string or number is passed over for another.
//!
//! Every rule therefore matches at least the event it was built from, except the AND rules,
//! which match only events sharing `v1` but not `v2`.
//! The first 1 and first 100 rules of a list of N are the 1- and 100-rule sets.

use std::collections::hash_map::{Entry, HashMap};

use anyhow::{Context, Result};
use serde_json::{Map, Number, Value};
use vigil_pattern::Pattern;

use crate::Corpus;

/// Events sampled to judge how common a value is.
const SAMPLE_EVENTS: usize = 20_000;

/// A scalar of an event and the path of object keys leading to it.
#[derive(Debug, Clone)]
struct Field {
    path: Vec<String>,
    value: Value,
}

/// How common values are, from a sample of the corpus.
struct Sample {
    /// Occurrences of each (path, value) pair; see [`value_key`].
    counts: HashMap<String, u32>,
    /// Every string value of each path, sorted, to count prefixes by binary search.
    strings: HashMap<Vec<String>, Vec<String>>,
    /// Most occurrences a rare value may have.
    limit: usize,
}

impl Sample {
    fn new(corpus: &Corpus) -> Result<Sample> {
        let step = corpus.events.len().div_ceil(SAMPLE_EVENTS).max(1);
        let mut counts = HashMap::new();
        let mut strings: HashMap<Vec<String>, Vec<String>> = HashMap::new();
        let mut sampled = 0;
        for index in (0..corpus.events.len()).step_by(step) {
            sampled += 1;
            for field in fields_of_event(corpus, index)? {
                *counts.entry(value_key(&field)).or_insert(0) += 1;
                if let Value::String(text) = field.value {
                    strings.entry(field.path).or_default().push(text);
                }
            }
        }
        for values in strings.values_mut() {
            values.sort_unstable();
        }
        Ok(Sample {
            counts,
            strings,
            limit: (sampled / 1000).max(1),
        })
    }

    fn is_rare(&self, field: &Field) -> bool {
        self.counts
            .get(&value_key(field))
            .map_or(0, |&n| n as usize)
            <= self.limit
    }

    /// The shortest start of the field's string, at least 3 characters and shorter than the
    /// whole, that few enough sampled values of the same path begin with.
    fn rare_prefix(&self, field: &Field) -> Option<String> {
        let text = field.value.as_str()?;
        let values = self.strings.get(&field.path).map_or(&[][..], Vec::as_slice);
        let ends: Vec<usize> = text.char_indices().map(|(i, _)| i).skip(3).collect();
        ends.into_iter().map(|end| &text[..end]).find_map(|prefix| {
            let first = values.partition_point(|v| v.as_str() < prefix);
            let beyond = values[first..].partition_point(|v| v.starts_with(prefix));
            (beyond <= self.limit).then(|| prefix.to_string())
        })
    }
}

/// A key naming a field's path and value; the separators cannot occur in JSON text output.
fn value_key(field: &Field) -> String {
    format!("{}\u{1e}{}", field.path.join("\u{1f}"), field.value)
}

/// The string and number fields of event `index`.
fn fields_of_event(corpus: &Corpus, index: usize) -> Result<Vec<Field>> {
    let event: Value = serde_json::from_slice(&corpus.events[index])
        .with_context(|| format!("{}: not valid JSON", corpus.location(index)))?;
    let mut fields = Vec::new();
    collect_fields(&event, &mut Vec::new(), &mut fields);
    Ok(fields)
}

/// `count` rules generated from `corpus` as described in the module documentation.
/// Empty when no event has a rare string or number field to build rules from.
pub fn generate_rules(corpus: &Corpus, count: usize) -> Result<Vec<Value>> {
    if count == 0 {
        return Ok(Vec::new());
    }
    let sample = Sample::new(corpus)?;
    let mut rng = SplitMix64(0x5EED_1CE5_0F7E_A5ED);
    // (all fields, rare fields) of the events picked so far; a small corpus repeats picks.
    let mut fields_of: HashMap<usize, (Vec<Field>, Vec<Field>)> = HashMap::new();
    let mut rules = Vec::with_capacity(count);
    // Give up on corpora where events are rarely usable, rather than loop for ever.
    let mut misses = 0usize;
    while rules.len() < count && misses < 1000 + 10 * count {
        let index = rng.below(corpus.events.len());
        let (fields, rare) = match fields_of.entry(index) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(slot) => {
                let fields = fields_of_event(corpus, index)?;
                let rare = fields
                    .iter()
                    .filter(|f| sample.is_rare(f))
                    .cloned()
                    .collect();
                slot.insert((fields, rare))
            }
        };
        if rare.is_empty() {
            misses += 1;
            continue;
        }
        rules.push(make_rule(rules.len() % 10, fields, rare, &sample, &mut rng));
    }
    Ok(rules)
}

/// The rule of `kind` (see the table in the module documentation) from one event's fields;
/// `rare` is the non-empty subset of `fields` whose values are rare.
fn make_rule(
    kind: usize,
    fields: &[Field],
    rare: &[Field],
    sample: &Sample,
    rng: &mut SplitMix64,
) -> Value {
    let any_rare = &rare[rng.below(rare.len())];
    let candidate = match kind {
        7 => {
            let prefixes: Vec<(&Field, String)> = rare
                .iter()
                .filter_map(|f| Some((f, sample.rare_prefix(f)?)))
                .collect();
            (!prefixes.is_empty()).then(|| {
                let (f, prefix) = &prefixes[rng.below(prefixes.len())];
                pattern_of(&[(f, serde_json::json!([{ "prefix": prefix }]))])
            })
        }
        8 => pick(rare, rng, |v| v.as_f64().is_some_and(f64::is_finite)).and_then(|f| {
            let low = f.value.as_f64()?;
            let high = Number::from_f64(low + low.abs().max(1.0) / 1000.0)?;
            Some(pattern_of(&[(
                f,
                serde_json::json!([{ "numeric": [">=", f.value, "<", high] }]),
            )]))
        }),
        9 => {
            // Any field of the event but the rare one is the anything-but's.
            let others: Vec<&Field> = fields.iter().filter(|f| f.path != any_rare.path).collect();
            (!others.is_empty()).then(|| {
                let other = others[rng.below(others.len())];
                pattern_of(&[
                    exact(any_rare),
                    (
                        other,
                        serde_json::json!([{ "anything-but": [other.value] }]),
                    ),
                ])
            })
        }
        _ => None,
    };
    match candidate {
        Some(rule) if Pattern::from_value(&rule).is_ok() => rule,
        _ => pattern_of(&[exact(any_rare)]),
    }
}

/// The condition "equals the field's value", for [`pattern_of`].
fn exact(field: &Field) -> (&Field, Value) {
    (field, Value::Array(vec![field.value.clone()]))
}

/// A field whose value satisfies `want`, at random, if there is one.
fn pick<'a>(
    fields: &'a [Field],
    rng: &mut SplitMix64,
    want: impl Fn(&Value) -> bool,
) -> Option<&'a Field> {
    let fitting: Vec<&Field> = fields.iter().filter(|f| want(&f.value)).collect();
    if fitting.is_empty() {
        None
    } else {
        Some(fitting[rng.below(fitting.len())])
    }
}

/// The pattern requiring each field's path to satisfy its condition array.
fn pattern_of(conditions: &[(&Field, Value)]) -> Value {
    let mut root = Map::new();
    for (field, condition) in conditions {
        insert(&mut root, &field.path, condition.clone());
    }
    Value::Object(root)
}

/// Puts `condition` at `path` below `node`, creating the objects on the way.
fn insert(node: &mut Map<String, Value>, path: &[String], condition: Value) {
    match path {
        [] => {}
        [last] => {
            node.insert(last.clone(), condition);
        }
        [first, rest @ ..] => {
            let child = node
                .entry(first.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            // Scalars have no children, so two scalar paths never make one key both a
            // condition and an object; replacing only keeps this function total.
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            if let Value::Object(map) = child {
                insert(map, rest, condition);
            }
        }
    }
}

fn collect_fields(value: &Value, path: &mut Vec<String>, out: &mut Vec<Field>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                path.push(key.clone());
                collect_fields(inner, path, out);
                path.pop();
            }
        }
        Value::String(_) | Value::Number(_) if !path.is_empty() => out.push(Field {
            path: path.clone(),
            value: value.clone(),
        }),
        // Arrays match element-wise, booleans and null have too few values to make
        // distinct rules from.
        _ => {}
    }
}

/// A small deterministic generator (SplitMix64): the same rules on every run, no dependency.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..n` for picking events; `n` must be positive.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use vigil_pattern::{MatchState, Matcher};

    fn corpus(lines: &[&str]) -> Corpus {
        Corpus {
            path: PathBuf::from("test.jsonl"),
            events: lines.iter().map(|l| l.as_bytes().to_vec()).collect(),
            line_numbers: (1..=lines.len()).collect(),
        }
    }

    fn cities() -> Corpus {
        corpus(&[
            r#"{"name":"Paris","lat":48.85,"country":"FR","admin":{"code":"11"}}"#,
            r#"{"name":"Lyon","lat":45.75,"country":"FR","admin":{"code":"84"}}"#,
            r#"{"name":"Reykjavik","lat":64.13,"country":"IS","admin":{"code":"1"}}"#,
            r#"{"name":"Springfield","lat":39.8,"country":"US","tags":["a"],"ok":true}"#,
        ])
    }

    #[test]
    fn rules_compile_are_repeatable_and_mix_kinds() {
        let corpus = cities();
        let rules = generate_rules(&corpus, 200).unwrap();
        assert_eq!(rules.len(), 200);
        assert_eq!(rules, generate_rules(&corpus, 200).unwrap());
        for rule in &rules {
            Pattern::from_value(rule).unwrap_or_else(|e| panic!("{rule}: {e}"));
        }
        let text: Vec<String> = rules.iter().map(Value::to_string).collect();
        for kind in ["prefix", "numeric", "anything-but"] {
            assert!(text.iter().any(|t| t.contains(kind)), "no {kind} rule");
        }
        // Arrays and booleans are not turned into rules.
        assert!(!text
            .iter()
            .any(|t| t.contains("tags") || t.contains("\"ok\"")));
        // Nested objects become nested patterns.
        assert!(text.iter().any(|t| t.contains(r#"{"admin":{"code":"#)));
    }

    #[test]
    fn all_but_and_rules_match_the_corpus() {
        let corpus = cities();
        let rules = generate_rules(&corpus, 100).unwrap();
        let mut matcher = Matcher::new();
        for (i, rule) in rules.iter().enumerate() {
            matcher.add(i, rule).unwrap();
        }
        let mut hits = vec![0usize; rules.len()];
        let (mut state, mut out) = (MatchState::default(), Vec::new());
        for event in &corpus.events {
            matcher.matches_json(event, &mut state, &mut out).unwrap();
            for &i in &out {
                hits[i] += 1;
            }
        }
        for (i, rule) in rules.iter().enumerate() {
            if !rule.to_string().contains("anything-but") {
                assert!(hits[i] > 0, "rule {i} {rule} matches nothing");
            }
        }
    }

    #[test]
    fn common_values_are_not_used() {
        // 3000 events: `kind` is the same everywhere, `zone` takes 3 values, `id` is unique.
        let lines: Vec<String> = (0..3000)
            .map(|i| {
                format!(
                    r#"{{"kind":"sensor","zone":"zone-{}","id":"dev-{i:05}-a"}}"#,
                    i % 3
                )
            })
            .collect();
        let corpus = corpus(&lines.iter().map(String::as_str).collect::<Vec<_>>());
        let rules = generate_rules(&corpus, 300).unwrap();
        assert_eq!(rules.len(), 300);
        let mut prefixes = 0;
        for rule in &rules {
            let text = rule.to_string();
            // Only as the anything-but half of an AND may a common field appear.
            if !text.contains("anything-but") {
                assert!(!text.contains("kind") && !text.contains("zone"), "{text}");
            }
            if let Some(prefix) = rule["id"][0]["prefix"].as_str() {
                prefixes += 1;
                // "dev-0" would match 1000 events, "dev-0001" 10; at most 3 (0.1% of the
                // sample, or 1) may match, so only a whole number will do.
                assert_eq!(prefix.len(), "dev-00000".len(), "{text}");
            }
        }
        assert_eq!(prefixes, 30);
    }

    #[test]
    fn nothing_to_build_from_gives_no_rules() {
        let corpus = corpus(&[r#"{"a":[1,2]}"#, r#"{"b":true}"#, "{}"]);
        assert!(generate_rules(&corpus, 10).unwrap().is_empty());
        // Values present in every event are never rare.
        let corpus = super::tests::corpus(&[r#"{"a":"x"}"#, r#"{"a":"x"}"#, r#"{"a":"x"}"#]);
        assert!(generate_rules(&corpus, 10).unwrap().is_empty());
    }
}
