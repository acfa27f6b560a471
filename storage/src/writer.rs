//! The group-commit writer: one thread stages every change, makes a whole
//! group durable as one log frame (one `fdatasync`), notes it in the live
//! map, applies it to sled (under the apply lock, so the background check
//! and the writer reach sled in log order; skipped while sled is being
//! rebuilt), then updates the delivery index and answers every waiting
//! caller. Between
//! groups it retires old log segments, copying their live entries forward
//! first (see the `seglog` and `live` modules), and creates the next
//! segment ahead of need. On close it makes sled durable and writes the
//! clean marker.
//!
//! While one group is being synced, the next one queues up in the channel,
//! so throughput grows with the number of concurrent callers while each of
//! them waits for at most about two device flushes. Before syncing the next
//! group the writer waits, at most half a commit's time, for the callers
//! its last group answered (see `linger`), so callers in a loop share one
//! sync instead of alternating between two. The queue is bounded
//! in operations ([`WRITER_QUEUE_MAX`]) and in bytes
//! ([`WRITER_QUEUE_BYTES_DEFAULT`], `StorageConfig::queue_bytes`): a caller
//! finding it full waits for room (back-pressure; its future can be
//! dropped, and an `append` dropped before it was queued changed nothing).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};
use tracing::{debug, error, warn};

use crate::apply_lock::ApplyGuard;
use crate::error::{AppendError, AppendFailure, StorageError};
use crate::index::{key_hash, KeyHash};
use crate::linger::{self, Linger, Recv};
use crate::read::successor;
use crate::record::{
    bounded_reason, chunk_of, chunk_seq, chunk_slot, decode_chunk, decode_dead_letter,
    decode_record, encode_chunk, encode_dead_letter, encode_record, key_seq, seq_key, Chunk,
    NewRecord, PendingEntry, Record,
};
use crate::seglog::{self, SegLog};
use crate::wal;
use crate::{Shared, Sled};

/// Most operations committed by one group. Bounds the work (and the latency
/// of the first caller) of one flush; 1024 covers 512 concurrent appenders
/// with room to spare.
pub const COMMIT_OPS_MAX: usize = 1024;

/// Capacity of the writer's channel, in operations. A full channel makes
/// callers wait (back-pressure) instead of growing memory.
pub const WRITER_QUEUE_MAX: usize = 4096;

/// Default bound of the writer queue in bytes (the records' bodies and ids,
/// state keys and values): 32 MiB. With 4,096 operations of up to 64
/// records of 64 KiB each, the count alone would allow 16 GiB; this keeps a
/// disk that stalls from growing memory past the bound. A single operation
/// larger than the bound is let through alone.
pub const WRITER_QUEUE_BYTES_DEFAULT: usize = 32 * 1024 * 1024;

/// Most segments retired in one pass between groups, so that a burst of
/// retirements never holds the writer for long.
const RETIRE_PER_PASS: usize = 4;

/// Largest frame a segment retirement writes when copying entries forward.
const COPY_FRAME_BYTES: usize = 1024 * 1024;

/// The meta-tree key holding the next sequence to hand out, so sequences
/// never repeat even after the tail of the outbox was acked and removed.
pub(crate) const META_NEXT_SEQ: &[u8] = b"next_seq";

/// Reply channel of an operation that returns nothing.
type UnitReply = oneshot::Sender<Result<(), StorageError>>;
/// Reply channel of an operation that returns a count.
type CountReply = oneshot::Sender<Result<usize, StorageError>>;

/// An operation in the writer queue, with its share of the byte budget
/// (given back when the writer has answered it).
pub(crate) struct Queued {
    /// The operation.
    pub(crate) op: Op,
    /// Its bytes of the queue's budget.
    pub(crate) permit: OwnedSemaphorePermit,
}

/// A change for the writer to commit.
pub(crate) enum Op {
    /// Append records with consecutive sequences, atomically.
    Append {
        records: Vec<NewRecord>,
        reply: oneshot::Sender<Result<Vec<u64>, AppendError>>,
    },
    /// Remove a delivered record.
    Ack { seq: u64, reply: UnitReply },
    /// Record a failed attempt and when to try again.
    Retry {
        seq: u64,
        error: String,
        not_before_ms: u64,
        reply: UnitReply,
    },
    /// Move an in-flight record to the dead letters.
    DeadLetter {
        seq: u64,
        reason: String,
        reply: UnitReply,
    },
    /// Move a dead letter back to the outbox at its sequence.
    Requeue { seq: u64, reply: UnitReply },
    /// Move every decodable dead letter back.
    RequeueAll { reply: CountReply },
    /// Move pending records older than `max_age_ms` to the dead letters.
    Park {
        now_ms: u64,
        max_age_ms: u64,
        reply: CountReply,
    },
    /// Move a record found undecodable to the dead letters (from `take`).
    Quarantine { seq: u64, reason: String },
    /// Put and remove state values of one tree, in order, all in one
    /// group (one log frame): durable together or not at all.
    State {
        tree: Vec<u8>,
        writes: Vec<Put>,
        reply: UnitReply,
    },
    /// Copy every tree to `file` between two groups (a backup).
    Snapshot {
        file: File,
        created_at_ms: u64,
        reply: oneshot::Sender<Result<crate::backup::BackupSummary, StorageError>>,
    },
}

impl Op {
    /// What the operation counts for in the queue's byte budget.
    pub(crate) fn queue_bytes(&self) -> usize {
        const SMALL: usize = 64;
        match self {
            Op::Append { records, .. } => records
                .iter()
                .map(|r| r.body.len() + r.correlation_id.len() + r.interaction_key.len() + SMALL)
                .sum(),
            Op::Retry { error, .. } => error.len() + SMALL,
            Op::DeadLetter { reason, .. } | Op::Quarantine { reason, .. } => reason.len() + SMALL,
            Op::State { writes, .. } => writes
                .iter()
                .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len) + SMALL)
                .sum(),
            _ => SMALL,
        }
    }
}

/// What to do to the index once a change is durable.
enum Change {
    Add {
        seq: u64,
        key: KeyHash,
        not_before_ms: u64,
    },
    Ack {
        seq: u64,
    },
    Retry {
        seq: u64,
        not_before_ms: u64,
    },
    ToDead {
        seq: u64,
        key: KeyHash,
    },
    /// A corrupt record moved to the dead letters (`dead`), or found gone
    /// from the log (not `dead`): forgotten by the index only now that
    /// this is durable, so its key's later records wait until then.
    Quarantined {
        seq: u64,
        dead: bool,
    },
    Requeue {
        seq: u64,
        key: KeyHash,
    },
}

/// How to answer a caller once the group's fate is known.
enum Reply {
    Append {
        records: Vec<NewRecord>,
        seqs: Vec<u64>,
        tx: oneshot::Sender<Result<Vec<u64>, AppendError>>,
    },
    Unit(UnitReply),
    Count(CountReply, usize),
    Nobody,
}

/// One staged operation: its index changes and its reply.
struct Staged {
    changes: Vec<Change>,
    reply: Reply,
}

/// The writes of one group, staged: record values by sequence, pending
/// entry changes by chunk and slot, dead letters, state puts. Nothing is
/// read back from here: staging reads through the `read` module, which
/// sees every earlier group.
#[derive(Clone, Default)]
pub(crate) struct Writes {
    /// Record values by sequence (`None`: removed).
    outbox: BTreeMap<u64, Option<Vec<u8>>>,
    /// Changes to `pending` entries by chunk then slot (`None`: removed);
    /// merged into the stored chunks by [`Writes::resolve`].
    pending: BTreeMap<u64, BTreeMap<u8, Option<PendingEntry>>>,
    /// Dead-letter values by sequence (`None`: removed).
    dead: BTreeMap<u64, Option<Vec<u8>>>,
    /// State puts and removes (tree name, key, value), in order.
    state: Vec<StateWrite>,
    /// The next sequence, when the group appended.
    next_seq: Option<u64>,
}

impl Writes {
    /// A pending record: its value and its index entry.
    fn put_record(&mut self, seq: u64, value: Vec<u8>, entry: PendingEntry) {
        self.outbox.insert(seq, Some(value));
        let chunk = self.pending.entry(chunk_of(seq)).or_default();
        chunk.insert(chunk_slot(seq), Some(entry));
    }

    /// A record leaves the outbox (ack, or moved to the dead letters).
    fn remove_record(&mut self, seq: u64) {
        self.outbox.insert(seq, None);
        let chunk = self.pending.entry(chunk_of(seq)).or_default();
        chunk.insert(chunk_slot(seq), None);
    }

    fn put_dead(&mut self, seq: u64, value: Vec<u8>) {
        self.dead.insert(seq, Some(value));
    }

    fn remove_dead(&mut self, seq: u64) {
        self.dead.insert(seq, None);
    }

    /// Turns the staged changes into blind writes per tree, merging the
    /// pending-entry changes into the stored chunks.
    pub(crate) fn resolve(self, shared: &Shared) -> Result<Group, StorageError> {
        let mut group = Group::default();
        let by_seq = |m: BTreeMap<u64, Option<Vec<u8>>>| {
            m.into_iter()
                .map(|(seq, v)| (seq_key(seq).to_vec(), v))
                .collect::<Vec<_>>()
        };
        group.push(b"outbox", by_seq(self.outbox));
        // Only the writer changes `pending`, so the stored chunks are
        // current: every earlier group is noted.
        let mut pending = Vec::with_capacity(self.pending.len());
        for (chunk_no, changes) in self.pending {
            let key = chunk_no.to_be_bytes();
            let mut chunk = match shared.get(b"pending", &key)? {
                Some(raw) => decode_chunk(&raw).or_else(|e| {
                    warn!(chunk = chunk_no, error = %e, "Undecodable pending chunk; rebuilt from its records.");
                    chunk_from_records(shared, chunk_no)
                })?,
                None => Chunk::new(),
            };
            for (slot, change) in changes {
                match change {
                    Some(entry) => chunk.insert(slot, entry),
                    None => chunk.remove(&slot),
                };
            }
            let value = (!chunk.is_empty()).then(|| encode_chunk(&chunk));
            pending.push((key.to_vec(), value));
        }
        group.push(b"pending", pending);
        group.push(b"dead", by_seq(self.dead));
        if let Some(next) = self.next_seq {
            group.push(
                b"meta",
                vec![(META_NEXT_SEQ.to_vec(), Some(next.to_be_bytes().to_vec()))],
            );
        }
        for (tree, key, value) in self.state {
            group.push(&tree, vec![(key, value)]);
        }
        Ok(group)
    }
}

/// A state write: tree name, key, new value (`None`: removed).
type StateWrite = (Vec<u8>, Vec<u8>, Option<Vec<u8>>);

/// One blind write: a key and its new value (`None`: removed).
type Put = (Vec<u8>, Option<Vec<u8>>);

/// A group's blind writes, tree by tree in order: what goes into one
/// write-ahead-log frame and then into sled.
#[derive(Default)]
pub(crate) struct Group {
    /// Tree name and its writes, in order.
    trees: Vec<(Vec<u8>, Vec<Put>)>,
}

impl Group {
    fn push(&mut self, tree: &[u8], puts: Vec<Put>) {
        if puts.is_empty() {
            return;
        }
        match self.trees.last_mut() {
            Some((last, ops)) if last.as_slice() == tree => ops.extend(puts),
            _ => self.trees.push((tree.to_vec(), puts)),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.trees.is_empty()
    }

    /// The frame payload (see the `wal` module for the format).
    fn encode(&self, out: &mut Vec<u8>) {
        for (tree, puts) in &self.trees {
            for (key, value) in puts {
                wal::encode_op(out, tree, key, value.as_deref());
            }
        }
    }

    /// Applies the writes to sled key by key (a crash in between is
    /// repaired by replaying the frame). Not `apply_batch`: it holds sled's
    /// process-wide write lock, and a batch that needs a new log segment
    /// waits for sled's shared I/O threads, which can wait for that lock
    /// (seen here as a deadlock of the test binary during a replay).
    fn apply(self, sled: &Sled) -> Result<(), StorageError> {
        for (tree, puts) in self.trees {
            apply_puts(&sled.tree(&tree)?, puts.into_iter())?;
        }
        Ok(())
    }
}

fn apply_puts<K, V>(
    tree: &sled::Tree,
    puts: impl Iterator<Item = (K, Option<V>)>,
) -> Result<(), sled::Error>
where
    K: AsRef<[u8]>,
    V: Into<sled::IVec>,
{
    for (key, value) in puts {
        match value {
            Some(v) => tree.insert(key, v)?,
            None => tree.remove(key)?,
        };
    }
    Ok(())
}

/// Applies one replayed frame to sled (on open, before anything reads it).
pub(crate) fn replay_frame(
    db: &sled::Db,
    payload: &[u8],
    trees: &mut HashMap<Vec<u8>, sled::Tree>,
) -> Result<(), StorageError> {
    let ops = wal::decode_ops(payload).map_err(|message| StorageError::Wal {
        path: PathBuf::from(wal::WAL_FILE),
        message: format!("a frame does not decode: {message}"),
    })?;
    for op in ops {
        let tree = match trees.get(op.tree) {
            Some(t) => t.clone(),
            None => {
                let t = db.open_tree(op.tree)?;
                trees.insert(op.tree.to_vec(), t.clone());
                t
            }
        };
        apply_puts(&tree, std::iter::once((op.key, op.value)))?;
    }
    Ok(())
}

/// The pending entries of one chunk, read from its records. A record that
/// does not decode gets a key of its own, so it is taken, found corrupt and
/// quarantined rather than forgotten.
pub(crate) fn chunk_from_records(shared: &Shared, chunk_no: u64) -> Result<Chunk, StorageError> {
    let from = chunk_seq(chunk_no, 0);
    let to = chunk_seq(chunk_no + 1, 0);
    let mut chunk = Chunk::new();
    for (k, raw) in shared.page(b"outbox", &seq_key(from), (to - from) as usize)? {
        let Some(seq) = key_seq(&k).filter(|&s| s < to) else {
            continue;
        };
        let entry = match decode_record(seq, &raw) {
            Ok(record) => PendingEntry {
                key: key_hash(&record.interaction_key),
                not_before_ms: record.next_attempt_at_ms,
            },
            Err(_) => PendingEntry {
                key: u64::MAX ^ seq,
                not_before_ms: 0,
            },
        };
        chunk.insert(chunk_slot(seq), entry);
    }
    Ok(chunk)
}

/// The writer thread's state.
pub(crate) struct Writer {
    /// Trees, index and config shared with the handles.
    shared: Arc<Shared>,
    /// Operations from every handle; closed when the last handle drops.
    rx: mpsc::Receiver<Queued>,
    /// The next sequence to hand out.
    next_seq: u64,
    /// The log: makes each group durable.
    log: SegLog,
    /// Frame payload buffer, reused.
    payload: Vec<u8>,
    /// Trims the heap after a group, at most once a second.
    trimmer: crate::heap::Trimmer,
    /// Segments the log had at the last retirement pass.
    segments_seen: usize,
    /// Set when a frame's fate is unknown or sled refused a logged group:
    /// every later change is refused and the close writes no clean
    /// marker, so the next open checks sled against the log.
    poisoned: Option<String>,
}

/// Why a group failed (its callers all get this message). Nothing of a
/// failed group reached sled.
struct Failure(String);

impl Failure {
    fn new(message: impl std::fmt::Display) -> Failure {
        Failure(message.to_string())
    }
}

impl Writer {
    pub(crate) fn new(
        shared: Arc<Shared>,
        rx: mpsc::Receiver<Queued>,
        next_seq: u64,
        log: SegLog,
    ) -> Writer {
        Writer {
            shared,
            rx,
            next_seq,
            segments_seen: log.segments().len(),
            log,
            payload: Vec::new(),
            trimmer: crate::heap::Trimmer::new(),
            poisoned: None,
        }
    }

    /// Runs until every sender is dropped and the channel is drained.
    pub(crate) fn run(mut self) {
        let mut linger = Linger::default();
        loop {
            // The callers the last group answered may be about to send
            // again: wait for them a little before going idle (see
            // `linger`).
            let deadline = linger.deadline(COMMIT_OPS_MAX);
            let first = match self.rx.try_recv() {
                Ok(op) => op,
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    match deadline.map(|d| linger::recv_until(&mut self.rx, d)) {
                        Some(Recv::Op(op)) => op,
                        Some(Recv::Closed) => break,
                        Some(Recv::TimedOut) | None => {
                            // Idle: retire what can go (pass after pass
                            // while nothing waits), prepare the next
                            // segment.
                            while self.maintain() && self.rx.is_empty() {}
                            match self.rx.blocking_recv() {
                                Some(op) => op,
                                None => break,
                            }
                        }
                    }
                }
            };
            let started = std::time::Instant::now();
            // A snapshot ends the group: what came before it is committed
            // first, what comes after waits until the copy is taken.
            let mut snapshot = None;
            let mut ops = Vec::new();
            let mut permits = Vec::new();
            let take = |q: Queued,
                        ops: &mut Vec<Op>,
                        permits: &mut Vec<OwnedSemaphorePermit>,
                        snapshot: &mut Option<Op>| {
                permits.push(q.permit);
                match q.op {
                    op @ Op::Snapshot { .. } => *snapshot = Some(op),
                    op => ops.push(op),
                }
            };
            take(first, &mut ops, &mut permits, &mut snapshot);
            let target = linger.target(COMMIT_OPS_MAX);
            let mut closed = false;
            while snapshot.is_none() && ops.len() < COMMIT_OPS_MAX {
                match self.rx.try_recv() {
                    Ok(q) => take(q, &mut ops, &mut permits, &mut snapshot),
                    Err(mpsc::error::TryRecvError::Empty) if ops.len() < target => {
                        match deadline.map(|d| linger::recv_until(&mut self.rx, d)) {
                            Some(Recv::Op(q)) => take(q, &mut ops, &mut permits, &mut snapshot),
                            Some(Recv::Closed) => {
                                closed = true;
                                break;
                            }
                            Some(Recv::TimedOut) | None => break,
                        }
                    }
                    Err(_) => break,
                }
            }
            let group = ops.len();
            if !ops.is_empty() {
                self.commit_group(ops);
                linger.answered(group, self.rx.len(), started.elapsed());
                self.shared.note_group(group);
                self.trimmer.maybe_trim();
            }
            drop(permits);
            if let Some(Op::Snapshot {
                file,
                created_at_ms,
                reply,
            }) = snapshot
            {
                let result = crate::backup::write_snapshot(&self.shared, &file, created_at_ms);
                if let Err(e) = &result {
                    error!(error = %e, "Backup snapshot failed.");
                }
                drop(reply.send(result));
            }
            if self.log.segments().len() > self.segments_seen {
                // The head moved on: see whether old segments can go.
                self.retire();
            }
            if closed {
                break;
            }
        }
        self.close();
        debug!("Writer stopped.");
    }

    /// Between groups: retire what can go, create the next segment.
    /// Returns whether a segment was retired (another pass may retire more).
    fn maintain(&mut self) -> bool {
        if self.poisoned.is_some() {
            return false;
        }
        let before = self.log.segments().len();
        self.retire();
        if let Err(e) = self.log.ensure_spare() {
            warn!(error = %e, "Could not create the next log segment ahead; retried when idle.");
        }
        self.publish_log_size();
        self.log.segments().len() < before
    }

    fn publish_log_size(&self) {
        let mut health = self.shared.lock_health();
        health.log_segments = self.log.segments().len() as u64;
        health.log_bytes = self.log.bytes();
    }

    /// A clean close: sled flushed and its files synced, then the marker
    /// naming where the log ends. Not after a poisoning, nor while sled is
    /// unchecked: the next open checks sled against the log.
    fn close(&mut self) {
        if let Some(why) = &self.poisoned {
            warn!(reason = %why, "Closing without the clean marker; the next open checks sled against the log.");
            return;
        }
        if !self.shared.is_checked() {
            warn!(
                "Closing before sled was checked against the log; the next open checks it again."
            );
            return;
        }
        let done = self
            .shared
            .sled()
            .and_then(|sled| {
                crate::sled_files::sync_sled(&self.shared.dir, &sled.db)
                    .map_err(|e| StorageError::io("sync sled at close", e))
            })
            .and_then(|()| {
                let live = self.shared.lock_live();
                crate::live_file::save(
                    &self.shared.dir.join(seglog::LOG_DIR),
                    self.log.position(),
                    &live,
                )
            })
            .and_then(|()| crate::clean::write(&self.shared.dir, self.log.position()));
        if let Err(e) = done {
            warn!(error = %e, "Clean close failed; the next open checks sled against the log.");
        }
    }

    /// Retires old segments while it is worth it: the oldest holds at most
    /// half live bytes, or the whole log at most a third. Live entries of
    /// the oldest are copied to the head first (blind rewrites of the same
    /// values), synced, then the segment is deleted and the directory
    /// synced (see `seglog`). Failures are logged; the segment stays.
    fn retire(&mut self) {
        self.segments_seen = self.log.segments().len();
        if self.poisoned.is_some() {
            return;
        }
        for _ in 0..RETIRE_PER_PASS {
            let segs = self.log.segments();
            if segs.len() < 2 {
                break;
            }
            let oldest = segs[0];
            let ((live, total), (all_live, all_total)) = {
                let map = self.shared.lock_live();
                (map.segment(oldest), map.totals())
            };
            if !(live == 0 || live * 2 <= total || all_live * 3 <= all_total) {
                break;
            }
            if let Err(e) = self.copy_forward(oldest) {
                warn!(segment = oldest, error = %e, "Could not copy a log segment's live entries forward; it stays.");
                break;
            }
            // Nothing live may be left in it: deleting it would lose what
            // is (copy_forward picks each key's put by its exact offset).
            let left = self.shared.lock_live().entries_in(oldest);
            if left > 0 {
                error!(
                    segment = oldest,
                    left, "Live entries still in a log segment after copying it forward; it stays."
                );
                break;
            }
            match self.log.retire_oldest() {
                Ok(seg) => {
                    self.shared.lock_live().forget_segment(seg);
                    self.shared.reader.forget(seg);
                }
                Err(e) => {
                    warn!(segment = oldest, error = %e, "Could not delete a retired log segment; it stays.");
                    break;
                }
            }
        }
        self.segments_seen = self.log.segments().len();
        self.publish_log_size();
    }

    /// Appends the put of segment `seg` that is still the latest of its
    /// key, for every such key, to the head, as frames of at most
    /// `COPY_FRAME_BYTES`. Only the latest: a key put twice in the segment
    /// was once copied twice, older value first, and a stop between the two
    /// copy frames left the older value as the key's latest in the log (a
    /// pending chunk lost the records appended after it: the CRM replay
    /// across SIGKILLs sent an interaction's later records first and the
    /// lost ones after the next restart, out of order).
    ///
    /// The latest put is the one at the very place the live map names
    /// (segment and value offset), so the segment is read once and copied
    /// as it is read, with no copy of its keys or values on the side (that
    /// copy held up to three times a segment's live bytes at once: 30-35
    /// MiB spikes during a drain of 1,000,000 records).
    fn copy_forward(&mut self, seg: u64) -> Result<(), String> {
        let mut frames = Vec::new();
        let mut payload = Vec::new();
        let live = self.shared.lock_live();
        self.log
            .read_segment(seg, |_, payload_off, frame| {
                let ops = wal::decode_ops(frame).map_err(|message| StorageError::Wal {
                    path: PathBuf::from(seglog::LOG_DIR),
                    message,
                })?;
                let base = frame.as_ptr() as usize;
                for op in ops {
                    let Some(value) = op.value else { continue };
                    let value_off = payload_off + (value.as_ptr() as usize - base) as u64;
                    if !live.is_latest(seg, value_off, op.tree, op.key) {
                        continue;
                    }
                    wal::encode_op(&mut payload, op.tree, op.key, Some(value));
                    if payload.len() >= COPY_FRAME_BYTES {
                        frames.push(std::mem::take(&mut payload));
                    }
                }
                Ok(())
            })
            .map_err(|e| e.to_string())?;
        drop(live);
        if !payload.is_empty() {
            frames.push(payload);
        }
        // The copies are the same values sled holds already (or will get
        // from the check): only the live map moves.
        for frame in frames {
            let (head, off) = self.append_frame(&frame).map_err(|f| f.0)?;
            self.note_frame(head, off, &frame);
        }
        Ok(())
    }

    /// Notes every op of an appended frame in the live map.
    fn note_frame(&mut self, seg: u64, payload_off: u64, frame: &[u8]) {
        if let Err(e) = self.shared.lock_live().note_frame(seg, payload_off, frame) {
            // We encoded it a moment ago: cannot happen.
            error!(error = %e, "A frame just written does not decode.");
        }
    }

    /// Appends one frame to the log (one `fdatasync`); an outcome the log
    /// cannot tell poisons the writer.
    fn append_frame(&mut self, frame: &[u8]) -> Result<(u64, u64), Failure> {
        match self.log.append(frame) {
            Ok(at) => Ok(at),
            Err(seglog::AppendError::Io(e)) => Err(Failure(format!("log: {e}"))),
            Err(seglog::AppendError::Unknown(e)) => {
                // The frame may be on the disk: nothing may follow it, and
                // the next open decides (it replays the frame if it is).
                error!(error = %e, "A log frame may or may not be on the disk; storage stops taking changes until reopened.");
                self.poisoned = Some(format!("log: {e}"));
                Err(Failure(format!(
                    "log: {e} (the group may still be applied at the next start)"
                )))
            }
        }
    }

    /// Makes a group's writes durable: one frame in the log (one
    /// `fdatasync`), noted in the live map, then applied to sled.
    fn commit_writes(&mut self, writes: Writes) -> Result<(), Failure> {
        if let Some(why) = &self.poisoned {
            return Err(Failure::new(format!(
                "storage failed earlier and must be reopened (restart edgecc): {why}"
            )));
        }
        let group = writes.resolve(&self.shared).map_err(Failure::new)?;
        if group.is_empty() {
            return Ok(());
        }
        let mut payload = std::mem::take(&mut self.payload);
        payload.clear();
        group.encode(&mut payload);
        let logged = self.append_frame(&payload);
        // Noted and applied under one hold of the apply lock: whoever holds
        // it (the check) finds sled and the live map at the same group, so
        // any difference between them is sled's own (see `check`).
        let shared = Arc::clone(&self.shared);
        let order = shared.lock_apply();
        let noted = logged.map(|(seg, off)| self.note_frame(seg, off, &payload));
        if payload.capacity() <= 4 * 1024 * 1024 {
            self.payload = payload;
        }
        noted?;
        let refused = apply_locked(&shared, &order, group);
        shared
            .applied_groups
            .fetch_add(1, std::sync::atomic::Ordering::Release);
        drop(order);
        match refused {
            Some(e) => Err(self.sled_refused(e)),
            None => Ok(()),
        }
    }

    /// The frame is durable, sled refused it (it failed earlier): the next
    /// open repairs sled from the log.
    fn sled_refused(&mut self, e: String) -> Failure {
        error!(error = %e, "sled refused a logged group; storage stops taking changes until reopened.");
        self.poisoned = Some(e.clone());
        Failure(format!(
            "logged, but sled failed: {e} (applied at the next start)"
        ))
    }

    fn commit_group(&mut self, ops: Vec<Op>) {
        let mut touched = HashSet::new();
        let mut staged = Vec::with_capacity(ops.len());
        let first_seq = self.next_seq;
        let mut writes = Writes::default();
        for op in ops {
            if let Some(s) = self.stage(op, &mut touched, &mut writes) {
                staged.push(s);
            }
        }
        // Sequences are consumed even if the group fails, so a group that
        // might still reach the disk never collides with a later one.
        if self.next_seq != first_seq {
            writes.next_seq = Some(self.next_seq);
        }
        let outcome = self.commit_writes(writes);
        let mut index = self.shared.lock_index();
        index.release_claims();
        match outcome {
            Ok(()) => {
                for s in &staged {
                    for change in &s.changes {
                        match *change {
                            Change::Add {
                                seq,
                                key,
                                not_before_ms,
                            } => index.add_pending(seq, key, not_before_ms),
                            Change::Ack { seq } => index.ack(seq),
                            Change::Retry { seq, not_before_ms } => index.retry(seq, not_before_ms),
                            Change::ToDead { seq, key } => index.make_dead(seq, key, true),
                            Change::Quarantined { seq, dead } => {
                                if let Some(key) = index.in_flight_key(seq) {
                                    index.forget(seq, key);
                                }
                                if dead {
                                    index.add_dead_unheld();
                                }
                            }
                            Change::Requeue { seq, key } => index.requeue(seq, key),
                        }
                    }
                }
                drop(index);
                for s in staged {
                    match s.reply {
                        Reply::Append { seqs, tx, .. } => drop(tx.send(Ok(seqs))),
                        Reply::Unit(tx) => drop(tx.send(Ok(()))),
                        Reply::Count(tx, n) => drop(tx.send(Ok(n))),
                        Reply::Nobody => {}
                    }
                }
            }
            Err(Failure(message)) => {
                drop(index);
                error!(error = %message, ops = staged.len(), "Group commit failed; callers get their data back.");
                for s in staged {
                    let err = || StorageError::Commit {
                        message: message.clone(),
                    };
                    match s.reply {
                        Reply::Append { records, tx, .. } => {
                            let failure = AppendFailure::Storage(err());
                            drop(tx.send(Err(AppendError { failure, records })));
                        }
                        Reply::Unit(tx) => drop(tx.send(Err(err()))),
                        Reply::Count(tx, _) => drop(tx.send(Err(err()))),
                        Reply::Nobody => {}
                    }
                }
            }
        }
    }

    /// Applies one operation to sled (not yet durable). Returns what to do
    /// once durable, or `None` when it was answered already (refused).
    fn stage(&mut self, op: Op, touched: &mut HashSet<u64>, writes: &mut Writes) -> Option<Staged> {
        match op {
            Op::Append { records, reply } => match self.stage_append(&records, writes) {
                Ok((seqs, changes)) => Some(Staged {
                    changes,
                    reply: Reply::Append {
                        records,
                        seqs,
                        tx: reply,
                    },
                }),
                Err(e) => {
                    let failure = AppendFailure::Storage(e);
                    drop(reply.send(Err(AppendError { failure, records })));
                    None
                }
            },
            Op::Ack { seq, reply } => {
                let result = self.check_in_flight(seq, touched).map(|_| {
                    writes.remove_record(seq);
                    vec![Change::Ack { seq }]
                });
                unit(result, reply)
            }
            Op::Retry {
                seq,
                error,
                not_before_ms,
                reply,
            } => {
                let result = self
                    .check_in_flight(seq, touched)
                    .and_then(|_| self.stage_retry(seq, &error, not_before_ms, writes));
                unit(result, reply)
            }
            Op::DeadLetter { seq, reason, reply } => {
                let result = self
                    .check_in_flight(seq, touched)
                    .and_then(|key| self.stage_dead(seq, key, &bounded_reason(&reason), writes));
                unit(result, reply)
            }
            Op::Requeue { seq, reply } => {
                let result = if touched.insert(seq) {
                    self.stage_requeue(seq, writes)
                } else {
                    Err(StorageError::Busy { seq })
                };
                unit(result, reply)
            }
            // These two stage several records: on an error, none of their
            // writes may stay staged (the caller is told it failed).
            Op::RequeueAll { reply } => {
                let before = writes.clone();
                let result = self.stage_requeue_all(touched, writes);
                if result.is_err() {
                    *writes = before;
                }
                count(result, reply)
            }
            Op::Park {
                now_ms,
                max_age_ms,
                reply,
            } => {
                let before = writes.clone();
                let result = self.stage_park(now_ms, max_age_ms, touched, writes);
                if result.is_err() {
                    *writes = before;
                }
                count(result, reply)
            }
            Op::Quarantine { seq, reason } => {
                if !touched.insert(seq) {
                    return None;
                }
                match self.stage_quarantine(seq, &reason, writes) {
                    Ok(changes) => Some(Staged {
                        changes,
                        reply: Reply::Nobody,
                    }),
                    Err(e) => {
                        warn!(seq, error = %e, "Could not quarantine a corrupt record; retried on next open.");
                        None
                    }
                }
            }
            Op::State {
                tree,
                writes: puts,
                reply,
            } => {
                writes.state.extend(
                    puts.into_iter()
                        .map(|(key, value)| (tree.clone(), key, value)),
                );
                unit(Ok(Vec::new()), reply)
            }
            // `run` takes snapshots out of the group before staging.
            Op::Snapshot { reply, .. } => {
                drop(reply.send(Err(StorageError::Commit {
                    message: "snapshot staged inside a group".into(),
                })));
                None
            }
        }
    }

    fn check_in_flight(
        &self,
        seq: u64,
        touched: &mut HashSet<u64>,
    ) -> Result<KeyHash, StorageError> {
        let key = self
            .shared
            .lock_index()
            .in_flight_key(seq)
            .ok_or(StorageError::NotInFlight { seq })?;
        if !touched.insert(seq) {
            return Err(StorageError::Busy { seq });
        }
        Ok(key)
    }

    fn stage_append(
        &mut self,
        records: &[NewRecord],
        writes: &mut Writes,
    ) -> Result<(Vec<u64>, Vec<Change>), StorageError> {
        let mut seqs = Vec::with_capacity(records.len());
        let mut changes = Vec::with_capacity(records.len());
        for (i, new) in records.iter().enumerate() {
            let seq = self.next_seq + i as u64;
            let bytes = encode_record(&Record::from_new(seq, new))?;
            // Pair the write with a read-back check: what we store decodes.
            debug_assert!(decode_record(seq, &bytes).is_ok());
            let key = key_hash(&new.interaction_key);
            let entry = PendingEntry {
                key,
                not_before_ms: 0,
            };
            writes.put_record(seq, bytes, entry);
            seqs.push(seq);
            changes.push(Change::Add {
                seq,
                key,
                not_before_ms: 0,
            });
        }
        self.next_seq += records.len() as u64;
        Ok((seqs, changes))
    }

    fn stage_retry(
        &self,
        seq: u64,
        error: &str,
        not_before_ms: u64,
        writes: &mut Writes,
    ) -> Result<Vec<Change>, StorageError> {
        let Some(raw) = self.shared.get(b"outbox", &seq_key(seq))? else {
            return Err(StorageError::NotInFlight { seq });
        };
        match decode_record(seq, &raw) {
            Ok(mut record) => {
                record.attempts = record.attempts.saturating_add(1);
                record.next_attempt_at_ms = not_before_ms;
                record.last_error = Some(bounded_reason(error));
                let entry = PendingEntry {
                    key: key_hash(&record.interaction_key),
                    not_before_ms,
                };
                writes.put_record(seq, encode_record(&record)?, entry);
                Ok(vec![Change::Retry { seq, not_before_ms }])
            }
            Err(e) => self.stage_quarantine_raw(seq, &raw, &e.to_string(), writes),
        }
    }

    fn stage_dead(
        &self,
        seq: u64,
        key: KeyHash,
        reason: &str,
        writes: &mut Writes,
    ) -> Result<Vec<Change>, StorageError> {
        let Some(raw) = self.shared.get(b"outbox", &seq_key(seq))? else {
            return Err(StorageError::NotInFlight { seq });
        };
        writes.put_dead(seq, encode_dead_letter(seq, reason, &raw)?);
        writes.remove_record(seq);
        Ok(vec![Change::ToDead { seq, key }])
    }

    fn stage_quarantine(
        &self,
        seq: u64,
        reason: &str,
        writes: &mut Writes,
    ) -> Result<Vec<Change>, StorageError> {
        match self.shared.get_from_log(b"outbox", &seq_key(seq))? {
            Some(raw) => self.stage_quarantine_raw(seq, &raw, reason, writes),
            None => Ok(vec![Change::Quarantined { seq, dead: false }]),
        }
    }

    fn stage_quarantine_raw(
        &self,
        seq: u64,
        raw: &[u8],
        reason: &str,
        writes: &mut Writes,
    ) -> Result<Vec<Change>, StorageError> {
        warn!(seq, reason, "Corrupt record moved to the dead letters.");
        let reason = bounded_reason(&format!("corrupt: {reason}"));
        writes.put_dead(seq, encode_dead_letter(seq, &reason, raw)?);
        writes.remove_record(seq);
        Ok(vec![Change::Quarantined { seq, dead: true }])
    }

    fn stage_requeue(&self, seq: u64, writes: &mut Writes) -> Result<Vec<Change>, StorageError> {
        let Some(raw) = self.shared.get(b"dead", &seq_key(seq))? else {
            return Err(StorageError::NotDeadLetter { seq });
        };
        let undecodable = |reason: String| StorageError::Undecodable { seq, reason };
        let dead = decode_dead_letter(seq, &raw).map_err(|e| undecodable(e.to_string()))?;
        let mut record = match dead.record {
            Some(record) => record,
            None => {
                let e = decode_record(seq, &dead.raw).err().map(|e| e.to_string());
                return Err(undecodable(e.unwrap_or_default()));
            }
        };
        record.next_attempt_at_ms = 0;
        let key = key_hash(&record.interaction_key);
        let entry = PendingEntry {
            key,
            not_before_ms: 0,
        };
        writes.put_record(seq, encode_record(&record)?, entry);
        writes.remove_dead(seq);
        Ok(vec![Change::Requeue { seq, key }])
    }

    fn stage_requeue_all(
        &self,
        touched: &mut HashSet<u64>,
        writes: &mut Writes,
    ) -> Result<(Vec<Change>, usize), StorageError> {
        let mut changes = Vec::new();
        let mut seqs: Vec<u64> = Vec::new();
        self.shared.scan(b"dead", &[], |k, _| {
            seqs.extend(key_seq(&k));
            Ok(true)
        })?;
        for seq in seqs {
            if !touched.insert(seq) {
                continue;
            }
            match self.stage_requeue(seq, writes) {
                Ok(mut c) => changes.append(&mut c),
                Err(StorageError::Undecodable { seq, reason }) => {
                    warn!(
                        seq,
                        reason, "Dead letter cannot be re-queued; it stays listed."
                    );
                }
                Err(e) => return Err(e),
            }
        }
        let n = changes.len();
        Ok((changes, n))
    }

    fn stage_park(
        &self,
        now_ms: u64,
        max_age_ms: u64,
        touched: &mut HashSet<u64>,
        writes: &mut Writes,
    ) -> Result<(Vec<Change>, usize), StorageError> {
        let mut changes = Vec::new();
        let mut parked = 0;
        let mut from = Vec::new();
        'pages: loop {
            let page = self.shared.page(b"outbox", &from, 512)?;
            let Some((last, _)) = page.last() else { break };
            from = successor(last.clone());
            let full = page.len() == 512;
            for (k, raw) in page {
                let Some(seq) = key_seq(&k) else { continue };
                if touched.contains(&seq) || self.shared.lock_index().is_in_flight(seq) {
                    continue;
                }
                let record = match decode_record(seq, &raw) {
                    Ok(record) => record,
                    Err(e) => {
                        touched.insert(seq);
                        changes.append(&mut self.stage_quarantine_raw(
                            seq,
                            &raw,
                            &e.to_string(),
                            writes,
                        )?);
                        continue;
                    }
                };
                if record.created_at_ms.saturating_add(max_age_ms) > now_ms {
                    // Records are appended in time order: the rest is younger.
                    break 'pages;
                }
                touched.insert(seq);
                self.shared.lock_index().claim(seq);
                let reason = format!("expired: older than {max_age_ms} ms");
                writes.put_dead(seq, encode_dead_letter(seq, &reason, &raw)?);
                writes.remove_record(seq);
                changes.push(Change::ToDead {
                    seq,
                    key: key_hash(&record.interaction_key),
                });
                parked += 1;
            }
            if !full {
                break;
            }
        }
        Ok((changes, parked))
    }
}

fn unit(result: Result<Vec<Change>, StorageError>, reply: UnitReply) -> Option<Staged> {
    match result {
        Ok(changes) => Some(Staged {
            changes,
            reply: Reply::Unit(reply),
        }),
        Err(e) => {
            drop(reply.send(Err(e)));
            None
        }
    }
}

fn count(result: Result<(Vec<Change>, usize), StorageError>, reply: CountReply) -> Option<Staged> {
    match result {
        Ok((changes, n)) => Some(Staged {
            changes,
            reply: Reply::Count(reply, n),
        }),
        Err(e) => {
            drop(reply.send(Err(e)));
            None
        }
    }
}

/// Applies a logged group to sled, in log order (the caller holds the
/// apply lock, `_order`). While sled is unchecked a failure or panic is
/// handed to the check, which moves sled aside and rebuilds it (reads come
/// from the log meanwhile, so callers are answered as usual); once
/// checked, a panic distrusts sled until the next open and an error stops
/// the storage (see the design note): answers that error.
fn apply_locked(shared: &Shared, _order: &ApplyGuard<'_>, group: Group) -> Option<String> {
    if shared.sled_failure().is_some() {
        return None;
    }
    match shared.sled() {
        // Being swapped or could not be reopened: only while unchecked.
        Err(_) if !shared.is_checked() => None,
        Err(e) => Some(e.to_string()),
        Ok(sled) => {
            let applied =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| group.apply(&sled)));
            match applied {
                Ok(Ok(())) => None,
                Ok(Err(e)) if !shared.is_checked() => {
                    shared.fail_sled(e.to_string());
                    None
                }
                // An error of a trusted sled (a full disk, say) stops the
                // storage.
                Ok(Err(e)) => Some(e.to_string()),
                // A panic is sled's own damage: the frame is durable and
                // the live map has it, so reads move to the log, as after
                // a read's panic.
                Err(panic) => {
                    let why = format!(
                        "sled panicked during applying a group: {}",
                        crate::sled_files::panic_message(&*panic)
                    );
                    if shared.is_checked() {
                        shared.distrust_sled(why);
                    } else {
                        shared.fail_sled(why);
                    }
                    None
                }
            }
        }
    }
}
