//! [`Appcode`]: the stable, never-reused identifier of a node in the application tree.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::OwnershipError;

/// Shortest allowed Appcode: one letter alone reads like a typo, not an application.
pub const MIN_LEN: usize = 2;
/// Longest allowed Appcode: long enough for `business_department_application`, short
/// enough to fit in alarm names, tags and chat messages.
pub const MAX_LEN: usize = 64;

/// The identifier of a business unit, department or application: lowercase `[a-z0-9_]`,
/// 2–64 characters, starting with a letter (`flight_search_api`).
///
/// By convention the underscore makes codes hierarchical and readable, but nothing is
/// derived from it: the tree's structure lives in [`crate::AppNode::parent`]. An Appcode
/// is never renamed and never reused (see [`crate::Tree`]), so hosts, alarms and incident
/// history can refer to it safely.
///
/// It dereferences to `&str`, so every read-only lookup in this crate takes `&str` and
/// accepts `&Appcode` as is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Appcode(String);

impl Appcode {
    /// Checks `input` against the Appcode rules; the error names the offending character
    /// and its 1-based position so an operator can fix the file they typed it in.
    pub fn parse(input: &str) -> Result<Appcode, OwnershipError> {
        let invalid = |reason: String| OwnershipError::InvalidAppcode {
            input: input.to_string(),
            reason,
        };
        let len = input.chars().count();
        if !(MIN_LEN..=MAX_LEN).contains(&len) {
            return Err(invalid(format!(
                "it is {len} characters long; an Appcode has {MIN_LEN} to {MAX_LEN}"
            )));
        }
        for (index, c) in input.chars().enumerate() {
            let position = index + 1;
            if index == 0 && !c.is_ascii_lowercase() {
                let hint = if c.is_ascii_uppercase() {
                    format!(" (write '{}')", c.to_ascii_lowercase())
                } else {
                    String::new()
                };
                return Err(invalid(format!(
                    "it must start with a lowercase letter, not {c:?} at position 1{hint}"
                )));
            }
            if !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
                let hint = if c.is_ascii_uppercase() {
                    format!("; write '{}'", c.to_ascii_lowercase())
                } else if c == '-' || c == '.' || c == ' ' {
                    "; use '_' to separate words".to_string()
                } else {
                    String::new()
                };
                return Err(invalid(format!(
                    "character {c:?} at position {position} is not allowed: use lowercase letters, digits and '_'{hint}"
                )));
            }
        }
        Ok(Appcode(input.to_string()))
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The pattern [`Appcode::parse`] enforces, for API schemas.
pub const PATTERN: &str = "^[a-z][a-z0-9_]{1,63}$";

/// Serialised as its text; the schema states the rules [`Appcode::parse`] enforces.
impl utoipa::PartialSchema for Appcode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(PATTERN))
            .min_length(Some(MIN_LEN))
            .max_length(Some(MAX_LEN))
            .description(Some(
                "An Appcode: lowercase letters, digits and `_`, 2 to 64 characters, starting \
                 with a letter.",
            ))
            .into()
    }
}

impl utoipa::ToSchema for Appcode {}

impl Deref for Appcode {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

// Lets `HashMap<Appcode, _>` be queried with a plain `&str` without allocating.
// Sound because `Appcode`'s Hash/Eq/Ord are those of the inner String.
impl Borrow<str> for Appcode {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Appcode {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Appcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Appcode {
    type Err = OwnershipError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Appcode::parse(s)
    }
}

impl TryFrom<String> for Appcode {
    type Error = OwnershipError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Appcode::parse(&value)
    }
}

impl From<Appcode> for String {
    fn from(code: Appcode) -> String {
        code.0
    }
}

impl PartialEq<str> for Appcode {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Appcode {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_well_formed_codes() {
        for ok in ["ab", "flight_search_api", "a1", "x_", &"a".repeat(MAX_LEN)] {
            assert_eq!(
                Appcode::parse(ok).map(String::from).ok(),
                Some(ok.to_string())
            );
        }
    }

    #[test]
    fn errors_name_the_bad_character_and_position() {
        let err = Appcode::parse("flight-search").unwrap_err().to_string();
        assert!(err.contains("'-' at position 7"), "{err}");
        assert!(err.contains("use '_'"), "{err}");

        let err = Appcode::parse("Flight").unwrap_err().to_string();
        assert!(err.contains("'F' at position 1"), "{err}");
        assert!(err.contains("write 'f'"), "{err}");

        let err = Appcode::parse("1abc").unwrap_err().to_string();
        assert!(err.contains("start with a lowercase letter"), "{err}");

        let err = Appcode::parse("abC").unwrap_err().to_string();
        assert!(err.contains("'C' at position 3"), "{err}");
    }

    #[test]
    fn length_is_bounded() {
        assert!(Appcode::parse("a").is_err());
        assert!(Appcode::parse("").is_err());
        let err = Appcode::parse(&"a".repeat(MAX_LEN + 1))
            .unwrap_err()
            .to_string();
        assert!(err.contains("65 characters"), "{err}");
    }

    #[test]
    fn non_ascii_position_counts_characters_not_bytes() {
        let err = Appcode::parse("caf\u{e9}_x").unwrap_err().to_string();
        assert!(err.contains("position 4"), "{err}");
    }

    #[test]
    fn serde_validates() {
        #[derive(Deserialize)]
        struct W {
            code: Appcode,
        }
        let w: W = toml::from_str("code = \"billing\"").unwrap();
        assert_eq!(w.code, "billing");
        let err = toml::from_str::<W>("code = \"Billing\"")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("'B' at position 1"), "{err}");
    }
}
