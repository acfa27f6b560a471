//! edgecc-storage: the durable CRM outbox, its dead letters, and a small
//! persisted key-value facility, all on one sled 0.34.7 database with one
//! group-commit writer.
//!
//! A change is acknowledged only once it would survive a power cut: the
//! writer appends each group to its own preallocated write-ahead log and
//! `fdatasync`s it before sled sees the group; checkpoints flush sled and
//! `fdatasync` its files themselves, because sled's own flush does not
//! (spacejam/sled#1452).
//!
//! # Layout
//!
//! - `lib.rs` — [`Storage`] (open, lock, index recovery) and
//!   [`StorageConfig`] (cache size, flush interval, segment size: every sled
//!   option passed explicitly).
//! - [`outbox`] — the design note (invariants, key layout, record format,
//!   durability contract, delivery and holding rules) and [`Outbox`], the
//!   handle the daemon appends to and the sync worker drains.
//! - `heap` — hands freed heap back to the kernel (after open, on close,
//!   and from the writer at most once a second).
//! - `index` — the in-memory delivery index (ready, in flight, backoff,
//!   held), rebuilt from sled on open.
//! - `writer` — the group-commit writer thread and the `Syncer` that makes
//!   sled's writes durable at checkpoints.
//! - [`wal`] — the write-ahead log each group is made durable in, and its
//!   replay on open.
//! - [`record`] — [`NewRecord`], [`Record`], [`RecordKind`], [`DeadLetter`]
//!   and their versioned, checksummed encoding; size limits.
//! - [`state`] — [`StateTree`], durable put/remove on the same writer.
//! - [`error`] — [`StorageError`], [`AppendError`] (hands records back).
//! - [`backup`] — point-in-time backups taken by the writer thread, their
//!   checksummed format, [`backup::verify`] and [`backup::restore`].

pub mod backup;
pub mod error;
mod heap;
mod index;
pub mod outbox;
pub mod record;
pub mod state;
pub mod wal;
mod writer;

use std::fs::File;
use std::mem::ManuallyDrop;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use tokio::sync::mpsc;
use tracing::{info, warn};

pub use backup::{BackupSummary, RestoreSummary};
pub use error::{AppendError, AppendFailure, StorageError};
pub use outbox::{InteractionRecords, Outbox, OutboxStats, IN_FLIGHT_MAX};
pub use record::{
    DeadLetter, DecodeError, NewRecord, Record, RecordKind, BODY_BYTES_MAX, ID_BYTES_MAX,
    REASON_BYTES_MAX,
};
pub use state::StateTree;
pub use wal::{WAL_BYTES_DEFAULT, WAL_BYTES_MIN};
pub use writer::{COMMIT_OPS_MAX, WRITER_QUEUE_MAX};

use index::{key_hash, Index};
use record::{
    chunk_of, chunk_seq, chunk_slot, decode_chunk, decode_dead_letter, decode_record, encode_chunk,
    encode_dead_letter, key_seq, seq_key, Chunk, PendingEntry,
};
use wal::Wal;
use writer::{Op, Syncer, Writer, META_NEXT_SEQ};

/// Default sled page-cache size: 32 MiB. sled's own default is 1 GiB, far
/// too much for an edge box; the outbox is read mostly sequentially, so a
/// small cache costs little.
pub const CACHE_BYTES_DEFAULT: u64 = 32 * 1024 * 1024;

/// Default interval of sled's background thread (segment cleaning, and an
/// extra fsync), in ms. Durability never depends on it: the writer syncs
/// every group itself.
pub const FLUSH_EVERY_MS_DEFAULT: u64 = 500;

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
/// `<dir>/db`, in ms. They finish within milliseconds; the bound only keeps
/// a wedged disk from hanging a shutdown.
const SLED_RELEASE_WAIT_MS: u64 = 30_000;

/// Longest wait for our own `edgecc.lock` before answering `Locked`, in
/// ms. A handle closed a moment ago can still hold it: a process forked
/// by this one (a child being spawned) keeps a copy of the descriptor, and
/// so the lock, until it execs. A running daemon holds it for good, so the
/// wait only delays that answer by this much.
const LOCK_WAIT_MS: u64 = 2_000;

/// Longest wait on open for sled's lock when our own lock is free (a
/// closing handle's background thread still finishing), in ms.
const SLED_REOPEN_WAIT_MS: u64 = 30_000;

/// Tree names.
const TREE_OUTBOX: &str = "outbox";
const TREE_DEAD: &str = "dead";
const TREE_META: &str = "meta";
const TREE_PENDING: &str = "pending";

/// The meta-tree key set (to `[1]`) once the `pending` tree indexes every
/// outbox record; absent in directories written before it existed.
const META_PENDING_READY: &[u8] = b"pending_ready";

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
    /// Size of the write-ahead log file in bytes (at least
    /// [`WAL_BYTES_MIN`]); a larger one checkpoints less often.
    pub wal_bytes: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            cache_bytes: CACHE_BYTES_DEFAULT,
            flush_every_ms: Some(FLUSH_EVERY_MS_DEFAULT),
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            wal_bytes: WAL_BYTES_DEFAULT,
        }
    }
}

/// Trees and index shared by the handles and the writer thread.
pub(crate) struct Shared {
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
    /// The delivery index; the writer changes it after each durable group.
    pub(crate) index: Mutex<Index>,
    /// The storage directory, for `bytes on disk`.
    pub(crate) dir: PathBuf,
}

impl Shared {
    /// Locks the index. A poisoned lock (a panic elsewhere) is taken over:
    /// the index is rebuilt on the next open anyway.
    pub(crate) fn lock_index(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What every handle holds; dropping the last one stops the writer (after
/// it committed what it had) and releases the directory lock.
pub(crate) struct Inner {
    /// Sends operations to the writer; `None` only during drop.
    tx: Option<mpsc::Sender<Op>>,
    /// The writer thread, joined on drop so a reopen finds the lock free.
    writer: Option<JoinHandle<()>>,
    /// Trees and index. Dropped by hand in `drop`, before waiting for sled
    /// to let go of its files.
    pub(crate) shared: ManuallyDrop<Arc<Shared>>,
    /// Our `flock` on `<dir>/edgecc.lock`; released when dropped (last).
    _lock: File,
}

impl Inner {
    /// Sends an operation to the writer.
    pub(crate) async fn send(&self, op: Op) -> Result<(), StorageError> {
        match &self.tx {
            Some(tx) => tx.send(op).await.map_err(|_| StorageError::Closed),
            None => Err(StorageError::Closed),
        }
    }

    /// Sends without waiting (used from sync code); dropped if full.
    pub(crate) fn try_send(&self, op: Op) {
        if let Some(tx) = &self.tx {
            if tx.try_send(op).is_err() {
                warn!("Writer queue full; the corrupt record is quarantined when next taken (after a reopen).");
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                warn!("Writer thread panicked.");
            }
        }
        let dir = self.shared.dir.clone();
        // SAFETY: `shared` is not used after this point; `drop` runs once.
        unsafe { ManuallyDrop::drop(&mut self.shared) };
        wait_for_sled_release(&dir);
        heap::trim();
    }
}

/// Waits (bounded) until sled's background threads closed `<dir>/db`, so
/// that a reopen right after a drop never finds the directory locked.
fn wait_for_sled_release(dir: &Path) {
    let Ok(file) = File::open(dir.join("db")) else {
        return;
    };
    let deadline =
        std::time::Instant::now() + std::time::Duration::from_millis(SLED_RELEASE_WAIT_MS);
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
    /// Opens (or creates) the storage in `dir`, rebuilds the delivery index
    /// from the small `pending` tree (or, when that is missing or does not
    /// match, from every record, moving undecodable ones to the dead
    /// letters) and starts the writer thread. Records are CRC-checked when
    /// taken.
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
        // We hold `edgecc.lock`, so no other edgecc has this directory. If
        // sled's own lock is still taken, it is a background thread of a
        // handle of ours that just closed (slow under load): wait it out,
        // bounded.
        let deadline =
            std::time::Instant::now() + std::time::Duration::from_millis(SLED_REOPEN_WAIT_MS);
        let db = loop {
            let opened = sled_config(&dir, &config).open();
            match opened {
                Ok(db) => break db,
                Err(sled::Error::Io(ref io))
                    if io.to_string().contains("could not acquire lock") =>
                {
                    if std::time::Instant::now() >= deadline {
                        return Err(StorageError::Locked { path: dir.clone() });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(other) => return Err(StorageError::Sled(other)),
            }
        };
        let mut syncer = Syncer::open(&dir)?;
        // Replay what the log holds beyond sled's last checkpoint, make it
        // durable in sled, then start the log over.
        let mut trees = std::collections::HashMap::new();
        let mut wal = Wal::open(&dir, config.wal_bytes, |_, payload| {
            writer::replay_frame(&db, payload, &mut trees)
        })?;
        syncer
            .commit(&db)
            .map_err(|e| StorageError::io("sync after replay", e))?;
        wal.checkpoint(&dir)?;
        let shared = Arc::new(Shared {
            outbox: db.open_tree(TREE_OUTBOX)?,
            pending: db.open_tree(TREE_PENDING)?,
            dead: db.open_tree(TREE_DEAD)?,
            meta: db.open_tree(TREE_META)?,
            db,
            index: Mutex::new(Index::default()),
            dir: dir.clone(),
        });
        let next_seq = recover(&shared, &mut syncer)?;
        let (tx, rx) = mpsc::channel(WRITER_QUEUE_MAX);
        syncer
            .commit(&shared.db)
            .map_err(|e| StorageError::io("sync after recovery", e))?;
        // Recovery freed its scan buffers: give them back before running.
        heap::trim();
        let writer = Writer::new(Arc::clone(&shared), rx, next_seq, syncer, wal);
        let handle = std::thread::Builder::new()
            .name("edgecc-storage-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| StorageError::io("spawn writer thread", e))?;
        {
            let index = shared.lock_index();
            info!(
                dir = %dir.display(),
                depth = index.depth(),
                dead_letters = index.dead_count(),
                next_seq,
                "Storage opened."
            );
        }
        let inner = Inner {
            tx: Some(tx),
            writer: Some(handle),
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
}

/// The sled options of a storage directory (also used by restore).
fn sled_config(dir: &Path, config: &StorageConfig) -> sled::Config {
    sled::Config::new()
        .path(dir)
        .cache_capacity(config.cache_bytes)
        .flush_every_ms(config.flush_every_ms)
        .segment_size(config.segment_bytes)
        .mode(sled::Mode::LowSpace)
        .use_compression(false)
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

/// Rebuilds the index from sled (from the small `pending` entries, not
/// the records), finishes interrupted moves, and rebuilds the `pending`
/// tree from the records when it is missing or does not match the outbox.
/// Returns the next sequence to hand out.
fn recover(shared: &Shared, syncer: &mut Syncer) -> Result<u64, StorageError> {
    let mut index = shared.lock_index();
    let mut max_seq: Option<u64> = None;
    let mut bump = |seq: u64| max_seq = Some(max_seq.map_or(seq, |m: u64| m.max(seq)));

    // Dead letters. A sequence in both trees is an interrupted move
    // (dead-letter or re-queue) of a version that did not commit a group
    // atomically: the outbox copy wins, nothing is lost.
    let mut dead_keys = Vec::new();
    let mut dead_unheld = 0u64;
    for item in shared.dead.iter() {
        let (k, raw) = item?;
        let Some(seq) = key_seq(&k) else {
            warn!(
                key_len = k.len(),
                "Ignoring a dead-letter key of the wrong length."
            );
            continue;
        };
        bump(seq);
        if shared.outbox.contains_key(&k)? {
            shared.dead.remove(&k)?;
            continue;
        }
        match decode_dead_letter(seq, &raw).ok().and_then(|d| d.record) {
            Some(record) => dead_keys.push((seq, key_hash(&record.interaction_key))),
            None => dead_unheld += 1,
        }
    }
    if let Some((k, _)) = shared.outbox.last()? {
        if let Some(seq) = key_seq(&k) {
            bump(seq);
        }
    }
    // Pending records: from the pending tree when it is usable, else from
    // the records themselves (and the tree is rebuilt).
    let mut loaded = false;
    if pending_tree_usable(shared)? {
        loaded = load_pending(shared, &mut index)?;
        if !loaded {
            *index = index::Index::default();
        }
    }
    if !loaded {
        rebuild_pending(shared, &mut index, syncer)?;
    }
    for (seq, key) in dead_keys {
        index.add_dead(seq, key);
    }
    for _ in 0..dead_unheld {
        index.add_dead_unheld();
    }
    let stored_next = match shared.meta.get(META_NEXT_SEQ)? {
        Some(v) => match <[u8; 8]>::try_from(v.as_ref()) {
            Ok(b) => u64::from_be_bytes(b),
            Err(_) => {
                warn!(len = v.len(), "Ignoring a malformed next-sequence value.");
                0
            }
        },
        None => 0,
    };
    // Sequences start at 1 so 0 can never name a record.
    Ok(stored_next.max(max_seq.map_or(1, |m| m + 1)).max(1))
}

/// Whether the `pending` tree was completed and still matches the outbox at
/// both ends (a cheap check against a directory an older build wrote to
/// after this one).
fn pending_tree_usable(shared: &Shared) -> Result<bool, StorageError> {
    if shared.meta.get(META_PENDING_READY)?.as_deref() != Some(&[1u8][..]) {
        return Ok(false);
    }
    let outbox_end = |item: Option<(sled::IVec, sled::IVec)>| item.and_then(|(k, _)| key_seq(&k));
    let chunk_end = |item: Option<(sled::IVec, sled::IVec)>, first: bool| {
        let (k, raw) = item?;
        let chunk = decode_chunk(&raw).ok()?;
        let slot = if first {
            chunk.first_key_value()
        } else {
            chunk.last_key_value()
        };
        Some(chunk_seq(key_seq(&k)?, *slot?.0))
    };
    let usable = outbox_end(shared.outbox.first()?) == chunk_end(shared.pending.first()?, true)
        && outbox_end(shared.outbox.last()?) == chunk_end(shared.pending.last()?, false);
    if !usable {
        warn!("The pending index does not match the outbox; rebuilding it.");
    }
    Ok(usable)
}

/// Fills the index from the pending tree. Returns `false` (index partly
/// filled) when a chunk is undecodable: the caller rebuilds from records.
fn load_pending(shared: &Shared, index: &mut index::Index) -> Result<bool, StorageError> {
    for item in shared.pending.iter() {
        let (k, raw) = item?;
        let chunk = key_seq(&k).ok_or(()).and_then(|chunk_no| {
            decode_chunk(&raw)
                .map(|c| (chunk_no, c))
                .map_err(|e| warn!(chunk_no, error = %e, "Undecodable pending chunk; rebuilding."))
        });
        match chunk {
            Ok((chunk_no, chunk)) => {
                for (slot, e) in chunk {
                    index.load(chunk_seq(chunk_no, slot), e.key, e.not_before_ms);
                }
            }
            Err(()) => return Ok(false),
        }
    }
    index.finish_load();
    Ok(true)
}

/// Rebuilds the pending tree and the index from the records (first open of
/// an older directory, or a damaged pending tree), moving undecodable
/// records to the dead letters. The entries are made durable before the
/// tree is marked ready.
fn rebuild_pending(
    shared: &Shared,
    index: &mut index::Index,
    syncer: &mut Syncer,
) -> Result<(), StorageError> {
    let sync = |syncer: &mut Syncer| {
        syncer
            .commit(&shared.db)
            .map_err(|e| StorageError::io("sync the pending index", e))
    };
    if shared.meta.remove(META_PENDING_READY)?.is_some() {
        sync(syncer)?;
    }
    shared.pending.clear()?;
    let mut chunk: Option<(u64, Chunk)> = None;
    // Key by key, not `apply_batch`: see `Group::apply` in the writer.
    let put = |(chunk_no, c): (u64, Chunk)| {
        shared
            .pending
            .insert(chunk_no.to_be_bytes(), encode_chunk(&c))
            .map(drop)
    };
    let mut corrupt = Vec::new();
    for item in shared.outbox.iter() {
        let (k, raw) = item?;
        let Some(seq) = key_seq(&k) else {
            warn!(
                key_len = k.len(),
                "Ignoring an outbox key of the wrong length."
            );
            continue;
        };
        match decode_record(seq, &raw) {
            Ok(record) => {
                let entry = PendingEntry {
                    key: key_hash(&record.interaction_key),
                    not_before_ms: record.next_attempt_at_ms,
                };
                index.load(seq, entry.key, entry.not_before_ms);
                if chunk.as_ref().is_some_and(|(n, _)| *n != chunk_of(seq)) {
                    if let Some(full) = chunk.take() {
                        put(full)?;
                    }
                }
                chunk
                    .get_or_insert_with(|| (chunk_of(seq), Chunk::new()))
                    .1
                    .insert(chunk_slot(seq), entry);
            }
            Err(e) => corrupt.push((seq, raw, e)),
        }
    }
    if let Some(c) = chunk.take() {
        put(c)?;
    }
    index.finish_load();
    for (seq, raw, e) in corrupt {
        warn!(seq, error = %e, "Corrupt record moved to the dead letters.");
        let reason = format!("corrupt: {e}");
        shared
            .dead
            .insert(seq_key(seq), encode_dead_letter(seq, &reason, &raw)?)?;
        shared.outbox.remove(seq_key(seq))?;
        index.add_dead_unheld();
    }
    sync(syncer)?;
    shared.meta.insert(META_PENDING_READY, &[1u8])?;
    Ok(())
}
