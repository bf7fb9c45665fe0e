//! Property tests of the embedded screen: total on any input, within contract,
//! and blind to case changes and invisible characters.

mod common;

use std::time::Instant;

use common::EMBEDDED;
use cpo_safety::{FindingKind, HarmCategory, SafetyConfig, ScreenRequest, assess};
use proptest::prelude::*;

fn screen(body: &str) -> cpo_safety::ScreenReport {
    EMBEDDED.screen_text(&ScreenRequest { subject: "", body })
}

proptest! {
    #[test]
    fn any_text_gets_a_report_within_the_contract(subject in "\\PC{0,120}", body in "\\PC{0,400}") {
        let report = EMBEDDED.screen_text(&ScreenRequest { subject: &subject, body: &body });
        for category in HarmCategory::ALL {
            prop_assert!(category.get(&report.categories) <= 7);
        }
        let again = EMBEDDED.screen_text(&ScreenRequest { subject: &subject, body: &body });
        prop_assert_eq!(&report, &again);
    }

    #[test]
    fn case_and_invisible_characters_do_not_hide_profanity(
        upper in proptest::collection::vec(any::<bool>(), 4),
        gaps in proptest::collection::vec(prop_oneof![Just(""), Just("\u{200B}"), Just("\u{200D}"), Just("\u{FEFF}"), Just("\u{00AD}")], 3),
    ) {
        let mut word = String::new();
        for (i, c) in "fuck".chars().enumerate() {
            word.push(if upper[i] { c.to_ascii_uppercase() } else { c });
            if i < 3 {
                word.push_str(gaps[i]);
            }
        }
        let report = screen(&format!("great deals {word} today"));
        prop_assert!(report.findings.iter().any(|f| f.kind == FindingKind::Profanity), "{:?}", word);
    }

    #[test]
    fn merge_fields_never_count_as_personal_data(name in "[a-z_]{1,20}") {
        let report = screen(&format!("Hi {{{{{name}}}}}, your code is {{{{ {name} }}}}"));
        prop_assert!(report.findings.iter().all(|f| f.kind != FindingKind::PersonalData));
    }
}

#[test]
fn screening_a_variant_is_fast() {
    let body = "Hi {{first_name}}, as a {{tier}} member you earn double points on every order \
                this March [doc-1]. Our killer deals on skincare are back, with free returns \
                within 30 days [doc-2]. Questions? Shoot us an email and our team will answer \
                within a day. Shop the collection today and treat yourself to something new.";
    let config = SafetyConfig::default();
    let runs = 200u32;
    let started = Instant::now();
    for _ in 0..runs {
        let report = EMBEDDED.screen_text(&ScreenRequest {
            subject: "Double points are back",
            body,
        });
        assert!(assess(&report, &config).reasons.is_empty());
    }
    let per_variant = started.elapsed() / runs;
    // Tens of microseconds in release; the bound is loose for unoptimized, shared-core test runs.
    assert!(per_variant.as_millis() < 20, "{per_variant:?} per variant");
    eprintln!("screened in {per_variant:?} per variant");
}
