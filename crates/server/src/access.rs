//! Who is asking, and what they may see and change: the one access rule of the token API
//! and the web UI alike. Authentication (a token, a session cookie) yields a [`Principal`];
//! every handler asks it, never the tree or a scope string directly.
//!
//! The rule: an unscoped principal sees everything. A principal scoped to an Appcode sees
//! only what belongs to that Appcode's subtree — and nothing that belongs to no application.
//! Whatever it may not see answers 404, exactly as if it did not exist, so a scoped token
//! cannot even learn which names exist elsewhere. What needs the whole organisation
//! (importing the tree, the server's metrics) answers 403 to a scoped principal.

use crate::ownership::Ownership;

/// The authenticated caller, put in request extensions for handlers.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The token's name (`admin`, `host:web-01`, a scoped token's name): timelines and
    /// approvals name it.
    pub name: String,
    pub role: Role,
    /// The Appcode whose subtree this caller is limited to; `None` sees everything.
    pub scope: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Admin,
    /// A host's agent: may only use `/api/v1/agent/…`, as itself.
    Host(String),
}

/// Why a principal may not do something: 404 for what lies outside its subtree, 403 for
/// what needs a wider token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// Outside the caller's subtree (or does not exist): `what` names it, e.g.
    /// "application `PAY`".
    #[error("no {0}")]
    Hidden(String),
    #[error("{0}")]
    Forbidden(String),
}

impl Principal {
    /// Whether this principal may see something that belongs to `appcode`.
    pub fn sees(&self, ownership: &Ownership, appcode: Option<&str>) -> bool {
        match (self.scope.as_deref(), appcode) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(scope), Some(appcode)) => ownership.read().tree.is_within(appcode, scope),
        }
    }

    /// `Ok` when this principal may see something of `appcode`, else 404 naming `what`.
    pub fn check(
        &self,
        ownership: &Ownership,
        appcode: Option<&str>,
        what: impl FnOnce() -> String,
    ) -> Result<(), Denied> {
        if self.sees(ownership, appcode) {
            Ok(())
        } else {
            Err(Denied::Hidden(what()))
        }
    }

    /// `Ok` when the application exists and lies inside this principal's subtree.
    pub fn check_app(&self, ownership: &Ownership, appcode: &str) -> Result<(), Denied> {
        let exists = ownership.read().tree.get(appcode).is_some();
        if exists && self.sees(ownership, Some(appcode)) {
            Ok(())
        } else {
            Err(Denied::Hidden(format!("application `{appcode}`")))
        }
    }

    /// The Appcodes a list query is limited to: `None` for an unscoped principal.
    pub fn appcodes(&self, ownership: &Ownership) -> Option<Vec<String>> {
        self.scope.as_deref().map(|scope| ownership.subtree(scope))
    }

    /// `Ok` for an unscoped principal; a scoped one is refused `action` (403).
    pub fn require_unscoped(&self, action: &str) -> Result<(), Denied> {
        match self.scope {
            None => Ok(()),
            Some(_) => Err(Denied::Forbidden(format!(
                "{action} needs an unscoped token; this one is limited to an application's subtree"
            ))),
        }
    }

    /// Where this principal may put a node of the tree: under a parent it sees, and at
    /// the root only when unscoped.
    pub fn check_parent(&self, ownership: &Ownership, parent: Option<&str>) -> Result<(), Denied> {
        match (&self.scope, parent) {
            (None, _) => Ok(()),
            (Some(_), None) => Err(Denied::Forbidden(
                "a scoped token cannot place a node at the root".into(),
            )),
            (Some(_), Some(parent)) => self.check_app(ownership, parent),
        }
    }

    /// Whether this principal may move node `code` under `parent`: both inside its
    /// subtree, and never the root of its own scope (that would move it out of reach).
    pub fn check_move(
        &self,
        ownership: &Ownership,
        code: &str,
        parent: Option<&str>,
    ) -> Result<(), Denied> {
        self.check_app(ownership, code)?;
        if self.scope.as_deref() == Some(code) {
            return Err(Denied::Forbidden(
                "a scoped token cannot move its own scope".into(),
            ));
        }
        self.check_parent(ownership, parent)
    }

    /// Whether this principal may hand out a token limited to `wanted` (`None`: unscoped):
    /// its own scope or narrower (403 for unscoped, 404 for a scope outside its subtree).
    pub fn check_grant(&self, ownership: &Ownership, wanted: Option<&str>) -> Result<(), Denied> {
        match (self.scope.as_deref(), wanted) {
            (None, _) => Ok(()),
            (Some(_), None) => Err(Denied::Forbidden(
                "a scoped token cannot create an unscoped token".into(),
            )),
            // Outside its subtree, a wider scope included: as if there were no such
            // application, like every other name beyond its reach.
            (Some(_), Some(wanted)) if !self.sees(ownership, Some(wanted)) => {
                Err(Denied::Hidden(format!("application `{wanted}`")))
            }
            _ => Ok(()),
        }
    }
}
