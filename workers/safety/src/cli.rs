//! `cpo screen [FILE|-]`: screen JSONL records offline, one verdict per line.
//!
//! Input: `{"id","subject","body"}` with optional `"citations": [..]` and
//! `"snippets": {id: text}`; the citation rules and the claim rule (every
//! sentence tone phrasing or supported by the snippet it cites) run only when
//! snippets are given. Output: `{"id","decision","categories","reasons"}` in input order.
//! A bad line becomes a blocked verdict naming its line, and screening goes on.
//!
//! Exit status: 0 whenever the screening ran, however many records were
//! blocked (decisions are data, read them from the output); non-zero only when
//! the input cannot be read, the output cannot be written or the config is invalid.
//!
//! Settings: the `safety` section of the config file (`--config`, a global
//! option of `cpo`, or `CPO_CONFIG`), then `CPO__SAFETY__*` variables; the
//! configured backend screens (`safety.backend`). A screen error is a blocked
//! verdict naming it (`on_screen_error` is the stage's business: here the
//! verdict is the output).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use cpo_shared::config::Settings;
use cpo_shared::model::{CategorySeverities, Decision};
use serde::{Deserialize, Serialize};

use crate::citations::CitationCheck;
use crate::claims::Source;
use crate::config::SafetyConfig;
use crate::error::ScreenIoError;
use crate::screen::SafetyScreen;
use crate::verdict::{Content, evaluate};

#[derive(Debug, Clone, clap::Args)]
pub struct ScreenArgs {
    /// JSONL file of {"id","subject","body"} records; `-` reads stdin.
    #[arg(default_value = "-")]
    pub input: String,
    /// Write verdicts to this file instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// Counts of one `screen_jsonl` run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScreenStats {
    pub records: u64,
    pub approved: u64,
    pub blocked: u64,
    /// Lines that were not a valid record (counted in `blocked` too).
    pub malformed: u64,
}

#[derive(Deserialize)]
struct ScreenRecord {
    id: String,
    subject: String,
    body: String,
    #[serde(default)]
    citations: Option<Vec<String>>,
    #[serde(default)]
    snippets: Option<BTreeMap<String, String>>,
}

#[derive(Serialize)]
struct VerdictLine<'a> {
    id: Option<&'a str>,
    decision: Decision,
    categories: &'a CategorySeverities,
    reasons: &'a [String],
}

/// Screen every record of `input` and write one verdict line per record.
pub async fn screen_jsonl(
    mut input: impl BufRead,
    mut output: impl Write,
    screen: &dyn SafetyScreen,
    config: &SafetyConfig,
) -> Result<ScreenStats, ScreenIoError> {
    let mut stats = ScreenStats::default();
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        if input
            .read_until(b'\n', &mut line)
            .map_err(ScreenIoError::Read)?
            == 0
        {
            break;
        }
        number += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        stats.records += 1;
        let (id, decision, categories, reasons) = match parse_record(&line, number) {
            Ok(record) => {
                let citations = record.snippets.as_ref().map(|snippets| CitationCheck {
                    declared: record.citations.as_deref(),
                    snippets: snippets
                        .iter()
                        .map(|(id, text)| Source {
                            id,
                            title: "",
                            text,
                        })
                        .collect(),
                });
                let content = Content {
                    subject: &record.subject,
                    body: &record.body,
                    citations,
                };
                let assessment = evaluate(screen, &content, config).await;
                (
                    Some(record.id.clone()),
                    assessment.decision,
                    assessment.categories,
                    assessment.reasons,
                )
            }
            Err((id, reason)) => {
                stats.malformed += 1;
                (
                    id,
                    Decision::Blocked,
                    CategorySeverities::default(),
                    vec![reason],
                )
            }
        };
        match decision {
            Decision::Approved => stats.approved += 1,
            Decision::Blocked => stats.blocked += 1,
        }
        let verdict = VerdictLine {
            id: id.as_deref(),
            decision,
            categories: &categories,
            reasons: &reasons,
        };
        serde_json::to_writer(&mut output, &verdict).map_err(ScreenIoError::Encode)?;
        output.write_all(b"\n").map_err(ScreenIoError::Write)?;
    }
    output.flush().map_err(ScreenIoError::Write)?;
    Ok(stats)
}

/// A record, or the id (when one can be read) and the reason it is not one.
fn parse_record(line: &[u8], number: u64) -> Result<ScreenRecord, (Option<String>, String)> {
    let value: serde_json::Value = serde_json::from_slice(line)
        .map_err(|e| (None, format!("line {number}: invalid JSON: {e}")))?;
    let id = value.get("id").and_then(|v| v.as_str()).map(str::to_string);
    serde_json::from_value(value).map_err(|e| (id, format!("line {number}: invalid record: {e}")))
}

/// `cpo screen` with the config file named by `CPO_CONFIG`, if any.
pub fn run_screen(args: ScreenArgs) -> anyhow::Result<()> {
    let config = std::env::var_os("CPO_CONFIG").map(PathBuf::from);
    run_screen_with_config(args, config.as_deref())
}

/// `cpo screen`: the configured screen over a file or stdin, verdicts to stdout
/// or `--output`, a summary on stderr. Blocks on its own small runtime, so
/// call it from synchronous code.
pub fn run_screen_with_config(args: ScreenArgs, config_file: Option<&Path>) -> anyhow::Result<()> {
    let settings = Settings::load(config_file)?;
    let config: SafetyConfig = settings.section("safety")?;
    config.validate()?;
    let screen = config.screen()?;
    let input: Box<dyn BufRead> = if args.input == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let file = File::open(&args.input).with_context(|| format!("open {}", args.input))?;
        Box::new(BufReader::new(file))
    };
    let output: Box<dyn Write> = match &args.output {
        Some(path) => {
            let file = File::create(path).with_context(|| format!("create {}", path.display()))?;
            Box::new(BufWriter::new(file))
        }
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    // The screen's timeout needs a timer, the Azure backend sockets; one
    // thread is plenty for sequential records.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the screening runtime")?;
    let stats = runtime.block_on(screen_jsonl(input, output, &*screen, &config))?;
    eprintln!(
        "screened {} records: {} approved, {} blocked ({} malformed)",
        stats.records, stats.approved, stats.blocked, stats.malformed
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_screens_a_file_into_an_output_file() {
        let dir = std::env::temp_dir().join(format!("cpo-safety-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let input = dir.join("in.jsonl");
        let output = dir.join("out.jsonl");
        std::fs::write(
            &input,
            "{\"id\":\"a\",\"subject\":\"Hi\",\"body\":\"k i l l you\"}\nnot json\n",
        )
        .unwrap();
        let args = ScreenArgs {
            input: input.display().to_string(),
            output: Some(output.clone()),
        };
        run_screen_with_config(args, None).unwrap();
        let written = std::fs::read_to_string(&output).unwrap();
        let lines: Vec<serde_json::Value> = written
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["decision"], "blocked");
        assert!(
            lines[1]["reasons"][0]
                .as_str()
                .unwrap()
                .starts_with("line 2: invalid JSON")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_input_file_is_an_error() {
        let args = ScreenArgs {
            input: "does-not-exist.jsonl".into(),
            output: None,
        };
        let err = run_screen_with_config(args, None).unwrap_err();
        assert!(format!("{err:#}").contains("does-not-exist.jsonl"));
    }
}
