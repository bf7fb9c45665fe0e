//! Reading and validating a rule set from YAML.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;
use serde_norway::Value;

use super::{Condition, Feature, Op, RuleSet, RulesError, SegmentDef};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default = "version_one")]
    version: u32,
    #[serde(default)]
    rules: Vec<RuleDoc>,
    default: SegmentDoc,
}

fn version_one() -> u32 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDoc {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    traits: Vec<String>,
    /// Feature -> one condition (`"> 200"`) or several (`[">= 18", "< 35"]`), all of which must hold.
    when: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SegmentDoc {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    traits: Vec<String>,
}

impl RuleSet {
    pub fn from_yaml(text: &str) -> Result<Self, RulesError> {
        let file: RuleFile =
            serde_norway::from_str(text).map_err(|e| RulesError::Yaml(e.to_string()))?;
        if file.version != 1 {
            return Err(RulesError::Version(file.version));
        }
        let mut names = HashSet::new();
        let mut segments = Vec::with_capacity(file.rules.len() + 1);
        let mut rules = Vec::with_capacity(file.rules.len());
        for (position, doc) in file.rules.into_iter().enumerate() {
            let name = checked_name(doc.name, position + 1, &mut names)?;
            if doc.when.is_empty() {
                return Err(RulesError::NoConditions { rule: name });
            }
            let mut conditions = Vec::new();
            for (key, value) in &doc.when {
                parse_conditions(&name, key, value, &mut conditions)?;
            }
            rules.push(conditions);
            segments.push(SegmentDef {
                name,
                description: doc.description,
                traits: doc.traits,
            });
        }
        let default_position = segments.len() + 1;
        segments.push(SegmentDef {
            name: checked_name(file.default.name, default_position, &mut names)?,
            description: file.default.description,
            traits: file.default.traits,
        });
        Ok(Self { segments, rules })
    }
}

fn checked_name(
    name: String,
    position: usize,
    seen: &mut HashSet<String>,
) -> Result<String, RulesError> {
    let name = name.trim().to_string();
    if name.is_empty() {
        return Err(RulesError::EmptyName { position });
    }
    if !seen.insert(name.clone()) {
        return Err(RulesError::DuplicateName(name));
    }
    Ok(name)
}

fn parse_conditions(
    rule: &str,
    key: &str,
    value: &Value,
    out: &mut Vec<Condition>,
) -> Result<(), RulesError> {
    let feature = Feature::parse(key).ok_or_else(|| RulesError::UnknownFeature {
        rule: rule.to_string(),
        key: key.to_string(),
    })?;
    let bad = |message: String| RulesError::BadCondition {
        rule: rule.to_string(),
        key: key.to_string(),
        message,
    };
    let texts: Vec<&str> = match value {
        Value::String(text) => vec![text],
        Value::Sequence(items) if !items.is_empty() => items
            .iter()
            .map(|item| {
                item.as_str().ok_or_else(|| {
                    bad(format!("expected a condition like \"> 200\", got {item:?}"))
                })
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(bad(format!(
                "expected a condition like \"> 200\" or a list of them, got {other:?}"
            )));
        }
    };
    for text in texts {
        out.push(parse_condition(rule, key, feature, text)?);
    }
    Ok(())
}

fn parse_condition(
    rule: &str,
    key: &str,
    feature: Feature,
    text: &str,
) -> Result<Condition, RulesError> {
    let text = text.trim();
    let split = text
        .find(|c| !matches!(c, '<' | '>' | '=' | '!'))
        .unwrap_or(text.len());
    let (op_text, operand) = (&text[..split], text[split..].trim());
    let bad = |message: String| RulesError::BadCondition {
        rule: rule.to_string(),
        key: key.to_string(),
        message,
    };
    if op_text.is_empty() {
        return Err(bad(format!(
            "{text:?} has no operator (write e.g. \"> 200\")"
        )));
    }
    let op = Op::parse(op_text).ok_or_else(|| RulesError::UnknownOperator {
        rule: rule.to_string(),
        key: key.to_string(),
        op: op_text.to_string(),
    })?;
    if operand.is_empty() {
        return Err(bad(format!("{text:?} has no value")));
    }
    if feature == Feature::Tier {
        let equal = match op {
            Op::Eq => true,
            Op::Ne => false,
            _ => {
                return Err(bad(format!(
                    "tier supports only == and !=, got {op_text:?}"
                )));
            }
        };
        let value = operand.trim_matches(|c| c == '"' || c == '\'').to_string();
        return Ok(Condition::Tier { equal, value });
    }
    let value: f64 = operand
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite())
        .ok_or_else(|| bad(format!("{operand:?} is not a finite number")))?;
    Ok(Condition::Number { feature, op, value })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::RuleSet;

    fn load_err(when: &str) -> RulesError {
        RuleSet::from_yaml(&format!(
            "rules:\n  - name: Whales\n    when: {when}\ndefault: {{name: Rest}}\n"
        ))
        .unwrap_err()
    }

    #[test]
    fn validation_names_the_rule_and_the_key() {
        let err = load_err("{avg_order_vlue: \"> 200\"}");
        assert_eq!(
            err,
            RulesError::UnknownFeature {
                rule: "Whales".into(),
                key: "avg_order_vlue".into()
            }
        );
        assert!(err.to_string().contains("avg_order_vlue"), "{err}");
        let err = load_err("{avg_order_value: \"=> 200\"}");
        assert_eq!(
            err,
            RulesError::UnknownOperator {
                rule: "Whales".into(),
                key: "avg_order_value".into(),
                op: "=>".into()
            }
        );
        for (when, fragment) in [
            ("{avg_order_value: \"200\"}", "no operator"),
            ("{avg_order_value: \"> lots\"}", "not a finite number"),
            ("{avg_order_value: \">\"}", "no value"),
            ("{avg_order_value: 200}", "expected a condition"),
            ("{tier: \"> gold\"}", "only == and !="),
        ] {
            let err = load_err(when);
            let text = err.to_string();
            assert!(
                text.contains("Whales") && text.contains(fragment),
                "{when}: {text}"
            );
        }
        assert_eq!(
            load_err("{}"),
            RulesError::NoConditions {
                rule: "Whales".into()
            }
        );
    }

    #[test]
    fn structural_errors_are_reported() {
        let typo = RuleSet::from_yaml(
            "rules:\n  - name: A\n    wen: {age: \"> 1\"}\ndefault: {name: B}\n",
        )
        .unwrap_err();
        assert!(typo.to_string().contains("wen"), "{typo}");
        let dup = RuleSet::from_yaml(
            "rules:\n  - name: A\n    when: {age: \"> 1\"}\ndefault: {name: A}\n",
        )
        .unwrap_err();
        assert_eq!(dup, RulesError::DuplicateName("A".into()));
        let version = RuleSet::from_yaml("version: 2\ndefault: {name: B}\n").unwrap_err();
        assert_eq!(version, RulesError::Version(2));
        let missing_default = RuleSet::from_yaml("rules: []\n").unwrap_err();
        assert!(
            missing_default.to_string().contains("default"),
            "{missing_default}"
        );
        // no rules at all is valid: everyone lands in the default segment
        let only_default = RuleSet::from_yaml("default: {name: Everyone}\n").unwrap();
        let anyone = crate::rules::Features {
            avg_order_value: 1.0,
            last_engagement_days: 1,
            purchase_frequency: 1,
            age: 30,
            historical_open_rate: 0.1,
            historical_click_rate: 0.1,
            tier: "gold",
        };
        assert_eq!(only_default.classify(&anyone), 0);
    }
}
