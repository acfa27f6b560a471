//! Power cut: what sled had not checkpointed is gone, the write-ahead log
//! brings every acknowledged change back.

use crate::util::{copy_dir, list_all, open, seqs, update};

/// Goal: an acknowledged change survives a power cut even though sled
/// syncs its own files only at checkpoints. Method: close a directory (a
/// checkpoint) and keep a copy of sled's files as they are then; reopen,
/// append, ack, dead-letter and put state, all acknowledged, and without
/// closing (no checkpoint) put the live log next to the old sled files:
/// that is the worst a power cut can leave. Opening it must show every
/// change. The same old sled files with the old log show none of them,
/// so it is the replay that brings them back.
#[tokio::test]
async fn acknowledged_changes_survive_when_sled_lost_everything_since_the_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = dir.path().join("live");
    let first = {
        let storage = open(&live);
        let outbox = storage.outbox();
        outbox.append(update("a", 1)).await.expect("append")
    };
    let at_checkpoint = dir.path().join("checkpoint");
    copy_dir(&live, &at_checkpoint);

    let storage = open(&live);
    let outbox = storage.outbox();
    let mut appended = Vec::new();
    for n in 2..=40 {
        appended.push(outbox.append(update("b", n)).await.expect("append"));
    }
    let taken = outbox.take_ready(2, 0);
    assert_eq!(seqs(&taken), vec![first, appended[0]]);
    outbox.ack(first).await.expect("ack");
    outbox
        .dead_letter(appended[0], "rejected by the CRM")
        .await
        .expect("dead letter");
    storage
        .state("mappings")
        .expect("state")
        .put(b"call-1", b"sys_id-1")
        .await
        .expect("put");
    let log = live.join(edgecc_storage::wal::WAL_FILE);
    let cut = dir.path().join("cut");
    copy_dir(&at_checkpoint, &cut);
    std::fs::copy(&log, cut.join(edgecc_storage::wal::WAL_FILE)).expect("copy log");
    // The live handle is never closed: closing would checkpoint.
    std::mem::forget(outbox);
    std::mem::forget(storage);

    let storage = open(&cut);
    let outbox = storage.outbox();
    let pending = seqs(&list_all(&outbox));
    assert_eq!(
        pending,
        appended[1..].to_vec(),
        "acked and dead records left, the rest is there"
    );
    let dead = outbox.dead_letters(0, 10).expect("dead letters");
    assert_eq!(seqs_of_dead(&dead), vec![appended[0]]);
    assert_eq!(
        storage
            .state("mappings")
            .expect("state")
            .get(b"call-1")
            .expect("get"),
        Some(b"sys_id-1".to_vec())
    );
    let next = outbox.append(update("c", 1)).await.expect("append");
    assert!(
        next > *appended.last().expect("appended"),
        "sequence {next} reused"
    );
    drop((outbox, storage));

    // Control: sled's files alone do not hold the changes.
    let outbox = open(&at_checkpoint).outbox();
    assert_eq!(seqs(&list_all(&outbox)), vec![first]);
    assert!(outbox.dead_letters(0, 10).expect("dead letters").is_empty());
}

fn seqs_of_dead(dead: &[edgecc_storage::DeadLetter]) -> Vec<u64> {
    dead.iter().map(|d| d.seq).collect()
}

/// Goal: a group larger than the whole log (here a `requeue_all` of ~1.6 MB
/// of dead letters with a 1 MiB log) is still committed, durably and whole,
/// and the log returns to its size. Method: dead-letter 3,000 records of
/// 400-byte bodies, re-queue them all in one operation, check the log's
/// size, then reopen and count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_larger_than_the_log_commits_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = edgecc_storage::StorageConfig {
        wal_bytes: edgecc_storage::WAL_BYTES_MIN,
        ..crate::util::config()
    };
    const N: u32 = 3_000;
    {
        let storage = edgecc_storage::Storage::open(dir.path(), config.clone()).expect("open");
        let outbox = storage.outbox();
        for first in (0..N).step_by(60) {
            let batch = (first..(first + 60).min(N))
                .map(|n| {
                    let mut r = update(&format!("k{n}"), n);
                    r.body = vec![b'x'; 400];
                    r
                })
                .collect();
            outbox.append_batch(batch).await.expect("append");
        }
        let taken = outbox.take_ready(N as usize, 0);
        assert_eq!(taken.len(), N as usize);
        for r in &taken {
            outbox
                .dead_letter(r.seq, "rejected")
                .await
                .expect("dead letter");
        }
        assert_eq!(outbox.requeue_all().await.expect("requeue all"), N as usize);
        let stats = outbox.stats(0).expect("stats");
        assert_eq!((stats.depth, stats.dead_letters), (u64::from(N), 0));
        // The log grew for that one frame and was shrunk right after.
        let log = std::fs::metadata(dir.path().join(edgecc_storage::wal::WAL_FILE))
            .expect("log")
            .len();
        assert_eq!(log, edgecc_storage::WAL_BYTES_MIN);
    }
    let storage = edgecc_storage::Storage::open(dir.path(), config).expect("reopen");
    let stats = storage.outbox().stats(0).expect("stats");
    assert_eq!((stats.depth, stats.dead_letters), (u64::from(N), 0));
}
