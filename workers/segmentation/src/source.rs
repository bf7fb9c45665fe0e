//! Where audience rows come from: an inline list or a CSV read one reused
//! record at a time. A source can be scanned any number of times; each scan
//! visits every row in order with its position.

use std::fs::File;
use std::io::{self, BufRead, Read};
use std::path::PathBuf;
use std::time::SystemTime;

use cpo_shared::model::Customer;
use csv::ByteRecord;

use crate::lines::{Broken, LineReader};
use crate::record::{Columns, CustomerRow, RowError};
use crate::scan::ScanError;
use crate::screen::{Position, Rejected, RowResult};

/// The per-row callback of a source.
pub type Visit<'v> = dyn for<'r> FnMut(Position, RowResult<'r>) -> Result<(), ScanError> + 'v;

/// Something the passes can stream rows from, once per pass.
pub trait RowSource {
    fn scan(&self, visit: &mut Visit<'_>) -> Result<(), ScanError>;

    /// Roughly how many rows to expect, to size per-row bookkeeping once.
    fn rows_hint(&self) -> usize {
        0
    }

    /// Changes whenever the content may have changed (a file's size and mtime);
    /// `None` for sources that cannot change between passes.
    fn stamp(&self) -> Option<Stamp> {
        None
    }
}

/// A file's size and modification time.
pub type Stamp = (u64, Option<SystemTime>);

impl RowSource for [Customer] {
    fn rows_hint(&self) -> usize {
        self.len()
    }

    fn scan(&self, visit: &mut Visit<'_>) -> Result<(), ScanError> {
        for (i, customer) in self.iter().enumerate() {
            visit(
                Position::Entry(i as u64 + 1),
                Ok(CustomerRow::from_customer(customer)),
            )?;
        }
        Ok(())
    }
}

/// How a customer CSV is split into rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RowSyntax {
    /// One physical line per row; a quote left open at the end of a line, or a
    /// carriage return inside one, makes that line a broken row (`lines.rs`).
    #[default]
    OneLine,
    /// The general CSV reader: a quoted field may span lines
    /// (`segmentation.csv.multiline_fields: true`).
    Multiline,
}

impl RowSyntax {
    pub fn multiline(allowed: bool) -> Self {
        if allowed {
            Self::Multiline
        } else {
            Self::OneLine
        }
    }
}

/// A customer CSV on disk, opened afresh for each pass.
#[derive(Debug, Clone)]
pub struct CsvFile {
    pub path: PathBuf,
    pub syntax: RowSyntax,
}

impl CsvFile {
    /// One row per line, the default syntax.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            syntax: RowSyntax::OneLine,
        }
    }
}

impl RowSource for CsvFile {
    fn scan(&self, visit: &mut Visit<'_>) -> Result<(), ScanError> {
        let file = File::open(&self.path).map_err(|source| ScanError::Open {
            path: self.path.display().to_string(),
            source,
        })?;
        scan_csv(file, &self.path.display().to_string(), self.syntax, visit)
    }

    fn rows_hint(&self) -> usize {
        // Customer rows run ~100 bytes; the cap keeps a huge file from reserving
        // too much up front (the bookkeeping still grows if it must).
        let bytes = std::fs::metadata(&self.path).map_or(0, |m| m.len());
        usize::try_from(bytes / 96)
            .unwrap_or(usize::MAX)
            .min(4_000_000)
    }

    fn stamp(&self) -> Option<Stamp> {
        let meta = std::fs::metadata(&self.path).ok()?;
        Some((meta.len(), meta.modified().ok()))
    }
}

/// A customer CSV already in memory (tests, small uploads), one row per line.
#[derive(Debug, Clone, Copy)]
pub struct CsvText<'a>(pub &'a [u8]);

impl RowSource for CsvText<'_> {
    fn scan(&self, visit: &mut Visit<'_>) -> Result<(), ScanError> {
        scan_csv(self.0, "<in memory>", RowSyntax::OneLine, visit)
    }
}

/// A customer CSV in memory whose quoted fields may span lines.
#[derive(Debug, Clone, Copy)]
pub struct MultilineCsvText<'a>(pub &'a [u8]);

impl RowSource for MultilineCsvText<'_> {
    fn scan(&self, visit: &mut Visit<'_>) -> Result<(), ScanError> {
        scan_csv(self.0, "<in memory>", RowSyntax::Multiline, visit)
    }
}

/// The audience of one campaign, owned so both passes can run off the async threads.
#[derive(Debug, Clone)]
pub enum Audience {
    Inline(Vec<Customer>),
    File(CsvFile),
}

impl RowSource for Audience {
    fn scan(&self, visit: &mut Visit<'_>) -> Result<(), ScanError> {
        match self {
            Self::Inline(customers) => customers.as_slice().scan(visit),
            Self::File(file) => file.scan(visit),
        }
    }

    fn rows_hint(&self) -> usize {
        match self {
            Self::Inline(customers) => customers.len(),
            Self::File(file) => file.rows_hint(),
        }
    }

    fn stamp(&self) -> Option<Stamp> {
        match self {
            Self::Inline(_) => None,
            Self::File(file) => file.stamp(),
        }
    }
}

fn scan_csv(
    reader: impl Read,
    name: &str,
    syntax: RowSyntax,
    visit: &mut Visit<'_>,
) -> Result<(), ScanError> {
    let input = io::BufReader::with_capacity(256 * 1024, reader);
    match syntax {
        RowSyntax::OneLine => scan_lines(input, name, visit),
        RowSyntax::Multiline => scan_records(input, name, visit),
    }
}

fn header_error(name: &str, message: String) -> ScanError {
    ScanError::Header {
        path: name.to_string(),
        message,
    }
}

/// One row per physical line: a broken line is one invalid row, and the next
/// line is read as if nothing happened.
fn scan_lines(input: impl BufRead, name: &str, visit: &mut Visit<'_>) -> Result<(), ScanError> {
    let read_error = |e: io::Error| ScanError::Read {
        path: name.to_string(),
        message: e.to_string(),
    };
    let mut lines = LineReader::new(input);
    let mut record = ByteRecord::new();
    let columns = match lines.next_line(&mut record).map_err(read_error)? {
        Some((_, Ok(()))) => Columns::from_header(&record),
        Some((line, Err(broken))) => Err(format!("header (line {line}): {}", broken_row(broken))),
        None => Columns::from_header(&record),
    }
    .map_err(|message| header_error(name, message))?;
    while let Some((line, outcome)) = lines.next_line(&mut record).map_err(read_error)? {
        let row = match outcome {
            Ok(()) => CustomerRow::parse(&record, &columns),
            Err(broken) => Err(broken_row(broken)),
        }
        .map_err(|error| Rejected {
            customer_id: columns.id_hint(&record),
            error,
        });
        visit(Position::Line(line), row)?;
    }
    Ok(())
}

fn broken_row(broken: Broken) -> RowError {
    match broken {
        Broken::UnbalancedQuote => RowError::UnbalancedQuote,
        Broken::LineBreak => RowError::LineBreak,
    }
}

/// The general CSV reader, for exports whose quoted fields hold line breaks.
fn scan_records(input: impl Read, name: &str, visit: &mut Visit<'_>) -> Result<(), ScanError> {
    let read_error = |e: csv::Error| ScanError::Read {
        path: name.to_string(),
        message: e.to_string(),
    };
    // Flexible: a short or long row is one invalid customer, not the end of the file.
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(input);
    let columns = Columns::from_header(reader.byte_headers().map_err(read_error)?)
        .map_err(|message| header_error(name, message))?;
    let mut record = ByteRecord::new();
    let mut rows = 0u64;
    while reader.read_byte_record(&mut record).map_err(read_error)? {
        rows += 1;
        // The reader knows the physical line, which differs from the row count after quoted newlines.
        let line = record.position().map_or(rows + 1, |p| p.line());
        let row = CustomerRow::parse(&record, &columns).map_err(|error| Rejected {
            customer_id: columns.id_hint(&record),
            error,
        });
        visit(Position::Line(line), row)?;
    }
    Ok(())
}
