//! `cpo gen-data`: arguments and the command, with a progress bar for big runs.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use super::generate_customers_with_progress;

/// Below this the run takes well under a second and a bar would only flicker.
const PROGRESS_BAR_FROM: u64 = 100_000;

/// Generate a synthetic customer CSV.
#[derive(Debug, Clone, clap::Args)]
pub struct GenDataArgs {
    /// How many customers to write.
    #[arg(long)]
    pub customers: u64,
    /// Seed of the generator; the same seed always gives the same file.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Output file (`-` for standard output).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run_gen_data(args: GenDataArgs) -> anyhow::Result<()> {
    let bar = if args.customers >= PROGRESS_BAR_FROM {
        let bar = ProgressBar::new(args.customers);
        if let Ok(style) =
            ProgressStyle::with_template("{bar:40} {human_pos}/{human_len} customers ({eta})")
        {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let progress = |rows| bar.set_position(rows);
    if args.out.as_os_str() == "-" {
        let stdout = io::stdout().lock();
        generate_customers_with_progress(args.customers, args.seed, stdout, progress)?;
    } else {
        let file = File::create(&args.out)
            .with_context(|| format!("cannot create {}", args.out.display()))?;
        let mut writer = BufWriter::new(file);
        generate_customers_with_progress(args.customers, args.seed, &mut writer, progress)
            .with_context(|| format!("writing {}", args.out.display()))?;
        writer
            .flush()
            .with_context(|| format!("writing {}", args.out.display()))?;
    }
    bar.finish_and_clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: GenDataArgs,
    }

    #[test]
    fn writes_the_file_the_arguments_name() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("customers.csv");
        let cli = Cli::try_parse_from([
            "gen-data",
            "--customers",
            "20",
            "--out",
            out.to_str().unwrap(),
        ])
        .unwrap();
        assert_eq!(cli.args.seed, 42);
        run_gen_data(cli.args.clone()).unwrap();
        let mut expected = Vec::new();
        crate::generate_customers(20, 42, &mut expected).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), expected);
        let missing_dir = GenDataArgs {
            out: dir.path().join("no/such/dir.csv"),
            ..cli.args
        };
        let err = run_gen_data(missing_dir).unwrap_err();
        assert!(format!("{err:#}").contains("cannot create"), "{err:#}");
    }
}
