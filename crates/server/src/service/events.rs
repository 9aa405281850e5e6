//! Accepted events, as stored: whether processing has finished with them.

use vigil_store::EventRecord;

use super::ServiceError;
use crate::access::{Denied, Principal};
use crate::AppState;

/// An event `who` may see: it belongs to the Appcode its incident gets (its own, else its
/// host's), the same answer processing gives.
pub async fn show(
    state: &AppState,
    who: &Principal,
    id: &str,
) -> Result<EventRecord, ServiceError> {
    let not_accepted = || Denied::Hidden(format!("event with id `{id}` was accepted"));
    let record = state.store.event(id).await?.ok_or_else(not_accepted)?;
    if who.scope.is_some() {
        let facts = state.ownership.facts_of(&record.event);
        if !who.sees(&state.ownership, facts.appcode.as_deref()) {
            return Err(not_accepted().into());
        }
    }
    Ok(record)
}
