//! Who owns the ARI application (issue 16, item 6): when another client
//! opens a WebSocket for the same application, Asterisk sends it every
//! event and tells edgecc `ApplicationReplaced` (as the emulator does,
//! from the capture). edgecc does not take the application back by itself
//! (two boxes on one application would take it from each other for ever):
//! it raises the alarm (`/readyz` not ready with the reason, a metric) and
//! waits for an operator to take it back.

use std::time::Duration;

use edgecc::ari_emulator::EndpointBehaviour as B;
use futures_util::StreamExt as _;

use crate::ari_harness::*;

const A1: &str = "PJSIP/3001";

/// A second client's events WebSocket for the application.
struct Intruder {
    /// The connection (awc's framed socket).
    conn: actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>,
    /// Event types received, in order.
    types: Vec<String>,
}

impl Intruder {
    async fn connect(h_emu: &edgecc::ari_emulator::AriEmulator) -> Intruder {
        let url = format!(
            "{}?app=edgecc&subscribeAll=false&api_key=edgecc:edgecc-secret",
            h_emu.ws_url()
        );
        let (_, conn) = awc::Client::new()
            .ws(url)
            .connect()
            .await
            .expect("second client connects");
        Intruder {
            conn,
            types: Vec::new(),
        }
    }

    /// Reads frames for `wait`.
    async fn read_for(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, self.conn.next()).await {
            if let awc::ws::Frame::Text(b) = frame {
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&b) {
                    self.types
                        .push(v["type"].as_str().unwrap_or_default().to_owned());
                }
            }
        }
    }
}

/// Another client takes the application: edgecc's link goes down and
/// stays down (well past its reconnect backoff), the other client keeps
/// the application and gets the calls; when an operator takes it back,
/// edgecc reconnects, the other client is the one replaced, and calls
/// reach edgecc's agents again.
#[actix_rt::test]
async fn another_client_keeps_the_application_until_it_is_taken_back() {
    let h = AriHarness::start(
        config(&[("a1", A1)], 8_000),
        &[(A1, B::AnswerAfter { ring_ms: 100 })],
    )
    .await;
    h.ready("a1").await;
    let owner = h.ari.app_ownership();
    assert_eq!(owner.taken_over_since_ms(), None);
    assert!(!owner.take_back(), "nothing to take back yet");
    let mut intruder = Intruder::connect(&h.emu).await;
    let ari = h.ari.clone();
    let o = owner.clone();
    until("edgecc's link down, taken over", move || {
        !ari.link_is_up() && o.taken_over_since_ms().is_some()
    })
    .await;
    // Ten times the reconnect backoff's cap (200 ms here).
    intruder.read_for(Duration::from_millis(2_000)).await;
    assert!(
        !intruder.types.iter().any(|t| t == "ApplicationReplaced"),
        "edgecc took the application back by itself: {:?}",
        intruder.types
    );
    assert!(!h.ari.link_is_up());
    assert_eq!(owner.takeovers(), 1);
    // A call now goes to the other client, not to edgecc's agents.
    let theirs = h.inbound("5550060");
    intruder.read_for(Duration::from_millis(300)).await;
    assert!(
        intruder.types.iter().any(|t| t == "StasisStart"),
        "{:?}",
        intruder.types
    );
    assert!(h.call(&theirs).await.is_none());

    assert!(owner.take_back(), "an operator takes it back");
    h.link_up().await;
    intruder.read_for(Duration::from_millis(300)).await;
    assert!(
        intruder.types.iter().any(|t| t == "ApplicationReplaced"),
        "{:?}",
        intruder.types
    );
    assert_eq!(owner.taken_over_since_ms(), None);
    assert!(!owner.take_back(), "edgecc owns it: nothing to take back");
    h.emu.caller_hangup(&theirs).unwrap();
    let call = h.inbound("5550061");
    h.until_agent("a1", "a1 talking", talking).await;
    h.emu.caller_hangup(&call).unwrap();
    h.until_ended("completed", 1).await;
}

/// Over HTTP on the daemon wired for ARI: while another client owns the
/// application `/readyz` is 503 with `pbx: taken_over` and what to do,
/// `/metrics` has the alarm, and an admin's `POST
/// /api/v1/admin/pbx/take_back` (refused to an agent, and when there is
/// nothing to take back) makes the box ready again.
#[actix_rt::test]
async fn readyz_metrics_and_the_admin_take_back() {
    use edgecc::ari_emulator::{AriEmulator, AriEmulatorConfig};
    let emu = AriEmulator::start(AriEmulatorConfig::default()).unwrap();
    let mut config = crate::util::http_config(3_600_000, 3_600_000);
    config.pbx = edgecc::pbx::PbxKind::Ari(Box::new(settings(&emu)));
    let t = crate::util::HttpTest::start(config).await;
    let ready = || async {
        let (s, v) = t.call("GET", "/readyz", None, None).await;
        (s, v)
    };
    let deadline = std::time::Instant::now() + WAIT;
    while ready().await.0 != 200 {
        assert!(std::time::Instant::now() < deadline, "never ready");
        pause(50).await;
    }
    let root = t.login("root").await;
    let (s, v) = t
        .call("POST", "/api/v1/admin/pbx/take_back", Some(&root), None)
        .await;
    assert_eq!(s, 409, "nothing to take back: {v}");
    let _intruder = Intruder::connect(&emu).await;
    let (s, v) = loop {
        let (s, v) = ready().await;
        if s != 200 {
            break (s, v);
        }
        assert!(std::time::Instant::now() < deadline, "still ready: {v}");
        pause(50).await;
    };
    assert_eq!(s, 503, "{v}");
    assert_eq!(v["pbx"], "taken_over", "{v}");
    assert!(
        v["pbx_detail"]["taken_over_since_ms"].as_u64().is_some(),
        "{v}"
    );
    assert!(
        v["pbx_detail"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("take_back")),
        "{v}"
    );
    let metrics = || async {
        let mut res = t
            .client()
            .get(t.url("/metrics"))
            .send()
            .await
            .expect("metrics");
        String::from_utf8_lossy(&res.body().await.expect("body")).into_owned()
    };
    let m = metrics().await;
    assert!(m.contains("edgecc_ari_app_taken_over 1"), "{m}");
    assert!(m.contains("edgecc_ari_app_takeovers_total 1"), "{m}");
    // Still taken over well past the reconnect backoff.
    pause(1_000).await;
    assert_eq!(ready().await.1["pbx"], "taken_over");
    let ann = t.login("ann").await;
    let (s, v) = t
        .call("POST", "/api/v1/admin/pbx/take_back", Some(&ann), None)
        .await;
    assert_eq!(s, 403, "{v}");
    let (s, v) = t
        .call("POST", "/api/v1/admin/pbx/take_back", Some(&root), None)
        .await;
    assert_eq!(s, 200, "{v}");
    while ready().await.0 != 200 {
        assert!(
            std::time::Instant::now() < deadline + WAIT,
            "not ready again"
        );
        pause(50).await;
    }
    let m = metrics().await;
    assert!(m.contains("edgecc_ari_app_taken_over 0"), "{m}");
    assert!(emu.app_active());
}
