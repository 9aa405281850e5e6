//! The value operators of the pattern language and how each one judges a single event value.

use std::borrow::Cow;
use std::net::IpAddr;

/// One scalar value found in an event, at a path some pattern names.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Leaf<'a> {
    Str(&'a str),
    Num(f64),
    Bool(bool),
    Null,
}

/// One element of a field's match array. Elements of one array are ORed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Condition {
    ExactStr(Box<str>),
    ExactNum(f64),
    ExactBool(bool),
    ExactNull,
    Prefix(Box<str>),
    /// Operand already case-folded.
    PrefixIgnoreCase(Box<str>),
    Suffix(Box<str>),
    SuffixIgnoreCase(Box<str>),
    EqualsIgnoreCase(Box<str>),
    Wildcard(Wildcard),
    AnythingBut(AnythingBut),
    Numeric(NumericRange),
    Cidr(Cidr),
    Exists(bool),
}

impl Condition {
    /// Judges one value directly, without an index: for tests held back until the rest of
    /// their clause has matched.
    pub(crate) fn matches(&self, leaf: Leaf<'_>) -> bool {
        match (self, leaf) {
            (Condition::ExactStr(v), Leaf::Str(s)) => **v == *s,
            (Condition::ExactNum(v), Leaf::Num(n)) => *v == n,
            (Condition::ExactBool(v), Leaf::Bool(b)) => *v == b,
            (Condition::ExactNull, Leaf::Null) => true,
            (Condition::Prefix(p), Leaf::Str(s)) => s.starts_with(&**p),
            (Condition::Suffix(p), Leaf::Str(s)) => s.ends_with(&**p),
            (Condition::PrefixIgnoreCase(p), Leaf::Str(s)) => fold_case(s).starts_with(&**p),
            (Condition::SuffixIgnoreCase(p), Leaf::Str(s)) => fold_case(s).ends_with(&**p),
            (Condition::EqualsIgnoreCase(p), Leaf::Str(s)) => *fold_case(s) == **p,
            (Condition::Wildcard(w), Leaf::Str(s)) => w.matches(s),
            (Condition::AnythingBut(but), leaf) => but.matches(leaf),
            (Condition::Numeric(range), Leaf::Num(n)) => range.contains(n),
            (Condition::Cidr(net), Leaf::Str(s)) => net.matches(s),
            (Condition::Exists(exists), _) => *exists,
            _ => false,
        }
    }

    /// Indexed tests narrow a clause to few events; the others are judged one by one.
    pub(crate) fn is_selective(&self) -> bool {
        matches!(
            self,
            Condition::ExactStr(_)
                | Condition::ExactNum(_)
                | Condition::ExactBool(_)
                | Condition::ExactNull
                | Condition::Prefix(_)
                | Condition::Suffix(_)
                | Condition::PrefixIgnoreCase(_)
                | Condition::SuffixIgnoreCase(_)
                | Condition::EqualsIgnoreCase(_)
        )
    }
}

/// `anything-but`: matches any value the inner test rejects, including null, and never a
/// missing field.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AnythingBut {
    Strings(Vec<Box<str>>),
    Numbers(Vec<f64>),
    Prefixes(Vec<Box<str>>),
    Suffixes(Vec<Box<str>>),
    /// Operands already case-folded.
    EqualsIgnoreCase(Vec<Box<str>>),
    Wildcards(Vec<Wildcard>),
}

impl AnythingBut {
    pub(crate) fn matches(&self, leaf: Leaf<'_>) -> bool {
        match (self, leaf) {
            (AnythingBut::Strings(values), Leaf::Str(s)) => !values.iter().any(|v| &**v == s),
            (AnythingBut::Numbers(values), Leaf::Num(n)) => !values.contains(&n),
            (AnythingBut::Prefixes(values), Leaf::Str(s)) => {
                !values.iter().any(|v| s.starts_with(&**v))
            }
            (AnythingBut::Suffixes(values), Leaf::Str(s)) => {
                !values.iter().any(|v| s.ends_with(&**v))
            }
            (AnythingBut::EqualsIgnoreCase(values), Leaf::Str(s)) => {
                let folded = fold_case(s);
                !values.iter().any(|v| **v == *folded)
            }
            (AnythingBut::Wildcards(values), Leaf::Str(s)) => !values.iter().any(|w| w.matches(s)),
            _ => true,
        }
    }
}

/// A numeric interval; `=` is the degenerate closed interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct NumericRange {
    pub lower: Option<(f64, bool)>,
    pub upper: Option<(f64, bool)>,
}

impl NumericRange {
    pub(crate) fn contains(&self, n: f64) -> bool {
        let above = match self.lower {
            None => true,
            Some((bound, inclusive)) => n > bound || (inclusive && n == bound),
        };
        let below = match self.upper {
            None => true,
            Some((bound, inclusive)) => n < bound || (inclusive && n == bound),
        };
        above && below
    }
}

/// An IPv4 or IPv6 network.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Cidr {
    network: u128,
    mask: u128,
    v6: bool,
}

impl Cidr {
    /// Parses `a.b.c.d/n` or `x:y::/n`; the error is AWS's wording.
    pub(crate) fn parse(text: &str) -> Result<Cidr, String> {
        let mut parts = text.split('/');
        let (Some(ip), Some(bits), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err("Malformed CIDR, one '/' required".into());
        };
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| format!("Nonstandard IP address: {ip}"))?;
        let bits: u32 = bits
            .parse()
            .map_err(|_| "Malformed CIDR, mask bits must be an integer".to_string())?;
        let (value, width, v6) = match ip {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32, false),
            IpAddr::V6(v6) => (u128::from(v6), 128, true),
        };
        // AWS refuses a mask covering the whole address: a single address is an exact match.
        if bits >= width {
            let version = if v6 { 6 } else { 4 };
            return Err(format!("IPv{version} mask bits must be < {width}"));
        }
        let mask = if bits == 0 {
            0
        } else {
            (!0u128 << (width - bits)) & width_mask(width)
        };
        Ok(Cidr {
            network: value & mask,
            mask,
            v6,
        })
    }

    pub(crate) fn matches(&self, s: &str) -> bool {
        match s.parse::<IpAddr>() {
            Ok(IpAddr::V4(v4)) if !self.v6 => u128::from(u32::from(v4)) & self.mask == self.network,
            Ok(IpAddr::V6(v6)) if self.v6 => u128::from(v6) & self.mask == self.network,
            _ => false,
        }
    }
}

fn width_mask(width: u32) -> u128 {
    if width == 128 {
        !0
    } else {
        (1u128 << width) - 1
    }
}

/// A wildcard pattern: literal pieces separated by `*`. The pieces between stars have
/// substring searchers built once, at compile time.
#[derive(Debug, Clone)]
pub(crate) struct Wildcard {
    pieces: Vec<Box<str>>,
    middle: Vec<memchr::memmem::Finder<'static>>,
}

/// Two wildcards are the same test when their literal pieces are.
impl PartialEq for Wildcard {
    fn eq(&self, other: &Self) -> bool {
        self.pieces == other.pieces
    }
}

impl Wildcard {
    pub(crate) fn parse(text: &str) -> Result<Wildcard, String> {
        let mut pieces = vec![String::new()];
        let mut chars = text.chars().enumerate().peekable();
        let mut previous_was_star = false;
        while let Some((pos, c)) = chars.next() {
            match c {
                '*' => {
                    if previous_was_star {
                        return Err(format!("Consecutive wildcard characters at pos {pos}"));
                    }
                    pieces.push(String::new());
                    previous_was_star = true;
                    continue;
                }
                '\\' => match chars.next() {
                    Some((_, escaped @ ('*' | '\\'))) => push_last(&mut pieces, escaped),
                    _ => return Err(format!("Invalid escape character at pos {pos}")),
                },
                other => push_last(&mut pieces, other),
            }
            previous_was_star = false;
        }
        let pieces: Vec<Box<str>> = pieces.into_iter().map(String::into_boxed_str).collect();
        let middle = match pieces.len() {
            0..=2 => Vec::new(),
            n => pieces[1..n - 1]
                .iter()
                .map(|p| memchr::memmem::Finder::new(p.as_bytes()).into_owned())
                .collect(),
        };
        Ok(Wildcard { pieces, middle })
    }

    /// The literal pieces between the stars (unescaped), in order.
    pub(crate) fn pieces(&self) -> &[Box<str>] {
        &self.pieces
    }

    pub(crate) fn matches(&self, s: &str) -> bool {
        let pieces = &self.pieces;
        if pieces.len() == 1 {
            return s == &*pieces[0];
        }
        let (first, last) = (pieces[0].as_bytes(), pieces[pieces.len() - 1].as_bytes());
        let s = s.as_bytes();
        if s.len() < first.len() + last.len()
            || !short_eq(&s[..first.len()], first)
            || !short_eq(&s[s.len() - last.len()..], last)
        {
            return false;
        }
        // With `*` the only wildcard, taking each middle piece at its leftmost position is optimal.
        let mut rest = &s[first.len()..s.len() - last.len()];
        for finder in &self.middle {
            match finder.find(rest) {
                Some(at) => rest = &rest[at + finder.needle().len()..],
                None => return false,
            }
        }
        true
    }
}

/// Equality for the short literal pieces of a wildcard, without a call into `memcmp`.
#[inline]
fn short_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

fn push_last(pieces: &mut [String], c: char) {
    if let Some(last) = pieces.last_mut() {
        last.push(c);
    }
}

/// Unicode simple case folding, close enough for `equals-ignore-case`: lowercase, with the
/// final sigma and long s folded to their ordinary forms.
pub(crate) fn fold_case(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(s.to_ascii_lowercase())
        } else {
            Cow::Borrowed(s)
        }
    } else {
        Cow::Owned(
            s.chars()
                .flat_map(|c| match c {
                    'ς' => 'σ'.to_lowercase(),
                    'ſ' => 's'.to_lowercase(),
                    'ẞ' => 'ß'.to_lowercase(),
                    other => other.to_lowercase(),
                })
                .collect(),
        )
    }
}

/// The hashable identity of a number: numbers are equal by value, so 300, 300.0 and 3e2 agree.
pub(crate) fn number_key(n: f64) -> u64 {
    if n == 0.0 {
        0
    } else {
        n.to_bits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_pieces_and_escapes() {
        let w = Wildcard::parse("arn:aws:events:us-east-1:*:event-bus/*").unwrap();
        assert!(w.matches("arn:aws:events:us-east-1:123:event-bus/default"));
        assert!(!w.matches("arn:aws:events:us-west-2:123:event-bus/default"));
        let literal = Wildcard::parse(r"a\*b").unwrap();
        assert!(literal.matches("a*b"));
        assert!(!literal.matches("axb"));
        assert!(Wildcard::parse("a**b").unwrap_err().contains("pos 2"));
        assert!(Wildcard::parse(r"a\b").is_err());
        let overlapping = Wildcard::parse("*ab*ab").unwrap();
        assert!(overlapping.matches("abab"));
        assert!(!overlapping.matches("aba"));
    }

    #[test]
    fn cidr_v4_and_v6() {
        let net = Cidr::parse("10.0.0.0/24").unwrap();
        assert!(net.matches("10.0.0.255"));
        assert!(!net.matches("10.0.1.0"));
        assert!(!net.matches("10.0.0.256"));
        let v6 = Cidr::parse("2001:db8:1234:1a00::/64").unwrap();
        assert!(v6.matches("2001:0db8:1234:1a00:0000:0000:0000:0001"));
        assert!(Cidr::parse("10.0.0.1").is_err());
        assert!(Cidr::parse("10.0.0.1/x").unwrap_err().contains("integer"));
    }

    #[test]
    fn folding() {
        assert_eq!(fold_case("ÉCOLE"), "école");
        assert_eq!(fold_case("ΣΟΦΟΣ"), fold_case("σοφος"));
    }
}
