//! The events stage: the `Stage` implementation around the batcher.

use std::sync::Arc;

use cpo_shared::model::EventMessage;
use cpo_shared::privacy::AddressHasher;
use cpo_shared::store::Store;
use cpo_shared::{Emitter, Envelope, Stage, StageError, StageResult, queues};

use crate::batch::Batcher;
use crate::config::EventsConfig;
use crate::writer::EventWriter;

/// Longest provider, event id or type accepted; a longer one is no provider's.
const MAX_FIELD: usize = 512;

pub struct EventsStage {
    writer: Arc<EventWriter>,
    batcher: Batcher,
}

impl EventsStage {
    pub fn new(
        config: &EventsConfig,
        store: Arc<dyn Store>,
        hasher: Option<AddressHasher>,
    ) -> Result<Self, String> {
        config.validate()?;
        let writer = Arc::new(EventWriter::new(store, hasher));
        Ok(Self {
            batcher: Batcher::new(writer.clone(), config.max_batch, config.flush_interval()),
            writer,
        })
    }

    /// Batches written so far (tests: batching really happens).
    pub fn batches_written(&self) -> u64 {
        self.writer.batches_written()
    }
}

/// The fields every event must have, bounded; a missing one can never be stored.
fn check(event: &EventMessage) -> Result<(), StageError> {
    for (name, value) in [
        ("provider", &event.provider),
        ("event_id", &event.event_id),
        ("type", &event.event_type),
    ] {
        if value.trim().is_empty() {
            return Err(StageError::Permanent(format!(
                "event has an empty `{name}`"
            )));
        }
        if value.len() > MAX_FIELD {
            return Err(StageError::Permanent(format!(
                "event `{name}` is {} bytes, more than {MAX_FIELD}",
                value.len()
            )));
        }
    }
    Ok(())
}

impl Stage for EventsStage {
    type Input = EventMessage;

    fn name(&self) -> &'static str {
        "events"
    }

    fn inputs(&self) -> &'static [&'static str] {
        &[queues::EVENTS]
    }

    fn preset_metrics(&self) {
        crate::metrics::events_metrics();
    }

    async fn handle(&self, message: Envelope<EventMessage>, _emit: &Emitter) -> StageResult {
        check(&message.payload)?;
        self.batcher.submit(message.payload).await?;
        Ok(Vec::new())
    }
}
