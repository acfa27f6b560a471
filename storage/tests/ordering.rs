//! Per-interaction order, one in flight per key, backoff, and fairness.

use edgecc_storage::RecordKind;

use crate::util::{open, rec, update};

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
