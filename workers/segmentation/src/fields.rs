//! Field syntax and value checks shared by CSV and inline rows.

use crate::record::{Problem, RowError};

/// Quoted values in error details are cut here so one bad cell cannot bloat the ledger.
const MAX_QUOTED: usize = 40;

fn quoted(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

pub(crate) fn whole(field: &'static str, text: &str) -> Result<u32, RowError> {
    if let Ok(value) = text.parse::<u32>() {
        return Ok(value);
    }
    if text.is_empty() {
        return Err(RowError::field(field, Problem::Empty));
    }
    // CRM exports sometimes write integers as "12.0"; accept those, name everything else.
    let problem = match text.parse::<f64>() {
        Ok(v) if v < 0.0 => Problem::Negative(quoted(text)),
        Ok(v) if v.fract() == 0.0 && v <= f64::from(u32::MAX) => return Ok(v as u32),
        Ok(v) if v.is_finite() && v.fract() != 0.0 => Problem::NotWhole(quoted(text)),
        Ok(_) => Problem::NotFinite(quoted(text)),
        Err(_) => Problem::NotANumber(quoted(text)),
    };
    Err(RowError::field(field, problem))
}

pub(crate) fn real(field: &'static str, text: &str) -> Result<f64, RowError> {
    if text.is_empty() {
        return Err(RowError::field(field, Problem::Empty));
    }
    if let Some(value) = plain_decimal(text) {
        return Ok(value);
    }
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(RowError::field(field, Problem::NotFinite(quoted(text)))),
        Err(_) => Err(RowError::field(field, Problem::NotANumber(quoted(text)))),
    }
}

/// Exact powers of ten: every one up to 1e22 is representable in an f64.
const POWERS_OF_TEN: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// The common shape of CRM numbers (`123.45`, `0.312`, `7`) without the general
/// float parser: digits, an optional point, at most 15 digits in all. The digits
/// form an integer below 2^53 and the divisor a power of ten at most 1e15, both
/// exact, so one IEEE division is correctly rounded: the same value `str::parse`
/// returns. Anything else (signs, exponents, more digits) returns `None` and goes
/// to `str::parse`.
fn plain_decimal(text: &str) -> Option<f64> {
    let (mut mantissa, mut digits, mut decimals, mut point) = (0u64, 0usize, 0usize, false);
    for &b in text.as_bytes() {
        match b {
            b'0'..=b'9' => {
                if digits == 15 {
                    return None;
                }
                mantissa = mantissa * 10 + u64::from(b - b'0');
                digits += 1;
                decimals += usize::from(point);
            }
            b'.' if !point => point = true,
            _ => return None,
        }
    }
    if digits == 0 {
        return None;
    }
    Some(mantissa as f64 / POWERS_OF_TEN[decimals])
}

pub(crate) fn consent(text: &str) -> Result<bool, RowError> {
    const YES: [&str; 3] = ["true", "yes", "1"];
    const NO: [&str; 3] = ["false", "no", "0"];
    if YES.iter().any(|y| text.eq_ignore_ascii_case(y)) {
        Ok(true)
    } else if NO.iter().any(|n| text.eq_ignore_ascii_case(n)) {
        Ok(false)
    } else {
        Err(RowError::field(
            "consent",
            Problem::BadConsent(quoted(text)),
        ))
    }
}

pub(crate) fn non_negative(field: &'static str, value: f64) -> Result<(), RowError> {
    if !value.is_finite() {
        return Err(RowError::field(
            field,
            Problem::NotFinite(value.to_string()),
        ));
    }
    if value < 0.0 {
        return Err(RowError::field(field, Problem::Negative(value.to_string())));
    }
    Ok(())
}

pub(crate) fn unit_rate(field: &'static str, value: f64) -> Result<(), RowError> {
    non_negative(field, value)?;
    if value > 1.0 {
        return Err(RowError::field(
            field,
            Problem::OutsideUnit(value.to_string()),
        ));
    }
    Ok(())
}

/// A deliberately plain check: one `@`, a sane local part, a dotted domain of
/// letter/digit/hyphen labels. Deliverability is the ESP's business; this catches
/// the empty, truncated and column-shifted values CRM exports produce.
///
/// Structure is checked on bytes (every delimiter is ASCII, and UTF-8 never
/// reuses ASCII bytes inside a multi-byte character); only parts that contain
/// non-ASCII text pay for a check of their characters.
pub fn check_email(email: &str) -> Result<(), &'static str> {
    if email.is_empty() {
        return Err("empty");
    }
    if email.len() > 254 {
        return Err("longer than 254 bytes");
    }
    let (local, domain) = email.split_once('@').ok_or("no \"@\"")?;
    if domain.as_bytes().contains(&b'@') {
        return Err("more than one \"@\"");
    }
    let local_bytes = local.as_bytes();
    if local_bytes.is_empty() || local_bytes.len() > 64 {
        return Err("local part empty or longer than 64 bytes");
    }
    if local_bytes[0] == b'.'
        || local_bytes[local_bytes.len() - 1] == b'.'
        || local_bytes.windows(2).any(|pair| pair == b"..")
    {
        return Err("misplaced dot in local part");
    }
    let local_byte_ok = |b: &u8| {
        *b >= 0x80
            || (b.is_ascii_graphic()
                && !matches!(
                    b,
                    b'"' | b'(' | b')' | b',' | b':' | b';' | b'<' | b'>' | b'[' | b'\\' | b']'
                ))
    };
    if !local_bytes.iter().all(local_byte_ok)
        || (!local.is_ascii() && local.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err("forbidden character in local part");
    }
    let mut labels = 0;
    for label in domain.as_bytes().split(|&b| b == b'.') {
        labels += 1;
        if label.is_empty() || label.len() > 63 {
            return Err("empty or overlong domain label");
        }
        if label[0] == b'-' || label[label.len() - 1] == b'-' {
            return Err("domain label starts or ends with a hyphen");
        }
        let label_byte_ok = |b: &u8| *b >= 0x80 || b.is_ascii_alphanumeric() || *b == b'-';
        if !label.iter().all(label_byte_ok) {
            return Err("forbidden character in domain");
        }
    }
    let domain_char_ok = |c: char| c.is_alphanumeric() || c == '-' || c == '.';
    if !domain.is_ascii() && !domain.chars().all(domain_char_ok) {
        return Err("forbidden character in domain");
    }
    if labels < 2 {
        return Err("domain has no dot");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_check_accepts_plain_addresses_and_rejects_junk() {
        for ok in [
            "a@example.com",
            "first.last+tag@mail.example.org",
            "zoë@exämple.net",
        ] {
            assert_eq!(check_email(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "plain",
            "a@b",
            "a@@example.com",
            "@example.com",
            "a.@example.com",
            "a..b@example.com",
            "a b@example.com",
            "a@-example.com",
            "a@example..com",
            "a@exa_mple.com",
            "zo\u{a0}e@example.com",
            "a@ex\u{2603}mple.com",
            "a@example.com-",
            "a\u{7f}@example.com",
        ] {
            assert!(check_email(bad).is_err(), "{bad:?} passed");
        }
    }

    proptest::proptest! {
        #[test]
        fn plain_decimals_parse_exactly_like_the_standard_parser(
            text in "[0-9]{0,9}(\\.[0-9]{0,9})?|[0-9.eE+-]{1,12}",
        ) {
            if let Some(fast) = plain_decimal(&text) {
                proptest::prop_assert_eq!(Ok(fast), text.parse::<f64>(), "{}", text);
            }
        }
    }

    #[test]
    fn plain_decimals_cover_the_usual_shapes() {
        for (text, value) in [
            ("123.45", 123.45),
            ("0.312", 0.312),
            ("7", 7.0),
            (".5", 0.5),
            ("5.", 5.0),
        ] {
            assert_eq!(plain_decimal(text), Some(value), "{text}");
        }
        let long = "9".repeat(40);
        for other in [
            "",
            ".",
            "1e3",
            "-1",
            "1.2.3",
            "1234567890.1234567",
            "NaN",
            &long,
        ] {
            assert_eq!(plain_decimal(other), None, "{other}");
        }
    }
}
