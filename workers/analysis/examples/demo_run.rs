//! Writes a synthetic campaign run, simulates outcomes and writes the (SIMULATED)
//! reports into it: `cargo run -p cpo-analysis --example demo_run -- DIR [CUSTOMERS]`.

use std::path::PathBuf;

use cpo_analysis::synth::{SyntheticRun, write_run};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "demo-run".into()));
    let customers = args.next().map(|n| n.parse()).transpose()?.unwrap_or(5000);
    write_run(
        &dir,
        &SyntheticRun {
            customers,
            ..SyntheticRun::default()
        },
    )?;
    let paths = cpo_analysis::simulate_and_report(&dir, 42)?;
    println!("{}", paths.html.display());
    Ok(())
}
