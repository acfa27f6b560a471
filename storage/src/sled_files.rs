//! sled's directory, `<dir>/sled/` (`conf`, `db`, `blobs/`, `snap.*`):
//! opening it with a bounded wait for sled's lock and with its panics
//! caught, moving it aside when it cannot be used, and making its files
//! and their names durable at each checkpoint and at a clean close. (The previous version kept sled's files in `<dir>`
//! itself; open moves them into `sled/` once.)
//!
//! sled is an index and cache of the log (see the design note in the
//! `outbox` module), so a sled directory that fails to open, or panics, is
//! never deleted and never fatal: it is moved to
//! `<dir>/db.quarantined-<unix seconds>/`, reported, and a fresh one is
//! built from the log. `edgecc_storage::salvage` reads records back from
//! a quarantined directory.

use std::collections::HashSet;
use std::fs::File;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use tracing::{error, warn};

use crate::error::StorageError;
use crate::fsync::{list_names, sync_dir, sync_dir_named};
use crate::{Shared, Sled, StorageConfig};

/// Longest wait on open for sled's lock when our own lock is free (a
/// closing handle's background thread still finishing), in ms.
const SLED_REOPEN_WAIT_MS: u64 = 30_000;

/// Prefix of a quarantined sled directory's name.
pub const QUARANTINE_PREFIX: &str = "db.quarantined-";

/// sled's directory inside the storage directory.
pub const SLED_DIR: &str = "sled";

/// Prefix of a sled directory set aside because a fresh sled is filled
/// from the log instead (see [`replace_with_fresh`]); removed once the new
/// sled is checked and synced.
pub(crate) const REPLACED_PREFIX: &str = "sled.replaced-";

/// Largest cache of a sled filled fresh from the log (see
/// [`replace_with_fresh`]), in bytes.
pub(crate) const REBUILD_CACHE_BYTES: u64 = 8 * 1024 * 1024;

/// Whether a top-level name of the storage directory is one of sled's.
fn is_sled_file(name: &str) -> bool {
    matches!(name, "conf" | "db" | "blobs") || name.starts_with("snap.")
}

/// The sled options of a storage directory (also used by restore).
pub(crate) fn sled_config(dir: &Path, config: &StorageConfig) -> sled::Config {
    sled::Config::new()
        .path(dir.join(SLED_DIR))
        .cache_capacity(config.cache_bytes)
        .flush_every_ms(config.flush_every_ms)
        .segment_size(config.segment_bytes)
        .mode(sled::Mode::LowSpace)
        .use_compression(false)
}

/// Opens sled in `dir`, waiting (bounded) for its lock: we hold
/// `edgecc.lock`, so a taken sled lock is a background thread of a handle
/// of ours that just closed.
pub(crate) fn open_sled(dir: &Path, config: &StorageConfig) -> Result<sled::Db, StorageError> {
    let deadline =
        std::time::Instant::now() + std::time::Duration::from_millis(SLED_REOPEN_WAIT_MS);
    loop {
        match sled_config(dir, config).open() {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(ref io)) if io.to_string().contains("could not acquire lock") => {
                if std::time::Instant::now() >= deadline {
                    return Err(StorageError::Locked {
                        path: dir.to_path_buf(),
                    });
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(other) => return Err(StorageError::Sled(other)),
        }
    }
}

/// The message of a caught panic.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic without a message".to_owned())
}

/// Runs `f` (sled calls), turning a panic into an error.
pub(crate) fn guarded<T>(
    what: &str,
    f: impl FnOnce() -> Result<T, StorageError>,
) -> Result<T, StorageError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(panic) => Err(StorageError::Commit {
            message: format!("sled panicked during {what}: {}", panic_message(&*panic)),
        }),
    }
}

/// Longest wait for a failed sled to close its files before its directory
/// is moved aside anyway (see [`let_go`]).
pub(crate) const FAILED_RELEASE_WAIT: Duration = Duration::from_secs(5);

/// Lets go of a sled that failed or panicked, on a thread of its own
/// (`edgecc-sled-drop`), never on the caller's. sled 0.34.7's drop flushes
/// and joins its flusher thread, which waits for every log write in
/// progress; a write a panic cut short never ends, so that drop can hang
/// for good. Dropped on the check thread, under the apply lock, it hung
/// the check and with it every later group (the power-cut test: "open did
/// not finish within 60000 ms", every thread in a futex wait). A drop
/// that hangs keeps its thread and sled's memory until the process ends;
/// the directory is moved aside after a bounded wait all the same.
pub(crate) fn let_go<T: Send + 'static>(sled: T) {
    let spawned = std::thread::Builder::new()
        .name("edgecc-sled-drop".into())
        .spawn(move || drop(sled));
    if let Err(e) = spawned {
        warn!(error = %e, "Could not start a thread to close a failed sled; it is closed here.");
    }
}

/// Opens sled; when it fails (other than locked) or panics, moves its
/// files aside and opens a fresh one. Returns the quarantine directory
/// when it did.
pub(crate) fn open_or_quarantine(
    dir: &Path,
    config: &StorageConfig,
) -> Result<(sled::Db, Option<PathBuf>), StorageError> {
    match guarded("open", || open_sled(dir, config)) {
        Ok(db) => Ok((db, None)),
        Err(e @ StorageError::Locked { .. }) => Err(e),
        Err(e) => {
            let moved = quarantine(dir, &e.to_string())?;
            Ok((open_sled(dir, config)?, Some(moved)))
        }
    }
}

/// sled's trees opened (created when missing) on `db`; when that fails
/// (other than locked) or panics, `db` is let go, its files moved aside,
/// and a fresh sled opened. Opening a tree writes to a sled that lacks it,
/// and a damaged one can panic there: at open, before anything catches it,
/// that panic would stop the storage from opening at all.
pub(crate) fn trees_or_quarantine(
    dir: &Path,
    config: &StorageConfig,
    db: sled::Db,
) -> Result<(Sled, Option<PathBuf>), StorageError> {
    let tried = db.clone();
    match guarded("opening its trees", || Sled::new(tried)) {
        Ok(sled) => Ok((sled, None)),
        Err(e @ StorageError::Locked { .. }) => Err(e),
        Err(e) => {
            let_go(db);
            crate::wait_for_sled_release(dir, FAILED_RELEASE_WAIT);
            let moved = quarantine(dir, &e.to_string())?;
            Ok((Sled::new(open_sled(dir, config)?)?, Some(moved)))
        }
    }
}

/// Renames `<dir>/sled` to a new `db.quarantined-<unix seconds>` directory
/// (never deleted), syncs the storage directory, and logs why at error
/// level.
pub(crate) fn quarantine(dir: &Path, why: &str) -> Result<PathBuf, StorageError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut target = dir.join(format!("{QUARANTINE_PREFIX}{now}"));
    let mut n = 1;
    while target.exists() {
        target = dir.join(format!("{QUARANTINE_PREFIX}{now}-{n}"));
        n += 1;
    }
    let sled = dir.join(SLED_DIR);
    std::fs::rename(&sled, &target)
        .map_err(|e| StorageError::io(format!("move aside {}", sled.display()), e))?;
    sync_dir_named(dir)?;
    error!(
        dir = %dir.display(),
        quarantined = %target.display(),
        reason = why,
        "sled could not be used: its directory was moved aside (kept for salvage) and it is rebuilt from the log."
    );
    Ok(target)
}

/// Sets sled's directory aside as `sled.replaced-<unix seconds>` (synced)
/// and opens a fresh, empty sled: after an unclean stop with a large
/// backlog, the background check then fills it from the log instead of
/// walking the old one. Walking 1,000,000 records of an old sled made
/// sled 0.34.7 hold 60-110 MiB above its cache while it paged the whole
/// tree in (BENCHMARKS.md); filling a fresh one in key order stays close
/// to the cache. The old directory is never opened, so nothing in it can
/// make sled panic; it is removed by [`remove_replaced`] once the new sled
/// is checked and synced (until then a cut leaves both, and the next open
/// starts again from the log).
///
/// The fresh sled runs with a cache of at most [`REBUILD_CACHE_BYTES`]
/// until the next open: filling 1,000,000 records with a 32 MiB
/// cache peaked 169 MiB RSS against 124 MiB with 8 MiB (same machine,
/// same directory; BENCHMARKS.md), at the moment the backlog's live map
/// and delivery index are largest. The outbox reads sled mostly in order,
/// so a small cache costs little; a clean restart restores the configured
/// one.
pub(crate) fn replace_with_fresh(
    dir: &Path,
    config: &StorageConfig,
) -> Result<sled::Db, StorageError> {
    let sled = dir.join(SLED_DIR);
    if sled.exists() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut target = dir.join(format!("{REPLACED_PREFIX}{now}"));
        let mut n = 1;
        while target.exists() {
            target = dir.join(format!("{REPLACED_PREFIX}{now}-{n}"));
            n += 1;
        }
        std::fs::rename(&sled, &target)
            .map_err(|e| StorageError::io(format!("set aside {}", sled.display()), e))?;
        sync_dir_named(dir)?;
    }
    let config = StorageConfig {
        cache_bytes: config.cache_bytes.min(REBUILD_CACHE_BYTES),
        ..config.clone()
    };
    open_sled(dir, &config)
}

/// Removes the directories [`replace_with_fresh`] set aside (the caller
/// has just synced the sled that replaced them), then syncs `dir`.
pub(crate) fn remove_replaced(dir: &Path) -> Result<u64, StorageError> {
    let io = |what: &str, p: &Path, e| StorageError::io(format!("{what} {}", p.display()), e);
    let mut removed = 0;
    for name in list_names(dir).map_err(|e| io("list", dir, e))? {
        if name.to_string_lossy().starts_with(REPLACED_PREFIX) {
            let path = dir.join(&name);
            std::fs::remove_dir_all(&path).map_err(|e| io("remove", &path, e))?;
            removed += 1;
        }
    }
    if removed > 0 {
        sync_dir_named(dir)?;
    }
    Ok(removed)
}

/// Moves sled's files of the previous layout (in `<dir>` itself) into
/// `<dir>/sled/`, syncing both directories. Safe to run again after a
/// crash half-way: what is left is moved.
pub(crate) fn adopt_top_level(dir: &Path) -> Result<(), StorageError> {
    let io = |what: &str, p: &Path, e| StorageError::io(format!("{what} {}", p.display()), e);
    let names: Vec<_> = list_names(dir)
        .map_err(|e| io("list", dir, e))?
        .into_iter()
        .filter(|n| is_sled_file(&n.to_string_lossy()))
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    let sled = dir.join(SLED_DIR);
    std::fs::create_dir_all(&sled).map_err(|e| io("create", &sled, e))?;
    for name in names {
        std::fs::rename(dir.join(&name), sled.join(&name))
            .map_err(|e| io("move", &dir.join(&name), e))?;
    }
    sync_dir_named(&sled)?;
    sync_dir_named(dir)
}

/// Flushes sled and `fdatasync`s every file it has (its log, `conf`,
/// snapshots, blobs) and both directories: sled's own flush only issues
/// `sync_file_range` on Linux (spacejam/sled#1452), and sled never syncs a
/// directory. Run at a clean close, before the clean marker.
pub(crate) fn sync_sled(dir: &Path, db: &sled::Db) -> std::io::Result<()> {
    sync_sled_skipping(dir, db, &mut HashSet::new())
}

/// [`sync_sled`], skipping the blob files named in `synced` and adding
/// the ones it syncs: sled writes a blob file once (`create_new`) and
/// never changes it, so one sync each is enough.
fn sync_sled_skipping(
    dir: &Path,
    db: &sled::Db,
    synced: &mut HashSet<std::ffi::OsString>,
) -> std::io::Result<()> {
    db.flush().map_err(std::io::Error::other)?;
    let top = dir;
    let dir = &dir.join(SLED_DIR);
    let sync_file = |path: &Path| match File::open(path) {
        Ok(file) => file.sync_data(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    for name in list_names(dir)? {
        let name_str = name.to_string_lossy();
        if is_sled_file(&name_str) && name_str != "blobs" {
            sync_file(&dir.join(&name))?;
        }
    }
    let blobs = dir.join("blobs");
    if blobs.is_dir() {
        let names = list_names(&blobs)?;
        for name in &names {
            if !synced.contains(name) {
                sync_file(&blobs.join(name))?;
            }
        }
        sync_dir(&blobs)?;
        // Only the names still there: a removed blob's number is never
        // used again, and the set stays as small as the directory.
        *synced = names.into_iter().collect();
    }
    sync_dir(dir)?;
    sync_dir(top)
}

/// The sled checkpoint thread: every `every`, [`sync_sled`] (blob files
/// already synced skipped), so that sled's files and their names are
/// durable as of the last checkpoint, until the storage closes. sled itself
/// `fsync`s its data file every `flush_every_ms` but never a directory, so
/// without this a power cut leaves none of sled's file names (sled is then
/// rebuilt whole from the log), or a data file naming blob files whose
/// names were lost. Failures and panics are logged and retried at the next
/// checkpoint: durability never depends on sled (the log is the truth).
pub(crate) fn run_checkpoints(shared: &Shared, every: Duration) {
    let mut synced = HashSet::new();
    let mut failing = false;
    while !shared.stopping.load(Ordering::Relaxed) {
        std::thread::park_timeout(every);
        if shared.stopping.load(Ordering::Relaxed) {
            return;
        }
        // `None` while a quarantined sled is swapped for a fresh one.
        let Ok(sled) = shared.sled() else { continue };
        let done = guarded("a checkpoint of its files", || {
            sync_sled_skipping(&shared.dir, &sled.db, &mut synced)
                .map_err(|e| StorageError::io("sync sled's files", e))
        });
        drop(sled);
        match done {
            Ok(()) => failing = false,
            Err(e) if !failing => {
                failing = true;
                warn!(error = %e, "A checkpoint of sled's files failed (sled is only an index of the log: nothing acknowledged depends on it); retried at the next one.");
            }
            Err(_) => {}
        }
    }
}
