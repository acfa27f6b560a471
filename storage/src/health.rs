//! [`StorageHealth`]: what the daemon shows about the storage beside the
//! outbox figures (in `/readyz`, `/metrics` and `outbox status`): sled
//! directories moved aside, how long open spent bringing sled in line with
//! the log (in the background after an unclean stop), the log's size,
//! and the writer queue's depth.

use std::path::{Path, PathBuf};

use crate::sled_files::QUARANTINE_PREFIX;

/// Storage figures beyond the outbox's own.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StorageHealth {
    /// sled directories moved aside because sled failed to open or
    /// panicked (this open or an earlier one; they are never deleted by
    /// edgecc). Non-empty means an operator should look, may read records
    /// back from each with [`crate::salvage()`], then remove it.
    pub quarantined: Vec<PathBuf>,
    /// `true` while sled is being checked against the log (or rebuilt
    /// from it) in the background, after an unclean stop. The storage is
    /// fully usable meanwhile: appends, acks and state writes are taken as
    /// usual and every read comes from the log; only a backup waits for the
    /// check. Worth a `/readyz` detail and an `outbox status` line
    /// ("index check running"), not a failure.
    pub index_checking: bool,
    /// Milliseconds the background check of sled against the log took
    /// (repairs and any rebuild included), set when it finished; `None`
    /// when sled was trusted after a clean close, or while it runs.
    pub index_rebuild_ms: Option<u64>,
    /// Entries the check removed from or wrote into sled to make it match
    /// the log (0 when it matched or was trusted).
    pub repaired_entries: u64,
    /// `true` when this open set sled aside and the check fills a fresh
    /// one from the log (an unclean stop with a large backlog, see
    /// `StorageConfig::rebuild_entries`) instead of checking the old one;
    /// `repaired_entries` then counts every entry written.
    pub sled_rebuilt: bool,
    /// Why the check could not finish (sled failed again after being
    /// moved aside and rebuilt). sled then stays unused: the storage keeps
    /// working from the log alone (slower reads), and the next open tries
    /// again. An operator should look: report it like a quarantine.
    pub index_check_error: Option<String>,
    /// Segments of the log now.
    pub log_segments: u64,
    /// Bytes the log's segment files take now.
    pub log_bytes: u64,
    /// Operations queued for the writer (waiting or being committed).
    pub writer_queue_ops: u64,
    /// Bytes of those operations (bounded by `StorageConfig::queue_bytes`).
    pub writer_queue_bytes: u64,
}

/// The `db.quarantined-*` directories in `dir`, sorted.
pub(crate) fn quarantined_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(QUARANTINE_PREFIX)
        })
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}
