//! Arm balance on 100k customers through the stage: each arm within a few
//! percent of its weight overall and within each segment.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use common::*;
use cpo_experimentation::{ExperimentationConfig, ExperimentationStage};
use cpo_shared::model::{CONTROL_ARM, SendBatch};
use cpo_shared::{Envelope, Stage, queues};

const SEGMENTS: [&str; 3] = ["loyal", "lapsed", "new"];

/// Unequal segment sizes: 50% loyal, 30% lapsed, 20% new.
fn segment_of(i: usize) -> &'static str {
    match i % 10 {
        0..=4 => SEGMENTS[0],
        5..=7 => SEGMENTS[1],
        _ => SEGMENTS[2],
    }
}

#[tokio::test]
async fn arms_follow_weights_overall_and_within_each_segment() {
    let weights = [("control", 2.0), ("urgent", 1.0), ("friendly", 0.5)];
    // informational has no entry: weight 1.0
    let expected: BTreeMap<&str, f64> = [
        ("control", 2.0 / 4.5),
        ("urgent", 1.0 / 4.5),
        ("informational", 1.0 / 4.5),
        ("friendly", 0.5 / 4.5),
    ]
    .into();
    let stage = ExperimentationStage::new(
        ExperimentationConfig::default(),
        Arc::new(FlakyCache::default()),
        cpo_shared::signing::Signer::new(b"batch-key".to_vec()),
    )
    .unwrap();
    for segment in SEGMENTS {
        for arm in [CONTROL_ARM].into_iter().chain(TONES) {
            stage
                .handle(decision_envelope(decision(segment, arm, true)), &emitter())
                .await
                .unwrap();
        }
    }

    let total = 100_000;
    let mut overall: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_segment: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut seen = HashSet::new();
    for seq in 0..100u64 {
        let input = batch(seq, seq as usize * 1000, 1000, &weights, segment_of);
        let outputs = stage
            .handle(batch_envelope(input), &emitter())
            .await
            .unwrap();
        let send = outputs.iter().find(|o| o.queue == queues::SEND).unwrap();
        let send: Envelope<SendBatch> = serde_json::from_slice(&send.body).unwrap();
        for m in send.payload.messages {
            assert!(seen.insert(m.recipient.customer_id), "assigned twice");
            *overall.entry(m.arm.clone()).or_default() += 1;
            *by_segment.entry((m.segment, m.arm)).or_default() += 1;
        }
    }
    assert_eq!(seen.len(), total, "every customer lands in exactly one arm");

    for (arm, share) in &expected {
        let observed = overall[*arm] as f64 / total as f64;
        assert!(
            (observed - share).abs() < 0.01,
            "arm {arm}: {observed:.4} vs {share:.4}"
        );
    }
    for segment in SEGMENTS {
        let size: u64 = by_segment
            .iter()
            .filter(|((s, _), _)| s == segment)
            .map(|(_, n)| n)
            .sum();
        for (arm, share) in &expected {
            let observed = by_segment[&(segment.to_string(), arm.to_string())] as f64 / size as f64;
            assert!(
                (observed - share).abs() < 0.02,
                "segment {segment}, arm {arm}: {observed:.4} vs {share:.4}"
            );
        }
    }
}
