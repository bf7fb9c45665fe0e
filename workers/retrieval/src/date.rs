//! Calendar dates (`YYYY-MM-DD`) for content approval and expiry.
//!
//! A date is all the corpus needs, so a day count since 1970-01-01 is enough and
//! saves a date-time dependency. The conversions are Howard Hinnant's
//! `days_from_civil` / `civil_from_days`, exact for the proleptic Gregorian calendar.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// A calendar date, ordered by time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    /// Days since 1970-01-01 (negative before it).
    days: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a date of the form YYYY-MM-DD: {reason}")]
pub struct DateError {
    pub input: String,
    pub reason: &'static str,
}

impl Date {
    /// The date from year, month (1-12) and day (1-31), if it exists.
    pub fn from_ymd(year: i64, month: u32, day: u32) -> Option<Self> {
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        Some(Self {
            days: days_from_civil(year, month, day),
        })
    }

    /// Strict `YYYY-MM-DD` (four-digit year, zero-padded month and day).
    pub fn parse(input: &str) -> Result<Self, DateError> {
        let fail = |reason| DateError {
            input: input.chars().take(40).collect(),
            reason,
        };
        let bytes = input.as_bytes();
        if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
            return Err(fail("expected YYYY-MM-DD"));
        }
        let number = |range: std::ops::Range<usize>| -> Result<u32, DateError> {
            let part = &bytes[range];
            if !part.iter().all(u8::is_ascii_digit) {
                return Err(fail("expected digits"));
            }
            Ok(part
                .iter()
                .fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0')))
        };
        let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
        Self::from_ymd(i64::from(year), month, day).ok_or_else(|| fail("no such day"))
    }

    /// Today in UTC, from the system clock.
    pub fn today() -> Self {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Self {
            days: i64::try_from(secs / 86_400).unwrap_or(0),
        }
    }

    /// Days since 1970-01-01; what the index stores.
    pub fn days_since_epoch(self) -> i64 {
        self.days
    }

    /// The day after this one.
    pub fn next_day(self) -> Self {
        Self {
            days: self.days + 1,
        }
    }

    pub fn ymd(self) -> (i64, u32, u32) {
        civil_from_days(self.days)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_dates_map_to_known_day_counts() {
        assert_eq!(Date::parse("1970-01-01").unwrap().days_since_epoch(), 0);
        assert_eq!(
            Date::parse("2000-03-01").unwrap().days_since_epoch(),
            11_017
        );
        assert_eq!(
            Date::parse("2026-11-24").unwrap().days_since_epoch(),
            20_781
        );
        assert!(Date::parse("2024-02-29").is_ok());
    }

    #[test]
    fn malformed_and_impossible_dates_are_rejected() {
        for bad in [
            "",
            "2026-1-01",
            "2026/01/01",
            "2026-13-01",
            "2026-00-10",
            "2025-02-29",
            "2026-04-31",
            "１９７０-01-01",
            "2026-01-01T00:00",
        ] {
            assert!(Date::parse(bad).is_err(), "{bad} parsed");
        }
    }

    proptest! {
        #[test]
        fn display_and_parse_round_trip(days in -200_000i64..200_000) {
            let date = Date { days };
            let text = date.to_string();
            if date.ymd().0 >= 0 && date.ymd().0 <= 9999 {
                prop_assert_eq!(Date::parse(&text).unwrap(), date);
            }
            prop_assert!(date < date.next_day());
        }

        #[test]
        fn parse_never_panics(input in "\\PC{0,16}") {
            let _ = Date::parse(&input);
        }
    }
}
