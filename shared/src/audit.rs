//! Tamper-evident audit trail: JSONL where each line carries the hash of the
//! previous one, so editing, removing or reordering any line breaks the chain.
//!
//! Line: `{"seq":N,"ts_ms":T,"prev":"<hex>","event":{...},"hash":"<hex>"}` with
//! `hash = sha256(seq | ts_ms | prev | event-json)`, where event-json is the
//! text of the event exactly as it stands in the line: appending writes the
//! bytes it hashed, and `verify` hashes the bytes it reads, so any change to a
//! line, even one a JSON parser would not see, breaks it. A `Value` is written
//! as `serde_json` serializes it (keys sorted). Customer ids in events must
//! already be pseudonymized (`privacy.rs`).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::Mutex;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::envelope::now_ms;

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log io: {0}")]
    Io(#[from] std::io::Error),
    #[error("audit event is not serializable: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("audit log line {line}: {reason}")]
    Broken { line: u64, reason: String },
}

/// Where stages append audit events.
pub trait AuditSink: Send + Sync {
    fn append(&self, event: &serde_json::Value) -> Result<(), AuditError>;

    /// Append several events in order, one line each. A file log takes its
    /// lock once for all of them.
    fn append_batch(&self, events: &[serde_json::Value]) -> Result<(), AuditError> {
        events.iter().try_for_each(|event| self.append(event))
    }

    /// Append one event given as JSON text on one line (a stage that writes
    /// large records builds the text directly rather than a `Value`). A file
    /// log hashes and writes these exact bytes; the default parses them and
    /// calls `append`.
    fn append_json(&self, event_json: &str) -> Result<(), AuditError> {
        self.append(&serde_json::from_str(event_json)?)
    }
}

#[derive(Deserialize)]
struct AuditLine {
    seq: u64,
    ts_ms: u64,
    prev: String,
    /// Only checked to be JSON here: the hash covers its text in the line.
    #[serde(rename = "event")]
    _event: serde::de::IgnoredAny,
    hash: String,
}

/// What stands before and after the event's text in a line.
fn line_frame(seq: u64, ts_ms: u64, prev: &str, hash: &str) -> (String, String) {
    (
        format!(r#"{{"seq":{seq},"ts_ms":{ts_ms},"prev":"{prev}","event":"#),
        format!(r#","hash":"{hash}"}}"#),
    )
}

fn line_hash(seq: u64, ts_ms: u64, prev: &str, event_json: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(seq.to_le_bytes());
    hasher.update(ts_ms.to_le_bytes());
    hasher.update(prev.as_bytes());
    hasher.update(event_json);
    hex::encode(hasher.finalize())
}

struct ChainState {
    writer: BufWriter<File>,
    seq: u64,
    prev: String,
}

/// A hash-chained JSONL file; appends resume the chain of an existing file.
pub struct FileAuditLog {
    state: Mutex<ChainState>,
}

impl FileAuditLog {
    /// Open (or create) the log; an existing log is verified and continued.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        if path.exists() {
            repair_torn_tail(path)?;
        }
        let (seq, prev) = if path.exists() {
            let summary = verify(File::open(path)?)?;
            (summary.lines, summary.last_hash)
        } else {
            (0, GENESIS.to_string())
        };
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            state: Mutex::new(ChainState {
                writer: BufWriter::new(file),
                seq,
                prev,
            }),
        })
    }

    /// Push buffered lines to the file.
    pub fn flush(&self) -> Result<(), AuditError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.writer.flush()?;
        Ok(())
    }
}

impl ChainState {
    /// Write one line and advance the chain. The chain only moves once the
    /// line is in the buffer, so a failed event leaves it where it was.
    fn append(&mut self, event_json: &[u8], ts_ms: u64) -> Result<(), AuditError> {
        let seq = self.seq + 1;
        let hash = line_hash(seq, ts_ms, &self.prev, event_json);
        // prev and hash are hex: nothing needs escaping.
        let (before, after) = line_frame(seq, ts_ms, &self.prev, &hash);
        self.writer.write_all(before.as_bytes())?;
        self.writer.write_all(event_json)?;
        self.writer.write_all(after.as_bytes())?;
        self.writer.write_all(b"\n")?;
        self.seq = seq;
        self.prev = hash;
        Ok(())
    }
}

impl AuditSink for FileAuditLog {
    fn append(&self, event: &serde_json::Value) -> Result<(), AuditError> {
        self.append_batch(std::slice::from_ref(event))
    }

    fn append_batch(&self, events: &[serde_json::Value]) -> Result<(), AuditError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let ts_ms = now_ms();
        events.iter().try_for_each(|event| {
            let event_json = serde_json::to_vec(event)?;
            state.append(&event_json, ts_ms)
        })?;
        // On disk before the caller goes on (publishes, sends): a crash may lose
        // the caller's work, never an audit record of work that went ahead.
        state.writer.flush()?;
        Ok(())
    }

    fn append_json(&self, event_json: &str) -> Result<(), AuditError> {
        // Checked before it is written: a line must stay one line, and
        // `verify` must be able to read it back.
        if event_json.contains('\n') {
            return Err(AuditError::Encode(
                <serde_json::Error as serde::de::Error>::custom(
                    "an audit event must be JSON on one line",
                ),
            ));
        }
        serde_json::from_str::<serde::de::IgnoredAny>(event_json)?;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.append(event_json.as_bytes(), now_ms())?;
        state.writer.flush()?;
        Ok(())
    }
}

/// A process killed mid-write leaves a last line without its newline. That
/// record was never complete (its caller had not gone on), so it is cut off;
/// every complete line is kept and verified as usual.
fn repair_torn_tail(path: &Path) -> Result<(), AuditError> {
    let bytes = std::fs::read(path)?;
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        return Ok(());
    }
    let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    tracing::warn!(
        path = %path.display(),
        torn_bytes = bytes.len() - keep,
        "audit log ends in a torn line from an interrupted write, cutting it"
    );
    OpenOptions::new()
        .write(true)
        .open(path)?
        .set_len(keep as u64)?;
    Ok(())
}

impl Drop for FileAuditLog {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Keeps events in memory (tests, dry runs).
#[derive(Default)]
pub struct MemoryAuditLog {
    pub events: Mutex<Vec<serde_json::Value>>,
}

impl AuditSink for MemoryAuditLog {
    fn append(&self, event: &serde_json::Value) -> Result<(), AuditError> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event.clone());
        Ok(())
    }

    fn append_batch(&self, events: &[serde_json::Value]) -> Result<(), AuditError> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(events);
        Ok(())
    }
}

/// What a successful verification saw.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditSummary {
    pub lines: u64,
    pub last_hash: String,
}

/// Check every line's hash and link; the error names the first bad line (1-based).
pub fn verify(reader: impl Read) -> Result<AuditSummary, AuditError> {
    let mut prev = GENESIS.to_string();
    let mut expected_seq = 1u64;
    for (index, line) in BufReader::new(reader).lines().enumerate() {
        let number = index as u64 + 1;
        let line = line?;
        let broken = |reason: String| AuditError::Broken {
            line: number,
            reason,
        };
        let parsed: AuditLine =
            serde_json::from_str(&line).map_err(|e| broken(format!("not an audit record: {e}")))?;
        if parsed.seq != expected_seq {
            return Err(broken(format!(
                "sequence {} where {} was expected (line removed or reordered)",
                parsed.seq, expected_seq
            )));
        }
        if parsed.prev != prev {
            return Err(broken(
                "does not link to the previous line (line removed or reordered)".into(),
            ));
        }
        let (before, after) = line_frame(parsed.seq, parsed.ts_ms, &parsed.prev, &parsed.hash);
        let event_json = line
            .strip_prefix(&before)
            .and_then(|rest| rest.strip_suffix(&after))
            .ok_or_else(|| broken("not laid out as the log writes lines (line edited)".into()))?;
        let hash = line_hash(
            parsed.seq,
            parsed.ts_ms,
            &parsed.prev,
            event_json.as_bytes(),
        );
        if hash != parsed.hash {
            return Err(broken(
                "content does not match its hash (line edited)".into(),
            ));
        }
        prev = parsed.hash;
        expected_seq += 1;
    }
    Ok(AuditSummary {
        lines: expected_seq - 1,
        last_hash: prev,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn write_log(dir: &Path, n: u64) -> std::path::PathBuf {
        let path = dir.join("audit.jsonl");
        let log = FileAuditLog::open(&path).unwrap();
        for i in 0..n {
            log.append(&json!({"event": "safety_decision", "variant": i, "decision": "approved"}))
                .unwrap();
        }
        log.flush().unwrap();
        path
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    }

    fn verify_lines(lines: &[String]) -> Result<AuditSummary, AuditError> {
        verify(lines.join("\n").as_bytes())
    }

    #[test]
    fn intact_log_verifies_and_reopen_continues_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_log(dir.path(), 3);
        assert_eq!(verify(File::open(&path).unwrap()).unwrap().lines, 3);
        drop(FileAuditLog::open(&path).map(|log| log.append(&json!({"more": 1}))));
        assert_eq!(verify(File::open(&path).unwrap()).unwrap().lines, 4);
    }

    #[test]
    fn edit_removal_and_reorder_name_the_first_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        let original = lines(&write_log(dir.path(), 5));

        let mut edited = original.clone();
        edited[2] = edited[2].replace("approved", "blocked");
        assert!(matches!(
            verify_lines(&edited),
            Err(AuditError::Broken { line: 3, .. })
        ));

        let mut removed = original.clone();
        removed.remove(1);
        assert!(matches!(
            verify_lines(&removed),
            Err(AuditError::Broken { line: 2, .. })
        ));

        let mut reordered = original.clone();
        reordered.swap(3, 4);
        assert!(matches!(
            verify_lines(&reordered),
            Err(AuditError::Broken { line: 4, .. })
        ));
    }

    #[test]
    fn json_text_is_hashed_as_written_and_any_byte_change_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = FileAuditLog::open(&path).unwrap();
        // keys in the writer's order, not sorted: the bytes are what counts
        log.append_json(r#"{"event":"send_batch","sends":[["m1","cust_1"]],"batch_seq":1}"#)
            .unwrap();
        log.append(&json!({"event": "after"})).unwrap();
        assert!(log.append_json("{\"a\":\n1}").is_err(), "two lines");
        assert!(log.append_json(r#"{"a":"#).is_err(), "not JSON");
        log.flush().unwrap();
        let written = lines(&path);
        assert_eq!(written.len(), 2);
        assert!(written[0].contains(
            r#""event":{"event":"send_batch","sends":[["m1","cust_1"]],"batch_seq":1},"hash""#
        ));
        assert_eq!(verify(File::open(&path).unwrap()).unwrap().lines, 2);
        // the same JSON with a space, or keys reordered: still a change
        for edit in [
            written[0].replace(r#""sends":"#, r#""sends": "#),
            written[0].replace(
                r#"{"event":"send_batch","sends":[["m1","cust_1"]],"batch_seq":1}"#,
                r#"{"batch_seq":1,"event":"send_batch","sends":[["m1","cust_1"]]}"#,
            ),
            written[0].replace("cust_1", "cust_2"),
        ] {
            assert_ne!(edit, written[0]);
            let edited = vec![edit, written[1].clone()];
            assert!(matches!(
                verify_lines(&edited),
                Err(AuditError::Broken { line: 1, .. })
            ));
        }
        // a memory log reads the text back as a value
        let memory = MemoryAuditLog::default();
        memory.append_json(r#"{"b":1,"a":[true]}"#).unwrap();
        assert_eq!(
            memory.events.lock().unwrap()[0],
            json!({"a": [true], "b": 1})
        );
    }

    #[test]
    fn batches_chain_like_single_appends_and_lines_keep_their_layout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = FileAuditLog::open(&path).unwrap();
        log.append(&json!({"event": "first"})).unwrap();
        let batch: Vec<_> = (0..3)
            .map(|i| json!({"z": i, "event": "send", "a": [1.5, "x\"y\n"]}))
            .collect();
        log.append_batch(&batch).unwrap();
        log.append_batch(&[]).unwrap();
        log.flush().unwrap();
        let written = lines(&path);
        assert_eq!(written.len(), 4);
        assert_eq!(verify(File::open(&path).unwrap()).unwrap().lines, 4);
        // each line is the serialization of its fields in this order, the
        // event with sorted keys: what `verify` re-serializes and hashes
        let line: serde_json::Value = serde_json::from_str(&written[2]).unwrap();
        let expected = format!(
            r#"{{"seq":3,"ts_ms":{},"prev":"{}","event":{},"hash":"{}"}}"#,
            line["ts_ms"],
            line["prev"].as_str().unwrap(),
            serde_json::to_string(&batch[1]).unwrap(),
            line["hash"].as_str().unwrap()
        );
        assert_eq!(written[2], expected);
        assert!(written[2].contains(r#""event":{"a":[1.5,"x\"y\n"],"event":"send","z":1}"#));

        let mut edited = written.clone();
        edited[3] = edited[3].replace(r#""z":2"#, r#""z":7"#);
        assert!(matches!(
            verify_lines(&edited),
            Err(AuditError::Broken { line: 4, .. })
        ));
    }
}
