//! Personal data of anyone: email addresses, phone numbers, payment card
//! numbers (Luhn-valid), US social security numbers and IBANs (mod-97 valid).
//!
//! Runs on the NFKC text (fullwidth digits become ASCII) with merge fields
//! blanked out: `{{email}}` is a placeholder, not an address. Detections carry
//! only the kind of data, never the value.

use std::collections::HashSet;

use regex::Regex;

use crate::error::SafetyError;
use crate::normalize::MERGE_FIELD;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PiiKind {
    Email,
    Phone,
    PaymentCard,
    NationalId,
    Iban,
}

impl PiiKind {
    pub fn label(self) -> &'static str {
        match self {
            PiiKind::Email => "email address",
            PiiKind::Phone => "phone number",
            PiiKind::PaymentCard => "payment card number",
            PiiKind::NationalId => "national id number",
            PiiKind::Iban => "IBAN",
        }
    }
}

pub struct PiiDetector {
    merge_field: Regex,
    email: Regex,
    /// Digit groups with the separators numbers are written with.
    number: Regex,
    iban: Regex,
    ssn_keyword: Regex,
    allowed_emails: HashSet<String>,
    allowed_numbers: HashSet<String>,
}

impl PiiDetector {
    /// `allowed` holds the brand's own contact addresses and numbers.
    pub fn new(allowed: &[String]) -> Result<Self, SafetyError> {
        let mut allowed_emails = HashSet::new();
        let mut allowed_numbers = HashSet::new();
        for contact in allowed {
            if contact.contains('@') {
                allowed_emails.insert(contact.trim().to_lowercase());
            } else {
                allowed_numbers.insert(digits(contact));
            }
        }
        Ok(Self {
            merge_field: Regex::new(MERGE_FIELD)?,
            email: Regex::new(r"(?i)[a-z0-9._%+\-]+@[a-z0-9\-]+(?:\.[a-z0-9\-]+)*\.[a-z]{2,}")?,
            number: Regex::new(r"(?:\+[ \t]?)?\(?\d(?:[ \t.\-()/]{0,2}\d)+")?,
            iban: Regex::new(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")?,
            ssn_keyword: Regex::new(r"(?i)\b(?:ssn|social security)\b")?,
            allowed_emails,
            allowed_numbers,
        })
    }

    /// Kinds of personal data found, each once, in a fixed order.
    pub fn scan(&self, text: &str) -> Vec<PiiKind> {
        let text = self.merge_field.replace_all(text, " ");
        let mut found = Vec::new();
        if self
            .email
            .find_iter(&text)
            .any(|m| !self.allowed_emails.contains(&m.as_str().to_lowercase()))
        {
            found.push(PiiKind::Email);
        }
        let ibans: Vec<(usize, usize)> = self
            .iban
            .find_iter(&text)
            .filter(|m| valid_iban(m.as_str()))
            .map(|m| (m.start(), m.end()))
            .collect();
        if !ibans.is_empty() {
            found.push(PiiKind::Iban);
        }
        for m in self.number.find_iter(&text) {
            let inside_iban = ibans.iter().any(|&(s, e)| m.start() < e && s < m.end());
            if inside_iban || !standalone(&text, m.start(), m.end()) {
                continue;
            }
            let context =
                &text[floor_char_boundary(&text, m.start().saturating_sub(40))..m.start()];
            if let Some(kind) = self.classify_number(m.as_str(), context) {
                found.push(kind);
            }
        }
        found.sort_unstable();
        found.dedup();
        found
    }

    fn classify_number(&self, raw: &str, before: &str) -> Option<PiiKind> {
        let digits = digits(raw);
        let n = digits.len();
        let card_separators = raw
            .chars()
            .all(|c| c.is_ascii_digit() || c == ' ' || c == '-');
        if card_separators && (13..=19).contains(&n) && luhn_valid(&digits) {
            return Some(PiiKind::PaymentCard);
        }
        if n == 9 && (is_ssn_layout(raw) || self.ssn_keyword.is_match(before)) && valid_ssn(&digits)
        {
            return Some(PiiKind::NationalId);
        }
        if is_phone(raw, &digits) && !self.allowed_numbers.contains(&digits) {
            return Some(PiiKind::Phone);
        }
        None
    }
}

fn digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

/// Not part of a longer token (a product code, an IBAN, a word).
fn standalone(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
}

/// International with `+` (8-15 digits), a US/Canadian 10 digits (optionally
/// with a leading 1), a national 11 digits with a trunk 0, or `00` + country.
/// Dates and prices (`/`, fewer digits) are not phone numbers.
fn is_phone(raw: &str, digits: &str) -> bool {
    if raw.contains('/') {
        return false;
    }
    let n = digits.len();
    if raw.starts_with('+') {
        return (8..=15).contains(&n);
    }
    n == 10
        || (n == 11 && (digits.starts_with('1') || digits.starts_with('0')))
        || (digits.starts_with("00") && (10..=15).contains(&n))
}

pub fn luhn_valid(digits: &str) -> bool {
    let mut sum = 0u32;
    for (i, b) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

fn is_ssn_layout(raw: &str) -> bool {
    let b = raw.as_bytes();
    b.len() == 11
        && (b[3] == b'-' || b[3] == b' ')
        && b[6] == b[3]
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 3 || i == 6 || c.is_ascii_digit())
}

/// Area 000, 666 and 900-999, group 00 and serial 0000 are never issued.
fn valid_ssn(digits: &str) -> bool {
    let (area, rest) = digits.split_at(3);
    let (group, serial) = rest.split_at(2);
    area != "000" && area != "666" && !area.starts_with('9') && group != "00" && serial != "0000"
}

/// Length and mod-97 check of the compact form.
fn valid_iban(raw: &str) -> bool {
    let compact: Vec<u8> = raw.bytes().filter(|b| *b != b' ').collect();
    (15..=34).contains(&compact.len()) && iban_mod97(&compact) == Some(1)
}

fn iban_mod97(iban: &[u8]) -> Option<u32> {
    let (head, tail) = iban.split_at(4);
    let mut rem = 0u32;
    for &b in tail.iter().chain(head) {
        let value = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return None,
        };
        rem = if value >= 10 {
            (rem * 100 + value) % 97
        } else {
            (rem * 10 + value) % 97
        };
    }
    Some(rem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    static DETECTOR: std::sync::LazyLock<PiiDetector> = std::sync::LazyLock::new(|| {
        PiiDetector::new(&["support@brand.example".into(), "1-800-555-0100".into()]).unwrap()
    });

    fn scan(text: &str) -> Vec<PiiKind> {
        DETECTOR.scan(text)
    }

    #[test]
    fn emails_but_not_merge_fields_or_allowed_contacts() {
        assert_eq!(
            scan("write to jane.doe+x@mail.example.co.uk"),
            [PiiKind::Email]
        );
        assert!(scan("Hi {{email}}, {{ first_name }}!").is_empty());
        assert!(scan("Questions? Support@Brand.example or 1 (800) 555-0100").is_empty());
    }

    #[test]
    fn phone_numbers_in_common_formats() {
        for phone in [
            "(555) 123-4567",
            "555-123-4567",
            "555.123.4567",
            "+1 555 123 4567",
            "1-800-555-0199",
            "+44 20 7946 0958",
            "+49 30 1234567",
            "+33 1 23 45 67 89",
            "0044 20 7946 0958",
            "020 7946 0958",
        ] {
            assert_eq!(
                scan(&format!("call {phone} now")),
                [PiiKind::Phone],
                "{phone}"
            );
        }
        for not_phone in [
            "on 12/25/2024",
            "from $1,299.99",
            "SKU 12345-678",
            "save 20% on 3 items",
            "open 24/7",
        ] {
            assert!(scan(not_phone).is_empty(), "{not_phone}");
        }
    }

    #[test]
    fn card_numbers_must_pass_luhn() {
        assert_eq!(scan("card 4111 1111 1111 1111"), [PiiKind::PaymentCard]);
        assert_eq!(scan("card 4111-1111-1111-1111"), [PiiKind::PaymentCard]);
        assert_eq!(scan("amex 378282246310005"), [PiiKind::PaymentCard]);
        assert!(scan("ref 4111 1111 1111 1112").is_empty());
        assert!(scan("ref 1234567812345678").is_empty());
    }

    #[test]
    fn ssns_need_the_layout_or_a_keyword_and_a_valid_number() {
        assert_eq!(scan("SSN 123-45-6789"), [PiiKind::NationalId]);
        assert_eq!(
            scan("my social security is 123456789"),
            [PiiKind::NationalId]
        );
        assert!(scan("ref 666-45-6789").is_empty());
        assert!(scan("ref 123-00-6789").is_empty());
    }

    #[test]
    fn ibans_must_pass_mod_97() {
        assert_eq!(
            scan("pay GB82 WEST 1234 5698 7654 32 today"),
            [PiiKind::Iban]
        );
        assert_eq!(scan("IBAN DE89370400440532013000"), [PiiKind::Iban]);
        assert!(!scan("pay GB82 WEST 1234 5698 7654 33").contains(&PiiKind::Iban));
    }

    proptest! {
        #[test]
        fn changing_one_digit_breaks_luhn(body in "[0-9]{15}", pos in 0usize..16, delta in 1u8..10) {
            // complete the number with its check digit
            let check = (0..10).find(|d| luhn_valid(&format!("{body}{d}"))).unwrap();
            let valid = format!("{body}{check}");
            prop_assert!(luhn_valid(&valid));
            let mut bytes = valid.into_bytes();
            bytes[pos] = b'0' + (bytes[pos] - b'0' + delta) % 10;
            prop_assert!(!luhn_valid(&String::from_utf8(bytes).unwrap()));
        }

        #[test]
        fn scanning_any_text_is_total(text in "\\PC{0,200}") {
            let _ = scan(&text);
        }
    }
}
