//! The background check of sled after an unclean stop: open returns before
//! sled is checked, the directory is fully usable while the check runs
//! (reads come from the log), nothing done meanwhile is undone by it, and a
//! sled the check finds unusable is moved aside and rebuilt from the log.

use std::path::Path;

use edgecc_storage::{Outbox, Storage, StorageConfig};

use crate::util::{config, copy_dir, cut_copy, list_all, seqs, update, wait_checked};

/// Opens `dir` with the background check held until released.
fn open_held(dir: &Path) -> Storage {
    let config = StorageConfig {
        hold_index_check: true,
        ..config()
    };
    Storage::open(dir, config).expect("open storage")
}

/// Reopens `path` after a clean close: answers the storage once it shows
/// sled trusted at once (no check) and the outbox holding `expect`.
fn reopened_clean(path: &Path, expect: &[u64]) -> Storage {
    let storage = Storage::open(path, config()).expect("reopen");
    let health = storage.health();
    assert!(!health.index_checking, "closed clean: {health:?}");
    assert_eq!(seqs(&list_all(&storage.outbox())), expect);
    storage
}

/// Appends 20 records (keys `k1`..`k20`) and puts a state entry (`call-0`)
/// into a fresh directory at `path`, then closes it cleanly; answers the
/// records' seqs.
async fn twenty_records(path: &Path) -> Vec<u64> {
    let storage = Storage::open(path, config()).expect("open");
    let outbox = storage.outbox();
    let mut appended = Vec::new();
    for n in 1..=20 {
        appended.push(
            outbox
                .append(update(&format!("k{n}"), n))
                .await
                .expect("append"),
        );
    }
    let state = storage.state("links").expect("state");
    state.put(b"call-0", b"sys-0").await.expect("put");
    appended
}

/// `twenty_records`, then the directory opened with `config` as after an
/// unclean stop (the clean marker removed); answers the storage (nothing
/// quarantined yet) and the records' seqs.
async fn unclean_twenty(path: &Path, config: StorageConfig) -> (Storage, Vec<u64>) {
    let appended = twenty_records(path).await;
    std::fs::remove_file(path.join(edgecc_storage::CLEAN_FILE)).expect("marker");
    let storage = Storage::open(path, config).expect("open");
    assert!(storage.health().quarantined.is_empty());
    (storage, appended)
}

/// Takes one ready record of `appended` and acks it, then appends one more
/// (`doing` says when, for the failure messages); answers the seqs the
/// outbox must hold afterwards, in order.
async fn ack_one_append_one(outbox: &Outbox, appended: &[u64], doing: &str) -> Vec<u64> {
    let taken = outbox.take_ready(1, 0);
    let acked = taken.first().expect("a ready record").seq;
    outbox
        .ack(acked)
        .await
        .unwrap_or_else(|e| panic!("ack {doing}: {e}"));
    let late = outbox
        .append(update("late", 1))
        .await
        .unwrap_or_else(|e| panic!("append {doing}: {e}"));
    appended
        .iter()
        .copied()
        .filter(|&s| s != acked)
        .chain([late])
        .collect()
}

/// Goal: while sled is unchecked the directory answers from the log, and
/// the check keeps what was done meanwhile. Method: sled's files from an
/// earlier close beside a later log (a power cut's leftovers: sled lacks
/// 30 records, an ack, a dead letter and a state entry), opened with the
/// check held. Before the check: every pending record is listed and taken
/// (sled alone has only the first), an ack, an append and a state put are
/// acknowledged. Then the check runs; afterwards, and after a reopen, the
/// ack stays done and the append and the put stay there.
#[tokio::test]
async fn the_directory_is_usable_while_sled_is_checked_and_keeps_what_was_done() {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = dir.path().join("live");
    let first = {
        let storage = Storage::open(&live, config()).expect("open");
        storage
            .outbox()
            .append(update("a", 1))
            .await
            .expect("append")
    };
    let at_close = dir.path().join("at-close");
    copy_dir(&live, &at_close);
    let (appended, dead) = {
        let storage = Storage::open(&live, config()).expect("open");
        let outbox = storage.outbox();
        let mut appended = Vec::new();
        for n in 2..=31 {
            appended.push(
                outbox
                    .append(update(&format!("k{n}"), n))
                    .await
                    .expect("append"),
            );
        }
        let taken = outbox.take_ready(1, 0);
        assert_eq!(seqs(&taken), vec![first]);
        outbox
            .dead_letter(first, "rejected")
            .await
            .expect("dead letter");
        let state = storage.state("links").expect("state");
        state.put(b"call-1", b"sys-1").await.expect("put");
        (appended, first)
    };
    let cut = dir.path().join("cut");
    cut_copy(&at_close, &live, &cut);

    let storage = open_held(&cut);
    let health = storage.health();
    assert!(health.index_checking, "check not running: {health:?}");
    assert_eq!(health.index_rebuild_ms, None);
    let outbox = storage.outbox();
    // Reads: from the log, not from the old sled (which knows only `first`).
    assert_eq!(seqs(&list_all(&outbox)), appended);
    let dead_letters = outbox.dead_letters(0, 10).expect("dead letters");
    assert_eq!(
        dead_letters.iter().map(|d| d.seq).collect::<Vec<_>>(),
        vec![dead]
    );
    let state = storage.state("links").expect("state");
    assert_eq!(state.get(b"call-1").expect("get"), Some(b"sys-1".to_vec()));
    assert_eq!(outbox.stats(0).expect("stats").depth, 30);
    // Writes while unchecked.
    let mut taken = seqs(&outbox.take_ready(100, 0));
    taken.sort_unstable();
    assert_eq!(taken, appended, "every key's head is ready");
    let acked = appended[0];
    outbox.ack(acked).await.expect("ack during the check");
    let retried = appended[1];
    outbox.retry(retried, "CRM down", 5).await.expect("retry");
    let late = outbox
        .append(update("late", 1))
        .await
        .expect("append during the check");
    state
        .put(b"call-2", b"sys-2")
        .await
        .expect("put during the check");
    state
        .remove(b"call-1")
        .await
        .expect("remove during the check");
    assert!(storage.health().index_checking, "still held");

    storage.release_index_check();
    let health = wait_checked(&storage);
    assert!(health.index_rebuild_ms.is_some(), "{health:?}");
    assert!(
        health.repaired_entries > 0,
        "the old sled lacked entries: {health:?}"
    );
    assert!(health.index_check_error.is_none(), "{health:?}");
    let expect: Vec<u64> = appended[1..].iter().copied().chain([late]).collect();
    let check = |storage: &Storage| {
        let outbox = storage.outbox();
        assert_eq!(seqs(&list_all(&outbox)), expect, "the ack stays done");
        let record = list_all(&outbox)
            .into_iter()
            .find(|r| r.seq == retried)
            .expect("retried record");
        assert_eq!(record.attempts, 1);
        let state = storage.state("links").expect("state");
        assert_eq!(state.get(b"call-1").expect("get"), None);
        assert_eq!(state.get(b"call-2").expect("get"), Some(b"sys-2".to_vec()));
    };
    check(&storage);
    drop((outbox, state, storage));
    // A clean close after the check: trusted as it is at the next open.
    let storage = Storage::open(&cut, config()).expect("reopen");
    assert!(!storage.health().index_checking);
    check(&storage);
    drop(storage);
    // And unclean again, from the same files: the check agrees with sled.
    std::fs::remove_file(cut.join(edgecc_storage::CLEAN_FILE)).expect("marker");
    let storage = Storage::open(&cut, config()).expect("reopen unclean");
    let health = wait_checked(&storage);
    assert_eq!(health.repaired_entries, 0, "{health:?}");
    check(&storage);
}

/// Goal: sled data pages damaged in the middle of its file (what a cut
/// leaves when sled counted unflushed pages as stable) lose nothing.
/// Method: a closed directory with 2,000 records, 16-byte runs of 0xFF
/// written every KiB through the middle three quarters of sled's `db`
/// file, the clean marker removed. sled still opens (it reads pages
/// lazily) and silently lacks entries; reads come from the log while the
/// check is held, and the check brings the entries back (or moves sled
/// aside if it fails on them).
#[tokio::test]
async fn damaged_sled_pages_are_repaired_by_the_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("box");
    let appended = {
        let storage = Storage::open(&path, config()).expect("open");
        let outbox = storage.outbox();
        let mut appended = Vec::new();
        for n in 0..40u32 {
            let batch = (0..50).map(|i| update(&format!("k{n}-{i}"), i)).collect();
            appended.extend(outbox.append_batch(batch).await.expect("append"));
        }
        appended
    };
    let db = path.join(edgecc_storage::SLED_DIR).join("db");
    let len = std::fs::metadata(&db).expect("db").len();
    {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&db)
            .expect("open db");
        let mut at = len / 8;
        while at < len * 7 / 8 {
            file.write_all_at(&[0xFF; 16], at).expect("damage");
            at += 1024;
        }
    }
    std::fs::remove_file(path.join(edgecc_storage::CLEAN_FILE)).expect("marker");

    let storage = open_held(&path);
    assert_eq!(
        seqs(&list_all(&storage.outbox())),
        appended,
        "read from the log"
    );
    storage.release_index_check();
    let health = wait_checked(&storage);
    assert!(health.index_check_error.is_none(), "{health:?}");
    assert!(
        health.repaired_entries > 0 || !health.quarantined.is_empty(),
        "the damage went unnoticed: {health:?}"
    );
    assert_eq!(seqs(&list_all(&storage.outbox())), appended);
    drop(storage);
    reopened_clean(&path, &appended);
}

/// Goal: a sled that fails while unchecked (a group it refuses, a read
/// that errors or panics) is moved aside by the background check and
/// rebuilt from the log, losing nothing, including what was acknowledged
/// after it failed. Method: an unclean open with the check held; sled is
/// marked failed as a refused group would (test hook), then an ack, an
/// append and a state put are acknowledged (the writer no longer applies
/// them to sled); the check then quarantines sled, the fresh one gets every
/// live entry, and a clean reopen from it shows them all.
#[tokio::test]
async fn a_sled_that_fails_during_the_check_is_quarantined_and_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("box");
    let held = StorageConfig {
        hold_index_check: true,
        ..config()
    };
    let (storage, appended) = unclean_twenty(&path, held).await;
    storage.inject_sled_failure("injected: sled refused a group");
    let outbox = storage.outbox();
    let expect = ack_one_append_one(&outbox, &appended, "after sled failed").await;
    let state = storage.state("links").expect("state");
    state
        .put(b"call-1", b"sys-1")
        .await
        .expect("put after sled failed");
    storage.release_index_check();
    let health = wait_checked(&storage);
    assert_eq!(health.quarantined.len(), 1, "{health:?}");
    assert!(health.index_check_error.is_none(), "{health:?}");
    assert!(health.index_rebuild_ms.is_some(), "{health:?}");
    assert_eq!(seqs(&list_all(&outbox)), expect);
    drop((outbox, state, storage));
    let storage = reopened_clean(&path, &expect);
    let state = storage.state("links").expect("state");
    assert_eq!(state.get(b"call-0").expect("get"), Some(b"sys-0".to_vec()));
    assert_eq!(state.get(b"call-1").expect("get"), Some(b"sys-1".to_vec()));
}

/// Goal: real damage inside sled's data file that sled only meets when the
/// check reads it (not a test hook) makes the check move sled aside (kept,
/// byte for byte), rebuild it from the log and report it, losing nothing.
/// Method: records with 2 KB bodies fill several of sled's segments; a
/// clean close, then a clean open and close, so that sled's snapshot (made
/// at its open) covers every segment: the next open replays nothing and
/// reads the damaged pages only when the check walks them. Bytes in the
/// middle of the data file are overwritten, the clean marker removed, and
/// the directory opened with the check held: open itself succeeds on the
/// damaged sled, every record is read (from the log); then the check runs.
/// (Damage inside the part sled replays at open is another story: sled
/// takes the first bad message for the end of its log and drops the rest
/// silently, which the check repairs; `damaged_sled_pages_are_repaired_by_the_check`.)
#[tokio::test]
async fn a_sled_whose_pages_are_corrupt_is_quarantined_by_the_check() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("box");
    let body = |n: u32| format!("{n:08}|").repeat(2048 / 9).into_bytes();
    let appended = {
        let storage = Storage::open(&path, config()).expect("open");
        let outbox = storage.outbox();
        let mut appended = Vec::new();
        for n in 0..40u32 {
            let batch = (0..50)
                .map(|i| {
                    let mut r = update(&format!("k{n}-{i}"), i);
                    r.body = body(n * 50 + i);
                    r
                })
                .collect();
            appended.extend(outbox.append_batch(batch).await.expect("append"));
        }
        appended
    };
    let db = path.join(edgecc_storage::SLED_DIR).join("db");
    let before = std::fs::read(&db).expect("read db");
    // sled writes a snapshot up to the end of its log at open.
    drop(Storage::open(&path, config()).expect("clean reopen"));
    let after = std::fs::read(&db).expect("read db");
    let len = after.len() as u64;
    assert!(len > 2 * 1024 * 1024, "sled's data file is {len} bytes");
    let mut damage = Vec::new();
    {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&db)
            .expect("open db");
        // 64 bytes every 4 KiB over the middle half, never at a segment's
        // start (its header) and only in segments the clean reopen did not
        // write: sled reads those at its next open (its log after the
        // snapshot), the others only when a page is read.
        const SEGMENT: usize = edgecc_storage::SEGMENT_BYTES_DEFAULT;
        let mut at = (len as usize / 4) / 4096 * 4096 + 1000;
        while at < len as usize * 3 / 4 {
            let seg = at / SEGMENT * SEGMENT..(at / SEGMENT + 1) * SEGMENT;
            if before.get(seg.clone()) == after.get(seg) {
                file.write_all_at(&[0xA5; 64], at as u64).expect("damage");
                damage.push(at);
            }
            at += 4096;
        }
        assert!(damage.len() > 100, "{} spots damaged", damage.len());
        file.sync_all().expect("sync");
    }
    std::fs::remove_file(path.join(edgecc_storage::CLEAN_FILE)).expect("marker");

    let storage = open_held(&path);
    assert!(
        storage.health().quarantined.is_empty(),
        "sled opened as it is: the damage is met by the check"
    );
    let bodies = |records: &[edgecc_storage::Record]| {
        records
            .iter()
            .map(|r| (r.seq, r.body.clone()))
            .collect::<Vec<_>>()
    };
    let expect: Vec<(u64, Vec<u8>)> = appended
        .iter()
        .zip(0u32..)
        .map(|(&s, n)| (s, body(n)))
        .collect();
    assert_eq!(bodies(&list_all(&storage.outbox())), expect, "from the log");
    storage.release_index_check();
    let health = wait_checked(&storage);
    assert_eq!(health.quarantined.len(), 1, "moved aside: {health:?}");
    assert!(health.index_check_error.is_none(), "{health:?}");
    assert!(health.index_rebuild_ms.is_some(), "{health:?}");
    // Kept with its damage, not emptied (sled reuses some of its segments
    // between its open and the move: 1,056 of 1,216 damaged spots were
    // still there in one run).
    let kept = std::fs::read(health.quarantined[0].join("db")).expect("quarantined db");
    let still = damage
        .iter()
        .filter(|&&at| kept.get(at..at + 64) == Some(&[0xA5; 64][..]))
        .count();
    assert!(
        kept.len() as u64 >= len && still > damage.len() / 2,
        "the quarantined data file keeps the damage: {} bytes, {still} of {} spots",
        kept.len(),
        damage.len()
    );
    assert_eq!(bodies(&list_all(&storage.outbox())), expect, "from sled");
    let stats = storage.outbox().stats(0).expect("stats");
    assert_eq!(stats.health.quarantined.len(), 1, "in the outbox status");
    drop(storage);
    let storage = Storage::open(&path, config()).expect("reopen");
    let health = storage.health();
    assert!(!health.index_checking, "closed clean after the rebuild");
    assert_eq!(health.quarantined.len(), 1, "still reported: {health:?}");
    assert_eq!(bodies(&list_all(&storage.outbox())), expect);
}

/// Goal: after an unclean stop with a backlog at least
/// `StorageConfig::rebuild_entries`, sled is set aside unopened and the
/// check fills a fresh one from the log (what keeps RSS down with a large
/// backlog), keeping everything done meanwhile; the old directory is removed
/// once the new sled is synced. Method: 300 records, a dead letter and a
/// state entry; a clean close, the marker removed, then an open with the
/// threshold at 1 and the check held: the old sled is set aside, an ack, an
/// append and a state put are acknowledged, then the check runs. Below the
/// threshold (the default here) the old sled is checked in place instead.
#[tokio::test]
async fn a_large_backlog_is_rebuilt_into_a_fresh_sled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("box");
    let (appended, dead) = {
        let storage = Storage::open(&path, config()).expect("open");
        let outbox = storage.outbox();
        let mut appended = Vec::new();
        for n in 0..6u32 {
            let batch = (0..50).map(|i| update(&format!("k{n}-{i}"), i)).collect();
            appended.extend(outbox.append_batch(batch).await.expect("append"));
        }
        let dead = outbox.take_ready(1, 0)[0].seq;
        outbox.dead_letter(dead, "rejected").await.expect("dead");
        appended.retain(|&s| s != dead);
        let state = storage.state("links").expect("state");
        state.put(b"call-0", b"sys-0").await.expect("put");
        (appended, dead)
    };
    let replaced = |path: &Path| {
        std::fs::read_dir(path)
            .expect("list")
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("sled.replaced-")
            })
            .count()
    };
    std::fs::remove_file(path.join(edgecc_storage::CLEAN_FILE)).expect("marker");
    let storage = Storage::open(
        &path,
        StorageConfig {
            hold_index_check: true,
            rebuild_entries: 1,
            ..config()
        },
    )
    .expect("open");
    let health = storage.health();
    assert!(health.sled_rebuilt && health.index_checking, "{health:?}");
    assert!(
        health.quarantined.is_empty(),
        "not a quarantine: {health:?}"
    );
    assert_eq!(replaced(&path), 1, "the old sled is set aside, kept");
    let outbox = storage.outbox();
    let taken = outbox.take_ready(1, 0);
    outbox.ack(taken[0].seq).await.expect("ack");
    let late = outbox.append(update("late", 1)).await.expect("append");
    let state = storage.state("links").expect("state");
    state.put(b"call-1", b"sys-1").await.expect("put");
    storage.release_index_check();
    let health = wait_checked(&storage);
    assert!(health.index_check_error.is_none(), "{health:?}");
    assert!(
        health.repaired_entries >= appended.len() as u64,
        "every entry written into the fresh sled: {health:?}"
    );
    assert_eq!(replaced(&path), 0, "removed once the new sled is synced");
    let expect: Vec<u64> = appended
        .iter()
        .copied()
        .filter(|&s| s != taken[0].seq)
        .chain([late])
        .collect();
    assert_eq!(seqs(&list_all(&outbox)), expect);
    drop((outbox, state, storage));
    let check_reopened = |storage: &Storage| {
        assert_eq!(seqs(&list_all(&storage.outbox())), expect);
        let dead_letters = storage.outbox().dead_letters(0, 10).expect("dead");
        assert_eq!(
            dead_letters.iter().map(|d| d.seq).collect::<Vec<_>>(),
            [dead]
        );
        let state = storage.state("links").expect("state");
        assert_eq!(state.get(b"call-0").expect("get"), Some(b"sys-0".to_vec()));
        assert_eq!(state.get(b"call-1").expect("get"), Some(b"sys-1".to_vec()));
    };
    let storage = Storage::open(&path, config()).expect("reopen");
    assert!(
        !storage.health().index_checking,
        "closed clean after the rebuild"
    );
    check_reopened(&storage);
    drop(storage);
    // Unclean again, below the threshold: the sled is checked in place.
    std::fs::remove_file(path.join(edgecc_storage::CLEAN_FILE)).expect("marker");
    let storage = Storage::open(&path, config()).expect("reopen unclean");
    let health = wait_checked(&storage);
    assert!(
        !health.sled_rebuilt && health.repaired_entries == 0,
        "{health:?}"
    );
    check_reopened(&storage);
}

/// Goal: a sled trusted after a clean close that panics while read (sled
/// 0.34.7 does on some pages a power cut damaged; the FUSE power-cut test
/// met "tried to serialize Uninitialized" in a read on the caller's thread,
/// which ended the process) costs no read and no record: the read is
/// answered from the log, sled is not trusted again until the next open,
/// the health says why, and the close leaves no clean marker, so the next
/// open checks sled against the log. Method: 20 records, a clean close, a
/// reopen (sled trusted), the next sled read made to panic (test hook),
/// then the pending records listed, one taken and acked, one appended.
#[tokio::test]
async fn a_trusted_sled_that_panics_while_read_is_read_from_the_log_instead() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("data");
    let appended = twenty_records(&path).await;
    let storage = Storage::open(&path, config()).expect("reopen");
    assert!(
        !storage.health().index_checking,
        "trusted after a clean close"
    );
    storage.inject_sled_read_panic();
    let outbox = storage.outbox();
    assert_eq!(seqs(&list_all(&outbox)), appended, "read from the log");
    let health = storage.health();
    let why = health.index_check_error.clone().unwrap_or_default();
    assert!(why.contains("sled panicked"), "{health:?}");
    let expect = ack_one_append_one(&outbox, &appended, "after the panic").await;
    assert_eq!(
        expect[..19],
        appended[1..],
        "the first record was ready first"
    );
    assert_eq!(seqs(&list_all(&outbox)), expect);
    drop((outbox, storage));
    assert!(
        !path.join(edgecc_storage::CLEAN_FILE).exists(),
        "no clean marker over a distrusted sled"
    );
    let storage = Storage::open(&path, config()).expect("open after");
    let health = wait_checked(&storage);
    assert!(health.index_check_error.is_none(), "{health:?}");
    assert_eq!(seqs(&list_all(&storage.outbox())), expect);
}

/// Goal: the check of an old sled while appends and acks go on finds a
/// clean pass and trusts sled, without moving it aside: a key the writer
/// changes during a batch is no repair. The check counts every difference
/// between sled's page and the log as a repair (a damaged sled's range
/// reads and lookups can disagree), which is sound only because the writer
/// notes a group in the live map and applies it to sled under one hold of
/// the apply lock. A guard, not a proof of that ordering: with the note
/// moved back before the lock it still passed 4 runs of 4 here (the window
/// is a few microseconds). Method: sled's files from an earlier close
/// beside a later log (sled lacks 300 records), opened unclean; four tasks
/// append, take and ack (old records and new ones, across the tree)
/// without pause until the check ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_sled_checked_under_write_load_is_trusted_not_moved_aside() {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = dir.path().join("live");
    {
        let storage = Storage::open(&live, config()).expect("open");
        let batch = (0..50).map(|i| update(&format!("a{i}"), i)).collect();
        storage.outbox().append_batch(batch).await.expect("append");
    }
    let at_close = dir.path().join("at-close");
    copy_dir(&live, &at_close);
    {
        let storage = Storage::open(&live, config()).expect("open");
        for n in 0..6u32 {
            let batch = (0..50).map(|i| update(&format!("b{n}-{i}"), i)).collect();
            storage.outbox().append_batch(batch).await.expect("append");
        }
    }
    let cut = dir.path().join("cut");
    cut_copy(&at_close, &live, &cut);

    let storage = open_held(&cut);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = tokio::task::JoinSet::new();
    for t in 0..4u32 {
        let (outbox, stop) = (storage.outbox(), std::sync::Arc::clone(&stop));
        load.spawn(async move {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                outbox
                    .append(update(&format!("load{t}-{n}"), n))
                    .await
                    .expect("append during the check");
                for r in outbox.take_ready(2, 0) {
                    outbox.ack(r.seq).await.expect("ack during the check");
                }
                n += 1;
            }
        });
    }
    storage.release_index_check();
    let health = tokio::task::spawn_blocking({
        let storage = storage.clone();
        move || wait_checked(&storage)
    })
    .await
    .expect("wait");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    while let Some(done) = load.join_next().await {
        done.expect("load task");
    }
    assert!(health.index_check_error.is_none(), "{health:?}");
    assert!(
        health.repaired_entries >= 300,
        "the old sled lacked 300 records: {health:?}"
    );
    assert!(
        health.quarantined.is_empty(),
        "a healthy sled was moved aside under write load: {health:?}"
    );
}

/// The config of the two stuck-check tests below: the check held, and a
/// 300 ms bound on a pass that makes no progress.
fn bounded() -> StorageConfig {
    StorageConfig {
        hold_index_check: true,
        check_stall_ms: 300,
        ..config()
    }
}

/// Releases the held check of `storage` once `inject` made it stuck in
/// sled for `stuck`, acks the first record and appends one meanwhile, and
/// checks that the check ended within half of `stuck` with that sled moved
/// aside and rebuilt; then waits for the stuck read to return and checks
/// that it changed nothing. Answers the seqs the outbox holds.
async fn a_stuck_check_ends_alone(
    storage: &Storage,
    appended: &[u64],
    stuck: std::time::Duration,
    inject: fn(&Storage, u64),
) -> Vec<u64> {
    inject(storage, stuck.as_millis() as u64);
    let released = std::time::Instant::now();
    storage.release_index_check();
    let outbox = storage.outbox();
    let expect = ack_one_append_one(&outbox, appended, "while the check is stuck").await;
    let health = wait_checked(storage);
    let took = released.elapsed();
    assert!(
        took < stuck / 2,
        "the check (or the writer) waited for the stuck read: {took:?}, {health:?}"
    );
    assert_eq!(health.quarantined.len(), 1, "moved aside: {health:?}");
    assert!(health.index_check_error.is_none(), "{health:?}");
    assert!(health.index_rebuild_ms.is_some(), "{health:?}");
    assert_eq!(seqs(&list_all(&outbox)), expect);
    // The stuck read returns late: its pass must touch nothing.
    std::thread::sleep(
        stuck.saturating_sub(released.elapsed()) + std::time::Duration::from_millis(500),
    );
    let after = storage.health();
    assert_eq!(
        (
            after.quarantined.clone(),
            after.index_check_error.clone(),
            after.index_rebuild_ms,
            after.repaired_entries,
            after.index_checking
        ),
        (
            health.quarantined.clone(),
            health.index_check_error.clone(),
            health.index_rebuild_ms,
            health.repaired_entries,
            false
        ),
        "the abandoned pass changed the check's outcome: {after:?}"
    );
    assert_eq!(seqs(&list_all(&outbox)), expect);
    let state = storage.state("links").expect("state");
    assert_eq!(state.get(b"call-0").expect("get"), Some(b"sys-0".to_vec()));
    expect
}

/// Goal: a check stuck inside sled while it holds the apply lock (the
/// page read again under it after the writer applied a group, or a
/// repair's write) stalls neither the writer nor the check: once the pass
/// is abandoned its hold no longer counts, the writer commits, and the
/// check moves that sled aside and rebuilds it; back late, the pass
/// changes nothing. (With a plain mutex the writer and the quarantine
/// waited for the stuck read.) Method: as below, but the check's next
/// batch blocks 8 s while it holds the apply lock (test hook); then one
/// more append, and a reopen finds everything.
#[tokio::test]
async fn a_check_stuck_while_it_holds_the_apply_lock_stalls_nobody() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("box");
    let (storage, appended) = unclean_twenty(&path, bounded()).await;
    let stuck = std::time::Duration::from_secs(8);
    let expect = a_stuck_check_ends_alone(&storage, &appended, stuck, |s, ms| {
        s.inject_check_locked_read_stall(ms)
    })
    .await;
    let more = storage
        .outbox()
        .append(update("after", 1))
        .await
        .expect("append after the stuck read returned");
    let expect: Vec<u64> = expect.into_iter().chain([more]).collect();
    drop(storage);
    reopened_clean(&path, &expect);
}

/// Goal: a check stuck inside sled (sled 0.34.7 spinning on a damaged
/// tree for minutes: the FUSE power-cut test's "open did not finish within
/// 60000 ms") is abandoned within `check_stall_ms`, and that sled is
/// treated as one that panicked: moved aside (kept), rebuilt from the log,
/// reported; the abandoned thread, once it returns late, changes nothing;
/// and close never waits for it. Method: 20 records and a state entry, an
/// unclean open with the check held and a 300 ms bound, the check's next
/// sled read made to block 4 s (test hook), an ack and an append while it
/// is stuck; the check must end, with one quarantine, well before the
/// stuck read returns. After that read returned: nothing changed. Then a
/// second unclean open whose stuck read outlives the storage: close
/// returns at once, and a reopen finds everything.
#[tokio::test]
async fn a_check_stuck_inside_sled_is_abandoned_and_sled_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("box");
    let (storage, appended) = unclean_twenty(&path, bounded()).await;
    let stuck = std::time::Duration::from_secs(4);
    let expect = a_stuck_check_ends_alone(&storage, &appended, stuck, |s, ms| {
        s.inject_check_read_stall(ms)
    })
    .await;
    drop(storage);
    drop(reopened_clean(&path, &expect));

    // Stuck for longer than the storage is open: close does not wait.
    std::fs::remove_file(path.join(edgecc_storage::CLEAN_FILE)).expect("marker");
    let storage = Storage::open(&path, bounded()).expect("open again");
    storage.inject_check_read_stall(60_000);
    storage.release_index_check();
    let health = wait_checked(&storage);
    assert_eq!(health.quarantined.len(), 2, "moved aside: {health:?}");
    assert!(health.index_check_error.is_none(), "{health:?}");
    let closing = std::time::Instant::now();
    drop(storage);
    let closed = closing.elapsed();
    assert!(
        closed < std::time::Duration::from_secs(5),
        "close waited for the stuck check: {closed:?}"
    );
    let storage = reopened_clean(&path, &expect);
    let state = storage.state("links").expect("state");
    assert_eq!(state.get(b"call-0").expect("get"), Some(b"sys-0".to_vec()));
}
