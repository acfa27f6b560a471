//! Scenario tests of the agent score, the back-off per outcome, the
//! cooling-off after repeated no-answers and the score as the strategies'
//! tie-breaker (issue 18), and of the smaller faults the issue lists (a
//! consulted agent who does not answer, wrap-up after a transferred call).
//! Each drives the actors through the simulated PBX with the paused clock.

mod util;

use edgecc_actors::agent::backoff::BackoffSettings;
use edgecc_actors::agent::{AgentState, NotReadyReason, SystemReason};
use edgecc_actors::config::Strategy;
use edgecc_actors::sim::PhoneAction;
use edgecc_actors::*;
use util::*;

fn cooling_off() -> AgentState {
    AgentState::NotReady {
        reason: NotReadyReason::System(SystemReason::CoolingOff),
    }
}

/// Goal: the agent keeps a score of its routed offers and it survives a
/// restart. Method: a1 (the only agent, RONA leaves it Ready) answers a
/// call after 1 s, then its phone does not answer one, then it rejects one
/// from the desktop, then its phone is busy for one; edgecc restarts.
/// Expected: one answer with an average answer time of 1 s, one no-answer,
/// one reject, one refusal, a miss share above zero; the same after the
/// restart.
#[actix_rt::test]
async fn the_score_counts_routed_offers_and_survives_a_restart() {
    tokio::time::pause();
    let mut cfg = basic(1);
    cfg.timers.rona_sets_not_ready = false;
    // A missed call keeps its place and would ring a1 again at once, using
    // the phone's next scripted action: each miss keeps a1 out long enough
    // for the caller to hang up first.
    cfg.routing.backoff = BackoffSettings {
        after_no_answer_ms: 300,
        after_reject_ms: 300,
        after_refused_ms: 5_000,
        ..Default::default()
    };
    let h = start(cfg, 1);
    h.ready("a1").await;
    h.script(
        "101",
        vec![
            PhoneAction::Answer { after_ms: 1_000 },
            PhoneAction::NoAnswer,
            PhoneAction::NoAnswer,
            PhoneAction::Busy { after_ms: 300 },
        ],
    );
    let c1 = h.call(caller("800")).await;
    advance(1_500).await;
    assert!(matches!(h.state("a1").await, AgentState::Talking { .. }));
    h.hang_up(c1.as_str()).await;
    advance(100).await;
    // Rings out after the 10 s offer timeout.
    let c2 = h.call(caller("800")).await;
    advance(10_100).await;
    h.hang_up(c2.as_str()).await;
    advance(300).await;
    // Rejected from the desktop.
    let c3 = h.call(caller("800")).await;
    assert!(matches!(h.state("a1").await, AgentState::Reserved { .. }));
    h.cmd("a1", AgentCommand::Reject).await.unwrap();
    h.hang_up(c3.as_str()).await;
    advance(300).await;
    // Busy; the call then waits out a1's 5 s back-off.
    h.call(caller("800")).await;
    advance(1_000).await;
    let score = h.agent("a1").await.stats.score;
    assert_eq!(score.answered, 1);
    // The phone answers after 1 s; the connection follows within a tick.
    let avg = score.answer_ms_avg.unwrap_or(0);
    assert!((1_000..1_050).contains(&avg), "{score:?}");
    assert_eq!(
        (score.no_answers, score.rejects, score.refusals),
        (1, 1, 1),
        "{score:?}"
    );
    assert!(score.miss_permille > 0);
    let h = h.restart(100).await;
    assert_eq!(h.agent("a1").await.stats.score, score);
}

/// A call offered to a1 (the only agent, RONA leaves it Ready) whose phone
/// does `phone`, rejected at once from the desktop if `reject`.
async fn first_offer_ends(backoff: BackoffSettings, phone: PhoneAction, reject: bool) -> Harness {
    let mut cfg = basic(1);
    cfg.timers.rona_sets_not_ready = false;
    cfg.routing.backoff = backoff;
    let h = start(cfg, 1);
    h.ready("a1").await;
    h.script("101", vec![phone]);
    h.call(caller("800")).await;
    if reject {
        h.cmd("a1", AgentCommand::Reject).await.unwrap();
    }
    h
}

/// Right after the first offer ended, a second call arrives: a1 stays
/// Ready but is offered nothing for 100 ms less than `backoff_ms`, and is
/// offered a waiting call 100 ms after it.
async fn skipped_for(h: Harness, backoff_ms: u64) {
    h.call(caller("800")).await;
    advance(backoff_ms - 100).await;
    let a1 = h.agent("a1").await;
    assert!(
        matches!(a1.state, AgentState::Ready { .. }),
        "Ready to the supervisor while backing off: {:?}",
        a1.state
    );
    assert!(a1.stats.backoff.until_ms > 0);
    advance(200).await;
    assert!(
        matches!(h.state("a1").await, AgentState::Reserved { .. }),
        "offered once the back-off ended"
    );
}

/// Goal: a reject from the desktop has its own back-off. Method: a1
/// rejects an offer with `after_reject_ms = 4000` (the other delays
/// longer); a second call arrives. Expected: a1 Ready but not offered the
/// second call before 4 s, offered it at 4 s.
#[actix_rt::test]
async fn a_reject_backs_off_for_its_own_delay() {
    tokio::time::pause();
    let backoff = BackoffSettings {
        after_reject_ms: 4_000,
        after_refused_ms: 60_000,
        after_no_answer_ms: 60_000,
        ..Default::default()
    };
    let h = first_offer_ends(backoff, PhoneAction::NoAnswer, true).await;
    skipped_for(h, 4_000).await;
}

/// Goal: a busy device has its own back-off. Method: a1's phone answers
/// busy after 500 ms with `after_refused_ms = 3000`. Expected: as for the
/// reject, with 3 s.
#[actix_rt::test]
async fn a_busy_device_backs_off_for_its_own_delay() {
    tokio::time::pause();
    let backoff = BackoffSettings {
        after_reject_ms: 60_000,
        after_refused_ms: 3_000,
        after_no_answer_ms: 60_000,
        ..Default::default()
    };
    let h = first_offer_ends(backoff, PhoneAction::Busy { after_ms: 500 }, false).await;
    advance(500).await;
    assert_eq!(h.agent("a1").await.stats.score.refusals, 1);
    skipped_for(h, 3_000).await;
}

/// Goal: a no-answer has its own back-off. Method: a1's phone rings out
/// (10 s) with `after_no_answer_ms = 5000` and RONA leaving it Ready.
/// Expected: as for the reject, with 5 s.
#[actix_rt::test]
async fn a_no_answer_backs_off_for_its_own_delay() {
    tokio::time::pause();
    let backoff = BackoffSettings {
        after_reject_ms: 60_000,
        after_refused_ms: 60_000,
        after_no_answer_ms: 5_000,
        ..Default::default()
    };
    let h = first_offer_ends(backoff, PhoneAction::NoAnswer, false).await;
    advance(10_050).await;
    assert_eq!(h.agent("a1").await.stats.score.no_answers, 1);
    skipped_for(h, 5_000 - 50).await;
}

/// Goal: repeated no-answers take the agent out for a while (the seed's
/// "ban for inactivity"). Method: `cooling_off_no_answers = 2` within 60 s,
/// `cooling_off_ms = 30000`, a 300 ms no-answer back-off (a missed call
/// keeps its place); a1's phone rings out for two calls (RONA
/// leaves it Ready after the first). Expected: Not Ready `cooling_off`
/// after the second, still so at 29.9 s, Ready by itself at 30 s and
/// offered the next call; the count starts again after a cooling-off; a
/// second cooling-off ends as soon as a1 says Ready.
#[actix_rt::test]
async fn repeated_no_answers_cool_the_agent_off() {
    tokio::time::pause();
    let mut cfg = basic(1);
    cfg.timers.rona_sets_not_ready = false;
    cfg.routing.backoff = BackoffSettings {
        after_no_answer_ms: 300,
        cooling_off_no_answers: 2,
        cooling_off_window_ms: 60_000,
        cooling_off_ms: 30_000,
        ..Default::default()
    };
    let h = start(cfg, 1);
    h.ready("a1").await;
    h.script("101", vec![PhoneAction::NoAnswer; 4]);
    // t = 0: c1 rings out at 10 s; a1 backs off 300 ms (c1 keeps its place)
    // and the caller hangs up at 10.1 s.
    let c1 = h.call(caller("800")).await;
    advance(10_100).await;
    h.hang_up(c1.as_str()).await;
    advance(300).await;
    // t = 10.4 s: c2 rings out at 20.4 s, the second no-answer in 60 s.
    let c2 = h.call(caller("800")).await;
    advance(10_100).await;
    h.hang_up(c2.as_str()).await;
    let a1 = h.agent("a1").await;
    assert_eq!(a1.state, cooling_off());
    assert_eq!(a1.stats.rona_count, 2);
    advance(29_700 - 100).await;
    assert_eq!(h.state("a1").await, cooling_off());
    let c3 = h.call(caller("800")).await;
    advance(300).await;
    assert!(
        matches!(h.state("a1").await, AgentState::Reserved { .. }),
        "Ready by itself after the cooling-off, offered the waiting call"
    );
    // A cooling-off starts the count again: c3 rings out at 60.4 s (one),
    // keeps its place, rings a1 again after the 300 ms back-off and rings
    // out at 70.7 s (two).
    advance(10_100).await;
    assert!(matches!(h.state("a1").await, AgentState::Ready { .. }));
    advance(10_300).await;
    assert_eq!(h.state("a1").await, cooling_off());
    h.hang_up(c3.as_str()).await;
    h.call(caller("800")).await;
    h.cmd("a1", AgentCommand::Ready).await.unwrap();
    assert!(matches!(h.state("a1").await, AgentState::Reserved { .. }));
}

/// Goal: with RONA setting Not Ready (the default), the N-th no-answer
/// says cooling off instead. Method: `cooling_off_no_answers = 2`, a1
/// misses one call, says Ready, misses another. Expected: Not Ready `rona`
/// after the first, `cooling_off` after the second.
#[actix_rt::test]
async fn the_cooling_off_replaces_rona_on_the_last_no_answer() {
    tokio::time::pause();
    let mut cfg = basic(1);
    cfg.routing.backoff = BackoffSettings {
        cooling_off_no_answers: 2,
        cooling_off_window_ms: 60_000,
        ..Default::default()
    };
    let h = start(cfg, 1);
    h.ready("a1").await;
    h.script("101", vec![PhoneAction::NoAnswer; 2]);
    let c = h.call(caller("800")).await;
    advance(10_100).await;
    h.hang_up(c.as_str()).await;
    let rona = AgentState::NotReady {
        reason: NotReadyReason::System(SystemReason::Rona),
    };
    assert_eq!(h.state("a1").await, rona);
    h.cmd("a1", AgentCommand::Ready).await.unwrap();
    h.call(caller("800")).await;
    advance(10_100).await;
    let a1 = h.agent("a1").await;
    assert_eq!(a1.state, cooling_off());
    assert_eq!(
        a1.stats.backoff.cooling_off_until_ms, None,
        "cooling_off_ms 0: until the agent comes back"
    );
    advance(600_000).await;
    assert_eq!(h.state("a1").await, cooling_off());
}

/// Goal: the score breaks the strategy's ties. Method: fewest-calls queue;
/// a1 (first by id) misses a call whose caller then hangs up, so a1 and a2
/// both handled no call; a new call arrives. Expected: a2 (no miss) gets
/// it; by id a1 would.
#[actix_rt::test]
async fn a_missed_offer_loses_ties_to_a_clean_record() {
    tokio::time::pause();
    let mut cfg = basic(2);
    cfg.queues[0].strategy = Strategy::FewestCalls;
    cfg.timers.rona_sets_not_ready = false;
    let h = start(cfg, 1);
    h.ready("a1").await;
    h.script("101", vec![PhoneAction::NoAnswer]);
    let c1 = h.call(caller("800")).await;
    advance(10_100).await;
    h.hang_up(c1.as_str()).await;
    h.ready("a2").await;
    assert_eq!(h.agent("a1").await.stats.calls_handled, 0);
    let c2 = h.call(caller("800")).await;
    assert!(
        matches!(h.state("a2").await, AgentState::Reserved { call, .. } if call == c2),
        "a2: {:?}",
        h.state("a2").await
    );
    assert!(matches!(h.state("a1").await, AgentState::Ready { .. }));
}

/// Goal: among agents that never miss, the faster answer wins the tie.
/// Method: fewest-calls queue; a1 answers a call after 4 s, a2 one after
/// 500 ms; both hang up (one call handled each); a new call arrives.
/// Expected: a2 gets it; by id a1 would.
#[actix_rt::test]
async fn the_faster_answer_wins_ties() {
    tokio::time::pause();
    let mut cfg = basic(2);
    cfg.queues[0].strategy = Strategy::FewestCalls;
    let h = start(cfg, 1);
    h.script("101", vec![PhoneAction::Answer { after_ms: 4_000 }]);
    h.script("102", vec![PhoneAction::Answer { after_ms: 500 }]);
    h.ready("a1").await;
    let c1 = h.call(caller("800")).await;
    h.ready("a2").await;
    let c2 = h.call(caller("800")).await;
    advance(4_500).await;
    h.hang_up(c1.as_str()).await;
    h.hang_up(c2.as_str()).await;
    advance(100).await;
    let (a1, a2) = (h.agent("a1").await, h.agent("a2").await);
    assert_eq!((a1.stats.calls_handled, a2.stats.calls_handled), (1, 1));
    assert!(a1.stats.score.answer_ms_avg > a2.stats.score.answer_ms_avg);
    let c3 = h.call(caller("800")).await;
    assert!(
        matches!(h.state("a2").await, AgentState::Reserved { call, .. } if call == c3),
        "a2: {:?}",
        h.state("a2").await
    );
}

/// Goal: a consulted agent who does not answer, or rejects, is not
/// penalised as if it missed a queue call (issue 18). Method: a1 talks to
/// a caller and consults a2, Ready, whose phone rings out; then consults
/// a3, Ready, who rejects from the desktop (reject delay 5 s). Expected:
/// a2 and a3 Ready at once, no RONA or reject counted, no score.
#[actix_rt::test]
async fn a_consulted_agent_who_does_not_answer_is_not_penalised() {
    tokio::time::pause();
    let mut cfg = basic(3);
    cfg.timers.reject_delay_ms = 5_000;
    cfg.agents[1].queues.clear();
    cfg.agents[2].queues.clear();
    let (h, _call) = talking(cfg).await;
    h.ready("a2").await;
    h.ready("a3").await;
    h.script("102", vec![PhoneAction::NoAnswer]);
    h.script("103", vec![PhoneAction::NoAnswer]);
    h.consult("a1", "a2").await.unwrap();
    advance(10_500).await;
    let a2 = h.agent("a2").await;
    assert!(
        matches!(a2.state, AgentState::Ready { .. }),
        "{:?}",
        a2.state
    );
    assert_eq!(a2.stats.rona_count, 0);
    assert_eq!(a2.stats.score.no_answers, 0);
    h.consult("a1", "a3").await.unwrap();
    h.cmd("a3", AgentCommand::Reject).await.unwrap();
    let a3 = h.agent("a3").await;
    assert!(
        matches!(a3.state, AgentState::Ready { .. }),
        "{:?}",
        a3.state
    );
    assert_eq!(a3.stats.reject_count, 0);
}

/// Goal: the agent who receives a transferred queue call owes the queue's
/// wrap-up (issue 18). Method: queue wrap-up 5 s; a1 blind-transfers its
/// call to a2 (Ready), a2 answers, the caller hangs up. Expected: a2 in
/// wrap-up, Ready 5 s later.
#[actix_rt::test]
async fn a_blind_transfer_target_gets_wrap_up() {
    tokio::time::pause();
    let mut cfg = basic(2);
    cfg.queues[0].wrap_up_ms = 5_000;
    cfg.agents[1].queues.clear();
    let (h, call) = talking(cfg).await;
    h.ready("a2").await;
    let target = AgentId::new("a2");
    h.act("a1", CallAction::TransferToAgent { target })
        .await
        .unwrap();
    advance(1_500).await;
    assert!(matches!(h.state("a2").await, AgentState::Talking { .. }));
    h.hang_up(call.as_str()).await;
    assert!(
        matches!(h.state("a2").await, AgentState::WrapUp { .. }),
        "{:?}",
        h.state("a2").await
    );
    advance(5_000).await;
    assert!(matches!(h.state("a2").await, AgentState::Ready { .. }));
}

/// Goal: the same after a consult completed as a transfer. Method: queue
/// wrap-up 5 s; a1 consults a2 (Ready), a2 answers, a1 completes the
/// transfer, the caller hangs up. Expected: a2 in wrap-up.
#[actix_rt::test]
async fn a_consult_transfer_target_gets_wrap_up() {
    tokio::time::pause();
    let mut cfg = basic(2);
    cfg.queues[0].wrap_up_ms = 5_000;
    cfg.agents[1].queues.clear();
    let (h, call) = talking(cfg).await;
    h.ready("a2").await;
    h.consult("a1", "a2").await.unwrap();
    advance(1_500).await;
    h.act("a1", CallAction::CompleteConsult).await.unwrap();
    assert!(matches!(h.state("a2").await, AgentState::Talking { .. }));
    h.hang_up(call.as_str()).await;
    assert!(
        matches!(h.state("a2").await, AgentState::WrapUp { .. }),
        "{:?}",
        h.state("a2").await
    );
}

/// A call a1 (the only agent, RONA leaves it Ready) does not answer with
/// `backoff`; the caller hangs up after the 10 s ring; edgecc is then down
/// 5 s and restarted (about 15.1 s in).
async fn missed_then_restarted(backoff: BackoffSettings) -> Harness {
    let mut cfg = basic(1);
    cfg.timers.rona_sets_not_ready = false;
    cfg.routing.backoff = backoff;
    let h = start(cfg, 1);
    h.ready("a1").await;
    h.script("101", vec![PhoneAction::NoAnswer]);
    let c1 = h.call(caller("800")).await;
    advance(10_100).await;
    h.hang_up(c1.as_str()).await;
    h.restart(5_000).await
}

/// Goal: a back-off running when edgecc restarts ends when it would have.
/// Method: `after_no_answer_ms = 20000`; a1 misses a call at 10 s; restart;
/// a call arrives. Expected: a1 Ready, not offered it before 30 s, offered
/// it after.
#[actix_rt::test]
async fn a_back_off_survives_a_restart() {
    tokio::time::pause();
    let backoff = BackoffSettings {
        after_no_answer_ms: 20_000,
        ..Default::default()
    };
    let h = missed_then_restarted(backoff).await;
    h.call(caller("800")).await;
    advance(14_600).await;
    assert!(matches!(h.state("a1").await, AgentState::Ready { .. }));
    advance(400).await;
    assert!(matches!(h.state("a1").await, AgentState::Reserved { .. }));
}

/// Goal: a timed cooling-off running when edgecc restarts ends when it
/// would have. Method: `cooling_off_no_answers = 1`, `cooling_off_ms =
/// 30000`; a1 misses a call at 10 s; restart. Expected: a1 Not Ready
/// `cooling_off` until 40 s, then Ready and offered a waiting call.
#[actix_rt::test]
async fn a_cooling_off_survives_a_restart() {
    tokio::time::pause();
    let backoff = BackoffSettings {
        cooling_off_no_answers: 1,
        cooling_off_window_ms: 60_000,
        cooling_off_ms: 30_000,
        ..Default::default()
    };
    let h = missed_then_restarted(backoff).await;
    assert_eq!(h.state("a1").await, cooling_off());
    h.call(caller("800")).await;
    advance(24_600).await;
    assert_eq!(h.state("a1").await, cooling_off());
    advance(400).await;
    assert!(matches!(h.state("a1").await, AgentState::Reserved { .. }));
}
