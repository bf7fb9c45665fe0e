//! Types of the engagement side of the record: the suppression reasons every
//! writer uses, and what `cpo forget` asks the store to erase.

/// Why a key is suppressed. A closed set: the reasons travel into exclusions,
/// summaries and metric labels, which must stay bounded.
pub mod reasons {
    /// A hard bounce: the address does not exist.
    pub const BOUNCED: &str = "bounced";
    /// A spam complaint (feedback loop).
    pub const COMPLAINED: &str = "complained";
    /// The recipient unsubscribed (link, one-click header, ESP list).
    pub const UNSUBSCRIBED: &str = "unsubscribed";
    /// Added by an operator (`cpo suppress add`, imports).
    pub const SUPPRESSED: &str = "suppressed";
    /// The tombstone `cpo forget` leaves (GDPR art. 17): the person was erased.
    pub const ERASED: &str = "erased";

    /// Every reason, in the order reports list them.
    pub const ALL: [&str; 5] = [BOUNCED, COMPLAINED, UNSUBSCRIBED, SUPPRESSED, ERASED];

    /// Reasons an operator may give by hand (`erased` only comes from `cpo forget`).
    pub const MANUAL: [&str; 4] = [SUPPRESSED, UNSUBSCRIBED, BOUNCED, COMPLAINED];
}

/// What the raw payload of an erased event is replaced with.
pub const ERASED_RAW: &str = r#"{"erased":true}"#;

/// What assignments of an erased customer keep as their customer id.
pub const ERASED_CUSTOMER: &str = "erased";

/// A request to erase one person (`cpo forget`). The address is used only to
/// find the event payloads that contain it and is never written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erasure {
    /// The address, trimmed and lower-cased.
    pub address: String,
    /// Its keyed hash (`AddressHasher`): the tombstone's key.
    pub address_hash: String,
    /// Customer ids known to be this person (more are found through the
    /// events that contain the address).
    pub customers: Vec<String>,
    /// Source of the tombstone (`cli`).
    pub source: String,
    pub now_ms: i64,
}

/// What an erasure changed, row counts per table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErasureReport {
    /// Customer ids erased: the given ones plus those found through events.
    pub customers: Vec<String>,
    /// Assignments whose customer id became `erased`.
    pub assignments: u64,
    /// Events whose raw payload was replaced.
    pub events: u64,
    /// Sends whose last error (which may quote the address) was cleared.
    pub sends: u64,
    /// Contact-history rows deleted.
    pub contacts: u64,
    /// Customer-keyed suppressions replaced by the address tombstone.
    pub suppressions: u64,
}
