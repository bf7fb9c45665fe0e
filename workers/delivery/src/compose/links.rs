//! UTM parameters on the links of the body (`delivery.utm`).

use url::Url;

use crate::mail_config::UtmConfig;

/// `url` with `utm_source`, `utm_medium` and `utm_campaign` appended; a
/// parameter the link already carries is left as it is. A link that does not
/// parse is returned unchanged (links were checked before delivery).
pub fn with_utm(url: &str, utm: Option<&UtmConfig>, campaign_id: &str) -> String {
    let Some(utm) = utm else {
        return url.to_string();
    };
    let Ok(mut parsed) = Url::parse(url) else {
        return url.to_string();
    };
    let present: Vec<String> = parsed.query_pairs().map(|(k, _)| k.into_owned()).collect();
    let campaign = utm.campaign.as_deref().unwrap_or(campaign_id);
    let wanted = [
        ("utm_source", utm.source.as_str()),
        ("utm_medium", utm.medium.as_str()),
        ("utm_campaign", campaign),
    ];
    {
        let mut pairs = parsed.query_pairs_mut();
        for (key, value) in wanted {
            if !value.is_empty() && !present.iter().any(|p| p == key) {
                pairs.append_pair(key, value);
            }
        }
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utm_parameters_are_added_once_and_encoded() {
        let utm = UtmConfig {
            source: "news letter".into(),
            medium: "email".into(),
            campaign: None,
        };
        let out = with_utm(
            "https://x.example/a?utm_medium=sms#top",
            Some(&utm),
            "autumn-2026",
        );
        assert_eq!(
            out,
            "https://x.example/a?utm_medium=sms&utm_source=news+letter&utm_campaign=autumn-2026#top"
        );
        assert_eq!(
            with_utm("https://x.example/a", None, "c"),
            "https://x.example/a"
        );
    }
}
