//! The two streaming passes over an audience.
//!
//! Pass one screens every row (`Screen`) and accumulates segment profiles and
//! exclusions; pass two replays its decisions, skipping the rows it excluded, and
//! hands out customer batches. Neither holds the audience in memory: a CSV is read
//! twice, one reused record at a time, and only the positions of excluded rows are
//! kept between passes. Pass two checks what it reads against pass one (counts,
//! sizes, validity, and the file's size and modification time), so a file that
//! changed in between is caught instead of producing batches the profiles do not
//! describe.

use std::io;

use cpo_shared::model::{Exclusion, SegmentProfile, SegmentedCustomer};

use crate::profile::ProfileBuilder;
use crate::record::CustomerRow;
use crate::rules::RuleSet;
use crate::screen::{Outcome, Screen, Suppressions};
pub use crate::source::{
    Audience, CsvFile, CsvText, MultilineCsvText, RowSource, RowSyntax, Stamp,
};

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// Missing or unreadable file: retrying will not make it appear.
    #[error("cannot open audience file {path}: {source}")]
    Open { path: String, source: io::Error },
    #[error("audience file {path}: {message}")]
    Header { path: String, message: String },
    /// An I/O error in the middle of a file (network mount, disk): may pass.
    #[error("reading audience file {path}: {message}")]
    Read { path: String, message: String },
    #[error("cannot encode a batch: {0}")]
    Encode(String),
    #[error("audience changed between passes: {0}")]
    Changed(String),
    /// The batch consumer went away (its own error says why).
    #[error("batch consumer stopped")]
    Stopped,
}

/// What the campaign needs from the audience besides the rows.
#[derive(Debug, Clone)]
pub struct Plan {
    pub rules: RuleSet,
    pub suppressions: Suppressions,
    pub batch_size: usize,
}

/// Result of pass one.
#[derive(Debug, Clone, PartialEq)]
pub struct PassOne {
    pub customers_total: u64,
    /// Per segment of the rule set, empty ones included.
    pub sizes: Vec<u64>,
    /// Non-empty segments only, in rule order.
    pub profiles: Vec<SegmentProfile>,
    pub exclusions: Vec<Exclusion>,
    /// Ordinals (0-based row numbers) of the excluded rows, ascending: what pass two skips.
    pub excluded_rows: Vec<u64>,
    /// The source's stamp before the first read.
    pub stamp: Option<Stamp>,
}

impl PassOne {
    pub fn segmented(&self) -> u64 {
        self.sizes.iter().sum()
    }

    pub fn batches(&self, batch_size: usize) -> u64 {
        self.segmented().div_ceil(batch_size.max(1) as u64)
    }

    /// Pass two must have seen exactly what pass one saw.
    pub fn check(&self, two: &PassTwo) -> Result<(), ScanError> {
        if self.stamp != two.stamp {
            return Err(ScanError::Changed(
                "the file's size or modification time changed".into(),
            ));
        }
        let excluded = self.exclusions.len() as u64;
        if (self.customers_total, &self.sizes, excluded)
            != (two.customers_total, &two.sizes, two.excluded)
        {
            return Err(ScanError::Changed(format!(
                "first read {} rows ({} excluded), second read {} rows ({} excluded)",
                self.customers_total, excluded, two.customers_total, two.excluded
            )));
        }
        Ok(())
    }
}

/// Result of pass two.
#[derive(Debug, Clone, PartialEq)]
pub struct PassTwo {
    pub customers_total: u64,
    pub sizes: Vec<u64>,
    pub excluded: u64,
    pub batches: u64,
    /// The source's stamp after the second read.
    pub stamp: Option<Stamp>,
}

pub fn pass_one(source: &(impl RowSource + ?Sized), plan: &Plan) -> Result<PassOne, ScanError> {
    let stamp = source.stamp();
    let mut recording = Screen::new(&plan.rules, &plan.suppressions, source.rows_hint());
    let mut one = screen_rows(source, plan, &mut recording)?;
    let duplicates = recording.duplicates();
    if !duplicates.is_empty() {
        // Only messy audiences pay for this extra read: decide again, now knowing
        // which rows are later copies of an earlier customer.
        let rows = one.customers_total;
        one = screen_rows(
            source,
            plan,
            &mut Screen::knowing(&plan.rules, &plan.suppressions, duplicates),
        )?;
        if one.customers_total != rows {
            return Err(ScanError::Changed(format!(
                "first read {rows} rows, the next {}",
                one.customers_total
            )));
        }
    }
    one.stamp = stamp;
    Ok(one)
}

fn screen_rows(
    source: &(impl RowSource + ?Sized),
    plan: &Plan,
    screen: &mut Screen,
) -> Result<PassOne, ScanError> {
    let mut profiles = ProfileBuilder::new(&plan.rules);
    let (mut exclusions, mut excluded_rows) = (Vec::new(), Vec::new());
    let mut customers_total = 0u64;
    source.scan(&mut |at, row| {
        match screen.admit(at, &row) {
            Outcome::Segment(segment) => {
                if let Ok(row) = &row {
                    profiles.add(segment, row);
                }
            }
            Outcome::Excluded(exclusion) => {
                exclusions.push(exclusion);
                excluded_rows.push(customers_total);
            }
        }
        customers_total += 1;
        Ok(())
    })?;
    Ok(PassOne {
        customers_total,
        sizes: profiles.sizes(),
        profiles: profiles.finish(&plan.rules),
        exclusions,
        excluded_rows,
        stamp: None,
    })
}

/// Where pass two puts the customers it streams, batch by batch.
pub trait BatchSink {
    /// Add a customer to the open batch (opening one if needed).
    fn add(&mut self, segment: &str, row: &CustomerRow) -> Result<(), ScanError>;
    /// Close the open, non-empty batch; batches are numbered from 0 in flush order.
    fn flush(&mut self) -> Result<(), ScanError>;
}

/// A sink that builds owned `SegmentedCustomer` batches and hands each to a closure.
pub struct OwnedBatches<F> {
    on_batch: F,
    open: Vec<SegmentedCustomer>,
    seq: u64,
}

pub fn owned_batches<F>(on_batch: F) -> OwnedBatches<F>
where
    F: FnMut(u64, Vec<SegmentedCustomer>) -> Result<(), ScanError>,
{
    OwnedBatches {
        on_batch,
        open: Vec::new(),
        seq: 0,
    }
}

impl<F> BatchSink for OwnedBatches<F>
where
    F: FnMut(u64, Vec<SegmentedCustomer>) -> Result<(), ScanError>,
{
    fn add(&mut self, segment: &str, row: &CustomerRow) -> Result<(), ScanError> {
        self.open.push(SegmentedCustomer {
            segment: segment.to_string(),
            customer: row.to_customer(),
        });
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ScanError> {
        let batch = std::mem::take(&mut self.open);
        (self.on_batch)(self.seq, batch)?;
        self.seq += 1;
        Ok(())
    }
}

/// Stream the customers pass one admitted to `sink`, in batches of
/// `plan.batch_size`. Pass two does not decide again: it skips the rows pass
/// one excluded, so both passes agree by construction, and a row that is no
/// longer valid means the source changed.
pub fn pass_two(
    source: &(impl RowSource + ?Sized),
    plan: &Plan,
    one: &PassOne,
    sink: &mut impl BatchSink,
) -> Result<PassTwo, ScanError> {
    let batch_size = plan.batch_size.max(1);
    let names: Vec<&str> = plan
        .rules
        .segments()
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    let mut sizes = vec![0u64; names.len()];
    let mut skip = one.excluded_rows.iter().copied().peekable();
    let (mut customers_total, mut excluded, mut batches, mut open) = (0u64, 0u64, 0u64, 0usize);
    source.scan(&mut |at, row| {
        let ordinal = customers_total;
        customers_total += 1;
        if skip.next_if_eq(&ordinal).is_some() {
            excluded += 1;
            return Ok(());
        }
        let row = match row {
            Ok(row) if row.validate().is_ok() => row,
            _ => {
                return Err(ScanError::Changed(format!(
                    "{at} was valid in the first read"
                )));
            }
        };
        let segment = plan.rules.classify(&row.features());
        sizes[segment] += 1;
        sink.add(names[segment], &row)?;
        open += 1;
        if open == batch_size {
            sink.flush()?;
            batches += 1;
            open = 0;
        }
        Ok(())
    })?;
    if open > 0 {
        sink.flush()?;
        batches += 1;
    }
    Ok(PassTwo {
        customers_total,
        sizes,
        excluded,
        batches,
        stamp: source.stamp(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpo_shared::model::ExclusionReason;

    const CSV: &str = "\
customer_id,first_name,email,age,location,tier,purchase_frequency,avg_order_value,last_engagement_days,historical_open_rate,historical_click_rate,consent
C1,Ana,ana@example.com,34,Austin,gold,5,250.0,10,0.4,0.1,true
C2,Ben,ben@example.com,40,Boston,silver,8,abc,40,0.3,0.1,yes
C3,Cy,cy@example.com,29,Denver,bronze,1,20.0,3,0.2,0.05,no
C4,Dina,di@example.com,51,\"Mi\nami\",silver,2,30.0,5,0.2,0.1,1
C5,Ed,ed@example.com,45,Paris,gold,9,80
C1,Ana,ana@example.com,34,Austin,gold,5,250.0,10,0.4,0.1,true
C6,Fay,fay@example.com,38,Rome,gold,15,90.0,5,0.7,0.3,TRUE
";

    fn plan(batch_size: usize) -> Plan {
        Plan {
            rules: RuleSet::bundled().unwrap(),
            suppressions: Suppressions::default(),
            batch_size,
        }
    }

    #[test]
    fn malformed_rows_name_their_line_and_the_run_goes_on() {
        let one = pass_one(&MultilineCsvText(CSV.as_bytes()), &plan(2)).unwrap();
        let details: Vec<(&str, ExclusionReason)> = one
            .exclusions
            .iter()
            .map(|e| (e.detail.as_str(), e.reason))
            .collect();
        assert_eq!(
            details,
            [
                (
                    "line 3: avg_order_value: \"abc\" is not a number",
                    ExclusionReason::Invalid
                ),
                ("line 4: no marketing consent", ExclusionReason::NoConsent),
                // the quoted newline in C4 makes C5 start on line 7
                (
                    "line 7: expected 12 fields, found 8",
                    ExclusionReason::Invalid
                ),
                (
                    "line 8: customer_id repeats line 2",
                    ExclusionReason::Duplicate
                ),
            ]
        );
        assert_eq!(one.exclusions[0].customer_id.as_deref(), Some("C2"));
        assert_eq!(one.exclusions[2].line, Some(7));
        assert_eq!(one.customers_total, 7);
        let names: Vec<_> = one
            .profiles
            .iter()
            .map(|p| (p.name.as_str(), p.size))
            .collect();
        assert_eq!(
            names,
            [
                ("High-Value Recent", 1),
                ("New Customer", 1),
                ("Loyal Frequent", 1)
            ]
        );
    }

    #[test]
    fn pass_two_agrees_with_pass_one_and_batches_in_file_order() {
        let source = MultilineCsvText(CSV.as_bytes());
        let one = pass_one(&source, &plan(2)).unwrap();
        let mut seen = Vec::new();
        let mut sink = owned_batches(|seq, batch| {
            seen.push((seq, batch));
            Ok(())
        });
        let two = pass_two(&source, &plan(2), &one, &mut sink).unwrap();
        one.check(&two).unwrap();
        assert_eq!(two.batches, one.batches(2));
        let ids: Vec<Vec<&str>> = seen
            .iter()
            .map(|(_, b)| b.iter().map(|c| c.customer.customer_id.as_str()).collect())
            .collect();
        assert_eq!(ids, [vec!["C1", "C4"], vec!["C6"]]);
        assert_eq!(seen[1].0, 1);
        assert_eq!(seen[0].1[1].customer.location, "Mi\nami");
        assert_eq!(seen[1].1[0].segment, "Loyal Frequent");
    }

    #[test]
    fn one_row_per_line_by_default_so_a_line_break_breaks_one_row() {
        let one = pass_one(&CsvText(CSV.as_bytes()), &plan(2)).unwrap();
        let details: Vec<&str> = one.exclusions.iter().map(|e| e.detail.as_str()).collect();
        assert_eq!(
            details,
            [
                "line 3: avg_order_value: \"abc\" is not a number",
                "line 4: no marketing consent",
                "line 5: unbalanced quote: a quoted field is still open at the end of the line \
                 (set segmentation.csv.multiline_fields if fields hold line breaks)",
                "line 6: expected 12 fields, found 8",
                "line 7: expected 12 fields, found 8",
                "line 8: customer_id repeats line 2",
            ]
        );
        assert_eq!(one.exclusions[2].customer_id.as_deref(), Some("C4"));
        // every physical data line is one row
        assert_eq!(one.customers_total, CSV.lines().count() as u64 - 1);
    }

    #[test]
    fn a_changed_file_is_detected() {
        let source = MultilineCsvText(CSV.as_bytes());
        let one = pass_one(&source, &plan(10)).unwrap();
        let shorter = CSV.rsplit_once("C6").unwrap().0;
        let two = pass_two(
            &MultilineCsvText(shorter.as_bytes()),
            &plan(10),
            &one,
            &mut owned_batches(|_, _| Ok(())),
        )
        .unwrap();
        assert!(matches!(one.check(&two), Err(ScanError::Changed(_))));
        // a row pass one admitted is now broken
        let broken = CSV.replace("C6,Fay,fay@example.com", "C6,Fay,fay.example.com");
        let err = pass_two(
            &MultilineCsvText(broken.as_bytes()),
            &plan(10),
            &one,
            &mut owned_batches(|_, _| Ok(())),
        )
        .unwrap_err();
        assert!(err.to_string().contains("line 9 was valid"), "{err}");
    }

    #[test]
    fn a_rewritten_file_is_detected_by_its_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.csv");
        std::fs::write(&path, CSV).unwrap();
        let source = CsvFile::new(path.clone());
        let one = pass_one(&source, &plan(10)).unwrap();
        // Same rows, same decisions: only the stamp can tell.
        std::fs::write(&path, CSV.replace("Austin", "Austin ")).unwrap();
        let two = pass_two(&source, &plan(10), &one, &mut owned_batches(|_, _| Ok(()))).unwrap();
        assert_eq!(two.sizes, one.sizes);
        assert!(matches!(one.check(&two), Err(ScanError::Changed(_))));
    }

    #[test]
    fn header_and_file_errors_are_distinct() {
        let err = pass_one(&CsvText(b"id,name\n1,x\n"), &plan(10)).unwrap_err();
        assert!(matches!(err, ScanError::Header { .. }), "{err}");
        let missing = CsvFile::new("no-such-dir/customers.csv");
        let err = pass_one(&missing, &plan(10)).unwrap_err();
        assert!(
            err.to_string().contains("no-such-dir/customers.csv"),
            "{err}"
        );
        assert!(matches!(err, ScanError::Open { .. }));
    }

    #[test]
    fn a_stopped_sink_stops_the_pass() {
        let mut calls = 0;
        let one = pass_one(&CsvText(CSV.as_bytes()), &plan(1)).unwrap();
        let mut sink = owned_batches(|_, _| {
            calls += 1;
            Err(ScanError::Stopped)
        });
        let err = pass_two(&CsvText(CSV.as_bytes()), &plan(1), &one, &mut sink).unwrap_err();
        assert!(matches!(err, ScanError::Stopped));
        assert_eq!(calls, 1);
    }
}
