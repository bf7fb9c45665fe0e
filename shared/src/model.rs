//! Domain types that travel between stages.
//!
//! Every queue payload here derives `JsonSchema`; `schemas/` holds the generated
//! schemas and a test fails when they drift from these types.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Name of the control arm in every experiment.
pub const CONTROL_ARM: &str = "control";

/// One customer row, as the CRM exports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Customer {
    pub customer_id: String,
    pub first_name: String,
    pub email: String,
    pub age: u32,
    pub location: String,
    pub tier: String,
    /// Purchases in the last twelve months.
    pub purchase_frequency: u32,
    pub avg_order_value: f64,
    pub last_engagement_days: u32,
    pub historical_open_rate: f64,
    pub historical_click_rate: f64,
    pub consent: bool,
}

impl Customer {
    /// Engagement as the segmentation rules use it: mean of open and click rate.
    pub fn engagement(&self) -> f64 {
        (self.historical_open_rate + self.historical_click_rate) / 2.0
    }
}

/// Where a campaign's customers come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AudienceSource {
    /// Customers sent inline with the request (small campaigns, CRM pushes).
    Inline { customers: Vec<Customer> },
    /// A CSV file the segmentation worker can read (large campaigns).
    Csv { path: String },
}

/// A campaign as a CRM (or `cpo enqueue`) submits it. Unknown keys are
/// rejected: a misspelt `toness:` must not quietly run the default tones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignRequest {
    #[serde(deserialize_with = "crate::campaign::deserialize_campaign_id")]
    #[schemars(regex(pattern = crate::campaign::CAMPAIGN_ID_PATTERN))]
    pub campaign_id: String,
    pub name: String,
    /// What the campaign should achieve, in the marketer's words; drives retrieval.
    pub objective: String,
    /// Call to action link rendered into every message.
    #[serde(default)]
    pub call_to_action_url: Option<String>,
    /// Tones to generate, one treatment arm each (default: urgent, informational,
    /// friendly); must not be empty (see `campaign::Arms`).
    #[serde(default = "default_tones")]
    pub tones: Vec<String>,
    /// Arm weights by arm name (`control` plus one per tone); default equal.
    #[serde(default)]
    pub arm_weights: BTreeMap<String, f64>,
    /// Customer ids or email addresses that must not be contacted.
    #[serde(default)]
    pub suppressions: Vec<String>,
    pub audience: AudienceSource,
}

pub fn default_tones() -> Vec<String> {
    ["urgent", "informational", "friendly"]
        .into_iter()
        .map(String::from)
        .collect()
}

/// The parts of a campaign every creative stage needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CampaignContext {
    #[serde(deserialize_with = "crate::campaign::deserialize_campaign_id")]
    #[schemars(regex(pattern = crate::campaign::CAMPAIGN_ID_PATTERN))]
    pub campaign_id: String,
    pub name: String,
    pub objective: String,
    #[serde(default)]
    pub call_to_action_url: Option<String>,
    pub tones: Vec<String>,
    pub arm_weights: BTreeMap<String, f64>,
}

impl CampaignRequest {
    pub fn context(&self) -> CampaignContext {
        CampaignContext {
            campaign_id: self.campaign_id.clone(),
            name: self.name.clone(),
            objective: self.objective.clone(),
            call_to_action_url: self.call_to_action_url.clone(),
            tones: self.tones.clone(),
            arm_weights: self.arm_weights.clone(),
        }
    }
}

/// A cohort and the aggregate traits that retrieval and generation tailor to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SegmentProfile {
    pub name: String,
    /// Human description of the rule that defines the segment.
    pub description: String,
    /// Words that describe the segment for retrieval (e.g. "premium", "win-back").
    pub traits: Vec<String>,
    pub size: u64,
    pub mean_avg_order_value: f64,
    pub mean_purchase_frequency: f64,
    pub mean_last_engagement_days: f64,
    pub mean_engagement: f64,
}

/// Segmentation -> retrieval: one message per non-empty segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SegmentTask {
    pub campaign: CampaignContext,
    pub segment: SegmentProfile,
    /// How many segments this campaign has, so later stages can tell when all are done.
    pub segments_total: u32,
}

/// An approved content snippet returned by retrieval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Snippet {
    /// Document id; cited in messages as `[id]`.
    pub id: String,
    pub title: String,
    pub category: String,
    pub text: String,
    /// Relevance in [0, 1], independent of the other hits.
    pub relevance: f64,
}

/// Retrieval -> generation: a segment and the snippets to ground its copy in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Brief {
    pub campaign: CampaignContext,
    pub segment: SegmentProfile,
    pub segments_total: u32,
    pub query: String,
    pub snippets: Vec<Snippet>,
}

/// Generation -> safety: one message variant, still a template (merge fields unrendered).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Variant {
    pub variant_id: String,
    #[serde(deserialize_with = "crate::campaign::deserialize_campaign_id")]
    #[schemars(regex(pattern = crate::campaign::CAMPAIGN_ID_PATTERN))]
    pub campaign_id: String,
    pub segment: String,
    /// Arm this variant serves: a tone, or `control`.
    pub arm: String,
    pub subject: String,
    /// Body template; may contain merge fields such as `{{first_name}}`.
    pub body: String,
    /// Snippet ids cited in the body, in order of first use.
    pub citations: Vec<String>,
    /// The snippets retrieval returned for this segment; citations must resolve here.
    pub snippets: Vec<Snippet>,
    /// How many variants were generated for this segment (control included).
    pub variants_in_segment: u32,
    pub segments_total: u32,
    /// Which generator produced it (`offline`, `openai:<model>`, ...).
    pub generator: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approved,
    Blocked,
}

/// Severity 0-7 per harm category.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CategorySeverities {
    pub hate: u8,
    pub violence: u8,
    pub self_harm: u8,
    pub sexual: u8,
}

/// What the safety screen decided about one variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SafetyVerdict {
    pub variant_id: String,
    pub decision: Decision,
    pub categories: CategorySeverities,
    pub reasons: Vec<String>,
    /// SHA-256 of the screened content (see `signing::content_hash`).
    pub content_hash: String,
    /// Which screen decided (`embedded`, `azure`, ...).
    pub screened_by: String,
}

/// Proof that safety approved this exact content: HMAC-SHA256 over the content hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Approval {
    pub content_hash: String,
    pub signature: String,
}

/// Safety -> experimentation: the decision for one variant. Blocked variants
/// carry no approval and are also dead-lettered with their reasons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VariantDecision {
    pub variant: Variant,
    pub verdict: SafetyVerdict,
    pub approval: Option<Approval>,
}

/// A customer with the segment segmentation put them in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SegmentedCustomer {
    pub segment: String,
    pub customer: Customer,
}

/// Segmentation -> experimentation: customers travel in batches, never one per message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CustomerBatch {
    pub campaign: CampaignContext,
    /// Position of this batch in the campaign (0-based), for ordering and progress.
    pub batch_seq: u64,
    pub customers: Vec<SegmentedCustomer>,
}

/// Input of the experimentation stage: the audience flow and the creative flow join there.
/// Untagged: safety publishes plain `VariantDecision`s and segmentation plain
/// `CustomerBatch`es; their field sets are disjoint, so the shape says which it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ExperimentInput {
    Decision(VariantDecision),
    Batch(CustomerBatch),
}

/// Why a customer was not assigned to any arm.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ExclusionReason {
    Invalid,
    NoConsent,
    Suppressed,
    /// A customer id seen before.
    Duplicate,
    /// An address seen before (case-insensitively) under another customer id.
    DuplicateEmail,
    NoApprovedMessage,
    /// On the store's suppression list after an unsubscribe.
    Unsubscribed,
    /// On the store's suppression list after a hard bounce.
    Bounced,
    /// On the store's suppression list after a spam complaint.
    Complained,
    /// Over `policy.frequency_cap` (contacts by other campaigns in the window).
    FrequencyCap,
}

/// A customer left out of the experiment, with the reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Exclusion {
    /// Line in the source CSV (1-based, header is line 1), when there is one.
    pub line: Option<u64>,
    pub customer_id: Option<String>,
    pub reason: ExclusionReason,
    pub detail: String,
}

/// Where a customer landed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ArmAssignment {
    pub customer_id: String,
    pub segment: String,
    /// The arm the salted hash chose.
    pub arm: String,
    /// The variant actually sent (the control variant when `fallback` is set).
    pub variant_id: String,
    /// Set when the assigned arm's variant was blocked and the control message was used.
    pub fallback: Option<String>,
}

/// The recipient fields delivery may merge into a template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Recipient {
    pub customer_id: String,
    pub email: String,
    pub first_name: String,
    pub location: String,
    pub tier: String,
}

/// The approved template a message is rendered from, with its signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApprovedTemplate {
    pub variant_id: String,
    pub subject: String,
    pub body: String,
    pub citations: Vec<String>,
    pub approval: Approval,
}

/// One customer's message, ready for delivery to render and send. Its template
/// is the batch's `templates` entry whose `variant_id` it names; what is the
/// same for the whole batch (campaign, call to action) is on the batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OutboundMessage {
    /// Derived from (campaign id, customer id): the idempotency key of the send.
    pub message_id: String,
    pub recipient: Recipient,
    pub segment: String,
    /// The arm the salted hash chose.
    pub arm: String,
    /// The variant sent (the control variant when `fallback` is set).
    pub variant_id: String,
    /// Set when the assigned arm's variant was blocked and the control message was used.
    #[serde(default)]
    pub fallback: Option<String>,
}

/// Experimentation -> delivery: the messages of one customer batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SendBatch {
    #[serde(deserialize_with = "crate::campaign::deserialize_campaign_id")]
    #[schemars(regex(pattern = crate::campaign::CAMPAIGN_ID_PATTERN))]
    pub campaign_id: String,
    pub batch_seq: u64,
    /// The campaign's call to action link, rendered where a template says `{{cta_url}}`.
    #[serde(default)]
    pub call_to_action_url: Option<String>,
    /// Every template the messages use, once each (a batch of 1000 customers
    /// usually needs a handful), so delivery verifies each signature once.
    pub templates: Vec<ApprovedTemplate>,
    pub messages: Vec<OutboundMessage>,
    /// HMAC-SHA256 (`security.batch_key`) over the batch's canonical form
    /// (`batch_signing::batch_hash`): experimentation signs, delivery verifies.
    #[serde(default)]
    pub signature: Option<String>,
}

impl SendBatch {
    /// The template of `variant_id`, if the batch carries it.
    pub fn template(&self, variant_id: &str) -> Option<&ApprovedTemplate> {
        self.templates.iter().find(|t| t.variant_id == variant_id)
    }
}

/// A verified provider event on the `events` queue: the gateway publishes it
/// after checking the provider's signature, the events stage stores it and
/// turns bounces, complaints and unsubscribes into suppressions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventMessage {
    /// `sendgrid`, `ses`, `mailgun` or `cpo`.
    pub provider: String,
    /// The provider's id of this event (SendGrid `sg_event_id`, SES/SNS
    /// `MessageId`, Mailgun `id`), prefixed with the provider: the dedupe key.
    pub event_id: String,
    /// Our message id (`msg-...`), when the event names one.
    pub message_id: Option<String>,
    /// The provider's id of the message, when the event carries one (maps
    /// back to our message through the send record).
    #[serde(default)]
    pub provider_message_id: Option<String>,
    /// `delivered`, `open`, `click`, `conversion`, `unsubscribe`, `bounce`
    /// (hard: the address does not exist) or `complaint`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When it happened, Unix milliseconds.
    pub occurred_at_ms: i64,
    /// The provider's JSON for this one event, as received.
    pub raw: String,
}

/// One line of the outbox: what was (or would be) sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OutboxRecord {
    pub message_id: String,
    pub campaign_id: String,
    pub customer_id: String,
    pub segment: String,
    pub arm: String,
    pub variant_id: String,
    pub to: String,
    pub subject: String,
    /// The text part as sent.
    pub body: String,
    /// The HTML part as sent (absent in outboxes written before it existed).
    #[serde(default)]
    pub html: String,
    pub citations: Vec<String>,
    pub fallback: Option<String>,
}

/// Facts stages report for the campaign's bookkeeping (summary, status, exclusions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LedgerEntry {
    /// Segmentation finished reading the audience.
    Audience {
        customers_total: u64,
        segments: Vec<SegmentProfile>,
        exclusions: Vec<Exclusion>,
        batches: u64,
    },
    /// Generation produced a variant set for a segment.
    Variants {
        segment: String,
        variants: Vec<Variant>,
    },
    /// Safety decided about a variant.
    Verdict {
        verdict: SafetyVerdict,
        segment: String,
        arm: String,
    },
    /// Experimentation assigned a batch.
    Assigned {
        batch_seq: u64,
        assignments: u64,
        per_arm: BTreeMap<String, u64>,
        fallbacks: u64,
        exclusions: Vec<Exclusion>,
        /// Merge values that failed the screen and were replaced by their fallback.
        #[serde(default)]
        replaced_values: Vec<ReplacedValue>,
    },
}

/// A merge value that failed the profanity, slur and personal-data screen:
/// the message was sent with the field's fallback instead (never the value).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReplacedValue {
    pub customer_id: String,
    /// `first_name`, `location` or `tier`.
    pub field: String,
    /// What the screen found (labels such as `profanity`; never the value).
    pub reason: String,
}
