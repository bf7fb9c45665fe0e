//! cpo events stage: where the gateway's verified provider events become record.
//!
//! It consumes `events` (one `EventMessage` per provider event). Messages are
//! gathered into batches (`events.max_batch` or `events.flush_interval_ms`,
//! whichever comes first: `batch.rs`); each batch costs a handful of store
//! statements: the send records that map provider message ids to ours, the
//! assignments of the named messages (for the customer id), the suppressions,
//! and one multi-row insert of the events (`writer.rs`). Every message of a
//! batch is acked only after that batch committed.
//!
//! Hard bounces, spam complaints and unsubscribes become suppressions at once
//! (`bounced`, `complained`, `unsubscribed`; source = the provider), keyed by
//! the customer of the message and, where the provider's payload names the
//! recipient, by the keyed hash of the address (`address.rs`, `plan.rs`,
//! both pure). An event whose message is unknown is still stored, and
//! counted as unmatched. A store that is down pauses the stage
//! (`StageError::Unavailable`): the messages wait, nothing is acked unwritten.

pub mod address;
mod batch;
pub mod config;
pub mod error;
pub mod metrics;
pub mod plan;
pub mod stage;
pub mod writer;

pub use config::EventsConfig;
pub use stage::EventsStage;
pub use writer::EventWriter;
