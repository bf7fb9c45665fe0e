//! What the lexicon matchers see. Text is folded (NFKC, invisible characters
//! removed, diacritics stripped, lowercased, look-alike letters mapped to Latin)
//! and cut into two token streams, so an obfuscation that survives one is caught
//! by the other:
//!
//! - `split`: words cut at inner punctuation (`risk-free` -> `risk`, `free`);
//! - `joined`: inner punctuation dropped (`sh-it` -> `shit`, `can't` -> `cant`).
//!
//! In both, l33t characters inside words are mapped (`sh1t`, `$hit`, `a$$`), a
//! masking `*`/`#` stays as a wildcard (`f*ck`), and runs of three or more
//! one-letter words are joined (`f u c k`, `k.i.l.l`). Matching is on whole
//! tokens, which is what keeps Scunthorpe, Essex and cocktail innocent.

use regex::Regex;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Cyrillic `у` after folding: read as `u`, alternatively as `y`.
const CYRILLIC_U: char = '\u{E000}';

/// A masking character inside a word (`f*ck`, `sh#t`); matches any one letter.
pub const MASK: char = '*';

/// A merge field rendered per customer by delivery: a bare identifier only.
/// Anything else inside `{{ }}` is a template expression (see `markers`).
pub const MERGE_FIELD: &str = r"\{\{\s*[A-Za-z_][A-Za-z0-9_.]*\s*\}\}";

/// A citation marker as generation writes it: `[snippet-id]`.
pub const CITATION: &str = r"\[([^\[\]\s]{1,128})\]";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Word,
    Number,
    /// `{{first_name}}`: a person once rendered, so it counts as a target of threats.
    MergeField,
    /// `[doc-1]`: supports a claim in the same sentence.
    Citation,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Folded text; in words, l33t characters are mapped (`1` read as `i`).
    pub text: String,
    /// The reading with `1` and `|` as `l` (`ki11`), when the word had one.
    pub alt: Option<String>,
    pub kind: TokenKind,
    /// Index of the sentence the token is in; context rules stay within one.
    pub sentence: u32,
    /// Index of the comma-separated stretch the token is in ("X should be
    /// taken to a vet, not a doctor": the negation is the second one's).
    pub clause: u32,
}

impl Token {
    fn new(text: String, alt: Option<String>, kind: TokenKind, sentence: u32) -> Self {
        let alt = alt.filter(|a| *a != text);
        Self {
            text,
            alt,
            kind,
            sentence,
            clause: 0,
        }
    }

    pub fn is_masked(&self) -> bool {
        self.kind == TokenKind::Word && self.text.contains(MASK)
    }
}

#[derive(Debug, Default)]
pub struct TokenStreams {
    pub split: Vec<Token>,
    pub joined: Vec<Token>,
}

/// Zero-width and other format characters that render as nothing.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{E0000}'..='\u{E007F}')
}

/// NFKC without invisible characters: the text the regex checks (PII, role tags) see.
pub fn visible_nfkc(text: &str) -> String {
    // Most copy is ASCII, which NFKC leaves as it is and which has no invisible characters.
    if text.is_ascii() {
        return text.to_string();
    }
    text.chars().filter(|c| !is_invisible(*c)).nfkc().collect()
}

/// Fold one lowercased character: look-alikes to Latin, dashes, quotes and dots to ASCII.
fn push_folded(c: char, out: &mut String) {
    let mapped = match c {
        // Cyrillic and Greek letters that render like Latin ones.
        'а' | 'α' => 'a',
        'в' | 'β' => 'b',
        'с' | 'ϲ' => 'c',
        'е' | 'ε' | 'ё' => 'e',
        'һ' | 'н' => 'h',
        'і' | 'ї' | 'ι' | 'ı' => 'i',
        'ј' => 'j',
        'к' | 'κ' => 'k',
        'м' => 'm',
        'п' | 'η' => 'n',
        'о' | 'ο' | 'ø' | 'σ' => 'o',
        'р' | 'ρ' => 'p',
        'ѕ' => 's',
        'т' | 'τ' => 't',
        'υ' | 'μ' => 'u',
        'ν' => 'v',
        'ш' | 'ω' => 'w',
        'х' | 'χ' => 'x',
        // Cyrillic u reads as y and stands for u: both readings (`fуck`, `уes`).
        'у' => CYRILLIC_U,
        'γ' => 'y',
        // Armenian letters that render like Latin ones.
        'ս' => 'u',
        'օ' => 'o',
        'ո' => 'n',
        'հ' => 'h',
        'ց' => 'g',
        'ք' => 'p',
        'ա' => 'w',
        // Small capitals (NFKC leaves them).
        'ᴀ' => 'a',
        'ʙ' => 'b',
        'ᴄ' => 'c',
        'ᴅ' => 'd',
        'ᴇ' => 'e',
        'ꜰ' => 'f',
        'ɢ' => 'g',
        'ʜ' => 'h',
        'ɪ' => 'i',
        'ᴊ' => 'j',
        'ᴋ' => 'k',
        'ʟ' => 'l',
        'ᴍ' => 'm',
        'ɴ' => 'n',
        'ᴏ' => 'o',
        'ᴘ' => 'p',
        'ǫ' => 'q',
        'ʀ' => 'r',
        'ꜱ' => 's',
        'ᴛ' => 't',
        'ᴜ' => 'u',
        'ᴠ' => 'v',
        'ᴡ' => 'w',
        'ʏ' => 'y',
        'ᴢ' => 'z',
        'ł' => 'l',
        'đ' | 'ð' => 'd',
        'þ' => 'p',
        'ß' => return out.push_str("ss"),
        'æ' => return out.push_str("ae"),
        'œ' => return out.push_str("oe"),
        '\u{2010}'..='\u{2015}' | '\u{2212}' => '-',
        '\u{2018}' | '\u{2019}' | '\u{201B}' | '\u{02BC}' | '`' | '\u{00B4}' => '\'',
        '\u{00B7}' | '\u{2022}' | '\u{2219}' | '\u{30FB}' => '.',
        other => other,
    };
    out.push(mapped);
}

fn fold_into(text: &str, out: &mut String) {
    if text.is_ascii() {
        out.extend(text.bytes().map(|b| char::from(b.to_ascii_lowercase())));
        return;
    }
    for c in text.nfkd() {
        if is_combining_mark(c) || is_invisible(c) {
            continue;
        }
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else {
            for lower in c.to_lowercase() {
                push_folded(lower, out);
            }
        }
    }
}

/// Characters that stay inside a word: letters, digits, l33t symbols, masks, inner punctuation.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric()
        || c == CYRILLIC_U
        || matches!(
            c,
            '@' | '$' | '!' | '|' | '*' | '#' | '.' | '-' | '_' | '\''
        )
}

/// Punctuation trimmed from the edges of a word (`$` and `@` stay: `a$$`, `@ss`).
fn is_edge_punct(c: char) -> bool {
    matches!(c, '!' | '.' | '-' | '_' | '\'' | '*' | '#' | '|')
}

fn is_inner_separator(c: char) -> bool {
    matches!(c, '.' | '-' | '_' | '\'')
}

/// l33t reading of a character inside a word: (primary, alternative).
fn leet(c: char) -> (char, char) {
    match c {
        '0' => ('o', 'o'),
        '1' | '|' => ('i', 'l'),
        '3' => ('e', 'e'),
        '4' | '@' => ('a', 'a'),
        '5' | '$' => ('s', 's'),
        '7' => ('t', 't'),
        '!' => ('i', 'i'),
        '*' | '#' => (MASK, MASK),
        CYRILLIC_U => ('u', 'y'),
        other => (other, other),
    }
}

pub struct Tokenizer {
    specials: Regex,
}

impl Tokenizer {
    pub fn new() -> Result<Self, regex::Error> {
        Ok(Self {
            specials: Regex::new(&format!("{MERGE_FIELD}|{CITATION}"))?,
        })
    }

    /// Tokenize text already passed through `visible_nfkc`.
    pub fn tokenize(&self, text: &str) -> TokenStreams {
        let mut streams = TokenStreams::default();
        let mut sentence = 0u32;
        let mut clause = 0u32;
        let mut last = 0;
        for special in self.specials.find_iter(text) {
            scan_plain(
                &text[last..special.start()],
                &mut sentence,
                &mut clause,
                &mut streams,
            );
            let raw = special.as_str();
            let token = if raw.starts_with("{{") {
                Token::new(String::new(), None, TokenKind::MergeField, sentence)
            } else {
                let id = raw.trim_start_matches('[').trim_end_matches(']');
                Token::new(id.to_string(), None, TokenKind::Citation, sentence)
            };
            streams.split.push(token.clone());
            streams.joined.push(token);
            last = special.end();
        }
        scan_plain(&text[last..], &mut sentence, &mut clause, &mut streams);
        streams.split = join_spelled_out(std::mem::take(&mut streams.split));
        streams.joined = join_spelled_out(std::mem::take(&mut streams.joined));
        streams
    }
}

fn scan_plain(text: &str, sentence: &mut u32, clause: &mut u32, streams: &mut TokenStreams) {
    if text.is_empty() {
        return;
    }
    let push = |chunk: &str, sentence: &mut u32, clause: u32, streams: &mut TokenStreams| {
        let (split, joined) = (streams.split.len(), streams.joined.len());
        push_chunk(chunk, sentence, streams);
        for t in streams.split[split..]
            .iter_mut()
            .chain(&mut streams.joined[joined..])
        {
            t.clause = clause;
        }
    };
    let mut folded = String::with_capacity(text.len());
    fold_into(text, &mut folded);
    let mut chunk = String::new();
    for c in folded.chars() {
        if is_word_char(c) {
            chunk.push(c);
            continue;
        }
        if !chunk.is_empty() {
            push(&chunk, sentence, *clause, streams);
            chunk.clear();
        }
        if matches!(c, '?' | ';' | '\n' | '\r') {
            *sentence += 1;
        }
        if matches!(c, ',' | ':' | '(' | ')') {
            *clause += 1;
        }
    }
    if !chunk.is_empty() {
        push(&chunk, sentence, *clause, streams);
    }
}

fn push_chunk(chunk: &str, sentence: &mut u32, streams: &mut TokenStreams) {
    let lead_trimmed = chunk.trim_start_matches(is_edge_punct);
    let core = lead_trimmed.trim_end_matches(is_edge_punct);
    let trailing = &lead_trimmed[core.len()..];
    // "J. Smith" and "k. i. l. l." do not end a sentence; "kill." and a lone "." do.
    let ends_sentence = if core.is_empty() {
        chunk.contains(['.', '!'])
    } else {
        let single_char = core.chars().nth(1).is_none();
        (trailing.contains('.') && !single_char) || trailing.contains('!')
    };

    if core.chars().any(|c| c.is_alphabetic() || c == CYRILLIC_U) {
        push_word(core, *sentence, streams);
    } else if core.chars().any(char::is_alphanumeric) {
        let digits: String = core.chars().filter(|c| c.is_alphanumeric()).collect();
        let token = Token::new(digits, None, TokenKind::Number, *sentence);
        streams.split.push(token.clone());
        streams.joined.push(token);
    }
    if ends_sentence {
        *sentence += 1;
    }
}

fn push_word(core: &str, sentence: u32, streams: &mut TokenStreams) {
    let text: String = core.chars().map(|c| leet(c).0).collect();
    // Only `1` and `|` read two ways; most words have neither.
    let alt: Option<String> = core
        .contains(['1', '|', CYRILLIC_U])
        .then(|| core.chars().map(|c| leet(c).1).collect());
    if !text.contains(is_inner_separator) {
        let token = Token::new(text, alt, TokenKind::Word, sentence);
        streams.split.push(token.clone());
        streams.joined.push(token);
        return;
    }
    let alt_parts = alt.as_deref().map(|a| a.split(is_inner_separator));
    let mut alt_parts = alt_parts.into_iter().flatten();
    let mut parts = 0;
    for part in text.split(is_inner_separator) {
        let alt_part = alt_parts.next();
        if part.is_empty() {
            continue;
        }
        parts += 1;
        streams.split.push(Token::new(
            part.to_string(),
            alt_part.map(str::to_string),
            TokenKind::Word,
            sentence,
        ));
    }
    if parts == 0 {
        return;
    }
    let joined: String = text.chars().filter(|c| !is_inner_separator(*c)).collect();
    let joined_alt = alt.map(|a| a.chars().filter(|c| !is_inner_separator(*c)).collect());
    streams
        .joined
        .push(Token::new(joined, joined_alt, TokenKind::Word, sentence));
}

/// The letter a one-character token spells in `f u c k` / `k 1 l l`, with its alternative.
fn spelled_char(token: &Token) -> Option<(char, char)> {
    let mut chars = token.text.chars();
    let c = chars.next()?;
    if chars.next().is_some() {
        return None;
    }
    match token.kind {
        TokenKind::Word => {
            let alt = token
                .alt
                .as_ref()
                .and_then(|a| a.chars().next())
                .unwrap_or(c);
            Some((c, alt))
        }
        TokenKind::Number if leet(c).0 != c => Some(leet(c)),
        _ => None,
    }
}

/// Join runs of three or more one-character tokens (at least two of them letters).
fn join_spelled_out(tokens: Vec<Token>) -> Vec<Token> {
    let mut out = Vec::with_capacity(tokens.len());
    let mut run: Vec<Token> = Vec::new();
    for token in tokens {
        if spelled_char(&token).is_some() {
            run.push(token);
        } else {
            flush_run(&mut run, &mut out);
            out.push(token);
        }
    }
    flush_run(&mut run, &mut out);
    out
}

fn flush_run(run: &mut Vec<Token>, out: &mut Vec<Token>) {
    let letters = run.iter().filter(|t| t.kind == TokenKind::Word).count();
    if run.len() < 3 || letters < 2 {
        out.append(run);
        return;
    }
    let (text, alt): (String, String) = run.iter().filter_map(spelled_char).unzip();
    let mut token = Token::new(text, Some(alt), TokenKind::Word, run[0].sentence);
    token.clause = run[0].clause;
    out.push(token);
    run.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn texts(tokens: &[Token]) -> Vec<&str> {
        tokens.iter().map(|t| t.text.as_str()).collect()
    }

    static TOKENIZER: std::sync::LazyLock<Tokenizer> =
        std::sync::LazyLock::new(|| Tokenizer::new().unwrap());

    fn streams(text: &str) -> TokenStreams {
        TOKENIZER.tokenize(&visible_nfkc(text))
    }

    #[test]
    fn folding_undoes_width_case_diacritics_lookalikes_and_invisibles() {
        let s = streams("ＦÜ\u{200B}CK Ѕhіt Ⓚⓘⓛⓛ");
        assert_eq!(texts(&s.joined), ["fuck", "shit", "kill"]);
    }

    #[test]
    fn inner_punctuation_splits_in_one_stream_and_joins_in_the_other() {
        let s = streams("sh-it risk-free can't");
        assert_eq!(texts(&s.split), ["sh", "it", "risk", "free", "can", "t"]);
        assert_eq!(texts(&s.joined), ["shit", "riskfree", "cant"]);
    }

    #[test]
    fn leet_maps_inside_words_only_and_keeps_both_readings_of_1() {
        let s = streams("$h!t ki11 a$$ 24/7 $50 100%");
        assert_eq!(
            texts(&s.joined),
            ["shit", "kiii", "ass", "24", "7", "50", "100"]
        );
        assert_eq!(s.joined[1].alt.as_deref(), Some("kill"));
        assert_eq!(s.joined[3].kind, TokenKind::Number);
    }

    #[test]
    fn spelled_out_words_are_joined_and_masks_kept() {
        assert_eq!(texts(&streams("f u c k you").joined), ["fuck", "you"]);
        assert_eq!(texts(&streams("k.i.l.l you").split), ["kill", "you"]);
        assert_eq!(
            texts(&streams("I will k 1 l l").joined),
            ["i", "will", "kill"]
        );
        assert_eq!(texts(&streams("f*ck **sale**").joined), ["f*ck", "sale"]);
        // two letters are not a spelled-out word
        assert_eq!(texts(&streams("a b").joined), ["a", "b"]);
    }

    #[test]
    fn sentences_merge_fields_and_citations_are_tracked() {
        let s = streams("Hi {{ first_name }}. Proven [doc-1]! Next? J. Smith");
        let kinds: Vec<_> = s.joined.iter().map(|t| (t.kind, t.sentence)).collect();
        assert_eq!(
            kinds,
            [
                (TokenKind::Word, 0),
                (TokenKind::MergeField, 0),
                (TokenKind::Word, 1),
                (TokenKind::Citation, 1),
                (TokenKind::Word, 2),
                (TokenKind::Word, 3),
                (TokenKind::Word, 3),
            ]
        );
        assert_eq!(s.joined[3].text, "doc-1");
    }

    proptest! {
        #[test]
        fn tokenizing_any_text_is_total_and_yields_no_empty_words(text in "\\PC{0,200}") {
            let s = streams(&text);
            for t in s.split.iter().chain(&s.joined) {
                prop_assert!(t.kind != TokenKind::Word || !t.text.is_empty());
            }
        }

        #[test]
        fn folding_is_idempotent_on_ascii_words(word in "[a-z]{1,12}") {
            let once = streams(&word.to_uppercase());
            prop_assert_eq!(texts(&once.joined), vec![word.as_str()]);
        }
    }
}
