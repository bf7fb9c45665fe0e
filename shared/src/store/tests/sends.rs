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
