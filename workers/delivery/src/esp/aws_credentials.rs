//! AWS credentials for SES: the environment (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) or a profile of AWS's
//! shared credentials file. Errors name `delivery.esp.ses.credentials_file`
//! and never the secret.

use std::path::Path;

use super::EspError;
use super::sigv4::Credentials;

const KEY: &str = "delivery.esp.ses";

pub(crate) fn from_env() -> Result<Credentials, EspError> {
    let var = |name: &str| {
        std::env::var(name)
            .ok()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(Credentials {
            access_key_id,
            secret_access_key,
            session_token: var("AWS_SESSION_TOKEN"),
        }),
        _ => Err(EspError::new(
            format!("{KEY}.credentials_file"),
            "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or this key",
        )),
    }
}

/// The `[profile]` section of an AWS shared credentials file.
pub(crate) fn from_file(path: &Path, profile: &str) -> Result<Credentials, EspError> {
    let key = format!("{KEY}.credentials_file");
    let text = cpo_shared::config::read_secret_file(&key, path)
        .map_err(|e| EspError::new(&key, e.to_string()))?;
    let mut section = String::new();
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_string();
            continue;
        }
        if section != profile {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let value = Some(value.trim().to_string()).filter(|v| !v.is_empty());
        match name.trim() {
            "aws_access_key_id" => id = value,
            "aws_secret_access_key" => secret = value,
            "aws_session_token" => token = value,
            _ => {}
        }
    }
    match (id, secret) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(Credentials {
            access_key_id,
            secret_access_key,
            session_token: token,
        }),
        _ => Err(EspError::new(
            key,
            format!(
                "{}: profile [{profile}] lacks aws_access_key_id or aws_secret_access_key",
                path.display()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_is_read_from_the_credentials_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        std::fs::write(
            &path,
            "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = s1\n\n[cpo]\n# ours\naws_access_key_id=AKIDCPO\naws_secret_access_key=s2\naws_session_token=t2\n",
        )
        .unwrap();
        let cpo = from_file(&path, "cpo").unwrap();
        assert_eq!(
            (
                cpo.access_key_id.as_str(),
                cpo.secret_access_key.as_str(),
                cpo.session_token.as_deref()
            ),
            ("AKIDCPO", "s2", Some("t2"))
        );
        assert_eq!(
            from_file(&path, "default").unwrap().access_key_id,
            "AKIDDEFAULT"
        );
        let err = from_file(&path, "missing").unwrap_err();
        assert_eq!(err.key, "delivery.esp.ses.credentials_file");
        assert!(err.message.contains("[missing]"), "{err}");
    }
}
