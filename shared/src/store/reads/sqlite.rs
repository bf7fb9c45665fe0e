//! SQLite: suppressions with reasons, contacts of other campaigns,
//! exclusions, and the reads of one campaign's record.

use std::collections::HashMap;

use sqlx::sqlite::SqlitePool;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::suppression_from;
use crate::store::{
    Assignment, BULK_ROWS, BulkOutcome, CampaignCounts, EventRecord, ExclusionRecord, StoreError,
    StoreResult, Suppression, SuppressionKey,
};

fn err(context: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |e| StoreError::from_sqlx(context, e)
}

pub(crate) async fn suppressions_of(
    pool: &SqlitePool,
    keys: &[SuppressionKey],
) -> StoreResult<Vec<Suppression>> {
    let mut found = Vec::new();
    for chunk in keys.chunks(BULK_ROWS) {
        let mut builder: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT kind, value, reason, source, created_at FROM suppressions WHERE (kind, value) IN (",
        );
        builder.push_values(chunk, |mut b, k| {
            b.push_bind(k.kind()).push_bind(k.value().to_string());
        });
        builder.push(")");
        let rows = builder
            .build()
            .fetch_all(pool)
            .await
            .map_err(err("read suppressions"))?;
        for row in rows {
            found.push(suppression_from(
                row.get::<&str, _>("kind"),
                row.get("value"),
                row.get("reason"),
                row.get("source"),
                row.get("created_at"),
            )?);
        }
    }
    Ok(found)
}

pub(crate) async fn contacts_since_except(
    pool: &SqlitePool,
    customers: &[String],
    since_ms: i64,
    except_campaign: &str,
) -> StoreResult<HashMap<String, u64>> {
    let mut counts = HashMap::new();
    for chunk in customers.chunks(BULK_ROWS) {
        let mut builder: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT customer_id, count(*) AS n FROM contacts WHERE contacted_at >= ",
        );
        builder.push_bind(since_ms).push(" AND campaign_id <> ");
        builder
            .push_bind(except_campaign.to_string())
            .push(" AND customer_id IN (");
        let mut list = builder.separated(", ");
        for customer in chunk {
            list.push_bind(customer.clone());
        }
        builder.push(") GROUP BY customer_id");
        let rows = builder
            .build()
            .fetch_all(pool)
            .await
            .map_err(err("count contacts"))?;
        for row in rows {
            counts.insert(row.get("customer_id"), row.get::<i64, _>("n") as u64);
        }
    }
    Ok(counts)
}

pub(crate) async fn record_exclusions(
    pool: &SqlitePool,
    rows: &[ExclusionRecord],
) -> StoreResult<BulkOutcome> {
    let mut outcome = BulkOutcome::default();
    let mut tx = pool.begin().await.map_err(err("begin"))?;
    for chunk in rows.chunks(BULK_ROWS) {
        let mut builder: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO exclusions (campaign_id, customer_id, reason, detail) ");
        builder.push_values(chunk, |mut b, r| {
            b.push_bind(r.campaign_id.clone())
                .push_bind(r.customer_id.clone())
                .push_bind(r.reason.clone())
                .push_bind(r.detail.clone());
        });
        builder.push(" ON CONFLICT DO NOTHING");
        let done = builder
            .build()
            .execute(&mut *tx)
            .await
            .map_err(err("record exclusions"))?;
        outcome.inserted += done.rows_affected();
        outcome.statements += 1;
    }
    tx.commit().await.map_err(err("commit"))?;
    Ok(outcome)
}

pub(crate) async fn campaign_counts(
    pool: &SqlitePool,
    campaign_id: &str,
) -> StoreResult<CampaignCounts> {
    let mut counts = CampaignCounts::default();
    let row = sqlx::query(
        "SELECT count(*) AS assigned,
                coalesce(sum(CASE WHEN s.state = 'sent' THEN 1 ELSE 0 END), 0) AS sent,
                coalesce(sum(CASE WHEN s.state = 'failed' THEN 1 ELSE 0 END), 0) AS failed,
                coalesce(sum(CASE WHEN s.state = 'claimed' THEN 1 ELSE 0 END), 0) AS in_flight,
                (SELECT count(*) FROM events e JOIN assignments a2 ON e.message_id = a2.message_id
                  WHERE a2.campaign_id = ?1) AS events
         FROM assignments a LEFT JOIN sends s ON s.message_id = a.message_id
         WHERE a.campaign_id = ?1",
    )
    .bind(campaign_id)
    .fetch_one(pool)
    .await
    .map_err(err("count the campaign"))?;
    let n = |name: &str| row.get::<i64, _>(name) as u64;
    counts.assigned = n("assigned");
    counts.sent = n("sent");
    counts.failed = n("failed");
    counts.in_flight = n("in_flight");
    counts.events = n("events");
    let rows = sqlx::query(
        "SELECT reason, count(*) AS n FROM exclusions WHERE campaign_id = ?1 GROUP BY reason",
    )
    .bind(campaign_id)
    .fetch_all(pool)
    .await
    .map_err(err("count exclusions"))?;
    for row in rows {
        counts
            .excluded_by_reason
            .insert(row.get("reason"), row.get::<i64, _>("n") as u64);
    }
    let total: Option<i64> =
        sqlx::query_scalar("SELECT customers_total FROM audiences WHERE campaign_id = ?1")
            .bind(campaign_id)
            .fetch_optional(pool)
            .await
            .map_err(err("read the audience"))?;
    counts.customers_total = total.map(|n| n.max(0) as u64);
    Ok(counts)
}

pub(crate) async fn assignments_for_campaign(
    pool: &SqlitePool,
    campaign_id: &str,
) -> StoreResult<Vec<Assignment>> {
    let rows = sqlx::query(
        "SELECT message_id, campaign_id, customer_id, segment, arm, variant FROM assignments
         WHERE campaign_id = ?1 ORDER BY message_id",
    )
    .bind(campaign_id)
    .fetch_all(pool)
    .await
    .map_err(err("read assignments"))?;
    Ok(rows
        .iter()
        .map(|r| Assignment {
            message_id: r.get("message_id"),
            campaign_id: r.get("campaign_id"),
            customer_id: r.get("customer_id"),
            segment: r.get("segment"),
            arm: r.get("arm"),
            variant: r.get("variant"),
        })
        .collect())
}

pub(crate) async fn events_for_campaign(
    pool: &SqlitePool,
    campaign_id: &str,
) -> StoreResult<Vec<EventRecord>> {
    let rows = sqlx::query(
        "SELECT e.provider, e.provider_event_id, e.event_type, e.message_id, e.occurred_at, e.raw
         FROM events e JOIN assignments a ON e.message_id = a.message_id
         WHERE a.campaign_id = ?1 ORDER BY e.occurred_at, e.provider, e.provider_event_id",
    )
    .bind(campaign_id)
    .fetch_all(pool)
    .await
    .map_err(err("read events"))?;
    Ok(rows
        .iter()
        .map(|r| EventRecord {
            provider: r.get("provider"),
            provider_event_id: r.get("provider_event_id"),
            event_type: r.get("event_type"),
            message_id: r.get("message_id"),
            occurred_at_ms: r.get("occurred_at"),
            raw: r.get("raw"),
        })
        .collect())
}

pub(crate) async fn record_audience(
    pool: &SqlitePool,
    campaign_id: &str,
    customers_total: u64,
    batches: u64,
    now_ms: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audiences (campaign_id, customers_total, batches, recorded_at)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (campaign_id) DO UPDATE SET customers_total = excluded.customers_total,
             batches = excluded.batches, recorded_at = excluded.recorded_at",
    )
    .bind(campaign_id)
    .bind(customers_total as i64)
    .bind(batches as i64)
    .bind(now_ms)
    .execute(pool)
    .await
    .map_err(err("record the audience"))?;
    Ok(())
}

/// An exclusive lock on `<file>.migrate.lock`, held while one process migrates:
/// sqlx's migrator takes no lock on SQLite, so processes opening a new file at
/// once (runs in one directory, workers on one host) raced to create the same
/// tables. `None` for an in-memory database.
pub(crate) async fn migration_lock(file: &std::path::Path) -> StoreResult<Option<std::fs::File>> {
    if file.as_os_str().is_empty() || file.as_os_str() == ":memory:" {
        return Ok(None);
    }
    let mut name = file.as_os_str().to_owned();
    name.push(".migrate.lock");
    let path = std::path::PathBuf::from(name);
    let shown = path.display().to_string();
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StoreError::Permanent(format!("store lock {shown}: {e}")))?;
    tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
        .await
        .map_err(|e| StoreError::Transient(format!("store lock {shown}: {e}")))?
        .map(Some)
        .map_err(|e| StoreError::Permanent(format!("store lock {shown}: {e}")))
}
