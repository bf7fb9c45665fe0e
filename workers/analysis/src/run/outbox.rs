//! The run's outbox (`outbox.jsonl`): who got which message, in which arm and
//! segment. Events reference messages; the outbox maps them to customers.

use std::borrow::Cow;
use std::path::Path;

use foldhash::HashMap as FastMap;
use serde::Deserialize;

use super::message_index::MessageIndex;
use crate::error::{AnalysisError, Result};
use crate::parallel::{line_number, lines, map_chunks, read_blocks};

/// The arm every treatment is compared against.
pub const CONTROL_ARM: &str = "control";

/// Only the fields the analysis needs; others (subject, body, citations) are
/// skipped so that additions to the outbox never break us.
#[derive(Deserialize)]
struct OutboxRow<'a> {
    #[serde(borrow)]
    message_id: Cow<'a, str>,
    #[serde(borrow)]
    customer_id: Cow<'a, str>,
    #[serde(borrow, default)]
    segment: Option<Cow<'a, str>>,
    #[serde(borrow)]
    arm: Cow<'a, str>,
    #[serde(default)]
    fallback: Option<serde::de::IgnoredAny>,
}

/// One message (one customer) of the campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recipient {
    /// Index into [`Outbox::arms`].
    pub arm: u16,
    /// Index into [`Outbox::segments`].
    pub segment: u16,
    /// The customer received a fallback message instead of their arm's variant.
    pub fallback: bool,
}

/// Many short strings in one buffer: a million customer ids without a million
/// allocations.
#[derive(Debug, Default, Clone)]
pub struct StringTable {
    text: String,
    ends: Vec<usize>,
}

impl StringTable {
    pub fn push(&mut self, value: &str) {
        self.text.push_str(value);
        self.ends.push(self.text.len());
    }

    /// Appends all of `other`'s strings, in order.
    pub fn append(&mut self, other: &StringTable) {
        let base = self.text.len();
        self.text.push_str(&other.text);
        self.ends.extend(other.ends.iter().map(|end| end + base));
    }

    pub fn get(&self, index: usize) -> &str {
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        &self.text[start..self.ends[index]]
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        (0..self.len()).map(|i| self.get(i))
    }
}

/// The outbox, interned for joins over millions of events.
#[derive(Debug, Default)]
pub struct Outbox {
    pub arms: Vec<String>,
    pub segments: Vec<String>,
    pub recipients: Vec<Recipient>,
    pub customer_ids: StringTable,
    message_index: MessageIndex,
    /// Rows repeating a message id already seen; the first one counts.
    pub duplicate_rows: usize,
}

fn intern(names: &mut Vec<String>, lookup: &mut FastMap<String, u16>, name: &str) -> Result<u16> {
    // A campaign has a handful of arms and segments: a scan beats hashing.
    if names.len() <= 16 {
        if let Some(index) = names.iter().position(|n| n == name) {
            return Ok(index as u16);
        }
    } else if let Some(&index) = lookup.get(name) {
        return Ok(index);
    }
    let index = u16::try_from(names.len())
        .map_err(|_| AnalysisError::Refused("more than 65535 distinct arms or segments".into()))?;
    names.push(name.to_string());
    lookup.insert(name.to_string(), index);
    Ok(index)
}

/// One line-aligned chunk, parsed and interned on its worker thread while its
/// bytes are still in cache; arm and segment numbers are local to the chunk.
#[derive(Default)]
struct ChunkOutbox {
    message_ids: StringTable,
    customer_ids: StringTable,
    arms: Vec<String>,
    segments: Vec<String>,
    recipients: Vec<Recipient>,
    newlines: usize,
}

/// Parses one chunk; errors carry the byte offset of their line.
fn parse_chunk(offset: usize, chunk: &[u8]) -> std::result::Result<ChunkOutbox, (usize, String)> {
    let mut parsed = ChunkOutbox::default();
    let (mut arm_lookup, mut segment_lookup) = (FastMap::default(), FastMap::default());
    for (start, line) in lines(chunk) {
        parsed.newlines += usize::from(start + line.len() < chunk.len());
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let row: OutboxRow = serde_json::from_slice(line)
            .map_err(|e| (offset + start, format!("malformed outbox row: {e}")))?;
        let interned = intern(&mut parsed.arms, &mut arm_lookup, row.arm.trim()).and_then(|arm| {
            let segment = row.segment.as_deref().unwrap_or("(none)");
            Ok((
                arm,
                intern(&mut parsed.segments, &mut segment_lookup, segment)?,
            ))
        });
        let (arm, segment) = interned.map_err(|e| (offset + start, e.to_string()))?;
        parsed.message_ids.push(&row.message_id);
        parsed.customer_ids.push(&row.customer_id);
        parsed.recipients.push(Recipient {
            arm,
            segment,
            fallback: row.fallback.is_some(),
        });
    }
    Ok(parsed)
}

/// Bytes read and parsed at a time: big enough to keep every core busy, small
/// enough that a multi-gigabyte outbox never sits in memory whole.
pub(crate) const BLOCK: usize = 32 << 20;

/// Accumulates the outbox block by block; the message index is built once at
/// the end, when all ids are known.
#[derive(Default)]
struct Builder {
    outbox: Outbox,
    message_ids: StringTable,
    arm_lookup: FastMap<String, u16>,
    segment_lookup: FastMap<String, u16>,
    lines_before: usize,
}

impl Builder {
    /// Parses a block of whole lines (in parallel) and merges it in file order.
    fn add_block(&mut self, path: &Path, block: &[u8]) -> Result<()> {
        let chunks = map_chunks(block, parse_chunk);
        let outbox = &mut self.outbox;
        for chunk in chunks {
            let parsed = chunk.map_err(|(offset, message)| AnalysisError::Line {
                path: path.to_path_buf(),
                line: self.lines_before + line_number(block, offset),
                message,
            })?;
            if outbox.recipients.len() + parsed.recipients.len() >= u32::MAX as usize {
                return Err(AnalysisError::Refused(
                    "more than 4 billion messages".into(),
                ));
            }
            let arms = parsed
                .arms
                .iter()
                .map(|name| intern(&mut outbox.arms, &mut self.arm_lookup, name))
                .collect::<Result<Vec<u16>>>()?;
            let segments = parsed
                .segments
                .iter()
                .map(|name| intern(&mut outbox.segments, &mut self.segment_lookup, name))
                .collect::<Result<Vec<u16>>>()?;
            outbox
                .recipients
                .extend(parsed.recipients.iter().map(|r| Recipient {
                    arm: arms[usize::from(r.arm)],
                    segment: segments[usize::from(r.segment)],
                    fallback: r.fallback,
                }));
            self.message_ids.append(&parsed.message_ids);
            outbox.customer_ids.append(&parsed.customer_ids);
            self.lines_before += parsed.newlines;
        }
        Ok(())
    }

    fn finish(self, path: &Path) -> Result<Outbox> {
        let mut outbox = self.outbox;
        if outbox.recipients.is_empty() {
            return Err(AnalysisError::parse(path, "the outbox has no messages"));
        }
        let (index, duplicates) = MessageIndex::build(self.message_ids);
        if duplicates.is_empty() {
            outbox.message_index = index;
            return Ok(outbox);
        }
        // Rare: a message id repeats. The first row counts; drop the others and
        // index again so recipient numbers stay dense.
        outbox.duplicate_rows = duplicates.len();
        let mut drop = duplicates.into_iter().peekable();
        let mut message_ids = StringTable::default();
        let mut customer_ids = StringTable::default();
        let mut recipients = Vec::with_capacity(outbox.recipients.len());
        for (row, recipient) in outbox.recipients.iter().enumerate() {
            if drop.peek() == Some(&row) {
                drop.next();
                continue;
            }
            message_ids.push(index.id(row));
            customer_ids.push(outbox.customer_ids.get(row));
            recipients.push(*recipient);
        }
        outbox.recipients = recipients;
        outbox.customer_ids = customer_ids;
        outbox.message_index = MessageIndex::build(message_ids).0;
        Ok(outbox)
    }
}

impl Outbox {
    /// Reads `outbox.jsonl` block by block; a malformed row is an error naming its
    /// line, because skipping it would silently drop a customer from the experiment.
    pub fn load(path: &Path) -> Result<Outbox> {
        Outbox::load_in_blocks(path, BLOCK)
    }

    fn load_in_blocks(path: &Path, block: usize) -> Result<Outbox> {
        let mut builder = Builder::default();
        read_blocks(path, block, |bytes, file_len| {
            // Size the tables once from the first block's row density.
            if builder.outbox.recipients.is_empty() && !bytes.is_empty() {
                let rows_here = memchr::memchr_iter(b'\n', bytes).count().max(1);
                let estimate =
                    (file_len as f64 / bytes.len() as f64 * rows_here as f64 * 1.05) as usize;
                builder.outbox.recipients.reserve(estimate);
            }
            builder.add_block(path, bytes)
        })?;
        builder.finish(path)
    }

    /// Parses an outbox already in memory.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Outbox> {
        let mut builder = Builder::default();
        builder.add_block(path, bytes)?;
        builder.finish(path)
    }

    /// The message id of recipient `index`.
    pub fn message_id(&self, index: usize) -> &str {
        self.message_index.id(index)
    }

    /// The recipient index of a message id. ESPs sometimes report the Message-ID
    /// header (`id@host`) rather than the bare id, so the local part is tried too.
    pub fn find(&self, message_id: &str) -> Option<u32> {
        self.message_index.get(message_id).or_else(|| {
            let (local, _) = message_id.split_once('@')?;
            self.message_index.get(local)
        })
    }

    /// [`Outbox::find`] for many ids at once, much faster on large batches.
    pub fn find_many<S: AsRef<str>>(&self, message_ids: &[S]) -> Vec<Option<u32>> {
        let mut found = self.message_index.get_many(message_ids);
        for (slot, id) in found.iter_mut().zip(message_ids) {
            if slot.is_none() && id.as_ref().contains('@') {
                *slot = self.find(id.as_ref());
            }
        }
        found
    }

    pub fn len(&self) -> usize {
        self.recipients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.recipients.is_empty()
    }

    pub fn arm_index(&self, name: &str) -> Option<u16> {
        self.arms
            .iter()
            .position(|a| a == name)
            .and_then(|i| u16::try_from(i).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{"message_id": "m1", "campaign_id": "c", "customer_id": "C1", "segment": "High-Value Recent", "arm": "control", "body": "hi \"you\"", "fallback": null}
{"message_id": "m2", "campaign_id": "c", "customer_id": "C2", "segment": "Dormant", "arm": "friendly", "fallback": "no approved variant", "new_field": [1]}

{"message_id": "m1", "customer_id": "C1", "segment": "x", "arm": "control"}
"#;

    #[test]
    fn parses_needed_fields_and_ignores_the_rest() {
        let outbox = Outbox::parse(Path::new("outbox.jsonl"), SAMPLE.as_bytes()).unwrap();
        assert_eq!(outbox.len(), 2);
        assert_eq!(outbox.arms, ["control", "friendly"]);
        assert_eq!(outbox.duplicate_rows, 1);
        assert!(!outbox.recipients[0].fallback);
        assert!(outbox.recipients[1].fallback);
        assert_eq!(outbox.find("m2"), Some(1));
        assert_eq!(outbox.find("m2@mail.example.com"), Some(1));
        assert_eq!(outbox.find("m3"), None);
        assert_eq!((outbox.message_id(0), outbox.message_id(1)), ("m1", "m2"));
    }

    #[test]
    fn block_reads_match_whole_reads_and_keep_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.jsonl");
        let mut text: String = (0..50)
            .map(|i| format!("{{\"message_id\": \"m{i}\", \"customer_id\": \"C{i}\", \"arm\": \"control\", \"body\": \"{}\"}}\n", "x".repeat(i * 7)))
            .collect();
        std::fs::write(&path, &text).unwrap();
        for block in [16, 100, 333, 1 << 20] {
            let outbox = Outbox::load_in_blocks(&path, block).unwrap();
            assert_eq!(outbox.len(), 50, "block {block}");
            assert_eq!(outbox.find("m49"), Some(49));
            assert_eq!(outbox.customer_ids.get(37), "C37");
        }
        text.push_str("{\"message_id\": \"broken\"\n");
        std::fs::write(&path, &text).unwrap();
        for block in [16, 100, 1 << 20] {
            let err = Outbox::load_in_blocks(&path, block).unwrap_err();
            assert!(err.to_string().contains("line 51"), "block {block}: {err}");
        }
    }

    #[test]
    fn a_malformed_row_names_its_line() {
        let text =
            "{\"message_id\": \"m1\", \"customer_id\": \"C\", \"arm\": \"control\"}\n{broken\n";
        let err = Outbox::parse(Path::new("outbox.jsonl"), text.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }
}
