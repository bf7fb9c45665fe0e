//! The system of record at assignment: every customer batch is checked against
//! the store's suppressions and the frequency cap (`policy.frequency_cap`) in
//! batched lookups before any customer is assigned, and what the batch decided
//! (assignments, contacts, exclusions) is written back in bulk before its send
//! batch is published.

use std::collections::HashMap;
use std::sync::Arc;

use cpo_shared::log_field::bounded;
use cpo_shared::model::{CustomerBatch, Exclusion, ExclusionReason};
use cpo_shared::privacy::AddressHasher;
use cpo_shared::store::{Assignment, Contact, ExclusionRecord, Store, StoreError, SuppressionKey};
use serde::Deserialize;

use crate::assign::RecordExclusions;
use crate::error::ExperimentError;
use crate::output::OutboundMessageOut;

const DAY_MS: i64 = 24 * 3_600 * 1_000;

/// Config section `policy`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// At most `max_messages` messages per customer in any `window_days`, across
    /// campaigns. Off when unset.
    pub frequency_cap: Option<FrequencyCap>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrequencyCap {
    pub max_messages: u32,
    pub window_days: u32,
}

impl PolicyConfig {
    pub fn validate(&self) -> Result<(), String> {
        if let Some(cap) = &self.frequency_cap {
            if cap.max_messages == 0 {
                return Err("key `policy.frequency_cap.max_messages`: must be at least 1".into());
            }
            if cap.window_days == 0 {
                return Err("key `policy.frequency_cap.window_days`: must be at least 1".into());
            }
        }
        Ok(())
    }
}

/// The reason a suppression's stored reason becomes. The events stage and
/// `cpo suppress` write `unsubscribed`/`bounced`/`complained` (the other
/// spellings are accepted too); anything else is `suppressed`.
pub fn exclusion_reason(stored: &str) -> ExclusionReason {
    match stored.trim().to_ascii_lowercase().as_str() {
        "unsubscribed" | "unsubscribe" | "one_click" | "list_unsubscribe" => {
            ExclusionReason::Unsubscribed
        }
        "bounced" | "bounce" | "hard_bounce" => ExclusionReason::Bounced,
        "complained" | "complaint" | "spam_complaint" | "spamreport" => ExclusionReason::Complained,
        _ => ExclusionReason::Suppressed,
    }
}

fn store_error(error: StoreError) -> ExperimentError {
    match error {
        StoreError::Transient(m) => ExperimentError::Store(m),
        StoreError::Permanent(m) => ExperimentError::StoreRefused(m),
    }
}

/// What the stage needs of the record.
#[derive(Clone)]
pub struct Record {
    store: Arc<dyn Store>,
    addresses: Arc<AddressHasher>,
    policy: PolicyConfig,
}

impl Record {
    pub fn new(store: Arc<dyn Store>, addresses: AddressHasher, policy: PolicyConfig) -> Self {
        Self {
            store,
            addresses: Arc::new(addresses),
            policy,
        }
    }

    /// The customers of `batch` the record excludes, with reasons: suppressed by
    /// customer id or by the keyed hash of the address (one query for the batch),
    /// then over the frequency cap (one more query). Contacts of this campaign
    /// itself never count, so a redelivered batch decides the same way.
    pub async fn screen(
        &self,
        batch: &CustomerBatch,
        now_ms: i64,
    ) -> Result<RecordExclusions, ExperimentError> {
        let mut excluded = RecordExclusions::new();
        if batch.customers.is_empty() {
            return Ok(excluded);
        }
        let mut keys = Vec::with_capacity(batch.customers.len() * 2);
        let mut owners: HashMap<SuppressionKey, Vec<&str>> = HashMap::new();
        for entry in &batch.customers {
            let id = entry.customer.customer_id.as_str();
            for key in [
                SuppressionKey::Customer(id.to_string()),
                SuppressionKey::AddressHash(self.addresses.hash(&entry.customer.email)),
            ] {
                owners.entry(key.clone()).or_default().push(id);
                keys.push(key);
            }
        }
        let mut found = self
            .store
            .suppressions_of(&keys)
            .await
            .map_err(store_error)?;
        // Customer-id suppressions first, so the reason shown does not depend on row order.
        found.sort_by(|a, b| a.key.cmp(&b.key));
        for suppression in found {
            let by = match &suppression.key {
                SuppressionKey::Customer(_) => "customer id",
                SuppressionKey::AddressHash(_) => "address",
            };
            for id in owners.get(&suppression.key).into_iter().flatten() {
                excluded.entry(id.to_string()).or_insert_with(|| {
                    (
                        exclusion_reason(&suppression.reason),
                        // Stored text is input (a webhook, an import): bounded here.
                        format!(
                            "suppressed by {by}: {} (source {})",
                            bounded(&suppression.reason),
                            bounded(&suppression.source)
                        ),
                    )
                });
            }
        }
        if let Some(cap) = self.policy.frequency_cap {
            let open: Vec<String> = batch
                .customers
                .iter()
                .map(|c| &c.customer.customer_id)
                .filter(|id| !excluded.contains_key(*id))
                .cloned()
                .collect();
            let since = now_ms - i64::from(cap.window_days) * DAY_MS;
            let counts = self
                .store
                .contacts_since_except(&open, since, &batch.campaign.campaign_id)
                .await
                .map_err(store_error)?;
            for (id, n) in counts {
                if n >= u64::from(cap.max_messages) {
                    excluded.insert(
                        id,
                        (
                            ExclusionReason::FrequencyCap,
                            format!(
                                "{n} messages in the last {} days (cap {})",
                                cap.window_days, cap.max_messages
                            ),
                        ),
                    );
                }
            }
        }
        Ok(excluded)
    }

    /// Write the batch's assignments, contacts and exclusions (each a replay-safe
    /// bulk insert) before its send batch is published.
    pub async fn write(
        &self,
        campaign_id: &str,
        messages: &[OutboundMessageOut<'_>],
        exclusions: &[Exclusion],
        now_ms: i64,
    ) -> Result<(), ExperimentError> {
        let assignments: Vec<Assignment> = messages
            .iter()
            .map(|m| Assignment {
                message_id: m.message_id.clone(),
                campaign_id: campaign_id.to_string(),
                customer_id: m.recipient.customer_id.to_string(),
                segment: m.segment.to_string(),
                arm: m.arm.to_string(),
                variant: m.variant_id.to_string(),
            })
            .collect();
        let contacts: Vec<Contact> = messages
            .iter()
            .map(|m| Contact {
                message_id: m.message_id.clone(),
                customer_id: m.recipient.customer_id.to_string(),
                campaign_id: campaign_id.to_string(),
                contacted_at_ms: now_ms,
            })
            .collect();
        // A duplicate row's customer is assigned under its first row: not an exclusion.
        let excluded: Vec<ExclusionRecord> = exclusions
            .iter()
            .filter(|e| e.reason != ExclusionReason::Duplicate)
            .filter_map(|e| {
                Some(ExclusionRecord {
                    campaign_id: campaign_id.to_string(),
                    customer_id: e.customer_id.clone()?,
                    reason: reason_name(e.reason),
                    detail: e.detail.clone(),
                })
            })
            .collect();
        let store = &self.store;
        if !assignments.is_empty() {
            store
                .insert_assignments(&assignments)
                .await
                .map_err(store_error)?;
            store
                .record_contacts(&contacts)
                .await
                .map_err(store_error)?;
        }
        if !excluded.is_empty() {
            store
                .record_exclusions(&excluded)
                .await
                .map_err(store_error)?;
        }
        Ok(())
    }
}

/// The snake_case name of a reason, as in exclusions.jsonl and the summary.
pub fn reason_name(reason: ExclusionReason) -> String {
    serde_json::to_value(reason)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{reason:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpo_shared::config::Settings;

    #[test]
    fn stored_reasons_map_onto_exclusion_reasons() {
        assert_eq!(
            exclusion_reason("unsubscribed"),
            ExclusionReason::Unsubscribed
        );
        assert_eq!(exclusion_reason("Bounce"), ExclusionReason::Bounced);
        assert_eq!(exclusion_reason("complaint"), ExclusionReason::Complained);
        assert_eq!(exclusion_reason("manual"), ExclusionReason::Suppressed);
        assert_eq!(reason_name(ExclusionReason::FrequencyCap), "frequency_cap");
    }

    #[test]
    fn the_policy_section_is_off_by_default_and_bad_values_name_the_key() {
        let none: PolicyConfig = Settings::from_yaml("other: 1\n")
            .unwrap()
            .section("policy")
            .unwrap();
        assert_eq!(none.frequency_cap, None);
        let yaml = "policy:\n  frequency_cap: {max_messages: 3, window_days: 7}\n";
        let policy: PolicyConfig = Settings::from_yaml(yaml)
            .unwrap()
            .section("policy")
            .unwrap();
        assert_eq!(
            policy.frequency_cap,
            Some(FrequencyCap {
                max_messages: 3,
                window_days: 7
            })
        );
        policy.validate().unwrap();
        let zero = "policy:\n  frequency_cap: {max_messages: 0, window_days: 7}\n";
        let policy: PolicyConfig = Settings::from_yaml(zero)
            .unwrap()
            .section("policy")
            .unwrap();
        assert!(
            policy
                .validate()
                .unwrap_err()
                .contains("policy.frequency_cap.max_messages")
        );
        let typo = "policy:\n  frequency_cap: {max_message: 3, window_days: 7}\n";
        let err = Settings::from_yaml(typo)
            .unwrap()
            .section::<PolicyConfig>("policy")
            .unwrap_err();
        assert!(err.to_string().contains("max_message"), "{err}");
    }
}
