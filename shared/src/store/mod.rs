//! The system of record: campaigns, assignments, sends, provider events,
//! suppressions and contact history behind one `Store` trait, with a
//! PostgreSQL implementation for the fleet and a SQLite one for `cpo run`.
//! See `design.md` beside this file for the schema and the idempotency rules.

mod config;
mod engagement;
pub mod metrics;
mod postgres;
mod postgres_engagement;
mod reads;
mod record;
mod sends;
mod sqlite;
mod sqlite_engagement;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;

pub use config::StoreConfig;
pub use engagement::{ERASED_CUSTOMER, ERASED_RAW, Erasure, ErasureReport, reasons};
pub use postgres::PostgresStore;
pub use record::{CampaignCounts, ExclusionRecord};
pub use sends::{SendMark, UNCONFIRMED_PREFIX};
pub use sqlite::SqliteStore;

use crate::StageError;

/// Why a store call failed, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database is unreachable, busy or timed out: may succeed later.
    #[error("store unavailable: {0}")]
    Transient(String),
    /// Bad config, a failed migration, a constraint the caller broke: will not succeed.
    #[error("store: {0}")]
    Permanent(String),
}

impl StoreError {
    /// Sorts a driver error: connection and pool trouble is transient, the rest is not.
    pub(crate) fn from_sqlx(context: &str, error: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match &error {
            E::Io(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed | E::Tls(_) => {
                StoreError::Transient(format!("{context}: {error}"))
            }
            E::Database(db) => match db.code().as_deref() {
                // PostgreSQL: serialization failure, deadlock, too many connections,
                // admin shutdown; SQLite: busy, locked.
                // Also: the server starting up or shutting down (57P03, 57P02),
                // and the connection-exception class (08...).
                Some(
                    "40001" | "40P01" | "53300" | "57P01" | "57P02" | "57P03" | "08000" | "08003"
                    | "08006" | "08001" | "08004" | "5" | "6",
                ) => StoreError::Transient(format!("{context}: {error}")),
                _ => StoreError::Permanent(format!("{context}: {error}")),
            },
            _ => StoreError::Permanent(format!("{context}: {error}")),
        }
    }
}

impl From<StoreError> for StageError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Transient(m) => StageError::Transient(m),
            StoreError::Permanent(m) => StageError::Permanent(m),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A campaign as submitted (`request` is its JSON) and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignRecord {
    pub campaign_id: String,
    pub request: String,
    pub state: String,
    pub updated_at_ms: i64,
}

/// Which customer gets which variant; `message_id` is unique.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub message_id: String,
    pub campaign_id: String,
    pub customer_id: String,
    pub segment: String,
    pub arm: String,
    pub variant: String,
}

/// State of a send (see `design.md`: claimed -> sent | failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendState {
    Claimed,
    Sent,
    Failed,
}

impl SendState {
    pub fn as_str(self) -> &'static str {
        match self {
            SendState::Claimed => "claimed",
            SendState::Sent => "sent",
            SendState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> StoreResult<Self> {
        match s {
            "claimed" => Ok(SendState::Claimed),
            "sent" => Ok(SendState::Sent),
            "failed" => Ok(SendState::Failed),
            other => Err(StoreError::Permanent(format!(
                "unknown send state `{other}`"
            ))),
        }
    }
}

/// One row of `sends`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRecord {
    pub message_id: String,
    pub sink: String,
    pub provider_message_id: Option<String>,
    pub state: SendState,
    pub attempts: i32,
    pub lease_until_ms: i64,
    pub first_claimed_at_ms: i64,
    pub updated_at_ms: i64,
    pub sent_at_ms: Option<i64>,
    pub last_error: Option<String>,
}

/// The answer to `claim_send`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The caller may send; `attempt` fences the later `mark_sent`/`mark_failed`.
    Claimed { attempt: i32 },
    /// Already sent: never send again.
    AlreadySent { provider_message_id: Option<String> },
    /// Another worker holds a live lease until then.
    Held { lease_until_ms: i64 },
}

/// A provider event (delivered, opened, bounced...) with its raw payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub provider: String,
    pub provider_event_id: String,
    pub event_type: String,
    pub message_id: Option<String>,
    pub occurred_at_ms: i64,
    pub raw: String,
}

/// What a suppression is keyed by. Addresses only ever as a keyed hash.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SuppressionKey {
    Customer(String),
    AddressHash(String),
}

impl SuppressionKey {
    fn kind(&self) -> &'static str {
        match self {
            SuppressionKey::Customer(_) => "customer",
            SuppressionKey::AddressHash(_) => "address",
        }
    }

    fn value(&self) -> &str {
        match self {
            SuppressionKey::Customer(v) | SuppressionKey::AddressHash(v) => v,
        }
    }

    fn from_parts(kind: &str, value: String) -> StoreResult<Self> {
        match kind {
            "customer" => Ok(SuppressionKey::Customer(value)),
            "address" => Ok(SuppressionKey::AddressHash(value)),
            other => Err(StoreError::Permanent(format!(
                "unknown suppression kind `{other}`"
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    pub key: SuppressionKey,
    pub reason: String,
    pub source: String,
    pub created_at_ms: i64,
}

/// One contact of a customer, for frequency caps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub message_id: String,
    pub customer_id: String,
    pub campaign_id: String,
    pub contacted_at_ms: i64,
}

/// What a bulk write did: rows new to the store, and statements sent for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BulkOutcome {
    pub inserted: u64,
    pub statements: u64,
}

/// The system of record. Every write is idempotent as documented per method.
#[async_trait]
pub trait Store: Send + Sync {
    /// Which backend: "postgres" or "sqlite".
    fn backend(&self) -> &'static str;

    /// Insert or replace a campaign's request and state.
    async fn put_campaign(&self, campaign: &CampaignRecord) -> StoreResult<()>;
    async fn set_campaign_state(
        &self,
        campaign_id: &str,
        state: &str,
        now_ms: i64,
    ) -> StoreResult<bool>;
    async fn campaign(&self, campaign_id: &str) -> StoreResult<Option<CampaignRecord>>;

    /// Multi-row insert; a message id already stored is ignored (a replay is a no-op).
    async fn insert_assignments(&self, rows: &[Assignment]) -> StoreResult<BulkOutcome>;
    async fn count_assignments(&self, campaign_id: &str) -> StoreResult<u64>;

    /// Take the send of `message_id` for `lease_ms`: a new send, a failed one, or one
    /// whose lease ran out is claimed (attempts + 1); a sent one or a live lease is not.
    async fn claim_send(
        &self,
        message_id: &str,
        sink: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> StoreResult<Claim>;
    /// Claimed -> sent, only by the holder of `attempt`; false if the claim was lost.
    async fn mark_sent(
        &self,
        message_id: &str,
        attempt: i32,
        provider_message_id: &str,
        now_ms: i64,
    ) -> StoreResult<bool>;
    /// Claimed -> failed, only by the holder of `attempt`; false if the claim was lost.
    async fn mark_failed(
        &self,
        message_id: &str,
        attempt: i32,
        error: &str,
        now_ms: i64,
    ) -> StoreResult<bool>;
    async fn send(&self, message_id: &str) -> StoreResult<Option<SendRecord>>;

    /// The send records of `message_ids` that exist (batched; see `sends.rs`).
    async fn sends_for(&self, message_ids: &[String]) -> StoreResult<HashMap<String, SendRecord>> {
        let mut found = HashMap::with_capacity(message_ids.len());
        for id in message_ids {
            if let Some(record) = self.send(id).await? {
                found.insert(id.clone(), record);
            }
        }
        Ok(found)
    }
    /// `claim_send` for each id, in order (SQLite: one transaction).
    async fn claim_sends(
        &self,
        message_ids: &[String],
        sink: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> StoreResult<Vec<Claim>> {
        let mut claims = Vec::with_capacity(message_ids.len());
        for id in message_ids {
            claims.push(self.claim_send(id, sink, now_ms, lease_ms).await?);
        }
        Ok(claims)
    }
    /// `mark_sent` / `mark_failed` for each (message id, attempt, outcome), in
    /// order (SQLite: one transaction); false where the claim was lost.
    async fn mark_sends(
        &self,
        marks: &[(String, i32, SendMark)],
        now_ms: i64,
    ) -> StoreResult<Vec<bool>> {
        let mut done = Vec::with_capacity(marks.len());
        for (id, attempt, mark) in marks {
            done.push(match mark {
                SendMark::Sent {
                    provider_message_id,
                } => {
                    self.mark_sent(id, *attempt, provider_message_id, now_ms)
                        .await?
                }
                SendMark::Failed { error } => self.mark_failed(id, *attempt, error, now_ms).await?,
            });
        }
        Ok(done)
    }
    /// Sends whose worker stopped between claim and confirmation, resolved by
    /// delivery's `on_unconfirmed` policy (`last_error` starts with
    /// `UNCONFIRMED_PREFIX`), most recent first.
    /// (Both backends implement it; the default serves test doubles of the trait.)
    async fn unconfirmed_sends(&self, limit: u32) -> StoreResult<Vec<SendRecord>> {
        let _ = limit;
        Err(StoreError::Permanent(format!(
            "{} store does not list unconfirmed sends",
            self.backend()
        )))
    }
    /// A campaign's failed sends grouped by `last_error` (cut to 200
    /// characters), most frequent first, at most `limit` reasons.
    async fn failure_reasons(
        &self,
        campaign_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<(String, u64)>> {
        let _ = (campaign_id, limit);
        Err(StoreError::Permanent(format!(
            "{} store does not summarize failed sends",
            self.backend()
        )))
    }
    /// `unconfirmed_sends` of one campaign's messages, most recent first.
    async fn campaign_unconfirmed(
        &self,
        campaign_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<SendRecord>> {
        let _ = (campaign_id, limit);
        Err(StoreError::Permanent(format!(
            "{} store does not list unconfirmed sends",
            self.backend()
        )))
    }

    /// Store an event unless its (provider, provider event id) is known; true if new.
    async fn record_event(&self, event: &EventRecord) -> StoreResult<bool>;
    async fn count_events(&self, message_id: &str) -> StoreResult<u64>;

    /// Add suppressions; a key already suppressed keeps its first reason.
    async fn suppress(&self, rows: &[Suppression]) -> StoreResult<BulkOutcome>;
    /// Which of `keys` are suppressed, in one query per batch.
    async fn suppressed(&self, keys: &[SuppressionKey]) -> StoreResult<HashSet<SuppressionKey>>;
    async fn unsuppress(&self, key: &SuppressionKey) -> StoreResult<bool>;

    /// Append contacts; a message id already recorded is ignored.
    async fn record_contacts(&self, rows: &[Contact]) -> StoreResult<BulkOutcome>;
    /// Contacts per customer at or after `since_ms` (customers without any are absent).
    async fn contacts_since(
        &self,
        customers: &[String],
        since_ms: i64,
    ) -> StoreResult<HashMap<String, u64>>;

    // The campaign record (see `design.md`, "Reading the record").

    /// The suppressions (with their reasons) of those of `keys` that are suppressed,
    /// one query per `BULK_ROWS` keys.
    async fn suppressions_of(&self, keys: &[SuppressionKey]) -> StoreResult<Vec<Suppression>>;
    /// Like `contacts_since`, leaving out contacts of `except_campaign`: a replayed
    /// batch of a campaign never counts that campaign's own first attempt.
    async fn contacts_since_except(
        &self,
        customers: &[String],
        since_ms: i64,
        except_campaign: &str,
    ) -> StoreResult<HashMap<String, u64>>;
    /// Insert-or-ignore on (campaign, customer).
    async fn record_exclusions(&self, rows: &[ExclusionRecord]) -> StoreResult<BulkOutcome>;
    /// Assigned, excluded by reason, sends by state and events of one campaign.
    async fn campaign_counts(&self, campaign_id: &str) -> StoreResult<CampaignCounts>;
    /// Every assignment of the campaign, by message id.
    async fn assignments_for_campaign(&self, campaign_id: &str) -> StoreResult<Vec<Assignment>>;
    /// Every event naming one of the campaign's messages, by time then provider event id.
    async fn events_for_campaign(&self, campaign_id: &str) -> StoreResult<Vec<EventRecord>>;
    /// The audience segmentation read (a replay writes the same values again).
    async fn record_audience(
        &self,
        campaign_id: &str,
        customers_total: u64,
        batches: u64,
        now_ms: i64,
    ) -> StoreResult<()>;
    // The engagement side (events stage, `cpo suppress`, `cpo forget`).

    /// Store events in one multi-row insert per batch; a (provider, provider
    /// event id) already stored, or repeated in `events`, is ignored. Returns,
    /// per input row, whether it was new.
    async fn record_events(&self, events: &[EventRecord]) -> StoreResult<Vec<bool>>;
    /// The assignments of those message ids that have one, in one query per batch.
    async fn assignments_for_messages(
        &self,
        message_ids: &[String],
    ) -> StoreResult<HashMap<String, Assignment>>;
    /// Our message id for each provider message id a send recorded.
    async fn messages_for_provider_ids(
        &self,
        provider_message_ids: &[String],
    ) -> StoreResult<HashMap<String, String>>;
    /// Every suppression, oldest first.
    async fn list_suppressions(&self) -> StoreResult<Vec<Suppression>>;
    /// The suppression of one key, with its reason, if there is one.
    async fn suppression_of(&self, key: &SuppressionKey) -> StoreResult<Option<Suppression>>;
    /// Erase one person (see `design.md`, "Erasure"), in one transaction,
    /// leaving the address tombstone (reason `erased`).
    async fn forget(&self, erasure: &Erasure) -> StoreResult<ErasureReport>;
}

/// Open the store named by `config.url` (postgres:// or sqlite://) and apply its migrations.
pub async fn connect(config: &StoreConfig) -> StoreResult<Arc<dyn Store>> {
    let config = config
        .clone()
        .resolve()
        .map_err(|e| StoreError::Permanent(e.to_string()))?;
    config
        .validate()
        .map_err(|e| StoreError::Permanent(e.to_string()))?;
    if config.url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(&config).await?))
    } else {
        Ok(Arc::new(PostgresStore::connect(&config).await?))
    }
}

/// Rows per statement of a bulk write: large enough that 1M rows are a few hundred
/// round trips, small enough to stay under SQLite's 32766 bound parameters.
pub(crate) const BULK_ROWS: usize = 5_000;

/// The migrations of one backend, embedded in the binary.
pub(crate) fn migrator(files: &[(i64, &'static str, &'static str)]) -> sqlx::migrate::Migrator {
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    use std::borrow::Cow;
    // Built by hand instead of with `sqlx::migrate!`, which needs sqlx's macros
    // (a proc-macro build of the whole driver); the fields are public for that macro.
    Migrator {
        migrations: Cow::Owned(
            files
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*description),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect(),
        ),
        ignore_missing: false,
        locking: true,
        no_tx: false,
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_engagement;
