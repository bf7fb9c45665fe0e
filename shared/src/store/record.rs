//! Types of the campaign record: exclusions written at assignment, and what
//! status, collect and analysis read back (counts, assignments, events).

use std::collections::BTreeMap;

use serde::Serialize;

/// A customer a campaign left out at assignment, with the reason
/// (`unsubscribed`, `bounced`, `complained`, `suppressed`, `frequency_cap`,
/// `no_approved_message`, `duplicate`). Keyed by (campaign, customer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExclusionRecord {
    pub campaign_id: String,
    pub customer_id: String,
    pub reason: String,
    pub detail: String,
}

/// One campaign as the store knows it: nothing here is consumed by reading.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CampaignCounts {
    pub assigned: u64,
    /// Excluded at assignment, by reason.
    pub excluded_by_reason: BTreeMap<String, u64>,
    /// Sends of this campaign's messages by state.
    pub sent: u64,
    pub failed: u64,
    /// Claimed by a delivery worker, outcome not known yet.
    pub in_flight: u64,
    /// Provider events that name one of this campaign's messages.
    pub events: u64,
}

impl CampaignCounts {
    pub fn excluded(&self) -> u64 {
        self.excluded_by_reason.values().sum()
    }
}
