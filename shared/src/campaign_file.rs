//! A campaign file as people write it (YAML, or JSON, which is YAML too): the
//! request, with the audience optional (`cpo run --customers` supplies it).
//! Unknown keys are refused with the closest known one named (`keys`), and the
//! result is checked by `CampaignRequest::validate` before anything runs.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::campaign::CampaignError;
use crate::model::{AudienceSource, CampaignRequest, default_tones};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignFile {
    pub campaign_id: String,
    pub name: String,
    pub objective: String,
    #[serde(default)]
    pub call_to_action_url: Option<String>,
    #[serde(default = "default_tones")]
    pub tones: Vec<String>,
    #[serde(default)]
    pub arm_weights: BTreeMap<String, f64>,
    #[serde(default)]
    pub suppressions: Vec<String>,
    #[serde(default)]
    pub audience: Option<AudienceSource>,
}

impl CampaignFile {
    /// Parse a campaign; the error names the offending key and line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let deserializer = serde_norway::Deserializer::from_str(text);
        serde_path_to_error::deserialize(deserializer)
            .map_err(|e| crate::keys::explain(&e.path().to_string(), &e.inner().to_string()))
    }

    /// The request, with `audience` where the file names none, once it passes
    /// `CampaignRequest::validate` (campaign id and arms).
    pub fn into_request(self, audience: AudienceSource) -> Result<CampaignRequest, CampaignError> {
        let request = CampaignRequest {
            campaign_id: self.campaign_id,
            name: self.name,
            objective: self.objective,
            call_to_action_url: self.call_to_action_url,
            tones: self.tones,
            arm_weights: self.arm_weights,
            suppressions: self.suppressions,
            audience: self.audience.unwrap_or(audience),
        };
        request.validate()?;
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "campaign_id: spring-1\nname: Spring\nobjective: sell boots\n";

    fn csv() -> AudienceSource {
        AudienceSource::Csv {
            path: "c.csv".into(),
        }
    }

    #[test]
    fn a_plain_file_gets_the_default_tones_and_the_given_audience() {
        let request = CampaignFile::parse(BASE)
            .unwrap()
            .into_request(csv())
            .unwrap();
        assert_eq!(request.tones, default_tones());
        assert_eq!(request.audience, csv());
    }

    #[test]
    fn a_misspelt_key_is_refused_with_the_likely_one() {
        let err = CampaignFile::parse(&format!("{BASE}toness: [urgent]\n")).unwrap_err();
        assert!(
            err.starts_with("unknown key `toness` (did you mean `tones`?"),
            "{err}"
        );
        let err = CampaignFile::parse(&format!(
            "{BASE}audience:\n  kind: inline\n  customers:\n    - {{customer_id: C1, first_nam: A}}\n"
        ))
        .unwrap_err();
        assert!(err.contains("did you mean `first_name`?"), "{err}");
    }

    #[test]
    fn ids_and_arms_are_checked_before_anything_runs() {
        let bad_id = BASE.replace("spring-1", "../../x");
        let err = CampaignFile::parse(&bad_id).unwrap().into_request(csv());
        assert!(matches!(err, Err(CampaignError::BadId { .. })), "{err:?}");
        let no_tones = format!("{BASE}tones: []\n");
        let err = CampaignFile::parse(&no_tones).unwrap().into_request(csv());
        assert!(matches!(err, Err(CampaignError::NoTones { .. })), "{err:?}");
    }
}
