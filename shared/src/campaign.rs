//! Rules about a campaign that every stage must apply the same way: what a
//! campaign id may be, and which arms (with which weights) a campaign has.
//!
//! - **Campaign ids** name output directories (`out/<campaign-id>/`), queue
//!   message ids and cache keys, so they are names, never paths: one ASCII
//!   letter or digit, then up to 63 letters, digits, `.`, `_` or `-`. Every
//!   message field that carries one is checked as it is decoded
//!   (`deserialize_campaign_id`), so a worker dead-letters a message with a bad
//!   id, naming it, before any stage code sees it; `cpo run` and `cpo enqueue`
//!   refuse it up front.
//! - **Arms** are `control` first, then one per tone, in the campaign's order.
//!   `tones` left out means the defaults (`model::default_tones`); `tones: []`
//!   is an error, not "no treatment" or "the defaults" (a campaign that asks
//!   for no tones has most likely lost them). A tone is a non-blank name with
//!   no surrounding spaces, distinct from the others and from `control`
//!   (ignoring case). `arm_weights` may only name arms; a missing weight is
//!   1.0; weights are finite, `>= 0`, and not all 0. Generation, experimentation
//!   and the `cpo run` summary all read the arms from `Arms::of`.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

use crate::model::{CONTROL_ARM, CampaignContext, CampaignRequest};

/// `campaign_id` as a regular expression (documented in the JSON Schemas).
pub const CAMPAIGN_ID_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$";

const MAX_CAMPAIGN_ID: usize = 64;
const MAX_TONE: usize = 64;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CampaignError {
    #[error(
        "campaign_id {id:?} is not a valid campaign id: {why} (ids are 1-64 characters: \
         a letter or digit, then letters, digits, `.`, `_` or `-`)"
    )]
    BadId { id: String, why: &'static str },
    #[error(
        "tones is empty: list at least one tone, or leave `tones` out for the defaults ({defaults})"
    )]
    NoTones { defaults: String },
    #[error("tone {tone:?}: {why}")]
    BadTone { tone: String, why: &'static str },
    #[error("tone `{tone}` is listed twice (tones must be distinct, ignoring case)")]
    DuplicateTone { tone: String },
    #[error("tone `{tone}` clashes with the control arm; rename it")]
    ToneIsControl { tone: String },
    #[error("arm_weights names `{arm}`, which is not an arm of this campaign (arms: {known})")]
    UnknownArm { arm: String, known: String },
    #[error("arm weight of `{arm}` is {weight}; weights must be finite and >= 0")]
    InvalidWeight { arm: String, weight: f64 },
    #[error("every arm has weight 0; at least one arm needs a positive weight")]
    AllZero,
}

/// Check a campaign id against `CAMPAIGN_ID_PATTERN`.
pub fn check_campaign_id(id: &str) -> Result<(), CampaignError> {
    let bad = |why| {
        Err(CampaignError::BadId {
            // Cut, so a hostile id cannot bloat a dead letter.
            id: id.chars().take(80).collect(),
            why,
        })
    };
    let bytes = id.as_bytes();
    match bytes.first() {
        None => return bad("it is empty"),
        Some(first) if !first.is_ascii_alphanumeric() => {
            return bad("it must start with a letter or digit");
        }
        Some(_) => {}
    }
    if bytes.len() > MAX_CAMPAIGN_ID {
        return bad("it is longer than 64 characters");
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad("it holds a character other than letters, digits, `.`, `_` and `-`");
    }
    Ok(())
}

/// `#[serde(deserialize_with)]` for every `campaign_id` field of a message:
/// a bad id fails decoding, naming the id and the rule.
pub fn deserialize_campaign_id<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<String, D::Error> {
    let id = String::deserialize(deserializer)?;
    check_campaign_id(&id).map_err(serde::de::Error::custom)?;
    Ok(id)
}

/// The arms of a campaign: `control`, then one per tone, each with its weight.
#[derive(Debug, Clone, PartialEq)]
pub struct Arms {
    names: Vec<String>,
    weights: Vec<f64>,
}

impl Arms {
    /// The arms of `tones` and `arm_weights`, by the rule in the module doc.
    pub fn of(
        tones: &[String],
        arm_weights: &BTreeMap<String, f64>,
    ) -> Result<Self, CampaignError> {
        if tones.is_empty() {
            return Err(CampaignError::NoTones {
                defaults: crate::model::default_tones().join(", "),
            });
        }
        let mut names = Vec::with_capacity(tones.len() + 1);
        names.push(CONTROL_ARM.to_string());
        for tone in tones {
            check_tone(tone)?;
            if tone.eq_ignore_ascii_case(CONTROL_ARM) {
                return Err(CampaignError::ToneIsControl { tone: tone.clone() });
            }
            if names[1..].iter().any(|n| n.eq_ignore_ascii_case(tone)) {
                return Err(CampaignError::DuplicateTone { tone: tone.clone() });
            }
            names.push(tone.clone());
        }
        if let Some(unknown) = arm_weights.keys().find(|k| !names.contains(k)) {
            return Err(CampaignError::UnknownArm {
                arm: unknown.clone(),
                known: names.join(", "),
            });
        }
        let weights = names
            .iter()
            .map(|arm| {
                let weight = arm_weights.get(arm).copied().unwrap_or(1.0);
                if weight.is_finite() && weight >= 0.0 {
                    Ok(weight)
                } else {
                    Err(CampaignError::InvalidWeight {
                        arm: arm.clone(),
                        weight,
                    })
                }
            })
            .collect::<Result<Vec<f64>, _>>()?;
        if !weights.iter().any(|w| *w > 0.0) {
            return Err(CampaignError::AllZero);
        }
        Ok(Self { names, weights })
    }

    /// Arm names, `control` first.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The treatment arms: one per tone, in the campaign's order.
    pub fn tones(&self) -> &[String] {
        &self.names[1..]
    }

    /// Each arm's weight, in the order of `names`.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// Arm name to weight, as summaries show it.
    pub fn weight_map(&self) -> BTreeMap<String, f64> {
        self.names
            .iter()
            .cloned()
            .zip(self.weights.iter().copied())
            .collect()
    }
}

fn check_tone(tone: &str) -> Result<(), CampaignError> {
    let why = if tone.trim().is_empty() {
        "is blank"
    } else if tone.trim() != tone {
        "has leading or trailing spaces"
    } else if tone.chars().any(char::is_control) {
        "holds a control character"
    } else if tone.len() > MAX_TONE {
        "is longer than 64 bytes"
    } else {
        return Ok(());
    };
    Err(CampaignError::BadTone {
        tone: tone.chars().take(80).collect(),
        why,
    })
}

impl CampaignContext {
    pub fn arms(&self) -> Result<Arms, CampaignError> {
        Arms::of(&self.tones, &self.arm_weights)
    }
}

impl CampaignRequest {
    pub fn arms(&self) -> Result<Arms, CampaignError> {
        Arms::of(&self.tones, &self.arm_weights)
    }

    /// Everything a campaign must satisfy before any stage works on it.
    pub fn validate(&self) -> Result<(), CampaignError> {
        check_campaign_id(&self.campaign_id)?;
        self.arms().map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn arms(tones: &[&str], weights: &[(&str, f64)]) -> Result<Arms, CampaignError> {
        let weights = weights.iter().map(|(a, w)| (a.to_string(), *w)).collect();
        Arms::of(&strings(tones), &weights)
    }

    #[test]
    fn campaign_ids_are_names_not_paths() {
        for good in ["autumn-2026", "A", "q4.promo_v2", &"x".repeat(64)] {
            assert_eq!(check_campaign_id(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "../../x",
            "/tmp/x",
            "a/b",
            ".hidden",
            "-flag",
            "spring sale",
            "caf\u{e9}",
            "a\\b",
            &"x".repeat(65),
        ] {
            let err = check_campaign_id(bad).unwrap_err().to_string();
            assert!(err.contains("not a valid campaign id"), "{bad}: {err}");
        }
        let err = check_campaign_id("../../x").unwrap_err().to_string();
        assert!(
            err.contains("\"../../x\"") && err.contains("start with"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_id_fails_decoding_with_the_reason() {
        #[derive(Debug, Deserialize)]
        struct Message {
            #[serde(deserialize_with = "deserialize_campaign_id")]
            #[allow(dead_code)]
            campaign_id: String,
        }
        let err = serde_json::from_str::<Message>(r#"{"campaign_id":"/tmp/x"}"#).unwrap_err();
        assert!(
            err.to_string()
                .contains("\"/tmp/x\" is not a valid campaign id"),
            "{err}"
        );
        assert!(serde_json::from_str::<Message>(r#"{"campaign_id":"ok-1"}"#).is_ok());
    }

    #[test]
    fn arms_are_control_then_the_tones_with_default_weights() {
        let plan = arms(&["urgent", "friendly"], &[("control", 3.0)]).unwrap();
        assert_eq!(plan.names(), ["control", "urgent", "friendly"]);
        assert_eq!(plan.tones(), ["urgent", "friendly"]);
        assert_eq!(plan.weights(), [3.0, 1.0, 1.0]);
        assert_eq!(plan.weight_map()["urgent"], 1.0);
    }

    #[test]
    fn empty_tones_are_an_error_everywhere() {
        let err = arms(&[], &[]).unwrap_err();
        assert!(matches!(err, CampaignError::NoTones { .. }));
        let message = err.to_string();
        assert!(
            message.contains("tones is empty") && message.contains("urgent, informational"),
            "{message}"
        );
    }

    #[test]
    fn each_bad_tone_or_weight_is_named() {
        type Case<'a> = (&'a [&'a str], &'a [(&'a str, f64)], &'a str);
        let cases: [Case; 9] = [
            (&[""], &[], "tone \"\": is blank"),
            (&[" urgent"], &[], "leading or trailing spaces"),
            (&["urgent", "Urgent"], &[], "`Urgent` is listed twice"),
            (&["Control"], &[], "`Control` clashes with the control arm"),
            (&["a\nb"], &[], "control character"),
            (&["urgent"], &[("bold", 1.0)], "`bold`, which is not an arm"),
            (&["urgent"], &[("urgent", -1.0)], "`urgent` is -1"),
            (&["urgent"], &[("control", f64::NAN)], "`control` is NaN"),
            (
                &["urgent"],
                &[("control", 0.0), ("urgent", 0.0)],
                "every arm has weight 0",
            ),
        ];
        for (tones, weights, expected) in cases {
            let err = arms(tones, weights).unwrap_err().to_string();
            assert!(err.contains(expected), "{tones:?}: {err}");
        }
    }
}
