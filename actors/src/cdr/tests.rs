//! Unit tests of the call trail: the pure call machine driven step by
//! step, each step's effects handed to [`observe`] as the actor does.

use super::*;
use crate::call::{AgentContact, QueueRules};
use crate::ids::LegId;
use crate::ports::HangupCause;

fn rules(queue: &str) -> QueueRules {
    QueueRules::plain(queue, 600_000, 30_000)
}

fn contact(a: &str) -> AgentContact {
    AgentContact::sim(a)
}

/// A call arrived at 0 and queued in `q` at 0, its trail observed.
fn queued() -> Call {
    let (mut call, fx) = Call::inbound(
        "s",
        LegId::new("c1"),
        "+15550100".into(),
        "+18005550100".into(),
        vec![],
        0,
        10_000,
    );
    observe(&mut call, &fx, 0);
    let fx = call.enqueue(rules("q"), 0).unwrap();
    observe(&mut call, &fx, 0);
    call
}

fn step(call: &mut Call, fx: Vec<CallEffect>, now: u64) {
    observe(call, &fx, now);
}

fn queue_offer(call: &mut Call, agent: &str, token: u64, now: u64) {
    let queue = call.rules.as_ref().map(|r| r.queue.clone()).unwrap();
    let purpose = OfferPurpose::Queue(queue);
    let fx = call.offer(&contact(agent), OfferToken(token), purpose, false, now);
    step(call, fx, now);
}

/// Goal: a call missed by one agent, answered by another, held and hung
/// up leaves a record with every figure a report needs. Method: drive the
/// pure machine through the steps at known times and read the record.
#[test]
fn answered_call_records_offers_hold_talk_and_wrap_up() {
    let mut call = queued();
    queue_offer(&mut call, "a", 1, 1_000);
    let fx = call.rona(OfferToken(1), 11_000);
    step(&mut call, fx, 11_000);
    queue_offer(&mut call, "b", 2, 12_000);
    let fx = call.leg_answered(&LegId::new("c1~2"), 14_000);
    step(&mut call, fx, 14_000);
    let b = AgentId::new("b");
    let fx = call.hold(&b, 20_000).unwrap();
    step(&mut call, fx, 20_000);
    let fx = call.resume(&b, 30_000).unwrap();
    step(&mut call, fx, 30_000);
    let fx = call.hang_up(&b, 100_000).unwrap();
    step(&mut call, fx, 100_000);
    assert!(call.is_ended());

    let r = CallDetailRecord::of(&call);
    assert_eq!(r.trail.terminal, Some(TerminalReason::Completed));
    assert_eq!(r.trail.queues.len(), 1);
    let s = &r.trail.queues[0];
    assert_eq!(
        (s.entered_ms, s.left_ms, s.outcome, s.agent.as_ref()),
        (0, Some(14_000), Some(StintOutcome::Answered), Some(&b))
    );
    let outcomes: Vec<_> = r
        .trail
        .offers
        .iter()
        .map(|o| {
            (
                o.agent.0.as_str(),
                o.token.0,
                o.outcome,
                o.offered_ms,
                o.ended_ms,
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("a", 1, Some(OfferResult::Missed), 1_000, Some(11_000)),
            ("b", 2, Some(OfferResult::Answered), 12_000, Some(14_000)),
        ]
    );
    assert_eq!((r.trail.holds, r.trail.hold_ms), (1, 10_000));
    assert_eq!(r.answered_ms, Some(14_000));
    assert_eq!(r.talk_ms, 100_000 - 14_000 - 10_000, "talk excludes hold");
    assert_eq!(
        r.wrap_up_ms, 30_000,
        "the queue's wrap-up, granted on leaving"
    );
    assert_eq!(r.handle_ms(), 76_000 + 10_000 + 30_000);
    assert_eq!(r.trail.parties.len(), 1);
    assert_eq!(r.trail.parties[0].joined_ms, 14_000);
    assert_eq!(r.trail.parties[0].left_ms, Some(100_000));
    assert_eq!(r.interaction_id.as_deref(), Some("s:c1:interaction.create"));
    assert_eq!(
        (r.ani.as_str(), r.dnis.as_str()),
        ("+15550100", "+18005550100")
    );
    assert_eq!(r.key(), b"~c/00000000000000000000/c1".to_vec());
}

/// Goal: a caller who hangs up while waiting leaves an abandoned stint
/// with its wait, and a ringing offer withdrawn. Method: offer, then the
/// caller hangs up while it rings.
#[test]
fn abandon_while_ringing_closes_the_stint_and_the_offer() {
    let mut call = queued();
    queue_offer(&mut call, "a", 1, 3_000);
    let fx = call.leg_hung_up(&LegId::new("c1"), HangupCause::Normal, 5_000);
    step(&mut call, fx, 5_000);
    let r = CallDetailRecord::of(&call);
    assert_eq!(r.trail.terminal, Some(TerminalReason::Abandoned));
    assert_eq!(r.trail.queues[0].outcome, Some(StintOutcome::Abandoned));
    assert_eq!(r.trail.queues[0].wait_ms(), Some(5_000));
    assert_eq!(r.trail.offers[0].outcome, Some(OfferResult::Withdrawn));
    assert_eq!((r.talk_ms, r.answered_ms), (0, None));
    assert!(
        r.interaction_id.is_some(),
        "an abandon writes an interaction and a work item"
    );
}

/// Goal: moving to another queue unanswered closes the first stint as
/// overflowed and opens one in the new queue; a blind transfer after
/// answer counts as a transfer and its new stint is answered too.
#[test]
fn overflow_and_transfer_to_queue_open_new_stints() {
    let mut call = queued();
    let fx = call.overflow_to(rules("q2"), 60_000).unwrap();
    step(&mut call, fx, 60_000);
    queue_offer(&mut call, "a", 1, 61_000);
    let fx = call.leg_answered(&LegId::new("c1~1"), 62_000);
    step(&mut call, fx, 62_000);
    let a = AgentId::new("a");
    let fx = call.transfer_to_queue(&a, rules("q3"), 70_000).unwrap();
    step(&mut call, fx, 70_000);
    queue_offer(&mut call, "b", 2, 71_000);
    let fx = call.leg_answered(&LegId::new("c1~2"), 72_000);
    step(&mut call, fx, 72_000);
    let t = &call.trail;
    let stints: Vec<_> = t
        .queues
        .iter()
        .map(|s| (s.queue.0.as_str(), s.entered_ms, s.outcome))
        .collect();
    assert_eq!(
        stints,
        vec![
            ("q", 0, Some(StintOutcome::Overflowed)),
            ("q2", 60_000, Some(StintOutcome::Answered)),
            ("q3", 70_000, Some(StintOutcome::Answered)),
        ]
    );
    assert_eq!(t.transfers, 1);
    assert_eq!(t.parties.len(), 2);
    assert_eq!(t.parties[0].left_ms, Some(70_000));
    assert_eq!(t.parties[0].wrap_up_ms, 30_000);
}

/// Goal: the detail record keeps why the call's queue offers went to their
/// agents (the call's routing record), and says nothing for a call that no
/// queue offer explained. Method: an abandoned call, first with no
/// explanation, then with one noted as the call actor notes a grant's.
/// Expected: `None`, then the explanation's queue, agent and rule.
#[test]
fn the_record_keeps_the_routing_explanation() {
    use crate::config::Strategy;
    use crate::queue::explain::{DecidedBy, PickRule, RoutingExplanation};
    let mut call = queued();
    let fx = call.leg_hung_up(&LegId::new("c1"), HangupCause::Normal, 5_000);
    step(&mut call, fx, 5_000);
    assert_eq!(CallDetailRecord::of(&call).trail.explanation, None);
    call.routing.note(RoutingExplanation {
        queue: QueueId::new("q"),
        offered_ms: 3_000,
        chosen: vec![AgentId::new("a")],
        rule: PickRule::Strategy,
        decided_by: DecidedBy::OnlyCandidate,
        strategy: Strategy::LongestIdle,
        skills: vec![],
        steps_reached: 0,
        step: None,
        hold_until_ms: None,
        candidates: vec![],
        candidates_read: 1,
        candidates_eligible: 1,
        ready_agents: 1,
        tried_agents: 0,
        held_back: vec![],
        held_back_total: 0,
    });
    let record = CallDetailRecord::of(&call);
    let kept = record.trail.explanation.clone();
    assert!(
        matches!(&kept, Some(Explanation::Kept(r)) if *r == call.routing),
        "the call's record is kept: {kept:?}"
    );
    // Written as the record's JSON, and read back so.
    let row = serde_json::to_value(&record).unwrap();
    let e = row["explanation"].clone();
    assert_eq!(e, serde_json::to_value(&call.routing).unwrap());
    let back: CallDetailRecord = serde_json::from_value(row.clone()).unwrap();
    assert_eq!(back.trail.explanation, kept);
    // A row of another shape still reads, as it was written.
    let mut odd = row;
    odd["explanation"] = serde_json::json!({"offers_total": "three", "why": [1]});
    let back: CallDetailRecord = serde_json::from_value(odd.clone()).unwrap();
    assert_eq!(
        back.trail.explanation,
        Some(Explanation::Read(odd["explanation"].clone()))
    );
    assert_eq!(e["offers_total"], 1);
    assert_eq!(e["offers"][0]["queue"], "q");
    assert_eq!(e["offers"][0]["chosen"][0], "a");
    assert_eq!(e["offers"][0]["decided_by"], "only_candidate");
}
