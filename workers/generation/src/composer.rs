//! The offline grounded composer: the default generator, with no network and
//! no model. Facts are sentences quoted from the brief's snippets and cited
//! right after them; everything else comes from the tone's phrase bank and the
//! segment's framing. Choices among phrasings are seeded from the campaign,
//! segment and arm, so the same brief always gives the same draft.

use async_trait::async_trait;
use cpo_shared::model::Brief;

use crate::generator::{Draft, GenerationError, Generator, Voice};
use crate::grounding::{Fact, GroundingLimits, select_facts};
use crate::subject::{clean_inline, compose_subject, fit_words};
use crate::voice::{Chooser, SegmentKind, ToneKind};
use cpo_shared::phrasing::{MAX_BRAND_CHARS, Register, bank, framings, signature};

#[derive(Debug, Clone, Default)]
pub struct OfflineComposer {
    limits: GroundingLimits,
    /// Signs every message ("The Acme team"); the campaign name when unset.
    brand: Option<String>,
}

impl OfflineComposer {
    pub fn new(limits: GroundingLimits, brand: Option<String>) -> Self {
        Self { limits, brand }
    }

    /// Compose a draft. Pure: no IO, no clock, no global state.
    pub fn compose(&self, brief: &Brief, voice: Voice<'_>) -> Draft {
        let campaign = &brief.campaign;
        let (register, segment, mut chooser) = match voice {
            Voice::Tone(tone) => (
                Register::Tone(ToneKind::of(tone)),
                SegmentKind::of(&brief.segment),
                Chooser::new(&[
                    "generation",
                    &campaign.campaign_id,
                    &brief.segment.name,
                    tone,
                ]),
            ),
            // Not seeded by segment: business as usual reads the same everywhere.
            Voice::Control => (
                Register::Control,
                SegmentKind::Neutral,
                Chooser::new(&["generation", &campaign.campaign_id, "control"]),
            ),
        };
        let phrases = bank(register);
        let has_url = campaign
            .call_to_action_url
            .as_deref()
            .is_some_and(|url| !url.trim().is_empty());

        let subject = compose_subject(
            chooser.pick(phrases.subjects),
            &campaign.name,
            chooser.pick(phrases.plain_subjects),
        );
        let greeting = chooser.pick(phrases.greetings);
        let framing = chooser.pick(framings(register, segment.framing()));
        let call_to_action = if has_url {
            chooser.pick(phrases.ctas_with_url)
        } else {
            chooser.pick(phrases.ctas_without_url)
        };
        let sign_off = chooser.pick(phrases.sign_offs);
        let facts = select_facts(brief, segment, &self.limits);

        let mut body = String::with_capacity(512);
        body.push_str(greeting);
        body.push_str("\n\n");
        body.push_str(framing);
        body.push_str("\n\n");
        if !facts.is_empty() {
            push_facts(&mut body, &facts);
            body.push_str("\n\n");
        }
        body.push_str(call_to_action);
        body.push_str("\n\n");
        body.push_str(sign_off);
        body.push('\n');
        body.push_str(&self.signature_line(&campaign.name));

        Draft {
            subject,
            body,
            citations: citations(&facts),
        }
    }

    /// "The Acme team", from the configured brand or else the campaign name;
    /// "The team" when that name could carry a claim (`phrasing::signature`),
    /// which is what lets safety accept the line without knowing the brand.
    fn signature_line(&self, campaign_name: &str) -> String {
        let source = self.brand.as_deref().unwrap_or(campaign_name);
        let cleaned = clean_inline(source);
        signature(fit_words(&cleaned, MAX_BRAND_CHARS))
    }
}

/// One paragraph: each quoted sentence followed by its citation.
fn push_facts(body: &mut String, facts: &[Fact<'_>]) {
    for (i, fact) in facts.iter().enumerate() {
        if i > 0 {
            body.push(' ');
        }
        body.push_str(fact.sentence);
        body.push_str(" [");
        body.push_str(fact.snippet_id);
        body.push(']');
    }
}

fn citations(facts: &[Fact<'_>]) -> Vec<String> {
    let mut ids: Vec<String> = Vec::with_capacity(facts.len());
    for fact in facts {
        if !ids.iter().any(|id| id == fact.snippet_id) {
            ids.push(fact.snippet_id.to_string());
        }
    }
    ids
}

#[async_trait]
impl Generator for OfflineComposer {
    fn name(&self) -> &str {
        "offline"
    }

    async fn draft(&self, brief: &Brief, voice: Voice<'_>) -> Result<Draft, GenerationError> {
        Ok(self.compose(brief, voice))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::check_draft;

    fn brief(segment: &str, cta: Option<&str>, snippets: serde_json::Value) -> Brief {
        serde_json::from_value(serde_json::json!({
            "campaign": {"campaign_id": "spring-24", "name": "Spring Refresh",
                         "objective": "spring jackets and loyalty points",
                         "call_to_action_url": cta, "tones": [], "arm_weights": {}},
            "segment": {"name": segment, "description": "", "traits": [], "size": 1,
                        "mean_avg_order_value": 0.0, "mean_purchase_frequency": 0.0,
                        "mean_last_engagement_days": 0.0, "mean_engagement": 0.0},
            "segments_total": 1, "query": "", "snippets": snippets
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn two_snippets() -> serde_json::Value {
        serde_json::json!([
            {"id": "jackets", "title": "Jackets", "category": "product", "relevance": 0.9,
             "text": "Our spring jackets are now in stock in all sizes. Each jacket is water resistant."},
            {"id": "points", "title": "Points", "category": "loyalty", "relevance": 0.8,
             "text": "Members earn loyalty points on every spring order."}
        ])
    }

    #[test]
    fn body_has_greeting_framing_cited_facts_cta_and_sign_off() {
        let b = brief(
            "At-Risk",
            Some("https://example.com/spring"),
            two_snippets(),
        );
        let draft = OfflineComposer::default().compose(&b, Voice::Tone("friendly"));
        let paragraphs: Vec<&str> = draft.body.split("\n\n").collect();
        assert_eq!(paragraphs.len(), 5, "{}", draft.body);
        assert!(paragraphs[0].contains("{{first_name}}"));
        assert!(
            framings(
                Register::Tone(ToneKind::Friendly),
                SegmentKind::WinBack.framing()
            )
            .contains(&paragraphs[1])
        );
        assert!(
            paragraphs[2].contains("Our spring jackets are now in stock in all sizes. [jackets]")
        );
        assert!(
            paragraphs[2].contains("Members earn loyalty points on every spring order. [points]")
        );
        assert!(paragraphs[3].contains("{{cta_url}}"));
        assert!(paragraphs[4].ends_with("\nThe Spring Refresh team"));
        assert_eq!(draft.citations, vec!["jackets", "points"]);
        assert_eq!(check_draft(&draft, &b), Ok(()));
    }

    #[test]
    fn no_cta_url_means_no_cta_merge_field() {
        let b = brief("Standard", None, two_snippets());
        for voice in [
            Voice::Tone("urgent"),
            Voice::Tone("informational"),
            Voice::Control,
        ] {
            let draft = OfflineComposer::default().compose(&b, voice);
            assert!(!draft.body.contains("{{cta_url}}"), "{}", draft.body);
            assert_eq!(check_draft(&draft, &b), Ok(()));
        }
    }

    #[test]
    fn control_has_no_first_name_and_reads_the_same_in_every_segment() {
        let composer = OfflineComposer::default();
        let a = composer.compose(
            &brief("High-Value Recent", None, two_snippets()),
            Voice::Control,
        );
        let b = composer.compose(&brief("At-Risk", None, two_snippets()), Voice::Control);
        assert!(!a.body.contains("{{first_name}}"));
        assert_eq!(a, b);
    }

    #[test]
    fn configured_brand_signs_the_message() {
        let composer = OfflineComposer::new(GroundingLimits::default(), Some("Acme {{x}}".into()));
        let draft = composer.compose(
            &brief("Standard", None, two_snippets()),
            Voice::Tone("urgent"),
        );
        assert!(draft.body.ends_with("\nThe Acme x team"), "{}", draft.body);
    }
}
