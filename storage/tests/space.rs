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
