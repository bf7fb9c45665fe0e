//! `cpo ingest`: read event files in any supported format, dedupe by event id,
//! join to the run's outbox, write our own JSONL. Bad input is counted and
//! reported with its location, never fatal.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::{Event, InputFormat, Parsed, RefuseSigned, SignatureCheck, parse_document};
use crate::error::{AnalysisError, Result};
use crate::run::outbox::Outbox;

/// Problems kept in full; beyond this only the count grows, so a file of a
/// million broken lines cannot exhaust memory.
const MAX_PROBLEMS_KEPT: usize = 1000;

/// One event that could not be used, and where it was.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    /// `line 12`, or `line 3 item 2` for an element of a JSON array.
    pub location: String,
    pub reason: String,
}

/// What an ingest did.
#[derive(Debug, Default, Serialize)]
pub struct IngestReport {
    pub events_read: usize,
    pub written: usize,
    pub duplicates: usize,
    pub kept_from_existing: usize,
    pub ignored: BTreeMap<String, usize>,
    pub malformed_count: usize,
    pub malformed: Vec<Problem>,
    pub unmatched_count: usize,
    pub unmatched: Vec<Problem>,
    /// Objects whose signature did not verify (or could not be checked).
    pub rejected_count: usize,
    pub rejected: Vec<Problem>,
    pub by_type: BTreeMap<String, usize>,
    pub by_arm: BTreeMap<String, usize>,
}

impl IngestReport {
    fn malformed(&mut self, problem: Problem) {
        self.malformed_count += 1;
        if self.malformed.len() < MAX_PROBLEMS_KEPT {
            self.malformed.push(problem);
        }
    }

    fn rejected(&mut self, problem: Problem) {
        self.rejected_count += 1;
        if self.rejected.len() < MAX_PROBLEMS_KEPT {
            self.rejected.push(problem);
        }
    }

    fn unmatched(&mut self, problem: Problem) {
        self.unmatched_count += 1;
        if self.unmatched.len() < MAX_PROBLEMS_KEPT {
            self.unmatched.push(problem);
        }
    }
}

/// Splits a file into JSON documents with their line numbers. A file that starts
/// with `[` and parses whole is one document (a pretty-printed webhook batch);
/// anything else is JSON Lines, each line its own document.
fn documents(text: &str) -> Vec<(usize, std::result::Result<Value, String>)> {
    if text.trim_start().starts_with('[')
        && let Ok(value) = serde_json::from_str::<Value>(text)
    {
        let first_line = text.lines().take_while(|l| l.trim().is_empty()).count() + 1;
        return vec![(first_line, Ok(value))];
    }
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            (
                index + 1,
                serde_json::from_str(line).map_err(|e| format!("not JSON: {e}")),
            )
        })
        .collect()
}

/// Reads an existing events file so re-ingesting appends without duplicates.
/// Returns its events and whether any is simulated.
fn read_existing(path: &Path) -> Result<Vec<Event>> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(AnalysisError::io(path, e)),
    };
    let mut events = Vec::new();
    for (index, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| AnalysisError::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let event: Event = serde_json::from_str(&line).map_err(|e| AnalysisError::Line {
            path: path.to_path_buf(),
            line: index + 1,
            message: format!("existing events file is not in our format: {e}"),
        })?;
        events.push(event);
    }
    Ok(events)
}

/// Ingests `inputs` into `out` (appending to what `out` already holds).
///
/// Refuses to add real events to a file that holds simulated ones: mixing them
/// would let simulated outcomes pass for observed ones.
pub fn ingest(
    inputs: &[PathBuf],
    format: InputFormat,
    outbox: &Outbox,
    out: &Path,
) -> Result<IngestReport> {
    ingest_checked(inputs, format, outbox, out, &RefuseSigned)
}

/// [`ingest`], with each object's signature checked by `check` first (where it
/// carries one): a refused object is counted in `rejected`, never written.
pub fn ingest_checked(
    inputs: &[PathBuf],
    format: InputFormat,
    outbox: &Outbox,
    out: &Path,
    check: &dyn SignatureCheck,
) -> Result<IngestReport> {
    let mut report = IngestReport::default();
    let existing = read_existing(out)?;
    if existing.iter().any(|e| e.simulated) {
        return Err(AnalysisError::Refused(format!(
            "{} holds simulated events; write real events to another file",
            out.display()
        )));
    }
    let mut seen: HashSet<String> = existing.iter().map(|e| e.event_id.clone()).collect();
    report.kept_from_existing = existing.len();
    let mut events = existing;

    for input in inputs {
        let text = std::fs::read_to_string(input).map_err(|e| AnalysisError::io(input, e))?;
        let file = input.display().to_string();
        for (line, document) in documents(&text) {
            let value = match document {
                Ok(value) => value,
                Err(reason) => {
                    report.malformed(Problem {
                        file: file.clone(),
                        location: format!("line {line}"),
                        reason,
                    });
                    continue;
                }
            };
            for (item, parsed) in parse_document(&value, format) {
                let location = match item {
                    Some(item) => format!("line {line} item {item}"),
                    None => format!("line {line}"),
                };
                report.events_read += 1;
                let raw = match (&value, item) {
                    (Value::Array(items), Some(i)) => items.get(i - 1).unwrap_or(&value),
                    _ => &value,
                };
                if raw.is_object()
                    && let Err(reason) = check.check(raw)
                {
                    report.rejected(Problem {
                        file: file.clone(),
                        location,
                        reason,
                    });
                    continue;
                }
                let event = match parsed {
                    Ok(Parsed::Event(event)) => event,
                    Ok(Parsed::Ignored(kind)) => {
                        *report.ignored.entry(kind).or_default() += 1;
                        continue;
                    }
                    Err(reason) => {
                        report.malformed(Problem {
                            file: file.clone(),
                            location,
                            reason,
                        });
                        continue;
                    }
                };
                let Some(recipient) = outbox.find(&event.message_id) else {
                    report.unmatched(Problem {
                        file: file.clone(),
                        location,
                        reason: format!("message id `{}` is not in the outbox", event.message_id),
                    });
                    continue;
                };
                if !seen.insert(event.event_id.clone()) {
                    report.duplicates += 1;
                    continue;
                }
                let arm = outbox.recipients[recipient as usize].arm;
                *report
                    .by_arm
                    .entry(outbox.arms[usize::from(arm)].clone())
                    .or_default() += 1;
                *report
                    .by_type
                    .entry(event.event_type.as_str().to_string())
                    .or_default() += 1;
                report.written += 1;
                events.push(event);
            }
        }
    }
    write_events(out, &events)?;
    Ok(report)
}

/// Writes events as JSON Lines through a temporary file and a rename, so a crash
/// never leaves a half-written events file behind.
pub fn write_events(out: &Path, events: &[Event]) -> Result<()> {
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| AnalysisError::io(parent, e))?;
    }
    let temporary = out.with_extension("jsonl.tmp");
    let file = std::fs::File::create(&temporary).map_err(|e| AnalysisError::io(&temporary, e))?;
    let mut writer = BufWriter::new(file);
    for event in events {
        serde_json::to_writer(&mut writer, event)
            .map_err(|e| AnalysisError::parse(&temporary, e.to_string()))?;
        writer
            .write_all(b"\n")
            .map_err(|e| AnalysisError::io(&temporary, e))?;
    }
    writer
        .flush()
        .map_err(|e| AnalysisError::io(&temporary, e))?;
    drop(writer);
    std::fs::rename(&temporary, out).map_err(|e| AnalysisError::io(out, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_lines_keep_their_numbers_and_batches_parse_whole() {
        let docs = documents("{\"a\": 1}\n\n{broken\n");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].0, 3);
        assert!(docs[1].1.is_err());
        let batch = documents("[\n  {\"a\": 1},\n  {\"b\": 2}\n]\n");
        assert_eq!(batch.len(), 1);
        assert!(batch[0].1.as_ref().is_ok_and(Value::is_array));
    }
}
