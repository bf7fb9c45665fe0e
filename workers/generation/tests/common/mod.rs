//! A sample brief shared by the crate tests: a spring campaign with snippets
//! like the approved content corpus holds.

#![allow(dead_code)]

use cpo_shared::model::{Brief, CampaignContext, SegmentProfile, Snippet};

pub fn snippet(id: &str, category: &str, relevance: f64, title: &str, text: &str) -> Snippet {
    Snippet {
        id: id.into(),
        title: title.into(),
        category: category.into(),
        text: text.into(),
        relevance,
    }
}

pub fn sample_snippets() -> Vec<Snippet> {
    vec![
        snippet(
            "doc-spring-collection",
            "product",
            0.92,
            "Spring Collection",
            "Our Spring Collection brings lightweight jackets, linen shirts and breathable trainers. \
             Every piece is designed to layer easily, e.g. a jacket over a linen shirt. \
             Shirts start at $29.99 and jackets at $89.00.",
        ),
        snippet(
            "doc-members-offer",
            "promotion",
            0.85,
            "Spring members offer",
            "Rewards members get 15% off spring styles from March 1 to March 31. \
             The offer applies to full-price items only.",
        ),
        snippet(
            "doc-rewards",
            "loyalty",
            0.71,
            "Rewards program",
            "Rewards members earn 2 points for every $1 spent. \
             Points never expire while your account is active. \
             Members also get early access to new arrivals.",
        ),
        snippet(
            "doc-returns",
            "support",
            0.64,
            "Returns policy",
            "You can return unworn items within 30 days for a full refund. \
             Refunds are issued to the original payment method within 5 business days.",
        ),
        snippet(
            "doc-care",
            "product",
            0.31,
            "Linen care",
            "Wash linen at 30 degrees and dry it flat.",
        ),
    ]
}

pub fn segment(name: &str) -> SegmentProfile {
    SegmentProfile {
        name: name.into(),
        description: format!("customers in the {name} segment"),
        traits: vec![],
        size: 120,
        mean_avg_order_value: 84.5,
        mean_purchase_frequency: 4.2,
        mean_last_engagement_days: 21.0,
        mean_engagement: 0.31,
    }
}

pub fn brief_for(segment_name: &str, snippets: Vec<Snippet>) -> Brief {
    Brief {
        campaign: CampaignContext {
            campaign_id: "spring-2025".into(),
            name: "Spring Refresh".into(),
            objective: "Drive spring collection sales and rewards sign-ups".into(),
            call_to_action_url: Some("https://shop.example.com/spring".into()),
            tones: cpo_shared::model::default_tones(),
            arm_weights: Default::default(),
        },
        segment: segment(segment_name),
        segments_total: 4,
        query: "spring collection rewards members".into(),
        snippets,
    }
}

pub fn sample_brief(segment_name: &str) -> Brief {
    brief_for(segment_name, sample_snippets())
}

/// The cited sentences of a body: (snippet id, the sentence right before its marker).
pub fn cited_sentences(body: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for paragraph in body.split("\n\n") {
        let mut rest = paragraph;
        while let Some(open) = rest.find(" [") {
            let Some(close) = rest[open..].find(']') else {
                break;
            };
            let sentence = rest[..open].trim().to_string();
            let id = rest[open + 2..open + close].to_string();
            out.push((id, sentence));
            rest = &rest[open + close + 1..];
        }
    }
    out
}
