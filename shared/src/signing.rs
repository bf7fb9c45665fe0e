//! Approval signatures: safety signs the hash of the exact content it approved;
//! delivery recomputes the hash and checks the signature before sending.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// SHA-256 over every field a customer will see or that decides what they see.
/// Fields are length-prefixed so no two different contents hash alike.
pub fn content_hash(variant_id: &str, subject: &str, body: &str, citations: &[String]) -> String {
    let mut hasher = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    field(b"cpo-content-v1");
    field(variant_id.as_bytes());
    field(subject.as_bytes());
    field(body.as_bytes());
    for c in citations {
        field(c.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Signs and verifies approvals with a shared secret key.
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.write_str("Signer(..)")
    }
}

impl Signer {
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self { key: key.into() }
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        <HmacSha256 as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("hmac takes any key length"))
    }

    pub fn sign(&self, content_hash: &str) -> String {
        let mut mac = self.mac();
        mac.update(content_hash.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Constant-time check of a hex signature.
    pub fn verify(&self, content_hash: &str, signature_hex: &str) -> bool {
        let Ok(sig) = hex::decode(signature_hex) else {
            return false;
        };
        let mut mac = self.mac();
        mac.update(content_hash.as_bytes());
        mac.verify_slice(&sig).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn altered_content_or_key_fails_verification() {
        let signer = Signer::new(b"k1".to_vec());
        let cites = vec!["doc-1".to_string()];
        let hash = content_hash("v1", "Hello", "Body [doc-1]", &cites);
        let sig = signer.sign(&hash);
        assert!(signer.verify(&hash, &sig));
        let altered = content_hash("v1", "Hello", "Body [doc-1]!", &cites);
        assert!(!signer.verify(&altered, &sig));
        assert!(!Signer::new(b"k2".to_vec()).verify(&hash, &sig));
        assert!(!signer.verify(&hash, "not-hex"));
    }
}
