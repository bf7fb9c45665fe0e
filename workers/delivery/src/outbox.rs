//! The JSONL file outbox, the `outbox` sink (`delivery.sink: outbox`, the
//! default of `cpo run`): a `MailSink` that writes one JSON line per email,
//! with its text and HTML parts and its assignment, instead of mailing it.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::json_text;
use crate::sink::{MailSink, MessageMeta, OutgoingEmail, SendOutcome};

/// One outbox line, borrowed from the batch and the rendered text. It encodes
/// exactly like `cpo_shared::model::OutboxRecord` (a test checks it).
#[derive(Debug, Clone, Serialize)]
pub struct OutboxEntry<'a> {
    pub message_id: &'a str,
    pub campaign_id: &'a str,
    pub customer_id: &'a str,
    pub segment: &'a str,
    pub arm: &'a str,
    pub variant_id: &'a str,
    pub to: &'a str,
    pub subject: &'a str,
    /// The text part.
    pub body: &'a str,
    /// The HTML part.
    pub html: &'a str,
    pub citations: &'a [String],
    pub fallback: Option<&'a str>,
}

impl OutboxEntry<'_> {
    /// Append the entry as one JSON object: the bytes serde writes for it (a
    /// test holds them equal), with the keys written as constants rather than
    /// escaped one by one.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let fields = [
            (&br#"{"message_id":""#[..], self.message_id),
            (br#"","campaign_id":""#, self.campaign_id),
            (br#"","customer_id":""#, self.customer_id),
            (br#"","segment":""#, self.segment),
            (br#"","arm":""#, self.arm),
            (br#"","variant_id":""#, self.variant_id),
            (br#"","to":""#, self.to),
            (br#"","subject":""#, self.subject),
            (br#"","body":""#, self.body),
            (br#"","html":""#, self.html),
        ];
        for (key, value) in fields {
            out.extend_from_slice(key);
            out.extend_from_slice(json_text::escape(value).as_bytes());
        }
        out.extend_from_slice(br#"","citations":["#);
        for (i, citation) in self.citations.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(json_text::escape(citation).as_bytes());
            out.push(b'"');
        }
        out.extend_from_slice(br#"],"fallback":"#);
        match self.fallback {
            Some(fallback) => {
                out.push(b'"');
                out.extend_from_slice(json_text::escape(fallback).as_bytes());
                out.push(b'"');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("outbox io: {0}")]
    Io(#[from] io::Error),
    #[error("outbox record is not serializable: {0}")]
    Encode(#[from] serde_json::Error),
}

/// The 128-bit key a written message id is remembered by: 1M ids take ~32 MB
/// as keys where the strings would take ~100 MB. Ids of the usual
/// `msg-<32 hex>` form map to their own bits; others to 128 bits of SHA-256.
fn id_key(message_id: &str) -> u128 {
    if let Some(hex) = message_id.strip_prefix("msg-")
        && hex.len() == 32
        && let Ok(bits) = u128::from_str_radix(hex, 16)
    {
        return bits;
    }
    let digest = Sha256::digest(message_id.as_bytes());
    let mut head = [0u8; 16];
    head.copy_from_slice(&digest[..16]);
    u128::from_be_bytes(head)
}

/// Hashes an id key with one folded multiply. The keys are already uniform
/// (hex of SHA-256 bits, or SHA-256 itself), so SipHash's work buys nothing;
/// at a million ids the table is touched on every write.
#[derive(Default)]
struct IdKeyHasher(u64);

impl Hasher for IdKeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        let product =
            u128::from(self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
        self.0 = (product as u64) ^ ((product >> 64) as u64);
    }

    fn write_u128(&mut self, n: u128) {
        self.write_u64(n as u64);
        self.write_u64((n >> 64) as u64);
    }
}

type IdSet = HashSet<u128, BuildHasherDefault<IdKeyHasher>>;

struct OutboxState {
    file: File,
    /// Bytes of whole lines in the file; a failed write is cut back to it.
    len: u64,
    written: IdSet,
    buffer: Vec<u8>,
}

/// Appends `OutboxRecord`s as JSON lines: one buffered write and flush per
/// batch, its lines sorted by message id, and never the same message id twice
/// within the process.
pub struct FileOutbox {
    path: PathBuf,
    state: Mutex<OutboxState>,
}

#[derive(Deserialize)]
struct IdOnly<'a> {
    #[serde(borrow)]
    message_id: std::borrow::Cow<'a, str>,
}

impl FileOutbox {
    /// A new, empty outbox (an existing file is truncated).
    pub fn create(path: &Path) -> io::Result<Self> {
        File::create(path)?;
        // Append mode: after a failed write is cut back, the next one lands at the new end.
        let file = OpenOptions::new().append(true).open(path)?;
        Ok(Self::with(path, file, 0, IdSet::default()))
    }

    /// Append to an existing outbox (or create it), remembering the message ids
    /// it already holds so a resumed run does not write them again.
    pub fn open(path: &Path) -> io::Result<Self> {
        let mut written = IdSet::default();
        if path.exists() {
            let mut reader = BufReader::new(File::open(path)?);
            let mut line = String::new();
            let mut number = 0u64;
            while reader.read_line(&mut line)? > 0 {
                number += 1;
                if !line.trim().is_empty() {
                    let record: IdOnly<'_> = serde_json::from_str(&line).map_err(|e| {
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("outbox line {number}: {e}"),
                        )
                    })?;
                    written.insert(id_key(&record.message_id));
                }
                line.clear();
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let len = file.metadata()?.len();
        Ok(Self::with(path, file, len, written))
    }

    fn with(path: &Path, file: File, len: u64, written: IdSet) -> Self {
        Self {
            path: path.to_path_buf(),
            state: Mutex::new(OutboxState {
                file,
                len,
                written,
                buffer: Vec::new(),
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write synchronously; the file write of one batch is short, and keeping
    /// it under the lock keeps lines of concurrent batches whole.
    pub fn write_entries(&self, entries: &[OutboxEntry<'_>]) -> Result<usize, SinkError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let state = &mut *state;
        let mut fresh = Vec::with_capacity(entries.len());
        let result = Self::append(state, entries, &mut fresh);
        if result.is_err() {
            // Forget what was not stored, so a retried batch writes it.
            for key in &fresh {
                state.written.remove(key);
            }
        }
        result
    }

    fn append(
        state: &mut OutboxState,
        entries: &[OutboxEntry<'_>],
        fresh: &mut Vec<u128>,
    ) -> Result<usize, SinkError> {
        let mut unwritten: Vec<&OutboxEntry<'_>> = Vec::with_capacity(entries.len());
        for entry in entries {
            let key = id_key(entry.message_id);
            // Claimed now so a repeat inside this batch is skipped too.
            if state.written.insert(key) {
                fresh.push(key);
                unwritten.push(entry);
            }
        }
        if unwritten.is_empty() {
            return Ok(0);
        }
        // Each batch is written as a run sorted by id: the canonical sort then
        // merges runs instead of sorting the whole file.
        unwritten.sort_unstable_by(|a, b| a.message_id.cmp(b.message_id));
        state.buffer.clear();
        for entry in &unwritten {
            entry.write_json(&mut state.buffer);
            state.buffer.push(b'\n');
        }
        let written = state
            .file
            .write_all(&state.buffer)
            .and_then(|()| state.file.flush());
        if let Err(e) = written {
            // A half-written batch would leave a torn line and, after the retry, duplicates.
            let _ = state.file.set_len(state.len);
            return Err(e.into());
        }
        state.len += state.buffer.len() as u64;
        Ok(unwritten.len())
    }
}

const NO_CITATIONS: &[String] = &[];

/// The outbox line of `email` with its assignment.
pub fn entry<'a>(email: &'a OutgoingEmail, meta: &MessageMeta<'a>) -> OutboxEntry<'a> {
    OutboxEntry {
        message_id: &email.message_id,
        campaign_id: &email.campaign_id,
        customer_id: &email.customer_id,
        segment: meta.segment,
        arm: meta.arm,
        variant_id: meta.variant_id,
        to: &email.to.address,
        subject: &email.subject,
        body: &email.text,
        html: &email.html,
        citations: meta.citations,
        fallback: meta.fallback,
    }
}

#[async_trait]
impl MailSink for FileOutbox {
    fn name(&self) -> &'static str {
        "outbox"
    }

    /// A file write takes any batch; the stage's batches are customer batches.
    fn max_batch(&self) -> usize {
        usize::MAX
    }

    /// Without assignments (a caller other than the stage): empty segment and arm.
    async fn send(&self, emails: &[OutgoingEmail]) -> Vec<SendOutcome> {
        let meta = MessageMeta {
            segment: "",
            arm: "",
            variant_id: "",
            citations: NO_CITATIONS,
            fallback: None,
        };
        let metas = vec![meta; emails.len()];
        self.send_with_meta(emails, &metas).await
    }

    async fn send_with_meta(
        &self,
        emails: &[OutgoingEmail],
        meta: &[MessageMeta<'_>],
    ) -> Vec<SendOutcome> {
        let entries: Vec<OutboxEntry<'_>> = emails
            .iter()
            .zip(meta)
            .map(|(email, meta)| entry(email, meta))
            .collect();
        match self.write_entries(&entries) {
            // An id written before (a retried batch) is in the file already: sent too.
            Ok(_) => emails
                .iter()
                .map(|email| SendOutcome::Sent {
                    provider_message_id: email.message_id.clone(),
                })
                .collect(),
            Err(e) => emails
                .iter()
                .map(|_| SendOutcome::Retry {
                    after: None,
                    reason: e.to_string(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use cpo_shared::model::OutboxRecord;

    use super::*;

    const SUBJECT: &str = "Hi \"Ada\"";
    const BODY: &str = "Line 1\nLine 2 [doc-1]";

    fn entry<'a>(id: &'a str, cites: &'a [String]) -> OutboxEntry<'a> {
        OutboxEntry {
            message_id: id,
            campaign_id: "camp-1",
            customer_id: "C1",
            segment: "loyal",
            arm: "urgent",
            variant_id: "v-loyal-control",
            to: "ada@example.com",
            subject: SUBJECT,
            body: BODY,
            html: "<p>Line 1</p>",
            citations: cites,
            fallback: Some("urgent variant blocked: x"),
        }
    }

    #[test]
    fn entry_encodes_exactly_like_the_model_record() {
        let cites = vec!["doc-1".to_string()];
        let bytes = serde_json::to_vec(&entry("msg-1", &cites)).unwrap();
        let record: OutboxRecord = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(serde_json::to_vec(&record).unwrap(), bytes);
        assert_eq!(
            record.fallback.as_deref(),
            Some("urgent variant blocked: x")
        );
        assert_eq!(record.subject, "Hi \"Ada\"");
        assert_eq!(record.body, "Line 1\nLine 2 [doc-1]");
        assert_eq!(record.html, "<p>Line 1</p>");
    }

    #[test]
    fn hand_written_json_equals_serde() {
        let cites = vec!["doc-1".to_string(), "d\"2".to_string()];
        let body = "tab\there \u{1} \u{7f} quote\" back\\slash \u{2028} é 🦀\r\n";
        let mut tricky = entry("msg-1", &cites);
        tricky.body = body;
        tricky.html = "<a href=\"x\">\u{1}</a>";
        tricky.to = "a@b.c";
        tricky.segment = "seg \"q\" \\ \u{1}";
        tricky.fallback = Some("line\nbreak \u{1f}");
        let no_citations: [String; 0] = [];
        let mut bare = entry("msg-2", &no_citations);
        bare.fallback = None;
        for e in [entry("msg-0", &cites), tricky, bare] {
            let mut hand = Vec::new();
            e.write_json(&mut hand);
            assert_eq!(
                String::from_utf8(hand).unwrap(),
                serde_json::to_string(&e).unwrap()
            );
        }
    }

    #[test]
    fn ids_are_written_once_per_process_and_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.jsonl");
        let cites = vec!["doc-1".to_string()];
        let a = "msg-0123456789abcdef0123456789abcdef";
        let outbox = FileOutbox::create(&path).unwrap();
        assert_eq!(
            outbox
                .write_entries(&[
                    entry(a, &cites),
                    entry("other-id", &cites),
                    entry(a, &cites)
                ])
                .unwrap(),
            2
        );
        assert_eq!(outbox.write_entries(&[entry(a, &cites)]).unwrap(), 0);
        drop(outbox);
        let reopened = FileOutbox::open(&path).unwrap();
        assert_eq!(
            reopened
                .write_entries(&[entry("other-id", &cites), entry("third", &cites)])
                .unwrap(),
            1
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(text.ends_with('\n'));
        assert_ne!(id_key(a), id_key("msg-0123456789abcdef0123456789abcdee"));
        assert_ne!(id_key("x"), id_key("y"));
    }

    #[test]
    fn reopening_a_corrupt_outbox_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.jsonl");
        std::fs::write(&path, "{\"message_id\":\"a\"}\nnot json\n").unwrap();
        let err = FileOutbox::open(&path).err().unwrap();
        assert!(err.to_string().contains("line 2"), "{err}");
    }
}
