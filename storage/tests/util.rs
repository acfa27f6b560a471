//! Helpers shared by the integration tests.

use std::path::Path;

use edgecc_storage::{NewRecord, Outbox, Record, RecordKind, Storage, StorageConfig};

/// Makes every later write of this process past `bytes` into any file
/// fail with EFBIG, as a full disk would (ENOSPC). For child processes
/// only: it holds for every thread.
pub fn limit_file_size(bytes: u64) {
    // SAFETY: plain libc calls on this process; SIGXFSZ is ignored so a
    // write past the limit fails instead of killing the process.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let limit = libc::rlimit {
            rlim_cur: bytes,
            rlim_max: libc::RLIM_INFINITY,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
}

/// A small-cache config, as an edge box would use.
pub fn config() -> StorageConfig {
    StorageConfig {
        cache_bytes: 8 * 1024 * 1024,
        ..StorageConfig::default()
    }
}

/// Opens storage in `dir`, panicking with the error (tests only).
pub fn open(dir: &Path) -> Storage {
    Storage::open(dir, config()).expect("open storage")
}

/// A record of `key` with a body naming its correlation id.
/// Waits (up to a minute) until the background check of sled after an
/// unclean open has finished, and returns the health then.
pub fn wait_checked(storage: &Storage) -> edgecc_storage::StorageHealth {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let health = storage.health();
        if !health.index_checking {
            return health;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "index check still running: {health:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

pub fn rec(key: &str, kind: RecordKind, corr: &str, created_at_ms: u64) -> NewRecord {
    NewRecord {
        correlation_id: corr.to_owned(),
        interaction_key: key.to_owned(),
        kind,
        body: format!(r#"{{"corr":"{corr}"}}"#).into_bytes(),
        created_at_ms,
    }
}

/// An `interaction.update` of `key` numbered `n`.
pub fn update(key: &str, n: u32) -> NewRecord {
    rec(
        key,
        RecordKind::InteractionUpdate,
        &format!("{key}/update/{n}"),
        1_000 + u64::from(n),
    )
}

/// Takes everything ready at `now_ms`, acking each, until nothing is ready;
/// returns the sequences in delivery order.
pub async fn drain(outbox: &Outbox, now_ms: u64) -> Vec<Record> {
    let mut delivered = Vec::new();
    loop {
        let batch = outbox.take_ready(16, now_ms);
        if batch.is_empty() {
            return delivered;
        }
        for r in batch {
            outbox.ack(r.seq).await.expect("ack");
            delivered.push(r);
        }
    }
}

/// Sequences of `records`.
pub fn seqs(records: &[Record]) -> Vec<u64> {
    records.iter().map(|r| r.seq).collect()
}

/// A command re-running this test binary for exactly one (child) test, with
/// `env` set so that test knows it is the child.
pub fn child_command(test_name: &str, env: &str, value: &std::path::Path) -> std::process::Command {
    let exe = std::env::current_exe().expect("current exe");
    let mut cmd = std::process::Command::new(exe);
    cmd.args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(env, value)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    cmd
}

/// Every pending record, page by page.
pub fn list_all(outbox: &Outbox) -> Vec<Record> {
    let mut out: Vec<Record> = Vec::new();
    loop {
        let from = out.last().map_or(0, |r| r.seq + 1);
        let page = outbox.list(from, 1000).expect("list");
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// A tiny xorshift generator for test timing (no extra dependency).
pub struct XorShift(pub u64);

impl XorShift {
    /// The next value in `0..bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound.max(1)
    }
}

/// Copies the files of a closed storage directory (not our lock file).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != "edgecc.lock" {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// What a power cut can leave when sled is not trusted: sled's files from
/// `sled_from` (any earlier moment: here a copy taken at a clean close),
/// and the log as `log_from` holds it now (every acknowledged frame is
/// synced there), without the clean marker (open took it away when the
/// run started). Copied into `to`.
pub fn cut_copy(sled_from: &Path, log_from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(sled_from).into_iter().flatten() {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        if name == edgecc_storage::LOG_DIR || name == edgecc_storage::CLEAN_FILE {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else if name != "edgecc.lock" {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
    copy_dir(
        &log_from.join(edgecc_storage::LOG_DIR),
        &to.join(edgecc_storage::LOG_DIR),
    );
}

/// Bytes allocated by `dir`'s files, without the log directory.
pub fn sled_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fn walk(dir: &Path, top: bool) -> u64 {
        std::fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry"))
            .filter(|e| !(top && e.file_name() == edgecc_storage::LOG_DIR))
            .map(|e| {
                let meta = e.metadata().expect("metadata");
                if meta.is_dir() {
                    walk(&e.path(), false)
                } else {
                    meta.blocks() * 512
                }
            })
            .sum()
    }
    walk(dir, true)
}

/// Replaces every copy of `old` inside the log's frames with `new` (the
/// same length) and fixes those frames' checksums, as a value stored
/// damaged would read back: the log keeps it, its own CRC (if any) does
/// not match. Answers how many copies were replaced. Only for a closed
/// storage directory.
pub fn rewrite_in_log(dir: &Path, old: &[u8], new: &[u8]) -> usize {
    assert_eq!(old.len(), new.len(), "same length only");
    const DATA_START: usize = 4096;
    const HEADER: usize = 4 + 8 + 4 + 4;
    const MAGIC: u32 = 0x3146_5345;
    let mut replaced = 0;
    let log = dir.join(edgecc_storage::LOG_DIR);
    for entry in std::fs::read_dir(&log).expect("log dir") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("seg") {
            continue;
        }
        let mut bytes = std::fs::read(&path).expect("segment");
        let mut at = DATA_START;
        let u32_at = |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        while at + HEADER <= bytes.len() && u32_at(&bytes, at) == MAGIC {
            let lsn = u64::from_le_bytes(bytes[at + 4..at + 12].try_into().expect("8 bytes"));
            let len = u32_at(&bytes, at + 12) as usize;
            let payload = at + HEADER..at + HEADER + len;
            let mut changed = false;
            let mut i = payload.start;
            while i + old.len() <= payload.end {
                if &bytes[i..i + old.len()] == old {
                    bytes[i..i + old.len()].copy_from_slice(new);
                    changed = true;
                    replaced += 1;
                    i += old.len();
                } else {
                    i += 1;
                }
            }
            if changed {
                let mut h = crc32fast::Hasher::new();
                h.update(&lsn.to_le_bytes());
                h.update(&(len as u32).to_le_bytes());
                h.update(&bytes[payload.clone()]);
                bytes[at + 16..at + 20].copy_from_slice(&h.finalize().to_le_bytes());
            }
            at = payload.end;
        }
        std::fs::write(&path, &bytes).expect("write segment");
    }
    replaced
}

/// Every op on `tree`/`key` in the log of a closed storage directory, in
/// log order: `Some(value)` for a put, `None` for a removal.
pub fn log_ops(dir: &Path, tree: &[u8], key: &[u8]) -> Vec<Option<Vec<u8>>> {
    const DATA_START: usize = 4096;
    const HEADER: usize = 4 + 8 + 4 + 4;
    const MAGIC: u32 = 0x3146_5345;
    let mut segs: Vec<_> = std::fs::read_dir(dir.join(edgecc_storage::LOG_DIR))
        .expect("log dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("seg"))
        .collect();
    segs.sort();
    let mut out = Vec::new();
    for path in segs {
        let b = std::fs::read(&path).expect("segment");
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut at = DATA_START;
        while at + HEADER <= b.len() && u32_at(at) == MAGIC {
            let len = u32_at(at + 12) as usize;
            let mut i = at + HEADER;
            let end = i + len;
            while i < end {
                let tl = b[i] as usize;
                let t = &b[i + 1..i + 1 + tl];
                i += 1 + tl;
                let kl = u32_at(i) as usize;
                let k = &b[i + 4..i + 4 + kl];
                i += 4 + kl;
                let value = if b[i] == 1 {
                    let vl = u32_at(i + 1) as usize;
                    let v = b[i + 5..i + 5 + vl].to_vec();
                    i += 5 + vl;
                    Some(v)
                } else {
                    i += 1;
                    None
                };
                if t == tree && k == key {
                    out.push(value);
                }
            }
            at = end;
        }
    }
    out
}
