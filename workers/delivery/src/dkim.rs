//! Optional DKIM signing (`delivery.mail.dkim`) and the one place an
//! `OutgoingEmail` becomes bytes for a sink that sends MIME (SMTP, .eml).
//! The Date header is set here, at send time, and the signature covers it.

use std::sync::Arc;
use std::time::SystemTime;

use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig as LettreDkim, DkimSigningAlgorithm,
    DkimSigningKey,
};
use lettre::message::header::HeaderName;

use crate::mail_config::{DkimAlgorithm, DkimConfig};
use crate::sink::OutgoingEmail;

/// Signs every message with one key.
#[derive(Clone)]
pub struct DkimSigner {
    config: Arc<LettreDkim>,
}

impl std::fmt::Debug for DkimSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DkimSigner(..)")
    }
}

/// Headers the signature covers: those a forger would change.
const SIGNED_HEADERS: [&str; 8] = [
    "From",
    "Reply-To",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

impl DkimSigner {
    /// Reads the key file; errors name `delivery.mail.dkim.*`.
    pub fn load(config: &DkimConfig, sending_domain: &str) -> Result<Self, String> {
        let key = std::fs::read_to_string(&config.private_key_file).map_err(|e| {
            format!(
                "delivery.mail.dkim.private_key_file: cannot read {}: {e}",
                config.private_key_file.display()
            )
        })?;
        Self::from_key(config, key.trim(), sending_domain)
    }

    pub fn from_key(config: &DkimConfig, key: &str, sending_domain: &str) -> Result<Self, String> {
        if config.selector.trim().is_empty() {
            return Err("delivery.mail.dkim.selector is empty".into());
        }
        let algorithm = match config.algorithm {
            DkimAlgorithm::Rsa => DkimSigningAlgorithm::Rsa,
            DkimAlgorithm::Ed25519 => DkimSigningAlgorithm::Ed25519,
        };
        let key = DkimSigningKey::new(key, algorithm)
            .map_err(|e| format!("delivery.mail.dkim.private_key_file: not a usable key ({e})"))?;
        let domain = config
            .domain
            .clone()
            .unwrap_or_else(|| sending_domain.to_string());
        let headers = SIGNED_HEADERS
            .iter()
            .map(|h| HeaderName::new_from_ascii_str(h))
            .collect();
        // relaxed/relaxed survives the header refolding relays do.
        let canonicalization = DkimCanonicalization {
            header: DkimCanonicalizationType::Relaxed,
            body: DkimCanonicalizationType::Relaxed,
        };
        Ok(Self {
            config: Arc::new(LettreDkim::new(
                config.selector.clone(),
                domain,
                key,
                headers,
                canonicalization,
            )),
        })
    }
}

/// The email as RFC 5322 bytes dated `date`, signed when a signer is given.
pub fn mime(
    email: &OutgoingEmail,
    date: SystemTime,
    dkim: Option<&DkimSigner>,
) -> Result<Vec<u8>, String> {
    let mut message = email.to_message(date)?;
    if let Some(signer) = dkim {
        message.sign(&signer.config);
    }
    Ok(message.formatted())
}

#[cfg(test)]
mod tests {
    use super::*;

    // An Ed25519 seed (32 zero-to-31 bytes, base64): test-only.
    const SEED: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn config() -> DkimConfig {
        DkimConfig {
            selector: "cpo".into(),
            domain: None,
            private_key_file: "unused".into(),
            algorithm: DkimAlgorithm::Ed25519,
        }
    }

    #[test]
    fn a_signed_message_carries_the_signature_over_our_headers() {
        let signer = DkimSigner::from_key(&config(), SEED, "brand.example").unwrap();
        let email = crate::sink::tests::email();
        let signed =
            String::from_utf8(mime(&email, SystemTime::now(), Some(&signer)).unwrap()).unwrap();
        let (_, from_signature) = signed.split_once("\r\nDKIM-Signature: ").unwrap();
        let header: String = from_signature
            .split("\r\n")
            .take_while(|l| !l.is_empty() && (l.starts_with(' ') || !l.contains(": ")))
            .collect::<Vec<_>>()
            .join("");
        let header = format!("{} {header}", from_signature.lines().next().unwrap());
        assert!(header.contains("d=brand.example"), "{header}");
        assert!(header.contains("s=cpo"));
        assert!(header.contains("a=ed25519-sha256"));
        assert!(
            header
                .to_ascii_lowercase()
                .contains("list-unsubscribe-post")
        );
        let unsigned = String::from_utf8(mime(&email, SystemTime::now(), None).unwrap()).unwrap();
        assert!(!unsigned.contains("DKIM-Signature"));
    }

    #[test]
    fn a_bad_key_or_missing_file_names_the_key() {
        let err = DkimSigner::from_key(&config(), "not base64!", "brand.example").unwrap_err();
        assert!(err.contains("delivery.mail.dkim.private_key_file"), "{err}");
        let err = DkimSigner::load(&config(), "brand.example").unwrap_err();
        assert!(err.contains("cannot read unused"), "{err}");
    }
}
