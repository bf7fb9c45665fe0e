//! Hand-written screening sets (`tests/harm_sets/*.tsv`): self-harm,
//! threats, sexual content, insults, phishing, obfuscation and subject/body
//! splits, and innocent context. Every line must get its stated decision from
//! the embedded screen with the default config.

mod common;

use std::path::Path;

use common::EMBEDDED;
use cpo_safety::{SafetyConfig, ScreenRequest, assess};
use cpo_shared::model::Decision;

const SETS: &[&str] = &[
    "self_harm",
    "threats",
    "sexual",
    "insults",
    "obfuscation",
    "phishing",
    "innocent_context",
];

#[test]
fn every_case_of_every_set_gets_its_decision() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/harm_sets");
    let config = SafetyConfig::default();
    let mut wrong = Vec::new();
    for set in SETS {
        let path = dir.join(format!("{set}.tsv"));
        let text = std::fs::read_to_string(&path).unwrap();
        let (mut blocks, mut approves) = (0, 0);
        for (n, line) in text.lines().enumerate() {
            let mut fields = line.splitn(3, '\t');
            let (Some(expect), Some(subject), Some(body)) =
                (fields.next(), fields.next(), fields.next())
            else {
                panic!("{set}.tsv line {}: want expect, subject and body", n + 1);
            };
            let want = match expect {
                "block" => {
                    blocks += 1;
                    Decision::Blocked
                }
                "approve" => {
                    approves += 1;
                    Decision::Approved
                }
                other => panic!("{set}.tsv line {}: unknown expectation {other:?}", n + 1),
            };
            let report = EMBEDDED.screen_text(&ScreenRequest { subject, body });
            let got = assess(&report, &config);
            if got.decision != want {
                wrong.push(format!(
                    "{set}:{}: want {expect}: {subject:?} {body:?} {:?}",
                    n + 1,
                    got.reasons
                ));
            }
        }
        assert!(blocks + approves >= 40, "{set}: at least 40 cases");
        assert!(blocks >= 15 && approves >= 15, "{set}: both halves");
    }
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
