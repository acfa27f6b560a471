//! Backups of a storage directory: a point-in-time copy of every tree,
//! taken while the daemon runs, and a restore that checks the whole file
//! before it writes anything.
//!
//! # Consistency
//!
//! Only the group-commit writer thread changes sled once a [`Storage`] is
//! open. [`Storage::backup`] hands the writer an `Op::Snapshot`; the writer
//! first commits the group it has collected so far, then copies every tree
//! before it takes the next operation. The copy therefore holds exactly the
//! groups that were durable at that moment, across all trees at once: a
//! record and its `pending` entry, a dead letter and the removal of its
//! outbox record, a state value. Writers wait (bounded by the writer's
//! channel, [`crate::WRITER_QUEUE_MAX`]) while the copy is taken; the
//! actors never wait for the outbox, so calls are not delayed. Records in
//! flight to the CRM are saved as pending: after a restore they are sent
//! again, which the CRM's idempotency keys absorb.
//!
//! # Format (version 1)
//!
//! ```text
//! magic        8 bytes  "EDGECCBK"
//! version      u32 BE   1
//! created_at   u64 BE   ms since the epoch
//! then, per tree:     0x01, name_len u32 BE, name
//!      per entry:     0x02, key_len u32 BE, key, value_len u32 BE, value
//! end:                0xFF, trees u64 BE, entries u64 BE,
//!                     crc32 u32 BE of every byte before it
//! ```
//!
//! Trees are `outbox`, `pending`, `dead`, `meta` and every `state/…` tree.
//! [`verify`] reads a file to its end and checks the structure, the counts,
//! the checksum and that every outbox record and dead letter decodes;
//! [`restore`] runs it first and writes only when it passes.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use tracing::info;

use crate::error::StorageError;
use crate::fsync::sync_dir_named;
use crate::record::{decode_dead_letter, decode_record, key_seq};
use crate::{
    lock_dir, wait_for_sled_release, Shared, Storage, StorageConfig, LOCK_FILE, RESTORE_MARKER,
};

/// First bytes of every backup file.
pub const BACKUP_MAGIC: &[u8; 8] = b"EDGECCBK";
/// The format version this build writes and the newest it reads.
pub const BACKUP_VERSION: u32 = 1;
/// Longest tree name accepted in a backup.
const TREE_NAME_BYTES_MAX: usize = 256;
/// Longest key accepted in a backup (ours are 8 bytes; state keys are
/// short ids).
const KEY_BYTES_MAX: usize = 64 * 1024;
/// Largest value accepted in a backup: a record is far smaller; the bound
/// only stops a damaged length from allocating gigabytes.
const VALUE_BYTES_MAX: usize = 64 * 1024 * 1024;

const TAG_TREE: u8 = 0x01;
const TAG_ENTRY: u8 = 0x02;
const TAG_END: u8 = 0xFF;

use crate::rebuild::tree_is_ours;

/// What a backup holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BackupSummary {
    /// When it was taken, ms since the epoch.
    pub created_at_ms: u64,
    /// Trees copied.
    pub trees: u64,
    /// Entries copied, all trees together.
    pub entries: u64,
    /// Pending outbox records.
    pub outbox_records: u64,
    /// Dead letters.
    pub dead_letters: u64,
    /// Entries of the `state/…` trees.
    pub state_entries: u64,
    /// Size of the file in bytes.
    pub bytes: u64,
}

/// A writer that counts and checksums what passes through it.
struct Checked<W> {
    inner: W,
    crc: crc32fast::Hasher,
    bytes: u64,
}

impl<W: Write> Write for Checked<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Copies every tree of `shared` to `file` and syncs it. Runs on the
/// writer thread between two groups (see the module header).
pub(crate) fn write_snapshot(
    shared: &Shared,
    file: &File,
    created_at_ms: u64,
) -> Result<BackupSummary, StorageError> {
    let io = |e: std::io::Error| StorageError::io("write the backup", e);
    let mut out = Checked {
        inner: BufWriter::with_capacity(1 << 20, file),
        crc: crc32fast::Hasher::new(),
        bytes: 0,
    };
    let mut summary = BackupSummary {
        created_at_ms,
        ..BackupSummary::default()
    };
    out.write_all(BACKUP_MAGIC).map_err(io)?;
    out.write_all(&BACKUP_VERSION.to_be_bytes()).map_err(io)?;
    out.write_all(&created_at_ms.to_be_bytes()).map_err(io)?;
    let sled = shared.sled()?;
    let mut names: Vec<sled::IVec> = sled
        .db
        .tree_names()
        .into_iter()
        .filter(|n| tree_is_ours(n))
        .collect();
    names.sort();
    for name in names {
        let tree = sled.db.open_tree(&name)?;
        out.write_all(&[TAG_TREE]).map_err(io)?;
        write_bytes(&mut out, &name).map_err(io)?;
        summary.trees += 1;
        for item in tree.iter() {
            let (k, v) = item?;
            out.write_all(&[TAG_ENTRY]).map_err(io)?;
            write_bytes(&mut out, &k).map_err(io)?;
            write_bytes(&mut out, &v).map_err(io)?;
            summary.entries += 1;
            count(&mut summary, &name);
        }
    }
    out.write_all(&[TAG_END]).map_err(io)?;
    out.write_all(&summary.trees.to_be_bytes()).map_err(io)?;
    out.write_all(&summary.entries.to_be_bytes()).map_err(io)?;
    let crc = out.crc.clone().finalize();
    out.inner.write_all(&crc.to_be_bytes()).map_err(io)?;
    summary.bytes = out.bytes + 4;
    out.inner.flush().map_err(io)?;
    drop(out);
    file.sync_all().map_err(io)?;
    Ok(summary)
}

fn write_bytes(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| std::io::Error::other("entry too large"))?;
    out.write_all(&len.to_be_bytes())?;
    out.write_all(bytes)
}

fn count(summary: &mut BackupSummary, tree: &[u8]) {
    match tree {
        b"outbox" => summary.outbox_records += 1,
        b"dead" => summary.dead_letters += 1,
        t if t.starts_with(b"state/") => summary.state_entries += 1,
        _ => {}
    }
}

/// A reader that checksums what passes through it.
struct Checking<R> {
    inner: R,
    crc: crc32fast::Hasher,
    bytes: u64,
}

impl<R: Read> Checking<R> {
    fn exact(&mut self, buf: &mut [u8]) -> Result<(), String> {
        self.inner.read_exact(buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                format!("the file ends early, at byte {} (truncated?)", self.bytes)
            }
            _ => format!("read error at byte {}: {e}", self.bytes),
        })?;
        self.crc.update(buf);
        self.bytes += buf.len() as u64;
        Ok(())
    }

    fn u8(&mut self) -> Result<u8, String> {
        let mut b = [0u8; 1];
        self.exact(&mut b)?;
        Ok(b[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        let mut b = [0u8; 4];
        self.exact(&mut b)?;
        Ok(u32::from_be_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, String> {
        let mut b = [0u8; 8];
        self.exact(&mut b)?;
        Ok(u64::from_be_bytes(b))
    }

    fn bytes(&mut self, max: usize, what: &str) -> Result<Vec<u8>, String> {
        let len = self.u32()? as usize;
        if len > max {
            return Err(format!(
                "a {what} of {len} bytes at byte {} is larger than {max} (damaged file?)",
                self.bytes
            ));
        }
        let mut v = vec![0u8; len];
        self.exact(&mut v)?;
        Ok(v)
    }
}

/// One step of reading a backup.
enum Item<'a> {
    /// A new tree starts.
    Tree(&'a [u8]),
    /// An entry of the current tree.
    Entry(&'a [u8], &'a [u8]),
}

/// Reads a whole backup, calling `visit` for every tree and entry, and
/// checks structure, counts and checksum. Errors are sentences.
fn read_backup(
    reader: impl Read,
    mut visit: impl FnMut(Item<'_>) -> Result<(), String>,
) -> Result<BackupSummary, String> {
    let mut r = Checking {
        inner: BufReader::with_capacity(1 << 20, reader),
        crc: crc32fast::Hasher::new(),
        bytes: 0,
    };
    let mut magic = [0u8; 8];
    r.exact(&mut magic)?;
    if &magic != BACKUP_MAGIC {
        return Err("not an edgecc backup (wrong magic bytes)".to_string());
    }
    let version = r.u32()?;
    if version == 0 || version > BACKUP_VERSION {
        return Err(format!(
            "backup format version {version} is not supported by this edgecc (reads 1 to {BACKUP_VERSION})"
        ));
    }
    let mut summary = BackupSummary {
        created_at_ms: r.u64()?,
        ..BackupSummary::default()
    };
    let mut tree: Option<Vec<u8>> = None;
    let mut seen = std::collections::HashSet::new();
    loop {
        match r.u8()? {
            TAG_TREE => {
                let name = r.bytes(TREE_NAME_BYTES_MAX, "tree name")?;
                if !tree_is_ours(&name) {
                    return Err(format!(
                        "unknown tree {:?} in the backup",
                        String::from_utf8_lossy(&name)
                    ));
                }
                if !seen.insert(name.clone()) {
                    return Err(format!(
                        "tree {:?} appears twice",
                        String::from_utf8_lossy(&name)
                    ));
                }
                visit(Item::Tree(&name))?;
                summary.trees += 1;
                tree = Some(name);
            }
            TAG_ENTRY => {
                let Some(name) = &tree else {
                    return Err("an entry comes before any tree".to_string());
                };
                let key = r.bytes(KEY_BYTES_MAX, "key")?;
                let value = r.bytes(VALUE_BYTES_MAX, "value")?;
                check_entry(name, &key, &value)?;
                visit(Item::Entry(&key, &value))?;
                summary.entries += 1;
                count(&mut summary, name);
            }
            TAG_END => {
                let trees = r.u64()?;
                let entries = r.u64()?;
                if trees != summary.trees || entries != summary.entries {
                    return Err(format!(
                        "the trailer counts {trees} trees and {entries} entries, the file holds {} and {}",
                        summary.trees, summary.entries
                    ));
                }
                let computed = r.crc.clone().finalize();
                let mut stored = [0u8; 4];
                r.inner
                    .read_exact(&mut stored)
                    .map_err(|_| "the file ends before its checksum (truncated?)".to_string())?;
                if u32::from_be_bytes(stored) != computed {
                    return Err("checksum mismatch: the file is damaged".to_string());
                }
                let mut extra = [0u8; 1];
                if r.inner.read(&mut extra).map_err(|e| e.to_string())? != 0 {
                    return Err("bytes after the end of the backup".to_string());
                }
                summary.bytes = r.bytes + 4;
                return Ok(summary);
            }
            tag => {
                return Err(format!(
                    "unknown item tag {tag:#04x} at byte {} (damaged file?)",
                    r.bytes - 1
                ))
            }
        }
    }
}

/// Outbox records and dead letters must decode (their own CRCs too).
fn check_entry(tree: &[u8], key: &[u8], value: &[u8]) -> Result<(), String> {
    match tree {
        b"outbox" => {
            let seq = key_seq(key).ok_or("an outbox key is not 8 bytes")?;
            decode_record(seq, value)
                .map(drop)
                .map_err(|e| format!("outbox record {seq} does not decode: {e}"))
        }
        b"dead" => {
            let seq = key_seq(key).ok_or("a dead-letter key is not 8 bytes")?;
            decode_dead_letter(seq, value)
                .map(drop)
                .map_err(|e| format!("dead letter {seq} does not decode: {e}"))
        }
        _ => Ok(()),
    }
}

/// Checks a backup file completely (structure, counts, checksum, every
/// record decodes) without writing anything.
pub fn verify(path: &Path) -> Result<BackupSummary, StorageError> {
    let file =
        File::open(path).map_err(|e| StorageError::io(format!("open {}", path.display()), e))?;
    read_backup(file, |_| Ok(())).map_err(|message| StorageError::Backup {
        path: path.to_path_buf(),
        message,
    })
}

/// What [`restore`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreSummary {
    /// What the backup held.
    pub backup: BackupSummary,
    /// Pending records after reopening the restored directory.
    pub depth: u64,
    /// Dead letters after reopening.
    pub dead_letters: u64,
}

/// Restores `backup` into `dir`.
///
/// Checks the whole file first ([`verify`]); refuses a directory another
/// process holds ([`StorageError::Locked`]) and one that is not empty
/// ([`StorageError::NotEmpty`]) unless `force`, in which case its contents
/// are removed first. Then writes every tree, makes it durable, and opens
/// the result once (index recovery) to check it.
///
/// From before the first removal until everything is durable, a synced
/// marker file says a restore is under way: if it is cut short (a crash,
/// a power cut, a full disk), [`Storage::open`] refuses the directory
/// ([`StorageError::RestoreUnfinished`]) instead of serving partial data,
/// and running the restore again finishes the job.
pub fn restore(
    dir: &Path,
    backup: &Path,
    config: StorageConfig,
    force: bool,
) -> Result<RestoreSummary, StorageError> {
    let summary = verify(backup)?;
    std::fs::create_dir_all(dir)
        .map_err(|e| StorageError::io(format!("create {}", dir.display()), e))?;
    let lock = lock_dir(dir)?;
    let others = dir_entries_but_ours(dir)?;
    if !others.is_empty() && !force {
        return Err(StorageError::NotEmpty {
            path: dir.to_path_buf(),
        });
    }
    let marker = dir.join(RESTORE_MARKER);
    let io = |what: &str, path: &Path, e| StorageError::io(format!("{what} {}", path.display()), e);
    std::fs::write(&marker, format!("restoring {}\n", backup.display()))
        .and_then(|()| File::open(&marker)?.sync_all())
        .map_err(|e| io("write", &marker, e))?;
    sync_dir_named(dir)?;
    for path in others {
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(|e| io("remove", &path, e))?;
    }
    write_trees(dir, backup, &config)?;
    std::fs::remove_file(&marker).map_err(|e| io("remove", &marker, e))?;
    sync_dir_named(dir)?;
    drop(lock);
    let storage = Storage::open(dir, config)?;
    let stats = storage.outbox().stats(0)?;
    drop(storage);
    if stats.depth != summary.outbox_records || stats.dead_letters != summary.dead_letters {
        return Err(StorageError::Backup {
            path: backup.to_path_buf(),
            message: format!(
                "restored directory holds {} records and {} dead letters, the backup {} and {}",
                stats.depth, stats.dead_letters, summary.outbox_records, summary.dead_letters
            ),
        });
    }
    info!(
        dir = %dir.display(),
        records = stats.depth,
        dead_letters = stats.dead_letters,
        entries = summary.entries,
        "Backup restored."
    );
    Ok(RestoreSummary {
        backup: summary,
        depth: stats.depth,
        dead_letters: stats.dead_letters,
    })
}

/// Everything in `dir` except our lock file and restore marker.
fn dir_entries_but_ours(dir: &Path) -> Result<Vec<PathBuf>, StorageError> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir)
        .map_err(|e| StorageError::io(format!("list {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io(format!("list {}", dir.display()), e))?;
        if entry.file_name() != LOCK_FILE && entry.file_name() != RESTORE_MARKER {
            out.push(entry.path());
        }
    }
    Ok(out)
}

/// Second pass over the (verified) file: writes every tree into a fresh
/// sled database in `dir`, then makes it durable.
fn write_trees(dir: &Path, backup: &Path, config: &StorageConfig) -> Result<(), StorageError> {
    let db = crate::sled_files::sled_config(dir, config).open()?;
    let file = File::open(backup)
        .map_err(|e| StorageError::io(format!("open {}", backup.display()), e))?;
    let mut tree: Option<sled::Tree> = None;
    let mut sled_error: Option<sled::Error> = None;
    // Key by key, not `apply_batch`: see `Group::apply` in the writer.
    let read = read_backup(file, |item| {
        let mut failed = |e: sled::Error| {
            sled_error = Some(e);
            "write failed".to_string()
        };
        match item {
            Item::Tree(name) => {
                tree = Some(db.open_tree(name).map_err(&mut failed)?);
            }
            Item::Entry(k, v) => {
                if let Some(t) = &tree {
                    t.insert(k, v).map_err(&mut failed)?;
                }
            }
        }
        Ok(())
    });
    if let Some(e) = sled_error {
        return Err(StorageError::Sled(e));
    }
    read.map_err(|message| StorageError::Backup {
        path: backup.to_path_buf(),
        message: format!("{message} (changed since it was checked?); {} is incomplete: restore again with --force", dir.display()),
    })?;
    crate::sled_files::sync_sled(dir, &db)
        .map_err(|e| StorageError::io("sync the restored directory", e))?;
    // Every tree handle keeps sled open: drop them all before waiting.
    drop(tree);
    drop(db);
    wait_for_sled_release(dir, crate::SLED_RELEASE_WAIT);
    Ok(())
}

impl Storage {
    /// Writes a point-in-time backup of every tree to `file` (see the
    /// module header) and syncs it. The file should be empty and opened
    /// for writing; it is written from the storage's writer thread.
    pub async fn backup(
        &self,
        file: File,
        created_at_ms: u64,
    ) -> Result<BackupSummary, StorageError> {
        // A backup copies sled's trees: it waits for sled to be checked.
        while !self.inner.shared.is_checked() {
            if self.inner.is_closed() {
                return Err(StorageError::Closed);
            }
            if let Some(why) = self.inner.shared.lock_health().index_check_error.clone() {
                return Err(StorageError::Commit {
                    message: format!(
                        "no backup: sled could not be checked against the log ({why})"
                    ),
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.inner
            .send(crate::writer::Op::Snapshot {
                file,
                created_at_ms,
                reply: tx,
            })
            .await?;
        rx.await.map_err(|_| StorageError::Closed)?
    }
}
