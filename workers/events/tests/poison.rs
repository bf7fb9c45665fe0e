//! A batch the store refuses (a permanent error, not an outage) is written
//! again one event at a time: only the event the store cannot hold fails
//! (and is dead-lettered by the runtime); the rest of its batch is stored.
//! The store is the real SQLite one behind a wrapper that refuses any write
//! naming the event id `poison`, as a database refuses a value it cannot hold.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use cpo_events::EventWriter;
use cpo_events::error::EventsError;
use cpo_shared::model::EventMessage;
use cpo_shared::store::*;

struct Refusing(Arc<dyn Store>);

#[async_trait]
impl Store for Refusing {
    fn backend(&self) -> &'static str {
        self.0.backend()
    }
    async fn record_events(&self, events: &[EventRecord]) -> StoreResult<Vec<bool>> {
        if events.iter().any(|e| e.provider_event_id == "poison") {
            return Err(StoreError::Permanent("value too long for type".into()));
        }
        self.0.record_events(events).await
    }
    async fn suppressions_of(&self, keys: &[SuppressionKey]) -> StoreResult<Vec<Suppression>> {
        self.0.suppressions_of(keys).await
    }
    async fn contacts_since_except(
        &self,
        customers: &[String],
        since_ms: i64,
        except_campaign: &str,
    ) -> StoreResult<HashMap<String, u64>> {
        self.0
            .contacts_since_except(customers, since_ms, except_campaign)
            .await
    }
    async fn record_exclusions(&self, rows: &[ExclusionRecord]) -> StoreResult<BulkOutcome> {
        self.0.record_exclusions(rows).await
    }
    async fn campaign_counts(&self, id: &str) -> StoreResult<CampaignCounts> {
        self.0.campaign_counts(id).await
    }
    async fn assignments_for_campaign(&self, id: &str) -> StoreResult<Vec<Assignment>> {
        self.0.assignments_for_campaign(id).await
    }
    async fn events_for_campaign(&self, id: &str) -> StoreResult<Vec<EventRecord>> {
        self.0.events_for_campaign(id).await
    }
    async fn record_audience(
        &self,
        id: &str,
        total: u64,
        batches: u64,
        now: i64,
    ) -> StoreResult<()> {
        self.0.record_audience(id, total, batches, now).await
    }
    async fn put_campaign(&self, c: &CampaignRecord) -> StoreResult<()> {
        self.0.put_campaign(c).await
    }
    async fn set_campaign_state(&self, id: &str, state: &str, now: i64) -> StoreResult<bool> {
        self.0.set_campaign_state(id, state, now).await
    }
    async fn campaign(&self, id: &str) -> StoreResult<Option<CampaignRecord>> {
        self.0.campaign(id).await
    }
    async fn insert_assignments(&self, rows: &[Assignment]) -> StoreResult<BulkOutcome> {
        self.0.insert_assignments(rows).await
    }
    async fn count_assignments(&self, id: &str) -> StoreResult<u64> {
        self.0.count_assignments(id).await
    }
    async fn claim_send(&self, m: &str, sink: &str, now: i64, lease: i64) -> StoreResult<Claim> {
        self.0.claim_send(m, sink, now, lease).await
    }
    async fn mark_sent(&self, m: &str, attempt: i32, p: &str, now: i64) -> StoreResult<bool> {
        self.0.mark_sent(m, attempt, p, now).await
    }
    async fn mark_failed(&self, m: &str, attempt: i32, e: &str, now: i64) -> StoreResult<bool> {
        self.0.mark_failed(m, attempt, e, now).await
    }
    async fn send(&self, m: &str) -> StoreResult<Option<SendRecord>> {
        self.0.send(m).await
    }
    async fn record_event(&self, e: &EventRecord) -> StoreResult<bool> {
        self.0.record_event(e).await
    }
    async fn count_events(&self, m: &str) -> StoreResult<u64> {
        self.0.count_events(m).await
    }
    async fn suppress(&self, rows: &[Suppression]) -> StoreResult<BulkOutcome> {
        self.0.suppress(rows).await
    }
    async fn suppressed(&self, keys: &[SuppressionKey]) -> StoreResult<HashSet<SuppressionKey>> {
        self.0.suppressed(keys).await
    }
    async fn unsuppress(&self, key: &SuppressionKey) -> StoreResult<bool> {
        self.0.unsuppress(key).await
    }
    async fn record_contacts(&self, rows: &[Contact]) -> StoreResult<BulkOutcome> {
        self.0.record_contacts(rows).await
    }
    async fn contacts_since(&self, c: &[String], since: i64) -> StoreResult<HashMap<String, u64>> {
        self.0.contacts_since(c, since).await
    }
    async fn assignments_for_messages(
        &self,
        ids: &[String],
    ) -> StoreResult<HashMap<String, Assignment>> {
        self.0.assignments_for_messages(ids).await
    }
    async fn messages_for_provider_ids(
        &self,
        ids: &[String],
    ) -> StoreResult<HashMap<String, String>> {
        self.0.messages_for_provider_ids(ids).await
    }
    async fn list_suppressions(&self) -> StoreResult<Vec<Suppression>> {
        self.0.list_suppressions().await
    }
    async fn suppression_of(&self, key: &SuppressionKey) -> StoreResult<Option<Suppression>> {
        self.0.suppression_of(key).await
    }
    async fn forget(&self, erasure: &Erasure) -> StoreResult<ErasureReport> {
        self.0.forget(erasure).await
    }
}

fn event(id: &str) -> EventMessage {
    EventMessage {
        provider: "cpo".into(),
        event_id: id.into(),
        message_id: Some(format!("msg-{id}")),
        provider_message_id: None,
        event_type: "open".into(),
        occurred_at_ms: 1,
        raw: "{}".into(),
    }
}

#[tokio::test]
async fn only_the_event_the_store_refuses_fails_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let inner = connect(&StoreConfig {
        url: format!("sqlite://{}/cpo.sqlite", dir.path().display()),
        ..StoreConfig::default()
    })
    .await
    .unwrap();
    let writer = EventWriter::new(Arc::new(Refusing(inner.clone())), None);
    let events = [event("a"), event("poison"), event("b")];
    let refs: Vec<&EventMessage> = events.iter().collect();
    let outcomes = writer.write(&refs).await;
    assert!(outcomes[0].is_ok());
    assert!(matches!(
        outcomes[1],
        Err(EventsError::Refused {
            op: "record_events",
            ..
        })
    ));
    assert!(outcomes[2].is_ok());
    assert_eq!(inner.count_events("msg-a").await.unwrap(), 1);
    assert_eq!(inner.count_events("msg-b").await.unwrap(), 1);
    assert_eq!(inner.count_events("msg-poison").await.unwrap(), 0);
    let stage_error: cpo_shared::StageError =
        outcomes.into_iter().nth(1).unwrap().unwrap_err().into();
    assert_eq!(stage_error.kind(), "permanent");
}
