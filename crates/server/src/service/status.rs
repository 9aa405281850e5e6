//! How the server is doing: whether processing keeps up with what is accepted.

use serde::Serialize;
use utoipa::ToSchema;
use vigil_core::Timestamp;

use super::ServiceError;
use crate::AppState;

/// Past this age of its oldest waiting event, processing is said to be behind (the UI
/// shows a banner, `vigil status` warns).
pub const BEHIND_AFTER_SECONDS: f64 = 10.0;

#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    pub version: String,
    pub processing: Processing,
}

/// Events accepted but not yet turned into incidents.
#[derive(Debug, Serialize, ToSchema)]
pub struct Processing {
    /// Events waiting.
    pub backlog: u64,
    /// How long the oldest waiting event has waited; 0 when none waits.
    pub lag_seconds: f64,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub oldest_accepted_at: Option<Timestamp>,
    /// Whether the oldest waiting event has waited longer than 10 s.
    pub behind: bool,
}

impl Processing {
    pub fn of(backlog: vigil_store::Backlog, now: Timestamp) -> Processing {
        let lag_seconds = backlog
            .oldest_accepted_at
            .map(|oldest| ((now - oldest).num_milliseconds().max(0) as f64) / 1000.0)
            .unwrap_or(0.0);
        Processing {
            backlog: backlog.events,
            lag_seconds,
            oldest_accepted_at: backlog.oldest_accepted_at,
            behind: lag_seconds > BEHIND_AFTER_SECONDS,
        }
    }
}

pub async fn status(state: &AppState) -> Result<Status, ServiceError> {
    let backlog = state.store.backlog().await?;
    Ok(Status {
        version: env!("CARGO_PKG_VERSION").to_string(),
        processing: Processing::of(backlog, crate::now()),
    })
}
