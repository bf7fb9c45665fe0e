//! Signature checks of every source, without IO: SendGrid's ECDSA P-256, SNS's
//! RSA certificates (the fetching and caching is in `certs.rs`), Mailgun's HMAC
//! and bearer tokens. Shared with `cpo ingest`, which checks the SNS envelopes
//! it reads with the same code.

pub mod certs;
pub mod mailgun;
pub mod sendgrid;
pub mod sns;

/// Why a request is refused; `reason()` is the bounded metric label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing {0}")]
    Missing(&'static str),
    #[error("signature does not verify")]
    BadSignature,
    #[error("timestamp is stale or in the future")]
    Stale,
    #[error("token was seen before")]
    Replay,
    #[error("certificate host not allow-listed: {0}")]
    UnlistedHost(String),
    #[error("certificate unavailable: {0}")]
    CertUnavailable(String),
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("bad bearer token")]
    Unauthorized,
}

impl VerifyError {
    pub fn reason(&self) -> &'static str {
        match self {
            VerifyError::Missing(_) => "missing_signature",
            VerifyError::BadSignature => "bad_signature",
            VerifyError::Stale => "stale",
            VerifyError::Replay => "replay",
            VerifyError::UnlistedHost(_) => "unlisted_host",
            VerifyError::CertUnavailable(_) => "cert_unavailable",
            VerifyError::Malformed(_) => "malformed_signature",
            VerifyError::Unauthorized => "unauthorized",
        }
    }
}

/// Every reason label, preset at 0.
pub const REASONS: &[&str] = &[
    "missing_signature",
    "bad_signature",
    "stale",
    "replay",
    "unlisted_host",
    "cert_unavailable",
    "malformed_signature",
    "unauthorized",
];

/// `now - max_age <= at <= now + skew`: old requests are replays, future ones forged.
pub fn fresh(at_s: i64, now_s: i64, max_age_s: u64) -> Result<(), VerifyError> {
    /// Clocks of the ESP and ours may disagree by this much.
    const SKEW_S: i64 = 60;
    let max_age = i64::try_from(max_age_s).unwrap_or(i64::MAX);
    if at_s < now_s.saturating_sub(max_age) || at_s > now_s.saturating_add(SKEW_S) {
        return Err(VerifyError::Stale);
    }
    Ok(())
}

pub fn now_s() -> i64 {
    (cpo_shared::envelope::now_ms() / 1000) as i64
}

/// Constant-time check of `Authorization: Bearer <token>`.
pub fn bearer(header: Option<&str>, expected: &[u8]) -> Result<(), VerifyError> {
    let given = header
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or(VerifyError::Unauthorized)?
        .trim()
        .as_bytes();
    // Compare MACs, not the tokens: hmac::verify is constant-time, so neither the
    // length nor a matching prefix leaks through timing.
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"cpo-gateway-bearer");
    let expected_tag = ring::hmac::sign(&key, expected);
    ring::hmac::verify(&key, given, expected_tag.as_ref()).map_err(|_| VerifyError::Unauthorized)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_refuses_old_and_future_times() {
        assert!(fresh(1000, 1000, 300).is_ok());
        assert!(fresh(700, 1000, 300).is_ok());
        assert_eq!(fresh(699, 1000, 300), Err(VerifyError::Stale));
        assert_eq!(fresh(1061, 1000, 300), Err(VerifyError::Stale));
    }

    #[test]
    fn bearer_tokens_must_match_exactly() {
        assert!(bearer(Some("Bearer s3cret"), b"s3cret").is_ok());
        assert!(bearer(Some("Bearer s3cre"), b"s3cret").is_err());
        assert!(bearer(Some("s3cret"), b"s3cret").is_err());
        assert!(bearer(None, b"s3cret").is_err());
    }
}
