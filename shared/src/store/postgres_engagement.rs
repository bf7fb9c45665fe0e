//! The engagement queries of the PostgreSQL store: bulk event writes, the
//! batched lookups of the events stage, the suppression list and erasure.

use std::collections::{HashMap, HashSet};

use sqlx::postgres::PgPool;
use sqlx::{Postgres, Row, Transaction};

use super::{
    Assignment, BULK_ROWS, ERASED_CUSTOMER, ERASED_RAW, Erasure, ErasureReport, EventRecord,
    StoreError, StoreResult, Suppression, SuppressionKey, reasons,
};

fn err(context: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |e| StoreError::from_sqlx(context, e)
}

pub(super) async fn record_events(pool: &PgPool, events: &[EventRecord]) -> StoreResult<Vec<bool>> {
    let mut fresh = vec![false; events.len()];
    let mut tx = pool.begin().await.map_err(err("begin"))?;
    for (chunk_index, chunk) in events.chunks(BULK_ROWS).enumerate() {
        let col = |f: fn(&EventRecord) -> &str| -> Vec<&str> { chunk.iter().map(f).collect() };
        let message_ids: Vec<Option<&str>> =
            chunk.iter().map(|e| e.message_id.as_deref()).collect();
        let times: Vec<i64> = chunk.iter().map(|e| e.occurred_at_ms).collect();
        // RETURNING names the rows that were new; a key repeated within the
        // chunk is inserted once and returned once.
        let rows = sqlx::query(
            "INSERT INTO events (provider, provider_event_id, event_type, message_id, occurred_at, raw)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[])
             ON CONFLICT DO NOTHING
             RETURNING provider, provider_event_id",
        )
        .bind(col(|e| &e.provider))
        .bind(col(|e| &e.provider_event_id))
        .bind(col(|e| &e.event_type))
        .bind(message_ids)
        .bind(times)
        .bind(col(|e| &e.raw))
        .fetch_all(&mut *tx)
        .await
        .map_err(err("record events"))?;
        let mut new_keys: HashSet<(String, String)> = rows
            .iter()
            .map(|r| (r.get("provider"), r.get("provider_event_id")))
            .collect();
        for (i, e) in chunk.iter().enumerate() {
            // The first occurrence of a new key is the new row; later ones are replays.
            let key = (e.provider.clone(), e.provider_event_id.clone());
            fresh[chunk_index * BULK_ROWS + i] = new_keys.remove(&key);
        }
    }
    tx.commit().await.map_err(err("commit events"))?;
    Ok(fresh)
}

pub(super) async fn assignments_for_messages(
    pool: &PgPool,
    message_ids: &[String],
) -> StoreResult<HashMap<String, Assignment>> {
    let mut found = HashMap::new();
    for chunk in message_ids.chunks(BULK_ROWS) {
        let rows = sqlx::query(
            "SELECT message_id, campaign_id, customer_id, segment, arm, variant
             FROM assignments WHERE message_id = ANY($1)",
        )
        .bind(chunk)
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
    pool: &PgPool,
    ids: &[String],
) -> StoreResult<HashMap<String, String>> {
    let mut found = HashMap::new();
    for chunk in ids.chunks(BULK_ROWS) {
        let rows = sqlx::query(
            "SELECT provider_message_id, message_id FROM sends WHERE provider_message_id = ANY($1)",
        )
        .bind(chunk)
        .fetch_all(pool)
        .await
        .map_err(err("read sends by provider id"))?;
        for r in rows {
            found.insert(r.get("provider_message_id"), r.get("message_id"));
        }
    }
    Ok(found)
}

pub(super) async fn list_suppressions(pool: &PgPool) -> StoreResult<Vec<Suppression>> {
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
    pool: &PgPool,
    key: &SuppressionKey,
) -> StoreResult<Option<Suppression>> {
    let row = sqlx::query(
        "SELECT reason, source, created_at FROM suppressions WHERE kind = $1 AND value = $2",
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

pub(super) async fn forget(pool: &PgPool, e: &Erasure) -> StoreResult<ErasureReport> {
    let mut tx = pool.begin().await.map_err(err("begin erasure"))?;
    let report = forget_in(&mut tx, e).await?;
    tx.commit().await.map_err(err("commit erasure"))?;
    Ok(report)
}

async fn forget_in(tx: &mut Transaction<'_, Postgres>, e: &Erasure) -> StoreResult<ErasureReport> {
    // strpos on lower(): a plain substring test, so no LIKE wildcard in the
    // address (`_` is common) can match more than the address.
    let via_events: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT a.customer_id FROM events ev JOIN assignments a ON a.message_id = ev.message_id
         WHERE strpos(lower(ev.raw), $1) > 0 AND a.customer_id <> $2",
    )
    .bind(&e.address)
    .bind(ERASED_CUSTOMER)
    .fetch_all(&mut **tx)
    .await
    .map_err(err("find customers by address"))?;
    let mut customers: Vec<String> = e.customers.clone();
    customers.extend(via_events);
    customers.sort();
    customers.dedup();

    let messages: Vec<String> =
        sqlx::query_scalar("SELECT message_id FROM assignments WHERE customer_id = ANY($1)")
            .bind(&customers)
            .fetch_all(&mut **tx)
            .await
            .map_err(err("find messages"))?;
    let events = sqlx::query(
        "UPDATE events SET raw = $3
         WHERE (message_id = ANY($1) OR strpos(lower(raw), $2) > 0) AND raw <> $3",
    )
    .bind(&messages)
    .bind(&e.address)
    .bind(ERASED_RAW)
    .execute(&mut **tx)
    .await
    .map_err(err("erase events"))?
    .rows_affected();
    let sends = sqlx::query(
        "UPDATE sends SET last_error = NULL WHERE message_id = ANY($1) AND last_error IS NOT NULL",
    )
    .bind(&messages)
    .execute(&mut **tx)
    .await
    .map_err(err("erase sends"))?
    .rows_affected();
    let contacts = sqlx::query("DELETE FROM contacts WHERE customer_id = ANY($1)")
        .bind(&customers)
        .execute(&mut **tx)
        .await
        .map_err(err("erase contacts"))?
        .rows_affected();
    let assignments =
        sqlx::query("UPDATE assignments SET customer_id = $2 WHERE customer_id = ANY($1)")
            .bind(&customers)
            .bind(ERASED_CUSTOMER)
            .execute(&mut **tx)
            .await
            .map_err(err("erase assignments"))?
            .rows_affected();
    let suppressions =
        sqlx::query("DELETE FROM suppressions WHERE kind = 'customer' AND value = ANY($1)")
            .bind(&customers)
            .execute(&mut **tx)
            .await
            .map_err(err("erase customer suppressions"))?
            .rows_affected();
    // The tombstone replaces whatever reason the address had: it now also
    // records that the person was erased.
    sqlx::query(
        "INSERT INTO suppressions (kind, value, reason, source, created_at)
         VALUES ('address', $1, $2, $3, $4)
         ON CONFLICT (kind, value) DO UPDATE
         SET reason = excluded.reason, source = excluded.source, created_at = excluded.created_at",
    )
    .bind(&e.address_hash)
    .bind(reasons::ERASED)
    .bind(&e.source)
    .bind(e.now_ms)
    .execute(&mut **tx)
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
