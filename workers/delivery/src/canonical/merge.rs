//! The k-way merge of sorted runs, and the chunk sort that makes runs out of
//! an outbox in any order.

use std::cmp::Ordering;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::ops::Range;
use std::path::Path;

use super::lines::LineReader;
use super::{Limits, WRITE_BUFFER, invalid, is_blank, line_id, prefix_key};

/// Which lines of the runs a merge writes: all, or those with an id below or
/// from a split key (two merges then write the two halves of the order).
#[derive(Debug, Clone, Copy)]
pub(super) enum Part<'k> {
    All,
    Below(&'k [u8]),
    From(&'k [u8]),
}

/// One run being merged: its reader and its current line.
struct Cursor<'f, 'k> {
    reader: LineReader<'f>,
    part: Part<'k>,
    line: Range<usize>,
    /// Where the current line starts in the file.
    offset: u64,
    id: Vec<u8>,
    prefix: u128,
}

impl<'f, 'k> Cursor<'f, 'k> {
    fn open(
        file: &'f File,
        run: Range<u64>,
        part: Part<'k>,
        capacity: usize,
    ) -> io::Result<Option<Self>> {
        let mut cursor = Self {
            reader: LineReader::new(file, run, capacity),
            part,
            line: 0..0,
            offset: 0,
            id: Vec::new(),
            prefix: 0,
        };
        Ok(cursor.advance()?.then_some(cursor))
    }

    /// Move to the next non-blank line of this part; false at the end of the
    /// run or of the part (ids increase within a run).
    fn advance(&mut self) -> io::Result<bool> {
        while let Some((offset, range)) = self.reader.next_line()? {
            let line = &self.reader.buffer[range.clone()];
            if is_blank(line) {
                continue;
            }
            let id =
                line_id(line).map_err(|e| invalid(format!("outbox changed while sorting: {e}")))?;
            match self.part {
                Part::Below(key) if id.as_bytes() >= key => return Ok(false),
                Part::From(key) if id.as_bytes() < key => continue,
                _ => {}
            }
            self.id.clear();
            self.id.extend_from_slice(id.as_bytes());
            self.prefix = prefix_key(&self.id);
            self.line = range;
            self.offset = offset;
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
pub(super) fn merge(
    file: &File,
    runs: &[Range<u64>],
    part: Part<'_>,
    out: &mut impl Write,
    limits: Limits,
) -> io::Result<()> {
    Merge::open(file, runs, part, limits)?.write_to(out)
}

/// A merge whose runs are open, each at its first line of the part.
pub(super) struct Merge<'f, 'k> {
    cursors: Vec<Cursor<'f, 'k>>,
    /// Per run, where the part's first line starts (the run's end if none).
    pub(super) first_offsets: Vec<u64>,
}

impl<'f, 'k> Merge<'f, 'k> {
    pub(super) fn open(
        file: &'f File,
        runs: &[Range<u64>],
        part: Part<'k>,
        limits: Limits,
    ) -> io::Result<Self> {
        let capacity = (limits.merge_budget / runs.len().max(1))
            .clamp(limits.min_run_buffer, limits.max_run_buffer);
        let mut cursors = Vec::with_capacity(runs.len());
        let mut first_offsets = Vec::with_capacity(runs.len());
        for run in runs {
            match Cursor::open(file, run.clone(), part, capacity)? {
                Some(cursor) => {
                    first_offsets.push(cursor.offset);
                    cursors.push(cursor);
                }
                None => first_offsets.push(run.end),
            }
        }
        Ok(Self {
            cursors,
            first_offsets,
        })
    }

    pub(super) fn write_to(mut self, out: &mut impl Write) -> io::Result<()> {
        let cursors = &mut self.cursors;
        let mut heap = MinHeap::new(cursors.len(), |a, b| cursors[a].order(&cursors[b]));
        while let Some(top) = heap.peek() {
            out.write_all(cursors[top].line())?;
            out.write_all(b"\n")?;
            let more = cursors[top].advance()?;
            heap.replace_top(more, |a, b| cursors[a].order(&cursors[b]));
        }
        Ok(())
    }
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
pub(super) fn sort_chunks(
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
        let id =
            line_id(line).map_err(|e| invalid(format!("outbox changed while sorting: {e}")))?;
        let line_range = self.text.len()..self.text.len() + line.len();
        self.text.extend_from_slice(line);
        let id_range = self.text.len()..self.text.len() + id.len();
        self.text.extend_from_slice(id.as_bytes());
        self.lines
            .push((prefix_key(id.as_bytes()), id_range, line_range));
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
