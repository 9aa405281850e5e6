//! Host → Appcode bindings, binding rules, and the owner lookup for a host.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::error::{OwnershipError, Result};
use crate::{Appcode, Owners, Tree};

/// Which application each host belongs to.
///
/// A host points at an Appcode, not at a position in the tree, so moving or re-parenting
/// nodes never touches the bindings: the host follows its application and is routed to
/// whatever owners the application inherits afterwards.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostIndex {
    by_host: HashMap<String, Appcode>,
    // Reverse index so `hosts_in` costs the subtree's hosts, not all 40,000.
    by_app: HashMap<Appcode, BTreeSet<String>>,
}

impl HostIndex {
    pub fn new() -> HostIndex {
        HostIndex::default()
    }

    /// Binds `host` to `appcode`, which must be in `tree`; a host has one Appcode, so this
    /// replaces an earlier binding. Returns the previous Appcode, if any.
    pub fn bind(&mut self, tree: &Tree, host: &str, appcode: &str) -> Result<Option<Appcode>> {
        validate_host(host)?;
        let code = tree
            .get(appcode)
            .map(|node| node.appcode.clone())
            .ok_or_else(|| OwnershipError::UnknownAppcode(appcode.to_string()))?;
        self.by_app
            .entry(code.clone())
            .or_default()
            .insert(host.to_string());
        let previous = self.by_host.insert(host.to_string(), code.clone());
        if let Some(old) = previous.as_ref().filter(|old| **old != code) {
            self.forget_reverse(old, host);
        }
        Ok(previous)
    }

    /// Drops the binding of `host`; returns the Appcode it had.
    pub fn unbind(&mut self, host: &str) -> Option<Appcode> {
        let old = self.by_host.remove(host)?;
        self.forget_reverse(&old, host);
        Some(old)
    }

    pub fn appcode_of(&self, host: &str) -> Option<&Appcode> {
        self.by_host.get(host)
    }

    /// Hosts bound to `scope` or anywhere below it, grouped by Appcode in
    /// [`Tree::subtree`] order, sorted by name within an Appcode.
    pub fn hosts_in(&self, scope: &str, tree: &Tree) -> Vec<&str> {
        tree.subtree(scope)
            .iter()
            .filter_map(|code| self.by_app.get(code))
            .flatten()
            .map(String::as_str)
            .collect()
    }

    /// Every binding, sorted by host name.
    pub fn bindings(&self) -> Vec<(&str, &Appcode)> {
        let mut all: Vec<(&str, &Appcode)> = self
            .by_host
            .iter()
            .map(|(host, code)| (host.as_str(), code))
            .collect();
        all.sort_unstable();
        all
    }

    pub fn len(&self) -> usize {
        self.by_host.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_host.is_empty()
    }

    fn forget_reverse(&mut self, code: &Appcode, host: &str) {
        if let Some(hosts) = self.by_app.get_mut(code) {
            hosts.remove(host);
            if hosts.is_empty() {
                self.by_app.remove(code);
            }
        }
    }
}

/// Who is responsible for `host`: the owners its Appcode inherits. `None` when the host is
/// not bound, or bound to an Appcode since removed from the tree.
///
/// Two hash lookups plus a walk up the (shallow) tree: no precomputation to keep in sync.
pub fn owners_for_host(tree: &Tree, hosts: &HostIndex, host: &str) -> Option<Owners> {
    tree.owners_of(hosts.appcode_of(host)?)
}

/// Looser than `vigil_core::valid_host_name` on purpose: a binding also names hosts that
/// are never enrolled but appear in alarms (`instance="10.0.0.5:9100"`), so only what
/// cannot be a key in a file or a message is refused.
fn validate_host(host: &str) -> Result<()> {
    let reason = if host.is_empty() {
        "it is empty"
    } else if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        "it contains whitespace or a control character"
    } else {
        return Ok(());
    };
    Err(OwnershipError::InvalidHost {
        host: host.to_string(),
        reason: reason.to_string(),
    })
}

/// Binds hosts that are not listed explicitly: a host matches when every condition given
/// holds — its name matches `host_glob` (`*` = any run of characters, case-sensitive) and
/// it carries the label `(key, value)`. A rule with neither condition matches every host:
/// put it last as the default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_glob: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<(String, String)>,
    pub appcode: Appcode,
}

impl BindingRule {
    pub fn matches(&self, host: &str, labels: &BTreeMap<String, String>) -> bool {
        let name_ok = self
            .host_glob
            .as_deref()
            .is_none_or(|glob| glob_match(glob, host));
        let label_ok = self
            .label
            .as_ref()
            .is_none_or(|(key, value)| labels.get(key) == Some(value));
        name_ok && label_ok
    }
}

/// The Appcode of the first rule that matches the host, in order.
pub fn bind_by_rules(
    rules: &[BindingRule],
    host: &str,
    labels: &BTreeMap<String, String>,
) -> Option<Appcode> {
    rules
        .iter()
        .find(|rule| rule.matches(host, labels))
        .map(|rule| rule.appcode.clone())
}

/// `*`-only glob. Greedy with a single backtrack point (the last `*`), which is enough
/// because a later `*` can absorb anything an earlier one would: linear-ish, no recursion.
fn glob_match(glob: &str, text: &str) -> bool {
    let pattern: Vec<char> = glob.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star_p, star_t)) = star {
            // Let the last `*` swallow one more character and retry from there.
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AppNode;

    fn code(s: &str) -> Appcode {
        Appcode::parse(s).unwrap()
    }

    #[test]
    fn glob() {
        assert!(glob_match("web-*", "web-01"));
        assert!(glob_match("web-*", "web-"));
        assert!(!glob_match("web-*", "db-01"));
        assert!(glob_match("*-prod-*", "api-prod-3"));
        assert!(!glob_match("*-prod-*", "api-stage-3"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "aXbYbZc"));
        assert!(!glob_match("a*b*c", "aXbYbZ"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
        assert!(!glob_match("Web-*", "web-01"));
    }

    #[test]
    fn first_matching_rule_wins() {
        let labels: BTreeMap<String, String> = [("team".to_string(), "pay".to_string())].into();
        let rules = vec![
            BindingRule {
                host_glob: Some("web-*".into()),
                label: Some(("team".into(), "search".into())),
                appcode: code("search_web"),
            },
            BindingRule {
                host_glob: None,
                label: Some(("team".into(), "pay".into())),
                appcode: code("payments"),
            },
            BindingRule {
                host_glob: Some("web-*".into()),
                label: None,
                appcode: code("web_generic"),
            },
            BindingRule {
                host_glob: None,
                label: None,
                appcode: code("unassigned"),
            },
        ];
        assert_eq!(
            bind_by_rules(&rules, "web-1", &labels),
            Some(code("payments"))
        );
        assert_eq!(
            bind_by_rules(&rules, "web-1", &BTreeMap::new()),
            Some(code("web_generic"))
        );
        assert_eq!(
            bind_by_rules(&rules, "db-1", &BTreeMap::new()),
            Some(code("unassigned"))
        );
        assert_eq!(bind_by_rules(&rules[..3], "db-1", &BTreeMap::new()), None);
    }

    #[test]
    fn rules_deserialize_strictly() {
        #[derive(Deserialize)]
        struct File {
            rules: Vec<BindingRule>,
        }
        let file: File = toml::from_str(
            "[[rules]]\nhost_glob = \"web-*\"\nlabel = [\"env\", \"prod\"]\nappcode = \"web\"\n",
        )
        .unwrap();
        assert_eq!(file.rules[0].label, Some(("env".into(), "prod".into())));
        assert!(
            toml::from_str::<File>("[[rules]]\nhostglob = \"x\"\nappcode = \"web\"\n").is_err()
        );
    }

    #[test]
    fn rebinding_moves_the_host_and_validates() {
        let mut tree = Tree::new();
        tree.add(AppNode::new(code("aa"), "A", "app")).unwrap();
        tree.add(AppNode::new(code("bb"), "B", "app")).unwrap();
        let mut hosts = HostIndex::new();
        assert_eq!(hosts.bind(&tree, "h1", "aa").unwrap(), None);
        assert_eq!(hosts.bind(&tree, "h1", "bb").unwrap(), Some(code("aa")));
        assert!(hosts.hosts_in("aa", &tree).is_empty());
        assert_eq!(hosts.hosts_in("bb", &tree), ["h1"]);
        assert!(matches!(
            hosts.bind(&tree, "h2", "zz"),
            Err(OwnershipError::UnknownAppcode(_))
        ));
        assert!(matches!(
            hosts.bind(&tree, "h 2", "aa"),
            Err(OwnershipError::InvalidHost { .. })
        ));
        assert_eq!(hosts.unbind("h1"), Some(code("bb")));
        assert!(hosts.is_empty() && hosts.hosts_in("bb", &tree).is_empty());
    }

    #[test]
    fn removed_appcode_has_no_owners() {
        let mut tree = Tree::new();
        let mut node = AppNode::new(code("aa"), "A", "app");
        node.owners = vec!["alice".into()];
        tree.add(node).unwrap();
        let mut hosts = HostIndex::new();
        hosts.bind(&tree, "h1", "aa").unwrap();
        assert_eq!(
            owners_for_host(&tree, &hosts, "h1").unwrap().owners,
            ["alice"]
        );
        tree.remove("aa").unwrap();
        assert!(owners_for_host(&tree, &hosts, "h1").is_none());
        assert!(owners_for_host(&tree, &hosts, "unknown").is_none());
    }
}
