//! Who may be segmented at all: the one place that decides, for each row, between a
//! segment and an exclusion with its reason. Pass one runs it; pass two replays
//! pass one's decisions rather than deciding again.
//!
//! Precedence when several reasons apply: invalid, duplicate (id), duplicate
//! email, suppressed, no consent. Only a valid row claims its customer id and its
//! address (an invalid row's may be shifted columns), and the first valid
//! occurrence wins even when it is itself excluded, so a later copy cannot bring
//! back a customer who was suppressed or withheld consent. Addresses compare
//! case-insensitively: one mailbox gets one message, whatever ids it is filed under.

use std::fmt;

use cpo_shared::model::{Exclusion, ExclusionReason};

use crate::fingerprint::{IdKey, KeySet};
use crate::record::{CustomerRow, RowError};
use crate::rules::RuleSet;

/// Where a row came from: a CSV line (1-based, header is line 1) or an inline position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    Line(u64),
    Entry(u64),
}

impl Position {
    fn number(self) -> u64 {
        match self {
            Self::Line(n) | Self::Entry(n) => n,
        }
    }

    fn with_number(self, n: u64) -> Self {
        match self {
            Self::Line(_) => Self::Line(n),
            Self::Entry(_) => Self::Entry(n),
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Line(n) => write!(f, "line {n}"),
            Self::Entry(n) => write!(f, "customer {n}"),
        }
    }
}

/// A row that did not parse, with its id when one could be read.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected<'a> {
    pub customer_id: Option<&'a str>,
    pub error: RowError,
}

pub type RowResult<'a> = Result<CustomerRow<'a>, Rejected<'a>>;

/// Ids and addresses from `CampaignRequest.suppressions`. Ids match exactly,
/// addresses case-insensitively. Kept as fingerprints: the id's is computed
/// anyway, so a lookup costs one probe of a small table.
#[derive(Debug, Clone, Default)]
pub struct Suppressions {
    ids: KeySet,
    emails: KeySet,
}

impl Suppressions {
    pub fn new(entries: &[String]) -> Self {
        let mut suppressions = Self::default();
        for entry in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            if entry.contains('@') {
                suppressions.emails.insert(IdKey::of(&entry.to_lowercase()));
            }
            suppressions.ids.insert(IdKey::of(entry));
        }
        suppressions
    }

    /// Which field matched, if any; `email` is the address's `email_key`.
    fn matched(&self, id: IdKey, email: IdKey) -> Option<&'static str> {
        if self.ids.contains(&id) {
            return Some("customer_id");
        }
        self.emails.contains(&email).then_some("email")
    }
}

/// The fingerprint of an address, lowercased. `scratch` spares an allocation per row.
fn email_key(email: &str, scratch: &mut String) -> IdKey {
    scratch.clear();
    if email.is_ascii() {
        // The common case, and ten times cheaper than Unicode case mapping.
        scratch.push_str(email);
        scratch.make_ascii_lowercase();
    } else {
        scratch.extend(email.chars().flat_map(char::to_lowercase));
    }
    IdKey::of(scratch)
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Index into `RuleSet::segments`.
    Segment(usize),
    Excluded(Exclusion),
}

/// A valid row's id, where it was read, and its row ordinal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Sighting {
    key: IdKey,
    ordinal: u64,
    number: u64,
}

/// A later copy of an id or an address: its row ordinal, where the first copy
/// was read, and which of the two repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duplicate {
    ordinal: u64,
    first: u64,
    of: Repeated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeated {
    Id,
    Email,
}

/// Decides each row in order. Duplicates are found by sorting, not by a hash
/// table probed per row: a million random probes into a 50 MB table cost more
/// than the rest of the pass. So a screen either *records* ids (and
/// `duplicates()` sorts them afterwards) or *knows* the duplicates from such a
/// run; clean data, the common case, is screened once.
pub struct Screen<'p> {
    rules: &'p RuleSet,
    suppressions: &'p Suppressions,
    ordinal: u64,
    recording: bool,
    /// Recording: ids of valid rows, in row order.
    sightings: Vec<Sighting>,
    /// Recording: addresses of valid rows, in row order.
    addresses: Vec<Sighting>,
    /// Knowing: later copies, by ascending ordinal.
    duplicates: std::iter::Peekable<std::vec::IntoIter<Duplicate>>,
    scratch: String,
}

impl<'p> Screen<'p> {
    /// A recording screen; `expected_rows` sizes its id list.
    pub fn new(rules: &'p RuleSet, suppressions: &'p Suppressions, expected_rows: usize) -> Self {
        Self {
            rules,
            suppressions,
            ordinal: 0,
            recording: true,
            sightings: Vec::with_capacity(expected_rows),
            addresses: Vec::with_capacity(expected_rows),
            duplicates: Vec::new().into_iter().peekable(),
            scratch: String::new(),
        }
    }

    /// A screen that excludes the given later copies (from `duplicates()` of a
    /// recording run over the same rows) and records nothing.
    pub fn knowing(
        rules: &'p RuleSet,
        suppressions: &'p Suppressions,
        duplicates: Vec<Duplicate>,
    ) -> Self {
        Self {
            recording: false,
            duplicates: duplicates.into_iter().peekable(),
            ..Self::new(rules, suppressions, 0)
        }
    }

    /// Later copies among the recorded rows: every valid row whose id an
    /// earlier valid row already had, then every other valid row whose address
    /// an earlier one (not itself a repeated id) already had, each with that
    /// earlier row's position number; by ascending ordinal.
    pub fn duplicates(&mut self) -> Vec<Duplicate> {
        let mut duplicates = later_copies(std::mem::take(&mut self.sightings), Repeated::Id);
        duplicates.sort_unstable_by_key(|d| d.ordinal);
        let mut addresses = std::mem::take(&mut self.addresses);
        if !duplicates.is_empty() {
            // A repeated id is excluded as such, and does not claim its address.
            addresses.retain(|a| {
                duplicates
                    .binary_search_by_key(&a.ordinal, |d| d.ordinal)
                    .is_err()
            });
        }
        duplicates.extend(later_copies(addresses, Repeated::Email));
        duplicates.sort_unstable_by_key(|d| d.ordinal);
        duplicates
    }

    pub fn admit(&mut self, at: Position, row: &RowResult) -> Outcome {
        let ordinal = self.ordinal;
        self.ordinal += 1;
        let row = match row {
            Ok(row) => row,
            Err(rejected) => {
                return exclude(
                    at,
                    rejected.customer_id,
                    ExclusionReason::Invalid,
                    &rejected.error,
                );
            }
        };
        if let Err(error) = row.validate() {
            let id = (!row.customer_id.is_empty()).then_some(row.customer_id);
            return exclude(at, id, ExclusionReason::Invalid, &error);
        }
        let id = Some(row.customer_id);
        if let Some(duplicate) = self.duplicates.next_if(|d| d.ordinal == ordinal) {
            let (reason, field) = match duplicate.of {
                Repeated::Id => (ExclusionReason::Duplicate, "customer_id"),
                Repeated::Email => (ExclusionReason::DuplicateEmail, "email"),
            };
            return exclude(
                at,
                id,
                reason,
                &format_args!("{field} repeats {}", at.with_number(duplicate.first)),
            );
        }
        let key = IdKey::of(row.customer_id);
        let email = email_key(row.email, &mut self.scratch);
        if self.recording {
            let number = at.number();
            self.sightings.push(Sighting {
                key,
                ordinal,
                number,
            });
            self.addresses.push(Sighting {
                key: email,
                ordinal,
                number,
            });
        }
        if let Some(field) = self.suppressions.matched(key, email) {
            return exclude(
                at,
                id,
                ExclusionReason::Suppressed,
                &format_args!("suppressed by {field}"),
            );
        }
        if !row.consent {
            return exclude(at, id, ExclusionReason::NoConsent, &"no marketing consent");
        }
        Outcome::Segment(self.rules.classify(&row.features()))
    }
}

/// In each run of equal keys, every sighting after the first (in row order).
fn later_copies(mut sightings: Vec<Sighting>, of: Repeated) -> Vec<Duplicate> {
    sightings.sort_unstable();
    sightings
        .chunk_by(|a, b| a.key == b.key)
        .filter(|copies| copies.len() > 1)
        .flat_map(|copies| {
            let first = copies[0].number;
            copies[1..].iter().map(move |later| Duplicate {
                ordinal: later.ordinal,
                first,
                of,
            })
        })
        .collect()
}

fn exclude(
    at: Position,
    customer_id: Option<&str>,
    reason: ExclusionReason,
    why: &dyn fmt::Display,
) -> Outcome {
    Outcome::Excluded(Exclusion {
        line: match at {
            Position::Line(n) => Some(n),
            Position::Entry(_) => None,
        },
        customer_id: customer_id.map(str::to_string),
        reason,
        detail: format!("{at}: {why}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpo_shared::model::Customer;

    fn customer(id: &str, email: &str, consent: bool) -> Customer {
        Customer {
            customer_id: id.into(),
            first_name: "Ana".into(),
            email: email.into(),
            age: 30,
            location: "Austin".into(),
            tier: "gold".into(),
            purchase_frequency: 5,
            avg_order_value: 80.0,
            last_engagement_days: 10,
            historical_open_rate: 0.3,
            historical_click_rate: 0.1,
            consent,
        }
    }

    fn outcomes(customers: &[Customer], suppressions: &[&str]) -> Vec<Outcome> {
        let rules = RuleSet::bundled().unwrap();
        let entries: Vec<String> = suppressions.iter().map(|s| s.to_string()).collect();
        let suppressions = Suppressions::new(&entries);
        let run = |screen: &mut Screen| -> Vec<Outcome> {
            customers
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let row = Ok(CustomerRow::from_customer(c));
                    screen.admit(Position::Line(i as u64 + 2), &row)
                })
                .collect()
        };
        let mut recording = Screen::new(&rules, &suppressions, customers.len());
        let tentative = run(&mut recording);
        let duplicates = recording.duplicates();
        if duplicates.is_empty() {
            return tentative;
        }
        run(&mut Screen::knowing(&rules, &suppressions, duplicates))
    }

    fn reason(outcome: &Outcome) -> Option<ExclusionReason> {
        match outcome {
            Outcome::Excluded(e) => Some(e.reason),
            Outcome::Segment(_) => None,
        }
    }

    #[test]
    fn consent_suppression_and_duplicates_are_excluded_with_reasons() {
        let list = [
            customer("C1", "a@example.com", true),
            customer("C2", "b@example.com", false),
            customer("C3", "Carol@Example.com", true),
            customer("C4", "d@example.com", true),
            customer("C1", "a2@example.com", true),
        ];
        let got = outcomes(&list, &["carol@example.COM", " C4 "]);
        let reasons: Vec<_> = got.iter().map(reason).collect();
        assert_eq!(
            reasons,
            [
                None,
                Some(ExclusionReason::NoConsent),
                Some(ExclusionReason::Suppressed),
                Some(ExclusionReason::Suppressed),
                Some(ExclusionReason::Duplicate),
            ]
        );
        let Outcome::Excluded(dup) = &got[4] else {
            unreachable!()
        };
        assert_eq!(dup.detail, "line 6: customer_id repeats line 2");
        assert_eq!(dup.line, Some(6));
        assert_eq!(dup.customer_id.as_deref(), Some("C1"));
        let Outcome::Excluded(by_email) = &got[2] else {
            unreachable!()
        };
        assert_eq!(by_email.detail, "line 4: suppressed by email");
        assert!(!by_email.detail.contains("arol"), "address leaked");
    }

    #[test]
    fn the_first_valid_occurrence_wins_even_when_excluded() {
        // Withdrawn consent must not be undone by a later copy of the same customer.
        let list = [
            customer("C1", "a@example.com", false),
            customer("C1", "a@example.com", true),
        ];
        let reasons: Vec<_> = outcomes(&list, &[]).iter().map(reason).collect();
        assert_eq!(
            reasons,
            [
                Some(ExclusionReason::NoConsent),
                Some(ExclusionReason::Duplicate)
            ]
        );
    }

    #[test]
    fn an_invalid_row_does_not_claim_its_id_and_outranks_other_reasons() {
        let list = [
            customer("C1", "not-an-address", false),
            customer("C1", "a@example.com", true),
        ];
        let got = outcomes(&list, &["C1"]);
        assert_eq!(reason(&got[0]), Some(ExclusionReason::Invalid));
        assert_eq!(reason(&got[1]), Some(ExclusionReason::Suppressed));
        let Outcome::Excluded(invalid) = &got[0] else {
            unreachable!()
        };
        assert!(
            invalid
                .detail
                .starts_with("line 2: email: not a valid address")
        );
    }

    #[test]
    fn duplicates_are_found_whatever_the_order() {
        let rules = RuleSet::bundled().unwrap();
        let none = Suppressions::default();
        let ids = ["C3", "C1", "C2", "C1", "C3", "C1"];
        let customers: Vec<Customer> = ids
            .iter()
            .map(|id| customer(id, "a@example.com", true))
            .collect();
        let mut screen = Screen::new(&rules, &none, 0);
        for (i, c) in customers.iter().enumerate() {
            screen.admit(
                Position::Entry(i as u64 + 1),
                &Ok(CustomerRow::from_customer(c)),
            );
        }
        let found: Vec<(u64, u64, Repeated)> = screen
            .duplicates()
            .iter()
            .map(|d| (d.ordinal, d.first, d.of))
            .collect();
        // every row has the same address: the first C1 and C2 are new ids on
        // C3's address; the later copies of an id are repeated ids only
        assert_eq!(
            found,
            [
                (1, 1, Repeated::Email),
                (2, 1, Repeated::Email),
                (3, 2, Repeated::Id),
                (4, 1, Repeated::Id),
                (5, 2, Repeated::Id)
            ]
        );
    }

    #[test]
    fn one_address_under_several_ids_gets_one_message() {
        let list = [
            customer("C1", "Ann@Example.com", true),
            customer("C2", "bob@example.com", true),
            customer("C3", "ann@example.COM", true),
            customer("C1", "ann@example.com", true),
            customer("C4", "bob@example.com", false),
        ];
        let got = outcomes(&list, &[]);
        let reasons: Vec<_> = got.iter().map(reason).collect();
        assert_eq!(
            reasons,
            [
                None,
                None,
                Some(ExclusionReason::DuplicateEmail),
                Some(ExclusionReason::Duplicate),
                Some(ExclusionReason::DuplicateEmail),
            ]
        );
        let Outcome::Excluded(second) = &got[2] else {
            unreachable!()
        };
        assert_eq!(second.detail, "line 4: email repeats line 2");
        assert_eq!(second.customer_id.as_deref(), Some("C3"));
        assert!(!second.detail.contains("ann@"), "address leaked");
    }

    #[test]
    fn positions_display_as_lines_or_entries() {
        assert_eq!(Position::Line(17).to_string(), "line 17");
        assert_eq!(Position::Entry(3).to_string(), "customer 3");
    }
}
