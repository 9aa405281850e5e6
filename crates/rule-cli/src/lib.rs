//! The `vigil rule test` and `vigil rule bench` commands.
//!
//! * [`rule_test`] answers "does this pattern match this event?", like
//!   `aws events test-event-pattern`, with an exit code scripts can use.
//! * [`rule_bench`] measures how fast [`vigil_pattern::Matcher`] matches a corpus of events
//!   against rule sets, and prints every rule's match count so results can be compared with
//!   other matchers run on the same files.

mod bench;
mod corpus;
mod generate;
mod rules;
mod test_cmd;

pub use bench::{rule_bench, run_bench, BenchArgs, SetReport};
pub use corpus::{load_events, read_maybe_gzip, Corpus};
pub use generate::generate_rules;
pub use rules::{load_rule_sets, parse_rule_sets, RuleSet};
pub use test_cmd::{rule_test, rule_test_with};

#[cfg(test)]
mod test_util;
