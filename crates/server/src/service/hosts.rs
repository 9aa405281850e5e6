//! Hosts: the list with its lifecycle filter, and one host with its last metrics.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vigil_core::{Host, HostLifecycle, Timestamp};

use super::ServiceError;
use crate::access::{Denied, Principal};
use crate::AppState;

/// A host as the API and the UI show it: what is known of it, and where it stands now.
#[derive(Debug, Serialize, ToSchema)]
pub struct HostView {
    #[serde(flatten)]
    pub host: Host,
    /// declared, enrolled, reporting, silent or revoked.
    pub state: HostLifecycle,
}

impl HostView {
    pub fn of(host: Host, now: Timestamp) -> HostView {
        let state = host.lifecycle(now);
        HostView { host, state }
    }
}

/// `?state=`: only hosts in that lifecycle state.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HostQuery {
    pub state: Option<HostLifecycle>,
}

/// The application a host belongs to: its enrollment's, else its binding or binding rule.
pub fn appcode_of(state: &AppState, host: &Host) -> Option<String> {
    host.appcode
        .clone()
        .or_else(|| state.ownership.appcode_for_host(&host.name, &host.labels))
}

fn no_host(name: &str) -> impl FnOnce() -> String + '_ {
    move || format!("host named `{name}`")
}

pub async fn list(
    state: &AppState,
    who: &Principal,
    query: &HostQuery,
) -> Result<Vec<HostView>, ServiceError> {
    let now = crate::now();
    Ok(state
        .store
        .hosts()
        .await?
        .into_iter()
        .filter(|h| who.sees(&state.ownership, appcode_of(state, h).as_deref()))
        .map(|h| HostView::of(h, now))
        .filter(|h| query.state.is_none_or(|wanted| h.state == wanted))
        .collect())
}

/// A host `who` may see, or 404.
pub async fn visible(state: &AppState, who: &Principal, name: &str) -> Result<Host, ServiceError> {
    let host = state
        .store
        .host(name)
        .await?
        .ok_or_else(|| Denied::Hidden(no_host(name)()))?;
    who.check(
        &state.ownership,
        appcode_of(state, &host).as_deref(),
        no_host(name),
    )?;
    Ok(host)
}

/// One host and the last metrics its agent sent (`null` before the first).
#[derive(Debug, Serialize, ToSchema)]
pub struct HostDetail {
    #[serde(flatten)]
    pub host: HostView,
    #[schema(value_type = Option<Object>)]
    pub last_metrics: Option<serde_json::Value>,
}

pub async fn detail(
    state: &AppState,
    who: &Principal,
    name: &str,
) -> Result<HostDetail, ServiceError> {
    let host = visible(state, who, name).await?;
    let last_metrics = state
        .store
        .last_metrics(name)
        .await?
        .and_then(|m| serde_json::from_str(&m).ok());
    Ok(HostDetail {
        host: HostView::of(host, crate::now()),
        last_metrics,
    })
}
