//! Logical queue names. Transports add a per-deployment (or per-test) prefix.

/// Campaign requests from the CRM or `cpo enqueue`; consumed by segmentation.
pub const CAMPAIGNS: &str = "campaigns";
/// One message per segment; consumed by retrieval.
pub const SEGMENTS: &str = "segments";
/// Segment plus grounding snippets; consumed by generation.
pub const BRIEFS: &str = "briefs";
/// Message variants to screen; consumed by safety.
pub const VARIANTS: &str = "variants";
/// Safety decisions (approved and blocked); consumed by experimentation.
pub const DECISIONS: &str = "decisions";
/// Customer batches; consumed by experimentation.
pub const AUDIENCE: &str = "audience";
/// Signed per-customer messages; consumed only by delivery.
pub const SEND: &str = "send";
/// Verified provider events (`EventMessage`) from the gateway; consumed by the events stage.
pub const EVENTS: &str = "events";
/// Bookkeeping facts for summaries and status; not a work queue.
pub const LEDGER: &str = "ledger";
/// Blocked, undecodable or exhausted messages, with their reasons.
pub const DEAD_LETTER: &str = "dead-letter";

/// Queues that hold work for a stage (everything but the ledger and the dead-letter queue).
pub const WORK_QUEUES: &[&str] = &[
    CAMPAIGNS, SEGMENTS, BRIEFS, VARIANTS, DECISIONS, AUDIENCE, SEND, EVENTS,
];

/// The work queues of a campaign's own run, from request to send: what
/// `cpo collect` waits to drain. Events arrive for days after a campaign and
/// belong to no run, so `EVENTS` is not one of them.
pub const PIPELINE_QUEUES: &[&str] = &[
    CAMPAIGNS, SEGMENTS, BRIEFS, VARIANTS, DECISIONS, AUDIENCE, SEND,
];

/// Queues nobody consumes during a run: collected at the end, so never bounded.
pub const SINK_QUEUES: &[&str] = &[LEDGER, DEAD_LETTER];
