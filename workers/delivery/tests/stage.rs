//! The delivery stage end to end: what may reach the outbox, what is
//! dead-lettered, dedupe, failures, audit, and canonical outboxes.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::*;
use cpo_delivery::canonicalize_outbox;
use cpo_shared::batch_signing::verify_batch;
use cpo_shared::dead_letter::DeadLetterKind;
use cpo_shared::envelope::message_id;
use cpo_shared::model::SendBatch;
use cpo_shared::privacy::Pseudonymizer;
use cpo_shared::rate_limit::MemoryRateLimiter;
use cpo_shared::signing::{Signer, content_hash};
use cpo_shared::store::SendState;
use cpo_shared::{Envelope, StageError, queues};

#[tokio::test]
async fn renders_and_writes_every_valid_message() {
    let h = Harness::new().await;
    h.deliver(batch(0, 0..3)).await.unwrap();
    let records = h.records();
    assert_eq!(records.len(), 3);
    // a batch is written as one run sorted by message id
    assert!(
        records
            .windows(2)
            .all(|w| w[0].message_id < w[1].message_id)
    );
    let first = records
        .iter()
        .find(|r| r.customer_id == "C00000")
        .expect("C00000 is written");
    assert_eq!(first.message_id, message_id("camp-1", "C00000"));
    assert_eq!(first.to, "person0@example.com");
    assert_eq!(first.subject, "Name0: last days");
    // The customer's text part: the citation markers left it (the record
    // keeps the citations), the sender's signature closes it.
    assert_eq!(
        first.body,
        "Hi Name0,\nour gold offer for Lyon ends soon.\nhttps://example.com/go\n\n--\nNorthwind\n"
    );
    assert!(first.html.contains("Name0") && !first.html.contains("[doc-"));
    assert_eq!(first.citations, ["doc-1", "doc-2"]);
    assert_eq!(
        (first.arm.as_str(), first.segment.as_str()),
        ("urgent", "loyal")
    );
    assert!(h.dead_letters().is_empty());
    for id in records.iter().map(|r| &r.message_id) {
        let send = h.store.send(id).await.unwrap().expect("a send record");
        assert_eq!(send.state, SendState::Sent);
        assert_eq!(send.provider_message_id, Some(format!("prov-{id}")));
        assert_eq!(send.sink, "smtp");
    }
}

#[tokio::test]
async fn altered_or_unsigned_messages_are_dead_lettered_one_by_one() {
    let h = Harness::new().await;
    let mut input = batch(0, 0..7);
    own_template(&mut input, 1, |t| {
        t.body = t.body.replace("ends soon", "is FREE")
    });
    own_template(&mut input, 2, |t| t.subject.push_str(" (act now)"));
    own_template(&mut input, 3, |t| {
        t.citations.pop();
    });
    own_template(&mut input, 4, |t| {
        t.approval.signature = Signer::new(b"forged".to_vec()).sign(&t.approval.content_hash)
    });
    own_template(&mut input, 5, |t| t.approval.signature = String::new());
    // altered, then re-hashed: the hash matches but the signature does not
    own_template(&mut input, 6, |t| {
        t.body.push_str(" P.S. wire money");
        t.approval.content_hash = content_hash(&t.variant_id, &t.subject, &t.body, &t.citations);
    });
    let messages = &input.payload.messages;
    let tampered: Vec<String> = messages[1..].iter().map(|m| m.message_id.clone()).collect();

    h.deliver(input).await.unwrap();

    let records = h.records();
    assert_eq!(records.len(), 1, "only the untouched message is written");
    assert_eq!(records[0].customer_id, "C00000");
    let letters = h.dead_letters();
    assert_eq!(letters.len(), 6);
    for (letter, id) in letters.iter().zip(&tampered) {
        assert_eq!(letter.kind, DeadLetterKind::Permanent);
        assert_eq!(letter.stage, "delivery");
        assert_eq!(letter.queue, queues::SEND);
        // the dead letter is a replayable one-message batch with its own template
        let part: Envelope<SendBatch> =
            serde_json::from_value(letter.message.clone().unwrap()).unwrap();
        assert_eq!(part.payload.messages.len(), 1);
        assert_eq!(&part.payload.messages[0].message_id, id);
        // a part of a verified batch carries a signature of its own, so it can be replayed
        assert_eq!(verify_batch(&batch_signer(), &part.payload), Ok(()));
        assert_eq!(part.payload.templates.len(), 1);
        assert_eq!(
            part.payload.templates[0].variant_id,
            part.payload.messages[0].variant_id
        );
        assert!(h.store.send(id).await.unwrap().is_none(), "never claimed");
    }
    let reasons: Vec<&str> = letters.iter().map(|l| l.reason.as_str()).collect();
    assert!(
        reasons[..3].iter().all(|r| r.contains("altered")),
        "{reasons:?}"
    );
    assert!(reasons[3].contains("signature is invalid"), "{reasons:?}");
    assert!(reasons[4].contains("no signature"), "{reasons:?}");
    assert!(reasons[5].contains("signature is invalid"), "{reasons:?}");
    assert_eq!(h.audit_events().len(), 1);
    assert_eq!(h.audited_sends().len(), 1);
}

#[tokio::test]
async fn unknown_merge_field_dead_letters_the_message() {
    let h = Harness::new().await;
    let mut input = batch(0, 0..2);
    // properly signed, so only the renderer can stop it
    let leaky = template(
        "v-leaky",
        "Hi {{first_name}}",
        "Your address is {{ email }}",
    );
    input.payload.templates.push(leaky);
    input.payload.messages[1].variant_id = "v-leaky".into();
    h.deliver(input).await.unwrap();
    assert_eq!(h.records().len(), 1);
    let letters = h.dead_letters();
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0].reason.contains("unknown merge field `email`"),
        "{}",
        letters[0].reason
    );
}

#[tokio::test]
async fn merge_values_cannot_inject_syntax_or_headers() {
    let h = Harness::new().await;
    let mut input = batch(0, 0..1);
    let recipient = &mut input.payload.messages[0].recipient;
    recipient.first_name = "{{cta_url}}\r\nBcc: all@example.com".into();
    recipient.location = "{% for x in range(9) %}x{% endfor %}".into();
    recipient.tier = "gold\n\nX-Injected: 1".into();
    h.deliver(input).await.unwrap();
    let records = h.records();
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert!(!record.subject.contains('\r') && !record.subject.contains('\n'));
    assert_eq!(
        record.subject,
        "((cta_url))  Bcc: all@example.com: last days"
    );
    assert!(!record.body.contains("{{") && !record.body.contains("{%"));
    assert!(record.body.contains("(% for x in range(9) %)x(% endfor %)"));
    assert!(record.body.contains("our gold  X-Injected: 1 offer"));
    // the body's own line breaks (from the approved template) are kept: three
    // lines, then the signature (a blank line, `--`, the sender)
    assert_eq!(record.body.lines().count(), 6);
    assert!(record.body.ends_with("\n\n--\nNorthwind\n"));
    assert!(
        !record.body.contains("https://example.com/go\nhttps"),
        "cta_url not rendered twice"
    );
}

#[tokio::test]
async fn redelivery_writes_nothing_twice() {
    let h = Harness::new().await;
    h.deliver(batch(0, 0..50)).await.unwrap();
    h.deliver(batch(0, 0..50)).await.unwrap();
    // an overlapping batch only adds the new customers
    h.deliver(batch(1, 40..60)).await.unwrap();
    let records = h.records();
    assert_eq!(records.len(), 60);
    let mut ids: Vec<&str> = records.iter().map(|r| r.message_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 60);
    assert_eq!(h.audited_sends().len(), 60);
    // one record per batch that sent something: the repeated batch sent nothing
    assert_eq!(h.audit_events().len(), 2);

    // a second worker with an empty outbox but the same store sends nothing either
    let dir = tempfile::tempdir().unwrap();
    let other = Harness::on(
        dir,
        h.store.clone(),
        test_config(),
        Arc::new(MemoryRateLimiter::new(&Default::default())),
    );
    other.deliver(batch(0, 0..50)).await.unwrap();
    assert!(other.records().is_empty());
    assert!(other.sink.handed().is_empty());
}

#[tokio::test]
async fn provider_retries_wait_and_are_released_unsent_past_the_hold() {
    let h = Harness::new().await;
    h.sink.down.store(true, Ordering::SeqCst);
    let err = h.deliver(batch(0, 0..5)).await.unwrap_err();
    assert!(
        matches!(&err, StageError::Unavailable(m) if m.contains("5 of 5 messages wait")),
        "{err}"
    );
    // tried again with backoff within the hold, never failed
    let first = message_id("camp-1", "C00000");
    assert!(h.sink.handed()[&first] >= 3, "{:?}", h.sink.handed());
    let send = h.store.send(&first).await.unwrap().unwrap();
    assert_eq!(send.state, SendState::Failed);
    assert!(send.last_error.unwrap().starts_with("not sent:"));
    assert!(h.audit_events().is_empty());
    h.sink.down.store(false, Ordering::SeqCst);
    h.deliver(batch(0, 0..5)).await.unwrap();
    assert_eq!(h.records().len(), 5);
    let send = h.store.send(&first).await.unwrap().unwrap();
    assert_eq!(send.state, SendState::Sent);
}

#[tokio::test]
async fn audit_failure_after_the_sink_wrote_is_retried_without_a_second_line() {
    let h = Harness::new().await;
    h.audit.down.store(true, Ordering::SeqCst);
    let err = h.deliver(batch(0, 0..4)).await.unwrap_err();
    assert!(
        matches!(&err, StageError::Transient(m) if m.contains("audit")),
        "{err}"
    );
    // sent and recorded, not audited yet
    assert_eq!(h.records().len(), 4);
    let first = message_id("camp-1", "C00000");
    let send = h.store.send(&first).await.unwrap().unwrap();
    assert_eq!(send.state, SendState::Sent);
    // the retry (attempt 1) audits what the first attempt sent, without sending again
    h.audit.down.store(false, Ordering::SeqCst);
    let mut retry = batch(0, 0..4);
    retry.attempt = 1;
    h.deliver(retry).await.unwrap();
    assert_eq!(h.records().len(), 4);
    assert_eq!(h.audited_sends().len(), 4);
    assert_eq!(h.sink.handed()[&first], 1);
}

#[tokio::test]
async fn audit_events_are_pseudonymized() {
    let h = Harness::new().await;
    h.deliver(batch(0, 0..2)).await.unwrap();
    let events = h.audit_events();
    assert_eq!(events.len(), 1, "one record for the batch");
    assert_eq!(events[0]["event"], "send_batch");
    assert_eq!(events[0]["count"], 2);
    let sends = h.audited_sends();
    assert_eq!(sends.len(), 2);
    let expected_customer = Pseudonymizer::new(b"pseudonym-key".to_vec()).pseudonym("C00000");
    let send = &sends[0];
    assert_eq!(send.campaign_id, "camp-1");
    assert_eq!(send.message_id, message_id("camp-1", "C00000"));
    assert_eq!(send.customer, expected_customer);
    assert_eq!(send.segment, "loyal");
    assert_eq!(send.arm, "urgent");
    assert_eq!(send.variant_id, "v-urgent");
    assert_eq!(send.content_hash, standard_template().approval.content_hash);
    assert_ne!(sends[1].customer, send.customer);
    let text = serde_json::to_string(&events).unwrap();
    for secret in ["person0@example.com", "Name0", "\"C00000\""] {
        assert!(!text.contains(secret), "audit leaks {secret}");
    }
}

#[tokio::test]
async fn a_message_naming_a_template_the_batch_lacks_is_dead_lettered_alone() {
    let h = Harness::new().await;
    let mut input = batch(0, 0..3);
    input.payload.messages[1].variant_id = "v-gone".into();
    h.deliver(input).await.unwrap();
    assert_eq!(h.records().len(), 2);
    let letters = h.dead_letters();
    assert_eq!(letters.len(), 1);
    assert_eq!(
        letters[0].reason,
        "the batch carries no template for variant `v-gone`"
    );
    let part: Envelope<SendBatch> =
        serde_json::from_value(letters[0].message.clone().unwrap()).unwrap();
    assert!(part.payload.templates.is_empty());
    assert_eq!(part.payload.messages[0].recipient.customer_id, "C00001");
}

#[tokio::test]
async fn a_replayed_dead_letter_is_checked_like_a_batch_and_a_hand_edit_is_refused() {
    let h = Harness::new().await;
    let mut input = batch(0, 0..2);
    input.payload.messages[1].recipient.email = "not an address".into();
    h.deliver(input).await.unwrap();
    let letters = h.dead_letters();
    assert_eq!(letters.len(), 1);
    let part: Envelope<SendBatch> =
        serde_json::from_value(letters[0].message.clone().unwrap()).unwrap();
    // replayed as it is: verified, and refused again for the same reason
    h.deliver_as_is(part.clone()).await.unwrap();
    let letters = h.dead_letters();
    assert_eq!(letters.len(), 2);
    assert!(
        letters[1].reason.contains("recipient address"),
        "{}",
        letters[1].reason
    );
    // a recipient fixed by hand is not what experimentation signed: refused whole
    let mut edited = part;
    edited.payload.messages[0].recipient.email = "person1@example.com".into();
    let err = h.deliver_as_is(edited).await.unwrap_err();
    assert!(
        matches!(&err, StageError::Permanent(reason) if reason.contains("signature does not match")),
        "{err:?}"
    );
    assert_eq!(h.records().len(), 1);
}

/// A genuine batch republished with new recipients, a phishing link and an
/// abusive first name, or with no signature at all, never reaches the outbox.
#[tokio::test]
async fn forged_or_unsigned_send_batches_are_refused_whole() {
    let h = Harness::new().await;
    let mut genuine = batch(0, 0..4);
    sign(&mut genuine);
    type Forge = fn(&mut SendBatch);
    let forgeries: [(&str, Forge); 4] = [
        ("recipients", |b| {
            for m in &mut b.messages {
                m.recipient.email = "victim@evil.example".into();
            }
        }),
        ("link", |b| {
            b.call_to_action_url = Some("https://evil.example/phish".into())
        }),
        ("merge value", |b| {
            b.messages[0].recipient.first_name = "Fuck you, idiot".into()
        }),
        ("unsigned", |b| b.signature = None),
    ];
    for (what, forge) in forgeries {
        let mut forged = genuine.clone();
        forge(&mut forged.payload);
        let err = h.deliver_as_is(forged).await.unwrap_err();
        let StageError::Permanent(reason) = &err else {
            panic!("{what}: {err:?}");
        };
        assert!(reason.contains("send batch"), "{what}: {reason}");
    }
    assert!(h.records().is_empty(), "a forged batch was sent");
    assert!(h.audit_events().is_empty());
    // signed with another key: refused too
    let mut other_key = genuine.clone();
    cpo_shared::batch_signing::sign_batch(
        &Signer::new(b"not-the-key".to_vec()),
        &mut other_key.payload,
    );
    assert!(h.deliver_as_is(other_key).await.is_err());
    // the genuine batch goes through
    h.deliver_as_is(genuine).await.unwrap();
    assert_eq!(h.records().len(), 4);
}

#[tokio::test]
async fn canonical_outboxes_are_identical_whatever_the_batch_order() {
    let forward = Harness::new().await;
    let backward = Harness::new().await;
    for seq in 0..5u64 {
        let start = seq as usize * 20;
        forward
            .deliver(batch(seq, start..start + 20))
            .await
            .unwrap();
    }
    for seq in (0..5u64).rev() {
        let start = seq as usize * 20;
        backward
            .deliver(batch(seq, start..start + 20))
            .await
            .unwrap();
    }
    assert_ne!(
        std::fs::read(&forward.outbox).unwrap(),
        std::fs::read(&backward.outbox).unwrap()
    );
    canonicalize_outbox(&forward.outbox).unwrap();
    canonicalize_outbox(&backward.outbox).unwrap();
    let canonical = std::fs::read(&forward.outbox).unwrap();
    assert_eq!(canonical, std::fs::read(&backward.outbox).unwrap());
    let records = read_records(&forward.outbox);
    assert_eq!(records.len(), 100);
    assert!(
        records
            .windows(2)
            .all(|w| w[0].message_id < w[1].message_id)
    );
}

#[tokio::test]
async fn canonical_outboxes_agree_across_shuffled_interleavings_and_redeliveries() {
    let batches = 12u64;
    let size = 25usize;
    let deliver_in = |order: Vec<u64>| async move {
        let h = Harness::new().await;
        for seq in order {
            let start = seq as usize * size;
            h.deliver(batch(seq, start..start + size)).await.unwrap();
        }
        let lines = canonicalize_outbox(&h.outbox).unwrap();
        (h, lines)
    };
    // a deterministic shuffle, and orders with redelivered batches
    let mut shuffled: Vec<u64> = (0..batches).collect();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for i in (1..shuffled.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        shuffled.swap(i, (state % (i as u64 + 1)) as usize);
    }
    let mut redelivered = shuffled.clone();
    redelivered.extend([3, 0, 11]);
    redelivered.insert(2, shuffled[5]);
    let orders = [
        (0..batches).collect::<Vec<_>>(),
        (0..batches).rev().collect(),
        shuffled,
        redelivered,
    ];
    let mut outputs = Vec::new();
    for order in orders {
        let (h, lines) = deliver_in(order).await;
        assert_eq!(lines, batches * size as u64);
        outputs.push(std::fs::read(&h.outbox).unwrap());
    }
    assert!(outputs.windows(2).all(|w| w[0] == w[1]), "byte-identical");
    let text = String::from_utf8(outputs.swap_remove(0)).unwrap();
    let ids: Vec<&str> = text.lines().map(|l| &l[15..51]).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "sorted by message id");
}
