//! A customer CSV read one physical line per row (the default).
//!
//! A general CSV reader lets a quoted field run across lines until the next
//! quote, so one stray `"` joins every following line into one field: the
//! rows after it vanish from the accounting, and their addresses end up in a
//! neighbour's first name (and so in a message body). Customer exports have no
//! business putting line breaks in a field, so here a row is exactly one
//! physical line: a line whose quote is still open at its end, or that holds a
//! carriage return, is one broken row named by its line number, and reading
//! resumes at the next line. `segmentation.csv.multiline_fields: true` brings
//! back the general reader for exports that do quote line breaks.
//!
//! Fields are split by `csv_core` (the csv crate's own tokenizer), one line at
//! a time, so quoting and `""` escapes mean exactly what they mean to the
//! general reader.

use std::io::{self, BufRead};

use csv::ByteRecord;
use csv_core::ReadRecordResult;

/// Why a physical line is not a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    /// A quoted field is still open at the end of the line.
    UnbalancedQuote,
    /// A carriage return inside the line (a line break in a field).
    LineBreak,
}

/// Physical lines of CSV, each split into one record.
pub struct LineReader<R> {
    input: R,
    line: Vec<u8>,
    core: csv_core::Reader,
    output: Vec<u8>,
    ends: Vec<usize>,
    /// Physical line number of the last line read (1-based).
    number: u64,
}

impl<R: BufRead> LineReader<R> {
    pub fn new(input: R) -> Self {
        Self {
            input,
            line: Vec::with_capacity(256),
            core: csv_core::Reader::new(),
            output: vec![0; 256],
            ends: vec![0; 16],
            number: 0,
        }
    }

    /// The next non-blank line, split into `record`, with its line number;
    /// `None` at the end of the input. A broken line still fills `record` with
    /// the fields read up to the problem (the customer id is usually among them).
    /// Blank lines are skipped, as the general reader skips them.
    pub fn next_line(
        &mut self,
        record: &mut ByteRecord,
    ) -> io::Result<Option<(u64, Result<(), Broken>)>> {
        loop {
            self.line.clear();
            if self.input.read_until(b'\n', &mut self.line)? == 0 {
                return Ok(None);
            }
            self.number += 1;
            let content = strip_terminator(&self.line);
            if content.is_empty() {
                continue;
            }
            let line_break = content.contains(&b'\r');
            // The tokenizer sees the line with a plain `\n` (also when the last
            // line has none), so a `\r\n` ending is not taken for two terminators.
            self.line.truncate(content.len());
            self.line.push(b'\n');
            let whole = self.split(record);
            let outcome = match (line_break, whole) {
                (true, _) => Err(Broken::LineBreak),
                (false, true) => Ok(()),
                (false, false) => Err(Broken::UnbalancedQuote),
            };
            return Ok(Some((self.number, outcome)));
        }
    }

    /// Split the buffered line into `record`; false when it did not end as a
    /// record (a quote still open at the newline).
    fn split(&mut self, record: &mut ByteRecord) -> bool {
        record.clear();
        let mut input = &self.line[..];
        let (mut written, mut fields) = (0, 0);
        let mut whole = true;
        loop {
            let (result, read, out, ends) =
                self.core
                    .read_record(input, &mut self.output[written..], &mut self.ends[fields..]);
            input = &input[read..];
            written += out;
            fields += ends;
            match result {
                ReadRecordResult::OutputFull => {
                    let grown = self.output.len() * 2;
                    self.output.resize(grown, 0);
                }
                ReadRecordResult::OutputEndsFull => {
                    let grown = self.ends.len() * 2;
                    self.ends.resize(grown, 0);
                }
                // The whole line is consumed and the record has not ended: the
                // newline went into a quoted field. An empty input tells the
                // tokenizer the data ended, which closes the record as it stands.
                ReadRecordResult::InputEmpty if whole => whole = false,
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::Record | ReadRecordResult::End => break,
            }
        }
        let mut start = 0;
        for &end in &self.ends[..fields] {
            record.push_field(&self.output[start..end]);
            start = end;
        }
        if !whole || !input.is_empty() {
            // Start the next line from a clean state, not inside this one's quote.
            self.core.reset();
            whole = false;
        }
        whole
    }
}

fn strip_terminator(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<(u64, Result<Vec<String>, Broken>)> {
        let mut reader = LineReader::new(text.as_bytes());
        let mut record = ByteRecord::new();
        let mut out = Vec::new();
        while let Some((n, outcome)) = reader.next_line(&mut record).unwrap() {
            let fields = record
                .iter()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect();
            out.push((n, outcome.map(|()| fields)));
        }
        out
    }

    fn fields(list: &[&str]) -> Result<Vec<String>, Broken> {
        Ok(list.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn one_row_per_line_with_quotes_and_escapes() {
        let got = lines("a,\"b,c\",d\r\n\n\"x\"\"y\",,z\nlast,line");
        assert_eq!(
            got,
            [
                (1, fields(&["a", "b,c", "d"])),
                (3, fields(&["x\"y", "", "z"])),
                (4, fields(&["last", "line"])),
            ]
        );
    }

    #[test]
    fn a_stray_quote_breaks_its_own_line_only() {
        let got = lines("Q01,Ann,a@x.org\nQ02,\"Bob,b@x.org\nQ03,Cy,c@x.org\n");
        assert_eq!(got[0], (1, fields(&["Q01", "Ann", "a@x.org"])));
        assert_eq!(got[1], (2, Err(Broken::UnbalancedQuote)));
        assert_eq!(got[2], (3, fields(&["Q03", "Cy", "c@x.org"])));
        assert_eq!(got.len(), 3);
        // a quote opened on the last line, without a final newline
        assert_eq!(lines("a,\"b")[0], (1, Err(Broken::UnbalancedQuote)));
    }

    #[test]
    fn a_broken_line_keeps_its_leading_fields() {
        let mut reader = LineReader::new(&b"Q02,\"Bob,b@x.org\nQ03,Cy\n"[..]);
        let mut record = ByteRecord::new();
        let (_, outcome) = reader.next_line(&mut record).unwrap().unwrap();
        assert_eq!(outcome, Err(Broken::UnbalancedQuote));
        assert_eq!(record.get(0), Some(&b"Q02"[..]));
        let (n, outcome) = reader.next_line(&mut record).unwrap().unwrap();
        assert_eq!((n, outcome), (2, Ok(())));
        assert_eq!(record.len(), 2);
    }

    #[test]
    fn carriage_returns_inside_a_line_are_line_breaks() {
        let got = lines("a,b\rc,d\n\"e\rf\",g\nh,i\n");
        assert_eq!(got[0].1, Err(Broken::LineBreak));
        assert_eq!(got[1].1, Err(Broken::LineBreak));
        assert_eq!(got[2], (3, fields(&["h", "i"])));
    }

    #[test]
    fn long_lines_grow_the_buffers() {
        let wide: Vec<String> = (0..100).map(|i| format!("{i}{}", "x".repeat(30))).collect();
        let got = lines(&wide.join(","));
        assert_eq!(got[0].1.as_ref().map(Vec::len), Ok(100));
        assert_eq!(got[0].1.as_ref().unwrap()[99], wide[99]);
    }
}
