//! Per-field indexes: every condition on one field path, from every rule, arranged so one
//! event value is judged against all of them in roughly constant time for the common
//! operators (exact, prefix, suffix, ignore-case, exists).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::condition::{fold_case, number_key, Condition, Leaf};

/// A small multiplicative hash: keys are short strings and numbers from our own patterns, so
/// resistance to collision attacks is not needed and SipHash's cost is.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let mut tail = 0u64;
        for (i, b) in chunks.remainder().iter().enumerate() {
            tail |= u64::from(*b) << (8 * i);
        }
        self.add(tail);
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// A byte trie of prefixes (or of reversed suffixes); each node lists the conjuncts whose
/// operand ends there, so one walk over a value finds every prefix it starts with.
#[derive(Default, Debug)]
pub(crate) struct ByteTrie {
    nodes: Vec<TrieNode>,
}

#[derive(Default, Debug)]
struct TrieNode {
    children: Vec<(u8, u32)>,
    conjuncts: Vec<u32>,
}

impl ByteTrie {
    fn insert(&mut self, key: impl Iterator<Item = u8>, conjunct: u32) {
        if self.nodes.is_empty() {
            self.nodes.push(TrieNode::default());
        }
        let mut node = 0usize;
        for byte in key {
            node = match self.nodes[node].children.iter().find(|(b, _)| *b == byte) {
                Some(&(_, child)) => child as usize,
                None => {
                    let child = self.nodes.len();
                    self.nodes.push(TrieNode::default());
                    self.nodes[node].children.push((byte, child as u32));
                    child
                }
            };
        }
        self.nodes[node].conjuncts.push(conjunct);
    }

    #[inline]
    fn walk(&self, value: impl Iterator<Item = u8>, emit: &mut impl FnMut(u32)) {
        let Some(mut node) = self.nodes.first() else {
            return;
        };
        node.conjuncts.iter().for_each(|c| emit(*c));
        for byte in value {
            match node.children.iter().find(|(b, _)| *b == byte) {
                Some(&(_, child)) => node = &self.nodes[child as usize],
                None => return,
            }
            node.conjuncts.iter().for_each(|c| emit(*c));
        }
    }
}

/// Every condition on one field path.
#[derive(Default, Debug)]
pub(crate) struct FieldIndex {
    exists: Vec<u32>,
    exact_str: FxMap<Box<str>, Vec<u32>>,
    exact_num: FxMap<u64, Vec<u32>>,
    exact_true: Vec<u32>,
    exact_false: Vec<u32>,
    exact_null: Vec<u32>,
    prefix: ByteTrie,
    suffix: ByteTrie,
    prefix_folded: ByteTrie,
    suffix_folded: ByteTrie,
    equals_folded: FxMap<Box<str>, Vec<u32>>,
    needs_folding: bool,
    /// Operators judged one by one: numeric, wildcard, anything-but, cidr.
    scanned: Vec<(Condition, u32)>,
}

impl FieldIndex {
    /// Files `condition` under `conjunct`. `exists: false` is not a positive test and is
    /// handled by the matcher, so it is never passed here.
    pub(crate) fn add(&mut self, condition: &Condition, conjunct: u32) {
        match condition {
            Condition::ExactStr(s) => self.exact_str.entry(s.clone()).or_default().push(conjunct),
            Condition::ExactNum(n) => self
                .exact_num
                .entry(number_key(*n))
                .or_default()
                .push(conjunct),
            Condition::ExactBool(true) => self.exact_true.push(conjunct),
            Condition::ExactBool(false) => self.exact_false.push(conjunct),
            Condition::ExactNull => self.exact_null.push(conjunct),
            Condition::Exists(_) => self.exists.push(conjunct),
            Condition::Prefix(p) => self.prefix.insert(p.bytes(), conjunct),
            Condition::Suffix(s) => self.suffix.insert(s.bytes().rev(), conjunct),
            Condition::PrefixIgnoreCase(p) => {
                self.needs_folding = true;
                self.prefix_folded.insert(p.bytes(), conjunct);
            }
            Condition::SuffixIgnoreCase(s) => {
                self.needs_folding = true;
                self.suffix_folded.insert(s.bytes().rev(), conjunct);
            }
            Condition::EqualsIgnoreCase(s) => {
                self.needs_folding = true;
                self.equals_folded
                    .entry(s.clone())
                    .or_default()
                    .push(conjunct);
            }
            Condition::Wildcard(_)
            | Condition::AnythingBut(_)
            | Condition::Numeric(_)
            | Condition::Cidr(_) => {
                self.scanned.push((condition.clone(), conjunct));
            }
        }
    }

    /// Calls `emit` with every conjunct that `leaf` satisfies (possibly more than once).
    #[inline]
    pub(crate) fn judge(&self, leaf: Leaf<'_>, emit: &mut impl FnMut(u32)) {
        self.exists.iter().for_each(|c| emit(*c));
        match leaf {
            Leaf::Str(s) => {
                if !self.exact_str.is_empty() {
                    if let Some(conjuncts) = self.exact_str.get(s) {
                        conjuncts.iter().for_each(|c| emit(*c));
                    }
                }
                self.prefix.walk(s.bytes(), emit);
                self.suffix.walk(s.bytes().rev(), emit);
                if self.needs_folding {
                    let folded = fold_case(s);
                    if let Some(conjuncts) = self.equals_folded.get(&*folded) {
                        conjuncts.iter().for_each(|c| emit(*c));
                    }
                    self.prefix_folded.walk(folded.bytes(), emit);
                    self.suffix_folded.walk(folded.bytes().rev(), emit);
                }
            }
            Leaf::Num(n) => {
                if let Some(conjuncts) = self.exact_num.get(&number_key(n)) {
                    conjuncts.iter().for_each(|c| emit(*c));
                }
            }
            Leaf::Bool(true) => self.exact_true.iter().for_each(|c| emit(*c)),
            Leaf::Bool(false) => self.exact_false.iter().for_each(|c| emit(*c)),
            Leaf::Null => self.exact_null.iter().for_each(|c| emit(*c)),
        }
        for (condition, conjunct) in &self.scanned {
            let hit = match (condition, leaf) {
                (Condition::Numeric(range), Leaf::Num(n)) => range.contains(n),
                (Condition::Wildcard(w), Leaf::Str(s)) => w.matches(s),
                (Condition::Cidr(net), Leaf::Str(s)) => net.matches(s),
                (Condition::AnythingBut(but), leaf) => but.matches(leaf),
                _ => false,
            };
            if hit {
                emit(*conjunct);
            }
        }
    }
}
