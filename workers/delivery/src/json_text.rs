//! Rendered text kept the way the outbox (and an ESP's JSON API) takes it: as
//! the contents of a JSON string. Templates are escaped once per batch and
//! merge values once per message, so a rendered body is never scanned again
//! to be escaped; JSON escaping works character by character, so the escaped
//! parts put together are the escaped whole.

use std::borrow::Cow;

use serde::{Serialize, Serializer};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Text as the contents of a JSON string, escaped exactly as `serde_json` escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonText(String);

impl JsonText {
    pub(crate) fn from_escaped(escaped: String) -> Self {
        Self(escaped)
    }

    pub fn from_plain(text: &str) -> Self {
        Self(escape(text).into_owned())
    }

    /// What goes between the quotes of a JSON string.
    pub fn escaped(&self) -> &str {
        &self.0
    }

    /// The text itself (an SMTP sink's body, tests).
    pub fn plain(&self) -> String {
        let mut quoted = String::with_capacity(self.0.len() + 2);
        quoted.push('"');
        quoted.push_str(&self.0);
        quoted.push('"');
        // Only `escape` builds these, so the string always parses.
        serde_json::from_str(&quoted).unwrap_or_else(|_| self.0.clone())
    }
}

impl Serialize for JsonText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.plain())
    }
}

fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any of the 8 bytes of `word` needs escaping, tested on all of them
/// at once (the classic "has a byte less than n" and "has a zero byte" tricks).
fn word_needs_escape(word: u64) -> bool {
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    let quote = zero_byte(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_byte(word ^ (ONES * u64::from(b'\\')));
    control | quote | backslash != 0
}

/// Index of the first byte that needs escaping, 8 bytes at a time: most
/// values (ids, names, addresses) need none and are copied as they are.
fn first_to_escape(bytes: &[u8]) -> Option<usize> {
    let mut words = bytes.chunks_exact(8);
    let mut start = 0;
    for word in words.by_ref() {
        let mut le = [0u8; 8];
        le.copy_from_slice(word);
        if word_needs_escape(u64::from_le_bytes(le)) {
            break;
        }
        start += 8;
    }
    bytes[start..]
        .iter()
        .position(|b| needs_escape(*b))
        .map(|i| start + i)
}

/// `text` escaped for a JSON string, as `serde_json` writes it (a property
/// test holds them equal); borrowed when nothing needs escaping.
pub fn escape(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let Some(first) = first_to_escape(bytes) else {
        return Cow::Borrowed(text);
    };
    let mut out = Vec::with_capacity(bytes.len() + 16);
    out.extend_from_slice(&bytes[..first]);
    for &byte in &bytes[first..] {
        match byte {
            b'"' => out.extend_from_slice(br#"\""#),
            b'\\' => out.extend_from_slice(br"\\"),
            b'\n' => out.extend_from_slice(br"\n"),
            b'\r' => out.extend_from_slice(br"\r"),
            b'\t' => out.extend_from_slice(br"\t"),
            0x08 => out.extend_from_slice(br"\b"),
            0x0c => out.extend_from_slice(br"\f"),
            b if b < 0x20 => {
                out.extend_from_slice(br"\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0x0f)]);
            }
            b => out.push(b),
        }
    }
    // Only ASCII was replaced by ASCII, so the bytes are still UTF-8.
    Cow::Owned(
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn escapes_like_serde_and_round_trips() {
        let text = "a\"b\\c\nd\re\tf\u{8}g\u{c}h\u{1}i\u{1f}j\u{7f} é 🦀 \u{2028}";
        let serde = serde_json::to_string(text).unwrap();
        assert_eq!(format!("\"{}\"", escape(text)), serde);
        assert_eq!(JsonText::from_plain(text).plain(), text);
        assert!(matches!(escape("plain text é"), Cow::Borrowed(_)));
        assert_eq!(
            serde_json::to_string(&JsonText::from_plain(text)).unwrap(),
            serde
        );
    }

    #[test]
    fn the_word_test_finds_every_byte_that_needs_escaping() {
        for special in (0u8..0x20).chain([b'"', b'\\']) {
            for at in 0..8 {
                let mut word = *b"abcdefgh";
                word[at] = special;
                assert!(
                    word_needs_escape(u64::from_le_bytes(word)),
                    "{special} at {at}"
                );
            }
        }
        for plain in (0x20u8..=0xff).filter(|b| !needs_escape(*b)) {
            assert!(
                !word_needs_escape(u64::from_le_bytes([plain; 8])),
                "{plain}"
            );
        }
        assert_eq!(first_to_escape(b"0123456789\"x"), Some(10));
        assert_eq!(first_to_escape(b"01234567\n"), Some(8));
        assert_eq!(first_to_escape(b"0123456789"), None);
    }

    proptest! {
        #[test]
        fn any_text_escapes_like_serde(text in any::<String>()) {
            let expected = serde_json::to_string(&text).unwrap();
            prop_assert_eq!(format!("\"{}\"", escape(&text)), expected);
        }
    }
}
