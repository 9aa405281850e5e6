//! The application tree as a caller may see it: its nodes with the owners they inherit,
//! one node in full, and the export.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vigil_ownership::{export_csv, export_toml, AppNode, Owners};

use super::ServiceError;
use crate::access::Principal;
use crate::AppState;

/// A node of the tree with the people it inherits and the hosts bound to it directly.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppSummary {
    pub node: AppNode,
    pub inherited: Option<Owners>,
    /// Hosts bound to this node itself (not to its children).
    pub hosts: Vec<String>,
    /// Hosts bound anywhere in its subtree.
    pub subtree_hosts: usize,
}

/// The nodes `who` may see, in tree order (parents before children).
pub fn overview(state: &AppState, who: &Principal) -> Vec<AppSummary> {
    let inner = state.ownership.read();
    let bindings = inner.hosts.bindings();
    inner
        .tree
        .nodes()
        .into_iter()
        .filter(|n| {
            who.scope
                .as_deref()
                .is_none_or(|scope| inner.tree.is_within(&n.appcode, scope))
        })
        .map(|node| AppSummary {
            inherited: inner.tree.owners_of(&node.appcode),
            hosts: bindings
                .iter()
                .filter(|(_, code)| code.as_str() == node.appcode.as_str())
                .map(|(name, _)| name.to_string())
                .collect(),
            subtree_hosts: inner.hosts.hosts_in(&node.appcode, &inner.tree).len(),
            node: node.clone(),
        })
        .collect()
}

/// Hosts bound to no application: only an unscoped caller sees them.
pub fn unbound_hosts<'a>(state: &AppState, who: &Principal, names: &[&'a str]) -> Vec<&'a str> {
    if who.scope.is_some() {
        return Vec::new();
    }
    let inner = state.ownership.read();
    names
        .iter()
        .copied()
        .filter(|name| inner.hosts.appcode_of(name).is_none())
        .collect()
}

/// One node in full: where it sits, who it inherits and who escalation reaches.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppDetail {
    pub node: AppNode,
    pub inherited: Option<Owners>,
    pub children: Vec<String>,
    /// From the parent up to the root.
    pub ancestors: Vec<String>,
    /// Hosts bound anywhere in its subtree.
    pub hosts: Vec<String>,
    pub escalation: Vec<Owners>,
}

pub fn detail(state: &AppState, who: &Principal, code: &str) -> Result<AppDetail, ServiceError> {
    who.check_app(&state.ownership, code)?;
    let inner = state.ownership.read();
    let node = inner
        .tree
        .get(code)
        .cloned()
        .ok_or_else(|| ServiceError::NotFound(format!("no application `{code}`")))?;
    let codes = |nodes: Vec<&AppNode>| nodes.iter().map(|n| n.appcode.to_string()).collect();
    Ok(AppDetail {
        inherited: inner.tree.owners_of(code),
        children: codes(inner.tree.children(code)),
        ancestors: codes(inner.tree.ancestors(code)),
        hosts: inner
            .hosts
            .hosts_in(code, &inner.tree)
            .into_iter()
            .map(str::to_string)
            .collect(),
        escalation: inner.tree.escalation_chain(code),
        node,
    })
}

/// The two formats the tree is exported in (and imported from).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    #[default]
    Toml,
    Csv,
}

/// `?format=toml|csv`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    #[serde(default)]
    #[param(inline)]
    pub format: ExportFormat,
}

/// The tree and its bindings as a document `vigil app import` reads back: a scoped caller
/// gets its own subtree only. Returns the content type and the text.
pub fn export(state: &AppState, who: &Principal, format: ExportFormat) -> (&'static str, String) {
    let inner = state.ownership.read();
    let scope = who.scope.as_deref();
    match format {
        ExportFormat::Toml => (
            "application/toml",
            export_toml(&inner.tree, &inner.hosts, scope),
        ),
        ExportFormat::Csv => {
            let csv = export_csv(&inner.tree, &inner.hosts, scope);
            ("text/csv", format!("{}\n{}", csv.apps, csv.hosts))
        }
    }
}
