//! SNS message signatures (what SES events arrive in): the canonical string of
//! the message's fields, signed SHA1withRSA (SignatureVersion 1) or
//! SHA256withRSA (2) by the certificate at SigningCertURL, whose URL must be
//! https on an allow-listed `sns.<region>.amazonaws.com` host.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{
    RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
};
use serde_json::Value;

use super::{VerifyError, fresh};

/// The fields signed for each message type, in SNS's order.
fn signed_fields(kind: &str) -> Result<&'static [&'static str], VerifyError> {
    match kind {
        "Notification" => Ok(&[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ]),
        "SubscriptionConfirmation" | "UnsubscribeConfirmation" => Ok(&[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ]),
        other => Err(VerifyError::Malformed(format!(
            "unknown SNS Type `{other}`"
        ))),
    }
}

fn text<'a>(envelope: &'a Value, key: &'static str) -> Option<&'a str> {
    envelope.get(key).and_then(Value::as_str)
}

/// `key\nvalue\n` for each signed field present (only Subject may be absent).
pub fn canonical_string(envelope: &Value) -> Result<String, VerifyError> {
    let kind = text(envelope, "Type").ok_or(VerifyError::Missing("Type"))?;
    let mut out = String::new();
    for &key in signed_fields(kind)? {
        match text(envelope, key) {
            Some(value) => {
                out.push_str(key);
                out.push('\n');
                out.push_str(value);
                out.push('\n');
            }
            None if key == "Subject" => {}
            None => return Err(VerifyError::Missing(key)),
        }
    }
    Ok(out)
}

/// Whether `url` is https on `sns.<region>.amazonaws.com` for a listed region.
pub fn allowed_sns_url(url: &str, regions: &[String]) -> Result<url::Url, VerifyError> {
    let parsed = url::Url::parse(url)
        .map_err(|_| VerifyError::UnlistedHost(format!("`{url}` is not a URL")))?;
    let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
    let listed = regions
        .iter()
        .any(|region| host == format!("sns.{region}.amazonaws.com"));
    if parsed.scheme() != "https"
        || !listed
        || parsed.port().is_some_and(|p| p != 443)
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        return Err(VerifyError::UnlistedHost(host));
    }
    Ok(parsed)
}

/// The signing certificate's URL, checked against the allow-list.
pub fn cert_url(envelope: &Value, regions: &[String]) -> Result<String, VerifyError> {
    let url = text(envelope, "SigningCertURL")
        .or_else(|| text(envelope, "SigningCertUrl"))
        .ok_or(VerifyError::Missing("SigningCertURL"))?;
    let parsed = allowed_sns_url(url, regions)?;
    if !parsed.path().ends_with(".pem") {
        return Err(VerifyError::UnlistedHost(format!(
            "{}: not a .pem path",
            parsed.host_str().unwrap_or_default()
        )));
    }
    Ok(url.to_string())
}

/// Checks the signature with `public_key` (the certificate's PKCS#1 RSA key) and
/// the Timestamp's age.
pub fn verify(
    envelope: &Value,
    public_key: &[u8],
    now_s: i64,
    max_age_s: u64,
) -> Result<(), VerifyError> {
    let signature = text(envelope, "Signature").ok_or(VerifyError::Missing("Signature"))?;
    let signature = STANDARD
        .decode(signature.trim())
        .map_err(|_| VerifyError::BadSignature)?;
    let algorithm = match text(envelope, "SignatureVersion").unwrap_or("1") {
        "1" => &RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        "2" => &RSA_PKCS1_2048_8192_SHA256,
        other => {
            return Err(VerifyError::Malformed(format!(
                "unknown SignatureVersion `{other}`"
            )));
        }
    };
    let canonical = canonical_string(envelope)?;
    UnparsedPublicKey::new(algorithm, public_key)
        .verify(canonical.as_bytes(), &signature)
        .map_err(|_| VerifyError::BadSignature)?;
    let timestamp = text(envelope, "Timestamp").ok_or(VerifyError::Missing("Timestamp"))?;
    let at = cpo_analysis::events::time::parse_rfc3339(timestamp)
        .ok_or_else(|| VerifyError::Malformed(format!("Timestamp `{timestamp}`")))?;
    fresh(at, now_s, max_age_s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_string_follows_sns_order_and_skips_a_missing_subject() {
        let envelope = json!({"Type": "Notification", "MessageId": "m", "TopicArn": "t",
            "Message": "hello", "Timestamp": "2025-01-01T00:00:00Z", "Signature": "x"});
        assert_eq!(
            canonical_string(&envelope).unwrap(),
            "Message\nhello\nMessageId\nm\nTimestamp\n2025-01-01T00:00:00Z\nTopicArn\nt\nType\nNotification\n"
        );
        let confirmation = json!({"Type": "SubscriptionConfirmation", "MessageId": "m"});
        assert_eq!(
            canonical_string(&confirmation),
            Err(VerifyError::Missing("Message"))
        );
    }

    #[test]
    fn only_https_on_listed_regions_is_allowed() {
        let regions = vec!["us-east-1".to_string()];
        let ok = json!({"SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem"});
        assert!(cert_url(&ok, &regions).is_ok());
        for bad in [
            "http://sns.us-east-1.amazonaws.com/a.pem",
            "https://sns.eu-west-1.amazonaws.com/a.pem",
            "https://sns.us-east-1.amazonaws.com.evil.example/a.pem",
            "https://evil.example/sns.us-east-1.amazonaws.com/a.pem",
            "https://x@sns.us-east-1.amazonaws.com/a.pem",
            "https://sns.us-east-1.amazonaws.com/a.txt",
        ] {
            let envelope = json!({"SigningCertURL": bad});
            assert!(
                matches!(
                    cert_url(&envelope, &regions),
                    Err(VerifyError::UnlistedHost(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_bogus_signature_is_refused() {
        let envelope = json!({"Type": "Notification", "MessageId": "m", "TopicArn": "t",
            "Message": "hello", "Timestamp": "2025-01-01T00:00:00Z", "Signature": "BOGUS"});
        assert_eq!(
            verify(&envelope, b"not a key", 0, 300),
            Err(VerifyError::BadSignature)
        );
    }
}
