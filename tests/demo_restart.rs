//! The short soak: `edgecc demo --restart-at`, the daemon SIGKILLed twice
//! under load and started again on the same data directory, in front of
//! the simulated PBX (the ARI emulator in the demo's process, on
//! 127.0.0.1), with a PBX link cut and the CRM refusing, answering 429 and
//! 500. The demo's own check (made at the PBX and the CRM) must pass, and
//! its summary must show the restarts did something: calls were live and
//! re-adopted. `scripts/soak.sh` is the long version.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::edgecc;

/// The whole run is bounded: the demo itself stops after its duration,
/// drain and checks; past this it is killed and the test fails.
const BOUND: Duration = Duration::from_secs(180);

fn n(v: &Value, k: &str) -> u64 {
    v[k].as_u64()
        .unwrap_or_else(|| panic!("{k} missing in {v:#}"))
}

#[test]
fn demo_survives_sigkills_link_cuts_and_crm_faults() {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.json");
    let out = dir.path().join("out.txt");
    let mut child = edgecc()
        .arg("--data-dir")
        .arg(dir.path().join("demo"))
        .args([
            "demo",
            "--duration",
            "14",
            "--rate",
            "4",
            "--agents",
            "12",
            "--talk-ms",
            "1500-4000",
            "--patience-ms",
            "4000-12000",
            "--answer-ms",
            "200-1000",
            "--wrap-up-ms",
            "300",
            "--restart-at",
            "4,9",
            "--link-cut-at",
            "6",
            "--crm-faults",
            "--drain-wait",
            "60",
            "--summary-json",
        ])
        .arg(&summary)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("run the demo");
    let deadline = Instant::now() + BOUND;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the demo ran past {} s: {}",
                BOUND.as_secs(),
                std::fs::read_to_string(&out).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let printed = std::fs::read_to_string(&out).unwrap_or_default();
    let text =
        std::fs::read_to_string(&summary).unwrap_or_else(|e| panic!("no summary ({e}): {printed}"));
    let s: Value = serde_json::from_str(&text).unwrap();
    assert!(status.success(), "{status}: {printed}");
    assert_eq!(s["ok"], true, "{s:#}");
    assert!(s["failures"].as_array().unwrap().is_empty(), "{s:#}");
    // Both restarts happened, each became ready and reconciled.
    let restarts = s["restarts"].as_array().unwrap();
    assert_eq!(restarts.len(), 2, "{s:#}");
    for r in restarts {
        assert!(
            n(r, "ready_ms") > 0 && n(r, "reconciled_ms") >= n(r, "ready_ms"),
            "{r}"
        );
        assert!(n(r, "calls_adopted") <= n(r, "calls_restored"), "{r}");
    }
    // Calls were up at the kills (4 calls/s, talks of seconds) and the
    // restarted daemon carried them on.
    let adopted: u64 = restarts.iter().map(|r| n(r, "calls_adopted")).sum();
    assert!(adopted > 0, "no call re-adopted: {s:#}");
    assert_eq!(n(&s, "link_cuts"), 1, "{s:#}");
    assert!(n(&s, "crm_faults") >= 2, "{s:#}");
    // Every call edgecc took ended with exactly one terminal record set.
    assert!(n(&s, "calls_accepted") > 0, "{s:#}");
    assert_eq!(
        n(&s, "calls_accepted") + n(&s, "calls_not_answered"),
        n(&s, "calls_placed") - n(&s, "calls_not_taken"),
        "{s:#}"
    );
    assert_eq!(n(&s, "agent_double_offers"), 0, "{s:#}");
    assert_eq!(n(&s, "records_pending"), 0, "{s:#}");
    assert_eq!(n(&s, "records_dead"), 0, "{s:#}");
    assert!(printed.contains("READY in"), "{printed}");
}
