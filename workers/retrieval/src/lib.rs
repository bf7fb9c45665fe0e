//! cpo retrieval stage: finds the approved content each segment's messages may
//! quote and cite.
//!
//! For every `SegmentTask` it builds a query from the campaign objective and the
//! segment's name, description and traits, searches the approved-content corpus
//! (a BM25 index in RAM by default), keeps the documents whose audience suits the
//! segment and that are approved and unexpired on the run date, and publishes a
//! `Brief` with the top-k snippets above a per-hit relevance threshold. Results
//! are cached under versioned, content-addressed keys.
//!
//! - `document`, `corpus`: parsing, validating and loading the Markdown documents;
//! - `text`, `relevance`: analysis and the per-hit relevance calibration;
//! - `retriever`, `index`, `cache`: the `Retriever` trait, the tantivy backend and
//!   the cache-aside wrapper;
//! - `stage`: the `Stage` implementation.

pub mod cache;
pub mod config;
pub mod corpus;
pub mod date;
pub mod document;
pub mod index;
pub mod relevance;
pub mod retriever;
pub mod stage;
pub mod text;

pub use cache::CachedRetriever;
pub use config::RetrievalConfig;
pub use corpus::{Corpus, CorpusError};
pub use date::Date;
pub use document::{Category, Document};
pub use index::{Hit, TantivyRetriever};
pub use relevance::Calibration;
pub use retriever::{RetrievalError, RetrievalQuery, Retriever};
pub use stage::RetrievalStage;
