//! CRM outages end to end: the demo through an outage, 10,000 calls with
//! the CRM down for most of the run, and a replay that survives SIGKILLs.
//! Every test checks what the CRM finally holds against what the calls did.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{edgecc, stderr};

/// The 10,000-call tests take both cores: one at a time.
static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `edgecc demo` with `args` and returns (exit code, summary JSON).
fn demo(data_dir: Option<&Path>, args: &[&str]) -> (Option<i32>, Value) {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.json");
    let mut cmd = edgecc();
    if let Some(d) = data_dir {
        cmd.arg("--data-dir").arg(d);
    }
    let out = cmd
        .arg("demo")
        .args(args)
        .arg("--summary-json")
        .arg(&summary)
        .output()
        .expect("run the demo");
    let text = std::fs::read_to_string(&summary)
        .unwrap_or_else(|e| panic!("no summary ({e}); stderr: {}", stderr(&out)));
    (out.status.code(), serde_json::from_str(&text).unwrap())
}

fn n(v: &Value, k: &str) -> u64 {
    v[k].as_u64()
        .unwrap_or_else(|| panic!("{k} missing in {v}"))
}

/// The demo, as a newcomer runs it but shorter: calls flow straight
/// through a CRM outage and the summary checks out (exit 0).
#[test]
fn demo_runs_through_a_crm_outage_and_checks_out() {
    let (code, s) = demo(
        None,
        &[
            "--duration",
            "9",
            "--rate",
            "6",
            "--agents",
            "20",
            "--crm-outage",
            "2-6",
            "--talk-ms",
            "300-1500",
            "--patience-ms",
            "2000-8000",
        ],
    );
    assert_eq!(code, Some(0), "{s:#}");
    assert_eq!(s["ok"], true, "{s:#}");
    assert!(n(&s, "calls_total") > 20, "{s:#}");
    assert!(n(&s, "calls_accepted") > 0, "{s:#}");
    assert_eq!(n(&s, "crm_phone_logs"), n(&s, "calls_accepted"));
    assert_eq!(
        n(&s, "crm_work_items"),
        n(&s, "calls_timed_out") + n(&s, "calls_abandoned")
    );
    assert_eq!(n(&s, "records_delivered"), n(&s, "records_appended"));
    assert_eq!(n(&s, "records_pending"), 0);
    assert!(
        n(&s, "crm_breaker_opened") >= 1,
        "the outage never opened the breaker: {s:#}"
    );
}

/// Goal: 10,000 calls while the CRM is down for the first 80% of the run
/// route as fast as with it up, and afterwards the CRM holds exactly one
/// interaction and one phone log per accepted call and one work item per
/// timed-out or abandoned call, each interaction's updates in order.
/// Method: the demo at 400 calls/s for 29 s with 400 agents on the
/// simulated PBX and the built-in CRM emulator refusing connections for
/// the first 23 s; its summary compares the CRM's contents with the calls'
/// outcomes, and its arrival→offer latencies are split by CRM state.
/// 11,600 calls are due: the demo places fewer when the box cannot keep
/// up, and here it shares two cores with the other tests (one CI run
/// placed 9,430 of 10,400 due in 26 s), so 10,000 hold at 86% of the pace.
#[test]
fn ten_thousand_calls_through_an_outage_arrive_once_in_order() {
    let _one_at_a_time = HEAVY.lock().unwrap_or_else(|p| p.into_inner());
    let (code, s) = demo(
        None,
        &[
            "--duration",
            "29",
            "--rate",
            "400",
            "--agents",
            "400",
            "--crm-outage",
            "0-23",
            "--talk-ms",
            "100-500",
            "--patience-ms",
            "2000-8000",
            "--answer-ms",
            "50-200",
            "--wrap-up-ms",
            "0",
            "--seed",
            "11",
        ],
    );
    eprintln!("{s:#}");
    assert_eq!(code, Some(0), "{s:#}");
    assert!(n(&s, "calls_total") >= 10_000, "{s:#}");
    assert_eq!(s["ok"], true);
    assert_eq!(s["crm_out_of_order"], 0);
    assert_eq!(n(&s, "crm_phone_logs"), n(&s, "calls_accepted"));
    assert_eq!(
        n(&s, "crm_interactions"),
        n(&s, "calls_accepted") + n(&s, "calls_timed_out") + n(&s, "calls_abandoned")
    );
    // Routing does not wait for the CRM: the latency with the CRM down
    // stays within the same range as with it up (generous bound: this is a
    // shared 2-core machine; BENCHMARKS.md has the figures).
    let up = n(&s, "offer_latency_us_p99_crm_up");
    let down = n(&s, "offer_latency_us_p99_crm_down");
    assert!(up > 0 && down > 0, "{s:#}");
    assert!(
        down <= (3 * up).max(50_000),
        "p99 arrival→offer with the CRM down {down} µs vs up {up} µs"
    );
}

/// A running `edgecc crm-emulator`, stopped when dropped.
struct EmulatorProcess {
    /// The process.
    child: Child,
    /// `127.0.0.1:port`.
    addr: String,
}

impl EmulatorProcess {
    fn start(secret_file: &Path) -> EmulatorProcess {
        let mut child = edgecc()
            .args(["crm-emulator", "--port", "0", "--secret-file"])
            .arg(secret_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the emulator");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .trim_start_matches("http://")
            .trim_end_matches("/webhook")
            .to_string();
        assert!(addr.starts_with("127.0.0.1:"), "emulator said {line:?}");
        EmulatorProcess { child, addr }
    }

    /// Waits until the CRM holds at least `target` distinct records.
    fn wait_for_records(&self, target: u64, deadline: Instant) {
        loop {
            let got = n(&self.get("/_emulator/stats"), "records");
            if got >= target {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "replay too slow: {got} of {target}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `GET path` → JSON.
    fn get(&self, path: &str) -> Value {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr).unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let text = String::from_utf8_lossy(&raw);
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {text:.200}"))
    }
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `edgecc run` with a config that sends to the emulator.
fn start_daemon(config: &Path, data: &Path, socket: &Path) -> Child {
    edgecc()
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .arg("--admin-socket")
        .arg(socket)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the daemon")
}

/// Goal: a replay interrupted by SIGKILL, twice, still delivers every
/// record exactly once at the CRM (re-sends carry the same idempotency key
/// and are deduplicated), in order per interaction. Method: the demo
/// builds a backlog of 10,000 calls with an unreachable CRM and leaves it
/// in a data directory; `edgecc run` then replays it into an emulator
/// process and is SIGKILLed at about a quarter and a half of the way, and
/// restarted on the same directory each time.
#[test]
fn replay_survives_two_sigkills_and_delivers_once() {
    let _one_at_a_time = HEAVY.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (code, s) = demo(
        Some(&data),
        &[
            "--duration",
            "26",
            "--rate",
            "400",
            "--agents",
            "400",
            "--talk-ms",
            "100-500",
            "--patience-ms",
            "2000-8000",
            "--answer-ms",
            "50-200",
            "--wrap-up-ms",
            "0",
            "--seed",
            "12",
            "--crm-url",
            "http://127.0.0.1:9/webhook",
            "--drain-wait",
            "0",
        ],
    );
    assert_eq!(
        code,
        Some(1),
        "the CRM was unreachable, so the demo's check must fail: {s:#}"
    );
    assert!(n(&s, "calls_total") >= 10_000, "{s:#}");
    let appended = n(&s, "records_appended");
    assert_eq!(n(&s, "records_pending"), appended, "{s:#}");

    let secret = dir.path().join("secret");
    std::fs::write(&secret, "replay-secret\n").unwrap();
    let emulator = EmulatorProcess::start(&secret);
    let config = dir.path().join("edgecc.toml");
    std::fs::write(
        &config,
        format!(
            "[site]\nid = \"demo\"\n[http]\nlisten = \"127.0.0.1:0\"\n[crm]\nkind = \"webhook\"\nconcurrency = 32\n\
             [crm.webhook]\nurl = \"http://{}/webhook\"\nsecret_file = \"{}\"\n",
            emulator.addr,
            secret.display()
        ),
    )
    .unwrap();
    let socket = dir.path().join("admin.sock");
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut kills = 0;
    for fraction in [4, 2] {
        let mut daemon = start_daemon(&config, &data, &socket);
        emulator.wait_for_records(appended.div_ceil(fraction), deadline);
        daemon.kill().unwrap(); // SIGKILL
        daemon.wait().unwrap();
        kills += 1;
    }
    let mut daemon = start_daemon(&config, &data, &socket);
    emulator.wait_for_records(appended, deadline);
    // The daemon settles its last acks, then stops cleanly on SIGTERM.
    std::thread::sleep(Duration::from_millis(500));
    let pid = daemon.id() as libc::pid_t;
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    assert!(daemon.wait().unwrap().success());
    assert_eq!(kills, 2);

    let stats = emulator.get("/_emulator/stats");
    assert_eq!(n(&stats, "records"), appended, "{stats}");
    assert_eq!(n(&stats, "rejected"), 0, "{stats}");
    let records = emulator.get("/_emulator/records");
    let records = records.as_array().expect("records array");
    let kind = |k: &str| records.iter().filter(|r| r["kind"] == k).count() as u64;
    assert_eq!(kind("phone_log.create"), n(&s, "calls_accepted"));
    assert_eq!(
        kind("interaction.create"),
        n(&s, "calls_accepted") + n(&s, "calls_timed_out") + n(&s, "calls_abandoned")
    );
    assert_eq!(
        kind("work_item.create"),
        n(&s, "calls_timed_out") + n(&s, "calls_abandoned")
    );
    let mut last: HashMap<&str, u64> = HashMap::new();
    for r in records {
        let seq = r["document"]["sequence"].as_u64().unwrap();
        let key = r["interaction"].as_str().unwrap();
        let prev = last.insert(key, seq).unwrap_or(0);
        assert!(seq > prev, "interaction {key}: {seq} arrived after {prev}");
    }
    let status = Command::new(env!("CARGO_BIN_EXE_edgecc"))
        .arg("--data-dir")
        .arg(&data)
        .args(["outbox", "--offline", "status", "--json"])
        .output()
        .unwrap();
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["depth"], 0, "{status}");
    assert_eq!(status["dead_letters"], 0, "{status}");
    eprintln!(
        "replayed {appended} records through 2 SIGKILLs; {} re-deliveries deduplicated",
        n(&stats, "duplicates")
    );
}

/// Goal: the demo removes only a data directory it made itself; one given
/// with `--data-dir` stays, with the outbox in it, even under `$TMPDIR`.
/// Method: a short demo with `--data-dir` in a temporary directory that
/// holds a file of the user's.
#[test]
fn demo_keeps_a_data_dir_it_was_given() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("notes.txt"), "mine").unwrap();
    let (code, s) = demo(
        Some(&data),
        &[
            "--duration",
            "2",
            "--rate",
            "5",
            "--agents",
            "5",
            "--crm-outage",
            "none",
            "--talk-ms",
            "100-300",
            "--answer-ms",
            "50-100",
            "--drain-wait",
            "30",
        ],
    );
    assert_eq!(code, Some(0), "{s:#}");
    assert_eq!(
        std::fs::read_to_string(data.join("notes.txt")).unwrap(),
        "mine"
    );
    assert!(
        data.join(edgecc_storage::LOG_DIR).is_dir(),
        "the outbox is gone"
    );
}
