//! The ARI link under stress, against the emulator: the WebSocket dropped
//! mid-call and during an offer (the connected call stays up and is
//! re-adopted with its agent and interaction; the ringing offer is resolved
//! exactly once; no agent ends up Reserved), commands failing fast while
//! the link is down and a hang-up asked for meanwhile done after the
//! reconnect, and malformed, truncated, absurd or unknown frames skipped
//! without losing the link.

use edgecc::ari_emulator::EndpointBehaviour as B;
use edgecc::ari_emulator::{FaultKind, RestFault};
use edgecc_actors::ids::BridgeId;
use edgecc_actors::{CallAction, HangupCause, LegId, PbxCommand, PbxError, PbxPort, RecordKind};

use crate::ari_harness::*;

const A1: &str = "PJSIP/3101";
const A2: &str = "PJSIP/3102";

/// Drops the link (refusing reconnects) and waits until the adapter knows.
async fn cut(h: &AriHarness) {
    h.emu.set_accept_links(false);
    h.emu.drop_links();
    let ari = h.ari.clone();
    until("the adapter sees the link down", move || !ari.link_is_up()).await;
}

/// Lets the adapter reconnect and waits for its reconcile.
async fn heal(h: &AriHarness) {
    h.emu.set_accept_links(true);
    h.link_up().await;
}

/// Agent a1 (answers after 100 ms) talking on a call from `ani`: the
/// harness and the call id.
async fn talking_call(ani: &str) -> (AriHarness, String) {
    let h = AriHarness::start(
        config(&[("a1", A1)], 8_000),
        &[(A1, B::AnswerAfter { ring_ms: 100 })],
    )
    .await;
    h.ready("a1").await;
    let call = h.inbound(ani);
    h.until_agent("a1", "talking", talking).await;
    // The agent is talking once the leg answered; the bridge follows. A
    // link cut before it (seen under a loaded full suite) is another case
    // (the bridge fails and the call ends), so wait for the bridge too.
    let bridge = edgecc_actors::ids::BridgeId::main(&call.as_str().into()).0;
    h.until_emu("the caller and the agent bridged", |s| {
        s.bridge(&bridge).is_some_and(|b| b.channels.len() == 2)
    })
    .await;
    (h, call)
}

/// Mid-call drop: the call stays up at Asterisk, the adapter reconnects
/// and re-adopts it silently; the agent is still talking on the same
/// interaction, and a later hang-up completes it normally with one
/// interaction and one phone log.
#[actix_rt::test]
async fn drop_mid_call_readopts_the_call() {
    let (h, call) = talking_call("5551000").await;
    let leg = h.legs_of(&call).pop().unwrap();
    let connects = h.ari.stats().connects;
    cut(&h).await;
    // Commands fail fast while the link is down; the actors keep the call.
    let r = h
        .ari
        .send(PbxCommand::Mute {
            leg_id: LegId::new(leg.clone()),
        })
        .await;
    assert_eq!(r, Err(PbxError::LinkDown));
    pause(300).await;
    heal(&h).await;
    assert!(h.ari.stats().connects > connects);
    assert!(talking(&h.state("a1").await), "agent still on the call");
    h.until_call(&call, "still connected", |c| c.phase == "connected")
        .await;
    let bridge = BridgeId::main(&call.as_str().into()).0;
    assert!(h
        .emu
        .state()
        .bridge(&bridge)
        .is_some_and(|b| b.channels.contains(&call) && b.channels.contains(&leg)));
    // The call goes on as usual after the reconnect.
    h.act("a1", CallAction::Hold).await.unwrap();
    h.until_emu("hold works again", |s| {
        s.channel(&call).is_some_and(|c| c.moh)
    })
    .await;
    h.emu.caller_hangup(&call).unwrap();
    h.until_ended("completed", 1).await;
    h.until_agent("a1", "free", free).await;
    let kinds = h.kinds(&call);
    assert_eq!(count(&kinds, RecordKind::InteractionCreate), 1);
    assert_eq!(count(&kinds, RecordKind::PhoneLogCreate), 1);
    assert_eq!(h.snapshot().await.terminal_anomalies, 0);
}

/// Drop during an offer, answered meanwhile: as on a real Asterisk, an
/// originated channel answered while no WebSocket is connected cannot
/// enter `Stasis()` and is hung up; the reconcile finds it gone and ends
/// the offer exactly once; the call goes to the next agent, the first one
/// is not left Reserved, and the ringing offer is never "answered".
#[actix_rt::test]
async fn drop_during_offer_answered_meanwhile() {
    let h = AriHarness::start(
        config(&[("a1", A1), ("a2", A2)], 8_000),
        &[(A1, B::Manual), (A2, B::AnswerAfter { ring_ms: 100 })],
    )
    .await;
    h.ready("a1").await;
    h.ready("a2").await;
    let call = h.inbound("5551001");
    h.until_agent("a1", "reserved", reserved).await;
    let leg = h.until_leg(&call, A1).await;
    cut(&h).await;
    h.emu.answer(&leg).unwrap();
    pause(200).await;
    heal(&h).await;
    h.until_agent("a2", "a2 takes the call", talking).await;
    h.until_agent("a1", "a1 released", free).await;
    let main = BridgeId::main(&call.as_str().into()).0;
    h.until_emu("a1's leg gone, a2 bridged", |s| {
        s.channel(&leg).is_none()
            && s.bridge(&main)
                .is_some_and(|b| b.channels.len() == 2 && !b.channels.contains(&leg))
    })
    .await;
    h.emu.caller_hangup(&call).unwrap();
    h.until_ended("completed", 1).await;
    let kinds = h.kinds(&call);
    assert_eq!(count(&kinds, RecordKind::PhoneLogCreate), 1);
}

/// Drop during an offer whose phone gave up meanwhile: the reconcile finds
/// the channel gone and ends the offer once (no answer); the call goes to
/// the next agent; the first is not left Reserved.
#[actix_rt::test]
async fn drop_during_offer_vanished_meanwhile() {
    let h = AriHarness::start(
        config(&[("a1", A1), ("a2", A2)], 8_000),
        &[(A1, B::Manual), (A2, B::AnswerAfter { ring_ms: 100 })],
    )
    .await;
    h.ready("a1").await;
    h.ready("a2").await;
    let call = h.inbound("5551002");
    h.until_agent("a1", "reserved", reserved).await;
    let leg = h.until_leg(&call, A1).await;
    cut(&h).await;
    h.emu.far_end_hangup(&leg, 21).unwrap();
    pause(200).await;
    heal(&h).await;
    h.until_agent("a2", "a2 takes the call", talking).await;
    h.until_agent("a1", "a1 released", free).await;
    h.emu.caller_hangup(&call).unwrap();
    h.until_ended("completed", 1).await;
}

/// A hang-up asked while the link is down: refused at once (the actors
/// go on), then done after the reconnect; the caller is not left hanging.
#[actix_rt::test]
async fn hangup_while_down_is_done_after_reconnect() {
    let (h, call) = talking_call("5551003").await;
    let leg = h.legs_of(&call).pop().unwrap();
    cut(&h).await;
    // The agent hangs up on the desktop: the actors end the call and ask
    // for both legs to go; the adapter refuses (link down) but remembers.
    h.act("a1", CallAction::HangUp).await.unwrap();
    h.until_ended("completed", 1).await;
    h.until_agent("a1", "free", free).await;
    assert!(
        h.emu.state().channel(&call).is_some(),
        "nothing reached Asterisk yet"
    );
    heal(&h).await;
    h.until_emu("both legs hung up after the reconnect", |s| {
        s.channel(&call).is_none() && s.channel(&leg).is_none()
    })
    .await;
    assert_eq!(h.snapshot().await.terminal_anomalies, 0);
}

/// A hang-up through the port while down is refused with LinkDown, and
/// the leg it named is hung up once the link is back.
#[actix_rt::test]
async fn port_hangup_while_down() {
    let h = AriHarness::start(config(&[("a1", A1)], 8_000), &[]).await;
    let call = h.inbound("5551004");
    h.until_call(&call, "queued", |c| c.phase == "queued").await;
    cut(&h).await;
    let r = h
        .ari
        .send(PbxCommand::Hangup {
            leg_id: LegId::new(call.clone()),
            cause: HangupCause::Normal,
        })
        .await;
    assert_eq!(r, Err(PbxError::LinkDown));
    heal(&h).await;
    h.until_emu("caller hung up", |s| s.channel(&call).is_none())
        .await;
    h.until_ended("abandoned", 1).await;
}

/// Malformed JSON, a truncated frame, absurd values and unknown event
/// types are skipped; the link stays up (no reconnect) and calls still
/// work afterwards.
#[actix_rt::test]
async fn bad_frames_are_skipped() {
    let h = AriHarness::start(
        config(&[("a1", A1)], 8_000),
        &[(A1, B::AnswerAfter { ring_ms: 100 })],
    )
    .await;
    h.ready("a1").await;
    let connects = h.ari.stats().connects;
    let frames = [
        "{",
        "not json at all",
        "[1,2,3]",
        r#"{"type":"StasisStart","timestamp":"2026-11-21T16:39:01.374+0000","args":["inbound"],"channel":{"id":"trunc"#,
        r#"{"type":"StasisStart","args":"inbound","channel":{"id":"x1"}}"#,
        r#"{"type":"StasisStart","args":["inbound"],"channel":{"id":""}}"#,
        r#"{"type":"ChannelDestroyed","cause":"sixteen","channel":{"id":"x2"}}"#,
        r#"{"type":"ChannelDestroyed","cause":99999999999,"channel":{"id":"nobody"}}"#,
        r#"{"type":"Dial","dialstatus":17,"peer":{"id":"x3"}}"#,
        r#"{"type":"ChannelDtmfReceived","digit":"too long","channel":{"id":"nobody"}}"#,
        r#"{"type":"BrandNewEventType","timestamp":"2099-99-99T99:99:99.999+9999","whatever":{}}"#,
        r#"{"type":"ChannelVarset","variable":"BRIDGEPEER","value":"x"}"#,
        "\u{0}\u{1}\u{2}",
    ];
    for f in frames {
        h.emu.send_raw_frame(f);
    }
    let big = format!(r#"{{"type":"X","pad":"{}"}}"#, "a".repeat(300 * 1024));
    h.emu.send_raw_frame(&big);
    let ari = h.ari.clone();
    until("bad frames counted", move || {
        ari.stats().frames_skipped >= 7
    })
    .await;
    assert!(h.ari.link_is_up());
    assert_eq!(h.ari.stats().connects, connects, "no reconnect");
    // A call still works.
    let call = h.inbound("5551005");
    h.until_agent("a1", "talking", talking).await;
    h.emu.caller_hangup(&call).unwrap();
    h.until_ended("completed", 1).await;
    assert_eq!(
        h.snapshot().await.calls.len(),
        0,
        "no phantom calls from the bad frames"
    );
}

/// `edgecc check-config --probe` logs in to ARI: it reports the Asterisk
/// version with the right password, and fails naming the 401 with a wrong
/// one.
#[test]
fn check_config_probe_logs_in() {
    let emu = edgecc::ari_emulator::AriEmulator::start(Default::default()).expect("emulator");
    let dir = tempfile::tempdir().unwrap();
    let c = emu.config().clone();
    for (password, ok) in [(c.password.clone(), true), ("wrong".to_string(), false)] {
        let pw = dir.path().join("ari_password");
        std::fs::write(&pw, format!("{password}\n")).unwrap();
        let file = dir.path().join("edgecc.toml");
        std::fs::write(
            &file,
            format!(
                "[pbx]\nkind = \"ari\"\n[pbx.ari]\nurl = \"{}\"\nuser = \"{}\"\npassword_file = \"{}\"\n",
                emu.base_url(),
                c.user,
                pw.display()
            ),
        )
        .unwrap();
        let out = crate::util::run(&["check-config", file.to_str().unwrap(), "--probe"]);
        let (stdout, stderr) = (crate::util::stdout(&out), crate::util::stderr(&out));
        assert_eq!(out.status.success(), ok, "{stdout}\n{stderr}");
        if ok {
            assert!(
                stdout.contains("credentials accepted; Asterisk"),
                "{stdout}"
            );
            assert!(
                !stdout.contains(&c.password),
                "the password is never printed"
            );
        } else {
            assert!(stderr.contains("401"), "{stderr}");
        }
    }
}

/// The daemon wired with `[pbx] kind = "ari"` (`system::SystemParts`, as
/// `edgecc run` does) over its HTTP API: an agent goes Ready on the API,
/// a call through the emulator is offered to its phone and connected,
/// the agent holds and hangs up from the API, and Asterisk is left clean.
#[actix_rt::test]
async fn daemon_runs_on_ari_over_http() {
    use edgecc::ari_emulator::{AriEmulator, AriEmulatorConfig};
    use serde_json::json;
    let emu = AriEmulator::start(AriEmulatorConfig::default()).unwrap();
    emu.set_endpoint(A1, B::AnswerAfter { ring_ms: 100 });
    let mut config = crate::util::http_config(3_600_000, 3_600_000);
    config.pbx = edgecc::pbx::PbxKind::Ari(Box::new(settings(&emu)));
    config.contact_center.agents[0].endpoint = Some(A1.into());
    let t = crate::util::HttpTest::start(config).await;
    assert!(t.running.sim.is_none());
    let e = emu.clone();
    until("the daemon's ARI link is up", move || e.app_active()).await;
    let ann = t.login("ann").await;
    for state in ["login", "ready"] {
        let (s, v) = t
            .call(
                "POST",
                "/api/v1/agent/state",
                Some(&ann),
                Some(json!({"state": state})),
            )
            .await;
        assert_eq!(s, 200, "{state}: {v}");
    }
    // A call that arrives while the adapter still reconciles is buffered
    // and handled right after: no need to wait for more than the WebSocket.
    let call = emu
        .inbound_call("5552000", "Dan", "+18005550100", &[])
        .unwrap();
    let bridge = BridgeId::main(&call.as_str().into()).0;
    let e = emu.clone();
    let b = bridge.clone();
    until("caller and ann's phone bridged", move || {
        e.state().bridge(&b).is_some_and(|b| b.channels.len() == 2)
    })
    .await;
    let path = |a: &str| format!("/api/v1/calls/{call}/{a}");
    let (s, v) = t.call("POST", &path("hold"), Some(&ann), None).await;
    assert_eq!(s, 200, "{v}");
    let e = emu.clone();
    let c = call.clone();
    until("caller on hold", move || {
        e.state().channel(&c).is_some_and(|c| c.moh)
    })
    .await;
    let (s, v) = t.call("POST", &path("hangup"), Some(&ann), None).await;
    assert_eq!(s, 200, "{v}");
    let e = emu.clone();
    until("Asterisk left clean", move || {
        let s = e.state();
        s.channels.is_empty() && s.bridges.is_empty()
    })
    .await;
}

/// Goal: an originate that gets no answer while the event link is up does
/// not stop routing. Method: the emulator holds the first `POST /channels`
/// past the adapter's request timeout; the adapter must reconnect and
/// reconcile, report the link up again, and the queue must offer the call
/// again, to the same agent, who answers.
#[actix_rt::test]
async fn an_originate_without_answer_does_not_stop_routing() {
    let emu = edgecc::ari_emulator::AriEmulator::start(Default::default()).expect("emulator");
    emu.set_endpoint(A1, B::AnswerAfter { ring_ms: 100 });
    let mut s = settings(&emu);
    s.request_timeout = std::time::Duration::from_millis(300);
    let h = AriHarness::start_with_settings(emu, config(&[("a1", A1)], 8_000), s).await;
    h.ready("a1").await;
    let connects = h.ari.stats().connects;
    h.emu.inject_rest_fault(RestFault {
        method: "POST".into(),
        path: "channels".into(),
        times: 1,
        kind: FaultKind::Hang(std::time::Duration::from_millis(1_000)),
    });
    let call = h.inbound("5551000");
    h.until_agent("a1", "talking", talking).await;
    assert!(
        h.ari.stats().connects > connects,
        "the link was not restarted"
    );
    assert!(h.ari.link_is_up());
    h.act("a1", CallAction::HangUp).await.unwrap();
    h.until_ended("completed", 1).await;
    assert_eq!(count(&h.kinds(&call), RecordKind::PhoneLogCreate), 1);
}

/// Goal: a hang-up Asterisk refuses (500) is asked again until the
/// channel is gone, so no caller is left in Stasis with nobody on the
/// call. Method: the agent hangs up while the emulator answers the first
/// two `DELETE`s of the caller's channel with 500.
#[actix_rt::test]
async fn a_refused_hangup_is_asked_again() {
    let (h, call) = talking_call("5551000").await;
    h.emu.inject_rest_fault(RestFault {
        method: "DELETE".into(),
        path: format!("channels/{call}"),
        times: 2,
        kind: FaultKind::Status(500),
    });
    h.act("a1", CallAction::HangUp).await.unwrap();
    let id = call.clone();
    h.until_emu("the caller's channel is gone", move |s| {
        s.channel(&id).is_none()
    })
    .await;
    let deletes = h.requests("DELETE", &format!("/ari/channels/{call}?"));
    assert_eq!(deletes, 3, "two refused, one done");
    // The emulator forgets the channel before its StasisEnd reaches the
    // adapter over the WebSocket: wait for the adapter to let go too.
    until("the adapter tracks no leg", || h.ari.legs_tracked() == 0).await;
}

/// Goal: once the daemon stops taking calls, a new inbound call goes back
/// to the dialplan at once rather than waiting in Stasis for nobody, while
/// a call already taken goes on. Method: one call connected, then
/// `stop_taking_calls`, then a second call arrives.
#[actix_rt::test]
async fn calls_arriving_while_stopping_go_back_to_the_dialplan() {
    let h = AriHarness::start(
        config(&[("a1", A1), ("a2", A2)], 8_000),
        &[
            (A1, B::AnswerAfter { ring_ms: 100 }),
            (A2, B::AnswerAfter { ring_ms: 100 }),
        ],
    )
    .await;
    h.ready("a1").await;
    let first = h.inbound("5551000");
    h.until_agent("a1", "talking", talking).await;
    h.ready("a2").await;
    h.ari.stop_taking_calls();
    let second = h.inbound("5552000");
    let path = format!("/ari/channels/{second}/continue");
    until("the new call is handed back", || {
        h.requests("POST", &path) == 1
    })
    .await;
    assert!(
        h.legs_of(&second).is_empty(),
        "no agent was offered the call"
    );
    assert!(h.call(&second).await.is_none(), "no call actor took it");
    assert!(talking(&h.state("a1").await), "the first call goes on");
    h.act("a1", CallAction::HangUp).await.unwrap();
    h.until_ended("completed", 1).await;
    assert_eq!(count(&h.kinds(&first), RecordKind::PhoneLogCreate), 1);
}

/// Goal: an Asterisk restart with calls up is recorded as what it is, not
/// as ordinary endings (issue 16). Method: a1 talks to one caller, a2's
/// phone rings for a second, a third waits in the queue; the emulated
/// Asterisk restarts (links close, every channel and bridge vanishes
/// without an event, its start-up time changes), then takes connections
/// again. Expected: the reconcile after the reconnect sees the new start-up
/// time and ends the three calls `pbx_lost`, none `completed` or
/// `abandoned`; the talking call's `ended` update says `pbx_lost`; the two
/// callers nobody answered get their interaction and a callback work item
/// with reason `pbx_lost`; a2, whose phone was ringing, is Ready with no
/// RONA counted; the registry counts them `pbx_lost` (the figure
/// `edgecc_calls_ended_total{outcome="pbx_lost"}` reports).
#[actix_rt::test]
async fn an_asterisk_restart_ends_calls_pbx_lost() {
    let h = AriHarness::start(
        config(&[("a1", A1), ("a2", A2)], 8_000),
        &[(A1, B::AnswerAfter { ring_ms: 100 }), (A2, B::Manual)],
    )
    .await;
    h.ready("a1").await;
    let talking_call = h.inbound("5551101");
    h.until_agent("a1", "talking", talking).await;
    let bridge = BridgeId::main(&talking_call.as_str().into()).0;
    h.until_emu("the caller and a1 bridged", |s| {
        s.bridge(&bridge).is_some_and(|b| b.channels.len() == 2)
    })
    .await;
    h.ready("a2").await;
    let ringing_call = h.inbound("5551102");
    h.until_agent("a2", "reserved", reserved).await;
    let queued_call = h.inbound("5551103");
    h.until_call(&queued_call, "queued", |c| c.phase == "queued")
        .await;

    h.emu.set_accept_links(false);
    h.emu.restart_pbx();
    let ari = h.ari.clone();
    until("the adapter sees the link down", move || !ari.link_is_up()).await;
    heal(&h).await;

    h.until_ended("pbx_lost", 3).await;
    let ended = h.ended().await;
    assert_eq!(ended.get("completed"), None, "{ended:?}");
    assert_eq!(ended.get("abandoned"), None, "{ended:?}");
    let records = h.outbox.records_of(&talking_call.as_str().into());
    let last = records.last().expect("records of the talking call");
    assert_eq!(last.body["event"], "ended");
    assert_eq!(last.body["terminal"]["reason"], "pbx_lost");
    for call in [&ringing_call, &queued_call] {
        let records = h.outbox.records_of(&call.as_str().into());
        let kinds: Vec<_> = records.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            vec![RecordKind::InteractionCreate, RecordKind::WorkItemCreate],
            "{call}"
        );
        assert_eq!(records[0].body["reason"], "pbx_lost", "{call}");
        assert_eq!(records[1].body["reason"], "pbx_lost", "{call}");
    }
    h.until_agent("a1", "a1 free", free).await;
    h.until_agent("a2", "a2 Ready", |s| {
        matches!(s, edgecc_actors::agent::AgentState::Ready { .. })
    })
    .await;
    let snap = h.snapshot().await;
    let a2 = snap
        .agents
        .iter()
        .find(|a| a.agent.as_str() == "a2")
        .unwrap();
    assert_eq!(a2.stats.rona_count, 0);
    assert_eq!(snap.terminal_anomalies, 0);
}
