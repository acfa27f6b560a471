//! Outbox benchmark: durable appends against the disk's physical limit,
//! then a large backlog (fill, reopen, drain) with RSS and disk figures.
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

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// One measured row.
struct Row {
    rate: f64,
    p50: Duration,
    p99: Duration,
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
        rate: (groups * group) as f64 / elapsed.as_secs_f64(),
        p50: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
    }
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
    println!("| appenders | outbox rec/s | p50 ms | p99 ms | raw same group rec/s | raw group p50 ms | ratio vs raw same group | ratio vs raw per-record |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let raw1 = raw(tmp.path(), 1, appends_total.min(2_000));
    for &writers in &LEVELS {
        let dir = tmp.path().join(format!("appends-{writers}"));
        let storage = Storage::open(&dir, config.clone()).expect("open");
        let outbox = storage.outbox();
        let total = appends_total.max(writers * 4);
        let row = rt.block_on(appends(&outbox, writers, total));
        drop(outbox);
        drop(storage);
        let raw_g = raw(tmp.path(), writers, total);
        println!(
            "| {writers} | {:.0} | {} | {} | {:.0} | {} | {:.2} | {:.2} |",
            row.rate,
            ms(row.p50),
            ms(row.p99),
            raw_g.rate,
            ms(raw_g.p50),
            row.rate / raw_g.rate,
            row.rate / raw1.rate,
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!();
    println!(
        "raw per-record (group of 1): {:.0} rec/s, p50 {} ms, p99 {} ms (one device flush)",
        raw1.rate,
        ms(raw1.p50),
        ms(raw1.p99)
    );

    println!();
    println!("## Backlog of {backlog} records");
    println!();
    let dir = tmp.path().join("backlog");
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
            "- fill: {filled} records in {:.1} s ({:.0} rec/s, batches of 64 from 8 tasks); RSS now {} MiB",
            fill_start.elapsed().as_secs_f64(),
            filled as f64 / fill_start.elapsed().as_secs_f64(),
            rss_kib().0 / 1024
        );
    }
    let before = dir_bytes(&dir);
    println!(
        "- on disk before drain: {:.1} MiB, {:.0} bytes/record",
        before as f64 / 1048576.0,
        before as f64 / backlog as f64
    );
    let open_start = Instant::now();
    let storage = Storage::open(&dir, config.clone()).expect("reopen");
    let open_time = open_start.elapsed();
    let outbox = storage.outbox();
    let stats = outbox.stats(now_ms()).expect("stats");
    println!(
        "- open (recovery scan + index rebuild): {:.2} s for {} records; RSS now {} MiB",
        open_time.as_secs_f64(),
        stats.depth,
        rss_kib().0 / 1024
    );
    let (drained, took) = rt.block_on(drain_all(&outbox));
    println!(
        "- drain (take 512 + concurrent acks): {drained} records in {:.1} s = {:.0} rec/s",
        took.as_secs_f64(),
        drained as f64 / took.as_secs_f64()
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
        "peak RSS: VmHWM {} MiB (sampled max VmRSS {} MiB; now {} MiB); sled cache {} MiB",
        hwm / 1024,
        peak.load(Ordering::Relaxed) / 1024,
        rss / 1024,
        config_cache_mib
    );
}
