//! From pattern JSON to clauses: `$or` is expanded so a pattern becomes a disjunction of
//! clauses, each a conjunction of per-field condition lists.

use serde_json::{Map, Value};

use crate::condition::{fold_case, AnythingBut, Cidr, Condition, NumericRange, Wildcard};
use crate::PatternError;

/// A field test: the value at `path` must satisfy at least one of `conditions`.
#[derive(Debug, Clone)]
pub(crate) struct Conjunct {
    pub path: Vec<Box<str>>,
    pub conditions: Vec<Condition>,
}

pub(crate) type Clause = Vec<Conjunct>;

/// `$or` multiplies clauses; past this many a pattern is refused rather than compiled into
/// something that makes every event slow.
const MAX_CLAUSES: usize = 1024;

const OPERATORS: [&str; 8] = [
    "prefix",
    "suffix",
    "anything-but",
    "numeric",
    "exists",
    "equals-ignore-case",
    "wildcard",
    "cidr",
];

pub(crate) fn parse(pattern: &Value) -> Result<Vec<Clause>, PatternError> {
    let clauses = match pattern {
        Value::Object(fields) if fields.is_empty() => {
            Err(PatternError::new(&[], "Empty objects are not allowed"))
        }
        Value::Object(fields) => parse_object(fields, &mut Vec::new()),
        _ => Err(PatternError::new(&[], "a pattern must be a JSON object")),
    }?;
    crate::complexity::check(&clauses)?;
    Ok(clauses)
}

fn parse_object(
    fields: &Map<String, Value>,
    path: &mut Vec<Box<str>>,
) -> Result<Vec<Clause>, PatternError> {
    let mut clauses: Vec<Clause> = vec![Vec::new()];
    for (key, value) in fields {
        if key == "$or" {
            if let Some(alternatives) = or_alternatives(value) {
                let mut expanded = Vec::new();
                for alternative in alternatives {
                    expanded.extend(parse_object(alternative, path)?);
                }
                clauses = cross(clauses, &expanded, path)?;
                continue;
            }
        }
        let depth = path.len();
        path.extend(key.split('.').map(Box::from));
        let result = match value {
            Value::Object(inner) if inner.is_empty() => {
                Err(PatternError::new(path, "Empty objects are not allowed"))
            }
            Value::Object(inner) => {
                parse_object(inner, path).and_then(|inner| cross(clauses, &inner, path))
            }
            Value::Array(elements) => parse_conditions(elements, path).map(|conditions| {
                let conjunct = Conjunct {
                    path: path.clone(),
                    conditions,
                };
                clauses
                    .into_iter()
                    .map(|mut clause| {
                        clause.push(conjunct.clone());
                        clause
                    })
                    .collect()
            }),
            _ => Err(PatternError::new(
                path,
                format!("\"{key}\" must be an object or an array"),
            )),
        };
        path.truncate(depth);
        clauses = result?;
    }
    Ok(clauses)
}

/// `$or` is the operator only when its value is an array of two or more objects that are not
/// themselves operators; otherwise it is an ordinary field name.
fn or_alternatives(value: &Value) -> Option<Vec<&Map<String, Value>>> {
    let elements = value.as_array()?;
    let objects: Vec<&Map<String, Value>> = elements.iter().filter_map(Value::as_object).collect();
    let operators = objects
        .iter()
        .any(|o| o.keys().any(|k| OPERATORS.contains(&k.as_str())));
    (objects.len() >= 2 && objects.len() == elements.len() && !operators).then_some(objects)
}

fn cross(
    left: Vec<Clause>,
    right: &[Clause],
    path: &[Box<str>],
) -> Result<Vec<Clause>, PatternError> {
    if left.len().saturating_mul(right.len()) > MAX_CLAUSES {
        return Err(PatternError::new(
            path,
            format!("\"$or\" expands to more than {MAX_CLAUSES} combinations"),
        ));
    }
    Ok(left
        .iter()
        .flat_map(|l| {
            right.iter().map(move |r| {
                let mut clause = l.clone();
                clause.extend(r.iter().cloned());
                clause
            })
        })
        .collect())
}

fn parse_conditions(elements: &[Value], path: &[Box<str>]) -> Result<Vec<Condition>, PatternError> {
    if elements.is_empty() {
        return Err(PatternError::new(path, "Empty arrays are not allowed"));
    }
    elements
        .iter()
        .map(|element| parse_condition(element, path))
        .collect()
}

fn parse_condition(element: &Value, path: &[Box<str>]) -> Result<Condition, PatternError> {
    let error = |message: String| PatternError::new(path, message);
    Ok(match element {
        Value::String(s) => Condition::ExactStr(s.as_str().into()),
        Value::Number(n) => Condition::ExactNum(number(n)),
        Value::Bool(b) => Condition::ExactBool(*b),
        Value::Null => Condition::ExactNull,
        Value::Array(_) => return Err(error("arrays inside a match array are not allowed".into())),
        Value::Object(operator) => {
            let mut entries = operator.iter();
            let (Some((name, operand)), None) = (entries.next(), entries.next()) else {
                return Err(error(
                    "a match object must have exactly one operator".into(),
                ));
            };
            parse_operator(name, operand, path)?
        }
    })
}

fn parse_operator(
    name: &str,
    operand: &Value,
    path: &[Box<str>],
) -> Result<Condition, PatternError> {
    let error = |message: String| PatternError::new(path, message);
    match name {
        "prefix" | "suffix" => {
            let is_prefix = name == "prefix";
            match operand {
                Value::String(s) => Ok(if is_prefix { Condition::Prefix(s.as_str().into()) } else { Condition::Suffix(s.as_str().into()) }),
                Value::Object(inner) => match single_entry(inner) {
                    Some(("equals-ignore-case", Value::String(s))) => {
                        let folded: Box<str> = fold_case(s).into();
                        Ok(if is_prefix { Condition::PrefixIgnoreCase(folded) } else { Condition::SuffixIgnoreCase(folded) })
                    }
                    Some(("equals-ignore-case", _)) => Err(error(format!("{name} equals-ignore-case match pattern must be a string"))),
                    _ => Err(error(format!("Unsupported {name} pattern: only equals-ignore-case may be nested inside {name}"))),
                },
                _ => Err(error(format!("{name} match pattern must be a string"))),
            }
        }
        "equals-ignore-case" => match operand {
            Value::String(s) => Ok(Condition::EqualsIgnoreCase(fold_case(s).into())),
            _ => Err(error(
                "equals-ignore-case match pattern must be a string".into(),
            )),
        },
        "wildcard" => match operand {
            Value::String(s) => Wildcard::parse(s).map(Condition::Wildcard).map_err(error),
            _ => Err(error("wildcard match pattern must be a string".into())),
        },
        "exists" => match operand {
            Value::Bool(b) => Ok(Condition::Exists(*b)),
            _ => Err(error(
                "exists match pattern must be either true or false".into(),
            )),
        },
        "cidr" => match operand {
            Value::String(s) => Cidr::parse(s).map(Condition::Cidr).map_err(error),
            _ => Err(error("cidr match pattern must be a string".into())),
        },
        "numeric" => parse_numeric(operand)
            .map(Condition::Numeric)
            .map_err(error),
        "anything-but" => parse_anything_but(operand)
            .map(Condition::AnythingBut)
            .map_err(error),
        other => Err(error(format!("Unrecognized match type {other}"))),
    }
}

fn single_entry(object: &Map<String, Value>) -> Option<(&str, &Value)> {
    let mut entries = object.iter();
    match (entries.next(), entries.next()) {
        (Some((k, v)), None) => Some((k.as_str(), v)),
        _ => None,
    }
}

fn number(n: &serde_json::Number) -> f64 {
    // Every JSON number serde_json parses has an f64 view; the fallback is unreachable in practice.
    n.as_f64().unwrap_or(f64::NAN)
}

fn parse_numeric(operand: &Value) -> Result<NumericRange, String> {
    let Value::Array(items) = operand else {
        return Err("Value of numeric must be an array.".into());
    };
    let mut bounds = Vec::new();
    let mut items = items.iter();
    while let Some(op) = items.next() {
        let Some(op) = op
            .as_str()
            .filter(|op| matches!(*op, "=" | "<" | "<=" | ">" | ">="))
        else {
            return Err("Unrecognized numeric range operator".into());
        };
        let value = match items.next() {
            Some(Value::Number(n)) => number(n),
            _ => return Err(format!("Value of {op} must be numeric")),
        };
        if !value.is_finite() {
            return Err(format!("Value of {op} must be numeric"));
        }
        bounds.push((op, value));
    }
    let mut range = NumericRange {
        lower: None,
        upper: None,
    };
    match bounds.as_slice() {
        [("=", v)] => {
            range.lower = Some((*v, true));
            range.upper = Some((*v, true));
        }
        [(op, v)] if op.starts_with('>') => range.lower = Some((*v, *op == ">=")),
        [(op, v)] if op.starts_with('<') => range.upper = Some((*v, *op == "<=")),
        [(lo, a), (hi, b)] if lo.starts_with('>') && hi.starts_with('<') => {
            if a >= b {
                return Err(format!(
                    "Bad numeric range: the lower bound {a} must be below the upper bound {b}"
                ));
            }
            range.lower = Some((*a, *lo == ">="));
            range.upper = Some((*b, *hi == "<="));
        }
        [] => return Err("Empty arrays are not allowed".into()),
        _ => return Err("Bad numeric range operator".into()),
    }
    Ok(range)
}

fn parse_anything_but(operand: &Value) -> Result<AnythingBut, String> {
    match operand {
        Value::String(s) => Ok(AnythingBut::Strings(vec![s.as_str().into()])),
        Value::Number(n) => Ok(AnythingBut::Numbers(vec![number(n)])),
        Value::Array(items) if items.is_empty() => Err("Empty arrays are not allowed".into()),
        Value::Array(items) => {
            if let Some(strings) = items.iter().map(Value::as_str).collect::<Option<Vec<_>>>() {
                Ok(AnythingBut::Strings(
                    strings.into_iter().map(Box::from).collect(),
                ))
            } else if let Some(numbers) = items
                .iter()
                .map(|v| v.as_number().map(number))
                .collect::<Option<Vec<_>>>()
            {
                Ok(AnythingBut::Numbers(numbers))
            } else {
                Err("Inside anything-but list, start|null|boolean is not supported; use only strings or only numbers".into())
            }
        }
        Value::Object(inner) => {
            let Some((name, value)) = single_entry(inner) else {
                return Err("anything-but takes exactly one of prefix, suffix, equals-ignore-case, wildcard".into());
            };
            let strings = strings_operand(name, value)?;
            match name {
                "prefix" | "suffix" => {
                    if strings.iter().any(|s| s.is_empty()) {
                        return Err("Null prefix/suffix not allowed".into());
                    }
                    Ok(if name == "prefix" {
                        AnythingBut::Prefixes(strings)
                    } else {
                        AnythingBut::Suffixes(strings)
                    })
                }
                "equals-ignore-case" => Ok(AnythingBut::EqualsIgnoreCase(
                    strings.iter().map(|s| fold_case(s).into()).collect(),
                )),
                "wildcard" => strings
                    .iter()
                    .map(|s| Wildcard::parse(s))
                    .collect::<Result<_, _>>()
                    .map(AnythingBut::Wildcards),
                other => Err(format!("Unsupported anything-but pattern: {other}")),
            }
        }
        Value::Null => Err("anything-but does not accept null".into()),
        Value::Bool(_) => Err("anything-but does not accept booleans".into()),
    }
}

fn strings_operand(name: &str, value: &Value) -> Result<Vec<Box<str>>, String> {
    match value {
        Value::String(s) => Ok(vec![s.as_str().into()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|v| {
                v.as_str().map(Box::from).ok_or_else(|| {
                    format!("Inside anything-but/{name} list, only strings are allowed")
                })
            })
            .collect(),
        Value::Array(_) => Err("Empty arrays are not allowed".into()),
        _ => Err(format!(
            "anything-but/{name} match pattern must be a string or a list of strings"
        )),
    }
}
