//! The segment rule set: ordered rules over RFM features, first match wins,
//! everyone else lands in the default segment.
//!
//! Rules come from YAML (`data/segments.yaml` is the bundled set, also embedded
//! here) and are validated when loaded, so a typo in a feature or operator is an
//! error at startup that names the rule and the key, never a silent non-match.

mod load;

use std::path::Path;

use cpo_shared::model::Customer;

/// The bundled rule set, used when no rules file is configured.
pub const DEFAULT_RULES_YAML: &str = include_str!("../../../../data/segments.yaml");

/// Features a condition may test. `engagement` is the mean of open and click rate.
pub const FEATURE_NAMES: &[&str] = &[
    "avg_order_value",
    "last_engagement_days",
    "purchase_frequency",
    "engagement",
    "age",
    "historical_open_rate",
    "historical_click_rate",
    "tier",
];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RulesError {
    #[error("rules file {path}: {message}")]
    Read { path: String, message: String },
    #[error("segment rules: {0}")]
    Yaml(String),
    #[error("segment rules: unsupported version {0}, expected 1")]
    Version(u32),
    #[error("segment rules: rule {position} has an empty name")]
    EmptyName { position: usize },
    #[error("segment rules: segment name {0:?} is used more than once")]
    DuplicateName(String),
    #[error("rule {rule:?}: has no conditions; a catch-all belongs in `default`")]
    NoConditions { rule: String },
    #[error("rule {rule:?}: unknown feature {key:?} (known: {known})", known = FEATURE_NAMES.join(", "))]
    UnknownFeature { rule: String, key: String },
    #[error("rule {rule:?}, key {key:?}: unknown operator {op:?} (use one of > >= < <= == !=)")]
    UnknownOperator {
        rule: String,
        key: String,
        op: String,
    },
    #[error("rule {rule:?}, key {key:?}: {message}")]
    BadCondition {
        rule: String,
        key: String,
        message: String,
    },
}

/// What a rule can see of a customer; borrowed so evaluation allocates nothing.
#[derive(Debug, Clone, Copy)]
pub struct Features<'a> {
    pub avg_order_value: f64,
    pub last_engagement_days: u32,
    pub purchase_frequency: u32,
    pub age: u32,
    pub historical_open_rate: f64,
    pub historical_click_rate: f64,
    pub tier: &'a str,
}

impl Features<'_> {
    /// Same definition as `Customer::engagement`.
    pub fn engagement(&self) -> f64 {
        (self.historical_open_rate + self.historical_click_rate) / 2.0
    }
}

impl<'a> From<&'a Customer> for Features<'a> {
    fn from(c: &'a Customer) -> Self {
        Self {
            avg_order_value: c.avg_order_value,
            last_engagement_days: c.last_engagement_days,
            purchase_frequency: c.purchase_frequency,
            age: c.age,
            historical_open_rate: c.historical_open_rate,
            historical_click_rate: c.historical_click_rate,
            tier: &c.tier,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Feature {
    AvgOrderValue,
    LastEngagementDays,
    PurchaseFrequency,
    Engagement,
    Age,
    OpenRate,
    ClickRate,
    Tier,
}

impl Feature {
    fn parse(key: &str) -> Option<Self> {
        Some(match key {
            "avg_order_value" => Self::AvgOrderValue,
            "last_engagement_days" => Self::LastEngagementDays,
            "purchase_frequency" => Self::PurchaseFrequency,
            "engagement" => Self::Engagement,
            "age" => Self::Age,
            "historical_open_rate" => Self::OpenRate,
            "historical_click_rate" => Self::ClickRate,
            "tier" => Self::Tier,
            _ => return None,
        })
    }

    fn number(self, f: &Features) -> f64 {
        match self {
            Self::AvgOrderValue => f.avg_order_value,
            Self::LastEngagementDays => f64::from(f.last_engagement_days),
            Self::PurchaseFrequency => f64::from(f.purchase_frequency),
            Self::Engagement => f.engagement(),
            Self::Age => f64::from(f.age),
            Self::OpenRate => f.historical_open_rate,
            Self::ClickRate => f.historical_click_rate,
            // Tier conditions carry a word operand and never reach here.
            Self::Tier => f64::NAN,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl Op {
    fn parse(op: &str) -> Option<Self> {
        Some(match op {
            ">" => Self::Gt,
            ">=" => Self::Ge,
            "<" => Self::Lt,
            "<=" => Self::Le,
            "==" => Self::Eq,
            "!=" => Self::Ne,
            _ => return None,
        })
    }

    fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Self::Gt => left > right,
            Self::Ge => left >= right,
            Self::Lt => left < right,
            Self::Le => left <= right,
            Self::Eq => left == right,
            Self::Ne => left != right,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Condition {
    Number {
        feature: Feature,
        op: Op,
        value: f64,
    },
    /// Tiers are names, not ranks, so only equality makes sense.
    Tier { equal: bool, value: String },
}

impl Condition {
    fn holds(&self, f: &Features) -> bool {
        match self {
            Self::Number { feature, op, value } => op.holds(feature.number(f), *value),
            Self::Tier { equal, value } => f.tier.trim().eq_ignore_ascii_case(value) == *equal,
        }
    }
}

/// A segment as the profiles describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentDef {
    pub name: String,
    pub description: String,
    pub traits: Vec<String>,
}

/// A validated rule set. Segment `i < rules.len()` belongs to rule `i`; the last is the default.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSet {
    segments: Vec<SegmentDef>,
    rules: Vec<Vec<Condition>>,
}

impl RuleSet {
    /// The bundled rules (`data/segments.yaml`, embedded at build time).
    pub fn bundled() -> Result<Self, RulesError> {
        Self::from_yaml(DEFAULT_RULES_YAML)
    }

    pub fn load(path: &Path) -> Result<Self, RulesError> {
        let text = std::fs::read_to_string(path).map_err(|e| RulesError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::from_yaml(&text).map_err(|e| RulesError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// Index of the segment of the first rule whose conditions all hold, else the default's.
    pub fn classify(&self, features: &Features) -> usize {
        self.rules
            .iter()
            .position(|conditions| conditions.iter().all(|c| c.holds(features)))
            .unwrap_or(self.rules.len())
    }

    /// Every segment in rule order, the default last.
    pub fn segments(&self) -> &[SegmentDef] {
        &self.segments
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(aov: f64, days: u32, freq: u32, open: f64, click: f64) -> Features<'static> {
        Features {
            avg_order_value: aov,
            last_engagement_days: days,
            purchase_frequency: freq,
            age: 40,
            historical_open_rate: open,
            historical_click_rate: click,
            tier: "gold",
        }
    }

    fn segment_of<'r>(rules: &'r RuleSet, f: Features) -> &'r str {
        &rules.segments()[rules.classify(&f)].name
    }

    #[test]
    fn bundled_rules_assign_the_documented_segments() {
        let rules = RuleSet::bundled().unwrap();
        let names: Vec<_> = rules.segments().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "High-Value Recent",
                "At-Risk",
                "New Customer",
                "Loyal Frequent",
                "Standard"
            ]
        );
        assert_eq!(
            segment_of(&rules, features(250.0, 10, 5, 0.3, 0.1)),
            "High-Value Recent"
        );
        assert_eq!(
            segment_of(&rules, features(80.0, 45, 8, 0.3, 0.1)),
            "At-Risk"
        );
        assert_eq!(
            segment_of(&rules, features(80.0, 10, 2, 0.3, 0.1)),
            "New Customer"
        );
        assert_eq!(
            segment_of(&rules, features(80.0, 10, 15, 0.6, 0.3)),
            "Loyal Frequent"
        );
        // engagement 0.4 exactly is not > 0.4
        assert_eq!(
            segment_of(&rules, features(80.0, 10, 15, 0.5, 0.3)),
            "Standard"
        );
        // boundaries are strict: 200 is not > 200, 30 days is neither < 30 nor > 30
        assert_eq!(
            segment_of(&rules, features(200.0, 10, 5, 0.3, 0.1)),
            "Standard"
        );
        assert_eq!(
            segment_of(&rules, features(80.0, 30, 8, 0.3, 0.1)),
            "Standard"
        );
        assert!(rules.segments().iter().all(|s| !s.traits.is_empty()));
    }

    #[test]
    fn first_matching_rule_wins() {
        // A big spender who is also lapsed and frequent matches both of the first two
        // rules; order decides.
        let rules = RuleSet::bundled().unwrap();
        let f = features(500.0, 10, 20, 0.9, 0.5);
        assert_eq!(segment_of(&rules, f), "High-Value Recent");
        let swapped = RuleSet::from_yaml(
            "rules:\n  - name: Loyal\n    when: {purchase_frequency: \"> 12\"}\n  - name: Big\n    when: {avg_order_value: \"> 200\"}\ndefault: {name: Rest}\n",
        )
        .unwrap();
        assert_eq!(segment_of(&swapped, f), "Loyal");
    }

    #[test]
    fn all_conditions_must_hold_including_lists_and_tier() {
        let rules = RuleSet::from_yaml(
            "rules:\n  - name: Young gold\n    when:\n      age: [\">= 18\", \"< 35\"]\n      tier: \"== Gold\"\n      engagement: \">= 0.5\"\ndefault: {name: Rest}\n",
        )
        .unwrap();
        let mut f = features(10.0, 1, 1, 0.6, 0.4);
        f.age = 30;
        assert_eq!(segment_of(&rules, f), "Young gold");
        f.age = 35;
        assert_eq!(segment_of(&rules, f), "Rest");
        f.age = 20;
        f.tier = "silver";
        assert_eq!(segment_of(&rules, f), "Rest");
        f.tier = "gold";
        f.historical_click_rate = 0.3;
        assert_eq!(segment_of(&rules, f), "Rest");
    }
}
