//! cpo-shared: what every stage has in common.
//!
//! - `model`, `envelope`, `dead_letter`: the messages and their envelope;
//! - `stage`, `runtime`, `transport`: the Stage trait and the runtime that owns
//!   decoding, acking, retries, dead-lettering, metrics and spans;
//! - `campaign`, `campaign_file`, `keys`: campaign rules every stage applies
//!   alike (ids, arms), campaign files, and unknown keys named with a hint;
//! - `cache`, `audit`, `signing`, `batch_signing`, `links`, `privacy`: backends and safeguards stages share;
//! - `phrasing`, `sentences`: the tone phrase banks and the sentence splitter,
//!   which generation writes with and safety checks claims against;
//! - `progress`: per-campaign counters behind `cpo status`;
//! - `rate_limit`: the one send rate every delivery replica shares (in memory;
//!   `redis_cache::RedisRateLimiter` in the fleet);
//! - `config`, `metrics`, `shutdown`, `schema`: process plumbing.

pub mod audit;
pub mod batch_signing;
pub mod cache;
pub mod campaign;
pub mod campaign_file;
pub mod config;
pub mod dead_letter;
pub mod envelope;
pub mod keys;
pub mod links;
pub mod log_field;
pub mod metrics;
pub mod model;
pub mod phrasing;
pub mod privacy;
pub mod progress;
pub mod queues;
pub mod rate_limit;
pub mod redis_cache;
pub mod runtime;
pub mod schema;
pub mod sentences;
pub mod shutdown;
pub mod signing;
pub mod stage;
pub mod store;
pub mod transport;
pub mod unsubscribe;

pub use envelope::{Envelope, SCHEMA_VERSION};
pub use stage::{Emitter, Outgoing, Stage, StageError, StageResult};
