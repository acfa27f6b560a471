//! Why this agent (issue 18): every queue offer records the candidates its
//! pick read, their scores and the rule or step that chose, kept with the
//! call's state (so it survives a restart) and read through the registry
//! ([`GetCallRouting`], the HTTP route's source). Scenario tests through
//! the actors' messages with tokio's paused clock.

mod util;

use edgecc_actors::agent::backoff::BackoffSettings;
use edgecc_actors::agent::AgentState;
use edgecc_actors::config::{EscalationStep, SkillLevel, SkillRequirement};
use edgecc_actors::queue::explain::{DecidedBy, HeldBackReason, PickRule};
use edgecc_actors::registry::{CallRouting, GetCallRouting};
use edgecc_actors::sim::PhoneAction;
use edgecc_actors::*;
use util::*;

fn english(level: u8) -> Vec<SkillLevel> {
    vec![SkillLevel {
        skill: "english".into(),
        level,
    }]
}

fn needs_english(level_min: u8) -> Vec<SkillRequirement> {
    vec![SkillRequirement {
        skill: "english".into(),
        level_min,
    }]
}

async fn routing(h: &Harness, call: &CallId) -> CallRouting {
    h.registry
        .send(GetCallRouting(call.clone()))
        .await
        .unwrap()
        .expect("a live call")
}

/// Goal: an offer's explanation names the best skill match and the
/// candidates it beat; the next offer of the same call (after a reject)
/// names the agent backing off as held back and counts the agent tried;
/// both survive a restart; an unknown call has none. Method: queue `q`
/// needs English 2; a1 (English 5), a2 (3), a3 (2) Ready in that order;
/// phones ring without answering; a1 rejects from the desktop (60 s
/// back-off); edgecc restarts while a2 rings.
#[actix_rt::test]
async fn offers_explain_the_skill_match_and_the_back_off() {
    tokio::time::pause();
    let mut cfg = basic(3);
    cfg.timers.rona_sets_not_ready = false;
    cfg.routing.backoff = BackoffSettings {
        after_reject_ms: 60_000,
        ..Default::default()
    };
    cfg.queues[0].required_skills = needs_english(2);
    for (agent, level) in cfg.agents.iter_mut().zip([5, 3, 2]) {
        agent.skills = english(level);
    }
    let h = start(cfg, 1);
    for a in ["a1", "a2", "a3"] {
        h.script(
            &format!("{}", 100 + a[1..].parse::<u32>().unwrap()),
            vec![PhoneAction::NoAnswer],
        );
        h.ready(a).await;
        advance(100).await;
    }
    let call = h.call(caller("800")).await;
    let r = routing(&h, &call).await;
    assert_eq!((r.phase, r.routing.offers_total), ("offering", 1));
    let first = &r.routing.offers[0];
    assert_eq!(first.chosen, vec![AgentId::new("a1")]);
    assert_eq!(
        (first.rule, first.decided_by),
        (PickRule::SkillMatch, DecidedBy::SkillSurplus)
    );
    let rows: Vec<(String, Option<u32>, bool)> = first
        .candidates
        .iter()
        .map(|c| (c.agent.to_string(), c.skill_surplus, c.chosen))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("a1".into(), Some(3), true),
            ("a2".into(), Some(1), false),
            ("a3".into(), Some(0), false)
        ]
    );
    assert_eq!(first.ready_agents, 3);
    assert!(first.offered_ms > 0, "stamped with the offer's time");

    h.cmd("a1", AgentCommand::Reject).await.unwrap();
    assert!(matches!(h.state("a2").await, AgentState::Reserved { .. }));
    let r = routing(&h, &call).await;
    assert_eq!(r.routing.offers_total, 2);
    let second = r.routing.offers.last().unwrap();
    assert_eq!(second.chosen, vec![AgentId::new("a2")]);
    assert_eq!(second.tried_agents, 1, "a1 missed it");
    assert_eq!(second.held_back_total, 1);
    assert_eq!(second.held_back[0].agent, AgentId::new("a1"));
    assert_eq!(second.held_back[0].reason, HeldBackReason::BackingOff);
    assert!(second.candidates.iter().all(|c| c.agent.as_str() != "a1"));

    let h = h.restart(100).await;
    let after = routing(&h, &call).await;
    assert_eq!(after.routing, r.routing, "kept with the call's state");
    assert!(h
        .registry
        .send(GetCallRouting(CallId::new("no-such-call")))
        .await
        .unwrap()
        .is_none());
}

/// Goal: a call escalated by a step says which step let its agent take
/// it. Method: queue `q` needs English 4 with a step at 20 s lowering it to
/// 2; a1 (English 2) is Ready; the call waits 20 s. Expected: offered to a1
/// at 20 s, the explanation naming step 1 (level 2) and the need after it.
#[actix_rt::test]
async fn an_escalated_offer_names_its_step() {
    tokio::time::pause();
    let mut cfg = basic(1);
    cfg.queues[0].max_wait_ms = 600_000;
    cfg.queues[0].required_skills = needs_english(4);
    cfg.queues[0].routing.steps = vec![EscalationStep {
        after_ms: 20_000,
        level_min: Some(2),
        any_member: false,
        overflow: false,
    }];
    cfg.agents[0].skills = english(2);
    let h = start(cfg, 1);
    h.script("101", vec![PhoneAction::NoAnswer]);
    h.ready("a1").await;
    let call = h.call(caller("800")).await;
    let r = routing(&h, &call).await;
    assert_eq!((r.phase, r.routing.offers_total), ("queued", 0));
    advance(20_100).await;
    let r = routing(&h, &call).await;
    let e = r.routing.latest().expect("offered at the step");
    assert_eq!(e.steps_reached, 1);
    assert_eq!(e.step.as_ref().and_then(|s| s.level_min), Some(2));
    assert_eq!(e.skills, needs_english(2));
    assert_eq!(
        (e.rule, e.decided_by),
        (PickRule::SkillMatch, DecidedBy::OnlyCandidate)
    );
}
