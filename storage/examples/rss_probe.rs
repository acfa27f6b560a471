//! Where the memory goes when an unclean open checks a large backlog: a
//! probe for the RSS figures in BENCHMARKS.md (issue 14), printing VmRSS,
//! VmHWM and glibc's heap figures (`mallinfo2`: in use, free inside the
//! arenas) every 100 ms while it works.
//!
//! ```text
//! cargo run --release -p edgecc-storage --example rss_probe -- DIR fill 1000000
//! cargo run --release -p edgecc-storage --example rss_probe -- DIR unclean        # saved live map
//! cargo run --release -p edgecc-storage --example rss_probe -- DIR unclean-nomap  # whole log scanned
//! cargo run --release -p edgecc-storage --example rss_probe -- DIR clean
//! cargo run --release -p edgecc-storage --example rss_probe -- DIR walk    # sled alone, walked
//! cargo run --release -p edgecc-storage --example rss_probe -- NEWDIR insert   # sled alone, 1M inserts
//! ```
//!
//! `CACHE_MB` sets sled's cache (default 32). `unclean` removes the clean
//! marker first, so copy the filled directory to run it more than once.
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgecc_storage::{NewRecord, RecordKind, Storage, StorageConfig};

fn status() -> String {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let f = |n: &str| {
        s.lines()
            .find(|l| l.starts_with(n))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            / 1024
    };
    // SAFETY: mallinfo2 only reads glibc's heap counters.
    let mi = unsafe { libc::mallinfo2() };
    format!(
        "rss {} anon {} file {} hwm {} | heap in use {} free-in-arena {} mmapped {}",
        f("VmRSS:"),
        f("RssAnon:"),
        f("RssFile:"),
        f("VmHWM:"),
        mi.uordblks / 1048576,
        mi.fordblks / 1048576,
        mi.hblkhd / 1048576
    )
}

fn sampler(label: &'static str) -> (Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = Arc::clone(&stop);
    let start = Instant::now();
    let h = std::thread::spawn(move || {
        while !s2.load(Ordering::Relaxed) {
            eprintln!(
                "{label} {:6.2}s {}",
                start.elapsed().as_secs_f64(),
                status()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    (stop, h)
}

fn record(i: u64) -> NewRecord {
    NewRecord {
        correlation_id: format!("call-{i}/phone_log"),
        interaction_key: format!("call-{}", i / 4),
        kind: RecordKind::PhoneLogCreate,
        body: vec![b'x'; 400],
        created_at_ms: 1,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(&args[1]);
    let mode = args[2].as_str();
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    eprintln!("start {}", status());
    match mode {
        "fill" => {
            let n: usize = args[3].parse().unwrap();
            let storage = Storage::open(&dir, StorageConfig::default()).unwrap();
            let outbox = storage.outbox();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let per = n / 8;
                let mut tasks = Vec::new();
                for w in 0..8 {
                    let outbox = outbox.clone();
                    tasks.push(tokio::spawn(async move {
                        let mut i = 0;
                        while i < per {
                            let k = 64.min(per - i);
                            let b = (0..k).map(|j| record((w * per + i + j) as u64)).collect();
                            outbox.append_batch(b).await.unwrap();
                            i += k;
                        }
                    }));
                }
                for t in tasks {
                    t.await.unwrap();
                }
            });
            eprintln!("filled {}", status());
        }
        "unclean" | "unclean-nomap" | "clean" => {
            if mode != "clean" {
                let _ = std::fs::remove_file(dir.join(edgecc_storage::CLEAN_FILE));
            }
            if mode == "unclean-nomap" {
                let _ = std::fs::remove_file(dir.join("log").join("live.map"));
            }
            let (stop, h) = sampler(if mode == "clean" { "clean" } else { "check" });
            let t = Instant::now();
            let mut config = StorageConfig::default();
            if let Some(mb) = std::env::var("CACHE_MB")
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
            {
                config.cache_bytes = mb << 20;
            }
            let storage = Storage::open(&dir, config).unwrap();
            eprintln!("opened in {:?}: {}", t.elapsed(), status());
            while storage.health().index_checking {
                std::thread::sleep(Duration::from_millis(20));
            }
            eprintln!(
                "checked {:?} health {:?}",
                t.elapsed(),
                storage.health().index_rebuild_ms
            );
            eprintln!("after check {}", status());
            stop.store(true, Ordering::Relaxed);
            h.join().unwrap();
        }
        "drain" => {
            // A clean open, then every record taken and acked (the bench's
            // drain).
            let (stop, h) = sampler("drain");
            let mut config = StorageConfig::default();
            if let Some(mb) = std::env::var("CACHE_MB")
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
            {
                config.cache_bytes = mb << 20;
            }
            let storage = Storage::open(&dir, config).unwrap();
            eprintln!("opened {}", status());
            let outbox = storage.outbox();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let t = Instant::now();
            let n = rt.block_on(async {
                let mut n = 0u64;
                loop {
                    let batch = outbox.take_ready(512, u64::MAX / 2);
                    if batch.is_empty() {
                        return n;
                    }
                    let mut acks = Vec::new();
                    for r in batch {
                        let outbox = outbox.clone();
                        acks.push(tokio::spawn(async move { outbox.ack(r.seq).await }));
                    }
                    for a in acks {
                        a.await.unwrap().unwrap();
                        n += 1;
                    }
                }
            });
            eprintln!("drained {n} in {:?} {}", t.elapsed(), status());
            stop.store(true, Ordering::Relaxed);
            h.join().unwrap();
        }
        "walk" => {
            // sled alone: walk the outbox tree in 256-entry batches.
            let db = sled::Config::new()
                .path(dir.join("sled"))
                .cache_capacity(
                    std::env::var("CACHE_MB")
                        .ok()
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(32)
                        << 20,
                )
                .flush_every_ms(Some(500))
                .segment_size(512 * 1024)
                .mode(sled::Mode::LowSpace)
                .use_compression(false)
                .open()
                .unwrap();
            eprintln!("sled opened {}", status());
            let (stop, h) = sampler("walk");
            let tree = db.open_tree("outbox").unwrap();
            let mut from: Vec<u8> = Vec::new();
            let mut n = 0u64;
            loop {
                let batch: Vec<_> = tree
                    .range(from.clone()..)
                    .take(256)
                    .map(|r| r.unwrap())
                    .collect();
                if batch.is_empty() {
                    break;
                }
                n += batch.len() as u64;
                from = batch.last().unwrap().0.to_vec();
                from.push(0);
            }
            eprintln!("walked {n} {}", status());
            stop.store(true, Ordering::Relaxed);
            h.join().unwrap();
            drop(tree);
            drop(db);
            eprintln!("dropped {}", status());
        }
        "insert" => {
            let db = sled::Config::new()
                .path(&dir)
                .cache_capacity(
                    std::env::var("CACHE_MB")
                        .ok()
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(32)
                        << 20,
                )
                .flush_every_ms(Some(500))
                .segment_size(512 * 1024)
                .mode(sled::Mode::LowSpace)
                .use_compression(false)
                .open()
                .unwrap();
            let (stop, h) = sampler("insert");
            let tree = db.open_tree("outbox").unwrap();
            let v = vec![b'x'; 470];
            for i in 0..1_000_000u64 {
                tree.insert(i.to_be_bytes(), v.as_slice()).unwrap();
            }
            eprintln!("inserted {}", status());
            db.flush().unwrap();
            eprintln!("flushed {}", status());
            stop.store(true, Ordering::Relaxed);
            h.join().unwrap();
        }
        _ => panic!("mode"),
    }
}
