//! Types of the campaign record: exclusions written at assignment, and what
//! status, collect and analysis read back (counts, assignments, events).

use std::collections::BTreeMap;

use serde::Serialize;

/// A customer a campaign left out (at segmentation or assignment), with the reason
/// (`unsubscribed`, `bounced`, `complained`, `suppressed`, `frequency_cap`,
/// `no_approved_message`, `invalid`, `no_consent`, `duplicate`...). Keyed by
/// (campaign, `customer_id`), where segmentation's rows of an audience file use
/// `line:N` (a customer id may repeat over rows; each row counts once).
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
    /// Customers segmentation read (`None` until it recorded the audience).
    pub customers_total: Option<u64>,
    pub assigned: u64,
    /// Excluded at segmentation and at assignment, by reason.
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

    /// Customers neither assigned nor excluded, once the audience is recorded.
    pub fn outstanding(&self) -> Option<u64> {
        self.customers_total
            .map(|total| total.saturating_sub(self.assigned + self.excluded()))
    }
}
