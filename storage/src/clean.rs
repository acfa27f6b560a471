//! The clean marker, `<dir>/edgecc.clean`: written last on a clean close,
//! once sled has been flushed and its files `fdatasync`ed, naming where the
//! log ended. Open takes it away (and syncs the directory) before anything
//! else writes, and trusts sled without checking it only when the marker
//! names exactly where the log ends now. Any other stop leaves no marker,
//! and sled is checked against the log (see the `rebuild` module).
//!
//! Format: magic "EDGECCC1" | seg u64 LE | offset u64 LE | lsn u64 LE
//! | crc32 u32 LE.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use tracing::warn;

use crate::error::StorageError;
use crate::fsync::sync_dir_named;
use crate::seglog::Position;

/// File name of the marker.
pub const CLEAN_FILE: &str = "edgecc.clean";

const MAGIC: &[u8; 8] = b"EDGECCC1";
const LEN: usize = 8 + 8 + 8 + 8 + 4;

fn encode(pos: Position) -> [u8; LEN] {
    let mut out = [0u8; LEN];
    out[..8].copy_from_slice(MAGIC);
    out[8..16].copy_from_slice(&pos.seg.to_le_bytes());
    out[16..24].copy_from_slice(&pos.offset.to_le_bytes());
    out[24..32].copy_from_slice(&pos.lsn.to_le_bytes());
    let crc = crc32fast::hash(&out[..32]);
    out[32..].copy_from_slice(&crc.to_le_bytes());
    out
}

fn decode(bytes: &[u8]) -> Option<Position> {
    if bytes.len() != LEN || &bytes[..8] != MAGIC {
        return None;
    }
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or_default());
    let crc = u32::from_le_bytes(bytes[32..36].try_into().unwrap_or_default());
    (crc32fast::hash(&bytes[..32]) == crc).then(|| Position {
        seg: u64_at(8),
        offset: u64_at(16),
        lsn: u64_at(24),
    })
}

/// Writes the marker (aside, synced, renamed, directory synced).
pub(crate) fn write(dir: &Path, pos: Position) -> Result<(), StorageError> {
    let path = dir.join(CLEAN_FILE);
    let tmp = dir.join(format!("{CLEAN_FILE}.tmp"));
    let io = |what: &str, e| StorageError::io(format!("{what} {}", tmp.display()), e);
    let mut file = File::create(&tmp).map_err(|e| io("create", e))?;
    file.write_all(&encode(pos))
        .and_then(|()| file.sync_all())
        .map_err(|e| io("write", e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io("rename", e))?;
    sync_dir_named(dir)
}

/// Reads and removes the marker; `None` when there was none (or it does
/// not read: then sled is checked, which is always safe).
pub(crate) fn take(dir: &Path) -> Result<Option<Position>, StorageError> {
    let path = dir.join(CLEAN_FILE);
    let _ = std::fs::remove_file(dir.join(format!("{CLEAN_FILE}.tmp")));
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io(format!("read {}", path.display()), e)),
    };
    std::fs::remove_file(&path)
        .map_err(|e| StorageError::io(format!("remove {}", path.display()), e))?;
    sync_dir_named(dir)?;
    let pos = decode(&bytes);
    if pos.is_none() {
        warn!(path = %path.display(), "Clean marker does not read; checking sled against the log.");
    }
    Ok(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_is_read_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pos = Position {
            seg: 3,
            offset: 8192,
            lsn: 77,
        };
        write(dir.path(), pos).expect("write");
        assert_eq!(take(dir.path()).expect("take"), Some(pos));
        assert_eq!(take(dir.path()).expect("take again"), None);
        std::fs::write(dir.path().join(CLEAN_FILE), b"garbage").expect("write");
        assert_eq!(take(dir.path()).expect("take garbage"), None);
    }
}
