//! `cpo preview --customer ID`: one customer's email exactly as it would be
//! sent (RFC 5322 text, an .eml), and `cpo run --eml DIR`: every message of
//! a run as `DIR/<message_id>.eml`.
//!
//! Both compose from the run's outbox with the `Composer` the delivery stage
//! uses (`delivery.mail`, `delivery.utm`, `gateway.public_url`,
//! `security.unsubscribe_key`, document URLs from the corpus), so what they
//! show is what a sink is handed; only the Date header is the time of writing.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, bail};
use clap::Args;
use cpo_delivery::compose::{ComposeInput, Composer};
use cpo_delivery::dkim;
use cpo_delivery::eml::EmlDir;
use cpo_shared::config::Settings;
use serde::Deserialize;

use crate::embedded;
use crate::mail::{Mail, mail};

#[derive(Args)]
pub struct PreviewArgs {
    /// The customer whose email to print.
    #[arg(long)]
    pub customer: String,
    /// Campaign request (YAML or JSON).
    #[arg(long, default_value = "data/campaign.yaml")]
    pub campaign: PathBuf,
    /// Customer CSV; overrides the campaign's audience.
    #[arg(long)]
    pub customers: Option<PathBuf>,
    /// Approved content corpus (default `retrieval.corpus_dir`).
    #[arg(long)]
    pub content: Option<PathBuf>,
}

/// The fields of an outbox line the email needs (other fields are ignored,
/// so the outbox may grow).
#[derive(Deserialize)]
struct OutboxLine {
    message_id: String,
    campaign_id: String,
    customer_id: String,
    to: String,
    subject: String,
    body: String,
    #[serde(default)]
    citations: Vec<String>,
}

impl OutboxLine {
    fn compose(
        &self,
        composer: &Composer,
        cta: Option<&str>,
    ) -> Result<cpo_delivery::OutgoingEmail, String> {
        composer.compose(&ComposeInput {
            message_id: &self.message_id,
            campaign_id: &self.campaign_id,
            customer_id: &self.customer_id,
            to: &self.to,
            first_name: "",
            subject: &self.subject,
            body: &self.body,
            citations: &self.citations,
            call_to_action_url: cta,
        })
    }
}

/// Calls `each` with every line of an outbox (numbered from 1).
fn read_outbox(
    path: &Path,
    mut each: impl FnMut(usize, OutboxLine) -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    for (index, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let record: OutboxLine = serde_json::from_str(&line).with_context(|| {
            format!(
                "{} line {}: not an outbox record",
                path.display(),
                index + 1
            )
        })?;
        if !each(index + 1, record)? {
            break;
        }
    }
    Ok(())
}

/// `cpo run --eml DIR`: every message of `outbox` as `DIR/<message_id>.eml`.
pub fn write_eml(outbox: &Path, mail: &Mail, cta: Option<&str>, dir: &Path) -> anyhow::Result<u64> {
    let eml = EmlDir::create(dir, mail.dkim.clone()).map_err(anyhow::Error::msg)?;
    let now = SystemTime::now();
    let mut written = 0;
    read_outbox(outbox, |line_no, record| {
        let email = record
            .compose(&mail.composer, cta)
            .map_err(|e| anyhow::anyhow!("{} line {line_no}: {e}", outbox.display()))?;
        eml.write(&email, now).map_err(anyhow::Error::msg)?;
        written += 1;
        Ok(true)
    })?;
    Ok(written)
}

pub fn preview(args: PreviewArgs, config: Option<&Path>) -> anyhow::Result<u8> {
    super::init_logging(true, false);
    let demo_config = Path::new(super::run::DEMO_CONFIG);
    let config = config.or_else(|| demo_config.exists().then_some(demo_config));
    let settings = Settings::load(config)?;
    crate::wiring::check_run_sections(&settings)?;
    let campaign = match super::run::load_campaign(&args.campaign, args.customers.as_deref()) {
        Ok(campaign) => campaign,
        Err(error) => {
            eprintln!("error: input rejected: {error:#}");
            return Ok(super::run::exit::INPUT_REJECTED);
        }
    };
    let mail = mail(&settings, args.content.as_deref(), true)?;
    let scratch = std::env::temp_dir().join(format!(
        "cpo-preview-{}-{}",
        std::process::id(),
        hex::encode(rand::random::<[u8; 8]>())
    ));
    let result = preview_in(&scratch, &args, settings, campaign, &mail);
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn preview_in(
    scratch: &Path,
    args: &PreviewArgs,
    settings: Settings,
    campaign: cpo_shared::model::CampaignRequest,
    mail: &Mail,
) -> anyhow::Result<u8> {
    std::fs::create_dir_all(scratch)
        .with_context(|| format!("cannot create {}", scratch.display()))?;
    // A preview sends nothing and records nothing: the pipeline writes its
    // outbox and store in the scratch directory, whatever is configured.
    let store = format!("sqlite://{}", scratch.join("preview.sqlite").display());
    let mut settings = settings.with_override("store.url", &store)?;
    if settings.is_set("delivery.sink") {
        settings = settings.with_override("delivery.sink", "outbox")?;
    }
    let cta = campaign.call_to_action_url.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let options = embedded::Options {
        settings,
        content_dir: args.content.clone(),
        out_dir: scratch.to_path_buf(),
        progress: false,
        generator: None,
        screen: None,
    };
    runtime.block_on(embedded::run(campaign, options))?;
    let mut found = None;
    read_outbox(&scratch.join("outbox.jsonl"), |_, record| {
        if record.customer_id == args.customer {
            found = Some(record);
            return Ok(false);
        }
        Ok(true)
    })?;
    let Some(record) = found else {
        bail!(
            "{}",
            why_no_message(&scratch.join("exclusions.jsonl"), &args.customer)
        );
    };
    let email = record
        .compose(&mail.composer, cta.as_deref())
        .map_err(anyhow::Error::msg)?;
    let bytes =
        dkim::mime(&email, SystemTime::now(), mail.dkim.as_ref()).map_err(anyhow::Error::msg)?;
    let mut out = super::Stdout::new();
    out.line(String::from_utf8_lossy(&bytes).trim_end())?;
    Ok(0)
}

/// Why a customer got no message: their exclusion, or not in the list at all.
fn why_no_message(exclusions: &Path, customer: &str) -> String {
    #[derive(Deserialize)]
    struct Exclusion {
        customer_id: Option<String>,
        reason: String,
    }
    let reason = std::fs::read_to_string(exclusions).ok().and_then(|text| {
        text.lines()
            .filter_map(|l| serde_json::from_str::<Exclusion>(l).ok())
            .find(|e| e.customer_id.as_deref() == Some(customer))
            .map(|e| e.reason)
    });
    let shown = cpo_shared::log_field::bounded(customer);
    match reason {
        Some(reason) => format!("customer {shown} gets no message: excluded ({reason})"),
        None => format!("customer {shown} is not in the campaign's customer list"),
    }
}
