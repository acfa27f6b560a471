//! Power cut: sled's files may be anything after a cut (older, damaged, or
//! not openable); the log brings back every acknowledged change, exactly.

use std::path::Path;

use edgecc_storage::{Storage, StorageConfig, LOG_DIR, WAL_BYTES_MIN};

use crate::util::{copy_dir, cut_copy, list_all, open, seqs, update, wait_checked};

/// Goal: an acknowledged change survives a power cut whatever sled kept.
/// Method: close a directory and keep a copy of sled's files as they are
/// then; reopen, append, ack, dead-letter and put state, all acknowledged;
/// then put the live log next to the old sled files, without the clean
/// marker: that is what a cut can leave. Opening it must show every
/// change. The same old sled files with the old log show none of them, so
/// it is the log that brings them back.
#[tokio::test]
async fn acknowledged_changes_survive_when_sled_lost_everything_since_the_last_close() {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = dir.path().join("live");
    let first = {
        let storage = open(&live);
        let outbox = storage.outbox();
        outbox.append(update("a", 1)).await.expect("append")
    };
    let at_close = dir.path().join("at-close");
    copy_dir(&live, &at_close);

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
    drop((outbox, storage));
    let cut = dir.path().join("cut");
    cut_copy(&at_close, &live, &cut);

    let storage = open(&cut);
    let health = wait_checked(&storage);
    assert!(
        health.index_rebuild_ms.is_some(),
        "sled was trusted: {health:?}"
    );
    assert!(health.repaired_entries > 0, "{health:?}");
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
    let outbox = open(&at_close).outbox();
    assert_eq!(seqs(&list_all(&outbox)), vec![first]);
    assert!(outbox.dead_letters(0, 10).expect("dead letters").is_empty());
}

fn seqs_of_dead(dead: &[edgecc_storage::DeadLetter]) -> Vec<u64> {
    dead.iter().map(|d| d.seq).collect()
}

fn small_segments() -> StorageConfig {
    StorageConfig {
        wal_bytes: WAL_BYTES_MIN,
        ..crate::util::config()
    }
}

/// Goal: the log keeps every live entry however many segments went by,
/// and nothing acknowledged away comes back: sled's files from long ago
/// (records since acked, a state entry since removed) plus today's log
/// give exactly today's state. This is what the previous design lost: its
/// write-ahead log was emptied at each checkpoint, so sled was the only
/// copy of everything older. Method: 1 MiB segments; a dead letter and a
/// state entry written first (they must be copied forward as segments
/// retire); then 6,000 records of 400 bytes appended and acked in waves
/// (many segments filled and retired); keep sled's files from the start,
/// cut, reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_sled_files_and_many_retired_segments_give_exactly_the_last_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = dir.path().join("live");
    let config = small_segments();
    let (dead_seq, early) = {
        let storage = Storage::open(&live, config.clone()).expect("open");
        let outbox = storage.outbox();
        let dead = outbox.append(update("dead", 1)).await.expect("append");
        let taken = outbox.take_ready(1, 0);
        assert_eq!(seqs(&taken), vec![dead]);
        outbox.dead_letter(dead, "rejected").await.expect("dead");
        let state = storage.state("links").expect("state");
        state.put(b"kept", b"v1").await.expect("put");
        state.put(b"removed", b"v1").await.expect("put");
        let mut early = Vec::new();
        for n in 0..50 {
            early.push(outbox.append(update("early", n)).await.expect("append"));
        }
        (dead, early)
    };
    let at_start = dir.path().join("at-start");
    copy_dir(&live, &at_start);
    let storage = Storage::open(&live, config.clone()).expect("open");
    let outbox = storage.outbox();
    let state = storage.state("links").expect("state");
    state.remove(b"removed").await.expect("remove");
    state.put(b"kept", b"v2").await.expect("put");
    let mut kept = Vec::new();
    for wave in 0..12u32 {
        for first in (0..500u32).step_by(50) {
            let batch = (first..first + 50)
                .map(|n| {
                    let mut r = update(&format!("w{wave}-{n}"), n);
                    r.body = vec![b'x'; 400];
                    r
                })
                .collect();
            let seqs = outbox.append_batch(batch).await.expect("append");
            kept.push(seqs[0]);
        }
        // Deliver everything but the first record of each batch.
        loop {
            let batch = outbox.take_ready(512, 0);
            if batch.is_empty() {
                break;
            }
            for r in batch {
                if kept.contains(&r.seq) {
                    outbox
                        .retry(r.seq, "later", u64::MAX / 2)
                        .await
                        .expect("retry");
                } else {
                    outbox.ack(r.seq).await.expect("ack");
                }
            }
        }
    }
    let health = storage.health();
    drop((outbox, state, storage));
    // Segments were retired along the way: the log is far smaller than
    // what went through it (6,000 records of ~500 bytes, 3 MB).
    assert!(health.log_segments <= 4, "{health:?}");
    let retired_from = segment_numbers(&live).first().copied().unwrap_or(0);
    assert!(retired_from > 2, "no segment retired: {health:?}");

    let cut = dir.path().join("cut");
    cut_copy(&at_start, &live, &cut);
    let storage = Storage::open(&cut, config).expect("open after the cut");
    let outbox = storage.outbox();
    let pending = seqs(&list_all(&outbox));
    kept.sort_unstable();
    assert_eq!(pending, kept, "early records were acked: they stay gone");
    assert!(early.iter().all(|s| !pending.contains(s)));
    let dead = outbox.dead_letters(0, 10).expect("dead letters");
    assert_eq!(seqs_of_dead(&dead), vec![dead_seq]);
    let state = storage.state("links").expect("state");
    assert_eq!(state.get(b"kept").expect("get"), Some(b"v2".to_vec()));
    assert_eq!(state.get(b"removed").expect("get"), None);
    let stats = outbox.stats(0).expect("stats");
    assert_eq!((stats.depth, stats.dead_letters), (kept.len() as u64, 1));
}

/// The log's segment numbers, in order.
fn segment_numbers(dir: &Path) -> Vec<u64> {
    let mut out: Vec<u64> = std::fs::read_dir(dir.join(LOG_DIR))
        .expect("log dir")
        .filter_map(|e| {
            let name = e.expect("entry").file_name().to_string_lossy().into_owned();
            u64::from_str_radix(name.strip_suffix(".seg")?, 16).ok()
        })
        .collect();
    out.sort_unstable();
    out
}

/// Goal: a sled directory that does not open is moved aside (kept), sled
/// is rebuilt from the log, nothing is lost, and it is reported. Method:
/// after an unclean stop, overwrite sled's files with garbage; reopen.
#[tokio::test]
async fn a_sled_that_does_not_open_is_quarantined_and_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = dir.path().join("live");
    let (pending, dead) = {
        let storage = open(&live);
        let outbox = storage.outbox();
        let mut pending = Vec::new();
        for n in 0..30 {
            pending.push(outbox.append(update("k", n)).await.expect("append"));
        }
        let taken = outbox.take_ready(1, 0);
        outbox.dead_letter(taken[0].seq, "no").await.expect("dead");
        storage
            .state("links")
            .expect("state")
            .put(b"a", b"b")
            .await
            .expect("put");
        (pending[1..].to_vec(), taken[0].seq)
    };
    let cut = dir.path().join("cut");
    cut_copy(&live, &live, &cut);
    let sled = cut.join(edgecc_storage::SLED_DIR);
    std::fs::write(sled.join("conf"), b"not a sled config at all\n").expect("write");
    std::fs::write(sled.join("db"), vec![0xA5u8; 300_000]).expect("write");

    let storage = open(&cut);
    let health = wait_checked(&storage);
    assert_eq!(health.quarantined.len(), 1, "{health:?}");
    let moved = &health.quarantined[0];
    assert!(moved.join("db").exists(), "quarantined files kept");
    assert!(health.index_rebuild_ms.is_some());
    let outbox = storage.outbox();
    assert_eq!(seqs(&list_all(&outbox)), pending);
    let dead_letters = outbox.dead_letters(0, 10).expect("dead letters");
    assert_eq!(seqs_of_dead(&dead_letters), vec![dead]);
    assert_eq!(
        storage
            .state("links")
            .expect("state")
            .get(b"a")
            .expect("get"),
        Some(b"b".to_vec())
    );
    // Reported in the outbox figures too.
    assert_eq!(outbox.stats(0).expect("stats").health.quarantined.len(), 1);
    drop((outbox, storage));
    // A clean close: the next open trusts the rebuilt sled (and still
    // lists the quarantined directory until an operator removes it).
    let storage = open(&cut);
    let health = storage.health();
    assert_eq!(health.index_rebuild_ms, None, "{health:?}");
    assert_eq!(health.quarantined.len(), 1);
}

/// Goal: a group larger than a whole segment (here a `requeue_all` of ~1.6
/// MB of dead letters with 1 MiB segments) is still committed, durably and
/// whole. Method: dead-letter 3,000 records of 400-byte bodies, re-queue
/// them all in one operation, reopen after a cut and count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_larger_than_a_segment_commits_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = dir.path().join("live");
    let config = small_segments();
    const N: u32 = 3_000;
    {
        let storage = Storage::open(&live, config.clone()).expect("open");
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
    }
    let cut = dir.path().join("cut");
    cut_copy(&dir.path().join("nothing"), &live, &cut);
    let storage = Storage::open(&cut, config).expect("reopen");
    let stats = storage.outbox().stats(0).expect("stats");
    assert_eq!((stats.depth, stats.dead_letters), (u64::from(N), 0));
}
