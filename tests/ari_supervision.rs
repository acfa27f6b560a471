//! Supervisors on a real call over ARI (issue 16, item 2), through the
//! actors' facade as the API drives it: monitor and whisper reach the
//! supervisor's device against an emulator that refuses channel ids the
//! way Asterisk 22 does (a new id that prefixes a live one's), leaving
//! leaves nothing behind, and a join the PBX refuses is an error, over the
//! registry and over HTTP.

use edgecc::ari_emulator::EndpointBehaviour as B;
use edgecc_actors::call::supervision::SuperviseMode;
use edgecc_actors::registry::{SuperviseAgent, Supervising};
use edgecc_actors::{AgentId, CcError};

use crate::ari_harness::*;

const A1: &str = "PJSIP/3001";
const SUP: &str = "PJSIP/3999";

/// The supervisor `sue` joins (`Some(mode)`) or leaves (`None`) a1's call.
async fn supervise(h: &AriHarness, mode: Option<SuperviseMode>) -> Result<Supervising, CcError> {
    h.registry
        .send(SuperviseAgent {
            supervisor: "sue".into(),
            endpoint: SUP.into(),
            agent: AgentId::new("a1"),
            mode,
        })
        .await
        .expect("registry answers")
}

/// Monitor, then whisper: the snoop channel on the agent's leg and the
/// supervisor's device end up in one bridge; no request was refused; on
/// leave the snoop channel, the supervisor's leg and their bridge are gone
/// while the call goes on.
#[actix_rt::test]
async fn monitor_and_whisper_reach_the_supervisor_and_leave_nothing() {
    let h = AriHarness::start(
        config(&[("a1", A1)], 8_000),
        &[
            (A1, B::AnswerAfter { ring_ms: 100 }),
            (SUP, B::AnswerAfter { ring_ms: 100 }),
        ],
    )
    .await;
    h.ready("a1").await;
    let call = h.inbound("5550016");
    h.until_agent("a1", "talking", talking).await;
    let leg = h.legs_of(&call).pop().expect("agent leg");
    for (mode, whisper) in [
        (SuperviseMode::Monitor, "none"),
        (SuperviseMode::Whisper, "out"),
    ] {
        let joined = supervise(&h, Some(mode)).await.expect("join");
        let sup = joined.leg.expect("supervisor leg").0;
        let what = format!("{mode:?}: snoop and supervisor bridged");
        h.until_emu(&what, |s| {
            let Some(spy) = s
                .channels
                .iter()
                .find(|c| c.snoop_of.as_deref() == Some(&leg))
            else {
                return false;
            };
            spy.snoop_spy == "both"
                && spy.snoop_whisper == whisper
                && s.channel(&sup).is_some_and(|c| c.state == "Up")
                && s.bridges
                    .iter()
                    .any(|b| b.channels.contains(&spy.id) && b.channels.contains(&sup))
        })
        .await;
        let refused: Vec<String> = h
            .emu
            .requests()
            .iter()
            .filter(|r| r.status == 409 || r.status >= 500)
            .map(|r| format!("{} {} {}", r.method, r.path, r.status))
            .collect();
        assert!(refused.is_empty(), "{mode:?}: Asterisk refused {refused:?}");
        supervise(&h, None).await.expect("leave");
        h.until_emu(&format!("{mode:?}: nothing left after leaving"), |s| {
            !s.channels.iter().any(|c| c.snoop_of.is_some())
                && s.channel(&sup).is_none()
                && !s.bridges.iter().any(|b| b.id.starts_with("s~"))
        })
        .await;
    }
    assert!(talking(&h.state("a1").await), "the call goes on");
    assert!(h.emu.state().channel(&leg).is_some());
    h.emu.caller_hangup(&call).unwrap();
    h.until_ended("completed", 1).await;
}

/// A join the PBX cannot carry out (the supervisor's device does not
/// exist: Asterisk answers 500 "Allocation failed") is an error for the
/// supervisor, the call shows no supervisor, and no snoop channel is left.
#[actix_rt::test]
async fn a_join_the_pbx_refuses_is_an_error() {
    let h = AriHarness::start(
        config(&[("a1", A1)], 8_000),
        &[(A1, B::AnswerAfter { ring_ms: 100 }), (SUP, B::Unreachable)],
    )
    .await;
    h.ready("a1").await;
    let call = h.inbound("5550017");
    h.until_agent("a1", "talking", talking).await;
    for mode in [SuperviseMode::Monitor, SuperviseMode::Barge] {
        let r = supervise(&h, Some(mode)).await;
        assert!(matches!(r, Err(CcError::Pbx(_))), "{mode:?}: {r:?}");
        h.until_emu(&format!("{mode:?}: no snoop left"), |s| {
            !s.channels.iter().any(|c| c.snoop_of.is_some())
        })
        .await;
        let view = h.call(&call).await.expect("live call");
        assert!(view.supervisors.is_empty(), "{mode:?}: {view:?}");
        // Nobody to leave.
        assert!(supervise(&h, None).await.is_err());
    }
    h.emu.caller_hangup(&call).unwrap();
    h.until_ended("completed", 1).await;
}

/// Over HTTP on the daemon wired for ARI: a supervisor whose device
/// Asterisk cannot dial gets an error (502), not 200.
#[actix_rt::test]
async fn a_refused_join_is_an_http_error() {
    use edgecc::ari_emulator::{AriEmulator, AriEmulatorConfig};
    use serde_json::json;
    let emu = AriEmulator::start(AriEmulatorConfig::default()).unwrap();
    emu.set_endpoint(A1, B::AnswerAfter { ring_ms: 100 });
    let mut config = crate::util::http_config(3_600_000, 3_600_000);
    config.pbx = edgecc::pbx::PbxKind::Ari(Box::new(settings(&emu)));
    config.contact_center.agents[0].endpoint = Some(A1.into());
    // `sue`'s device is `sim/sue`: no such endpoint at an Asterisk.
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
    emu.inbound_call("5552016", "Dan", "+18005550100", &[])
        .unwrap();
    t.wait_me(&ann, "talking", |v| v["agent"]["state"] == "talking")
        .await;
    let sue = t.login("sue").await;
    let (s, v) = t
        .call("POST", "/api/v1/agents/ann/monitor", Some(&sue), None)
        .await;
    assert_eq!(s, 502, "{v}");
    assert_eq!(v["error"], "pbx_failed", "{v}");
    assert!(
        !emu.channels().iter().any(|c| c.snoop_of.is_some()),
        "no snoop left"
    );
}
