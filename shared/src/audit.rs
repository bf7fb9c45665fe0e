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
mod lazy;
mod verify;

pub use head::{FileHead, HeadStore, SignedHead, head_path};
pub use lazy::LazyFileAuditLog;
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
mod tests;
