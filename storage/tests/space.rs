//! Space: on-disk size stays bounded under a steady fill-and-drain load.

use crate::util::{drain, open, update};

/// Goal: sled reuses freed space, so the directory does not grow without
/// bound while records keep flowing through. Method: 12 cycles of append
/// 1,500 records of ~400 bytes then drain them all; the size after the last
/// cycle must stay within a small factor of the size after the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fill_and_drain_keeps_disk_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = open(dir.path());
    let outbox = storage.outbox();
    let mut sizes = Vec::new();
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
        // Without the write-ahead log: a fixed 16 MiB that would hide growth.
        let log = std::fs::metadata(dir.path().join(edgecc_storage::wal::WAL_FILE))
            .map(|m| std::os::unix::fs::MetadataExt::blocks(&m) * 512)
            .expect("log");
        sizes.push(outbox.stats(0).expect("stats").bytes_on_disk - log);
    }
    eprintln!("bytes on disk after each cycle: {sizes:?}");
    let first = sizes[0].max(1);
    let last = *sizes.last().expect("sizes");
    assert!(
        last <= first * 3,
        "disk grew from {first} to {last}: {sizes:?}"
    );
}
