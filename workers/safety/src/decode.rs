//! Encodings that hide words from the token matcher, undone before tokenizing:
//! HTML character references (`&#102;uck`), URL percent-encoding
//! (`%66uck`), emoji standing for words (🖕, 🔪, regional-indicator letters),
//! and base64 blobs (decoded and appended when they decode to text).
//!
//! Only the harm classifier reads the decoded text; the personal-data and
//! role-tag checks keep the text as written. Plain ASCII without `&`, `%` or a
//! long base64-looking run passes through without a copy.

use std::borrow::Cow;

/// Base64 runs shorter than this are ordinary words.
const MIN_BASE64: usize = 12;

/// Emoji read as the word they stand for.
fn emoji_word(c: char) -> Option<&'static str> {
    Some(match c {
        '\u{1F595}' => "fuck you",
        '\u{1F52A}' | '\u{1F5E1}' => "stab",
        '\u{1F52B}' => "shoot",
        '\u{1F4A3}' => "bomb",
        '\u{1FA93}' => "axe",
        _ => return None,
    })
}

/// The decoded text when anything was decoded.
pub fn decode(text: &str) -> Cow<'_, str> {
    let needs = text.contains(['&', '%']) || !text.is_ascii() || has_base64_run(text);
    if !needs {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '&'
            && let Some((decoded, len)) = html_entity(rest)
        {
            out.push(decoded);
            rest = &rest[len..];
            continue;
        }
        if c == '%'
            && let Some((decoded, len)) = percent_run(rest)
        {
            out.push_str(&decoded);
            rest = &rest[len..];
            continue;
        }
        if let Some(word) = emoji_word(c) {
            out.push(' ');
            out.push_str(word);
            out.push(' ');
        } else if ('\u{1F1E6}'..='\u{1F1FF}').contains(&c) {
            // Regional indicators spell letters: 🇫🇺🇨🇰.
            let offset = u32::from(c) - 0x1F1E6;
            out.push(char::from(b'a' + offset as u8));
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    for blob in base64_runs(text) {
        if let Some(decoded) = base64_text(blob) {
            out.push('\n');
            out.push_str(&decoded);
        }
    }
    Cow::Owned(out)
}

/// `&#102;`, `&#x66;`, `&amp;` and a few named references: (character, bytes used).
fn html_entity(s: &str) -> Option<(char, usize)> {
    // `;` is ASCII, so its byte position is a character boundary.
    let end = s.bytes().take(12).position(|b| b == b';')?;
    let name = &s[1..end];
    let c = if let Some(num) = name.strip_prefix('#') {
        let value = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        char::from_u32(value)?
    } else {
        match name {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            "nbsp" => ' ',
            "shy" | "zwj" | "zwnj" => '\u{200B}',
            _ => return None,
        }
    };
    Some((c, end + 1))
}

/// A run of `%XX` escapes that decodes to UTF-8: (text, bytes used).
fn percent_run(s: &str) -> Option<(String, usize)> {
    let bytes = s.as_bytes();
    let mut decoded = Vec::new();
    let mut i = 0;
    while i + 2 < bytes.len() && bytes[i] == b'%' {
        let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
        let Ok(b) = u8::from_str_radix(hex, 16) else {
            break;
        };
        decoded.push(b);
        i += 3;
    }
    if decoded.is_empty() {
        return None;
    }
    String::from_utf8(decoded).ok().map(|t| (t, i))
}

fn is_base64_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')
}

fn base64_runs(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_ascii() || !is_base64_byte(c as u8))
        .filter(|run| run.len() >= MIN_BASE64)
}

fn has_base64_run(text: &str) -> bool {
    base64_runs(text).next().is_some()
}

/// A base64 blob that decodes to printable text with letters.
fn base64_text(blob: &str) -> Option<String> {
    let value = |b: u8| match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(blob.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for b in blob.trim_end_matches('=').bytes() {
        acc = (acc << 6) | u32::from(value(b)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    let text = String::from_utf8(out).ok()?;
    let printable = text
        .chars()
        .filter(|c| !c.is_control() || c.is_whitespace())
        .count();
    let letters = text.chars().filter(|c| c.is_alphabetic()).count();
    (printable == text.chars().count() && letters * 2 >= text.chars().count()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_percent_escapes_emoji_and_base64_are_decoded() {
        assert_eq!(decode("&#102;&#x75;ck &amp; co"), "fuck & co");
        assert_eq!(decode("%66%75ck 50% off"), "fuck 50% off");
        assert_eq!(decode("I will \u{1F52A} you"), "I will  stab  you");
        assert_eq!(decode("\u{1F1EB}\u{1F1FA}\u{1F1E8}\u{1F1F0}"), "fuck");
        assert!(decode("see a2lsbCB5b3U= now").ends_with("\nkill you"));
        assert!(matches!(decode("plain words"), Cow::Borrowed(_)));
        assert!(!decode("Newsletter subscription").contains('\n'));
        // a reference cut inside a multi-byte character is left as written
        assert_eq!(decode("&{ὝnK\\ંᅳ; x"), "&{ὝnK\\ંᅳ; x");
    }
}
