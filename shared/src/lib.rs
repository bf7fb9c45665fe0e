//! cpo-shared: what every stage has in common.
//!
//! - `model`, `envelope`, `dead_letter`: the messages and their envelope;
//! - `stage`, `runtime`, `transport`: the Stage trait and the runtime that owns
//!   decoding, acking, retries, dead-lettering, metrics and spans;
//! - `cache`, `audit`, `signing`, `batch_signing`, `links`, `privacy`: backends and safeguards stages share;
//! - `progress`: per-campaign counters behind `cpo status`;
//! - `config`, `metrics`, `shutdown`, `schema`: process plumbing.

pub mod audit;
pub mod batch_signing;
pub mod cache;
pub mod config;
pub mod dead_letter;
pub mod envelope;
pub mod links;
pub mod metrics;
pub mod model;
pub mod privacy;
pub mod progress;
pub mod queues;
pub mod redis_cache;
pub mod runtime;
pub mod schema;
pub mod shutdown;
pub mod signing;
pub mod stage;
pub mod transport;

pub use envelope::{Envelope, SCHEMA_VERSION};
pub use stage::{Emitter, Outgoing, Stage, StageError, StageResult};
