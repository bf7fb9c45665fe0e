//! The screen of merge values (first name, location, tier): the embedded
//! lexicons and personal-data detectors applied to each value a template will
//! insert, so a first name "Fuck" never becomes "Hi Fuck,".
//!
//! It runs per customer, so it is built for that: the values of a batch are
//! screened once each (`check_many`), and verdicts are remembered across
//! batches (first names, cities and tiers repeat a lot), in a bounded map that
//! is simply cleared when full.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::config::SafetyConfig;
use crate::error::SafetyError;
use crate::screen::{EmbeddedScreen, FindingKind, HarmCategory, ScreenRequest};

/// Verdicts kept across batches before the map is cleared.
const MEMO_ENTRIES: usize = 65_536;
/// Longer values are screened every time rather than remembered.
const MEMO_VALUE_BYTES: usize = 128;

/// Why a value was refused: labels only (`profanity`, `hate`, ...), never the value.
pub type Refusal = String;

pub struct MergeValueScreen {
    screen: EmbeddedScreen,
    memo: Mutex<HashMap<Box<str>, Option<Refusal>>>,
}

impl std::fmt::Debug for MergeValueScreen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MergeValueScreen(..)")
    }
}

impl MergeValueScreen {
    /// The embedded screen with the default configuration: merge values are
    /// customer data, so no contact detail is ever allowed in one.
    pub fn new() -> Result<Self, SafetyError> {
        Ok(Self {
            screen: EmbeddedScreen::new(&SafetyConfig::default())?,
            memo: Mutex::new(HashMap::new()),
        })
    }

    /// `None` when `value` may be inserted into a message; otherwise what was found.
    ///
    /// Stricter than a variant's verdict: a name has no reason to touch a harm
    /// lexicon at all, so any severity above zero refuses it, as does every
    /// policy finding except an unsubstantiated claim (which names cannot make).
    pub fn check(&self, value: &str) -> Option<Refusal> {
        if value.trim().is_empty() {
            return None;
        }
        let report = self.screen.screen_text(&ScreenRequest {
            subject: "",
            body: value,
        });
        let mut reasons: Vec<&'static str> = HarmCategory::ALL
            .into_iter()
            .filter(|c| c.get(&report.categories) > 0)
            .map(HarmCategory::name)
            .collect();
        for finding in &report.findings {
            let label = finding.kind.label();
            if finding.kind != FindingKind::UnsubstantiatedClaim && !reasons.contains(&label) {
                reasons.push(label);
            }
        }
        (!reasons.is_empty()).then(|| reasons.join(", "))
    }

    /// The verdict of every distinct value of `values`, each screened at most
    /// once (and not at all when an earlier batch already screened it).
    pub fn check_many<'a>(
        &self,
        values: impl IntoIterator<Item = &'a str>,
    ) -> HashMap<&'a str, Option<Refusal>> {
        let mut verdicts: HashMap<&'a str, Option<Refusal>> = HashMap::new();
        let mut unknown = Vec::new();
        {
            let memo = self.memo.lock().unwrap_or_else(|e| e.into_inner());
            for value in values {
                if verdicts.contains_key(value) {
                    continue;
                }
                match memo.get(value) {
                    Some(verdict) => {
                        verdicts.insert(value, verdict.clone());
                    }
                    None => {
                        verdicts.insert(value, None);
                        unknown.push(value);
                    }
                }
            }
        }
        if unknown.is_empty() {
            return verdicts;
        }
        // Screened outside the lock: other batches keep reading the memo.
        let screened: Vec<(&'a str, Option<Refusal>)> =
            unknown.into_iter().map(|v| (v, self.check(v))).collect();
        let mut memo = self.memo.lock().unwrap_or_else(|e| e.into_inner());
        for (value, verdict) in screened {
            if value.len() <= MEMO_VALUE_BYTES {
                if memo.len() >= MEMO_ENTRIES {
                    memo.clear();
                }
                memo.insert(value.into(), verdict.clone());
            }
            verdicts.insert(value, verdict);
        }
        verdicts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abusive_or_personal_values_are_refused_and_names_pass() {
        let screen = MergeValueScreen::new().unwrap();
        for bad in [
            "Fuck",
            "Fuck you, idiot",
            "f.u.c.k",
            "Sh1t",
            "ada@example.com",
            "+1 415 555 0100",
        ] {
            assert!(screen.check(bad).is_some(), "{bad:?} passed");
        }
        for good in [
            "Ada",
            "José",
            "Zoë",
            "Mary-Jane",
            "O'Brien",
            "Lyon",
            "São Paulo",
            "gold",
            "",
        ] {
            assert_eq!(screen.check(good), None, "{good:?} refused");
        }
        let reason = screen.check("Fuck you, idiot").unwrap();
        assert!(reason.contains("profanity"), "{reason}");
        assert!(
            !reason.to_lowercase().contains("fuck"),
            "the value leaked: {reason}"
        );
    }

    #[test]
    fn a_batch_screens_each_distinct_value_once_and_remembers_it() {
        let screen = MergeValueScreen::new().unwrap();
        let values = ["Ada", "Fuck", "Ada", "Lyon", "Fuck"];
        let verdicts = screen.check_many(values);
        assert_eq!(verdicts.len(), 3);
        assert!(verdicts["Fuck"].is_some());
        assert_eq!(verdicts["Ada"], None);
        assert_eq!(screen.memo.lock().unwrap().len(), 3);
        // the second batch is answered from memory, with the same verdicts
        assert_eq!(screen.check_many(values), verdicts);
    }
}
