//! cpo segmentation stage.
//!
//! Consumes `CampaignRequest`s from the `campaigns` queue. Reads the audience
//! (inline, or a CSV streamed twice without holding it in memory), excludes
//! invalid, duplicate, suppressed and non-consenting customers with a reason
//! each, and assigns everyone else to a segment with an ordered YAML rule set
//! over RFM features (first match wins, then a default). It publishes one
//! `SegmentTask` per non-empty segment to `segments` first, so the creative flow
//! starts early, then `CustomerBatch`es to `audience`, then one
//! `LedgerEntry::Audience` with the totals and every exclusion.
//!
//! Also home of the synthetic customer generator behind `cpo gen-data`.

pub mod audience_record;
pub mod config;
pub mod encode;
pub mod fields;
pub mod fingerprint;
pub mod generator;
pub mod lines;
pub mod metrics;
pub mod outputs;
pub mod profile;
pub mod record;
pub mod rules;
pub mod scan;
pub mod screen;
pub mod source;
pub mod stage;

pub use config::{SegmentationConfig, SegmentationError};
pub use generator::{
    GenDataArgs, GenerateError, generate_customers, generate_customers_with_progress, run_gen_data,
};
pub use rules::{DEFAULT_RULES_YAML, RuleSet, RulesError};
pub use stage::SegmentationStage;

/// Name of this stage's config section.
pub const CONFIG_SECTION: &str = "segmentation";
