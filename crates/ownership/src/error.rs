//! [`OwnershipError`]: every refusal of this crate, worded for the operator who must fix it.

use thiserror::Error;

use crate::Appcode;

/// Shorthand used throughout the crate.
pub type Result<T, E = OwnershipError> = std::result::Result<T, E>;

/// Why a change to the application tree, the host bindings or an import was refused.
///
/// Messages say what is wrong and what to do; nothing is changed when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OwnershipError {
    #[error("invalid Appcode {input:?}: {reason}")]
    InvalidAppcode { input: String, reason: String },

    #[error("unknown Appcode `{0}`: add the application to the tree first, or check the spelling")]
    UnknownAppcode(String),

    #[error("Appcode `{0}` already exists: Appcodes are unique; update that entry instead of adding it again")]
    AlreadyExists(Appcode),

    #[error("Appcode `{0}` was used before and removed: Appcodes are never reused, so history stays unambiguous; choose a new code")]
    Retired(Appcode),

    #[error("cannot retire `{0}`: it is still in the tree; move its hosts and children away and remove it instead")]
    StillInUse(Appcode),

    #[error("parent `{parent}` of `{appcode}` is not in the tree: add `{parent}` first (or in the same import), or fix the parent")]
    UnknownParent { appcode: Appcode, parent: String },

    #[error("cannot move `{appcode}` under `{new_parent}`: `{new_parent}` is inside `{appcode}`'s own subtree, which would make a cycle; move `{new_parent}` out first")]
    WouldCycle {
        appcode: Appcode,
        new_parent: Appcode,
    },

    #[error("the parents form a cycle: {}; give one of them a parent outside the cycle", display_cycle(.0))]
    ParentCycle(Vec<Appcode>),

    #[error(
        "cannot remove `{appcode}`: it still has children ({children}); move or remove them first"
    )]
    HasChildren { appcode: Appcode, children: String },

    #[error("invalid {field} for `{appcode}`: {reason}")]
    InvalidField {
        appcode: Appcode,
        field: &'static str,
        reason: String,
    },

    #[error("invalid host name {host:?}: {reason}")]
    InvalidHost { host: String, reason: String },

    #[error(
        "{at} duplicates {first}: each {what} may appear once per import; merge the two entries"
    )]
    Duplicate {
        what: &'static str,
        at: String,
        first: String,
    },

    #[error("TOML: {0}")]
    Toml(String),

    #[error("CSV line {line}: {reason}")]
    Csv { line: usize, reason: String },

    /// An import entry was refused; `at` names the entry (and its line when known).
    #[error("{at}: {source}")]
    Entry {
        at: String,
        source: Box<OwnershipError>,
    },
}

fn display_cycle(path: &[Appcode]) -> String {
    let mut text: Vec<&str> = path.iter().map(|code| code.as_str()).collect();
    // Close the loop so the reader sees where it comes back to.
    if let Some(first) = path.first() {
        text.push(first.as_str());
    }
    text.join(" → ")
}
