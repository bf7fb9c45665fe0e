//! Where audience rows come from: an inline list or a CSV read one reused
//! record at a time. A source can be scanned any number of times; each scan
//! visits every row in order with its position.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;
use std::time::SystemTime;

use cpo_shared::model::Customer;
use csv::ByteRecord;

use crate::record::{Columns, CustomerRow};
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

/// A customer CSV on disk, opened afresh for each pass.
#[derive(Debug, Clone)]
pub struct CsvFile(pub PathBuf);

impl RowSource for CsvFile {
    fn scan(&self, visit: &mut Visit<'_>) -> Result<(), ScanError> {
        let file = File::open(&self.0).map_err(|source| ScanError::Open {
            path: self.0.display().to_string(),
            source,
        })?;
        scan_csv(file, &self.0.display().to_string(), visit)
    }

    fn rows_hint(&self) -> usize {
        // Customer rows run ~100 bytes; the cap keeps a huge file from reserving
        // too much up front (the bookkeeping still grows if it must).
        let bytes = std::fs::metadata(&self.0).map_or(0, |m| m.len());
        usize::try_from(bytes / 96)
            .unwrap_or(usize::MAX)
            .min(4_000_000)
    }

    fn stamp(&self) -> Option<Stamp> {
        let meta = std::fs::metadata(&self.0).ok()?;
        Some((meta.len(), meta.modified().ok()))
    }
}

/// A customer CSV already in memory (tests, small uploads).
#[derive(Debug, Clone, Copy)]
pub struct CsvText<'a>(pub &'a [u8]);

impl RowSource for CsvText<'_> {
    fn scan(&self, visit: &mut Visit<'_>) -> Result<(), ScanError> {
        scan_csv(self.0, "<in memory>", visit)
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

fn scan_csv(reader: impl Read, name: &str, visit: &mut Visit<'_>) -> Result<(), ScanError> {
    let read_error = |e: csv::Error| ScanError::Read {
        path: name.to_string(),
        message: e.to_string(),
    };
    // Flexible: a short or long row is one invalid customer, not the end of the file.
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(io::BufReader::with_capacity(256 * 1024, reader));
    let columns =
        Columns::from_header(reader.byte_headers().map_err(read_error)?).map_err(|message| {
            ScanError::Header {
                path: name.to_string(),
                message,
            }
        })?;
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
