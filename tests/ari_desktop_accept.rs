//! Accepting on the desktop while the agent's phone rings (issue 16, item
//! 1), over ARI against the emulator: Asterisk cannot pick up an alerting
//! phone, so the call connects only when the phone answers. A phone that
//! never does makes the offer the agent's no-answer: the caller goes back
//! to the queue, and nothing tells the CRM the call was answered.

use edgecc::ari_emulator::EndpointBehaviour as B;
use edgecc_actors::ids::BridgeId;
use edgecc_actors::{AgentCommand, AgentId, CallAction, RecordKind};

use crate::ari_harness::*;

const A1: &str = "PJSIP/3001";
const A2: &str = "PJSIP/3002";

/// a1, the only Ready agent, accepts on its desktop; its phone rings and
/// never answers. a1 stays offered ("waiting for your phone") with no
/// bridge and no record; when the PBX gives up on the answer the offer is
/// a1's no-answer and the call waits in the queue again (the caller still
/// up). a2 then takes it: one interaction, one phone log, completed; no
/// call failed.
#[actix_rt::test]
async fn a_desktop_accept_on_a_silent_phone_is_a_no_answer() {
    let h = AriHarness::start(
        config(&[("a1", A1), ("a2", A2)], 8_000),
        &[(A1, B::RingForever), (A2, B::AnswerAfter { ring_ms: 100 })],
    )
    .await;
    h.ready("a1").await;
    h.cmd("a2", AgentCommand::Login).await.expect("a2 logs in");
    let call = h.inbound("5550161");
    h.until_agent("a1", "a1 offered", reserved).await;
    pause(300).await;
    h.cmd("a1", AgentCommand::Accept).await.expect("accept");
    h.until_call(&call, "a1 waits for its phone", |v| {
        v.answer_pending.iter().any(|a| a.as_str() == "a1") && v.phase == "offering"
    })
    .await;
    assert!(reserved(&h.state("a1").await), "a1 is not talking yet");
    assert!(
        h.kinds(&call).is_empty(),
        "nothing written: {:?}",
        h.kinds(&call)
    );
    // The adapter waits `remote_answer_wait` (3 s here) for the phone.
    h.until_agent("a1", "a1's offer ended", free).await;
    h.until_call(&call, "the caller waits in the queue again", |v| {
        v.phase == "queued"
    })
    .await;
    assert!(
        h.emu.state().channel(&call).is_some(),
        "the caller is still up"
    );
    assert!(
        h.kinds(&call).is_empty(),
        "nothing written: {:?}",
        h.kinds(&call)
    );
    assert!(h.updates(&call).is_empty());
    h.cmd("a2", AgentCommand::Ready).await.expect("a2 ready");
    h.until_agent("a2", "a2 talking", talking).await;
    let bridge = BridgeId::main(&call.as_str().into()).0;
    h.until_emu("caller bridged with a2", |s| {
        s.bridge(&bridge)
            .is_some_and(|b| b.channels.len() == 2 && b.channels.contains(&call))
    })
    .await;
    h.emu.caller_hangup(&call).unwrap();
    h.until_ended("completed", 1).await;
    let kinds = h.kinds(&call);
    assert_eq!(count(&kinds, RecordKind::InteractionCreate), 1, "{kinds:?}");
    assert_eq!(count(&kinds, RecordKind::PhoneLogCreate), 1, "{kinds:?}");
    assert_eq!(h.ended().await.get("failed"), None);
}

/// The same for a consult: a2, consulted, accepts on its desktop and its
/// phone never answers. Nothing is bridged while a2 waits; then the consult
/// fails as a2's no-answer and the call goes on with a1 (before, the
/// consult bridge refused a2's unanswered leg and the whole call failed).
#[actix_rt::test]
async fn a_desktop_accept_of_a_consult_on_a_silent_phone_keeps_the_call() {
    let h = AriHarness::start(
        config(&[("a1", A1), ("a2", A2)], 8_000),
        &[(A1, B::AnswerAfter { ring_ms: 100 }), (A2, B::RingForever)],
    )
    .await;
    h.ready("a1").await;
    let call = h.inbound("5550162");
    h.until_agent("a1", "a1 talking", talking).await;
    h.ready("a2").await;
    h.act(
        "a1",
        CallAction::Consult {
            target: AgentId::new("a2"),
        },
    )
    .await
    .expect("consult");
    h.until_agent("a2", "a2 offered", reserved).await;
    h.cmd("a2", AgentCommand::Accept).await.expect("accept");
    h.until_call(&call, "a2 waits for its phone", |v| {
        v.answer_pending.iter().any(|a| a.as_str() == "a2")
    })
    .await;
    assert!(reserved(&h.state("a2").await), "a2 is not talking yet");
    h.until_agent("a2", "a2's consult ended", free).await;
    h.until_call(&call, "the call goes on with a1", |v| {
        v.phase == "connected" && v.parties.iter().map(|a| a.as_str()).eq(["a1"])
    })
    .await;
    assert!(talking(&h.state("a1").await));
    assert_eq!(h.ended().await.get("failed"), None);
    assert!(
        h.emu.state().channel(&call).is_some(),
        "the caller is still up"
    );
    h.emu.caller_hangup(&call).unwrap();
    h.until_ended("completed", 1).await;
}

/// Over HTTP on the daemon wired for ARI: the accept answers 200 with the
/// call `waiting_for_phone` and the agent still `reserved`; the desktop
/// keeps showing it until the phone is picked up, then the agent talks
/// and the caller is bridged to the phone.
#[actix_rt::test]
async fn the_desktop_shows_waiting_for_the_phone() {
    use edgecc::ari_emulator::{AriEmulator, AriEmulatorConfig};
    use serde_json::json;
    let emu = AriEmulator::start(AriEmulatorConfig::default()).unwrap();
    emu.set_endpoint(A1, B::Manual);
    let mut config = crate::util::http_config(3_600_000, 3_600_000);
    let mut s = settings(&emu);
    s.remote_answer_wait = std::time::Duration::from_secs(8);
    config.pbx = edgecc::pbx::PbxKind::Ari(Box::new(s));
    config.contact_center.agents[0].endpoint = Some(A1.into());
    let t = crate::util::HttpTest::start(config).await;
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
    let call = emu
        .inbound_call("5552161", "Dan", "+18005550100", &[])
        .unwrap();
    t.wait_me(&ann, "offer", |v| v["offer"] == true).await;
    let (s, v) = t
        .call(
            "POST",
            &format!("/api/v1/calls/{call}/accept"),
            Some(&ann),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let waiting = t
        .wait_me(&ann, "waiting for the phone", |v| {
            v["call"]["waiting_for_phone"] == true
        })
        .await;
    assert_eq!(waiting["agent"]["state"], "reserved", "{waiting}");
    assert_eq!(waiting["offer"], true, "{waiting}");
    // The desktop shows the offer once the actors made it; the dial
    // reaches the PBX after that: wait for it.
    let phone = until_leg_at(&emu, &call, A1).await;
    emu.answer(&phone).unwrap();
    let talking = t
        .wait_me(&ann, "talking", |v| v["agent"]["state"] == "talking")
        .await;
    assert_eq!(talking["call"]["waiting_for_phone"], false, "{talking}");
    let bridge = BridgeId::main(&call.as_str().into()).0;
    let e = emu.clone();
    until("caller and ann's phone bridged", move || {
        e.state()
            .bridge(&bridge)
            .is_some_and(|b| b.channels.len() == 2)
    })
    .await;
}
