//! A held-out hate set (`tests/held_out/hate.tsv`), written apart from
//! HateCheck and from the rules it checks: other groups and vocabulary,
//! varied syntax, half of it benign look-alikes (contact, comparisons,
//! superlatives, incomprehension, opposition to violence, profanity at
//! things, identity mentions, marketing idioms). Each set's first score is in
//! docs/SAFETY.md. The screen is not expected to get every line: the tests
//! hold floors a little below what was measured, and print every miss.
//!
//! `cargo test -p cpo-safety --test held_out -- --nocapture`

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::EMBEDDED;
use cpo_safety::{SafetyConfig, ScreenRequest, assess};
use cpo_shared::model::Decision;

/// Scores of one set: hateful cases and the share blocked, benign cases and
/// the share approved, and every miss.
struct Score {
    hateful: u32,
    recall: f64,
    benign: u32,
    pass: f64,
    misses: Vec<String>,
}

fn score(file: &str) -> Score {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/held_out")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let config = SafetyConfig::default();
    // (hateful, kind) -> (cases, correct)
    let mut tally: BTreeMap<(bool, &str), (u32, u32)> = BTreeMap::new();
    let mut misses = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut fields = line.splitn(3, '\t');
        let (Some(expect), Some(kind), Some(body)) = (fields.next(), fields.next(), fields.next())
        else {
            panic!("{file} line {}: want expect, kind and text", n + 1);
        };
        let hateful = match expect {
            "block" => true,
            "approve" => false,
            other => panic!("{file} line {}: unknown expectation {other:?}", n + 1),
        };
        let report = EMBEDDED.screen_text(&ScreenRequest { subject: "", body });
        let got = assess(&report, &config);
        let right = (got.decision == Decision::Blocked) == hateful;
        let entry = tally.entry((hateful, kind)).or_default();
        entry.0 += 1;
        entry.1 += u32::from(right);
        if !right {
            misses.push(format!(
                "{file}:{}: want {expect}: {body} {:?}",
                n + 1,
                got.reasons
            ));
        }
    }
    let share = |hateful: bool| {
        let (cases, right) = tally
            .iter()
            .filter(|((h, _), _)| *h == hateful)
            .fold((0, 0), |(c, r), (_, (cc, rr))| (c + cc, r + rr));
        (cases, 100.0 * f64::from(right) / f64::from(cases.max(1)))
    };
    for ((hateful, kind), (cases, right)) in &tally {
        let (half, what) = if *hateful {
            ("hateful", "blocked")
        } else {
            ("benign", "approved")
        };
        println!("{file} {kind:<18} {half:<8} {right}/{cases} {what}");
    }
    let ((hateful, recall), (benign, pass)) = (share(true), share(false));
    println!(
        "{file}: hateful blocked {recall:.1}% of {hateful}; benign approved {pass:.1}% of {benign}"
    );
    println!("misses:\n{}", misses.join("\n"));
    Score {
        hateful,
        recall,
        benign,
        pass,
        misses,
    }
}

fn holds(file: &str, min_cases: u32, recall_floor: f64, pass_floor: f64) {
    let s = score(file);
    assert!(
        s.hateful >= min_cases && s.benign >= min_cases,
        "{file}: both halves"
    );
    let misses = s.misses.join("\n");
    assert!(
        s.recall >= recall_floor,
        "{file}: recall {:.1}% < {recall_floor}%:\n{misses}",
        s.recall
    );
    assert!(
        s.pass >= pass_floor,
        "{file}: pass rate {:.1}% < {pass_floor}%:\n{misses}",
        s.pass
    );
}

/// The first set (128 cases): scored once before any rule was fitted to it
/// (57.8% blocked, 89.1% approved), then used to find general gaps (84.4%,
/// 96.9% after), so its figures now are those of a development set.
#[test]
fn first_held_out_set_holds_its_floors() {
    holds("hate.tsv", 60, 82.0, 95.0);
}

/// The second set (64 cases), written after those fixes and scored once, with
/// no rule changed for it (59.4% blocked, 100% approved): the honest figure
/// for unseen text. Keep it unseen: do not fit rules to its misses.
#[test]
fn fresh_held_out_set_holds_its_floors() {
    holds("hate_fresh.tsv", 30, 56.0, 96.0);
}

/// The third set (48 cases), written after the last rule change and scored
/// once with no rule changed for it (62.5% blocked, 100% approved). Keep it
/// unseen too.
#[test]
fn third_held_out_set_holds_its_floors() {
    holds("hate_fresh2.tsv", 24, 58.0, 96.0);
}
