//! The group-commit writer: one thread applies every change, then makes a
//! whole group durable with one sled flush plus one `fdatasync`, then updates
//! the delivery index and answers every waiting caller.
//!
//! While one group is being synced, the next one queues up in the channel,
//! so throughput grows with the number of concurrent callers while each of
//! them waits for at most about two device flushes.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sled::Transactional;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, warn};

use crate::error::{AppendError, AppendFailure, StorageError};
use crate::index::{key_hash, KeyHash};
use crate::record::{
    bounded_reason, chunk_of, chunk_seq, chunk_slot, decode_chunk, decode_dead_letter,
    decode_record, encode_chunk, encode_dead_letter, encode_record, key_seq, seq_key, Chunk,
    NewRecord, PendingEntry, Record,
};
use crate::Shared;

/// Most operations committed by one group. Bounds the work (and the latency
/// of the first caller) of one flush; 1024 covers 512 concurrent appenders
/// with room to spare.
pub const COMMIT_OPS_MAX: usize = 1024;

/// Capacity of the writer's channel. A full channel makes callers wait
/// (back-pressure) instead of growing memory.
pub const WRITER_QUEUE_MAX: usize = 4096;

/// The meta-tree key holding the next sequence to hand out, so sequences
/// never repeat even after the tail of the outbox was acked and removed.
pub(crate) const META_NEXT_SEQ: &[u8] = b"next_seq";

/// Reply channel of an operation that returns nothing.
type UnitReply = oneshot::Sender<Result<(), StorageError>>;
/// Reply channel of an operation that returns a count.
type CountReply = oneshot::Sender<Result<usize, StorageError>>;

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
    /// Put a state value.
    StatePut {
        tree: sled::Tree,
        key: Vec<u8>,
        value: Vec<u8>,
        reply: UnitReply,
    },
    /// Remove a state value.
    StateRemove {
        tree: sled::Tree,
        key: Vec<u8>,
        reply: UnitReply,
    },
    /// Copy every tree to `file` between two groups (a backup).
    Snapshot {
        file: File,
        created_at_ms: u64,
        reply: oneshot::Sender<Result<crate::backup::BackupSummary, StorageError>>,
    },
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
    DeadUnheld,
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

/// The outbox-side sled writes of one group. They are applied as one sled
/// transaction over the `outbox`, `pending`, `dead` and `meta` trees, so a
/// crash recovers all of a group or none of it: a record and its pending
/// entry never part (see the `outbox` module header).
#[derive(Clone, Default)]
pub(crate) struct Writes {
    outbox: sled::Batch,
    /// Changes to `pending` entries by chunk then slot (`None`: removed);
    /// merged into the stored chunks when applied.
    pending: BTreeMap<u64, BTreeMap<u8, Option<PendingEntry>>>,
    dead: sled::Batch,
    /// The next sequence, when the group appended.
    next_seq: Option<u64>,
    /// Whether anything was staged.
    any: bool,
}

impl Writes {
    /// A pending record: its value and its index entry.
    fn put_record(&mut self, seq: u64, value: Vec<u8>, entry: PendingEntry) {
        self.outbox.insert(&seq_key(seq), value);
        let chunk = self.pending.entry(chunk_of(seq)).or_default();
        chunk.insert(chunk_slot(seq), Some(entry));
        self.any = true;
    }

    /// A record leaves the outbox (ack, or moved to the dead letters).
    pub(crate) fn remove_record(&mut self, seq: u64) {
        self.outbox.remove(&seq_key(seq));
        let chunk = self.pending.entry(chunk_of(seq)).or_default();
        chunk.insert(chunk_slot(seq), None);
        self.any = true;
    }

    fn put_dead(&mut self, seq: u64, value: Vec<u8>) {
        self.dead.insert(&seq_key(seq), value);
        self.any = true;
    }

    fn remove_dead(&mut self, seq: u64) {
        self.dead.remove(&seq_key(seq));
        self.any = true;
    }

    /// Applies everything atomically (one sled transaction).
    pub(crate) fn apply(&self, shared: &Shared) -> Result<(), StorageError> {
        if !self.any && self.next_seq.is_none() {
            return Ok(());
        }
        // Only the writer changes `pending`, so reading the chunks before
        // the transaction is safe.
        let mut pending = sled::Batch::default();
        for (&chunk_no, changes) in &self.pending {
            let key = chunk_no.to_be_bytes();
            let mut chunk = match shared.pending.get(key)? {
                Some(raw) => decode_chunk(&raw).or_else(|e| {
                    warn!(chunk = chunk_no, error = %e, "Undecodable pending chunk; rebuilt from its records.");
                    chunk_from_records(shared, chunk_no)
                })?,
                None => Chunk::new(),
            };
            for (&slot, change) in changes {
                match change {
                    Some(entry) => chunk.insert(slot, *entry),
                    None => chunk.remove(&slot),
                };
            }
            if chunk.is_empty() {
                pending.remove(&key);
            } else {
                pending.insert(&key, encode_chunk(&chunk));
            }
        }
        let trees = [
            shared.outbox.clone(),
            shared.pending.clone(),
            shared.dead.clone(),
            shared.meta.clone(),
        ];
        let result: sled::transaction::TransactionResult<(), ()> = trees[..].transaction(|t| {
            t[0].apply_batch(&self.outbox)?;
            t[1].apply_batch(&pending)?;
            t[2].apply_batch(&self.dead)?;
            if let Some(next) = self.next_seq {
                t[3].insert(META_NEXT_SEQ, &next.to_be_bytes())?;
            }
            Ok(())
        });
        result.map_err(|e| match e {
            sled::transaction::TransactionError::Storage(e) => StorageError::Sled(e),
            sled::transaction::TransactionError::Abort(()) => StorageError::Commit {
                message: "transaction aborted".into(),
            },
        })
    }
}

/// The pending entries of one chunk, read from its records. A record that
/// does not decode gets a key of its own, so it is taken, found corrupt and
/// quarantined rather than forgotten.
pub(crate) fn chunk_from_records(shared: &Shared, chunk_no: u64) -> Result<Chunk, StorageError> {
    let from = chunk_seq(chunk_no, 0);
    let to = chunk_seq(chunk_no + 1, 0);
    let mut chunk = Chunk::new();
    for item in shared.outbox.range(seq_key(from)..seq_key(to)) {
        let (k, raw) = item?;
        let Some(seq) = key_seq(&k) else { continue };
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

/// Makes what sled wrote durable: sled's `flush` only issues
/// `sync_file_range` on Linux (spacejam/sled#1452), which neither flushes the
/// device cache nor the file size; so we `fdatasync` the log file and sync
/// new blob files and directory entries ourselves.
pub(crate) struct Syncer {
    /// `<dir>/db`, the log sled writes everything to except blobs.
    db_file: File,
    /// The storage directory (holds `conf`, `db`, `snap.*`, `blobs/`).
    dir: PathBuf,
    /// Blob files already synced (blobs are written once, then deleted).
    synced_blobs: HashSet<OsString>,
    /// Top-level names at the last directory sync (snapshot renames).
    top_names: Vec<OsString>,
}

impl Syncer {
    /// Opens the log file and syncs what sled created at open (the
    /// directory entries, `conf`).
    pub(crate) fn open(dir: &Path) -> Result<Syncer, StorageError> {
        let db_path = dir.join("db");
        let db_file = File::open(&db_path)
            .map_err(|e| StorageError::io(format!("open {}", db_path.display()), e))?;
        let conf = dir.join("conf");
        if conf.exists() {
            File::open(&conf)
                .and_then(|f| f.sync_all())
                .map_err(|e| StorageError::io(format!("sync {}", conf.display()), e))?;
        }
        let mut syncer = Syncer {
            db_file,
            dir: dir.to_owned(),
            synced_blobs: HashSet::new(),
            top_names: Vec::new(),
        };
        sync_dir(dir).map_err(|e| StorageError::io(format!("sync dir {}", dir.display()), e))?;
        syncer.top_names = list_names(dir).unwrap_or_default();
        syncer
            .sync()
            .map_err(|e| StorageError::io("initial sync", e))?;
        Ok(syncer)
    }

    /// Flushes sled and makes everything it wrote survive a power cut.
    pub(crate) fn commit(&mut self, db: &sled::Db) -> std::io::Result<()> {
        db.flush().map_err(std::io::Error::other)?;
        self.sync()
    }

    fn sync(&mut self) -> std::io::Result<()> {
        self.db_file.sync_data()?;
        let blobs = self.dir.join("blobs");
        let names = list_names(&blobs)?;
        let mut new_blob = false;
        for name in &names {
            if self.synced_blobs.contains(name) {
                continue;
            }
            match File::open(blobs.join(name)) {
                Ok(file) => file.sync_data()?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
            new_blob = true;
        }
        if new_blob {
            sync_dir(&blobs)?;
        }
        self.synced_blobs = names.into_iter().collect();
        let top = list_names(&self.dir)?;
        if top != self.top_names {
            sync_dir(&self.dir)?;
            self.top_names = top;
        }
        Ok(())
    }
}

fn list_names(dir: &Path) -> std::io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        names.push(entry?.file_name());
    }
    names.sort();
    Ok(names)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The writer thread's state.
pub(crate) struct Writer {
    /// Trees, index and config shared with the handles.
    shared: Arc<Shared>,
    /// Operations from every handle; closed when the last handle drops.
    rx: mpsc::Receiver<Op>,
    /// The next sequence to hand out.
    next_seq: u64,
    /// Makes each group durable.
    syncer: Syncer,
}

impl Writer {
    pub(crate) fn new(
        shared: Arc<Shared>,
        rx: mpsc::Receiver<Op>,
        next_seq: u64,
        syncer: Syncer,
    ) -> Writer {
        Writer {
            shared,
            rx,
            next_seq,
            syncer,
        }
    }

    /// Runs until every sender is dropped and the channel is drained.
    pub(crate) fn run(mut self) {
        while let Some(first) = self.rx.blocking_recv() {
            // A snapshot ends the group: what came before it is committed
            // first, what comes after waits until the copy is taken.
            let mut snapshot = None;
            let mut ops = Vec::new();
            match first {
                op @ Op::Snapshot { .. } => snapshot = Some(op),
                op => ops.push(op),
            }
            while snapshot.is_none() && ops.len() < COMMIT_OPS_MAX {
                match self.rx.try_recv() {
                    Ok(op @ Op::Snapshot { .. }) => snapshot = Some(op),
                    Ok(op) => ops.push(op),
                    Err(_) => break,
                }
            }
            if !ops.is_empty() {
                self.commit_group(ops);
            }
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
        }
        debug!("Writer stopped.");
    }

    fn commit_group(&mut self, ops: Vec<Op>) {
        let mut touched = HashSet::new();
        let mut staged = Vec::with_capacity(ops.len());
        let first_seq = self.next_seq;
        // Every outbox change of the group goes into one sled transaction:
        // atomic per group (so per `append_batch`, and a record with its
        // pending entry), and one commit instead of many.
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
        let outcome = writes
            .apply(&self.shared)
            .map_err(std::io::Error::other)
            .and_then(|()| self.syncer.commit(&self.shared.db));
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
                            Change::DeadUnheld => index.add_dead_unheld(),
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
            Err(e) => {
                drop(index);
                error!(error = %e, ops = staged.len(), "Group commit failed; callers get their data back.");
                let message = e.to_string();
                for s in staged {
                    let err = || StorageError::Commit {
                        message: message.clone(),
                    };
                    match s.reply {
                        Reply::Append { records, seqs, tx } => {
                            // Best effort: do not let a later flush make
                            // records durable that the caller was told failed.
                            let mut undo = Writes::default();
                            for seq in seqs {
                                undo.remove_record(seq);
                            }
                            let _ = undo.apply(&self.shared);
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
            Op::StatePut {
                tree,
                key,
                value,
                reply,
            } => {
                let result = tree
                    .insert(key, value)
                    .map(|_| Vec::new())
                    .map_err(StorageError::from);
                unit(result, reply)
            }
            Op::StateRemove { tree, key, reply } => {
                let result = tree
                    .remove(key)
                    .map(|_| Vec::new())
                    .map_err(StorageError::from);
                unit(result, reply)
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
        let Some(raw) = self.shared.outbox.get(seq_key(seq))? else {
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
        let Some(raw) = self.shared.outbox.get(seq_key(seq))? else {
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
        match self.shared.outbox.get(seq_key(seq))? {
            Some(raw) => self.stage_quarantine_raw(seq, &raw, reason, writes),
            None => Ok(Vec::new()),
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
        let mut index = self.shared.lock_index();
        if let Some(key) = index.in_flight_key(seq) {
            index.forget(seq, key);
        }
        Ok(vec![Change::DeadUnheld])
    }

    fn stage_requeue(&self, seq: u64, writes: &mut Writes) -> Result<Vec<Change>, StorageError> {
        let Some(raw) = self.shared.dead.get(seq_key(seq))? else {
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
        let seqs: Vec<u64> = self
            .shared
            .dead
            .iter()
            .keys()
            .filter_map(|k| k.ok().and_then(|k| key_seq(&k)))
            .collect();
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
        for item in self.shared.outbox.iter() {
            let (k, raw) = item?;
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
                break;
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
