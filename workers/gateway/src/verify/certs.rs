//! SNS signing certificates: from the configured files (`gateway.ses.certificates`)
//! or fetched over https from an allow-listed host, parsed once and cached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use x509_cert::Certificate;
use x509_cert::der::DecodePem;

use super::{VerifyError, sns};
use crate::config::SesConfig;

/// Certificates larger than this are not read (a certificate is ~2 KB).
const MAX_CERT_BYTES: usize = 64 * 1024;
/// Distinct certificate URLs kept; SNS rotates its certificate rarely.
const MAX_CACHED: usize = 64;

/// The RSA public key (PKCS#1 DER) of a PEM certificate.
pub fn public_key_of_pem(pem: &str) -> Result<Vec<u8>, String> {
    let cert =
        Certificate::from_pem(pem.as_bytes()).map_err(|e| format!("not a PEM certificate: {e}"))?;
    let validity = &cert.tbs_certificate.validity;
    let now = std::time::SystemTime::now();
    if now < validity.not_before.to_system_time() || now > validity.not_after.to_system_time() {
        return Err("certificate is outside its validity period".into());
    }
    cert.tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .as_bytes()
        .map(<[u8]>::to_vec)
        .ok_or_else(|| "public key bits are not whole bytes".into())
}

/// Verifies SNS envelopes: certificate by URL, cached.
pub struct SnsVerifier {
    config: SesConfig,
    cache: Mutex<HashMap<String, Arc<Vec<u8>>>>,
    client: reqwest::Client,
}

impl SnsVerifier {
    pub fn new(config: SesConfig) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_millis(config.fetch_timeout_ms))
            .build()
            .map_err(|e| format!("http client: {e}"))?;
        let verifier = Self {
            config,
            cache: Mutex::new(HashMap::new()),
            client,
        };
        // Configured certificates are read now: a bad file stops the start, naming it.
        for (url, path) in &verifier.config.certificates {
            let pem = std::fs::read_to_string(path)
                .map_err(|e| format!("gateway.ses.certificates.{url}: {}: {e}", path.display()))?;
            let key = public_key_of_pem(&pem)
                .map_err(|e| format!("gateway.ses.certificates.{url}: {e}"))?;
            verifier.lock().insert(url.clone(), Arc::new(key));
        }
        Ok(verifier)
    }

    pub fn config(&self) -> &SesConfig {
        &self.config
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Vec<u8>>>> {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn key(&self, url: &str) -> Result<Arc<Vec<u8>>, VerifyError> {
        if let Some(key) = self.lock().get(url) {
            return Ok(key.clone());
        }
        let response = self
            .client
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| VerifyError::CertUnavailable(e.without_url().to_string()))?;
        if response
            .content_length()
            .is_some_and(|n| n as usize > MAX_CERT_BYTES)
        {
            return Err(VerifyError::CertUnavailable("certificate too large".into()));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| VerifyError::CertUnavailable(e.without_url().to_string()))?;
        if body.len() > MAX_CERT_BYTES {
            return Err(VerifyError::CertUnavailable("certificate too large".into()));
        }
        let pem = String::from_utf8_lossy(&body);
        let key = Arc::new(public_key_of_pem(&pem).map_err(VerifyError::CertUnavailable)?);
        let mut cache = self.lock();
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(url.to_string(), key.clone());
        Ok(key)
    }

    /// Host allow-list, signature and Timestamp of one SNS envelope.
    pub async fn verify(&self, envelope: &Value, now_s: i64) -> Result<(), VerifyError> {
        let url = sns::cert_url(envelope, &self.config.regions)?;
        let key = self.key(&url).await?;
        sns::verify(envelope, &key, now_s, self.config.max_age_s)
    }

    /// What `cpo ingest` checks: host and signature, not the age (back-fills are old).
    pub async fn verify_signature_only(&self, envelope: &Value) -> Result<(), VerifyError> {
        let url = sns::cert_url(envelope, &self.config.regions)?;
        let key = self.key(&url).await?;
        sns::verify(envelope, &key, super::now_s(), u64::MAX)
    }
}
