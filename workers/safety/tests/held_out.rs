//! A held-out hate set (`tests/held_out/hate.tsv`), written apart from
//! HateCheck and from the rules it checks: other groups and vocabulary,
//! varied syntax, half of it benign look-alikes (contact, comparisons,
//! superlatives, incomprehension, opposition to violence, profanity at
//! things, identity mentions, marketing idioms). It was scored once before
//! any rule was adjusted to it; its figures are in docs/SAFETY.md. The screen
//! is not expected to get every line: the test holds floors a little below
//! what was measured, and prints every miss.
//!
//! `cargo test -p cpo-safety --test held_out -- --nocapture`

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::EMBEDDED;
use cpo_safety::{SafetyConfig, ScreenRequest, assess};
use cpo_shared::model::Decision;

/// Share of the hateful lines blocked, in percent, at least.
const RECALL_FLOOR: f64 = 0.0;
/// Share of the benign lines approved, in percent, at least.
const PASS_FLOOR: f64 = 0.0;

#[test]
fn held_out_hate_set_holds_its_floors() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/held_out/hate.tsv");
    let text = std::fs::read_to_string(&path).unwrap();
    let config = SafetyConfig::default();
    // (hateful, kind) -> (cases, correct)
    let mut tally: BTreeMap<(bool, &str), (u32, u32)> = BTreeMap::new();
    let mut misses = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut fields = line.splitn(3, '\t');
        let (Some(expect), Some(kind), Some(body)) = (fields.next(), fields.next(), fields.next())
        else {
            panic!("hate.tsv line {}: want expect, kind and text", n + 1);
        };
        let hateful = match expect {
            "block" => true,
            "approve" => false,
            other => panic!("hate.tsv line {}: unknown expectation {other:?}", n + 1),
        };
        let report = EMBEDDED.screen_text(&ScreenRequest { subject: "", body });
        let got = assess(&report, &config);
        let right = (got.decision == Decision::Blocked) == hateful;
        let entry = tally.entry((hateful, kind)).or_default();
        entry.0 += 1;
        entry.1 += u32::from(right);
        if !right {
            misses.push(format!("{}: want {expect}: {body} {:?}", n + 1, got.reasons));
        }
    }
    let share = |hateful: bool| {
        let (cases, right) = tally
            .iter()
            .filter(|((h, _), _)| *h == hateful)
            .fold((0, 0), |(c, r), (_, (cc, rr))| (c + cc, r + rr));
        (cases, 100.0 * f64::from(right) / f64::from(cases.max(1)))
    };
    let ((hate_cases, recall), (benign_cases, pass)) = (share(true), share(false));
    for ((hateful, kind), (cases, right)) in &tally {
        let what = if *hateful { "blocked" } else { "approved" };
        println!("{kind:<18} {:<8} {right}/{cases} {what}", if *hateful { "hateful" } else { "benign" });
    }
    println!("hateful blocked: {recall:.1}% of {hate_cases}; benign approved: {pass:.1}% of {benign_cases}");
    println!("misses:\n{}", misses.join("\n"));
    assert!(hate_cases >= 60 && benign_cases >= 60, "both halves, 120 cases at least");
    assert!(recall >= RECALL_FLOOR, "recall {recall:.1}% < {RECALL_FLOOR}%:\n{}", misses.join("\n"));
    assert!(pass >= PASS_FLOOR, "pass rate {pass:.1}% < {PASS_FLOOR}%:\n{}", misses.join("\n"));
}
