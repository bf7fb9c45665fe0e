//! The `safety.azure` section: endpoint, key (never shown), API version, blocklists.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::error::SafetyError;

/// An API key. Deserializes from a string only, and neither `Debug` nor a
/// deserialization error ever shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(pub(super) String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key itself, for the request header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<'de> Deserialize<'de> for ApiKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        // The environment source parses values that look like numbers or
        // booleans; serde's usual "invalid type" error would then echo the key.
        const NOT_A_STRING: &str = "must be a string (the value is not shown; a key that reads as a number or boolean must come from api_key_file)";
        impl Visitor<'_> for KeyVisitor {
            type Value = ApiKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ApiKey, E> {
                Ok(ApiKey(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<ApiKey, E> {
                Ok(ApiKey(v))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<ApiKey, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<ApiKey, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<ApiKey, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<ApiKey, E> {
                Err(E::custom(NOT_A_STRING))
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}

/// Settings of the Azure AI Content Safety backend (`safety.azure`).
#[derive(Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AzureConfig {
    /// The resource endpoint, e.g. `https://my-resource.cognitiveservices.azure.com`;
    /// requests go to `{endpoint}/contentsafety/text:analyze?api-version={api_version}`.
    pub endpoint: Option<String>,
    /// Prefer the environment (`CPO__SAFETY__AZURE__API_KEY`) or `api_key_file`
    /// over writing it into a config file.
    pub api_key: Option<ApiKey>,
    /// Read the key from this file (trimmed) instead.
    pub api_key_file: Option<PathBuf>,
    pub api_version: String,
    /// Custom blocklists to match (`blocklistNames`); any match blocks.
    /// A list in YAML, or comma-separated in the environment.
    #[serde(deserialize_with = "names")]
    pub blocklists: Vec<String>,
}

impl Default for AzureConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            api_key: None,
            api_key_file: None,
            api_version: "2024-09-01".into(),
            blocklists: Vec::new(),
        }
    }
}

impl fmt::Debug for AzureConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureConfig")
            .field("endpoint", &self.endpoint)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("api_key_file", &self.api_key_file)
            .field("api_version", &self.api_version)
            .field("blocklists", &self.blocklists)
            .finish()
    }
}

/// A list, or one comma-separated string (environment variables carry no lists).
fn names<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Names {
        List(Vec<String>),
        Joined(String),
    }
    Ok(match Names::deserialize(deserializer)? {
        Names::List(list) => list,
        Names::Joined(joined) => joined
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect(),
    })
}

impl AzureConfig {
    /// The key from `api_key_file` or `api_key`; errors name the key, never the value.
    pub fn resolve_key(&self) -> Result<ApiKey, SafetyError> {
        if let Some(path) = &self.api_key_file {
            let bytes = std::fs::read(path).map_err(|e| SafetyError::Config {
                key: "safety.azure.api_key_file".into(),
                message: format!("cannot read {}: {}", path.display(), e.kind()),
            })?;
            let key = String::from_utf8_lossy(&bytes).trim().to_string();
            if key.is_empty() {
                return Err(SafetyError::Config {
                    key: "safety.azure.api_key_file".into(),
                    message: format!("{} is empty", path.display()),
                });
            }
            return Ok(ApiKey(key));
        }
        match &self.api_key {
            Some(key) if !key.0.trim().is_empty() => Ok(ApiKey(key.0.trim().to_string())),
            _ => Err(SafetyError::Config {
                key: "safety.azure.api_key".into(),
                message: "not set: use CPO__SAFETY__AZURE__API_KEY or safety.azure.api_key_file"
                    .into(),
            }),
        }
    }

    /// Checks of `safety.azure`, each error naming its key. `SafetyConfig::validate`
    /// runs them when the backend is azure, `AzureScreen::new` always.
    pub(crate) fn validate(&self) -> Result<(), SafetyError> {
        let config_error = |key: &str, message: String| SafetyError::Config {
            key: format!("safety.azure.{key}"),
            message,
        };
        let endpoint = self.endpoint.as_deref().map(str::trim).unwrap_or_default();
        if endpoint.is_empty() {
            return Err(config_error(
                "endpoint",
                "not set, and safety.backend is azure (e.g. https://my-resource.cognitiveservices.azure.com)".into(),
            ));
        }
        match reqwest::Url::parse(endpoint) {
            Ok(url) if url.scheme() == "https" && url.host_str().is_some() => {}
            // Plain http sends the key in the clear: only to this machine
            // (a local fake or proxy in tests and development).
            Ok(url) if url.scheme() == "http" && url.host_str().is_some_and(is_loopback) => {}
            Ok(url) if url.scheme() == "http" && url.host_str().is_some() => {
                return Err(config_error(
                    "endpoint",
                    format!(
                        "`{endpoint}` must be an https:// URL (plain http only for a loopback host: 127.0.0.1, ::1, localhost)"
                    ),
                ));
            }
            Ok(_) => {
                return Err(config_error(
                    "endpoint",
                    format!("`{endpoint}` is not an https:// URL"),
                ));
            }
            Err(e) => {
                return Err(config_error(
                    "endpoint",
                    format!("`{endpoint}` is not a URL: {e}"),
                ));
            }
        }
        let key_set = self
            .api_key
            .as_ref()
            .is_some_and(|k| !k.0.trim().is_empty());
        match (key_set, &self.api_key_file) {
            (true, Some(_)) => {
                return Err(config_error(
                    "api_key",
                    "set either api_key or api_key_file, not both".into(),
                ));
            }
            (false, None) => {
                return Err(config_error(
                    "api_key",
                    "not set: use CPO__SAFETY__AZURE__API_KEY or safety.azure.api_key_file".into(),
                ));
            }
            _ => {}
        }
        let token = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'))
        };
        if !token(&self.api_version) {
            return Err(config_error(
                "api_version",
                format!("`{}` is not an API version", self.api_version),
            ));
        }
        if let Some(bad) = self.blocklists.iter().find(|name| !token(name)) {
            return Err(config_error(
                "blocklists",
                format!("`{bad}` is not a blocklist name (letters, digits, - _ . ~)"),
            ));
        }
        Ok(())
    }
}

/// A host on this machine: `localhost`, 127.0.0.0/8 or `::1` (as `Url::host_str`
/// gives it: IPv6 in brackets, IPv4 normalized to dotted decimal).
pub(super) fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
