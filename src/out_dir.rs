//! The output directory of `cpo run`: one run at a time, and one run's files.
//!
//! A run holds an exclusive lock on `<out>/.cpo.lock` (std's `File::try_lock`,
//! an OS file lock released when the process ends, however it ends) with its
//! pid written inside, so a second run on the same directory fails at once
//! and names the holder. Two runs interleaving their outboxes and audit
//! chains produced duplicates, torn JSON lines and a broken chain.
//!
//! A directory that holds an earlier run's files is refused unless `--force`,
//! which removes them all before anything is written: the files of two runs
//! are never mixed. The generated audit key (`audit.key`) is the directory's,
//! not a run's, and stays.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// Lock file of a run.
pub const LOCK_FILE: &str = ".cpo.lock";

/// Every file a run (and its `--simulate`) writes into the directory.
pub const RUN_FILES: &[&str] = &[
    "outbox.jsonl",
    "audit.jsonl",
    "audit.head.json",
    "dead_letters.jsonl",
    "exclusions.jsonl",
    "replaced_values.jsonl",
    "segments.json",
    "variants.json",
    "summary.json",
    "events.jsonl",
    "analysis.json",
    "report.md",
    "report.html",
    // Send records of a run into the file outbox (its sends live and die with the run).
    "sends.sqlite",
    "sends.sqlite-wal",
    "sends.sqlite-shm",
];

/// The held lock; the directory is this run's until it is dropped.
pub struct OutDirLock {
    _file: File,
}

/// Lock `dir` (creating it) and make it ready for a new run.
pub fn prepare(dir: &Path, force: bool) -> anyhow::Result<OutDirLock> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let lock = lock(dir)?;
    let earlier: Vec<PathBuf> = RUN_FILES
        .iter()
        .map(|name| dir.join(name))
        .filter(|path| path.exists())
        .collect();
    if !earlier.is_empty() && !force {
        let names: Vec<String> = earlier
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        bail!(
            "{} holds the files of an earlier run ({}); pass --force to replace them, or choose another --out",
            dir.display(),
            names.join(", ")
        );
    }
    for path in earlier {
        std::fs::remove_file(&path)
            .with_context(|| format!("cannot remove {} of the earlier run", path.display()))?;
    }
    Ok(lock)
}

fn lock(dir: &Path) -> anyhow::Result<OutDirLock> {
    let path = dir.join(LOCK_FILE);
    // Not truncated on open: the pid inside belongs to whoever holds the lock.
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let holder = if holder.is_empty() {
                "another process".to_string()
            } else {
                format!("pid {}", holder.chars().take(20).collect::<String>())
            };
            bail!(
                "{} is in use by another cpo run ({holder}); wait for it or choose another --out",
                dir.display()
            );
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", path.display()));
        }
    }
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "{}", std::process::id())?;
    file.flush()?;
    Ok(OutDirLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_holder_and_earlier_files_need_force() {
        let dir = tempfile::tempdir().unwrap();
        let held = prepare(dir.path(), false).unwrap();
        let err = prepare(dir.path(), false).err().unwrap().to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(held);
        std::fs::write(dir.path().join("outbox.jsonl"), "{}\n").unwrap();
        std::fs::write(dir.path().join("audit.key"), "k\n").unwrap();
        let err = prepare(dir.path(), false).err().unwrap().to_string();
        assert!(
            err.contains("outbox.jsonl") && err.contains("--force"),
            "{err}"
        );
        let _held = prepare(dir.path(), true).unwrap();
        assert!(!dir.path().join("outbox.jsonl").exists());
        assert!(dir.path().join("audit.key").exists());
    }
}
