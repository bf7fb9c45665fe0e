//! Text with the spaces deleted ("ihatewomen", "killyou") cut back into words.
//!
//! A word of five or more letters that is not itself in the vocabulary is cut
//! into the fewest vocabulary words that cover it exactly, if any (dynamic
//! programming over a letter trie, so a token costs a few array steps per
//! letter). The vocabulary is the harm scorers' words and short function
//! words, never the profanity list, so ordinary words rarely cut at all
//! ("therapist" has no cover) and a cut only matters when the pieces form a
//! harmful phrase, which the usual context rules then judge.

use crate::normalize::{Token, TokenKind};

const MIN_LEN: usize = 5;
/// A cut needs one piece this long: "rather" is not "rat her".
const MIN_CONTENT: usize = 4;
/// Longer tokens are not run-together phrases worth cutting (and cost more).
const MAX_LEN: usize = 40;
const NONE: u32 = u32::MAX;

pub struct Segmenter {
    /// Trie over a-z: children per node, and whether a word ends there.
    children: Vec<[u32; 26]>,
    terminal: Vec<bool>,
}

impl Segmenter {
    pub fn new<'a>(vocabulary: impl IntoIterator<Item = &'a str>) -> Self {
        let mut s = Self {
            children: vec![[NONE; 26]],
            terminal: vec![false],
        };
        for word in vocabulary {
            if word.bytes().all(|b| b.is_ascii_lowercase()) && !word.is_empty() {
                s.insert(word);
            }
        }
        s
    }

    fn insert(&mut self, word: &str) {
        let mut node = 0usize;
        for b in word.bytes() {
            let slot = usize::from(b - b'a');
            if self.children[node][slot] == NONE {
                self.children.push([NONE; 26]);
                self.terminal.push(false);
                self.children[node][slot] = (self.children.len() - 1) as u32;
            }
            node = self.children[node][slot] as usize;
        }
        self.terminal[node] = true;
    }

    fn contains(&self, word: &[u8]) -> bool {
        let mut node = 0usize;
        for &b in word {
            let next = self.children[node][usize::from(b - b'a')];
            if next == NONE {
                return false;
            }
            node = next as usize;
        }
        self.terminal[node]
    }

    /// The cut of `word` into two or more vocabulary words, fewest pieces first.
    pub fn cut(&self, word: &str) -> Option<Vec<String>> {
        let bytes = word.as_bytes();
        let n = bytes.len();
        if !(MIN_LEN..=MAX_LEN).contains(&n)
            || !bytes.iter().all(u8::is_ascii_lowercase)
            || self.contains(bytes)
        {
            return None;
        }
        // best[i]: fewest pieces covering bytes[..i], and where the last piece starts.
        let mut best: Vec<Option<(u8, usize)>> = vec![None; n + 1];
        best[0] = Some((0, 0));
        for start in 0..n {
            let Some((pieces, _)) = best[start] else {
                continue;
            };
            let mut node = 0usize;
            for (end, &b) in bytes.iter().enumerate().skip(start) {
                let next = self.children[node][usize::from(b - b'a')];
                if next == NONE {
                    break;
                }
                node = next as usize;
                if self.terminal[node] && best[end + 1].is_none_or(|(p, _)| pieces + 1 < p) {
                    best[end + 1] = Some((pieces + 1, start));
                }
            }
        }
        let (pieces, _) = best[n]?;
        if pieces < 2 {
            return None;
        }
        let mut out = Vec::with_capacity(usize::from(pieces));
        let mut end = n;
        while end > 0 {
            let (_, start) = best[end]?;
            out.push(word[start..end].to_string());
            end = start;
        }
        out.reverse();
        out.iter().any(|p| p.len() >= MIN_CONTENT).then_some(out)
    }

    /// `tokens` with every run-together word cut, or `None` when nothing was cut.
    pub fn segment(&self, tokens: &[Token]) -> Option<Vec<Token>> {
        let mut out: Option<Vec<Token>> = None;
        for (i, token) in tokens.iter().enumerate() {
            let cut = (token.kind == TokenKind::Word)
                .then(|| self.cut(&token.text))
                .flatten();
            match (cut, &mut out) {
                (Some(pieces), out) => {
                    let out = out.get_or_insert_with(|| tokens[..i].to_vec());
                    out.extend(pieces.into_iter().map(|text| Token {
                        text,
                        alt: None,
                        kind: TokenKind::Word,
                        sentence: token.sentence,
                        clause: token.clause,
                    }));
                }
                (None, Some(out)) => out.push(token.clone()),
                (None, None) => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_together_words_are_cut_into_the_fewest_known_words() {
        let s = Segmenter::new(["i", "hate", "women", "so", "sick", "kill", "you", "the"]);
        assert_eq!(s.cut("ihatewomen").unwrap(), ["i", "hate", "women"]);
        assert_eq!(s.cut("killyou").unwrap(), ["kill", "you"]);
        assert!(s.cut("therapist").is_none());
        let s = Segmenter::new(["rat", "her", "rather"]);
        assert!(s.cut("rather").is_none(), "known");
        let s = Segmenter::new(["rat", "her"]);
        assert!(s.cut("rather").is_none(), "no piece of four letters");
        assert!(s.cut("women").is_none(), "a known word is not cut");
        assert!(s.cut("kill").is_none(), "short words are not cut");
    }
}
