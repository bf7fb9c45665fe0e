//! Large bulk writes on PostgreSQL through `COPY ... FROM STDIN` (text format),
//! keeping insert-or-ignore on the table's primary key.
//!
//! One transaction per call. A pre-check asks whether the table already holds
//! any row of the input's campaigns (one index probe per campaign). If not, the
//! rows are copied straight into the table inside a savepoint; should a
//! primary key clash after all (the same message id in another campaign, a
//! duplicate inside the input, a concurrent writer), the savepoint is rolled
//! back and the slow path runs. The slow path copies into a temporary staging
//! table (no WAL, dropped at commit) and moves the rows with one
//! `INSERT ... SELECT ... ON CONFLICT DO NOTHING`, so `inserted` counts only
//! rows new to the store either way.

use std::collections::HashSet;

use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{Connection, Postgres, Transaction};

use super::{Assignment, BulkOutcome, Contact, StoreError, StoreResult};

/// Below this many rows the `UNNEST` statement is cheaper than a staging table.
pub(super) const COPY_MIN_ROWS: usize = 5_000;

/// Bytes of COPY data per `CopyData` message.
const SEND_BYTES: usize = 1 << 20;

/// One table written by COPY: how to name it, stage it and encode a row.
struct CopySpec<T> {
    table: &'static str,
    /// The column list, in the order `encode` writes the fields.
    columns: &'static str,
    /// Column definitions of the staging table.
    stage_columns: &'static str,
    /// The primary key column: conflicts on it are ignored.
    key: &'static str,
    campaign: fn(&T) -> &str,
    encode: fn(&T, &mut Vec<u8>) -> Result<(), String>,
}

const ASSIGNMENTS: CopySpec<Assignment> = CopySpec {
    table: "assignments",
    columns: "message_id, campaign_id, customer_id, segment, arm, variant",
    stage_columns: "message_id TEXT, campaign_id TEXT, customer_id TEXT, segment TEXT, \
                    arm TEXT, variant TEXT",
    key: "message_id",
    campaign: |a| &a.campaign_id,
    encode: |a, out| {
        text_field(out, "message_id", &a.message_id, false)?;
        text_field(out, "campaign_id", &a.campaign_id, true)?;
        text_field(out, "customer_id", &a.customer_id, true)?;
        text_field(out, "segment", &a.segment, true)?;
        text_field(out, "arm", &a.arm, true)?;
        text_field(out, "variant", &a.variant, true)?;
        out.push(b'\n');
        Ok(())
    },
};

const CONTACTS: CopySpec<Contact> = CopySpec {
    table: "contacts",
    columns: "message_id, customer_id, campaign_id, contacted_at",
    stage_columns: "message_id TEXT, customer_id TEXT, campaign_id TEXT, contacted_at BIGINT",
    key: "message_id",
    campaign: |c| &c.campaign_id,
    encode: |c, out| {
        text_field(out, "message_id", &c.message_id, false)?;
        text_field(out, "customer_id", &c.customer_id, true)?;
        text_field(out, "campaign_id", &c.campaign_id, true)?;
        out.push(b'\t');
        out.extend_from_slice(c.contacted_at_ms.to_string().as_bytes());
        out.push(b'\n');
        Ok(())
    },
};

pub(super) async fn insert_assignments(
    pool: &PgPool,
    rows: &[Assignment],
) -> StoreResult<BulkOutcome> {
    copy_insert(pool, &ASSIGNMENTS, rows).await
}

pub(super) async fn record_contacts(pool: &PgPool, rows: &[Contact]) -> StoreResult<BulkOutcome> {
    copy_insert(pool, &CONTACTS, rows).await
}

/// Append one field in COPY text format: `\`, tab, newline and carriage return
/// escaped (so `\N` or `\.` in a value stay literal text); NUL, which no
/// PostgreSQL text can hold, is refused.
fn text_field(out: &mut Vec<u8>, name: &str, value: &str, tab: bool) -> Result<(), String> {
    if tab {
        out.push(b'\t');
    }
    for &b in value.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0 => return Err(format!("{name} contains a NUL byte")),
            _ => out.push(b),
        }
    }
    Ok(())
}

/// Encode every row first, so bad input is refused before anything is sent.
fn encode_all<T>(spec: &CopySpec<T>, rows: &[T]) -> StoreResult<Vec<Vec<u8>>> {
    let mut chunks = Vec::new();
    let mut buf = Vec::with_capacity(SEND_BYTES + 4096);
    for (i, row) in rows.iter().enumerate() {
        (spec.encode)(row, &mut buf).map_err(|e| {
            StoreError::Permanent(format!("{} row {i}: {e}", spec.table.trim_end_matches('s')))
        })?;
        if buf.len() >= SEND_BYTES {
            chunks.push(std::mem::replace(
                &mut buf,
                Vec::with_capacity(SEND_BYTES + 4096),
            ));
        }
    }
    if !buf.is_empty() {
        chunks.push(buf);
    }
    Ok(chunks)
}

async fn copy_in(conn: &mut PgConnection, statement: &str, data: &[Vec<u8>]) -> sqlx::Result<u64> {
    let mut copy = conn.copy_in_raw(statement).await?;
    for chunk in data {
        copy.send(chunk.as_slice()).await?;
    }
    copy.finish().await
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("23505"))
}

async fn copy_insert<T>(pool: &PgPool, spec: &CopySpec<T>, rows: &[T]) -> StoreResult<BulkOutcome> {
    let context = format!("copy {}", spec.table);
    let err = |e| StoreError::from_sqlx(&context, e);
    let data = encode_all(spec, rows)?;
    let campaigns: Vec<&str> = rows
        .iter()
        .map(spec.campaign)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut outcome = BulkOutcome::default();
    let mut conn = pool.acquire().await.map_err(err)?;
    let mut tx: Transaction<'_, Postgres> = conn.begin().await.map_err(err)?;

    let seen: bool = sqlx::query_scalar(&format!(
        "SELECT EXISTS (SELECT 1 FROM {} WHERE campaign_id = ANY($1))",
        spec.table
    ))
    .bind(&campaigns)
    .fetch_one(&mut *tx)
    .await
    .map_err(err)?;
    outcome.statements += 1;

    if !seen {
        sqlx::query("SAVEPOINT cpo_direct_copy")
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        let direct = format!("COPY {} ({}) FROM STDIN", spec.table, spec.columns);
        outcome.statements += 2;
        match copy_in(&mut tx, &direct, &data).await {
            Ok(n) => {
                tx.commit().await.map_err(err)?;
                outcome.inserted = n;
                return Ok(outcome);
            }
            Err(e) if is_unique_violation(&e) => {
                sqlx::query("ROLLBACK TO SAVEPOINT cpo_direct_copy")
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                outcome.statements += 1;
            }
            Err(e) => return Err(err(e)),
        }
    }

    let stage = format!("cpo_stage_{}", spec.table);
    sqlx::query(&format!(
        "CREATE TEMP TABLE {stage} ({}) ON COMMIT DROP",
        spec.stage_columns
    ))
    .execute(&mut *tx)
    .await
    .map_err(err)?;
    copy_in(
        &mut tx,
        &format!("COPY {stage} ({}) FROM STDIN", spec.columns),
        &data,
    )
    .await
    .map_err(err)?;
    let done = sqlx::query(&format!(
        "INSERT INTO {table} ({columns}) SELECT {columns} FROM {stage}
         ON CONFLICT ({key}) DO NOTHING",
        table = spec.table,
        columns = spec.columns,
        key = spec.key,
    ))
    .execute(&mut *tx)
    .await
    .map_err(err)?;
    tx.commit().await.map_err(err)?;
    outcome.statements += 3;
    outcome.inserted = done.rows_affected();
    Ok(outcome)
}
