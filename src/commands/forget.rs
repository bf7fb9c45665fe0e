//! `cpo forget --email ADDRESS [--customer ID]...`: erase a person from the
//! store (GDPR art. 17), keeping only the keyed-hash tombstone that stops
//! them being mailed again. What is erased: shared/src/store/design.md, "Erasure".

use std::path::Path;

use clap::Args;
use cpo_shared::config::Settings;
use cpo_shared::envelope::now_ms;
use cpo_shared::store::Erasure;

use super::Stdout;
use super::suppress::{address, block_on, customer_id, hasher};
use crate::wiring;

#[derive(Args)]
pub struct ForgetArgs {
    /// The person's address (only its keyed hash is kept, as the tombstone).
    #[arg(long)]
    pub email: String,
    /// Customer ids of the person (repeatable); others are found through the
    /// stored events that contain the address.
    #[arg(long)]
    pub customer: Vec<String>,
}

pub fn run(args: ForgetArgs, config: Option<&Path>) -> anyhow::Result<u8> {
    let settings = Settings::load(config)?;
    let address = address(&args.email)?;
    let address_hash = hasher(&settings)?.hash(&address);
    let customers = args
        .customer
        .iter()
        .map(|c| customer_id(c))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let erasure = Erasure {
        address,
        address_hash,
        customers,
        source: "cli".into(),
        now_ms: now_ms() as i64,
    };
    let report = block_on(async {
        let store = wiring::open_store(&settings).await?;
        anyhow::Ok(store.forget(&erasure).await?)
    })??;
    let mut out = Stdout::new();
    out.line(format!(
        "erased {} customer(s){}: {} assignment(s) unlinked, {} event payload(s) erased, \
         {} send error(s) cleared, {} contact(s) deleted, {} customer suppression(s) replaced",
        report.customers.len(),
        if report.customers.is_empty() {
            String::new()
        } else {
            format!(" ({})", report.customers.join(", "))
        },
        report.assignments,
        report.events,
        report.sends,
        report.contacts,
        report.suppressions
    ))?;
    out.line(format!(
        "tombstone: address {} (reason erased)",
        erasure.address_hash
    ))?;
    Ok(0)
}
