//! A caller's place in line (issue 18): a missed, rejected or refused offer
//! puts the call back at its place (arrival and priority), ahead of later
//! arrivals, also after an overflow to another queue and after a restart;
//! an agent who missed the call is offered it again after the others, not
//! never. Scenario tests through the actors' messages on the simulated PBX
//! with tokio's paused clock.

mod util;

use edgecc_actors::agent::AgentState;
use edgecc_actors::config::FinalDestination;
use edgecc_actors::sim::PhoneAction;
use edgecc_actors::*;
use util::*;

/// Whether `state` is an offer of `call`.
fn offered(state: &AgentState, call: &CallId) -> bool {
    matches!(state, AgentState::Reserved { call: c, .. } if c == call)
}

/// The waiting line of the first queue.
async fn line(h: &Harness) -> Vec<CallId> {
    h.snapshot().await.queues[0].waiting.clone()
}

/// Goal: a one-agent queue does not wait out the whole max wait after its
/// agent missed the call. Method: a1, the only agent, lets the offer ring
/// out (RONA puts it Not Ready), then says Ready again. Expected: the same
/// call is offered to a1 again and a1 answers it.
#[actix_rt::test]
async fn a_one_agent_queue_offers_the_missed_call_again() {
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
    assert!(offered(&h.state("a1").await, &call));
    advance(10_500).await;
    assert!(is(&h.state("a1").await, "not_ready"), "RONA");
    assert_eq!(line(&h).await, vec![call.clone()]);
    h.cmd("a1", AgentCommand::Ready).await.unwrap();
    assert!(offered(&h.state("a1").await, &call), "offered again");
    advance(1_500).await;
    assert!(matches!(h.state("a1").await, AgentState::Talking { call: c, .. } if c == call));
    assert_eq!(h.agent("a1").await.stats.rona_count, 1);
}

/// Goal: a missed call keeps its place ahead of later arrivals. Method: c1
/// rings a1 and is missed (RONA) while c2, which arrived a second after
/// c1, waits; then a2 says Ready. Expected: c1 is back at the head of the
/// line and a2 is offered c1, not c2.
#[actix_rt::test]
async fn a_missed_call_keeps_its_place_ahead_of_later_arrivals() {
    tokio::time::pause();
    let h = start(basic(2), 1);
    h.cmd("a2", AgentCommand::Login).await.unwrap();
    h.ready("a1").await;
    h.script("101", vec![PhoneAction::NoAnswer]);
    let c1 = h.call(caller("800")).await;
    advance(1_000).await;
    let c2 = h.call(caller("800")).await;
    assert_eq!(line(&h).await, vec![c2.clone()]);
    advance(9_500).await;
    assert!(is(&h.state("a1").await, "not_ready"), "RONA");
    assert_eq!(line(&h).await, vec![c1.clone(), c2.clone()]);
    h.cmd("a2", AgentCommand::Ready).await.unwrap();
    assert!(offered(&h.state("a2").await, &c1));
}

/// Goal: an agent who rejected a call is offered it again only after the
/// other eligible agents. Method: a1 and a2 Ready (a1 idle longer), a1
/// rejects c1 with no reject delay (Ready again at once), a2 misses it too
/// (a2 is then Not Ready). Expected: after a1's reject c1 goes to a2 even
/// though a1 is Ready and idle longer; after a2's miss it goes back to a1.
#[actix_rt::test]
async fn the_agent_who_rejected_goes_last_not_never() {
    tokio::time::pause();
    let h = start(basic(2), 1);
    h.ready("a1").await;
    advance(10).await;
    h.ready("a2").await;
    h.script("101", vec![PhoneAction::NoAnswer, PhoneAction::NoAnswer]);
    h.script("102", vec![PhoneAction::NoAnswer]);
    let c1 = h.call(caller("800")).await;
    assert!(offered(&h.state("a1").await, &c1));
    h.cmd("a1", AgentCommand::Reject).await.unwrap();
    assert!(is(&h.state("a1").await, "ready"));
    assert!(offered(&h.state("a2").await, &c1));
    advance(10_500).await;
    assert!(is(&h.state("a2").await, "not_ready"), "RONA");
    assert!(offered(&h.state("a1").await, &c1), "back to a1");
}

/// Goal: a call that overflows to another queue keeps its original arrival
/// there. Method: c1 waits in `first` (no agent, max wait 5 s, overflow to
/// `second`); c2 calls `second` directly a second after c1; c1 overflows.
/// Expected: `second`'s line is c1 then c2, and its agent, once Ready, is
/// offered c1.
#[actix_rt::test]
async fn an_overflow_keeps_the_original_arrival() {
    tokio::time::pause();
    let mut cfg = basic(0);
    cfg.queues[0].max_wait_ms = 5_000;
    cfg.queues[0].final_destination = FinalDestination::Queue {
        queue: "second".into(),
    };
    cfg.queues.push(queue("second", "801"));
    cfg.agents.push(agent("b1", "201", &["second"]));
    let h = start(cfg, 1);
    h.cmd("b1", AgentCommand::Login).await.unwrap();
    let c1 = h.call(caller("800")).await;
    advance(1_000).await;
    let c2 = h.call(caller("801")).await;
    advance(4_500).await;
    let snap = h.snapshot().await;
    let second = snap
        .queues
        .iter()
        .find(|q| q.queue.as_str() == "second")
        .unwrap();
    assert_eq!(second.waiting, vec![c1.clone(), c2]);
    h.cmd("b1", AgentCommand::Ready).await.unwrap();
    assert!(offered(&h.state("b1").await, &c1));
}

/// Goal: the place survives a restart. Method: c1 is missed by a1 (RONA)
/// while c2, a second younger, waits; edgecc is killed and restored; then
/// a2 says Ready. Expected: the restored line is c1 then c2 and a2 is
/// offered c1.
#[actix_rt::test]
async fn the_place_survives_a_restart() {
    tokio::time::pause();
    let h = start(basic(2), 1);
    h.cmd("a2", AgentCommand::Login).await.unwrap();
    h.ready("a1").await;
    h.script("101", vec![PhoneAction::NoAnswer]);
    let c1 = h.call(caller("800")).await;
    advance(1_000).await;
    let c2 = h.call(caller("800")).await;
    advance(9_500).await;
    let h = h.restart(2_000).await;
    assert_eq!(line(&h).await, vec![c1.clone(), c2]);
    h.cmd("a2", AgentCommand::Ready).await.unwrap();
    assert!(offered(&h.state("a2").await, &c1));
}
