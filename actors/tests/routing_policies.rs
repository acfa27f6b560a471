//! Routing policies beyond the strategy (issue 18): skills with levels and
//! the best match, a call's own requirements from its attached data,
//! escalation steps that widen a waiting call, priority by caller, aging
//! and its reset on overflow. Each test drives the actors through the
//! simulated PBX with tokio's paused clock.

mod util;

use edgecc_actors::agent::AgentState;
use edgecc_actors::config::{
    CallerPriority, EscalationStep, FinalDestination, SkillLevel, SkillRequirement,
};
use edgecc_actors::ports::AttachedVar;
use edgecc_actors::*;
use util::*;

fn level(skill: &str, level: u8) -> SkillLevel {
    SkillLevel {
        skill: skill.into(),
        level,
    }
}

fn need(skill: &str, level_min: u8) -> SkillRequirement {
    SkillRequirement {
        skill: skill.into(),
        level_min,
    }
}

fn step(after_ms: u64) -> EscalationStep {
    EscalationStep {
        after_ms,
        level_min: None,
        any_member: false,
        overflow: false,
    }
}

fn with_var(mut c: sim::Caller, key: &str, value: &str) -> sim::Caller {
    c.attached.push(AttachedVar {
        key: key.into(),
        value: value.into(),
    });
    c
}

/// The call `agent` is reserved for or talking on.
async fn call_of(h: &Harness, agent: &str) -> Option<CallId> {
    match h.state(agent).await {
        AgentState::Reserved { call, .. } | AgentState::Talking { call, .. } => Some(call),
        _ => None,
    }
}

/// Goal: the agent with the most levels above the queue's minimum gets the
/// call, whoever has been idle longest; an agent without the skill gets
/// none. Method: four agents Ready in order a1..a4 (longest idle would
/// pick a1), English at 2, none, 5 and 4 for a queue needing English 2;
/// two calls go to a3 then a4, a third waits though a2 is Ready.
#[actix_rt::test]
async fn best_skill_match_wins() {
    tokio::time::pause();
    let mut cfg = basic(4);
    cfg.queues[0].required_skills = vec![need("english", 2)];
    cfg.agents[0].skills = vec![level("english", 2)];
    cfg.agents[2].skills = vec![level("english", 5)];
    cfg.agents[3].skills = vec![level("english", 4)];
    let h = start(cfg, 1);
    for a in ["a1", "a2", "a3", "a4"] {
        h.ready(a).await;
        advance(100).await;
    }
    let first = h.call(caller("800")).await;
    assert_eq!(call_of(&h, "a3").await, Some(first), "level 5 first");
    let second = h.call(caller("800")).await;
    assert_eq!(call_of(&h, "a4").await, Some(second), "then level 4");
    let third = h.call(caller("800")).await;
    assert_eq!(call_of(&h, "a1").await, Some(third), "then level 2");
    let fourth = h.call(caller("800")).await;
    assert!(is(&h.state("a2").await, "ready"), "a2 lacks English");
    assert_eq!(h.snapshot().await.queues[0].waiting, vec![fourth]);
}

/// Goal: a call's own requirement, read from its attached data, narrows
/// who may take it and is matched by level. Method: a queue without
/// requirements; a1 (French 1) idle longest, a2 (French 4, German 2), a3
/// (no skills); a call asking `skills = "french:2"` goes to a2, a call
/// asking German 3 waits while a1 and a3 are Ready, a plain call takes a1.
#[actix_rt::test]
async fn call_requirement_from_attached_data() {
    tokio::time::pause();
    let mut cfg = basic(3);
    cfg.agents[0].skills = vec![level("french", 1)];
    cfg.agents[1].skills = vec![level("french", 4), level("german", 2)];
    let h = start(cfg, 1);
    for a in ["a1", "a2", "a3"] {
        h.ready(a).await;
        advance(100).await;
    }
    let french = h.call(with_var(caller("800"), "skills", "french:2")).await;
    assert_eq!(call_of(&h, "a2").await, Some(french));
    let german = h.call(with_var(caller("800"), "skills", "german:3")).await;
    assert!(is(&h.state("a1").await, "ready"));
    assert!(is(&h.state("a3").await, "ready"));
    let plain = h.call(caller("800")).await;
    assert_eq!(call_of(&h, "a1").await, Some(plain), "longest idle");
    assert_eq!(h.snapshot().await.queues[0].waiting, vec![german]);
}

/// Goal: escalation steps widen calls that are already waiting when a
/// step's time comes, and an overflow step sends the call on. Method: a
/// queue needing English 4 with steps at 20 s (level 2), 60 s (any member)
/// and 90 s (overflow to an announcement); a1 has English 2, a2 nothing;
/// three calls arrive at 0 s: the first reaches a1 at 20 s, the second a2
/// at 60 s, the third times out at 90 s, long before max_wait_ms.
#[actix_rt::test]
async fn escalation_steps_widen_waiting_calls() {
    tokio::time::pause();
    let mut cfg = basic(2);
    let q = &mut cfg.queues[0];
    q.max_wait_ms = 600_000;
    q.required_skills = vec![need("english", 4)];
    q.routing.steps = vec![
        EscalationStep {
            level_min: Some(2),
            ..step(20_000)
        },
        EscalationStep {
            any_member: true,
            ..step(60_000)
        },
        EscalationStep {
            overflow: true,
            ..step(90_000)
        },
    ];
    cfg.agents[0].skills = vec![level("english", 2)];
    let h = start(cfg, 1);
    h.ready("a1").await;
    h.ready("a2").await;
    let c1 = h.call(caller("800")).await;
    let c2 = h.call(caller("800")).await;
    let c3 = h.call(caller("800")).await;
    advance(19_900).await;
    assert!(is(&h.state("a1").await, "ready"), "nobody has English 4");
    assert!(is(&h.state("a2").await, "ready"));
    advance(200).await;
    assert_eq!(
        call_of(&h, "a1").await,
        Some(c1),
        "level 2 accepted at 20 s"
    );
    assert!(is(&h.state("a2").await, "ready"));
    advance(39_800).await;
    assert!(is(&h.state("a2").await, "ready"), "59.9 s: still skills");
    advance(200).await;
    assert_eq!(call_of(&h, "a2").await, Some(c2), "any member at 60 s");
    advance(29_800).await;
    assert_eq!(h.snapshot().await.queues[0].waiting, vec![c3.clone()]);
    advance(400).await;
    let snap = h.snapshot().await;
    assert!(snap.queues[0].waiting.is_empty());
    assert_eq!(snap.ended.get("timed_out"), Some(&1), "overflow at 90 s");
    assert_eq!(
        h.kinds(&c3),
        vec![RecordKind::InteractionCreate, RecordKind::WorkItemCreate]
    );
}

/// Goal: a long wait overtakes a higher priority that came later, at the
/// queue's aging rate. Method: one point a second; a priority-0 call at
/// 0 s, a priority-5 call at 10 s (behind: 10 > 5), a priority-20 call at
/// 10 s (ahead); then an agent takes them in that order.
#[actix_rt::test]
async fn aging_reorders_the_line() {
    tokio::time::pause();
    let mut cfg = basic(1);
    cfg.queues[0].routing.aging_per_s = 1;
    let h = start(cfg, 1);
    let old = h.call(caller("800")).await;
    advance(10_000).await;
    let five = h.call(with_var(caller("800"), "priority", "5")).await;
    let twenty = h.call(with_var(caller("800"), "priority", "20")).await;
    assert_eq!(
        h.snapshot().await.queues[0].waiting,
        vec![twenty.clone(), old.clone(), five.clone()]
    );
    h.ready("a1").await;
    assert_eq!(call_of(&h, "a1").await, Some(twenty));
}

/// Goal: a known caller's number gives its call priority when the attached
/// data gives none. Method: a plain call, then one from a configured VIP
/// number; the VIP's call is first in line.
#[actix_rt::test]
async fn caller_priority_orders_the_line() {
    tokio::time::pause();
    let mut cfg = basic(1);
    cfg.routing.caller_priorities = vec![CallerPriority {
        ani: "+15559990000".into(),
        priority: 7,
    }];
    let h = start(cfg, 1);
    let plain = h.call(caller("800")).await;
    let vip = h.call(sim::Caller::new("+15559990000", "800")).await;
    assert_eq!(h.snapshot().await.queues[0].waiting, vec![vip, plain]);
}

/// Goal: an overflow into another queue resets the call's priority to its
/// own (here none), unless the target queue keeps it. Method: queue `q`
/// (priority 9, 10 s max wait) overflows into `r`, where a call of a known
/// caller (priority 5) waits since 5 s; the overflowed call (priority 0
/// again) lands behind it although it arrived first (it keeps its arrival
/// time, which only orders calls of equal priority); with
/// `keep_priority_on_overflow` on `r` (priority 9) it lands ahead.
#[actix_rt::test]
async fn priority_resets_on_overflow_unless_kept() {
    tokio::time::pause();
    for keep in [false, true] {
        let mut cfg = basic(0);
        cfg.routing.caller_priorities = vec![CallerPriority {
            ani: "+15559990000".into(),
            priority: 5,
        }];
        cfg.queues[0].priority = 9;
        cfg.queues[0].max_wait_ms = 10_000;
        cfg.queues[0].final_destination = FinalDestination::Queue { queue: "r".into() };
        let mut r = queue("r", "801");
        r.routing.keep_priority_on_overflow = keep;
        cfg.queues.push(r);
        let h = start(cfg, 1);
        let moved = h.call(caller("800")).await;
        advance(5_000).await;
        let known = h.call(sim::Caller::new("+15559990000", "801")).await;
        advance(6_000).await;
        let snap = h.snapshot().await;
        let r = snap
            .queues
            .iter()
            .find(|q| q.queue.as_str() == "r")
            .unwrap();
        let expected = if keep {
            vec![moved.clone(), known.clone()]
        } else {
            vec![known.clone(), moved.clone()]
        };
        assert_eq!(r.waiting, expected, "keep_priority_on_overflow = {keep}");
    }
}

/// Goal: an agent serving several queues takes the heavier queue's call
/// when both ask for it at once, whichever call came first. Method: a1 in
/// `q` then `r`, a call waiting in each (`q`'s first); a1 goes Ready and
/// is reserved for the call of the queue with the higher weight, tried
/// with the weight on `r` and then on `q`.
#[actix_rt::test]
async fn queue_weight_decides_an_agents_pick() {
    tokio::time::pause();
    for heavy in ["r", "q"] {
        let mut cfg = basic(1);
        cfg.queues.push(queue("r", "801"));
        cfg.agents[0].queues.push("r".into());
        for q in &mut cfg.queues {
            q.routing.weight = if q.id == heavy { 10 } else { 1 };
        }
        let h = start(cfg, 1);
        let in_q = h.call(caller("800")).await;
        let in_r = h.call(caller("801")).await;
        h.ready("a1").await;
        let want = if heavy == "r" { in_r } else { in_q };
        assert_eq!(call_of(&h, "a1").await, Some(want), "heavier queue {heavy}");
        let offered: usize = h
            .snapshot()
            .await
            .calls
            .iter()
            .map(|c| c.offers.len())
            .sum();
        assert_eq!(offered, 1, "one agent: one offer");
    }
}
