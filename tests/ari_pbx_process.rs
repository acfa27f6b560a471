//! The simulated PBX as a process of its own (`edgecc pbx-emulator`) and a
//! daemon (`edgecc run`, `pbx.kind = "ari"`) that talks ARI to it: the
//! daemon SIGKILLed and started again re-adopts the call its agent was
//! talking on, which the PBX process kept up all along. Checked from
//! outside: the PBX's own `/ari/bridges`, its status API (its hang-up
//! counts) and the daemon's `/metrics`. And the PBX process goes when the
//! process that spawned it does (its standard input closes).

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use edgecc::crm::emulator::{EmulatorConfig, EmulatorHandle};
use edgecc::demo::child::{self, Api, ChildConfig, Launch, AGENT_PASSWORD};
use serde_json::Value;

use crate::ari_harness::{config, DNIS};
use crate::util::edgecc;

/// A running `edgecc pbx-emulator`, killed when dropped.
pub struct PbxProcess {
    /// The process.
    pub child: Child,
    /// Its ARI base URL, as it printed it.
    pub url: String,
    /// Its control API's base URL, as it printed it.
    pub control: String,
}

impl PbxProcess {
    /// `edgecc pbx-emulator` on loopback with one agent phone
    /// (`PJSIP/3101`, answering after 100 ms) and one caller a second to
    /// [`DNIS`] who talks and waits for minutes.
    pub fn start_talking() -> Self {
        let mut child = edgecc()
            .args([
                "pbx-emulator",
                "--port",
                "0",
                "--phones",
                "PJSIP/3101",
                "--answer-ms",
                "100",
                "--rate",
                "1",
                "--dnis",
                DNIS,
                "--talk-ms",
                "600000",
                "--patience-ms",
                "600000",
                "--control-port",
                "0",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the PBX emulator");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let (mut url, mut control) = (String::new(), String::new());
        out.read_line(&mut url).expect("the PBX prints its URL");
        out.read_line(&mut control)
            .expect("the PBX prints its control URL");
        let pbx = Self {
            child,
            url: url.trim().to_owned(),
            control: control.trim().to_owned(),
        };
        assert!(pbx.url.starts_with("http://127.0.0.1:"), "{}", pbx.url);
        assert!(
            pbx.control.starts_with("http://127.0.0.1:"),
            "{}",
            pbx.control
        );
        pbx
    }
}

/// The PBX's status API: `GET /emulator/status`.
async fn pbx_status(control: &str) -> Value {
    let mut r = awc::Client::new()
        .get(format!("{control}/status"))
        .basic_auth("edgecc", "edgecc-secret")
        .send()
        .await
        .expect("GET /emulator/status");
    assert_eq!(r.status().as_u16(), 200);
    r.json().limit(16 << 20).await.expect("status JSON")
}

impl Drop for PbxProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The PBX's bridges with two or more channels (caller and agent), by id:
/// read over ARI, as a daemon would.
async fn talking_bridges(url: &str) -> Vec<(String, Vec<String>)> {
    let mut r = awc::Client::new()
        .get(format!("{url}/bridges"))
        .basic_auth("edgecc", "edgecc-secret")
        .send()
        .await
        .expect("GET /bridges");
    let v: Value = r.json().await.expect("bridges JSON");
    let mut out: Vec<(String, Vec<String>)> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| {
            let mut chans: Vec<String> = b["channels"]
                .as_array()?
                .iter()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect();
            chans.sort();
            (chans.len() >= 2).then(|| (b["id"].as_str().unwrap_or_default().to_owned(), chans))
        })
        .collect();
    out.sort();
    out
}

/// Goal: calls survive a daemon restart when the simulated PBX lives in
/// its own process, as with Asterisk (issue 15). Method: `edgecc
/// pbx-emulator` with one agent phone and one caller a second who talk
/// for minutes; `edgecc run` in front of it with agent a1 Ready; once a1
/// talks to a caller (a bridge with two channels at the PBX) the daemon is
/// SIGKILLed and started again on the same data directory. Expected: the
/// restarted daemon reports the call restored and re-adopted; the PBX
/// still has that bridge with the same two channels (nothing hung up).
#[actix_rt::test]
async fn a_call_survives_a_daemon_restart_in_front_of_the_pbx_process() {
    let dir = tempfile::tempdir().unwrap();
    let pbx = PbxProcess::start_talking();

    let crm = EmulatorHandle::start(EmulatorConfig {
        webhook_secret: Some(b"pbx-process-test".to_vec()),
        ..EmulatorConfig::default()
    })
    .await
    .expect("CRM emulator");
    let cc = config(&[("a1", "PJSIP/3101")], 8_000);
    let http = child::free_port().unwrap();
    let cfg = child::write_config(
        dir.path(),
        &ChildConfig {
            cc: &cc,
            ari_url: pbx.url.clone(),
            ari_user: ("edgecc".into(), "edgecc-secret".into()),
            crm_url: crm.webhook_url(),
            http,
            password_hash: edgecc::http::hash_password(AGENT_PASSWORD).unwrap(),
        },
    )
    .expect("daemon config");
    let launch = Launch {
        exe: env!("CARGO_BIN_EXE_edgecc").into(),
        config: cfg,
        data_dir: dir.path().join("data"),
        log: dir.path().join("daemon.log"),
    };
    let log = || std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default();
    let api = Api::new(http);
    let daemon = launch.spawn().expect("start the daemon");
    api.wait_ready(daemon.spawned, Duration::from_secs(60), false)
        .await
        .unwrap_or_else(|e| panic!("{e}: {}", log()));
    api.agent_ready("a1").await.expect("a1 Ready");
    let deadline = Instant::now() + Duration::from_secs(30);
    let before = loop {
        let b = talking_bridges(&pbx.url).await;
        if !b.is_empty() {
            break b;
        }
        assert!(Instant::now() < deadline, "a1 never talked: {}", log());
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(before.len(), 1, "one agent, one call: {before:?}");
    // Let the talking state be durable (a group commit), then kill.
    actix_rt::time::sleep(Duration::from_millis(500)).await;
    let at_kill = pbx_status(&pbx.control).await;
    assert_eq!(at_kill["pid"].as_u64(), Some(u64::from(pbx.child.id())));
    daemon.kill();

    let daemon = launch.spawn().expect("start the daemon again");
    let r = api
        .wait_ready(daemon.spawned, Duration::from_secs(60), true)
        .await
        .unwrap_or_else(|e| panic!("{e}: {}", log()));
    assert!(
        r.calls_restored >= 1 && r.calls_adopted >= 1,
        "{r:?}: {}",
        log()
    );
    // Past the orphan check (2 s): the call is still up as it was.
    actix_rt::time::sleep(Duration::from_millis(2_500)).await;
    let after = talking_bridges(&pbx.url).await;
    assert!(
        after.contains(&before[0]),
        "the call goes on at the PBX: before {before:?}, after {after:?}"
    );
    // By the PBX's own count, nothing was hung up or handed back since the
    // kill (the callers waiting behind a1 wait on).
    let now = pbx_status(&pbx.control).await;
    assert_eq!(now["tally"], at_kill["tally"], "{now:#}");
    assert!(daemon.stop(Duration::from_secs(10)).await, "{}", log());
    crm.stop().await;
}

/// Goal: a PBX process spawned with `--until-stdin-closes` does not
/// outlive the process that spawned it, however that one ends (the demo's
/// PBX). Method: spawn it with a pipe on its standard input, read its URL,
/// close the pipe. Expected: it exits, cleanly, within 10 s.
#[test]
fn the_pbx_process_goes_when_its_standard_input_closes() {
    let mut child = edgecc()
        .args(["pbx-emulator", "--port", "0", "--until-stdin-closes"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the PBX emulator");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the PBX prints its URL");
    assert!(line.starts_with("http://127.0.0.1:"), "{line}");
    let mut pbx = PbxProcess {
        child,
        url: line.trim().to_owned(),
        control: String::new(),
    };
    drop(pbx.child.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = pbx.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the PBX outlived its stdin");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}
