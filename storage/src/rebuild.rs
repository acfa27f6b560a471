//! Opening the log: scanning it into the live map, moving a directory of
//! the previous version (sled plus `edgecc.wal`) onto a log, and the few
//! writes open itself makes (through the log, like the writer's). sled is
//! checked against the log afterwards, in the background (`check`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use tracing::info;

use crate::error::StorageError;
use crate::fsync::sync_dir_named;
use crate::live::Live;
use crate::live_file;
use crate::seglog::{SegLog, SyncStall, LOG_BUILDING, LOG_DIR};
use crate::wal::{self, decode_ops, encode_op, Wal};
use crate::Shared;

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

/// Opens the log and fills the live map: from the saved map and the
/// frames after it when there is a usable one (see `live_file`), else
/// from every frame. Returns how many frames it read too.
pub(crate) fn scan(
    dir: &Path,
    seg_bytes: u64,
    stall: Arc<SyncStall>,
) -> Result<(SegLog, Live, u64), StorageError> {
    let saved =
        live_file::load(&dir.join(LOG_DIR)).filter(|(pos, _)| SegLog::position_fits(dir, *pos));
    let (from, mut live) = match saved {
        Some((pos, live)) => (Some(pos), live),
        None => (None, Live::default()),
    };
    let mut frames = 0u64;
    let log = SegLog::open(
        dir,
        seg_bytes,
        stall,
        from,
        |seg, _, payload_off, payload| {
            frames += 1;
            live.note_frame(seg, payload_off, payload)
                .map_err(frame_error)
        },
    )?;
    let dropped = live.keep_segments(log.segments());
    if from.is_none() {
        // Filled frame by frame, in log order: half-full B-tree nodes.
        live.compact();
    }
    info!(
        saved_map = from.is_some(),
        frames_read = frames,
        dropped,
        "Live map loaded."
    );
    Ok((log, live, frames))
}

/// Writes made while opening (index repairs), through the log: buffered
/// into frames, noted in the live map when logged, and applied to sled
/// then only if it is trusted (otherwise the background check brings them
/// over with everything else). Reads made meanwhile must not need them
/// before `flush` (recovery never reads back what it wrote).
pub(crate) struct OpenLog<'a> {
    /// The log.
    pub(crate) log: &'a mut SegLog,
    /// Live map and sled.
    shared: &'a Shared,
    /// Whether sled is trusted once open ends (it is not marked so while
    /// recovery reads, so that those reads come from the log).
    sled_trusted: bool,
    /// Ops not yet in a frame.
    payload: Vec<u8>,
}

impl<'a> OpenLog<'a> {
    pub(crate) fn new(log: &'a mut SegLog, shared: &'a Shared, sled_trusted: bool) -> OpenLog<'a> {
        OpenLog {
            log,
            shared,
            sled_trusted,
            payload: Vec::new(),
        }
    }

    /// A blind write, logged with the next frame.
    pub(crate) fn put(
        &mut self,
        tree: &[u8],
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), StorageError> {
        encode_op(&mut self.payload, tree, key, value);
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
        let (seg, payload_off) =
            self.log
                .append(&self.payload)
                .map_err(|e| StorageError::Commit {
                    message: format!("log: {e:?}"),
                })?;
        self.shared
            .lock_live()
            .note_frame(seg, payload_off, &self.payload)
            .map_err(frame_error)?;
        if self.sled_trusted {
            let sled = self.shared.sled()?;
            for op in decode_ops(&self.payload).map_err(frame_error)? {
                let tree = sled.tree(op.tree)?;
                match op.value {
                    Some(v) => drop(tree.insert(op.key, v)?),
                    None => drop(tree.remove(op.key)?),
                }
            }
        }
        self.payload.clear();
        Ok(())
    }
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
    let mut log = SegLog::open_at(&building, seg_bytes, Arc::default(), None, |_, _, _, _| {
        Ok(())
    })?;
    let mut entries = 0u64;
    let mut payload = Vec::new();
    let append = |log: &mut SegLog, payload: &mut Vec<u8>| {
        if payload.is_empty() {
            return Ok(());
        }
        log.append(payload).map_err(|e| StorageError::Commit {
            message: format!("log: {e:?}"),
        })?;
        payload.clear();
        Ok::<(), StorageError>(())
    };
    let mut names = db.tree_names();
    names.sort();
    for name in names {
        if !tree_is_ours(&name) {
            continue;
        }
        for item in db.open_tree(&name)?.iter() {
            let (k, v) = item?;
            encode_op(&mut payload, &name, &k, Some(&v));
            entries += 1;
            if payload.len() >= OPEN_FRAME_BYTES {
                append(&mut log, &mut payload)?;
            }
        }
    }
    append(&mut log, &mut payload)?;
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
