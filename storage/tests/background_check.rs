//! The background check of sled after an unclean stop: open returns before
//! sled is checked, the directory is fully usable while the check runs
//! (reads come from the log), nothing done meanwhile is undone by it, and a
//! sled the check finds unusable is moved aside and rebuilt from the log.

use std::path::Path;

use edgecc_storage::{Storage, StorageConfig};

use crate::util::{config, copy_dir, cut_copy, list_all, seqs, update, wait_checked};

/// Opens `dir` with the background check held until released.
fn open_held(dir: &Path) -> Storage {
    let config = StorageConfig {
        hold_index_check: true,
        ..config()
    };
    Storage::open(dir, config).expect("open storage")
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
    let storage = Storage::open(&path, config()).expect("reopen");
    assert!(
        !storage.health().index_checking,
        "closed clean after the check"
    );
    assert_eq!(seqs(&list_all(&storage.outbox())), appended);
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
    let appended = {
        let storage = Storage::open(&path, config()).expect("open");
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
        appended
    };
    std::fs::remove_file(path.join(edgecc_storage::CLEAN_FILE)).expect("marker");

    let storage = open_held(&path);
    assert!(storage.health().quarantined.is_empty());
    storage.inject_sled_failure("injected: sled refused a group");
    let outbox = storage.outbox();
    let taken = outbox.take_ready(1, 0);
    outbox
        .ack(taken[0].seq)
        .await
        .expect("ack after sled failed");
    let late = outbox
        .append(update("late", 1))
        .await
        .expect("append after sled failed");
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
    let expect: Vec<u64> = appended
        .iter()
        .copied()
        .filter(|&s| s != taken[0].seq)
        .chain([late])
        .collect();
    assert_eq!(seqs(&list_all(&outbox)), expect);
    drop((outbox, state, storage));
    let storage = Storage::open(&path, config()).expect("reopen");
    let health = storage.health();
    assert!(
        !health.index_checking,
        "closed clean after the rebuild: {health:?}"
    );
    assert_eq!(seqs(&list_all(&storage.outbox())), expect);
    let state = storage.state("links").expect("state");
    assert_eq!(state.get(b"call-1").expect("get"), Some(b"sys-1".to_vec()));
}
