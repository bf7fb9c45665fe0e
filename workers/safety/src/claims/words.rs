//! The words the fact reader knows: dates, deadlines, quantities and numbers
//! spelt out. Data, kept apart from the reader.

pub const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
pub const MONTH_ABBREVIATIONS: [(&str, usize); 12] = [
    ("jan", 0),
    ("feb", 1),
    ("mar", 2),
    ("apr", 3),
    ("jun", 5),
    ("jul", 6),
    ("aug", 7),
    ("sep", 8),
    ("sept", 8),
    ("oct", 9),
    ("nov", 10),
    ("dec", 11),
];
pub const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];
/// Deadlines that name no date: "today only", "ends tonight".
pub const DEADLINE_WORDS: [&str; 6] = [
    "today",
    "tonight",
    "tomorrow",
    "weekend",
    "midnight",
    "yesterday",
];
pub const QUANTITY_WORDS: [&str; 7] = [
    "half",
    "double",
    "twice",
    "triple",
    "quadruple",
    "quarter",
    "dozen",
];
pub const UNITS: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
pub const TENS: [&str; 8] = [
    "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];
