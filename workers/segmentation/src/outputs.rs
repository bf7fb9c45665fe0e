//! The messages segmentation publishes, with deterministic ids so a redelivered
//! campaign request produces messages consumers recognise as already seen.

use cpo_shared::envelope::derive_id;
use cpo_shared::model::{
    CampaignContext, CustomerBatch, LedgerEntry, SegmentProfile, SegmentTask, SegmentedCustomer,
};
use cpo_shared::{Envelope, Outgoing, StageError, queues};

use crate::scan::PassOne;

pub fn segment_task_id(campaign_id: &str, segment: &str) -> String {
    format!("seg-{}", derive_id(&[campaign_id, "segment", segment]))
}

pub fn batch_id(campaign_id: &str, batch_seq: u64) -> String {
    format!(
        "batch-{}",
        derive_id(&[campaign_id, "batch", &batch_seq.to_string()])
    )
}

pub fn audience_ledger_id(campaign_id: &str) -> String {
    format!("ledger-{}", derive_id(&[campaign_id, "audience"]))
}

/// One task per non-empty segment, in rule order.
pub fn segment_tasks(
    campaign: &CampaignContext,
    profiles: &[SegmentProfile],
) -> Result<Vec<Outgoing>, StageError> {
    let segments_total = u32::try_from(profiles.len())
        .map_err(|_| StageError::Permanent("more than 2^32 segments".into()))?;
    profiles
        .iter()
        .map(|profile| {
            let id = segment_task_id(&campaign.campaign_id, &profile.name);
            let task = SegmentTask {
                campaign: campaign.clone(),
                segment: profile.clone(),
                segments_total,
            };
            Outgoing::new(
                queues::SEGMENTS,
                &Envelope::new(id, campaign.campaign_id.clone(), task),
            )
        })
        .collect()
}

/// A batch message built the plain way, from owned customers. The stage streams
/// batches with `encode::BatchEncoder` instead, which writes the same bytes
/// (its tests compare against this).
pub fn batch(
    campaign: &CampaignContext,
    batch_seq: u64,
    customers: Vec<SegmentedCustomer>,
) -> Result<Outgoing, StageError> {
    let envelope = Envelope::new(
        batch_id(&campaign.campaign_id, batch_seq),
        campaign.campaign_id.clone(),
        CustomerBatch {
            campaign: campaign.clone(),
            batch_seq,
            customers,
        },
    );
    Outgoing::new(queues::AUDIENCE, &envelope)
}

/// The audience fact for the campaign's ledger; it consumes pass one's exclusions.
pub fn audience_ledger(
    campaign_id: &str,
    pass_one: PassOne,
    batches: u64,
) -> Result<Outgoing, StageError> {
    let entry = LedgerEntry::Audience {
        customers_total: pass_one.customers_total,
        segments: pass_one.profiles,
        exclusions: pass_one.exclusions,
        batches,
    };
    Outgoing::new(
        queues::LEDGER,
        &Envelope::new(audience_ledger_id(campaign_id), campaign_id, entry),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_distinct() {
        assert_eq!(batch_id("c1", 3), batch_id("c1", 3));
        assert_ne!(batch_id("c1", 3), batch_id("c1", 4));
        assert_ne!(batch_id("c1", 3), batch_id("c2", 3));
        assert_ne!(segment_task_id("c1", "A"), segment_task_id("c1", "B"));
        assert!(batch_id("c1", 0).starts_with("batch-"));
        assert_ne!(audience_ledger_id("c1"), audience_ledger_id("c2"));
    }
}
