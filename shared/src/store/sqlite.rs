//! The SQLite store of `cpo run`: one file, no server, the same schema and
//! rules as PostgreSQL. Bulk writes are multi-row `INSERT`s in one transaction.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{QueryBuilder, Row, Sqlite};

use super::reads::sqlite as reads;
use super::{
    Assignment, BULK_ROWS, BulkOutcome, CampaignCounts, CampaignRecord, Claim, Contact,
    EventRecord, ExclusionRecord, SendRecord, SendState, Store, StoreConfig, StoreError,
    StoreResult, Suppression, SuppressionKey,
};
use super::{Erasure, ErasureReport, sqlite_engagement as engagement};

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "records",
        include_str!("migrations/sqlite/0001_records.sql"),
    ),
    (
        2,
        "engagement_lookups",
        include_str!("migrations/sqlite/0002_engagement_lookups.sql"),
    ),
    (
        3,
        "exclusions",
        include_str!("migrations/sqlite/0003_exclusions.sql"),
    ),
];

fn err(context: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |e| StoreError::from_sqlx(context, e)
}

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Open (creating it and its directory if needed) the file and apply the migrations.
    pub async fn connect(config: &StoreConfig) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(&config.url)
            .map_err(|e| StoreError::Permanent(format!("store.url `{}`: {e}", config.url)))?
            .create_if_missing(true)
            // WAL: readers do not block the writer; runs in one directory may overlap.
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(10));
        if let Some(dir) = options.get_filename().parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Permanent(format!("store directory {}: {e}", dir.display()))
            })?;
        }
        let lock = super::reads::sqlite::migration_lock(options.get_filename()).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(config.pool_size)
            .acquire_timeout(config.acquire_timeout())
            .connect_with(options)
            .await
            .map_err(err("open sqlite store"))?;
        super::migrator(MIGRATIONS)
            .run(&pool)
            .await
            .map_err(|e| StoreError::Permanent(format!("sqlite migrations: {e}")))?;
        drop(lock);
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Multi-row inserts of `rows`, `BULK_ROWS` per statement, in one transaction.
    async fn bulk<T>(
        &self,
        head: &str,
        rows: &[T],
        push: impl Fn(sqlx::query_builder::Separated<'_, 'static, Sqlite, &'static str>, &T) + Copy,
    ) -> StoreResult<BulkOutcome>
    where
        T: Sync,
    {
        let mut outcome = BulkOutcome::default();
        let mut tx = self.pool.begin().await.map_err(err("begin"))?;
        for chunk in rows.chunks(BULK_ROWS) {
            let mut builder: QueryBuilder<'static, Sqlite> = QueryBuilder::new(head);
            builder.push_values(chunk, push);
            builder.push(" ON CONFLICT DO NOTHING");
            let done = builder
                .build()
                .execute(&mut *tx)
                .await
                .map_err(err("bulk insert"))?;
            outcome.inserted += done.rows_affected();
            outcome.statements += 1;
        }
        tx.commit().await.map_err(err("commit"))?;
        Ok(outcome)
    }
}

async fn count(pool: &SqlitePool, sql: &str, key: &str) -> StoreResult<u64> {
    let n: i64 = sqlx::query_scalar(sql)
        .bind(key)
        .fetch_one(pool)
        .await
        .map_err(err("count"))?;
    Ok(n as u64)
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn put_campaign(&self, c: &CampaignRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO campaigns (campaign_id, request, state, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (campaign_id) DO UPDATE
             SET request = excluded.request, state = excluded.state, updated_at = excluded.updated_at",
        )
        .bind(&c.campaign_id)
        .bind(&c.request)
        .bind(&c.state)
        .bind(c.updated_at_ms)
        .execute(&self.pool)
        .await
        .map_err(err("put campaign"))?;
        Ok(())
    }

    async fn set_campaign_state(&self, id: &str, state: &str, now_ms: i64) -> StoreResult<bool> {
        let done =
            sqlx::query("UPDATE campaigns SET state = ?2, updated_at = ?3 WHERE campaign_id = ?1")
                .bind(id)
                .bind(state)
                .bind(now_ms)
                .execute(&self.pool)
                .await
                .map_err(err("set campaign state"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn campaign(&self, id: &str) -> StoreResult<Option<CampaignRecord>> {
        let row = sqlx::query(
            "SELECT campaign_id, request, state, updated_at FROM campaigns WHERE campaign_id = ?1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(err("read campaign"))?;
        Ok(row.map(|r| CampaignRecord {
            campaign_id: r.get("campaign_id"),
            request: r.get("request"),
            state: r.get("state"),
            updated_at_ms: r.get("updated_at"),
        }))
    }

    async fn insert_assignments(&self, rows: &[Assignment]) -> StoreResult<BulkOutcome> {
        self.bulk(
            "INSERT INTO assignments (message_id, campaign_id, customer_id, segment, arm, variant) ",
            rows,
            |mut b, a| {
                b.push_bind(a.message_id.clone())
                    .push_bind(a.campaign_id.clone())
                    .push_bind(a.customer_id.clone())
                    .push_bind(a.segment.clone())
                    .push_bind(a.arm.clone())
                    .push_bind(a.variant.clone());
            },
        )
        .await
    }

    async fn count_assignments(&self, campaign_id: &str) -> StoreResult<u64> {
        count(
            &self.pool,
            "SELECT count(*) FROM assignments WHERE campaign_id = ?1",
            campaign_id,
        )
        .await
    }

    async fn claim_send(
        &self,
        message_id: &str,
        sink: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> StoreResult<Claim> {
        // One statement (SQLite serializes writers), so two claims cannot both win.
        let claimed: Option<i32> = sqlx::query_scalar(
            "INSERT INTO sends (message_id, sink, state, attempts, lease_until, first_claimed_at, updated_at)
             VALUES (?1, ?2, 'claimed', 1, ?3 + ?4, ?3, ?3)
             ON CONFLICT (message_id) DO UPDATE
             SET state = 'claimed', sink = excluded.sink, attempts = sends.attempts + 1,
                 lease_until = excluded.lease_until, updated_at = excluded.updated_at
             WHERE sends.state = 'failed' OR (sends.state = 'claimed' AND sends.lease_until <= ?3)
             RETURNING attempts",
        )
        .bind(message_id)
        .bind(sink)
        .bind(now_ms)
        .bind(lease_ms)
        .fetch_optional(&self.pool)
        .await
        .map_err(err("claim send"))?;
        if let Some(attempt) = claimed {
            return Ok(Claim::Claimed { attempt });
        }
        let current = self
            .send(message_id)
            .await?
            .ok_or_else(|| StoreError::Transient(format!("send {message_id} vanished")))?;
        Ok(match current.state {
            SendState::Sent => Claim::AlreadySent {
                provider_message_id: current.provider_message_id,
            },
            _ => Claim::Held {
                lease_until_ms: current.lease_until_ms,
            },
        })
    }

    async fn mark_sent(
        &self,
        message_id: &str,
        attempt: i32,
        provider_message_id: &str,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE sends SET state = 'sent', provider_message_id = ?3, sent_at = ?4, updated_at = ?4
             WHERE message_id = ?1 AND attempts = ?2 AND state = 'claimed'",
        )
        .bind(message_id)
        .bind(attempt)
        .bind(provider_message_id)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(err("mark sent"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn mark_failed(
        &self,
        message_id: &str,
        attempt: i32,
        error: &str,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE sends SET state = 'failed', last_error = ?3, updated_at = ?4
             WHERE message_id = ?1 AND attempts = ?2 AND state = 'claimed'",
        )
        .bind(message_id)
        .bind(attempt)
        .bind(error)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(err("mark failed"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn send(&self, message_id: &str) -> StoreResult<Option<SendRecord>> {
        let row = sqlx::query("SELECT * FROM sends WHERE message_id = ?1")
            .bind(message_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(err("read send"))?;
        let Some(row) = row else { return Ok(None) };
        let state: String = row.get("state");
        Ok(Some(SendRecord {
            message_id: row.get("message_id"),
            sink: row.get("sink"),
            provider_message_id: row.get("provider_message_id"),
            state: SendState::parse(&state)?,
            attempts: row.get("attempts"),
            lease_until_ms: row.get("lease_until"),
            first_claimed_at_ms: row.get("first_claimed_at"),
            updated_at_ms: row.get("updated_at"),
            sent_at_ms: row.get("sent_at"),
            last_error: row.get("last_error"),
        }))
    }

    async fn sends_for(&self, ids: &[String]) -> StoreResult<HashMap<String, SendRecord>> {
        super::sends::sqlite_sends_for(&self.pool, ids).await
    }

    async fn unconfirmed_sends(&self, limit: u32) -> StoreResult<Vec<SendRecord>> {
        super::sends::sqlite_unconfirmed(&self.pool, limit).await
    }

    async fn failure_reasons(
        &self,
        campaign_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<(String, u64)>> {
        super::sends::sqlite_failure_reasons(&self.pool, campaign_id, limit).await
    }

    async fn campaign_unconfirmed(
        &self,
        campaign_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<SendRecord>> {
        super::sends::sqlite_campaign_unconfirmed(&self.pool, campaign_id, limit).await
    }

    async fn claim_sends(
        &self,
        ids: &[String],
        sink: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> StoreResult<Vec<Claim>> {
        super::sends::sqlite_claim_sends(&self.pool, ids, sink, now_ms, lease_ms).await
    }

    async fn mark_sends(
        &self,
        marks: &[(String, i32, super::SendMark)],
        now_ms: i64,
    ) -> StoreResult<Vec<bool>> {
        super::sends::sqlite_mark_sends(&self.pool, marks, now_ms).await
    }

    async fn record_event(&self, e: &EventRecord) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO events (provider, provider_event_id, event_type, message_id, occurred_at, raw)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
        )
        .bind(&e.provider)
        .bind(&e.provider_event_id)
        .bind(&e.event_type)
        .bind(&e.message_id)
        .bind(e.occurred_at_ms)
        .bind(&e.raw)
        .execute(&self.pool)
        .await
        .map_err(err("record event"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn count_events(&self, message_id: &str) -> StoreResult<u64> {
        count(
            &self.pool,
            "SELECT count(*) FROM events WHERE message_id = ?1",
            message_id,
        )
        .await
    }

    async fn suppress(&self, rows: &[Suppression]) -> StoreResult<BulkOutcome> {
        self.bulk(
            "INSERT INTO suppressions (kind, value, reason, source, created_at) ",
            rows,
            |mut b, s| {
                b.push_bind(s.key.kind())
                    .push_bind(s.key.value().to_string())
                    .push_bind(s.reason.clone())
                    .push_bind(s.source.clone())
                    .push_bind(s.created_at_ms);
            },
        )
        .await
    }

    async fn suppressed(&self, keys: &[SuppressionKey]) -> StoreResult<HashSet<SuppressionKey>> {
        let mut found = HashSet::new();
        for chunk in keys.chunks(BULK_ROWS) {
            let mut builder: QueryBuilder<Sqlite> =
                QueryBuilder::new("SELECT kind, value FROM suppressions WHERE (kind, value) IN (");
            builder.push_values(chunk, |mut b, k| {
                b.push_bind(k.kind()).push_bind(k.value().to_string());
            });
            builder.push(")");
            // push_values writes `VALUES (..), (..)`, a valid row-value list inside IN.
            let rows = builder
                .build()
                .fetch_all(&self.pool)
                .await
                .map_err(err("check suppressions"))?;
            for row in rows {
                found.insert(SuppressionKey::from_parts(
                    row.get::<&str, _>("kind"),
                    row.get("value"),
                )?);
            }
        }
        Ok(found)
    }

    async fn unsuppress(&self, key: &SuppressionKey) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM suppressions WHERE kind = ?1 AND value = ?2")
            .bind(key.kind())
            .bind(key.value())
            .execute(&self.pool)
            .await
            .map_err(err("unsuppress"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn record_contacts(&self, rows: &[Contact]) -> StoreResult<BulkOutcome> {
        self.bulk(
            "INSERT INTO contacts (message_id, customer_id, campaign_id, contacted_at) ",
            rows,
            |mut b, c| {
                b.push_bind(c.message_id.clone())
                    .push_bind(c.customer_id.clone())
                    .push_bind(c.campaign_id.clone())
                    .push_bind(c.contacted_at_ms);
            },
        )
        .await
    }

    async fn contacts_since(
        &self,
        customers: &[String],
        since_ms: i64,
    ) -> StoreResult<HashMap<String, u64>> {
        let mut counts = HashMap::new();
        for chunk in customers.chunks(BULK_ROWS) {
            let mut builder: QueryBuilder<Sqlite> = QueryBuilder::new(
                "SELECT customer_id, count(*) AS n FROM contacts WHERE contacted_at >= ",
            );
            builder.push_bind(since_ms).push(" AND customer_id IN (");
            let mut list = builder.separated(", ");
            for customer in chunk {
                list.push_bind(customer.clone());
            }
            builder.push(") GROUP BY customer_id");
            let rows = builder
                .build()
                .fetch_all(&self.pool)
                .await
                .map_err(err("count contacts"))?;
            for row in rows {
                counts.insert(row.get("customer_id"), row.get::<i64, _>("n") as u64);
            }
        }
        Ok(counts)
    }
    async fn suppressions_of(&self, keys: &[SuppressionKey]) -> StoreResult<Vec<Suppression>> {
        reads::suppressions_of(&self.pool, keys).await
    }

    async fn contacts_since_except(
        &self,
        customers: &[String],
        since_ms: i64,
        except_campaign: &str,
    ) -> StoreResult<HashMap<String, u64>> {
        reads::contacts_since_except(&self.pool, customers, since_ms, except_campaign).await
    }

    async fn record_exclusions(&self, rows: &[ExclusionRecord]) -> StoreResult<BulkOutcome> {
        reads::record_exclusions(&self.pool, rows).await
    }

    async fn campaign_counts(&self, campaign_id: &str) -> StoreResult<CampaignCounts> {
        reads::campaign_counts(&self.pool, campaign_id).await
    }

    async fn assignments_for_campaign(&self, campaign_id: &str) -> StoreResult<Vec<Assignment>> {
        reads::assignments_for_campaign(&self.pool, campaign_id).await
    }

    async fn events_for_campaign(&self, campaign_id: &str) -> StoreResult<Vec<EventRecord>> {
        reads::events_for_campaign(&self.pool, campaign_id).await
    }

    async fn record_audience(
        &self,
        campaign_id: &str,
        customers_total: u64,
        batches: u64,
        now_ms: i64,
    ) -> StoreResult<()> {
        reads::record_audience(&self.pool, campaign_id, customers_total, batches, now_ms).await
    }

    async fn record_events(&self, events: &[EventRecord]) -> StoreResult<Vec<bool>> {
        engagement::record_events(&self.pool, events).await
    }

    async fn assignments_for_messages(
        &self,
        ids: &[String],
    ) -> StoreResult<HashMap<String, Assignment>> {
        engagement::assignments_for_messages(&self.pool, ids).await
    }

    async fn messages_for_provider_ids(
        &self,
        ids: &[String],
    ) -> StoreResult<HashMap<String, String>> {
        engagement::messages_for_provider_ids(&self.pool, ids).await
    }

    async fn list_suppressions(&self) -> StoreResult<Vec<Suppression>> {
        engagement::list_suppressions(&self.pool).await
    }

    async fn suppression_of(&self, key: &SuppressionKey) -> StoreResult<Option<Suppression>> {
        engagement::suppression_of(&self.pool, key).await
    }

    async fn forget(&self, erasure: &Erasure) -> StoreResult<ErasureReport> {
        engagement::forget(&self.pool, erasure).await
    }
}
