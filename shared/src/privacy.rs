//! Pseudonymized customer ids for logs, metrics and the audit trail, and
//! URLs with their passwords redacted for logs and error messages.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Keyed hash of customer ids: stable within a deployment, not reversible without the key.
#[derive(Clone)]
pub struct Pseudonymizer {
    /// The HMAC state after absorbing the key, built once: each pseudonym
    /// clones it instead of hashing the key again.
    keyed: HmacSha256,
}

impl Pseudonymizer {
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        let key = key.into();
        Self {
            keyed: <HmacSha256 as Mac>::new_from_slice(&key)
                .unwrap_or_else(|_| unreachable!("hmac takes any key length")),
        }
    }

    pub fn pseudonym(&self, customer_id: &str) -> String {
        let mut out = String::with_capacity(25);
        self.pseudonym_into(customer_id, &mut out);
        out
    }

    /// Append the pseudonym to `out` (records that list many customers).
    pub fn pseudonym_into(&self, customer_id: &str, out: &mut String) {
        let mut mac = self.keyed.clone();
        mac.update(customer_id.as_bytes());
        let digest = mac.finalize().into_bytes();
        out.push_str("cust_");
        for byte in &digest[..10] {
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key material.
        f.write_str("Pseudonymizer(..)")
    }
}

/// Keyed hash of email addresses (`security.address_key`): how the store keys
/// address suppressions and the tombstones `cpo forget` leaves, so the list
/// of people who must never be mailed holds no address in the clear.
/// Addresses are trimmed and lower-cased first (the local part too: every
/// mainstream provider treats it case-insensitively, and a suppression that
/// misses on case is the costly error).
#[derive(Clone)]
pub struct AddressHasher {
    keyed: HmacSha256,
}

impl AddressHasher {
    pub fn new(key: impl AsRef<[u8]>) -> Self {
        Self {
            keyed: <HmacSha256 as Mac>::new_from_slice(key.as_ref())
                .unwrap_or_else(|_| unreachable!("hmac takes any key length")),
        }
    }

    /// `addr_` and 64 hex digits (the whole tag: these are lookup keys, not display ids).
    pub fn hash(&self, address: &str) -> String {
        let mut mac = self.keyed.clone();
        mac.update(address.trim().to_lowercase().as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(69);
        out.push_str("addr_");
        for byte in digest.iter() {
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        out
    }
}

impl std::fmt::Debug for AddressHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AddressHasher(..)")
    }
}

/// `url` with `password` as its password (percent-encoded), replacing any
/// password already there. A URL without a user gets an empty one
/// (`rediss://:password@host`, as Redis expects). Fails, without echoing the
/// password, only on a string that is not a URL.
pub fn with_password(url: &str, password: &str) -> Result<String, String> {
    let scheme_end = url
        .find("://")
        .ok_or_else(|| format!("`{}` is not a URL", redact_url(url)))?;
    let authority_start = scheme_end + 3;
    let authority_end = url[authority_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| authority_start + i);
    let authority = &url[authority_start..authority_end];
    let (user, host) = match authority.rfind('@') {
        Some(at) => {
            let user_info = &authority[..at];
            let user = user_info.split_once(':').map_or(user_info, |(u, _)| u);
            (user, &authority[at + 1..])
        }
        None => ("", authority),
    };
    let mut encoded = String::with_capacity(password.len() * 3);
    for byte in password.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    Ok(format!(
        "{}{user}:{encoded}@{host}{}",
        &url[..authority_start],
        &url[authority_end..]
    ))
}

/// The URL with its password replaced by `***`, for logs and error messages.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let authority_start = scheme_end + 3;
    let authority_end = url[authority_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| authority_start + i);
    let authority = &url[authority_start..authority_end];
    // The last `@` ends the user info: an unencoded `@` in a password must not leak its tail.
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let user_info = &authority[..at];
    let Some(colon) = user_info.find(':') else {
        return url.to_string();
    };
    format!(
        "{}{}:***{}",
        &url[..authority_start],
        &user_info[..colon],
        &url[authority_start + at..]
    )
}

/// The password of a URL, so error texts from the client library can be scrubbed of it.
pub fn url_password(url: &str) -> Option<&str> {
    let authority_start = url.find("://")? + 3;
    let rest = &url[authority_start..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let user_info = &authority[..authority.rfind('@')?];
    let password = &user_info[user_info.find(':')? + 1..];
    (!password.is_empty()).then_some(password)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn pseudonyms_are_stable_keyed_and_hide_the_id() {
        let p = Pseudonymizer::new(b"k".to_vec());
        assert_eq!(p.pseudonym("C0001"), p.pseudonym("C0001"));
        assert_ne!(
            p.pseudonym("C0001"),
            Pseudonymizer::new(b"other".to_vec()).pseudonym("C0001")
        );
        assert!(!p.pseudonym("alice@example.com").contains("alice"));
        // the value every deployment already has in its audit trail: HMAC-SHA256, first 10 bytes
        let mut mac = <HmacSha256 as Mac>::new_from_slice(b"k").unwrap();
        mac.update(b"C0001");
        let expected = format!("cust_{}", hex::encode(&mac.finalize().into_bytes()[..10]));
        assert_eq!(p.pseudonym("C0001"), expected);
        assert_eq!(p.clone().pseudonym("C0001"), expected);
        let mut listed = String::from("[");
        p.pseudonym_into("C0001", &mut listed);
        assert_eq!(listed, format!("[{expected}"));
    }

    #[test]
    fn a_password_goes_in_percent_encoded_and_replaces_the_old_one() {
        assert_eq!(
            with_password("amqps://svc@broker:5671/prod", "p@ss:w/rd").unwrap(),
            "amqps://svc:p%40ss%3Aw%2Frd@broker:5671/prod"
        );
        assert_eq!(
            with_password("amqp://svc:old@h/%2f", "new").unwrap(),
            "amqp://svc:new@h/%2f"
        );
        assert_eq!(
            with_password("rediss://cache:6380/0", "s3cret").unwrap(),
            "rediss://:s3cret@cache:6380/0"
        );
        let err = with_password("not a url", "s3cret").unwrap_err();
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn redacts_the_password_and_keeps_the_rest() {
        assert_eq!(
            redact_url("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(
            redact_url("amqps://svc:p@ss@broker:5671/prod?heartbeat=30"),
            "amqps://svc:***@broker:5671/prod?heartbeat=30"
        );
        assert_eq!(
            redact_url("amqp://127.0.0.1:5672/%2f"),
            "amqp://127.0.0.1:5672/%2f"
        );
        assert_eq!(
            redact_url("redis://:secret@h:6379/0"),
            "redis://:***@h:6379/0"
        );
        assert_eq!(url_password("redis://:secret@h:6379/0"), Some("secret"));
        assert_eq!(url_password("amqp://h/%2f"), None);
    }

    proptest! {
        #[test]
        fn redaction_never_shows_the_password(
            user in "[a-z]{1,8}",
            password in "[A-Za-z0-9!$&'()*+,;=@-]{4,20}",
            host in "[a-z]{1,10}",
            vhost in "[a-z%0-9]{0,6}",
        ) {
            let url = format!("amqp://{user}:{password}@{host}:5672/{vhost}");
            let redacted = redact_url(&url);
            let shown = format!(":{password}@");
            prop_assert!(!redacted.contains(&shown));
            prop_assert_eq!(redacted, format!("amqp://{user}:***@{host}:5672/{vhost}"));
            prop_assert_eq!(url_password(&url), Some(password.as_str()));
        }
    }
}
