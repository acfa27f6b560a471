//! powercut-fs checks itself: exactly what was made durable survives a cut
//! (no less: the model would be too harsh; no more: a leak would hide the
//! bugs the power-cut tests look for), both in the backing directory before
//! the cut and through a new mount after it.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{mount_or_fail, Options, UNLINKED_DIR};

/// A tree as seen by plain file reads: path -> contents (`None`: a directory).
type Tree = BTreeMap<PathBuf, Option<Contents>>;

/// File contents, shown short in assertion messages.
#[derive(Clone, PartialEq, Eq)]
struct Contents(Vec<u8>);

impl std::fmt::Debug for Contents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let head = String::from_utf8_lossy(&self.0[..self.0.len().min(20)]);
        write!(f, "{} bytes {head:?}", self.0.len())
    }
}

fn tree(root: &Path) -> Tree {
    let mut out = Tree::new();
    walk(root, Path::new(""), &mut out);
    out
}

fn walk(root: &Path, rel: &Path, out: &mut Tree) {
    for entry in std::fs::read_dir(root.join(rel)).expect("read_dir") {
        let entry = entry.expect("entry");
        if rel.as_os_str().is_empty() && entry.file_name() == UNLINKED_DIR {
            continue;
        }
        let path = rel.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            out.insert(path.clone(), None);
            walk(root, &path, out);
        } else {
            out.insert(
                path,
                Some(Contents(std::fs::read(entry.path()).expect("read"))),
            );
        }
    }
}

fn expected(entries: &[(&str, Option<&[u8]>)]) -> Tree {
    entries
        .iter()
        .map(|(p, c)| (PathBuf::from(p), c.map(|c| Contents(c.to_vec()))))
        .collect()
}

/// Writes `bytes` to a new (or truncated) file; fsyncs it when `sync`.
fn put(path: &Path, bytes: &[u8], sync: bool) {
    let mut f = File::create(path).expect("create");
    f.write_all(bytes).expect("write");
    if sync {
        f.sync_data().expect("fdatasync");
    }
}

fn sync_dir(path: &Path) {
    File::open(path)
        .expect("open dir")
        .sync_all()
        .expect("fsync dir");
}

/// Goal: a cut keeps exactly the durable state of the model (module note of
/// `powercut_fs`). Method: one mount, one case per rule (data, size,
/// create, unlink, rename, mkdir, a name synced before its data); compare
/// the backing directory with the expected durable tree *before* the cut
/// (nothing unsynced leaked into it), check the mount showed the unsynced
/// state meanwhile (so the comparison is not vacuous), cut, and compare
/// both the backing directory and a new mount with it.
#[test]
fn a_cut_keeps_exactly_what_was_synced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (backing, at) = (dir.path().join("backing"), dir.path().join("mnt"));
    let m = mount_or_fail(&backing, &at, Options::default());
    let p = |name: &str| at.join(name);
    // Data: synced v1, then an unsynced longer v2.
    put(&p("kept"), b"v1", true);
    // A name synced before its file ever was: empty after the cut.
    put(&p("named_early"), b"never synced", false);
    // Unlinked without a directory sync: back, with its synced contents.
    put(&p("unlinked"), b"u1", true);
    // Unlinked and the directory synced: gone.
    put(&p("removed"), b"r1", true);
    // Renamed with a directory sync, then again without one.
    put(&p("a"), b"renamed", true);
    // Shrunk and regrown without a sync: the old bytes; with one: zeros.
    put(&p("regrown_unsynced"), &[7u8; 10_000], true);
    put(&p("regrown_synced"), &[7u8; 10_000], true);
    std::fs::create_dir(p("sub")).expect("mkdir");
    sync_dir(&at);
    let kept = OpenOptions::new()
        .write(true)
        .open(p("kept"))
        .expect("open");
    kept.write_all_at(b"v2, never synced", 0).expect("write");
    std::fs::remove_file(p("removed")).expect("unlink");
    std::fs::rename(p("a"), p("b")).expect("rename");
    sync_dir(&at);
    std::fs::remove_file(p("unlinked")).expect("unlink");
    std::fs::rename(p("b"), p("c")).expect("rename");
    for (name, sync) in [("regrown_unsynced", false), ("regrown_synced", true)] {
        let f = OpenOptions::new().write(true).open(p(name)).expect("open");
        f.set_len(10).expect("shrink");
        f.set_len(10_000).expect("grow");
        if sync {
            f.sync_all().expect("fsync");
        }
    }
    // Created and fsynced, its directory not: gone (also in a new subdir).
    put(&p("created_unsynced_dir"), b"x", true);
    put(&p("sub/f"), b"x", true);
    std::fs::create_dir(p("unsynced_dir")).expect("mkdir");

    let mut zeros = vec![7u8; 10];
    zeros.resize(10_000, 0);
    let durable = expected(&[
        ("kept", Some(b"v1")),
        ("named_early", Some(b"")),
        ("unlinked", Some(b"u1")),
        ("b", Some(b"renamed")),
        ("regrown_unsynced", Some(&[7u8; 10_000])),
        ("regrown_synced", Some(&zeros)),
        ("sub", None),
    ]);
    assert_eq!(
        tree(&backing),
        durable,
        "the backing directory holds unsynced changes (or lacks synced ones)"
    );
    let live = tree(&at);
    assert_eq!(
        live.get(Path::new("kept")),
        Some(&Some(Contents(b"v2, never synced".to_vec())))
    );
    assert!(live.contains_key(Path::new("c")) && live.contains_key(Path::new("sub/f")));
    assert!(!live.contains_key(Path::new("unlinked")) && !live.contains_key(Path::new("b")));
    drop(kept);

    let summary = m.cut().expect("cut");
    assert!(
        summary.files_unsynced >= 3 && summary.dirs_unsynced >= 2,
        "{summary:?}"
    );
    assert_eq!(tree(&backing), durable, "after the cut");
    assert!(!backing.join(UNLINKED_DIR).exists());
    let m = mount_or_fail(&backing, &at, Options::default());
    assert_eq!(tree(&at), durable, "through a new mount");
    // The new mount works on: an unsynced change is lost again.
    put(&p("kept"), b"v3", false);
    m.cut().expect("cut");
    let m = mount_or_fail(&backing, &at, Options::default());
    assert_eq!(std::fs::read(p("kept")).expect("read"), b"v1");
    drop(m);
}

/// Goal: with tearing on, a cut keeps a whole-sector prefix of the last
/// unsynced write, sometimes torn inside it, never past the durable size.
/// Method: 16 seeds; each writes 8 durable sectors of `a`, then, unsynced,
/// 8 sectors of `b` from sector 4 (growing the file to 12); after the cut
/// the file must be 4 sectors of `a`, k sectors of `b`, then `a`, and keep
/// its durable size of 8 sectors.
#[test]
fn tearing_keeps_a_sector_prefix_of_the_last_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (backing, at) = (dir.path().join("backing"), dir.path().join("mnt"));
    let sector = super::SECTOR_BYTES as usize;
    let mut kept_sectors = Vec::new();
    for seed in 0..16u64 {
        let m = mount_or_fail(&backing, &at, Options::default());
        put(&at.join("w"), &vec![b'a'; 8 * sector], true);
        sync_dir(&at);
        m.cut().expect("cut");
        let tear_seed = Some(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let tearing = Options {
            tear_seed,
            ..Options::default()
        };
        let m = mount_or_fail(&backing, &at, tearing);
        let f = OpenOptions::new()
            .write(true)
            .open(at.join("w"))
            .expect("open");
        f.write_all_at(&vec![b'b'; 8 * sector], 4 * sector as u64)
            .expect("write");
        drop(f);
        m.cut().expect("cut");
        let got = std::fs::read(backing.join("w")).expect("read");
        assert_eq!(got.len(), 8 * sector, "seed {seed}: the size changed");
        assert!(
            got[..4 * sector].iter().all(|&b| b == b'a'),
            "seed {seed}: before the write"
        );
        let k = got[4 * sector..].iter().take_while(|&&b| b == b'b').count();
        assert_eq!(k % sector, 0, "seed {seed}: torn inside a sector");
        assert!(
            got[4 * sector + k..].iter().all(|&b| b == b'a'),
            "seed {seed}: not a prefix"
        );
        kept_sectors.push(k / sector);
    }
    assert!(
        kept_sectors.iter().any(|&k| k > 0 && k < 4),
        "never torn inside the write: {kept_sectors:?}"
    );
    assert!(
        kept_sectors.contains(&0),
        "never dropped whole: {kept_sectors:?}"
    );
}

/// Goal: a stalled fsync delays its caller only: other requests go on, and
/// the data is durable once it returns. Method: stall fsyncs for 1 s,
/// fsync in a thread, and while it is stalled read another file.
#[test]
fn a_stalled_fsync_holds_up_only_its_caller() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (backing, at) = (dir.path().join("backing"), dir.path().join("mnt"));
    let m = mount_or_fail(&backing, &at, Options::default());
    let at = m.path().to_path_buf();
    put(&at.join("other"), b"readable", true);
    m.stall_fsync(1_000);
    let path = at.join("slow");
    let started = Instant::now();
    let syncer = std::thread::spawn(move || put(&path, b"slow", true));
    while m.fsyncs_stalled() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no fsync stalled"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let read_at = Instant::now();
    assert_eq!(std::fs::read(at.join("other")).expect("read"), b"readable");
    assert!(
        read_at.elapsed() < Duration::from_millis(500),
        "a read waited {:?}",
        read_at.elapsed()
    );
    assert_eq!(m.fsyncs_stalled(), 1, "the read came after the stall");
    syncer.join().expect("syncer");
    assert!(
        started.elapsed() >= Duration::from_millis(1_000),
        "fsync took {:?}",
        started.elapsed()
    );
    m.stall_fsync(0);
    sync_dir(&at);
    assert_eq!(
        std::fs::read(backing.join("slow")).expect("durable"),
        b"slow"
    );
    assert_eq!((m.stats().fsyncs, m.stats().dir_fsyncs), (2, 1));
}

/// Goal: a full disk is modelled: after the allowed bytes, writes fail
/// with ENOSPC, and lifting the limit lets them through again.
#[test]
fn writes_fail_with_enospc_past_the_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (backing, at) = (dir.path().join("backing"), dir.path().join("mnt"));
    let m = mount_or_fail(&backing, &at, Options::default());
    let f = File::create(at.join("f")).expect("create");
    m.fail_writes_after(Some(1_000));
    f.write_all_at(&[1; 800], 0).expect("within the limit");
    let err = f.write_all_at(&[1; 400], 800).expect_err("past the limit");
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    m.fail_writes_after(None);
    f.write_all_at(&[1; 400], 800).expect("limit lifted");
}

/// Goal: with `journal_names`, any fsync makes every pending name durable
/// (as an ext4 journal commit does), while unsynced data stays volatile.
/// Method: create two files and a directory, fsync only the second file,
/// cut: all three names are back, only the synced file has its data.
#[test]
fn journal_names_make_every_name_durable_on_any_fsync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (backing, at) = (dir.path().join("backing"), dir.path().join("mnt"));
    let journal = Options {
        journal_names: true,
        ..Options::default()
    };
    let m = mount_or_fail(&backing, &at, journal);
    put(&at.join("a"), b"never synced", false);
    std::fs::create_dir(at.join("d")).expect("mkdir");
    put(&at.join("b"), b"synced", true);
    m.cut().expect("cut");
    let durable = expected(&[("a", Some(b"")), ("b", Some(b"synced")), ("d", None)]);
    assert_eq!(tree(&backing), durable);
}
