//! Many rules against one event in one pass.
//!
//! Rules compile to clauses (conjunctions of field tests) and every field test on the same
//! path goes into that path's [`FieldIndex`]. Matching walks the event once, visiting only
//! the paths some rule names; each value found is judged by its path's index, which reports
//! the field tests it satisfies. A clause whose positive tests are all satisfied is a
//! candidate, and is confirmed by its `exists: false` tests and, when the event has arrays of
//! objects, by array consistency (all its fields must come from the same array element).

use serde_json::Value;

use crate::condition::{Condition, Leaf};
use crate::flatten;
use crate::index::{FieldIndex, FxMap};
use crate::parse;
use crate::{EventError, PatternError};

/// A position in an event: (array number within this event, element index).
pub(crate) type TrailStep = (u32, u32);

pub(crate) const ROOT: u32 = 0;

/// The field paths rules name, as a tree of key segments, so the event walk can skip any
/// key no rule mentions without looking inside its value.
#[derive(Debug)]
pub(crate) struct PathTree {
    nodes: Vec<PathNode>,
}

#[derive(Debug, Default)]
struct PathNode {
    children: Vec<(Box<[u8]>, u32)>,
    /// Built once a node has many children; small nodes are searched linearly.
    lookup: Option<FxMap<Box<[u8]>, u32>>,
    path: Option<u32>,
}

const LINEAR_CHILDREN: usize = 8;

impl PathTree {
    fn new() -> Self {
        PathTree {
            nodes: vec![PathNode::default()],
        }
    }

    fn intern(&mut self, segments: &[Box<str>], next_path: &mut u32) -> u32 {
        let mut node = ROOT;
        for segment in segments {
            node = match self.child(node, segment.as_bytes()) {
                Some(child) => child,
                None => {
                    let child = self.nodes.len() as u32;
                    self.nodes.push(PathNode::default());
                    let parent = &mut self.nodes[node as usize];
                    parent.children.push((segment.as_bytes().into(), child));
                    if parent.children.len() > LINEAR_CHILDREN {
                        parent.lookup = Some(parent.children.iter().cloned().collect());
                    }
                    child
                }
            };
        }
        let slot = &mut self.nodes[node as usize].path;
        *slot.get_or_insert_with(|| {
            *next_path += 1;
            *next_path - 1
        })
    }

    #[inline]
    fn child(&self, node: u32, segment: &[u8]) -> Option<u32> {
        let node = &self.nodes[node as usize];
        match &node.lookup {
            Some(map) => map.get(segment).copied(),
            None => node
                .children
                .iter()
                .find(|(k, _)| same_bytes(k, segment))
                .map(|(_, c)| *c),
        }
    }

    /// The node an event key leads to; a key with dots descends once per segment, because
    /// `{"a.b": …}` and `{"a": {"b": …}}` name the same field.
    #[inline]
    pub(crate) fn descend(&self, node: u32, key: &[u8]) -> Option<u32> {
        if !key.contains(&b'.') {
            return self.child(node, key);
        }
        key.split(|b| *b == b'.')
            .try_fold(node, |node, segment| self.child(node, segment))
    }

    #[inline]
    pub(crate) fn has_children(&self, node: u32) -> bool {
        !self.nodes[node as usize].children.is_empty()
    }

    #[inline]
    pub(crate) fn path(&self, node: u32) -> Option<u32> {
        self.nodes[node as usize].path
    }
}

/// Equality for short byte strings without a call into `memcmp`.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

#[derive(Debug)]
struct ConjunctInfo {
    clause: u32,
    path: u32,
    /// Satisfied by the field's absence too (`exists: false` among its conditions).
    absent_ok: bool,
    /// Judged only once the rest of its clause matched (see `Matcher::add`); these are its
    /// conditions. Empty for indexed conjuncts.
    deferred: Vec<Condition>,
}

#[derive(Debug)]
struct ClauseInfo {
    rule: u32,
    positive: u32,
    conjuncts: Vec<u32>,
}

/// A compiled set of rules, each identified by a caller's key.
#[derive(Debug)]
pub struct Matcher<K> {
    keys: Vec<K>,
    pub(crate) paths: PathTree,
    fields: Vec<FieldIndex>,
    /// Paths with deferred tests: their values are kept during a walk.
    deferred_paths: Vec<bool>,
    conjuncts: Vec<ConjunctInfo>,
    clauses: Vec<ClauseInfo>,
    /// Clauses with no positive test (`{}` or only `exists: false`), checked on every event.
    always_checked: Vec<u32>,
}

impl<K> Default for Matcher<K> {
    fn default() -> Self {
        Matcher {
            keys: Vec::new(),
            paths: PathTree::new(),
            fields: Vec::new(),
            deferred_paths: Vec::new(),
            conjuncts: Vec::new(),
            clauses: Vec::new(),
            always_checked: Vec::new(),
        }
    }
}

impl<K: Clone> Matcher<K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Compiles `pattern` and adds it under `key`; returns the rule's index (0, 1, 2, …).
    /// A pattern that does not compile leaves the matcher unchanged.
    pub fn add(&mut self, key: K, pattern: &Value) -> Result<usize, PatternError> {
        let clauses = parse::parse(pattern)?;
        let rule = self.keys.len() as u32;
        for clause in clauses {
            let clause_id = self.clauses.len() as u32;
            let mut info = ClauseInfo {
                rule,
                positive: 0,
                conjuncts: Vec::with_capacity(clause.len()),
            };
            // A test that only the scanned operators (anything-but, numeric, wildcard, cidr)
            // can judge is deferred when its clause also has an indexed test: thousands of
            // such rules then cost nothing on events their indexed half already rules out.
            let has_selective = clause
                .iter()
                .any(|c| c.conditions.iter().all(Condition::is_selective));
            for conjunct in clause {
                let mut next_path = self.fields.len() as u32;
                let path = self.paths.intern(&conjunct.path, &mut next_path);
                if path as usize == self.fields.len() {
                    self.fields.push(FieldIndex::default());
                    self.deferred_paths.push(false);
                }
                let id = self.conjuncts.len() as u32;
                let absent_ok = conjunct
                    .conditions
                    .iter()
                    .any(|c| matches!(c, Condition::Exists(false)));
                let defer = has_selective
                    && !absent_ok
                    && !conjunct.conditions.iter().all(Condition::is_selective)
                    && !conjunct
                        .conditions
                        .iter()
                        .any(|c| matches!(c, Condition::Exists(_)));
                let deferred = if defer {
                    self.deferred_paths[path as usize] = true;
                    conjunct.conditions
                } else {
                    for condition in &conjunct.conditions {
                        if !matches!(condition, Condition::Exists(false)) {
                            self.fields[path as usize].add(condition, id);
                        }
                    }
                    Vec::new()
                };
                self.conjuncts.push(ConjunctInfo {
                    clause: clause_id,
                    path,
                    absent_ok,
                    deferred,
                });
                info.positive += u32::from(!absent_ok && !defer);
                info.conjuncts.push(id);
            }
            if info.positive == 0 {
                self.always_checked.push(clause_id);
            }
            self.clauses.push(info);
        }
        self.keys.push(key);
        Ok(rule as usize)
    }

    /// How many rules were added.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key a rule index stands for.
    pub fn key(&self, index: usize) -> Option<&K> {
        self.keys.get(index)
    }

    /// The keys of every rule `event` matches, in the order the rules were added.
    pub fn matches_value(&self, event: &Value) -> Vec<K> {
        let mut state = MatchState::default();
        let mut run = self.begin(&mut state);
        flatten::walk_value(&self.paths, event, &mut run);
        let mut out = Vec::new();
        run.finish(&mut out);
        out.into_iter()
            .map(|index| self.keys[index].clone())
            .collect()
    }

    /// The indexes of every rule the event (JSON text) matches, ascending, into `out`.
    /// Reads the bytes directly and looks inside only the keys some rule names; `state`
    /// holds scratch space reused from one event to the next.
    pub fn matches_json(
        &self,
        event_json: &[u8],
        state: &mut MatchState,
        out: &mut Vec<usize>,
    ) -> Result<(), EventError> {
        out.clear();
        let mut run = self.begin(state);
        flatten::walk_bytes(&self.paths, event_json, &mut run)?;
        run.finish(out);
        Ok(())
    }

    fn begin<'a>(&'a self, state: &'a mut MatchState) -> Run<'a, K> {
        state.prepare(
            self.conjuncts.len(),
            self.clauses.len(),
            self.fields.len(),
            self.keys.len(),
        );
        Run {
            matcher: self,
            state,
            trail: Vec::new(),
        }
    }
}

/// Scratch space for matching, reused across events so matching does not allocate.
#[derive(Debug, Default)]
pub struct MatchState {
    epoch: u32,
    conjunct_seen: Vec<u32>,
    clause_seen: Vec<u32>,
    clause_hits: Vec<u32>,
    path_seen: Vec<u32>,
    rule_seen: Vec<u32>,
    candidates: Vec<u32>,
    /// (conjunct, trail start, trail length) for every value that satisfied a field test.
    hits: Vec<(u32, u32, u32)>,
    trails: Vec<TrailStep>,
    /// Values at paths with deferred tests: (path, value, trail start, trail length).
    kept: Vec<(u32, KeptLeaf, u32, u32)>,
    kept_text: String,
    arrays: u32,
    pub(crate) text: String,
}

impl MatchState {
    fn prepare(&mut self, conjuncts: usize, clauses: usize, paths: usize, rules: usize) {
        if self.epoch == u32::MAX {
            *self = MatchState::default();
        }
        self.epoch += 1;
        for (v, n) in [
            (&mut self.conjunct_seen, conjuncts),
            (&mut self.clause_seen, clauses),
            (&mut self.clause_hits, clauses),
            (&mut self.path_seen, paths),
            (&mut self.rule_seen, rules),
        ] {
            if v.len() < n {
                v.resize(n, 0);
            }
        }
        self.candidates.clear();
        self.hits.clear();
        self.trails.clear();
        self.kept.clear();
        self.kept_text.clear();
        self.arrays = 0;
    }
}

/// A value kept for deferred tests; strings live in `MatchState::kept_text`.
#[derive(Debug, Clone, Copy)]
enum KeptLeaf {
    Str(u32, u32),
    Num(f64),
    Bool(bool),
    Null,
}

impl MatchState {
    fn kept_leaf(&self, kept: KeptLeaf) -> Leaf<'_> {
        match kept {
            KeptLeaf::Str(start, end) => Leaf::Str(&self.kept_text[start as usize..end as usize]),
            KeptLeaf::Num(n) => Leaf::Num(n),
            KeptLeaf::Bool(b) => Leaf::Bool(b),
            KeptLeaf::Null => Leaf::Null,
        }
    }
}

/// One event being matched.
pub(crate) struct Run<'a, K> {
    matcher: &'a Matcher<K>,
    state: &'a mut MatchState,
    /// Where the walk is: one step per enclosing array element that is an object or array.
    pub(crate) trail: Vec<TrailStep>,
}

impl<K> Run<'_, K> {
    pub(crate) fn new_array(&mut self) -> u32 {
        self.state.arrays += 1;
        self.state.arrays
    }

    pub(crate) fn take_text(&mut self) -> String {
        std::mem::take(&mut self.state.text)
    }

    pub(crate) fn put_text(&mut self, text: String) {
        self.state.text = text;
    }

    /// A scalar value at field path `path`.
    #[inline]
    pub(crate) fn leaf(&mut self, path: u32, leaf: Leaf<'_>) {
        let state = &mut *self.state;
        let epoch = state.epoch;
        state.path_seen[path as usize] = epoch;
        let (trail_start, trail_len) = if self.trail.is_empty() {
            (0, 0)
        } else {
            let start = state.trails.len() as u32;
            state.trails.extend_from_slice(&self.trail);
            (start, self.trail.len() as u32)
        };
        let matcher = self.matcher;
        if matcher.deferred_paths[path as usize] {
            let kept = match leaf {
                Leaf::Str(s) => {
                    let start = state.kept_text.len() as u32;
                    state.kept_text.push_str(s);
                    KeptLeaf::Str(start, state.kept_text.len() as u32)
                }
                Leaf::Num(n) => KeptLeaf::Num(n),
                Leaf::Bool(b) => KeptLeaf::Bool(b),
                Leaf::Null => KeptLeaf::Null,
            };
            state.kept.push((path, kept, trail_start, trail_len));
        }
        matcher.fields[path as usize].judge(leaf, &mut |conjunct| {
            state.hits.push((conjunct, trail_start, trail_len));
            let c = conjunct as usize;
            if state.conjunct_seen[c] == epoch {
                return;
            }
            state.conjunct_seen[c] = epoch;
            let info = &matcher.conjuncts[c];
            if info.absent_ok {
                return;
            }
            let clause = info.clause as usize;
            if state.clause_seen[clause] != epoch {
                state.clause_seen[clause] = epoch;
                state.clause_hits[clause] = 0;
            }
            state.clause_hits[clause] += 1;
            if state.clause_hits[clause] == matcher.clauses[clause].positive {
                state.candidates.push(clause as u32);
            }
        });
    }

    pub(crate) fn finish(self, out: &mut Vec<usize>) {
        let matcher = self.matcher;
        let state = self.state;
        let candidates = std::mem::take(&mut state.candidates);
        for &clause in candidates.iter().chain(&matcher.always_checked) {
            let info = &matcher.clauses[clause as usize];
            if state.rule_seen[info.rule as usize] == state.epoch {
                continue;
            }
            if confirm(matcher, state, info) {
                state.rule_seen[info.rule as usize] = state.epoch;
                out.push(info.rule as usize);
            }
        }
        state.candidates = candidates;
        out.sort_unstable();
    }
}

/// Checks the parts of a clause that counting cannot: fields that may be absent, and array
/// consistency.
fn confirm<K>(matcher: &Matcher<K>, state: &MatchState, clause: &ClauseInfo) -> bool {
    let epoch = state.epoch;
    for &c in &clause.conjuncts {
        let info = &matcher.conjuncts[c as usize];
        if info.absent_ok
            && state.path_seen[info.path as usize] == epoch
            && state.conjunct_seen[c as usize] != epoch
        {
            return false;
        }
    }
    // Deferred tests: judged now, against the values kept for their paths.
    let mut deferred_choices: Vec<Option<Vec<&[TrailStep]>>> = Vec::new();
    for &c in &clause.conjuncts {
        let info = &matcher.conjuncts[c as usize];
        if info.deferred.is_empty() {
            continue;
        }
        let mut trails = Vec::new();
        let mut unconstrained = false;
        for &(path, kept, start, len) in &state.kept {
            if path == info.path
                && info
                    .deferred
                    .iter()
                    .any(|d| d.matches(state.kept_leaf(kept)))
            {
                if len == 0 {
                    unconstrained = true;
                } else {
                    trails.push(&state.trails[start as usize..(start + len) as usize]);
                }
            }
        }
        if !unconstrained && trails.is_empty() {
            return false;
        }
        deferred_choices.push((!unconstrained).then_some(trails));
    }
    if state.arrays == 0 || state.trails.is_empty() {
        return true;
    }
    // Each field that must be satisfied by a value contributes the trails of the values that
    // satisfy it; a value outside any array of objects is compatible with every other.
    let mut choices: Vec<Vec<&[TrailStep]>> = deferred_choices.into_iter().flatten().collect();
    for &c in &clause.conjuncts {
        let info = &matcher.conjuncts[c as usize];
        if !info.deferred.is_empty()
            || (info.absent_ok && state.path_seen[info.path as usize] != epoch)
        {
            continue;
        }
        let mut trails = Vec::new();
        let mut unconstrained = false;
        for &(conjunct, start, len) in &state.hits {
            if conjunct == c {
                if len == 0 {
                    unconstrained = true;
                    break;
                }
                trails.push(&state.trails[start as usize..(start + len) as usize]);
            }
        }
        if !unconstrained {
            choices.push(trails);
        }
    }
    if choices.len() <= 1 {
        return true;
    }
    choices.sort_by_key(Vec::len);
    let mut chosen = Vec::with_capacity(choices.len());
    consistent(&choices, &mut chosen)
}

fn consistent<'t>(choices: &[Vec<&'t [TrailStep]>], chosen: &mut Vec<&'t [TrailStep]>) -> bool {
    let Some((first, rest)) = choices.split_first() else {
        return true;
    };
    for trail in first {
        if chosen.iter().all(|other| compatible(trail, other)) {
            chosen.push(trail);
            if consistent(rest, chosen) {
                return true;
            }
            chosen.pop();
        }
    }
    false
}

/// Two values are compatible unless they sit in different elements of the same array.
fn compatible(a: &[TrailStep], b: &[TrailStep]) -> bool {
    a.iter().all(|(array, index)| {
        b.iter()
            .all(|(other_array, other_index)| array != other_array || index == other_index)
    })
}
