//! The FUSE side: each kernel request becomes one call on the shared
//! [`State`]. Every open is answered with `FOPEN_DIRECT_IO` and every entry
//! and attribute with a zero TTL, so the kernel caches neither pages nor
//! sizes nor names: every read, write, `stat` and lookup reaches `State`,
//! and nothing the kernel kept can outlive a cut.

use std::ffi::OsStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, LockOwner, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use super::state::State;

/// Entry and attribute TTL: none, see the module note.
const TTL: Duration = Duration::ZERO;

/// Largest name accepted, as on ext4.
const NAME_BYTES_MAX: u32 = 255;

/// A stalled disk: how long each fsync waits, and how many wait now.
#[derive(Default)]
pub struct Stall {
    /// Extra delay of every `fsync` and `fsyncdir`, in ms (0: none).
    pub ms: AtomicU64,
    /// Fsyncs sleeping in their stall right now.
    pub stalled: AtomicU64,
}

/// The file system handed to fuser.
pub struct PowerCutFs {
    /// The tree, shared with the test's [`super::Mount`] handle (for cuts).
    pub state: Arc<Mutex<State>>,
    /// The stall of every `fsync` and `fsyncdir`, slept before taking the
    /// lock, so other requests go on meanwhile.
    pub stall: Arc<Stall>,
}

impl PowerCutFs {
    /// The state, unless a cut happened (then EIO, as a dead disk).
    fn live(&self) -> Result<MutexGuard<'_, State>, Errno> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.dead {
            return Err(Errno::EIO);
        }
        Ok(state)
    }

    fn entry(&self, reply: ReplyEntry, made: impl FnOnce(&mut State) -> Result<u64, Errno>) {
        let attr = self.live().and_then(|mut s| {
            let ino = made(&mut s)?;
            s.attr(ino)
        });
        match attr {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn empty(&self, reply: ReplyEmpty, done: impl FnOnce(&mut State) -> Result<(), Errno>) {
        match self.live().and_then(|mut s| done(&mut s)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn sync(&self, ino: INodeNo, reply: ReplyEmpty) {
        let stall = self.stall.ms.load(Ordering::Relaxed);
        if stall > 0 {
            self.stall.stalled.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(stall));
            self.stall.stalled.fetch_sub(1, Ordering::Relaxed);
        }
        self.empty(reply, |s| s.fsync(ino.0));
    }
}

impl Filesystem for PowerCutFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.entry(reply, |s| s.lookup(parent.0, name));
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.live().and_then(|s| s.attr(ino.0)) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let attr = self.live().and_then(|mut s| {
            if let Some(size) = size {
                s.set_size(ino.0, size)?;
            }
            if let Some(mode) = mode {
                s.set_perm(ino.0, mode)?;
            }
            s.attr(ino.0)
        });
        match attr {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let perm = (mode & !umask & 0o7777) as u16;
        self.entry(reply, |s| s.create(parent.0, name, true, perm));
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.empty(reply, |s| s.remove(parent.0, name, false));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.empty(reply, |s| s.remove(parent.0, name, true));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        new_parent: INodeNo,
        new_name: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if !(flags - RenameFlags::RENAME_NOREPLACE).is_empty() {
            return reply.error(Errno::EINVAL);
        }
        let no_replace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        self.empty(reply, |s| {
            s.rename(parent.0, name, new_parent.0, new_name, no_replace)
        });
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.live().and_then(|mut s| s.open(ino.0)) {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let perm = (mode & !umask & 0o7777) as u16;
        let attr = self.live().and_then(|mut s| {
            let ino = s.create(parent.0, name, false, perm)?;
            s.open(ino)?;
            s.attr(ino)
        });
        match attr {
            Ok(attr) => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(0),
                FopenFlags::FOPEN_DIRECT_IO,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.live() {
            Ok(s) => match s.read(ino.0, offset, size) {
                Ok(data) => reply.data(data),
                Err(e) => reply.error(e),
            },
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.live().and_then(|mut s| s.write(ino.0, offset, data)) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close(2): no durability meaning.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        // Also after a cut: the kernel only forgets the handle.
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .release(ino.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.sync(ino, reply);
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let listed = self.live().and_then(|s| s.list(ino.0));
        let entries = match listed {
            Ok(entries) => entries,
            Err(e) => return reply.error(e),
        };
        let dots = [
            (ino.0, fuser::FileType::Directory, ".".into()),
            (ino.0, fuser::FileType::Directory, "..".into()),
        ];
        // Offsets are positions in this listing (the next entry's).
        for (i, (child, kind, name)) in dots
            .into_iter()
            .chain(entries)
            .enumerate()
            .skip(offset as usize)
        {
            if reply.add(INodeNo(child), i as u64 + 1, kind, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.sync(ino, reply);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // Plenty of room; `Mount::fail_writes_after` models a full disk.
        reply.statfs(
            1 << 24,
            1 << 23,
            1 << 23,
            1 << 20,
            1 << 19,
            4096,
            NAME_BYTES_MAX,
            4096,
        );
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        if mode != 0 {
            return reply.error(Errno::EOPNOTSUPP);
        }
        self.empty(reply, |s| {
            let end = offset.checked_add(length).ok_or(Errno::EFBIG)?;
            if end > s.attr(ino.0)?.size {
                s.set_size(ino.0, end)?;
            }
            Ok(())
        });
    }
}
