//! Space: on-disk size stays bounded under a steady fill-and-drain load.

use edgecc_storage::{Storage, StorageConfig, WAL_BYTES_MIN};

use crate::util::{drain, sled_bytes, update};

/// Goal: sled reuses freed space and the log retires its segments, so the
/// directory does not grow without bound while records keep flowing
/// through. Method: 1 MiB log segments; 12 cycles of append 1,500 records
/// of ~400 bytes (~0.8 MB) then drain them all; sled's size after the last
/// cycle must stay within a small factor of the size after the first, and
/// the log within a few segments although ~20 MB of frames went through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fill_and_drain_keeps_disk_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = StorageConfig {
        wal_bytes: WAL_BYTES_MIN,
        ..crate::util::config()
    };
    let storage = Storage::open(dir.path(), config).expect("open");
    let outbox = storage.outbox();
    let mut sizes = Vec::new();
    let mut logs = Vec::new();
    for cycle in 0..12u32 {
        let mut tasks = Vec::new();
        for t in 0..50u32 {
            let outbox = outbox.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0..30u32 {
                    let mut r = update(&format!("c{cycle}-t{t}-{n}"), n);
                    r.body = vec![b'x'; 400];
                    outbox.append(r).await.expect("append");
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(drain(&outbox, 0).await.len(), 1_500);
        sizes.push(sled_bytes(dir.path()));
        logs.push(storage.health().log_segments);
    }
    eprintln!("sled bytes on disk after each cycle: {sizes:?}; log segments: {logs:?}");
    let first = sizes[0].max(1);
    let last = *sizes.last().expect("sizes");
    assert!(
        last <= first * 3,
        "disk grew from {first} to {last}: {sizes:?}"
    );
    assert!(
        logs.iter().all(|&n| n <= 4),
        "log segments after each cycle: {logs:?}"
    );
}

/// Goal: once a large backlog is drained, the idle writer retires every
/// emptied log segment, not a few per idle moment. Method: 1 MiB segments,
/// 12,000 records of 1 KiB (about 13 segments), all acked at once; then
/// wait a little and count the segments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_backlog_gives_its_segments_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = StorageConfig {
        wal_bytes: WAL_BYTES_MIN,
        ..crate::util::config()
    };
    let storage = Storage::open(dir.path(), config).expect("open");
    let outbox = storage.outbox();
    for first in (0..12_000u32).step_by(60) {
        let batch = (first..first + 60)
            .map(|n| {
                let mut r = update(&format!("k{n}"), n);
                r.body = vec![b'x'; 1024];
                r
            })
            .collect();
        outbox.append_batch(batch).await.expect("append");
    }
    let full = storage.health().log_segments;
    assert!(full >= 10, "{full} segments");
    // Acks all at once, as the sync worker sends them: the writer is never
    // idle until the end.
    let mut acks = Vec::new();
    while acks.len() < 12_000 {
        let taken = outbox.take_ready(12_000, 0);
        if taken.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        for r in taken {
            let (outbox, seq) = (outbox.clone(), r.seq);
            acks.push(tokio::spawn(async move { outbox.ack(seq).await }));
        }
    }
    for a in acks {
        a.await.expect("task").expect("ack");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while storage.health().log_segments > 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let health = storage.health();
    assert!(
        health.log_segments <= 2,
        "{full} segments, drained: {health:?}"
    );
}
