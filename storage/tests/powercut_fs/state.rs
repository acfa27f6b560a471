//! The file tree of a power-cut mount: what the kernel sees (volatile, in
//! memory), and the rules by which `fsync` and `fsyncdir` copy parts of it
//! into the backing directory (durable). No FUSE here: `fuse.rs` maps
//! requests onto these methods. The model itself is in `mod.rs`.
//!
//! Every inode's durable copy (if it has one) lives at its *location*: the
//! path of its durable name (parent's location + name, as of the parent's
//! last `fsyncdir`), or `UNLINKED_DIR/<ino>` while it has no durable name
//! (created and fsynced but not yet listed by a synced parent, or removed
//! from a synced parent while still open). A cut deletes `UNLINKED_DIR`:
//! what is left is exactly the durable tree.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use fuser::{Errno, FileAttr, FileType, INodeNo};

use crate::util::XorShift;

/// Inode number of the root directory (FUSE's).
pub const ROOT: u64 = 1;

/// Folder of the backing directory holding the durable copies of inodes
/// that have no durable name; deleted by a cut and at mount.
pub const UNLINKED_DIR: &str = ".powercut-unlinked";

/// Unit of dirty tracking: an fsync writes only the pages written since
/// the previous one.
const PAGE_BYTES: u64 = 4096;

/// Unit of a torn write: a cut keeps a whole number of sectors.
pub const SECTOR_BYTES: u64 = 512;

/// A file's contents and what its next fsync must write.
#[derive(Default)]
pub struct FileBody {
    /// The contents as the kernel sees them now.
    pub bytes: Vec<u8>,
    /// Pages written since the last fsync.
    dirty: BTreeSet<u64>,
    /// Smallest size since the last fsync: the durable copy is cut to it
    /// before the dirty pages are written (a shrink then regrowth must not
    /// bring old bytes back).
    shrunk_to: Option<u64>,
    /// Offset and length of the last write since the last fsync: what a
    /// torn cut keeps a prefix of.
    last_write: Option<(u64, u64)>,
}

/// A directory's entries, now and as of its last fsync.
#[derive(Default)]
pub struct DirBody {
    /// Entries as the kernel sees them now.
    pub entries: BTreeMap<OsString, u64>,
    /// Entries as of this directory's last `fsyncdir`: the durable ones.
    durable: BTreeMap<OsString, u64>,
}

/// A file or a directory.
pub enum Body {
    File(FileBody),
    Dir(DirBody),
}

/// One inode.
pub struct Node {
    /// Contents (volatile) plus what is needed to make them durable.
    pub body: Body,
    /// Permission bits, for `stat` (not modelled as durable or not).
    perm: u16,
    /// Last change, for `stat`.
    mtime: SystemTime,
    /// Whether a directory entry names it now (`nlink` 1 or 0).
    linked: bool,
    /// Open handles; an unlinked file's bytes are freed at the last close.
    opens: u32,
    /// Its durable name (parent, name), set by the parent's `fsyncdir`.
    durable_link: Option<(u64, OsString)>,
    /// Whether the backing directory holds a durable copy (at `location`).
    durable: bool,
}

/// What a cut dropped, for the test's report.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CutSummary {
    /// Files with writes or size changes not made durable.
    pub files_unsynced: usize,
    /// Directories with entry changes not made durable.
    pub dirs_unsynced: usize,
    /// Files whose last unsynced write was torn (a prefix kept).
    pub writes_torn: usize,
}

/// Counters of the requests that decide durability.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Write requests answered.
    pub writes: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// `fsync`/`fdatasync` of files.
    pub fsyncs: u64,
    /// `fsync` of directories.
    pub dir_fsyncs: u64,
    /// Files created, directories included.
    pub creates: u64,
    /// Names removed (unlink, rmdir).
    pub removes: u64,
}

/// The whole tree of one mount.
pub struct State {
    /// Where durable copies live.
    backing: PathBuf,
    /// Every inode of this mount (never reused within it).
    nodes: HashMap<u64, Node>,
    /// Next inode number to hand out.
    next_ino: u64,
    /// Set by a cut: every later request fails with EIO.
    pub dead: bool,
    /// Bytes that may still be written before writes fail with ENOSPC.
    pub space_left: Option<u64>,
    /// ext4's journal instead of POSIX for names: every fsync, of a file
    /// or a directory, makes the names of every directory durable.
    pub journal_names: bool,
    /// Request counters.
    pub stats: Stats,
}

/// Refuses the one name the backing directory keeps for itself.
fn reserved(parent: u64, name: &OsStr) -> Result<(), Errno> {
    if parent == ROOT && name == UNLINKED_DIR {
        return Err(Errno::EACCES);
    }
    Ok(())
}

/// The io error of a failed backing operation, as the EIO a disk gives.
fn eio(what: &str, path: &Path, e: io::Error) -> Errno {
    tracing::warn!(path = %path.display(), error = %e, what, "powercut-fs: backing I/O failed.");
    Errno::EIO
}

impl State {
    /// Loads the durable tree from `backing` (after dropping what a cut
    /// left unnamed): every file's bytes into memory, all durable.
    pub fn load(backing: &Path) -> io::Result<State> {
        let unlinked = backing.join(UNLINKED_DIR);
        if unlinked.exists() {
            std::fs::remove_dir_all(&unlinked)?;
        }
        let mut state = State {
            backing: backing.to_path_buf(),
            nodes: HashMap::new(),
            next_ino: ROOT,
            dead: false,
            space_left: None,
            journal_names: false,
            stats: Stats::default(),
        };
        state.load_dir(backing, None)?;
        Ok(state)
    }

    fn load_dir(&mut self, path: &Path, link: Option<(u64, OsString)>) -> io::Result<u64> {
        let ino = self.new_node(Body::Dir(DirBody::default()), 0o755);
        let node = self.nodes.get_mut(&ino).expect("new node");
        (node.linked, node.durable, node.durable_link) = (true, true, link);
        let mut entries = BTreeMap::new();
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            let (name, kind) = (entry.file_name(), entry.file_type()?);
            let link = Some((ino, name.clone()));
            let child = if kind.is_dir() {
                self.load_dir(&entry.path(), link)?
            } else if kind.is_file() {
                let bytes = std::fs::read(entry.path())?;
                let perm = entry.metadata()?.permissions().mode() as u16 & 0o7777;
                let child = self.new_node(
                    Body::File(FileBody {
                        bytes,
                        ..FileBody::default()
                    }),
                    perm,
                );
                let node = self.nodes.get_mut(&child).expect("new node");
                (node.linked, node.durable, node.durable_link) = (true, true, link);
                child
            } else {
                let what = format!(
                    "powercut-fs models files and directories only: {}",
                    entry.path().display()
                );
                return Err(io::Error::new(io::ErrorKind::Unsupported, what));
            };
            entries.insert(name, child);
        }
        let Some(Body::Dir(dir)) = self.nodes.get_mut(&ino).map(|n| &mut n.body) else {
            unreachable!()
        };
        dir.durable = entries.clone();
        dir.entries = entries;
        Ok(ino)
    }

    fn new_node(&mut self, body: Body, perm: u16) -> u64 {
        let ino = self.next_ino;
        self.next_ino += 1;
        let node = Node {
            body,
            perm,
            mtime: SystemTime::now(),
            linked: false,
            opens: 0,
            durable_link: None,
            durable: false,
        };
        self.nodes.insert(ino, node);
        ino
    }

    fn node(&self, ino: u64) -> Result<&Node, Errno> {
        self.nodes.get(&ino).ok_or(Errno::ENOENT)
    }

    fn node_mut(&mut self, ino: u64) -> Result<&mut Node, Errno> {
        self.nodes.get_mut(&ino).ok_or(Errno::ENOENT)
    }

    fn file_mut(&mut self, ino: u64) -> Result<&mut FileBody, Errno> {
        match &mut self.node_mut(ino)?.body {
            Body::File(f) => Ok(f),
            Body::Dir(_) => Err(Errno::EISDIR),
        }
    }

    fn dir(&self, ino: u64) -> Result<&DirBody, Errno> {
        match &self.node(ino)?.body {
            Body::Dir(d) => Ok(d),
            Body::File(_) => Err(Errno::ENOTDIR),
        }
    }

    fn dir_mut(&mut self, ino: u64) -> Result<&mut DirBody, Errno> {
        match &mut self.node_mut(ino)?.body {
            Body::Dir(d) => Ok(d),
            Body::File(_) => Err(Errno::ENOTDIR),
        }
    }

    /// `stat` of an inode.
    pub fn attr(&self, ino: u64) -> Result<FileAttr, Errno> {
        let node = self.node(ino)?;
        let (kind, size) = match &node.body {
            Body::File(f) => (FileType::RegularFile, f.bytes.len() as u64),
            Body::Dir(_) => (FileType::Directory, 0),
        };
        // SAFETY: plain libc getters.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: node.mtime,
            mtime: node.mtime,
            ctime: node.mtime,
            crtime: node.mtime,
            kind,
            perm: node.perm,
            nlink: u32::from(node.linked) + u32::from(kind == FileType::Directory),
            uid,
            gid,
            rdev: 0,
            blksize: PAGE_BYTES as u32,
            flags: 0,
        })
    }

    pub fn lookup(&self, parent: u64, name: &OsStr) -> Result<u64, Errno> {
        self.dir(parent)?
            .entries
            .get(name)
            .copied()
            .ok_or(Errno::ENOENT)
    }

    /// Names of a directory with their inodes and kinds.
    pub fn list(&self, dir: u64) -> Result<Vec<(u64, FileType, OsString)>, Errno> {
        let kind = |ino| match self.nodes.get(&ino).map(|n| &n.body) {
            Some(Body::Dir(_)) => FileType::Directory,
            _ => FileType::RegularFile,
        };
        Ok(self
            .dir(dir)?
            .entries
            .iter()
            .map(|(n, &i)| (i, kind(i), n.clone()))
            .collect())
    }

    /// Creates a file (`dir` false) or directory named `name` in `parent`.
    pub fn create(
        &mut self,
        parent: u64,
        name: &OsStr,
        dir: bool,
        perm: u16,
    ) -> Result<u64, Errno> {
        reserved(parent, name)?;
        if self.dir(parent)?.entries.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let body = if dir {
            Body::Dir(DirBody::default())
        } else {
            Body::File(FileBody::default())
        };
        let ino = self.new_node(body, perm);
        self.node_mut(ino)?.linked = true;
        self.dir_mut(parent)?.entries.insert(name.to_owned(), ino);
        self.stats.creates += 1;
        Ok(ino)
    }

    /// Removes the name `name` from `parent` (`rmdir` when `dir`).
    pub fn remove(&mut self, parent: u64, name: &OsStr, dir: bool) -> Result<(), Errno> {
        let ino = self.lookup(parent, name)?;
        match (&self.node(ino)?.body, dir) {
            (Body::Dir(d), true) if !d.entries.is_empty() => return Err(Errno::ENOTEMPTY),
            (Body::Dir(_), false) => return Err(Errno::EISDIR),
            (Body::File(_), true) => return Err(Errno::ENOTDIR),
            _ => {}
        }
        self.dir_mut(parent)?.entries.remove(name);
        self.unlinked(ino);
        self.stats.removes += 1;
        Ok(())
    }

    /// An inode lost its name: free its bytes unless it is open.
    fn unlinked(&mut self, ino: u64) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.linked = false;
            if let (Body::File(f), 0) = (&mut node.body, node.opens) {
                *f = FileBody::default();
            }
        }
    }

    /// Renames within one directory; across directories is EXDEV (see the
    /// module note), and so are exchange and whiteout renames.
    pub fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        no_replace: bool,
    ) -> Result<(), Errno> {
        if parent != new_parent {
            return Err(Errno::EXDEV);
        }
        reserved(new_parent, new_name)?;
        let ino = self.lookup(parent, name)?;
        if name == new_name {
            return Ok(());
        }
        if let Ok(old) = self.lookup(parent, new_name) {
            match (&self.node(ino)?.body, &self.node(old)?.body) {
                _ if no_replace => return Err(Errno::EEXIST),
                (Body::File(_), Body::Dir(_)) => return Err(Errno::EISDIR),
                (Body::Dir(_), Body::File(_)) => return Err(Errno::ENOTDIR),
                (Body::Dir(_), Body::Dir(d)) if !d.entries.is_empty() => {
                    return Err(Errno::ENOTEMPTY)
                }
                _ => {}
            }
            self.unlinked(old);
        }
        let entries = &mut self.dir_mut(parent)?.entries;
        entries.remove(name);
        entries.insert(new_name.to_owned(), ino);
        Ok(())
    }

    pub fn open(&mut self, ino: u64) -> Result<(), Errno> {
        self.node_mut(ino)?.opens += 1;
        Ok(())
    }

    pub fn release(&mut self, ino: u64) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.opens = node.opens.saturating_sub(1);
            if !node.linked && node.opens == 0 {
                self.unlinked(ino);
            }
        }
    }

    pub fn read(&self, ino: u64, offset: u64, size: u32) -> Result<&[u8], Errno> {
        let Body::File(f) = &self.node(ino)?.body else {
            return Err(Errno::EISDIR);
        };
        let start = (offset as usize).min(f.bytes.len());
        let end = start.saturating_add(size as usize).min(f.bytes.len());
        Ok(&f.bytes[start..end])
    }

    pub fn write(&mut self, ino: u64, offset: u64, data: &[u8]) -> Result<(), Errno> {
        let len = data.len() as u64;
        if let Some(left) = self.space_left {
            if len > left {
                return Err(Errno::ENOSPC);
            }
            self.space_left = Some(left - len);
        }
        let f = self.file_mut(ino)?;
        let end = offset
            .checked_add(len)
            .filter(|&e| e < 1 << 40)
            .ok_or(Errno::EFBIG)?;
        if end as usize > f.bytes.len() {
            f.bytes.resize(end as usize, 0);
        }
        f.bytes[offset as usize..end as usize].copy_from_slice(data);
        f.dirty
            .extend(offset / PAGE_BYTES..end.div_ceil(PAGE_BYTES));
        f.last_write = Some((offset, len));
        self.node_mut(ino)?.mtime = SystemTime::now();
        self.stats.writes += 1;
        self.stats.bytes_written += len;
        Ok(())
    }

    /// `truncate`/`ftruncate`, and `fallocate` growing a file.
    pub fn set_size(&mut self, ino: u64, size: u64) -> Result<(), Errno> {
        if size >= 1 << 40 {
            return Err(Errno::EFBIG);
        }
        let f = self.file_mut(ino)?;
        if size < f.bytes.len() as u64 {
            f.shrunk_to = Some(f.shrunk_to.map_or(size, |s| s.min(size)));
        }
        f.bytes.resize(size as usize, 0);
        self.node_mut(ino)?.mtime = SystemTime::now();
        Ok(())
    }

    pub fn set_perm(&mut self, ino: u64, mode: u32) -> Result<(), Errno> {
        self.node_mut(ino)?.perm = (mode & 0o7777) as u16;
        Ok(())
    }

    /// Where the durable copy of `ino` lives (or would).
    fn location(&self, ino: u64) -> PathBuf {
        match self.nodes.get(&ino).and_then(|n| n.durable_link.as_ref()) {
            _ if ino == ROOT => self.backing.clone(),
            Some((parent, name)) => self.location(*parent).join(name),
            None => self.backing.join(UNLINKED_DIR).join(ino.to_string()),
        }
    }

    /// Creates an empty durable copy of `ino` if it has none.
    fn ensure_durable(&mut self, ino: u64) -> Result<PathBuf, Errno> {
        let path = self.location(ino);
        let node = self.node_mut(ino)?;
        if !node.durable {
            std::fs::create_dir_all(path.parent().expect("below backing"))
                .map_err(|e| eio("mkdir", &path, e))?;
            let made = match node.body {
                Body::Dir(_) => std::fs::create_dir(&path),
                Body::File(_) => std::fs::File::create(&path).map(drop),
            };
            made.map_err(|e| eio("create", &path, e))?;
            node.durable = true;
        }
        Ok(path)
    }

    /// `fsync`/`fdatasync` of a file: its bytes and size become durable
    /// (its name does not: that is the parent's fsync).
    pub fn fsync(&mut self, ino: u64) -> Result<(), Errno> {
        if matches!(self.node(ino)?.body, Body::Dir(_)) {
            return self.fsync_dir(ino);
        }
        self.stats.fsyncs += 1;
        if self.journal_names {
            self.sync_all_names()?;
        }
        let path = self.ensure_durable(ino)?;
        let f = self.file_mut(ino)?;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| eio("open", &path, e))?;
        let io = |e| eio("write", &path, e);
        if let Some(size) = f.shrunk_to.take() {
            file.set_len(size).map_err(io)?;
        }
        let len = f.bytes.len() as u64;
        for page in std::mem::take(&mut f.dirty) {
            let start = page * PAGE_BYTES;
            if start < len {
                let end = (start + PAGE_BYTES).min(len);
                file.write_all_at(&f.bytes[start as usize..end as usize], start)
                    .map_err(io)?;
            }
        }
        file.set_len(len).map_err(io)?;
        f.last_write = None;
        Ok(())
    }

    /// `fsync` of a directory: its current entries become its durable
    /// ones. Inodes that lost their durable name move to `UNLINKED_DIR`
    /// (or go, when nothing refers to them any more); inodes that gained
    /// one move there from `UNLINKED_DIR`, or appear empty.
    pub fn fsync_dir(&mut self, ino: u64) -> Result<(), Errno> {
        self.stats.dir_fsyncs += 1;
        if self.journal_names {
            return self.sync_all_names();
        }
        self.sync_names(ino)
    }

    /// Makes the names of every directory durable, parents first.
    fn sync_all_names(&mut self) -> Result<(), Errno> {
        let mut dirs = vec![ROOT];
        while let Some(dir) = dirs.pop() {
            self.sync_names(dir)?;
            let children = self.dir(dir)?.entries.values();
            dirs.extend(children.filter(|i| matches!(self.nodes[i].body, Body::Dir(_))));
        }
        Ok(())
    }

    /// Makes the current names of directory `ino` durable.
    fn sync_names(&mut self, ino: u64) -> Result<(), Errno> {
        let here = self.ensure_durable(ino)?;
        let dir = self.dir(ino)?;
        let (now, old) = (dir.entries.clone(), dir.durable.clone());
        for (name, child) in &old {
            if now.get(name) == Some(child) {
                continue;
            }
            let from = here.join(name);
            let node = self.node_mut(*child)?;
            node.durable_link = None;
            if !node.linked && node.opens == 0 {
                let gone = match node.body {
                    Body::Dir(_) => std::fs::remove_dir_all(&from),
                    Body::File(_) => std::fs::remove_file(&from),
                };
                gone.map_err(|e| eio("remove", &from, e))?;
                self.forget_durable(*child);
            } else {
                let to = self.location(*child);
                std::fs::create_dir_all(self.backing.join(UNLINKED_DIR))
                    .map_err(|e| eio("mkdir", &to, e))?;
                std::fs::rename(&from, &to).map_err(|e| eio("rename", &from, e))?;
            }
        }
        for (name, child) in &now {
            if old.get(name) == Some(child) {
                continue;
            }
            let to = here.join(name);
            if self.node(*child)?.durable {
                let from = self.location(*child);
                std::fs::rename(&from, &to).map_err(|e| eio("rename", &from, e))?;
            }
            self.node_mut(*child)?.durable_link = Some((ino, name.clone()));
            self.ensure_durable(*child)?;
        }
        self.dir_mut(ino)?.durable = now;
        Ok(())
    }

    /// Marks `ino` and everything durably below it as having no durable
    /// copy (their copies were just deleted).
    fn forget_durable(&mut self, ino: u64) {
        let Some(node) = self.nodes.get_mut(&ino) else {
            return;
        };
        (node.durable, node.durable_link) = (false, None);
        if let Body::Dir(d) = &mut node.body {
            for child in std::mem::take(&mut d.durable).into_values() {
                self.forget_durable(child);
            }
        }
    }

    /// A clean shutdown instead of a cut: every directory (parents first)
    /// and every named file made durable.
    pub fn sync_all(&mut self) -> Result<(), Errno> {
        self.sync_all_names()?;
        let files: Vec<u64> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.linked && matches!(n.body, Body::File(_)))
            .map(|(&ino, _)| ino)
            .collect();
        files.into_iter().try_for_each(|ino| self.fsync(ino))
    }

    /// The power cut: nothing more becomes durable; with `tear`, each file
    /// with a durable name keeps a random whole-sector prefix (possibly
    /// none, possibly all) of its last unsynced write. The caller unmounts
    /// and deletes `UNLINKED_DIR` afterwards.
    pub fn cut(&mut self, mut tear: Option<&mut XorShift>) -> CutSummary {
        self.dead = true;
        let mut summary = CutSummary::default();
        let mut inos: Vec<u64> = self.nodes.keys().copied().collect();
        inos.sort_unstable();
        for ino in inos {
            let reachable = self.durably_reachable(ino);
            let path = self.location(ino);
            match &self.nodes[&ino].body {
                Body::Dir(d) => summary.dirs_unsynced += usize::from(d.entries != d.durable),
                Body::File(f) => {
                    let unsynced = !f.dirty.is_empty() || f.shrunk_to.is_some();
                    summary.files_unsynced += usize::from(unsynced);
                    let (Some(rng), Some((offset, len)), true) =
                        (tear.as_deref_mut(), f.last_write, reachable)
                    else {
                        continue;
                    };
                    let first = offset / SECTOR_BYTES;
                    let sectors = (offset + len).div_ceil(SECTOR_BYTES) - first;
                    let end = ((first + rng.below(sectors + 1)) * SECTOR_BYTES)
                        .clamp(offset, offset + len);
                    // The durable size stays: an unsynced size change is
                    // metadata, and a cut drops it.
                    let durable_len = std::fs::metadata(&path).map_or(0, |m| m.len());
                    let end = end.min(f.bytes.len() as u64).min(durable_len);
                    if end > offset {
                        let kept = &f.bytes[offset as usize..end as usize];
                        let written = std::fs::OpenOptions::new()
                            .write(true)
                            .open(&path)
                            .and_then(|file| file.write_all_at(kept, offset));
                        if let Err(e) = written {
                            tracing::warn!(path = %path.display(), error = %e, "powercut-fs: tearing a write failed.");
                        }
                        summary.writes_torn += 1;
                    }
                }
            }
        }
        summary
    }

    /// Whether `ino` has a durable copy that a cut keeps: a chain of
    /// durable names up to the root.
    fn durably_reachable(&self, ino: u64) -> bool {
        match self.nodes.get(&ino) {
            _ if ino == ROOT => true,
            Some(Node {
                durable: true,
                durable_link: Some((parent, _)),
                ..
            }) => self.durably_reachable(*parent),
            _ => false,
        }
    }
}
