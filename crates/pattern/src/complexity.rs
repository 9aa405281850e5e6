//! AWS's limit on wildcard complexity.
//!
//! EventBridge matches with event-ruler and refuses a rule whose wildcard tests are too
//! complex by event-ruler's `MachineComplexityEvaluator`, applied to a machine built from the
//! rule alone (its clauses that hold a wildcard). A rule becomes a tree: each clause's fields in
//! sorted path order, a byte machine per field holding the values that field is tested
//! against, and each value leading to the state where the next field is tested (values already
//! present lead where they led before). A byte machine's complexity is the largest number of
//! its wildcard patterns' prefixes that one input value can be matching at the same time —
//! `"*aa"` scores 3 on `aa` (`*`, `*a`, `*aa`) — and the rule's is the largest of any machine
//! reached through a value (machines reached only through `exists: false` are not weighed).
//!
//! This module builds the same shapes and takes the same measure (its tests hold it to
//! event-ruler's own figures), and refuses past the limit AWS applies.

use std::collections::HashSet;

use crate::condition::{AnythingBut, Condition, Wildcard};
use crate::parse::{Clause, Conjunct};
use crate::PatternError;

/// The highest complexity AWS accepts. AWS does not publish it; it is the per-rule figure
/// event-ruler's README gives for this very check, and it agrees with what EventBridge does:
/// it accepted `key` wildcards `*.bif`, `*.tiff`, `*.tif`, `*.svs` (8) and two of
/// `*/datasync/*.bif`, `…/*.tif`, `…/*.tiff`, `…/*.svs` at a time (8), and refused all four of
/// those together (16).
const LIMIT: usize = 10;

/// Sets of machine states explored at most for one field. Patterns of the size AWS accepts
/// stay far below it; past it a pattern is too complex to judge, and is refused as such.
const MAX_EXPLORED: usize = 200_000;

/// Refuses `clauses` (one rule) when a field's wildcard tests are more complex than AWS allows.
pub(crate) fn check(clauses: &[Clause]) -> Result<(), PatternError> {
    let wild: Vec<&Clause> = clauses
        .iter()
        .filter(|clause| {
            clause
                .iter()
                .any(|conjunct| conjunct.conditions.iter().any(|c| !wildcards(c).is_empty()))
        })
        .collect();
    if wild.is_empty() {
        return Ok(());
    }
    let tree = RuleTree::build(&wild);
    let mut seen = vec![false; tree.names.len()];
    let mut pending = vec![ROOT];
    while let Some(name) = pending.pop() {
        if std::mem::replace(&mut seen[name], true) {
            continue;
        }
        for &(ref path, field) in &tree.names[name] {
            let field = &tree.fields[field];
            match complexity(&field.strings(), LIMIT, MAX_EXPLORED) {
                Some(score) if score <= LIMIT => {}
                _ => return Err(PatternError::TooComplex { path: path.clone() }),
            }
            pending.extend(field.through_values.iter().copied());
        }
    }
    Ok(())
}

/// The wildcard strings a condition puts into its field's byte machine.
fn wildcards(condition: &Condition) -> &[Wildcard] {
    match condition {
        Condition::Wildcard(w) => std::slice::from_ref(w),
        Condition::AnythingBut(AnythingBut::Wildcards(ws)) => ws,
        _ => &[],
    }
}

const ROOT: usize = 0;

/// The states of a rule's machine where a field is tested ("name states"), each with the
/// byte machines of its fields.
struct RuleTree<'a> {
    /// Per name state: (dotted path, field machine).
    names: Vec<Vec<(String, usize)>>,
    fields: Vec<FieldMachine<'a>>,
}

struct FieldMachine<'a> {
    /// Distinct values, in the order they were added; the same value twice is one pattern.
    terms: Vec<&'a Condition>,
    /// The name state each value leads to.
    next: Vec<(&'a Condition, usize)>,
    /// Name states reached through a value, not only through `exists: false`.
    through_values: Vec<usize>,
}

impl<'a> RuleTree<'a> {
    fn build(clauses: &[&'a Clause]) -> RuleTree<'a> {
        let mut tree = RuleTree {
            names: vec![Vec::new()],
            fields: Vec::new(),
        };
        for clause in clauses {
            let mut conjuncts: Vec<(String, &Conjunct)> = clause
                .iter()
                .map(|conjunct| (conjunct.path.join("."), conjunct))
                .collect();
            conjuncts.sort_by(|a, b| a.0.cmp(&b.0));
            let mut states = vec![ROOT];
            for (path, conjunct) in conjuncts {
                let mut reached = Vec::new();
                for state in states {
                    let field = tree.field(state, &path);
                    // A clause's values lead to one new state, unless a value is already in
                    // the machine: then to where that one leads, and so do the values after it.
                    let mut last = None;
                    for condition in &conjunct.conditions {
                        let known = tree.fields[field]
                            .next
                            .iter()
                            .find(|(c, _)| *c == condition)
                            .map(|&(_, n)| n);
                        let target = match known {
                            Some(n) => {
                                last = Some(n);
                                n
                            }
                            None => {
                                let n = match last {
                                    Some(n) => n,
                                    None => {
                                        tree.names.push(Vec::new());
                                        tree.names.len() - 1
                                    }
                                };
                                last = Some(n);
                                let machine = &mut tree.fields[field];
                                machine.next.push((condition, n));
                                machine.terms.push(condition);
                                n
                            }
                        };
                        if !reached.contains(&target) {
                            reached.push(target);
                        }
                        let machine = &mut tree.fields[field];
                        if !matches!(condition, Condition::Exists(false))
                            && !machine.through_values.contains(&target)
                        {
                            machine.through_values.push(target);
                        }
                    }
                }
                states = reached;
            }
        }
        tree
    }

    /// The machine of `path` at name state `state`, made on first use.
    fn field(&mut self, state: usize, path: &str) -> usize {
        if let Some(&(_, field)) = self.names[state].iter().find(|(p, _)| p == path) {
            return field;
        }
        self.fields.push(FieldMachine {
            terms: Vec::new(),
            next: Vec::new(),
            through_values: Vec::new(),
        });
        let field = self.fields.len() - 1;
        self.names[state].push((path.to_string(), field));
        field
    }
}

impl FieldMachine<'_> {
    /// Every wildcard string of the machine as the bytes it is matched against (event-ruler
    /// matches a string value with its quotes), tagged with the pattern it belongs to.
    fn strings(&self) -> Vec<(u32, Vec<Token>)> {
        let mut strings = Vec::new();
        for (pattern, term) in self.terms.iter().enumerate() {
            for wildcard in wildcards(term) {
                let mut tokens = vec![Token::Byte(b'"')];
                for (i, piece) in wildcard.pieces().iter().enumerate() {
                    if i > 0 {
                        tokens.push(Token::Star);
                    }
                    tokens.extend(piece.bytes().map(Token::Byte));
                }
                tokens.push(Token::Byte(b'"'));
                strings.push((pattern as u32, tokens));
            }
        }
        strings
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Byte(u8),
    Star,
}

#[derive(Default)]
struct State {
    /// Transitions on one byte.
    literal: Vec<(u8, u32)>,
    /// The star state any byte leads to; a star state's is itself.
    any: Option<u32>,
    /// Before a pattern's first star, patterns share states: the next state per byte.
    shared: Vec<(u8, u32)>,
    /// The patterns this state is a prefix of (sorted).
    patterns: Vec<u32>,
}

/// The byte machine of some wildcard strings, shaped as event-ruler shapes it: literal
/// prefixes before the first star are shared, as is that first star; everything after it is
/// each string's own, except the final state, one per pattern.
struct Machine {
    states: Vec<State>,
}

impl Machine {
    fn build(strings: &[(u32, Vec<Token>)]) -> Machine {
        let mut machine = Machine {
            states: vec![State::default()],
        };
        let mut finals: Vec<(u32, u32)> = Vec::new();
        for (pattern, tokens) in strings {
            let mut current = 0u32;
            let mut before_star = None;
            let mut shared = true;
            for (i, &token) in tokens.iter().enumerate() {
                let last = i + 1 == tokens.len();
                let existing = if last {
                    finals.iter().find(|(p, _)| p == pattern).map(|&(_, s)| s)
                } else if !shared {
                    None
                } else {
                    match token {
                        Token::Star => machine.state(current).any,
                        Token::Byte(b) => find(&machine.state(current).shared, b),
                    }
                };
                let next = existing.unwrap_or_else(|| machine.add());
                let created = existing.is_none();
                if created && last {
                    finals.push((*pattern, next));
                }
                match token {
                    Token::Star => {
                        if machine.state(next).any.is_none() {
                            machine.state_mut(current).any = Some(next);
                            machine.state_mut(next).any = Some(next);
                        }
                        shared = false;
                    }
                    Token::Byte(b) => {
                        if created && shared && !last {
                            machine.state_mut(current).shared.push((b, next));
                        }
                        if created || last {
                            machine.state_mut(current).literal.push((b, next));
                            // A star may match nothing: the byte after it also follows on
                            // directly from the state before it.
                            if let Some(before) = before_star {
                                machine.state_mut(before).literal.push((b, next));
                            }
                        }
                    }
                }
                let patterns = &mut machine.state_mut(next).patterns;
                if let Err(at) = patterns.binary_search(pattern) {
                    patterns.insert(at, *pattern);
                }
                before_star = (token == Token::Star).then_some(current);
                current = next;
            }
        }
        machine
    }

    fn add(&mut self) -> u32 {
        self.states.push(State::default());
        (self.states.len() - 1) as u32
    }

    fn state(&self, id: u32) -> &State {
        &self.states[id as usize]
    }

    fn state_mut(&mut self, id: u32) -> &mut State {
        &mut self.states[id as usize]
    }

    /// How many pattern prefixes the input read so far matches when the machine is in
    /// `active` (sorted): each active state's patterns, and those of a star right after it,
    /// which may match nothing.
    fn weigh(&self, active: &[u32]) -> usize {
        active
            .iter()
            .map(|&id| {
                let state = self.state(id);
                let star = state
                    .any
                    .filter(|star| active.binary_search(star).is_err())
                    .map_or(0, |star| self.state(star).patterns.len());
                state.patterns.len() + star
            })
            .sum()
    }
}

fn find(edges: &[(u8, u32)], byte: u8) -> Option<u32> {
    edges.iter().find(|(b, _)| *b == byte).map(|&(_, s)| s)
}

/// The most pattern prefixes one input can match at once in the machine of `strings`,
/// found by following every input byte by byte from the start (every byte that leads
/// somewhere particular, and one standing for all the others). Stops at the first figure
/// over `cap`, returning it; `None` when more than `budget` sets of states would have to be
/// explored.
fn complexity(strings: &[(u32, Vec<Token>)], cap: usize, budget: usize) -> Option<usize> {
    let machine = Machine::build(strings);
    let mut most = 0;
    let mut seen: HashSet<Vec<u32>> = HashSet::new();
    let mut pending = vec![vec![0u32]];
    while let Some(active) = pending.pop() {
        let mut bytes: Vec<u8> = active
            .iter()
            .flat_map(|&id| machine.state(id).literal.iter().map(|&(b, _)| b))
            .collect();
        bytes.sort_unstable();
        bytes.dedup();
        let other = (bytes.len() < 256).then_some(None);
        for byte in bytes.iter().copied().map(Some).chain(other) {
            let mut next: Vec<u32> = Vec::new();
            for &id in &active {
                let state = machine.state(id);
                next.extend(state.any);
                if let Some(byte) = byte {
                    next.extend(
                        state
                            .literal
                            .iter()
                            .filter(|(b, _)| *b == byte)
                            .map(|&(_, s)| s),
                    );
                }
            }
            if next.is_empty() {
                continue;
            }
            next.sort_unstable();
            next.dedup();
            let score = machine.weigh(&next);
            if score > cap {
                return Some(score);
            }
            most = most.max(score);
            if !seen.contains(&next) {
                if seen.len() >= budget {
                    return None;
                }
                seen.insert(next.clone());
                pending.push(next);
            }
        }
    }
    Some(most)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokens of a wildcard as event-ruler's own tests feed its byte machine: without quotes.
    fn bare(text: &str) -> Vec<Token> {
        text.bytes()
            .map(|b| {
                if b == b'*' {
                    Token::Star
                } else {
                    Token::Byte(b)
                }
            })
            .collect()
    }

    fn score(patterns: &[&str]) -> usize {
        let strings: Vec<(u32, Vec<Token>)> = patterns
            .iter()
            .enumerate()
            .map(|(i, p)| (i as u32, bare(p)))
            .collect();
        complexity(&strings, 100, MAX_EXPLORED).expect("within budget")
    }

    /// The figures event-ruler's MachineComplexityEvaluatorTest expects of its byte machine,
    /// each with the input that reaches it.
    #[test]
    fn event_ruler_figures() {
        let cases: &[(&[&str], usize)] = &[
            (&["abc"], 1),
            (&["*ab"], 2),                     // "ab": *, *ab
            (&["*aa"], 3),                     // "aa": *, *a, *aa
            (&["a*b"], 2),                     // "ab": a*, a*b
            (&["aa*"], 2),                     // "aa": aa, aa*
            (&["a*bc"], 2),                    // "ab": a*, a*b
            (&["a*bb"], 3),                    // "abb": a*, a*b, a*bb
            (&["a*bcb"], 3),                   // "abcb": a*, a*b, a*bcb
            (&["a*bbb"], 4),                   // "abbb"
            (&["*ab*ad"], 4),                  // "aba": *, *a, *ab*, *ab*a
            (&["*ab*d"], 3),                   // "abd"
            (&["*aba*"], 4),                   // "aba"
            (&["a*b*bb"], 5),                  // "abbb"
            (&["a*b*cb"], 4),                  // "abcb"
            (&["a*b*cd"], 3),                  // "abcd"
            (&["a*b*b"], 4),                   // "abb"
            (&["a*bb*"], 4),                   // "abb"
            (&["ab*b*"], 3),                   // "abb"
            (&["ab*c", "x*xx"], 3),            // "xxx"
            (&["*abc", "*abcde"], 4),          // "abc"
            (&["a*bcd", "ab*cd"], 4),          // "abcd"
            (&["a*bc", "a*bcde"], 4),          // "ab"
            (&["a*aaa", "aa*aa"], 7),          // "aaaa"
            (&["a*bc", "abc*d"], 4),           // "abc"
            (&["a*aaa", "aaa*a"], 6),          // "aaaa"
            (&["a*aax", "aaa*x"], 5),          // "aaa"
            (&["a*bc", "abc*"], 4),            // "abc"
            (&["a*aa", "aaa*"], 5),            // "aaa"
            (&["abc*", "abcde*"], 3),          // "abc"
            (&["ab*cd", "ab*wx", "ab*yz"], 6), // "ab"
            (&["*ab*b*b*"], 7),                // "abbbab"
            (&["*a*a*a*a*a*a*a*a*"], 17),      // "aaaaaaaa"
            (
                &["F*eatureFeature", "Fe*atureFeature", "Fea*tureFeature"],
                10,
            ), // "FeatureFeature"
        ];
        for (patterns, expected) in cases {
            assert_eq!(score(patterns), *expected, "{patterns:?}");
        }
        // The same pattern twice is one pattern.
        let twice = vec![(0, bare("ab*c")), (0, bare("ab*c"))];
        assert_eq!(complexity(&twice, 100, MAX_EXPLORED), Some(2));
        // One anything-but wildcard list is one pattern: its strings' ends are one state.
        let list = vec![(0, bare("a*aaa")), (0, bare("aa*aa"))];
        assert_eq!(complexity(&list, 100, MAX_EXPLORED), Some(6));
    }

    #[test]
    fn stops_past_the_cap_and_the_budget() {
        let strings = vec![(0, bare("*a*a*a*a*a*a*a*a*"))];
        let capped = complexity(&strings, 3, MAX_EXPLORED).expect("within budget");
        assert!((4..17).contains(&capped), "{capped}");
        assert_eq!(complexity(&strings, 100, 2), None);
    }
}
