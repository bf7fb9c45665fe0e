//! Pseudonymized customer ids for logs, metrics and the audit trail.

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

#[cfg(test)]
mod tests {
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
}
