//! The offline composer's promises, checked from outside the crate.

mod common;

use common::{brief_for, cited_sentences, sample_brief, snippet};
use cpo_generation::check::{check_draft, cited_ids};
use cpo_generation::{Draft, GroundingLimits, MAX_SUBJECT_CHARS, OfflineComposer, Voice};
use cpo_safety::claims::{self, Source};
use cpo_shared::model::Brief;
use proptest::prelude::*;

/// What safety's claim rule finds in a draft: nothing, for every composer draft.
fn unsupported_claims(draft: &Draft, brief: &Brief) -> Vec<String> {
    let sources: Vec<Source<'_>> = brief
        .snippets
        .iter()
        .map(|s| Source {
            id: &s.id,
            title: &s.title,
            text: &s.text,
        })
        .collect();
    claims::check(&draft.body, &sources)
        .iter()
        .map(ToString::to_string)
        .collect()
}

const SEGMENTS: &[&str] = &[
    "High-Value Recent",
    "At-Risk",
    "New Customer",
    "Loyal Frequent",
    "Standard",
    "Something Else",
];
const VOICES: &[Voice<'static>] = &[
    Voice::Tone("urgent"),
    Voice::Tone("informational"),
    Voice::Tone("friendly"),
    Voice::Control,
];

#[test]
fn same_brief_gives_identical_drafts() {
    for segment in SEGMENTS {
        let brief = sample_brief(segment);
        for voice in VOICES {
            let first = OfflineComposer::default().compose(&brief, *voice);
            let again = OfflineComposer::default().compose(&brief.clone(), *voice);
            assert_eq!(first, again);
        }
    }
}

#[test]
fn every_citation_is_a_snippet_and_every_cited_sentence_is_verbatim() {
    for segment in SEGMENTS {
        let brief = sample_brief(segment);
        for voice in VOICES {
            let draft = OfflineComposer::default().compose(&brief, *voice);
            assert!(
                !draft.citations.is_empty(),
                "{segment}/{voice:?} cites nothing"
            );
            assert_eq!(draft.citations, cited_ids(&draft.body));
            let cited = cited_sentences(&draft.body);
            assert!((2..=4).contains(&cited.len()), "{}", draft.body);
            for (id, sentence) in cited {
                let snippet = brief
                    .snippets
                    .iter()
                    .find(|s| s.id == id)
                    .unwrap_or_else(|| panic!("cited {id} is not a snippet"));
                assert!(
                    snippet.text.contains(&sentence),
                    "{sentence:?} is not verbatim in {id}"
                );
            }
            assert_eq!(check_draft(&draft, &brief), Ok(()));
            assert_eq!(unsupported_claims(&draft, &brief), Vec::<String>::new());
        }
    }
}

#[test]
fn cites_two_or_three_snippets_of_different_categories() {
    let brief = sample_brief("Standard");
    let draft = OfflineComposer::default().compose(&brief, Voice::Tone("informational"));
    assert!((2..=3).contains(&draft.citations.len()));
    let mut categories: Vec<&str> = draft
        .citations
        .iter()
        .filter_map(|id| brief.snippets.iter().find(|s| &s.id == id))
        .map(|s| s.category.as_str())
        .collect();
    let cited = categories.len();
    categories.dedup();
    assert_eq!(
        categories.len(),
        cited,
        "two snippets of one category: {categories:?}"
    );
    // doc-care is far less relevant than the best snippet: never cited
    assert!(!draft.citations.iter().any(|id| id == "doc-care"));
}

#[test]
fn tones_produce_different_copy() {
    for segment in SEGMENTS {
        let brief = sample_brief(segment);
        let drafts: Vec<_> = VOICES
            .iter()
            .map(|v| OfflineComposer::default().compose(&brief, *v))
            .collect();
        for (i, a) in drafts.iter().enumerate() {
            for b in &drafts[i + 1..] {
                assert_ne!(a.body, b.body, "{segment}: two arms share a body");
                assert_ne!(a.subject, b.subject, "{segment}: two arms share a subject");
            }
        }
    }
}

#[test]
fn segments_get_their_own_framing() {
    let framing = |segment: &str| {
        let draft =
            OfflineComposer::default().compose(&sample_brief(segment), Voice::Tone("friendly"));
        draft
            .body
            .split("\n\n")
            .nth(1)
            .unwrap_or_default()
            .to_string()
    };
    let premium = framing("High-Value Recent");
    let win_back = framing("At-Risk");
    let welcome = framing("New Customer");
    let thanks = framing("Loyal Frequent");
    assert!(
        welcome.to_lowercase().contains("welcome") || welcome.contains("joined"),
        "{welcome}"
    );
    assert!(
        thanks.to_lowercase().contains("thank") || thanks.contains("appreciate"),
        "{thanks}"
    );
    assert!(
        win_back.contains("missed you") || win_back.contains("too long"),
        "{win_back}"
    );
    assert!(
        premium.contains("valued") || premium.contains("pleasure"),
        "{premium}"
    );
    // Unknown segments read like Standard ones: neutral framing.
    let neutral_options = [framing("Standard"), framing("Something Else")];
    for f in &neutral_options {
        assert!(
            !f.to_lowercase().contains("welcome") && !f.contains("missed"),
            "{f}"
        );
    }
}

#[test]
fn segment_shapes_which_snippets_are_cited() {
    let cited = |segment: &str| {
        OfflineComposer::default()
            .compose(&sample_brief(segment), Voice::Tone("informational"))
            .citations
    };
    // New customers hear about returns (support suits a welcome); others about rewards.
    assert!(cited("New Customer").iter().any(|id| id == "doc-returns"));
    assert!(!cited("Standard").iter().any(|id| id == "doc-returns"));
    assert!(cited("Standard").iter().any(|id| id == "doc-rewards"));
}

#[test]
fn control_is_generic() {
    let draft =
        OfflineComposer::default().compose(&sample_brief("High-Value Recent"), Voice::Control);
    assert!(!draft.body.contains("{{first_name}}"));
    assert!(draft.body.starts_with("Hello,\n\n"));
    assert!(!draft.body.contains("valued"));
}

#[test]
fn zero_snippets_give_a_short_uncited_draft() {
    let brief = brief_for("At-Risk", vec![]);
    for voice in VOICES {
        let draft = OfflineComposer::default().compose(&brief, *voice);
        assert!(draft.citations.is_empty());
        assert!(!draft.body.contains('['));
        assert!(!draft.subject.is_empty());
        assert_eq!(check_draft(&draft, &brief), Ok(()));
    }
}

#[test]
fn snippets_without_a_quotable_sentence_are_treated_as_none() {
    let brief = brief_for(
        "Standard",
        vec![
            snippet("q", "faq", 0.9, "FAQ", "Looking for spring styles?"),
            snippet(
                "bad id!",
                "product",
                0.9,
                "x",
                "Our jackets are water resistant and light.",
            ),
            snippet(
                "t",
                "product",
                0.8,
                "x",
                "Hello {{email}}, our jackets are in stock.",
            ),
        ],
    );
    let draft = OfflineComposer::default().compose(&brief, Voice::Tone("urgent"));
    assert!(draft.citations.is_empty(), "{:?}", draft.citations);
    assert!(!draft.body.contains("{{email}}"));
}

fn arbitrary_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,120}",
        "[A-Za-z0-9 ]{0,80}",
        "[A-Z][a-z]{40,90}",
        Just(String::new()),
        Just("Supercalifragilisticexpialidocious-and-then-some-more-words-glued".to_string()),
    ]
}

fn arbitrary_sentences() -> impl Strategy<Value = String> {
    prop::collection::vec("[A-Z][a-z]{1,8}( [a-z$0-9.]{1,9}){3,14}[.!?]", 1..6)
        .prop_map(|sentences| sentences.join(" "))
}

/// Sentences full of what the claim rule checks: names, prices, percentages,
/// dates, codes, number words, promises.
fn factual_sentences() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        prop::sample::select(vec![
            "the",
            "Timberline",
            "Hiking",
            "Boot",
            "is",
            "priced",
            "at",
            "free",
            "always",
            "forever",
            "off",
            "March",
            "May",
            "twenty",
            "five",
            "percent",
            "per",
            "cent",
            "dollars",
            "USD",
            "TRAILBACK20",
            "e.g.",
            "Inc.",
            "today",
            "half",
            "I'm",
            "caf\u{e9}",
            "2026",
        ])
        .prop_map(String::from),
        (0u32..500, 0u32..100).prop_map(|(a, b)| format!("${a}.{b:02}")),
        (0u32..100).prop_map(|n| format!("{n}%")),
    ];
    let sentence = (
        "[A-Z][a-z]{1,8}",
        prop::collection::vec(word, 3..12),
        prop::sample::select(vec![".", "!"]),
    )
        .prop_map(|(first, words, end)| format!("{first} {}{end}", words.join(" ")));
    prop::collection::vec(sentence, 1..5).prop_map(|sentences| sentences.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn subjects_fit_for_any_campaign_objective_or_segment(
        name in arbitrary_text(),
        objective in arbitrary_text(),
        segment in arbitrary_text(),
        campaign_id in "[a-z0-9-]{1,20}",
    ) {
        let mut brief = sample_brief(&segment);
        brief.campaign.name = name;
        brief.campaign.objective = objective;
        brief.campaign.campaign_id = campaign_id;
        for voice in VOICES {
            let draft = OfflineComposer::default().compose(&brief, *voice);
            let chars = draft.subject.chars().count();
            prop_assert!(chars <= MAX_SUBJECT_CHARS, "{} chars: {:?}", chars, draft.subject);
            prop_assert!(chars > 0);
            prop_assert_eq!(check_draft(&draft, &brief), Ok(()));
            // The campaign name signs the message: safety accepts the signature.
            prop_assert_eq!(unsupported_claims(&draft, &brief), Vec::<String>::new(), "{}", draft.body);
        }
    }

    #[test]
    fn any_brand_signs_a_message_the_claim_rule_accepts(brand in arbitrary_text()) {
        let brief = sample_brief("At-Risk");
        let composer = OfflineComposer::new(GroundingLimits::default(), Some(brand));
        for voice in VOICES {
            let draft = composer.compose(&brief, *voice);
            prop_assert_eq!(unsupported_claims(&draft, &brief), Vec::<String>::new(), "{}", draft.body);
        }
    }

    #[test]
    fn any_snippet_text_gives_a_valid_verbatim_draft_without_unsupported_claims(
        texts in prop::collection::vec(prop_oneof![arbitrary_sentences(), factual_sentences()], 0..5),
        relevances in prop::collection::vec(0.0f64..1.0, 5),
    ) {
        let categories = ["product", "promotion", "loyalty", "support", "product"];
        let snippets = texts
            .iter()
            .enumerate()
            .map(|(i, text)| snippet(&format!("doc-{i}"), categories[i], relevances[i], "t", text))
            .collect();
        let brief = brief_for("Loyal Frequent", snippets);
        for voice in VOICES {
            let draft = OfflineComposer::default().compose(&brief, *voice);
            prop_assert_eq!(check_draft(&draft, &brief), Ok(()));
            prop_assert_eq!(unsupported_claims(&draft, &brief), Vec::<String>::new(), "{}", draft.body);
            prop_assert!(draft.citations.len() <= 3);
            for (id, sentence) in cited_sentences(&draft.body) {
                let source = brief.snippets.iter().find(|s| s.id == id);
                prop_assert!(source.is_some_and(|s| s.text.contains(&sentence)), "{:?} not in {}", sentence, id);
            }
        }
    }
}
