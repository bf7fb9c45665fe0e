//! What a provider's raw event says about its recipient: the address(es) an
//! event is about, and whether a bounce is a hard one. Pure: no IO.
//!
//! Field names per provider (their documented event formats):
//! - SendGrid: `email`; a bounce of `type: blocked` is a soft one.
//! - Amazon SES (the SNS `Message` JSON): `bounce.bouncedRecipients[].emailAddress`,
//!   `complaint.complainedRecipients[].emailAddress`, else `mail.destination`
//!   when it names one address only; `bounce.bounceType` other than
//!   `Permanent` is not hard.
//! - Mailgun: `recipient` (also inside `event-data`); `severity: temporary` is soft.
//! - Our own format: `email`, `recipient` or `address`.

use serde_json::Value;

/// Longest address accepted (RFC 5321: 64 + 1 + 255).
const MAX_ADDRESS: usize = 320;

/// The addresses the event is about, trimmed and lower-cased, without duplicates.
/// An event that is not JSON, or names none, gives none.
pub fn recipients(raw: &str) -> Vec<String> {
    let Ok(value) = serde_json::from_str::<Value>(raw) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    collect(&value, &mut found);
    if let Some(inner) = value.get("event-data") {
        collect(inner, &mut found);
    }
    let mut addresses: Vec<String> = found.into_iter().filter_map(clean).collect();
    addresses.sort();
    addresses.dedup();
    addresses
}

fn collect<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
    for field in ["email", "recipient", "address"] {
        if let Some(s) = value.get(field).and_then(Value::as_str) {
            found.push(s);
        }
    }
    // SES: only the recipients the bounce or complaint is about, not every
    // destination of the mail.
    let mut listed = false;
    for (section, list) in [
        ("bounce", "bouncedRecipients"),
        ("complaint", "complainedRecipients"),
    ] {
        if let Some(items) = value
            .get(section)
            .and_then(|s| s.get(list))
            .and_then(Value::as_array)
        {
            for item in items {
                if let Some(s) = item.get("emailAddress").and_then(Value::as_str) {
                    found.push(s);
                    listed = true;
                }
            }
        }
    }
    if !listed
        && let Some([only]) = value
            .get("mail")
            .and_then(|m| m.get("destination"))
            .and_then(Value::as_array)
            .map(Vec::as_slice)
        && let Some(s) = only.as_str()
    {
        found.push(s);
    }
}

/// One address as an operator types it (`cpo suppress`, `cpo forget`):
/// trimmed and lower-cased as `AddressHasher` hashes it; `None` unless it is
/// one plain address.
pub fn normalize_address(text: &str) -> Option<String> {
    if text.contains(['<', '>']) {
        return None;
    }
    clean(text)
}

/// `Name <a@b>` or `a@b`, trimmed and lower-cased; `None` unless it looks like
/// one address (one `@`, something either side, no spaces or control characters).
fn clean(text: &str) -> Option<String> {
    let text = text.trim();
    let inner = match (text.rfind('<'), text.rfind('>')) {
        (Some(open), Some(close)) if open < close => &text[open + 1..close],
        _ => text,
    };
    let address = inner.trim().to_lowercase();
    let (local, domain) = address.split_once('@')?;
    let valid = !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && address.len() <= MAX_ADDRESS
        && !address
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ','));
    valid.then_some(address)
}

/// Whether a `bounce` event is a hard bounce. The gateway only publishes
/// hard bounces as `bounce`; this is the second check, on the provider's own
/// words, so a soft bounce that slipped through never suppresses anyone.
/// Without a word either way it is hard.
pub fn is_hard_bounce(raw: &str) -> bool {
    let Ok(value) = serde_json::from_str::<Value>(raw) else {
        return true;
    };
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_ascii_lowercase);
    if let Some(kind) = text(value.get("bounce").and_then(|b| b.get("bounceType"))) {
        return kind == "permanent";
    }
    let data = value.get("event-data").unwrap_or(&value);
    if text(data.get("severity")).as_deref() == Some("temporary") {
        return false;
    }
    if text(value.get("type")).as_deref() == Some("blocked") {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_of_each_provider_format() {
        assert_eq!(
            recipients(r#"{"email":" Ada@Example.COM ","event":"bounce"}"#),
            ["ada@example.com"]
        );
        assert_eq!(
            recipients(r#"{"event-data":{"recipient":"bob@example.org","event":"failed"}}"#),
            ["bob@example.org"]
        );
        let ses = r#"{"notificationType":"Bounce",
            "bounce":{"bounceType":"Permanent","bouncedRecipients":[{"emailAddress":"c@x.io"}]},
            "mail":{"destination":["c@x.io","other@x.io"]}}"#;
        assert_eq!(recipients(ses), ["c@x.io"], "only the bounced recipient");
        let delivery = r#"{"mail":{"destination":["\"Dee\" <Dee@X.io>"]}}"#;
        assert_eq!(recipients(delivery), ["dee@x.io"]);
        let many = r#"{"mail":{"destination":["a@x.io","b@x.io"]}}"#;
        assert!(recipients(many).is_empty(), "which one is unknown");
    }

    #[test]
    fn what_is_not_one_address_is_ignored() {
        for raw in [
            "not json",
            r#"{"email":"no-at-sign"}"#,
            r#"{"email":"a@b@c"}"#,
            r#"{"email":"a b@c"}"#,
            r#"{"email":"@c"}"#,
            r#"{"email":"a@"}"#,
            r#"{"email":"a@b,c@d"}"#,
            r#"{"email":42}"#,
            &format!(r#"{{"email":"{}@x.io"}}"#, "a".repeat(400)),
        ] {
            assert!(recipients(raw).is_empty(), "{raw}");
        }
    }

    #[test]
    fn operator_addresses_are_plain_and_normalized() {
        assert_eq!(
            normalize_address(" Ada@Example.com ").as_deref(),
            Some("ada@example.com")
        );
        assert_eq!(normalize_address("Ada <ada@example.com>"), None);
        assert_eq!(normalize_address("ada"), None);
    }

    #[test]
    fn soft_bounces_are_told_apart() {
        assert!(is_hard_bounce(r#"{"email":"a@x.io","type":"bounce"}"#));
        assert!(!is_hard_bounce(r#"{"email":"a@x.io","type":"blocked"}"#));
        assert!(is_hard_bounce(r#"{"bounce":{"bounceType":"Permanent"}}"#));
        assert!(!is_hard_bounce(r#"{"bounce":{"bounceType":"Transient"}}"#));
        assert!(!is_hard_bounce(
            r#"{"bounce":{"bounceType":"Undetermined"}}"#
        ));
        assert!(!is_hard_bounce(
            r#"{"event-data":{"severity":"temporary"}}"#
        ));
        assert!(is_hard_bounce(r#"{"event-data":{"severity":"permanent"}}"#));
        assert!(is_hard_bounce("not json"));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Whatever a provider sends, reading it never panics, and what comes
        /// out is one lower-case address with something either side of one `@`.
        #[test]
        fn recipients_are_single_clean_addresses(local in "\\PC{0,20}", domain in "\\PC{0,20}", field in "(email|recipient|address)") {
            let raw = serde_json::json!({ field: format!("{local}@{domain}") }).to_string();
            for address in recipients(&raw) {
                prop_assert_eq!(address.matches('@').count(), 1);
                prop_assert_eq!(address.to_lowercase(), address.clone());
                prop_assert!(!address.starts_with('@') && !address.ends_with('@'));
                prop_assert!(!address.chars().any(char::is_whitespace));
            }
            let _ = is_hard_bounce(&raw);
        }

        #[test]
        fn arbitrary_text_is_never_a_panic(raw in "\\PC{0,200}") {
            let _ = recipients(&raw);
            let _ = is_hard_bounce(&raw);
            let _ = normalize_address(&raw);
        }
    }
}
