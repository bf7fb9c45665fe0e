//! cpo generation stage: turns a brief (campaign, segment profile, retrieved
//! snippets) into message variants, one per tone plus a control message, each
//! citing the snippets its facts come from.
//!
//! - `generator`: the `Generator` trait the stage holds as `Arc<dyn Generator>`;
//! - `composer`: the offline grounded composer, the default backend (facts quoted
//!   verbatim from snippets and cited, tone phrasing from phrase banks, seeded
//!   choices so a brief always gives the same copy);
//! - `openai`: any OpenAI-compatible chat completions API, Azure OpenAI included;
//! - `cached`: replays a remote backend's drafts from the shared cache, so
//!   redeliveries and re-runs get the same copy;
//! - `check`: the contract every draft must meet whichever backend wrote it;
//! - `stage`: `GenerationStage`, consuming `briefs` and publishing `variants`
//!   and a `ledger` entry per segment.

pub mod cached;
pub mod check;
pub mod composer;
pub mod config;
pub mod generator;
pub mod grounding;
pub mod openai;
pub mod phrases;
mod scoring;
pub use cpo_shared::sentences;
pub mod stage;
pub mod subject;
pub mod voice;

pub use cached::CachedGenerator;
pub use check::{DraftViolation, MAX_SUBJECT_CHARS, MERGE_FIELDS, check_draft};
pub use composer::OfflineComposer;
pub use config::{Backend, GenerationConfig, OpenAiConfig};
pub use generator::{Draft, GenerationError, Generator, Voice};
pub use grounding::GroundingLimits;
pub use openai::OpenAiGenerator;
pub use stage::GenerationStage;
