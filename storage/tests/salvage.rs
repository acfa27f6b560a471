//! Salvage: records read back from a quarantined sled directory into the
//! live outbox, once each.

use edgecc_storage::{salvage, SLED_DIR};

use crate::util::{list_all, open, update};

/// Goal: `salvage` appends every readable record of a quarantined sled
/// directory that the live outbox does not hold (by correlation id and
/// kind), and skips those it holds; a directory sled cannot open is
/// scanned raw. Method: build a directory with 20 records (one dead
/// letter), copy its sled directory aside as "quarantined"; in a second,
/// live storage append 5 of the same records; salvage; then salvage again
/// (nothing more), and salvage a copy sled refuses to open (raw scan).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salvage_appends_what_the_live_outbox_lacks_once() {
    let root = tempfile::tempdir().expect("tempdir");
    let old = root.path().join("old");
    {
        let storage = open(&old);
        let outbox = storage.outbox();
        for n in 0..20 {
            outbox.append(update("k", n)).await.expect("append");
        }
        let taken = outbox.take_ready(1, 0);
        outbox.dead_letter(taken[0].seq, "no").await.expect("dead");
    }
    let quarantined = root.path().join("db.quarantined-1");
    crate::util::copy_dir(&old.join(SLED_DIR), &quarantined);
    let broken = root.path().join("db.quarantined-2");
    crate::util::copy_dir(&old.join(SLED_DIR), &broken);
    // sled cannot read its config (a directory where the file was): it
    // refuses the directory, whose log is intact.
    std::fs::remove_file(broken.join("conf")).expect("remove");
    std::fs::create_dir(broken.join("conf")).expect("mkdir");

    let storage = open(&root.path().join("live"));
    let outbox = storage.outbox();
    for n in 0..5 {
        outbox.append(update("k", n)).await.expect("append");
    }
    let summary = salvage(&quarantined, &storage).await.expect("salvage");
    assert!(summary.opened);
    assert_eq!(
        (summary.found, summary.duplicates, summary.appended),
        (20, 5, 15),
        "{summary:?}"
    );
    let corrs: Vec<String> = list_all(&outbox)
        .into_iter()
        .map(|r| r.correlation_id)
        .collect();
    let expected: Vec<String> = (0..20).map(|n| format!("k/update/{n}")).collect();
    assert_eq!(corrs, expected, "each once, in their old order");
    let again = salvage(&quarantined, &storage)
        .await
        .expect("salvage again");
    assert_eq!((again.found, again.appended), (20, 0), "{again:?}");
    let raw = salvage(&broken, &storage).await.expect("salvage raw");
    assert!(!raw.opened, "{raw:?}");
    assert!(raw.found >= 20, "{raw:?}");
    assert_eq!(raw.appended, 0, "{raw:?}");
    assert!(
        salvage(storage.dir(), &storage).await.is_err(),
        "the live directory is refused"
    );
}
