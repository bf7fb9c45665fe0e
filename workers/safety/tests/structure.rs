//! The screen's structural rules seen from outside: expletives aimed at
//! things are mild unless disguised, and a negated "let"/"allow" opposes the
//! threat it governs, in the lexicon's threat scoring as in the hate scorer.

mod common;

use common::EMBEDDED;
use cpo_safety::{FindingKind, SafetyConfig, ScreenRequest, assess};
use cpo_shared::model::Decision;

fn decide(body: &str, config: &SafetyConfig) -> Decision {
    assess(
        &EMBEDDED.screen_text(&ScreenRequest { subject: "", body }),
        config,
    )
    .decision
}

#[test]
fn an_expletive_aimed_at_a_thing_is_mild() {
    let default = SafetyConfig::default();
    let strict = SafetyConfig {
        block_mild_profanity: true,
        ..SafetyConfig::default()
    };
    for body in [
        "This fucking kettle never boils.",
        "Our old shitty router drops the signal.",
        "Those parking machines are shit.",
    ] {
        assert_eq!(decide(body, &default), Decision::Approved, "{body}");
        assert_eq!(decide(body, &strict), Decision::Blocked, "{body}");
        let report = EMBEDDED.screen_text(&ScreenRequest { subject: "", body });
        assert!(
            report
                .findings
                .iter()
                .any(|f| f.kind == FindingKind::MildProfanity),
            "{body}"
        );
    }
    for body in [
        // aimed at the reader, a person, a group, or at nothing named
        "This fucking kettle is for you.",
        "That fucking guy broke the sink.",
        "These fucking Kurds.",
        "fuck",
        "Shit deals all week.",
        // or in disguise: masked, spaced, look-alike letters, elongated
        "This f*cking kettle never boils.",
        "This f u c k i n g kettle never boils.",
        "This fսcking kettle never boils.",
        "This fuuucking kettle never boils.",
        // named someone in the sentence next to it
        "The idea was shit. It came from my neighbour after all.",
    ] {
        assert_eq!(decide(body, &default), Decision::Blocked, "{body}");
    }
}

#[test]
fn a_negated_tolerance_verb_opposes_the_threat_it_governs() {
    let default = SafetyConfig::default();
    for body in [
        "We will never allow any refugee to be attacked.",
        "Let's not look away while Sikhs are being beaten.",
        "We won't stand by while lesbians are murdered.",
    ] {
        assert_eq!(decide(body, &default), Decision::Approved, "{body}");
    }
    for body in [
        // not negated, or negation in another comma-stretch
        "We will allow every refugee to be attacked.",
        "Don't let them in, kill the refugees.",
        "Let's stand by while Sikhs are being beaten.",
    ] {
        assert_eq!(decide(body, &default), Decision::Blocked, "{body}");
    }
}
