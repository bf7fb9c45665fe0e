//! Mailgun webhooks: `signature.signature` is hex HMAC-SHA256 of
//! `timestamp || token` with the webhook signing key. The token's replay check
//! needs Redis and is done by the server (`server/providers.rs`).

use ring::hmac;
use serde_json::Value;

use super::{VerifyError, fresh};

#[derive(Clone)]
pub struct MailgunVerifier {
    key: hmac::Key,
    max_age_s: u64,
}

impl std::fmt::Debug for MailgunVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MailgunVerifier(..)")
    }
}

impl MailgunVerifier {
    pub fn new(signing_key: &[u8], max_age_s: u64) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, signing_key),
            max_age_s,
        }
    }

    /// Checks the body's `signature` object and its age; returns the token (for the replay check).
    pub fn verify(&self, body: &Value, now_s: i64) -> Result<String, VerifyError> {
        let (timestamp, token) = self.verify_signature(body)?;
        let at: i64 = timestamp
            .parse()
            .map_err(|_| VerifyError::Malformed("timestamp is not a number".into()))?;
        fresh(at, now_s, self.max_age_s)?;
        Ok(token)
    }

    /// The signature alone (`cpo ingest` back-fills old events): (timestamp, token).
    pub fn verify_signature(&self, body: &Value) -> Result<(String, String), VerifyError> {
        let signature = body
            .get("signature")
            .ok_or(VerifyError::Missing("`signature` object"))?;
        let field = |name: &'static str| {
            signature
                .get(name)
                .and_then(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .ok_or(VerifyError::Missing(name))
        };
        let (timestamp, token, given) = (field("timestamp")?, field("token")?, field("signature")?);
        let given = hex::decode(given.trim())
            .map_err(|_| VerifyError::Malformed("signature is not hex".into()))?;
        hmac::verify(&self.key, format!("{timestamp}{token}").as_bytes(), &given)
            .map_err(|_| VerifyError::BadSignature)?;
        Ok((timestamp, token))
    }
}

/// The signature a Mailgun account with `key` puts on (timestamp, token).
pub fn sign(key: &[u8], timestamp: &str, token: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    hex::encode(hmac::sign(&key, format!("{timestamp}{token}").as_bytes()).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn valid_signature_gives_the_token_wrong_one_is_refused() {
        let verifier = MailgunVerifier::new(b"key-1", 300);
        let body = json!({"signature": {"timestamp": "1000", "token": "tok",
            "signature": sign(b"key-1", "1000", "tok")}});
        assert_eq!(verifier.verify(&body, 1000).unwrap(), "tok");
        let forged = json!({"signature": {"timestamp": "1000", "token": "tok",
            "signature": sign(b"key-2", "1000", "tok")}});
        assert_eq!(
            verifier.verify(&forged, 1000),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(verifier.verify(&body, 2000), Err(VerifyError::Stale));
        assert!(verifier.verify(&json!({}), 1000).is_err());
    }
}
