//! Large bulk writes on PostgreSQL go through `COPY`: hostile text survives the
//! text format, a replay inserts nothing, clashes fall back to the staging table.

use super::*;

/// Tab, newline, carriage return, backslash, quotes, COPY's own markers, commas
/// and non-ASCII: every one must come back byte for byte.
fn hostile(i: usize) -> Assignment {
    Assignment {
        message_id: format!("m\t{i}\\x"),
        campaign_id: "c\"o'py".into(),
        customer_id: format!("cust\n{i}\r\\N"),
        segment: "\\.".into(),
        arm: if i.is_multiple_of(2) {
            "a,\"b\""
        } else {
            "\\t"
        }
        .into(),
        variant: format!("v\u{e9}\u{1F600} {i}\n\\.\n"),
    }
}

fn sorted(mut rows: Vec<Assignment>) -> Vec<Assignment> {
    rows.sort_by(|a, b| a.message_id.cmp(&b.message_id));
    rows
}

#[tokio::test]
async fn copy_round_trips_tabs_newlines_backslashes_and_quotes_and_a_replay_inserts_0() {
    on_both(|store| {
        Box::pin(async move {
            let rows: Vec<Assignment> = (0..12_000).map(hostile).collect();
            let first = store.insert_assignments(&rows).await.unwrap();
            assert_eq!(first.inserted, 12_000);
            let pg = store.backend() == "postgres";
            // PostgreSQL: pre-check, savepoint, COPY into the table.
            let lite = 12_000u64.div_ceil(BULK_ROWS as u64);
            assert_eq!(first.statements, if pg { 3 } else { lite });
            let back = store.assignments_for_campaign("c\"o'py").await.unwrap();
            assert_eq!(sorted(back), sorted(rows.clone()));

            let replay = store.insert_assignments(&rows).await.unwrap();
            assert_eq!(replay.inserted, 0);
            if pg {
                // The campaign is known: pre-check, staging table, COPY, INSERT.
                assert_eq!(replay.statements, 4);
            }
            // Partly new: only the new rows count.
            let more: Vec<Assignment> = (11_000..17_000).map(hostile).collect();
            assert_eq!(
                store.insert_assignments(&more).await.unwrap().inserted,
                5_000
            );
            assert_eq!(store.count_assignments("c\"o'py").await.unwrap(), 17_000);
        })
    })
    .await;
}

#[tokio::test]
async fn a_clash_on_the_direct_copy_falls_back_and_counts_only_new_rows() {
    let db = PgDatabase::create().await;
    let store = connect(&db.config()).await.expect("postgres store");
    // Message ids of campaign c1 already stored.
    let old: Vec<Assignment> = (0..100).map(assignment).collect();
    store.insert_assignments(&old).await.unwrap();
    // A new campaign whose batch reuses 100 of those ids and repeats one of its own.
    let mut rows: Vec<Assignment> = (0..8_000)
        .map(|i| Assignment {
            campaign_id: "c2".into(),
            ..assignment(i)
        })
        .collect();
    rows.push(rows[7_999].clone());
    let outcome = store.insert_assignments(&rows).await.unwrap();
    assert_eq!(outcome.inserted, 7_900);
    // Pre-check, savepoint, COPY (refused), rollback, staging table, COPY, INSERT.
    assert_eq!(outcome.statements, 7);
    assert_eq!(store.count_assignments("c1").await.unwrap(), 100);
    assert_eq!(store.count_assignments("c2").await.unwrap(), 7_900);

    // A batch with its own duplicate and nothing stored yet: the same fallback.
    let mut dup: Vec<Assignment> = (0..6_000)
        .map(|i| Assignment {
            message_id: format!("d-{i}"),
            campaign_id: "c3".into(),
            ..assignment(i)
        })
        .collect();
    dup.push(dup[0].clone());
    let outcome = store.insert_assignments(&dup).await.unwrap();
    assert_eq!((outcome.inserted, outcome.statements), (6_000, 7));
    drop(store);
    db.drop_it().await;
}

#[tokio::test]
async fn a_nul_byte_is_refused_by_name_and_nothing_is_written() {
    let db = PgDatabase::create().await;
    let store = connect(&db.config()).await.expect("postgres store");
    let mut rows: Vec<Assignment> = (0..6_000).map(assignment).collect();
    rows[4_321].segment = "bad\0segment".into();
    match store.insert_assignments(&rows).await {
        Err(StoreError::Permanent(m)) => {
            assert!(m.contains("row 4321") && m.contains("segment"), "{m}")
        }
        other => panic!("expected a permanent error, got {other:?}"),
    }
    assert_eq!(store.count_assignments("c1").await.unwrap(), 0);
    drop(store);
    db.drop_it().await;
}

#[tokio::test]
async fn contacts_in_bulk_copy_and_a_replay_adds_none() {
    let db = PgDatabase::create().await;
    let store = connect(&db.config()).await.expect("postgres store");
    let rows: Vec<Contact> = (0..7_000)
        .map(|i| Contact {
            message_id: format!("m\t{i}"),
            customer_id: format!("cust\\{}", i % 10),
            campaign_id: "c\n1".into(),
            contacted_at_ms: 1_000 + i as i64,
        })
        .collect();
    let first = store.record_contacts(&rows).await.unwrap();
    assert_eq!((first.inserted, first.statements), (7_000, 3));
    let replay = store.record_contacts(&rows).await.unwrap();
    assert_eq!((replay.inserted, replay.statements), (0, 4));
    let customers: Vec<String> = (0..10).map(|i| format!("cust\\{i}")).collect();
    let counts = store.contacts_since(&customers, 0).await.unwrap();
    assert_eq!(counts.get("cust\\3"), Some(&700));
    assert_eq!(counts.values().sum::<u64>(), 7_000);
    // Contacted at 1_000..8_000 ms: the last 1_000 are at or after 7_000.
    let recent = store.contacts_since(&customers, 7_000).await.unwrap();
    assert_eq!(recent.values().sum::<u64>(), 1_000);
    drop(store);
    db.drop_it().await;
}
