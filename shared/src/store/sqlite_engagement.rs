//! The engagement queries of the SQLite store: the same rules as
//! `postgres_engagement.rs`, with multi-row `VALUES` and `IN (...)` lists.

use std::collections::{HashMap, HashSet};

use sqlx::sqlite::SqlitePool;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use super::{
    Assignment, BULK_ROWS, ERASED_CUSTOMER, ERASED_RAW, Erasure, ErasureReport, EventRecord,
    StoreError, StoreResult, Suppression, SuppressionKey, reasons,
};

fn err(context: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |e| StoreError::from_sqlx(context, e)
}

/// `head` followed by `(?, ?, ...)` holding `values`.
fn in_list<'a>(head: &str, values: &'a [String], tail: &str) -> QueryBuilder<'a, Sqlite> {
    let mut builder: QueryBuilder<Sqlite> = QueryBuilder::new(head);
    builder.push(" (");
    let mut list = builder.separated(", ");
    for value in values {
        list.push_bind(value.as_str());
    }
    builder.push(") ").push(tail);
    builder
}

pub(super) async fn record_events(
    pool: &SqlitePool,
    events: &[EventRecord],
) -> StoreResult<Vec<bool>> {
    let mut fresh = vec![false; events.len()];
    let mut tx = pool.begin().await.map_err(err("begin"))?;
    // 6 columns x 5000 rows stays under SQLite's 32766 bound parameters.
    for (chunk_index, chunk) in events.chunks(BULK_ROWS).enumerate() {
        let mut builder: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO events (provider, provider_event_id, event_type, message_id, occurred_at, raw) ",
        );
        builder.push_values(chunk, |mut b, e| {
            b.push_bind(e.provider.as_str())
                .push_bind(e.provider_event_id.as_str())
                .push_bind(e.event_type.as_str())
                .push_bind(e.message_id.as_deref())
                .push_bind(e.occurred_at_ms)
                .push_bind(e.raw.as_str());
        });
        builder.push(" ON CONFLICT DO NOTHING RETURNING provider, provider_event_id");
        let rows = builder
            .build()
            .fetch_all(&mut *tx)
            .await
            .map_err(err("record events"))?;
        let mut new_keys: HashSet<(String, String)> = rows
            .iter()
            .map(|r| (r.get("provider"), r.get("provider_event_id")))
            .collect();
        for (i, e) in chunk.iter().enumerate() {
            let key = (e.provider.clone(), e.provider_event_id.clone());
            fresh[chunk_index * BULK_ROWS + i] = new_keys.remove(&key);
        }
    }
    tx.commit().await.map_err(err("commit events"))?;
    Ok(fresh)
}

pub(super) async fn assignments_for_messages(
    pool: &SqlitePool,
    message_ids: &[String],
) -> StoreResult<HashMap<String, Assignment>> {
    let mut found = HashMap::new();
    for chunk in message_ids.chunks(BULK_ROWS) {
        let rows = in_list(
            "SELECT message_id, campaign_id, customer_id, segment, arm, variant
             FROM assignments WHERE message_id IN",
            chunk,
            "",
        )
        .build()
        .fetch_all(pool)
        .await
        .map_err(err("read assignments"))?;
        for r in rows {
            let a = Assignment {
                message_id: r.get("message_id"),
                campaign_id: r.get("campaign_id"),
                customer_id: r.get("customer_id"),
                segment: r.get("segment"),
                arm: r.get("arm"),
                variant: r.get("variant"),
            };
            found.insert(a.message_id.clone(), a);
        }
    }
    Ok(found)
}

pub(super) async fn messages_for_provider_ids(
    pool: &SqlitePool,
    ids: &[String],
) -> StoreResult<HashMap<String, String>> {
    let mut found = HashMap::new();
    for chunk in ids.chunks(BULK_ROWS) {
        let rows = in_list(
            "SELECT provider_message_id, message_id FROM sends WHERE provider_message_id IN",
            chunk,
            "",
        )
        .build()
        .fetch_all(pool)
        .await
        .map_err(err("read sends by provider id"))?;
        for r in rows {
            found.insert(r.get("provider_message_id"), r.get("message_id"));
        }
    }
    Ok(found)
}

pub(super) async fn list_suppressions(pool: &SqlitePool) -> StoreResult<Vec<Suppression>> {
    let rows = sqlx::query(
        "SELECT kind, value, reason, source, created_at FROM suppressions
         ORDER BY created_at, kind, value",
    )
    .fetch_all(pool)
    .await
    .map_err(err("list suppressions"))?;
    rows.iter()
        .map(|r| {
            Ok(Suppression {
                key: SuppressionKey::from_parts(r.get::<&str, _>("kind"), r.get("value"))?,
                reason: r.get("reason"),
                source: r.get("source"),
                created_at_ms: r.get("created_at"),
            })
        })
        .collect()
}

pub(super) async fn suppression_of(
    pool: &SqlitePool,
    key: &SuppressionKey,
) -> StoreResult<Option<Suppression>> {
    let row = sqlx::query(
        "SELECT reason, source, created_at FROM suppressions WHERE kind = ?1 AND value = ?2",
    )
    .bind(key.kind())
    .bind(key.value())
    .fetch_optional(pool)
    .await
    .map_err(err("read suppression"))?;
    Ok(row.map(|r| Suppression {
        key: key.clone(),
        reason: r.get("reason"),
        source: r.get("source"),
        created_at_ms: r.get("created_at"),
    }))
}

pub(super) async fn forget(pool: &SqlitePool, e: &Erasure) -> StoreResult<ErasureReport> {
    let mut tx = pool.begin().await.map_err(err("begin erasure"))?;
    let report = forget_in(&mut tx, e).await?;
    tx.commit().await.map_err(err("commit erasure"))?;
    Ok(report)
}

async fn run(
    conn: &mut SqliteConnection,
    mut q: QueryBuilder<'_, Sqlite>,
    what: &str,
) -> StoreResult<u64> {
    Ok(q.build()
        .execute(conn)
        .await
        .map_err(err(what))?
        .rows_affected())
}

async fn forget_in(conn: &mut SqliteConnection, e: &Erasure) -> StoreResult<ErasureReport> {
    // instr() on lower(): a plain substring test, no LIKE wildcards.
    let via_events: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT a.customer_id FROM events ev JOIN assignments a ON a.message_id = ev.message_id
         WHERE instr(lower(ev.raw), ?1) > 0 AND a.customer_id <> ?2",
    )
    .bind(&e.address)
    .bind(ERASED_CUSTOMER)
    .fetch_all(&mut *conn)
    .await
    .map_err(err("find customers by address"))?;
    let mut customers: Vec<String> = e.customers.clone();
    customers.extend(via_events);
    customers.sort();
    customers.dedup();

    let mut messages: Vec<String> = Vec::new();
    for chunk in customers.chunks(BULK_ROWS) {
        let rows: Vec<String> = in_list(
            "SELECT message_id FROM assignments WHERE customer_id IN",
            chunk,
            "",
        )
        .build_query_scalar()
        .fetch_all(&mut *conn)
        .await
        .map_err(err("find messages"))?;
        messages.extend(rows);
    }
    let mut events =
        sqlx::query("UPDATE events SET raw = ?1 WHERE instr(lower(raw), ?2) > 0 AND raw <> ?1")
            .bind(ERASED_RAW)
            .bind(&e.address)
            .execute(&mut *conn)
            .await
            .map_err(err("erase events"))?
            .rows_affected();
    let mut sends = 0;
    for chunk in messages.chunks(BULK_ROWS) {
        let mut q = QueryBuilder::new("UPDATE events SET raw = ");
        q.push_bind(ERASED_RAW)
            .push(" WHERE raw <> ")
            .push_bind(ERASED_RAW)
            .push(" AND message_id IN (");
        let mut list = q.separated(", ");
        for m in chunk {
            list.push_bind(m.as_str());
        }
        q.push(")");
        events += run(conn, q, "erase events").await?;
        let q = in_list(
            "UPDATE sends SET last_error = NULL WHERE last_error IS NOT NULL AND message_id IN",
            chunk,
            "",
        );
        sends += run(conn, q, "erase sends").await?;
    }
    let (mut contacts, mut assignments, mut suppressions) = (0, 0, 0);
    for chunk in customers.chunks(BULK_ROWS) {
        contacts += run(
            conn,
            in_list("DELETE FROM contacts WHERE customer_id IN", chunk, ""),
            "erase contacts",
        )
        .await?;
        let mut q = QueryBuilder::new("UPDATE assignments SET customer_id = ");
        q.push_bind(ERASED_CUSTOMER).push(" WHERE customer_id IN (");
        let mut list = q.separated(", ");
        for c in chunk {
            list.push_bind(c.as_str());
        }
        q.push(")");
        assignments += run(conn, q, "erase assignments").await?;
        suppressions += run(
            conn,
            in_list(
                "DELETE FROM suppressions WHERE kind = 'customer' AND value IN",
                chunk,
                "",
            ),
            "erase customer suppressions",
        )
        .await?;
    }
    sqlx::query(
        "INSERT INTO suppressions (kind, value, reason, source, created_at)
         VALUES ('address', ?1, ?2, ?3, ?4)
         ON CONFLICT (kind, value) DO UPDATE
         SET reason = excluded.reason, source = excluded.source, created_at = excluded.created_at",
    )
    .bind(&e.address_hash)
    .bind(reasons::ERASED)
    .bind(&e.source)
    .bind(e.now_ms)
    .execute(&mut *conn)
    .await
    .map_err(err("write tombstone"))?;
    Ok(ErasureReport {
        customers,
        assignments,
        events,
        sends,
        contacts,
        suppressions,
    })
}
