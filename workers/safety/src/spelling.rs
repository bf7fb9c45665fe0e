//! One-letter misspellings of lexicon words ("haet", "immigrnts", "fukced"),
//! generated once when the screen is built, so reading them costs one hash
//! lookup per token. The first letter is kept and common words are never
//! produced: "best" is not a misspelt "beast", "back" not "black".

use crate::hate_lexicon::{COMMON_WORDS, FUNCTION_WORDS};

/// Whether a misspelling would hit a common word instead.
pub fn is_common(word: &str) -> bool {
    FUNCTION_WORDS.contains(&word) || COMMON_WORDS.contains(&word)
}

/// Misspellings one edit away that keep the first letter: adjacent letters
/// swapped (4+ letters), a vowel dropped (5+), any later letter dropped (6+).
pub fn one_edit_variants(word: &str) -> Vec<String> {
    let chars: Vec<char> = word.chars().collect();
    let n = chars.len();
    let mut out = Vec::new();
    if n >= 4 {
        for i in 1..n - 1 {
            if chars[i] != chars[i + 1] {
                let mut v = chars.clone();
                v.swap(i, i + 1);
                out.push(v.into_iter().collect());
            }
        }
    }
    if n >= 5 {
        for i in 1..n {
            let vowel = matches!(chars[i], 'a' | 'e' | 'i' | 'o' | 'u');
            if vowel || n >= 6 {
                let mut v = chars.clone();
                v.remove(i);
                out.push(v.into_iter().collect());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_keep_the_first_letter_and_skip_short_words() {
        let v = one_edit_variants("women");
        assert!(v.contains(&"wmoen".to_string()) && v.contains(&"womn".to_string()));
        assert!(v.iter().all(|w| w.starts_with('w')));
        assert!(one_edit_variants("gay").is_empty());
        // a consonant is dropped only from words of six letters or more
        assert!(!one_edit_variants("black").contains(&"back".to_string()));
        assert!(is_common("best"));
    }
}
