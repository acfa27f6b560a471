//! Known errors: a locked directory, limits, corrupt records, a full disk
//! (in the log, and in sled behind it).

use std::io::{BufRead, BufReader, Write};

use edgecc_storage::{
    AppendFailure, NewRecord, RecordKind, Storage, StorageError, BATCH_RECORDS_MAX, BODY_BYTES_MAX,
};

use crate::util::{
    child_command, config, drain, list_all, open, rec, rewrite_in_log, seqs, update,
};

/// Goal: a second opener of a held directory gets the distinct `Locked`
/// error, and the directory opens again once released. Method: open twice
/// in one process (our flock conflicts across open file descriptions).
#[tokio::test]
async fn locked_directory_is_a_distinct_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = open(dir.path());
    match Storage::open(dir.path(), config()) {
        Err(StorageError::Locked { path }) => assert_eq!(path, dir.path()),
        other => panic!("expected Locked, got {other:?}"),
    }
    drop(storage);
    let _again = open(dir.path());
}

/// Goal: over-limit appends are refused with a clear error that hands every
/// record back. Method: append a too-large body, a too-large batch, a long id.
#[tokio::test]
async fn limits_refuse_and_hand_records_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox = open(dir.path()).outbox();
    let mut big = update("a", 1);
    big.body = vec![b'x'; BODY_BYTES_MAX + 1];
    let err = outbox.append(big.clone()).await.expect_err("too large");
    assert!(
        matches!(err.failure, AppendFailure::BodyTooLarge { len, .. } if len == BODY_BYTES_MAX + 1)
    );
    assert_eq!(err.records, vec![big]);
    assert!(err.to_string().contains("more than"));
    let batch: Vec<NewRecord> = (0..=BATCH_RECORDS_MAX as u32)
        .map(|n| update("a", n))
        .collect();
    let err = outbox
        .append_batch(batch.clone())
        .await
        .expect_err("batch too large");
    assert!(matches!(err.failure, AppendFailure::BatchTooLarge { .. }));
    assert_eq!(err.records, batch);
    let long = rec(&"k".repeat(300), RecordKind::InteractionCreate, "c", 0);
    let err = outbox.append(long).await.expect_err("id too long");
    assert!(matches!(
        err.failure,
        AppendFailure::IdTooLong {
            field: "interaction_key",
            ..
        }
    ));
    let mut at_limit = update("a", 1);
    at_limit.body = vec![b'x'; BODY_BYTES_MAX];
    outbox
        .append(at_limit)
        .await
        .expect("a body at the limit is accepted");
}

/// Goal: corrupt records (bad checksum, unknown version, undecodable
/// payload) never crash the open and never block the rest: each moves to
/// the dead letters with its reason and raw bytes. Method: write bad values
/// of the same length over the records in sled and in the log (the truth:
/// a value damaged in sled only is read from the log, see
/// `ordering::a_record_sled_lost_comes_from_the_log_in_order`), reopen,
/// drain.
#[tokio::test]
async fn corrupt_records_go_to_dead_letters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (good, bad) = {
        let outbox = open(dir.path()).outbox();
        let mut seqs = Vec::new();
        for n in 0..5 {
            seqs.push(outbox.append(update("k", n)).await.expect("append"));
        }
        (vec![seqs[0], seqs[4]], vec![seqs[1], seqs[2], seqs[3]])
    };
    let mut damage = Vec::new();
    {
        let db = sled::Config::new()
            .path(dir.path().join(edgecc_storage::SLED_DIR))
            .open()
            .expect("sled");
        let tree = db.open_tree("outbox").expect("tree");
        let stored = |seq: u64| {
            tree.get(seq.to_be_bytes())
                .expect("get")
                .expect("present")
                .to_vec()
        };
        let original = stored(bad[0]);
        let mut flipped = original.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        damage.push((bad[0], original, flipped));
        let original = stored(bad[1]);
        let mut version = original.clone();
        version[0] = 99;
        damage.push((bad[1], original, version));
        // A payload that names a string longer than the value (checksum
        // right): it does not decode.
        let original = stored(bad[2]);
        let mut garbage = vec![0u8; original.len()];
        garbage[0] = 1;
        garbage[13..21].copy_from_slice(&1_000_000u64.to_le_bytes());
        let crc = crc32fast::hash(&garbage[5..]).to_le_bytes();
        garbage[1..5].copy_from_slice(&crc);
        damage.push((bad[2], original, garbage));
        for (seq, _, damaged) in &damage {
            tree.insert(seq.to_be_bytes(), damaged.clone())
                .expect("insert");
        }
        db.flush().expect("flush");
    }
    for (_, original, damaged) in &damage {
        assert_eq!(rewrite_in_log(dir.path(), original, damaged), 1);
    }
    let outbox = open(dir.path()).outbox();
    // Each corrupt record holds the key until its move to the dead letters
    // is durable: drain again until the last good one came.
    let mut delivered = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while delivered.len() < good.len() {
        assert!(
            std::time::Instant::now() < deadline,
            "stuck at {delivered:?}"
        );
        delivered.extend(seqs(&drain(&outbox, 0).await));
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(delivered, good, "the rest delivered, in order");
    let dead = outbox.dead_letters(0, 10).expect("dead letters");
    assert_eq!(dead.iter().map(|d| d.seq).collect::<Vec<_>>(), bad);
    assert!(dead[0].reason.contains("checksum"), "{}", dead[0].reason);
    assert!(
        dead[1].reason.contains("unknown schema version 99"),
        "{}",
        dead[1].reason
    );
    assert!(dead[2].reason.contains("payload"), "{}", dead[2].reason);
    assert!(dead.iter().all(|d| d.record.is_none() && !d.raw.is_empty()));
    assert!(matches!(
        outbox.requeue(bad[0]).await,
        Err(StorageError::Undecodable { .. })
    ));
    assert_eq!(outbox.requeue_all().await.expect("requeue all"), 0);
}

const FULL_CHILD_ENV: &str = "EDGECC_STORAGE_DISK_FULL_CHILD";
const SLED_FULL_CHILD_ENV: &str = "EDGECC_STORAGE_SLED_FULL_CHILD";

/// Appends under a file-size limit (`limit` of sled's log size and the
/// largest log segment's), printing `ACK seq` for each durable append, then
/// `FULL handed_back error` for the first refused one, `AFTER ok` or
/// `AFTER err error` for one more try and `PROBE ok|err` for a state put (the write the
/// daemon's health check makes before each watchdog ping).
fn append_until_full(
    dir: &std::path::Path,
    config: edgecc_storage::StorageConfig,
    limit: impl FnOnce(u64, u64) -> u64,
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let storage = Storage::open(dir, config).expect("open");
        let outbox = storage.outbox();
        let probe = storage.state("watchdog").expect("state tree");
        let mut out = std::io::stdout().lock();
        for n in 0..20 {
            let seq = outbox.append(update("before", n)).await.expect("append");
            writeln!(out, "ACK {seq}").expect("stdout");
        }
        let len = |path: &std::path::Path| std::fs::metadata(path).expect("stat").len();
        let segment = std::fs::read_dir(dir.join(edgecc_storage::LOG_DIR))
            .expect("log dir")
            .map(|e| len(&e.expect("entry").path()))
            .max()
            .unwrap_or(0);
        crate::util::limit_file_size(limit(
            len(&dir.join(edgecc_storage::SLED_DIR).join("db")),
            segment,
        ));
        for n in 0..100_000u32 {
            let mut r = update("during", n);
            r.body = vec![b'y'; 2_000];
            match outbox.append(r.clone()).await {
                Ok(seq) => writeln!(out, "ACK {seq}").expect("stdout"),
                Err(e) => {
                    let handed_back = e.records == vec![r];
                    writeln!(out, "FULL {handed_back} {e}").expect("stdout");
                    let after = outbox.append(update("after", 0)).await;
                    match after {
                        Ok(_) => writeln!(out, "AFTER ok"),
                        Err(e) => writeln!(out, "AFTER err {e}"),
                    }
                    .expect("stdout");
                    // The daemon's health check makes this same write.
                    let put = probe.put(b"probe", &n.to_be_bytes()).await;
                    writeln!(out, "PROBE {}", if put.is_ok() { "ok" } else { "err" })
                        .expect("stdout");
                    break;
                }
            }
        }
        out.flush().expect("stdout");
    });
}

/// Child side of `disk_full_hands_records_back` (a no-op in a normal run):
/// the limit falls inside the log's segment, so a frame write fails.
#[test]
fn disk_full_child() {
    let Some(dir) = std::env::var_os(FULL_CHILD_ENV) else {
        return;
    };
    // sled's log is far smaller than a 16 MiB log segment: frames fail
    // (EFBIG) once they reach the limit.
    append_until_full(std::path::Path::new(&dir), config(), |db, _| db + 64 * 1024);
}

/// Child side of `sled_full_hands_records_back`: 1 MiB log segments wholly
/// under the limit, so it is sled's own writes that fail.
#[test]
fn sled_full_child() {
    let Some(dir) = std::env::var_os(SLED_FULL_CHILD_ENV) else {
        return;
    };
    let config = edgecc_storage::StorageConfig {
        wal_bytes: edgecc_storage::WAL_BYTES_MIN,
        ..config()
    };
    append_until_full(std::path::Path::new(&dir), config, |db, log| {
        db.max(log) + 64 * 1024
    });
}

/// Runs a full-disk child and checks its report: at least 20 acks, a clear
/// error that handed the record back, and every ack still there after a
/// reopen without the limit. Returns the child's FULL, AFTER and PROBE
/// lines.
fn full_disk_run(test: &str, env: &str) -> (String, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = child_command(test, env, dir.path())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let lines: Vec<String> = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .collect();
    let status = child.wait().expect("wait");
    let acked: Vec<u64> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("ACK "))
        .map(|s| s.parse().expect("seq"))
        .collect();
    let full = lines.iter().find(|l| l.starts_with("FULL "));
    assert!(acked.len() >= 20, "acks before the limit: {lines:?}");
    let full = full.unwrap_or_else(|| panic!("no FULL line (status {status}): {lines:?}"));
    assert!(full.starts_with("FULL true"), "{full}");
    let line = |prefix: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(prefix))
            .cloned()
            .unwrap_or_default()
    };
    let (after, probe) = (line("AFTER "), line("PROBE "));
    let outbox = open(dir.path()).outbox();
    let present = seqs(&list_all(&outbox));
    for seq in &acked {
        assert!(present.contains(seq), "acknowledged record {seq} lost");
    }
    (full.clone(), after, probe)
}

/// Goal: a full disk returns a clear error that hands the records back, and
/// nothing acknowledged before is lost. Method: a child process appends
/// under RLIMIT_FSIZE (writes fail with EFBIG, like ENOSPC) until an append
/// fails; the parent reopens without the limit and checks every ack.
#[test]
fn disk_full_hands_records_back() {
    let (full, _, _) = full_disk_run("known_errors::disk_full_child", FULL_CHILD_ENV);
    assert!(full.contains("log: "), "{full}");
}

/// Goal: the same when the log (preallocated segments) has room and it
/// is sled that cannot write: the error names sled, and acknowledged
/// records survive (a logged group sled refused is in the log, and the
/// reopen repairs sled from it). Storage then refuses every change, the state put of
/// the daemon's health check included, so no WATCHDOG=1 goes out and
/// systemd restarts edgecc. Method: as above, with 1 MiB log segments
/// under the limit.
#[test]
fn sled_full_hands_records_back() {
    let (full, after, probe) = full_disk_run("known_errors::sled_full_child", SLED_FULL_CHILD_ENV);
    assert!(!full.contains(" log: "), "the log itself failed: {full}");
    // sled failed: storage must be reopened (sled no longer matches the
    // log, and the reopen repairs it).
    assert!(
        after.starts_with("AFTER err") && after.contains("must be reopened"),
        "{full} / {after}"
    );
    assert_eq!(probe, "PROBE err", "{full}");
}
