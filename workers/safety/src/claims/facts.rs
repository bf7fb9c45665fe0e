//! The checkable facts of a sentence, normalised so that one fact written two
//! ways compares equal: "15%" = "15 percent" = "fifteen per cent", "$169" =
//! "$169.00" = "169 dollars" = "USD 169", "Mar 31" = "March 31".
//!
//! Text is tokenised once into numbers, words and signs; punctuation between
//! them is a break, so a unit never attaches across a comma ("$1, 95 percent"
//! is one dollar and ninety-five percent, not $1.95). The same tokeniser reads
//! the snippets, so a sentence quoted from a snippet states nothing its
//! snippet does not.

use std::collections::HashSet;
use std::fmt;

use cpo_shared::phrasing::PROMISE_WORDS;

use super::words::{
    DEADLINE_WORDS, MONTH_ABBREVIATIONS, MONTHS, QUANTITY_WORDS, TENS, UNITS, WEEKDAYS,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Currency {
    Usd,
    Eur,
    Gbp,
}

/// A word the cited snippet must use as well.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WordKind {
    /// Promo codes and model numbers: all capitals, or letters with digits.
    Code,
    /// A product or brand name word (see `Tokens::facts`).
    Name,
    /// An absolute promise (`PROMISE_WORDS`: "free", "forever", "lifetime").
    Promise,
    /// "half", "double", "twice": a quantity written as a word.
    Quantity,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Fact {
    /// An amount without thousands separators or trailing zeros ("169", "19.5").
    Money(Currency, String),
    Percent(String),
    Number(String),
    /// A month, a weekday or a deadline word, canonical and lowercase.
    Date(&'static str),
    Word(WordKind, String),
}

impl fmt::Display for Fact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fact::Money(Currency::Usd, amount) => write!(f, "${amount}"),
            Fact::Money(Currency::Eur, amount) => write!(f, "\u{20ac}{amount}"),
            Fact::Money(Currency::Gbp, amount) => write!(f, "\u{a3}{amount}"),
            Fact::Percent(value) => write!(f, "{value} percent"),
            Fact::Number(value) => f.write_str(value),
            Fact::Date(word) => f.write_str(word),
            Fact::Word(WordKind::Code, word) => f.write_str(&word.to_uppercase()),
            Fact::Word(_, word) => f.write_str(word),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token<'a> {
    /// A numeral, canonical ("1000", "19.5"); ordinals lose their suffix.
    Num(String),
    Word(&'a str),
    /// Letters mixed with digits ("TRAILBACK20", "28L", "9am").
    Code(&'a str),
    /// `$`, `€`, `£` or `%`.
    Sign(char),
    /// Any other punctuation: units and number words never reach across it.
    Break,
}

/// A text cut into tokens, each with its word position (0 = the first word
/// or number of the text).
pub struct Tokens<'a> {
    tokens: Vec<Token<'a>>,
}

impl<'a> Tokens<'a> {
    pub fn new(text: &'a str) -> Self {
        Self {
            tokens: tokenize(text),
        }
    }

    /// Every word and code, lowercase: what a cited snippet offers as words.
    pub fn words(&self) -> impl Iterator<Item = String> + '_ {
        self.tokens.iter().filter_map(|t| match t {
            Token::Word(w) | Token::Code(w) => Some(w.to_lowercase()),
            _ => None,
        })
    }

    /// Capitalised words that do not open the text: a snippet's names.
    pub fn inner_names(&self) -> impl Iterator<Item = String> + '_ {
        let t = &self.tokens;
        t.iter().enumerate().filter_map(|(i, token)| match token {
            Token::Word(w) if is_capitalised(w) && !opens(t, i) => Some(w.to_lowercase()),
            _ => None,
        })
    }

    /// The facts stated. A capitalised word is a name unless it opens the
    /// text, where it is one only when `known_names` holds it (a word the
    /// snippets capitalise mid-sentence): "Every" opens sentences, "Timberline"
    /// is a product wherever it stands. A word with non-ASCII letters is a name
    /// too, so look-alike letters cannot disguise "frее" as a plain word.
    pub fn facts(&self, known_names: &HashSet<String>) -> Vec<Fact> {
        let t = &self.tokens;
        let mut facts = Vec::new();
        let mut i = 0;
        while i < t.len() {
            if let Some((value, next)) = number_at(t, i) {
                let (fact, next) = with_unit(t, value, next);
                facts.push(fact);
                i = next;
                continue;
            }
            match &t[i] {
                Token::Sign(sign) => {
                    let currency = match sign {
                        '$' => Some(Currency::Usd),
                        '\u{20ac}' => Some(Currency::Eur),
                        '\u{a3}' => Some(Currency::Gbp),
                        _ => None,
                    };
                    if let (Some(currency), Some((value, next))) = (currency, number_at(t, i + 1)) {
                        facts.push(Fact::Money(currency, value));
                        i = skip_currency_word(t, next, currency);
                        continue;
                    }
                }
                Token::Code(code) => facts.push(Fact::Word(WordKind::Code, code.to_lowercase())),
                Token::Word(word) => {
                    if let Some(currency) = currency_code(word)
                        && let Some((value, next)) = number_at(t, i + 1)
                    {
                        facts.push(Fact::Money(currency, value));
                        i = next;
                        continue;
                    }
                    if word.eq_ignore_ascii_case("us") && t.get(i + 1) == Some(&Token::Sign('$')) {
                        i += 1;
                        continue;
                    }
                    if let Some(fact) = word_fact(t, i, word, known_names) {
                        facts.push(fact);
                    }
                }
                Token::Num(_) | Token::Break => {}
            }
            i += 1;
        }
        facts
    }
}

fn word_fact(t: &[Token<'_>], i: usize, word: &str, known: &HashSet<String>) -> Option<Fact> {
    let lower = word.to_lowercase();
    let beside_number = |i: usize| {
        matches!(t.get(i + 1), Some(Token::Num(_)))
            || i.checked_sub(1)
                .is_some_and(|p| matches!(t.get(p), Some(Token::Num(_))))
    };
    if let Some(month) = MONTHS.iter().find(|m| **m == lower) {
        // "may" is a verb unless a number stands beside it ("May 5").
        if *month != "may" || beside_number(i) {
            return Some(Fact::Date(month));
        }
    }
    if let Some((_, index)) = MONTH_ABBREVIATIONS.iter().find(|(a, _)| *a == lower)
        && is_capitalised(word)
        && beside_number(i)
    {
        return Some(Fact::Date(MONTHS[*index]));
    }
    if let Some(day) = WEEKDAYS.iter().find(|d| **d == lower) {
        return Some(Fact::Date(day));
    }
    if let Some(deadline) = DEADLINE_WORDS.iter().find(|d| **d == lower) {
        return Some(Fact::Date(deadline));
    }
    if PROMISE_WORDS.contains(&lower.as_str()) {
        return Some(Fact::Word(WordKind::Promise, lower));
    }
    if QUANTITY_WORDS.contains(&lower.as_str()) {
        return Some(Fact::Word(WordKind::Quantity, lower));
    }
    let letters = word.chars().filter(|c| c.is_alphabetic()).count();
    if letters >= 2 && word.chars().all(|c| !c.is_lowercase()) {
        return Some(Fact::Word(WordKind::Code, lower));
    }
    if !word.is_ascii() {
        return Some(Fact::Word(WordKind::Name, lower));
    }
    let pronoun = word == "I" || word.starts_with("I'");
    if is_capitalised(word) && !pronoun && (!opens(t, i) || known.contains(&lower)) {
        return Some(Fact::Word(WordKind::Name, lower));
    }
    None
}

/// Is token `i` the first word or number of the text?
fn opens(t: &[Token<'_>], i: usize) -> bool {
    t[..i]
        .iter()
        .all(|t| matches!(t, Token::Break | Token::Sign(_)))
}

fn is_capitalised(word: &str) -> bool {
    word.chars().next().is_some_and(char::is_uppercase)
}

/// The number at `i` (a numeral, or number words such as "ninety nine") and
/// the index after it. A lone "one" is a pronoun ("the one you like") unless
/// a unit follows it.
fn number_at(t: &[Token<'_>], i: usize) -> Option<(String, usize)> {
    match t.get(i)? {
        Token::Num(value) => Some((value.clone(), i + 1)),
        Token::Word(_) => {
            let (value, next, words) = number_words(t, i)?;
            let lone_one = words == 1
                && matches!(t.get(i), Some(Token::Word(w)) if w.eq_ignore_ascii_case("one"));
            if lone_one && unit_at(t, next).is_none() {
                return None;
            }
            Some((value.to_string(), next))
        }
        _ => None,
    }
}

fn number_words(t: &[Token<'_>], start: usize) -> Option<(u64, usize, usize)> {
    let (mut total, mut current, mut words) = (0u64, 0u64, 0usize);
    let mut i = start;
    while let Some(Token::Word(w)) = t.get(i) {
        let lower = w.to_lowercase();
        if let Some(unit) = UNITS.iter().position(|u| *u == lower) {
            current += unit as u64;
        } else if let Some(ten) = TENS.iter().position(|u| *u == lower) {
            current += (ten as u64 + 2) * 10;
        } else if lower == "hundred" {
            // "a hundred", "one hundred": a bare scale word is one of it.
            current = current.max(1) * 100;
        } else if lower == "thousand" || lower == "million" {
            let scale = if lower == "thousand" {
                1_000
            } else {
                1_000_000
            };
            total += current.max(1) * scale;
            current = 0;
        } else if lower == "and" && words > 0 && number_words(t, i + 1).is_some() {
            // "one hundred and twenty"
        } else {
            break;
        }
        words += 1;
        i += 1;
    }
    (words > 0).then_some((total + current, i, words))
}

#[derive(Clone, Copy)]
enum Unit {
    Percent,
    Money(Currency),
}

/// The unit after a number, and how many tokens it takes.
fn unit_at(t: &[Token<'_>], i: usize) -> Option<(Unit, usize)> {
    match t.get(i)? {
        Token::Sign('%') => Some((Unit::Percent, 1)),
        Token::Word(w) => {
            let lower = w.to_lowercase();
            match lower.as_str() {
                "percent" | "pct" | "percentage" => Some((Unit::Percent, 1)),
                "per" => {
                    matches!(t.get(i + 1), Some(Token::Word(c)) if c.eq_ignore_ascii_case("cent"))
                        .then_some((Unit::Percent, 2))
                }
                "dollar" | "dollars" | "buck" | "bucks" => Some((Unit::Money(Currency::Usd), 1)),
                "euro" | "euros" => Some((Unit::Money(Currency::Eur), 1)),
                "pound" | "pounds" | "quid" => Some((Unit::Money(Currency::Gbp), 1)),
                _ => currency_code(w).map(|c| (Unit::Money(c), 1)),
            }
        }
        _ => None,
    }
}

fn with_unit(t: &[Token<'_>], value: String, next: usize) -> (Fact, usize) {
    match unit_at(t, next) {
        Some((Unit::Percent, len)) => (Fact::Percent(value), next + len),
        Some((Unit::Money(currency), len)) => (Fact::Money(currency, value), next + len),
        None => (Fact::Number(value), next),
    }
}

fn currency_code(word: &str) -> Option<Currency> {
    match word.to_lowercase().as_str() {
        "usd" => Some(Currency::Usd),
        "eur" => Some(Currency::Eur),
        "gbp" => Some(Currency::Gbp),
        _ => None,
    }
}

/// "$169 USD": the code repeats the sign and is not a promo code.
fn skip_currency_word(t: &[Token<'_>], i: usize, currency: Currency) -> usize {
    match t.get(i) {
        Some(Token::Word(w)) if currency_code(w) == Some(currency) => i + 1,
        _ => i,
    }
}

fn tokenize(text: &str) -> Vec<Token<'_>> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(c) = text[i..].chars().next() {
        let len = c.len_utf8();
        if c.is_ascii_digit() {
            let end = numeral_end(bytes, i);
            let suffix_end = alnum_end(text, end);
            let suffix = &text[end..suffix_end];
            if suffix.is_empty()
                || ["st", "nd", "rd", "th"].contains(&suffix.to_lowercase().as_str())
            {
                tokens.push(Token::Num(canonical(&text[i..end])));
            } else {
                tokens.push(Token::Code(&text[i..suffix_end]));
            }
            i = suffix_end;
        } else if c.is_alphanumeric() {
            let end = word_end(text, i);
            let word = &text[i..end];
            if word.chars().any(|c| c.is_ascii_digit()) {
                tokens.push(Token::Code(word));
            } else {
                tokens.push(Token::Word(word));
            }
            i = end;
        } else {
            if matches!(c, '$' | '\u{20ac}' | '\u{a3}' | '%') {
                tokens.push(Token::Sign(c));
            } else if !c.is_whitespace() && c != '-' && tokens.last() != Some(&Token::Break) {
                // A hyphen joins ("20-percent", "twenty-five"); whitespace separates.
                tokens.push(Token::Break);
            }
            i += len;
        }
    }
    tokens
}

/// Digits, thousands groups (`,` and exactly three digits) and one decimal part.
fn numeral_end(bytes: &[u8], start: usize) -> usize {
    let digits_from = |i: usize| bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
    let mut end = start + digits_from(start);
    while bytes.get(end) == Some(&b',') && digits_from(end + 1) == 3 {
        end += 4;
    }
    if bytes.get(end) == Some(&b'.') && digits_from(end + 1) > 0 {
        end += 1 + digits_from(end + 1);
    }
    end
}

fn alnum_end(text: &str, start: usize) -> usize {
    text[start..]
        .char_indices()
        .find(|(_, c)| !c.is_alphanumeric())
        .map_or(text.len(), |(i, _)| start + i)
}

/// Letters and digits, with apostrophes inside ("we're", "Jerry's").
fn word_end(text: &str, start: usize) -> usize {
    let mut end = alnum_end(text, start);
    while let Some(rest) = text.get(end..) {
        let mut chars = rest.chars();
        match (chars.next(), chars.next()) {
            (Some('\'' | '\u{2019}'), Some(next)) if next.is_alphanumeric() => {
                end = alnum_end(text, end + rest.chars().next().map_or(1, char::len_utf8));
            }
            _ => break,
        }
    }
    end
}

/// "1,000.50" -> "1000.5", "169.00" -> "169", "007" -> "7".
fn canonical(numeral: &str) -> String {
    let plain: String = numeral.chars().filter(|c| *c != ',').collect();
    let (whole, fraction) = plain.split_once('.').unwrap_or((&plain, ""));
    let whole = whole.trim_start_matches('0');
    let whole = if whole.is_empty() { "0" } else { whole };
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        whole.to_string()
    } else {
        format!("{whole}.{fraction}")
    }
}
