/// AWS EventBridge's own words when it refuses a pattern as too complex (`PutRule` answers
/// "Event pattern is not valid. Reason: " followed by this).
pub const TOO_COMPLEX: &str = "Rule is too complex - try using fewer wildcard characters or fewer repeating character sequences after a wildcard character";

/// A pattern that cannot be compiled. `path` is the dotted field path where the problem is
/// (empty at the top level).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// Not JSON, or not the pattern language; `message` says why, in AWS EventBridge's
    /// wording where it has one.
    #[error("invalid pattern{}: {message}", at(path))]
    Invalid { path: String, message: String },
    /// The wildcard tests on the field at `path` are more than AWS accepts: more of their
    /// prefixes than AWS's limit could be matching one value at once.
    #[error("invalid pattern{}: {TOO_COMPLEX}", at(path))]
    TooComplex { path: String },
}

impl PatternError {
    pub(crate) fn new(path: &[Box<str>], message: impl Into<String>) -> Self {
        PatternError::Invalid {
            path: path.join("."),
            message: message.into(),
        }
    }

    /// The dotted field path where the problem is; empty at the top level.
    pub fn path(&self) -> &str {
        match self {
            PatternError::Invalid { path, .. } | PatternError::TooComplex { path } => path,
        }
    }
}

fn at(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!(" at `{path}`")
    }
}

/// An event that is not a JSON object, reported with the byte offset where reading stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid event JSON at byte {offset}: {message}")]
pub struct EventError {
    pub offset: usize,
    pub message: &'static str,
}
