//! Scenario tests: each drives the actors through the simulated PBX with
//! tokio's paused clock and checks one rule of the spec.

mod util;

use edgecc_actors::agent::{AgentState, NotReadyReason, SystemReason};
use edgecc_actors::config::{FinalDestination, Strategy};
use edgecc_actors::sim::{GetSimStats, PhoneAction, RestartPbx};
use edgecc_actors::*;
use util::*;

/// Queue calls go only to Ready agents; accept writes interaction + phone log
/// before the agent is told Talking; caller hang-up ends the call.
#[actix_rt::test]
async fn queue_call_accepted_by_ready_agent() {
    tokio::time::pause();
    let h = start(basic(2), 1);
    h.cmd("a1", AgentCommand::Login).await.unwrap();
    h.ready("a2").await;
    let call = h.call(caller("800")).await;
    assert!(is(&h.state("a1").await, "not_ready"));
    assert!(matches!(h.state("a2").await, AgentState::Reserved { .. }));
    h.outbox.set_delay_ms(300);
    advance(1_000).await; // phone answers after 1 s
    settle().await;
    // Bridged, records not durable yet: agent still not told.
    assert!(matches!(h.state("a2").await, AgentState::Reserved { .. }));
    assert!(h.outbox.is_empty());
    advance(400).await;
    assert!(matches!(h.state("a2").await, AgentState::Talking { .. }));
    assert_eq!(
        h.kinds(&call),
        vec![RecordKind::InteractionCreate, RecordKind::PhoneLogCreate]
    );
    let rec = &h.outbox.records_of(&call)[0];
    assert_eq!(rec.correlation_id, format!("t:{call}:interaction.create"));
    h.hang_up(call.as_str()).await;
    advance(500).await;
    assert!(matches!(h.state("a2").await, AgentState::Ready { .. }));
    assert_eq!(h.snapshot().await.ended.get("completed"), Some(&1));
    assert_eq!(h.events(&call), vec!["ended"]);
}

/// Manual accept from the desktop connects at once; auto-accept agents answer by themselves.
#[actix_rt::test]
async fn manual_and_auto_accept() {
    tokio::time::pause();
    let mut cfg = basic(2);
    cfg.agents[1].auto_accept = true;
    cfg.agents[1].queues = vec![];
    cfg.queues.push(queue("auto", "801"));
    cfg.agents[1].queues.push("auto".into());
    let h = start(cfg, 1);
    h.ready("a1").await;
    h.ready("a2").await;
    h.script("101", vec![PhoneAction::NoAnswer]);
    let c1 = h.call(caller("800")).await;
    h.cmd("a1", AgentCommand::Accept).await.unwrap();
    settle().await;
    assert!(matches!(h.state("a1").await, AgentState::Talking { .. }));
    assert_eq!(h.kinds(&c1).len(), 2);
    // Accepting again: no offer.
    assert!(matches!(
        h.cmd("a1", AgentCommand::Accept).await,
        Err(CcError::NoOffer(_))
    ));
    let c2 = h.call(caller("801")).await;
    advance(200).await;
    assert!(matches!(h.state("a2").await, AgentState::Talking { .. }));
    assert_eq!(h.kinds(&c2).len(), 2);
}

/// Reject: next agent at once; the rejecter is not offered the call again and
/// is Ready after the reject delay.
#[actix_rt::test]
async fn reject_redirects_and_delays() {
    tokio::time::pause();
    let mut cfg = basic(2);
    cfg.timers.reject_delay_ms = 5_000;
    let h = start(cfg, 1);
    h.ready("a1").await;
    advance(10).await;
    h.ready("a2").await;
    h.script("101", vec![PhoneAction::NoAnswer]);
    h.script("102", vec![PhoneAction::NoAnswer]);
    let call = h.call(caller("800")).await;
    assert!(matches!(h.state("a1").await, AgentState::Reserved { .. }));
    h.cmd("a1", AgentCommand::Reject).await.unwrap();
    let a1 = h.state("a1").await;
    assert_eq!(
        a1,
        AgentState::NotReady {
            reason: NotReadyReason::System(SystemReason::RejectDelay)
        }
    );
    assert!(matches!(h.state("a2").await, AgentState::Reserved { call: c, .. } if c == call));
    advance(5_000).await;
    // a1 Ready again but excluded from this call: still ringing a2 only.
    assert!(matches!(h.state("a1").await, AgentState::Ready { .. }));
    let snap = h.snapshot().await;
    assert_eq!(snap.calls[0].offers.len(), 1);
    assert_eq!(snap.calls[0].offers[0].0, AgentId::new("a2"));
}

/// RONA: redirect, agent Not Ready(RONA), miss counted; a late answer loses.
#[actix_rt::test]
async fn rona_redirects_and_fences_late_answer() {
    tokio::time::pause();
    let h = start(basic(2), 1);
    h.ready("a1").await;
    advance(10).await;
    h.ready("a2").await;
    h.script("101", vec![PhoneAction::Answer { after_ms: 12_000 }]);
    let call = h.call(caller("800")).await;
    advance(10_000).await;
    settle().await;
    let a1 = h.agent("a1").await;
    assert_eq!(
        a1.state,
        AgentState::NotReady {
            reason: NotReadyReason::System(SystemReason::Rona)
        }
    );
    assert_eq!(a1.stats.rona_count, 1);
    assert!(matches!(h.state("a2").await, AgentState::Reserved { .. }));
    advance(2_000).await; // a1's phone would answer now: its leg is gone
    advance(1_000).await;
    assert!(matches!(h.state("a2").await, AgentState::Talking { call: c, .. } if c == call));
    assert!(is(&h.state("a1").await, "not_ready"));
}

/// Goal: a device that is always busy (cause 17) or always rejects (cause
/// 21) does not stay in rotation for ever (issue 16), while the call it
/// refused keeps its place and comes back to the queue's only agent
/// (issue 18). Method: a1, the only agent, whose phone answers busy,
/// rejected, busy to the offers of one call with
/// `routing.device_refusals_max = 3`. Expected: the call is offered to a1
/// again after each of the first two refusals (each still a reject), a1
/// goes Not Ready with the system reason `device_unreachable` after the
/// third, three rejects counted; the call still waits; once a1 says Ready
/// again it is offered the call again and the count starts over.
#[actix_rt::test]
async fn a_device_that_always_refuses_leaves_routing() {
    tokio::time::pause();
    let mut cfg = basic(1);
    cfg.routing.device_refusals_max = 3;
    let h = start(cfg, 1);
    h.ready("a1").await;
    let busy = PhoneAction::Busy { after_ms: 500 };
    let rejected = PhoneAction::Reject { after_ms: 500 };
    h.script("101", vec![busy.clone(), rejected, busy.clone(), busy]);
    let call = h.call(caller("800")).await;
    advance(200).await;
    for n in 1..=2 {
        advance(500).await;
        let a1 = h.agent("a1").await;
        assert!(
            matches!(&a1.state, AgentState::Reserved { call: c, .. } if *c == call),
            "offered again after refusal {n}: {:?}",
            a1.state
        );
        assert_eq!(a1.stats.refusals_in_row, n);
    }
    advance(500).await;
    let a1 = h.agent("a1").await;
    assert_eq!(
        a1.state,
        AgentState::NotReady {
            reason: NotReadyReason::System(SystemReason::DeviceUnreachable)
        }
    );
    assert_eq!(a1.stats.reject_count, 3);
    assert_eq!(a1.stats.rona_count, 0);
    assert_eq!(h.snapshot().await.queues[0].waiting, vec![call.clone()]);
    h.cmd("a1", AgentCommand::Ready).await.unwrap();
    advance(700).await;
    let a1 = h.agent("a1").await;
    assert!(
        matches!(&a1.state, AgentState::Reserved { call: c, .. } if *c == call),
        "{:?}",
        a1.state
    );
    assert_eq!(a1.stats.refusals_in_row, 1);
}

/// Goal: a PBX restart with calls up is recorded as what it is, not as
/// ordinary endings (issue 16). Method: a1 talks to c1, a2's phone rings
/// for c2, c3 waits in the queue; the PBX restarts (the simulated PBX
/// reports every leg lost, as the ARI adapter does when Asterisk's start-up
/// time changed across a reconnect). Expected: the three calls end
/// `pbx_lost` (none `completed` or `abandoned`); c1's `ended` update says
/// `pbx_lost`; c2 and c3, never answered, get their interaction and a
/// callback work item with reason `pbx_lost` (the callers did not give up);
/// a2, whose phone was ringing, is not penalised (Ready, no RONA).
#[actix_rt::test]
async fn a_pbx_restart_ends_calls_pbx_lost() {
    tokio::time::pause();
    let h = start(basic(2), 1);
    h.ready("a1").await;
    advance(10).await;
    h.ready("a2").await;
    h.script("102", vec![PhoneAction::NoAnswer]);
    let c1 = h.call(caller("800")).await;
    advance(1_500).await;
    let c2 = h.call(caller("800")).await;
    let c3 = h.call(caller("800")).await;
    advance(100).await;
    assert!(matches!(h.state("a1").await, AgentState::Talking { call, .. } if call == c1));
    assert!(matches!(h.state("a2").await, AgentState::Reserved { call, .. } if call == c2));
    let lost = h.sim.send(RestartPbx).await.unwrap();
    assert_eq!(lost, 5, "c1 and a1's leg, c2 and a2's ringing leg, c3");
    advance(100).await;
    let snap = h.snapshot().await;
    assert_eq!(snap.ended.get("pbx_lost"), Some(&3), "{:?}", snap.ended);
    assert_eq!(snap.ended.get("completed"), None);
    assert_eq!(snap.ended.get("abandoned"), None);
    assert_eq!(
        h.kinds(&c1),
        vec![
            RecordKind::InteractionCreate,
            RecordKind::PhoneLogCreate,
            RecordKind::InteractionUpdate
        ]
    );
    let ended = &h.outbox.records_of(&c1)[2].body;
    assert_eq!(ended["event"], "ended");
    assert_eq!(ended["terminal"], serde_json::json!({"reason": "pbx_lost"}));
    for c in [&c2, &c3] {
        let records = h.outbox.records_of(c);
        let kinds: Vec<_> = records.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            vec![RecordKind::InteractionCreate, RecordKind::WorkItemCreate],
            "{c}"
        );
        assert_eq!(records[0].body["reason"], "pbx_lost", "{c}");
        assert_eq!(records[1].body["reason"], "pbx_lost", "{c}");
        assert_eq!(records[1].body["type"], "callback", "{c}");
    }
    let a2 = h.agent("a2").await;
    assert!(
        matches!(a2.state, AgentState::Ready { .. }),
        "{:?}",
        a2.state
    );
    assert_eq!(a2.stats.rona_count, 0);
    assert!(matches!(h.state("a1").await, AgentState::Ready { .. }));
}

/// Queue timeout: interaction + work item with the caller's number and data,
/// then the final destination (announcement, another queue); an external
/// number records the overflow instead of a work item.
#[actix_rt::test]
async fn queue_timeout_destinations() {
    tokio::time::pause();
    let mut cfg = basic(0);
    cfg.queues[0].max_wait_ms = 30_000;
    let mut ext = queue("ext", "802");
    ext.max_wait_ms = 1_000;
    ext.final_destination = FinalDestination::External {
        number: "+4930".into(),
    };
    let mut hop = queue("hop", "803");
    hop.max_wait_ms = 1_000;
    hop.final_destination = FinalDestination::Queue { queue: "q".into() };
    cfg.queues.push(ext);
    cfg.queues.push(hop);
    let h = start(cfg, 1);
    let mut c = caller("800");
    c.attached.push(edgecc_actors::ports::AttachedVar {
        key: "account".into(),
        value: "42".into(),
    });
    let c1 = h.call(c).await;
    let c2 = h.call(caller("802")).await;
    let c3 = h.call(caller("803")).await;
    advance(31_500).await;
    assert_eq!(
        h.kinds(&c1),
        vec![RecordKind::InteractionCreate, RecordKind::WorkItemCreate]
    );
    let wi = &h.outbox.records_of(&c1)[1];
    assert_eq!(wi.body["callback_number"], "+15551230000");
    assert_eq!(wi.body["attached"]["account"], "42");
    // c2 was handed to an external number that may answer: the overflow
    // is recorded (where to), and no callback work item duplicates it.
    assert_eq!(
        h.kinds(&c2),
        vec![RecordKind::InteractionCreate, RecordKind::InteractionUpdate]
    );
    let ended = &h.outbox.records_of(&c2)[1].body;
    assert_eq!(ended["event"], "ended");
    assert_eq!(
        ended["terminal"],
        serde_json::json!({"reason": "overflowed", "number": "+4930"})
    );
    assert_eq!(ended["talk_ms"], 0);
    // c3 hopped to q after 1 s and timed out there 30 s later.
    assert_eq!(
        h.kinds(&c3),
        vec![RecordKind::InteractionCreate, RecordKind::WorkItemCreate]
    );
    let snap = h.snapshot().await;
    assert_eq!(snap.ended.get("timed_out"), Some(&2));
    assert_eq!(snap.ended.get("overflowed"), Some(&1));
    assert_eq!(h.sim.send(GetSimStats).await.unwrap().redirects, 1);
}

/// A caller who hangs up while queued: interaction + abandoned work item.
#[actix_rt::test]
async fn abandon_while_queued() {
    tokio::time::pause();
    let h = start(basic(1), 1);
    let mut c = caller("800");
    c.patience_ms = Some(5_000);
    let call = h.call(c).await;
    advance(6_000).await;
    assert_eq!(
        h.kinds(&call),
        vec![RecordKind::InteractionCreate, RecordKind::WorkItemCreate]
    );
    assert_eq!(h.outbox.records_of(&call)[1].body["reason"], "abandoned");
    assert_eq!(h.snapshot().await.ended.get("abandoned"), Some(&1));
    assert!(h.snapshot().await.queues[0].waiting.is_empty());
}

/// Direct calls reach a Not Ready agent; outbound only from Not Ready.
#[actix_rt::test]
async fn direct_and_outbound_rules() {
    tokio::time::pause();
    let h = start(basic(2), 1);
    h.cmd("a1", AgentCommand::Login).await.unwrap();
    let call = h.call(caller("101")).await;
    assert!(matches!(h.state("a1").await, AgentState::Reserved { .. }));
    advance(1_500).await;
    assert!(matches!(h.state("a1").await, AgentState::Talking { call: c, .. } if c == call));
    h.act("a1", CallAction::HangUp).await.unwrap();
    // Back to Not Ready, no wrap-up.
    assert!(is(&h.state("a1").await, "not_ready"));
    h.ready("a2").await;
    let r = h.dial("a2", "+1999").await;
    assert!(matches!(r, Err(CcError::Agent(_))));
    h.dial("a1", "+1999").await.unwrap();
    assert!(is(&h.state("a1").await, "talking"));
}

/// Wrap-up after a queue call; Not Ready in wrap-up is pending; end early;
/// agent override; logout during a call is pending until its wrap-up ends.
#[actix_rt::test]
async fn wrap_up_pending_not_ready_and_logout() {
    tokio::time::pause();
    let mut cfg = basic(2);
    cfg.queues[0].wrap_up_ms = 20_000;
    cfg.agents[1].wrap_up_ms = Some(5_000);
    let (h, call) = talking(cfg).await;
    h.act("a1", CallAction::HangUp).await.unwrap();
    assert!(is(&h.state("a1").await, "wrap_up"));
    h.call(caller("800")).await;
    assert!(
        is(&h.state("a1").await, "wrap_up"),
        "no queue call in wrap-up"
    );
    h.not_ready("a1", "break").await.unwrap();
    assert!(h.agent("a1").await.pending.is_some());
    h.cmd(
        "a1",
        AgentCommand::Call(CallAction::WrapUpCode {
            code: "sold".into(),
        }),
    )
    .await
    .unwrap();
    assert!(h.events(&call).contains(&"wrap_up_code".to_string()));
    advance(20_000).await;
    assert_eq!(
        h.state("a1").await,
        AgentState::NotReady {
            reason: NotReadyReason::Code("break".into())
        }
    );
    // a2: override 5 s, ends early, logout during call pending.
    h.ready("a2").await;
    advance(1_500).await;
    assert!(is(&h.state("a2").await, "talking"));
    h.act("a2", CallAction::HangUp).await.unwrap();
    let now = h.snapshot().await.at_ms;
    assert!(
        matches!(h.state("a2").await, AgentState::WrapUp { until_ms, .. } if until_ms > now + 4_000 && until_ms <= now + 5_000)
    );
    h.cmd("a2", AgentCommand::EndWrapUp).await.unwrap();
    assert!(is(&h.state("a2").await, "ready"));
    h.call(caller("800")).await;
    advance(1_500).await;
    h.cmd("a2", AgentCommand::Logout).await.unwrap();
    assert!(is(&h.state("a2").await, "talking"));
    h.act("a2", CallAction::HangUp).await.unwrap();
    // The wrap-up first, then the logout.
    assert!(is(&h.state("a2").await, "wrap_up"));
    advance(5_000).await;
    assert_eq!(h.state("a2").await, AgentState::LoggedOut);
    assert!(matches!(
        h.not_ready("a1", "nope").await,
        Err(CcError::Agent(_))
    ));
}

/// Hold (music), mute, blind transfer to a Ready agent (clear error when not
/// Ready) and to a queue; each action appends an update, in order.
#[actix_rt::test]
async fn hold_mute_and_blind_transfers() {
    tokio::time::pause();
    let (h, call) = talking(basic(3)).await;
    h.act("a1", CallAction::Hold).await.unwrap();
    let leg = h.leg(call.as_str()).await.unwrap();
    assert!(leg.held);
    h.act("a1", CallAction::Resume).await.unwrap();
    h.act("a1", CallAction::Mute).await.unwrap();
    h.act("a1", CallAction::Unmute).await.unwrap();
    h.cmd("a2", AgentCommand::Login).await.unwrap();
    let err = h
        .cmd(
            "a1",
            AgentCommand::Call(CallAction::TransferToAgent {
                target: AgentId::new("a2"),
            }),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        CcError::TargetNotAvailable {
            state: "not_ready",
            ..
        }
    ));
    h.cmd("a2", AgentCommand::Ready).await.unwrap();
    h.cmd(
        "a1",
        AgentCommand::Call(CallAction::TransferToAgent {
            target: AgentId::new("a2"),
        }),
    )
    .await
    .unwrap();
    advance(1_500).await;
    assert!(matches!(h.state("a2").await, AgentState::Talking { .. }));
    h.not_ready("a1", "break").await.unwrap();
    h.ready("a3").await;
    h.cmd(
        "a2",
        AgentCommand::Call(CallAction::TransferToQueue {
            queue: QueueId::new("q"),
        }),
    )
    .await
    .unwrap();
    advance(1_500).await;
    let snap = h.snapshot().await;
    assert!(
        matches!(h.state("a3").await, AgentState::Talking { .. }),
        "{snap:#?}"
    );
    assert_eq!(
        h.events(&call),
        vec![
            "hold",
            "resume",
            "mute",
            "unmute",
            "transfer",
            "agent_connected",
            "transfer",
            "agent_connected"
        ]
    );
    // Exactly one interaction and one phone log despite three agents.
    let kinds = h.kinds(&call);
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == RecordKind::InteractionCreate)
            .count(),
        1
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == RecordKind::PhoneLogCreate)
            .count(),
        1
    );
}

/// Consult: caller holds, complete / conference / cancel; RONA on B returns
/// the call to A; legs recorded on the same interaction with the caller's ANI.
#[actix_rt::test]
async fn consult_flows() {
    tokio::time::pause();
    let (h, call) = talking(basic(3)).await;
    h.cmd("a2", AgentCommand::Login).await.unwrap(); // Not Ready may be consulted
    h.script("102", vec![PhoneAction::NoAnswer]);
    h.consult("a1", "a2").await.unwrap();
    assert!(h.leg(call.as_str()).await.unwrap().held);
    advance(10_500).await; // RONA on B
    assert!(!h.leg(call.as_str()).await.unwrap().held);
    assert!(is(&h.state("a1").await, "talking"));
    h.cmd("a3", AgentCommand::Login).await.unwrap();
    h.consult("a1", "a3").await.unwrap();
    advance(1_500).await;
    h.act("a1", CallAction::CancelConsult).await.unwrap();
    assert!(is(&h.state("a3").await, "not_ready"));
    h.consult("a1", "a3").await.unwrap();
    advance(1_500).await;
    h.act("a1", CallAction::CompleteConsult).await.unwrap();
    assert!(matches!(h.state("a3").await, AgentState::Talking { .. }));
    assert!(!is(&h.state("a1").await, "talking"));
    let recs = h.outbox.records_of(&call);
    let started: Vec<_> = recs
        .iter()
        .filter(|r| r.body["event"] == "leg_started")
        .collect();
    assert_eq!(started.len(), 2);
    assert_eq!(started[0].body["reason"], "consult");
    assert_eq!(started[0].body["customer_ani"], "+15551230000");
    let ended: Vec<_> = recs
        .iter()
        .filter(|r| r.body["event"] == "leg_ended")
        .collect();
    assert_eq!(ended[0].body["reason"], "consult_ended");
    assert_eq!(
        recs.iter()
            .filter(|r| r.kind == RecordKind::InteractionCreate)
            .count(),
        1
    );
    assert_eq!(
        h.events(&call)
            .iter()
            .filter(|e| *e == "consult_failed")
            .count(),
        1
    );
}

/// Conference: consult turned 3-way, then a third agent added; everyone is
/// told when someone joins or drops.
#[actix_rt::test]
async fn conference_notices() {
    use actix::prelude::*;
    struct Sink(std::rc::Rc<std::cell::RefCell<Vec<CcEvent>>>);
    impl Actor for Sink {
        type Context = Context<Self>;
    }
    impl Handler<CcEvent> for Sink {
        type Result = ();
        fn handle(&mut self, e: CcEvent, _: &mut Context<Self>) {
            self.0.borrow_mut().push(e);
        }
    }
    tokio::time::pause();
    let h = start(basic(3), 1);
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let sink = Sink(seen.clone()).start();
    h.registry
        .send(Subscribe(sink.recipient()))
        .await
        .unwrap()
        .unwrap();
    h.ready("a1").await;
    h.cmd("a2", AgentCommand::Login).await.unwrap();
    h.cmd("a3", AgentCommand::Login).await.unwrap();
    let call = h.call(caller("800")).await;
    advance(1_500).await;
    h.consult("a1", "a2").await.unwrap();
    advance(1_500).await;
    h.act("a1", CallAction::ConferenceConsult).await.unwrap();
    h.cmd(
        "a2",
        AgentCommand::Call(CallAction::AddToConference {
            target: AgentId::new("a3"),
        }),
    )
    .await
    .unwrap();
    advance(1_500).await;
    let snap = h.snapshot().await;
    assert_eq!(snap.calls[0].parties.len(), 3);
    h.act("a1", CallAction::HangUp).await.unwrap();
    let notices: Vec<_> = seen
        .borrow()
        .iter()
        .filter_map(|e| match e {
            CcEvent::CallNotice { notice, .. } => Some(notice.clone()),
            _ => None,
        })
        .collect();
    use edgecc_actors::call::CallNotice::*;
    let joined = notices
        .iter()
        .filter(|n| matches!(n, ParticipantJoined { .. }))
        .count();
    assert_eq!(joined, 3, "a1, a2, a3 joined: {notices:?}");
    assert!(notices.iter().any(|n| matches!(n, ParticipantLeft { agent, participants } if agent.as_str() == "a1" && participants.len() == 2)));
    assert!(h.events(&call).contains(&"participant_left".to_string()));
    assert!(h.sim.send(GetSimStats).await.unwrap().double_ringing == 0);
}

/// Routing: priority then arrival; an agent in two queues is won by one only;
/// fewest-calls and ring-all strategies.
#[actix_rt::test]
async fn routing_order_and_two_queues() {
    tokio::time::pause();
    let mut cfg = basic(1);
    cfg.queues.push(queue("r", "801"));
    cfg.agents[0].queues.push("r".into());
    let h = start(cfg, 1);
    h.script("101", vec![PhoneAction::NoAnswer]);
    let _low = h.call(caller("800")).await;
    let _other = h.call(caller("801")).await;
    let mut vip = caller("800");
    vip.attached.push(edgecc_actors::ports::AttachedVar {
        key: "priority".into(),
        value: "5".into(),
    });
    let high = h.call(vip).await;
    let snap = h.snapshot().await;
    assert_eq!(
        snap.queues[0].waiting[0], high,
        "priority first, then arrival"
    );
    h.ready("a1").await;
    let snap = h.snapshot().await;
    let offered: usize = snap.calls.iter().map(|c| c.offers.len()).sum();
    assert_eq!(offered, 1, "one agent in two queues: one offer");
    assert!(matches!(h.state("a1").await, AgentState::Reserved { .. }));

    let mut cfg = basic(3);
    cfg.queues[0].strategy = Strategy::RingAll;
    let h = start(cfg, 2);
    for a in ["a1", "a2", "a3"] {
        h.ready(a).await;
        h.script(
            &format!("10{}", &a[1..]),
            vec![PhoneAction::Answer {
                after_ms: if a == "a2" { 500 } else { 3_000 },
            }],
        );
    }
    let call = h.call(caller("800")).await;
    assert_eq!(h.snapshot().await.calls[0].offers.len(), 3);
    advance(600).await;
    assert!(matches!(h.state("a2").await, AgentState::Talking { call: c, .. } if c == call));
    assert!(is(&h.state("a1").await, "ready"));
    assert!(is(&h.state("a3").await, "ready"));
}

/// The outbox failing never blocks a call; records are retried, in order,
/// none dropped.
#[actix_rt::test]
async fn outbox_failure_does_not_block_calls() {
    tokio::time::pause();
    let h = start(basic(1), 1);
    h.outbox.fail_next(4);
    h.ready("a1").await;
    let call = h.call(caller("800")).await;
    advance(1_200).await;
    // Bridged at the PBX already.
    let leg = h.leg(call.as_str()).await.unwrap();
    assert!(leg.bridge.is_some());
    advance(3_000).await;
    assert!(
        is(&h.state("a1").await, "talking"),
        "confirmed after the bounded wait"
    );
    advance(5_000).await;
    assert_eq!(
        h.kinds(&call),
        vec![RecordKind::InteractionCreate, RecordKind::PhoneLogCreate]
    );
    assert!(h.outbox.attempts() >= 5);
}

/// Config errors name the key path; supervisor can force Not Ready.
#[actix_rt::test]
async fn supervisor_and_unknown_ids() {
    tokio::time::pause();
    let h = start(basic(1), 1);
    h.ready("a1").await;
    h.registry
        .send(SupervisorRequest {
            agent: AgentId::new("a1"),
            command: SupervisorCommand::NotReady,
        })
        .await
        .unwrap()
        .unwrap();
    settle().await;
    assert_eq!(
        h.state("a1").await,
        AgentState::NotReady {
            reason: NotReadyReason::System(SystemReason::Supervisor)
        }
    );
    assert!(matches!(
        h.cmd("zz", AgentCommand::Login).await,
        Err(CcError::UnknownAgent(_))
    ));
    assert!(matches!(
        h.cmd("a1", AgentCommand::Call(CallAction::Hold)).await,
        Err(CcError::NotOnACall(_))
    ));
    let mut bad = basic(1);
    bad.agents[0].queues.push("sales".into());
    let e = bad.validate().unwrap_err();
    assert_eq!(
        e[0].to_string(),
        "agents[0].queues[1]: unknown queue \"sales\""
    );
}

/// A PBX port whose originates fail with `LinkDown` while `down` is set
/// (what the ARI adapter answers while its WebSocket is gone).
struct FlakyLink {
    inner: edgecc_actors::sim::SimPbxPort,
    down: std::rc::Rc<std::cell::Cell<bool>>,
}

impl PbxPort for FlakyLink {
    fn send(
        &self,
        cmd: PbxCommand,
    ) -> edgecc_actors::ports::LocalBoxFuture<'static, Result<(), PbxError>> {
        if self.down.get() && matches!(cmd, PbxCommand::OriginateAgentLeg { .. }) {
            return Box::pin(async { Err(PbxError::LinkDown) });
        }
        self.inner.send(cmd)
    }
}

/// While the PBX link is down, queues hold their calls and a Ready agent
/// stays Ready: an offer that could not be sent is not a RONA. Even when
/// the port fails before the adapter said the link is down, the agent is
/// not penalised and routing pauses. Once the link is up the call is
/// offered and answered.
#[actix_rt::test]
async fn link_down_pauses_routing_without_penalising_agents() {
    use actix::Actor;
    tokio::time::pause();
    let mut cfg = basic(1);
    cfg.timers.rona_sets_not_ready = true;
    let sim = edgecc_actors::sim::SimPbx::new(7).start();
    let down = std::rc::Rc::new(std::cell::Cell::new(false));
    let outbox = MemoryOutbox::new();
    let clock = TokioClock::shared(EPOCH_MS);
    let registry = ContactCenter::start(
        cfg.clone(),
        std::rc::Rc::new(FlakyLink {
            inner: edgecc_actors::sim::SimPbxPort { addr: sim.clone() },
            down: down.clone(),
        }),
        std::rc::Rc::new(outbox.clone()),
        clock.clone(),
    )
    .expect("valid config");
    sim.do_send(edgecc_actors::sim::ConnectEvents(
        registry.clone().recipient(),
    ));
    let h = Harness {
        registry,
        sim,
        outbox,
        state: MemoryState::new(),
        kill: Kill::default(),
        cfg,
        clock,
    };
    settle().await;
    // The adapter reports the link down, then an agent gets Ready and a
    // call arrives: nothing is offered.
    down.set(true);
    h.registry.do_send(PbxEvent::LinkDown);
    h.ready("a1").await;
    let call = h.call(caller("800")).await;
    advance(2_000).await;
    assert!(
        is(&h.state("a1").await, "ready"),
        "{:?}",
        h.state("a1").await
    );
    assert!(!h.snapshot().await.pbx_link_up);
    let stats = h.sim.send(GetSimStats).await.unwrap();
    assert_eq!(stats.originated, 0, "no offer while the link is down");
    // The registry hears "up" while the port still fails (a race with the
    // adapter): the failed offer is withdrawn, not missed, and routing
    // pauses again by itself.
    h.registry.do_send(PbxEvent::LinkUp);
    advance(2_000).await;
    assert!(
        is(&h.state("a1").await, "ready"),
        "{:?}",
        h.state("a1").await
    );
    assert!(
        !h.snapshot().await.pbx_link_up,
        "a LinkDown answer pauses routing"
    );
    assert!(
        h.events(&call).is_empty(),
        "the call still waits: {:?}",
        h.events(&call)
    );
    // The link is really back: the call is offered and answered.
    down.set(false);
    h.registry.do_send(PbxEvent::LinkUp);
    advance(1_500).await;
    assert!(
        matches!(h.state("a1").await, AgentState::Talking { .. }),
        "{:?}",
        h.state("a1").await
    );
    assert_eq!(h.sim.send(GetSimStats).await.unwrap().originated, 1);
}

/// The registry fans events out to at most `SUBSCRIBERS_MAX` subscribers; one
/// more is refused with its own error (not a mailbox fault), naming the limit.
#[actix_rt::test]
async fn subscribers_are_bounded() {
    use actix::prelude::*;
    use edgecc_actors::registry::SUBSCRIBERS_MAX;
    struct Sink;
    impl Actor for Sink {
        type Context = Context<Self>;
    }
    impl Handler<CcEvent> for Sink {
        type Result = ();
        fn handle(&mut self, _: CcEvent, _: &mut Context<Self>) {}
    }
    tokio::time::pause();
    let h = start(basic(1), 1);
    let sink = Sink.start();
    for _ in 0..SUBSCRIBERS_MAX {
        h.registry
            .send(Subscribe(sink.clone().recipient()))
            .await
            .unwrap()
            .unwrap();
    }
    let refused = h.registry.send(Subscribe(sink.recipient())).await.unwrap();
    assert_eq!(
        refused,
        Err(CcError::TooManySubscribers {
            max: SUBSCRIBERS_MAX
        })
    );
}
