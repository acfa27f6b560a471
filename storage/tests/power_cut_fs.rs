//! Power cuts on real files: every acknowledged change survives, and the
//! directory always opens (issue 14).
//!
//! The storage runs in a child process (this test binary re-run with
//! [`CHILD_ENV`] set) on a powercut-fs mount held by the parent. Each round
//! the child opens the directory left by the previous cut, reports what it
//! finds (the check), then appends records (small ones and bodies close to
//! `BODY_BYTES_MAX`, which sled writes as blob files), acks, retries and
//! dead-letters them, and puts and removes state entries, reporting each
//! acknowledged operation as it is acknowledged. The parent SIGKILLs it at a
//! random moment (sometimes during the open itself), cuts power (every
//! unsynced write, sled's included, is lost; every other cut also tears each
//! file's last unsynced write), remounts and starts the next round. One
//! directory is reused across all cuts, with the smallest log and small
//! sled segments, so sled relocates and reuses segments as in a box that
//! has run for months. sled's checkpoints run every 40 ms, so cuts find
//! sled's files present and damaged (without them no name of sled's was
//! ever durable at a cut: the test fails if no cut left sled's data
//! file), and every other round the child reports after the background
//! check, so the report reads the repaired sled instead of the log.
//! Panics the storage catches are counted, not failures: a failure is an
//! operation that fails (a workload task ends) or a child that exits.
//!
//! Found once sled's files were present (checkpoints): a damaged sled
//! took the check's writes without showing them, so a sled trusted after
//! one repairing pass lost acknowledged records and brought acked ones
//! back (4 of 150 cuts); the check now trusts an old sled only after a
//! pass that repairs nothing (BENCHMARKS.md has the counts).
//!
//! Found with `scripts/power-cut-soak.sh` at 100 cuts (seed
//! 1796587549660310906) on 2c23df2's storage: 6 of 100 cuts failed, all in
//! rounds whose report read the checked sled: 122 acknowledged records
//! lost, 2 acked records back, the delivery index disagreeing with the
//! list 6 times. The check had read its page of sled before taking the
//! apply lock and, where it differed from the log, asked sled again with a
//! lookup, taking an answer that matched for the writer's change; a
//! damaged sled whose range reads and lookups disagree passed as healthy.
//! The check now compares a page read as of a moment under the lock (see
//! `check` in the storage crate): the same seed then failed 0 of 100 cuts,
//! three runs. And in the last round, a panic the storage caught (sled's
//! `cannot find pid N in view_for_key` in the check thread) failed the
//! test, since that child exits on its own: the CI failure that had the
//! s9-rss storage reverted, 1 of 10 runs on 2c23df2's storage here; that
//! round now says `Done` at its end.
//!
//! Was open: about 1 run of 10 to 17 (20 cuts, loaded machine) failed
//! with "open did not finish within 60000 ms" in a round that waits for
//! the check of sled. gdb's backtrace of the hung child (printed by the
//! test) showed the check thread spinning inside sled on a damaged tree:
//! `Iter::next_inner` -> `Tree::view_for_key` -> `PageCache::get` (sled
//! 0.34.7 retries a lookup up to a million times before it panics, and its
//! iterator retries lookups as often). The storage stayed usable (reads
//! come from the log), but the check did not end in time. Seen on
//! 2c23df2's storage too. The check is now bounded (`check_watch` in the
//! storage crate): a pass that compares no batch of keys within
//! `check_stall_ms` (10 s, the default, used here) is abandoned and its
//! sled moved aside and rebuilt from the log, as one that panicked
//! (`background_check::a_check_stuck_inside_sled_is_abandoned_and_sled_rebuilt`
//! shows it with a stuck read injected). Then 85 of 85 20-cut runs passed
//! here (one took 74 s, the others 7-23 s); this test cannot tell which of
//! its quarantines the bound made (the child's log is not kept), so those
//! runs do not show that a stuck check was met at all. The abandoning
//! itself under real cuts: with `EDGECC_POWER_CUT_CHECK_STALL_MS=30`
//! (healthy passes abandoned too; sled's own panics were then caught on
//! the abandoned pass threads), 2 of 4 runs passed and 2 stopped at a
//! check that gave up once both its rebuilds were abandoned as well (what
//! the check does when no pass ever finishes in time); no record lost or
//! back in any round.
//!
//! Still open: a read that sticks while the check holds the apply lock
//! (the page read again under it after the writer applied a group, or a
//! repair's write), or the writer's own apply to an unchecked, damaged
//! sled, is not bounded: the writer would wait with it, and the round's
//! report with the writer. Not seen so far.
//!
//! Found on the storage of issue 14 (sled 0.34.7 as the store, the log in
//! front of it), with `scripts/power-cut-soak.sh` (each directory that no
//! longer opens replaced by a fresh one; a failing cut can leave damage
//! that later cuts report again):
//!
//! - 200 cuts (seed 1796544580776263971): 57 failed. 21 directories no
//!   longer opened: sled panicked with `cannot find pid N in view_for_key`
//!   (tree.rs:1767) 19 times, `tried to serialize Uninitialized`
//!   (serialization.rs:662) once, `assertion failed: *key < self.hi[..]`
//!   (node.rs:111) once. In directories that opened: 194 acknowledged
//!   records lost, 25 acked records back, a dead letter back in the outbox,
//!   a record both pending and dead, and the delivery index disagreeing with
//!   the outbox 34 times. One sled panic after a successful open.
//! - With an earlier, slower workload (about 20 appends a cut): 32, 32 (no
//!   tearing) and 29 of 200 cuts failed, all as directories that no longer
//!   opened (the same three sled panics) and two opens that hung (the one
//!   diagnosed: threads in futex waits, none in a file-system request).
//! - Untorn cuts fail as well as torn ones. With names durable at any fsync
//!   (`EDGECC_POWER_CUT_JOURNAL_NAMES=1`, ext4's journal), no cut failed
//!   (100 cuts of one directory, seed 1796544731916221822, and 150 with the
//!   slower workload): the failures need a name change (which one was not
//!   traced: sled renames snapshots, creates and unlinks blob files) that
//!   no directory fsync made durable. Kills without power cuts
//!   (`EDGECC_POWER_CUT_CONTROL=1`) never failed.
//!
//! Environment: `EDGECC_POWER_CUTS` (cuts, default [`CUTS_DEFAULT`]),
//! `EDGECC_POWER_CUT_SEED` (the seed, printed by every run),
//! `EDGECC_POWER_CUT_TEAR=0` (no torn writes),
//! `EDGECC_POWER_CUT_CACHE_BYTES` (sled's cache in the child, 4 MiB by
//! default), `EDGECC_POWER_CUT_CHECK_STALL_MS` (the check's bound in the
//! child, `check_stall_ms`; 10 s by default),
//! `EDGECC_POWER_CUT_JOURNAL_NAMES=1` (names durable at any fsync, as with
//! ext4's journal, instead of only at their directory's fsync), and
//! `EDGECC_POWER_CUT_KEEP_GOING=1` (count failing cuts instead of stopping
//! at the first; a directory that no longer opens is replaced by a fresh
//! one): `scripts/power-cut-soak.sh` runs it so.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use edgecc_storage::{NewRecord, RecordKind, Storage, StorageConfig, BODY_BYTES_MAX};

use crate::powercut_fs::{self, Options};
use crate::util::{child_command, list_all, XorShift};

/// Set (to the storage directory) in the child.
const CHILD_ENV: &str = "EDGECC_POWER_CUT_CHILD";

/// Cuts of one run in the suite (well under a second each).
const CUTS_DEFAULT: u32 = 20;

/// Introduces every event line of the child.
const MARK: &str = "@@powercut@@ ";

/// The state tree the child writes.
const STATE_TREE: &str = "cut-state";

/// Appending tasks in the child.
const APPENDERS: u64 = 3;

/// Pause of each appender between two appends, in ms.
const APPEND_PAUSE_MS: u64 = 3;

/// Pending records above which the appenders wait for the consumer.
const BACKLOG_MAX: i64 = 300;

/// Dead letters the child makes at most (they are never deleted).
const DEAD_LETTERS_MAX: i64 = 40;

/// Interval of sled's checkpoints in the child, in ms.
const SLED_CHECKPOINT_MS: u64 = 40;

/// Longest the child may take to open and report, in ms: a hang is a
/// failure too.
const CHECK_WAIT_MS: u64 = 60_000;

/// The storage options: the smallest log (many checkpoints) and 64 KiB sled
/// segments (values over ~16 KiB become blob files, and segments fill,
/// relocate and are reused quickly); sled's cleaner every 100 ms instead
/// of 500 for more relocations per second of test.
fn config() -> StorageConfig {
    StorageConfig {
        // 4 MiB unless `EDGECC_POWER_CUT_CACHE_BYTES` says otherwise (the
        // daemon's default is 16 MiB).
        cache_bytes: env_u64("EDGECC_POWER_CUT_CACHE_BYTES", 4 * 1024 * 1024),
        flush_every_ms: Some(100),
        segment_bytes: 64 * 1024,
        // sled's files and names made durable often, so that cuts find
        // them present and more or less damaged (without checkpoints none
        // of their names is ever durable before a clean close).
        sled_checkpoint_ms: Some(SLED_CHECKPOINT_MS),
        wal_bytes: edgecc_storage::WAL_BYTES_MIN,
        // The bound on a stuck check (10 s by default, the daemon's);
        // lower, it abandons healthy passes too, which exercises that path.
        check_stall_ms: env_u64(
            "EDGECC_POWER_CUT_CHECK_STALL_MS",
            edgecc_storage::CHECK_STALL_MS_DEFAULT,
        ),
        ..StorageConfig::default()
    }
}

/// A record's body: its correlation id repeated to `len` bytes, so any
/// record found can be checked whole.
fn body_of(corr: &str, len: usize) -> Vec<u8> {
    format!("{corr}|")
        .into_bytes()
        .into_iter()
        .cycle()
        .take(len)
        .collect()
}

/// One line of the child.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Event {
    /// Check: a pending record (seq, correlation id, body length, body crc).
    Rec(u64, String, usize, u32),
    /// Check: a dead letter (seq, correlation id if decodable, reason).
    Dead(u64, Option<String>, String),
    /// Check: a state entry.
    State(String, String),
    /// Check: the depth the delivery index counts.
    Depth(u64),
    /// The background check of sled ended: whether the report was read
    /// from sled after it (the child waited for it), entries it repaired,
    /// quarantined sled directories, and its error if it gave up.
    Health(bool, u64, u64, Option<String>),
    /// The check is complete; the workload starts.
    Checked,
    /// The last (check-only) round reached its end: its check of sled
    /// ended and the storage closed. A panic it reported was caught.
    Done,
    /// `Storage::open` returned an error.
    OpenFailed(String),
    /// The child failed: a workload task ended (an operation failed or
    /// panicked), or a panic left the test function.
    Panic(String),
    /// A panic, with its thread: not a failure by itself, the storage
    /// catches sled's panics (at open, in the check, in a checkpoint, in a
    /// group applied to an unchecked sled); one it does not catch ends a
    /// workload task or the child ([`Event::Panic`], or an early exit).
    Panicked(String),
    /// An append was acknowledged: seq, correlation id, body length.
    Appended(u64, String, usize),
    /// An ack was sent / confirmed.
    Acking(u64),
    Acked(u64),
    /// A dead-letter move was sent / confirmed.
    Deading(u64),
    Deaded(u64),
    /// A state put (`Some`) or remove (`None`) was sent / confirmed.
    Putting(String, Option<String>),
    Put(String, Option<String>),
}

/// Parses one line; the mark may follow libtest's banner on the same line.
fn parse(line: &str) -> Option<Event> {
    let rest = &line[line.find(MARK)? + MARK.len()..];
    let (word, args) = rest.split_once(' ').unwrap_or((rest, ""));
    let a: Vec<&str> = args.split(' ').collect();
    let n = |i: usize| a.get(i)?.parse::<u64>().ok();
    let s = |i: usize| a.get(i).map(|s| s.to_string());
    let opt = |i: usize| s(i).map(|v| (v != "-").then_some(v));
    Some(match word {
        "REC" => Event::Rec(n(0)?, s(1)?, n(2)? as usize, n(3)? as u32),
        "DEAD" => Event::Dead(n(0)?, opt(1)?, a.get(2..)?.join(" ")),
        "STATE" => Event::State(s(0)?, s(1)?),
        "DEPTH" => Event::Depth(n(0)?),
        "HEALTH" => Event::Health(n(0)? == 1, n(1)?, n(2)?, opt(3)?),
        "CHECKED" => Event::Checked,
        "DONE" => Event::Done,
        "OPEN_FAILED" => Event::OpenFailed(args.to_owned()),
        "PANIC" => Event::Panic(args.to_owned()),
        "PANICKED" => Event::Panicked(args.to_owned()),
        "APPENDED" => Event::Appended(n(0)?, s(1)?, n(2)? as usize),
        "ACKING" => Event::Acking(n(0)?),
        "ACKED" => Event::Acked(n(0)?),
        "DEADING" => Event::Deading(n(0)?),
        "DEADED" => Event::Deaded(n(0)?),
        "PUTTING" => Event::Putting(s(0)?, opt(1)?),
        "PUT" => Event::Put(s(0)?, opt(1)?),
        _ => return None,
    })
}

#[test]
fn events_survive_the_libtest_banner() {
    let line = format!("test power_cut_fs::power_cut_child ... {MARK}APPENDED 7 c0-t1-n2/0 300");
    assert_eq!(
        parse(&line),
        Some(Event::Appended(7, "c0-t1-n2/0".into(), 300))
    );
    let dead = format!("{MARK}DEAD 9 - corrupt: crc mismatch");
    assert_eq!(
        parse(&dead),
        Some(Event::Dead(9, None, "corrupt: crc mismatch".into()))
    );
    assert_eq!(
        parse(&format!("{MARK}PUT k1 -")),
        Some(Event::Put("k1".into(), None))
    );
    assert_eq!(
        parse("APPENDED 7 x 1"),
        None,
        "unmarked lines are not events"
    );
}

/// The child's stdout, shared by its tasks; one flush per event.
#[derive(Clone)]
struct Out(Arc<Mutex<std::io::Stdout>>);

impl Out {
    fn emit(&self, line: impl std::fmt::Display) {
        let mut out = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // A closed pipe means the parent is gone: nothing left to report.
        let _ = writeln!(out, "{MARK}{line}").and_then(|()| out.flush());
    }
}

/// Child side of `power_cuts_never_lose_acknowledged_changes` (a no-op in
/// a normal run): open, report everything found, then work until killed.
#[test]
fn power_cut_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let seed: u64 =
        std::env::var("EDGECC_POWER_CUT_CHILD_SEED").map_or(1, |s| s.parse().unwrap_or(1));
    let round: u64 = std::env::var("EDGECC_POWER_CUT_ROUND").map_or(0, |s| s.parse().unwrap_or(0));
    let out = Out(Arc::new(Mutex::new(std::io::stdout())));
    let hook_out = out.clone();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        hook_out.emit(format!(
            "PANICKED [{}] {}",
            thread.name().unwrap_or("?"),
            info.to_string().replace('\n', " ")
        ));
    }));
    let storage = match Storage::open(Path::new(&dir), config()) {
        Ok(storage) => storage,
        Err(e) => {
            out.emit(format!("OPEN_FAILED {}", e.to_string().replace('\n', " ")));
            std::process::exit(3);
        }
    };
    // Every other round the report waits for the background check, so it
    // reads the repaired sled instead of the log.
    let after_check = round % 2 == 1;
    let health_out = out.clone();
    let watched = storage.clone();
    let watcher = std::thread::spawn(move || {
        while watched.health().index_checking {
            std::thread::sleep(Duration::from_millis(2));
        }
        let h = watched.health();
        let error = h
            .index_check_error
            .map_or("-".to_owned(), |e| e.replace([' ', '\n'], "_"));
        health_out.emit(format!(
            "HEALTH {} {} {} {error}",
            u8::from(after_check),
            h.repaired_entries,
            h.quarantined.len()
        ));
    });
    let mut watcher = Some(watcher);
    if after_check {
        watcher.take().map(|w| w.join().expect("health watcher"));
    }
    let found = report(&storage, &out);
    if std::env::var_os("EDGECC_POWER_CUT_CHECK_ONLY").is_some() {
        // The last round ends on its own: after the check of sled and a
        // close, it says so, and the parent knows that every panic it
        // reported was caught (see `child_failure`).
        watcher.take().map(|w| w.join().expect("health watcher"));
        drop(storage);
        out.emit("DONE");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("runtime");
    rt.block_on(work(storage, round, seed, out, Arc::new(found)));
}

/// Pending records and dead letters, kept by the child's tasks (cheaper
/// than `Outbox::stats`, which sizes the directory).
#[derive(Default)]
struct Counts {
    /// Pending records: appended (or found) and not acked or dead-lettered.
    pending: AtomicI64,
    /// Dead letters.
    dead: AtomicI64,
}

/// The check: every pending record, dead letter and state entry, and the
/// index's depth. Returns the counts found.
fn report(storage: &Storage, out: &Out) -> Counts {
    let outbox = storage.outbox();
    let counts = Counts::default();
    for r in list_all(&outbox) {
        counts.pending.fetch_add(1, Ordering::Relaxed);
        let crc = crc32fast::hash(&r.body);
        out.emit(format!(
            "REC {} {} {} {crc}",
            r.seq,
            r.correlation_id,
            r.body.len()
        ));
    }
    let mut from = 0;
    loop {
        let page = outbox.dead_letters(from, 1000).expect("dead letters");
        let Some(last) = page.last() else { break };
        from = last.seq + 1;
        for d in page {
            counts.dead.fetch_add(1, Ordering::Relaxed);
            let corr = d.record.map_or("-".to_owned(), |r| r.correlation_id);
            out.emit(format!(
                "DEAD {} {corr} {}",
                d.seq,
                d.reason.replace('\n', " ")
            ));
        }
    }
    let state = storage.state(STATE_TREE).expect("state tree");
    for item in state.iter() {
        let (k, v) = item.expect("state entry");
        out.emit(format!(
            "STATE {} {}",
            String::from_utf8_lossy(&k),
            String::from_utf8_lossy(&v)
        ));
    }
    out.emit(format!("DEPTH {}", outbox.stats(0).expect("stats").depth));
    out.emit("CHECKED");
    counts
}

/// The workload, until killed: appenders, a consumer, a state writer.
async fn work(storage: Storage, round: u64, seed: u64, out: Out, counts: Arc<Counts>) {
    let outbox = storage.outbox();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..APPENDERS {
        let (outbox, out, counts) = (outbox.clone(), out.clone(), Arc::clone(&counts));
        let mut rng = XorShift((seed ^ (t + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1);
        tasks.spawn(async move {
            for n in 0.. {
                let key = format!("c{round}-t{t}-n{n}");
                let records: Vec<NewRecord> = (0..1 + rng.below(2))
                    .map(|i| {
                        let corr = format!("{key}/{i}");
                        let len = if rng.below(10) < 2 {
                            BODY_BYTES_MAX - rng.below(4096) as usize
                        } else {
                            64 + rng.below(1000) as usize
                        };
                        let kind = if i == 0 {
                            RecordKind::InteractionCreate
                        } else {
                            RecordKind::PhoneLogCreate
                        };
                        NewRecord {
                            body: body_of(&corr, len),
                            correlation_id: corr,
                            interaction_key: key.clone(),
                            kind,
                            created_at_ms: 1,
                        }
                    })
                    .collect();
                let sizes: Vec<(String, usize)> = records
                    .iter()
                    .map(|r| (r.correlation_id.clone(), r.body.len()))
                    .collect();
                // A bounded backlog: sled's files (and so each mount, held
                // in memory) stay small however many cuts a run makes.
                while counts.pending.load(Ordering::Relaxed) > BACKLOG_MAX {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                let seqs = outbox.append_batch(records).await.expect("append");
                counts
                    .pending
                    .fetch_add(seqs.len() as i64, Ordering::Relaxed);
                for (seq, (corr, len)) in seqs.into_iter().zip(sizes) {
                    out.emit(format!("APPENDED {seq} {corr} {len}"));
                }
                // Paced so the consumer keeps up: the backlog (and each
                // check) stays small while sled churns through segments.
                tokio::time::sleep(Duration::from_millis(APPEND_PAUSE_MS)).await;
            }
        });
    }
    let state = storage.state(STATE_TREE).expect("state tree");
    let (state_out, mut rng) = (out.clone(), XorShift(seed.rotate_left(17) | 1));
    tasks.spawn(async move {
        for i in 0u64.. {
            let key = format!("k{}", rng.below(16));
            let value = (rng.below(5) > 0).then(|| format!("r{round}-{i}"));
            let shown = value.clone().unwrap_or_else(|| "-".into());
            state_out.emit(format!("PUTTING {key} {shown}"));
            match &value {
                Some(v) => state
                    .put(key.as_bytes(), v.as_bytes())
                    .await
                    .expect("state put"),
                None => state.remove(key.as_bytes()).await.expect("state remove"),
            }
            state_out.emit(format!("PUT {key} {shown}"));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    tasks.spawn(consume(outbox, round, seed, out.clone(), counts));
    // Every task loops until the kill: one that ends failed.
    if let Some(ended) = tasks.join_next().await {
        let why = match ended {
            Ok(()) => "returned".to_owned(),
            Err(e) => e.to_string(),
        };
        out.emit(format!(
            "PANIC a workload task ended: {}",
            why.replace('\n', " ")
        ));
        std::process::abort();
    }
}

/// Consumer: acks most, dead-letters a few, retries the rest (they come
/// back 50 turns later). Settles each batch concurrently, racing the
/// appends, as the sync worker does.
async fn consume(
    outbox: edgecc_storage::Outbox,
    round: u64,
    seed: u64,
    out: Out,
    counts: Arc<Counts>,
) {
    let mut rng = XorShift(seed.rotate_left(31) | 1);
    let mut now_ms = round * 1_000_000_000;
    loop {
        now_ms += 1;
        let batch = outbox.take_ready(128, now_ms);
        if batch.is_empty() {
            tokio::time::sleep(Duration::from_millis(2)).await;
            continue;
        }
        let dead_letters = counts.dead.load(Ordering::Relaxed);
        let mut settling = tokio::task::JoinSet::new();
        for r in batch {
            let (outbox, out, roll) = (outbox.clone(), out.clone(), rng.below(100));
            let counts = Arc::clone(&counts);
            if roll < 80 {
                out.emit(format!("ACKING {}", r.seq));
                settling.spawn(async move {
                    outbox.ack(r.seq).await.expect("ack");
                    counts.pending.fetch_sub(1, Ordering::Relaxed);
                    out.emit(format!("ACKED {}", r.seq));
                });
            } else if roll < 85 && dead_letters < DEAD_LETTERS_MAX {
                out.emit(format!("DEADING {}", r.seq));
                settling.spawn(async move {
                    outbox
                        .dead_letter(r.seq, "rejected by the CRM")
                        .await
                        .expect("dead letter");
                    counts.pending.fetch_sub(1, Ordering::Relaxed);
                    counts.dead.fetch_add(1, Ordering::Relaxed);
                    out.emit(format!("DEADED {}", r.seq));
                });
            } else {
                settling.spawn(async move {
                    outbox
                        .retry(r.seq, "CRM unreachable", now_ms + 50)
                        .await
                        .expect("retry");
                });
            }
        }
        while let Some(joined) = settling.join_next().await {
            joined.expect("settle task");
        }
    }
}

/// Where the parent believes a record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum At {
    /// Acknowledged and not settled: must be pending, whole.
    Pending,
    /// Ack sent, not confirmed: pending or gone.
    Acking,
    /// Ack confirmed: must never come back.
    Acked,
    /// Dead-letter move sent, not confirmed: pending or a dead letter.
    Deading,
    /// Dead-letter move confirmed: must be a dead letter.
    Dead,
}

/// A record the parent knows of.
#[derive(Clone, Debug)]
struct Known {
    /// Correlation id and body length, once known (an ack can be reported
    /// before its record's append is).
    rec: Option<(String, usize)>,
    at: At,
}

/// What the parent knows the directory must hold.
#[derive(Default)]
struct Model {
    records: BTreeMap<u64, Known>,
    /// State entries as of their last confirmed put or remove.
    state: BTreeMap<String, Option<String>>,
    /// State operations sent and not confirmed (the newest per key).
    state_unsure: BTreeMap<String, Option<String>>,
    /// Highest sequence ever seen: a new append must be above it.
    seq_floor: u64,
}

/// What a check found.
#[derive(Default)]
struct Found {
    recs: BTreeMap<u64, (String, usize, u32)>,
    dead: BTreeMap<u64, (Option<String>, String)>,
    state: BTreeMap<String, String>,
    depth: Option<u64>,
}

impl Model {
    /// Compares a check with the model; returns the violations.
    fn verify(&self, found: &Found) -> Vec<String> {
        let mut bad = Vec::new();
        for (seq, (corr, len, crc)) in &found.recs {
            if crc32fast::hash(&body_of(corr, *len)) != *crc {
                bad.push(format!(
                    "record {seq} ({corr}) damaged: body does not match"
                ));
            }
        }
        for (seq, known) in &self.records {
            let (rec, dead) = (found.recs.get(seq), found.dead.get(seq));
            let name = known
                .rec
                .as_ref()
                .map_or("?".to_owned(), |(c, _)| c.clone());
            if let (Some((corr, len)), Some((fc, fl, _))) = (&known.rec, rec) {
                if (corr, len) != (fc, fl) {
                    bad.push(format!(
                        "record {seq}: expected {corr} ({len} bytes), found {fc} ({fl} bytes)"
                    ));
                }
            }
            if let (Some((corr, _)), Some((Some(fc), _))) = (&known.rec, dead) {
                if corr != fc {
                    bad.push(format!("dead letter {seq}: expected {corr}, found {fc}"));
                }
            }
            match (known.at, rec.is_some(), dead.is_some()) {
                (_, true, true) => bad.push(format!("record {seq} ({name}) both pending and dead")),
                (At::Pending, false, false) => {
                    bad.push(format!("acknowledged record {seq} ({name}) lost"))
                }
                (At::Pending, false, true) => bad.push(format!(
                    "record {seq} ({name}) became a dead letter: {:?}",
                    dead.map(|d| &d.1)
                )),
                (At::Acking, _, true) => bad.push(format!(
                    "record {seq} ({name}) became a dead letter while acked"
                )),
                (At::Acked, true, _) | (At::Acked, _, true) => {
                    bad.push(format!("acked record {seq} ({name}) came back"))
                }
                (At::Deading, false, false) => bad.push(format!(
                    "record {seq} ({name}) lost while being dead-lettered"
                )),
                (At::Dead, true, false) => {
                    bad.push(format!("dead letter {seq} ({name}) back in the outbox"))
                }
                (At::Dead, false, false) => bad.push(format!("dead letter {seq} ({name}) lost")),
                _ => {}
            }
        }
        for (seq, (corr, reason)) in &found.dead {
            if !matches!(
                self.records.get(seq).map(|k| k.at),
                Some(At::Dead | At::Deading)
            ) {
                bad.push(format!("unexpected dead letter {seq} ({corr:?}): {reason}"));
            }
        }
        let keys: HashSet<&String> = self
            .state
            .keys()
            .chain(self.state_unsure.keys())
            .chain(found.state.keys())
            .collect();
        for key in keys {
            let got = found.state.get(key).cloned();
            let confirmed = self.state.get(key).cloned().flatten();
            let unsure = self.state_unsure.get(key);
            if got != confirmed && unsure != Some(&got) {
                bad.push(format!("state {key}: found {got:?}, acknowledged {confirmed:?} (in flight: {unsure:?})"));
            }
        }
        if found.depth != Some(found.recs.len() as u64) {
            bad.push(format!(
                "the delivery index counts {:?} records, {} are listed",
                found.depth,
                found.recs.len()
            ));
        }
        bad
    }

    /// After a check: what was found is the truth from now on (records
    /// whose fate was open are settled either way; acked ones stay known,
    /// so they can never come back).
    fn settle(&mut self, found: &Found) {
        for known in self.records.values_mut() {
            known.at = At::Acked;
        }
        for (seq, (corr, len, _)) in &found.recs {
            self.records.insert(
                *seq,
                Known {
                    rec: Some((corr.clone(), *len)),
                    at: At::Pending,
                },
            );
        }
        for (seq, (corr, _)) in &found.dead {
            let rec = corr.clone().map(|c| (c, 0));
            let rec = self.records.get(seq).and_then(|k| k.rec.clone()).or(rec);
            self.records.insert(*seq, Known { rec, at: At::Dead });
        }
        self.state = found
            .state
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        self.state_unsure.clear();
        self.seq_floor = self
            .seq_floor
            .max(self.records.keys().last().copied().unwrap_or(0));
    }

    /// Applies one workload event; returns a violation if any.
    fn apply(&mut self, event: &Event) -> Option<String> {
        match event {
            Event::Appended(seq, corr, len) => {
                if *seq <= self.seq_floor {
                    return Some(format!(
                        "sequence {seq} ({corr}) reused: {} was handed out before",
                        self.seq_floor
                    ));
                }
                let known = self.records.entry(*seq).or_insert(Known {
                    rec: None,
                    at: At::Pending,
                });
                if known.rec.is_some() {
                    return Some(format!("sequence {seq} ({corr}) handed out twice"));
                }
                known.rec = Some((corr.clone(), *len));
            }
            Event::Acking(seq) => self.move_to(*seq, At::Acking),
            Event::Acked(seq) => self.move_to(*seq, At::Acked),
            Event::Deading(seq) => self.move_to(*seq, At::Deading),
            Event::Deaded(seq) => self.move_to(*seq, At::Dead),
            Event::Putting(key, value) => {
                self.state_unsure.insert(key.clone(), value.clone());
            }
            Event::Put(key, value) => {
                self.state.insert(key.clone(), value.clone());
                self.state_unsure.remove(key);
            }
            _ => {}
        }
        None
    }

    fn move_to(&mut self, seq: u64, at: At) {
        self.records
            .entry(seq)
            .or_insert(Known { rec: None, at })
            .at = at;
    }
}

/// What one child did.
struct Round {
    /// The check, when the child completed it.
    found: Option<Found>,
    /// Workload events after the check, in order.
    events: Vec<Event>,
    /// Why the directory did not open (an error, a panic, a hang).
    open_failure: Option<String>,
    /// A failure after the open (an operation failed or panicked).
    work_failure: Option<String>,
    /// How the background check of sled ended, if it did before the kill:
    /// whether the check waited for it, repaired entries, quarantined
    /// directories, its error.
    health: Option<(bool, u64, u64, Option<String>)>,
    /// Panics the child reported (each caught, unless a failure says so).
    panics: Vec<String>,
}

/// Runs one child on `dir`; kills it `kill_after` after its check (or
/// after its start, when `during_open`), unless `check_only`.
fn run_child(
    dir: &Path,
    round: u64,
    seed: u64,
    kill_after: Duration,
    during_open: bool,
    check_only: bool,
) -> Round {
    let mut cmd = child_command("power_cut_fs::power_cut_child", CHILD_ENV, dir);
    cmd.env("EDGECC_POWER_CUT_ROUND", round.to_string())
        .env("EDGECC_POWER_CUT_CHILD_SEED", seed.to_string());
    if check_only {
        cmd.env("EDGECC_POWER_CUT_CHECK_ONLY", "1");
    }
    let mut child = cmd.spawn().expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(event) = parse(&line) {
                if tx.send(event).is_err() {
                    break;
                }
            }
        }
    });
    let started = Instant::now();
    let mut kill_at = during_open.then(|| started + kill_after);
    let check_deadline = started + Duration::from_millis(CHECK_WAIT_MS);
    let mut events = Vec::new();
    let mut exited = false;
    loop {
        let until = kill_at.unwrap_or(check_deadline);
        let now = Instant::now();
        if now >= until {
            break;
        }
        match rx.recv_timeout(until - now) {
            Ok(Event::Checked) => {
                events.push(Event::Checked);
                if check_only {
                    continue;
                }
                kill_at = Some(kill_at.unwrap_or(Instant::now() + kill_after));
            }
            Ok(event) => events.push(event),
            Err(mpsc::RecvTimeoutError::Timeout) => break,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                exited = true;
                break;
            }
        }
    }
    // A child that never reported its check: say where its threads wait
    // (in FUSE requests, or in sled's own locks) before killing it.
    let hung = kill_at.is_none() && !events.contains(&Event::Checked) && !exited;
    let waits = hung.then(|| thread_waits(child.id()));
    drop(child.kill());
    child.wait().expect("wait");
    reader.join().expect("reader");
    events.extend(rx.try_iter());
    let panic = child_failure(&events, exited);
    let split = events.iter().position(|e| *e == Event::Checked);
    let health = events.iter().find_map(|e| match e {
        Event::Health(waited, repaired, quarantined, error) => {
            Some((*waited, *repaired, *quarantined, error.clone()))
        }
        _ => None,
    });
    let mut round_out = Round {
        found: None,
        events: Vec::new(),
        open_failure: None,
        work_failure: None,
        health,
        panics: events
            .iter()
            .filter_map(|e| match e {
                Event::Panicked(m) => Some(m.clone()),
                _ => None,
            })
            .collect(),
    };
    let Some(split) = split else {
        if panic.is_some() || exited {
            round_out.open_failure =
                Some(panic.unwrap_or_else(|| "the child exited during open".into()));
        } else if kill_at.is_none() {
            round_out.open_failure = Some(format!(
                "open did not finish within {CHECK_WAIT_MS} ms (its threads wait in {})",
                waits.unwrap_or_default()
            ));
        }
        return round_out;
    };
    let mut found = Found::default();
    for event in &events[..split] {
        match event {
            Event::Rec(seq, corr, len, crc) => {
                found.recs.insert(*seq, (corr.clone(), *len, *crc));
            }
            Event::Dead(seq, corr, reason) => {
                found.dead.insert(*seq, (corr.clone(), reason.clone()));
            }
            Event::State(k, v) => {
                found.state.insert(k.clone(), v.clone());
            }
            Event::Depth(d) => found.depth = Some(*d),
            _ => {}
        }
    }
    round_out.found = Some(found);
    round_out.events = events[split + 1..].to_vec();
    if let Some(panic) = panic {
        round_out.work_failure = Some(panic);
    } else if exited && !check_only {
        round_out.work_failure = Some("the child exited before it was killed".into());
    } else if exited && !events.contains(&Event::Done) {
        round_out.work_failure = Some("the last child exited before its end".into());
    }
    round_out
}

/// What failed in a child, from its events and whether it exited on its
/// own: an operation that failed (a workload task ended), an open that
/// failed, or an exit after a panic before the child reached its end. The
/// panic hook reports every panic, caught or not, so a panic alone fails
/// nothing: only one that ended the child does. A killed child is cut
/// short anyway; the last (check-only) round ends on its own and reports
/// `Done` at its end. Before `Done` existed, that round's exit counted
/// any panic it had reported, also one the storage caught (sled's
/// `cannot find pid N in view_for_key` in the check thread, which then
/// moves sled aside and rebuilds it): the clean-clone CI failure at cut
/// 20 that had the s9-rss storage reverted.
fn child_failure(events: &[Event], exited: bool) -> Option<String> {
    let panicked = events.iter().rev().find_map(|e| match e {
        Event::Panicked(m) => Some(m.clone()),
        _ => None,
    });
    let failed = events.iter().find_map(|e| match e {
        Event::Panic(m) => Some(format!(
            "{m} (last panic: {})",
            panicked.as_deref().unwrap_or("none")
        )),
        Event::OpenFailed(m) => Some(format!("open failed: {m}")),
        _ => None,
    });
    let done = events.contains(&Event::Done);
    failed.or_else(|| {
        (exited && !done)
            .then_some(panicked)
            .flatten()
            .map(|m| format!("the child exited after a panic: {m}"))
    })
}

#[test]
fn a_caught_panic_fails_no_round_that_reached_its_end() {
    let caught = Event::Panicked(
        "[edgecc-storage-check] panicked at sled-0.34.7/src/tree.rs:1767:13: cannot find pid 15 in view_for_key".into(),
    );
    let ended = [caught.clone(), Event::Checked, Event::Done];
    assert_eq!(child_failure(&ended, true), None);
    // Killed mid-work: a caught panic is no failure either.
    assert_eq!(
        child_failure(&[Event::Checked, caught.clone()], false),
        None
    );
    // Exited before its end after a panic: the panic ended it.
    let cut_short = [Event::Checked, caught.clone()];
    assert!(child_failure(&cut_short, true).is_some_and(|m| m.contains("view_for_key")));
    // A workload task that ended fails the round, `Done` or not.
    let task = [
        Event::Checked,
        Event::Panic("a workload task ended".into()),
        Event::Done,
    ];
    assert!(child_failure(&task, true).is_some());
}

/// A problem with its numbers blanked, to count problems by kind.
fn kind_of(problem: &str) -> String {
    let mut kind = String::new();
    for c in problem.chars() {
        if !c.is_ascii_digit() {
            kind.push(c);
        } else if !kind.ends_with('N') {
            kind.push('N');
        }
    }
    kind.chars().take(160).collect()
}

/// The kernel functions the threads of `pid` sleep in, with counts.
fn thread_waits(pid: u32) -> String {
    let mut waits: BTreeMap<String, u32> = BTreeMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let wchan = std::fs::read_to_string(task.path().join("wchan")).unwrap_or_default();
        let wchan = if wchan.is_empty() || wchan == "0" {
            "running".to_owned()
        } else {
            wchan
        };
        *waits.entry(wchan).or_default() += 1;
    }
    eprintln!(
        "power-cut test: the hung child's threads:\n{}",
        user_stacks(pid)
    );
    format!("{waits:?}")
}

/// Where each thread of `pid` is in its own code: gdb's backtraces, cut to
/// the storage's and sled's frames (the function names only). Empty when
/// gdb is not there; a diagnostic only, nothing is checked on it.
fn user_stacks(pid: u32) -> String {
    let Ok(out) = std::process::Command::new("timeout")
        .args([
            "30",
            "gdb",
            "-p",
            &pid.to_string(),
            "-batch",
            "-ex",
            "thread apply all bt 40",
        ])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
    else {
        return String::new();
    };
    let mut shown = String::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if line.starts_with("Thread ") {
            shown.push_str(line);
            shown.push('\n');
        } else if line.contains("sled::") || line.contains("edgecc_storage") {
            let name = line.split(" in ").nth(1).unwrap_or(line);
            let name = name.split(" (").next().unwrap_or(name);
            shown.push_str("    ");
            shown.push_str(name);
            shown.push('\n');
        }
    }
    shown
}

/// A number from the environment, or `default`.
fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Goal: after a power cut at any moment, the directory opens, every
/// acknowledged append is there with its body unless its ack or dead-letter
/// move was acknowledged, nothing acked comes back, acknowledged dead
/// letters and state entries are back, and no sequence is handed out twice.
/// Method: see the module note; a round's check verifies the previous cut.
#[test]
fn power_cuts_never_lose_acknowledged_changes() {
    let cuts = env_u64("EDGECC_POWER_CUTS", u64::from(CUTS_DEFAULT));
    let seed = env_u64("EDGECC_POWER_CUT_SEED", 0);
    let seed = if seed != 0 {
        seed
    } else {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    };
    let tear = env_u64("EDGECC_POWER_CUT_TEAR", 1) == 1;
    let keep_going = env_u64("EDGECC_POWER_CUT_KEEP_GOING", 0) == 1;
    // The control experiment: kills without power cuts (everything the
    // child wrote is kept), which must never fail.
    let control = env_u64("EDGECC_POWER_CUT_CONTROL", 0) == 1;
    let tear = tear && !control;
    // Names durable as ext4's journal makes them (any fsync) instead of
    // only at their directory's fsync.
    let journal_names = env_u64("EDGECC_POWER_CUT_JOURNAL_NAMES", 0) == 1;
    eprintln!(
        "power-cut test: seed {seed}, {cuts} cuts, tearing {tear}, journal names {journal_names}, \
         control {control} \
         (rerun: EDGECC_POWER_CUT_SEED={seed})"
    );
    let started = Instant::now();
    let mut rng = XorShift(seed | 1);
    let tmp = tempfile::tempdir().expect("tempdir");
    let mountpoint = tmp.path().join("mnt");
    let mut generation = 0;
    let backing_of = |g: u32| tmp.path().join(format!("backing-{g}"));
    let mut model = Model::default();
    let mut failures: Vec<String> = Vec::new();
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    let (mut failed_cuts, mut broken_dirs, mut opened, mut torn_cuts) = (0u64, 0u64, 0u64, 0u64);
    let (mut appends, mut acks, mut kills_during_open) = (0u64, 0u64, 0u64);
    // Pending records and dead letters at the last check.
    let (mut pending_last, mut dead_last) = (0usize, 0usize);
    let (mut blobs_max, mut db_bytes_max) = (0usize, 0u64);
    // Cuts that left sled's data file with bytes in it; checks of sled that
    // ended, those the report read from the repaired sled, those that
    // repaired something (and how much), sled directories moved aside.
    let mut sled_present_cuts = 0u64;
    // Panics in the child that failed no operation, by kind.
    let mut caught: BTreeMap<String, u64> = BTreeMap::new();
    let (mut checks_ended, mut checks_read_back, mut checks_repairing) = (0u64, 0u64, 0u64);
    let (mut repaired_total, mut quarantines, mut quarantined_last) = (0u64, 0u64, 0u64);
    // Whether the current mount tears at its cut, and whether the last
    // cut did.
    let (mut mount_tears, mut last_cut_tore) = (false, false);
    let first = Options {
        journal_names,
        ..Options::default()
    };
    let mut m = powercut_fs::mount_or_fail(&backing_of(generation), &mountpoint, first);
    for round in 0..=cuts {
        let check_only = round == cuts;
        let during_open = !check_only && rng.below(5) == 0;
        let kill_after = Duration::from_millis(if during_open {
            rng.below(300)
        } else {
            100 + rng.below(600)
        });
        let child_seed = seed ^ round.wrapping_mul(0xD1B5_4A32_D192_ED03);
        let r = run_child(
            m.path(),
            round,
            child_seed,
            kill_after,
            during_open,
            check_only,
        );
        let cut_name = match (round, last_cut_tore) {
            (0, _) => "the fresh directory".to_owned(),
            (_, torn) => format!("cut {round}{}", if torn { " (torn)" } else { "" }),
        };
        let mut bad = Vec::new();
        if let Some(why) = &r.open_failure {
            bad.push(format!("the directory does not open: {why}"));
            broken_dirs += 1;
        }
        if let Some(found) = &r.found {
            opened += 1;
            (pending_last, dead_last) = (found.recs.len(), found.dead.len());
            if round > 0 {
                bad.extend(model.verify(found));
            }
            model.settle(found);
            for event in &r.events {
                appends += u64::from(matches!(event, Event::Appended(..)));
                acks += u64::from(matches!(event, Event::Acked(..)));
                bad.extend(model.apply(event));
            }
        } else if r.open_failure.is_none() {
            kills_during_open += 1;
        }
        if let Some(why) = &r.work_failure {
            bad.push(format!("an operation failed after the open: {why}"));
        }
        if bad.is_empty() {
            for p in &r.panics {
                *caught.entry(kind_of(p)).or_default() += 1;
            }
        }
        if let Some((waited, repaired, quarantined, error)) = &r.health {
            checks_ended += 1;
            checks_read_back += u64::from(*waited && r.found.is_some());
            checks_repairing += u64::from(*repaired > 0);
            repaired_total += repaired;
            quarantines += quarantined.saturating_sub(quarantined_last);
            quarantined_last = *quarantined;
            if let Some(error) = error {
                bad.push(format!("the check of sled gave up: {error}"));
            }
        }
        for problem in &bad {
            *kinds.entry(kind_of(problem)).or_default() += 1;
        }
        if !bad.is_empty() {
            failed_cuts += 1;
            let shown: Vec<&String> = bad.iter().take(5).collect();
            failures.push(format!("{cut_name}: {} problem(s): {shown:?}", bad.len()));
            eprintln!("power-cut test: {}", failures.last().expect("just pushed"));
            if !keep_going {
                break;
            }
        }
        if check_only {
            break;
        }
        if control {
            m.unmount_synced().expect("unmount");
        } else {
            m.cut().expect("cut");
        }
        (last_cut_tore, mount_tears) = (mount_tears, tear && rng.below(2) == 0);
        torn_cuts += u64::from(last_cut_tore);
        let tear_seed = mount_tears.then(|| rng.below(u64::MAX) | 1);
        let backing = backing_of(generation);
        blobs_max = blobs_max.max(
            std::fs::read_dir(backing.join(edgecc_storage::SLED_DIR).join("blobs"))
                .map_or(0, |d| d.count()),
        );
        let db_bytes = std::fs::metadata(backing.join(edgecc_storage::SLED_DIR).join("db"))
            .map_or(0, |m| m.len());
        db_bytes_max = db_bytes_max.max(db_bytes);
        sled_present_cuts += u64::from(db_bytes > 0);
        if r.open_failure.is_some() {
            generation += 1;
            model = Model::default();
            quarantined_last = 0;
        }
        let options = Options {
            tear_seed,
            journal_names,
        };
        m = powercut_fs::mount_or_fail(&backing_of(generation), &mountpoint, options);
    }
    drop(m);
    eprintln!(
        "power-cut test: seed {seed}: {failed_cuts} of {cuts} cuts failed ({broken_dirs} directories no longer \
         opened), {opened} opens checked, {kills_during_open} kills during open, {torn_cuts} torn cuts; \
         {appends} appends and {acks} acks acknowledged; sled's data file present after {sled_present_cuts} cuts, \
         up to {blobs_max} sled blob files and a {db_bytes_max}-byte sled log at a cut; checks of sled ended in \
         {checks_ended} rounds ({checks_read_back} reports read from the checked sled), {checks_repairing} repaired \
         {repaired_total} entries, {quarantines} sled directories moved aside; {pending_last} pending and \
         {dead_last} dead at the last check; {:?}",
        started.elapsed()
    );
    for (kind, n) in &kinds {
        eprintln!("power-cut test: {n} x {kind}");
    }
    for (kind, n) in &caught {
        eprintln!("power-cut test: a panic that failed no operation (caught by the storage, or in a thread of sled's own), {n} x {kind}");
    }
    assert!(
        failures.is_empty(),
        "seed {seed}: {} failing cut(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(appends > 0 && acks > 0, "the child never got to work");
    // The cuts must meet sled's files, not only an empty sled rebuilt from
    // the log (sled's checkpoints make its names durable).
    assert!(
        control || cuts < 4 || sled_present_cuts > 0,
        "no cut left any of sled's data file: only the log's recovery was tested"
    );
}
