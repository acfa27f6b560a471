//! Compatibility: an outbox written by this version stays readable.
//!
//! `fixtures/outbox-v1.bin` holds raw stored values (outbox and dead-letter
//! trees) written by schema version 1. Each entry is:
//!
//! ```text
//! tree: u8 ('o' outbox, 'd' dead) | seq: u64 BE | len: u32 BE | value
//! ```
//!
//! Regenerate only when adding a *new* fixture version, never to make this
//! test pass: `EDGECC_WRITE_FIXTURE=1 cargo test -p edgecc-storage fixture`.

use std::path::PathBuf;

use edgecc_storage::RecordKind;

use crate::util::{open, rec, seqs, update};

fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/outbox-v1.bin")
}

/// Writes the fixture from a live outbox (create, phone log, retried
/// update, dead letter).
async fn write_fixture() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let outbox = open(dir.path()).outbox();
        outbox
            .append_batch(vec![
                rec(
                    "call-1",
                    RecordKind::InteractionCreate,
                    "call-1/create",
                    1_700_000_000_000,
                ),
                rec(
                    "call-1",
                    RecordKind::PhoneLogCreate,
                    "call-1/phone_log",
                    1_700_000_000_000,
                ),
            ])
            .await
            .expect("append");
        outbox
            .append(rec(
                "call-2",
                RecordKind::WorkItemCreate,
                "call-2/work_item",
                1_700_000_000_500,
            ))
            .await
            .expect("append");
        outbox.append(update("call-3", 1)).await.expect("append");
        for r in outbox.take_ready(10, 0) {
            match r.kind {
                RecordKind::WorkItemCreate => outbox
                    .retry(r.seq, "503", 1_700_000_060_000)
                    .await
                    .expect("retry"),
                RecordKind::InteractionUpdate => outbox
                    .dead_letter(r.seq, "400 invalid")
                    .await
                    .expect("dead"),
                _ => outbox.retry(r.seq, "", 0).await.expect("retry"),
            }
        }
    }
    let db = sled::Config::new()
        .path(dir.path().join(edgecc_storage::SLED_DIR))
        .open()
        .expect("sled");
    let mut out = Vec::new();
    for (tag, name) in [(b'o', "outbox"), (b'd', "dead")] {
        for item in db.open_tree(name).expect("tree").iter() {
            let (k, v) = item.expect("item");
            out.push(tag);
            out.extend_from_slice(&k);
            out.extend_from_slice(&(v.len() as u32).to_be_bytes());
            out.extend_from_slice(&v);
        }
    }
    std::fs::write(fixture_path(), out).expect("write fixture");
}

/// Goal: a later version cannot silently stop reading an old outbox.
/// Method: load the committed V1 fixture into a fresh sled directory, open
/// it with this version, and check every record, retry state and dead
/// letter field by field.
#[tokio::test]
async fn v1_fixture_still_reads() {
    if std::env::var_os("EDGECC_WRITE_FIXTURE").is_some() {
        write_fixture().await;
    }
    let bytes = std::fs::read(fixture_path()).expect("fixture is committed");
    let dir = tempfile::tempdir().expect("tempdir");
    {
        // sled's files where the version that wrote the fixture kept them
        // (the directory itself): open moves them and builds the log.
        let db = sled::Config::new().path(dir.path()).open().expect("sled");
        let mut rest = bytes.as_slice();
        while !rest.is_empty() {
            let (tag, after) = rest.split_at(1);
            let (key, after) = after.split_at(8);
            let (len, after) = after.split_at(4);
            let len = u32::from_be_bytes(len.try_into().expect("len")) as usize;
            let (value, after) = after.split_at(len);
            let tree = if tag[0] == b'o' { "outbox" } else { "dead" };
            db.open_tree(tree)
                .expect("tree")
                .insert(key, value)
                .expect("insert");
            rest = after;
        }
        db.flush().expect("flush");
    }
    let outbox = open(dir.path()).outbox();
    let pending = outbox.list(0, 10).expect("list");
    assert_eq!(seqs(&pending), vec![1, 2, 3]);
    assert_eq!(pending[0].kind, RecordKind::InteractionCreate);
    assert_eq!(pending[0].correlation_id, "call-1/create");
    assert_eq!(pending[0].interaction_key, "call-1");
    assert_eq!(pending[0].body, br#"{"corr":"call-1/create"}"#.to_vec());
    assert_eq!(pending[0].created_at_ms, 1_700_000_000_000);
    assert_eq!(pending[1].kind, RecordKind::PhoneLogCreate);
    assert_eq!(pending[2].kind, RecordKind::WorkItemCreate);
    assert_eq!(pending[2].attempts, 1);
    assert_eq!(pending[2].next_attempt_at_ms, 1_700_000_060_000);
    assert_eq!(pending[2].last_error.as_deref(), Some("503"));
    let dead = outbox.dead_letters(0, 10).expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].seq, 4);
    assert_eq!(dead[0].reason, "400 invalid");
    let record = dead[0].record.as_ref().expect("dead record decodes");
    assert_eq!(record.kind, RecordKind::InteractionUpdate);
    assert_eq!(record.interaction_key, "call-3");
    assert_eq!(outbox.append(update("x", 1)).await.expect("append"), 5);
}
