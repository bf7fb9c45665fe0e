//! Fail-closed screening and exact threshold boundaries.

mod common;

use std::time::{Duration, Instant};

use common::{EMBEDDED, FailingScreen, FixedScreen, PanickingScreen, SleepingScreen, variant};
use cpo_safety::{BlockCause, Content, HarmCategory, SafetyConfig, SafetyScreen, evaluate};
use cpo_shared::model::{CategorySeverities, Decision};

fn grounded() -> cpo_shared::model::Variant {
    variant("Double points", "Earn double points in March [doc-1].")
}

async fn decide(screen: &dyn SafetyScreen, config: &SafetyConfig) -> cpo_safety::Assessment {
    let v = grounded();
    evaluate(screen, &Content::from_variant(&v), config).await
}

#[tokio::test]
async fn a_failing_backend_blocks() {
    let a = decide(&FailingScreen, &SafetyConfig::default()).await;
    assert_eq!(a.decision, Decision::Blocked);
    assert_eq!(a.reasons, ["screen error: backend: connection refused"]);
    assert_eq!(a.causes, [BlockCause::ScreenError]);
}

#[tokio::test]
async fn a_backend_slower_than_the_timeout_blocks_without_waiting_for_it() {
    let config = SafetyConfig {
        timeout_ms: 50,
        ..SafetyConfig::default()
    };
    let started = Instant::now();
    let a = decide(&SleepingScreen(Duration::from_secs(30)), &config).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(a.decision, Decision::Blocked);
    assert_eq!(a.reasons, ["screen error: timed out after 50 ms"]);
    // The same backend within its deadline approves.
    let patient = SafetyConfig {
        timeout_ms: 5_000,
        ..SafetyConfig::default()
    };
    let a = decide(&SleepingScreen(Duration::from_millis(1)), &patient).await;
    assert_eq!(a.decision, Decision::Approved, "{:?}", a.reasons);
}

#[tokio::test]
async fn a_malformed_verdict_blocks() {
    let screen = FixedScreen(CategorySeverities {
        sexual: 9,
        ..Default::default()
    });
    let a = decide(&screen, &SafetyConfig::default()).await;
    assert_eq!(a.decision, Decision::Blocked);
    assert_eq!(
        a.reasons,
        ["screen error: malformed verdict: sexual severity 9 is outside 0-7"]
    );
}

#[tokio::test]
async fn a_panicking_backend_blocks_instead_of_crashing_the_worker() {
    let a = decide(&PanickingScreen, &SafetyConfig::default()).await;
    assert_eq!(a.decision, Decision::Blocked);
    assert_eq!(a.reasons, ["screen error: backend panicked"]);
}

#[tokio::test]
async fn severity_equal_to_each_categorys_threshold_blocks_and_one_below_passes() {
    for category in HarmCategory::ALL {
        for threshold in 1..=7u8 {
            let mut config = SafetyConfig::default();
            // Raise the other thresholds out of the way so only this category decides.
            config.thresholds.hate = 7;
            config.thresholds.violence = 7;
            config.thresholds.self_harm = 7;
            config.thresholds.sexual = 7;
            match category {
                HarmCategory::Hate => config.thresholds.hate = threshold,
                HarmCategory::Violence => config.thresholds.violence = threshold,
                HarmCategory::SelfHarm => config.thresholds.self_harm = threshold,
                HarmCategory::Sexual => config.thresholds.sexual = threshold,
            }
            let mut at = CategorySeverities::default();
            category.set(&mut at, threshold);
            let a = decide(&FixedScreen(at), &config).await;
            assert_eq!(
                a.decision,
                Decision::Blocked,
                "{} at {threshold}",
                category.name()
            );
            assert_eq!(
                a.reasons,
                [format!(
                    "{} severity {threshold} >= threshold {threshold}",
                    category.name()
                )]
            );
            let mut below = CategorySeverities::default();
            category.set(&mut below, threshold - 1);
            let a = decide(&FixedScreen(below), &config).await;
            assert_eq!(
                a.decision,
                Decision::Approved,
                "{} at {}",
                category.name(),
                threshold - 1
            );
        }
    }
}

#[tokio::test]
async fn the_embedded_screen_respects_configured_thresholds() {
    // A threat aimed at a person scores violence 6: blocked at threshold 6, approved at 7.
    let v = variant("Hello", "Prices that kill you [doc-1]");
    let base = evaluate(
        &*EMBEDDED,
        &Content::from_variant(&v),
        &SafetyConfig::default(),
    )
    .await;
    assert_eq!(base.categories.violence, 6);
    for (threshold, expected) in [(6, Decision::Blocked), (7, Decision::Approved)] {
        let mut config = SafetyConfig::default();
        config.thresholds.violence = threshold;
        let a = evaluate(&*EMBEDDED, &Content::from_variant(&v), &config).await;
        assert_eq!(
            a.decision, expected,
            "threshold {threshold}: {:?}",
            a.reasons
        );
    }
}

#[tokio::test]
async fn citation_rules_apply_whatever_the_backend_says() {
    let v = variant("Hello", "No sources");
    let a = evaluate(
        &FixedScreen(CategorySeverities::default()),
        &Content::from_variant(&v),
        &SafetyConfig::default(),
    )
    .await;
    assert_eq!(a.decision, Decision::Blocked);
    assert_eq!(
        a.causes,
        [BlockCause::Citation, BlockCause::UnsupportedClaim]
    );
}
