//! The application tree: [`AppNode`]s indexed by [`Appcode`], with owner inheritance.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::error::{OwnershipError, Result};
use crate::Appcode;

/// One business unit, department, application… in the tree.
///
/// People and channels are opaque identifiers (user names, e-mail addresses, team or
/// channel handles): this crate only stores and inherits them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppNode {
    pub appcode: Appcode,
    /// Display name; free to change with [`Tree::rename`], unlike the Appcode.
    pub name: String,
    /// Free text: `business_unit`, `department`, `application`, …
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Appcode>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub oncall: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
}

impl AppNode {
    /// A root node without people; set the public fields for the rest.
    pub fn new(appcode: Appcode, name: impl Into<String>, kind: impl Into<String>) -> AppNode {
        AppNode {
            appcode,
            name: name.into(),
            kind: kind.into(),
            parent: None,
            owners: Vec::new(),
            approvers: Vec::new(),
            oncall: Vec::new(),
            channels: Vec::new(),
        }
    }
}

/// The people responsible for a node, each list inherited from the nearest
/// ancestor-or-self that has a non-empty one.
///
/// When no node up to the root has a list, it is empty and its `*_from` is the node asked
/// about: that is where the operator should add people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Owners {
    pub owners: Vec<String>,
    pub approvers: Vec<String>,
    pub oncall: Vec<String>,
    /// Where `owners` came from.
    pub from: Appcode,
    /// Where `approvers` came from.
    pub approvers_from: Appcode,
    /// Where `oncall` came from.
    pub oncall_from: Appcode,
}

impl Owners {
    /// Nobody at all: nothing to page or escalate to.
    pub fn is_empty(&self) -> bool {
        self.owners.is_empty() && self.approvers.is_empty() && self.oncall.is_empty()
    }

    fn same_people(&self, other: &Owners) -> bool {
        self.owners == other.owners
            && self.approvers == other.approvers
            && self.oncall == other.oncall
    }
}

/// The in-memory application tree.
///
/// Invariants, kept by every method: each parent exists; there is no cycle; an Appcode is
/// unique and, once removed (or [retired](Tree::retire)), never accepted again. Appcodes
/// cannot be renamed — [`Tree::rename`] changes the display name only — so everything
/// that refers to a node (hosts, alarms, incidents) stays valid when the tree is
/// reorganised with [`Tree::move_node`].
#[derive(Debug, Clone, Default)]
pub struct Tree {
    nodes: HashMap<Appcode, AppNode>,
    // Sorted sets make every listing and export deterministic.
    children: HashMap<Appcode, BTreeSet<Appcode>>,
    roots: BTreeSet<Appcode>,
    retired: BTreeSet<Appcode>,
}

impl Tree {
    pub fn new() -> Tree {
        Tree::default()
    }

    /// Adds a node under an existing parent (or as a root). Refuses an Appcode that exists
    /// or was ever removed, and invalid names or people.
    pub fn add(&mut self, node: AppNode) -> Result<()> {
        if self.nodes.contains_key(&node.appcode) {
            return Err(OwnershipError::AlreadyExists(node.appcode));
        }
        if self.retired.contains(&node.appcode) {
            return Err(OwnershipError::Retired(node.appcode));
        }
        if let Some(parent) = &node.parent {
            if !self.nodes.contains_key(parent) {
                return Err(OwnershipError::UnknownParent {
                    appcode: node.appcode,
                    parent: parent.to_string(),
                });
            }
        }
        validate_text(&node.appcode, "name", &node.name, true)?;
        validate_text(&node.appcode, "kind", &node.kind, false)?;
        validate_people(&node.appcode, "owners", &node.owners)?;
        validate_people(&node.appcode, "approvers", &node.approvers)?;
        validate_people(&node.appcode, "oncall", &node.oncall)?;
        validate_people(&node.appcode, "channels", &node.channels)?;

        match &node.parent {
            Some(parent) => self
                .children
                .entry(parent.clone())
                .or_default()
                .insert(node.appcode.clone()),
            None => self.roots.insert(node.appcode.clone()),
        };
        self.nodes.insert(node.appcode.clone(), node);
        Ok(())
    }

    /// Changes the display name. The Appcode itself can never change.
    pub fn rename(&mut self, appcode: &str, name: impl Into<String>) -> Result<()> {
        let name = name.into();
        let node = self.node_mut(appcode)?;
        validate_text(&node.appcode, "name", &name, true)?;
        node.name = name;
        Ok(())
    }

    /// Changes the free-text kind.
    pub fn set_kind(&mut self, appcode: &str, kind: impl Into<String>) -> Result<()> {
        let kind = kind.into();
        let node = self.node_mut(appcode)?;
        validate_text(&node.appcode, "kind", &kind, false)?;
        node.kind = kind;
        Ok(())
    }

    /// Replaces the node's own people. Empty lists mean "inherit from the parent".
    pub fn set_people(
        &mut self,
        appcode: &str,
        owners: Vec<String>,
        approvers: Vec<String>,
        oncall: Vec<String>,
    ) -> Result<()> {
        let node = self.node_mut(appcode)?;
        validate_people(&node.appcode, "owners", &owners)?;
        validate_people(&node.appcode, "approvers", &approvers)?;
        validate_people(&node.appcode, "oncall", &oncall)?;
        node.owners = owners;
        node.approvers = approvers;
        node.oncall = oncall;
        Ok(())
    }

    /// Replaces the node's notification channels.
    pub fn set_channels(&mut self, appcode: &str, channels: Vec<String>) -> Result<()> {
        let node = self.node_mut(appcode)?;
        validate_people(&node.appcode, "channels", &channels)?;
        node.channels = channels;
        Ok(())
    }

    /// Re-parents a node with its whole subtree (`None` makes it a root). Refuses to move a
    /// node under itself or one of its descendants.
    pub fn move_node(&mut self, appcode: &str, new_parent: Option<&str>) -> Result<()> {
        let node = self
            .nodes
            .get(appcode)
            .ok_or_else(|| OwnershipError::UnknownAppcode(appcode.to_string()))?;
        let code = node.appcode.clone();
        let new_parent = match new_parent {
            Some(parent) => {
                let parent = self
                    .nodes
                    .get(parent)
                    .map(|p| p.appcode.clone())
                    .ok_or_else(|| OwnershipError::UnknownParent {
                        appcode: code.clone(),
                        parent: parent.to_string(),
                    })?;
                if self.is_within(&parent, &code) {
                    return Err(OwnershipError::WouldCycle {
                        appcode: code,
                        new_parent: parent,
                    });
                }
                Some(parent)
            }
            None => None,
        };
        if node.parent == new_parent {
            return Ok(());
        }
        self.detach(&code, node.parent.clone());
        match &new_parent {
            Some(parent) => self
                .children
                .entry(parent.clone())
                .or_default()
                .insert(code.clone()),
            None => self.roots.insert(code.clone()),
        };
        if let Some(node) = self.nodes.get_mut(&code) {
            node.parent = new_parent;
        }
        Ok(())
    }

    /// Removes a leaf and retires its Appcode for good. Host bindings to it are the
    /// caller's to move first: [`crate::owners_for_host`] answers `None` for them after.
    pub fn remove(&mut self, appcode: &str) -> Result<AppNode> {
        let node = self
            .nodes
            .get(appcode)
            .ok_or_else(|| OwnershipError::UnknownAppcode(appcode.to_string()))?;
        if let Some(children) = self.children.get(appcode).filter(|c| !c.is_empty()) {
            return Err(OwnershipError::HasChildren {
                appcode: node.appcode.clone(),
                children: join_codes(children.iter()),
            });
        }
        let code = node.appcode.clone();
        self.detach(&code, node.parent.clone());
        self.children.remove(&code);
        self.retired.insert(code.clone());
        self.nodes
            .remove(&code)
            .ok_or(OwnershipError::UnknownAppcode(code.to_string()))
    }

    /// Records an Appcode that was used before (e.g. restored from storage) so it can never
    /// be added again. Returns whether it was newly retired. Refuses a code in use:
    /// [`Tree::remove`] it instead.
    pub fn retire(&mut self, appcode: Appcode) -> Result<bool> {
        if self.nodes.contains_key(&appcode) {
            return Err(OwnershipError::StillInUse(appcode));
        }
        Ok(self.retired.insert(appcode))
    }

    /// Whether the Appcode was removed or retired and therefore can't be used again.
    pub fn is_retired(&self, appcode: &str) -> bool {
        self.retired.contains(appcode)
    }

    /// Every retired Appcode, sorted (to persist next to the tree).
    pub fn retired(&self) -> Vec<&Appcode> {
        self.retired.iter().collect()
    }

    pub fn get(&self, appcode: &str) -> Option<&AppNode> {
        self.nodes.get(appcode)
    }

    /// Direct children, sorted by Appcode.
    pub fn children(&self, appcode: &str) -> Vec<&AppNode> {
        self.children
            .get(appcode)
            .into_iter()
            .flatten()
            .filter_map(|code| self.nodes.get(code))
            .collect()
    }

    /// Nodes without a parent, sorted by Appcode.
    pub fn roots(&self) -> Vec<&AppNode> {
        self.roots
            .iter()
            .filter_map(|code| self.nodes.get(code))
            .collect()
    }

    /// The ancestors of a node, nearest first, without the node itself. Empty for a root or
    /// an unknown Appcode.
    pub fn ancestors(&self, appcode: &str) -> Vec<&AppNode> {
        let mut out = Vec::new();
        let mut next = self.parent_of(appcode);
        while let Some(node) = next {
            out.push(node);
            next = self.parent_of(&node.appcode);
        }
        out
    }

    /// The people responsible for `appcode`: owners, approvers and oncall each from the
    /// nearest ancestor-or-self that has them. `None` for an unknown Appcode.
    pub fn owners_of(&self, appcode: &str) -> Option<Owners> {
        let start = self.nodes.get(appcode)?;
        let (mut owners, mut approvers, mut oncall) = (None, None, None);
        let mut next = Some(start);
        // One walk up a shallow tree, stopping as soon as all three lists are found.
        while let Some(node) = next {
            if owners.is_none() && !node.owners.is_empty() {
                owners = Some(node);
            }
            if approvers.is_none() && !node.approvers.is_empty() {
                approvers = Some(node);
            }
            if oncall.is_none() && !node.oncall.is_empty() {
                oncall = Some(node);
            }
            if owners.is_some() && approvers.is_some() && oncall.is_some() {
                break;
            }
            next = self.parent_of(&node.appcode);
        }
        let from = |found: Option<&AppNode>| found.unwrap_or(start).appcode.clone();
        Some(Owners {
            owners: owners.map(|n| n.owners.clone()).unwrap_or_default(),
            approvers: approvers.map(|n| n.approvers.clone()).unwrap_or_default(),
            oncall: oncall.map(|n| n.oncall.clone()).unwrap_or_default(),
            from: from(owners),
            approvers_from: from(approvers),
            oncall_from: from(oncall),
        })
    }

    /// Whether `appcode` is `scope` or lies below it. False when either is unknown.
    pub fn is_within(&self, appcode: &str, scope: &str) -> bool {
        let mut next = self.nodes.get(appcode);
        while let Some(node) = next {
            if node.appcode == scope {
                return true;
            }
            next = self.parent_of(&node.appcode);
        }
        false
    }

    /// `appcode` and all its descendants, parents before children, siblings sorted. Empty
    /// for an unknown Appcode.
    pub fn subtree(&self, appcode: &str) -> Vec<Appcode> {
        match self.nodes.get(appcode) {
            Some(node) => self
                .preorder(std::iter::once(&node.appcode))
                .map(|n| n.appcode.clone())
                .collect(),
            None => Vec::new(),
        }
    }

    /// Who to escalate to, in order: level 0 is the node's inherited [`Owners`], level 1 its
    /// parent's, and so on to the root. A level with exactly the same people as an earlier
    /// one, or with nobody, is left out.
    pub fn escalation_chain(&self, appcode: &str) -> Vec<Owners> {
        let mut chain: Vec<Owners> = Vec::new();
        let Some(start) = self.nodes.get(appcode) else {
            return chain;
        };
        let levels = std::iter::once(start).chain(self.ancestors(appcode));
        for node in levels {
            let Some(level) = self.owners_of(&node.appcode) else {
                continue;
            };
            if !level.is_empty() && !chain.iter().any(|seen| seen.same_people(&level)) {
                chain.push(level);
            }
        }
        chain
    }

    /// Every node, parents before children, roots and siblings sorted by Appcode: an
    /// order in which the nodes can be re-added to an empty tree.
    pub fn nodes(&self) -> Vec<&AppNode> {
        self.preorder(self.roots.iter()).collect()
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    fn parent_of(&self, appcode: &str) -> Option<&AppNode> {
        let parent = self.nodes.get(appcode)?.parent.as_ref()?;
        self.nodes.get(parent)
    }

    fn node_mut(&mut self, appcode: &str) -> Result<&mut AppNode> {
        self.nodes
            .get_mut(appcode)
            .ok_or_else(|| OwnershipError::UnknownAppcode(appcode.to_string()))
    }

    fn detach(&mut self, code: &Appcode, parent: Option<Appcode>) {
        match parent {
            Some(parent) => {
                if let Some(siblings) = self.children.get_mut(&parent) {
                    siblings.remove(code);
                }
            }
            None => {
                self.roots.remove(code);
            }
        }
    }

    fn preorder<'a>(
        &'a self,
        starts: impl DoubleEndedIterator<Item = &'a Appcode>,
    ) -> impl Iterator<Item = &'a AppNode> {
        // Explicit stack, pushed in reverse so the smallest Appcode comes out first.
        let mut stack: Vec<&Appcode> = starts.rev().collect();
        std::iter::from_fn(move || {
            let code = stack.pop()?;
            if let Some(children) = self.children.get(code) {
                stack.extend(children.iter().rev());
            }
            self.nodes.get(code)
        })
    }
}

pub(crate) fn join_codes<'a>(codes: impl Iterator<Item = &'a Appcode>) -> String {
    codes.map(Appcode::as_str).collect::<Vec<_>>().join(", ")
}

fn validate_text(appcode: &Appcode, field: &'static str, text: &str, required: bool) -> Result<()> {
    let reason = if required && text.trim().is_empty() {
        Some("it is empty; give it a readable name".to_string())
    } else if text.chars().any(char::is_control) {
        Some("it contains a control character (newline, tab…); keep it on one line".to_string())
    } else {
        None
    };
    match reason {
        Some(reason) => Err(OwnershipError::InvalidField {
            appcode: appcode.clone(),
            field,
            reason,
        }),
        None => Ok(()),
    }
}

/// People and channels are identifiers, not prose: they must survive the `;`-separated CSV
/// lists and be comparable as they are, so no spaces around them, no `;`, no control
/// characters.
fn validate_people(appcode: &Appcode, field: &'static str, people: &[String]) -> Result<()> {
    for person in people {
        let reason = if person.is_empty() {
            "an entry is empty; remove it"
        } else if person.trim() != person {
            "an entry has spaces around it; remove them"
        } else if person.contains(';') {
            "an entry contains ';', which separates list entries in CSV; split it"
        } else if person.chars().any(char::is_control) {
            "an entry contains a control character"
        } else {
            continue;
        };
        return Err(OwnershipError::InvalidField {
            appcode: appcode.clone(),
            field,
            reason: format!("{reason} ({person:?})"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> Appcode {
        Appcode::parse(s).unwrap()
    }

    fn node(c: &str, parent: Option<&str>) -> AppNode {
        AppNode {
            parent: parent.map(code),
            ..AppNode::new(code(c), c.to_uppercase(), "application")
        }
    }

    fn people(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    /// travel → flights → {search_api, booking}; travel → hotels.
    fn sample() -> Tree {
        let mut tree = Tree::new();
        tree.add(AppNode {
            owners: people(&["ceo"]),
            approvers: people(&["cfo"]),
            oncall: people(&["noc"]),
            ..node("travel", None)
        })
        .unwrap();
        tree.add(AppNode {
            owners: people(&["flights_lead"]),
            ..node("flights", Some("travel"))
        })
        .unwrap();
        tree.add(AppNode {
            oncall: people(&["search_oncall"]),
            ..node("search_api", Some("flights"))
        })
        .unwrap();
        tree.add(node("booking", Some("flights"))).unwrap();
        tree.add(node("hotels", Some("travel"))).unwrap();
        tree
    }

    #[test]
    fn parent_must_exist() {
        let mut tree = Tree::new();
        let err = tree.add(node("orphan", Some("nowhere"))).unwrap_err();
        assert!(err.to_string().contains("parent `nowhere`"), "{err}");
        assert!(tree.is_empty());
    }

    #[test]
    fn lists_are_deterministic() {
        let tree = sample();
        let codes: Vec<&str> = tree.nodes().iter().map(|n| n.appcode.as_str()).collect();
        assert_eq!(
            codes,
            ["travel", "flights", "booking", "search_api", "hotels"]
        );
        let kids: Vec<&str> = tree
            .children("flights")
            .iter()
            .map(|n| n.appcode.as_str())
            .collect();
        assert_eq!(kids, ["booking", "search_api"]);
        assert_eq!(
            tree.subtree("flights"),
            [code("flights"), code("booking"), code("search_api")]
        );
        assert!(tree.subtree("nope").is_empty());
    }

    #[test]
    fn ancestors_nearest_first() {
        let tree = sample();
        let up: Vec<&str> = tree
            .ancestors("search_api")
            .iter()
            .map(|n| n.appcode.as_str())
            .collect();
        assert_eq!(up, ["flights", "travel"]);
        assert!(tree.ancestors("travel").is_empty());
    }

    #[test]
    fn each_list_inherits_separately() {
        let tree = sample();
        let o = tree.owners_of("search_api").unwrap();
        assert_eq!(o.owners, ["flights_lead"]);
        assert_eq!(o.from, "flights");
        assert_eq!(o.oncall, ["search_oncall"]);
        assert_eq!(o.oncall_from, "search_api");
        assert_eq!(o.approvers, ["cfo"]);
        assert_eq!(o.approvers_from, "travel");
        assert!(tree.owners_of("nope").is_none());
    }

    #[test]
    fn nobody_anywhere_points_at_the_node_itself() {
        let mut tree = Tree::new();
        tree.add(node("lonely", None)).unwrap();
        let o = tree.owners_of("lonely").unwrap();
        assert!(o.is_empty());
        assert_eq!(o.from, "lonely");
        assert!(tree.escalation_chain("lonely").is_empty());
    }

    #[test]
    fn people_are_validated() {
        let mut tree = sample();
        let err = tree
            .set_people("booking", people(&["a;b"]), vec![], vec![])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("owners for `booking`") && err.contains("';'"),
            "{err}"
        );
        let err = tree.rename("booking", "  ").unwrap_err().to_string();
        assert!(err.contains("name for `booking`"), "{err}");
        assert_eq!(tree.get("booking").unwrap().name, "BOOKING");
    }

    #[test]
    fn remove_requires_a_leaf_and_retires() {
        let mut tree = sample();
        let err = tree.remove("flights").unwrap_err().to_string();
        assert!(err.contains("booking, search_api"), "{err}");
        tree.remove("hotels").unwrap();
        assert!(tree.is_retired("hotels"));
        assert_eq!(tree.children("travel").len(), 1);
        assert_eq!(tree.retired(), [&code("hotels")]);
    }

    #[test]
    fn retire_restores_history() {
        let mut tree = sample();
        assert!(tree.retire(code("old_app")).unwrap());
        assert!(!tree.retire(code("old_app")).unwrap());
        assert!(matches!(
            tree.add(node("old_app", None)),
            Err(OwnershipError::Retired(_))
        ));
        assert!(matches!(
            tree.retire(code("travel")),
            Err(OwnershipError::StillInUse(_))
        ));
    }

    #[test]
    fn move_to_root_and_back() {
        let mut tree = sample();
        tree.move_node("flights", None).unwrap();
        assert_eq!(tree.roots().len(), 2);
        assert!(!tree.is_within("search_api", "travel"));
        tree.move_node("flights", Some("travel")).unwrap();
        assert_eq!(tree.roots().len(), 1);
        assert!(tree.is_within("search_api", "travel"));
        let err = tree.move_node("flights", Some("nowhere")).unwrap_err();
        assert!(matches!(err, OwnershipError::UnknownParent { .. }));
    }
}
