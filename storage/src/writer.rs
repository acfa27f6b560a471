//! The group-commit writer: one thread applies every change, then makes a
//! whole group durable with one sled flush plus one `fdatasync`, then updates
//! the delivery index and answers every waiting caller.
//!
//! While one group is being synced, the next one queues up in the channel,
//! so throughput grows with the number of concurrent callers while each of
//! them waits for at most about two device flushes.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, warn};

use crate::error::{AppendError, AppendFailure, StorageError};
use crate::index::{key_hash, KeyHash};
use crate::record::{
    bounded_reason, decode_dead_letter, decode_record, encode_dead_letter, encode_record, key_seq,
    seq_key, NewRecord, Record,
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
            let mut ops = vec![first];
            while ops.len() < COMMIT_OPS_MAX {
                match self.rx.try_recv() {
                    Ok(op) => ops.push(op),
                    Err(_) => break,
                }
            }
            self.commit_group(ops);
        }
        debug!("Writer stopped.");
    }

    fn commit_group(&mut self, ops: Vec<Op>) {
        let mut touched = HashSet::new();
        let mut staged = Vec::with_capacity(ops.len());
        let first_seq = self.next_seq;
        // Every append of the group goes into one sled batch: atomic per
        // group (so per `append_batch`), and one tree lock instead of many.
        let mut appends = sled::Batch::default();
        for op in ops {
            if let Some(s) = self.stage(op, &mut touched, &mut appends) {
                staged.push(s);
            }
        }
        let mut outcome = Ok(());
        if self.next_seq != first_seq {
            // Sequences are consumed even if the batch fails, so a batch that
            // might still reach the disk never collides with a later one.
            outcome = self
                .shared
                .outbox
                .apply_batch(appends)
                .map_err(std::io::Error::other);
            if let Err(e) = self
                .shared
                .meta
                .insert(META_NEXT_SEQ, &self.next_seq.to_be_bytes())
            {
                warn!(error = %e, "Could not store the next sequence; it is recomputed on open.");
            }
        }
        let outcome = outcome.and_then(|()| self.syncer.commit(&self.shared.db));
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
                            for seq in seqs {
                                let _ = self.shared.outbox.remove(seq_key(seq));
                            }
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
    fn stage(
        &mut self,
        op: Op,
        touched: &mut HashSet<u64>,
        appends: &mut sled::Batch,
    ) -> Option<Staged> {
        match op {
            Op::Append { records, reply } => match self.stage_append(&records, appends) {
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
                let result = self.check_in_flight(seq, touched).and_then(|_| {
                    self.shared.outbox.remove(seq_key(seq))?;
                    Ok(vec![Change::Ack { seq }])
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
                    .and_then(|_| self.stage_retry(seq, &error, not_before_ms));
                unit(result, reply)
            }
            Op::DeadLetter { seq, reason, reply } => {
                let result = self
                    .check_in_flight(seq, touched)
                    .and_then(|key| self.stage_dead(seq, key, &bounded_reason(&reason)));
                unit(result, reply)
            }
            Op::Requeue { seq, reply } => {
                let result = if touched.insert(seq) {
                    self.stage_requeue(seq)
                } else {
                    Err(StorageError::Busy { seq })
                };
                unit(result, reply)
            }
            Op::RequeueAll { reply } => {
                let result = self.stage_requeue_all(touched);
                count(result, reply)
            }
            Op::Park {
                now_ms,
                max_age_ms,
                reply,
            } => {
                let result = self.stage_park(now_ms, max_age_ms, touched);
                count(result, reply)
            }
            Op::Quarantine { seq, reason } => {
                if !touched.insert(seq) {
                    return None;
                }
                match self.stage_quarantine(seq, &reason) {
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
        batch: &mut sled::Batch,
    ) -> Result<(Vec<u64>, Vec<Change>), StorageError> {
        let mut seqs = Vec::with_capacity(records.len());
        let mut changes = Vec::with_capacity(records.len());
        for (i, new) in records.iter().enumerate() {
            let seq = self.next_seq + i as u64;
            let bytes = encode_record(&Record::from_new(seq, new))?;
            // Pair the write with a read-back check: what we store decodes.
            debug_assert!(decode_record(seq, &bytes).is_ok());
            batch.insert(&seq_key(seq), bytes);
            seqs.push(seq);
            changes.push(Change::Add {
                seq,
                key: key_hash(&new.interaction_key),
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
    ) -> Result<Vec<Change>, StorageError> {
        let Some(raw) = self.shared.outbox.get(seq_key(seq))? else {
            return Err(StorageError::NotInFlight { seq });
        };
        match decode_record(seq, &raw) {
            Ok(mut record) => {
                record.attempts = record.attempts.saturating_add(1);
                record.next_attempt_at_ms = not_before_ms;
                record.last_error = Some(bounded_reason(error));
                self.shared
                    .outbox
                    .insert(seq_key(seq), encode_record(&record)?)?;
                Ok(vec![Change::Retry { seq, not_before_ms }])
            }
            Err(e) => self.stage_quarantine_raw(seq, &raw, &e.to_string()),
        }
    }

    fn stage_dead(
        &self,
        seq: u64,
        key: KeyHash,
        reason: &str,
    ) -> Result<Vec<Change>, StorageError> {
        let Some(raw) = self.shared.outbox.get(seq_key(seq))? else {
            return Err(StorageError::NotInFlight { seq });
        };
        // Insert first, remove second: a crash in between leaves the record
        // in both trees, and open keeps the outbox copy (nothing is lost).
        self.shared
            .dead
            .insert(seq_key(seq), encode_dead_letter(seq, reason, &raw)?)?;
        self.shared.outbox.remove(seq_key(seq))?;
        Ok(vec![Change::ToDead { seq, key }])
    }

    fn stage_quarantine(&self, seq: u64, reason: &str) -> Result<Vec<Change>, StorageError> {
        match self.shared.outbox.get(seq_key(seq))? {
            Some(raw) => self.stage_quarantine_raw(seq, &raw, reason),
            None => Ok(Vec::new()),
        }
    }

    fn stage_quarantine_raw(
        &self,
        seq: u64,
        raw: &[u8],
        reason: &str,
    ) -> Result<Vec<Change>, StorageError> {
        warn!(seq, reason, "Corrupt record moved to the dead letters.");
        let reason = bounded_reason(&format!("corrupt: {reason}"));
        self.shared
            .dead
            .insert(seq_key(seq), encode_dead_letter(seq, &reason, raw)?)?;
        self.shared.outbox.remove(seq_key(seq))?;
        let mut index = self.shared.lock_index();
        if let Some(key) = index.in_flight_key(seq) {
            index.forget(seq, key);
        }
        Ok(vec![Change::DeadUnheld])
    }

    fn stage_requeue(&self, seq: u64) -> Result<Vec<Change>, StorageError> {
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
        self.shared
            .outbox
            .insert(seq_key(seq), encode_record(&record)?)?;
        self.shared.dead.remove(seq_key(seq))?;
        Ok(vec![Change::Requeue {
            seq,
            key: key_hash(&record.interaction_key),
        }])
    }

    fn stage_requeue_all(
        &self,
        touched: &mut HashSet<u64>,
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
            match self.stage_requeue(seq) {
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
                    changes.append(&mut self.stage_quarantine_raw(seq, &raw, &e.to_string())?);
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
            self.shared
                .dead
                .insert(seq_key(seq), encode_dead_letter(seq, &reason, &raw)?)?;
            self.shared.outbox.remove(seq_key(seq))?;
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
