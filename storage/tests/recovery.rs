//! Reopen after close: pending, retry state and sequences survive.

use crate::util::{open, seqs, update};

/// Goal: after close and reopen, pending records, in-flight records (now
/// pending again) and retry state are all back, and sequences never repeat.
/// Method: append, take, retry one, drop, reopen, inspect, drain, reopen,
/// append again.
#[tokio::test]
async fn reopen_restores_pending_and_retry_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = {
        let outbox = open(dir.path()).outbox();
        let a = outbox.append(update("a", 1)).await.expect("append");
        let b = outbox.append(update("b", 1)).await.expect("append");
        let taken = outbox.take_ready(10, 0);
        assert_eq!(taken.len(), 2);
        outbox.retry(a, "timeout", 7_000).await.expect("retry");
        (a, b)
    };
    let last = {
        let outbox = open(dir.path()).outbox();
        assert_eq!(
            seqs(&outbox.take_ready(10, 0)),
            vec![b],
            "b was in flight: pending again"
        );
        let a_again = outbox.take_ready(10, 7_000);
        assert_eq!(seqs(&a_again), vec![a]);
        assert_eq!(a_again[0].attempts, 1);
        assert_eq!(a_again[0].next_attempt_at_ms, 7_000);
        outbox.ack(a).await.expect("ack");
        outbox.ack(b).await.expect("ack");
        b
    };
    let outbox = open(dir.path()).outbox();
    assert_eq!(outbox.stats(0).expect("stats").depth, 0);
    let next = outbox.append(update("c", 1)).await.expect("append");
    assert!(next > last, "sequence {next} reused after {last}");
}
