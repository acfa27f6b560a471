//! Dead letters: listing, holding their key, re-queue in place, expiry.

use edgecc_storage::{RecordKind, StorageError};

use crate::util::{drain, open, rec, seqs, update};

/// Goal: a dead create holds its interaction's later updates (even ones
/// appended later) while other keys flow, and a re-queue puts it back ahead
/// of them; the per-interaction counts follow. Method: dead-letter the head,
/// append more, drain, requeue, drain.
#[tokio::test]
async fn dead_create_holds_updates_until_requeued() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox = open(dir.path()).outbox();
    let create = outbox
        .append(rec("call", RecordKind::InteractionCreate, "call/create", 1))
        .await
        .expect("append");
    let u1 = outbox.append(update("call", 1)).await.expect("append");
    let taken = outbox.take_ready(10, 0);
    assert_eq!(seqs(&taken), vec![create]);
    outbox
        .dead_letter(create, "400 Bad Request: field x")
        .await
        .expect("dead letter");
    let u2 = outbox.append(update("call", 2)).await.expect("append");
    let other = outbox.append(update("other", 1)).await.expect("append");
    let counts = |key: &str| {
        let i = outbox.interaction(key);
        (i.pending, i.dead)
    };
    assert_eq!(counts("call"), (2, 1));
    assert_eq!(counts("other"), (1, 0));
    assert_eq!(counts("never-seen"), (0, 0));
    assert_eq!(seqs(&drain(&outbox, 0).await), vec![other]);
    assert_eq!(counts("other"), (0, 0));
    let stats = outbox.stats(0).expect("stats");
    assert_eq!((stats.depth, stats.held, stats.dead_letters), (2, 2, 1));
    let dead = outbox.dead_letters(0, 10).expect("list");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].seq, create);
    assert_eq!(dead[0].reason, "400 Bad Request: field x");
    assert_eq!(
        dead[0].record.as_ref().map(|r| r.kind),
        Some(RecordKind::InteractionCreate)
    );
    outbox.requeue(create).await.expect("requeue");
    assert!(matches!(
        outbox.requeue(create).await,
        Err(StorageError::NotDeadLetter { .. })
    ));
    assert_eq!(counts("call"), (3, 0));
    assert_eq!(seqs(&drain(&outbox, 0).await), vec![create, u1, u2]);
    assert_eq!(outbox.stats(0).expect("stats").dead_letters, 0);
    assert_eq!(counts("call"), (0, 0));
}

/// Goal: dead letters and their holding survive a reopen; requeue_all
/// brings all of them back. Method: dead-letter two keys, reopen, check
/// held, requeue_all, drain in order.
#[tokio::test]
async fn dead_letters_survive_reopen_and_requeue_all() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a1, a2, b1) = {
        let outbox = open(dir.path()).outbox();
        let a1 = outbox.append(update("a", 1)).await.expect("append");
        let a2 = outbox.append(update("a", 2)).await.expect("append");
        let b1 = outbox.append(update("b", 1)).await.expect("append");
        for r in outbox.take_ready(10, 0) {
            outbox
                .dead_letter(r.seq, "rejected")
                .await
                .expect("dead letter");
        }
        (a1, a2, b1)
    };
    let outbox = open(dir.path()).outbox();
    assert!(outbox.take_ready(10, 0).is_empty(), "a2 is held behind a1");
    let stats = outbox.stats(0).expect("stats");
    assert_eq!((stats.depth, stats.held, stats.dead_letters), (1, 1, 2));
    assert_eq!(outbox.requeue_all().await.expect("requeue all"), 2);
    let order = seqs(&drain(&outbox, 0).await);
    let pos = |s| order.iter().position(|&x| x == s).expect("delivered");
    assert_eq!(order.len(), 3);
    assert!(pos(a1) < pos(a2));
    assert!(order.contains(&b1));
}

/// Goal: records older than a lifetime are parked (not dropped) and hold
/// their key; in-flight ones are left alone. Method: append old and young
/// records, take one old one, park, check counts and dead letters.
#[tokio::test]
async fn park_expired_moves_old_records_to_dead_letters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox = open(dir.path()).outbox();
    let busy = outbox
        .append(rec("busy", RecordKind::InteractionCreate, "busy", 100))
        .await
        .expect("append");
    let old = outbox
        .append(rec("old", RecordKind::InteractionCreate, "old", 100))
        .await
        .expect("append");
    let taken = outbox.take_ready(1, 0);
    assert_eq!(seqs(&taken), vec![busy]);
    let young = outbox
        .append(rec("old", RecordKind::InteractionUpdate, "young", 9_000))
        .await
        .expect("append");
    assert_eq!(outbox.park_expired(10_000, 5_000).await.expect("park"), 1);
    let dead = outbox.dead_letters(0, 10).expect("dead letters");
    assert_eq!(dead.iter().map(|d| d.seq).collect::<Vec<_>>(), vec![old]);
    assert!(dead[0].reason.starts_with("expired"));
    assert!(
        outbox.take_ready(10, 10_000).is_empty(),
        "young is held behind old"
    );
    outbox.ack(busy).await.expect("ack in-flight record");
    outbox.requeue(old).await.expect("requeue");
    assert_eq!(seqs(&drain(&outbox, 10_000).await), vec![old, young]);
}
