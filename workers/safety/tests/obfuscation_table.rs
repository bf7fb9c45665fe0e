//! The screening table: obfuscated harmful text must block, innocent text
//! (including words that contain bad substrings and marketing idioms) must pass.

mod common;

use common::EMBEDDED;
use cpo_safety::{SafetyConfig, ScreenRequest, assess};
use cpo_shared::model::Decision;

const BLOCK: bool = true;
const PASS: bool = false;

const CASES: &[(&str, bool)] = &[
    // spacing, punctuation and masking inside words
    ("f u c k this sale", BLOCK),
    ("F.U.C.K", BLOCK),
    ("F-U-C-K", BLOCK),
    ("s h i t", BLOCK),
    ("s.h.i.t happens", BLOCK),
    ("sh-it happens", BLOCK),
    ("f*ck the competition", BLOCK),
    ("f**king great", BLOCK),
    ("bullsh*t prices", BLOCK),
    ("m0therf*cker", BLOCK),
    ("w t f is this", BLOCK),
    ("c u n t", BLOCK),
    // repetition
    ("fuuuuuck yes", BLOCK),
    ("shiiiiit", BLOCK),
    // l33t
    ("sh1t deal", BLOCK),
    ("$h!t deal", BLOCK),
    ("b1tch", BLOCK),
    ("a$$hole", BLOCK),
    ("p0rn", BLOCK),
    ("free s3x tapes", BLOCK),
    ("send nud3s", BLOCK),
    // unicode tricks
    ("ＦＵＣＫ", BLOCK),
    ("fu\u{200B}ck", BLOCK),
    ("Fück", BLOCK),
    ("Fu\u{0301}ck", BLOCK),
    ("fu\u{0441}k", BLOCK),
    ("ⓕⓤⓒⓚ", BLOCK),
    ("pørn", BLOCK),
    // threats, self-harm, hate
    ("I will k1ll you", BLOCK),
    ("I will k i l l you", BLOCK),
    ("k.i.l.l you", BLOCK),
    ("k!ll y0u", BLOCK),
    ("I'll stab you", BLOCK),
    ("We will shoot you", BLOCK),
    ("you will d i e", BLOCK),
    ("kill yourself", BLOCK),
    ("k y s", BLOCK),
    ("I want to d1e", BLOCK),
    ("n1gger", BLOCK),
    ("f4gg0t", BLOCK),
    ("immigrants are vermin", BLOCK),
    ("I hate J3WS", BLOCK),
    ("kill all imm1grants", BLOCK),
    ("blow j0b", BLOCK),
    // words that contain bad substrings
    ("Scunthorpe United fans save 20%", PASS),
    ("Essex and Middlesex stores", PASS),
    ("Hello, Sussex!", PASS),
    ("Our cocktail menu", PASS),
    ("Cocker spaniel treats", PASS),
    ("Free skin assessment", PASS),
    ("A classic look", PASS),
    ("Book a therapist", PASS),
    ("Grape season is here", PASS),
    ("Read Dickens this winter", PASS),
    ("Data analysis course", PASS),
    ("Shiitake mushrooms", PASS),
    ("Cumin and spice bundle", PASS),
    ("Spicy ramen kit", PASS),
    ("Hancock Park store", PASS),
    ("Penistone branch", PASS),
    ("Passionfruit and butterscotch", PASS),
    ("Assassin's Creed game sale", PASS),
    ("Raccoon plush toys", PASS),
    ("A sextant for sailors", PASS),
    ("Arsenal kits and scrap metal art", PASS),
    ("Class passes for assessments", PASS),
    // marketing idioms
    ("Killer deals this weekend", PASS),
    ("A dress to die for", PASS),
    ("Knockout prices on everything", PASS),
    ("Shoot us an email", PASS),
    ("We'll shoot you a quick note", PASS),
    ("A bombshell offer", PASS),
    ("These deals are the bomb", PASS),
    ("Bath bombs for you", PASS),
    ("Dead simple checkout", PASS),
    ("Photo shoot with our stylists", PASS),
    ("Kill time with our games", PASS),
    ("Dressed to kill", PASS),
    ("Murder mystery dinner for you", PASS),
    ("Fruit punch for you", PASS),
    ("Die-cast models", PASS),
    ("We are dying to show you", PASS),
    ("Hell of a deal", PASS),
    ("Shooting stars for you", PASS),
    ("Take a stab at our quiz, you could win", PASS),
    ("Sure, here's what's new for you", PASS),
    // ordinary copy with numbers, symbols and merge fields
    ("Hi {{first_name}}, your 24/7 support team", PASS),
    ("B2B tools, 4K TV, 5G phones, 1st class", PASS),
    ("Save 50% on sexy summer dresses", PASS),
    ("Nude lipstick shades", PASS),
    ("**Top 3** picks #1 choice", PASS),
];

#[test]
fn obfuscated_harm_blocks_and_innocent_text_passes() {
    let config = SafetyConfig::default();
    assert!(CASES.len() >= 40);
    let mut wrong = Vec::new();
    for &(text, should_block) in CASES {
        let report = EMBEDDED.screen_text(&ScreenRequest {
            subject: "",
            body: text,
        });
        let assessment = assess(&report, &config);
        let blocked = assessment.decision == Decision::Blocked;
        if blocked != should_block {
            wrong.push(format!(
                "{text:?}: expected {}, got {:?} {:?} {:?}",
                if should_block { "block" } else { "pass" },
                assessment.decision,
                assessment.categories,
                assessment.reasons
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn the_table_is_balanced() {
    let blocks = CASES.iter().filter(|(_, b)| *b).count();
    assert!(blocks >= 20 && CASES.len() - blocks >= 20);
}
