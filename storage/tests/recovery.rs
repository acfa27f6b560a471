//! Reopen after close: pending, retry state and sequences survive.

use crate::util::{config, log_ops, open, rewrite_in_log, seqs, update};

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
/// damaged entry makes open rebuild it from the records, losing nothing
/// and keeping retry times. Open reads the log, the truth, even after a
/// clean close: a record only sled holds (nothing logged it) is not
/// delivered. Method: damage the index (in sled and the log), then add a
/// record to sled directly, reopening after each, and compare what is
/// delivered.
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
        let original = entry.clone();
        entry[10] ^= 0x40;
        pending
            .insert((a >> 5).to_be_bytes(), entry.clone())
            .expect("insert");
        db.flush().expect("flush");
        drop(pending);
        drop(db);
        assert!(rewrite_in_log(dir.path(), &original, &entry) >= 1);
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
    // 2. A record only sled holds: copied from b to a new sequence with
    //    sled directly. The log never had it, so the outbox does not.
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
    assert_eq!(got, vec![a, b], "nothing lost, sled's own record left out");
    let next = outbox.append(update("d", 1)).await.expect("append");
    assert!(next > b, "sequence {next} not above {b}");
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

/// Goal: retiring a log segment copies each live key's latest value only.
/// A key put twice in the segment was copied twice, older value first, in
/// frames of their own: a stop between those frames (a SIGKILL while a
/// replay retired a segment) left the older value as the key's latest, so
/// the next open read a stale pending chunk, its newer records left out of
/// the delivery index while their interactions' later records went to the
/// CRM, and the records came back at a later restart, out of order.
/// Method: 1 MiB segments; a state entry put twice, then enough throwaway
/// puts and removals that its segment retires; after a clean close, the
/// entry's ops in the log.
#[tokio::test]
async fn a_retired_segment_copies_each_key_once_with_its_latest_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = edgecc_storage::StorageConfig {
        wal_bytes: edgecc_storage::WAL_BYTES_MIN,
        ..config()
    };
    {
        let storage = edgecc_storage::Storage::open(dir.path(), cfg.clone()).expect("open");
        let state = storage.state("t").expect("state");
        state.put(b"k", &[1u8; 300]).await.expect("put");
        state.put(b"k", &[2u8; 300]).await.expect("put");
        let first = log_first_segment(dir.path());
        let filler = vec![9u8; 64 * 1024];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        // Until the segment holding both puts is retired.
        while log_first_segment(dir.path()) == first {
            assert!(std::time::Instant::now() < deadline, "never retired");
            for n in 0..16u32 {
                state.put(&n.to_be_bytes(), &filler).await.expect("put");
            }
            for n in 0..16u32 {
                state.remove(&n.to_be_bytes()).await.expect("remove");
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    let ops = log_ops(dir.path(), b"state/t", b"k");
    assert_eq!(ops, vec![Some(vec![2u8; 300])], "one copy, the latest");
    let storage = edgecc_storage::Storage::open(dir.path(), cfg).expect("reopen");
    let value = storage.state("t").expect("state").get(b"k").expect("get");
    assert_eq!(value, Some(vec![2u8; 300]));
}

/// The number of the oldest log segment.
fn log_first_segment(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir.join(edgecc_storage::LOG_DIR))
        .expect("log dir")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            u64::from_str_radix(name.strip_suffix(".seg")?, 16).ok()
        })
        .min()
        .unwrap_or(0)
}
