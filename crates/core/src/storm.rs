//! Alarm storms: many new incidents of one rule under one scope (an Appcode, an availability
//! zone, a switch) within a short window are reported once, as a storm that lists them.
//! Pure: the store decides membership inside its transaction with these rules, the runner
//! writes messages with these summaries.

use serde::{Deserialize, Serialize};

use crate::alarm::AlarmFacts;
use crate::incident::{group_key, GroupKeyError, IncidentStatus};
use crate::Timestamp;

/// Whether an incident stands for one alarm group or for a storm of them.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum IncidentKind {
    #[default]
    Alarm,
    Storm,
}

impl IncidentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentKind::Alarm => "alarm",
            IncidentKind::Storm => "storm",
        }
    }

    pub fn parse(s: &str) -> Option<IncidentKind> {
        match s {
            "alarm" => Some(IncidentKind::Alarm),
            "storm" => Some(IncidentKind::Storm),
            _ => None,
        }
    }
}

/// What a storm's member incident is, as the storm lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StormMember {
    pub key: String,
    pub host: Option<String>,
    pub alarm_name: String,
    pub status: IncidentStatus,
    #[schema(value_type = String, format = DateTime)]
    pub opened_at: Timestamp,
    pub probes: ProbeTally,
}

/// A member's probe jobs by how they ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProbeTally {
    /// Queued or running.
    pub pending: u32,
    /// The agent ran them (whatever the probe found): the host was reachable.
    pub answered: u32,
    /// No agent took or answered them in time.
    pub unreachable: u32,
}

/// What the probes of a storm's members found, host by host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StormFindings {
    pub members: u32,
    /// Hosts whose agent ran at least one probe.
    pub answered: u32,
    /// Hosts whose every probe went untaken or unanswered.
    pub unreachable: u32,
    /// Hosts with probes still under way and none answered yet.
    pub probing: u32,
    /// Members with no probe at all (no agent, or a host vigil does not know).
    pub unprobed: u32,
}

impl StormFindings {
    pub fn of(members: &[StormMember]) -> StormFindings {
        let mut findings = StormFindings {
            members: members.len() as u32,
            ..StormFindings::default()
        };
        for member in members {
            let p = member.probes;
            if p.answered > 0 {
                findings.answered += 1;
            } else if p.pending > 0 {
                findings.probing += 1;
            } else if p.unreachable > 0 {
                findings.unreachable += 1;
            } else {
                findings.unprobed += 1;
            }
        }
        findings
    }

    /// One line an operator reads first: how many hosts did what, and what that suggests.
    pub fn summary(&self) -> String {
        let n = self.members;
        let mut parts = Vec::new();
        if self.unreachable > 0 {
            parts.push(format!("{} of {n} hosts unreachable", self.unreachable));
        }
        if self.answered > 0 {
            parts.push(format!("{} answered their probes", self.answered));
        }
        if self.probing > 0 {
            parts.push(format!("{} still probing", self.probing));
        }
        if self.unprobed > 0 {
            parts.push(format!("{} without an agent to probe", self.unprobed));
        }
        let probed = self.answered + self.unreachable;
        let verdict = if probed == 0 {
            if self.probing > 0 {
                "probes are under way"
            } else {
                "no member host could be probed"
            }
        } else if self.unreachable * 5 >= probed * 4 {
            "probably the network, not the hosts"
        } else if self.answered * 5 >= probed * 4 {
            "the hosts are up: see each member's diagnostics"
        } else {
            "some hosts are cut off, others answer: look at what they share"
        };
        if parts.is_empty() {
            return format!("{n} hosts: {verdict}");
        }
        format!("{}: {verdict}", parts.join(", "))
    }
}

impl StormMember {
    /// What its probes found, in a few words.
    pub fn finding(&self) -> &'static str {
        let p = self.probes;
        if p.answered > 0 {
            "answered"
        } else if p.pending > 0 {
            "probing"
        } else if p.unreachable > 0 {
            "unreachable"
        } else {
            "not probed"
        }
    }
}

/// The members as aligned text lines, a header first: incident, host, alarm, status and
/// what its probes found.
pub fn member_lines(members: &[StormMember]) -> Vec<String> {
    let host = |m: &StormMember| m.host.clone().unwrap_or_else(|| "-".into());
    let key_w = members
        .iter()
        .map(|m| m.key.len())
        .max()
        .unwrap_or(0)
        .max(8);
    let host_w = members
        .iter()
        .map(|m| host(m).len())
        .max()
        .unwrap_or(0)
        .max(4);
    let alarm_w = members
        .iter()
        .map(|m| m.alarm_name.len())
        .max()
        .unwrap_or(0)
        .clamp(5, 60);
    let mut lines = vec![format!(
        "{:<key_w$}  {:<host_w$}  {:<alarm_w$}  {:<12}  probes",
        "incident", "host", "alarm", "status"
    )];
    for m in members {
        lines.push(format!(
            "{:<key_w$}  {:<host_w$}  {:<alarm_w$}  {:<12}  {}",
            m.key,
            host(m),
            m.alarm_name,
            m.status.as_str(),
            m.finding()
        ));
    }
    lines
}

/// `lines` gathered into pages of at most `max_chars` characters, each line kept whole
/// (a longer line is a page of its own), so a long member list fits a tracker's limit.
pub fn pages(lines: &[String], max_chars: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut page = String::new();
    for line in lines {
        if !page.is_empty() && page.chars().count() + 1 + line.chars().count() > max_chars {
            out.push(std::mem::take(&mut page));
        }
        if !page.is_empty() {
            page.push('\n');
        }
        page.push_str(line);
    }
    if !page.is_empty() {
        out.push(page);
    }
    out
}

/// The first `n` members' hosts, then how many more: "web-1, web-2 and 1,998 more".
pub fn first_hosts(members: &[StormMember], n: usize) -> String {
    let names: Vec<&str> = members
        .iter()
        .take(n)
        .map(|m| m.host.as_deref().unwrap_or(m.key.as_str()))
        .collect();
    let rest = members.len().saturating_sub(n);
    if rest == 0 {
        names.join(", ")
    } else {
        format!("{} and {rest} more", names.join(", "))
    }
}

/// The storm scope of an alarm under a rule: incidents of one scope opening together form
/// a storm. `by` names fact fields as `group_by` does, plus `appcode`.
pub fn storm_scope(rule: &str, facts: &AlarmFacts, by: &[String]) -> Result<String, GroupKeyError> {
    Ok(format!("{rule}|{}", group_key(facts, by)?))
}

/// A storm's title: what alarmed and where, without a count (it grows).
pub fn storm_title(rule: &str, facts: &AlarmFacts, by: &[String]) -> String {
    let place: Vec<String> = by
        .iter()
        .filter_map(|field| {
            let value = group_key(facts, std::slice::from_ref(field)).ok()?;
            let value = if value.is_empty() { "none" } else { &value };
            Some(match field.as_str() {
                "appcode" => format!("application {value}"),
                other => format!("{} {value}", other.trim_start_matches("label:")),
            })
        })
        .collect();
    let place = if place.is_empty() {
        String::new()
    } else {
        format!(" under {}", place.join(", "))
    };
    format!("Alarm storm{place}: many hosts alarm at once (rule {rule})")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(n: u32, probes: ProbeTally) -> StormMember {
        StormMember {
            key: format!("INC-{n}"),
            host: Some(format!("web-{n:03}")),
            alarm_name: "cpu".into(),
            status: IncidentStatus::Open,
            opened_at: chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default(),
            probes,
        }
    }

    const UNREACHABLE: ProbeTally = ProbeTally {
        pending: 0,
        answered: 0,
        unreachable: 2,
    };
    const ANSWERED: ProbeTally = ProbeTally {
        pending: 0,
        answered: 1,
        unreachable: 1,
    };

    #[test]
    fn mostly_unreachable_hosts_point_at_the_network() {
        let mut members: Vec<StormMember> = (0..412).map(|n| member(n, UNREACHABLE)).collect();
        members.extend((412..430).map(|n| member(n, ANSWERED)));
        let findings = StormFindings::of(&members);
        assert_eq!(findings.unreachable, 412);
        assert_eq!(findings.answered, 18);
        assert_eq!(
            findings.summary(),
            "412 of 430 hosts unreachable, 18 answered their probes: probably the network, not the hosts"
        );
    }

    #[test]
    fn hosts_that_answer_point_at_the_hosts() {
        let members: Vec<StormMember> = (0..10).map(|n| member(n, ANSWERED)).collect();
        let summary = StormFindings::of(&members).summary();
        assert!(summary.contains("the hosts are up"), "{summary}");
    }

    #[test]
    fn probes_under_way_and_hosts_without_agents_are_said_so() {
        let pending = ProbeTally {
            pending: 1,
            ..ProbeTally::default()
        };
        let members = vec![member(1, pending), member(2, ProbeTally::default())];
        let summary = StormFindings::of(&members).summary();
        assert_eq!(
            summary,
            "1 still probing, 1 without an agent to probe: probes are under way"
        );
    }

    #[test]
    fn member_lists_page_without_cutting_a_line() {
        let members: Vec<StormMember> = (0..2000).map(|n| member(n, UNREACHABLE)).collect();
        let lines = member_lines(&members);
        assert_eq!(lines.len(), 2001);
        assert!(lines[0].starts_with("incident"));
        assert!(lines[1].contains("web-000") && lines[1].ends_with("unreachable"));
        let pages = pages(&lines, 30_000);
        assert!(pages.len() > 1, "{} pages", pages.len());
        assert!(pages.iter().all(|p| p.chars().count() <= 30_000));
        let rejoined: Vec<&str> = pages.iter().flat_map(|p| p.lines()).collect();
        assert_eq!(
            rejoined,
            lines.iter().map(String::as_str).collect::<Vec<_>>()
        );
        assert_eq!(first_hosts(&members[..3], 5), "web-000, web-001, web-002");
        assert_eq!(first_hosts(&members, 2), "web-000, web-001 and 1998 more");
    }

    #[test]
    fn scope_and_title_name_the_rule_and_the_application() {
        let facts = AlarmFacts {
            alarm_name: "cpu".into(),
            appcode: Some("PAY".into()),
            labels: [("zone".to_string(), "eu-1a".to_string())].into(),
            ..AlarmFacts::default()
        };
        let by = vec!["appcode".to_string(), "label:zone".to_string()];
        assert_eq!(
            storm_scope("respond", &facts, &by).ok(),
            Some("respond|PAY|eu-1a".into())
        );
        assert_eq!(
            storm_title("respond", &facts, &by),
            "Alarm storm under application PAY, zone eu-1a: many hosts alarm at once (rule respond)"
        );
        assert!(storm_scope("respond", &facts, &["nonsense".to_string()]).is_err());
    }
}
