//! The campaign-record methods on both backends (a child of `tests`, for its helpers).

use super::*;

#[tokio::test]
async fn suppressions_come_back_with_their_reasons_and_other_campaigns_count() {
    on_both(|store| {
        Box::pin(async move {
            let row = |key: SuppressionKey, reason: &str| Suppression {
                key,
                reason: reason.into(),
                source: "events".into(),
                created_at_ms: 7,
            };
            let rows: Vec<Suppression> = (0..6_000u32)
                .map(|i| row(SuppressionKey::Customer(format!("c-{i}")), "bounced"))
                .chain([row(
                    SuppressionKey::AddressHash("addr_x".into()),
                    "complained",
                )])
                .collect();
            store.suppress(&rows).await.unwrap();
            let mut asked: Vec<SuppressionKey> = rows.iter().map(|s| s.key.clone()).collect();
            asked.push(SuppressionKey::Customer("addr_x".into()));
            asked.push(SuppressionKey::AddressHash("c-1".into()));
            let mut found = store.suppressions_of(&asked).await.unwrap();
            assert_eq!(found.len(), 6_001);
            found.sort_by(|a, b| a.key.cmp(&b.key));
            let last = found.last().unwrap();
            assert_eq!(last.key, SuppressionKey::AddressHash("addr_x".into()));
            assert_eq!(
                (last.reason.as_str(), last.created_at_ms),
                ("complained", 7)
            );
            assert!(found[..6_000].iter().all(|s| s.reason == "bounced"));
            assert!(store.suppressions_of(&[]).await.unwrap().is_empty());

            let contact = |m: &str, c: &str, campaign: &str, at: i64| Contact {
                message_id: m.into(),
                customer_id: c.into(),
                campaign_id: campaign.into(),
                contacted_at_ms: at,
            };
            store
                .record_contacts(&[
                    contact("m1", "alice", "a", 100),
                    contact("m2", "alice", "b", 200),
                    contact("m3", "alice", "c", 300),
                    contact("m4", "bob", "c", 300),
                ])
                .await
                .unwrap();
            let who = vec!["alice".to_string(), "bob".into()];
            let counts = store.contacts_since_except(&who, 150, "c").await.unwrap();
            assert_eq!(counts.get("alice"), Some(&1));
            assert_eq!(counts.get("bob"), None);
            let counts = store.contacts_since_except(&who, 0, "zzz").await.unwrap();
            assert_eq!((counts["alice"], counts["bob"]), (3, 1));
        })
    })
    .await;
}

#[tokio::test]
async fn campaign_counts_assignments_and_events_are_read_per_campaign() {
    on_both(|store| {
        Box::pin(async move {
            let mut rows: Vec<Assignment> = (0..10).map(assignment).collect();
            let mut other = assignment(99);
            other.campaign_id = "c2".into();
            rows.push(other);
            store.insert_assignments(&rows).await.unwrap();
            let exclusion = |c: &str, reason: &str| ExclusionRecord {
                campaign_id: "c1".into(),
                customer_id: c.into(),
                reason: reason.into(),
                detail: "why".into(),
            };
            let exclusions = vec![
                exclusion("x1", "unsubscribed"),
                exclusion("x2", "frequency_cap"),
                exclusion("x3", "frequency_cap"),
            ];
            assert_eq!(
                store.record_exclusions(&exclusions).await.unwrap().inserted,
                3
            );
            // a replayed batch records nothing twice
            assert_eq!(
                store.record_exclusions(&exclusions).await.unwrap().inserted,
                0
            );

            for (i, outcome) in [(0, "sent"), (1, "sent"), (2, "failed"), (3, "claimed")] {
                let id = format!("m-{i}");
                let Claim::Claimed { attempt } =
                    store.claim_send(&id, "outbox", 10, 1_000).await.unwrap()
                else {
                    panic!("a new send is claimed");
                };
                match outcome {
                    "sent" => assert!(store.mark_sent(&id, attempt, "p", 11).await.unwrap()),
                    "failed" => assert!(store.mark_failed(&id, attempt, "550", 11).await.unwrap()),
                    _ => {}
                }
            }
            let event = |id: &str, message: Option<&str>, at: i64| EventRecord {
                provider: "sendgrid".into(),
                provider_event_id: id.into(),
                event_type: "open".into(),
                message_id: message.map(str::to_string),
                occurred_at_ms: at,
                raw: "{}".into(),
            };
            for e in [
                event("e2", Some("m-1"), 50),
                event("e1", Some("m-0"), 40),
                event("e3", Some("m-99"), 40),
                event("e4", None, 40),
            ] {
                store.record_event(&e).await.unwrap();
            }

            let counts = store.campaign_counts("c1").await.unwrap();
            assert_eq!(counts.assigned, 10);
            assert_eq!((counts.sent, counts.failed, counts.in_flight), (2, 1, 1));
            assert_eq!(counts.events, 2);
            assert_eq!(counts.excluded(), 3);
            assert_eq!(counts.excluded_by_reason["frequency_cap"], 2);
            assert_eq!(counts.excluded_by_reason["unsubscribed"], 1);
            let empty = store.campaign_counts("nobody").await.unwrap();
            assert_eq!(empty, CampaignCounts::default());

            let read = store.assignments_for_campaign("c1").await.unwrap();
            let mut want: Vec<Assignment> = rows[..10].to_vec();
            want.sort_by(|a, b| a.message_id.cmp(&b.message_id));
            assert_eq!(read, want);
            let events = store.events_for_campaign("c1").await.unwrap();
            let ids: Vec<&str> = events
                .iter()
                .map(|e| e.provider_event_id.as_str())
                .collect();
            assert_eq!(ids, ["e1", "e2"]);
            assert_eq!(store.events_for_campaign("c2").await.unwrap().len(), 1);
        })
    })
    .await;
}

#[tokio::test]
async fn the_audience_makes_every_customer_accountable() {
    on_both(|store| {
        Box::pin(async move {
            assert_eq!(
                store.campaign_counts("c1").await.unwrap().outstanding(),
                None
            );
            store
                .insert_assignments(&[assignment(1), assignment(2)])
                .await
                .unwrap();
            let exclusion = |key: &str, reason: &str| ExclusionRecord {
                campaign_id: "c1".into(),
                customer_id: key.into(),
                reason: reason.into(),
                detail: String::new(),
            };
            store
                .record_exclusions(&[
                    exclusion("line:7", "duplicate"),
                    exclusion("line:9", "duplicate"),
                ])
                .await
                .unwrap();
            store.record_audience("c1", 5, 1, 10).await.unwrap();
            // a replayed campaign records the same audience again
            store.record_audience("c1", 5, 1, 20).await.unwrap();
            let counts = store.campaign_counts("c1").await.unwrap();
            assert_eq!(counts.customers_total, Some(5));
            assert_eq!(counts.excluded_by_reason["duplicate"], 2);
            assert_eq!(counts.outstanding(), Some(1));
        })
    })
    .await;
}

#[tokio::test]
async fn forget_keeps_exclusions_counted_but_not_the_person() {
    on_both(|store| {
        Box::pin(async move {
            let exclusion = |c: &str| ExclusionRecord {
                campaign_id: "c1".into(),
                customer_id: c.into(),
                reason: "unsubscribed".into(),
                detail: "suppressed by customer id".into(),
            };
            store
                .record_exclusions(&[exclusion("alice"), exclusion("bob")])
                .await
                .unwrap();
            store
                .forget(&Erasure {
                    address: "a@example.com".into(),
                    address_hash: "addr_a".into(),
                    customers: vec!["alice".into(), "bob".into()],
                    source: "cli".into(),
                    now_ms: 1,
                })
                .await
                .unwrap();
            let counts = store.campaign_counts("c1").await.unwrap();
            assert_eq!(
                counts.excluded_by_reason["unsubscribed"], 2,
                "still counted"
            );
            // nothing under their ids remains (a second erasure of them changes nothing)
            assert_eq!(
                store
                    .record_exclusions(&[exclusion("alice")])
                    .await
                    .unwrap()
                    .inserted,
                1
            );
        })
    })
    .await;
}

#[tokio::test]
async fn sqlite_stores_opened_at_once_migrate_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = sqlite_config(&dir);
    let opens: Vec<_> = (0..6)
        .map(|_| {
            let config = config.clone();
            tokio::spawn(async move { SqliteStore::connect(&config).await })
        })
        .collect();
    for open in opens {
        open.await.unwrap().expect("every concurrent open succeeds");
    }
    let store = SqliteStore::connect(&config).await.unwrap();
    let applied: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(applied, vec![(1, true), (2, true), (3, true)]);
}
