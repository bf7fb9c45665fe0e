//! Who the copy speaks to and how: the segment's kind, the tone's kind, and the
//! seeded chooser that picks among phrasings.

use cpo_shared::envelope::derive_id;
use cpo_shared::model::SegmentProfile;
use cpo_shared::phrasing::Framing;
pub use cpo_shared::phrasing::ToneKind;

/// The framing a segment gets. Segment names come from segmentation's rules;
/// anything unrecognised is `Neutral`, never an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    /// High-value, recently active customers: premium framing.
    Premium,
    /// Customers drifting away: win-back framing.
    WinBack,
    /// Recently acquired customers: welcome framing.
    Welcome,
    /// Loyal, frequent buyers: thank-you framing.
    Thanks,
    Neutral,
}

impl SegmentKind {
    /// Classify by the segment's name first, then its traits.
    pub fn of(segment: &SegmentProfile) -> Self {
        let from_name = Self::from_words(&segment.name);
        if from_name != SegmentKind::Neutral {
            return from_name;
        }
        segment
            .traits
            .iter()
            .map(|t| Self::from_words(t))
            .find(|kind| *kind != SegmentKind::Neutral)
            .unwrap_or(SegmentKind::Neutral)
    }

    fn from_words(text: &str) -> Self {
        let lower = text.to_lowercase().replace(['-', '_'], " ");
        let has = |needles: &[&str]| needles.iter().any(|n| lower.contains(n));
        // Order matters: "at risk high value" is first of all at risk.
        if has(&[
            "at risk", "lapsed", "dormant", "churn", "inactive", "win back", "winback",
        ]) {
            SegmentKind::WinBack
        } else if has(&["high value", "vip", "premium", "top spender", "big spender"]) {
            SegmentKind::Premium
        } else if has(&["loyal", "frequent", "repeat"]) {
            SegmentKind::Thanks
        } else if has(&[
            "new customer",
            "newcomer",
            "first time",
            "first purchase",
            "welcome",
            "onboarding",
        ]) || lower.split_whitespace().next() == Some("new")
        {
            SegmentKind::Welcome
        } else {
            SegmentKind::Neutral
        }
    }

    /// The framing line of the phrase banks this segment gets.
    pub fn framing(self) -> Framing {
        match self {
            SegmentKind::Premium => Framing::Premium,
            SegmentKind::WinBack => Framing::WinBack,
            SegmentKind::Welcome => Framing::Welcome,
            SegmentKind::Thanks => Framing::Thanks,
            SegmentKind::Neutral => Framing::Neutral,
        }
    }

    /// Snippet categories that suit this segment, as lowercase fragments.
    pub fn preferred_categories(self) -> &'static [&'static str] {
        match self {
            SegmentKind::Premium => &["product", "collection", "launch", "loyalty", "vip"],
            SegmentKind::WinBack => &["promotion", "offer", "loyalty", "reward"],
            SegmentKind::Welcome => &[
                "onboarding",
                "welcome",
                "guide",
                "support",
                "getting started",
            ],
            SegmentKind::Thanks => &["loyalty", "reward", "membership"],
            SegmentKind::Neutral => &[],
        }
    }
}

/// Deterministic choices: seeded from a hash of the parts (campaign, segment,
/// arm), never from time or a global RNG, so a brief always gets the same copy.
pub struct Chooser {
    state: u64,
}

impl Chooser {
    pub fn new(parts: &[&str]) -> Self {
        let id = derive_id(parts);
        let state = id
            .get(..16)
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .unwrap_or(0);
        Self { state }
    }

    /// SplitMix64: tiny, well mixed, and enough for picking phrasings.
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// One of `options`; the empty string only if there are none.
    pub fn pick(&mut self, options: &[&'static str]) -> &'static str {
        if options.is_empty() {
            return "";
        }
        let index = (self.next() % options.len() as u64) as usize;
        options.get(index).copied().unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(name: &str, traits: &[&str]) -> SegmentProfile {
        SegmentProfile {
            name: name.into(),
            description: String::new(),
            traits: traits.iter().map(|t| t.to_string()).collect(),
            size: 1,
            mean_avg_order_value: 0.0,
            mean_purchase_frequency: 0.0,
            mean_last_engagement_days: 0.0,
            mean_engagement: 0.0,
        }
    }

    #[test]
    fn known_segments_get_their_framing() {
        assert_eq!(
            SegmentKind::of(&segment("High-Value Recent", &[])),
            SegmentKind::Premium
        );
        assert_eq!(
            SegmentKind::of(&segment("At-Risk", &[])),
            SegmentKind::WinBack
        );
        assert_eq!(
            SegmentKind::of(&segment("New Customer", &[])),
            SegmentKind::Welcome
        );
        assert_eq!(
            SegmentKind::of(&segment("Loyal Frequent", &[])),
            SegmentKind::Thanks
        );
        assert_eq!(
            SegmentKind::of(&segment("Standard", &[])),
            SegmentKind::Neutral
        );
    }

    #[test]
    fn unknown_names_fall_back_to_traits_then_neutral() {
        assert_eq!(
            SegmentKind::of(&segment("Cohort 7", &["win-back"])),
            SegmentKind::WinBack
        );
        assert_eq!(
            SegmentKind::of(&segment("Cohort 7", &["blue"])),
            SegmentKind::Neutral
        );
        assert_eq!(
            SegmentKind::of(&segment("Newsletter readers", &[])),
            SegmentKind::Neutral
        );
    }

    #[test]
    fn chooser_is_seeded_by_its_parts() {
        let options = ["a", "b", "c", "d", "e", "f", "g", "h"];
        let run = |parts: &[&str]| {
            let mut c = Chooser::new(parts);
            (0..16).map(|_| c.pick(&options)).collect::<Vec<_>>()
        };
        assert_eq!(run(&["c1", "seg", "urgent"]), run(&["c1", "seg", "urgent"]));
        assert_ne!(run(&["c1", "seg", "urgent"]), run(&["c2", "seg", "urgent"]));
        assert_eq!(Chooser::new(&["x"]).pick(&[]), "");
    }
}
