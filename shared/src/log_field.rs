//! Log fields taken from input are cut to a bounded length. A message id, a
//! campaign id or an error that quotes its input can be as long as the input
//! (a 20 MB id made 20-42 MB log lines); what identifies it is its start, its
//! length, and a hash of the whole to tell apart two that start alike.

use std::fmt;

/// Characters of an input-derived field that reach a log line.
pub const MAX_LOGGED_CHARS: usize = 128;

/// `text`, displayed whole if it is short, else its first
/// [`MAX_LOGGED_CHARS`] characters, its length and a short hash.
pub fn bounded(text: &str) -> Bounded<'_> {
    Bounded(text)
}

/// See [`bounded`].
#[derive(Clone, Copy)]
pub struct Bounded<'a>(&'a str);

impl fmt::Display for Bounded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0;
        match text.char_indices().nth(MAX_LOGGED_CHARS) {
            None => f.write_str(text),
            Some((cut, _)) => {
                let digest = crate::envelope::derive_id(&[text]);
                write!(
                    f,
                    "{}...({} bytes, {})",
                    &text[..cut],
                    text.len(),
                    digest.chars().take(12).collect::<String>()
                )
            }
        }
    }
}

impl fmt::Debug for Bounded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_fields_are_whole_and_long_ones_cut_on_a_char_boundary() {
        assert_eq!(bounded("msg-1").to_string(), "msg-1");
        let exact = "x".repeat(MAX_LOGGED_CHARS);
        assert_eq!(bounded(&exact).to_string(), exact);
        let long = "é".repeat(10_000_000);
        let shown = bounded(&long).to_string();
        assert!(shown.len() < 400, "{}", shown.len());
        assert!(shown.starts_with(&"é".repeat(MAX_LOGGED_CHARS)));
        assert!(shown.contains("20000000 bytes"), "{shown}");
        let other = format!("{}x", "é".repeat(9_999_999));
        assert_ne!(bounded(&other).to_string(), shown);
    }
}
