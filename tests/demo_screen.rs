//! The demo's own output (issue 20): plain lines when stdout is not a
//! terminal, an in-place status display with the log lines in a file named
//! in the first lines when it is (a pseudo-terminal made by `script(1)`),
//! a summary that reports the routing decision time apart from the wait for
//! a free agent, and the long calls `demo --http` gives the human agent.

use std::process::Command;

use serde_json::Value;

use crate::util::edgecc;

/// A short, quiet demo run.
const ARGS: [&str; 10] = [
    "--duration",
    "3",
    "--rate",
    "4",
    "--agents",
    "10",
    "--crm-outage",
    "1-2",
    "--drain-wait",
    "30",
];

/// Not a terminal: one plain line a second, no escape codes, the logs on
/// stderr, and both latency figures in the summary.
#[test]
fn demo_prints_plain_lines_when_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.json");
    let out = edgecc()
        .env("EDGECC_LOG", "info")
        .arg("demo")
        .args(ARGS)
        .arg("--summary-json")
        .arg(&summary)
        .output()
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        !stdout.contains('\x1b') && !stdout.contains('\r'),
        "{stdout:?}"
    );
    assert!(stdout.contains("t=  1s  calls offered"), "{stdout}");
    assert!(!stdout.contains("log lines go to"), "{stdout}");
    assert!(
        stderr.contains("Demo started."),
        "logs stay on stderr: {stderr}"
    );
    assert!(stdout.contains("routing decision  p50"), "{stdout}");
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let routed =
        s["routing_samples"][0].as_u64().unwrap() + s["routing_samples"][1].as_u64().unwrap();
    assert!(routed > 0, "{s:#}");
    let all = s["offer_latency_us_p99_crm_up"].as_u64().unwrap();
    assert!(s["routing_us_p50_crm_up"].as_u64().unwrap() <= all, "{s:#}");
}

/// On a terminal: the first line names the log file, which gets the log
/// lines; the status is redrawn in place; no log line on screen.
#[test]
fn demo_on_a_terminal_keeps_the_screen_clean() {
    let script = "/usr/bin/script";
    if !std::path::Path::new(script).exists() {
        panic!("{script} (util-linux) is needed for a pseudo-terminal");
    }
    let exe = edgecc().get_program().to_string_lossy().into_owned();
    let line = format!("{exe} demo {}", ARGS.join(" "));
    let out = Command::new(script)
        .args(["-qec", &line, "/dev/null"])
        .env("EDGECC_LOG", "info")
        .env("COLUMNS", "100")
        .output()
        .expect("run script");
    let screen = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{screen}");
    let first = screen.lines().next().unwrap_or("");
    let file = first
        .strip_prefix("edgecc demo: log lines go to ")
        .unwrap_or_else(|| panic!("first line: {first:?}"))
        .trim();
    assert!(
        screen.contains("\r\x1b[2Kt=  1s  calls offered"),
        "{screen:?}"
    );
    assert!(!screen.contains(" INFO "), "{screen}");
    let log = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert!(log.contains("Demo started."), "{log}");
    assert!(!log.contains('\x1b'), "no colour codes in the file");
    let _ = std::fs::remove_file(file);
}

/// The demo's human agent gets long calls: callers served by a device with
/// a served talk time ([`SetServedTalk`], what `demo --http` sets for
/// `you`) talk that long, not their own (here 300 ms).
#[actix_rt::test]
async fn served_talk_time_outlasts_the_callers_own() {
    use edgecc_actors::sim::{Caller, PlaceCall, SetServedTalk};
    let t = crate::util::HttpTest::start(crate::util::http_config(3_600_000, 3_600_000)).await;
    let sim = t.running.sim.clone().expect("sim");
    sim.send(SetServedTalk {
        endpoint: "sim/1001".into(),
        talk_ms: 60_000,
    })
    .await
    .unwrap();
    let ann = t.login("ann").await;
    for state in ["login", "ready"] {
        let body = serde_json::json!({ "state": state });
        let (s, _) = t
            .call("POST", "/api/v1/agent/state", Some(&ann), Some(body))
            .await;
        assert_eq!(s, 200);
    }
    let mut caller = Caller::new("+15550001111", "+18005550100");
    caller.talk_ms = Some(300);
    sim.send(PlaceCall(caller)).await.unwrap();
    t.wait_me(&ann, "talking", |v| v["agent"]["state"] == "talking")
        .await;
    actix_rt::time::sleep(std::time::Duration::from_millis(1_000)).await;
    let (_, v) = t.call("GET", "/api/v1/me", Some(&ann), None).await;
    assert_eq!(v["agent"]["state"], "talking", "{v}");
    t.http.stop().await;
}
