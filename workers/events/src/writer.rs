//! Writes one batch of events: two batched lookups, the suppressions, one
//! multi-row insert of the events. The only IO of the stage besides the batcher.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cpo_shared::model::EventMessage;
use cpo_shared::privacy::AddressHasher;
use cpo_shared::store::metrics::store_metrics;
use cpo_shared::store::{Store, StoreError, Suppression};
use tracing::{debug, warn};

use crate::error::EventsError;
use crate::metrics::events_metrics;
use crate::plan::{Known, candidate_message_ids, plan, provider_label, type_label};

pub struct EventWriter {
    store: Arc<dyn Store>,
    /// Keys address suppressions (`security.address_key`); without it only
    /// customer suppressions are made.
    hasher: Option<AddressHasher>,
    batches: AtomicU64,
}

impl EventWriter {
    pub fn new(store: Arc<dyn Store>, hasher: Option<AddressHasher>) -> Self {
        Self {
            store,
            hasher,
            batches: AtomicU64::new(0),
        }
    }

    /// Batches written so far (each a handful of statements, whatever its size).
    pub fn batches_written(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Write `events`; one outcome per event, in order. A store that is down
    /// fails them all (they wait); a batch the store refuses is written again
    /// one event at a time, so only the event it cannot hold is refused.
    pub async fn write(&self, events: &[&EventMessage]) -> Vec<Result<(), EventsError>> {
        match self.write_batch(events).await {
            Ok(()) => events.iter().map(|_| Ok(())).collect(),
            Err(EventsError::Refused { .. }) if events.len() > 1 => {
                let mut outcomes = Vec::with_capacity(events.len());
                for event in events {
                    outcomes.push(self.write_batch(std::slice::from_ref(event)).await);
                }
                outcomes
            }
            Err(e) => {
                let reason = e.to_string();
                let unavailable = matches!(e, EventsError::Unavailable { .. });
                let op = e.op();
                events
                    .iter()
                    .map(|_| {
                        Err(if unavailable {
                            EventsError::Unavailable {
                                op,
                                reason: reason.clone(),
                            }
                        } else {
                            EventsError::Refused {
                                op,
                                reason: reason.clone(),
                            }
                        })
                    })
                    .collect()
            }
        }
    }

    async fn write_batch(&self, events: &[&EventMessage]) -> Result<(), EventsError> {
        let mut known = Known::default();
        let provider_ids: Vec<String> = events
            .iter()
            .filter_map(|e| e.provider_message_id.clone())
            .collect();
        if !provider_ids.is_empty() {
            known.by_provider_id = checked(
                "lookup_sends",
                self.store.messages_for_provider_ids(&provider_ids).await,
            )?;
        }
        let message_ids = candidate_message_ids(events, &known);
        if !message_ids.is_empty() {
            known.assignments = checked(
                "lookup_assignments",
                self.store.assignments_for_messages(&message_ids).await,
            )?;
        }
        let planned = plan(events, &known, self.hasher.as_ref());

        // Suppressions first: they are the point of the stage. A failure after
        // them leaves nothing acked, and the replay writes both again (each
        // write is insert-or-ignore).
        let mut by_reason: BTreeMap<&str, Vec<Suppression>> = BTreeMap::new();
        for s in &planned.suppressions {
            by_reason
                .entry(s.reason.as_str())
                .or_default()
                .push(s.clone());
        }
        let mut added: Vec<(&str, u64)> = Vec::new();
        for (reason, rows) in &by_reason {
            let outcome = checked("suppress", self.store.suppress(rows).await)?;
            added.push((reason, outcome.inserted));
        }
        let fresh = checked(
            "record_events",
            self.store.record_events(&planned.records).await,
        )?;
        self.batches.fetch_add(1, Ordering::Relaxed);

        let m = events_metrics();
        for (reason, n) in added {
            m.suppressions_added.with_label_values(&[reason]).inc_by(n);
        }
        let mut unmatched = 0;
        for ((record, new), matched) in planned.records.iter().zip(&fresh).zip(&planned.matched) {
            if !new {
                continue;
            }
            m.stored
                .with_label_values(&[
                    provider_label(&record.provider),
                    type_label(&record.event_type),
                ])
                .inc();
            if !matched {
                unmatched += 1;
            }
        }
        m.unmatched.inc_by(unmatched);
        debug!(
            events = events.len(),
            new = fresh.iter().filter(|n| **n).count(),
            unmatched,
            suppressions = planned.suppressions.len(),
            "events batch written"
        );
        Ok(())
    }
}

/// Count a failed store call under its operation and sort it for the runtime.
fn checked<T>(op: &'static str, result: Result<T, StoreError>) -> Result<T, EventsError> {
    result.map_err(|e| {
        store_metrics().errors.with_label_values(&[op]).inc();
        warn!(op, error = %e, "store call failed");
        EventsError::from_store(op, e)
    })
}
