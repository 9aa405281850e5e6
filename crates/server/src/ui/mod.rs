//! The web UI: pages and assets embedded in the binary, served at `/` and under `/ui/`.

use axum::Router;

use crate::AppState;

/// Routes for `/` and `/ui/…`; everything else belongs to the API.
pub fn router(state: AppState) -> Router {
    Router::new().with_state(state)
}
