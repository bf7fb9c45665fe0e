//! cpo experimentation stage: where the creative flow and the audience flow join.
//!
//! It consumes safety decisions (`decisions`) and customer batches (`audience`).
//! Decisions are stored in the shared cache, one hash per (campaign, segment).
//! A batch waits (deferred, redelivered later) until every segment it touches
//! is decided; then each customer is assigned to an arm (`control` + one per
//! tone) by a salted hash of (campaign id, customer id) against the campaign's
//! arm weights, and gets that arm's approved message, the control message when
//! the arm's variant was blocked (a recorded fallback), or an exclusion with its
//! reason. Merge values are screened (profanity, slurs, personal data) and a
//! refused one is replaced by its fallback; then the `SendBatch` is signed over
//! its canonical form (`security.batch_key`). One `SendBatch` goes to `send`
//! and one `LedgerEntry::Assigned` to `ledger` per batch. Analysis of the outcomes lives in `cpo-analysis`.

pub mod arms;
pub mod assign;
pub mod config;
pub mod error;
pub mod ids;
pub mod join;
pub mod merge;
mod metrics;
pub mod output;
pub mod record;
pub mod stage;

pub use arms::{ArmPlan, AssignmentHasher, PlanError};
pub use config::ExperimentationConfig;
pub use error::ExperimentError;
pub use join::join_key;
pub use record::{FrequencyCap, PolicyConfig, Record};
pub use stage::ExperimentationStage;

#[cfg(test)]
pub(crate) mod tests {
    use cpo_shared::model::{CampaignContext, Customer, CustomerBatch, SegmentedCustomer};

    /// A batch of `n` customers spread round-robin over `segments`.
    pub(crate) fn batch(n: usize, segments: &[&str]) -> CustomerBatch {
        CustomerBatch {
            campaign: CampaignContext {
                campaign_id: "camp-1".into(),
                name: "Spring".into(),
                objective: "win back".into(),
                call_to_action_url: Some("https://example.com/spring".into()),
                tones: vec!["urgent".into(), "informational".into(), "friendly".into()],
                arm_weights: Default::default(),
            },
            batch_seq: 0,
            customers: (0..n)
                .map(|i| SegmentedCustomer {
                    segment: segments[i % segments.len()].to_string(),
                    customer: Customer {
                        customer_id: format!("C{i:06}"),
                        first_name: "Ada".into(),
                        email: format!("c{i}@example.com"),
                        age: 30,
                        location: "Oslo".into(),
                        tier: "gold".into(),
                        purchase_frequency: 3,
                        avg_order_value: 40.0,
                        last_engagement_days: 10,
                        historical_open_rate: 0.3,
                        historical_click_rate: 0.1,
                        consent: true,
                    },
                })
                .collect(),
        }
    }
}
