//! The background check of sled against the log, after an unclean stop
//! (or a sled that failed while unchecked): open returns at once, reads
//! come from the log meanwhile (see `read`), and this thread makes sled
//! hold exactly the log's live entries, then marks it trusted.
//!
//! Per tree, it walks sled's entries and the live map's keys side by side
//! in key order (sled read in pages, in order: no random reads) and, for
//! every key either side has, compares sled's value with the log's latest
//! put: a key the log does not hold is removed, a value sled lacks or
//! holds differently is written. Each batch takes its page of sled as of
//! a moment under the apply lock (read before the lock, and again under
//! it only if the writer applied a group in between) and asks the live
//! map under it, and the writer notes a group in the map and applies it to
//! sled under one hold of the same lock, so the
//! check compares sled and the log at the same group and reaches sled in
//! log order: a value the check writes is never older than what the
//! writer applies after it.
//!
//! After an unclean stop with a large backlog, open hands this check a
//! fresh, empty sled instead of the old one (`sled_files::replace_with_fresh`):
//! the same pass then fills it, and once it ends the fresh sled is synced
//! and the old directory removed.
//!
//! An old sled is trusted only after a pass that repaired nothing: a
//! damaged sled can take a write and not show it afterwards, so after a
//! pass that repaired entries the check walks it again, and a sled that
//! still differs after [`PASSES_MAX`] passes is moved aside and rebuilt.
//! What counts as a repair is a difference between sled's page and the log
//! read under the same hold of the lock. The check once read sled's page
//! before taking the lock and asked sled again with a lookup (`get`) under
//! it, to tell a key the writer changed in between (an ack, a retry) from
//! a repair; but a damaged sled can show a key to a lookup and not to a
//! range read, or the reverse, and that test took such a sled for a
//! healthy one: trusted, its lists lost acknowledged records and brought
//! acked ones back (the 100-cut power-cut soak, from cut 27 on). Reading
//! the page under the lock leaves no writer's change to tell apart.
//! A fresh sled is trusted after its first pass.
//!
//! sled failing or panicking during the check (or while the writer applies
//! a group before sled is checked) moves it aside (quarantine, never
//! deleted), opens a fresh one and runs the pass again; the fresh sled gets
//! every live entry. If that fails too, sled stays unused: reads keep
//! coming from the log, the health says why.
//!
//! Each pass is bounded (`check_watch`): one that compares no batch of
//! keys within `StorageConfig::check_stall_ms` (sled 0.34.7 spinning in a
//! read of a damaged tree, seen in the FUSE power-cut test for over 60 s)
//! is abandoned, and its sled treated exactly as one that panicked. The
//! stuck thread keeps the old sled and its pass's token says it was
//! abandoned, so nothing it does late reaches the new sled or the
//! storage's state. That holds too for a pass stuck while it holds the
//! apply lock (the page read again there when the writer applied a group
//! meanwhile, or a repair's write): the pass holds it with its token, and
//! once abandoned its hold no longer keeps the writer or the quarantine
//! out (`apply_lock`); back from sled late, the pass sees itself
//! abandoned and repairs nothing.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use crate::check_watch::{self, Watch, Watched};
use crate::error::StorageError;
use crate::read::successor;
use crate::rebuild::tree_is_ours;
use crate::{health, sled_files, Shared, Sled, StorageConfig};

/// Keys compared per batch (one hold of the apply lock).
const BATCH: usize = 256;

/// Quarantines a pass may make before the check gives up.
const REBUILDS_MAX: u32 = 2;

/// Passes over an old sled that may still repair something; then it is
/// moved aside and rebuilt.
const PASSES_MAX: u32 = 3;

/// Runs the check to its end (or until the storage closes), then marks
/// sled trusted and reports the time it took.
pub(crate) fn run(shared: &Arc<Shared>, config: &StorageConfig) {
    shared.wait_check_release();
    let started = Instant::now();
    let mut repaired = 0u64;
    let mut rebuilds = 0u32;
    // A fresh sled (set aside at open, or after a quarantine) is trusted
    // after one pass; an old one only after a pass that repaired nothing.
    let mut fresh = shared.lock_health().sled_rebuilt;
    let mut passes = 0u32;
    // Whether the last pass was abandoned stuck inside sled (see
    // `check_watch`): its thread still holds the old sled, so waiting for
    // that sled to close its files before moving it aside is pointless.
    let mut stuck = false;
    let stall = Duration::from_millis(config.check_stall_ms.max(1));
    let outcome: Result<(), String> = loop {
        if shared.stopping.load(Ordering::Relaxed) {
            return;
        }
        if let Some(why) = shared.sled_failure() {
            if rebuilds >= REBUILDS_MAX {
                break Err(why);
            }
            rebuilds += 1;
            let release_wait = if stuck {
                Duration::ZERO
            } else {
                sled_files::FAILED_RELEASE_WAIT
            };
            if let Err(e) = quarantine_and_reopen(shared, config, &why, release_wait) {
                break Err(format!("{why}; moving sled aside failed: {e}"));
            }
            fresh = true;
            stuck = false;
            continue;
        }
        let result = match check_watch::watched(shared, stall, |shared, watch| {
            sled_files::guarded("the check against the log", || pass(shared, watch))
        }) {
            Watched::Done(result) => result,
            Watched::Closing => return,
            Watched::Stalled(after) => {
                stuck = true;
                Err(StorageError::Commit {
                    message: format!(
                        "the check of sled made no progress for {} ms (sled stuck in a read of a damaged tree); that pass is abandoned",
                        after.as_millis()
                    ),
                })
            }
        };
        match result {
            Ok(None) => return,
            Ok(Some(fixed)) if fixed > 0 && !fresh => {
                // A damaged sled can take a write and not show it (a key
                // put into a node its tree no longer reaches): the next
                // pass finds it missing again. Seen in the power-cut test.
                repaired += fixed;
                passes += 1;
                if passes >= PASSES_MAX {
                    shared.fail_sled(format!(
                        "sled does not keep what the check writes: {fixed} entries still differ from the log after {passes} passes"
                    ));
                }
            }
            Ok(Some(fixed)) => {
                repaired += fixed;
                // Trusted only if sled took every group meanwhile.
                let _order = shared.lock_apply();
                if shared.sled_failure().is_none() {
                    shared.checked.store(true, Ordering::Release);
                    shared.reader.clear();
                    break Ok(());
                }
            }
            Err(e) => shared.fail_sled(e.to_string()),
        }
    };
    if outcome.is_ok() {
        if let Err(e) = finish_replacement(shared) {
            warn!(error = %e, "The sled directory set aside for a fresh one could not be removed yet; retried after the next check.");
        }
    }
    let ms = started.elapsed().as_millis() as u64;
    crate::heap::trim();
    let mut health = shared.lock_health();
    health.index_checking = false;
    health.quarantined = health::quarantined_dirs(&shared.dir);
    match outcome {
        Ok(()) => {
            health.index_rebuild_ms = Some(ms);
            health.repaired_entries = repaired;
            info!(
                check_ms = ms,
                repaired, rebuilds, "sled checked against the log; reads use sled again."
            );
        }
        Err(why) => {
            error!(check_ms = ms, error = %why, "sled could not be checked or rebuilt; it stays unused and reads keep coming from the log.");
            health.index_check_error = Some(why);
        }
    }
}

/// Once a fresh sled (see `sled_files::replace_with_fresh`) holds the log's
/// live entries: syncs it, then removes the old directory set aside.
fn finish_replacement(shared: &Shared) -> Result<(), StorageError> {
    let replaced = crate::fsync::list_names(&shared.dir)
        .map_err(|e| StorageError::io(format!("list {}", shared.dir.display()), e))?
        .iter()
        .any(|n| n.to_string_lossy().starts_with(sled_files::REPLACED_PREFIX));
    if !replaced {
        return Ok(());
    }
    let sled = shared.sled()?;
    sled_files::guarded("a sync of the rebuilt sled", || {
        sled_files::sync_sled(&shared.dir, &sled.db)
            .map_err(|e| StorageError::io("sync the rebuilt sled", e))
    })?;
    drop(sled);
    let removed = sled_files::remove_replaced(&shared.dir)?;
    info!(
        removed,
        "The rebuilt sled is synced; the sled directory it replaced is removed."
    );
    Ok(())
}

/// One pass over every tree. `None` when the storage is closing.
fn pass(shared: &Shared, watch: &Arc<Watch>) -> Result<Option<u64>, StorageError> {
    let sled = shared.sled()?;
    let mut names: BTreeSet<Vec<u8>> = sled
        .db
        .tree_names()
        .into_iter()
        .filter(|n| tree_is_ours(n))
        .map(|n| n.to_vec())
        .collect();
    names.extend(shared.lock_live().tree_names());
    let mut fixed = 0u64;
    let mut trimmer = crate::heap::Trimmer::new();
    for name in names {
        match tree_pass(shared, watch, &sled, &name, &mut trimmer)? {
            Some(n) => fixed += n,
            None => return Ok(None),
        }
    }
    Ok(Some(fixed))
}

/// Brings one tree in line with the log. `None` when closing, or when the
/// check abandoned this pass (`watch`): then it writes nothing more.
///
/// Batch by batch it reads a page of sled's entries (a range read, as
/// every read of the outbox's lists does) as of a moment under the apply
/// lock (read before the lock, and again under it if the writer applied a
/// group in between) and a page of the live keys from the same key on,
/// and compares them up to the smaller last key of a full page (what lies
/// beyond is read again by the next batch). The writer notes a group in
/// the live map and applies it to sled under one hold of that lock, so
/// under it a healthy sled and the log agree on every key: any difference
/// is sled's own, and counts as a repair.
fn tree_pass(
    shared: &Shared,
    watch: &Arc<Watch>,
    sled: &Sled,
    name: &[u8],
    trimmer: &mut crate::heap::Trimmer,
) -> Result<Option<u64>, StorageError> {
    let tree = sled.tree(name)?;
    let mut fixed = 0u64;
    let mut from = Vec::new();
    loop {
        if shared.stopping.load(Ordering::Relaxed) || watch.is_abandoned() {
            return Ok(None);
        }
        if let Some(why) = shared.sled_failure() {
            return Err(StorageError::Commit { message: why });
        }
        watch.step();
        // sled's pages read by the walk are freed as it moves on: hand the
        // freed heap back now and then (at most once a second).
        trimmer.maybe_trim();
        // Read first without the lock: a damaged sled can spin in a read
        // for long (sled 0.34.7 retries a lookup up to a million times
        // before it panics), and the writer would wait meanwhile. Read
        // again under the lock only if a group was applied in between.
        let applied = shared.applied_groups.load(Ordering::Acquire);
        shared.injected_check_read_stall();
        let before = sled_page(&tree, &from)?;
        let _order = shared.apply_lock.lock_for_pass(watch);
        if watch.is_abandoned() {
            // Given up on while in sled: another sled may be in place.
            return Ok(None);
        }
        shared.injected_check_locked_read_stall();
        let in_sled = if shared.applied_groups.load(Ordering::Acquire) == applied {
            before
        } else {
            drop(before);
            sled_page(&tree, &from)?
        };
        if watch.is_abandoned() {
            // Given up on while stuck in that read: the lock is someone
            // else's now, and sled may be moved aside.
            return Ok(None);
        }
        let in_log: Vec<Vec<u8>> = shared
            .lock_live()
            .keys_from(name, &from, BATCH)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        // The last key both pages cover: a full page may go on past it.
        let full_last = |full: bool, last: Option<&Vec<u8>>| last.filter(|_| full).cloned();
        let bound = match (
            full_last(in_sled.len() == BATCH, in_sled.last().map(|(k, _)| k)),
            full_last(in_log.len() == BATCH, in_log.last()),
        ) {
            (Some(s), Some(l)) => Some(s.min(l)),
            (s, l) => s.or(l),
        };
        let within = |k: &[u8]| bound.as_deref().is_none_or(|b| k <= b);
        let mut sled_side = in_sled.into_iter().filter(|(k, _)| within(k)).peekable();
        let mut log_side = in_log.into_iter().filter(|k| within(k)).peekable();
        loop {
            let (key, stored) = match (sled_side.peek(), log_side.peek()) {
                (None, None) => break,
                (Some((s, _)), Some(l)) if s == l => {
                    log_side.next();
                    let (k, v) = sled_side.next().unwrap_or_default();
                    (k, Some(v))
                }
                (Some((s, _)), l) if l.is_none_or(|l| s < l) => {
                    let (k, v) = sled_side.next().unwrap_or_default();
                    (k, Some(v))
                }
                _ => (log_side.next().unwrap_or_default(), None),
            };
            if watch.is_abandoned() {
                // Given up on while stuck in the last repair's write.
                return Ok(None);
            }
            // The truth now (the live map asked under the apply lock).
            let truth = shared.get_from_log(name, &key)?;
            if repair(&tree, &key, truth, stored)? {
                fixed += 1;
            }
        }
        match bound {
            Some(last) => from = successor(last),
            None => return Ok(Some(fixed)),
        }
    }
}

/// Up to [`BATCH`] entries of sled's `tree` from `from` on (a range read).
fn sled_page(tree: &sled::Tree, from: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StorageError> {
    let mut page = Vec::with_capacity(BATCH);
    for item in tree.range(from..).take(BATCH) {
        let (k, v) = item?;
        page.push((k.to_vec(), v.to_vec()));
    }
    Ok(page)
}

/// Makes sled's `key` hold `truth` (the log's value), given `stored`, what
/// sled's range read showed under the same hold of the apply lock;
/// answers whether it differed (a repair). A difference is never the
/// writer's: it notes and applies a group under that lock. It is counted
/// even when sled's `get` already shows the truth: a damaged sled can show
/// a key to one and not the other (a range read skipping entries a lookup
/// finds, or showing ones a lookup does not), and the outbox's lists are
/// range reads. Asking `get` again, as the check once did, took such a
/// difference for a write of the writer's: the power-cut soak then
/// trusted a sled whose lists lost acknowledged records and brought acked
/// ones back.
fn repair(
    tree: &sled::Tree,
    key: &[u8],
    truth: Option<Vec<u8>>,
    stored: Option<Vec<u8>>,
) -> Result<bool, StorageError> {
    if truth == stored {
        return Ok(false);
    }
    match truth {
        Some(truth) => drop(tree.insert(key, truth)?),
        None => drop(tree.remove(key)?),
    }
    Ok(true)
}

/// Moves the failed sled aside and opens a fresh one. The writer applies
/// nothing while sled is marked failed (the next pass writes every live
/// entry into the fresh one), so the apply lock is held only to take the
/// old sled out and to put the fresh one in: not while the old one is
/// let go, which can take long or never end (see
/// [`sled_files::let_go`]).
fn quarantine_and_reopen(
    shared: &Shared,
    config: &StorageConfig,
    why: &str,
    release_wait: Duration,
) -> Result<(), StorageError> {
    let old = {
        let _order = shared.lock_apply();
        shared.set_sled(None)
    };
    if let Some(old) = old {
        sled_files::let_go(old);
    }
    crate::wait_for_sled_release(&shared.dir, release_wait);
    sled_files::quarantine(&shared.dir, why)?;
    let db = sled_files::open_sled(&shared.dir, config)?;
    let sled = Arc::new(Sled::new(db)?);
    let _order = shared.lock_apply();
    shared.set_sled(Some(sled));
    *shared.sled_failed.lock().unwrap_or_else(|p| p.into_inner()) = None;
    shared.lock_health().quarantined = health::quarantined_dirs(&shared.dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: a difference between sled's range read and the log counts as
    /// a repair even when a lookup in sled already shows the truth (a
    /// damaged sled's range reads and lookups can disagree, and the lists
    /// are range reads: not counted, such a sled was trusted and lost
    /// acknowledged records). Method: a sled tree and the four cases.
    #[test]
    fn a_difference_from_the_range_read_is_a_repair_whatever_a_lookup_says() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::Config::new().path(dir.path()).open().expect("sled");
        let tree = db.open_tree("outbox").expect("tree");
        tree.insert(b"k", b"truth".to_vec()).expect("insert");
        // The range read missed `k`, a lookup finds it: a repair.
        let missed = repair(&tree, b"k", Some(b"truth".to_vec()), None);
        assert!(missed.expect("repair"));
        assert_eq!(tree.get(b"k").expect("get").as_deref(), Some(&b"truth"[..]));
        // The range read showed `gone`, the log removed it: a repair.
        let shown = repair(&tree, b"gone", None, Some(b"v".to_vec()));
        assert!(shown.expect("repair"));
        assert_eq!(tree.get(b"gone").expect("get"), None);
        // Held differently: written, counted.
        let differs = repair(&tree, b"k", Some(b"new".to_vec()), Some(b"truth".to_vec()));
        assert!(differs.expect("repair"));
        assert_eq!(tree.get(b"k").expect("get").as_deref(), Some(&b"new"[..]));
        // The same on both sides: nothing written, nothing counted.
        let same = repair(&tree, b"k", Some(b"new".to_vec()), Some(b"new".to_vec()));
        assert!(!same.expect("repair"));
    }
}
