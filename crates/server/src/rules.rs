//! Rules: EventBridge patterns naming a playbook. Defaults cover alarm transitions from
//! CloudWatch, vigil's own alarms and Alertmanager; config adds or replaces by name.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use vigil_actions::{default_playbooks, Playbook, Step};
use vigil_pattern::Matcher;

use crate::config::{pattern_json, Config, ConfigError};

/// Sources whose events carry CloudWatch's alarm `detail` shape.
pub const ALARM_SOURCES: [&str; 3] = [
    "aws.cloudwatch",
    "vigil.alarms",
    vigil_ingest::alertmanager::SOURCE,
];

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub pattern: Value,
    pub playbook: String,
}

/// The default rules, as an operator would write them in config.
pub fn default_rules() -> Vec<Rule> {
    let alarm = |state: Value, previous: Option<Value>| {
        let mut detail = json!({"state": {"value": state}});
        if let Some(previous) = previous {
            detail["previousState"] = json!({"value": previous});
        }
        json!({
            "source": ALARM_SOURCES,
            "detail-type": [vigil_core::CLOUDWATCH_ALARM_STATE_CHANGE, vigil_core::ALARM_STATE_CHANGE],
            "detail": detail,
        })
    };
    vec![
        Rule {
            // Every transition into ALARM: OK→ALARM (the original design's pattern),
            // a new alarm's INSUFFICIENT_DATA→ALARM, and repeats.
            name: "alarm".into(),
            pattern: alarm(json!(["ALARM"]), None),
            playbook: "respond".into(),
        },
        Rule {
            name: "insufficient-data".into(),
            pattern: alarm(json!(["INSUFFICIENT_DATA"]), Some(json!(["OK"]))),
            playbook: "respond".into(),
        },
        Rule {
            name: "recovery".into(),
            pattern: alarm(json!(["OK"]), Some(json!(["ALARM", "INSUFFICIENT_DATA"]))),
            playbook: "recover".into(),
        },
        Rule {
            // An incident nobody acknowledged in time: tell the next level up the tree.
            name: "escalation".into(),
            pattern: json!({
                "source": [crate::escalation::SOURCE],
                "detail-type": [crate::escalation::UNACKNOWLEDGED],
            }),
            playbook: "escalate".into(),
        },
    ]
}

/// Compiled rules: one matcher for all patterns, so an event costs one pass, not one per rule.
pub struct Rules {
    matcher: Matcher<usize>,
    rules: Vec<Rule>,
    playbooks: BTreeMap<String, Playbook>,
}

impl Rules {
    pub fn from_config(config: &Config) -> Result<Rules, ConfigError> {
        let mut playbooks: BTreeMap<String, Playbook> = default_playbooks().into_iter().collect();
        playbooks.extend(config.playbooks.clone());

        let mut rules = default_rules();
        for configured in &config.rules {
            rules.retain(|r| r.name != configured.name);
            if configured.enabled {
                let pattern = pattern_json(&configured.pattern).map_err(|e| {
                    ConfigError::Invalid(format!("rule `{}`: {e}", configured.name))
                })?;
                rules.push(Rule {
                    name: configured.name.clone(),
                    pattern,
                    playbook: configured.playbook.clone(),
                });
            }
        }
        let mut matcher = Matcher::new();
        for (index, rule) in rules.iter().enumerate() {
            if !playbooks.contains_key(&rule.playbook) {
                return Err(ConfigError::Invalid(format!(
                    "rule `{}` names playbook `{}`, which is not defined (known: {})",
                    rule.name,
                    rule.playbook,
                    playbooks.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
            matcher
                .add(index, &rule.pattern)
                .map_err(|e| ConfigError::Invalid(format!("rule `{}`: {e}", rule.name)))?;
        }
        Ok(Rules {
            matcher,
            rules,
            playbooks,
        })
    }

    /// Names of the matching rules and the steps their playbooks add up to, in rule order,
    /// each step once.
    pub fn plan(&self, event: &Value) -> (Vec<&str>, Vec<Step>) {
        let mut matched = self.matcher.matches_value(event);
        matched.sort_unstable();
        let mut names = Vec::with_capacity(matched.len());
        let mut steps: Vec<Step> = Vec::new();
        for index in matched {
            let Some(rule) = self.rules.get(index) else {
                continue;
            };
            names.push(rule.name.as_str());
            if let Some(playbook) = self.playbooks.get(&rule.playbook) {
                for step in &playbook.steps {
                    if !steps.contains(step) {
                        steps.push(step.clone());
                    }
                }
            }
        }
        (names, steps)
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/../../../shared/fixtures/events/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("fixture {path} is missing: {e}"));
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn defaults_route_cloudwatch_transitions() {
        let rules = Rules::from_config(&Config::default()).unwrap();
        let (names, steps) = rules.plan(&fixture("cloudwatch-alarm-ok-to-alarm.json"));
        assert_eq!(names, vec!["alarm"]);
        assert_eq!(steps[0], Step::Incident);
        assert!(steps.contains(&Step::Diagnose { probes: vec![] }));
        let (names, steps) = rules.plan(&fixture("cloudwatch-alarm-alarm-to-ok.json"));
        assert_eq!(names, vec!["recovery"]);
        assert_eq!(
            steps,
            vec![
                Step::Resolve,
                Step::Ticket,
                Step::Notify {
                    to: vec!["owners".into(), "oncall".into()]
                }
            ]
        );
        let (names, _) = rules.plan(&fixture("cloudwatch-alarm-ok-to-insufficient-data.json"));
        assert_eq!(names, vec!["insufficient-data"]);
        let (names, steps) =
            rules.plan(&json!({"source": "aws.ec2", "detail-type": "x", "detail": {}}));
        assert!(names.is_empty() && steps.is_empty());
    }

    #[test]
    fn config_replaces_and_disables_rules() {
        let config = Config::parse(
            "[[rules]]\nname = \"alarm\"\npattern = '{\"source\": [\"aws.cloudwatch\"]}'\nplaybook = \"respond\"\nenabled = false\n",
        )
        .unwrap();
        let rules = Rules::from_config(&config).unwrap();
        assert_eq!(rules.len(), default_rules().len() - 1);
        assert!(rules
            .plan(&fixture("cloudwatch-alarm-ok-to-alarm.json"))
            .0
            .is_empty());
    }

    #[test]
    fn bad_rules_are_config_errors() {
        let config = Config::parse(
            "[[rules]]\nname = \"x\"\npattern = '{\"a\": 1}'\nplaybook = \"respond\"\n",
        )
        .unwrap();
        let err = Rules::from_config(&config).err().unwrap().to_string();
        assert!(err.contains("rule `x`"), "{err}");
        let config = Config::parse(
            "[[rules]]\nname = \"y\"\npattern = '{\"a\": [1]}'\nplaybook = \"nope\"\n",
        )
        .unwrap();
        let err = Rules::from_config(&config).err().unwrap().to_string();
        assert!(err.contains("playbook `nope`"), "{err}");
    }

    #[test]
    fn rules_aws_finds_too_complex_are_refused_with_its_reason() {
        let config = Config::parse(
            "[[rules]]\nname = \"uploads\"\nplaybook = \"respond\"\n\
             pattern = { detail = { key = [{ wildcard = \"*/in/*.tif\" }, { wildcard = \"*/in/*.tiff\" }, { wildcard = \"*/in/*.svs\" }] } }\n",
        )
        .unwrap();
        let err = Rules::from_config(&config).err().unwrap().to_string();
        assert_eq!(
            err,
            "config: rule `uploads`: invalid pattern at `detail.key`: Rule is too complex - try using fewer wildcard characters or fewer repeating character sequences after a wildcard character"
        );
    }
}
