//! powercut-fs: a FUSE pass-through file system for tests that loses, on
//! command, everything a power cut may lose. Real files, real syscalls:
//! whatever runs on the mount (sled included) is tested as it is.
//!
//! # Model: what survives a cut
//!
//! - A file's **contents and size** are durable as of its last `fsync` or
//!   `fdatasync` (both make data and size durable). Every write and size
//!   change after that is lost, all of them.
//! - A directory's **names** are durable as of its last `fsync`: a create,
//!   `mkdir`, unlink, `rmdir` or rename in it is lost until then. So a file
//!   created and fsynced in a directory not fsynced since is gone; a file
//!   unlinked without a directory fsync comes back, with the contents of its
//!   last fsync; a name made durable before its file was ever fsynced names
//!   an empty file.
//! - Nothing else makes anything durable: not `close`, not `flush`, not
//!   `sync_file_range` (the kernel does not even pass it to FUSE), not the
//!   passing of time.
//!
//! Why this is the worst case of a disk with a volatile write cache under an
//! ext4-like file system: the disk may lose any write not followed by a
//! cache flush, and Linux issues that flush for a file on its `fsync`;
//! ext4 (data=ordered, delalloc) keeps dirty pages up to 30 s and commits
//! names in its journal every 5 s, so a cut landing within those windows
//! loses exactly what is listed above, and this model lands there for every
//! file at once. Names are harsher than ext4's journal (which commits a new
//! file's name along with the file's fsync) and exactly what POSIX
//! promises: a program that is correct here is correct on any file system
//! that keeps that promise; [`Options::journal_names`] gives ext4's
//! behaviour instead (any fsync makes every name durable). What the model does not explore: a cut keeping
//! *some* unsynced writes while losing earlier ones (a disk reordering its
//! cache), except the [`Options::tear_seed`] option, which keeps a random
//! whole-sector prefix of each file's last unsynced write (within the
//! durable size: an unsynced size change is metadata, and lost). Hard
//! links, symlinks and renames across directories are refused (`ENOSYS`,
//! `EXDEV`); neither sled nor edgecc uses them. Permissions and times are
//! not modelled.
//!
//! # Kernel caches
//!
//! No writeback cache (fuser does not ask for it, so each `write` reaches
//! the file system before it returns), `FOPEN_DIRECT_IO` on every open (no
//! page cache: reads never come from the kernel) and zero entry and
//! attribute TTLs (no cached sizes or names). A cut also unmounts, and the
//! next [`mount`] is a new FUSE connection with a new superblock, so no
//! page, inode or name of the old mount can ever be served again.
//!
//! # Use
//!
//! ```text
//! let m = powercut_fs::mount(&backing, &mountpoint, Options::default())?;
//! ... run the program on `m.path()` (a child process), SIGKILL it ...
//! let dropped = m.cut()?;       // lose the volatile state, unmount
//! let m = powercut_fs::mount(&backing, &mountpoint, Options::default())?;
//! ```
//!
//! The backing directory always holds exactly the durable tree, plus
//! `.powercut-unlinked/` (durable copies with no durable name) while
//! mounted; after a cut it is a plain directory that other tools can open.
//! [`Mount::stall_fsync`] delays every fsync (a stalled disk);
//! [`Mount::fail_writes_after`] makes writes fail with `ENOSPC` (a full
//! disk). The mount runs in the calling process, so it outlives the
//! children that use it.

mod fuse;
mod self_test;
mod state;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

pub use state::{CutSummary, Stats, SECTOR_BYTES, UNLINKED_DIR};

use crate::util::XorShift;
use fuse::{PowerCutFs, Stall};
use state::State;

/// FUSE request threads: more than one, so a stalled fsync does not hold
/// up reads and writes of other callers.
const FUSE_THREADS: usize = 4;

/// Options of one mount.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// When set, a cut tears the last unsynced write of each file (keeps a
    /// random whole-sector prefix of it, possibly empty, possibly all),
    /// drawing from a generator seeded with this.
    pub tear_seed: Option<u64>,
    /// Names as ext4's journal makes them durable instead of as POSIX
    /// promises: any fsync (of a file or a directory) makes the names of
    /// every directory durable, as one journal commit does. File data stays
    /// per file.
    pub journal_names: bool,
}

/// A mounted powercut-fs; dropping it cuts power too (without tearing).
pub struct Mount {
    /// The running FUSE session; `None` once cut.
    session: Option<fuser::BackgroundSession>,
    /// The tree, shared with the session's request threads.
    state: Arc<Mutex<State>>,
    /// The fsync stall, shared with the request threads.
    stall: Arc<Stall>,
    /// Where the file system is mounted.
    mountpoint: PathBuf,
    /// Where durable copies live.
    backing: PathBuf,
    /// The tearing generator, when [`Options::tear_seed`] is set.
    tear: Option<XorShift>,
}

/// [`mount`], or a test failure saying why FUSE is unavailable: a power-cut
/// test must never pass without having run.
pub fn mount_or_fail(backing: &Path, mountpoint: &Path, options: Options) -> Mount {
    mount(backing, mountpoint, options).unwrap_or_else(|e| {
        panic!("powercut-fs: FUSE is unavailable, so the power-cut test cannot run: {e}")
    })
}

/// Mounts a powercut-fs over `backing` (which holds the durable tree; it
/// is created if missing) at `mountpoint` (created if missing). Fails with
/// the reason when FUSE cannot be used here.
pub fn mount(backing: &Path, mountpoint: &Path, options: Options) -> io::Result<Mount> {
    if !Path::new("/dev/fuse").exists() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "/dev/fuse does not exist (no FUSE in this kernel or container)",
        ));
    }
    std::fs::create_dir_all(backing)?;
    std::fs::create_dir_all(mountpoint)?;
    let mut state = State::load(backing)?;
    state.journal_names = options.journal_names;
    let state = Arc::new(Mutex::new(state));
    let stall = Arc::new(Stall::default());
    let fs = PowerCutFs {
        state: Arc::clone(&state),
        stall: Arc::clone(&stall),
    };
    let mut config = fuser::Config::default();
    config.mount_options = vec![fuser::MountOption::FSName("powercut-fs".into())];
    config.n_threads = Some(FUSE_THREADS);
    let session = fuser::spawn_mount(fs, mountpoint, &config).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("mounting FUSE at {}: {e}", mountpoint.display()),
        )
    })?;
    Ok(Mount {
        session: Some(session),
        state,
        stall,
        mountpoint: mountpoint.to_path_buf(),
        backing: backing.to_path_buf(),
        tear: options.tear_seed.map(|seed| XorShift(seed | 1)),
    })
}

impl Mount {
    /// Where the file system is mounted.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// Makes every later `fsync`/`fsyncdir` wait `ms` first (0: no wait);
    /// other requests go on meanwhile.
    pub fn stall_fsync(&self, ms: u64) {
        self.stall.ms.store(ms, Ordering::Relaxed);
    }

    /// Fsyncs waiting in their stall right now.
    pub fn fsyncs_stalled(&self) -> u64 {
        self.stall.stalled.load(Ordering::Relaxed)
    }

    /// Lets `bytes` more bytes be written, after which writes fail with
    /// `ENOSPC`; `None` lifts the limit.
    pub fn fail_writes_after(&self, bytes: Option<u64>) {
        self.lock().space_left = bytes;
    }

    /// Request counters since the mount.
    pub fn stats(&self) -> Stats {
        self.lock().stats
    }

    /// Cuts power: drops every change not durable (tearing last writes when
    /// asked), fails every later request with EIO, unmounts (fails if a
    /// process still has a file open there: kill and reap it first) and
    /// leaves the backing directory holding exactly the durable tree.
    pub fn cut(mut self) -> io::Result<CutSummary> {
        self.cut_inner(false)
    }

    /// A clean shutdown instead: makes everything durable, then unmounts
    /// as [`Mount::cut`] does (the control experiment: with it, a killed
    /// child's directory must always open).
    pub fn unmount_synced(mut self) -> io::Result<()> {
        self.cut_inner(true).map(drop)
    }

    fn cut_inner(&mut self, sync_first: bool) -> io::Result<CutSummary> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if sync_first {
            state
                .sync_all()
                .map_err(|e| io::Error::from_raw_os_error(e.code()))?;
        }
        let summary = state.cut(self.tear.as_mut());
        drop(state);
        if let Some(session) = self.session.take() {
            match session.umount_and_join() {
                // The session loop reads ECONNABORTED instead of ENODEV when
                // the kernel aborts the connection as the unmount races a
                // request still queued (seen once in a full suite run): the
                // file system is gone either way, which is what a cut wants.
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("unmounting {}: {e}", self.mountpoint.display()),
                    ))
                }
                Ok(()) => {}
            }
        }
        let unlinked = self.backing.join(UNLINKED_DIR);
        if unlinked.exists() {
            std::fs::remove_dir_all(unlinked)?;
        }
        Ok(summary)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.session.is_some() {
            if let Err(e) = self.cut_inner(false) {
                tracing::warn!(mountpoint = %self.mountpoint.display(), error = %e, "powercut-fs: unmount on drop failed.");
            }
        }
    }
}
