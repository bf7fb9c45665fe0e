//! Times a bulk insert of assignments into a store, then its replay (all ignored).
//!
//! `cargo run --release -p cpo-shared --example store_bulk -- URL [ROWS]`
//! with URL `postgres://postgres@127.0.0.1:5432/DB` (an empty database) or
//! `sqlite://target/bench/store.sqlite`; ROWS defaults to 1,000,000.

use std::time::Instant;

use cpo_shared::store::{Assignment, StoreConfig, connect};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or("usage: store_bulk URL [ROWS] (postgres://... or sqlite://...)")?;
    let rows: usize = match args.next() {
        Some(n) => n.parse().map_err(|e| format!("ROWS `{n}`: {e}"))?,
        None => 1_000_000,
    };
    let config = StoreConfig {
        url,
        ..StoreConfig::default()
    };
    let store = connect(&config).await?;
    let assignments: Vec<Assignment> = (0..rows)
        .map(|i| Assignment {
            message_id: format!("bench-{i:08}"),
            campaign_id: "bench".into(),
            customer_id: format!("c{i:08}"),
            segment: "s1".into(),
            arm: if i.is_multiple_of(2) { "a" } else { "b" }.into(),
            variant: "v1".into(),
        })
        .collect();
    for pass in ["insert", "replay"] {
        let start = Instant::now();
        let outcome = store.insert_assignments(&assignments).await?;
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{} {pass}: {rows} rows, {} new, {} statements, {secs:.2} s ({:.0} rows/s)",
            store.backend(),
            outcome.inserted,
            outcome.statements,
            rows as f64 / secs
        );
    }
    Ok(())
}
