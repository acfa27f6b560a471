//! Outbox benchmark: durable appends against the disk's physical limit,
//! then a large backlog (fill, reopen, drain) with RSS and disk figures.
//!
//! Beside each append level it measures what bounds it: the writer
//! thread's CPU time per operation (its thread CPU clock), and two
//! ceilings with no disk at all: the bare round trip of N tasks through a
//! channel to one thread and back, and sled's insert cost per record at one
//! record per value and at 32 per value. It also prints the least mean
//! latency N closed-loop appenders can have at the raw rate (Little's law).
//!
//! Each append level is also run against SQLite (WAL, `synchronous=FULL`,
//! the same group size per transaction) through the `sqlite3` shell, when
//! it is installed.
//!
//! `cargo bench -p edgecc-storage` (defaults: 1,000,000-record backlog).
//! Quick run: `EDGECC_BENCH_BACKLOG=100000 EDGECC_BENCH_APPENDS=2000 cargo bench -p edgecc-storage`.
//! `EDGECC_BENCH_DIR` picks the directory (default: a temp dir under
//! `target/`, i.e. the same disk as the build).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgecc_storage::{NewRecord, Outbox, RecordKind, Storage, StorageConfig};

/// Body size of a benchmark record (a typical CRM JSON document).
const BODY_BYTES: usize = 400;

/// Concurrency levels measured.
const LEVELS: [usize; 4] = [1, 8, 64, 512];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn record(i: u64) -> NewRecord {
    NewRecord {
        correlation_id: format!("call-{i}/phone_log"),
        interaction_key: format!("call-{}", i / 4),
        kind: RecordKind::PhoneLogCreate,
        body: vec![b'x'; BODY_BYTES],
        created_at_ms: now_ms(),
    }
}

/// VmRSS and VmHWM of this process, in KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets this process's VmHWM to its current RSS (Linux: `5` written to
/// `/proc/self/clear_refs`), so the next [`rss_kib`] peak is the phase's.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Thread ids of the storage writer threads now alive (thread names are
/// cut to 15 bytes: "edgecc-storage-writer" reads "edgecc-storage-").
/// A writer just joined can still be listed for a moment.
fn writer_tids() -> Vec<libc::pid_t> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter(|e| {
            std::fs::read_to_string(e.path().join("comm"))
                .is_ok_and(|c| c.starts_with("edgecc-storage-"))
        })
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// CPU time a thread of this process has used, from its thread CPU clock
/// (the clock id glibc's `pthread_getcpuclockid` builds from a thread id).
fn thread_cpu(tid: libc::pid_t) -> Option<Duration> {
    let clock = ((!tid) << 3) | 6; // per-thread, CPUCLOCK_SCHED
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return None;
    }
    Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// Ceiling with no disk and no storage: `tasks` tasks each send a
/// record-sized message through a bounded channel to one thread, which
/// answers every message of a batch through its oneshot. Any design that
/// answers each appender from one committing thread pays at least this.
async fn channel_floor(tasks: usize, total: usize) -> f64 {
    use tokio::sync::{mpsc, oneshot};
    let (tx, mut rx) = mpsc::channel::<(Vec<u8>, oneshot::Sender<()>)>(4096);
    let answerer = std::thread::spawn(move || {
        while let Some(first) = rx.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < 1024 {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            for (_, reply) in batch {
                let _ = reply.send(());
            }
        }
    });
    let per = (total / tasks).max(4);
    let start = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let tx = tx.clone();
        handles.push(tokio::spawn(async move {
            for _ in 0..per {
                let (reply, answer) = oneshot::channel();
                tx.send((vec![b'x'; BODY_BYTES], reply))
                    .await
                    .expect("send");
                answer.await.expect("answer");
            }
        }));
    }
    for h in handles {
        h.await.expect("task");
    }
    let rate = (per * tasks) as f64 / start.elapsed().as_secs_f64();
    drop(tx);
    let _ = answerer.join();
    rate
}

/// sled's own cost of storing `total` encoded-record-sized values, one
/// thread, no flush: microseconds per record with `per_value` records per
/// sled value (the outbox stores one per value). Same sled options as the
/// outbox.
fn sled_insert_us(dir: &Path, config: &StorageConfig, per_value: usize, total: usize) -> f64 {
    let path = dir.join(format!("sled-{per_value}"));
    let db = sled::Config::new()
        .path(&path)
        .cache_capacity(config.cache_bytes)
        .segment_size(config.segment_bytes)
        .flush_every_ms(config.flush_every_ms)
        .mode(sled::Mode::LowSpace)
        .use_compression(false)
        .open()
        .expect("sled");
    let tree = db.open_tree("outbox").expect("tree");
    let value = vec![b'x'; (BODY_BYTES + 60) * per_value];
    let start = Instant::now();
    let mut seq = 0u64;
    while seq < total as u64 {
        tree.insert(seq.to_be_bytes(), value.as_slice())
            .expect("insert");
        seq += per_value as u64;
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / seq as f64;
    drop(tree);
    drop(db);
    let _ = std::fs::remove_dir_all(&path);
    us
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// One measured row.
struct Row {
    ops: usize,
    rate: f64,
    p50: Duration,
    p99: Duration,
}

/// What bounds one append level.
struct Bound {
    level: usize,
    writer_us_per_op: f64,
    /// Mean operations per group commit (one fdatasync each).
    group_mean: f64,
    floor: f64,
    raw_group: f64,
}

/// Raw limit: append `group` records of BODY_BYTES to a file, one
/// fdatasync per group; latency is per group (what each writer waits).
fn raw(dir: &Path, group: usize, total: usize) -> Row {
    let path = dir.join(format!("raw-{group}"));
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("raw file");
    let body = vec![b'x'; BODY_BYTES];
    let groups = (total / group).max(20);
    let mut lat = Vec::with_capacity(groups);
    let start = Instant::now();
    for _ in 0..groups {
        let t = Instant::now();
        for _ in 0..group {
            file.write_all(&body).expect("write");
        }
        file.sync_data().expect("fdatasync");
        lat.push(t.elapsed());
    }
    let elapsed = start.elapsed();
    drop(file);
    let _ = std::fs::remove_file(&path);
    lat.sort_unstable();
    Row {
        ops: groups * group,
        rate: (groups * group) as f64 / elapsed.as_secs_f64(),
        p50: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
    }
}

/// SQLite in WAL mode with `synchronous=FULL` (a commit is durable when it
/// returns), same disk: `total` rows of a BODY_BYTES blob, `group` rows per
/// transaction, run by the `sqlite3` shell from one script (one process,
/// one connection). Records per second, or `None` without `sqlite3`.
fn sqlite(dir: &Path, group: usize, total: usize) -> Option<f64> {
    use std::process::{Command, Stdio};
    let path = dir.join(format!("sqlite-{group}.db"));
    let groups = (total / group).max(20);
    let mut script = String::from(
        "PRAGMA journal_mode=WAL;\nPRAGMA synchronous=FULL;\n\
         CREATE TABLE outbox(seq INTEGER PRIMARY KEY, body BLOB);\n",
    );
    let setup = Command::new("sqlite3")
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .ok()
        .and_then(|mut child| {
            child.stdin.take()?.write_all(script.as_bytes()).ok()?;
            child.wait().ok()
        })?;
    if !setup.success() {
        return None;
    }
    script.clear();
    script.push_str("PRAGMA synchronous=FULL;\n");
    for _ in 0..groups {
        script.push_str("BEGIN;\n");
        for _ in 0..group {
            script.push_str(&format!(
                "INSERT INTO outbox(body) VALUES (zeroblob({BODY_BYTES}));\n"
            ));
        }
        script.push_str("COMMIT;\n");
    }
    let start = Instant::now();
    let mut child = Command::new("sqlite3")
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(script.as_bytes()).ok()?;
    let ok = child.wait().ok()?.success();
    let elapsed = start.elapsed();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    ok.then(|| (groups * group) as f64 / elapsed.as_secs_f64())
}

/// Durable appends from `writers` concurrent tasks, `total` records.
async fn appends(outbox: &Outbox, writers: usize, total: usize) -> Row {
    let per = (total / writers).max(4);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let outbox = outbox.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            for i in 0..per {
                let t = Instant::now();
                outbox
                    .append(record((w * per + i) as u64))
                    .await
                    .expect("append");
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("task"));
    }
    let elapsed = start.elapsed();
    lat.sort_unstable();
    Row {
        ops: lat.len(),
        rate: lat.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
    }
}

async fn drain_all(outbox: &Outbox) -> (u64, Duration) {
    let start = Instant::now();
    let mut drained = 0u64;
    loop {
        let batch = outbox.take_ready(512, now_ms());
        if batch.is_empty() {
            return (drained, start.elapsed());
        }
        let mut acks = Vec::with_capacity(batch.len());
        for r in batch {
            let outbox = outbox.clone();
            acks.push(tokio::spawn(async move { outbox.ack(r.seq).await }));
        }
        for a in acks {
            a.await.expect("task").expect("ack");
            drained += 1;
        }
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if let Ok(m) = e.metadata() {
                total += if m.is_dir() {
                    dir_bytes(&e.path())
                } else {
                    m.blocks() * 512
                };
            }
        }
    }
    total
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let backlog = env_usize("EDGECC_BENCH_BACKLOG", 1_000_000);
    let appends_total = env_usize("EDGECC_BENCH_APPENDS", 4_000);
    let base: PathBuf = std::env::var_os("EDGECC_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target-storage"));
    std::fs::create_dir_all(&base).expect("bench dir");
    let tmp = tempfile::tempdir_in(&base).expect("tempdir");
    let mut config = StorageConfig::default();
    if let Some(mb) = std::env::var("EDGECC_BENCH_CACHE_MB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        config.cache_bytes = mb * 1024 * 1024;
    }

    let peak = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (Arc::clone(&peak), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib().0, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };

    let cache_mib = config.cache_bytes / 1048576;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    println!("# edgecc-storage outbox benchmark");
    println!(
        "records of {BODY_BYTES}-byte body; {appends_total} appends per level; dir {}",
        base.display()
    );
    println!();
    println!("## Durable appends vs raw file append + fdatasync (same disk)");
    println!();
    let raw1 = raw(tmp.path(), 1, appends_total.min(2_000));
    println!("| appenders | outbox rec/s | p50 ms | p50 in device flushes | p99 ms | raw same group rec/s | raw group p50 ms | ratio vs raw same group | ratio vs raw per-record | SQLite WAL FULL same group rec/s | ratio vs SQLite |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut bounds = Vec::new();
    for &writers in &LEVELS {
        let dir = tmp.path().join(format!("appends-{writers}"));
        let earlier = writer_tids();
        let storage = Storage::open(&dir, config.clone()).expect("open");
        let outbox = storage.outbox();
        // The writer names itself once running: look for up to a second.
        let writer = (0..1000).find_map(|_| {
            let found = writer_tids().into_iter().find(|t| !earlier.contains(t));
            if found.is_none() {
                std::thread::sleep(Duration::from_millis(1));
            }
            found
        });
        let total = appends_total.max(writers * 4);
        let cpu_before = writer.and_then(thread_cpu);
        let row = rt.block_on(appends(&outbox, writers, total));
        let writer_us_per_op = match (cpu_before, writer.and_then(thread_cpu)) {
            (Some(a), Some(b)) => (b - a).as_secs_f64() * 1e6 / row.ops as f64,
            _ => f64::NAN,
        };
        let (groups, grouped) = storage.group_commits();
        drop(outbox);
        drop(storage);
        let raw_g = raw(tmp.path(), writers, total);
        let lite = sqlite(tmp.path(), writers, total);
        let (lite_rate, lite_ratio) = match lite {
            Some(rate) => (format!("{rate:.0}"), format!("{:.2}", row.rate / rate)),
            None => ("no sqlite3".to_owned(), "-".to_owned()),
        };
        println!(
            "| {writers} | {:.0} | {} | {:.1} | {} | {:.0} | {} | {:.2} | {:.2} | {lite_rate} | {lite_ratio} |",
            row.rate,
            ms(row.p50),
            row.p50.as_secs_f64() / raw1.p50.as_secs_f64(),
            ms(row.p99),
            raw_g.rate,
            ms(raw_g.p50),
            row.rate / raw_g.rate,
            row.rate / raw1.rate,
        );
        let _ = std::fs::remove_dir_all(&dir);
        bounds.push(Bound {
            level: writers,
            writer_us_per_op,
            group_mean: grouped as f64 / groups.max(1) as f64,
            floor: rt.block_on(channel_floor(writers, total.max(50_000))),
            raw_group: raw_g.rate,
        });
    }
    println!();
    println!(
        "raw per-record (group of 1): {:.0} rec/s, p50 {} ms, p99 {} ms (one device flush)",
        raw1.rate,
        ms(raw1.p50),
        ms(raw1.p99)
    );

    println!();
    println!("## What bounds each level");
    println!();
    println!("| appenders | appends per group commit (one fdatasync each) | writer thread CPU µs/op | writer-bound ceiling rec/s | ceiling vs raw same group | channel floor rec/s (no disk) | floor vs raw same group | least mean latency at the raw rate, ms | in device flushes |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for b in &bounds {
        let ceiling = 1e6 / b.writer_us_per_op;
        // Little's law: N closed-loop appenders at rate λ wait N / λ on
        // average; no design waits less than at the raw rate.
        let least = Duration::from_secs_f64(b.level as f64 / b.raw_group);
        println!(
            "| {} | {:.1} | {:.1} | {:.0} | {:.2} | {:.0} | {:.2} | {} | {:.1} |",
            b.level,
            b.group_mean,
            b.writer_us_per_op,
            ceiling,
            ceiling / b.raw_group,
            b.floor,
            b.floor / b.raw_group,
            ms(least),
            least.as_secs_f64() / raw1.p50.as_secs_f64(),
        );
    }
    println!();
    let sled_total = 64_000;
    println!(
        "sled insert, one thread, no flush: {:.2} µs/record at 1 record per value (the outbox's layout), {:.2} µs/record at 32 per value",
        sled_insert_us(tmp.path(), &config, 1, sled_total),
        sled_insert_us(tmp.path(), &config, 32, sled_total),
    );

    println!();
    println!("## Backlog of {backlog} records");
    println!();
    println!("(\"peak\": VmHWM of the phase, reset before it.)");
    println!();
    let dir = tmp.path().join("backlog");
    let whole_run_peak = rss_kib().1;
    let fill_start = Instant::now();
    {
        let storage = Storage::open(&dir, config.clone()).expect("open");
        let outbox = storage.outbox();
        rt.block_on(async {
            let writers = 8usize;
            let per = backlog / writers;
            let mut tasks = Vec::new();
            for w in 0..writers {
                let outbox = outbox.clone();
                tasks.push(tokio::spawn(async move {
                    let mut i = 0;
                    while i < per {
                        let n = 64.min(per - i);
                        let batch = (0..n).map(|k| record((w * per + i + k) as u64)).collect();
                        outbox.append_batch(batch).await.expect("append batch");
                        i += n;
                    }
                }));
            }
            for t in tasks {
                t.await.expect("task");
            }
        });
        let filled = (backlog / 8) * 8;
        println!(
            "- fill: {filled} records in {:.1} s ({:.0} rec/s, batches of 64 from 8 tasks); RSS now {} MiB, peak {} MiB",
            fill_start.elapsed().as_secs_f64(),
            filled as f64 / fill_start.elapsed().as_secs_f64(),
            rss_kib().0 / 1024,
            rss_kib().1 / 1024
        );
    }
    let before = dir_bytes(&dir);
    println!(
        "- on disk before drain: {:.1} MiB, {:.0} bytes/record",
        before as f64 / 1048576.0,
        before as f64 / backlog as f64
    );
    reset_peak();
    let open_start = Instant::now();
    let storage = Storage::open(&dir, config.clone()).expect("reopen");
    let open_time = open_start.elapsed();
    let outbox = storage.outbox();
    let stats = outbox.stats(now_ms()).expect("stats");
    println!(
        "- open after a clean close (saved live map, sled trusted, index from the pending tree): {:.2} s for {} records; RSS now {} MiB, peak {} MiB",
        open_time.as_secs_f64(),
        stats.depth,
        rss_kib().0 / 1024,
        rss_kib().1 / 1024
    );
    drop(outbox);
    drop(storage);
    // An unclean stop as open sees it: no clean marker (a kill or a power
    // cut leaves none), so sled is checked against the log in the
    // background. Twice: with the live map saved at the last clean close
    // (a stop after a clean start: only the frames since are scanned), and
    // without it (the whole log scanned).
    let unclean = |label: &str, drop_map: bool| {
        std::fs::remove_file(dir.join(edgecc_storage::CLEAN_FILE)).expect("clean marker");
        if drop_map {
            std::fs::remove_file(dir.join(edgecc_storage::LOG_DIR).join("live.map"))
                .expect("live map");
        }
        reset_peak();
        let open_start = Instant::now();
        let storage = Storage::open(&dir, config.clone()).expect("reopen unclean");
        let open_time = open_start.elapsed();
        let outbox = storage.outbox();
        let probe = Instant::now();
        rt.block_on(outbox.append(record(u64::MAX / 2)))
            .expect("append after an unclean open");
        let appended = probe.elapsed();
        let probe = Instant::now();
        let taken = outbox.take_ready(512, now_ms());
        let took = probe.elapsed();
        let checking = storage.health().index_checking;
        let wait = Instant::now();
        while storage.health().index_checking {
            std::thread::sleep(Duration::from_millis(5));
        }
        let health = storage.health();
        println!(
            "- open after an unclean stop, {label}: usable in {:.2} s (open returned; first append \
             acknowledged {:.1} ms later; {} pending records read by take_ready in {:.1} ms, \
             sled check running: {checking}); check in the background: {} ms (done {:.1} s after \
             the probes), {} entries repaired, fresh sled filled from the log: {}; RSS now {} MiB, \
             peak {} MiB",
            open_time.as_secs_f64(),
            appended.as_secs_f64() * 1e3,
            taken.len(),
            took.as_secs_f64() * 1e3,
            health.index_rebuild_ms.unwrap_or(0),
            wait.elapsed().as_secs_f64(),
            health.repaired_entries,
            health.sled_rebuilt,
            rss_kib().0 / 1024,
            rss_kib().1 / 1024
        );
        drop(outbox);
        drop(storage);
    };
    unclean("live map saved at the last clean close", false);
    unclean("no saved live map (whole log scanned)", true);
    let storage = Storage::open(&dir, config.clone()).expect("reopen");
    let outbox = storage.outbox();
    reset_peak();
    let (drained, took) = rt.block_on(drain_all(&outbox));
    println!(
        "- drain (take 512 + concurrent acks): {drained} records in {:.1} s = {:.0} rec/s; peak {} MiB",
        took.as_secs_f64(),
        drained as f64 / took.as_secs_f64(),
        rss_kib().1 / 1024
    );
    let after = dir_bytes(&dir);
    println!(
        "- on disk after drain: {:.1} MiB ({:.0} bytes per drained record)",
        after as f64 / 1048576.0,
        after as f64 / backlog.max(1) as f64
    );
    drop(outbox);
    drop(storage);
    let reopen = Instant::now();
    let storage = Storage::open(&dir, config).expect("reopen");
    let reopen_time = reopen.elapsed();
    drop(storage);
    println!(
        "- after drain and reopen: {:.1} MiB on disk; empty open took {:.2} s",
        dir_bytes(&dir) as f64 / 1048576.0,
        reopen_time.as_secs_f64()
    );
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let (rss, hwm) = rss_kib();
    let config_cache_mib = cache_mib;
    println!();
    println!(
        "peak RSS: VmHWM {} MiB of the last phase, {} MiB before the backlog; sampled max VmRSS \
         over the whole run {} MiB (now {} MiB); sled cache {} MiB",
        hwm / 1024,
        whole_run_peak / 1024,
        peak.load(Ordering::Relaxed) / 1024,
        rss / 1024,
        config_cache_mib
    );
}
