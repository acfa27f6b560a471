//! Errors of the storage crate. Write-path errors hand the caller's data back.

use std::path::PathBuf;

use crate::record::NewRecord;

/// An error of an outbox, dead-letter or state operation.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Another process (or another handle in this process) holds the
    /// directory: the daemon is running. Use its admin socket or stop it.
    #[error("storage directory {path} is locked by another process (is the daemon running?)")]
    Locked {
        /// The storage directory.
        path: PathBuf,
    },
    /// A restore into this directory was started and did not finish (a
    /// crash or power cut during `edgecc restore`): what it holds is
    /// partial, so it is not opened.
    #[error("a restore into {path} did not finish, so its data is incomplete: run the restore again with --force")]
    RestoreUnfinished {
        /// The storage directory.
        path: PathBuf,
    },
    /// A file-system call failed (open, create, fsync, read_dir).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// sled reported an error (I/O inside sled, or corruption it detected).
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    /// The group commit could not make a batch durable (flush or fsync
    /// failed, e.g. disk full). The change may or may not survive a restart;
    /// nothing acknowledged earlier is affected.
    #[error("commit failed: {message}")]
    Commit {
        /// The underlying error, rendered (shared by every op of the group).
        message: String,
    },
    /// The write-ahead log cannot be read safely (unknown version, damaged
    /// header): open refuses rather than ignore writes it may hold.
    #[error("write-ahead log {path}: {message}")]
    Wal {
        /// The log file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// `ack`, `retry` or `dead_letter` named a sequence that is not in
    /// flight (never taken, already settled, or taken before a reopen).
    #[error("record {seq} is not in flight")]
    NotInFlight {
        /// The sequence named.
        seq: u64,
    },
    /// `requeue` named a sequence that is not a dead letter.
    #[error("no dead letter with sequence {seq}")]
    NotDeadLetter {
        /// The sequence named.
        seq: u64,
    },
    /// Another operation on this sequence is being committed right now.
    #[error("record {seq} is busy with another operation")]
    Busy {
        /// The sequence named.
        seq: u64,
    },
    /// A dead letter's bytes do not decode, so it cannot be re-queued; it
    /// stays listed with its raw bytes.
    #[error("dead letter {seq} does not decode: {reason}")]
    Undecodable {
        /// The sequence named.
        seq: u64,
        /// The decode error.
        reason: String,
    },
    /// A value could not be encoded (only over-sized values can fail).
    #[error("encode: {0}")]
    Encode(#[from] bincode::Error),
    /// A state tree name is empty or too long.
    #[error("invalid state tree name {name:?}")]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// A backup file is not usable: damaged, truncated, of a newer format,
    /// or its content did not come back whole after a restore.
    #[error("backup {path}: {message}")]
    Backup {
        /// The backup file.
        path: PathBuf,
        /// What is wrong, in a sentence.
        message: String,
    },
    /// A restore target holds data already (restore with `force` replaces it).
    #[error("{path} is not empty: restoring would replace its data (use --force to do so)")]
    NotEmpty {
        /// The directory.
        path: PathBuf,
    },
    /// The writer thread is gone (the storage is shutting down).
    #[error("storage is closed")]
    Closed,
}

impl StorageError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> StorageError {
        StorageError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Why an append was refused.
#[derive(Debug, thiserror::Error)]
pub enum AppendFailure {
    /// A body exceeds [`crate::BODY_BYTES_MAX`].
    #[error("record {index} body is {len} bytes, more than the {max} allowed")]
    BodyTooLarge {
        /// Position of the record in the batch.
        index: usize,
        /// Its body length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A correlation id or interaction key exceeds [`crate::ID_BYTES_MAX`].
    #[error("record {index} {field} is {len} bytes, more than the {max} allowed")]
    IdTooLong {
        /// Position of the record in the batch.
        index: usize,
        /// `correlation_id` or `interaction_key`.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The batch holds more than [`crate::BATCH_RECORDS_MAX`] records.
    #[error("batch of {len} records, more than the {max} allowed")]
    BatchTooLarge {
        /// Records in the batch.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// `try_append_batch` found the writer queue full (in bytes or in
    /// operations): the disk is slow or stalled. Nothing was queued.
    #[error("the storage writer queue is full ({queued_bytes} bytes queued, at most {max_bytes}): the disk is slow or stalled")]
    QueueFull {
        /// Bytes queued when it was refused.
        queued_bytes: u64,
        /// The queue's bound in bytes.
        max_bytes: u64,
    },
    /// Writing or syncing failed (disk full, I/O error). The records were not
    /// acknowledged; a later restart may still find them (at-least-once, the
    /// correlation id deduplicates at the CRM).
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// An append that failed: the reason, and the records handed back untouched.
#[derive(Debug, thiserror::Error)]
#[error("append of {} record(s) failed: {failure}", records.len())]
pub struct AppendError {
    /// Why it failed.
    pub failure: AppendFailure,
    /// The caller's records, handed back so nothing is lost on this path.
    pub records: Vec<NewRecord>,
}
