//! Subject lines: a tone template around a topic, at most 60 characters,
//! never cut inside a word.

use crate::check::MAX_SUBJECT_CHARS;

const TOPIC: &str = "{topic}";

/// Words a shortened subject must not end on ("Shoes and", "Gifts for").
const DANGLING: &[&str] = &[
    "and", "or", "for", "to", "the", "a", "an", "of", "with", "in", "on", "at", "by", "from", "&",
    "+", "-", "\u{2013}", "\u{2014}", "|", "/",
];

/// Punctuation a shortened subject must not end on ("Summer Sale:").
const TRAILING: &[char] = &[
    ',', ';', ':', '-', '\u{2013}', '\u{2014}', '/', '|', '&', '+', '(',
];

/// Text from marketers (campaign names, brands) made safe for one line of copy:
/// template and citation syntax removed (`{`, `}`, `[`, `]`, `<`, `>`), control
/// characters dropped, whitespace collapsed to single spaces.
pub fn clean_inline(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
    {
        let word: String = word
            .chars()
            .filter(|c| !matches!(c, '{' | '}' | '[' | ']' | '<' | '>'))
            .collect();
        if word.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&word);
    }
    out
}

/// The longest run of whole leading words of `text` (single-spaced, as
/// `clean_inline` makes it) that fits in `budget` characters, without a dangling
/// connector or punctuation at the end. Empty when not even the first word fits.
pub fn fit_words(text: &str, budget: usize) -> &str {
    let mut end = 0;
    let mut used = 0;
    for (start, word) in word_spans(text) {
        let cost = word.chars().count() + usize::from(end > 0);
        if used + cost > budget {
            break;
        }
        used += cost;
        end = start + word.len();
    }
    let mut fitted = &text[..end];
    loop {
        let trimmed = fitted.trim_end_matches(TRAILING).trim_end();
        let trimmed = match trimmed.rsplit_once(' ') {
            Some((head, last)) if DANGLING.contains(&last.to_lowercase().as_str()) => head,
            None if DANGLING.contains(&trimmed.to_lowercase().as_str()) => "",
            _ => trimmed,
        };
        if trimmed.len() == fitted.len() {
            return fitted;
        }
        fitted = trimmed;
    }
}

fn word_spans(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split(' ').scan(0, |offset, word| {
        let start = *offset;
        *offset += word.len() + 1;
        Some((start, word))
    })
}

/// Fill `template`'s `{topic}` with as much of `topic` as fits in the subject
/// limit; fall back to `plain` (a topic-free subject) when nothing fits.
pub fn compose_subject(template: &str, topic: &str, plain: &str) -> String {
    let topic = clean_inline(topic);
    let fixed = template
        .chars()
        .count()
        .saturating_sub(TOPIC.chars().count());
    let fitted = fit_words(&topic, MAX_SUBJECT_CHARS.saturating_sub(fixed));
    let subject = if fitted.is_empty() || !template.contains(TOPIC) {
        fit_words(plain, MAX_SUBJECT_CHARS).to_string()
    } else {
        template.replacen(TOPIC, fitted, 1)
    };
    // Templates are short and plain subjects fit, so this never cuts; it keeps
    // the limit a property of this function rather than of the phrase banks.
    if subject.chars().count() > MAX_SUBJECT_CHARS {
        return fit_words(&clean_inline(&subject), MAX_SUBJECT_CHARS).to_string();
    }
    subject
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_topics_are_kept_whole() {
        assert_eq!(
            compose_subject("Your guide to {topic}", "Spring Refresh", "x"),
            "Your guide to Spring Refresh"
        );
    }

    #[test]
    fn long_topics_lose_whole_words_and_dangling_ends() {
        let s = compose_subject(
            "{topic}: what you need to know",
            "Autumn Collection Launch for the whole family and friends",
            "x",
        );
        assert_eq!(s, "Autumn Collection Launch: what you need to know");
        assert!(s.chars().count() <= MAX_SUBJECT_CHARS);
    }

    #[test]
    fn an_unfittable_or_empty_topic_uses_the_plain_subject() {
        let giant = "x".repeat(80);
        assert_eq!(
            compose_subject("Hi {topic}", &giant, "Our latest news"),
            "Our latest news"
        );
        assert_eq!(
            compose_subject("Hi {topic}", " {{}} ", "Our latest news"),
            "Our latest news"
        );
    }

    #[test]
    fn template_syntax_in_names_is_removed() {
        assert_eq!(
            clean_inline("Sale {{email}} [doc-1]\n<b>now</b>"),
            "Sale email doc-1 bnow/b"
        );
    }

    proptest! {
        #[test]
        fn fitted_text_is_whole_leading_words(raw in "[A-Za-z&:,\\- ]{0,90}", budget in 0usize..70) {
            let text = clean_inline(&raw);
            let fitted = fit_words(&text, budget);
            prop_assert!(fitted.chars().count() <= budget);
            prop_assert!(text.starts_with(fitted));
            let fitted_words: Vec<&str> = fitted.split(' ').filter(|w| !w.is_empty()).collect();
            let text_words: Vec<&str> = text.split(' ').collect();
            for (i, word) in fitted_words.iter().enumerate() {
                if i + 1 < fitted_words.len() {
                    prop_assert_eq!(*word, text_words[i]);
                } else {
                    // the last word may only have lost trailing punctuation, never letters
                    let rest = &text_words[i][word.len()..];
                    prop_assert!(text_words[i].starts_with(word));
                    prop_assert!(rest.chars().all(|c| TRAILING.contains(&c)), "cut {:?} from {:?}", rest, text_words[i]);
                }
            }
        }

        #[test]
        fn subjects_never_exceed_the_limit(template in "[A-Za-z ]{0,20}\\{topic\\}[A-Za-z :]{0,20}", topic in "\\PC{0,120}") {
            let s = compose_subject(&template, &topic, "Our latest news");
            prop_assert!(s.chars().count() <= MAX_SUBJECT_CHARS);
            let clean = !s.contains('{') && !s.contains('\n');
            prop_assert!(clean, "unclean subject {:?}", s);
        }
    }
}
