//! Splitting line-oriented files into chunks that threads parse independently.
//! Campaign files reach hundreds of megabytes; the machines have a few cores.

use std::io::Read;
use std::path::Path;

use crate::error::{AnalysisError, Result};

/// Files smaller than this are parsed on one thread: spawning costs more than it saves.
const PARALLEL_THRESHOLD: usize = 4 << 20;

/// Splits `bytes` into up to `parts` chunks that end on line boundaries, with
/// each chunk's byte offset in `bytes`.
pub fn line_chunks(bytes: &[u8], parts: usize) -> Vec<(usize, &[u8])> {
    let parts = parts.max(1);
    let mut result = Vec::with_capacity(parts);
    let mut start = 0;
    for part in 1..=parts {
        if start >= bytes.len() {
            break;
        }
        let mut end = if part == parts {
            bytes.len()
        } else {
            (bytes.len() * part / parts).max(start)
        };
        end += memchr::memchr(b'\n', &bytes[end..]).unwrap_or(bytes.len() - end);
        let end = (end + 1).min(bytes.len());
        result.push((start, &bytes[start..end]));
        start = end;
    }
    result
}

/// Runs `work(offset, chunk)` over line-aligned chunks of `bytes`, one thread per
/// core for big inputs, and returns the results in file order.
pub fn map_chunks<'a, T, F>(bytes: &'a [u8], work: F) -> Vec<T>
where
    T: Send,
    F: Fn(usize, &'a [u8]) -> T + Sync,
{
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let parts = if bytes.len() < PARALLEL_THRESHOLD {
        1
    } else {
        threads
    };
    let chunks = line_chunks(bytes, parts);
    if chunks.len() <= 1 {
        return chunks
            .into_iter()
            .map(|(offset, chunk)| work(offset, chunk))
            .collect();
    }
    let work = &work;
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|(offset, chunk)| scope.spawn(move || work(offset, chunk)))
            .collect();
        handles
            .into_iter()
            // A worker only panics on a bug; re-raise it here rather than lose its chunk.
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// Reads `path` in blocks of about `block` bytes that end on line boundaries
/// and hands each to `consume` with the file's length. Streaming keeps memory
/// flat and spares the kernel from zeroing pages for the whole file at once.
pub fn read_blocks<F>(path: &Path, block: usize, mut consume: F) -> Result<()>
where
    F: FnMut(&[u8], u64) -> Result<()>,
{
    let mut file = std::fs::File::open(path).map_err(|e| AnalysisError::io(path, e))?;
    let file_len = file.metadata().map_or(0, |m| m.len());
    let mut buffer: Vec<u8> = Vec::with_capacity(block + block / 4 + 1);
    loop {
        // Top the buffer up to a block (it may hold the tail of the last one);
        // a line longer than a block just takes several reads.
        let want = block.saturating_sub(buffer.len()).max(block / 4).max(1);
        let read = (&mut file)
            .take(want as u64)
            .read_to_end(&mut buffer)
            .map_err(|e| AnalysisError::io(path, e))?;
        let end_of_file = read < want;
        // Whole lines only; a partial last line waits for the next block.
        let cut = if end_of_file {
            buffer.len()
        } else {
            memchr::memrchr(b'\n', &buffer).map_or(0, |i| i + 1)
        };
        consume(&buffer[..cut], file_len)?;
        buffer.drain(..cut);
        if end_of_file {
            return Ok(());
        }
    }
}

/// 1-based line number of byte `offset` (only computed for the few lines quoted
/// in errors, so a linear count is fine).
pub fn line_number(bytes: &[u8], offset: usize) -> usize {
    memchr::memchr_iter(b'\n', &bytes[..offset.min(bytes.len())]).count() + 1
}

/// The lines of `bytes` (without their newline) with their start offsets, found
/// with SIMD search rather than byte by byte. A final line without a newline is
/// included; the empty piece after a final newline is not.
pub fn lines(bytes: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= bytes.len() {
            return None;
        }
        let end = memchr::memchr(b'\n', &bytes[start..]).map_or(bytes.len(), |i| start + i);
        let line = (start, &bytes[start..end]);
        start = end + 1;
        Some(line)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_input_on_line_boundaries() {
        let text = b"aa\nbbbb\nc\ndddddd\ne";
        for parts in 1..6 {
            let chunks = line_chunks(text, parts);
            let joined: Vec<u8> = chunks.iter().flat_map(|(_, c)| c.iter().copied()).collect();
            assert_eq!(joined, text);
            for (offset, chunk) in &chunks {
                assert!(*offset == 0 || text[offset - 1] == b'\n');
                assert_eq!(&text[*offset..offset + chunk.len()], *chunk);
            }
        }
    }

    #[test]
    fn lines_match_split_without_the_trailing_piece() {
        for text in [&b"a\nbb\n\nccc"[..], b"a\n", b"", b"\n\n", b"x"] {
            let ours: Vec<(usize, &[u8])> = lines(text).collect();
            let mut expected = Vec::new();
            let mut offset = 0;
            for piece in text.split(|&b| b == b'\n') {
                expected.push((offset, piece));
                offset += piece.len() + 1;
            }
            if text.last() == Some(&b'\n') || text.is_empty() {
                expected.pop();
            }
            assert_eq!(ours, expected, "{text:?}");
        }
    }

    #[test]
    fn results_keep_file_order_and_lines_are_counted() {
        let text: String = (0..200_000).map(|i| format!("{i}\n")).collect();
        let counts = map_chunks(text.as_bytes(), |_, chunk| {
            chunk.iter().filter(|&&b| b == b'\n').count()
        });
        assert_eq!(counts.iter().sum::<usize>(), 200_000);
        assert_eq!(line_number(b"a\nb\nc", 4), 3);
    }
}
