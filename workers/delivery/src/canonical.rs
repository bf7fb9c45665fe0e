//! Canonical outbox order: lines sorted by message id (lines with the same id,
//! which the sinks never write, by their bytes), so two runs of the embedded
//! pipeline give byte-identical outboxes whatever order their batches
//! finished in.
//!
//! The file outbox writes each batch's lines sorted by id, so a finished
//! outbox is a sequence of sorted runs, one per batch. One sequential pass
//! finds the runs (and reads every line's id); a k-way merge then reads every
//! run sequentially through its own buffer and writes the lines in order into
//! a temporary file that replaces the outbox. An outbox that is already one
//! run is left as it is. An outbox with more runs than the merge takes at once
//! (another writer, any order) is first cut into sorted chunks in a scratch
//! file, and those are merged. Memory is bounded by the buffers (~70 MB)
//! whatever the size of the outbox.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Sizes of the sort's buffers (tests shrink them to reach every path).
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Buffer of the scan and of the chunk sort's reader.
    scan_buffer: usize,
    /// What the merge's run buffers take together.
    merge_budget: usize,
    /// Runs merged at once; more are first sorted in chunks.
    max_fan_in: usize,
    min_run_buffer: usize,
    max_run_buffer: usize,
    /// Bytes of lines the fallback sorts in memory at a time.
    chunk_bytes: usize,
}

const LIMITS: Limits = Limits {
    scan_buffer: 4 << 20,
    merge_budget: 64 << 20,
    max_fan_in: 4096,
    min_run_buffer: 16 << 10,
    max_run_buffer: 1 << 20,
    chunk_bytes: 64 << 20,
};

const WRITE_BUFFER: usize = 1 << 20;

#[derive(Deserialize)]
struct IdOnly<'a> {
    #[serde(borrow)]
    message_id: Cow<'a, str>,
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Rewrite the outbox at `path` with its lines sorted by message id (lines with
/// the same id, which the sinks never write, by their bytes). Every line is kept;
/// blank lines are dropped and every line ends with a newline; lines are
/// copied as they are, only their id is read. A line without a readable
/// `message_id` is an `InvalidData` error naming it, and the file is left as
/// it was.
pub fn canonicalize_outbox(path: &Path) -> io::Result<()> {
    canonicalize_with(path, LIMITS)
}

fn canonicalize_with(path: &Path, limits: Limits) -> io::Result<()> {
    let source = File::open(path)?;
    let len = source.metadata()?.len();
    let scan = scan_runs(&source, len, limits)?;
    if scan.runs.len() <= 1 && scan.clean {
        return Ok(());
    }
    let temporary = sibling(path, "canonical-tmp");
    let scratch = sibling(path, "canonical-scratch");
    let result = write_sorted(&source, &scan.runs, &temporary, &scratch, limits);
    let _ = fs::remove_file(&scratch);
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result?;
    fs::rename(&temporary, path)
}

fn write_sorted(
    source: &File,
    runs: &[Range<u64>],
    temporary: &Path,
    scratch: &Path,
    limits: Limits,
) -> io::Result<()> {
    let mut out = BufWriter::with_capacity(WRITE_BUFFER, File::create(temporary)?);
    if runs.len() <= limits.max_fan_in {
        merge(source, runs, &mut out, limits)?;
    } else {
        let chunks = sort_chunks(source, runs, scratch, limits)?;
        merge(&File::open(scratch)?, &chunks, &mut out, limits)?;
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    path.with_file_name(name)
}

/// What the scan saw: byte ranges of the file in which ids strictly increase,
/// and whether the file is already clean (no blank line, a final newline).
struct Scan {
    runs: Vec<Range<u64>>,
    clean: bool,
}

fn scan_runs(source: &File, len: u64, limits: Limits) -> io::Result<Scan> {
    let mut reader = LineReader::new(source, 0..len, limits.scan_buffer);
    let mut runs = Vec::new();
    let mut run_start = 0u64;
    let mut previous: Vec<u8> = Vec::new();
    let mut any = false;
    let mut clean = true;
    let mut number = 0u64;
    while let Some((offset, range)) = reader.next_line()? {
        number += 1;
        let line = &reader.buffer[range];
        if is_blank(line) {
            clean = false;
            continue;
        }
        let id = line_id(line).map_err(|e| invalid(format!("outbox line {number}: {e}")))?;
        if any && id.as_bytes() <= previous.as_slice() {
            runs.push(run_start..offset);
            run_start = offset;
        }
        previous.clear();
        previous.extend_from_slice(id.as_bytes());
        any = true;
    }
    if any {
        runs.push(run_start..len);
    }
    clean &= len == 0 || reader.ended_with_newline;
    Ok(Scan { runs, clean })
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// The id of a line: read from the prefix the outbox writes
/// (`{"message_id":"<id>",`, the id free of escapes), else by the JSON parser.
fn line_id(line: &[u8]) -> Result<Cow<'_, str>, serde_json::Error> {
    match leading_id(line) {
        Some(id) => Ok(Cow::Borrowed(id)),
        None => serde_json::from_slice::<IdOnly<'_>>(line).map(|parsed| parsed.message_id),
    }
}

/// The id of a line as the outbox writes it, without parsing the rest of the
/// line; `None` sends the line through the full JSON parser.
fn leading_id(line: &[u8]) -> Option<&str> {
    let rest = line.strip_prefix(br#"{"message_id":""#)?;
    let end = rest.iter().position(|b| *b == b'"' || *b == b'\\')?;
    if rest[end] != b'"' || rest.get(end + 1) != Some(&b',') {
        return None;
    }
    std::str::from_utf8(&rest[..end]).ok()
}

/// The id's first 16 bytes, big-endian and zero-padded: comparing these orders
/// ids like comparing the strings, and settles almost every comparison.
fn prefix_key(id: &[u8]) -> u128 {
    let mut head = [0u8; 16];
    let n = id.len().min(16);
    head[..n].copy_from_slice(&id[..n]);
    u128::from_be_bytes(head)
}

/// Reads the lines of a byte range of a file through one buffer.
struct LineReader<'f> {
    file: &'f File,
    /// File offset of the next read, and the end of the range.
    next: u64,
    end: u64,
    buffer: Vec<u8>,
    /// File offset of `buffer[0]`.
    base: u64,
    /// Unread bytes are `buffer[start..filled]`.
    start: usize,
    filled: usize,
    ended_with_newline: bool,
}

impl<'f> LineReader<'f> {
    fn new(file: &'f File, range: Range<u64>, capacity: usize) -> Self {
        let capacity = usize::try_from(range.end - range.start)
            .unwrap_or(capacity)
            .clamp(1, capacity.max(1));
        Self {
            file,
            next: range.start,
            end: range.end,
            buffer: vec![0; capacity],
            base: range.start,
            start: 0,
            filled: 0,
            ended_with_newline: false,
        }
    }

    /// The next line's file offset and its place in `buffer` (without the
    /// newline), or `None` at the end of the range.
    fn next_line(&mut self) -> io::Result<Option<(u64, Range<usize>)>> {
        loop {
            let unread = &self.buffer[self.start..self.filled];
            if let Some(at) = memchr::memchr(b'\n', unread) {
                let line = self.start..self.start + at;
                self.start += at + 1;
                self.ended_with_newline = true;
                return Ok(Some((self.base + line.start as u64, line)));
            }
            if self.next == self.end {
                if self.start == self.filled {
                    return Ok(None);
                }
                let line = self.start..self.filled;
                self.start = self.filled;
                self.ended_with_newline = false;
                return Ok(Some((self.base + line.start as u64, line)));
            }
            self.refill()?;
        }
    }

    /// Keep the unread bytes, growing the buffer when one line fills it, and read more.
    fn refill(&mut self) -> io::Result<()> {
        self.buffer.copy_within(self.start..self.filled, 0);
        self.base += self.start as u64;
        self.filled -= self.start;
        self.start = 0;
        if self.filled == self.buffer.len() {
            self.buffer.resize(self.buffer.len() * 2, 0);
        }
        let room = (self.buffer.len() - self.filled) as u64;
        let want = room.min(self.end - self.next) as usize;
        read_exact_at(
            self.file,
            &mut self.buffer[self.filled..self.filled + want],
            self.next,
        )?;
        self.filled += want;
        self.next += want as u64;
        Ok(())
    }
}

/// One run being merged: its reader and its current line.
struct Cursor<'f> {
    reader: LineReader<'f>,
    line: Range<usize>,
    id: Vec<u8>,
    prefix: u128,
}

impl<'f> Cursor<'f> {
    fn open(file: &'f File, run: Range<u64>, capacity: usize) -> io::Result<Option<Self>> {
        let mut cursor = Self {
            reader: LineReader::new(file, run, capacity),
            line: 0..0,
            id: Vec::new(),
            prefix: 0,
        };
        Ok(cursor.advance()?.then_some(cursor))
    }

    /// Move to the next non-blank line; false at the end of the run.
    fn advance(&mut self) -> io::Result<bool> {
        while let Some((_, range)) = self.reader.next_line()? {
            let line = &self.reader.buffer[range.clone()];
            if is_blank(line) {
                continue;
            }
            let id = line_id(line).map_err(|e| invalid(format!("outbox changed while sorting: {e}")))?;
            self.id.clear();
            self.id.extend_from_slice(id.as_bytes());
            self.prefix = prefix_key(&self.id);
            self.line = range;
            return Ok(true);
        }
        Ok(false)
    }

    fn line(&self) -> &[u8] {
        &self.reader.buffer[self.line.clone()]
    }

    fn order(&self, other: &Self) -> Ordering {
        self.prefix
            .cmp(&other.prefix)
            .then_with(|| self.id.cmp(&other.id))
            .then_with(|| self.line().cmp(other.line()))
    }
}

/// Write the lines of the sorted `runs` of `file` to `out` in order.
fn merge(
    file: &File,
    runs: &[Range<u64>],
    out: &mut impl Write,
    limits: Limits,
) -> io::Result<()> {
    let capacity = (limits.merge_budget / runs.len().max(1))
        .clamp(limits.min_run_buffer, limits.max_run_buffer);
    let mut cursors = Vec::with_capacity(runs.len());
    for run in runs {
        if let Some(cursor) = Cursor::open(file, run.clone(), capacity)? {
            cursors.push(cursor);
        }
    }
    let mut heap = MinHeap::new(cursors.len(), |a, b| cursors[a].order(&cursors[b]));
    while let Some(top) = heap.peek() {
        out.write_all(cursors[top].line())?;
        out.write_all(b"\n")?;
        let more = cursors[top].advance()?;
        heap.replace_top(more, |a, b| cursors[a].order(&cursors[b]));
    }
    Ok(())
}

/// A binary min-heap of run indices, ordered by a comparison the caller passes
/// in (the lines live in the cursors, not in the heap).
struct MinHeap {
    items: Vec<usize>,
}

impl MinHeap {
    fn new(n: usize, order: impl Fn(usize, usize) -> Ordering) -> Self {
        let mut heap = Self {
            items: (0..n).collect(),
        };
        for i in (0..n / 2).rev() {
            heap.sift_down(i, &order);
        }
        heap
    }

    fn peek(&self) -> Option<usize> {
        self.items.first().copied()
    }

    /// The top moved on (`more`) or ran out: restore the order.
    fn replace_top(&mut self, more: bool, order: impl Fn(usize, usize) -> Ordering) {
        if !more {
            let last = self.items.len() - 1;
            self.items.swap(0, last);
            self.items.pop();
        }
        if !self.items.is_empty() {
            self.sift_down(0, &order);
        }
    }

    fn sift_down(&mut self, mut i: usize, order: &impl Fn(usize, usize) -> Ordering) {
        let n = self.items.len();
        loop {
            let (left, right) = (2 * i + 1, 2 * i + 2);
            let mut smallest = i;
            for child in [left, right] {
                if child < n && order(self.items[child], self.items[smallest]) == Ordering::Less {
                    smallest = child;
                }
            }
            if smallest == i {
                return;
            }
            self.items.swap(i, smallest);
            i = smallest;
        }
    }
}

/// Too many runs to merge at once: sort chunks of about `chunk_bytes` in
/// memory into `scratch`, and return the chunks' ranges (sorted runs there).
fn sort_chunks(
    source: &File,
    runs: &[Range<u64>],
    scratch: &Path,
    limits: Limits,
) -> io::Result<Vec<Range<u64>>> {
    let end = runs.last().map_or(0, |run| run.end);
    let mut reader = LineReader::new(source, 0..end, limits.scan_buffer);
    let mut out = BufWriter::with_capacity(WRITE_BUFFER, File::create(scratch)?);
    let mut chunk = Chunk::default();
    let mut chunks = Vec::new();
    let mut written = 0u64;
    while let Some((_, range)) = reader.next_line()? {
        let line = &reader.buffer[range];
        if is_blank(line) {
            continue;
        }
        chunk.push(line)?;
        if chunk.text.len() >= limits.chunk_bytes {
            chunks.push(chunk.write_sorted(&mut out, &mut written)?);
        }
    }
    if !chunk.lines.is_empty() {
        chunks.push(chunk.write_sorted(&mut out, &mut written)?);
    }
    out.into_inner().map_err(|e| e.into_error())?;
    Ok(chunks)
}

#[derive(Default)]
struct Chunk {
    text: Vec<u8>,
    /// (prefix, id range, line range) in `text`; the id follows the line.
    lines: Vec<(u128, Range<usize>, Range<usize>)>,
}

impl Chunk {
    fn push(&mut self, line: &[u8]) -> io::Result<()> {
        let id = line_id(line).map_err(|e| invalid(format!("outbox changed while sorting: {e}")))?;
        let line_range = self.text.len()..self.text.len() + line.len();
        self.text.extend_from_slice(line);
        let id_range = self.text.len()..self.text.len() + id.len();
        self.text.extend_from_slice(id.as_bytes());
        self.lines.push((prefix_key(id.as_bytes()), id_range, line_range));
        Ok(())
    }

    fn write_sorted(&mut self, out: &mut impl Write, written: &mut u64) -> io::Result<Range<u64>> {
        let text = &self.text;
        self.lines.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| text[a.1.clone()].cmp(&text[b.1.clone()]))
                .then_with(|| text[a.2.clone()].cmp(&text[b.2.clone()]))
        });
        let start = *written;
        for (_, _, line) in &self.lines {
            out.write_all(&text[line.clone()])?;
            out.write_all(b"\n")?;
            *written += line.len() as u64 + 1;
        }
        self.text.clear();
        self.lines.clear();
        Ok(start..*written)
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buffer: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buffer, offset)
}

#[cfg(not(unix))]
fn read_exact_at(mut file: &File, buffer: &mut [u8], offset: u64) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, body: &str) -> String {
        format!("{{\"message_id\":\"{id}\",\"body\":\"{body}\"}}")
    }

    #[test]
    fn sorts_by_id_and_keeps_every_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.jsonl");
        let lines = [
            line("msg-c", "3"),
            line("msg-a", "1"),
            line("msg-b", "2 with \\n escaped"),
            line("msg-a", "0 duplicate"),
        ];
        // no trailing newline and a blank line: both normalized
        std::fs::write(
            &path,
            format!("{}\n{}\n\n{}\n{}", lines[0], lines[1], lines[2], lines[3]),
        )
        .unwrap();
        canonicalize_outbox(&path).unwrap();
        let expected = format!("{}\n{}\n{}\n{}\n", lines[3], lines[1], lines[2], lines[0]);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
        // idempotent, and no temporary file left behind
        canonicalize_outbox(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn two_orders_of_the_same_lines_give_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let lines: Vec<String> = (0..500)
            .map(|i| line(&format!("msg-{:04}", (i * 7919) % 500), "x"))
            .collect();
        let forward = dir.path().join("a.jsonl");
        let backward = dir.path().join("b.jsonl");
        std::fs::write(&forward, lines.join("\n") + "\n").unwrap();
        let reversed: Vec<String> = lines.iter().rev().cloned().collect();
        std::fs::write(&backward, reversed.join("\n") + "\n").unwrap();
        canonicalize_outbox(&forward).unwrap();
        canonicalize_outbox(&backward).unwrap();
        let a = std::fs::read(&forward).unwrap();
        assert_eq!(a, std::fs::read(&backward).unwrap());
        assert_eq!(String::from_utf8(a).unwrap().lines().count(), 500);
    }

    #[test]
    fn fast_id_path_agrees_with_the_parser() {
        assert_eq!(
            leading_id(br#"{"message_id":"msg-1","x":1}"#),
            Some("msg-1")
        );
        // escaped ids, other key orders and bare ids go through serde
        assert_eq!(leading_id(br#"{"message_id":"a\"b","x":1}"#), None);
        assert_eq!(leading_id(br#"{"x":1,"message_id":"msg-1"}"#), None);
        assert_eq!(leading_id(br#"{"message_id":"msg-1"}"#), None);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.jsonl");
        let lines = [
            r#"{"message_id":"b\"q","n":1}"#,
            r#"{"n":2,"message_id":"a"}"#,
            r#"{"message_id":"ab","n":3}"#,
        ];
        std::fs::write(&path, lines.join("\n")).unwrap();
        canonicalize_outbox(&path).unwrap();
        let expected = format!("{}\n{}\n{}\n", lines[1], lines[2], lines[0]);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
        assert!(prefix_key(b"ab") < prefix_key(b"ab\x01"));
        assert!(prefix_key(b"msg-0") < prefix_key(b"msg-1"));
    }

    /// Tiny buffers: lines longer than a buffer, and more runs than one merge takes.
    const TINY: Limits = Limits {
        scan_buffer: 7,
        merge_budget: 64,
        max_fan_in: 3,
        min_run_buffer: 5,
        max_run_buffer: 9,
        chunk_bytes: 100,
    };

    /// The definition: non-blank lines sorted by (id, bytes), each with a newline.
    fn reference(text: &str) -> String {
        let mut lines: Vec<(String, &str)> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let id: serde_json::Value = serde_json::from_str(l).unwrap();
                (id["message_id"].as_str().unwrap().to_string(), l)
            })
            .collect();
        lines.sort();
        lines.into_iter().map(|(_, l)| format!("{l}\n")).collect()
    }

    fn canonical_with(text: &str, limits: Limits) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.jsonl");
        std::fs::write(&path, text).unwrap();
        canonicalize_with(&path, limits).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no scratch left");
        std::fs::read_to_string(&path).unwrap()
    }

    #[test]
    fn sorted_runs_are_merged_and_many_runs_go_through_chunks() {
        // three runs as the file outbox writes them, plus an escaped id and a duplicate
        let runs = [
            vec![line("msg-b", "1"), line("msg-d", "2"), line("msg-f", "3")],
            vec![line("msg-a", "4"), line("msg-e", "5")],
            vec![r#"{"message_id":"msg-c\"q","n":6}"#.to_string(), line("msg-d", "0")],
        ];
        let text: String = runs.iter().flatten().map(|l| format!("{l}\n")).collect();
        let expected = reference(&text);
        assert_eq!(canonical_with(&text, LIMITS), expected);
        // tiny buffers: lines outgrow them, and 3 runs exceed nothing yet
        assert_eq!(canonical_with(&text, TINY), expected);
        // reversed, every line is its own run: more than the fan-in of 3
        let reversed: String = text.lines().rev().map(|l| format!("{l}\n")).collect();
        assert_eq!(canonical_with(&reversed, TINY), expected);
        assert_eq!(canonical_with(&reversed, LIMITS), expected);
    }

    #[cfg(unix)]
    #[test]
    fn an_outbox_already_in_order_is_not_rewritten() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.jsonl");
        std::fs::write(&path, format!("{}\n{}\n", line("msg-a", "1"), line("msg-b", "2"))).unwrap();
        let inode = std::fs::metadata(&path).unwrap().ino();
        canonicalize_outbox(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().ino(), inode);
        // a missing final newline is fixed, which needs a rewrite
        std::fs::write(&path, format!("{}\n{}", line("msg-a", "1"), line("msg-b", "2"))).unwrap();
        canonicalize_outbox(&path).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().ends_with("\"2\"}\n"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        #[test]
        fn any_order_of_any_lines_gives_the_reference(
            lines in proptest::collection::vec(("[a-d]{0,3}", "[x-z]{0,2}", proptest::bool::ANY), 0..40),
            blank_every in 2usize..9,
            tiny in proptest::bool::ANY,
        ) {
            let mut text = String::new();
            for (i, (id, body, escaped)) in lines.iter().enumerate() {
                let id = if *escaped { format!("{id}\\\"") } else { id.clone() };
                text.push_str(&format!("{{\"message_id\":\"{id}\",\"body\":\"{body}\"}}\n"));
                if i % blank_every == 0 {
                    text.push_str("  \n");
                }
            }
            let limits = if tiny { TINY } else { LIMITS };
            proptest::prop_assert_eq!(canonical_with(&text, limits), reference(&text));
        }
    }

    #[test]
    fn a_bad_line_is_named_and_the_file_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.jsonl");
        let text = format!("{}\n{{\"no_id\":1}}\n", line("msg-b", "1"));
        std::fs::write(&path, &text).unwrap();
        let err = canonicalize_outbox(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("line 2"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }
}
