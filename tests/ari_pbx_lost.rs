//! Calls the PBX dropped, against the emulator, recorded as what they are
//! (`pbx_lost`) rather than as ordinary endings (issue 16): Asterisk shut
//! down or restarted at once with calls up (`core stop now`, `core restart
//! now`: every channel gets a soft hang-up request with cause 4 before the
//! WebSocket closes), and Asterisk gone for good (no reconnect within
//! `lost_after_ms`). The edgecc-and-Asterisk-restart-together case is in
//! `ari_restart`.

use std::time::Duration;

use edgecc::ari_emulator::EndpointBehaviour as B;
use edgecc::ari_emulator::{AriEmulator, AriEmulatorConfig};
use edgecc_actors::agent::AgentState;
use edgecc_actors::ids::BridgeId;
use edgecc_actors::RecordKind;

use crate::ari_harness::*;

const A1: &str = "PJSIP/3101";
const A2: &str = "PJSIP/3102";

/// Three calls on the harness: one a1 talks on, one ringing at a2 (its
/// phone never answers by itself), one waiting in the queue. Answers
/// their ids in that order.
async fn three_calls(h: &AriHarness) -> [String; 3] {
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
    [talking_call, ringing_call, queued_call]
}

/// What the three calls of [`three_calls`] must show once the PBX dropped
/// them: all three `pbx_lost`, none `completed`, `abandoned` or
/// `overflowed`; the talking call's `ended` update says `pbx_lost`; the
/// two callers nobody answered get their interaction and a callback work
/// item with reason `pbx_lost`; a1 is free, a2 Ready with no RONA counted.
async fn all_lost(h: &AriHarness, [talking_call, ringing_call, queued_call]: &[String; 3]) {
    h.until_ended("pbx_lost", 3).await;
    let ended = h.ended().await;
    assert_eq!(ended.values().sum::<u64>(), 3, "{ended:?}");
    let records = h.outbox.records_of(&talking_call.as_str().into());
    let last = records.last().expect("records of the talking call");
    assert_eq!(last.body["event"], "ended");
    assert_eq!(last.body["terminal"]["reason"], "pbx_lost");
    for call in [ringing_call, queued_call] {
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
    h.until_agent("a2", "a2 Ready", |s| matches!(s, AgentState::Ready { .. }))
        .await;
    let snap = h.snapshot().await;
    let a2 = snap
        .agents
        .iter()
        .find(|a| a.agent.as_str() == "a2")
        .expect("a2");
    assert_eq!(a2.stats.rona_count, 0);
    assert_eq!(snap.terminal_anomalies, 0);
}

/// Goal: `core restart now` with calls up is a PBX loss, not three
/// ordinary endings (issue 16). Asterisk sends events this time: a soft
/// hang-up request with cause 4 for every channel, StasisEnd, then the
/// WebSocket closes and it comes back with a new start-up time. Method:
/// a1 talking, a2 ringing, a caller queued; the emulator restarts as
/// `core restart now` does. Expected: the three calls end `pbx_lost` with
/// their records (see [`all_lost`]); the link comes back and a new call is
/// routed. Before the fix the caller's StasisEnd ended the talking call
/// `completed` and the others `abandoned`.
#[actix_rt::test]
async fn core_restart_now_ends_calls_pbx_lost() {
    let h = AriHarness::start(
        config(&[("a1", A1), ("a2", A2)], 8_000),
        &[(A1, B::AnswerAfter { ring_ms: 100 }), (A2, B::Manual)],
    )
    .await;
    let calls = three_calls(&h).await;
    h.emu.shutdown_now(true);
    all_lost(&h, &calls).await;
    h.link_up().await;
    let next = h.inbound("5551104");
    h.until_agent("a1", "a1 offered the next call", |s| !free(s))
        .await;
    assert!(h.call(&next).await.is_some());
}

/// Goal: calls of an Asterisk that is gone for good end, with their
/// records, and free their agents (issue 16); one that comes back inside
/// `lost_after_ms` is re-adopted as before. Method: `lost_after_ms` 1.5 s;
/// a1 talking, a2 ringing, a caller queued; the link drops for 0.3 s and
/// heals (re-adopted: a1 still talking, nothing ended); then Asterisk dies
/// (every channel gone, no event) and takes no connection again.
/// Expected: after the bound, the three calls end `pbx_lost` with their
/// records ([`all_lost`]) although the link never came back.
#[actix_rt::test]
async fn calls_of_an_asterisk_gone_for_good_end_pbx_lost() {
    let emu = AriEmulator::start(AriEmulatorConfig::default()).expect("emulator starts");
    emu.set_endpoint(A1, B::AnswerAfter { ring_ms: 100 });
    emu.set_endpoint(A2, B::Manual);
    let mut s = settings(&emu);
    s.lost_after = Duration::from_millis(1_500);
    let h = AriHarness::start_with_settings(emu, config(&[("a1", A1), ("a2", A2)], 8_000), s).await;
    let calls = three_calls(&h).await;

    h.emu.set_accept_links(false);
    h.emu.drop_links();
    let ari = h.ari.clone();
    until("the adapter sees the link down", move || !ari.link_is_up()).await;
    pause(300).await;
    h.emu.set_accept_links(true);
    h.link_up().await;
    pause(1_700).await;
    assert!(h.ended().await.is_empty(), "{:?}", h.ended().await);
    assert!(talking(&h.state("a1").await), "re-adopted");

    h.emu.set_accept_links(false);
    h.emu.restart_pbx();
    let started = std::time::Instant::now();
    all_lost(&h, &calls).await;
    assert!(!h.ari.link_is_up(), "Asterisk never came back");
    assert!(
        started.elapsed() >= Duration::from_millis(1_400),
        "not before the bound: {:?}",
        started.elapsed()
    );
}
