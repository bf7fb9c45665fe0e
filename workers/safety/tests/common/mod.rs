//! Test screens and fixtures shared by the crate-level tests.
#![allow(dead_code)]

pub mod http;

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use cpo_safety::{
    EmbeddedScreen, SafetyConfig, SafetyScreen, ScreenError, ScreenReport, ScreenRequest, cited_ids,
};
use cpo_shared::model::{CategorySeverities, Snippet, Variant};

pub static EMBEDDED: LazyLock<EmbeddedScreen> = LazyLock::new(|| {
    EmbeddedScreen::new(&SafetyConfig::default()).expect("embedded screen builds")
});

/// Reports the same severities for any text.
pub struct FixedScreen(pub CategorySeverities);

#[async_trait]
impl SafetyScreen for FixedScreen {
    fn name(&self) -> &str {
        "fixed"
    }
    async fn screen(&self, _: &ScreenRequest<'_>) -> Result<ScreenReport, ScreenError> {
        Ok(ScreenReport {
            categories: self.0.clone(),
            ..ScreenReport::default()
        })
    }
}

/// A backend that is down.
pub struct FailingScreen;

#[async_trait]
impl SafetyScreen for FailingScreen {
    fn name(&self) -> &str {
        "failing"
    }
    async fn screen(&self, _: &ScreenRequest<'_>) -> Result<ScreenReport, ScreenError> {
        Err(ScreenError::Backend("connection refused".into()))
    }
}

/// A backend that refuses the request for good (a wrong key).
pub struct RejectingScreen;

#[async_trait]
impl SafetyScreen for RejectingScreen {
    fn name(&self) -> &str {
        "rejecting"
    }
    async fn screen(&self, _: &ScreenRequest<'_>) -> Result<ScreenReport, ScreenError> {
        Err(ScreenError::Rejected("HTTP 401 Unauthorized".into()))
    }
}

/// A backend that answers clean, but too late.
pub struct SleepingScreen(pub Duration);

#[async_trait]
impl SafetyScreen for SleepingScreen {
    fn name(&self) -> &str {
        "sleeping"
    }
    async fn screen(&self, _: &ScreenRequest<'_>) -> Result<ScreenReport, ScreenError> {
        tokio::time::sleep(self.0).await;
        Ok(ScreenReport::default())
    }
}

/// A backend with a bug.
pub struct PanickingScreen;

#[async_trait]
impl SafetyScreen for PanickingScreen {
    fn name(&self) -> &str {
        "panicking"
    }
    async fn screen(&self, _: &ScreenRequest<'_>) -> Result<ScreenReport, ScreenError> {
        panic!("bug in backend")
    }
}

pub fn snippet(id: &str) -> Snippet {
    Snippet {
        id: id.into(),
        title: format!("Title of {id}"),
        category: "loyalty".into(),
        text: match id {
            "doc-2" => "Free returns within 30 days.",
            _ => "Members earn double points in March.",
        }
        .into(),
        relevance: 0.8,
    }
}

/// A variant whose `citations` field agrees with its text, grounded in doc-1 and doc-2.
pub fn variant(subject: &str, body: &str) -> Variant {
    Variant {
        variant_id: "v-friendly-1".into(),
        campaign_id: "camp-1".into(),
        segment: "loyal".into(),
        arm: "friendly".into(),
        subject: subject.into(),
        body: body.into(),
        citations: cited_ids(&[subject, body])
            .into_iter()
            .map(String::from)
            .collect(),
        snippets: vec![snippet("doc-1"), snippet("doc-2")],
        variants_in_segment: 4,
        segments_total: 2,
        generator: "offline".into(),
    }
}
