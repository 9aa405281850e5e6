//! The application tree in the server: `vigil-ownership`'s pure model held in memory,
//! loaded from and saved to the store, and the questions the rest of the server asks of
//! it — whose is this, who approves, who is next, is this inside that token's scope.

use std::collections::HashMap;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use vigil_ownership::{
    import, AppEntry, AppNode, Appcode, BindingRule, Document, HostBinding, HostIndex, Origin,
    Owners, Section, Tree,
};
use vigil_store::{Store, StoreError};

pub struct Ownership {
    inner: RwLock<Inner>,
    rules: Vec<BindingRule>,
}

pub struct Inner {
    pub tree: Tree,
    pub hosts: HostIndex,
    /// Enrolled hosts by their other names (an EC2 `InstanceId`): alarms name hosts by
    /// whatever their source knows them by.
    pub aliases: HashMap<String, String>,
}

impl Ownership {
    /// Loads the tree, retired codes and host bindings saved in the store.
    pub async fn load(store: &dyn Store, rules: Vec<BindingRule>) -> Result<Ownership, StoreError> {
        Ok(Ownership {
            inner: RwLock::new(Self::read_store(store).await?),
            rules,
        })
    }

    /// Reads the tree again from the store (another member changed it).
    pub async fn reload(&self, store: &dyn Store) -> Result<(), StoreError> {
        let fresh = Self::read_store(store).await?;
        *self.write() = fresh;
        Ok(())
    }

    async fn read_store(store: &dyn Store) -> Result<Inner, StoreError> {
        let mut document = Document::default();
        let apps = store.apps().await?;
        let bindings = store.host_bindings().await?;
        for (entry, (appcode, definition, retired)) in apps.into_iter().enumerate() {
            if retired {
                match Appcode::parse(&appcode) {
                    Ok(code) => document.retired.push(code),
                    Err(e) => {
                        tracing::error!(appcode, error = %e, "stored retired appcode unreadable")
                    }
                }
                continue;
            }
            match serde_json::from_str::<AppNode>(&definition) {
                Ok(node) => document.apps.push(AppEntry {
                    origin: Origin {
                        section: Section::Apps,
                        entry,
                        line: None,
                    },
                    node,
                    channels_given: true,
                }),
                Err(e) => {
                    tracing::error!(appcode, error = %e, "stored application unreadable; skipped")
                }
            }
        }
        let aliases = store
            .hosts()
            .await?
            .into_iter()
            .filter_map(|h| Some((h.instance_id?, h.name)))
            .collect();
        let mut tree = Tree::new();
        let mut hosts = HostIndex::new();
        let known: std::collections::HashSet<String> = document
            .apps
            .iter()
            .map(|a| a.node.appcode.to_string())
            .collect();
        for (entry, (host, appcode)) in bindings.into_iter().enumerate() {
            // A host bound through an agent's config to an application nobody created yet
            // stays bound in the store; the tree only tracks bindings it can route.
            if let (true, Ok(appcode)) = (known.contains(&appcode), Appcode::parse(&appcode)) {
                document.hosts.push((
                    Origin {
                        section: Section::Hosts,
                        entry,
                        line: None,
                    },
                    HostBinding {
                        name: host,
                        appcode,
                    },
                ));
            }
        }
        if let Err(e) = import(&mut tree, &mut hosts, &document) {
            return Err(StoreError::Corrupt(format!(
                "the stored application tree does not load: {e}"
            )));
        }
        Ok(Inner {
            tree,
            hosts,
            aliases,
        })
    }

    pub fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn owners_of(&self, appcode: &str) -> Option<Owners> {
        self.read().tree.owners_of(appcode)
    }

    /// Records another name an enrolled host is known by (its EC2 instance id).
    pub fn add_alias(&self, alias: &str, host: &str) {
        self.write()
            .aliases
            .insert(alias.to_string(), host.to_string());
    }

    /// The enrolled host a name refers to: itself, or the host it is an alias of.
    pub fn host_named(&self, name: &str) -> String {
        self.read()
            .aliases
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_string())
    }

    /// The Appcode a host is bound to (by any of its names), or the first binding rule it
    /// matches.
    pub fn appcode_for_host(
        &self,
        host: &str,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Option<String> {
        let host = self.host_named(host);
        if let Some(code) = self.read().hosts.appcode_of(&host) {
            return Some(code.to_string());
        }
        vigil_ownership::bind_by_rules(&self.rules, &host, labels).map(|c| c.to_string())
    }

    /// What an event says about its alarm, with the host it is about (by the host's
    /// enrolled name, whatever name the alarm used: host name, `InstanceId`, Alertmanager
    /// `instance` or `nodename`) and the Appcode it belongs to: its own, else its host's.
    /// The one answer to "whose is this event", for processing and for access.
    pub fn facts_of(&self, event: &vigil_core::Event) -> vigil_core::AlarmFacts {
        let mut facts = vigil_core::AlarmFacts::from_event(event)
            .unwrap_or_else(|| vigil_core::AlarmFacts::from_other_event(event));
        let named = [facts.host.as_deref(), facts.instance_id.as_deref()]
            .into_iter()
            .flatten()
            .find_map(|name| self.read().aliases.get(name).cloned());
        if let Some(host) = named {
            facts.host = Some(host);
        }
        if facts.appcode.is_none() {
            if let Some(host) = facts.host.clone().or_else(|| facts.instance_id.clone()) {
                facts.appcode = self.appcode_for_host(&host, &facts.labels);
            }
        }
        facts
    }

    /// The Appcodes in a scope's subtree (itself included).
    pub fn subtree(&self, scope: &str) -> Vec<String> {
        self.read()
            .tree
            .subtree(scope)
            .into_iter()
            .map(|c| c.to_string())
            .collect()
    }

    /// Who each escalation level adds: level 1 is the first level up the tree with people
    /// not already told at level 0 (the incident's own owners and on-call), and so on.
    /// Each entry: (the Appcode the people come from, the new people).
    pub fn escalation_targets(&self, appcode: &str) -> Vec<(String, Vec<String>)> {
        let chain = self.read().tree.escalation_chain(appcode);
        let mut told: Vec<String> = Vec::new();
        let mut targets = Vec::new();
        for (index, level) in chain.iter().enumerate() {
            let people: Vec<String> = level
                .owners
                .iter()
                .chain(&level.oncall)
                .filter(|p| !told.contains(p))
                .cloned()
                .collect();
            told.extend(people.iter().cloned());
            if index > 0 && !people.is_empty() {
                targets.push((level.from.to_string(), people));
            }
        }
        targets
    }

    /// Turns playbook recipients into addresses: `owners`, `oncall`, `approvers` and
    /// `escalation` (the next level up) are looked up in the tree; anything else is kept.
    pub fn resolve_recipients(
        &self,
        words: &[String],
        appcode: Option<&str>,
        escalation_level: usize,
    ) -> Vec<String> {
        let owners = appcode.and_then(|a| self.owners_of(a));
        let targets = appcode
            .map(|a| self.escalation_targets(a))
            .unwrap_or_default();
        let mut out: Vec<String> = Vec::new();
        for word in words {
            let found: Vec<String> = match word.as_str() {
                "owners" => owners
                    .as_ref()
                    .map(|o| o.owners.clone())
                    .unwrap_or_default(),
                "oncall" => owners
                    .as_ref()
                    .map(|o| o.oncall.clone())
                    .unwrap_or_default(),
                "approvers" => owners
                    .as_ref()
                    .map(|o| o.approvers.clone())
                    .unwrap_or_default(),
                "escalation" => escalation_level
                    .checked_sub(1)
                    .and_then(|i| targets.get(i))
                    .map(|(_, people)| people.clone())
                    .unwrap_or_default(),
                other => vec![other.to_string()],
            };
            for address in found {
                if !out.contains(&address) {
                    out.push(address);
                }
            }
        }
        out
    }
}

/// Rows to save for a set of nodes: (appcode, JSON).
pub fn node_rows(tree: &Tree, codes: &[&str]) -> Vec<(String, String)> {
    codes
        .iter()
        .filter_map(|code| tree.get(code))
        .filter_map(|node| {
            serde_json::to_string(node)
                .ok()
                .map(|json| (node.appcode.to_string(), json))
        })
        .collect()
}
