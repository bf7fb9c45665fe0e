//! The fleet's audit log, opened when first needed.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use super::{AuditError, AuditKey, AuditSink, FileAuditLog, HeadStore, SignedHead};

/// A `FileAuditLog` opened on first use. A fleet worker of a stage that never
/// audits needs neither the file nor its head store, and one that does meets
/// a head store that is down as a failed append (which waits) rather than as
/// a worker that cannot start.
pub struct LazyFileAuditLog {
    path: PathBuf,
    key: AuditKey,
    head: Arc<dyn HeadStore>,
    log: OnceLock<FileAuditLog>,
    opening: Mutex<()>,
}

/// A shared head store handed to each attempt to open the log.
struct SharedHead(Arc<dyn HeadStore>);

impl HeadStore for SharedHead {
    fn load(&self) -> Result<Option<SignedHead>, AuditError> {
        self.0.load()
    }
    fn store(&self, head: &SignedHead) -> Result<(), AuditError> {
        self.0.store(head)
    }
    fn describe(&self) -> String {
        self.0.describe()
    }
}

impl LazyFileAuditLog {
    pub fn new(path: PathBuf, key: AuditKey, head: Arc<dyn HeadStore>) -> Self {
        Self {
            path,
            key,
            head,
            log: OnceLock::new(),
            opening: Mutex::new(()),
        }
    }

    fn log(&self) -> Result<&FileAuditLog, AuditError> {
        if let Some(log) = self.log.get() {
            return Ok(log);
        }
        // One opener at a time: two would both verify and continue the chain.
        let _opening = self.opening.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(log) = self.log.get() {
            return Ok(log);
        }
        let log = FileAuditLog::open(
            &self.path,
            self.key.clone(),
            Box::new(SharedHead(self.head.clone())),
        )?;
        Ok(self.log.get_or_init(|| log))
    }

    /// Open the log now (a worker at startup, to refuse a log that does not
    /// verify before consuming anything).
    pub fn open_now(&self) -> Result<(), AuditError> {
        self.log().map(|_| ())
    }

    /// Flush the log if it was ever opened.
    pub fn flush(&self) -> Result<(), AuditError> {
        self.log.get().map_or(Ok(()), FileAuditLog::flush)
    }
}

impl AuditSink for LazyFileAuditLog {
    fn append(&self, event: &serde_json::Value) -> Result<(), AuditError> {
        self.log()?.append(event)
    }
    fn append_batch(&self, events: &[serde_json::Value]) -> Result<(), AuditError> {
        self.log()?.append_batch(events)
    }
    fn append_json(&self, event_json: &str) -> Result<(), AuditError> {
        self.log()?.append_json(event_json)
    }
}
