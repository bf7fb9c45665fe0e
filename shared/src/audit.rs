//! Tamper-evident audit trail: JSONL where each line carries the MAC of the
//! previous one, so editing, removing or reordering any line breaks the chain,
//! and a signed head kept outside the log records how long it was.
//!
//! Line: `{"seq":N,"ts_ms":T,"prev":"<hex>","event":{...},"hash":"<hex>"}` with
//! `hash = HMAC-SHA256(audit key, seq | ts_ms | prev | event-json)`, where
//! event-json is the text of the event exactly as it stands in the line:
//! appending writes the bytes it MACed, and `verify` MACs the bytes it reads,
//! so any change to a line, even one a JSON parser would not see, breaks it.
//! Keyed, because a plain hash can be recomputed by whoever edits the log: a
//! forged line, or a whole rewritten log, would verify. A `Value` is written as
//! `serde_json` serializes it (keys sorted). Customer ids in events must
//! already be pseudonymized (`privacy.rs`).
//!
//! The chain cannot show that its last lines were cut off, so at every flush
//! the log stores its head (line count and last hash, signed with the same
//! key) in a `HeadStore`: a file beside the log in `cpo run`, Redis in the
//! fleet. `verify` given the head fails on a shorter log or another last line.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::envelope::now_ms;

mod head;
mod verify;

pub use head::{FileHead, HeadStore, SignedHead, head_path};
use verify::line_hash;
pub use verify::{AuditSummary, verify};

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log io: {0}")]
    Io(#[from] std::io::Error),
    #[error("audit event is not serializable: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("audit log line {line}: {reason}")]
    Broken { line: u64, reason: String },
    #[error("audit head: {0}")]
    Head(String),
    /// The head store cannot be reached (Redis down): worth waiting for.
    #[error("audit head store unavailable: {0}")]
    Unavailable(String),
}

/// How a stage reports a failed append: a head store that is down pauses the
/// message like any dependency outage (without using up its attempts); any
/// other failure is retried.
impl From<AuditError> for crate::stage::StageError {
    fn from(error: AuditError) -> Self {
        match error {
            AuditError::Unavailable(_) => Self::Unavailable(format!("audit: {error}")),
            other => Self::Transient(format!("audit: {other}")),
        }
    }
}

/// The secret the chain and its head are MACed with (`security.audit_key`).
#[derive(Clone)]
pub struct AuditKey(Vec<u8>);

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.write_str("AuditKey(..)")
    }
}

impl AuditKey {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    fn mac(&self, parts: &[&[u8]]) -> HmacSha256 {
        // HMAC takes a key of any length: this cannot fail.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("hmac accepts any key length"));
        for part in parts {
            mac.update(part);
        }
        mac
    }

    fn mac_hex(&self, parts: &[&[u8]]) -> String {
        hex::encode(self.mac(parts).finalize().into_bytes())
    }

    /// Constant-time check of a hex MAC over `message`.
    fn verify(&self, message: &[u8], mac_hex: &[u8]) -> bool {
        hex::decode(mac_hex).is_ok_and(|mac| self.mac(&[message]).verify_slice(&mac).is_ok())
    }
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
    /// log MACs and writes these exact bytes; the default parses them and
    /// calls `append`.
    fn append_json(&self, event_json: &str) -> Result<(), AuditError> {
        self.append(&serde_json::from_str(event_json)?)
    }
}

struct ChainState {
    writer: BufWriter<File>,
    seq: u64,
    prev: String,
}

/// A MAC-chained JSONL file with its head; appends resume the chain of an
/// existing file.
pub struct FileAuditLog {
    state: Mutex<ChainState>,
    key: AuditKey,
    head: Box<dyn HeadStore>,
}

impl FileAuditLog {
    /// Open (or create) the log. An existing log is verified against its head
    /// and continued; one with lines but no head, or that does not match its
    /// head, is refused (it cannot be shown complete).
    pub fn open(path: &Path, key: AuditKey, head: Box<dyn HeadStore>) -> Result<Self, AuditError> {
        if path.exists() {
            repair_torn_tail(path)?;
        }
        let stored = head.load()?;
        let (seq, prev) = if path.exists() {
            let summary = verify(File::open(path)?, &key, stored.as_ref())?;
            if stored.is_none() && summary.lines > 0 {
                return Err(AuditError::Head(format!(
                    "{} has {} lines but no head at {}: it cannot be shown complete (move it aside to start a new log)",
                    path.display(),
                    summary.lines,
                    head.describe()
                )));
            }
            (summary.lines, summary.last_hash)
        } else {
            (0, GENESIS.to_string())
        };
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let log = Self {
            state: Mutex::new(ChainState {
                writer: BufWriter::new(file),
                seq,
                prev,
            }),
            key,
            head,
        };
        // Lines an interrupted process wrote after its last head update verified: count them.
        log.flush()?;
        Ok(log)
    }

    /// Push buffered lines to the file, then store the head that counts them.
    pub fn flush(&self) -> Result<(), AuditError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        self.flush_state(&mut state)
    }

    /// The lines first, the head after: a head never counts a line that is not on disk.
    fn flush_state(&self, state: &mut ChainState) -> Result<(), AuditError> {
        state.writer.flush()?;
        self.head
            .store(&SignedHead::sign(&self.key, state.seq, &state.prev))
    }
}

impl ChainState {
    /// Write one line and advance the chain. The chain only moves once the
    /// line is in the buffer, so a failed event leaves it where it was.
    fn append(&mut self, key: &AuditKey, event_json: &[u8], ts_ms: u64) -> Result<(), AuditError> {
        let seq = self.seq + 1;
        let hash = line_hash(key, seq, ts_ms, &self.prev, event_json);
        // prev and hash are hex: nothing needs escaping.
        let (before, after) = verify::line_frame(seq, ts_ms, &self.prev, &hash);
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
            state.append(&self.key, &event_json, ts_ms)
        })?;
        // On disk before the caller goes on (publishes, sends): a crash may lose
        // the caller's work, never an audit record of work that went ahead.
        self.flush_state(&mut state)
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
        state.append(&self.key, event_json.as_bytes(), now_ms())?;
        self.flush_state(&mut state)
    }
}

/// A `FileAuditLog` opened on first use. A fleet worker of a stage that never
/// audits needs neither the file nor its head store, and one that does meets
/// a head store that is down as a failed append (which waits) rather than as
/// a worker that cannot start.
pub struct LazyFileAuditLog {
    path: std::path::PathBuf,
    key: AuditKey,
    head: std::sync::Arc<dyn HeadStore>,
    log: std::sync::OnceLock<FileAuditLog>,
    opening: Mutex<()>,
}

/// A shared head store handed to each attempt to open the log.
struct SharedHead(std::sync::Arc<dyn HeadStore>);

impl HeadStore for SharedHead {
    fn load(&self) -> Result<Option<SignedHead>, AuditError> {
        self.0.load()
    }
    fn store(&self, head: &SignedHead) -> Result<(), AuditError> {
        self.0.store(head)
    }
    fn describe(&self) -> String {
        self.0.describe()
    }
}

impl LazyFileAuditLog {
    pub fn new(
        path: std::path::PathBuf,
        key: AuditKey,
        head: std::sync::Arc<dyn HeadStore>,
    ) -> Self {
        Self {
            path,
            key,
            head,
            log: std::sync::OnceLock::new(),
            opening: Mutex::new(()),
        }
    }

    fn log(&self) -> Result<&FileAuditLog, AuditError> {
        if let Some(log) = self.log.get() {
            return Ok(log);
        }
        // One opener at a time: two would both verify and continue the chain.
        let _opening = self.opening.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(log) = self.log.get() {
            return Ok(log);
        }
        let log = FileAuditLog::open(
            &self.path,
            self.key.clone(),
            Box::new(SharedHead(self.head.clone())),
        )?;
        Ok(self.log.get_or_init(|| log))
    }

    /// Open the log now (a worker at startup, to refuse a log that does not
    /// verify before consuming anything).
    pub fn open_now(&self) -> Result<(), AuditError> {
        self.log().map(|_| ())
    }

    /// Flush the log if it was ever opened.
    pub fn flush(&self) -> Result<(), AuditError> {
        self.log.get().map_or(Ok(()), FileAuditLog::flush)
    }
}

impl AuditSink for LazyFileAuditLog {
    fn append(&self, event: &serde_json::Value) -> Result<(), AuditError> {
        self.log()?.append(event)
    }
    fn append_batch(&self, events: &[serde_json::Value]) -> Result<(), AuditError> {
        self.log()?.append_batch(events)
    }
    fn append_json(&self, event_json: &str) -> Result<(), AuditError> {
        self.log()?.append_json(event_json)
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> AuditKey {
        AuditKey::new(b"test audit key".to_vec())
    }

    fn open(path: &Path) -> FileAuditLog {
        FileAuditLog::open(path, key(), Box::new(FileHead::beside(path))).unwrap()
    }

    fn head_of(path: &Path) -> SignedHead {
        FileHead::beside(path).load().unwrap().unwrap()
    }

    fn write_log(dir: &Path, n: u64) -> std::path::PathBuf {
        let path = dir.join("audit.jsonl");
        let log = open(&path);
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
        verify(lines.join("\n").as_bytes(), &key(), None)
    }

    #[test]
    fn intact_log_verifies_and_reopen_continues_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_log(dir.path(), 3);
        assert_eq!(
            verify(File::open(&path).unwrap(), &key(), Some(&head_of(&path)))
                .unwrap()
                .lines,
            3
        );
        open(&path).append(&json!({"more": 1})).unwrap();
        assert_eq!(
            verify(File::open(&path).unwrap(), &key(), Some(&head_of(&path)))
                .unwrap()
                .lines,
            4
        );
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
        let log = open(&path);
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
        assert_eq!(
            verify(File::open(&path).unwrap(), &key(), Some(&head_of(&path)))
                .unwrap()
                .lines,
            2
        );
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
        let log = open(&path);
        log.append(&json!({"event": "first"})).unwrap();
        let batch: Vec<_> = (0..3)
            .map(|i| json!({"z": i, "event": "send", "a": [1.5, "x\"y\n"]}))
            .collect();
        log.append_batch(&batch).unwrap();
        log.append_batch(&[]).unwrap();
        log.flush().unwrap();
        let written = lines(&path);
        assert_eq!(written.len(), 4);
        assert_eq!(
            verify(File::open(&path).unwrap(), &key(), Some(&head_of(&path)))
                .unwrap()
                .lines,
            4
        );
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

    #[test]
    fn forged_lines_rewritten_logs_and_cut_tails_fail() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_log(dir.path(), 4);
        let original = lines(&path);
        let head = head_of(&path);
        assert_eq!(head.lines, 4);
        // the same log written with another key: every line recomputed, none verifies
        let other = dir.path().join("other.jsonl");
        let forger = FileAuditLog::open(
            &other,
            AuditKey::new(b"guess".to_vec()),
            Box::new(FileHead::beside(&other)),
        )
        .unwrap();
        for i in 0..4 {
            forger
                .append(&json!({"event": "safety_decision", "variant": i, "decision": "approved"}))
                .unwrap();
        }
        drop(forger);
        assert!(matches!(
            verify(File::open(&other).unwrap(), &key(), Some(&head)),
            Err(AuditError::Broken { line: 1, .. })
        ));
        // cut after line 2: the chain is whole, the head says 4
        let cut = original[..2].join("\n");
        let err = verify(cut.as_bytes(), &key(), Some(&head)).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        // a head signed with another key, or edited
        let mut edited = head.clone();
        edited.lines = 2;
        assert!(matches!(
            verify(cut.as_bytes(), &key(), Some(&edited)),
            Err(AuditError::Head(_))
        ));
        // lines written after the last head update (an interrupted process) verify
        let older = SignedHead::sign(
            &key(),
            3,
            original[2]
                .split("\"hash\":\"")
                .nth(1)
                .unwrap()
                .trim_end_matches("\"}"),
        );
        let summary = verify(File::open(&path).unwrap(), &key(), Some(&older)).unwrap();
        assert_eq!((summary.lines, summary.after_head), (4, 1));
        // a head that signed another line 3
        let wrong = SignedHead::sign(&key(), 3, GENESIS);
        let err = verify(File::open(&path).unwrap(), &key(), Some(&wrong)).unwrap_err();
        assert!(err.to_string().contains("rewritten"), "{err}");
    }

    #[test]
    fn a_log_without_its_head_or_shorter_than_it_is_not_continued() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_log(dir.path(), 3);
        let kept = std::fs::read_to_string(&path).unwrap();
        let cut: String = kept.lines().take(2).map(|l| format!("{l}\n")).collect();
        std::fs::write(&path, cut).unwrap();
        let refused = FileAuditLog::open(&path, key(), Box::new(FileHead::beside(&path)));
        assert!(matches!(refused, Err(AuditError::Head(_))));
        std::fs::write(&path, &kept).unwrap();
        std::fs::remove_file(head_path(&path)).unwrap();
        let refused = FileAuditLog::open(&path, key(), Box::new(FileHead::beside(&path)));
        assert!(matches!(refused, Err(AuditError::Head(_))));
        assert_eq!(head_path(&path), dir.path().join("audit.head.json"));
    }
}
