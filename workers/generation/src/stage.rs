//! The generation stage: one brief in, one variant per tone plus the control
//! variant out, and the segment's variant set on the ledger.

use std::sync::Arc;

use cpo_shared::envelope::derive_id;
use cpo_shared::model::{Brief, LedgerEntry, Variant};
use cpo_shared::{Emitter, Envelope, Outgoing, Stage, StageError, StageResult, queues};
use tracing::info;

use crate::check::check_draft;
use crate::config::GenerationConfig;
use crate::generator::{Draft, GenerationError, Generator, Voice};

pub struct GenerationStage {
    generator: Arc<dyn Generator>,
}

impl GenerationStage {
    /// The arms come from the campaign alone (`cpo_shared::campaign::Arms`);
    /// the config shapes only the generator built from it.
    pub fn new(generator: Arc<dyn Generator>, _config: &GenerationConfig) -> Self {
        Self { generator }
    }

    async fn variant(
        &self,
        brief: &Brief,
        voice: Voice<'_>,
        variants_in_segment: u32,
    ) -> Result<Variant, StageError> {
        let arm = voice.arm();
        let draft = self
            .generator
            .draft(brief, voice)
            .await
            .map_err(|e| stage_error(arm, e))?;
        check_draft(&draft, brief).map_err(|e| stage_error(arm, e.into()))?;
        let Draft {
            subject,
            body,
            citations,
        } = draft;
        let campaign_id = &brief.campaign.campaign_id;
        Ok(Variant {
            variant_id: derive_id(&[campaign_id, &brief.segment.name, arm]),
            campaign_id: campaign_id.clone(),
            segment: brief.segment.name.clone(),
            arm: arm.to_string(),
            subject,
            body,
            citations,
            snippets: brief.snippets.clone(),
            variants_in_segment,
            segments_total: brief.segments_total,
            generator: self.generator.name().to_string(),
        })
    }
}

fn stage_error(arm: &str, error: GenerationError) -> StageError {
    let message = format!("generating arm `{arm}`: {error}");
    if error.is_transient() {
        StageError::Transient(message)
    } else {
        StageError::Permanent(message)
    }
}

impl Stage for GenerationStage {
    type Input = Brief;

    fn name(&self) -> &'static str {
        "generation"
    }

    fn inputs(&self) -> &'static [&'static str] {
        &[queues::BRIEFS]
    }

    /// Drafts every arm before publishing anything, so a failed draft leaves
    /// no half variant set behind; a retry redoes the whole set with the same ids.
    async fn handle(&self, message: Envelope<Brief>, emit: &Emitter) -> StageResult {
        let brief = &message.payload;
        // The campaign's arms by the one rule every stage shares: a campaign
        // experimentation would refuse gets no variants either.
        let arms = brief
            .campaign
            .arms()
            .map_err(|e| StageError::Permanent(format!("campaign arms: {e}")))?;
        let tones = arms.tones();
        let variants_in_segment = u32::try_from(tones.len() + 1)
            .map_err(|_| StageError::Permanent("too many tones".into()))?;
        let mut variants = Vec::with_capacity(tones.len() + 1);
        for tone in tones {
            variants.push(
                self.variant(brief, Voice::Tone(tone), variants_in_segment)
                    .await?,
            );
        }
        variants.push(
            self.variant(brief, Voice::Control, variants_in_segment)
                .await?,
        );

        let mut out = Vec::with_capacity(variants.len() + 1);
        for variant in &variants {
            let envelope = message.derive(variant.variant_id.clone(), variant);
            out.push(Outgoing::new(queues::VARIANTS, &envelope)?);
        }
        let cited = variants.iter().filter(|v| !v.citations.is_empty()).count();
        info!(
            campaign_id = %brief.campaign.campaign_id,
            segment = %brief.segment.name,
            variants = variants.len(),
            cited,
            generator = self.generator.name(),
            "generated variant set"
        );
        let ledger_id = derive_id(&[
            "ledger",
            "variants",
            &brief.campaign.campaign_id,
            &brief.segment.name,
        ]);
        emit.count(
            cpo_shared::progress::VARIANTS_GENERATED,
            variants.len() as u64,
        );
        let entry = LedgerEntry::Variants {
            segment: brief.segment.name.clone(),
            variants,
        };
        out.push(Outgoing::new(
            queues::LEDGER,
            &message.derive(ledger_id, entry),
        )?);
        Ok(out)
    }
}
