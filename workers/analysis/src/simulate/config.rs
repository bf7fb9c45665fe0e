//! Simulator configuration (YAML or JSON). Effects are relative: `open: 0.1`
//! multiplies the open probability by 1.1.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{AnalysisError, Result};
use crate::events::time::parse_rfc3339;

/// Baseline probabilities before any arm or segment effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BaseRates {
    pub bounce: f64,
    pub open: f64,
    pub click_given_open: f64,
    pub conversion_given_click: f64,
    pub unsubscribe_given_open: f64,
    pub complaint_given_open: f64,
}

impl Default for BaseRates {
    /// Typical figures for a retail email campaign.
    fn default() -> Self {
        BaseRates {
            bounce: 0.01,
            open: 0.22,
            click_given_open: 0.15,
            conversion_given_click: 0.12,
            unsubscribe_given_open: 0.004,
            complaint_given_open: 0.0005,
        }
    }
}

/// Relative effects of an arm (or of an arm within a segment).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Effects {
    pub open: f64,
    pub click: f64,
    pub conversion: f64,
}

impl Effects {
    pub fn plus(self, other: Effects) -> Effects {
        Effects {
            open: self.open + other.open,
            click: self.click + other.click,
            conversion: self.conversion + other.conversion,
        }
    }
}

/// Everything the simulator needs besides the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimulationConfig {
    /// Used when the command line gives no seed.
    pub seed: Option<u64>,
    /// When the campaign was sent (RFC 3339).
    pub start: String,
    /// Length of the observation window; later events are not observed.
    pub days: u32,
    pub base: BaseRates,
    /// How much a customer's historical open rate (when the customer file has it)
    /// shapes their open probability, between 0 (not at all) and 1.
    pub history_weight: f64,
    /// Arm name -> effects; arms not listed have no effect (control never has one).
    pub arm_effects: BTreeMap<String, Effects>,
    /// Segment -> arm -> effects added to the arm's own.
    pub segment_effects: BTreeMap<String, BTreeMap<String, Effects>>,
}

impl Default for SimulationConfig {
    /// Modest, plausible effects: a friendly tone lifts opens by 10%, urgency
    /// lifts opens and clicks by 5%, an informational tone does nothing.
    fn default() -> Self {
        let arm_effects = BTreeMap::from([
            (
                "friendly".to_string(),
                Effects {
                    open: 0.10,
                    ..Effects::default()
                },
            ),
            (
                "urgent".to_string(),
                Effects {
                    open: 0.05,
                    click: 0.05,
                    conversion: 0.0,
                },
            ),
            ("informational".to_string(), Effects::default()),
        ]);
        SimulationConfig {
            seed: None,
            start: "2025-01-06T09:00:00Z".into(),
            days: 7,
            base: BaseRates::default(),
            history_weight: 0.6,
            arm_effects,
            segment_effects: BTreeMap::new(),
        }
    }
}

fn check_probability(name: &str, value: f64) -> Result<()> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(AnalysisError::InvalidParameter(format!(
            "simulation `{name}` must be a probability in [0, 1], got {value}"
        )))
    }
}

fn check_effects(name: &str, effects: &Effects) -> Result<()> {
    for (kind, value) in [
        ("open", effects.open),
        ("click", effects.click),
        ("conversion", effects.conversion),
    ] {
        if !(value.is_finite() && value > -1.0) {
            return Err(AnalysisError::InvalidParameter(format!(
                "simulation effect `{name}.{kind}` must be above -1 (a relative change), got {value}"
            )));
        }
    }
    Ok(())
}

impl SimulationConfig {
    /// Reads a config; `.json` files as JSON, anything else as YAML.
    pub fn load(path: &Path) -> Result<SimulationConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| AnalysisError::io(path, e))?;
        let config: SimulationConfig = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| AnalysisError::parse(path, e.to_string()))?
        } else {
            serde_norway::from_str(&text).map_err(|e| AnalysisError::parse(path, e.to_string()))?
        };
        config.validate()?;
        Ok(config)
    }

    /// Unix seconds of `start`.
    pub fn start_seconds(&self) -> Result<i64> {
        parse_rfc3339(&self.start).ok_or_else(|| {
            AnalysisError::InvalidParameter(format!(
                "simulation `start` `{}` is not RFC 3339",
                self.start
            ))
        })
    }

    pub fn validate(&self) -> Result<()> {
        self.start_seconds()?;
        if self.days == 0 {
            return Err(AnalysisError::InvalidParameter(
                "simulation `days` must be at least 1".into(),
            ));
        }
        let b = &self.base;
        for (name, value) in [
            ("base.bounce", b.bounce),
            ("base.open", b.open),
            ("base.click_given_open", b.click_given_open),
            ("base.conversion_given_click", b.conversion_given_click),
            ("base.unsubscribe_given_open", b.unsubscribe_given_open),
            ("base.complaint_given_open", b.complaint_given_open),
            ("history_weight", self.history_weight),
        ] {
            check_probability(name, value)?;
        }
        for (arm, effects) in &self.arm_effects {
            check_effects(arm, effects)?;
        }
        for (segment, arms) in &self.segment_effects {
            for (arm, effects) in arms {
                check_effects(&format!("{segment}.{arm}"), effects)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_overrides_defaults_and_rejects_typos() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sim.yaml");
        std::fs::write(&path, "days: 3\nbase:\n  open: 0.3\narm_effects:\n  urgent:\n    open: 0.2\nsegment_effects:\n  Dormant:\n    urgent:\n      click: -0.5\n").unwrap();
        let config = SimulationConfig::load(&path).unwrap();
        assert_eq!(config.days, 3);
        assert_eq!(config.base.open, 0.3);
        assert_eq!(config.base.bounce, BaseRates::default().bounce);
        assert_eq!(config.arm_effects["urgent"].open, 0.2);
        assert_eq!(config.segment_effects["Dormant"]["urgent"].click, -0.5);

        std::fs::write(&path, "base:\n  opne: 0.3\n").unwrap();
        assert!(SimulationConfig::load(&path).is_err());
        std::fs::write(&path, "base:\n  open: 1.3\n").unwrap();
        assert!(
            SimulationConfig::load(&path)
                .unwrap_err()
                .to_string()
                .contains("base.open")
        );
    }

    #[test]
    fn json_configs_work_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sim.json");
        std::fs::write(&path, r#"{"arm_effects": {"friendly": {"open": 0.5}}}"#).unwrap();
        let config = SimulationConfig::load(&path).unwrap();
        assert_eq!(config.arm_effects.len(), 1);
        assert_eq!(config.arm_effects["friendly"].open, 0.5);
    }
}
