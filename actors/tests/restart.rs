//! Restart tests: run calls in every phase, kill the system (its ports go
//! dead as a SIGKILLed process's would), restore a new system from the
//! in-memory state store's snapshot on the same simulated PBX and outbox,
//! reconcile it with the legs the PBX still has, and check the PBX side
//! (nothing hung up that should not be) and the CRM side (one interaction
//! and one phone log per accepted call, updates in order with sequence
//! numbers continuing, the end update once). Paused tokio time throughout.

mod util;

use edgecc_actors::agent::actor::{AwaitDesktops, DesktopEvent};
use edgecc_actors::agent::{AgentState, NotReadyReason, OfferPurpose, Presence, SystemReason};
use edgecc_actors::durable::StateKey;
use edgecc_actors::sim::{GetSimStats, PhoneAction};
use edgecc_actors::*;
use util::*;

/// The CRM side of an accepted call: exactly one interaction and one phone
/// log, updates numbered 1..n in order, exactly one `ended` (the last).
fn assert_crm_once(h: &Harness, call: &CallId) {
    let recs = h.outbox.records_of(call);
    let count = |k| recs.iter().filter(|r| r.kind == k).count();
    assert_eq!(count(RecordKind::InteractionCreate), 1, "{recs:#?}");
    assert_eq!(count(RecordKind::PhoneLogCreate), 1, "{recs:#?}");
    let seqs: Vec<u64> = recs
        .iter()
        .filter(|r| r.kind == RecordKind::InteractionUpdate)
        .map(|r| r.body["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "{recs:#?}"
    );
    let events = h.events(call);
    assert_eq!(
        events.iter().filter(|e| *e == "ended").count(),
        1,
        "{events:?}"
    );
    assert_eq!(
        events.last().map(String::as_str),
        Some("ended"),
        "{events:?}"
    );
}

/// A talking call survives: the agent is still talking on it after the
/// restart, its legs and bridge were never touched, and when the caller
/// hangs up the call ends once with the end update continuing the sequence.
#[actix_rt::test]
async fn talking_call_carries_on() {
    tokio::time::pause();
    let (h, call) = talking(basic(1)).await;
    assert!(is(&h.state("a1").await, "talking"));
    let before = h.sim.send(GetSimStats).await.unwrap();
    let h = h.restart(5_000).await;
    assert!(matches!(h.state("a1").await, AgentState::Talking { call: c, .. } if c == call));
    let caller_leg = h.leg(call.as_str()).await.expect("caller leg still up");
    assert!(caller_leg.up && caller_leg.bridge.is_some());
    let after = h.sim.send(GetSimStats).await.unwrap();
    assert_eq!(after.legs, before.legs, "no leg hung up");
    assert_eq!(after.bridges, before.bridges, "no bridge destroyed");
    h.hang_up(call.as_str()).await;
    advance(500).await;
    assert!(is(&h.state("a1").await, "ready"));
    assert_eq!(h.snapshot().await.ended.get("completed"), Some(&1));
    assert_crm_once(&h, &call);
    assert_eq!(h.events(&call), vec!["ended"]);
}

/// A held call stays held (the caller still hears music) and can be
/// resumed after the restart; the resume update continues the sequence.
#[actix_rt::test]
async fn held_call_stays_held() {
    tokio::time::pause();
    let (h, call) = talking(basic(1)).await;
    h.act("a1", CallAction::Hold).await.unwrap();
    let h = h.restart(3_000).await;
    assert!(h.leg(call.as_str()).await.unwrap().held);
    let snap = h.snapshot().await;
    assert!(snap.calls.iter().any(|c| c.call == call && c.held));
    h.act("a1", CallAction::Resume).await.unwrap();
    assert!(!h.leg(call.as_str()).await.unwrap().held);
    h.act("a1", CallAction::HangUp).await.unwrap();
    advance(500).await;
    assert_eq!(h.events(&call), vec!["hold", "resume", "ended"]);
    assert_crm_once(&h, &call);
}

/// A consult in progress survives: after the restart the consulting agent
/// completes it and the consulted agent takes the call.
#[actix_rt::test]
async fn consulting_call_completes_after_restart() {
    tokio::time::pause();
    let (h, call) = consulting(basic(2)).await;
    assert!(is(&h.state("a2").await, "talking"));
    let h = h.restart(2_000).await;
    assert!(is(&h.state("a1").await, "talking"));
    assert!(is(&h.state("a2").await, "talking"));
    assert!(h.leg(call.as_str()).await.unwrap().held);
    h.act("a1", CallAction::CompleteConsult).await.unwrap();
    advance(100).await;
    assert!(matches!(h.state("a2").await, AgentState::Talking { call: c, .. } if c == call));
    assert!(!is(&h.state("a1").await, "talking"));
    assert!(!h.leg(call.as_str()).await.unwrap().held);
    h.hang_up(call.as_str()).await;
    advance(500).await;
    assert_crm_once(&h, &call);
}

/// A conference survives: both agents stay on it; one leaves, the other
/// carries on, and the call ends once when the caller hangs up.
#[actix_rt::test]
async fn conference_carries_on() {
    tokio::time::pause();
    let (h, call) = consulting(basic(2)).await;
    h.act("a1", CallAction::ConferenceConsult).await.unwrap();
    let h = h.restart(2_000).await;
    let snap = h.snapshot().await;
    let view = snap.calls.iter().find(|c| c.call == call).unwrap();
    assert_eq!(view.parties.len(), 2);
    h.act("a1", CallAction::HangUp).await.unwrap();
    advance(100).await;
    assert!(is(&h.state("a2").await, "talking"));
    assert!(h.leg(call.as_str()).await.is_some());
    h.hang_up(call.as_str()).await;
    advance(500).await;
    assert_crm_once(&h, &call);
}

/// Queued callers keep their place in line and their music; one who hung
/// up while edgecc was down is closed as abandoned with its work item; the
/// first agent Ready after the restart gets the first caller.
#[actix_rt::test]
async fn queued_callers_keep_their_place() {
    tokio::time::pause();
    let h = start(basic(1), 1);
    let c1 = h.call(caller("800")).await;
    advance(10).await;
    let c2 = h.call(caller("800")).await;
    advance(10).await;
    let c3 = h.call(caller("800")).await;
    let kill_at = h.state.persisted();
    assert!(kill_at > 0);
    let h = {
        // c2 gives up while edgecc is down.
        h.kill_and(|sim| hang_up_at(sim, c2.as_str()))
            .await
            .restart(1_000)
            .await
    };
    let snap = h.snapshot().await;
    assert_eq!(snap.queues[0].waiting, vec![c1.clone(), c3.clone()]);
    assert!(h.leg(c1.as_str()).await.unwrap().held);
    assert_eq!(
        h.kinds(&c2),
        vec![RecordKind::InteractionCreate, RecordKind::WorkItemCreate]
    );
    assert_eq!(snap.ended.get("abandoned"), Some(&1));
    h.ready("a1").await;
    assert!(matches!(h.state("a1").await, AgentState::Reserved { call: c, .. } if c == c1));
}

/// A max-wait deadline that passed while edgecc was down fires once, at
/// once: the caller times out to a work item as soon as the system is back.
#[actix_rt::test]
async fn max_wait_that_passed_while_down_fires_once() {
    tokio::time::pause();
    let h = start(basic(1), 1);
    let call = h.call(caller("800")).await;
    let h = h.restart(70_000).await; // max wait is 60 s
    advance(10).await;
    let kinds = h.kinds(&call);
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == RecordKind::WorkItemCreate)
            .count(),
        1,
        "{kinds:?}"
    );
    assert!(h.snapshot().await.queues[0].waiting.is_empty());
    assert_eq!(h.snapshot().await.ended.values().sum::<u64>(), 1);
}

/// An offer answered at the phone while edgecc was down is resolved once
/// as answered: the agent talks, one interaction and one phone log.
#[actix_rt::test]
async fn offer_answered_while_down_connects() {
    tokio::time::pause();
    let (h, call) = offered(basic(1), PhoneAction::Answer { after_ms: 2_000 }).await;
    assert!(is(&h.state("a1").await, "reserved"));
    let h = h.restart(4_000).await;
    advance(100).await;
    assert!(matches!(h.state("a1").await, AgentState::Talking { call: c, .. } if c == call));
    assert_eq!(
        h.kinds(&call),
        vec![RecordKind::InteractionCreate, RecordKind::PhoneLogCreate]
    );
    h.hang_up(call.as_str()).await;
    advance(500).await;
    assert_crm_once(&h, &call);
}

/// An offer still ringing is kept (the agent stays reserved, the phone
/// rings on) until its RONA deadline, then goes to the next agent: never
/// two offers at once, and the new offer's token is above every old one.
#[actix_rt::test]
async fn ringing_offer_is_kept_then_redirected_once() {
    tokio::time::pause();
    let (h, call) = offered(basic(2), PhoneAction::NoAnswer).await;
    let AgentState::Reserved { token: old, .. } = h.state("a1").await else {
        panic!("a1 not reserved");
    };
    let h = h.restart(3_000).await;
    assert!(matches!(h.state("a1").await, AgentState::Reserved { call: c, .. } if c == call));
    assert!(
        h.leg(&format!("{call}~{old}")).await.is_some(),
        "phone rings on"
    );
    h.ready("a2").await;
    assert!(
        is(&h.state("a2").await, "ready"),
        "the call is not offered twice"
    );
    advance(7_500).await; // RONA at 10 s after the offer
    assert!(!is(&h.state("a1").await, "reserved"));
    let AgentState::Reserved { call: c, token, .. } = h.state("a2").await else {
        panic!("a2 not offered");
    };
    assert_eq!(c, call);
    assert!(token > old);
    advance(1_500).await;
    assert!(is(&h.state("a2").await, "talking"));
    h.hang_up(call.as_str()).await;
    advance(500).await;
    assert_crm_once(&h, &call);
}

/// A caller who hung up while the offer was ringing and edgecc was down:
/// the call is closed as abandoned and the agent is not left reserved.
#[actix_rt::test]
async fn ringing_offer_of_a_gone_caller_frees_the_agent() {
    tokio::time::pause();
    let (h, call) = offered(basic(1), PhoneAction::NoAnswer).await;
    let h = h
        .kill_and(|sim| hang_up_at(sim, call.as_str()))
        .await
        .restart(1_000)
        .await;
    advance(100).await;
    assert!(is(&h.state("a1").await, "ready"));
    assert_eq!(h.snapshot().await.ended.get("abandoned"), Some(&1));
    assert_eq!(
        h.sim.send(GetSimStats).await.unwrap().legs,
        0,
        "agent leg hung up"
    );
}

/// Every actor persists what it needs: agents, calls, queue lines and the
/// token reservation are in the store, and an ended call's record goes
/// once its actor stops.
#[actix_rt::test]
async fn state_store_holds_every_entity() {
    tokio::time::pause();
    let (h, call) = talking(basic(1)).await;
    let snap = h.state.snapshot();
    assert!(matches!(
        snap.agents[&AgentId::new("a1")].state,
        AgentState::Talking { .. }
    ));
    assert_eq!(snap.calls[&call].phase.name(), "connected");
    assert!(snap.calls[&call].interaction_created);
    assert!(snap.tokens_reserved_through >= 1);
    assert!(h.state.get(&StateKey::Queue(QueueId::new("q"))).is_some());
    h.hang_up(call.as_str()).await;
    advance(5_000).await;
    assert!(h.state.get(&StateKey::Call(call)).is_none());
}

/// An agent talking on a call whose record is missing from the snapshot
/// (lost, or never written) is not left talking for ever: the restore
/// frees it, and it can take the next call.
#[actix_rt::test]
async fn agent_on_a_lost_call_is_freed() {
    tokio::time::pause();
    let (h, call) = talking(basic(1)).await;
    assert!(is(&h.state("a1").await, "talking"));
    let h = h.kill_and(|_| ()).await;
    h.state.persist(StateRecord::CallRemoved(call.clone()));
    let h = h.restart_killed(1_000).await;
    assert!(!is(&h.state("a1").await, "talking"));
    h.cmd("a1", AgentCommand::Ready).await.unwrap();
    assert!(is(&h.state("a1").await, "ready"));
}

/// The call owns who is on it: a call saved connected to a1 while a1's
/// own record still holds the offer (edgecc died between the two actors'
/// records, as the restart soak's run 4 found) brings a1 back talking on
/// that call, so the stale offer lease does not free it: past the lease
/// a1 is still talking on the call and the next caller is not offered to
/// its busy phone but waits in the queue.
#[actix_rt::test]
async fn agent_named_by_a_connected_call_comes_back_talking() {
    tokio::time::pause();
    let (h, call) = talking(basic(1)).await;
    let h = h.kill_and(|_| ()).await;
    let mut stale = h.state.snapshot().agents[&AgentId::new("a1")].clone();
    let AgentState::Talking { since_ms, .. } = stale.state else {
        panic!("a1 not talking: {:?}", stale.state);
    };
    stale.state = AgentState::Reserved {
        call: call.clone(),
        token: OfferToken(1),
        purpose: OfferPurpose::Queue(QueueId::new("q")),
        lease_until_ms: since_ms + 8_000,
    };
    h.state.persist(StateRecord::Agent(Box::new(stale)));
    let h = h.restart_killed(1_000).await;
    assert!(matches!(h.state("a1").await, AgentState::Talking { call: c, .. } if c == call));
    advance(10_000).await;
    assert!(matches!(h.state("a1").await, AgentState::Talking { call: c, .. } if c == call));
    let second = h.call(caller("800")).await;
    advance(1_500).await;
    assert!(matches!(h.state("a1").await, AgentState::Talking { call: c, .. } if c == call));
    let snap = h.snapshot().await;
    let view = snap.calls.iter().find(|c| c.call == second).unwrap();
    assert_eq!(view.phase, "queued", "{view:?}");
    h.hang_up(call.as_str()).await;
    advance(500).await;
    assert_crm_once(&h, &call);
}

/// Goal: an agent saved still offered a live call whose record no longer
/// offers it (the offer was withdrawn and the call went back to its line
/// just before the kill) is freed at the restore, not when its stale
/// lease runs out, and the call is offered to it once, on a new token.
/// Method: a1 is offered the call (its phone rings on), then the saved
/// call is put back in the queue with the offer gone; after the restart
/// a1 holds a new offer of that call at once, the old ringing leg is
/// gone, a1's phone has one leg, and past the old lease nothing changes:
/// a1 answers the new offer and the call ends once at the CRM.
#[actix_rt::test]
async fn agent_saved_offered_a_call_that_no_longer_offers_it_is_freed() {
    tokio::time::pause();
    let h = start(basic(1), 1);
    h.ready("a1").await;
    h.script(
        "101",
        vec![
            PhoneAction::NoAnswer,
            PhoneAction::Answer { after_ms: 1_000 },
        ],
    );
    let call = h.call(caller("800")).await;
    let AgentState::Reserved { token: old, .. } = h.state("a1").await else {
        panic!("a1 not reserved");
    };
    let h = h.kill_and(|_| ()).await;
    let mut record = h.state.snapshot().calls[&call].clone();
    assert_eq!(record.phase.name(), "offering");
    record.phase = edgecc_actors::call::CallPhase::Queued {
        queue: QueueId::new("q"),
        since_ms: record.arrived_ms,
    };
    h.state.persist(StateRecord::Call(Box::new(record)));
    h.state.persist(StateRecord::QueueOrder {
        queue: QueueId::new("q"),
        waiting: vec![call.clone()],
    });
    let h = h.restart_killed(1_000).await;
    let AgentState::Reserved { call: c, token, .. } = h.state("a1").await else {
        panic!("a1 not offered the call again at once");
    };
    assert_eq!(c, call);
    assert!(token > old, "a new offer, not the stale one");
    assert!(h.leg(&format!("{call}~{old}")).await.is_none());
    assert_eq!(
        h.sim.send(GetSimStats).await.unwrap().legs,
        2,
        "the caller and one agent leg"
    );
    advance(1_500).await;
    assert!(matches!(h.state("a1").await, AgentState::Talking { call: c, .. } if c == call));
    advance(20_000).await;
    assert!(matches!(h.state("a1").await, AgentState::Talking { call: c, .. } if c == call));
    h.hang_up(call.as_str()).await;
    advance(500).await;
    assert_crm_once(&h, &call);
}

/// A call persisted before it was routed (it arrived just before the
/// kill) is routed after the restart: it joins its queue and is offered.
#[actix_rt::test]
async fn call_not_yet_routed_is_routed_after_restart() {
    tokio::time::pause();
    let h = start(basic(1), 1);
    let call = h.call(caller("800")).await;
    let h = h.kill_and(|_| ()).await;
    let mut record = h.state.snapshot().calls[&call].clone();
    record.phase = edgecc_actors::call::CallPhase::Routing;
    record.rules = None;
    record.max_wait_deadline_ms = None;
    h.state.persist(StateRecord::Call(Box::new(record)));
    h.state.persist(StateRecord::QueueOrder {
        queue: QueueId::new("q"),
        waiting: Vec::new(),
    });
    let h = h.restart_killed(1_000).await;
    assert_eq!(h.snapshot().await.queues[0].waiting, vec![call.clone()]);
    h.ready("a1").await;
    assert!(matches!(h.state("a1").await, AgentState::Reserved { call: c, .. } if c == call));
}

/// Goal: a queued call keeps its own required skills and the escalation
/// steps its wait reached across a restart. Method: a queue needing
/// English 4, widened to level 2 after 20 s; a call asking German 2
/// (attached data) waits with no agent Ready; edgecc is down from 5 s to
/// 30 s; then a1 (English 2, no German) goes Ready and is not offered the
/// call, a2 (English 2, German 2) is.
#[actix_rt::test]
async fn queued_call_keeps_its_skills_and_steps() {
    tokio::time::pause();
    let mut cfg = basic(2);
    cfg.queues[0].required_skills = vec![edgecc_actors::config::SkillRequirement {
        skill: "english".into(),
        level_min: 4,
    }];
    cfg.queues[0].routing.steps = vec![edgecc_actors::config::EscalationStep {
        after_ms: 20_000,
        level_min: Some(2),
        any_member: false,
        overflow: false,
    }];
    let level = |skill: &str| edgecc_actors::config::SkillLevel {
        skill: skill.into(),
        level: 2,
    };
    cfg.agents[0].skills = vec![level("english")];
    cfg.agents[1].skills = vec![level("english"), level("german")];
    let h = start(cfg, 1);
    let mut c = caller("800");
    c.attached.push(edgecc_actors::ports::AttachedVar {
        key: "skills".into(),
        value: "german:2".into(),
    });
    let call = h.call(c).await;
    advance(5_000).await;
    let h = h.restart(25_000).await;
    assert_eq!(h.snapshot().await.queues[0].waiting, vec![call.clone()]);
    h.ready("a1").await;
    assert!(is(&h.state("a1").await, "ready"), "a1 lacks German");
    h.ready("a2").await;
    assert!(
        matches!(h.state("a2").await, AgentState::Reserved { call: c, .. } if c == call),
        "the 20 s step applies after the restart"
    );
}

/// Queue `q` with a 30 s wrap-up that requires one of `sale`, `no-sale`.
fn coded_wrap_up(n: usize) -> ContactCenterConfig {
    let mut cfg = basic(n);
    cfg.queues[0].wrap_up_ms = 30_000;
    cfg.queues[0].wrap_up_codes = edgecc_actors::config::WrapUpCodes {
        codes: ["sale", "no-sale"]
            .iter()
            .map(|c| edgecc_actors::config::wrap_up::WrapUpCode {
                code: (*c).into(),
                label: (*c).into(),
            })
            .collect(),
        required: true,
    };
    cfg
}

/// Kills `h`, puts back `stale` as a1's saved record (its later records
/// lost: edgecc died between the call's records and the agent's), and
/// restores after `down_ms`.
async fn restart_with_stale_a1(
    h: Harness,
    stale: edgecc_actors::agent::Agent,
    down_ms: u64,
) -> Harness {
    let h = h.kill_and(|_| ()).await;
    h.state.persist(StateRecord::Agent(Box::new(stale)));
    h.restart_killed(down_ms).await
}

/// The call's saved end time.
fn ended_ms(h: &Harness, call: &CallId) -> u64 {
    h.state.snapshot().calls[call]
        .trail
        .ended_ms
        .expect("the call's end is saved")
}

/// Goal: an agent saved while still offered a call that was then answered
/// and ended (the call's records durable, the agent's lost) comes back in
/// the wrap-up that call gave it, not Ready, and the call writes nothing
/// more but the agent's wrap-up code. Method: a1's record taken while the
/// offer rang, the call answered, talked, hung up by the caller; killed in
/// a1's 30 s wrap-up with that stale record; restored 5 s later: a1 is in
/// wrap-up on the call until 30 s after its end, counted one call handled,
/// owes its required code, records it on the restored ended call, and
/// finishes; one interaction, one phone log, one `ended`.
#[actix_rt::test]
async fn agent_saved_offered_a_call_that_ended_comes_back_in_wrap_up() {
    tokio::time::pause();
    let (h, call) = offered(coded_wrap_up(1), PhoneAction::Answer { after_ms: 1_000 }).await;
    let stale = h.state.snapshot().agents[&AgentId::new("a1")].clone();
    assert!(is(&stale.state, "reserved"), "{:?}", stale.state);
    advance(1_500).await;
    assert!(is(&h.state("a1").await, "talking"));
    advance(2_000).await;
    h.hang_up(call.as_str()).await;
    advance(500).await;
    assert!(is(&h.state("a1").await, "wrap_up"));
    let end = ended_ms(&h, &call);
    let h = restart_with_stale_a1(h, stale, 5_000).await;
    let view = h.agent("a1").await;
    let AgentState::WrapUp {
        call: c,
        until_ms,
        coding,
    } = view.state
    else {
        panic!("a1 not in wrap-up: {:?}", view.state);
    };
    assert_eq!(c, call);
    assert_eq!(until_ms, end + 30_000);
    assert!(coding.owed, "{coding:?}");
    assert_eq!(view.stats.calls_handled, 1);
    assert!(view.stats.talk_ms_total >= 2_000, "{:?}", view.stats);
    let code = AgentCommand::Call(CallAction::WrapUpCode {
        code: "sale".into(),
    });
    h.cmd("a1", code).await.unwrap();
    h.cmd("a1", AgentCommand::EndWrapUp).await.unwrap();
    assert!(is(&h.state("a1").await, "ready"));
    assert_eq!(
        h.kinds(&call)
            .iter()
            .filter(|k| matches!(
                k,
                RecordKind::InteractionCreate | RecordKind::PhoneLogCreate
            ))
            .count(),
        2
    );
    let events = h.events(&call);
    assert_eq!(
        events.iter().filter(|e| *e == "ended").count(),
        1,
        "{events:?}"
    );
    assert_eq!(events.last().map(String::as_str), Some("wrap_up_code"));
}

/// Goal: the same for an agent saved talking on the call: it comes back in
/// the call's wrap-up (not Not Ready, as from a lost call), and a wrap-up
/// that ran out while edgecc was down ends once, at once. Method: a1's
/// record taken while talking; the caller hangs up; killed; restored 40 s
/// later (past the 30 s wrap-up): a1 is Ready, not Not Ready.
#[actix_rt::test]
async fn agent_saved_talking_on_a_call_that_ended_gets_its_wrap_up() {
    tokio::time::pause();
    let (h, call) = talking(coded_wrap_up(1)).await;
    let stale = h.state.snapshot().agents[&AgentId::new("a1")].clone();
    assert!(is(&stale.state, "talking"), "{:?}", stale.state);
    h.hang_up(call.as_str()).await;
    advance(500).await;
    let h = restart_with_stale_a1(h, stale.clone(), 5_000).await;
    assert!(
        matches!(h.state("a1").await, AgentState::WrapUp { call: c, .. } if c == call),
        "{:?}",
        h.state("a1").await
    );
    advance(30_000).await;
    assert!(is(&h.state("a1").await, "ready"));
    assert_eq!(h.agent("a1").await.stats.calls_handled, 1);
}

/// Goal: an agent saved still offered a call it then missed, which went
/// to another agent and ended, comes back with the no-answer counted as
/// the rules say (RONA sets Not Ready), not freed as if nothing happened,
/// and is never left reserved. Method: a1's record taken while the offer
/// rang; a1's phone never answers; at RONA the call goes to a2, who talks
/// and is in its wrap-up when edgecc is killed with a1's stale record;
/// restored: a1 is Not Ready (RONA) as it was, one no-answer counted; a2
/// is still in its wrap-up.
#[actix_rt::test]
async fn agent_saved_offered_a_call_it_missed_gets_its_no_answer() {
    tokio::time::pause();
    let (h, call) = offered(coded_wrap_up(2), PhoneAction::NoAnswer).await;
    let stale = h.state.snapshot().agents[&AgentId::new("a1")].clone();
    assert!(is(&stale.state, "reserved"), "{:?}", stale.state);
    h.script("102", vec![PhoneAction::Answer { after_ms: 1_000 }]);
    h.ready("a2").await;
    advance(12_000).await;
    let live = h.agent("a1").await;
    assert!(is(&live.state, "not_ready"), "{:?}", live.state);
    assert!(matches!(h.state("a2").await, AgentState::Talking { call: c, .. } if c == call));
    h.hang_up(call.as_str()).await;
    advance(500).await;
    let h = restart_with_stale_a1(h, stale, 1_000).await;
    let back = h.agent("a1").await;
    assert_eq!(back.state, live.state);
    assert_eq!(back.stats.rona_count, 1);
    assert!(is(&h.state("a2").await, "wrap_up"));
}

/// Goal: an offer answered at the phone while edgecc was down, whose
/// caller then hung up before edgecc came back, is resolved once as the
/// abandon it was: edgecc bridges an answered agent to its caller, so the
/// two never talked; the agent is freed Ready (no wrap-up for a call it
/// never had, no no-answer against it), its leg hung up, the call ends
/// abandoned with its work item and no phone log. Method: a1's phone answers 2 s into the
/// offer; edgecc is killed at once; at 2.5 s the caller hangs up; restored
/// at 3.5 s.
#[actix_rt::test]
async fn offer_answered_while_down_by_a_caller_gone_is_an_abandon() {
    tokio::time::pause();
    let (h, call) = offered(basic(1), PhoneAction::Answer { after_ms: 2_000 }).await;
    let AgentState::Reserved { token, .. } = h.state("a1").await else {
        panic!("a1 not reserved");
    };
    let h = h.kill_and(|_| ()).await;
    advance(2_500).await;
    assert!(h.leg(&format!("{call}~{token}")).await.unwrap().up);
    hang_up_at(&h.sim, call.as_str());
    let h = h.restart_killed(1_000).await;
    advance(100).await;
    let a1 = h.agent("a1").await;
    assert!(is(&a1.state, "ready"), "{:?}", a1.state);
    assert_eq!(a1.stats.calls_handled, 0);
    assert_eq!(a1.stats.rona_count, 0);
    assert_eq!(h.snapshot().await.ended.get("abandoned"), Some(&1));
    assert_eq!(h.sim.send(GetSimStats).await.unwrap().legs, 0);
    assert_eq!(
        h.kinds(&call),
        vec![RecordKind::InteractionCreate, RecordKind::WorkItemCreate]
    );
}

/// Goal: a restart does not restart an agent's clock: time in a Not Ready
/// (which records no start of its own) runs on from its real start on the
/// desktop and wallboard, and its history interval is whole. Method: a1
/// goes Not Ready (break) at T; killed 10 s later, down 5 s; restored, a1's
/// view says Not Ready since T; a1 goes Ready 1 s later, and the one
/// `not_ready`/`break` interval runs from T to then.
#[actix_rt::test]
async fn time_in_a_not_ready_runs_on_across_a_restart() {
    tokio::time::pause();
    let h = start(basic(1), 1);
    h.cmd("a1", AgentCommand::Login).await.unwrap();
    h.not_ready("a1", "break").await.unwrap();
    let since = h.agent("a1").await.state_since_ms;
    advance(10_000).await;
    let h = h.restart(5_000).await;
    let view = h.agent("a1").await;
    assert!(is(&view.state, "not_ready"), "{:?}", view.state);
    assert_eq!(view.state_since_ms, since);
    advance(1_000).await;
    h.cmd("a1", AgentCommand::Ready).await.unwrap();
    let ready_at = h.agent("a1").await.state_since_ms;
    let breaks: Vec<(u64, u64)> = h
        .state
        .history()
        .into_iter()
        .filter_map(|r| match r {
            StateRecord::AgentInterval(i) if i.reason.as_deref() == Some("break") => {
                Some((i.start_ms, i.end_ms))
            }
            _ => None,
        })
        .collect();
    assert_eq!(breaks, vec![(since, ready_at)]);
}

/// Goal: a reject delay that has not run out when edgecc dies runs out at
/// its own time after the restart, not at once (a timer fires once, when
/// due). Method: 10 s reject delay; a1 rejects an offer, killed 2 s later,
/// down 3 s: a1 is still in its reject delay after the restart and 4 s
/// later, and out of it once the 10 s have passed.
#[actix_rt::test]
async fn a_reject_delay_runs_to_its_end_across_a_restart() {
    tokio::time::pause();
    let mut cfg = basic(1);
    cfg.timers.reject_delay_ms = 10_000;
    let (h, _call) = offered(cfg, PhoneAction::NoAnswer).await;
    h.cmd("a1", AgentCommand::Reject).await.unwrap();
    let delayed = AgentState::NotReady {
        reason: edgecc_actors::agent::NotReadyReason::System(
            edgecc_actors::agent::SystemReason::RejectDelay,
        ),
    };
    assert_eq!(h.state("a1").await, delayed);
    advance(2_000).await;
    let h = h.restart(3_000).await;
    assert_eq!(h.state("a1").await, delayed);
    advance(4_000).await;
    assert_eq!(h.state("a1").await, delayed);
    advance(1_500).await;
    // Out of the delay (Ready, or offered the waiting call again: it is
    // the queue's only agent).
    assert_ne!(h.state("a1").await, delayed);
}

/// `agent`'s desktop connects or closes (as the HTTP layer's WebSocket
/// reports it), then everything it set off runs.
async fn desktop(h: &Harness, agent: &str, event: DesktopEvent) {
    h.registry
        .send(AgentDesktop {
            agent: AgentId::new(agent),
            event,
        })
        .await
        .unwrap();
    settle().await;
}

/// Goal: a restart is not read as every desktop closing, and the desktop
/// grace runs sanely across it. Method: a1, a2 and a3 Ready with their
/// desktops connected; a3's closes 2 s before the kill (grace 10 s);
/// edgecc is down 3 s. After the restart a1 and a2 are still connected
/// since their own start and Ready, and the HTTP layer says desktops may
/// reconnect (grace 10 s from the restart); a1's desktop comes back at
/// 5 s and a1 stays Ready and connected past the grace; a2's never does:
/// Ready at 9.9 s, then gone since the restart and Not Ready (desktop
/// gone); a3's grace ends at its own deadline, 5 s after the restart.
#[actix_rt::test]
async fn desktop_presence_survives_a_restart_with_its_grace() {
    tokio::time::pause();
    let h = start(basic(3), 1);
    for a in ["a1", "a2", "a3"] {
        h.ready(a).await;
        desktop(&h, a, DesktopEvent::Connected).await;
    }
    let mut connected_at = std::collections::HashMap::new();
    for a in ["a1", "a2"] {
        match h.agent(a).await.presence {
            Presence::Connected { since_ms } => connected_at.insert(a, since_ms),
            other => panic!("{a} not connected: {other:?}"),
        };
    }
    advance(1_000).await;
    desktop(&h, "a3", DesktopEvent::Disconnected { grace_ms: 10_000 }).await;
    advance(2_000).await;
    let h = h.restart(3_000).await;
    let restart_ms = h.clock.now_ms();
    let near_restart = |since_ms: u64| (restart_ms - 10..=restart_ms).contains(&since_ms);
    for a in ["a1", "a2"] {
        let view = h.agent(a).await;
        assert_eq!(
            view.presence,
            Presence::Connected {
                since_ms: connected_at[a]
            },
            "{a}"
        );
        assert!(is(&view.state, "ready"), "{a}: {:?}", view.state);
    }
    h.registry
        .send(AwaitDesktops { grace_ms: 10_000 })
        .await
        .unwrap();
    advance(4_900).await;
    assert!(is(&h.state("a3").await, "ready"), "a3's grace is not over");
    advance(200).await;
    let gone = AgentState::NotReady {
        reason: NotReadyReason::System(SystemReason::DesktopGone),
    };
    assert_eq!(
        h.state("a3").await,
        gone,
        "a3's grace ended at its own deadline"
    );
    desktop(&h, "a1", DesktopEvent::Connected).await;
    advance(4_700).await;
    assert!(
        is(&h.state("a2").await, "ready"),
        "a2 still within its grace"
    );
    advance(300).await;
    let a2 = h.agent("a2").await;
    assert_eq!(a2.state, gone);
    assert!(
        matches!(a2.presence, Presence::Disconnected { since_ms } if near_restart(since_ms)),
        "gone since the restart: {:?}",
        a2.presence
    );
    advance(20_000).await;
    let a1 = h.agent("a1").await;
    assert!(is(&a1.state, "ready"), "{:?}", a1.state);
    assert_eq!(
        a1.presence,
        Presence::Connected {
            since_ms: connected_at["a1"]
        }
    );
}
