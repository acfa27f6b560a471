//! The durable CRM outbox.
//!
//! # Invariants
//!
//! - A record is acknowledged to `append` only once it would survive a power
//!   cut: its group's frame in the log `<dir>/log/` has been `fdatasync`ed.
//!   Acks, retries, dead-letter moves, re-queues and state puts follow the
//!   same path: an `Ok` means durable.
//! - The log is the truth; sled is an index and cache of it. Nothing that
//!   was acknowledged depends on sled's files surviving a power cut.
//! - Sequences are handed out by the single writer, strictly increasing,
//!   consecutive within an `append_batch`, never reused (the next sequence is
//!   kept in the `meta` tree).
//! - Every stored value carries a schema-version byte and a CRC32 and is
//!   checked right after it is read. An undecodable record never panics and
//!   never blocks other interactions: it moves to the dead letters with the
//!   reason and its raw bytes (when `take_ready` reaches it: open reads only
//!   the small `pending` index, not the records); its own interaction's
//!   later records wait until that move is durable. Undecodable means the
//!   log's value: one that a trusted sled lacks or holds garbled is read
//!   from the log, and that sled is distrusted.
//! - Every pending record has exactly one entry in the `pending` tree, and
//!   every entry has its record: both are written in the same log frame
//!   (applied whole or not at all), so a crash never separates them.
//! - Nothing is ever dropped: records leave the outbox only by `ack`, or
//!   into the dead letters (`dead_letter`, `park_expired`, corruption).
//! - A record is in flight at most once at a time, and at most one record
//!   per interaction key is in flight.
//!
//! # On-disk layout
//!
//! ```text
//! <dir>/edgecc.lock      our flock: a second opener gets StorageError::Locked
//! <dir>/log/*.seg        the log: preallocated segments (see `seglog`),
//!                        StorageConfig::wal_bytes each (16 MiB)
//! <dir>/log/live.map     the live map as of the last clean close (see
//!                        `live_file`)
//! <dir>/edgecc.clean     clean marker: only between a clean close and the
//!                        next open (see `clean`)
//! <dir>/sled/conf, db, blobs/, snap.*   sled 0.34.7's files (index and cache)
//! <dir>/db.quarantined-<unix seconds>/   sled files moved aside (kept)
//! <dir>/sled.replaced-<unix seconds>/    an old sled set aside for a fresh
//!                        one (rule 6), removed once that one is synced
//!
//! tree "outbox":  key = seq as u64 big-endian (8 bytes)  -> record value
//! tree "pending": key = seq >> 5 as u64 big-endian       -> pending chunk
//! tree "dead":    key = seq as u64 big-endian (8 bytes)  -> dead-letter value
//! tree "meta":    "next_seq"                             -> u64 big-endian
//!                 "pending_ready"                        -> [1] once "pending"
//!                                                           indexes the outbox
//! tree "state/<name>": caller's key                      -> caller's bytes
//!
//! value    = version: u8 | crc32(payload): u32 LE | payload
//! record   payload (version 1, bincode 1.3.3 fixint LE):
//!            seq u64 | correlation_id str | interaction_key str | kind u32
//!            | body bytes | created_at_ms u64 | attempts u32
//!            | next_attempt_at_ms u64 | last_error Option<str>
//! dead-letter payload (version 1): seq u64 | reason str | raw bytes
//!            (raw = the record value exactly as it was stored)
//! pending chunk payload (version 1), one entry per pending seq of the
//!            chunk, by slot: slot u8 (seq & 31) | key_hash u64 LE
//!            | next_attempt_at_ms u64 LE
//! ```
//!
//! Every tree entry is also in the log, as the latest put of its key. The
//! `pending` tree is what open reads to rebuild the delivery index: 32
//! records per sled entry, ~17 bytes each, instead of every full record
//! (1M records: a few MB instead of ~800 MB, see BENCHMARKS.md). Open trusts it
//! when `pending_ready` is set and its first and last sequences match the
//! outbox's; otherwise (a damaged chunk, or records an older build
//! appended) it rebuilds it from the records, moving undecodable ones to
//! the dead letters, then sets `pending_ready`, all through the log.
//!
//! `RecordKind` is stored as its variant index: append variants, never
//! reorder them. `tests/fixtures/` keeps an outbox written by this version,
//! read back by a test.
//!
//! # Durability contract (the log's rules)
//!
//! 1. **Write-ahead, one sync.** One writer thread receives every change
//!    through a bounded channel and stages a whole group (up to
//!    [`crate::COMMIT_OPS_MAX`] operations) as blind writes: whole new
//!    values or removals, over `outbox`, `pending`, `dead`, `meta` and the
//!    state trees. It appends them as one CRC-framed frame to the head
//!    segment of the log and `fdatasync`s it (one device flush: segments
//!    are preallocated and zero-filled, so no size or allocation changes),
//!    notes them in the live map, applies them to sled (under the apply
//!    lock), then updates the in-memory index and answers every caller.
//!    Concurrent callers share the device flush (group commit); before
//!    a group the writer waits, at most half a commit's time (2 ms at
//!    most), for the callers its last group answered (`linger`).
//! 2. **The log keeps every live entry.** An entry (pending record, dead
//!    letter, pending chunk, meta value, state entry) is live while its
//!    latest op is a put; the live map (`live`) holds, in memory, where
//!    each live entry's latest put is (segment, and its value's offset and
//!    length in the segment file). It is exact at all times: the writer
//!    notes every frame before it answers anyone. Open loads it from
//!    `log/live.map` (written at each clean close, see `live_file`) and
//!    scans only the frames after the position that file names, or scans
//!    the whole log without it.
//! 3. **Segments are created ahead and never reused.** A new segment is
//!    written aside, zero-filled, its header written, synced, renamed, and
//!    the directory synced, before any frame goes into it (between groups,
//!    or when a frame does not fit).
//! 4. **Retirement.** Between groups the writer retires the oldest segment
//!    when at most half its put bytes are still live, or the whole log is
//!    at most a third live: it first appends, for every key whose latest
//!    put is in that segment, that put (and only it: an older put of the
//!    key copied too would be its latest in the log if a stop fell between
//!    the copy frames) to the head (blind rewrites of the same values),
//!    syncs, then
//!    deletes the segment and syncs the directory. Only the oldest segment
//!    is ever deleted, and the directory is synced after each unlink before
//!    the next one, so a lost unlink cannot bring back a put whose
//!    tombstone was in a later, already deleted segment. A removal never
//!    needs copying: it matters only while an older segment holds a put of
//!    its key, and older segments go first.
//! 5. **sled is trusted only after a clean close.** On close, if sled was
//!    trusted (checked), the writer flushes sled, `fdatasync`s all its
//!    files and both directories, saves the live map, then writes
//!    `edgecc.clean` naming where the log ends (synced). Open takes the
//!    marker away first (synced) and trusts sled as it is only if the
//!    marker names exactly where the log ends.
//! 6. **Otherwise sled is checked against the log in the background**
//!    (`check`), and until that check ends **every read comes from the
//!    log** (`read`): the live map says which keys exist and where their
//!    values are, and the value is read from the segment file. Open
//!    returns as soon as the log is scanned, sled is opened and the
//!    delivery index is built (from the `pending` chunks, read from the
//!    log); appends, acks, retries, moves and state writes are taken as
//!    usual meanwhile (staging reads through `read` too). The check walks
//!    sled's entries and the live keys side by side in key order: an entry
//!    the log does not hold is removed, a live value sled lacks or holds
//!    differently is written. It runs in batches under the **apply lock**:
//!    the writer notes a group in the live map and applies it to sled under
//!    one hold of that lock, and each batch of the check takes its page of
//!    sled (a range read, as the outbox's lists are) as of a moment under
//!    it (read again under it if a group was applied since the read before
//!    it) and asks the live map under it, so the two are compared at the
//!    same group (any difference
//!    is sled's own) and a value the check writes is never older than a
//!    group applied after it: sled ends up holding exactly the log's live
//!    entries, then it is marked trusted (reads go to sled again). An old
//!    sled is trusted only after a pass that repaired nothing (a damaged
//!    sled can take a write and not show it, and can show a key to a range
//!    read and not to a lookup or the reverse: the power-cut test lost
//!    acknowledged records and brought acked ones back through a sled
//!    trusted after one repairing pass, and the 100-cut soak did through a
//!    check that read its page before the lock and took a lookup's answer
//!    under it for the writer's change); one that still differs after
//!    three passes is moved aside like a failed one. A fresh
//!    sled is trusted after its first pass. A sled that fails to open, or fails or panics while
//!    a group is applied or the check reads it (panics are caught), or
//!    on which a pass of the check compares no batch of keys within
//!    `StorageConfig::check_stall_ms` (10 s by default: sled 0.34.7 can
//!    spin for minutes in a read of a damaged tree; the stuck thread
//!    cannot be killed, so it is abandoned with the old sled, never
//!    joined, and its pass's token keeps anything it does late away from
//!    the new sled and the storage's state; see `check_watch`), is
//!    moved aside to `db.quarantined-<unix seconds>` (never deleted; the
//!    failed sled is let go on a thread of its own, since its drop can
//!    hang for good after a panic), a
//!    fresh one is opened and filled by the check, and it is reported
//!    (error-level log line, [`crate::StorageHealth::quarantined`]);
//!    while sled is marked failed the writer does not apply groups to it
//!    (the fresh sled gets them from the check). If the fresh one fails
//!    too, sled stays unused and reads keep coming from the log
//!    ([`crate::StorageHealth::index_check_error`]). A close before the
//!    check ended writes no clean marker: the next open checks again.
//!    A trusted sled that panics while read (any caller's thread), that
//!    lacks or garbles a pending record the log holds (`take_ready`), or
//!    that panics while a group is applied is distrusted (an error of a trusted sled,
//!    such as a full disk, still stops the storage): that read
//!    and every later one come from the log, the
//!    writer stops applying groups to it, the health says why
//!    (`index_check_error`) and the close writes no clean marker, so the
//!    next open checks it.
//!    Backups copy sled's trees, so they wait for the check.
//!    **A large backlog is rebuilt, not walked**: with at least
//!    `StorageConfig::rebuild_entries` live entries (100,000 by default)
//!    open does not open the old sled at all; it renames its directory to
//!    `sled.replaced-<unix seconds>` (storage directory synced), opens a
//!    fresh, empty sled (cache at most 8 MiB until the next open), and the
//!    same check fills it, every live entry written
//!    ([`crate::StorageHealth::sled_rebuilt`]). Walking an old sled of
//!    1,000,000 records pages all of it in, and sled 0.34.7 then holds far
//!    more than its cache (BENCHMARKS.md). The old directory is removed
//!    only once the check ended and the fresh sled is synced (files and
//!    directories); a stop before leaves both, and the next open, unclean,
//!    starts again from the log.
//! 7. **sled's checkpoints.** Every `StorageConfig::sled_checkpoint_ms`
//!    (5 s by default) a thread flushes sled, `fdatasync`s its files (each
//!    blob file once: sled never rewrites one) and `fsync`s sled's
//!    directories and the storage directory. sled itself `fsync`s its
//!    data file every `flush_every_ms` but never a directory, so without
//!    this a power cut before a clean close left none of sled's file names
//!    (sled came back empty and was refilled whole), or a data file naming
//!    blob files whose names were lost. With it, a cut leaves sled as of
//!    around its last checkpoint: present, more or less damaged, checked
//!    and repaired by rule 6. Nothing acknowledged depends on it; a failed
//!    checkpoint is logged and retried at the next one.
//! 8. **A directory of the previous version** (sled plus `edgecc.wal`, no
//!    `log/`) is moved onto a log at its first open: the old write-ahead log
//!    is replayed into sled, every tree is copied into a new log built
//!    aside and renamed into place, then `edgecc.wal` is removed.
//!
//! So after any cut at any instant, open yields exactly the state after the
//! last acknowledged group, whatever sled's files hold: sled's relocation
//! and reuse of its segments (which it counts as stable after
//! `sync_file_range`, not a device flush) can damage sled, never the truth,
//! and nothing is read from sled before it was checked.
//! `tests/power_cut.rs` and the model test open sled's files from an
//! earlier close with today's log; the power-cut file system test drops
//! every unsynced page of every file, with sled's checkpoints every 40 ms
//! so that its cuts meet sled's files present and damaged.
//!
//! Known limits. The live map is saved only at a clean close, so an open
//! after an unclean stop scans every frame written since the last clean
//! close (the whole log when there was none): with a large backlog written
//! since, that scan is most of the open time (BENCHMARKS.md has the
//! times). Frames before the saved position are not read again at open
//! (their CRCs were checked when first scanned). While the check runs,
//! reads are a `pread` of the segment file each (page cache), and the
//! check itself competes with the writer for the apply lock in short
//! batches. sled's own files are synced at its checkpoints and at a clean
//! close, so after any other stop sled is repaired from around its last
//! checkpoint (or, with a large backlog, rebuilt whole: that takes longer
//! than a walk, 10-40 s for 1,000,000 records here, and room for a second
//! sled until the old one is removed).
//!
//! If the log write or sync fails (I/O error), nothing reached sled: every
//! caller of the group gets an error; `append` hands its records back, and
//! the next group overwrites the frame. After a failed sync the frame is
//! first unmade (its header zeroed and synced), so it cannot come back.
//! A full disk shows up when a new segment is created (a frame into a
//! preallocated segment never needs space), or when sled writes.
//!
//! Two failures stop the storage instead: it refuses every later change,
//! the callers get an error, and the close writes no clean marker, so the
//! next open checks sled against the log. They are: sled refusing a logged
//! group (it failed earlier, e.g. disk full; the frame is durable and the
//! repair applies it), and a frame that could not be unmade, which may
//! then come back at the next open (at-least-once; the correlation id
//! deduplicates at the CRM). What was acknowledged earlier is never
//! affected.
//!
//! `take_ready` is not persisted: after a crash, records that were in
//! flight are simply pending again (at-least-once delivery).
//!
//! `tests/crash.rs` checks this with SIGKILLs (40 a run, half of them right
//! after the child sent an ack). It once failed about 1 run in 6 under load
//! ("record N lost"): not a storage bug, but the test's parser dropping the
//! child's first stdout line, which libtest glues to its `test ... ` banner;
//! when that line was the `ACKING` of a record whose ack became durable
//! just before the kill, the record was legitimately gone. Events are now
//! marked and found anywhere in a line (regression test in crash.rs).
//!
//! # Space
//!
//! The log takes about the live data plus up to two segments (the head,
//! and one created ahead), more while retirement lags behind a burst, and
//! at most about three times the live data (rule 4). sled 0.34.7 never
//! shrinks its log file, but in `Mode::LowSpace` its background thread
//! (`flush_every_ms`) cleans mostly-empty segments and reuses them.
//! Measured (`tests/space.rs`): 12 cycles of 1,500 records filled and
//! drained keep sled's files bounded and the log within 4 segments. Keep
//! `flush_every_ms` set: without it sled never cleans its segments.
//!
//! # Delivery and holding rules
//!
//! Records of one interaction key are delivered strictly in sequence order.
//! A key's *head* is its lowest pending sequence. `take_ready` hands out
//! only heads that are:
//!
//! - not in flight (at most one record per key in flight),
//! - not waiting for their retry time (`retry(seq, error, not_before_ms)`
//!   keeps the record at the head of its key until then), and
//! - not *held*: a key with a dead letter whose sequence is below the head
//!   holds all its later records. A dead `interaction.create` therefore
//!   holds that interaction's later updates, even ones appended after it
//!   died, until it is re-queued (`requeue`, `requeue_all`), which puts it
//!   back at its original sequence, ahead of them. Records of other keys flow
//!   on. `park_expired` may park a non-head record; the same rule then
//!   holds back whatever comes after it.
//! - A corrupt record holds its key's later records only until its move
//!   to the dead letters is durable; then it holds nothing (it cannot be
//!   re-queued).
//!
//! Fairness (after Postfix): `take_ready` alternates between the oldest and
//! the newest ready head, so after a long outage today's calls reach the
//! CRM at once while yesterday's backlog catches up.

use std::sync::Arc;

use tokio::sync::oneshot;
use tracing::warn;

use crate::error::{AppendError, AppendFailure, StorageError};
use crate::record::{
    decode_dead_letter, decode_record, key_seq, seq_key, DeadLetter, NewRecord, Record,
    BODY_BYTES_MAX, ID_BYTES_MAX,
};
use crate::writer::Op;
use crate::{Inner, BATCH_RECORDS_MAX};

/// Most records in flight at once, whatever `take_ready` is asked for: the
/// sync worker's concurrency is bounded by the CRM anyway, and the in-flight
/// table stays small.
pub const IN_FLIGHT_MAX: usize = 4096;

/// Delay before a record whose read failed is offered again, in ms.
pub const READ_RETRY_MS: u64 = 1_000;

/// Most records returned by one `list` or `dead_letters` call.
pub const LIST_MAX: usize = 10_000;

/// Outbox figures for the CLI, the admin API and `/metrics`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Pending records (including in flight and held).
    pub depth: u64,
    /// Age of the oldest pending record in ms (0 when empty).
    pub oldest_age_ms: u64,
    /// Records handed out and not settled yet.
    pub in_flight: u64,
    /// Pending records held behind a dead letter of their key.
    pub held: u64,
    /// Dead letters.
    pub dead_letters: u64,
    /// Bytes of the storage directory on disk (log segments, sled's files).
    pub bytes_on_disk: u64,
    /// Storage health: quarantined sled directories, the time open spent
    /// checking or rebuilding sled, log size, writer queue depth.
    pub health: crate::StorageHealth,
}

/// What the outbox holds of one interaction (see [`Outbox::interaction`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct InteractionRecords {
    /// Records not delivered yet (in flight included).
    pub pending: u64,
    /// Dead letters of the interaction (they hold its later records).
    pub dead: u64,
}

/// The outbox handle: `Clone + Send + Sync`, usable from any task.
#[derive(Clone)]
pub struct Outbox {
    /// The storage this outbox lives in.
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("dir", &self.inner.shared.dir)
            .finish()
    }
}

impl Outbox {
    pub(crate) fn new(inner: Arc<Inner>) -> Outbox {
        Outbox { inner }
    }

    /// Appends one record; returns its sequence once it is durable.
    pub async fn append(&self, record: NewRecord) -> Result<u64, AppendError> {
        let seqs = self.append_batch(vec![record]).await?;
        seqs.first().copied().ok_or_else(|| AppendError {
            failure: AppendFailure::Storage(StorageError::Closed),
            records: Vec::new(),
        })
    }

    /// Appends records with consecutive sequences; all become durable
    /// together (one log frame in one group commit) or none is acknowledged.
    pub async fn append_batch(&self, records: Vec<NewRecord>) -> Result<Vec<u64>, AppendError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        if let Err(failure) = validate(&records) {
            return Err(AppendError { failure, records });
        }
        let (tx, rx) = oneshot::channel();
        let op = Op::Append { records, reply: tx };
        if let Err(op) = self.inner.send_op(op).await {
            let records = match op {
                Op::Append { records, .. } => records,
                _ => Vec::new(),
            };
            return Err(AppendError {
                failure: StorageError::Closed.into(),
                records,
            });
        }
        match rx.await {
            Ok(result) => result,
            // The writer dropped the reply without answering: it panicked.
            // The records may or may not be durable; they are not handed
            // back, which is logged.
            Err(_) => {
                warn!("Writer dropped an append reply.");
                Err(AppendError {
                    failure: StorageError::Closed.into(),
                    records: Vec::new(),
                })
            }
        }
    }

    /// [`Outbox::append_batch`] for a caller that must not wait for room:
    /// when the writer queue is full (the disk is slow or stalled) it
    /// answers at once with [`AppendFailure::QueueFull`] and the records
    /// handed back, nothing queued. Once queued, it waits for durability
    /// like `append_batch` (its caller may bound that wait with a timeout:
    /// the records are then durable or not, as the log decides).
    pub async fn try_append_batch(&self, records: Vec<NewRecord>) -> Result<Vec<u64>, AppendError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        if let Err(failure) = validate(&records) {
            return Err(AppendError { failure, records });
        }
        let (tx, rx) = oneshot::channel();
        let op = Op::Append { records, reply: tx };
        if let Err(op) = self.inner.try_send_op(op) {
            let records = match op {
                Op::Append { records, .. } => records,
                _ => Vec::new(),
            };
            let (_, queued_bytes) = self.inner.queue_depth();
            let failure = if self.inner.is_closed() {
                StorageError::Closed.into()
            } else {
                AppendFailure::QueueFull {
                    queued_bytes,
                    max_bytes: self.inner.queue_bytes_max as u64,
                }
            };
            return Err(AppendError { failure, records });
        }
        rx.await.unwrap_or_else(|_| {
            Err(AppendError {
                failure: StorageError::Closed.into(),
                records: Vec::new(),
            })
        })
    }

    /// What is still here of one interaction, from the in-memory index (no
    /// scan, no disk read): the desktop's sync badge asks this per call.
    /// Keys are indexed by a 64-bit hash, so two interactions would only be
    /// confused on a hash collision.
    pub fn interaction(&self, interaction_key: &str) -> InteractionRecords {
        let (pending, dead) = self
            .inner
            .shared
            .lock_index()
            .key_counts(crate::index::key_hash(interaction_key));
        InteractionRecords { pending, dead }
    }

    /// Hands out up to `max` ready records (see the delivery rules above),
    /// marking them in flight. Not persisted: a crash makes them pending.
    pub fn take_ready(&self, max: usize, now_ms: u64) -> Vec<Record> {
        let shared = &self.inner.shared;
        let mut index = shared.lock_index();
        let mut out = Vec::with_capacity(max.min(IN_FLIGHT_MAX));
        // Records are decoded (CRC-checked) here, not at open. A record the
        // log no longer holds is forgotten, which may make its key's next
        // record ready, so pick again until `max` or nothing more is ready.
        loop {
            let picked = index.take(max - out.len(), now_ms, IN_FLIGHT_MAX);
            if picked.is_empty() {
                break;
            }
            let mut dropped = false;
            for (seq, key) in picked {
                match read_pending(shared, seq) {
                    Pending::Record(record) => out.push(record),
                    Pending::Gone => {
                        warn!(
                            seq,
                            "Indexed record missing from the outbox log; forgotten."
                        );
                        index.forget(seq, key);
                        dropped = true;
                    }
                    // It stays in flight, holding its key's later records,
                    // until the writer has moved it to the dead letters
                    // durably: a stop before that finds it pending again,
                    // ahead of them.
                    Pending::Corrupt(reason) => {
                        if !self.inner.try_send(Op::Quarantine { seq, reason }) {
                            index.retry(seq, now_ms.saturating_add(READ_RETRY_MS));
                        }
                    }
                    Pending::Unreadable(e) => {
                        // Back to pending, tried again a second later.
                        warn!(seq, error = %e, "Could not read a ready record.");
                        index.retry(seq, now_ms.saturating_add(READ_RETRY_MS));
                    }
                }
            }
            if !dropped || out.len() >= max {
                break;
            }
        }
        out
    }

    /// Marks a delivered record done, durably: it is never delivered again.
    pub async fn ack(&self, seq: u64) -> Result<(), StorageError> {
        let (tx, rx) = oneshot::channel();
        self.inner.send(Op::Ack { seq, reply: tx }).await?;
        rx.await.map_err(|_| StorageError::Closed)?
    }

    /// Records a failed attempt: attempts + 1, `error` kept, and the record
    /// (still the head of its key) is not handed out before `not_before_ms`.
    pub async fn retry(
        &self,
        seq: u64,
        error: &str,
        not_before_ms: u64,
    ) -> Result<(), StorageError> {
        let (tx, rx) = oneshot::channel();
        let op = Op::Retry {
            seq,
            error: error.to_owned(),
            not_before_ms,
            reply: tx,
        };
        self.inner.send(op).await?;
        rx.await.map_err(|_| StorageError::Closed)?
    }

    /// Moves an in-flight record to the dead letters with `reason`; it holds
    /// its key's later records until re-queued.
    pub async fn dead_letter(&self, seq: u64, reason: &str) -> Result<(), StorageError> {
        let (tx, rx) = oneshot::channel();
        let op = Op::DeadLetter {
            seq,
            reason: reason.to_owned(),
            reply: tx,
        };
        self.inner.send(op).await?;
        rx.await.map_err(|_| StorageError::Closed)?
    }

    /// Puts a dead letter back at its original sequence (ready at once).
    pub async fn requeue(&self, seq: u64) -> Result<(), StorageError> {
        let (tx, rx) = oneshot::channel();
        self.inner.send(Op::Requeue { seq, reply: tx }).await?;
        rx.await.map_err(|_| StorageError::Closed)?
    }

    /// Re-queues every decodable dead letter; returns how many.
    pub async fn requeue_all(&self) -> Result<usize, StorageError> {
        let (tx, rx) = oneshot::channel();
        self.inner.send(Op::RequeueAll { reply: tx }).await?;
        rx.await.map_err(|_| StorageError::Closed)?
    }

    /// Moves pending records created more than `max_age_ms` before `now_ms`
    /// to the dead letters (never drops them); returns how many. Scans from
    /// the oldest and stops at the first younger record; skips in-flight ones.
    pub async fn park_expired(&self, now_ms: u64, max_age_ms: u64) -> Result<usize, StorageError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .send(Op::Park {
                now_ms,
                max_age_ms,
                reply: tx,
            })
            .await?;
        rx.await.map_err(|_| StorageError::Closed)?
    }

    /// Pending records from `from_seq` on, at most `limit` (bounded by
    /// [`LIST_MAX`]); undecodable ones are skipped (they are quarantined).
    pub fn list(&self, from_seq: u64, limit: usize) -> Result<Vec<Record>, StorageError> {
        let mut out = Vec::new();
        let limit = limit.min(LIST_MAX);
        if limit == 0 {
            return Ok(out);
        }
        self.inner
            .shared
            .scan(b"outbox", &seq_key(from_seq), |k, raw| {
                if let Some(seq) = key_seq(&k) {
                    if let Ok(record) = decode_record(seq, &raw) {
                        out.push(record);
                    }
                }
                Ok(out.len() < limit)
            })?;
        Ok(out)
    }

    /// Dead letters from `from_seq` on, at most `limit` (bounded by
    /// [`LIST_MAX`]). An undecodable entry is listed with its raw bytes.
    pub fn dead_letters(
        &self,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StorageError> {
        let mut out = Vec::new();
        let limit = limit.min(LIST_MAX);
        if limit == 0 {
            return Ok(out);
        }
        self.inner
            .shared
            .scan(b"dead", &seq_key(from_seq), |k, raw| {
                let Some(seq) = key_seq(&k) else {
                    return Ok(true);
                };
                let letter = decode_dead_letter(seq, &raw).unwrap_or_else(|e| DeadLetter {
                    seq,
                    reason: format!("undecodable dead letter: {e}"),
                    record: None,
                    raw,
                });
                out.push(letter);
                Ok(out.len() < limit)
            })?;
        Ok(out)
    }

    /// Current figures; `now_ms` gives the oldest record's age.
    pub fn stats(&self, now_ms: u64) -> Result<OutboxStats, StorageError> {
        let shared = &self.inner.shared;
        let (depth, in_flight, held, dead_letters) = {
            let index = shared.lock_index();
            (
                index.depth(),
                index.in_flight_count(),
                index.held_count(),
                index.dead_count(),
            )
        };
        let mut oldest_age_ms = 0;
        shared.scan(b"outbox", &[], |k, raw| {
            match key_seq(&k).and_then(|seq| decode_record(seq, &raw).ok()) {
                Some(record) => {
                    oldest_age_ms = now_ms.saturating_sub(record.created_at_ms);
                    Ok(false)
                }
                None => Ok(true),
            }
        })?;
        let bytes_on_disk = dir_bytes(&shared.dir)
            .map_err(|e| StorageError::io(format!("size of {}", shared.dir.display()), e))?;
        let mut health = shared.lock_health().clone();
        (health.writer_queue_ops, health.writer_queue_bytes) = self.inner.queue_depth();
        Ok(OutboxStats {
            depth,
            oldest_age_ms,
            in_flight,
            held,
            dead_letters,
            bytes_on_disk,
            health,
        })
    }
}

/// Checks the limits before anything is sent to the writer.
fn validate(records: &[NewRecord]) -> Result<(), AppendFailure> {
    if records.len() > BATCH_RECORDS_MAX {
        return Err(AppendFailure::BatchTooLarge {
            len: records.len(),
            max: BATCH_RECORDS_MAX,
        });
    }
    for (index, r) in records.iter().enumerate() {
        if r.body.len() > BODY_BYTES_MAX {
            return Err(AppendFailure::BodyTooLarge {
                index,
                len: r.body.len(),
                max: BODY_BYTES_MAX,
            });
        }
        for (field, value) in [
            ("correlation_id", &r.correlation_id),
            ("interaction_key", &r.interaction_key),
        ] {
            if value.len() > ID_BYTES_MAX {
                return Err(AppendFailure::IdTooLong {
                    index,
                    field,
                    len: value.len(),
                    max: ID_BYTES_MAX,
                });
            }
        }
    }
    Ok(())
}

/// Bytes allocated on disk by the files of `dir` (recursively).
pub(crate) fn dir_bytes(dir: &std::path::Path) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if meta.is_dir() {
            total += dir_bytes(&entry.path())?;
        } else {
            total += meta.blocks() * 512;
        }
    }
    Ok(total)
}

/// What a pending record's read found.
enum Pending {
    /// The record, decoded.
    Record(Record),
    /// The log holds no such record: nothing is left to deliver.
    Gone,
    /// The log's value does not decode: to the dead letters.
    Corrupt(String),
    /// Neither sled nor the log could be read.
    Unreadable(StorageError),
}

/// Reads the pending record `seq`. A trusted sled that lacks it or holds
/// it garbled is not believed: the log is the truth. Forgetting a record
/// the log still holds would let its interaction's next record go ahead
/// and bring it back, out of order, after the next restart. Such a sled is
/// distrusted (reads come from the log until the next open checks it).
fn read_pending(shared: &crate::Shared, seq: u64) -> Pending {
    let key = seq_key(seq);
    let first = shared.get(b"outbox", &key);
    if let Ok(Some(raw)) = &first {
        if let Ok(record) = decode_record(seq, raw) {
            return Pending::Record(record);
        }
    }
    let from_sled = shared.is_checked();
    match shared.get_from_log(b"outbox", &key) {
        Ok(Some(raw)) => match decode_record(seq, &raw) {
            Ok(record) => {
                if from_sled {
                    let found = match &first {
                        Ok(Some(_)) => "a value that does not decode",
                        Ok(None) => "nothing",
                        Err(_) => "an error",
                    };
                    shared.distrust_sled(format!(
                        "sled gave {found} for pending record {seq}, which the log holds"
                    ));
                }
                Pending::Record(record)
            }
            Err(e) => Pending::Corrupt(e.to_string()),
        },
        Ok(None) => Pending::Gone,
        Err(e) => Pending::Unreadable(e),
    }
}
