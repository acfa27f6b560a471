//! `edgecc backup` from a running daemon (over its admin socket) and
//! `edgecc restore` into a fresh data directory: the same outbox, dead
//! letters, CRM mappings and agent mappings come back.

use std::collections::BTreeMap;
use std::path::Path;

use edgecc_storage::{NewRecord, RecordKind, Storage, StorageConfig};

use crate::util::{cli_on, stderr, stdout, Daemon};

/// State trees the daemon keeps: CRM links, ServiceNow sys_ids, sticky
/// customers (ANI → agent).
const TREES: [&str; 3] = ["crm_links", "crm_sys_ids", "sticky_customers"];

/// One state tree's entries, in key order.
type TreeEntries = Vec<(Vec<u8>, Vec<u8>)>;

/// Everything a restore must bring back.
#[derive(Debug, PartialEq)]
struct Contents {
    /// (seq, correlation id, interaction, attempts, body) of every record.
    records: Vec<(u64, String, String, u32, Vec<u8>)>,
    /// (seq, reason) of every dead letter.
    dead: Vec<(u64, String)>,
    /// Every state tree's entries.
    state: BTreeMap<&'static str, TreeEntries>,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn read_contents(data_dir: &Path) -> Contents {
    let storage = Storage::open(data_dir, StorageConfig::default()).expect("open");
    let outbox = storage.outbox();
    let records = outbox
        .list(0, 10_000)
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.seq,
                r.correlation_id,
                r.interaction_key,
                r.attempts,
                r.body,
            )
        })
        .collect();
    let dead = outbox
        .dead_letters(0, 10_000)
        .unwrap()
        .into_iter()
        .map(|d| (d.seq, d.reason))
        .collect();
    let state = TREES
        .iter()
        .map(|t| {
            let tree = storage.state(t).unwrap();
            (*t, tree.iter().collect::<Result<Vec<_>, _>>().unwrap())
        })
        .collect();
    Contents {
        records,
        dead,
        state,
    }
}

/// A backlog of 400 records over 200 calls, two dead letters (the CRM
/// refused them), one retried record, and mappings in every state tree.
fn seed(data_dir: &Path) {
    runtime().block_on(async {
        let storage = Storage::open(data_dir, StorageConfig::default()).unwrap();
        let outbox = storage.outbox();
        for i in 0..200 {
            let key = format!("call-{i}");
            let record = |kind: RecordKind| NewRecord {
                correlation_id: format!("site:{key}:{}", kind.as_str()),
                interaction_key: key.clone(),
                kind,
                body: format!(r#"{{"call":"{key}"}}"#).into_bytes(),
                created_at_ms: 1_000 + i,
            };
            outbox
                .append_batch(vec![
                    record(RecordKind::InteractionCreate),
                    record(RecordKind::PhoneLogCreate),
                ])
                .await
                .unwrap();
        }
        let taken = outbox.take_ready(3, 5_000);
        outbox
            .dead_letter(taken[0].seq, "400 u_caller invalid")
            .await
            .unwrap();
        outbox
            .dead_letter(taken[1].seq, "422 unknown queue")
            .await
            .unwrap();
        outbox.retry(taken[2].seq, "503 busy", 9_000).await.unwrap();
        for (t, n) in TREES.iter().zip([50, 20, 5]) {
            let tree = storage.state(t).unwrap();
            for i in 0..n {
                tree.put(format!("k{i}").as_bytes(), format!("{t}-v{i}").as_bytes())
                    .await
                    .unwrap();
            }
        }
    });
}

/// Goal: a backup taken from the running daemon restores into a fresh
/// data directory with the same outbox, dead letters and mappings, and a
/// restore refuses a running daemon, a directory with data (without
/// --force) and a damaged file. Method: seed a data directory, run the
/// daemon on it, `edgecc backup` over the admin socket, stop, restore
/// elsewhere and compare everything through the storage API.
#[test]
fn backup_from_running_daemon_restores_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    seed(&dir.path().join("data"));
    let daemon = Daemon::start_in(dir);
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("edgecc-1.backup");
    let f = file.to_str().unwrap();

    let o = daemon.cli(&["backup", f]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("398 outbox records, 2 dead letters"),
        "{text}"
    );
    assert!(!out.path().join("edgecc-1.backup.partial").exists());
    // Same file name again: refused, the first backup is kept.
    let o = daemon.cli(&["backup", f]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("exists"), "{}", stderr(&o));
    // Offline while the daemon holds the directory: refused.
    let o = daemon.cli(&[
        "backup",
        "--offline",
        out.path().join("x").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("locked"), "{}", stderr(&o));
    // Restore over the running daemon's directory: refused.
    let o = daemon.cli(&["restore", f, "--force"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("running"), "{}", stderr(&o));

    let dir = daemon.stop();
    let original = read_contents(&dir.path().join("data"));
    assert_eq!(original.records.len(), 398);
    assert_eq!(original.dead.len(), 2);

    let fresh = out.path().join("fresh");
    let socket = out.path().join("none.sock");
    let o = cli_on(&fresh, &socket, &["restore", f]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("398 outbox records, 2 dead letters, 75 state entries"),
        "{}",
        stdout(&o)
    );
    assert_eq!(read_contents(&fresh), original);

    // A second restore into it: refused without --force, fine with it.
    let o = cli_on(&fresh, &socket, &["restore", f]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    let o = cli_on(&fresh, &socket, &["restore", f, "--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read_contents(&fresh), original);

    // A damaged backup is refused before anything is written.
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x40;
    let damaged = out.path().join("damaged.backup");
    std::fs::write(&damaged, bytes).unwrap();
    let target = out.path().join("target");
    let o = cli_on(&target, &socket, &["restore", damaged.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("damaged.backup"), "{}", stderr(&o));
    assert!(
        !target.exists(),
        "a damaged backup wrote {}",
        target.display()
    );

    // The daemon starts on the restored directory and reports the backlog.
    let restored = tempfile::tempdir().unwrap();
    std::fs::rename(&fresh, restored.path().join("data")).unwrap();
    let daemon = Daemon::start_in(restored);
    let o = daemon.cli(&["outbox", "status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(status["depth"], 398, "{status}");
    assert_eq!(status["dead_letters"], 2, "{status}");
    // And an offline backup of a stopped directory works too.
    let dir = daemon.stop();
    let o = cli_on(
        &dir.path().join("data"),
        &socket,
        &[
            "backup",
            "--offline",
            out.path().join("offline.backup").to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("398 outbox records"), "{}", stdout(&o));
}
