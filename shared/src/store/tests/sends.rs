//! The batched send-record methods delivery uses, on both backends.

use super::*;

#[tokio::test]
async fn batched_claims_marks_lookups_and_the_unconfirmed_list() {
    on_both(|store| {
        Box::pin(async move {
            let ids: Vec<String> = (0..3).map(|i| format!("msg-{i}")).collect();
            assert!(store.sends_for(&ids).await.unwrap().is_empty());
            let claims = store.claim_sends(&ids, "smtp", 1_000, 500).await.unwrap();
            assert!(claims.iter().all(|c| *c == Claim::Claimed { attempt: 1 }));
            // a second claim while the leases run: held, in order
            let again = store.claim_sends(&ids, "smtp", 1_100, 500).await.unwrap();
            assert!(again.iter().all(|c| *c
                == Claim::Held {
                    lease_until_ms: 1_500
                }));
            let marks = vec![
                (
                    ids[0].clone(),
                    1,
                    SendMark::Sent {
                        provider_message_id: "p0".into(),
                    },
                ),
                (
                    ids[1].clone(),
                    1,
                    SendMark::Failed {
                        error: "550 no".into(),
                    },
                ),
                // a stale attempt number is fenced off
                (
                    ids[2].clone(),
                    7,
                    SendMark::Sent {
                        provider_message_id: "px".into(),
                    },
                ),
            ];
            assert_eq!(
                store.mark_sends(&marks, 1_200).await.unwrap(),
                vec![true, true, false]
            );
            let found = store.sends_for(&ids).await.unwrap();
            assert_eq!(found.len(), 3);
            assert_eq!(found["msg-0"].state, SendState::Sent);
            assert_eq!(found["msg-0"].provider_message_id.as_deref(), Some("p0"));
            assert_eq!(found["msg-1"].last_error.as_deref(), Some("550 no"));
            assert_eq!(found["msg-2"].state, SendState::Claimed);
            // after its lease: claimed again (attempt 2), an already sent one never
            let later = store
                .claim_sends(&ids[..1], "smtp", 9_000, 500)
                .await
                .unwrap();
            assert!(matches!(later[0], Claim::AlreadySent { .. }));
            let unconfirmed = format!("{UNCONFIRMED_PREFIX}: worker stopped; resent");
            store
                .mark_sends(
                    &[(ids[2].clone(), 1, SendMark::Failed { error: unconfirmed })],
                    9_000,
                )
                .await
                .unwrap();
            let listed = store.unconfirmed_sends(10).await.unwrap();
            assert_eq!(listed.len(), 1);
            assert_eq!(listed[0].message_id, "msg-2");
            // more ids than one statement takes
            let many: Vec<String> = (0..1_200).map(|i| format!("bulk-{i}")).collect();
            store.claim_sends(&many, "outbox", 1, 10).await.unwrap();
            assert_eq!(store.sends_for(&many).await.unwrap().len(), 1_200);
        })
    })
    .await;
}

#[tokio::test]
async fn failure_reasons_and_unconfirmed_sends_per_campaign() {
    on_both(|store| {
        Box::pin(async move {
            let mut rows: Vec<Assignment> = (0..6).map(assignment).collect();
            let mut other = assignment(99);
            other.campaign_id = "c2".into();
            rows.push(other);
            store.insert_assignments(&rows).await.unwrap();
            let ids: Vec<String> = rows.iter().map(|a| a.message_id.clone()).collect();
            store.claim_sends(&ids, "smtp", 1_000, 500).await.unwrap();
            let failed = |error: &str| SendMark::Failed {
                error: error.into(),
            };
            let unconfirmed = format!("{UNCONFIRMED_PREFIX}: worker stopped; skipped");
            let marks = vec![
                (ids[0].clone(), 1, failed("550 5.1.1 no such user")),
                (ids[1].clone(), 1, failed("550 5.1.1 no such user")),
                (ids[2].clone(), 1, failed("552 mailbox full")),
                (ids[3].clone(), 1, failed(&unconfirmed)),
                (
                    ids[4].clone(),
                    1,
                    SendMark::Sent {
                        provider_message_id: "p4".into(),
                    },
                ),
                // another campaign's failures are not this one's
                (ids[6].clone(), 1, failed("550 5.1.1 no such user")),
            ];
            store.mark_sends(&marks, 1_200).await.unwrap();
            let reasons = store.failure_reasons("c1", 10).await.unwrap();
            assert_eq!(
                reasons,
                vec![
                    ("550 5.1.1 no such user".to_string(), 2),
                    ("552 mailbox full".to_string(), 1),
                    (unconfirmed.clone(), 1),
                ]
            );
            assert_eq!(store.failure_reasons("c1", 1).await.unwrap().len(), 1);
            assert!(store.failure_reasons("nope", 10).await.unwrap().is_empty());
            // a long reply is cut, so the summary stays readable
            let long = format!("550 {}", "x".repeat(500));
            store
                .mark_sends(&[(ids[5].clone(), 1, failed(&long))], 1_300)
                .await
                .unwrap();
            let reasons = store.failure_reasons("c1", 10).await.unwrap();
            assert!(reasons.iter().any(|(r, n)| r.len() == 200 && *n == 1));

            let listed = store.campaign_unconfirmed("c1", 10).await.unwrap();
            assert_eq!(listed.len(), 1);
            assert_eq!(listed[0].message_id, ids[3]);
            assert!(
                store
                    .campaign_unconfirmed("c2", 10)
                    .await
                    .unwrap()
                    .is_empty()
            );
        })
    })
    .await;
}
