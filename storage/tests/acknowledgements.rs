//! Appends are durable and sequenced; acks are durable and final.

use edgecc_storage::{RecordKind, StorageError};

use crate::util::{drain, open, rec, seqs, update};

/// Goal: append returns increasing sequences and take/ack drains them.
/// Method: append three records, take them, ack them, check nothing is left.
#[tokio::test]
async fn append_take_ack() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = open(dir.path());
    let outbox = storage.outbox();
    let a = outbox.append(update("a", 1)).await.expect("append");
    let b = outbox.append(update("b", 1)).await.expect("append");
    let c = outbox.append(update("c", 1)).await.expect("append");
    assert!(a < b && b < c);
    let delivered = drain(&outbox, 0).await;
    let mut got = seqs(&delivered);
    got.sort_unstable();
    assert_eq!(got, vec![a, b, c]);
    assert!(outbox.take_ready(10, 0).is_empty());
    assert_eq!(outbox.stats(0).expect("stats").depth, 0);
}

/// Goal: a batch gets consecutive sequences and is stored whole.
/// Method: append interaction.create + phone_log.create as one batch, list.
#[tokio::test]
async fn batch_gets_consecutive_sequences() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox = open(dir.path()).outbox();
    let seqs = outbox
        .append_batch(vec![
            rec("call-1", RecordKind::InteractionCreate, "call-1/create", 5),
            rec("call-1", RecordKind::PhoneLogCreate, "call-1/phone_log", 5),
        ])
        .await
        .expect("append batch");
    assert_eq!(seqs.len(), 2);
    assert_eq!(seqs[1], seqs[0] + 1);
    let listed = outbox.list(0, 10).expect("list");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].kind, RecordKind::InteractionCreate);
    assert_eq!(listed[1].correlation_id, "call-1/phone_log");
    assert_eq!(listed[1].body, br#"{"corr":"call-1/phone_log"}"#.to_vec());
}

/// Goal: an acked record is never delivered again, even after a reopen, and
/// a second ack is refused. Method: ack, drop, reopen, take.
#[tokio::test]
async fn ack_is_durable_and_final() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (first, second) = {
        let outbox = open(dir.path()).outbox();
        let first = outbox.append(update("a", 1)).await.expect("append");
        let second = outbox.append(update("b", 1)).await.expect("append");
        let taken = outbox.take_ready(10, 0);
        assert_eq!(taken.len(), 2);
        outbox.ack(first).await.expect("ack");
        assert!(matches!(
            outbox.ack(first).await,
            Err(StorageError::NotInFlight { .. })
        ));
        (first, second)
    };
    let outbox = open(dir.path()).outbox();
    let again = outbox.take_ready(10, 0);
    assert_eq!(seqs(&again), vec![second]);
    assert_ne!(first, second);
}

/// Goal: many concurrent appenders share group commits and each gets a
/// distinct, durable sequence. Method: 32 tasks x 20 appends, then reopen
/// and count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_all_land() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut all = Vec::new();
    {
        let outbox = open(dir.path()).outbox();
        let mut tasks = Vec::new();
        for t in 0..32 {
            let outbox = outbox.clone();
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                for n in 0..20 {
                    got.push(
                        outbox
                            .append(update(&format!("k{t}"), n))
                            .await
                            .expect("append"),
                    );
                }
                got
            }));
        }
        for t in tasks {
            all.extend(t.await.expect("task"));
        }
    }
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 640);
    let outbox = open(dir.path()).outbox();
    assert_eq!(seqs(&outbox.list(0, 1000).expect("list")), all);
}
