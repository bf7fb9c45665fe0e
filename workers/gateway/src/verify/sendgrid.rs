//! SendGrid's Signed Event Webhook: an ECDSA P-256 / SHA-256 signature (base64
//! of ASN.1 DER) over the `X-Twilio-Email-Event-Webhook-Timestamp` header's
//! value followed by the raw body, checked with the account's verification key
//! (base64 of the DER SubjectPublicKeyInfo).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use x509_cert::der::Decode;
use x509_cert::spki::SubjectPublicKeyInfoRef;

use super::{VerifyError, fresh};

pub const SIGNATURE_HEADER: &str = "x-twilio-email-event-webhook-signature";
pub const TIMESTAMP_HEADER: &str = "x-twilio-email-event-webhook-timestamp";

/// id-ecPublicKey and the prime256v1 curve.
const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const P256: &str = "1.2.840.10045.3.1.7";

#[derive(Clone)]
pub struct SendgridVerifier {
    /// The uncompressed curve point.
    point: Vec<u8>,
    max_age_s: u64,
}

impl std::fmt::Debug for SendgridVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SendgridVerifier(..)")
    }
}

impl SendgridVerifier {
    /// From SendGrid's base64 DER key; the error says what is wrong with it.
    pub fn new(public_key_base64: &str, max_age_s: u64) -> Result<Self, String> {
        let der = STANDARD
            .decode(public_key_base64.trim())
            .map_err(|e| format!("not base64: {e}"))?;
        let spki = SubjectPublicKeyInfoRef::from_der(&der)
            .map_err(|e| format!("not a DER public key: {e}"))?;
        if spki.algorithm.oid.to_string() != EC_PUBLIC_KEY {
            return Err("not an elliptic-curve key".into());
        }
        let curve = spki
            .algorithm
            .parameters
            .and_then(|p| p.decode_as::<x509_cert::der::asn1::ObjectIdentifier>().ok())
            .map(|oid| oid.to_string());
        if curve.as_deref() != Some(P256) {
            return Err("not a P-256 key".into());
        }
        let point = spki
            .subject_public_key
            .as_bytes()
            .ok_or("public key bits are not whole bytes")?
            .to_vec();
        Ok(Self { point, max_age_s })
    }

    pub fn verify(
        &self,
        signature: Option<&str>,
        timestamp: Option<&str>,
        body: &[u8],
        now_s: i64,
    ) -> Result<(), VerifyError> {
        let signature = signature.ok_or(VerifyError::Missing("signature header"))?;
        let timestamp = timestamp.ok_or(VerifyError::Missing("timestamp header"))?;
        let signature = STANDARD
            .decode(signature.trim())
            .map_err(|_| VerifyError::Malformed("signature is not base64".into()))?;
        let mut signed = Vec::with_capacity(timestamp.len() + body.len());
        signed.extend_from_slice(timestamp.as_bytes());
        signed.extend_from_slice(body);
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &self.point)
            .verify(&signed, &signature)
            .map_err(|_| VerifyError::BadSignature)?;
        // Checked after the signature, which covers it: an attacker cannot refresh it.
        let at: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| VerifyError::Malformed("timestamp is not a number".into()))?;
        fresh(at, now_s, self.max_age_s)
    }
}

/// DER SubjectPublicKeyInfo of a P-256 point (for tests and tools that hold a raw key).
pub fn spki_der(point: &[u8]) -> Vec<u8> {
    let mut der =
        hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap_or_default();
    der.extend_from_slice(point);
    der
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

    fn key() -> (EcdsaKeyPair, String) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let public = STANDARD.encode(spki_der(pair.public_key().as_ref()));
        (pair, public)
    }

    #[test]
    fn a_signed_body_verifies_and_a_flipped_byte_does_not() {
        let (pair, public) = key();
        let verifier = SendgridVerifier::new(&public, 300).unwrap();
        let body = br#"[{"event":"open"}]"#;
        let signed = [b"1700000000".as_slice(), body].concat();
        let sig = STANDARD.encode(pair.sign(&SystemRandom::new(), &signed).unwrap());
        assert!(
            verifier
                .verify(Some(&sig), Some("1700000000"), body, 1_700_000_010)
                .is_ok()
        );
        let mut flipped = body.to_vec();
        flipped[3] ^= 1;
        assert_eq!(
            verifier.verify(Some(&sig), Some("1700000000"), &flipped, 1_700_000_010),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verifier.verify(Some(&sig), Some("1700000000"), body, 1_700_000_400),
            Err(VerifyError::Stale)
        );
        assert!(matches!(
            verifier.verify(None, Some("1"), body, 1),
            Err(VerifyError::Missing(_))
        ));
    }

    #[test]
    fn keys_that_are_not_p256_are_refused() {
        assert!(SendgridVerifier::new("not base64!", 300).is_err());
        assert!(SendgridVerifier::new(&STANDARD.encode(b"garbage"), 300).is_err());
    }
}
