//! Reading the lines of a byte range of a file through one buffer, with
//! positional reads so several readers can share one `File`; positional
//! writes for the two halves of a split merge.

use std::fs::File;
use std::io;
use std::ops::Range;

/// Reads the lines of a byte range of a file through one buffer.
pub(super) struct LineReader<'f> {
    file: &'f File,
    /// File offset of the next read, and the end of the range.
    next: u64,
    end: u64,
    pub(super) buffer: Vec<u8>,
    /// File offset of `buffer[0]`.
    base: u64,
    /// Unread bytes are `buffer[start..filled]`.
    start: usize,
    filled: usize,
    pub(super) ended_with_newline: bool,
}

impl<'f> LineReader<'f> {
    pub(super) fn new(file: &'f File, range: Range<u64>, capacity: usize) -> Self {
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
    pub(super) fn next_line(&mut self) -> io::Result<Option<(u64, Range<usize>)>> {
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

#[cfg(unix)]
pub(super) fn write_all_at(file: &File, buffer: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buffer, offset)
}

/// Only one writer at a time uses this (the split merge is unix-only).
#[cfg(not(unix))]
pub(super) fn write_all_at(mut file: &File, buffer: &[u8], offset: u64) -> io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(buffer)
}
