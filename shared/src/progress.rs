//! Campaign progress counters: what `cpo status CAMPAIGN` reads.
//!
//! Each stage counts what it did for a campaign (customers read, variants
//! approved, customers assigned, messages delivered...) through
//! `Emitter::count`; once the message is handled and its outputs confirmed,
//! the runtime adds the counts to one Redis hash per campaign, once per
//! (stage, message id): a redelivered message is not counted twice. Dead
//! letters are counted per stage and kind as they are published.
//!
//! Counting is best effort: it never fails a message and delays it by at most
//! half a second. When the store is down or slow the count is lost (logged and
//! counted on `cpo_progress_write_errors_total`, and writes pause for a few
//! seconds), so `cpo status` can fall behind the truth, never ahead of it; the
//! outbox and the ledger remain the record.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tracing::warn;

use crate::cache::{Cache, CacheError, HashUpdate};
use crate::dead_letter::{DeadLetter, DeadLetterKind};
use crate::log_field::bounded;
use crate::metrics::metrics;

/// Customers in the audience (segmentation).
pub const CUSTOMERS_TOTAL: &str = "customers_total";
/// Customers segmentation excluded (opted out, invalid, duplicate...).
pub const EXCLUDED_AT_SEGMENTATION: &str = "excluded_at_segmentation";
/// Segments with at least one customer.
pub const SEGMENTS: &str = "segments";
/// Customer batches segmentation published.
pub const AUDIENCE_BATCHES: &str = "audience_batches";
/// Segments retrieval found content for.
pub const SEGMENTS_RETRIEVED: &str = "segments_retrieved";
pub const VARIANTS_GENERATED: &str = "variants_generated";
pub const VARIANTS_APPROVED: &str = "variants_approved";
pub const VARIANTS_BLOCKED: &str = "variants_blocked";
/// Customer batches experimentation assigned.
pub const BATCHES_ASSIGNED: &str = "batches_assigned";
pub const CUSTOMERS_ASSIGNED: &str = "customers_assigned";
pub const FALLBACKS: &str = "fallbacks";
/// Merge values (first name, location, tier) the screen refused and replaced by their fallback.
pub const MERGE_VALUES_REPLACED: &str = "merge_values_replaced";
/// Customers experimentation excluded (no approved message, duplicate).
pub const EXCLUDED_AT_ASSIGNMENT: &str = "excluded_at_assignment";
/// Messages in the outbox (sent now, or already sent by an earlier attempt).
pub const MESSAGES_DELIVERED: &str = "messages_delivered";
/// Messages delivery refused (altered, unsigned, unrenderable): dead-lettered.
pub const MESSAGES_REFUSED: &str = "messages_refused";
/// Messages the provider refused for good (SMTP 5xx, HTTP 4xx): recorded as
/// failed with the reason in the store, not retried; the customer is settled.
pub const MESSAGES_FAILED: &str = "messages_failed";
/// Messages not sent because the recipient was suppressed when delivery
/// checked again right before the send (an unsubscribe mid-campaign).
pub const MESSAGES_SUPPRESSED: &str = "messages_suppressed";
/// Claims found unconfirmed (their worker stopped mid-send), resolved by
/// `delivery.on_unconfirmed`; a subset of delivered or failed.
pub const MESSAGES_UNCONFIRMED: &str = "messages_unconfirmed";
/// When the campaign was enqueued (ms since the epoch).
pub const ENQUEUED_MS: &str = "enqueued_ms";
/// When any stage last reported (ms since the epoch).
pub const UPDATED_MS: &str = "updated_ms";
/// Prefix of the dead-letter fields: `dead_letters:<stage>:<kind>`.
pub const DEAD_LETTERS: &str = "dead_letters";
/// Prefix of the replayed-letter fields: `replayed:<stage>:<kind>` (`cpo dlq replay`).
pub const REPLAYED: &str = "replayed";

/// Key of a campaign's counters.
pub fn key(campaign_id: &str) -> String {
    format!("cpo:v1:progress:{campaign_id}")
}

fn marker(campaign_id: &str, stage: &str, message_id: &str) -> String {
    format!("cpo:v1:progress-seen:{campaign_id}:{stage}:{message_id}")
}

/// A write that takes longer is given up (and counted as lost): progress must
/// not hold up the message it describes.
const WRITE_TIMEOUT: Duration = Duration::from_millis(500);
/// After a failed write, writes are skipped this long, so an unreachable store
/// costs one timeout per pause rather than one per message.
const PAUSE_AFTER_FAILURE: Duration = Duration::from_secs(5);

/// Writes and reads the counters.
pub struct ProgressStore {
    cache: Arc<dyn Cache>,
    ttl: Duration,
    /// Unix ms before which writes are skipped (after a failure).
    paused_until_ms: AtomicU64,
}

impl ProgressStore {
    /// Counters (and their once-per-message markers) expire `ttl` after a campaign's last update.
    pub fn new(cache: Arc<dyn Cache>, ttl: Duration) -> Self {
        Self {
            cache,
            ttl: ttl.max(Duration::from_secs(1)),
            paused_until_ms: AtomicU64::new(0),
        }
    }

    /// Add `update` for message `message_id` handled by `stage`, once. Never
    /// fails and waits at most `WRITE_TIMEOUT`: a store that is down or slow
    /// loses the count (logged, and counted on `cpo_progress_write_errors_total`).
    pub async fn record(
        &self,
        campaign_id: &str,
        stage: &str,
        message_id: &str,
        update: &HashUpdate,
    ) {
        if update.is_empty() {
            return;
        }
        let now = crate::envelope::now_ms();
        if now < self.paused_until_ms.load(Ordering::Relaxed) {
            metrics().progress_write_errors.inc();
            return;
        }
        let (key, marker) = (key(campaign_id), marker(campaign_id, stage, message_id));
        let write = self.cache.hash_add_once(&key, &marker, update, self.ttl);
        let error = match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(Ok(_)) => return,
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} ms", WRITE_TIMEOUT.as_millis()),
        };
        let pause = u64::try_from(PAUSE_AFTER_FAILURE.as_millis()).unwrap_or(u64::MAX);
        self.paused_until_ms
            .store(now.saturating_add(pause), Ordering::Relaxed);
        metrics().progress_write_errors.inc();
        warn!(stage, campaign = %bounded(campaign_id), msg_id = %bounded(message_id), %error, "progress not recorded; skipping progress writes for {} s", PAUSE_AFTER_FAILURE.as_secs());
    }

    /// Count one dead letter of `stage`. A message counts once per round: the
    /// same letter published twice (a redelivery dead-lettered again) counts
    /// once, a replayed message that fails again (a new `first_seen_ms`) again.
    pub async fn dead_letter(
        &self,
        campaign_id: &str,
        stage: &str,
        kind: DeadLetterKind,
        message_id: &str,
        first_seen_ms: u64,
    ) {
        let update = HashUpdate {
            add: vec![(dead_letter_field(stage, kind), 1)],
            max: vec![(UPDATED_MS.into(), now())],
            min: Vec::new(),
        };
        let tag = format!("dead-letter:{}", kind.as_str());
        let round = format!("{stage}:{message_id}:{first_seen_ms}");
        self.record(campaign_id, &tag, &round, &update).await;
    }

    /// Count a dead letter `cpo dlq replay` published again, once per round
    /// (like `dead_letter`), however often the command is run.
    pub async fn replayed(&self, letter: &DeadLetter) {
        let Some(campaign) = &letter.campaign_id else {
            return;
        };
        let update = HashUpdate {
            add: vec![(
                format!("{REPLAYED}:{}:{}", letter.stage, letter.kind.as_str()),
                1,
            )],
            max: vec![(UPDATED_MS.into(), now())],
            min: Vec::new(),
        };
        let tag = format!("replay:{}", letter.kind.as_str());
        let round = format!("{}:{}:{}", letter.stage, letter.id, letter.first_seen_ms);
        self.record(campaign, &tag, &round, &update).await;
    }

    /// The counters of a campaign, `None` if no stage has reported (or they expired).
    pub async fn read(&self, campaign_id: &str) -> Result<Option<CampaignProgress>, CacheError> {
        let fields = self.cache.hash_get_all(&key(campaign_id)).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let counters = fields
            .into_iter()
            .filter_map(|(name, value)| {
                let value = std::str::from_utf8(&value).ok()?.parse().ok()?;
                Some((name, value))
            })
            .collect();
        Ok(Some(CampaignProgress {
            campaign_id: campaign_id.to_string(),
            counters,
        }))
    }
}

fn now() -> i64 {
    i64::try_from(crate::envelope::now_ms()).unwrap_or(i64::MAX)
}

fn dead_letter_field(stage: &str, kind: DeadLetterKind) -> String {
    format!("{DEAD_LETTERS}:{stage}:{}", kind.as_str())
}

/// Where a campaign stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignState {
    /// Segmentation has not reported the audience yet.
    Starting,
    /// Customers are still on their way.
    Running,
    /// Customers are missing (or their audience was never read) and some of
    /// the campaign's messages are in the dead-letter queue: `cpo dlq list`,
    /// fix, `cpo dlq replay`.
    Waiting,
    /// Every customer delivered or excluded.
    Complete,
}

impl CampaignState {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignState::Starting => "starting",
            CampaignState::Running => "running",
            CampaignState::Waiting => "waiting on dead letters",
            CampaignState::Complete => "complete",
        }
    }
}

/// A campaign's counters as read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignProgress {
    pub campaign_id: String,
    pub counters: BTreeMap<String, i64>,
}

impl CampaignProgress {
    /// A counter, 0 when no stage reported it.
    pub fn get(&self, field: &str) -> i64 {
        self.counters.get(field).copied().unwrap_or(0)
    }

    /// Dead letters per stage and kind, stages in name order.
    pub fn dead_letters(&self) -> BTreeMap<String, BTreeMap<String, i64>> {
        self.by_stage_and_kind(DEAD_LETTERS)
    }

    /// Dead letters replayed with `cpo dlq replay`, per stage and kind.
    pub fn replayed(&self) -> BTreeMap<String, BTreeMap<String, i64>> {
        self.by_stage_and_kind(REPLAYED)
    }

    fn by_stage_and_kind(&self, family: &str) -> BTreeMap<String, BTreeMap<String, i64>> {
        let mut by_stage: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
        let prefix = format!("{family}:");
        for (field, count) in &self.counters {
            if let Some((stage, kind)) = field.strip_prefix(&prefix).and_then(|r| r.split_once(':'))
            {
                by_stage
                    .entry(stage.to_string())
                    .or_default()
                    .insert(kind.to_string(), *count);
            }
        }
        by_stage
    }

    /// Dead letters that hold customers or variants back and were not
    /// replayed, per stage and kind. Blocked variants are decisions, not a
    /// backlog: their customers fall back or are excluded.
    pub fn dead_letters_pending(&self) -> i64 {
        let replayed = self.replayed();
        self.dead_letters()
            .iter()
            .flat_map(|(stage, kinds)| {
                let replayed = replayed.get(stage);
                kinds.iter().map(move |(kind, count)| {
                    if kind.as_str() == DeadLetterKind::Blocked.as_str() {
                        return 0;
                    }
                    let again = replayed.and_then(|r| r.get(kind)).copied().unwrap_or(0);
                    (count - again).max(0)
                })
            })
            .sum()
    }

    /// Customers delivered, failed for good, suppressed at the send, or excluded so far.
    pub fn settled(&self) -> i64 {
        self.get(MESSAGES_DELIVERED)
            + self.get(MESSAGES_FAILED)
            + self.get(MESSAGES_SUPPRESSED)
            + self.get(EXCLUDED_AT_SEGMENTATION)
            + self.get(EXCLUDED_AT_ASSIGNMENT)
    }

    /// Customers neither delivered nor excluded yet (`None` before the audience is known).
    pub fn outstanding(&self) -> Option<i64> {
        self.counters
            .get(CUSTOMERS_TOTAL)
            .map(|total| (total - self.settled()).max(0))
    }

    pub fn state(&self) -> CampaignState {
        match self.outstanding() {
            // The campaign itself was dead-lettered (at segmentation, say): no
            // audience will ever be counted until it is replayed.
            None if self.dead_letters_pending() > 0 => CampaignState::Waiting,
            None => CampaignState::Starting,
            Some(0) => CampaignState::Complete,
            Some(_) if self.dead_letters_pending() > 0 => CampaignState::Waiting,
            Some(_) => CampaignState::Running,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::MemoryCache;

    fn update(add: &[(&str, i64)]) -> HashUpdate {
        HashUpdate {
            add: add.iter().map(|(f, n)| (f.to_string(), *n)).collect(),
            ..HashUpdate::default()
        }
    }

    #[tokio::test]
    async fn a_message_counts_once_and_the_state_follows_the_counters() {
        let store = ProgressStore::new(Arc::new(MemoryCache::new()), Duration::from_secs(60));
        assert_eq!(store.read("c").await.unwrap(), None);

        let audience = update(&[(CUSTOMERS_TOTAL, 10), (EXCLUDED_AT_SEGMENTATION, 2)]);
        store.record("c", "segmentation", "m1", &audience).await;
        store.record("c", "segmentation", "m1", &audience).await;
        let p = store.read("c").await.unwrap().unwrap();
        assert_eq!(
            p.get(CUSTOMERS_TOTAL),
            10,
            "a redelivery is not counted again"
        );
        assert_eq!(p.outstanding(), Some(8));
        assert_eq!(p.state(), CampaignState::Running);

        store
            .dead_letter("c", "experimentation", DeadLetterKind::Timeout, "b1", 1)
            .await;
        store
            .dead_letter("c", "experimentation", DeadLetterKind::Timeout, "b1", 1)
            .await;
        store
            .dead_letter("c", "safety", DeadLetterKind::Blocked, "v1", 1)
            .await;
        let p = store.read("c").await.unwrap().unwrap();
        assert_eq!(p.dead_letters()["experimentation"]["timeout"], 1);
        assert_eq!(
            p.dead_letters_pending(),
            1,
            "blocked variants are not a backlog"
        );
        assert_eq!(p.state(), CampaignState::Waiting);

        let letter = DeadLetter {
            version: crate::SCHEMA_VERSION,
            id: "b1".into(),
            campaign_id: Some("c".into()),
            stage: "experimentation".into(),
            queue: "audience".into(),
            kind: DeadLetterKind::Timeout,
            reason: "waited".into(),
            reasons: Vec::new(),
            attempts: 1,
            first_seen_ms: 1,
            dead_lettered_ms: 2,
            message: None,
            raw: None,
        };
        store.replayed(&letter).await;
        store.replayed(&letter).await;
        let p = store.read("c").await.unwrap().unwrap();
        assert_eq!(p.replayed()["experimentation"]["timeout"], 1);
        assert_eq!(
            p.dead_letters_pending(),
            0,
            "replayed letters are no backlog"
        );
        assert_eq!(p.state(), CampaignState::Running);

        let delivered = update(&[(MESSAGES_DELIVERED, 5), (EXCLUDED_AT_ASSIGNMENT, 3)]);
        store.record("c", "delivery", "b1", &delivered).await;
        let p = store.read("c").await.unwrap().unwrap();
        assert_eq!(p.outstanding(), Some(0));
        assert_eq!(p.state(), CampaignState::Complete);
        // the same message id at another stage is another message
        store
            .record("c", "experimentation", "b1", &update(&[(FALLBACKS, 1)]))
            .await;
        assert_eq!(store.read("c").await.unwrap().unwrap().get(FALLBACKS), 1);
    }

    #[tokio::test]
    async fn a_campaign_dead_lettered_before_its_audience_was_read_is_waiting() {
        let store = ProgressStore::new(Arc::new(MemoryCache::new()), Duration::from_secs(60));
        store
            .dead_letter("c", "segmentation", DeadLetterKind::Permanent, "m1", 1)
            .await;
        let p = store.read("c").await.unwrap().unwrap();
        assert_eq!(p.outstanding(), None);
        assert_eq!(p.state(), CampaignState::Waiting);
    }

    #[tokio::test]
    async fn max_fields_keep_the_largest_value() {
        let store = ProgressStore::new(Arc::new(MemoryCache::new()), Duration::from_secs(60));
        for (id, ms) in [("a", 20), ("b", 10), ("c", 30)] {
            let update = HashUpdate {
                max: vec![(UPDATED_MS.into(), ms)],
                min: vec![(ENQUEUED_MS.into(), ms)],
                ..HashUpdate::default()
            };
            store.record("c", "s", id, &update).await;
        }
        let p = store.read("c").await.unwrap().unwrap();
        assert_eq!(p.get(UPDATED_MS), 30);
        assert_eq!(p.get(ENQUEUED_MS), 10, "min keeps the smallest");
    }

    #[tokio::test]
    async fn a_store_that_is_down_costs_one_failed_write_then_writes_pause() {
        let cache = Arc::new(crate::cache::FlakyCache::default());
        cache.down.store(true, Ordering::SeqCst);
        let store = ProgressStore::new(cache.clone(), Duration::from_secs(60));
        let errors = || metrics().progress_write_errors.get();
        let before = errors();
        store
            .record("c", "s", "m1", &update(&[(FALLBACKS, 1)]))
            .await;
        // back up, but writes stay paused for a few seconds: this count is lost too
        cache.down.store(false, Ordering::SeqCst);
        store
            .record("c", "s", "m2", &update(&[(FALLBACKS, 1)]))
            .await;
        assert!(errors() - before >= 2);
        assert_eq!(
            store.read("c").await.unwrap(),
            None,
            "nothing written while paused"
        );
    }

    #[tokio::test]
    async fn before_the_audience_is_known_the_campaign_is_starting() {
        let store = ProgressStore::new(Arc::new(MemoryCache::new()), Duration::from_secs(60));
        store
            .record("c", "generation", "v", &update(&[(VARIANTS_GENERATED, 3)]))
            .await;
        let p = store.read("c").await.unwrap().unwrap();
        assert_eq!(p.state(), CampaignState::Starting);
        assert_eq!(p.outstanding(), None);
    }
}
