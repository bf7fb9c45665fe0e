//! Builders shared by the crate-level tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use cpo_shared::model::{
    Approval, CampaignContext, CategorySeverities, Customer, CustomerBatch, Decision,
    ExperimentInput, SafetyVerdict, SegmentedCustomer, Variant, VariantDecision,
};
use cpo_shared::signing::{Signer, content_hash};
use cpo_shared::transport::MemoryTransport;
use cpo_shared::{Emitter, Envelope, queues};

pub const TONES: [&str; 3] = ["urgent", "informational", "friendly"];

pub fn campaign(weights: &[(&str, f64)]) -> CampaignContext {
    CampaignContext {
        campaign_id: "camp-1".into(),
        name: "Spring".into(),
        objective: "win back lapsed customers".into(),
        call_to_action_url: Some("https://example.com/spring".into()),
        tones: TONES.iter().map(|t| t.to_string()).collect(),
        arm_weights: weights
            .iter()
            .map(|(a, w)| (a.to_string(), *w))
            .collect::<BTreeMap<_, _>>(),
    }
}

pub fn decision(segment: &str, arm: &str, approved: bool) -> VariantDecision {
    let variant = Variant {
        variant_id: format!("v-{segment}-{arm}"),
        campaign_id: "camp-1".into(),
        segment: segment.into(),
        arm: arm.into(),
        subject: format!("{arm}: news for {{{{first_name}}}}"),
        body: format!("Hi {{{{first_name}}}}, {arm} copy [doc-1]. {{{{cta_url}}}}"),
        citations: vec!["doc-1".into()],
        snippets: Vec::new(),
        variants_in_segment: 4,
        segments_total: 2,
        generator: "offline".into(),
    };
    let hash = content_hash(
        &variant.variant_id,
        &variant.subject,
        &variant.body,
        &variant.citations,
    );
    VariantDecision {
        verdict: SafetyVerdict {
            variant_id: variant.variant_id.clone(),
            decision: if approved {
                Decision::Approved
            } else {
                Decision::Blocked
            },
            categories: CategorySeverities::default(),
            reasons: if approved {
                Vec::new()
            } else {
                vec!["brand policy: competitor named".into()]
            },
            content_hash: hash.clone(),
            screened_by: "embedded".into(),
        },
        approval: approved.then(|| Approval {
            signature: Signer::new(b"test-key".to_vec()).sign(&hash),
            content_hash: hash,
        }),
        variant,
    }
}

/// Customers `first..first + n`, segment by `segment_of(index)`.
pub fn batch(
    seq: u64,
    first: usize,
    n: usize,
    weights: &[(&str, f64)],
    segment_of: impl Fn(usize) -> &'static str,
) -> CustomerBatch {
    CustomerBatch {
        campaign: campaign(weights),
        batch_seq: seq,
        customers: (first..first + n)
            .map(|i| SegmentedCustomer {
                segment: segment_of(i).to_string(),
                customer: Customer {
                    customer_id: format!("C{i:07}"),
                    first_name: "Ada".into(),
                    email: format!("c{i}@example.com"),
                    age: 40,
                    location: "Lyon".into(),
                    tier: "silver".into(),
                    purchase_frequency: 2,
                    avg_order_value: 55.0,
                    last_engagement_days: 30,
                    historical_open_rate: 0.2,
                    historical_click_rate: 0.05,
                    consent: true,
                },
            })
            .collect(),
    }
}

pub fn decision_envelope(d: VariantDecision) -> Envelope<ExperimentInput> {
    Envelope::new(
        d.variant.variant_id.clone(),
        "camp-1",
        ExperimentInput::Decision(d),
    )
}

pub fn batch_envelope(b: CustomerBatch) -> Envelope<ExperimentInput> {
    Envelope::new(
        format!("batch-{}", b.batch_seq),
        "camp-1",
        ExperimentInput::Batch(b),
    )
}

pub fn emitter() -> Emitter {
    Emitter::new(
        Arc::new(MemoryTransport::new(16)),
        "experimentation",
        queues::AUDIENCE,
    )
}

/// A memory cache that can be switched off and counts join reads.
pub use cpo_shared::cache::FlakyCache;
