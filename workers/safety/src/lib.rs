//! cpo safety stage: screens every message variant before anything can be sent.
//!
//! A `SafetyScreen` reports severities 0-7 for hate, violence, self-harm and
//! sexual content plus brand-policy findings (profanity, personal data,
//! prompt-injection remnants, unsubstantiated claims, template expressions).
//! `verdict::evaluate` turns a report into a decision: any category at or above
//! its threshold blocks, any finding blocks, unresolved or missing citations
//! block, a sentence that is neither tone phrasing nor supported by the
//! snippet it cites blocks (`claims`), and so does every screen error, timeout
//! or malformed report (fail-closed). `SafetyStage` signs approvals (HMAC over the content hash),
//! appends every decision to the MAC-chained audit log, and publishes the
//! decision for experimentation; blocked variants are also dead-lettered.
//! Under `safety.on_screen_error: hold` a screen error publishes no decision
//! at all: the variant waits out a transient error (an outage, throttling) or
//! is dead-lettered, and nothing is sent.
//!
//! `EmbeddedScreen` is the offline backend: weighted lexicons over text
//! normalized against obfuscation (NFKC, l33t, spacing, masking, elongation,
//! look-alike letters, zero-width characters), matched on token boundaries.
//! `AzureScreen` asks Azure AI Content Safety for the harm severities and runs
//! the embedded brand-policy checks beside it; `OpenAiModerationScreen` and
//! `LlmGuardScreen` (a Llama Guard 3 model behind an OpenAI-compatible chat
//! API) do the same with those services. `EnsembleScreen` runs several
//! backends (`safety.backends`) and approves only what all approve.
//! `cli::screen_jsonl` backs `cpo screen`. `MergeValueScreen` applies the
//! embedded screen to the merge values of each customer (experimentation).

mod aim;
pub mod audit;
pub mod azure;
mod citations;
pub mod claims;
mod classify;
pub mod cli;
pub mod config;
mod decode;
pub mod ensemble;
pub mod error;
pub mod guard;
mod hate;
#[rustfmt::skip]
mod hate_lexicon;
mod lexicon;
mod markers;
mod matcher;
pub mod merge_values;
pub mod metrics;
mod normalize;
pub mod openai;
mod pii;
mod remote;
pub mod screen;
mod segment;
mod spelling;
pub mod stage;
pub mod verdict;

pub use azure::AzureScreen;
pub use citations::{CitationCheck, cited_ids};
pub use claims::{Source, UnsupportedClaim};
pub use cli::{ScreenArgs, ScreenStats, run_screen, run_screen_with_config, screen_jsonl};
pub use config::{
    ApiKey, AzureConfig, LlmGuardConfig, OnScreenError, OpenAiModerationConfig, SafetyConfig,
    ScreenBackend, Thresholds,
};
pub use ensemble::{BackendAnswer, EnsembleScreen};
pub use error::{SafetyError, ScreenError, ScreenErrorKind, ScreenIoError};
pub use guard::LlmGuardScreen;
pub use merge_values::MergeValueScreen;
pub use openai::OpenAiModerationScreen;
pub use screen::{
    EmbeddedScreen, FindingKind, HarmCategory, HarmEvidence, PolicyFinding, SafetyScreen,
    ScreenReport, ScreenRequest,
};
pub use stage::SafetyStage;
pub use verdict::{Assessment, BlockCause, Content, assess, evaluate, screen_guarded};
