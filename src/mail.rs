//! The mail side of the settings, built and checked once: the `Composer`
//! (`delivery.mail`, `delivery.utm`, `gateway.public_url`,
//! `security.unsubscribe_key`, document URLs from the corpus), the optional
//! DKIM signer and the SMTP sink (`delivery.smtp`). Every problem names its
//! key, before anything connects. `cpo preview`, `cpo run --eml` and the
//! delivery stage's sink selection use the same functions.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, bail};
use cpo_delivery::DeliveryConfig;
use cpo_delivery::compose::Composer;
use cpo_delivery::dkim::DkimSigner;
use cpo_delivery::smtp::SmtpSink;
use cpo_shared::config::Settings;
use cpo_shared::unsubscribe::UnsubscribeTokens;
use serde::Deserialize;

/// `gateway.public_url`, read leniently: the rest of the section is the gateway's.
#[derive(Default, Deserialize)]
#[serde(default)]
struct GatewayUrl {
    public_url: Option<String>,
}

/// The mail side of the settings, checked once.
pub struct Mail {
    pub composer: Composer,
    pub dkim: Option<DkimSigner>,
}

/// Builds the composer (and DKIM signer) from the settings; every problem
/// names its key. Without `security.unsubscribe_key`, `ephemeral_ok` makes a
/// random one (its links then verify nowhere else: the embedded mode only).
pub fn mail(
    settings: &Settings,
    content_dir: Option<&Path>,
    ephemeral_ok: bool,
) -> anyhow::Result<Mail> {
    let delivery: DeliveryConfig = settings.section("delivery")?;
    let gateway: GatewayUrl = settings.section("gateway")?;
    let security: crate::wiring::SecurityConfig = settings.section("security")?;
    let key = crate::wiring::secret(
        &security.unsubscribe_key,
        &security.unsubscribe_key_file,
        "unsubscribe_key",
    )?;
    let key = match key {
        Some(key) => key,
        None if ephemeral_ok => rand::random::<[u8; 32]>().to_vec(),
        None => bail!("security.unsubscribe_key is not set (CPO__SECURITY__UNSUBSCRIBE_KEY)"),
    };
    let composer = Composer::from_config(
        &delivery.mail,
        delivery.utm.as_ref(),
        gateway.public_url.as_deref(),
        UnsubscribeTokens::new(key),
        doc_urls(settings, content_dir)?,
    )
    .map_err(anyhow::Error::msg)?;
    let dkim = match &delivery.mail.dkim {
        Some(config) => {
            Some(DkimSigner::load(config, composer.sending_domain()).map_err(anyhow::Error::msg)?)
        }
        None => None,
    };
    Ok(Mail { composer, dkim })
}

/// Document id -> URL for every corpus document that has one.
fn doc_urls(
    settings: &Settings,
    content_dir: Option<&Path>,
) -> anyhow::Result<HashMap<String, String>> {
    let mut config: cpo_retrieval::RetrievalConfig = settings.section("retrieval")?;
    if let Some(dir) = content_dir {
        config.corpus_dir = dir.display().to_string();
    }
    let corpus = cpo_retrieval::Corpus::load(&config.corpus_dir)
        .with_context(|| format!("cannot load the content corpus {}", config.corpus_dir))?;
    Ok(corpus
        .documents()
        .iter()
        .filter_map(|d| d.url.clone().map(|url| (d.id.clone(), url)))
        .collect())
}

/// The SMTP sink of `delivery.smtp`, signing with the mail's DKIM key.
pub fn smtp_sink(settings: &Settings, mail: &Mail) -> anyhow::Result<SmtpSink> {
    let delivery: DeliveryConfig = settings.section("delivery")?;
    SmtpSink::from_config(
        &delivery.smtp,
        mail.composer.sending_domain(),
        mail.dkim.clone(),
    )
    .map_err(anyhow::Error::msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_settings_make_a_composer_and_smtp_needs_its_url() {
        let settings = Settings::load(Some(Path::new("data/cpo.yaml"))).unwrap();
        let built = mail(&settings, None, true).unwrap();
        assert_eq!(
            built.composer.sending_domain(),
            "northwind-outfitters.example.com"
        );
        let err = smtp_sink(&settings, &built).unwrap_err().to_string();
        assert!(err.contains("delivery.smtp.url"), "{err}");
        let err = mail(&settings, None, false).err().unwrap().to_string();
        assert!(err.contains("security.unsubscribe_key"), "{err}");
        let with_smtp = settings
            .with_override("delivery.smtp.url", "smtp://127.0.0.1:2525")
            .unwrap();
        assert!(smtp_sink(&with_smtp, &built).is_ok());
    }
}
