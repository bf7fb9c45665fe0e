//! The engagement methods (events stage, `cpo suppress`, `cpo forget`) on
//! both backends: real PostgreSQL (a database per test) and SQLite.

use super::tests::{assignment, on_both};
use super::*;

fn event(id: &str, message: Option<&str>, raw: &str) -> EventRecord {
    EventRecord {
        provider: "sendgrid".into(),
        provider_event_id: id.into(),
        event_type: "bounce".into(),
        message_id: message.map(String::from),
        occurred_at_ms: 7,
        raw: raw.into(),
    }
}

#[tokio::test]
async fn record_events_reports_new_rows_and_dedupes_replays_and_repeats() {
    on_both(|store| {
        Box::pin(async move {
            // 12k rows: three statements on each backend, the flags line up across chunks.
            let rows: Vec<EventRecord> = (0..12_000)
                .map(|i| event(&format!("ev-{i}"), Some(&format!("m-{i}")), "{}"))
                .collect();
            let fresh = store.record_events(&rows).await.unwrap();
            assert_eq!(fresh.len(), 12_000);
            assert!(fresh.iter().all(|new| *new));
            // A replay of part of it, a repeat inside one call, and one new row.
            let mut again = rows[11_990..].to_vec();
            again.push(event("ev-new", None, "{}"));
            again.push(event("ev-new", None, "{}"));
            let fresh = store.record_events(&again).await.unwrap();
            assert_eq!(fresh[..10], [false; 10]);
            assert_eq!(fresh[10..], [true, false]);
            assert_eq!(store.count_events("m-5").await.unwrap(), 1);
            assert!(store.record_events(&[]).await.unwrap().is_empty());
        })
    })
    .await;
}

#[tokio::test]
async fn batched_lookups_of_assignments_and_provider_message_ids() {
    on_both(|store| {
        Box::pin(async move {
            let rows: Vec<Assignment> = (0..6_000).map(assignment).collect();
            store.insert_assignments(&rows).await.unwrap();
            let mut asked: Vec<String> = (0..6_000).step_by(7).map(|i| format!("m-{i}")).collect();
            asked.push("m-unknown".into());
            let found = store.assignments_for_messages(&asked).await.unwrap();
            assert_eq!(found.len(), asked.len() - 1);
            assert_eq!(found["m-7"], assignment(7));
            assert!(!found.contains_key("m-unknown"));

            assert!(matches!(
                store.claim_send("m-1", "ses", 0, 1000).await.unwrap(),
                Claim::Claimed { attempt: 1 }
            ));
            assert!(store.mark_sent("m-1", 1, "ses-abc", 1).await.unwrap());
            let ids = store
                .messages_for_provider_ids(&["ses-abc".into(), "ses-nope".into()])
                .await
                .unwrap();
            assert_eq!(ids.len(), 1);
            assert_eq!(ids["ses-abc"], "m-1");
        })
    })
    .await;
}

#[tokio::test]
async fn suppressions_are_listed_oldest_first() {
    on_both(|store| {
        Box::pin(async move {
            let row = |key, at| Suppression {
                key,
                reason: reasons::SUPPRESSED.into(),
                source: "cli".into(),
                created_at_ms: at,
            };
            store
                .suppress(&[
                    row(SuppressionKey::Customer("c2".into()), 20),
                    row(SuppressionKey::AddressHash("addr_1".into()), 10),
                ])
                .await
                .unwrap();
            let listed = store.list_suppressions().await.unwrap();
            assert_eq!(
                listed.iter().map(|s| s.key.clone()).collect::<Vec<_>>(),
                [
                    SuppressionKey::AddressHash("addr_1".into()),
                    SuppressionKey::Customer("c2".into())
                ]
            );
            assert_eq!(listed[0].reason, "suppressed");
            let one = store
                .suppression_of(&SuppressionKey::Customer("c2".into()))
                .await
                .unwrap()
                .unwrap();
            assert_eq!((one.created_at_ms, one.source.as_str()), (20, "cli"));
            assert_eq!(
                store
                    .suppression_of(&SuppressionKey::AddressHash("c2".into()))
                    .await
                    .unwrap(),
                None
            );
        })
    })
    .await;
}

#[tokio::test]
async fn forget_erases_the_person_and_leaves_only_the_tombstone() {
    on_both(|store| {
        Box::pin(async move {
            // cust-1 and cust-2 are the person (cust-2 found only through an
            // event that quotes the address); cust-3 is someone else.
            let mut rows: Vec<Assignment> = (1..=3).map(assignment).collect();
            rows.push(Assignment {
                message_id: "m-1b".into(),
                campaign_id: "c2".into(),
                ..assignment(1)
            });
            store.insert_assignments(&rows).await.unwrap();
            let quoted = r#"{"email":"Ada_Lovelace@Example.com","event":"bounce"}"#;
            store
                .record_events(&[
                    event("e1", Some("m-1"), r#"{"ip":"10.0.0.1"}"#),
                    event("e2", Some("m-2"), quoted),
                    event("e3", None, quoted),
                    event("e4", Some("m-3"), r#"{"email":"adaxlovelace@example.com"}"#),
                ])
                .await
                .unwrap();
            for m in ["m-1", "m-3"] {
                store.claim_send(m, "smtp", 0, 1000).await.unwrap();
                store
                    .mark_failed(m, 1, "550 no such user", 1)
                    .await
                    .unwrap();
            }
            let contact = |m: &str, c: &str| Contact {
                message_id: m.into(),
                customer_id: c.into(),
                campaign_id: "c1".into(),
                contacted_at_ms: 1,
            };
            store
                .record_contacts(&[contact("m-1", "cust-1"), contact("m-3", "cust-3")])
                .await
                .unwrap();
            let supp = |key| Suppression {
                key,
                reason: reasons::UNSUBSCRIBED.into(),
                source: "sendgrid".into(),
                created_at_ms: 1,
            };
            store
                .suppress(&[
                    supp(SuppressionKey::Customer("cust-1".into())),
                    supp(SuppressionKey::Customer("cust-3".into())),
                    supp(SuppressionKey::AddressHash("addr_ada".into())),
                ])
                .await
                .unwrap();

            let erasure = Erasure {
                address: "ada_lovelace@example.com".into(),
                address_hash: "addr_ada".into(),
                customers: vec!["cust-1".into()],
                source: "cli".into(),
                now_ms: 99,
            };
            let report = store.forget(&erasure).await.unwrap();
            assert_eq!(report.customers, ["cust-1", "cust-2"]);
            assert_eq!(report.assignments, 3);
            assert_eq!(
                report.events, 3,
                "e1 (cust-1's message), e2 and e3 (quote the address)"
            );
            assert_eq!(report.sends, 1);
            assert_eq!(report.contacts, 1);
            assert_eq!(report.suppressions, 1);

            // The other person is untouched: `_` in the address matched no wildcard.
            let left = store
                .assignments_for_messages(&[
                    "m-1".into(),
                    "m-1b".into(),
                    "m-2".into(),
                    "m-3".into(),
                ])
                .await
                .unwrap();
            assert_eq!(left["m-1"].customer_id, ERASED_CUSTOMER);
            assert_eq!(left["m-1b"].customer_id, ERASED_CUSTOMER);
            assert_eq!(left["m-2"].customer_id, ERASED_CUSTOMER);
            assert_eq!(left["m-3"].customer_id, "cust-3");
            assert_eq!(left["m-1"].arm, assignment(1).arm, "arm counts survive");
            assert_eq!(store.send("m-1").await.unwrap().unwrap().last_error, None);
            assert!(
                store
                    .send("m-3")
                    .await
                    .unwrap()
                    .unwrap()
                    .last_error
                    .is_some()
            );
            let contacts = store
                .contacts_since(&["cust-1".into(), "cust-3".into()], 0)
                .await
                .unwrap();
            assert_eq!(contacts.get("cust-1"), None);
            assert_eq!(contacts.get("cust-3"), Some(&1));

            let listed = store.list_suppressions().await.unwrap();
            let keys: Vec<_> = listed
                .iter()
                .map(|s| (s.key.clone(), s.reason.as_str()))
                .collect();
            assert_eq!(
                keys,
                [
                    (SuppressionKey::Customer("cust-3".into()), "unsubscribed"),
                    (SuppressionKey::AddressHash("addr_ada".into()), "erased"),
                ]
            );
            // Forgetting twice changes nothing more and keeps the tombstone.
            let again = store.forget(&erasure).await.unwrap();
            assert_eq!((again.assignments, again.events, again.contacts), (0, 0, 0));
            assert_eq!(store.list_suppressions().await.unwrap().len(), 2);
        })
    })
    .await;
}
