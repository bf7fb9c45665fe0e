//! `.eml` files: every message as `DIR/<message_id>.eml`, exactly the bytes
//! an SMTP server would receive (`cpo run --eml DIR`). `EmlDir` writes one
//! email; `EmlSink` wraps any `MailSink` and writes each email it is given
//! before passing the batch on.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use async_trait::async_trait;

use crate::dkim::{self, DkimSigner};
use crate::sink::{MailSink, OutgoingEmail, SendOutcome};

#[derive(Debug, Clone)]
pub struct EmlDir {
    dir: PathBuf,
    dkim: Option<DkimSigner>,
}

/// A message id becomes a file name only if it cannot leave the directory.
fn file_name(message_id: &str) -> Result<String, String> {
    let safe = !message_id.is_empty()
        && message_id.len() <= 200
        && !message_id.starts_with('.')
        && message_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if safe {
        Ok(format!("{message_id}.eml"))
    } else {
        Err(format!(
            "message id `{}` cannot name an .eml file",
            message_id.escape_default()
        ))
    }
}

impl EmlDir {
    /// Creates `dir` (and its parents) if needed.
    pub fn create(dir: impl Into<PathBuf>, dkim: Option<DkimSigner>) -> Result<Self, String> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("--eml {}: cannot create: {e}", dir.display()))?;
        Ok(Self { dir, dkim })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `DIR/<message_id>.eml` (through a temporary file, so a reader
    /// never sees half a message) and returns its path.
    pub fn write(&self, email: &OutgoingEmail, date: SystemTime) -> Result<PathBuf, String> {
        let name = file_name(&email.message_id)?;
        let bytes = dkim::mime(email, date, self.dkim.as_ref())?;
        let path = self.dir.join(&name);
        let partial = self.dir.join(format!(".{name}.partial"));
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&partial)?;
            file.write_all(&bytes)?;
            file.sync_data()?;
            std::fs::rename(&partial, &path)
        };
        write().map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(path)
    }
}

/// A sink that also writes every email it sends as an .eml file.
pub struct EmlSink<S> {
    inner: S,
    eml: EmlDir,
}

impl<S> EmlSink<S> {
    pub fn new(inner: S, eml: EmlDir) -> Self {
        Self { inner, eml }
    }
}

#[async_trait]
impl<S: MailSink> MailSink for EmlSink<S> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn max_batch(&self) -> usize {
        self.inner.max_batch()
    }

    async fn send(&self, emails: &[OutgoingEmail]) -> Vec<SendOutcome> {
        let now = SystemTime::now();
        // A file that cannot be written holds its email back (Retry): the
        // user asked to see every message that is sent.
        let written: Vec<Result<(), String>> = emails
            .iter()
            .map(|email| self.eml.write(email, now).map(|_| ()))
            .collect();
        let to_send: Vec<OutgoingEmail> = emails
            .iter()
            .zip(&written)
            .filter(|(_, w)| w.is_ok())
            .map(|(e, _)| e.clone())
            .collect();
        let mut sent = self.inner.send(&to_send).await.into_iter();
        written
            .into_iter()
            .map(|w| match w {
                Ok(()) => sent.next().unwrap_or(SendOutcome::Retry {
                    after: None,
                    reason: "sink answered fewer outcomes than emails".into(),
                }),
                Err(reason) => SendOutcome::Retry {
                    after: None,
                    reason,
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    struct Recording(Mutex<Vec<String>>);

    #[async_trait]
    impl MailSink for Recording {
        fn name(&self) -> &'static str {
            "recording"
        }
        fn max_batch(&self) -> usize {
            10
        }
        async fn send(&self, emails: &[OutgoingEmail]) -> Vec<SendOutcome> {
            let mut seen = self.0.lock().unwrap();
            emails
                .iter()
                .map(|e| {
                    seen.push(e.message_id.clone());
                    SendOutcome::Sent {
                        provider_message_id: e.rfc_message_id.clone(),
                    }
                })
                .collect()
        }
    }

    #[tokio::test]
    async fn every_email_is_written_and_a_hostile_id_is_held_back() {
        let dir = tempfile::tempdir().unwrap();
        let eml = EmlDir::create(dir.path().join("eml"), None).unwrap();
        let sink = EmlSink::new(Recording(Mutex::new(Vec::new())), eml);
        let good = crate::sink::tests::email();
        let mut hostile = good.clone();
        hostile.message_id = "../../etc/passwd".into();
        let outcomes = sink.send(&[good.clone(), hostile]).await;
        assert!(matches!(outcomes[0], SendOutcome::Sent { .. }));
        assert!(
            matches!(&outcomes[1], SendOutcome::Retry { reason, .. } if reason.contains("cannot name"))
        );
        assert_eq!(*sink.inner.0.lock().unwrap(), ["msg-1"]);
        let text = std::fs::read_to_string(dir.path().join("eml/msg-1.eml")).unwrap();
        assert!(text.contains("Message-ID: <msg-1@brand.example>"), "{text}");
        let files: Vec<_> = std::fs::read_dir(dir.path().join("eml")).unwrap().collect();
        assert_eq!(files.len(), 1, "no partial file left behind");
    }
}
