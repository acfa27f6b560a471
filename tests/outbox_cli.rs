//! `edgecc outbox …` against a running daemon (over its admin socket) and
//! offline (on the data directory), with records seeded through the real
//! storage crate.

use std::path::Path;

use edgecc_storage::{NewRecord, RecordKind, Storage, StorageConfig};
use serde_json::Value;

use crate::util::{cli_on, stderr, stdout, Daemon};

/// Appends three records of one interaction and a fourth of another, takes
/// the first and dead-letters it (as a CRM's permanent 400 would).
fn seed(data_dir: &Path) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let storage = Storage::open(data_dir, StorageConfig::default()).unwrap();
        let outbox = storage.outbox();
        let record = |key: &str, kind, n: u32| NewRecord {
            correlation_id: format!("site:{key}:{}:{n}", kind_name(kind)),
            interaction_key: key.to_string(),
            kind,
            body: br#"{"caller":"+15550100"}"#.to_vec(),
            created_at_ms: 1_000,
        };
        outbox
            .append_batch(vec![
                record("call-1", RecordKind::InteractionCreate, 0),
                record("call-1", RecordKind::PhoneLogCreate, 0),
                record("call-1", RecordKind::InteractionUpdate, 1),
                record("call-2", RecordKind::WorkItemCreate, 0),
            ])
            .await
            .unwrap();
        let taken = outbox.take_ready(1, 2_000);
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].interaction_key, "call-1");
        outbox
            .dead_letter(taken[0].seq, "400 Bad Request: field u_caller invalid")
            .await
            .unwrap();
    });
}

fn kind_name(k: RecordKind) -> &'static str {
    k.as_str()
}

fn json(o: &std::process::Output) -> Value {
    assert!(o.status.success(), "failed: {}", stderr(o));
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

/// Status, list, dead list and re-queue over the admin socket show the
/// seeded state and change it; `--json` and text agree.
#[test]
fn outbox_commands_talk_to_the_running_daemon() {
    let dir = tempfile::tempdir().unwrap();
    seed(&dir.path().join("data"));
    let daemon = Daemon::start_in(dir);

    let status = json(&daemon.cli(&["outbox", "status", "--json"]));
    assert_eq!(status["depth"], 3, "{status}");
    assert_eq!(status["dead_letters"], 1, "{status}");
    // call-1's later records wait behind its dead create.
    assert_eq!(status["held"], 2, "{status}");

    let text = daemon.cli(&["outbox", "status"]);
    assert!(
        stdout(&text).contains("dead letters   1"),
        "{}",
        stdout(&text)
    );

    let list = json(&daemon.cli(&["outbox", "list", "--json"]));
    let kinds: Vec<&str> = list["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["phone_log.create", "interaction.update", "work_item.create"]
    );

    let dead = json(&daemon.cli(&["outbox", "dead", "list", "--json"]));
    let dead = dead["dead_letters"].as_array().unwrap();
    assert_eq!(dead.len(), 1);
    assert!(dead[0]["reason"]
        .as_str()
        .unwrap()
        .contains("400 Bad Request"));
    let seq = dead[0]["seq"].as_u64().unwrap();
    let text = daemon.cli(&["outbox", "dead", "list"]);
    assert!(
        stdout(&text).contains("site:call-1:interaction.create"),
        "{}",
        stdout(&text)
    );

    let requeue = daemon.cli(&["outbox", "dead", "requeue", &seq.to_string()]);
    assert!(requeue.status.success(), "{}", stderr(&requeue));
    let status = json(&daemon.cli(&["outbox", "status", "--json"]));
    assert_eq!(status["depth"], 4, "{status}");
    assert_eq!(status["dead_letters"], 0, "{status}");
    assert_eq!(status["held"], 0, "{status}");
    // Back in its place: first in the list again.
    let list = json(&daemon.cli(&["outbox", "list", "--json"]));
    assert_eq!(list["records"][0]["seq"].as_u64(), Some(seq));

    let unknown = daemon.cli(&["outbox", "dead", "requeue", "999"]);
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("no dead letter with sequence 999"),
        "{}",
        stderr(&unknown)
    );
}

/// `--offline` is refused while the daemon holds the directory, with a
/// sentence saying what to do; after the daemon stops it reads the same
/// state, and `dead requeue --all` works offline.
#[test]
fn offline_is_refused_while_the_daemon_runs_then_works() {
    let dir = tempfile::tempdir().unwrap();
    seed(&dir.path().join("data"));
    let daemon = Daemon::start_in(dir);
    let refused = daemon.cli(&["outbox", "--offline", "status"]);
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(message.contains("held by a running edgecc"), "{message}");
    assert!(message.contains("drop --offline"), "{message}");

    let dir = daemon.stop();
    let data = dir.path().join("data");
    let socket = dir.path().join("admin.sock");
    let o = cli_on(&data, &socket, &["outbox", "--offline", "status", "--json"]);
    let status = json(&o);
    assert_eq!(status["depth"], 3, "{status}");
    assert_eq!(status["dead_letters"], 1, "{status}");

    let o = cli_on(
        &data,
        &socket,
        &["outbox", "--offline", "dead", "requeue", "--all", "--json"],
    );
    assert_eq!(json(&o)["requeued"], 1);
    let o = cli_on(&data, &socket, &["outbox", "--offline", "status", "--json"]);
    assert_eq!(json(&o)["depth"], 4);
}

/// Without a daemon, the CLI names the socket it tried and suggests
/// `--offline`; it does not hang or panic.
#[test]
fn no_daemon_gives_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let o = cli_on(
        &dir.path().join("data"),
        &dir.path().join("none.sock"),
        &["outbox", "status"],
    );
    assert_eq!(o.status.code(), Some(1));
    let message = stderr(&o);
    assert!(message.contains("none.sock"), "{message}");
    assert!(message.contains("--offline"), "{message}");
}

/// Goal: one `list` answer is bounded whatever `--limit` asks (the daemon
/// reads records whole), and paging with `--from` reaches the rest.
/// Method: 1,200 records offline, `--limit 5000`, then from the next one.
#[test]
fn list_is_capped_and_pages_on() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let storage = Storage::open(&data, StorageConfig::default()).unwrap();
        let outbox = storage.outbox();
        for chunk in 0..(1_200 / 60) {
            let batch = (0..60)
                .map(|i| NewRecord {
                    correlation_id: format!("site:call-{chunk}-{i}:phone_log"),
                    interaction_key: format!("call-{chunk}-{i}"),
                    kind: RecordKind::PhoneLogCreate,
                    body: b"{}".to_vec(),
                    created_at_ms: 1_000,
                })
                .collect();
            outbox.append_batch(batch).await.unwrap();
        }
    });
    let socket = dir.path().join("none.sock");
    let list = |from: u64| {
        let o = cli_on(
            &data,
            &socket,
            &[
                "outbox",
                "--offline",
                "list",
                "--from",
                &from.to_string(),
                "--limit",
                "5000",
                "--json",
            ],
        );
        json(&o)["records"].as_array().cloned().unwrap_or_default()
    };
    let first = list(0);
    assert_eq!(first.len(), edgecc::ops::admin::LIST_LIMIT_MAX);
    let next = first.last().unwrap()["seq"].as_u64().unwrap() + 1;
    assert_eq!(list(next).len(), 1_200 - edgecc::ops::admin::LIST_LIMIT_MAX);
}

/// Appends `n` phone logs of interaction `call-9` to the outbox in
/// `data_dir` (records another directory does not have).
fn append_more(data_dir: &Path, n: u32) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let storage = Storage::open(data_dir, StorageConfig::default()).unwrap();
        let batch = (0..n)
            .map(|i| NewRecord {
                correlation_id: format!("site:call-9:phone_log:{i}"),
                interaction_key: "call-9".to_string(),
                kind: RecordKind::PhoneLogCreate,
                body: b"{}".to_vec(),
                created_at_ms: 1_000,
            })
            .collect();
        storage.outbox().append_batch(batch).await.unwrap();
    });
}

/// `cp -r from to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Goal: `edgecc outbox salvage DIR` reads the records of a quarantined
/// sled directory back into the outbox once each, says how many were
/// recovered, already there and unreadable, and is refused while the
/// daemon holds the data directory. Method: an old data directory holding
/// the seeded records and two more; its sled directory copied into a live
/// data directory seeded alike, as `db.quarantined-1` (where the storage
/// moves a sled it cannot use); salvage while a daemon runs (refused),
/// after it stopped (2 recovered, 4 already there: 3 pending and the dead
/// letter), again (nothing more), and a directory that does not exist.
#[test]
fn salvage_recovers_a_quarantined_directory_once() {
    let dir = tempfile::tempdir().unwrap();
    let old = tempfile::tempdir().unwrap();
    seed(old.path());
    append_more(old.path(), 2);
    seed(&dir.path().join("data"));
    let quarantined = dir.path().join("data").join("db.quarantined-1");
    copy_dir(&old.path().join(edgecc_storage::SLED_DIR), &quarantined);

    let daemon = Daemon::start_in(dir);
    let q = quarantined.to_str().unwrap().to_string();
    let refused = daemon.cli(&["outbox", "salvage", &q]);
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(message.contains("held by a running edgecc"), "{message}");
    assert!(message.contains("stop the daemon"), "{message}");

    let dir = daemon.stop();
    let data = dir.path().join("data");
    let socket = dir.path().join("admin.sock");
    let summary = json(&cli_on(
        &data,
        &socket,
        &["outbox", "salvage", &q, "--json"],
    ));
    assert_eq!(summary["opened"], true, "{summary}");
    assert_eq!(summary["found"], 6, "{summary}");
    assert_eq!(summary["appended"], 2, "{summary}");
    assert_eq!(summary["duplicates"], 4, "{summary}");
    assert_eq!(summary["unreadable"], 0, "{summary}");
    let o = cli_on(&data, &socket, &["outbox", "--offline", "list", "--json"]);
    let corrs: Vec<String> = json(&o)["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["correlation_id"].as_str().unwrap().to_string())
        .collect();
    for i in 0..2 {
        let c = format!("site:call-9:phone_log:{i}");
        assert_eq!(corrs.iter().filter(|x| **x == c).count(), 1, "{corrs:?}");
    }
    assert_eq!(corrs.len(), 5, "3 pending + 2 recovered: {corrs:?}");

    let again = cli_on(&data, &socket, &["outbox", "salvage", &q]);
    assert!(again.status.success(), "{}", stderr(&again));
    let text = stdout(&again);
    assert!(text.contains("recovered      0"), "{text}");
    assert!(text.contains("already there  6"), "{text}");
    assert!(text.contains("unreadable     0"), "{text}");
    assert!(
        quarantined.exists(),
        "the directory is left for the operator"
    );

    let missing = dir.path().join("no-such-dir");
    let o = cli_on(
        &data,
        &socket,
        &["outbox", "salvage", missing.to_str().unwrap()],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("is not a directory"), "{}", stderr(&o));
    assert!(!missing.exists(), "nothing created");
}
