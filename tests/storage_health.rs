//! The storage's health where an installer reads it (issue 14): a sled
//! directory the storage had to move aside shows in `/readyz`, in
//! `/metrics`, in `edgecc outbox status` (through the daemon and
//! `--offline`), and as an error line in the daemon's log at start; the
//! writer queue's depth shows beside it.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use edgecc_storage::{NewRecord, RecordKind, Storage, StorageConfig};
use serde_json::Value;

use crate::util::{cli_on, edgecc, http_get, stderr, stdout};

/// Three records in a fresh data directory, then sled's config made
/// unreadable, so the next open must move sled aside and rebuild it from
/// the log.
fn seed_and_break_sled(data_dir: &Path) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let storage = Storage::open(data_dir, StorageConfig::default()).unwrap();
        let batch = (0..3)
            .map(|i| NewRecord {
                correlation_id: format!("site:call-{i}:phone_log"),
                interaction_key: format!("call-{i}"),
                kind: RecordKind::PhoneLogCreate,
                body: b"{}".to_vec(),
                created_at_ms: 1_000,
            })
            .collect();
        storage.outbox().append_batch(batch).await.unwrap();
    });
    let sled = data_dir.join(edgecc_storage::SLED_DIR);
    std::fs::write(sled.join("conf"), b"not a sled config at all\n").unwrap();
    std::fs::write(sled.join("db"), vec![0xA5u8; 100_000]).unwrap();
}

/// The value of `name` (a sample without labels) in a Prometheus text.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Goal: a quarantine is visible everywhere an installer looks, and the
/// writer queue's depth beside it. Method: a data directory whose sled
/// cannot open; `edgecc run` on it (JSON logs to a file) moves sled aside
/// and rebuilds; then `/readyz` (still ready: nothing was lost), `/metrics`,
/// `outbox status` through the daemon (text and JSON) and, after a clean
/// stop, `--offline`, and the log's error line naming the directory and
/// `edgecc outbox salvage`.
#[test]
fn a_quarantine_shows_in_readyz_metrics_status_and_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let socket = dir.path().join("admin.sock");
    seed_and_break_sled(&data);
    let config = dir.path().join("edgecc.toml");
    std::fs::write(&config, "[http]\nlisten = \"127.0.0.1:0\"\n").unwrap();
    let log = dir.path().join("stderr.log");
    let mut child = edgecc()
        .env("EDGECC_LOG", "info")
        .env("EDGECC_LOG_FORMAT", "json")
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .arg("--admin-socket")
        .arg(&socket)
        .arg("run")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn edgecc run");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(Instant::now() < deadline, "daemon did not start");
        assert!(child.try_wait().unwrap().is_none(), "daemon exited");
        std::thread::sleep(Duration::from_millis(20));
    }
    let lines: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let addr = lines
        .iter()
        .find(|l| l["message"] == "HTTP listening.")
        .and_then(|l| l["addr"].as_str())
        .expect("HTTP address in the log")
        .to_string();
    let error = lines
        .iter()
        .find(|l| {
            l["level"] == "ERROR"
                && l["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("edgecc outbox salvage"))
        })
        .unwrap_or_else(|| panic!("no quarantine error line in {lines:?}"));
    assert_eq!(error["quarantined"], 1, "{error}");
    assert!(
        error["dirs"]
            .as_str()
            .is_some_and(|d| d.contains("db.quarantined-")),
        "{error}"
    );

    let (status, body) = http_get(&addr, "/readyz");
    let ready: Value = serde_json::from_str(&body).expect("readyz json");
    assert_eq!(status, 200, "a rebuilt directory is ready: {ready}");
    let health = &ready["storage_health"];
    assert_eq!(
        health["quarantined"].as_array().map(Vec::len),
        Some(1),
        "{ready}"
    );
    assert!(health["writer_queue_bytes"].is_u64(), "{ready}");
    assert!(health["writer_queue_ops"].is_u64(), "{ready}");

    let (status, metrics) = http_get(&addr, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(
        sample(&metrics, "edgecc_storage_quarantined_dirs"),
        Some(1.0),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE edgecc_storage_writer_queue_bytes gauge"),
        "{metrics}"
    );
    assert!(
        sample(&metrics, "edgecc_storage_writer_queue_bytes").is_some(),
        "{metrics}"
    );
    assert!(
        sample(&metrics, "edgecc_storage_index_rebuild_seconds").is_some(),
        "the rebuild's time: {metrics}"
    );
    // A quarantine rebuilds a fresh sled, but it is not the set-aside of a
    // large backlog at an unclean open.
    assert_eq!(
        sample(&metrics, "edgecc_storage_sled_rebuilt"),
        Some(0.0),
        "{metrics}"
    );

    let o = cli_on(&data, &socket, &["outbox", "status"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("depth          3"), "{text}");
    assert!(text.contains("quarantined    1"), "{text}");
    assert!(text.contains("sled rebuilt   0"), "{text}");
    assert!(text.contains("writer queue   "), "{text}");
    assert!(
        text.contains("db.quarantined-"),
        "the directory is named: {text}"
    );
    assert!(text.contains("edgecc outbox salvage"), "{text}");
    let o = cli_on(&data, &socket, &["outbox", "status", "--json"]);
    let v: Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(
        v["storage"]["quarantined"].as_array().map(Vec::len),
        Some(1),
        "{v}"
    );

    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    let o = cli_on(&data, &socket, &["outbox", "--offline", "status"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("quarantined    1"), "{text}");
    assert!(text.contains("writer queue   0 B"), "idle: {text}");
}
