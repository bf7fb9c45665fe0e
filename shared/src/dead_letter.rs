//! Dead letters: what could not go on, why, and everything needed to replay it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Why a message was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterKind {
    /// A safety decision: the content must never be sent.
    Blocked,
    /// The stage said retrying cannot help.
    Permanent,
    /// Transient failures until the attempt limit.
    Exhausted,
    /// Not JSON, not an envelope, or a payload of the wrong shape.
    Undecodable,
    /// Larger than the configured message limit.
    Oversized,
    /// Waited for a join longer than allowed.
    Timeout,
}

impl DeadLetterKind {
    /// Every kind, for the metrics that pre-create one series per kind.
    pub const ALL: [DeadLetterKind; 6] = [
        DeadLetterKind::Blocked,
        DeadLetterKind::Permanent,
        DeadLetterKind::Exhausted,
        DeadLetterKind::Undecodable,
        DeadLetterKind::Oversized,
        DeadLetterKind::Timeout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterKind::Blocked => "blocked",
            DeadLetterKind::Permanent => "permanent",
            DeadLetterKind::Exhausted => "exhausted",
            DeadLetterKind::Undecodable => "undecodable",
            DeadLetterKind::Oversized => "oversized",
            DeadLetterKind::Timeout => "timeout",
        }
    }
}

/// One entry of the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeadLetter {
    pub version: u32,
    /// Id of the dead-lettered message (or a hash of its bytes when it had none).
    pub id: String,
    pub campaign_id: Option<String>,
    /// Stage that gave up on it.
    pub stage: String,
    /// Queue it was consumed from; replay publishes it there again.
    pub queue: String,
    pub kind: DeadLetterKind,
    pub reason: String,
    /// Safety reasons, when `kind` is `blocked`.
    #[serde(default)]
    pub reasons: Vec<String>,
    /// Handling attempts made, the last one included.
    pub attempts: u32,
    pub first_seen_ms: u64,
    pub dead_lettered_ms: u64,
    /// The original envelope when it was JSON.
    pub message: Option<serde_json::Value>,
    /// The original bytes (lossy UTF-8, truncated) when it was not.
    pub raw: Option<String>,
}
