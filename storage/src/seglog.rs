//! The segmented log: the durable truth of a storage directory. Every
//! change is a frame of blind writes appended here and `fdatasync`ed
//! before anything else sees it; sled is only an index and cache of it
//! (see the design note in the `outbox` module).
//!
//! # Layout of `<dir>/log/`
//!
//! ```text
//! <seg_no as 16 hex digits>.seg   one segment, preallocated, zero-filled
//! 0     header (4 KiB)   magic "EDGECCS1" | version u32 LE | seg_no u64 LE
//!                          | crc32 u32 LE
//! 4096  frames           magic u32 LE | lsn u64 LE | len u32 LE
//!                          | crc32(lsn, len, payload) u32 LE | payload
//! payload = op*, as in the `wal` module (tree, key, value or removal)
//! ```
//!
//! # Rules
//!
//! - A segment is created whole before it is used: written aside as
//!   `*.seg.tmp`, zero-filled to its size, header written, `fsync`ed,
//!   renamed, directory `fsync`ed. Appending a frame therefore never
//!   changes a file's size or a directory: one `fdatasync` per frame.
//! - Segments are never reused. Frame lsns run on, +1, across segments;
//!   the writer moves to the next segment only when a frame does not fit
//!   in the current one, so a scan that meets the end of the frames of a
//!   segment continues at the start of the next one.
//! - Open scans every segment in order and stops at the first frame that
//!   is torn, fails its CRC or has an unexpected lsn: that is the end of
//!   the log (the writer synced every earlier frame before writing that
//!   one). Segments after the end hold only unacknowledged bytes and are
//!   removed. A segment after the end that starts with a *valid* later
//!   frame means damage in the middle of the log: open refuses.
//! - Only the oldest segment is ever deleted, and the directory is
//!   `fsync`ed after each unlink before the next one: a removal (a
//!   tombstone) lives in a segment no older than the put it removes, so a
//!   lost unlink can never bring back a put whose tombstone is already
//!   gone. Before the oldest segment goes, the writer copies every entry
//!   whose latest put is in it to the head (see `live`), and syncs that.
//! - A frame whose sync failed is unmade (its header zeroed and synced),
//!   as in the `wal` module; if that fails too the outcome is unknown and
//!   the writer stops taking changes.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tracing::info;

use crate::error::StorageError;
use crate::fsync::sync_dir_named;

/// Name of the log directory inside the storage directory.
pub const LOG_DIR: &str = "log";

/// Name of a log directory being built (moved into place when whole).
pub(crate) const LOG_BUILDING: &str = "log.new";

/// Where frames start in a segment; the first 4 KiB hold its header.
pub(crate) const DATA_START: u64 = 4096;
/// Segment header magic and the only version this build reads.
const SEG_MAGIC: &[u8; 8] = b"EDGECCS1";
const SEG_VERSION: u32 = 1;
/// magic | version | seg_no | crc.
const SEG_HEADER_LEN: usize = 8 + 4 + 8 + 4;
/// Frame magic ("ESF1").
const FRAME_MAGIC: u32 = 0x3146_5345;
/// magic | lsn | len | crc.
pub(crate) const FRAME_HEADER: usize = 4 + 8 + 4 + 4;
/// Chunk used to zero-fill a new segment.
const FILL_CHUNK: usize = 1024 * 1024;

/// Why a frame could not be appended.
#[derive(Debug)]
pub(crate) enum AppendError {
    /// Writing, syncing or creating the next segment failed; the frame can
    /// never be replayed.
    Io(std::io::Error),
    /// Syncing failed and so did unmaking the frame: the next open replays
    /// it if it reached the disk.
    Unknown(std::io::Error),
}

/// Where the log ends: what the clean marker names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Position {
    /// The head segment.
    pub(crate) seg: u64,
    /// Offset of the next frame in it.
    pub(crate) offset: u64,
    /// Lsn of the last frame (0: none yet).
    pub(crate) lsn: u64,
}

/// Test hook shared with the storage handle: how long each of the next
/// frame syncs stalls before it runs, and how many stall (a disk that
/// stops answering for a while).
#[derive(Debug, Default)]
pub(crate) struct SyncStall {
    /// Milliseconds each stalled sync waits.
    pub(crate) ms: AtomicU64,
    /// Syncs left to stall.
    pub(crate) count: AtomicU64,
}

/// The open log.
pub(crate) struct SegLog {
    /// `<dir>/log`.
    dir: PathBuf,
    /// Segment numbers holding frames (or the head), oldest first; the
    /// last one is the head.
    segs: Vec<u64>,
    /// The head segment, appended to.
    head: File,
    /// Size of the head segment's file.
    head_cap: u64,
    /// Offset of the next frame in the head.
    write_at: u64,
    /// Lsn of the next frame.
    next_lsn: u64,
    /// A created-ahead, empty segment: the next head.
    spare: Option<(u64, File, u64)>,
    /// Size of a new segment.
    seg_bytes: u64,
    /// Frame buffer, reused.
    buf: Vec<u8>,
    /// Injected sync stalls (tests and the stall benchmark).
    stall: Arc<SyncStall>,
    /// Test hook: how many of the next frame syncs fail.
    #[cfg(test)]
    failing_syncs: u32,
}

/// The file name of segment `seg`.
fn seg_name(seg: u64) -> String {
    format!("{seg:016x}.seg")
}

/// The segment number of a file name, if it is a segment's.
fn seg_of(name: &str) -> Option<u64> {
    let hex = name.strip_suffix(".seg")?;
    (hex.len() == 16)
        .then(|| u64::from_str_radix(hex, 16).ok())
        .flatten()
}

impl SegLog {
    /// Whether `<dir>/log` exists (a directory of this version).
    pub(crate) fn exists(dir: &Path) -> bool {
        dir.join(LOG_DIR).is_dir()
    }

    /// Creates an empty log directory (aside, then renamed) holding one
    /// empty segment.
    #[cfg(test)]
    pub(crate) fn create(dir: &Path, seg_bytes: u64) -> Result<(), StorageError> {
        let tmp = dir.join(LOG_BUILDING);
        SegLog::create_at(&tmp, seg_bytes)?;
        SegLog::install(dir)
    }

    /// Creates `path` (removing a leftover of a crash first) holding one
    /// empty segment, synced.
    pub(crate) fn create_at(path: &Path, seg_bytes: u64) -> Result<(), StorageError> {
        if path.exists() {
            std::fs::remove_dir_all(path)
                .map_err(|e| StorageError::io(format!("remove {}", path.display()), e))?;
        }
        std::fs::create_dir(path)
            .map_err(|e| StorageError::io(format!("create {}", path.display()), e))?;
        create_segment(path, 1, seg_bytes)?;
        sync_dir_named(path)
    }

    /// Renames `<dir>/log.new` (built with [`SegLog::create_at`]) to
    /// `<dir>/log` and syncs `dir`: from then on it is the truth.
    pub(crate) fn install(dir: &Path) -> Result<(), StorageError> {
        let path = dir.join(LOG_DIR);
        std::fs::rename(dir.join(LOG_BUILDING), &path)
            .map_err(|e| StorageError::io(format!("rename onto {}", path.display()), e))?;
        sync_dir_named(dir)
    }

    /// Opens `<dir>/log` and calls `visit(seg, lsn, payload offset,
    /// payload)` for every frame, in order (the offset is where the
    /// payload starts in the segment file), or only for the frames after
    /// `from` (a position known to be in the log, see `live_file`; the
    /// segments before it are kept unread). Removes what lies after the
    /// end (see the rules).
    pub(crate) fn open(
        dir: &Path,
        seg_bytes: u64,
        stall: Arc<SyncStall>,
        from: Option<Position>,
        visit: impl FnMut(u64, u64, u64, &[u8]) -> Result<(), StorageError>,
    ) -> Result<SegLog, StorageError> {
        SegLog::open_at(&dir.join(LOG_DIR), seg_bytes, stall, from, visit)
    }

    /// [`SegLog::open`] of the log directory `path` itself.
    pub(crate) fn open_at(
        path: &Path,
        seg_bytes: u64,
        stall: Arc<SyncStall>,
        from: Option<Position>,
        mut visit: impl FnMut(u64, u64, u64, &[u8]) -> Result<(), StorageError>,
    ) -> Result<SegLog, StorageError> {
        let dir = path.to_path_buf();
        let io = |what: &str, p: &Path, e| StorageError::io(format!("{what} {}", p.display()), e);
        let mut all = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| io("list", &dir, e))? {
            let entry = entry.map_err(|e| io("list", &dir, e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(seg) = seg_of(&name) {
                all.push(seg);
            } else if name.ends_with(".seg.tmp") {
                // A segment whose creation a crash cut short: never used.
                let _ = std::fs::remove_file(entry.path());
            }
        }
        all.sort_unstable();
        let mut expected: Option<u64> = None;
        // (seg, end offset) of the last segment that holds frames.
        let mut end: Option<(u64, u64)> = None;
        let mut after_end = Vec::new();
        let mut segs = Vec::new();
        let mut area = Vec::new();
        for &seg in &all {
            let path = dir.join(seg_name(seg));
            let mut file = File::open(&path).map_err(|e| io("open", &path, e))?;
            read_header(&mut file, seg).map_err(|message| StorageError::Wal {
                path: path.clone(),
                message,
            })?;
            // Before the known position: kept, not read.
            if from.is_some_and(|p| seg < p.seg) {
                segs.push(seg);
                continue;
            }
            let start = match from {
                Some(p) if p.seg == seg => {
                    expected = Some(p.lsn + 1);
                    usize::try_from(p.offset.saturating_sub(DATA_START)).unwrap_or(usize::MAX)
                }
                _ => 0,
            };
            area.clear();
            std::io::Read::read_to_end(&mut file, &mut area).map_err(|e| io("read", &path, e))?;
            let frames = area.get(start..).unwrap_or_default();
            let first = frame_at(frames, None).map(|(lsn, _, _)| lsn);
            // The oldest segment starts the log whatever its first lsn (or
            // none: a fresh log); a later one only with the next lsn.
            let continues = match expected {
                None => true,
                _ if start > 0 || from.is_some_and(|p| p.seg == seg) => true,
                Some(exp) => after_end.is_empty() && first == Some(exp),
            };
            if !continues {
                if let (Some(lsn), Some(exp)) = (first, expected) {
                    if lsn >= exp {
                        return Err(StorageError::Wal {
                            path,
                            message: format!(
                                "segment starts at lsn {lsn} but the log before it ends at {}: \
                                 damage in the middle of the log; refusing to open",
                                exp - 1
                            ),
                        });
                    }
                }
                after_end.push(seg);
                continue;
            }
            let mut at = 0usize;
            let mut lsn = expected
                .filter(|_| start > 0 || from.is_some_and(|p| p.seg == seg))
                .or(first)
                .unwrap_or(1);
            while let Some((_, payload, used)) = frame_at(&frames[at..], Some(lsn)) {
                let payload_off = DATA_START + (start + at + FRAME_HEADER) as u64;
                visit(seg, lsn, payload_off, payload)?;
                at += used;
                lsn += 1;
            }
            expected = Some(lsn);
            segs.push(seg);
            end = Some((seg, DATA_START + (start + at) as u64));
        }
        // Segments after the end hold only bytes of unacknowledged frames.
        for seg in &after_end {
            let path = dir.join(seg_name(*seg));
            std::fs::remove_file(&path).map_err(|e| io("remove", &path, e))?;
        }
        if !after_end.is_empty() {
            sync_dir_named(&dir)?;
        }
        let (head_no, write_at) = match end {
            Some(found) => found,
            None => {
                // No segment at all (a crash between creating the log and
                // its first segment cannot happen: both are made aside).
                let seg = all.last().map_or(1, |s| s + 1);
                create_segment(&dir, seg, seg_bytes)?;
                sync_dir_named(&dir)?;
                segs.push(seg);
                (seg, DATA_START)
            }
        };
        let head_path = dir.join(seg_name(head_no));
        let head = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&head_path)
            .map_err(|e| io("open", &head_path, e))?;
        let head_cap = head
            .metadata()
            .map_err(|e| io("stat", &head_path, e))?
            .len();
        let next_lsn = expected.unwrap_or(1);
        if next_lsn > 1 {
            info!(segments = segs.len(), last_lsn = next_lsn - 1, dir = %dir.display(), "Log scanned.");
        }
        Ok(SegLog {
            dir,
            segs,
            head,
            head_cap,
            write_at,
            next_lsn,
            spare: None,
            seg_bytes,
            buf: Vec::new(),
            stall,
            #[cfg(test)]
            failing_syncs: 0,
        })
    }

    /// Whether `pos` can be where a scan of `<dir>/log` starts: its
    /// segment is there, and at its offset the log either ends or goes on
    /// with the next lsn (a frame header with another lsn means the
    /// position is not of this log).
    pub(crate) fn position_fits(dir: &Path, pos: Position) -> bool {
        let path = dir.join(LOG_DIR).join(seg_name(pos.seg));
        let Ok(file) = File::open(path) else {
            return false;
        };
        let mut head = [0u8; FRAME_HEADER];
        if pos.offset < DATA_START || file.read_exact_at(&mut head, pos.offset).is_err() {
            return false;
        }
        let magic = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let lsn = u64::from_le_bytes(head[4..12].try_into().unwrap_or_default());
        magic != FRAME_MAGIC || lsn == pos.lsn + 1
    }

    /// Where the log ends now.
    pub(crate) fn position(&self) -> Position {
        Position {
            seg: self.head_no(),
            offset: self.write_at,
            lsn: self.next_lsn - 1,
        }
    }

    /// The head segment's number.
    pub(crate) fn head_no(&self) -> u64 {
        self.segs.last().copied().unwrap_or(0)
    }

    /// Segments holding frames, oldest first (the head last).
    pub(crate) fn segments(&self) -> &[u64] {
        &self.segs
    }

    /// Bytes the log's segment files take (spare included).
    pub(crate) fn bytes(&self) -> u64 {
        let full = (self.segs.len() as u64).saturating_sub(1) * self.seg_bytes;
        full + self.head_cap + self.spare.as_ref().map_or(0, |(_, _, cap)| *cap)
    }

    /// Creates the next segment ahead of need, if there is none.
    pub(crate) fn ensure_spare(&mut self) -> Result<(), StorageError> {
        if self.spare.is_none() {
            let seg = self.head_no() + 1;
            self.spare = Some(self.make_segment(seg, self.seg_bytes)?);
        }
        Ok(())
    }

    fn make_segment(&self, seg: u64, cap: u64) -> Result<(u64, File, u64), StorageError> {
        create_segment(&self.dir, seg, cap)?;
        sync_dir_named(&self.dir)?;
        let path = self.dir.join(seg_name(seg));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| StorageError::io(format!("open {}", path.display()), e))?;
        Ok((seg, file, cap))
    }

    /// Appends `payload` as the next frame and `fdatasync`s it; returns the
    /// segment it went to and where the payload starts in that segment's
    /// file. Moves to the next segment when it does not fit (a frame larger
    /// than a segment gets a segment of its own size).
    pub(crate) fn append(&mut self, payload: &[u8]) -> Result<(u64, u64), AppendError> {
        if payload.len() > u32::MAX as usize {
            return Err(AppendError::Io(std::io::Error::other(
                "frame larger than 4 GiB",
            )));
        }
        let len = (FRAME_HEADER + payload.len()) as u64;
        if self.write_at + len > self.head_cap {
            let needed = DATA_START + len;
            let next = match self.spare.take() {
                Some(spare) if spare.2 >= needed => spare,
                Some(small) => {
                    // Too small for this frame: replaced by one that fits.
                    let path = self.dir.join(seg_name(small.0));
                    drop(small);
                    std::fs::remove_file(&path).map_err(AppendError::Io)?;
                    let cap = needed.max(self.seg_bytes);
                    self.make_segment(self.head_no() + 1, cap)
                        .map_err(|e| AppendError::Io(std::io::Error::other(e.to_string())))?
                }
                None => {
                    let cap = needed.max(self.seg_bytes);
                    self.make_segment(self.head_no() + 1, cap)
                        .map_err(|e| AppendError::Io(std::io::Error::other(e.to_string())))?
                }
            };
            let (seg, file, cap) = next;
            self.segs.push(seg);
            self.head = file;
            self.head_cap = cap;
            self.write_at = DATA_START;
        }
        self.buf.clear();
        self.buf.reserve(len as usize);
        self.buf.extend_from_slice(&FRAME_MAGIC.to_le_bytes());
        self.buf.extend_from_slice(&self.next_lsn.to_le_bytes());
        self.buf
            .extend_from_slice(&(payload.len() as u32).to_le_bytes());
        let crc = frame_crc(self.next_lsn, payload);
        self.buf.extend_from_slice(&crc.to_le_bytes());
        self.buf.extend_from_slice(payload);
        self.head
            .write_all_at(&self.buf, self.write_at)
            .map_err(AppendError::Io)?;
        if let Err(e) = self.sync_frame() {
            let unmade = self
                .head
                .write_all_at(&[0u8; FRAME_HEADER], self.write_at)
                .and_then(|()| self.sync_frame());
            return Err(match unmade {
                Ok(()) => AppendError::Io(e),
                Err(again) => AppendError::Unknown(std::io::Error::new(
                    e.kind(),
                    format!("{e}; unmaking the frame failed too: {again}"),
                )),
            });
        }
        let payload_off = self.write_at + FRAME_HEADER as u64;
        self.write_at += len;
        self.next_lsn += 1;
        if self.buf.capacity() > 4 * 1024 * 1024 {
            self.buf = Vec::new();
        }
        Ok((self.head_no(), payload_off))
    }

    /// `fdatasync` of the head after a frame (or its unmaking).
    fn sync_frame(&mut self) -> std::io::Result<()> {
        #[cfg(test)]
        if self.failing_syncs > 0 {
            self.failing_syncs -= 1;
            return Err(std::io::Error::other("injected sync failure"));
        }
        let left = self.stall.count.load(Ordering::Relaxed);
        if left > 0 {
            self.stall.count.store(left - 1, Ordering::Relaxed);
            let ms = self.stall.ms.load(Ordering::Relaxed);
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        self.head.sync_data()
    }

    /// Calls `visit(lsn, payload offset, payload)` for every frame of
    /// segment `seg` (the offset is where the payload starts in the
    /// segment file, as [`SegLog::open`] gives it).
    pub(crate) fn read_segment(
        &self,
        seg: u64,
        mut visit: impl FnMut(u64, u64, &[u8]) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let path = self.dir.join(seg_name(seg));
        let area = std::fs::read(&path)
            .map_err(|e| StorageError::io(format!("read {}", path.display()), e))?;
        let area = area.get(DATA_START as usize..).unwrap_or_default();
        let mut at = 0usize;
        let mut lsn = None;
        while let Some((l, payload, used)) = frame_at(&area[at..], lsn) {
            let payload_off = DATA_START + (at + FRAME_HEADER) as u64;
            visit(l, payload_off, payload)?;
            at += used;
            lsn = Some(l + 1);
        }
        Ok(())
    }

    /// Deletes the oldest segment (never the head) and syncs the directory
    /// before returning. The caller copied what is live in it first.
    pub(crate) fn retire_oldest(&mut self) -> Result<u64, StorageError> {
        if self.segs.len() < 2 {
            return Err(StorageError::Wal {
                path: self.dir.clone(),
                message: "the head segment cannot be retired".into(),
            });
        }
        let seg = self.segs[0];
        let path = self.dir.join(seg_name(seg));
        std::fs::remove_file(&path)
            .map_err(|e| StorageError::io(format!("remove {}", path.display()), e))?;
        sync_dir_named(&self.dir)?;
        self.segs.remove(0);
        Ok(seg)
    }
}

/// Reads values back from the log's segment files by location (see the
/// `live` module), keeping each segment file open once read. A retired
/// segment's file stays readable through a descriptor opened before its
/// unlink; a read that finds it gone asks the live map again.
#[derive(Debug)]
pub(crate) struct LogReader {
    /// `<dir>/log`.
    dir: PathBuf,
    /// Open segment files by number.
    files: std::sync::Mutex<std::collections::HashMap<u64, Arc<File>>>,
}

impl LogReader {
    pub(crate) fn new(dir: &Path) -> LogReader {
        LogReader {
            dir: dir.join(LOG_DIR),
            files: std::sync::Mutex::default(),
        }
    }

    /// `len` bytes at `off` of segment `seg`; `NotFound` when the segment
    /// is gone (retired since its location was read).
    pub(crate) fn read(&self, seg: u64, off: u64, len: usize) -> std::io::Result<Vec<u8>> {
        let file = {
            let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
            match files.get(&seg) {
                Some(f) => Arc::clone(f),
                None => {
                    let f = Arc::new(File::open(self.dir.join(seg_name(seg)))?);
                    files.insert(seg, Arc::clone(&f));
                    f
                }
            }
        };
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, off)?;
        Ok(buf)
    }

    /// Closes every file (sled is trusted again: reads go there).
    pub(crate) fn clear(&self) {
        self.files.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Closes a retired segment's file.
    pub(crate) fn forget(&self, seg: u64) {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        files.remove(&seg);
    }
}

/// Creates segment `seg` in `dir`, zero-filled to `cap` bytes, header
/// written, synced, under its final name (made aside, then renamed). The
/// caller syncs `dir`.
fn create_segment(dir: &Path, seg: u64, cap: u64) -> Result<(), StorageError> {
    let path = dir.join(seg_name(seg));
    let tmp = dir.join(format!("{}.tmp", seg_name(seg)));
    let io = |what: &str, e| StorageError::io(format!("{what} {}", tmp.display()), e);
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&tmp)
        .map_err(|e| io("create", e))?;
    let zeros = vec![0u8; FILL_CHUNK];
    let mut at = 0u64;
    while at < cap {
        let n = (cap - at).min(FILL_CHUNK as u64) as usize;
        file.write_all_at(&zeros[..n], at)
            .map_err(|e| io("fill", e))?;
        at += n as u64;
    }
    let mut header = [0u8; SEG_HEADER_LEN];
    header[..8].copy_from_slice(SEG_MAGIC);
    header[8..12].copy_from_slice(&SEG_VERSION.to_le_bytes());
    header[12..20].copy_from_slice(&seg.to_le_bytes());
    let crc = crc32fast::hash(&header[..20]);
    header[20..].copy_from_slice(&crc.to_le_bytes());
    file.write_all_at(&header, 0)
        .and_then(|()| file.sync_all())
        .map_err(|e| io("write the header of", e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io("rename", e))
}

/// Reads and checks a segment's header, leaving the file at its frames.
fn read_header(file: &mut File, seg: u64) -> Result<(), String> {
    let mut head = [0u8; DATA_START as usize];
    std::io::Read::read_exact(file, &mut head)
        .map_err(|e| format!("segment header unreadable: {e}"))?;
    let bytes = &head[..SEG_HEADER_LEN];
    if &bytes[..8] != SEG_MAGIC {
        return Err("not an edgecc log segment (bad magic)".into());
    }
    let crc = u32::from_le_bytes(bytes[20..24].try_into().unwrap_or_default());
    if crc32fast::hash(&bytes[..20]) != crc {
        return Err("segment header fails its checksum".into());
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap_or_default());
    if version != SEG_VERSION {
        return Err(format!(
            "log segment version {version}, this build reads {SEG_VERSION}"
        ));
    }
    let no = u64::from_le_bytes(bytes[12..20].try_into().unwrap_or_default());
    if no != seg {
        return Err(format!("segment header names segment {no}"));
    }
    Ok(())
}

fn frame_crc(lsn: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&lsn.to_le_bytes());
    h.update(&(payload.len() as u32).to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// The frame at the start of `area` if it is whole and intact (and has
/// `lsn`, when given): its lsn, payload and length with the header.
fn frame_at(area: &[u8], lsn: Option<u64>) -> Option<(u64, &[u8], usize)> {
    let head = area.get(..FRAME_HEADER)?;
    let u32_at =
        |at: usize| u32::from_le_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
    let magic = u32_at(0);
    let frame_lsn = u64::from(u32_at(4)) | u64::from(u32_at(8)) << 32;
    let len = u32_at(12) as usize;
    let crc = u32_at(16);
    if magic != FRAME_MAGIC || lsn.is_some_and(|l| l != frame_lsn) || frame_lsn == 0 {
        return None;
    }
    let payload = area.get(FRAME_HEADER..FRAME_HEADER + len)?;
    (frame_crc(frame_lsn, payload) == crc).then_some((frame_lsn, payload, FRAME_HEADER + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEG: u64 = 64 * 1024;

    fn open_collect(dir: &Path) -> (SegLog, Vec<(u64, u64, Vec<u8>)>) {
        let mut seen = Vec::new();
        let log = SegLog::open(dir, SEG, Arc::default(), None, |seg, lsn, _, p| {
            seen.push((seg, lsn, p.to_vec()));
            Ok(())
        })
        .expect("open");
        (log, seen)
    }

    fn fresh() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        SegLog::create(dir.path(), SEG).expect("create");
        dir
    }

    #[test]
    fn frames_replay_in_order_across_segments() {
        let dir = fresh();
        let (mut log, seen) = open_collect(dir.path());
        assert!(seen.is_empty());
        let mut segs = Vec::new();
        for i in 0..40u8 {
            segs.push(log.append(&[i; 5000]).expect("append").0);
        }
        assert!(log.segments().len() > 2, "{:?}", log.segments());
        drop(log);
        let (mut log, seen) = open_collect(dir.path());
        let lsns: Vec<u64> = seen.iter().map(|(_, l, _)| *l).collect();
        assert_eq!(lsns, (1..=40).collect::<Vec<_>>());
        assert_eq!(seen.iter().map(|(s, _, _)| *s).collect::<Vec<_>>(), segs);
        assert_eq!(seen[7].2, vec![7u8; 5000]);
        // Retiring the oldest keeps the rest readable, in order.
        let first = log.segments()[0];
        assert_eq!(log.retire_oldest().expect("retire"), first);
        log.append(b"after").expect("append");
        drop(log);
        let (_, seen) = open_collect(dir.path());
        assert!(seen.iter().all(|(s, _, _)| *s != first));
        assert_eq!(
            seen.last().map(|(_, l, p)| (*l, p.clone())),
            Some((41, b"after".to_vec()))
        );
    }

    #[test]
    fn a_scan_from_a_known_position_reads_only_later_frames() {
        let dir = fresh();
        let (mut log, _) = open_collect(dir.path());
        for i in 0..20u8 {
            log.append(&[i; 5000]).expect("append");
        }
        let pos = log.position();
        for i in 20..40u8 {
            log.append(&[i; 5000]).expect("append");
        }
        let end = log.position();
        drop(log);
        assert!(SegLog::position_fits(dir.path(), pos));
        assert!(!SegLog::position_fits(
            dir.path(),
            Position {
                lsn: pos.lsn + 1,
                ..pos
            }
        ));
        let mut seen = Vec::new();
        let log = SegLog::open(
            dir.path(),
            SEG,
            Arc::default(),
            Some(pos),
            |_, lsn, off, p| {
                seen.push((lsn, off, p.to_vec()));
                Ok(())
            },
        )
        .expect("open from");
        assert_eq!(log.position(), end);
        assert_eq!(
            seen.iter().map(|(l, _, _)| *l).collect::<Vec<_>>(),
            (21..=40).collect::<Vec<_>>()
        );
        assert_eq!(seen[0].2, vec![20u8; 5000]);
        // Offsets point at the payloads in the files.
        let reader = LogReader::new(dir.path());
        let (seg, off) = (log.head_no(), seen.last().map(|s| s.1).unwrap_or(0));
        assert_eq!(reader.read(seg, off, 5000).expect("read"), vec![39u8; 5000]);
    }

    #[test]
    fn a_torn_frame_ends_the_log_and_later_bytes_go() {
        let dir = fresh();
        let (mut log, _) = open_collect(dir.path());
        log.append(&[1; 50]).expect("append");
        log.append(&[2; 50]).expect("append");
        log.append(&[3; 50]).expect("append");
        let seg = log.head_no();
        drop(log);
        let path = dir.path().join(LOG_DIR).join(seg_name(seg));
        let file = OpenOptions::new().write(true).open(&path).expect("open");
        let second = DATA_START + (FRAME_HEADER + 50) as u64;
        file.write_all_at(&[0xFF], second + FRAME_HEADER as u64 + 10)
            .expect("write");
        drop(file);
        let (mut log, seen) = open_collect(dir.path());
        assert_eq!(seen, vec![(seg, 1, vec![1; 50])]);
        // The next frame takes the torn one's place and lsn.
        log.append(&[4; 10]).expect("append");
        drop(log);
        let (_, seen) = open_collect(dir.path());
        assert_eq!(seen.iter().map(|(_, l, _)| *l).collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn a_valid_frame_after_damage_is_refused() {
        let dir = fresh();
        let (mut log, _) = open_collect(dir.path());
        for i in 0..30u8 {
            log.append(&[i; 5000]).expect("append");
        }
        let first = log.segments()[0];
        drop(log);
        // Damage the first frame of the oldest segment: later segments
        // hold acknowledged frames the log can no longer reach.
        let path = dir.path().join(LOG_DIR).join(seg_name(first));
        let file = OpenOptions::new().write(true).open(&path).expect("open");
        file.write_all_at(&[0xAA; 8], DATA_START + 100)
            .expect("write");
        drop(file);
        let err = SegLog::open(dir.path(), SEG, Arc::default(), None, |_, _, _, _| Ok(()))
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("damage"), "{err}");
    }

    #[test]
    fn a_frame_whose_sync_failed_is_unmade() {
        let dir = fresh();
        let (mut log, _) = open_collect(dir.path());
        log.append(b"first").expect("append");
        log.failing_syncs = 1;
        assert!(matches!(log.append(b"failed"), Err(AppendError::Io(_))));
        log.append(b"second").expect("append");
        drop(log);
        let (_, seen) = open_collect(dir.path());
        let payloads: Vec<&[u8]> = seen.iter().map(|(_, _, p)| p.as_slice()).collect();
        assert_eq!(payloads, vec![&b"first"[..], &b"second"[..]]);
    }

    #[test]
    fn a_frame_larger_than_a_segment_gets_its_own() {
        let dir = fresh();
        let (mut log, _) = open_collect(dir.path());
        log.append(b"small").expect("append");
        log.ensure_spare().expect("spare");
        let big = vec![9u8; 3 * SEG as usize];
        let seg = log.append(&big).expect("append").0;
        log.append(b"after").expect("append");
        drop(log);
        let (_, seen) = open_collect(dir.path());
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[1].0, seg);
        assert_eq!(seen[1].2, big);
        assert_eq!(seen[2].2, b"after".to_vec());
    }

    #[test]
    fn an_unused_spare_is_removed_and_made_again() {
        let dir = fresh();
        let (mut log, _) = open_collect(dir.path());
        log.append(b"x").expect("append");
        log.ensure_spare().expect("spare");
        drop(log);
        let (mut log, seen) = open_collect(dir.path());
        assert_eq!(seen.len(), 1);
        assert_eq!(log.segments().len(), 1);
        log.ensure_spare().expect("spare again");
        assert_eq!(log.append(b"y").expect("append").0, log.segments()[0]);
    }
}
