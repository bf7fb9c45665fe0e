//! The experimentation stage end to end: join, defer, outputs, failures.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::*;
use cpo_experimentation::{ExperimentationConfig, ExperimentationStage, join_key};
use cpo_shared::cache::Cache;
use cpo_shared::envelope::{derive_id, message_id};
use cpo_shared::model::{CONTROL_ARM, ExclusionReason, LedgerEntry, SendBatch};
use cpo_shared::{Envelope, Outgoing, Stage, StageError, queues};

fn stage(cache: Arc<FlakyCache>) -> ExperimentationStage {
    ExperimentationStage::new(ExperimentationConfig::default(), cache, batch_signer()).unwrap()
}

pub fn batch_signer() -> cpo_shared::signing::Signer {
    cpo_shared::signing::Signer::new(b"test-batch-key".to_vec())
}

async fn decide_all(stage: &ExperimentationStage, segment: &str, blocked: &[&str]) {
    for arm in [CONTROL_ARM].into_iter().chain(TONES) {
        let d = decision(segment, arm, !blocked.contains(&arm));
        let out = stage
            .handle(decision_envelope(d), &emitter())
            .await
            .unwrap();
        assert!(out.is_empty(), "a decision produces no output");
    }
}

fn split(outputs: &[Outgoing]) -> (Option<Envelope<SendBatch>>, Envelope<LedgerEntry>) {
    let send = outputs
        .iter()
        .find(|o| o.queue == queues::SEND)
        .map(|o| serde_json::from_slice(&o.body).unwrap());
    let ledger = outputs
        .iter()
        .find(|o| o.queue == queues::LEDGER)
        .map(|o| serde_json::from_slice(&o.body).unwrap())
        .expect("every batch writes a ledger entry");
    (send, ledger)
}

fn two_segments(i: usize) -> &'static str {
    if i.is_multiple_of(3) {
        "loyal"
    } else {
        "lapsed"
    }
}

#[tokio::test]
async fn batch_waits_for_every_segment_then_assigns() {
    let cache = Arc::new(FlakyCache::default());
    let stage = stage(cache.clone());
    let input = batch(3, 0, 300, &[], two_segments);

    let err = stage
        .handle(batch_envelope(input.clone()), &emitter())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StageError::Defer { reason, .. } if reason.contains("`lapsed` has 0 of ?")),
        "{err}"
    );

    decide_all(&stage, "loyal", &[]).await;
    let err = stage
        .handle(batch_envelope(input.clone()), &emitter())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StageError::Defer { reason, .. } if reason.contains("lapsed") && !reason.contains("loyal")),
        "{err}"
    );
    // three of four decisions still wait
    for arm in ["control", "urgent", "friendly"] {
        stage
            .handle(decision_envelope(decision("lapsed", arm, true)), &emitter())
            .await
            .unwrap();
    }
    let err = stage
        .handle(batch_envelope(input.clone()), &emitter())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StageError::Defer { reason, .. } if reason.contains("3 of 4")),
        "{err}"
    );
    stage
        .handle(
            decision_envelope(decision("lapsed", "informational", false)),
            &emitter(),
        )
        .await
        .unwrap();

    let outputs = stage
        .handle(batch_envelope(input), &emitter())
        .await
        .unwrap();
    let (send, ledger) = split(&outputs);
    let send = send.expect("approved messages go to the send queue");
    assert_eq!(send.id, derive_id(&["camp-1", "send", "3"]));
    assert_eq!(send.payload.messages.len(), 300);
    // each approved template once (lapsed/informational is blocked), sorted by variant id
    let template_ids: Vec<&str> = send
        .payload
        .templates
        .iter()
        .map(|t| t.variant_id.as_str())
        .collect();
    let mut expected_ids: Vec<String> = ["loyal", "lapsed"]
        .iter()
        .flat_map(|s| {
            [CONTROL_ARM]
                .into_iter()
                .chain(TONES)
                .map(move |a| format!("v-{s}-{a}"))
        })
        .filter(|id| id != "v-lapsed-informational")
        .collect();
    expected_ids.sort();
    assert_eq!(template_ids, expected_ids);
    assert_eq!(
        send.payload.call_to_action_url.as_deref(),
        Some("https://example.com/spring")
    );
    for m in &send.payload.messages {
        assert_eq!(m.message_id, message_id("camp-1", &m.recipient.customer_id));
        let template = send
            .payload
            .template(&m.variant_id)
            .expect("the batch carries every template its messages name");
        if m.segment == "lapsed" && m.arm == "informational" {
            assert_eq!(template.variant_id, "v-lapsed-control");
            assert_eq!(
                m.fallback.as_deref(),
                Some("informational variant blocked: brand policy: competitor named")
            );
        } else {
            assert_eq!(m.fallback, None);
            assert_eq!(template.variant_id, format!("v-{}-{}", m.segment, m.arm));
        }
    }
    let LedgerEntry::Assigned {
        batch_seq,
        assignments,
        per_arm,
        fallbacks,
        exclusions,
        replaced_values,
    } = ledger.payload
    else {
        panic!("ledger entry should be `assigned`");
    };
    assert_eq!(batch_seq, 3);
    assert_eq!(assignments, 300);
    assert_eq!(per_arm.values().sum::<u64>(), 300);
    assert_eq!(per_arm.len(), 4);
    let fallback_count = send
        .payload
        .messages
        .iter()
        .filter(|m| m.fallback.is_some())
        .count() as u64;
    assert!(fallback_count > 0);
    assert_eq!(fallbacks, fallback_count);
    assert!(exclusions.is_empty());
    assert!(replaced_values.is_empty());
    assert_eq!(
        cpo_shared::batch_signing::verify_batch(&batch_signer(), &send.payload),
        Ok(())
    );
}

#[tokio::test]
async fn blocked_control_lists_customers_instead_of_sending_a_treatment() {
    let cache = Arc::new(FlakyCache::default());
    let stage = stage(cache);
    decide_all(&stage, "loyal", &["control", "urgent"]).await;
    let outputs = stage
        .handle(
            batch_envelope(batch(0, 0, 400, &[], |_| "loyal")),
            &emitter(),
        )
        .await
        .unwrap();
    let (send, ledger) = split(&outputs);
    let send = send.unwrap();
    let LedgerEntry::Assigned {
        per_arm,
        exclusions,
        ..
    } = ledger.payload
    else {
        panic!("ledger entry should be `assigned`");
    };
    assert!(!exclusions.is_empty());
    assert!(
        exclusions
            .iter()
            .all(|e| e.reason == ExclusionReason::NoApprovedMessage && e.customer_id.is_some())
    );
    assert_eq!(send.payload.messages.len() + exclusions.len(), 400);
    assert_eq!(per_arm["control"], 0);
    assert_eq!(per_arm["urgent"], 0);
    assert!(
        send.payload
            .messages
            .iter()
            .all(|m| m.arm != "control" && m.fallback.is_none())
    );
}

#[tokio::test]
async fn join_state_survives_a_worker_restart_and_is_read_once_per_segment() {
    let cache = Arc::new(FlakyCache::default());
    let first = stage(cache.clone());
    decide_all(&first, "loyal", &[]).await;
    decide_all(&first, "lapsed", &[]).await;
    drop(first);

    let restarted = stage(cache.clone());
    for seq in 0..20 {
        restarted
            .handle(
                batch_envelope(batch(seq, seq as usize * 50, 50, &[], two_segments)),
                &emitter(),
            )
            .await
            .unwrap();
    }
    assert_eq!(
        cache.hash_reads.load(Ordering::SeqCst),
        2,
        "a decided segment is read from the cache once, then from memory"
    );
    assert_eq!(
        cache
            .hash_get_all(&join_key("camp-1", "loyal"))
            .await
            .unwrap()
            .len(),
        4
    );
}

#[tokio::test]
async fn cache_down_makes_decisions_and_batches_wait_for_it() {
    let cache = Arc::new(FlakyCache::default());
    let stage = stage(cache.clone());
    cache.down.store(true, Ordering::SeqCst);
    let err = stage
        .handle(
            decision_envelope(decision("loyal", "control", true)),
            &emitter(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StageError::Unavailable(_)), "{err}");
    let err = stage
        .handle(batch_envelope(batch(0, 0, 5, &[], |_| "loyal")), &emitter())
        .await
        .unwrap_err();
    assert!(matches!(err, StageError::Unavailable(_)), "{err}");
}

#[tokio::test]
async fn invalid_weights_are_permanent_with_a_clear_message() {
    let stage = stage(Arc::new(FlakyCache::default()));
    decide_all(&stage, "loyal", &[]).await;
    for (weights, needle) in [
        (vec![("urgent", -2.0)], "`urgent` is -2"),
        (vec![("bold", 1.0)], "`bold`, which is not an arm"),
        (
            vec![
                ("control", 0.0),
                ("urgent", 0.0),
                ("informational", 0.0),
                ("friendly", 0.0),
            ],
            "every arm has weight 0",
        ),
    ] {
        let err = stage
            .handle(
                batch_envelope(batch(0, 0, 5, &weights, |_| "loyal")),
                &emitter(),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StageError::Permanent(m) if m.contains(needle)),
            "{err} should mention {needle}"
        );
    }
}

#[tokio::test]
async fn replaying_a_batch_gives_the_same_assignments() {
    let run = || async {
        let stage = stage(Arc::new(FlakyCache::default()));
        decide_all(&stage, "loyal", &["friendly"]).await;
        decide_all(&stage, "lapsed", &[]).await;
        let outputs = stage
            .handle(
                batch_envelope(batch(9, 0, 500, &[], two_segments)),
                &emitter(),
            )
            .await
            .unwrap();
        let (send, _) = split(&outputs);
        serde_json::to_vec(&send.unwrap().payload).unwrap()
    };
    let first = run().await;
    let second = run().await;
    assert_eq!(first, second, "payloads must be byte-identical across runs");

    // and a customer keeps its arm whichever batch (or batch position) it travels in
    let stage = stage(Arc::new(FlakyCache::default()));
    decide_all(&stage, "loyal", &[]).await;
    let arms = |outputs: Vec<Outgoing>| -> HashMap<String, String> {
        split(&outputs)
            .0
            .unwrap()
            .payload
            .messages
            .into_iter()
            .map(|m| (m.recipient.customer_id, m.arm))
            .collect()
    };
    let whole = arms(
        stage
            .handle(
                batch_envelope(batch(0, 0, 200, &[], |_| "loyal")),
                &emitter(),
            )
            .await
            .unwrap(),
    );
    let tail = arms(
        stage
            .handle(
                batch_envelope(batch(1, 150, 50, &[], |_| "loyal")),
                &emitter(),
            )
            .await
            .unwrap(),
    );
    for (customer, arm) in &tail {
        assert_eq!(&whole[customer], arm);
    }
}

#[tokio::test]
async fn the_join_state_expires_after_its_ttl() {
    let cache = Arc::new(FlakyCache::default());
    let config = ExperimentationConfig {
        join_ttl_s: 1,
        ..ExperimentationConfig::default()
    };
    let stage = ExperimentationStage::new(config, cache.clone(), batch_signer()).unwrap();
    decide_all(&stage, "loyal", &[]).await;
    let key = join_key("camp-1", "loyal");
    assert_eq!(cache.hash_get_all(&key).await.unwrap().len(), 4);
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    assert!(
        cache.hash_get_all(&key).await.unwrap().is_empty(),
        "decisions must not stay in Redis forever"
    );
}

/// A first name "Fuck" once produced "Hi Fuck,": every merge value is screened
/// before the batch is signed, and a refused one becomes its fallback.
#[tokio::test]
async fn abusive_or_personal_merge_values_are_replaced_counted_and_recorded_before_signing() {
    let cache = Arc::new(FlakyCache::default());
    let stage = stage(cache);
    decide_all(&stage, "loyal", &[]).await;
    let mut input = batch(0, 0, 5, &[], |_| "loyal");
    input.customers[1].customer.first_name = "Fuck you, idiot".into();
    input.customers[2].customer.first_name = "Fuck".into();
    input.customers[3].customer.tier = "call 415 555 0100".into();
    let emit = emitter();
    let outputs = stage.handle(batch_envelope(input), &emit).await.unwrap();
    let (send, ledger) = split(&outputs);
    let send = send.unwrap();
    let by_customer: HashMap<&str, (&str, &str)> = send
        .payload
        .messages
        .iter()
        .map(|m| {
            let r = &m.recipient;
            (
                r.customer_id.as_str(),
                (r.first_name.as_str(), r.tier.as_str()),
            )
        })
        .collect();
    assert_eq!(by_customer["C0000000"], ("Ada", "silver"));
    assert_eq!(by_customer["C0000001"], ("there", "silver"));
    assert_eq!(by_customer["C0000002"], ("there", "silver"));
    assert_eq!(by_customer["C0000003"], ("Ada", "member"));
    let raw = String::from_utf8_lossy(&outputs[0].body).to_string()
        + &String::from_utf8_lossy(&outputs[1].body);
    assert!(
        !raw.contains("Fuck") && !raw.contains("415 555 0100"),
        "{raw}"
    );
    // the signature covers the screened values
    assert_eq!(
        cpo_shared::batch_signing::verify_batch(&batch_signer(), &send.payload),
        Ok(())
    );
    let LedgerEntry::Assigned {
        replaced_values,
        assignments,
        ..
    } = ledger.payload
    else {
        panic!("ledger entry should be `assigned`");
    };
    assert_eq!(assignments, 5, "a replaced value does not exclude anyone");
    let listed: Vec<(&str, &str)> = replaced_values
        .iter()
        .map(|r| (r.customer_id.as_str(), r.field.as_str()))
        .collect();
    assert_eq!(
        listed,
        [
            ("C0000001", "first_name"),
            ("C0000002", "first_name"),
            ("C0000003", "tier")
        ]
    );
    assert!(replaced_values[0].reason.contains("profanity"));
    assert!(replaced_values[2].reason.contains("personal data"));
    let counts = emit.take_counts();
    assert!(
        counts
            .add
            .iter()
            .any(|(field, n)| field == cpo_shared::progress::MERGE_VALUES_REPLACED && *n == 3),
        "{counts:?}"
    );
}
