//! Per-interaction order, one in flight per key, backoff, and fairness.

use edgecc_storage::RecordKind;

use crate::util::{open, rec, rewrite_in_log, seqs, update};

/// Goal: records of one key come out in append order, one at a time, while
/// other keys flow. Method: interleave appends of two keys, take repeatedly.
#[tokio::test]
async fn one_in_flight_per_key_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox = open(dir.path()).outbox();
    let mut want_a = Vec::new();
    let mut want_b = Vec::new();
    for n in 0..3 {
        want_a.push(outbox.append(update("a", n)).await.expect("append"));
        want_b.push(outbox.append(update("b", n)).await.expect("append"));
    }
    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let batch = outbox.take_ready(10, 0);
        assert_eq!(batch.len(), 2, "one per key");
        for r in batch {
            if r.interaction_key == "a" {
                got_a.push(r.seq)
            } else {
                got_b.push(r.seq)
            }
            outbox.ack(r.seq).await.expect("ack");
        }
    }
    assert_eq!(got_a, want_a);
    assert_eq!(got_b, want_b);
}

/// Goal: a retried record keeps its key's later records back until its
/// retry time, while other keys flow; attempts and error are recorded.
/// Method: retry the head of key a with a not-before, take before and after.
#[tokio::test]
async fn retry_holds_key_until_not_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox = open(dir.path()).outbox();
    let a1 = outbox.append(update("a", 1)).await.expect("append");
    let a2 = outbox.append(update("a", 2)).await.expect("append");
    let taken = outbox.take_ready(10, 0);
    assert_eq!(taken.len(), 1);
    outbox
        .retry(a1, "503 Service Unavailable", 5_000)
        .await
        .expect("retry");
    let b1 = outbox.append(update("b", 1)).await.expect("append");
    let now = outbox.take_ready(10, 4_999);
    assert_eq!(now.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![b1]);
    let later = outbox.take_ready(10, 5_000);
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].seq, a1);
    assert_eq!(later[0].attempts, 1);
    assert_eq!(
        later[0].last_error.as_deref(),
        Some("503 Service Unavailable")
    );
    outbox.ack(a1).await.expect("ack");
    assert_eq!(outbox.take_ready(10, 5_000)[0].seq, a2);
}

/// Goal: with a big backlog, new records are not stuck behind it.
/// Method: 50 old keys, then 5 new ones; take two at a time and check each
/// pair holds the oldest and the newest ready key.
#[tokio::test]
async fn newest_keys_interleave_with_backlog() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox = open(dir.path()).outbox();
    for k in 0..50 {
        outbox
            .append(rec(
                &format!("old{k}"),
                RecordKind::InteractionCreate,
                &format!("o{k}"),
                1,
            ))
            .await
            .expect("append");
    }
    for k in 0..5 {
        outbox
            .append(rec(
                &format!("new{k}"),
                RecordKind::InteractionCreate,
                &format!("n{k}"),
                2,
            ))
            .await
            .expect("append");
    }
    let mut new_seen = 0;
    for _ in 0..5 {
        let pair = outbox.take_ready(2, 10);
        assert_eq!(pair.len(), 2);
        assert!(pair.iter().any(|r| r.interaction_key.starts_with("old")));
        new_seen += pair
            .iter()
            .filter(|r| r.interaction_key.starts_with("new"))
            .count();
        for r in pair {
            outbox.ack(r.seq).await.expect("ack");
        }
    }
    assert_eq!(
        new_seen, 5,
        "all new keys came out within the first ten records"
    );
}

/// Goal: a pending record that a trusted sled lost, while the log (the
/// truth) holds it, is delivered from the log and ahead of its
/// interaction's next record, and sled is not trusted again until the next
/// open checks it. Before, `take_ready` forgot it ("missing from the
/// outbox"): the next record of the interaction went to the CRM first, and
/// the forgotten one, still pending in the log, came back after the next
/// restart, out of order (the CRM replay across two SIGKILLs once saw an
/// interaction's record arrive after a newer one). Method: a clean close,
/// the first record removed from sled's outbox tree directly, a reopen
/// (sled trusted as it is), takes and acks.
#[tokio::test]
async fn a_record_sled_lost_comes_from_the_log_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a1, a2) = {
        let outbox = open(dir.path()).outbox();
        let a1 = outbox.append(update("a", 1)).await.expect("append");
        let a2 = outbox.append(update("a", 2)).await.expect("append");
        (a1, a2)
    };
    {
        let db = sled::Config::new()
            .path(dir.path().join(edgecc_storage::SLED_DIR))
            .open()
            .expect("sled");
        let tree = db.open_tree("outbox").expect("tree");
        tree.remove(a1.to_be_bytes()).expect("remove");
        db.flush().expect("flush");
    }
    let storage = open(dir.path());
    assert!(storage.health().index_check_error.is_none(), "sled trusted");
    let outbox = storage.outbox();
    assert_eq!(
        seqs(&outbox.take_ready(10, 0)),
        vec![a1],
        "the older record first, read from the log"
    );
    assert!(
        storage.health().index_check_error.is_some(),
        "a sled that lost a record is not trusted any more"
    );
    assert!(outbox.take_ready(10, 0).is_empty(), "one in flight per key");
    outbox.ack(a1).await.expect("ack");
    assert_eq!(seqs(&outbox.take_ready(10, 0)), vec![a2]);
    outbox.ack(a2).await.expect("ack");
    assert_eq!(outbox.stats(0).expect("stats").depth, 0);
}

/// Goal: a corrupt record (its value in the log does not decode) holds its
/// interaction's later records until its move to the dead letters is
/// durable, and only then lets them go: a stop before that finds it
/// pending again, ahead of them, so they never reach the CRM before it.
/// Before, `take_ready` forgot it at once and handed out the next record
/// in the same call. Method: the first of two records damaged in sled and
/// in the log after a clean close; the log's syncs stalled for 1.5 s while
/// the move waits for its sync; takes during and after.
#[tokio::test]
async fn a_corrupt_record_holds_its_key_until_quarantined() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a1, a2) = {
        let outbox = open(dir.path()).outbox();
        let a1 = outbox.append(update("a", 1)).await.expect("append");
        let a2 = outbox.append(update("a", 2)).await.expect("append");
        (a1, a2)
    };
    {
        let db = sled::Config::new()
            .path(dir.path().join(edgecc_storage::SLED_DIR))
            .open()
            .expect("sled");
        let tree = db.open_tree("outbox").expect("tree");
        let original = tree
            .get(a1.to_be_bytes())
            .expect("get")
            .expect("a1")
            .to_vec();
        let mut damaged = original.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 0xff;
        tree.insert(a1.to_be_bytes(), damaged.clone())
            .expect("insert");
        db.flush().expect("flush");
        drop(tree);
        drop(db);
        assert_eq!(rewrite_in_log(dir.path(), &original, &damaged), 1);
    }
    let storage = open(dir.path());
    let outbox = storage.outbox();
    storage.inject_sync_stall(1_500, 1);
    assert!(
        outbox.take_ready(10, 0).is_empty(),
        "a1 is corrupt and a2 waits behind it"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        outbox.take_ready(10, 0).is_empty(),
        "a2 waits while a1's move to the dead letters is not durable"
    );
    assert!(outbox.dead_letters(0, 10).expect("dead").is_empty());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while outbox.dead_letters(0, 10).expect("dead").is_empty() {
        assert!(std::time::Instant::now() < deadline, "a1 never quarantined");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let dead = outbox.dead_letters(0, 10).expect("dead");
    assert_eq!(dead.iter().map(|d| d.seq).collect::<Vec<_>>(), vec![a1]);
    assert_eq!(seqs(&outbox.take_ready(10, 0)), vec![a2]);
}
