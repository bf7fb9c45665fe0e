//! The Azure backend configured only through the environment, as a fleet
//! worker is. Its own test binary: it sets process environment variables.

use cpo_safety::{OnScreenError, SafetyConfig, ScreenBackend};
use cpo_shared::config::Settings;

#[test]
fn the_environment_configures_the_azure_backend_and_its_key() {
    let key = "env-0f1e2d3c4b5a69788796a5b4c3d2e1f0";
    // SAFETY: the only test of this binary; no other thread reads the environment.
    unsafe {
        std::env::set_var("CPO__SAFETY__BACKEND", "azure");
        std::env::set_var("CPO__SAFETY__AZURE__ENDPOINT", "http://127.0.0.1:9");
        std::env::set_var("CPO__SAFETY__AZURE__API_KEY", key);
        std::env::set_var("CPO__SAFETY__AZURE__BLOCKLISTS", "brand-terms,competitors");
        std::env::set_var("CPO__SAFETY__TIMEOUT_MS", "300");
        std::env::set_var("CPO__SAFETY__ON_SCREEN_ERROR", "hold");
    }
    let settings = Settings::load(None).unwrap();
    let config: SafetyConfig = settings.section("safety").unwrap();
    assert_eq!(config.backend, Some(ScreenBackend::Azure));
    assert_eq!(config.timeout_ms, 300);
    assert_eq!(config.on_screen_error, Some(OnScreenError::Hold));
    assert_eq!(config.azure.blocklists, ["brand-terms", "competitors"]);
    assert_eq!(config.azure.resolve_key().unwrap().expose(), key);
    let screen = config.screen().unwrap();
    assert_eq!(screen.name(), "azure");
    assert!(!format!("{config:?}").contains(key));
}
