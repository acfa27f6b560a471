//! A disk that stalls: the writer queue is bounded in bytes, callers that
//! must not wait are answered at once, reads go on, and nothing accepted is
//! lost once the disk answers again.

use std::time::{Duration, Instant};

use edgecc_storage::{AppendFailure, Storage, StorageConfig};

use crate::util::{list_all, update};

/// The queue bound of the test: 64 KiB.
const QUEUE_BYTES: usize = 64 * 1024;

/// Goal: while the log's sync blocks for 2 s, (a) the bytes queued for the
/// writer never pass the bound, (b) appends beyond it wait for room (the
/// documented back-pressure) while `try_append_batch` answers at once with
/// `QueueFull` and the records back, (c) reads (`take_ready`, `stats`,
/// `interaction`) answer within milliseconds, and (d) once the disk
/// answers, every append that was waiting or queued is acknowledged and
/// survives a reopen. Method: a storage with a 64 KiB queue and an injected
/// 2 s stall of the next log sync; 40 appenders of 4 KiB bodies (160 KiB,
/// more than the bound) start during the stall.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_disk_is_bounded_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = StorageConfig {
        queue_bytes: QUEUE_BYTES,
        ..crate::util::config()
    };
    let storage = Storage::open(dir.path(), config.clone()).expect("open");
    let outbox = storage.outbox();
    outbox.append(update("warm", 0)).await.expect("append");
    storage.inject_sync_stall(2_000, 1);
    let stalled_at = Instant::now();
    let first = tokio::spawn({
        let outbox = outbox.clone();
        async move { outbox.append(update("first", 0)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut tasks = Vec::new();
    for n in 0..40u32 {
        let outbox = outbox.clone();
        tasks.push(tokio::spawn(async move {
            let mut r = update(&format!("k{n}"), n);
            r.body = vec![b'x'; 4096];
            outbox.append(r).await.map(|seq| (seq, Instant::now()))
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // (a) bounded, and full.
    let health = storage.health();
    assert!(
        health.writer_queue_bytes <= QUEUE_BYTES as u64,
        "{health:?}"
    );
    assert!(
        health.writer_queue_bytes > QUEUE_BYTES as u64 / 2,
        "the appenders should have filled the queue: {health:?}"
    );
    // (b) a caller that must not wait gets its records back at once.
    let asked = Instant::now();
    let mut r = update("impatient", 0);
    r.body = vec![b'y'; 4096];
    let refused = outbox
        .try_append_batch(vec![r.clone()])
        .await
        .expect_err("queue full");
    assert!(
        matches!(refused.failure, AppendFailure::QueueFull { .. }),
        "{refused}"
    );
    assert_eq!(refused.records, vec![r]);
    assert!(asked.elapsed() < Duration::from_millis(100));
    // (c) reads are not held by the stalled sync.
    let asked = Instant::now();
    let taken = outbox.take_ready(1, 0);
    assert_eq!(taken.len(), 1, "the record appended before the stall");
    outbox.stats(0).expect("stats");
    assert_eq!(outbox.interaction("warm").pending, 1);
    assert!(
        asked.elapsed() < Duration::from_millis(200),
        "reads took {:?}",
        asked.elapsed()
    );
    // (d) everything is acknowledged after the stall, and durable.
    first.await.expect("task").expect("first append");
    let mut seqs = Vec::new();
    for t in tasks {
        let (seq, at) = t.await.expect("task").expect("append after the stall");
        assert!(
            at.duration_since(stalled_at) >= Duration::from_millis(1_900),
            "acknowledged during the stall"
        );
        seqs.push(seq);
    }
    // The queue's bytes come back once the writer is done with the group
    // (just after it answered).
    let deadline = Instant::now() + Duration::from_secs(2);
    while storage.health().writer_queue_bytes > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(storage.health().writer_queue_bytes, 0);
    drop((taken, outbox, storage));
    let storage = Storage::open(dir.path(), config).expect("reopen");
    let present: Vec<u64> = list_all(&storage.outbox()).iter().map(|r| r.seq).collect();
    assert_eq!(present.len(), 42, "warm, first and the 40");
    assert!(seqs.iter().all(|s| present.contains(s)));
}
