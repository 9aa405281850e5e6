//! Incident figures for a subtree, computed from records the caller passes in.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::error::{OwnershipError, Result};
use crate::{Appcode, Tree};

/// How many alarm names [`Report::noisiest`] lists.
const NOISIEST: usize = 5;

/// The facts about one incident a report needs. Times are Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentRecord {
    /// `None` for an incident on a host bound to no application: it counts nowhere.
    pub appcode: Option<Appcode>,
    pub alarm_name: String,
    pub opened_at_ms: i64,
    pub acknowledged_at_ms: Option<i64>,
    pub resolved_at_ms: Option<i64>,
}

/// Incidents of a subtree opened in `[since_ms, now_ms]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Report {
    pub appcode: Appcode,
    pub since_ms: i64,
    pub now_ms: i64,
    /// Incidents opened in the period.
    pub incidents: usize,
    /// Of those, how many are not resolved at `now_ms`.
    pub open: usize,
    /// Mean time to acknowledge, over those acknowledged by `now_ms`.
    pub mtta_secs: Option<f64>,
    /// Mean time to resolve (from opening), over those resolved by `now_ms`.
    pub mttr_secs: Option<f64>,
    /// The alarms that opened the most incidents: up to 5, most first, ties by name.
    pub noisiest: Vec<(String, usize)>,
}

/// Summarises the incidents of `appcode` and everything below it (an incident counts when
/// its Appcode [is within](Tree::is_within) the scope) opened between `since_ms` and
/// `now_ms` inclusive.
///
/// Timestamps after `now_ms` are treated as not happened yet, so a report "as of" a past
/// moment is reproducible. An acknowledgement or resolution stamped before the opening is
/// inconsistent data and left out of the means rather than counted as negative.
pub fn report(
    tree: &Tree,
    appcode: &str,
    incidents: &[IncidentRecord],
    since_ms: i64,
    now_ms: i64,
) -> Result<Report> {
    let scope = tree
        .get(appcode)
        .ok_or_else(|| OwnershipError::UnknownAppcode(appcode.to_string()))?;
    // One subtree walk, then a set lookup per incident instead of a walk per incident.
    let subtree: HashSet<Appcode> = tree.subtree(appcode).into_iter().collect();

    let mut count = 0;
    let mut open = 0;
    let mut ack = Mean::default();
    let mut resolve = Mean::default();
    let mut per_alarm: HashMap<&str, usize> = HashMap::new();
    let in_period = incidents.iter().filter(|i| {
        (since_ms..=now_ms).contains(&i.opened_at_ms)
            && i.appcode.as_ref().is_some_and(|c| subtree.contains(c))
    });
    for incident in in_period {
        count += 1;
        *per_alarm.entry(&incident.alarm_name).or_default() += 1;
        let happened = |at: Option<i64>| at.filter(|&t| t <= now_ms);
        if let Some(at) = happened(incident.acknowledged_at_ms) {
            ack.add(incident.opened_at_ms, at);
        }
        match happened(incident.resolved_at_ms) {
            Some(at) => resolve.add(incident.opened_at_ms, at),
            None => open += 1,
        }
    }

    let mut noisiest: Vec<(String, usize)> = per_alarm
        .into_iter()
        .map(|(name, n)| (name.to_string(), n))
        .collect();
    noisiest.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    noisiest.truncate(NOISIEST);

    Ok(Report {
        appcode: scope.appcode.clone(),
        since_ms,
        now_ms,
        incidents: count,
        open,
        mtta_secs: ack.secs(),
        mttr_secs: resolve.secs(),
        noisiest,
    })
}

#[derive(Default)]
struct Mean {
    total_ms: i128,
    n: u32,
}

impl Mean {
    fn add(&mut self, from_ms: i64, to_ms: i64) {
        if to_ms >= from_ms {
            // i128: a sum of i64 spans cannot overflow it.
            self.total_ms += i128::from(to_ms) - i128::from(from_ms);
            self.n += 1;
        }
    }

    fn secs(&self) -> Option<f64> {
        (self.n > 0).then(|| self.total_ms as f64 / f64::from(self.n) / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AppNode;

    fn code(s: &str) -> Appcode {
        Appcode::parse(s).unwrap()
    }

    fn incident(
        app: Option<&str>,
        alarm: &str,
        opened: i64,
        ack: Option<i64>,
        res: Option<i64>,
    ) -> IncidentRecord {
        IncidentRecord {
            appcode: app.map(code),
            alarm_name: alarm.into(),
            opened_at_ms: opened,
            acknowledged_at_ms: ack,
            resolved_at_ms: res,
        }
    }

    fn tree() -> Tree {
        let mut tree = Tree::new();
        tree.add(AppNode::new(code("bu"), "BU", "business_unit"))
            .unwrap();
        for (c, p) in [
            ("dept", "bu"),
            ("app_a", "dept"),
            ("app_b", "dept"),
            ("other", "bu"),
        ] {
            let mut node = AppNode::new(code(c), c, "application");
            node.parent = Some(code(p));
            tree.add(node).unwrap();
        }
        tree
    }

    #[test]
    fn counts_the_subtree_in_the_period() {
        let tree = tree();
        let incidents = [
            incident(Some("app_a"), "cpu", 1_000, Some(61_000), Some(121_000)),
            incident(Some("app_b"), "cpu", 2_000, Some(32_000), None),
            incident(Some("app_b"), "disk", 3_000, None, None),
            incident(Some("other"), "cpu", 4_000, None, None),
            incident(None, "cpu", 5_000, None, None),
            incident(Some("app_a"), "cpu", 999, None, None), // before the period
            incident(Some("app_a"), "cpu", 200_001, None, None), // after now
            incident(Some("app_a"), "late", 9_000, Some(300_000), Some(300_000)), // acts after now
        ];
        let r = report(&tree, "dept", &incidents, 1_000, 200_000).unwrap();
        assert_eq!(r.incidents, 4);
        assert_eq!(r.open, 3);
        // Acknowledged by now: 60 s and 30 s.
        assert_eq!(r.mtta_secs, Some(45.0));
        assert_eq!(r.mttr_secs, Some(120.0));
        assert_eq!(
            r.noisiest,
            [
                ("cpu".to_string(), 2),
                ("disk".to_string(), 1),
                ("late".to_string(), 1)
            ]
        );

        let r = report(&tree, "bu", &incidents, 1_000, 200_000).unwrap();
        assert_eq!((r.incidents, r.open), (5, 4));
        let r = report(&tree, "bu", &incidents, 1_000, 400_000).unwrap();
        assert_eq!((r.incidents, r.open), (6, 4));
        let r = report(&tree, "app_b", &incidents, 0, 0).unwrap();
        assert_eq!((r.incidents, r.mtta_secs, r.mttr_secs), (0, None, None));
        assert!(report(&tree, "nope", &incidents, 0, 1).is_err());
    }

    #[test]
    fn noisiest_keeps_five_and_ignores_bad_times() {
        let tree = tree();
        let mut incidents = Vec::new();
        for (i, name) in ["f", "e", "d", "c", "b", "a", "a"].iter().enumerate() {
            incidents.push(incident(
                Some("app_a"),
                name,
                100,
                Some(50),
                Some(100 + i as i64 * 1000),
            ));
        }
        let r = report(&tree, "app_a", &incidents, 0, 100_000).unwrap();
        let names: Vec<&str> = r.noisiest.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "d", "e"]);
        assert_eq!(r.mtta_secs, None); // acknowledged before opening: inconsistent, skipped
        assert_eq!(r.mttr_secs, Some(3.0));
    }
}
