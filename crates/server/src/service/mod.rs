//! What the token API and the web UI both do with vigil's data, each function asking the
//! one access rule ([`crate::access`]) first. Handlers only translate: query strings and
//! bodies in, JSON out. The UI adds what a page needs (open incidents per host, the
//! server's clock) on top of these answers, never its own queries.

pub mod alarms;
pub mod apps;
pub mod events;
pub mod hosts;
pub mod incidents;
pub mod status;

use vigil_store::StoreError;

use crate::access::Denied;

/// Why a request could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Denied(#[from] Denied),
    /// Does not exist: the message names what was looked for.
    #[error("{0}")]
    NotFound(String),
    /// The request itself is wrong (a filter value, a limit): the message says how.
    #[error("{0}")]
    Invalid(String),
    /// vigil's own fault.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A text filter as query strings give it: absent and empty both mean "any".
pub(crate) fn given(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}
