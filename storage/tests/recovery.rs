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

/// Goal: open trusts the small `pending` index only when it is whole; a
/// damaged entry, or a record it does not know (written by an older
/// build), makes open rebuild it from the records, losing nothing and
/// keeping retry times. Method: damage the index with sled directly in two
/// ways, reopening after each, and compare what is delivered.
#[tokio::test]
async fn pending_index_rebuilt_when_damaged_or_stale() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = {
        let outbox = open(dir.path()).outbox();
        let a = outbox.append(update("a", 1)).await.expect("append");
        let b = outbox.append(update("b", 1)).await.expect("append");
        assert_eq!(outbox.take_ready(10, 0).len(), 2);
        outbox.retry(a, "timeout", 7_000).await.expect("retry");
        outbox.retry(b, "timeout", 0).await.expect("retry");
        (a, b)
    };
    // 1. A flipped byte in the pending chunk of a (32 sequences a chunk).
    {
        let db = sled::Config::new()
            .path(dir.path().join(edgecc_storage::SLED_DIR))
            .open()
            .expect("sled");
        let pending = db.open_tree("pending").expect("tree");
        let mut entry = pending
            .get((a >> 5).to_be_bytes())
            .expect("get")
            .expect("a has a pending chunk")
            .to_vec();
        entry[10] ^= 0x40;
        pending
            .insert((a >> 5).to_be_bytes(), entry)
            .expect("insert");
        db.flush().expect("flush");
    }
    {
        let outbox = open(dir.path()).outbox();
        assert_eq!(seqs(&outbox.take_ready(10, 0)), vec![b]);
        assert_eq!(
            seqs(&outbox.take_ready(10, 7_000)),
            vec![a],
            "retry time kept"
        );
    }
    // 2. A record the pending index does not know (an older build appended
    //    it): copied from b to a new sequence with sled directly.
    let c = b + 100;
    {
        let db = sled::Config::new()
            .path(dir.path().join(edgecc_storage::SLED_DIR))
            .open()
            .expect("sled");
        let outbox = db.open_tree("outbox").expect("tree");
        let raw = outbox.get(b.to_be_bytes()).expect("get").expect("b");
        let mut record = edgecc_storage::record::decode_record(b, &raw).expect("decode");
        record.seq = c;
        record.interaction_key = "c".into();
        outbox
            .insert(c.to_be_bytes(), reencode(&record))
            .expect("insert");
        db.flush().expect("flush");
    }
    let outbox = open(dir.path()).outbox();
    let mut got = seqs(&outbox.take_ready(10, 7_000));
    got.sort_unstable();
    assert_eq!(
        got,
        vec![a, b, c],
        "nothing lost, the unknown record included"
    );
    let next = outbox.append(update("d", 1)).await.expect("append");
    assert!(next > c, "sequence {next} not above {c}");
}

/// Encodes a record as version 1 stores it (frame + bincode fixint LE), for
/// writing a record with sled directly.
fn reencode(r: &edgecc_storage::Record) -> Vec<u8> {
    let mut payload = Vec::new();
    let push_str = |p: &mut Vec<u8>, s: &str| {
        p.extend_from_slice(&(s.len() as u64).to_le_bytes());
        p.extend_from_slice(s.as_bytes());
    };
    payload.extend_from_slice(&r.seq.to_le_bytes());
    push_str(&mut payload, &r.correlation_id);
    push_str(&mut payload, &r.interaction_key);
    payload.extend_from_slice(&(r.kind as u32).to_le_bytes());
    payload.extend_from_slice(&(r.body.len() as u64).to_le_bytes());
    payload.extend_from_slice(&r.body);
    payload.extend_from_slice(&r.created_at_ms.to_le_bytes());
    payload.extend_from_slice(&r.attempts.to_le_bytes());
    payload.extend_from_slice(&r.next_attempt_at_ms.to_le_bytes());
    match &r.last_error {
        None => payload.push(0),
        Some(e) => {
            payload.push(1);
            push_str(&mut payload, e);
        }
    }
    let mut out = vec![1u8];
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}
