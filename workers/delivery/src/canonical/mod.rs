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
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use lines::LineReader;
use merge::{Merge, Part, merge, sort_chunks};

mod lines;
mod merge;

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
    /// The scan notes every this many lines' id and offset (split points).
    checkpoint_every: u64,
    /// From this size on, two threads merge the lower and the upper half.
    split_from_bytes: u64,
}

const LIMITS: Limits = Limits {
    scan_buffer: 4 << 20,
    merge_budget: 64 << 20,
    max_fan_in: 4096,
    min_run_buffer: 16 << 10,
    max_run_buffer: 1 << 20,
    chunk_bytes: 64 << 20,
    checkpoint_every: 256,
    split_from_bytes: 64 << 20,
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
/// it was. Returns how many lines the outbox holds, so callers need not read
/// it again to count them.
pub fn canonicalize_outbox(path: &Path) -> io::Result<u64> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Two writers at two positions of one file need positional writes (unix).
    let split = cfg!(unix) && cores > 1;
    let limits = Limits {
        split_from_bytes: if split {
            LIMITS.split_from_bytes
        } else {
            u64::MAX
        },
        ..LIMITS
    };
    canonicalize_with(path, limits)
}

fn canonicalize_with(path: &Path, limits: Limits) -> io::Result<u64> {
    let source = File::open(path)?;
    let len = source.metadata()?.len();
    let scan = scan_runs(&source, len, limits)?;
    if scan.runs.len() <= 1 && scan.clean {
        return Ok(scan.lines);
    }
    let temporary = sibling(path, "canonical-tmp");
    let scratch = sibling(path, "canonical-scratch");
    let result = if scan.runs.len() <= limits.max_fan_in && len >= limits.split_from_bytes {
        merge_halves(&source, &scan, &temporary, &scratch, limits)
    } else {
        write_sorted(&source, &scan.runs, &temporary, &scratch, limits)
    };
    let _ = fs::remove_file(&scratch);
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result?;
    fs::rename(&temporary, path)?;
    Ok(scan.lines)
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
        merge(source, runs, Part::All, &mut out, limits)?;
    } else {
        let chunks = sort_chunks(source, runs, scratch, limits)?;
        merge(&File::open(scratch)?, &chunks, Part::All, &mut out, limits)?;
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()
}

/// Merge on two threads: the lines below the median checkpoint id from the
/// start of `temporary`, the others from where the lower half will end. The
/// end of a large outbox's run is the pipeline's tail, when the other cores
/// have nothing left to do. Only for a clean file (no blank line, a final
/// newline), where a line takes in the output exactly the bytes it takes in
/// the input, so the lower half's size is known before it is written.
fn merge_halves(
    source: &File,
    scan: &Scan,
    temporary: &Path,
    scratch: &Path,
    limits: Limits,
) -> io::Result<()> {
    let mut ids: Vec<&[u8]> = scan.checkpoints.iter().map(|c| &*c.id).collect();
    if ids.is_empty() || !scan.clean {
        return write_sorted(source, &scan.runs, temporary, scratch, limits);
    }
    let middle = ids.len() / 2;
    let (_, key, _) = ids.select_nth_unstable(middle);
    let key: &[u8] = key;
    // The upper half of a run starts after its last checkpoint below the key:
    // everything before that checkpoint is below it too (ids increase in a run).
    let mut upper_runs = scan.runs.clone();
    for checkpoint in scan.checkpoints.iter().filter(|c| &*c.id < key) {
        upper_runs[checkpoint.run].start = checkpoint.offset;
    }
    let half = Limits {
        merge_budget: limits.merge_budget / 2,
        ..limits
    };
    let lower_file = File::create(temporary)?;
    let upper_file = File::options().write(true).open(temporary)?;
    let (lower, upper) = std::thread::scope(|scope| {
        let upper = scope.spawn(|| -> io::Result<()> {
            let merge = Merge::open(source, &upper_runs, Part::From(key), half)?;
            let lower_len: u64 = merge
                .first_offsets
                .iter()
                .zip(&scan.runs)
                .map(|(first, run)| first - run.start)
                .sum();
            let mut out =
                BufWriter::with_capacity(WRITE_BUFFER, AtWriter::new(&upper_file, lower_len));
            merge.write_to(&mut out)?;
            out.flush()
        });
        let lower = (|| -> io::Result<()> {
            let mut out = BufWriter::with_capacity(WRITE_BUFFER, &lower_file);
            merge(source, &scan.runs, Part::Below(key), &mut out, half)?;
            out.flush()
        })();
        let upper = upper
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the upper half's merge panicked")));
        (lower, upper)
    });
    lower?;
    upper?;
    lower_file.sync_all()
}

/// Writes at a position of a file shared with another writer.
struct AtWriter<'f> {
    file: &'f File,
    offset: u64,
}

impl<'f> AtWriter<'f> {
    fn new(file: &'f File, offset: u64) -> Self {
        Self { file, offset }
    }
}

impl Write for AtWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        lines::write_all_at(self.file, buf, self.offset)?;
        self.offset += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
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
    /// Non-blank lines.
    lines: u64,
    /// Every `checkpoint_every`-th line, in file order.
    checkpoints: Vec<Checkpoint>,
}

/// A line's id, its run and where it starts: where a merge of the upper half
/// can begin reading that run.
struct Checkpoint {
    run: usize,
    offset: u64,
    id: Box<[u8]>,
}

fn scan_runs(source: &File, len: u64, limits: Limits) -> io::Result<Scan> {
    let mut reader = LineReader::new(source, 0..len, limits.scan_buffer);
    let mut runs = Vec::new();
    let mut run_start = 0u64;
    let mut previous: Vec<u8> = Vec::new();
    let mut any = false;
    let mut clean = true;
    let mut number = 0u64;
    let mut lines = 0u64;
    let mut checkpoints = Vec::new();
    while let Some((offset, range)) = reader.next_line()? {
        number += 1;
        let line = &reader.buffer[range];
        if is_blank(line) {
            clean = false;
            continue;
        }
        lines += 1;
        let id = line_id(line).map_err(|e| invalid(format!("outbox line {number}: {e}")))?;
        if any && id.as_bytes() <= previous.as_slice() {
            runs.push(run_start..offset);
            run_start = offset;
        }
        if lines.is_multiple_of(limits.checkpoint_every) {
            checkpoints.push(Checkpoint {
                run: runs.len(),
                offset,
                id: id.as_bytes().into(),
            });
        }
        previous.clear();
        previous.extend_from_slice(id.as_bytes());
        any = true;
    }
    if any {
        runs.push(run_start..len);
    }
    clean &= len == 0 || reader.ended_with_newline;
    Ok(Scan {
        runs,
        clean,
        lines,
        checkpoints,
    })
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

#[cfg(test)]
mod tests;
