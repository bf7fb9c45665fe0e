//! Pseudonymized customer ids for logs, metrics and the audit trail.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Keyed hash of customer ids: stable within a deployment, not reversible without the key.
#[derive(Clone)]
pub struct Pseudonymizer {
    key: Vec<u8>,
}

impl Pseudonymizer {
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self { key: key.into() }
    }

    pub fn pseudonym(&self, customer_id: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("hmac takes any key length"));
        mac.update(customer_id.as_bytes());
        format!("cust_{}", hex::encode(&mac.finalize().into_bytes()[..10]))
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
    }
}
