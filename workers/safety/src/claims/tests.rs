use std::collections::HashSet;

use proptest::prelude::*;

use super::facts::Tokens;
use super::*;

fn facts(text: &str) -> Vec<Fact> {
    Tokens::new(&fold(text)).facts(&HashSet::new())
}

fn money(amount: &str) -> Fact {
    Fact::Money(Currency::Usd, amount.into())
}

fn word(kind: WordKind, w: &str) -> Fact {
    Fact::Word(kind, w.into())
}

fn source<'a>(id: &'a str, text: &'a str) -> Source<'a> {
    Source {
        id,
        title: "",
        text,
    }
}

const PROMO: &str = "It has been a while since your last visit, and we would love to see you back on the trail with Northwind Outfitters. \
Returning customers can take 20 percent off one order of $100 or more with the code TRAILBACK20. \
The TRAILBACK20 code works on the new Autumn 2026 Collection and is valid through February 28, 2027.";

#[test]
fn one_fact_written_several_ways_normalises_to_one() {
    for text in [
        "15%",
        "15 %",
        "15 percent",
        "15-percent",
        "fifteen per cent",
        "15 pct",
    ] {
        assert_eq!(facts(text), [Fact::Percent("15".into())], "{text}");
    }
    for text in [
        "$169",
        "$169.00",
        "$ 169",
        "169 dollars",
        "USD 169",
        "US$169",
        "$169 USD",
        "one hundred sixty-nine dollars",
        "one hundred and sixty nine bucks",
    ] {
        assert_eq!(facts(text), [money("169")], "{text}");
    }
    assert_eq!(facts("$1,000.50"), [money("1000.5")]);
    assert_eq!(facts("20 euros"), [Fact::Money(Currency::Eur, "20".into())]);
    assert_eq!(facts("\u{a3}5"), [Fact::Money(Currency::Gbp, "5".into())]);
    assert_eq!(facts("ninety-nine"), [Fact::Number("99".into())]);
    assert_eq!(facts("the 31st"), [Fact::Number("31".into())]);
    assert_eq!(facts("007"), [Fact::Number("7".into())]);
}

#[test]
fn punctuation_keeps_units_and_numbers_apart() {
    assert_eq!(
        facts("Boots cost $1, 95 percent off."),
        [money("1"), Fact::Percent("95".into())]
    );
    assert_eq!(
        facts("twenty. Five"),
        [Fact::Number("20".into()), Fact::Number("5".into())]
    );
}

#[test]
fn full_width_and_invisible_characters_are_folded_away() {
    assert_eq!(
        facts("\u{ff19}\u{ff10}\u{ff05}"),
        [Fact::Percent("90".into())]
    );
    assert_eq!(
        facts("ships fr\u{200b}ee"),
        [word(WordKind::Promise, "free")]
    );
    // A Cyrillic "е" makes the word a name the snippet must contain.
    assert_eq!(
        facts("ships fr\u{435}\u{435}"),
        [word(WordKind::Name, "fr\u{435}\u{435}")]
    );
}

#[test]
fn dates_deadlines_codes_promises_and_quantities_are_facts() {
    assert_eq!(
        facts("valid Mar 31 or march 1"),
        [
            Fact::Date("march"),
            Fact::Number("31".into()),
            Fact::Date("march"),
            Fact::Number("1".into())
        ]
    );
    assert_eq!(facts("you may return it"), []);
    assert_eq!(
        facts("from May 5"),
        [Fact::Date("may"), Fact::Number("5".into())]
    );
    assert_eq!(
        facts("today only, until Friday"),
        [Fact::Date("today"), Fact::Date("friday")]
    );
    assert_eq!(
        facts("use TRAILBACK20 or SAVE at half price, guaranteed for life"),
        [
            word(WordKind::Code, "trailback20"),
            word(WordKind::Code, "save"),
            word(WordKind::Quantity, "half"),
            word(WordKind::Promise, "guaranteed"),
        ]
    );
    assert_eq!(facts("the one you like"), []);
    assert_eq!(facts("one dollar"), [money("1")]);
}

#[test]
fn capitalised_words_are_names_except_an_unknown_opening_word() {
    let known: HashSet<String> = ["ridgeline".to_string()].into();
    let of = |text: &str| Tokens::new(text).facts(&known);
    assert_eq!(of("Every boot is in stock"), []);
    assert_eq!(of("I think it fits"), []);
    assert_eq!(
        of("Ridgeline jackets pair with Vibram soles"),
        [
            word(WordKind::Name, "ridgeline"),
            word(WordKind::Name, "vibram")
        ]
    );
}

#[test]
fn the_issue_examples_are_unsupported() {
    let boots = [source("prod-x", "Boots cost $169.")];
    let found = check("Boots cost $1, 95 percent off. [prod-x]", &boots);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].missing, [money("1"), Fact::Percent("95".into())]);
    assert_eq!(
        found[0].to_string(),
        "unsupported_claim: sentence \"Boots cost $1, 95 percent off.\" states what [prod-x] does not: $1, 95 percent"
    );

    let found = check(
        "Boots cost $169. [prod-x] Everything else ships free.",
        &boots,
    );
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].to_string(),
        "unsupported_claim: sentence \"Everything else ships free.\" cites no snippet and is not tone phrasing"
    );

    let promo = [source("promo-win-back-20", PROMO)];
    let found = check(
        "Every jacket is 90 percent off today only and ships free forever. [promo-win-back-20]",
        &promo,
    );
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].missing,
        [
            Fact::Percent("90".into()),
            Fact::Date("today"),
            word(WordKind::Promise, "free"),
            word(WordKind::Promise, "forever"),
        ]
    );
}

#[test]
fn restated_facts_pass_wherever_the_marker_stands() {
    let boots = [source("prod-x", "Boots cost $169.")];
    for body in [
        "Boots cost $169. [prod-x]",
        "Boots cost 169 dollars [prod-x].",
        "Boots cost $169.00. [prod-x]",
        "[prod-x] Boots cost $169.",
        "Boots cost $169.\n[prod-x]",
    ] {
        assert_eq!(check(body, &boots), [], "{body}");
    }
    let promo = [source("promo-win-back-20", PROMO)];
    assert_eq!(
        check(
            "Returning customers take 20% off an order of $100 or more with TRAILBACK20, valid through February 28, 2027. [promo-win-back-20]",
            &promo
        ),
        []
    );
}

#[test]
fn a_fact_must_come_from_the_snippet_the_sentence_cites() {
    let sources = [
        Source {
            id: "boot",
            title: "Timberline Hiking Boot",
            text: "The Timberline Hiking Boot is priced at $169.",
        },
        Source {
            id: "jacket",
            title: "Ridgeline Trail Jacket",
            text: "The Ridgeline Trail Jacket is priced at $199 and is always waterproof.",
        },
    ];
    let found = check(
        "The Ridgeline Trail Jacket is priced at $169. [boot]",
        &sources,
    );
    assert_eq!(
        found[0].missing,
        [
            word(WordKind::Name, "ridgeline"),
            word(WordKind::Name, "trail"),
            word(WordKind::Name, "jacket")
        ]
    );
    // A known name opening the sentence is still a name.
    assert_eq!(check("Ridgeline boots are here. [boot]", &sources).len(), 1);
    assert_eq!(check("Every boot is here. [boot]", &sources), []);
    // Citing both snippets supports what either states.
    assert_eq!(
        check(
            "The Ridgeline Trail Jacket is always waterproof and boots cost $169. [jacket] [boot]",
            &sources
        ),
        []
    );
    let found = check(
        "The Timberline Hiking Boot is always waterproof. [boot]",
        &sources,
    );
    assert_eq!(found[0].missing, [word(WordKind::Promise, "always")]);
    // An id that is not a snippet supports nothing.
    assert_eq!(check("It costs $169. [nope]", &sources).len(), 1);
}

#[test]
fn bank_lines_pass_uncited_and_nothing_else_does() {
    let boots = [source("prod-x", "Boots cost $169.")];
    let body = "Hi {{first_name}},\n\nWe've missed you! Here's a little of what's been happening since your last visit.\n\nBoots cost $169. [prod-x]\n\nSee it for yourself today: {{cta_url}}\n\nCheers,\nThe Northwind Outfitters team";
    assert_eq!(check(body, &boots), []);
    // A framing line's sentences may stand apart.
    assert_eq!(
        check("We've missed you!\nBoots cost $169. [prod-x]", &boots),
        []
    );
    for bad in [
        "Hi {{first_name}}, every boot is free forever\n\nBoots cost $169. [prod-x]",
        "Shop now!\n\nBoots cost $169. [prod-x]",
        "Boots cost $169. [prod-x]\n\nCheers,\nThe 90 percent off forever team",
        "The Northwind Outfitters team\n\nBoots cost $169. [prod-x]",
        "Boots cost $169. [prod-x]\n\nCheers, The Northwind team",
    ] {
        let found = check(bad, &boots);
        assert_eq!(found.len(), 1, "{bad}: {found:?}");
        assert!(found[0].cited.is_empty(), "{bad}");
    }
}

#[test]
fn a_quoted_sentence_masks_what_could_be_personal_data() {
    let claim = UnsupportedClaim {
        sentence: "Call 555-123-4567 or mail jo@example.com for 20 percent off.".into(),
        cited: vec![],
        missing: vec![],
    };
    assert_eq!(
        claim.to_string(),
        "unsupported_claim: sentence \"Call ###-###-#### or mail <address> for 20 percent off.\" cites no snippet and is not tone phrasing"
    );
    let long = UnsupportedClaim {
        sentence: "word ".repeat(100),
        cited: vec![],
        missing: vec![],
    };
    assert!(long.to_string().len() < MAX_QUOTE_CHARS + 100);
}

/// Words a snippet of the corpus could hold: names, prices, percentages,
/// dates, codes, number words, promises, abbreviations.
fn snippet_word() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "the",
            "boots",
            "Timberline",
            "Hiking",
            "Boot",
            "is",
            "priced",
            "at",
            "and",
            "free",
            "always",
            "forever",
            "members",
            "get",
            "off",
            "March",
            "May",
            "may",
            "one",
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
            "Dr.",
            "today",
            "half",
            "I",
            "I'm",
            "we're",
            "caf\u{e9}",
            "\u{ff15}%",
            "(see",
            "note)",
        ])
        .prop_map(String::from),
        (0u32..5000).prop_map(|n| n.to_string()),
        (0u32..500, 0u32..100).prop_map(|(a, b)| format!("${a}.{b:02}")),
        (0u32..100).prop_map(|n| format!("{n}%")),
        (0u32..10_000).prop_map(|n| format!("${n},{:03}", n % 1000)),
    ]
}

fn snippet_text() -> impl Strategy<Value = String> {
    let sentence = (
        prop::collection::vec(snippet_word(), 1..12),
        prop::sample::select(vec![".", "!", ".", ""]),
    )
        .prop_map(|(words, end)| {
            let mut s = words.join(" ");
            if let Some(first) = s.get(..1) {
                s = first.to_uppercase() + &s[1..];
            }
            s + end
        });
    prop::collection::vec(sentence, 1..6).prop_map(|s| s.join(" "))
}

proptest! {
    /// The composer's construction: sentences quoted verbatim from snippets,
    /// each followed by its marker, between bank lines, always pass.
    #[test]
    fn quoted_sentences_with_their_markers_always_pass(
        texts in prop::collection::vec(snippet_text(), 1..4),
        picks in prop::collection::vec((0usize..4, 0usize..8), 1..5),
    ) {
        let ids = ["a", "b", "c", "d"];
        let sources: Vec<Source<'_>> = texts
            .iter()
            .enumerate()
            .map(|(i, text)| Source { id: ids[i], title: "Timberline Boot", text })
            .collect();
        let mut facts = Vec::new();
        for (source, sentence) in &picks {
            let source = &sources[source % sources.len()];
            let sentences = split_sentences(source.text);
            let chosen = sentences[sentence % sentences.len()];
            if chosen.terminated && !chosen.text.contains(['[', ']', '{', '}']) {
                facts.push(format!("{} [{}]", chosen.text, source.id));
            }
        }
        let body = format!(
            "Hello {{{{first_name}}}},\n\nHere is a quick update with the details you need.\n\n{}\n\nRead more at {{{{cta_url}}}}\n\nKind regards,\nThe Northwind team",
            facts.join(" ")
        );
        let found = check(&body, &sources);
        prop_assert!(found.is_empty(), "{body}\n{found:?}");
    }

    #[test]
    fn never_panics_on_arbitrary_text(body in "\\PC{0,200}", text in "\\PC{0,200}") {
        let _ = check(&body, &[source("a", &text)]);
    }
}
