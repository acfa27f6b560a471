//! A desktop across a daemon restart, in the browser (issue 15): the
//! daemon (`edgecc run`, a child process in front of `edgecc pbx-emulator`,
//! its own process too) is SIGKILLed while the agent talks and started
//! again on the same data directory and port; the page, never refreshed,
//! reconnects by itself and shows the same screen (the same call, still
//! talking), and its session token still works.

use std::time::{Duration, Instant};

use edgecc::crm::emulator::{EmulatorConfig, EmulatorHandle};
use edgecc::demo::child::{self, Api, ChildConfig, Launch, AGENT_PASSWORD};
use serde_json::{json, Value};

use super::{desk_state, Browser};
use crate::ari_harness::config;
use crate::ari_pbx_process::PbxProcess;

/// Longest wait for the page to come back after the restart (the
/// desktop's reconnect backoff reaches 5 s while the daemon is down).
const BACK_WAIT: Duration = Duration::from_secs(45);

/// Polls the JS expression `expr` until it is true or `wait` passed.
async fn until(b: &Browser, what: &str, expr: &str, wait: Duration, log: impl Fn() -> String) {
    let deadline = Instant::now() + wait;
    let script = format!("try {{ return !!({expr}); }} catch (e) {{ return false; }}");
    while b.js(&script).await != json!(true) {
        if Instant::now() >= deadline {
            b.screenshot(&format!("timeout-{}", what.replace(' ', "-")))
                .await;
            let page = b.js("return document.body.innerText").await;
            panic!(
                "timed out waiting for {what}; page:\n{page}\ndaemon log:\n{}",
                log()
            );
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Goal: a desktop reconnects by itself to a restarted daemon and shows
/// the same screen, with no refresh. Method: agent a1 logs in on the
/// desktop page and goes Ready; a caller of the PBX process talks to it;
/// the page gets a marker; the daemon is SIGKILLed (the page shows it is
/// reconnecting) and started again on the same data directory and port.
/// Expected: the page (marker still there: not reloaded) is back online,
/// talking on the same call, and the token it holds still answers 200
/// on `GET /api/v1/me` with that call.
#[actix_rt::test]
async fn http_browser_desktop_comes_back_by_itself_after_a_daemon_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let pbx = PbxProcess::start_talking();
    let crm = EmulatorHandle::start(EmulatorConfig {
        webhook_secret: Some(b"browser-restart-test".to_vec()),
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

    let b = Browser::start().await;
    b.goto(&format!("http://{http}/")).await;
    b.wait("login form", "!document.getElementById('login').hidden")
        .await;
    b.type_into("#login-id", "a1").await;
    b.type_into("#login-password", AGENT_PASSWORD).await;
    b.click("#login-submit").await;
    b.wait("desktop", &desk_state("logged_out")).await;
    api.agent_ready("a1").await.expect("a1 Ready");
    until(&b, "talking", &desk_state("talking"), BACK_WAIT, log).await;
    let call = b.js("return snap.call.call_id").await;
    assert!(call.as_str().is_some_and(|c| !c.is_empty()), "{call}");
    b.js("window.edgeccBeforeTheKill = true; return null").await;
    b.screenshot("30-restart-before").await;
    // Let the talking state be durable (a group commit), then kill.
    actix_rt::time::sleep(Duration::from_millis(500)).await;
    daemon.kill();
    until(&b, "reconnecting", "Edge.online === false", BACK_WAIT, log).await;

    let daemon = launch.spawn().expect("start the daemon again");
    api.wait_ready(daemon.spawned, Duration::from_secs(60), true)
        .await
        .unwrap_or_else(|e| panic!("{e}: {}", log()));
    let same_screen = format!(
        "Edge.online === true && window.edgeccBeforeTheKill === true && {} && snap.call.call_id === {call}",
        desk_state("talking")
    );
    until(&b, "the same screen", &same_screen, BACK_WAIT, log).await;
    b.screenshot("31-restart-after").await;
    assert_eq!(
        b.js("return document.getElementById('outage').hidden")
            .await,
        json!(true),
        "the outage banner is gone"
    );
    // The token the page holds still works.
    b.js("window.edgeccMe = null; fetch('/api/v1/me', {headers: {Authorization: 'Bearer ' + Edge.token()}}).then(async (r) => { window.edgeccMe = {status: r.status, body: await r.json()}; }); return null")
        .await;
    until(
        &b,
        "GET /api/v1/me",
        "window.edgeccMe !== null",
        BACK_WAIT,
        log,
    )
    .await;
    let me: Value = b.js("return window.edgeccMe").await;
    assert_eq!(me["status"], json!(200), "{me}");
    assert_eq!(me["body"]["agent"]["state"], json!("talking"), "{me}");
    assert_eq!(me["body"]["call"]["call_id"], call, "{me}");
    // Loads refused while the daemon was down are expected; no script error is.
    let errors = b.console_errors(&["/api/v1/", "ERR_CONNECTION"]).await;
    b.quit().await;
    assert!(daemon.stop(Duration::from_secs(10)).await, "{}", log());
    crm.stop().await;
    drop(pbx);
    assert!(errors.is_empty(), "{errors:?}");
}
