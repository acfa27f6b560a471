//! edgecc-storage: the durable CRM outbox, its dead letters, and a small
//! persisted key-value facility: edgecc's own segmented log is the truth,
//! one sled 0.34.7 database is its index and cache, and one group-commit
//! writer makes every change durable.
//!
//! A change is acknowledged only once it would survive a power cut: the
//! writer appends each group as one CRC-framed frame to the log and
//! `fdatasync`s it before sled sees the group. Nothing depends on sled
//! surviving a power cut: after an unclean stop sled is checked against the
//! log and repaired in the background while reads come from the log, and a
//! sled that fails to open or panics is moved aside and rebuilt from the
//! log (the rules are in the [`outbox`] design note).
//!
//! # Layout
//!
//! - `lib.rs` — [`Storage`] (open: lock, clean marker, log scan, sled
//!   opened, index recovery, background check started; close) and
//!   [`StorageConfig`] (cache size, flush interval, segment sizes, writer
//!   queue bytes).
//! - `read` — every read of a tree: from sled once it is trusted, from the
//!   log (by the live map's locations) until then.
//! - `check` — the background check of sled against the log after an
//!   unclean stop, and the quarantine and rebuild of a sled it finds
//!   unusable.
//! - `check_watch` — the bound on that check: a pass stuck inside sled
//!   (no progress within `check_stall_ms`) is abandoned and its sled
//!   treated as one that panicked.
//! - [`outbox`] — the design note (invariants, key layout, record format,
//!   durability contract, delivery and holding rules) and [`Outbox`], the
//!   handle the daemon appends to and the sync worker drains.
//! - `seglog` — the segmented log: segments, frames, scan, retirement.
//! - `live` — where each live entry's latest put is (segment, offset,
//!   length): what exists, what a retirement must copy forward, and where
//!   a read from the log finds a value.
//! - `live_file` — the live map saved beside the log at a clean close, so
//!   open scans only the frames written after it.
//! - `clean` — the clean marker that lets open trust sled after a clean
//!   close.
//! - `rebuild` — the log scanned into the live map, directories of the
//!   previous version moved onto a log, open's own writes.
//! - `recovery` — the delivery index rebuilt from sled on open.
//! - `sled_files` — sled's files: open with panics caught, quarantine,
//!   a fresh sled instead of an old one with a large backlog, checkpoints
//!   and the sync at a clean close.
//! - [`health`] — [`StorageHealth`]: quarantined directories, rebuild
//!   time, log size, writer queue depth.
//! - [`mod@salvage`] — records read back from a quarantined sled directory.
//! - `fsync` — directory sync helpers every file-writing module uses.
//! - `heap` — hands freed heap back to the kernel (after open, on close,
//!   and from the writer at most once a second).
//! - `index` — the in-memory delivery index (ready, in flight, backoff,
//!   held), rebuilt on open.
//! - `writer` — the group-commit writer thread: stages, logs, applies to
//!   sled, retires log segments.
//! - `linger` — how callers join a group commit: the writer waits briefly
//!   for the callers its last group answered.
//! - [`wal`] — the previous version's write-ahead log (read once, when a
//!   directory of that version is moved onto the segmented log) and the
//!   op encoding frames share.
//! - [`record`] — [`NewRecord`], [`Record`], [`DeadLetter`] and their
//!   versioned, checksummed encoding; size limits; [`RecordKind`], defined
//!   once for storage and the actors in `record-kind/` (the
//!   `edgecc-record-kind` crate, serde only).
//! - [`state`] — [`StateTree`], durable put/remove on the same writer.
//! - [`error`] — [`StorageError`], [`AppendError`] (hands records back).
//! - [`backup`] — point-in-time backups taken by the writer thread, their
//!   checksummed format, [`backup::verify`] and [`backup::restore`].

#[cfg(test)]
mod alloc_count;
mod apply_lock;
pub mod backup;
mod check;
mod check_watch;
mod clean;
pub mod error;
mod fsync;
pub mod health;
mod heap;
mod index;
mod linger;
mod live;
mod live_file;
pub mod outbox;
mod read;
mod rebuild;
pub mod record;
mod recovery;
pub mod salvage;
mod seglog;
mod sled_files;
pub mod state;
pub mod wal;
mod writer;

use std::fs::File;
use std::mem::ManuallyDrop;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;

use tokio::sync::{mpsc, Semaphore};
use tracing::{info, warn};

pub use backup::{BackupSummary, RestoreSummary};
pub use clean::CLEAN_FILE;
pub use error::{AppendError, AppendFailure, StorageError};
pub use health::StorageHealth;
pub use outbox::{InteractionRecords, Outbox, OutboxStats, IN_FLIGHT_MAX};
pub use record::{
    DeadLetter, DecodeError, NewRecord, Record, RecordKind, BODY_BYTES_MAX, ID_BYTES_MAX,
    REASON_BYTES_MAX,
};
pub use salvage::{salvage, SalvageSummary};
pub use seglog::LOG_DIR;
pub use sled_files::{QUARANTINE_PREFIX, SLED_DIR};
pub use state::StateTree;
pub use wal::{WAL_BYTES_DEFAULT, WAL_BYTES_MIN};
pub use writer::{COMMIT_OPS_MAX, WRITER_QUEUE_BYTES_DEFAULT, WRITER_QUEUE_MAX};

use index::Index;
use live::Live;
use rebuild::OpenLog;
use seglog::{LogReader, SyncStall};
use writer::{Queued, Writer};

/// Default sled page-cache size: 16 MiB, the daemon's own default
/// (`[storage] cache_bytes`), so that what this crate's benchmark measures
/// by default is what a daemon runs (this was 32 MiB, a size no daemon
/// used by default). sled's own default is 1 GiB, far too much for
/// an edge box; the outbox is read mostly sequentially, so a small cache
/// costs little.
pub const CACHE_BYTES_DEFAULT: u64 = 16 * 1024 * 1024;

/// Default interval of sled's background thread (segment cleaning, and an
/// extra fsync), in ms. Durability never depends on it: the writer syncs
/// every group itself.
pub const FLUSH_EVERY_MS_DEFAULT: u64 = 500;

/// Default interval of sled's checkpoints, in ms: sled flushed and every
/// file and directory of it synced (see `sled_files::run_checkpoints`).
/// One device flush or a few each time; sled already syncs its data file
/// every [`FLUSH_EVERY_MS_DEFAULT`].
pub const SLED_CHECKPOINT_MS_DEFAULT: u64 = 5_000;

/// Default of [`StorageConfig::rebuild_entries`]: from 100,000 live
/// entries on, an unclean open fills a fresh sled from the log (walking
/// the old one pages all of it in: RSS; see `sled_files::replace_with_fresh`);
/// below, the check walks the old sled and repairs what differs, which
/// writes little when sled is mostly right.
pub const REBUILD_ENTRIES_DEFAULT: u64 = 100_000;

/// Default of [`StorageConfig::check_stall_ms`]: 10 s. A healthy sled
/// compares a batch of keys in milliseconds; one spinning on a damaged
/// tree does not come back for minutes (see `check_watch`).
pub const CHECK_STALL_MS_DEFAULT: u64 = 10_000;

/// Default sled segment size: 512 KiB (sled's value, stated explicitly).
/// Values above a quarter segment go to separate blob files, which the
/// writer syncs too.
pub const SEGMENT_BYTES_DEFAULT: usize = 512 * 1024;

/// Most records in one `append_batch` (the accept path appends two).
pub const BATCH_RECORDS_MAX: usize = 64;

/// Name of the lock file held while a [`Storage`] is open.
const LOCK_FILE: &str = "edgecc.lock";

/// Present (and synced) while a restore writes into the directory; open
/// refuses a directory that has it.
const RESTORE_MARKER: &str = "edgecc.restoring";

/// Longest wait on close for sled's background threads to release
/// `<dir>/db`. They finish within milliseconds; the bound only keeps a
/// wedged disk from hanging a shutdown.
const SLED_RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Longest wait on close for the check and checkpoint threads to end.
/// They stop at their next step; one stuck inside a sled that panicked
/// (see `sled_files::let_go`) is left behind instead of hanging the close.
const THREAD_STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Longest wait for our own `edgecc.lock` before answering `Locked`, in
/// ms. A handle closed a moment ago can still hold it: a process forked
/// by this one (a child being spawned) keeps a copy of the descriptor, and
/// so the lock, until it execs. A running daemon holds it for good, so the
/// wait only delays that answer by this much.
const LOCK_WAIT_MS: u64 = 2_000;

/// Tree names.
const TREE_OUTBOX: &str = "outbox";
const TREE_DEAD: &str = "dead";
const TREE_META: &str = "meta";
const TREE_PENDING: &str = "pending";

/// The meta-tree key set (to `[1]`) once the `pending` tree indexes every
/// outbox record; absent in directories written before it existed.
pub(crate) const META_PENDING_READY: &[u8] = b"pending_ready";

/// Options of a storage directory; every sled option is passed explicitly.
#[derive(Clone, Debug)]
pub struct StorageConfig {
    /// sled page-cache size in bytes: bounds the cache part of RSS.
    pub cache_bytes: u64,
    /// sled background flush/GC interval in ms (`None` disables it, which
    /// also disables segment cleaning: not recommended).
    pub flush_every_ms: Option<u64>,
    /// sled segment size in bytes (fixed once the directory exists).
    pub segment_bytes: usize,
    /// Interval of sled's checkpoints in ms (`None`: none, sled's files
    /// and names are then durable only after a clean close, so a power
    /// cut rebuilds sled whole from the log); see
    /// [`SLED_CHECKPOINT_MS_DEFAULT`].
    pub sled_checkpoint_ms: Option<u64>,
    /// Size of one log segment in bytes (at least [`WAL_BYTES_MIN`]; the
    /// name is kept from the single write-ahead log it replaces). The log
    /// holds every live entry, so it takes about the live data plus up to
    /// two segments; a larger segment retires less often.
    pub wal_bytes: u64,
    /// Most bytes of changes queued for the writer (waiting, or in the
    /// group being made durable); see [`WRITER_QUEUE_BYTES_DEFAULT`].
    pub queue_bytes: usize,
    /// Live entries in the log from which an open after an unclean stop
    /// sets sled aside and has the background check fill a fresh one from
    /// the log, instead of walking the old one (see
    /// [`REBUILD_ENTRIES_DEFAULT`]).
    pub rebuild_entries: u64,
    /// Test hook: the background check of sled (after an unclean stop)
    /// waits until [`Storage::release_index_check`] before it starts, so a
    /// test can use the directory while sled is still unchecked. Never set
    /// by the daemon.
    #[doc(hidden)]
    pub hold_index_check: bool,
    /// Longest time, in ms, a pass of the background check of sled may
    /// go without comparing a batch of keys; then it is abandoned and sled
    /// is treated as one that panicked: moved aside and rebuilt from the
    /// log (sled 0.34.7 can spin for minutes in a read of a damaged tree).
    /// See [`CHECK_STALL_MS_DEFAULT`].
    pub check_stall_ms: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            cache_bytes: CACHE_BYTES_DEFAULT,
            flush_every_ms: Some(FLUSH_EVERY_MS_DEFAULT),
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            sled_checkpoint_ms: Some(SLED_CHECKPOINT_MS_DEFAULT),
            wal_bytes: WAL_BYTES_DEFAULT,
            queue_bytes: WRITER_QUEUE_BYTES_DEFAULT,
            rebuild_entries: REBUILD_ENTRIES_DEFAULT,
            hold_index_check: false,
            check_stall_ms: CHECK_STALL_MS_DEFAULT,
        }
    }
}

/// The sled database and the trees every group touches.
pub(crate) struct Sled {
    /// The sled database (one log for every tree).
    pub(crate) db: sled::Db,
    /// Pending records by big-endian sequence.
    pub(crate) outbox: sled::Tree,
    /// One small entry per pending record (key hash, retry time), same
    /// keys: what open reads instead of the records.
    pub(crate) pending: sled::Tree,
    /// Dead letters by big-endian sequence.
    pub(crate) dead: sled::Tree,
    /// Bookkeeping (next sequence).
    pub(crate) meta: sled::Tree,
}

impl Sled {
    pub(crate) fn new(db: sled::Db) -> Result<Sled, StorageError> {
        Ok(Sled {
            outbox: db.open_tree(TREE_OUTBOX)?,
            pending: db.open_tree(TREE_PENDING)?,
            dead: db.open_tree(TREE_DEAD)?,
            meta: db.open_tree(TREE_META)?,
            db,
        })
    }

    /// The tree named `name` (opened, i.e. created, when new).
    pub(crate) fn tree(&self, name: &[u8]) -> Result<sled::Tree, StorageError> {
        Ok(match name {
            b"outbox" => self.outbox.clone(),
            b"pending" => self.pending.clone(),
            b"dead" => self.dead.clone(),
            b"meta" => self.meta.clone(),
            other => self.db.open_tree(other)?,
        })
    }
}

/// Trees, live map and index shared by the handles, the writer thread and
/// the background check.
pub(crate) struct Shared {
    /// sled; `None` only while the check swaps a quarantined one for a
    /// fresh one (under `apply_lock`), or when that failed.
    sled: RwLock<Option<Arc<Sled>>>,
    /// Where every live entry's latest put is in the log; the writer
    /// notes each frame here before it answers anyone.
    pub(crate) live: Mutex<Live>,
    /// Reads values back from the log while sled is not trusted.
    pub(crate) reader: LogReader,
    /// Whether sled holds exactly the log's live entries (plus the groups
    /// being applied). Until then every read comes from the log.
    pub(crate) checked: AtomicBool,
    /// Set when sled failed while unchecked: the check moves it aside.
    pub(crate) sled_failed: Mutex<Option<String>>,
    /// Test hook ([`Storage::inject_sled_read_panic`]): the next read of a
    /// trusted sled panics inside sled's call, as sled 0.34.7 does on
    /// some damaged pages.
    pub(crate) panic_next_sled_read: AtomicBool,
    /// Held while sled is written (a group applied, a batch of the check,
    /// the swap of a quarantined sled), so writes reach sled in log order;
    /// a check pass abandoned while it holds it no longer does.
    pub(crate) apply_lock: apply_lock::ApplyLock,
    /// Test hook: `true` while the check is held back (see
    /// `StorageConfig::hold_index_check`), with its wake-up.
    check_hold: (Mutex<bool>, Condvar),
    /// Set on close: the background check stops at its next batch.
    pub(crate) stopping: AtomicBool,
    /// The delivery index; the writer changes it after each durable group.
    pub(crate) index: Mutex<Index>,
    /// The storage directory, for `bytes on disk`.
    pub(crate) dir: PathBuf,
    /// What open found and what the writer reports (log size).
    pub(crate) health: Mutex<StorageHealth>,
    /// Groups the writer noted in the live map and applied to sled (one
    /// step, under the apply lock): the check reads a page of sled before
    /// taking that lock and reads it again under it only when this moved.
    pub(crate) applied_groups: AtomicU64,
    /// Groups the writer committed, and the operations in them (see
    /// [`Storage::group_commits`]).
    pub(crate) groups: (AtomicU64, AtomicU64),
    /// Test hook ([`Storage::inject_check_read_stall`]): ms the check's
    /// next read of sled blocks, as sled spinning on a damaged tree does.
    stall_next_check_read: AtomicU64,
    /// Test hook ([`Storage::inject_check_locked_read_stall`]): ms the
    /// check's next batch blocks while it holds the apply lock.
    stall_next_check_locked_read: AtomicU64,
}

impl Shared {
    /// sled, or an error while it is being swapped (or could not be
    /// reopened after a quarantine).
    pub(crate) fn sled(&self) -> Result<Arc<Sled>, StorageError> {
        self.sled
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| StorageError::Commit {
                message: "sled is being rebuilt from the log".into(),
            })
    }

    /// Replaces sled (the check's quarantine; caller holds `apply_lock`).
    pub(crate) fn set_sled(&self, sled: Option<Arc<Sled>>) -> Option<Arc<Sled>> {
        std::mem::replace(
            &mut *self.sled.write().unwrap_or_else(|p| p.into_inner()),
            sled,
        )
    }

    /// Whether sled is trusted (reads go to it).
    pub(crate) fn is_checked(&self) -> bool {
        self.checked.load(Ordering::Acquire)
    }

    /// Locks the live map (a poisoned lock is taken over).
    pub(crate) fn lock_live(&self) -> MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Blocks as long as the test hook asks (see
    /// [`Storage::inject_check_read_stall`]); called by the check right
    /// before it reads a page of sled.
    pub(crate) fn injected_check_read_stall(&self) {
        let ms = self.stall_next_check_read.swap(0, Ordering::AcqRel);
        if ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
    }

    /// Blocks as long as the test hook asks (see
    /// [`Storage::inject_check_locked_read_stall`]); called by the check
    /// right after it took the apply lock for a batch.
    pub(crate) fn injected_check_locked_read_stall(&self) {
        let ms = self.stall_next_check_locked_read.swap(0, Ordering::AcqRel);
        if ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
    }

    /// Locks sled's write order.
    pub(crate) fn lock_apply(&self) -> apply_lock::ApplyGuard<'_> {
        self.apply_lock.lock()
    }

    /// Notes that sled failed while unchecked (the check quarantines it).
    pub(crate) fn fail_sled(&self, why: String) {
        let mut failed = self.sled_failed.lock().unwrap_or_else(|p| p.into_inner());
        if failed.is_none() {
            warn!(error = %why, "sled failed while being checked; it is moved aside and rebuilt from the log.");
            *failed = Some(why);
        }
    }

    /// A trusted sled panicked while read: it is not trusted again until
    /// the next open checks it against the log. Reads come from the log
    /// (the live map is exact at all times), the writer stops applying
    /// groups to it, the close leaves no clean marker, and the health
    /// reports why, as a check that could not finish does.
    pub(crate) fn distrust_sled(&self, why: String) {
        self.checked.store(false, Ordering::Release);
        let mut failed = self.sled_failed.lock().unwrap_or_else(|p| p.into_inner());
        if failed.is_none() {
            tracing::error!(error = %why, "sled failed while read; reads come from the log until the next open checks sled again.");
            *failed = Some(why.clone());
        }
        drop(failed);
        let mut health = self.lock_health();
        if health.index_check_error.is_none() {
            health.index_check_error = Some(why);
        }
    }

    /// Why sled failed while unchecked, if it did.
    pub(crate) fn sled_failure(&self) -> Option<String> {
        self.sled_failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits while the test hook holds the check back.
    pub(crate) fn wait_check_release(&self) {
        let (lock, cvar) = &self.check_hold;
        let mut held = lock.lock().unwrap_or_else(|p| p.into_inner());
        while *held && !self.stopping.load(Ordering::Relaxed) {
            held = cvar
                .wait_timeout(held, std::time::Duration::from_millis(50))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Locks the index. A poisoned lock (a panic elsewhere) is taken over:
    /// the index is rebuilt on the next open anyway.
    pub(crate) fn lock_index(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a group of `ops` operations the writer committed.
    pub(crate) fn note_group(&self, ops: usize) {
        self.groups.0.fetch_add(1, Ordering::Relaxed);
        self.groups.1.fetch_add(ops as u64, Ordering::Relaxed);
    }

    /// Locks the health figures (a poisoned lock is taken over).
    pub(crate) fn lock_health(&self) -> MutexGuard<'_, StorageHealth> {
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What every handle holds; dropping the last one stops the writer (after
/// it committed what it had) and releases the directory lock.
pub(crate) struct Inner {
    /// Sends operations to the writer; `None` only during drop.
    tx: Option<mpsc::Sender<Queued>>,
    /// Bytes the writer queue may still take (one permit a byte).
    queue_bytes: Arc<Semaphore>,
    /// The byte budget `queue_bytes` started with.
    pub(crate) queue_bytes_max: usize,
    /// Injected sync stalls (tests).
    stall: Arc<SyncStall>,
    /// The writer thread, joined on drop so a reopen finds the lock free.
    writer: Option<JoinHandle<()>>,
    /// The background check of sled, if one runs; stopped and joined on
    /// drop before the writer.
    check: Option<JoinHandle<()>>,
    /// The sled checkpoint thread, if configured; woken, stopped and
    /// joined on drop before the writer (whose clean close syncs sled).
    checkpoints: Option<JoinHandle<()>>,
    /// Trees and index. Dropped by hand in `drop`, before waiting for sled
    /// to let go of its files.
    pub(crate) shared: ManuallyDrop<Arc<Shared>>,
    /// Our `flock` on `<dir>/edgecc.lock`; released when dropped (last).
    _lock: File,
}

impl Inner {
    /// Sends an operation to the writer, waiting while the queue is full
    /// (in bytes or in count).
    pub(crate) async fn send(&self, op: writer::Op) -> Result<(), StorageError> {
        self.send_op(op).await.map_err(|_| StorageError::Closed)
    }

    /// [`Inner::send`], handing the operation back when the writer is gone.
    pub(crate) async fn send_op(&self, op: writer::Op) -> Result<(), writer::Op> {
        let Some(tx) = &self.tx else { return Err(op) };
        let bytes = op.queue_bytes().min(self.queue_bytes_max).max(1);
        let permit = match Arc::clone(&self.queue_bytes)
            .acquire_many_owned(u32::try_from(bytes).unwrap_or(u32::MAX))
            .await
        {
            Ok(permit) => permit,
            Err(_) => return Err(op),
        };
        tx.send(Queued { op, permit }).await.map_err(|e| e.0.op)
    }

    /// Sends without waiting for room: hands the operation back when the
    /// queue is full (in bytes or in operations) or the writer is gone.
    pub(crate) fn try_send_op(&self, op: writer::Op) -> Result<(), writer::Op> {
        let Some(tx) = &self.tx else { return Err(op) };
        let bytes = op.queue_bytes().min(self.queue_bytes_max).max(1);
        let Ok(permit) = Arc::clone(&self.queue_bytes)
            .try_acquire_many_owned(u32::try_from(bytes).unwrap_or(u32::MAX))
        else {
            return Err(op);
        };
        tx.try_send(Queued { op, permit }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(q) | mpsc::error::TrySendError::Closed(q) => q.op,
        })
    }

    /// Sends without waiting (used from sync code); dropped if full.
    pub(crate) fn try_send(&self, op: writer::Op) -> bool {
        let Some(tx) = &self.tx else { return false };
        let bytes = op.queue_bytes().min(self.queue_bytes_max).max(1);
        let sent = Arc::clone(&self.queue_bytes)
            .try_acquire_many_owned(u32::try_from(bytes).unwrap_or(u32::MAX))
            .ok()
            .map(|permit| tx.try_send(Queued { op, permit }).is_ok());
        if sent != Some(true) {
            warn!("Writer queue full; the corrupt record is quarantined when next taken.");
        }
        sent == Some(true)
    }

    /// Whether the writer is gone.
    pub(crate) fn is_closed(&self) -> bool {
        self.tx.as_ref().is_none_or(|tx| tx.is_closed())
    }

    /// Operations and bytes queued for the writer now.
    pub(crate) fn queue_depth(&self) -> (u64, u64) {
        let ops = self
            .tx
            .as_ref()
            .map_or(0, |tx| tx.max_capacity() - tx.capacity());
        let bytes = self
            .queue_bytes_max
            .saturating_sub(self.queue_bytes.available_permits());
        (ops as u64, bytes as u64)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Relaxed);
        if let Some(check) = self.check.take() {
            join_bounded(check, "Index check");
        }
        if let Some(checkpoints) = self.checkpoints.take() {
            checkpoints.thread().unpark();
            join_bounded(checkpoints, "sled checkpoint");
        }
        self.tx = None;
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                warn!("Writer thread panicked.");
            }
        }
        let dir = self.shared.dir.clone();
        // A sled that failed or panicked is let go on a thread of its own:
        // its drop can hang (see `sled_files::let_go`). A healthy one is
        // closed here, not with `shared`: a check pass abandoned stuck in
        // an old sled (see `check_watch`) may still hold `shared`, and the
        // sled in place must close its files all the same.
        if let Some(sled) = self.shared.set_sled(None) {
            if self.shared.sled_failure().is_some() {
                sled_files::let_go(sled);
            } else {
                drop(sled);
            }
        }
        // SAFETY: `shared` is not used after this point; `drop` runs once.
        unsafe { ManuallyDrop::drop(&mut self.shared) };
        wait_for_sled_release(&dir, SLED_RELEASE_WAIT);
        heap::trim();
    }
}

/// Joins `thread`, waiting at most [`THREAD_STOP_WAIT`]; one still running
/// then is left behind (logged).
fn join_bounded(thread: JoinHandle<()>, what: &str) {
    let deadline = std::time::Instant::now() + THREAD_STOP_WAIT;
    while !thread.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    if !thread.is_finished() {
        warn!(
            thread = what,
            "A storage thread did not stop in time at close; it is left behind."
        );
    } else if thread.join().is_err() {
        warn!(thread = what, "A storage thread panicked.");
    }
}

/// Waits (bounded) until sled's background threads closed `<dir>/db`, so
/// that a reopen right after a drop never finds the directory locked.
pub(crate) fn wait_for_sled_release(dir: &Path, max: std::time::Duration) {
    let Ok(file) = File::open(dir.join(SLED_DIR).join("db")) else {
        return;
    };
    let deadline = std::time::Instant::now() + max;
    loop {
        // SAFETY: flock on a file descriptor we own, valid for this call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            // SAFETY: as above.
            unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
            return;
        }
        if std::time::Instant::now() >= deadline {
            warn!(dir = %dir.display(), "sled still holds its lock after close.");
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// An open storage directory. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Storage {
    /// Shared with every [`Outbox`] and [`StateTree`] handle.
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("dir", &self.inner.shared.dir)
            .finish()
    }
}

impl Storage {
    /// Opens (or creates) the storage in `dir` and starts the writer
    /// thread.
    ///
    /// The log is the truth: open loads the live map saved at the last
    /// clean close and scans the frames written after it (or the whole log
    /// without one). sled is trusted as it is only after a clean close
    /// whose marker names where the log ends; otherwise it is checked
    /// against the log and repaired by a background thread, and every read
    /// comes from the log until that check ends ([`StorageHealth`] says
    /// whether it runs and how long it took). A sled that fails to open,
    /// or fails or panics before it is checked, is moved aside to
    /// `db.quarantined-<unix seconds>` (never deleted) and rebuilt from the
    /// log. Then the delivery index is rebuilt from the small `pending`
    /// tree (or, when that is missing or does not match, from every
    /// record, moving undecodable ones to the dead letters). A directory
    /// of the previous version (sled plus `edgecc.wal`) is moved onto a
    /// log first.
    ///
    /// Returns [`StorageError::Locked`] when another process holds `dir`.
    pub fn open(dir: impl AsRef<Path>, config: StorageConfig) -> Result<Storage, StorageError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir)
            .map_err(|e| StorageError::io(format!("create {}", dir.display()), e))?;
        let lock = lock_dir(&dir)?;
        if dir.join(RESTORE_MARKER).exists() {
            return Err(StorageError::RestoreUnfinished { path: dir });
        }
        let seg_bytes = config
            .wal_bytes
            .clamp(WAL_BYTES_MIN, u64::from(u32::MAX) / 2);
        let stall = Arc::new(SyncStall::default());
        // Taken (and the directory synced) before anything is written, so
        // that a stop from here on is unclean.
        let clean = clean::take(&dir)?;
        let mut health = StorageHealth::default();
        let (db, mut log, live, trusted) = if seglog::SegLog::exists(&dir) {
            rebuild::remove_leftovers(&dir)?;
            let (log, live, _) = rebuild::scan(&dir, seg_bytes, Arc::clone(&stall))?;
            let entries = live.entries();
            if clean != Some(log.position()) && entries >= config.rebuild_entries {
                let db = sled_files::replace_with_fresh(&dir, &config)?;
                warn!(dir = %dir.display(), entries, "Storage was not closed cleanly; sled was set aside and a fresh one is filled from the log in the background, reads come from the log meanwhile.");
                health.sled_rebuilt = true;
                (db, log, live, false)
            } else {
                let (db, moved) = sled_files::open_or_quarantine(&dir, &config)?;
                let trusted = clean == Some(log.position()) && moved.is_none();
                if !trusted && moved.is_none() {
                    warn!(dir = %dir.display(), "Storage was not closed cleanly; sled is checked against the log in the background, reads come from the log meanwhile.");
                }
                (db, log, live, trusted)
            }
        } else {
            // Fresh, or the previous version's layout: sled (with the old
            // write-ahead log) is the only copy, so it must open; the new
            // log is made from it, so it matches.
            sled_files::adopt_top_level(&dir)?;
            let db = sled_files::open_sled(&dir, &config)?;
            rebuild::migrate(&dir, &db, seg_bytes)?;
            let (log, live, _) = rebuild::scan(&dir, seg_bytes, Arc::clone(&stall))?;
            (db, log, live, true)
        };
        let (sled, moved) = sled_files::trees_or_quarantine(&dir, &config, db)?;
        let trusted = trusted && moved.is_none();
        health.quarantined = health::quarantined_dirs(&dir);
        health.index_checking = !trusted;
        let shared = Arc::new(Shared {
            sled: RwLock::new(Some(Arc::new(sled))),
            live: Mutex::new(live),
            reader: LogReader::new(&dir),
            // Not yet: recovery reads the log even when sled is trusted
            // (see below), then this is set to `trusted`.
            checked: AtomicBool::new(false),
            sled_failed: Mutex::new(None),
            panic_next_sled_read: AtomicBool::new(false),
            apply_lock: apply_lock::ApplyLock::default(),
            check_hold: (Mutex::new(config.hold_index_check), Condvar::new()),
            stopping: AtomicBool::new(false),
            index: Mutex::new(Index::default()),
            dir: dir.clone(),
            health: Mutex::new(StorageHealth::default()),
            applied_groups: AtomicU64::new(0),
            groups: (AtomicU64::new(0), AtomicU64::new(0)),
            stall_next_check_read: AtomicU64::new(0),
            stall_next_check_locked_read: AtomicU64::new(0),
        });
        // Recovery reads the log, the truth, even when sled is trusted: the
        // delivery index decides what is sent in which order, and a record
        // a trusted sled lacked was left out of it (and out of a rebuilt
        // pending tree) while its interaction's next record went ahead, to
        // come back from the log after a later restart, out of order. Its
        // repairs reach sled when sled is trusted.
        let next_seq = {
            let mut out = OpenLog::new(&mut log, &shared, trusted);
            let next_seq = recovery::recover(&shared, &mut out)?;
            out.flush()?;
            next_seq
        };
        shared.checked.store(trusted, Ordering::Release);
        health.log_segments = log.segments().len() as u64;
        health.log_bytes = log.bytes();
        *shared.lock_health() = health.clone();
        let (tx, rx) = mpsc::channel(WRITER_QUEUE_MAX);
        let queue_bytes_max = config.queue_bytes.clamp(1, Semaphore::MAX_PERMITS);
        // Recovery freed its buffers: give them back before running.
        heap::trim();
        let writer = Writer::new(Arc::clone(&shared), rx, next_seq, log);
        let handle = std::thread::Builder::new()
            .name("edgecc-storage-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| StorageError::io("spawn writer thread", e))?;
        let check = if trusted {
            None
        } else {
            let (shared, config) = (Arc::clone(&shared), config.clone());
            Some(
                std::thread::Builder::new()
                    .name("edgecc-storage-check".into())
                    .spawn(move || check::run(&shared, &config))
                    .map_err(|e| StorageError::io("spawn index check thread", e))?,
            )
        };
        let checkpoints = match config.sled_checkpoint_ms {
            Some(ms) => {
                let shared = Arc::clone(&shared);
                let every = std::time::Duration::from_millis(ms.max(1));
                Some(
                    std::thread::Builder::new()
                        .name("edgecc-sled-checkpoint".into())
                        .spawn(move || sled_files::run_checkpoints(&shared, every))
                        .map_err(|e| StorageError::io("spawn sled checkpoint thread", e))?,
                )
            }
            None => None,
        };
        {
            let index = shared.lock_index();
            info!(
                dir = %dir.display(),
                depth = index.depth(),
                dead_letters = index.dead_count(),
                next_seq,
                sled_trusted = trusted,
                quarantined = health.quarantined.len(),
                "Storage opened."
            );
        }
        let inner = Inner {
            tx: Some(tx),
            queue_bytes: Arc::new(Semaphore::new(queue_bytes_max)),
            queue_bytes_max,
            stall,
            writer: Some(handle),
            check,
            checkpoints,
            shared: ManuallyDrop::new(shared),
            _lock: lock,
        };
        Ok(Storage {
            inner: Arc::new(inner),
        })
    }

    /// The outbox handle (cheap; clone it freely).
    pub fn outbox(&self) -> Outbox {
        Outbox::new(Arc::clone(&self.inner))
    }

    /// A named persisted-state tree (e.g. `"mappings"`, `"agents"`).
    pub fn state(&self, name: &str) -> Result<StateTree, StorageError> {
        StateTree::open(Arc::clone(&self.inner), name)
    }

    /// The storage directory.
    pub fn dir(&self) -> &Path {
        &self.inner.shared.dir
    }

    /// What open found (quarantined sled directories), the background
    /// check of sled (running, or the time it took), and the log and
    /// writer queue now.
    pub fn health(&self) -> StorageHealth {
        let mut health = self.inner.shared.lock_health().clone();
        (health.writer_queue_ops, health.writer_queue_bytes) = self.inner.queue_depth();
        health
    }

    /// Group commits the writer made since open, and the operations they
    /// held (each answers one caller): their ratio is the mean group size.
    /// For the benchmark; never used by the daemon.
    #[doc(hidden)]
    pub fn group_commits(&self) -> (u64, u64) {
        let groups = &self.inner.shared.groups;
        (
            groups.0.load(Ordering::Relaxed),
            groups.1.load(Ordering::Relaxed),
        )
    }

    /// Test hook: lets a check held by `StorageConfig::hold_index_check`
    /// start. Never used by the daemon.
    #[doc(hidden)]
    pub fn release_index_check(&self) {
        let (lock, cvar) = &self.inner.shared.check_hold;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = false;
        cvar.notify_all();
    }

    /// Test hook: the next read of a trusted sled panics inside its call
    /// (sled 0.34.7 panics so on some pages a power cut damaged, e.g.
    /// "tried to serialize Uninitialized"). Never used by the daemon.
    #[doc(hidden)]
    pub fn inject_sled_read_panic(&self) {
        self.inner
            .shared
            .panic_next_sled_read
            .store(true, Ordering::Release);
    }

    /// Test hook: the background check's next read of sled blocks for
    /// `ms` milliseconds before it runs, as sled 0.34.7 spinning on a
    /// damaged tree does (it retries a lookup up to a million times). Set
    /// it before releasing a held check. Never used by the daemon.
    #[doc(hidden)]
    pub fn inject_check_read_stall(&self, ms: u64) {
        self.inner
            .shared
            .stall_next_check_read
            .store(ms, Ordering::Release);
    }

    /// Test hook: the background check's next batch blocks for `ms`
    /// milliseconds while it holds the apply lock, as sled spinning in the
    /// page read again under that lock would. Set it before releasing a
    /// held check. Never used by the daemon.
    #[doc(hidden)]
    pub fn inject_check_locked_read_stall(&self, ms: u64) {
        self.inner
            .shared
            .stall_next_check_locked_read
            .store(ms, Ordering::Release);
    }

    /// Test hook: while sled is unchecked, marks it failed as a group it
    /// refused would (the background check then moves it aside and
    /// rebuilds it); does nothing once sled is checked. Never used by the
    /// daemon.
    #[doc(hidden)]
    pub fn inject_sled_failure(&self, why: &str) {
        if !self.inner.shared.is_checked() {
            self.inner.shared.fail_sled(why.to_owned());
        }
    }

    /// Test hook: the next `count` log syncs each stall `ms` milliseconds
    /// before they run, as a disk that stops answering would. For tests
    /// and benchmarks of a stalled disk; never used by the daemon.
    #[doc(hidden)]
    pub fn inject_sync_stall(&self, ms: u64, count: u64) {
        use std::sync::atomic::Ordering;
        self.inner.stall.ms.store(ms, Ordering::Relaxed);
        self.inner.stall.count.store(count, Ordering::Relaxed);
    }
}

/// Takes an exclusive, non-blocking `flock` on `<dir>/edgecc.lock`.
fn lock_dir(dir: &Path) -> Result<File, StorageError> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| StorageError::io(format!("open {}", path.display()), e))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(LOCK_WAIT_MS);
    loop {
        // SAFETY: flock on a file descriptor we own, valid for this call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(file);
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(StorageError::io(format!("lock {}", path.display()), err));
        }
        if std::time::Instant::now() >= deadline {
            return Err(StorageError::Locked {
                path: dir.to_path_buf(),
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
