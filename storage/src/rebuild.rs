//! Bringing sled in line with the log on open: scanning the log into the
//! live map, checking and repairing sled after an unclean stop, moving a
//! directory of the previous version (sled plus `edgecc.wal`) onto a log,
//! and the few writes open itself makes (through the log, like the
//! writer's).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use tracing::info;

use crate::error::StorageError;
use crate::fsync::sync_dir_named;
use crate::live::Live;
use crate::seglog::{SegLog, SyncStall, LOG_BUILDING, LOG_DIR};
use crate::wal::{self, decode_ops, encode_op, Wal};

/// Largest frame open writes (migration, repairs of the pending tree).
const OPEN_FRAME_BYTES: usize = 1024 * 1024;

/// Whether a sled tree is one of ours (the log holds exactly these).
pub(crate) fn tree_is_ours(name: &[u8]) -> bool {
    matches!(name, b"outbox" | b"pending" | b"dead" | b"meta") || name.starts_with(b"state/")
}

fn frame_error(message: String) -> StorageError {
    StorageError::Wal {
        path: LOG_DIR.into(),
        message: format!("a frame does not decode: {message}"),
    }
}

/// Opens the log and fills the live map from it.
pub(crate) fn scan(
    dir: &Path,
    seg_bytes: u64,
    stall: Arc<SyncStall>,
) -> Result<(SegLog, Live), StorageError> {
    let mut live = Live::default();
    let log = SegLog::open(dir, seg_bytes, stall, |seg, _, payload| {
        for op in decode_ops(payload).map_err(frame_error)? {
            live.note(seg, &op);
        }
        Ok(())
    })?;
    Ok((log, live))
}

/// Writes made while opening (index repairs), through the log: buffered
/// into frames, applied to sled at once (sled is never trusted after an
/// unclean stop, so it need not wait for the frame).
pub(crate) struct OpenLog<'a> {
    /// The log.
    pub(crate) log: &'a mut SegLog,
    /// Its live map.
    pub(crate) live: &'a mut Live,
    /// Ops not yet in a frame.
    payload: Vec<u8>,
}

impl<'a> OpenLog<'a> {
    pub(crate) fn new(log: &'a mut SegLog, live: &'a mut Live) -> OpenLog<'a> {
        OpenLog {
            log,
            live,
            payload: Vec::new(),
        }
    }

    /// A blind write, applied to sled now, logged with the next frame.
    pub(crate) fn put(
        &mut self,
        tree: &sled::Tree,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), StorageError> {
        match value {
            Some(v) => drop(tree.insert(key, v)?),
            None => drop(tree.remove(key)?),
        }
        encode_op(&mut self.payload, &tree.name(), key, value);
        Ok(())
    }

    /// Ends a unit of writes that must stay together: frames are cut only
    /// here.
    pub(crate) fn end_unit(&mut self) -> Result<(), StorageError> {
        if self.payload.len() >= OPEN_FRAME_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes what is buffered as one frame.
    pub(crate) fn flush(&mut self) -> Result<(), StorageError> {
        if self.payload.is_empty() {
            return Ok(());
        }
        let seg = self
            .log
            .append(&self.payload)
            .map_err(|e| StorageError::Commit {
                message: format!("log: {e:?}"),
            })?;
        for op in decode_ops(&self.payload).map_err(frame_error)? {
            self.live.note(seg, &op);
        }
        self.payload.clear();
        Ok(())
    }
}

/// What a check of sled against the log found and fixed.
#[derive(Debug, Default)]
pub(crate) struct Repair {
    /// Entries sled had that the log does not (removed).
    pub(crate) removed: u64,
    /// Live entries sled lacked or held another value of (written).
    pub(crate) written: u64,
}

/// Makes sled hold exactly the log's live entries: removes what the log
/// does not hold, and writes every live value sled lacks or differs from.
/// Run after an unclean stop, before anything reads sled.
pub(crate) fn repair(db: &sled::Db, log: &SegLog, live: &Live) -> Result<Repair, StorageError> {
    let mut done = Repair::default();
    for name in db.tree_names() {
        if !tree_is_ours(&name) {
            continue;
        }
        let tree = db.open_tree(&name)?;
        let mut stale = Vec::new();
        for key in tree.iter().keys() {
            let key = key?;
            if !live.contains(&name, &key) {
                stale.push(key);
            }
        }
        for key in stale {
            tree.remove(key)?;
            done.removed += 1;
        }
    }
    // A key's latest put is in exactly one segment, so segments are
    // repaired independently: on two threads.
    let segs = log.segments();
    let (first, second) = segs.split_at(segs.len().div_ceil(2));
    let written = std::thread::scope(|scope| {
        let other = scope.spawn(|| repair_values(db, log, live, second));
        let mine = repair_values(db, log, live, first);
        let theirs = other.join().unwrap_or_else(|panic| {
            Err(StorageError::Commit {
                message: format!(
                    "sled panicked during the check against the log: {}",
                    crate::sled_files::panic_message(&*panic)
                ),
            })
        });
        Ok::<u64, StorageError>(mine? + theirs?)
    })?;
    done.written = written;
    Ok(done)
}

/// Writes into sled every live value whose latest put is in one of
/// `segs` and that sled lacks or holds differently (only the last put of a
/// key within a segment counts). Returns how many it wrote.
fn repair_values(
    db: &sled::Db,
    log: &SegLog,
    live: &Live,
    segs: &[u64],
) -> Result<u64, StorageError> {
    let mut written = 0;
    let mut trees: HashMap<Vec<u8>, sled::Tree> = HashMap::new();
    for &seg in segs {
        let area = log.segment_area(seg)?;
        let mut ops = Vec::new();
        for payload in crate::seglog::payloads(&area) {
            ops.extend(decode_ops(payload).map_err(frame_error)?);
        }
        let mut last: HashMap<(&[u8], &[u8]), usize> = HashMap::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            last.insert((op.tree, op.key), i);
        }
        for (i, op) in ops.iter().enumerate() {
            let Some(value) = op.value else { continue };
            if last.get(&(op.tree, op.key)) != Some(&i) || !live.is_in(seg, op.tree, op.key) {
                continue;
            }
            let tree = match trees.get(op.tree) {
                Some(t) => t,
                None => {
                    let t = db.open_tree(op.tree)?;
                    trees.entry(op.tree.to_vec()).or_insert(t)
                }
            };
            if tree.get(op.key)?.as_deref() != Some(value) {
                tree.insert(op.key, value)?;
                written += 1;
            }
        }
    }
    Ok(written)
}

/// Moves a directory without a log (fresh, or of the previous version,
/// where sled plus `edgecc.wal` were the truth) onto a log: replays the old
/// write-ahead log into sled, makes sled durable, copies every tree into a
/// new log built aside and renamed into place, then removes the old log.
/// A crash before the rename leaves the old layout, migrated again on the
/// next open; after it, the log is the truth.
pub(crate) fn migrate(dir: &Path, db: &sled::Db, seg_bytes: u64) -> Result<(), StorageError> {
    let old_wal = dir.join(wal::WAL_FILE);
    if old_wal.exists() {
        let mut trees = HashMap::new();
        // Its frames go into sled, and from there into the new log.
        Wal::open(dir, wal::WAL_BYTES_DEFAULT, |_, payload| {
            crate::writer::replay_frame(db, payload, &mut trees)
        })?;
    }
    let building = dir.join(LOG_BUILDING);
    SegLog::create_at(&building, seg_bytes)?;
    let mut live = Live::default();
    let mut log = SegLog::open_at(&building, seg_bytes, Arc::default(), |_, _, _| Ok(()))?;
    let mut entries = 0u64;
    {
        let mut out = OpenLog::new(&mut log, &mut live);
        let mut names = db.tree_names();
        names.sort();
        for name in names {
            if !tree_is_ours(&name) {
                continue;
            }
            for item in db.open_tree(&name)?.iter() {
                let (k, v) = item?;
                encode_op(&mut out.payload, &name, &k, Some(&v));
                entries += 1;
                out.end_unit()?;
            }
        }
        out.flush()?;
    }
    drop(log);
    SegLog::install(dir)?;
    if old_wal.exists() {
        std::fs::remove_file(&old_wal)
            .map_err(|e| StorageError::io(format!("remove {}", old_wal.display()), e))?;
    }
    let _ = std::fs::remove_file(old_wal.with_extension("wal.new"));
    sync_dir_named(dir)?;
    if entries > 0 {
        info!(dir = %dir.display(), entries, "Storage moved onto its log.");
    }
    Ok(())
}

/// Removes what a migration cut short after its log was installed leaves:
/// the previous version's `edgecc.wal` (its frames are in the log) and a
/// half-built `log.new`.
pub(crate) fn remove_leftovers(dir: &Path) -> Result<(), StorageError> {
    let mut removed = false;
    for name in [wal::WAL_FILE, "edgecc.wal.new"] {
        let path = dir.join(name);
        if path.exists() {
            std::fs::remove_file(&path)
                .map_err(|e| StorageError::io(format!("remove {}", path.display()), e))?;
            removed = true;
        }
    }
    let building = dir.join(LOG_BUILDING);
    if building.exists() {
        std::fs::remove_dir_all(&building)
            .map_err(|e| StorageError::io(format!("remove {}", building.display()), e))?;
        removed = true;
    }
    if removed {
        sync_dir_named(dir)?;
    }
    Ok(())
}
