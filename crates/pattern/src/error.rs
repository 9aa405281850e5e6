use std::fmt;

/// A pattern that cannot be compiled. `path` is the dotted field path where the problem is
/// (empty at the top level); `message` says why, in AWS EventBridge's wording where it has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PatternError {
    pub path: String,
    pub message: String,
}

impl PatternError {
    pub(crate) fn new(path: &[Box<str>], message: impl Into<String>) -> Self {
        PatternError {
            path: path.join("."),
            message: message.into(),
        }
    }
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "invalid pattern: {}", self.message)
        } else {
            write!(f, "invalid pattern at `{}`: {}", self.path, self.message)
        }
    }
}

/// An event that is not a JSON object, reported with the byte offset where reading stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid event JSON at byte {offset}: {message}")]
pub struct EventError {
    pub offset: usize,
    pub message: &'static str,
}
