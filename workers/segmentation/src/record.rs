//! One audience row: parsed from a CSV record (borrowing its bytes) or borrowed
//! from an inline `Customer`, then validated the same way either way.
//!
//! Rows are views (`&str` into the record) so reading a million of them costs no
//! allocation until pass two builds the owned `Customer`s a batch carries.

use std::fmt;

use cpo_shared::model::Customer;
use csv::ByteRecord;

use crate::fields::{check_email, consent, non_negative, real, unit_rate, whole};
use crate::rules::Features;

/// The columns a customer CSV must have (any order; extra columns are ignored).
pub const COLUMNS: [&str; 12] = [
    "customer_id",
    "first_name",
    "email",
    "age",
    "location",
    "tier",
    "purchase_frequency",
    "avg_order_value",
    "last_engagement_days",
    "historical_open_rate",
    "historical_click_rate",
    "consent",
];

/// Nobody is 150; a larger age is a unit or export mistake, not a customer.
const MAX_AGE: u32 = 150;

/// Where each required column sits in the header.
#[derive(Debug, Clone)]
pub struct Columns {
    index: [usize; 12],
    width: usize,
}

impl Columns {
    pub fn from_header(header: &ByteRecord) -> Result<Self, String> {
        let names: Vec<&str> = header
            .iter()
            .map(|raw| {
                let name = std::str::from_utf8(raw).unwrap_or("");
                name.trim_start_matches('\u{feff}').trim()
            })
            .collect();
        let mut index = [0; 12];
        for (slot, wanted) in index.iter_mut().zip(COLUMNS) {
            *slot = names
                .iter()
                .position(|name| name.eq_ignore_ascii_case(wanted))
                .ok_or_else(|| format!("header has no {wanted:?} column"))?;
        }
        Ok(Self {
            index,
            width: names.len(),
        })
    }

    /// The customer id of a row that failed to parse, when there is a usable one.
    pub fn id_hint<'a>(&self, record: &'a ByteRecord) -> Option<&'a str> {
        let raw = record.get(self.index[0])?;
        let id = std::str::from_utf8(raw).ok()?.trim();
        (!id.is_empty()).then_some(id)
    }
}

/// A customer as segmentation sees it, borrowed from a CSV record or a `Customer`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CustomerRow<'a> {
    pub customer_id: &'a str,
    pub first_name: &'a str,
    pub email: &'a str,
    pub age: u32,
    pub location: &'a str,
    pub tier: &'a str,
    pub purchase_frequency: u32,
    pub avg_order_value: f64,
    pub last_engagement_days: u32,
    pub historical_open_rate: f64,
    pub historical_click_rate: f64,
    pub consent: bool,
}

impl<'a> CustomerRow<'a> {
    pub fn from_customer(c: &'a Customer) -> Self {
        Self {
            customer_id: c.customer_id.trim(),
            first_name: c.first_name.trim(),
            email: c.email.trim(),
            age: c.age,
            location: c.location.trim(),
            tier: c.tier.trim(),
            purchase_frequency: c.purchase_frequency,
            avg_order_value: c.avg_order_value,
            last_engagement_days: c.last_engagement_days,
            historical_open_rate: c.historical_open_rate,
            historical_click_rate: c.historical_click_rate,
            consent: c.consent,
        }
    }

    /// Parse the syntax of every field; `validate` then checks ranges and identity fields.
    pub fn parse(record: &'a ByteRecord, columns: &Columns) -> Result<Self, RowError> {
        if record.len() != columns.width {
            return Err(RowError::FieldCount {
                found: record.len(),
                expected: columns.width,
            });
        }
        // One UTF-8 check for the whole record instead of one per field; a field of
        // valid text is then valid unless it splits a character (`get` says so).
        let whole_record = std::str::from_utf8(record.as_slice()).ok();
        let text = |i: usize| -> Result<&'a str, RowError> {
            let column = columns.index[i];
            let checked = whole_record.zip(record.range(column));
            let field = match checked.and_then(|(all, range)| all.get(range)) {
                Some(field) => field,
                None => std::str::from_utf8(record.get(column).unwrap_or_default())
                    .map_err(|_| RowError::field(COLUMNS[i], Problem::NotUtf8))?,
            };
            // ASCII trimming: Unicode-aware `str::trim` costs more per field.
            Ok(field.trim_ascii())
        };
        Ok(Self {
            customer_id: text(0)?,
            first_name: text(1)?,
            email: text(2)?,
            age: whole(COLUMNS[3], text(3)?)?,
            location: text(4)?,
            tier: text(5)?,
            purchase_frequency: whole(COLUMNS[6], text(6)?)?,
            avg_order_value: real(COLUMNS[7], text(7)?)?,
            last_engagement_days: whole(COLUMNS[8], text(8)?)?,
            historical_open_rate: real(COLUMNS[9], text(9)?)?,
            historical_click_rate: real(COLUMNS[10], text(10)?)?,
            consent: consent(text(11)?)?,
        })
    }

    /// Checks both sources share: identity fields and value ranges.
    pub fn validate(&self) -> Result<(), RowError> {
        if self.customer_id.is_empty() {
            return Err(RowError::field("customer_id", Problem::Empty));
        }
        check_email(self.email).map_err(|why| RowError::field("email", Problem::BadEmail(why)))?;
        check_first_name(self.first_name)?;
        if self.age > MAX_AGE {
            return Err(RowError::field(
                "age",
                Problem::Implausible(self.age.to_string()),
            ));
        }
        non_negative("avg_order_value", self.avg_order_value)?;
        unit_rate("historical_open_rate", self.historical_open_rate)?;
        unit_rate("historical_click_rate", self.historical_click_rate)?;
        Ok(())
    }

    pub fn features(&self) -> Features<'a> {
        Features {
            avg_order_value: self.avg_order_value,
            last_engagement_days: self.last_engagement_days,
            purchase_frequency: self.purchase_frequency,
            age: self.age,
            historical_open_rate: self.historical_open_rate,
            historical_click_rate: self.historical_click_rate,
            tier: self.tier,
        }
    }

    pub fn to_customer(&self) -> Customer {
        Customer {
            customer_id: self.customer_id.to_string(),
            first_name: self.first_name.to_string(),
            email: self.email.to_string(),
            age: self.age,
            location: self.location.to_string(),
            tier: self.tier.to_string(),
            purchase_frequency: self.purchase_frequency,
            avg_order_value: self.avg_order_value,
            last_engagement_days: self.last_engagement_days,
            historical_open_rate: self.historical_open_rate,
            historical_click_rate: self.historical_click_rate,
            consent: self.consent,
        }
    }
}

/// The first name is merged into the greeting of every message: an address
/// there (the mark of a shifted or swallowed row) would mail one customer's
/// address to another, and a control character would break the line.
fn check_first_name(name: &str) -> Result<(), RowError> {
    if name.contains('@') {
        return Err(RowError::field("first_name", Problem::HoldsAddress));
    }
    if name.chars().any(char::is_control) {
        return Err(RowError::field("first_name", Problem::ControlCharacter));
    }
    Ok(())
}

/// Why a row is invalid. Displays as `avg_order_value: "abc" is not a number`.
#[derive(Debug, Clone, PartialEq)]
pub enum RowError {
    /// A quoted field still open at the end of its line (one row per line).
    UnbalancedQuote,
    /// A carriage return inside the line: a field holds a line break.
    LineBreak,
    FieldCount {
        found: usize,
        expected: usize,
    },
    Field {
        field: &'static str,
        problem: Problem,
    },
}

impl RowError {
    pub(crate) fn field(field: &'static str, problem: Problem) -> Self {
        Self::Field { field, problem }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    NotUtf8,
    Empty,
    NotANumber(String),
    NotWhole(String),
    NotFinite(String),
    Negative(String),
    OutsideUnit(String),
    Implausible(String),
    BadConsent(String),
    /// The address itself is never echoed: details end up in the ledger and summaries.
    BadEmail(&'static str),
    /// Nor is the address found in a first name.
    HoldsAddress,
    ControlCharacter,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnbalancedQuote => write!(
                f,
                "unbalanced quote: a quoted field is still open at the end of the line \
                 (set segmentation.csv.multiline_fields if fields hold line breaks)"
            ),
            Self::LineBreak => write!(f, "a field holds a line break (carriage return)"),
            Self::FieldCount { found, expected } => {
                write!(f, "expected {expected} fields, found {found}")
            }
            Self::Field { field, problem } => {
                write!(f, "{field}: ")?;
                match problem {
                    Problem::NotUtf8 => write!(f, "is not valid UTF-8"),
                    Problem::Empty => write!(f, "is empty"),
                    Problem::NotANumber(v) => write!(f, "{v:?} is not a number"),
                    Problem::NotWhole(v) => write!(f, "{v:?} is not a whole number"),
                    Problem::NotFinite(v) => write!(f, "{v:?} is not a finite number"),
                    Problem::Negative(v) => write!(f, "{v} must not be negative"),
                    Problem::OutsideUnit(v) => write!(f, "{v} is outside [0, 1]"),
                    Problem::Implausible(v) => write!(f, "{v} is not a plausible age"),
                    Problem::BadConsent(v) => {
                        write!(f, "{v:?} is not one of true/false/yes/no/1/0")
                    }
                    Problem::BadEmail(why) => write!(f, "not a valid address ({why})"),
                    Problem::HoldsAddress => write!(f, "holds an email address (\"@\")"),
                    Problem::ControlCharacter => write!(f, "holds a control character"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "customer_id,first_name,email,age,location,tier,purchase_frequency,avg_order_value,last_engagement_days,historical_open_rate,historical_click_rate,consent";

    fn record(line: &str) -> ByteRecord {
        ByteRecord::from(line.split(',').collect::<Vec<_>>())
    }

    fn columns() -> Columns {
        Columns::from_header(&record(HEADER)).unwrap()
    }

    fn parse(line: &str) -> Result<Customer, String> {
        let rec = record(line);
        let row = CustomerRow::parse(&rec, &columns()).map_err(|e| e.to_string())?;
        row.validate().map_err(|e| e.to_string())?;
        Ok(row.to_customer())
    }

    const GOOD: &str = "C1, Ana ,ana.lopez.1@example.com,34,Austin,gold,7,120.5,12,0.4,0.1,Yes";

    #[test]
    fn a_good_row_parses_and_trims() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.first_name, "Ana");
        assert_eq!(c.avg_order_value, 120.5);
        assert!(c.consent);
        assert!(!parse(&GOOD.replace("Yes", "0")).unwrap().consent);
        assert_eq!(
            parse(&GOOD.replace(",7,", ",7.0,"))
                .unwrap()
                .purchase_frequency,
            7
        );
    }

    #[test]
    fn columns_may_be_reordered_and_missing_ones_are_named() {
        let mut names: Vec<&str> = HEADER.split(',').collect();
        names.reverse();
        let cols = Columns::from_header(&ByteRecord::from(names.clone())).unwrap();
        let mut values: Vec<&str> = GOOD.split(',').collect();
        values.reverse();
        let rec = ByteRecord::from(values);
        assert_eq!(CustomerRow::parse(&rec, &cols).unwrap().customer_id, "C1");
        names.retain(|n| *n != "tier");
        let err = Columns::from_header(&ByteRecord::from(names)).unwrap_err();
        assert!(err.contains("\"tier\""), "{err}");
    }

    #[test]
    fn each_problem_names_its_field() {
        let cases = [
            (
                GOOD.replace("120.5", "abc"),
                "avg_order_value: \"abc\" is not a number",
            ),
            (
                GOOD.replace("120.5", "-3"),
                "avg_order_value: -3 must not be negative",
            ),
            (
                GOOD.replace("120.5", "NaN"),
                "avg_order_value: \"NaN\" is not a finite number",
            ),
            (GOOD.replace(",34,", ",-2,"), "age: -2 must not be negative"),
            (
                GOOD.replace(",34,", ",34.5,"),
                "age: \"34.5\" is not a whole number",
            ),
            (
                GOOD.replace(",34,", ",400,"),
                "age: 400 is not a plausible age",
            ),
            (GOOD.replace(",12,", ",,"), "last_engagement_days: is empty"),
            (
                GOOD.replace("0.4,", "1.7,"),
                "historical_open_rate: 1.7 is outside [0, 1]",
            ),
            (
                GOOD.replace("0.1,", "-0.1,"),
                "historical_click_rate: -0.1 must not be negative",
            ),
            (
                GOOD.replace("Yes", "maybe"),
                "consent: \"maybe\" is not one of",
            ),
            (GOOD.replace("C1", " "), "customer_id: is empty"),
            (
                GOOD.replace("ana.lopez.1@example.com", "ana.example.com"),
                "email: not a valid address (no \"@\")",
            ),
            (GOOD.replace(",gold", ""), "expected 12 fields, found 11"),
            (
                GOOD.replace(" Ana ", "Bob bob@example.com"),
                "first_name: holds an email address",
            ),
            (
                GOOD.replace(" Ana ", "Bo\nb"),
                "first_name: holds a control character",
            ),
        ];
        for (line, expected) in cases {
            let err = parse(&line).unwrap_err();
            assert!(
                err.starts_with(expected),
                "{line}: got {err:?}, want {expected:?}"
            );
            assert!(!err.contains("ana.lopez"), "an address leaked into {err:?}");
        }
    }

    #[test]
    fn invalid_utf8_is_reported_not_panicked_on() {
        let mut fields: Vec<Vec<u8>> = GOOD.split(',').map(|f| f.as_bytes().to_vec()).collect();
        fields[4] = vec![0xff, 0xfe];
        let rec = ByteRecord::from(fields);
        let err = CustomerRow::parse(&rec, &columns()).unwrap_err();
        assert_eq!(err.to_string(), "location: is not valid UTF-8");
        assert_eq!(columns().id_hint(&rec), Some("C1"));
        // "é" cut in two across location and tier: valid as a whole record, not per field
        let mut fields: Vec<Vec<u8>> = GOOD.split(',').map(|f| f.as_bytes().to_vec()).collect();
        fields[4] = b"Austin\xc3".to_vec();
        fields[5] = b"\xa9gold".to_vec();
        let rec = ByteRecord::from(fields);
        assert!(std::str::from_utf8(rec.as_slice()).is_ok());
        let err = CustomerRow::parse(&rec, &columns()).unwrap_err();
        assert_eq!(err.to_string(), "location: is not valid UTF-8");
    }

    #[test]
    fn long_values_are_cut_in_details() {
        let junk = "x".repeat(500);
        let err = parse(&GOOD.replace("120.5", &junk)).unwrap_err();
        assert!(err.len() < 120, "{err}");
    }
}
