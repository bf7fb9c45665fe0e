//! Batched reads and writes of send records, for the delivery stage: one
//! lookup per customer batch, and claims and outcomes of a batch in one
//! transaction on SQLite (where every autocommit write is a sync of the file).
//! PostgreSQL claims row by row (each claim is its own race-free upsert, and
//! sends are paced by the rate limit, not by these round trips).

use std::collections::HashMap;

use sqlx::Row;

use super::{BULK_ROWS, Claim, SendRecord, SendState, StoreError, StoreResult};

/// Prefix of `last_error` of a send whose worker stopped between claim and
/// confirmation; `Store::unconfirmed_sends` lists them.
pub const UNCONFIRMED_PREFIX: &str = "unconfirmed";

/// The outcome of one claimed send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendMark {
    Sent { provider_message_id: String },
    Failed { error: String },
}

fn err(context: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |e| StoreError::from_sqlx(context, e)
}

macro_rules! send_record {
    ($row:expr) => {{
        let row = $row;
        let state: String = row.get("state");
        Ok::<_, StoreError>(SendRecord {
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
        })
    }};
}

pub(crate) async fn pg_sends_for(
    pool: &sqlx::PgPool,
    ids: &[String],
) -> StoreResult<HashMap<String, SendRecord>> {
    let mut found = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(BULK_ROWS) {
        let rows = sqlx::query("SELECT * FROM sends WHERE message_id = ANY($1)")
            .bind(chunk)
            .fetch_all(pool)
            .await
            .map_err(err("read sends"))?;
        for row in &rows {
            let record = send_record!(row)?;
            found.insert(record.message_id.clone(), record);
        }
    }
    Ok(found)
}

pub(crate) async fn pg_unconfirmed(
    pool: &sqlx::PgPool,
    limit: u32,
) -> StoreResult<Vec<SendRecord>> {
    let rows = sqlx::query(
        "SELECT * FROM sends WHERE last_error LIKE 'unconfirmed%' ORDER BY updated_at DESC, message_id LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(err("list unconfirmed sends"))?;
    rows.iter().map(|row| send_record!(row)).collect()
}

pub(crate) async fn sqlite_sends_for(
    pool: &sqlx::SqlitePool,
    ids: &[String],
) -> StoreResult<HashMap<String, SendRecord>> {
    let mut found = HashMap::with_capacity(ids.len());
    // 900 ids per statement keeps under old SQLite builds' 999 parameters.
    for chunk in ids.chunks(900) {
        let mut builder: sqlx::QueryBuilder<sqlx::Sqlite> =
            sqlx::QueryBuilder::new("SELECT * FROM sends WHERE message_id IN (");
        let mut list = builder.separated(", ");
        for id in chunk {
            list.push_bind(id.clone());
        }
        builder.push(")");
        let rows = builder
            .build()
            .fetch_all(pool)
            .await
            .map_err(err("read sends"))?;
        for row in &rows {
            let record = send_record!(row)?;
            found.insert(record.message_id.clone(), record);
        }
    }
    Ok(found)
}

pub(crate) async fn sqlite_unconfirmed(
    pool: &sqlx::SqlitePool,
    limit: u32,
) -> StoreResult<Vec<SendRecord>> {
    let rows = sqlx::query(
        "SELECT * FROM sends WHERE last_error LIKE 'unconfirmed%' ORDER BY updated_at DESC, message_id LIMIT ?1",
    )
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(err("list unconfirmed sends"))?;
    rows.iter().map(|row| send_record!(row)).collect()
}

/// Claims in one SQLite transaction (the same upsert as `claim_send`).
pub(crate) async fn sqlite_claim_sends(
    pool: &sqlx::SqlitePool,
    ids: &[String],
    sink: &str,
    now_ms: i64,
    lease_ms: i64,
) -> StoreResult<Vec<Claim>> {
    let mut tx = pool.begin().await.map_err(err("begin"))?;
    let mut claims = Vec::with_capacity(ids.len());
    for id in ids {
        let claimed: Option<i32> = sqlx::query_scalar(
            "INSERT INTO sends (message_id, sink, state, attempts, lease_until, first_claimed_at, updated_at)
             VALUES (?1, ?2, 'claimed', 1, ?3 + ?4, ?3, ?3)
             ON CONFLICT (message_id) DO UPDATE
             SET state = 'claimed', sink = excluded.sink, attempts = sends.attempts + 1,
                 lease_until = excluded.lease_until, updated_at = excluded.updated_at
             WHERE sends.state = 'failed' OR (sends.state = 'claimed' AND sends.lease_until <= ?3)
             RETURNING attempts",
        )
        .bind(id)
        .bind(sink)
        .bind(now_ms)
        .bind(lease_ms)
        .fetch_optional(&mut *tx)
        .await
        .map_err(err("claim send"))?;
        if let Some(attempt) = claimed {
            claims.push(Claim::Claimed { attempt });
            continue;
        }
        let row = sqlx::query(
            "SELECT state, provider_message_id, lease_until FROM sends WHERE message_id = ?1",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .map_err(err("read send"))?;
        let state: String = row.get("state");
        claims.push(match SendState::parse(&state)? {
            SendState::Sent => Claim::AlreadySent {
                provider_message_id: row.get("provider_message_id"),
            },
            _ => Claim::Held {
                lease_until_ms: row.get("lease_until"),
            },
        });
    }
    tx.commit().await.map_err(err("commit claims"))?;
    Ok(claims)
}

/// Outcomes in one SQLite transaction (the same fenced updates as `mark_sent`/`mark_failed`).
pub(crate) async fn sqlite_mark_sends(
    pool: &sqlx::SqlitePool,
    marks: &[(String, i32, SendMark)],
    now_ms: i64,
) -> StoreResult<Vec<bool>> {
    let mut tx = pool.begin().await.map_err(err("begin"))?;
    let mut done = Vec::with_capacity(marks.len());
    for (id, attempt, mark) in marks {
        let query = match mark {
            SendMark::Sent {
                provider_message_id,
            } => sqlx::query(
                "UPDATE sends SET state = 'sent', provider_message_id = ?3, sent_at = ?4, updated_at = ?4
                 WHERE message_id = ?1 AND attempts = ?2 AND state = 'claimed'",
            )
            .bind(id)
            .bind(attempt)
            .bind(provider_message_id)
            .bind(now_ms),
            SendMark::Failed { error } => sqlx::query(
                "UPDATE sends SET state = 'failed', last_error = ?3, updated_at = ?4
                 WHERE message_id = ?1 AND attempts = ?2 AND state = 'claimed'",
            )
            .bind(id)
            .bind(attempt)
            .bind(error)
            .bind(now_ms),
        };
        let result = query.execute(&mut *tx).await.map_err(err("mark send"))?;
        done.push(result.rows_affected() == 1);
    }
    tx.commit().await.map_err(err("commit marks"))?;
    Ok(done)
}

/// A failure reason is cut to this many characters, so one long reply groups with its kin.
const REASON_CHARS: i64 = 200;

pub(crate) async fn pg_failure_reasons(
    pool: &sqlx::PgPool,
    campaign_id: &str,
    limit: u32,
) -> StoreResult<Vec<(String, u64)>> {
    let rows = sqlx::query(
        "SELECT left(coalesce(s.last_error, 'no reason recorded'), $3) AS reason, count(*) AS n
         FROM sends s JOIN assignments a ON a.message_id = s.message_id
         WHERE a.campaign_id = $1 AND s.state = 'failed'
         GROUP BY 1 ORDER BY n DESC, reason LIMIT $2",
    )
    .bind(campaign_id)
    .bind(i64::from(limit))
    .bind(REASON_CHARS as i32)
    .fetch_all(pool)
    .await
    .map_err(err("summarize failed sends"))?;
    Ok(rows
        .iter()
        .map(|row| (row.get("reason"), row.get::<i64, _>("n").max(0) as u64))
        .collect())
}

pub(crate) async fn sqlite_failure_reasons(
    pool: &sqlx::SqlitePool,
    campaign_id: &str,
    limit: u32,
) -> StoreResult<Vec<(String, u64)>> {
    let rows = sqlx::query(
        "SELECT substr(coalesce(s.last_error, 'no reason recorded'), 1, ?3) AS reason, count(*) AS n
         FROM sends s JOIN assignments a ON a.message_id = s.message_id
         WHERE a.campaign_id = ?1 AND s.state = 'failed'
         GROUP BY 1 ORDER BY n DESC, reason LIMIT ?2",
    )
    .bind(campaign_id)
    .bind(i64::from(limit))
    .bind(REASON_CHARS)
    .fetch_all(pool)
    .await
    .map_err(err("summarize failed sends"))?;
    Ok(rows
        .iter()
        .map(|row| (row.get("reason"), row.get::<i64, _>("n").max(0) as u64))
        .collect())
}

pub(crate) async fn pg_campaign_unconfirmed(
    pool: &sqlx::PgPool,
    campaign_id: &str,
    limit: u32,
) -> StoreResult<Vec<SendRecord>> {
    let rows = sqlx::query(
        "SELECT s.* FROM sends s JOIN assignments a ON a.message_id = s.message_id
         WHERE a.campaign_id = $1 AND s.last_error LIKE 'unconfirmed%'
         ORDER BY s.updated_at DESC, s.message_id LIMIT $2",
    )
    .bind(campaign_id)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(err("list the campaign's unconfirmed sends"))?;
    rows.iter().map(|row| send_record!(row)).collect()
}

pub(crate) async fn sqlite_campaign_unconfirmed(
    pool: &sqlx::SqlitePool,
    campaign_id: &str,
    limit: u32,
) -> StoreResult<Vec<SendRecord>> {
    let rows = sqlx::query(
        "SELECT s.* FROM sends s JOIN assignments a ON a.message_id = s.message_id
         WHERE a.campaign_id = ?1 AND s.last_error LIKE 'unconfirmed%'
         ORDER BY s.updated_at DESC, s.message_id LIMIT ?2",
    )
    .bind(campaign_id)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(err("list the campaign's unconfirmed sends"))?;
    rows.iter().map(|row| send_record!(row)).collect()
}
