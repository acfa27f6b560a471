//! Every call path of the actors, over ARI against the emulator: accept,
//! reject, no answer (RONA), busy, unreachable agent, abandon while queued
//! and while ringing, hold, mute, blind transfer, consult then transfer /
//! conference / cancel, supervisor monitor and barge, outbound dial, and
//! duplicated events. Each test drives the real actors through
//! `edgecc::ari::AriPbx` and checks both sides: what the actors concluded
//! (agent states, terminal reasons, CRM records) and what Asterisk (the
//! emulator) was left with (channels, bridges, hold, mute).

use edgecc::ari_emulator::EndpointBehaviour as B;
use edgecc_actors::ids::BridgeId;
use edgecc_actors::{AgentCommand, AgentId, CallAction, LegId, PbxCommand, PbxPort, RecordKind};

use crate::ari_harness::*;

const A1: &str = "PJSIP/3001";
const A2: &str = "PJSIP/3002";
const A3: &str = "PJSIP/3003";

fn answer_after(ms: u64) -> B {
    B::AnswerAfter { ring_ms: ms }
}

/// Accept: the call is answered, the caller waits with music, the agent's
/// phone rings and answers, both end up in the call's mixing bridge; when
/// the caller hangs up edgecc tears the agent leg and the bridge down
/// (bridges do not pass hang-ups on). One interaction and one phone log.
#[actix_rt::test]
async fn accept_connects_and_caller_hangup_tears_down() {
    let h = AriHarness::start(config(&[("a1", A1)], 8_000), &[(A1, answer_after(300))]).await;
    h.ready("a1").await;
    let call = h.inbound("5551234");
    h.until_agent("a1", "talking", talking).await;
    let bridge = BridgeId::main(&call.as_str().into()).0;
    let leg = h.legs_of(&call).pop().expect("agent leg");
    h.until_emu("caller and agent bridged", |s| {
        s.bridge(&bridge)
            .is_some_and(|b| b.channels.contains(&call) && b.channels.contains(&leg))
    })
    .await;
    let st = h.emu.state();
    assert_eq!(st.channel(&call).map(|c| c.state.as_str()), Some("Up"));
    assert_eq!(
        st.channel(&call).map(|c| c.moh),
        Some(false),
        "music stops on connect"
    );
    assert!(
        h.requests("POST", &format!("/ari/channels/{call}/moh")) >= 1,
        "caller heard music while waiting"
    );
    h.emu.caller_hangup(&call).unwrap();
    h.until_ended("completed", 1).await;
    h.until_agent("a1", "free", free).await;
    h.until_emu("agent leg and bridge gone", |s| {
        s.channel(&leg).is_none() && s.bridge(&bridge).is_none()
    })
    .await;
    let kinds = h.kinds(&call);
    assert_eq!(count(&kinds, RecordKind::InteractionCreate), 1);
    assert_eq!(count(&kinds, RecordKind::PhoneLogCreate), 1);
}

/// Reject, busy and unreachable: the first agent's failure (classified
/// from dialstatus and cause) sends the call to the next agent, and the
/// failing agent is not left Reserved.
#[actix_rt::test]
async fn reject_busy_unreachable_move_to_next_agent() {
    for (name, behaviour) in [
        ("reject", B::Reject),
        ("busy", B::Busy),
        ("unreachable", B::Unreachable),
    ] {
        let h = AriHarness::start(
            config(&[("a1", A1), ("a2", A2)], 8_000),
            &[(A1, behaviour), (A2, answer_after(200))],
        )
        .await;
        h.ready("a1").await;
        h.ready("a2").await;
        // a1 has been idle longest: it is offered first.
        let call = h.inbound("5550001");
        h.until_agent("a2", &format!("{name}: a2 talking"), talking)
            .await;
        h.until_agent("a1", &format!("{name}: a1 not reserved"), free)
            .await;
        let legs: Vec<_> = h.legs_of(&call);
        assert_eq!(legs.len(), 1, "{name}: only a2's leg is left: {legs:?}");
        // a2 shows Talking once the answer is seen; joining the bridge is
        // the next command, so wait for it rather than race it.
        let bridge = BridgeId::main(&call.as_str().into()).0;
        h.until_emu(&format!("{name}: a2's leg in the call's bridge"), |st| {
            st.bridge(&bridge)
                .is_some_and(|b| b.channels.contains(&legs[0]))
        })
        .await;
        h.emu.caller_hangup(&call).unwrap();
        h.until_ended("completed", 1).await;
    }
}

/// RONA: the phone rings past the offer timeout; edgecc hangs the leg up
/// and offers the call to the next agent; the first agent ends Not Ready,
/// not Reserved.
#[actix_rt::test]
async fn no_answer_rona_moves_on() {
    let h = AriHarness::start(
        config(&[("a1", A1), ("a2", A2)], 1_000),
        &[(A1, B::RingForever), (A2, answer_after(100))],
    )
    .await;
    h.ready("a1").await;
    h.ready("a2").await;
    let call = h.inbound("5550002");
    h.until_agent("a1", "a1 reserved", reserved).await;
    let first = h.until_leg(&call, A1).await;
    h.until_agent("a2", "a2 talking after RONA", talking).await;
    h.until_agent("a1", "a1 released", free).await;
    h.until_emu("a1's ringing leg hung up", |s| s.channel(&first).is_none())
        .await;
    h.emu.caller_hangup(&call).unwrap();
    h.until_ended("completed", 1).await;
}

/// Abandon while queued (no agent ready) and while ringing: the call ends
/// abandoned with a callback work item; the ringing agent's leg is hung up
/// and the agent released.
#[actix_rt::test]
async fn abandon_while_queued_and_while_ringing() {
    let h = AriHarness::start(config(&[("a1", A1)], 8_000), &[(A1, B::RingForever)]).await;
    let queued = h.inbound("5550003");
    h.until_call(&queued, "queued", |c| c.phase == "queued")
        .await;
    h.emu.caller_hangup(&queued).unwrap();
    h.until_ended("abandoned", 1).await;
    assert!(h.kinds(&queued).contains(&RecordKind::WorkItemCreate));

    h.ready("a1").await;
    let ringing = h.inbound("5550004");
    h.until_agent("a1", "a1 reserved", reserved).await;
    let leg = h.until_leg(&ringing, A1).await;
    h.emu.caller_hangup(&ringing).unwrap();
    h.until_ended("abandoned", 2).await;
    h.until_agent("a1", "a1 released", free).await;
    h.until_emu("ringing leg hung up", |s| s.channel(&leg).is_none())
        .await;
    assert!(h.kinds(&ringing).contains(&RecordKind::WorkItemCreate));
}

/// Hold and mute: the held caller leaves the bridge and hears music on
/// hold; on resume the music stops and it is back with the agent; the
/// agent leg is muted and unmuted; each step is an update.
#[actix_rt::test]
async fn hold_and_mute() {
    let h = AriHarness::start(config(&[("a1", A1)], 8_000), &[(A1, answer_after(100))]).await;
    h.ready("a1").await;
    let call = h.inbound("5550005");
    h.until_agent("a1", "talking", talking).await;
    let leg = h.legs_of(&call).pop().expect("agent leg");
    let bridge = BridgeId::main(&call.as_str().into()).0;
    h.act("a1", CallAction::Hold).await.unwrap();
    // Held: out of the bridge (it neither hears nor is heard by the agent)
    // and hearing music.
    h.until_emu("caller hears music, out of the bridge", |s| {
        s.channel(&call)
            .is_some_and(|c| c.moh && c.bridge_id.is_none())
            && s.bridge(&bridge)
                .is_some_and(|b| b.channels == vec![leg.clone()])
    })
    .await;
    h.act("a1", CallAction::Resume).await.unwrap();
    h.until_emu("music stopped, back in the bridge", |s| {
        s.channel(&call)
            .is_some_and(|c| !c.moh && c.bridge_id.as_deref() == Some(bridge.as_str()))
    })
    .await;
    h.act("a1", CallAction::Mute).await.unwrap();
    h.until_emu("agent muted", |s| s.channel(&leg).is_some_and(|c| c.muted))
        .await;
    h.act("a1", CallAction::Unmute).await.unwrap();
    h.until_emu("agent unmuted", |s| {
        s.channel(&leg).is_some_and(|c| !c.muted)
    })
    .await;
    h.act("a1", CallAction::HangUp).await.unwrap();
    h.until_ended("completed", 1).await;
    h.until_emu("caller hung up by edgecc", |s| s.channel(&call).is_none())
        .await;
    let u = h.updates(&call);
    for e in ["hold", "resume", "mute", "unmute", "ended"] {
        assert!(u.iter().any(|x| x == e), "{e} missing from {u:?}");
    }
}

/// Blind transfer: a1 hands the caller to a2; a1's leg is hung up, the
/// caller hears music while a2 rings, then talks to a2 in the same bridge.
#[actix_rt::test]
async fn blind_transfer_to_agent() {
    let h = AriHarness::start(
        config(&[("a1", A1), ("a2", A2)], 8_000),
        &[(A1, answer_after(100)), (A2, answer_after(300))],
    )
    .await;
    h.ready("a1").await;
    let call = h.inbound("5550006");
    h.until_agent("a1", "a1 talking", talking).await;
    let leg1 = h.legs_of(&call).pop().unwrap();
    h.ready("a2").await;
    h.act(
        "a1",
        CallAction::TransferToAgent {
            target: AgentId::new("a2"),
        },
    )
    .await
    .unwrap();
    h.until_agent("a2", "a2 talking", talking).await;
    h.until_agent("a1", "a1 left", free).await;
    let bridge = BridgeId::main(&call.as_str().into()).0;
    h.until_emu("caller with a2 only", |s| {
        s.channel(&leg1).is_none()
            && s.bridge(&bridge)
                .is_some_and(|b| b.channels.len() == 2 && b.channels.contains(&call))
    })
    .await;
    assert!(h.updates(&call).iter().any(|e| e == "transfer"));
    h.emu.caller_hangup(&call).unwrap();
    h.until_ended("completed", 1).await;
}

/// Consult, then each ending: transfer (a2 gets the caller, a1 leaves),
/// conference (all three in one bridge), cancel (a2's leg drops, caller
/// back with a1). The consult bridge is gone after each.
#[actix_rt::test]
async fn consult_then_transfer_conference_cancel() {
    for ending in ["transfer", "conference", "cancel"] {
        let h = AriHarness::start(
            config(&[("a1", A1), ("a2", A2)], 8_000),
            &[(A1, answer_after(100)), (A2, answer_after(200))],
        )
        .await;
        h.ready("a1").await;
        let call = h.inbound("5550007");
        h.until_agent("a1", "a1 talking", talking).await;
        let leg1 = h.legs_of(&call).pop().unwrap();
        h.ready("a2").await;
        h.act(
            "a1",
            CallAction::Consult {
                target: AgentId::new("a2"),
            },
        )
        .await
        .unwrap();
        let consult = BridgeId::consult(&call.as_str().into()).0;
        let main = BridgeId::main(&call.as_str().into()).0;
        h.until_emu(&format!("{ending}: a1 and a2 in the consult bridge"), |s| {
            s.bridge(&consult)
                .is_some_and(|b| b.channels.len() == 2 && b.channels.contains(&leg1))
        })
        .await;
        assert!(
            h.emu.state().channel(&call).is_some_and(|c| c.moh),
            "{ending}: caller holds with music"
        );
        let leg2 = h
            .legs_of(&call)
            .into_iter()
            .find(|l| *l != leg1)
            .expect("a2's leg");
        match ending {
            "transfer" => {
                h.act("a1", CallAction::CompleteConsult).await.unwrap();
                h.until_agent("a1", "a1 left", free).await;
                h.until_emu("caller with a2", |s| {
                    s.channel(&leg1).is_none()
                        && s.bridge(&main).is_some_and(|b| {
                            b.channels.contains(&call)
                                && b.channels.contains(&leg2)
                                && b.channels.len() == 2
                        })
                })
                .await;
            }
            "conference" => {
                h.act("a1", CallAction::ConferenceConsult).await.unwrap();
                h.until_emu("three in the main bridge", |s| {
                    s.bridge(&main).is_some_and(|b| {
                        b.channels.len() == 3
                            && [&call, &leg1, &leg2].iter().all(|x| b.channels.contains(x))
                    })
                })
                .await;
                h.until_call(&call, "two parties", |c| c.parties.len() == 2)
                    .await;
            }
            _ => {
                h.act("a1", CallAction::CancelConsult).await.unwrap();
                h.until_agent("a2", "a2 released", free).await;
                h.until_emu("a2's leg gone, caller back with a1", |s| {
                    s.channel(&leg2).is_none()
                        && s.bridge(&main).is_some_and(|b| {
                            b.channels.contains(&call) && b.channels.contains(&leg1)
                        })
                })
                .await;
            }
        }
        h.until_emu(&format!("{ending}: consult bridge destroyed"), |s| {
            s.bridge(&consult).is_none()
        })
        .await;
        assert!(
            !h.emu.state().channel(&call).is_some_and(|c| c.moh),
            "{ending}: music off"
        );
        h.emu.caller_hangup(&call).unwrap();
        h.until_ended("completed", 1).await;
        h.until_agent("a2", "a2 free at the end", free).await;
    }
}

/// Supervisor monitor and whisper (snoop channel bridged with the
/// supervisor's device) and barge (the supervisor joins the call's bridge),
/// sent straight through the port. The monitor goes when the supervisor
/// hangs up.
#[actix_rt::test]
async fn monitor_whisper_and_barge() {
    const SUP: &str = "PJSIP/3999";
    let h = AriHarness::start(
        config(&[("a1", A1)], 8_000),
        &[(A1, answer_after(100)), (SUP, answer_after(100))],
    )
    .await;
    h.ready("a1").await;
    let call = h.inbound("5550008");
    h.until_agent("a1", "talking", talking).await;
    let leg = h.legs_of(&call).pop().unwrap();
    for (n, whisper) in [(901u64, false), (902, true)] {
        let sup = format!("{call}~{n}");
        h.ari
            .send(PbxCommand::Snoop {
                snoop_leg_id: LegId::new(sup.clone()),
                leg_id: LegId::new(leg.clone()),
                whisper,
                endpoint: SUP.into(),
            })
            .await
            .unwrap();
        let spy = format!("{call}~spy{n}");
        let bridge = format!("s~{sup}");
        h.until_emu("spy and supervisor bridged", |s| {
            s.channel(&spy).is_some_and(|c| {
                c.snoop_of.as_deref() == Some(leg.as_str())
                    && c.snoop_spy == "both"
                    && c.snoop_whisper == if whisper { "out" } else { "none" }
            }) && s
                .bridge(&bridge)
                .is_some_and(|b| b.channels.contains(&spy) && b.channels.contains(&sup))
        })
        .await;
        h.emu.far_end_hangup(&sup, 16).unwrap();
        h.until_emu("monitor torn down", |s| {
            s.channel(&spy).is_none() && s.bridge(&bridge).is_none()
        })
        .await;
    }
    let barger = format!("{call}~903");
    let main = BridgeId::main(&call.as_str().into());
    h.ari
        .send(PbxCommand::Barge {
            leg_id: LegId::new(barger.clone()),
            bridge_id: main.clone(),
            endpoint: SUP.into(),
        })
        .await
        .unwrap();
    h.until_emu("supervisor in the call's bridge", |s| {
        s.bridge(&main.0)
            .is_some_and(|b| b.channels.len() == 3 && b.channels.contains(&barger))
    })
    .await;
    // The actors did not ask for the barge: their talk goes on.
    assert!(talking(&h.state("a1").await));
    h.emu.caller_hangup(&call).unwrap();
    h.until_ended("completed", 1).await;
}

/// Outbound: the agent's phone is rung first, then the customer (through
/// `outbound_endpoint`); both are bridged when the customer answers.
#[actix_rt::test]
async fn outbound_dial() {
    let customer_ep = "Local/5557777@edgecc-outbound";
    let h = AriHarness::start(
        config(&[("a1", A1)], 8_000),
        &[(A1, answer_after(100)), (customer_ep, answer_after(200))],
    )
    .await;
    h.cmd("a1", AgentCommand::Login).await.unwrap();
    h.cmd(
        "a1",
        AgentCommand::DialOutbound {
            number: "5557777".into(),
        },
    )
    .await
    .unwrap();
    h.until_agent("a1", "talking", talking).await;
    let deadline = std::time::Instant::now() + WAIT;
    let (call, legs) = loop {
        let chans = h.emu.channels();
        if let Some(c) = chans
            .iter()
            .find(|c| c.id.ends_with("~c") && c.state == "Up")
        {
            let call = c.id.trim_end_matches("~c").to_string();
            break (call.clone(), h.legs_of(&call));
        }
        assert!(
            std::time::Instant::now() < deadline,
            "customer never answered: {chans:?}"
        );
        pause(10).await;
    };
    assert_eq!(legs.len(), 2, "{legs:?}");
    let main = BridgeId::main(&call.as_str().into()).0;
    h.until_emu("agent and customer bridged", |s| {
        s.bridge(&main)
            .is_some_and(|b| legs.iter().all(|l| b.channels.contains(l)))
    })
    .await;
    h.act("a1", CallAction::HangUp).await.unwrap();
    h.until_ended("completed", 1).await;
    h.until_emu("both legs gone", |s| {
        legs.iter().all(|l| s.channel(l).is_none())
    })
    .await;
}

/// Duplicated events (every event but StasisStart twice, as with an
/// endpoint subscription): each fact still counts once: one answer, one
/// connect, one set of records, the agent free after the call.
#[actix_rt::test]
async fn duplicated_events_count_once() {
    let h = AriHarness::start(
        config(&[("a1", A1), ("a2", A2), ("a3", A3)], 8_000),
        &[
            (A1, B::Busy),
            (A2, answer_after(200)),
            (A3, answer_after(200)),
        ],
    )
    .await;
    h.emu.set_duplicate_events(true);
    h.ready("a1").await;
    h.ready("a2").await;
    let call = h.inbound("5550009");
    h.until_agent("a2", "a2 talking", talking).await;
    h.emu.caller_hangup(&call).unwrap();
    h.until_ended("completed", 1).await;
    h.until_agent("a2", "a2 free", free).await;
    assert!(free(&h.state("a1").await));
    let kinds = h.kinds(&call);
    assert_eq!(count(&kinds, RecordKind::InteractionCreate), 1, "{kinds:?}");
    assert_eq!(count(&kinds, RecordKind::PhoneLogCreate), 1, "{kinds:?}");
    assert!(
        h.ari.stats().frames_duplicate > 0,
        "the duplicates arrived and were dropped"
    );
    assert_eq!(h.snapshot().await.terminal_anomalies, 0);
}

/// A queue's final destinations over ARI: an external number sends the
/// caller on in the redirect context (`continue`, the channel leaves
/// Stasis and stays up in the dialplan; no hang-up is reported for it; no
/// callback work item, since another destination may answer); an
/// announcement is played to the end before the caller is hung up (a
/// callback work item).
#[actix_rt::test]
async fn final_destinations_redirect_and_announcement() {
    use edgecc_actors::config::FinalDestination;
    for dest in ["external", "announcement"] {
        let mut cfg = config(&[("a1", A1)], 8_000);
        cfg.queues[0].max_wait_ms = 300;
        cfg.queues[0].final_destination = if dest == "external" {
            FinalDestination::External {
                number: "5559999".into(),
            }
        } else {
            FinalDestination::Announcement {
                prompt: "queue-closed".into(),
            }
        };
        let h = AriHarness::start(cfg, &[]).await;
        h.emu.set_playback_ms(400);
        let call = h.inbound("5550010");
        if dest == "external" {
            h.until_ended("overflowed", 1).await;
            h.until_emu("caller continues in the redirect context", |s| {
                s.channel(&call).is_some_and(|c| {
                    !c.in_stasis && c.context == "edgecc-redirect" && c.exten == "5559999"
                })
            })
            .await;
            pause(200).await;
            assert!(
                h.emu.state().channel(&call).is_some(),
                "not hung up by edgecc"
            );
        } else {
            h.until_ended("timed_out", 1).await;
            h.until_emu("caller hung up after the prompt", |s| {
                s.channel(&call).is_none()
            })
            .await;
            let reqs = h.emu.requests();
            let play = reqs
                .iter()
                .find(|r| {
                    r.method == "POST" && r.path.starts_with(&format!("/ari/channels/{call}/play"))
                })
                .expect("prompt played");
            assert!(play.path.contains("queue-closed"), "{}", play.path);
            let hangup = reqs
                .iter()
                .find(|r| {
                    r.method == "DELETE" && r.path.starts_with(&format!("/ari/channels/{call}"))
                })
                .expect("hang-up");
            let waited = hangup.at.duration_since(play.at);
            assert!(
                waited >= std::time::Duration::from_millis(350),
                "hung up {waited:?} after the prompt started: it was cut off"
            );
        }
        // A caller handed to an external number is recorded as overflowed
        // (the `ended` update), with no callback work item; one the queue
        // gave up on gets the callback.
        let kinds = h.kinds(&call);
        assert_eq!(
            kinds.contains(&RecordKind::WorkItemCreate),
            dest == "announcement",
            "{dest}: {kinds:?}"
        );
        assert_eq!(h.snapshot().await.terminal_anomalies, 0);
    }
}

/// `waiting_media = "ringing"`: a queued caller hears ringing (not music),
/// which stops when an agent answers.
#[actix_rt::test]
async fn waiting_callers_can_hear_ringing() {
    use edgecc::ari::settings::WaitingMedia;
    use edgecc::ari_emulator::{AriEmulator, AriEmulatorConfig};
    let emu = AriEmulator::start(AriEmulatorConfig::default()).unwrap();
    emu.set_endpoint(A1, answer_after(100));
    let mut s = settings(&emu);
    s.waiting_media = WaitingMedia::Ringing;
    let h = AriHarness::start_with_settings(emu, config(&[("a1", A1)], 8_000), s).await;
    let call = h.inbound("5550011");
    h.until_call(&call, "queued", |c| c.phase == "queued").await;
    let ring = format!("/ari/channels/{call}/ring");
    let h2 = h.emu.clone();
    until("ringing started", move || {
        h2.requests()
            .iter()
            .any(|r| r.method == "POST" && r.path.starts_with(&ring))
    })
    .await;
    assert_eq!(h.requests("POST", &format!("/ari/channels/{call}/moh")), 0);
    h.ready("a1").await;
    h.until_agent("a1", "talking", talking).await;
    let (h2, ring) = (h.emu.clone(), format!("/ari/channels/{call}/ring"));
    until("ringing stopped", move || {
        h2.requests()
            .iter()
            .any(|r| r.method == "DELETE" && r.path.starts_with(&ring))
    })
    .await;
    h.emu.caller_hangup(&call).unwrap();
    h.until_ended("completed", 1).await;
}

/// Goal: devices that are always busy (cause 17) or always reject (cause
/// 21) leave the rotation (issue 16: two such agents each collected 10
/// rejects in 12 calls). Method: a1's device always answers busy, a2's
/// always rejects, `routing.device_refusals_max` at its default (3); three
/// callers queue. Expected: each call is refused by both devices, and after
/// their third refusal both agents are Not Ready with the system reason
/// `device_unreachable`, three rejects each; a fourth caller then waits
/// without a single originate more.
#[actix_rt::test]
async fn devices_that_always_refuse_leave_the_rotation() {
    use edgecc_actors::agent::{AgentState, NotReadyReason, SystemReason};
    let h = AriHarness::start(
        config(&[("a1", A1), ("a2", A2)], 8_000),
        &[(A1, B::Busy), (A2, B::Reject)],
    )
    .await;
    h.ready("a1").await;
    h.ready("a2").await;
    let unreachable = |s: &AgentState| {
        *s == AgentState::NotReady {
            reason: NotReadyReason::System(SystemReason::DeviceUnreachable),
        }
    };
    for n in 0..3 {
        h.inbound(&format!("555002{n}"));
        pause(300).await;
    }
    h.until_agent("a1", "a1 out of rotation", unreachable).await;
    h.until_agent("a2", "a2 out of rotation", unreachable).await;
    let snap = h.snapshot().await;
    for a in &snap.agents {
        assert_eq!(a.stats.reject_count, 3, "{}", a.agent);
        assert_eq!(a.stats.rona_count, 0, "{}", a.agent);
    }
    // Originates are `POST /ari/channels?…` (other channel requests have
    // a path segment after it).
    let originates = || h.requests("POST", "/ari/channels?");
    let before = originates();
    assert!(before >= 6, "each call rang both devices: {before}");
    let fourth = h.inbound("5550029");
    h.until_call(&fourth, "queued", |c| c.phase == "queued")
        .await;
    pause(300).await;
    assert_eq!(originates(), before, "nobody was rung");
}
