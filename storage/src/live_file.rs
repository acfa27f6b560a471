//! The live map saved beside the log, `<dir>/log/live.map`, so that open
//! need not read the whole log to learn where every live entry is: it
//! loads the map and scans only the frames written after the position the
//! file names.
//!
//! # Rules
//!
//! - Written at every clean close (before the clean marker), aside as
//!   `live.map.tmp`, `fsync`ed, renamed, the log directory `fsync`ed. It
//!   names the log position it describes (segment, offset, lsn).
//! - It stays valid after later writes: frames are only ever appended, so
//!   the map plus the frames after its position is the map now. Entries
//!   of a segment retired since are dropped (a retirement copies every
//!   live entry of the segment forward into a later frame, which the scan
//!   reads; what still points at the retired segment was removed).
//! - Open uses it only if it reads whole (CRC) and its position is in the
//!   log: the frame there has the next lsn, or the log ends there. Else
//!   open scans the whole log, as without it.
//! - It lives in the log directory, so whatever replaces the log (a
//!   migration, a restore) drops it too.
//!
//! Format: magic "EDGECCL1" | seg u64 LE | offset u64 LE | lsn u64 LE
//! | the map (`Live::encode`) | crc32 of everything before, u32 LE.
//!
//! Known limit: frames older than the position are not read again, so
//! damage there is found only when a value is read (records carry their
//! own CRC) or at an open without the file.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use tracing::warn;

use crate::error::StorageError;
use crate::fsync::sync_dir_named;
use crate::live::Live;
use crate::seglog::Position;

/// File name of the saved map, inside the log directory.
pub(crate) const LIVE_FILE: &str = "live.map";

const MAGIC: &[u8; 8] = b"EDGECCL1";

/// Buffer of the file write at a clean close.
const WRITE_BUFFER: usize = 256 * 1024;

/// Writes the map as of `pos` (aside, synced, renamed, directory synced).
pub(crate) fn save(log_dir: &Path, pos: Position, live: &Live) -> Result<(), StorageError> {
    let path = log_dir.join(LIVE_FILE);
    let tmp = log_dir.join(format!("{LIVE_FILE}.tmp"));
    let io = |what: &str, e| StorageError::io(format!("{what} {}", tmp.display()), e);
    // Written as it is encoded, the CRC kept on the way: the whole map in
    // memory (20 MiB at 1,000,000 entries) came on top of the open
    // storage's own at every clean close.
    let file = File::create(&tmp).map_err(|e| io("create", e))?;
    let mut out = std::io::BufWriter::with_capacity(WRITE_BUFFER, file);
    let mut crc = crc32fast::Hasher::new();
    let mut failed = None;
    let mut put = |b: &[u8]| {
        if failed.is_none() {
            crc.update(b);
            if let Err(e) = out.write_all(b) {
                failed = Some(e);
            }
        }
    };
    put(MAGIC);
    put(&pos.seg.to_le_bytes());
    put(&pos.offset.to_le_bytes());
    put(&pos.lsn.to_le_bytes());
    live.encode_to(&mut put);
    if let Some(e) = failed {
        return Err(io("write", e));
    }
    let crc = crc.finalize();
    out.write_all(&crc.to_le_bytes())
        .and_then(|()| out.into_inner().map_err(|e| e.into_error()))
        .and_then(|file| file.sync_all())
        .map_err(|e| io("write", e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io("rename", e))?;
    sync_dir_named(log_dir)
}

/// The saved map and the position it describes, if there is a whole one.
pub(crate) fn load(log_dir: &Path) -> Option<(Position, Live)> {
    let path = log_dir.join(LIVE_FILE);
    let _ = std::fs::remove_file(log_dir.join(format!("{LIVE_FILE}.tmp")));
    let bytes = std::fs::read(&path).ok()?;
    let decoded = decode(&bytes);
    if decoded.is_none() {
        warn!(path = %path.display(), "The saved live map does not read; the whole log is scanned.");
    }
    decoded
}

fn decode(bytes: &[u8]) -> Option<(Position, Live)> {
    let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
    if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().ok()?) {
        return None;
    }
    let head = body.get(..32)?;
    if &head[..8] != MAGIC {
        return None;
    }
    let u64_at = |at: usize| u64::from_le_bytes(head[at..at + 8].try_into().unwrap_or_default());
    let pos = Position {
        seg: u64_at(8),
        offset: u64_at(16),
        lsn: u64_at(24),
    };
    Some((pos, Live::decode(&body[32..])?))
}
