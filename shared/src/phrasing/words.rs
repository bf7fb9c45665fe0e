//! What phrasing must never say, and the one variable line: the signature.
//!
//! The signature is the only tone line with a slot ("The {brand} team", the
//! brand being configured or the campaign's name). Safety cannot know the
//! brand, so it accepts any signature `signature` could have written: a brand
//! that carries no number, sign or claim word. The composer applies the same
//! rule before signing, so what it writes always passes.

/// Words that make a claim (or sound like spam) and so belong in snippets
/// only: never in a phrase, never in the signature's brand.
pub const CLAIM_WORDS: &[&str] = &[
    "free",
    "guarantee",
    "guaranteed",
    "risk-free",
    "cure",
    "cures",
    "discount",
    "save",
    "savings",
    "sale",
    "deal",
    "deals",
    "price",
    "prices",
    "cheap",
    "cheapest",
    "lowest",
    "best",
    "only",
    "limited",
    "expires",
    "ends",
    "exclusive",
    "win",
    "winner",
    "prize",
    "proven",
    "miracle",
    "instant",
    "off",
    "percent",
    "half",
];

/// Claims that only show as phrases ("last" alone is innocent).
pub const CLAIM_PHRASES: &[&str] = &[
    "last chance",
    "ends soon",
    "act now",
    "while supplies",
    "money back",
    "no risk",
    "hurry",
    "before it's gone",
];

/// Absolute promises: a sentence may make one only when its cited snippet
/// uses the same word. Never allowed in the signature's brand.
pub const PROMISE_WORDS: &[&str] = &[
    "always",
    "forever",
    "never",
    "guarantee",
    "guaranteed",
    "guarantees",
    "lifetime",
    "permanent",
    "permanently",
    "unlimited",
    "free",
];

/// Longest brand in a signature, in characters.
pub const MAX_BRAND_CHARS: usize = 60;

/// The signature line under the sign-off: "The {brand} team", or "The team"
/// when the brand is empty or could carry a claim (see `is_plain_brand`).
pub fn signature(brand: &str) -> String {
    let brand = brand.trim();
    if is_plain_brand(brand) {
        format!("The {brand} team")
    } else {
        "The team".to_string()
    }
}

/// The brand of a signature line, when the line is one `signature` can write.
pub fn signature_brand(line: &str) -> Option<&str> {
    let line = line.trim();
    if line == "The team" {
        return Some("");
    }
    let brand = line.strip_prefix("The ")?.strip_suffix(" team")?;
    is_plain_brand(brand).then_some(brand)
}

/// Can this name sign a message without an attacker turning the signature
/// into a claim? Letters, spaces and `' - & . ,` only (no digit, no money or
/// percent sign, no merge field or bracket), at most `MAX_BRAND_CHARS`, and
/// no claim or promise word.
pub fn is_plain_brand(brand: &str) -> bool {
    let chars = brand.chars().count();
    if chars == 0 || chars > MAX_BRAND_CHARS || brand.trim() != brand {
        return false;
    }
    if !brand
        .chars()
        .all(|c| c.is_alphabetic() || matches!(c, ' ' | '\'' | '-' | '&' | '.' | ','))
    {
        return false;
    }
    let lower = brand.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !(c.is_alphanumeric() || c == '-'))
        .filter(|w| !w.is_empty())
        .collect();
    !words.is_empty()
        && words.iter().all(|w| {
            !CLAIM_WORDS.contains(w)
                && !PROMISE_WORDS.contains(w)
                && w.split('-').all(|part| !CLAIM_WORDS.contains(&part))
        })
        && !CLAIM_PHRASES.iter().any(|p| lower.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_never_carries_a_claim() {
        assert_eq!(
            signature("Northwind Outfitters"),
            "The Northwind Outfitters team"
        );
        assert_eq!(signature("Ben & Jerry's"), "The Ben & Jerry's team");
        for claiming in [
            "",
            "Acme 2026",
            "Free Forever",
            "Half-price Outfitters",
            "Always Fresh",
            "Acme {{x}}",
            "Acme [doc-1]",
            "Save $5 Co",
            "Lifetime Gear",
            &"A".repeat(MAX_BRAND_CHARS + 1),
        ] {
            assert_eq!(signature(claiming), "The team", "{claiming:?}");
        }
        assert_eq!(
            signature_brand("The Northwind Outfitters team"),
            Some("Northwind Outfitters")
        );
        assert_eq!(signature_brand("The team"), Some(""));
        assert_eq!(signature_brand("The 90 percent off forever team"), None);
        assert_eq!(signature_brand("The Acme crew"), None);
    }
}
