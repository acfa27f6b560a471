//! Why this agent: what a queue's pick read and what decided it, kept with
//! the call so a supervisor can ask afterwards (`GET
//! /api/v1/calls/{id}/routing`) and the call's records can keep it.
//!
//! - The pure queue builds a [`RoutingExplanation`] for every pick that
//!   asks an agent ([`super::Queue::dispatch`]): the path that formed the
//!   candidates ([`PickRule`]: the caller's own agent, the best skill
//!   match, the strategy), the candidates read with their skill surplus,
//!   strategy key, score rank and whether they had missed the call, the
//!   call's needs after its escalation steps, and what separated the
//!   chosen agent from the runner-up ([`DecidedBy`]).
//! - It waits beside the reservation request; when the agent grants it,
//!   the glue takes it ([`super::Queue::take_explanation`]), stamps the
//!   time, the members held back from routing (backing off, cooling off)
//!   and the agents' idle times ([`RoutingExplanation::stamp`]), and sends
//!   it with the offer. A refused request's explanation is replaced by the
//!   next pick's; a call that leaves the line drops it.
//! - The call keeps the last [`ROUTING_OFFERS_KEPT`] in its persisted
//!   state ([`RoutingRecord`]), so it survives a restart.
//!
//! Everything is bounded: [`EXPLAIN_CANDIDATES_MAX`] candidates (plus the
//! chosen ones of a ring-all), [`HELD_BACK_SHOWN_MAX`] held-back members,
//! with counts of the rest.

use super::skills::Ranked;
use super::{AgentKey, Queue, WaitingCall};
use crate::config::{EscalationStep, SkillRequirement, Strategy};
use crate::ids::{AgentId, CallId, QueueId};
use crate::shared::Shared;
use serde::{Deserialize, Serialize};

/// Most candidates one explanation lists (the best read, in rank order).
pub const EXPLAIN_CANDIDATES_MAX: usize = super::skills::RANKED_KEPT_MAX;
/// Most held-back members one explanation names (the count says the rest).
pub const HELD_BACK_SHOWN_MAX: usize = 10;
/// Explanations a call keeps: its latest offers (a call missed many times
/// keeps the count, not every explanation).
pub const ROUTING_OFFERS_KEPT: usize = 3;

/// The path that formed the candidates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PickRule {
    /// The call waited for the caller's own agent (sticky hold) and that
    /// agent was Ready: nobody else was considered.
    StickyHold,
    /// The call needed skills: eligible Ready agents by skill surplus, the
    /// strategy breaking ties ([`super::skills`]).
    SkillMatch,
    /// No skill needed (none asked, or an escalation step dropped them):
    /// the strategy's order of the Ready members.
    Strategy,
}

/// What separated the chosen agent from the next candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecidedBy {
    /// No other untried candidate was Ready.
    OnlyCandidate,
    /// A higher skill surplus than the next candidate.
    SkillSurplus,
    /// Equal surplus (or no skills): the strategy's key (longest idle,
    /// fewest calls, least talk time, round-robin turn).
    StrategyKey,
    /// Equal strategy key: the better agent score.
    ScoreRank,
    /// Equal in everything: the agent id's order.
    AgentId,
    /// The random strategy: a position drawn per pick.
    RandomDraw,
    /// Every eligible Ready agent had missed the call: the one who tried
    /// longest ago ([`super::placement`]).
    TriedLast,
    /// Ring-all: every Ready agent up to the cap was rung.
    RingAll,
    /// The caller's own agent ([`super::hold`]).
    StickyHold,
}

/// One candidate of a pick.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// The agent.
    pub agent: AgentId,
    /// Its skill surplus for the call's needs (levels above the minimums);
    /// `None` when the call needed no skill.
    pub skill_surplus: Option<u32>,
    /// Its strategy key (longest idle: Ready since, wall ms; fewest calls:
    /// calls handled; least talk time: talk ms; round-robin: last pick
    /// sequence; random: the drawn key): lower is better.
    pub strategy_key: u64,
    /// Its agent score rank ([`crate::agent::score::AgentScore::rank`]),
    /// the tie-breaker of equal keys: lower is better.
    pub score_rank: u64,
    /// How long it had been Ready at the offer (longest-idle and ring-all
    /// queues, whose key is the Ready time).
    #[serde(default)]
    pub idle_ms: Option<u64>,
    /// It had missed this call before: offered only after the others.
    pub tried: bool,
    /// It was asked (and granted the offer, or rings with others).
    pub chosen: bool,
}

/// Why a member was not in the pick although logged in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeldBackReason {
    /// Ready, but backing off after an unanswered offer.
    BackingOff,
    /// Not Ready after repeated no-answers (cooling off).
    CoolingOff,
}

/// A member held back from routing at the pick.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldBack {
    /// The agent.
    pub agent: AgentId,
    /// Why.
    pub reason: HeldBackReason,
    /// When it ends by itself (wall ms); `None` until the agent says Ready.
    pub until_ms: Option<u64>,
}

/// Why one offer went to its agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingExplanation {
    /// The queue that picked.
    pub queue: QueueId,
    /// When the offer was made (wall ms; 0 until stamped by the glue).
    pub offered_ms: u64,
    /// The agents asked: one, or several for ring-all.
    pub chosen: Vec<AgentId>,
    /// The path that formed the candidates.
    pub rule: PickRule,
    /// What separated the chosen agent from the next candidate.
    pub decided_by: DecidedBy,
    /// The queue's strategy (what `strategy_key` means).
    pub strategy: Strategy,
    /// The skills the call needed at the pick (the queue's and its own,
    /// after the escalation steps reached).
    pub skills: Vec<SkillRequirement>,
    /// Escalation steps the call's wait had reached.
    pub steps_reached: usize,
    /// The last step reached, as configured.
    pub step: Option<EscalationStep>,
    /// End of the caller's own agent's hold, for a sticky pick.
    pub hold_until_ms: Option<u64>,
    /// The best candidates read, in the pick's order (chosen ones always
    /// listed).
    pub candidates: Vec<Candidate>,
    /// Ready agents read by the pick (a skilled pick stops where no unread
    /// agent could be better, see [`super::skills`]).
    pub candidates_read: usize,
    /// Eligible agents among those read.
    pub candidates_eligible: usize,
    /// Agents in the queue's Ready index at the pick.
    pub ready_agents: usize,
    /// Agents who had missed the call before this pick.
    pub tried_agents: usize,
    /// Members held back from routing then (first [`HELD_BACK_SHOWN_MAX`]).
    pub held_back: Vec<HeldBack>,
    /// All members held back then.
    pub held_back_total: usize,
}

impl RoutingExplanation {
    /// Stamps the offer's time, the idle time of candidates whose key is
    /// their Ready time, and the members `held_back` from routing now.
    pub fn stamp<'a>(&mut self, now_ms: u64, held_back: impl Iterator<Item = &'a HeldBack>) {
        self.offered_ms = now_ms;
        if matches!(self.strategy, Strategy::LongestIdle | Strategy::RingAll) {
            for c in &mut self.candidates {
                c.idle_ms = Some(now_ms.saturating_sub(c.strategy_key));
            }
        }
        self.held_back.clear();
        self.held_back_total = 0;
        for h in held_back {
            if h.until_ms.is_some_and(|until| until <= now_ms) {
                continue;
            }
            self.held_back_total += 1;
            if self.held_back.len() < HELD_BACK_SHOWN_MAX {
                self.held_back.push(h.clone());
            }
        }
    }
}

/// The explanations a call keeps: its latest offers' and how many there
/// were. Part of the call's persisted state ([`crate::call::Call`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingRecord {
    /// Queue offers explained so far.
    pub offers_total: u32,
    /// The latest [`ROUTING_OFFERS_KEPT`] explanations, oldest first;
    /// shared, since an explanation never changes once noted: the copy of
    /// the call persisted at each of its steps does not copy them.
    pub offers: Vec<Shared<RoutingExplanation>>,
}

impl RoutingRecord {
    /// Keeps `explanation` as the latest, dropping the oldest past the cap.
    pub fn note(&mut self, explanation: RoutingExplanation) {
        self.offers_total = self.offers_total.saturating_add(1);
        self.offers.push(Shared::new(explanation));
        if self.offers.len() > ROUTING_OFFERS_KEPT {
            let over = self.offers.len() - ROUTING_OFFERS_KEPT;
            self.offers.drain(..over);
        }
    }

    /// The latest explanation.
    pub fn latest(&self) -> Option<&RoutingExplanation> {
        self.offers.last().map(|e| &**e)
    }
}

/// A candidate row from an index entry.
fn candidate(
    (key, agent): &(AgentKey, AgentId),
    skill_surplus: Option<u32>,
    w: &WaitingCall,
    picked: &[(AgentKey, AgentId)],
) -> Candidate {
    Candidate {
        agent: agent.clone(),
        skill_surplus,
        strategy_key: key.0,
        score_rank: key.1,
        idle_ms: None,
        tried: w.tried.contains(agent),
        chosen: picked.iter().any(|(_, a)| a == agent),
    }
}

/// What separated the first chosen candidate from the next untried one.
fn decided_by(candidates: &[Candidate]) -> DecidedBy {
    let Some(first) = candidates.iter().find(|c| c.chosen) else {
        return DecidedBy::OnlyCandidate;
    };
    if first.tried {
        return DecidedBy::TriedLast;
    }
    let next = candidates
        .iter()
        .find(|c| !c.chosen && !c.tried && c.agent != first.agent);
    let Some(next) = next else {
        return DecidedBy::OnlyCandidate;
    };
    if first.skill_surplus != next.skill_surplus {
        DecidedBy::SkillSurplus
    } else if first.strategy_key != next.strategy_key {
        DecidedBy::StrategyKey
    } else if first.score_rank != next.score_rank {
        DecidedBy::ScoreRank
    } else {
        DecidedBy::AgentId
    }
}

impl Queue {
    /// The explanation waiting beside `call`'s granted request, if any.
    pub fn take_explanation(&mut self, call: &CallId) -> Option<RoutingExplanation> {
        self.explained.remove(call)
    }

    /// The parts every explanation of `w` shares.
    fn explanation(
        &self,
        w: &WaitingCall,
        rule: PickRule,
        decided_by: DecidedBy,
        candidates: Vec<Candidate>,
    ) -> RoutingExplanation {
        let step = w
            .steps_reached
            .checked_sub(1)
            .and_then(|i| self.policy.steps.get(i))
            .cloned();
        RoutingExplanation {
            queue: self.id.clone(),
            offered_ms: 0,
            chosen: candidates
                .iter()
                .filter(|c| c.chosen)
                .map(|c| c.agent.clone())
                .collect(),
            rule,
            decided_by,
            strategy: self.strategy,
            skills: w.skills_now.clone(),
            steps_reached: w.steps_reached,
            step,
            hold_until_ms: None,
            candidates_read: candidates.len(),
            candidates_eligible: candidates.len(),
            candidates,
            ready_agents: self.order.len(),
            tried_agents: w.tried.len(),
            held_back: Vec::new(),
            held_back_total: 0,
        }
    }

    /// A pick in the strategy's order from position `start` (the random
    /// strategy's draw), before `picked` leave the index.
    pub(super) fn explain_order(
        &self,
        w: &WaitingCall,
        start: usize,
        picked: &[(AgentKey, AgentId)],
    ) -> RoutingExplanation {
        let len = self.order.len();
        let mut candidates: Vec<Candidate> = self
            .order
            .iter()
            .chain(self.order.iter())
            .skip(start)
            .take(len.min(EXPLAIN_CANDIDATES_MAX))
            .map(|e| candidate(e, None, w, picked))
            .collect();
        for p in picked {
            if !candidates.iter().any(|c| c.agent == p.1) {
                candidates.push(candidate(p, None, w, picked));
            }
        }
        let decided = match self.strategy {
            Strategy::RingAll => DecidedBy::RingAll,
            _ if candidates.iter().any(|c| c.chosen && c.tried) => DecidedBy::TriedLast,
            Strategy::Random => DecidedBy::RandomDraw,
            _ => decided_by(&candidates),
        };
        let mut e = self.explanation(w, PickRule::Strategy, decided, candidates);
        e.candidates_read = len;
        e.candidates_eligible = len;
        e
    }

    /// A skilled pick from what [`super::skills::SkillIndex::rank`] read.
    pub(super) fn explain_ranked(&self, w: &WaitingCall, ranked: &Ranked) -> RoutingExplanation {
        let mut candidates: Vec<Candidate> = ranked
            .top
            .iter()
            .map(|r| {
                candidate(
                    &(r.key, r.agent.clone()),
                    Some(r.surplus),
                    w,
                    &ranked.picked,
                )
            })
            .collect();
        for p in &ranked.picked {
            if !candidates.iter().any(|c| c.agent == p.1) {
                let surplus = super::skills::surplus(self.skills.levels_of(&p.1), &w.skills_now);
                candidates.push(candidate(p, surplus, w, &ranked.picked));
            }
        }
        let decided = if self.strategy == Strategy::RingAll {
            DecidedBy::RingAll
        } else {
            decided_by(&candidates)
        };
        let mut e = self.explanation(w, PickRule::SkillMatch, decided, candidates);
        e.candidates_read = ranked.read;
        e.candidates_eligible = ranked.eligible;
        e
    }

    /// A held call's pick of its own agent (`entry`), held until `until_ms`.
    pub(super) fn explain_hold(
        &self,
        w: &WaitingCall,
        entry: &(AgentKey, AgentId),
        until_ms: u64,
    ) -> RoutingExplanation {
        let c = candidate(entry, None, w, std::slice::from_ref(entry));
        let mut e = self.explanation(w, PickRule::StickyHold, DecidedBy::StickyHold, vec![c]);
        e.hold_until_ms = Some(until_ms);
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SkillLevel;
    use crate::queue::{needs::CallNeeds, skills::SkillIndex, QueuePolicy, ReadyInfo};

    fn info(since_ms: u64, score_rank: u64) -> ReadyInfo {
        ReadyInfo {
            since_ms,
            calls_handled: 0,
            talk_ms_total: 0,
            score_rank,
        }
    }

    fn a(s: &str) -> AgentId {
        AgentId::new(s)
    }

    fn granted(q: &mut Queue, call: &str) -> RoutingExplanation {
        let asks = q.dispatch();
        assert_eq!(asks.len(), 1);
        q.reservation_answered(&asks[0].agent, &CallId::new(call), true);
        q.take_explanation(&CallId::new(call))
            .expect("an explanation for the granted call")
    }

    /// Goal: a plain pick says the strategy chose and by which key; a tie
    /// of keys says the score decided. Method: longest idle, x Ready at 10,
    /// y at 20, then x and y both at 30 with scores 5 and 2.
    #[test]
    fn strategy_pick_names_the_key_that_decided() {
        let mut q = Queue::new(QueueId::new("q"), Strategy::LongestIdle, 1);
        q.agent_available(a("x"), &info(10, 0));
        q.agent_available(a("y"), &info(20, 0));
        q.enqueue(CallId::new("1"), 0, 0, vec![], CallNeeds::default());
        let e = granted(&mut q, "1");
        assert_eq!(e.rule, PickRule::Strategy);
        assert_eq!(e.decided_by, DecidedBy::StrategyKey);
        assert_eq!(e.chosen, vec![a("x")]);
        assert_eq!(e.ready_agents, 2);
        assert_eq!(
            e.candidates
                .iter()
                .map(|c| (c.agent.clone(), c.strategy_key, c.chosen))
                .collect::<Vec<_>>(),
            vec![(a("x"), 10, true), (a("y"), 20, false)]
        );
        let mut q = Queue::new(QueueId::new("q"), Strategy::LongestIdle, 1);
        q.agent_available(a("x"), &info(30, 5));
        q.agent_available(a("y"), &info(30, 2));
        q.enqueue(CallId::new("2"), 0, 0, vec![], CallNeeds::default());
        let mut e = granted(&mut q, "2");
        assert_eq!(
            (e.chosen[0].clone(), e.decided_by),
            (a("y"), DecidedBy::ScoreRank)
        );
        let held = [HeldBack {
            agent: a("z"),
            reason: HeldBackReason::BackingOff,
            until_ms: Some(1_000),
        }];
        e.stamp(100, held.iter());
        assert_eq!(e.candidates[0].idle_ms, Some(70));
        assert_eq!((e.offered_ms, e.held_back_total), (100, 1));
        e.stamp(1_000, held.iter());
        assert_eq!(
            e.held_back_total, 0,
            "a back-off over by the offer is not listed"
        );
    }

    /// Goal: a skilled pick lists surpluses and says the surplus decided;
    /// an escalated call shows the step; a call every agent missed says
    /// the tried agent came last. Method: x has en:5, y en:2; the call asks
    /// en:2; then a call that tried x while only x is Ready.
    #[test]
    fn skilled_pick_names_surplus_step_and_tried_last() {
        let (lx, ly) = (
            vec![SkillLevel {
                skill: "en".into(),
                level: 5,
            }],
            vec![SkillLevel {
                skill: "en".into(),
                level: 2,
            }],
        );
        let index = SkillIndex::new([(a("x"), lx.as_slice()), (a("y"), ly.as_slice())]);
        let policy = QueuePolicy {
            steps: vec![EscalationStep {
                after_ms: 10,
                level_min: Some(1),
                any_member: false,
                overflow: false,
            }],
            ..QueuePolicy::default()
        };
        let mut q =
            Queue::new(QueueId::new("q"), Strategy::LongestIdle, 1).with_policy(policy, index);
        let needs = CallNeeds {
            skills: vec![SkillRequirement {
                skill: "en".into(),
                level_min: 2,
            }],
            since_ms: 0,
        };
        q.enqueue(CallId::new("1"), 0, 0, vec![], needs.clone());
        q.escalate_due(10);
        q.agent_available(a("y"), &info(1, 0));
        q.agent_available(a("x"), &info(2, 0));
        let e = granted(&mut q, "1");
        assert_eq!(
            (e.rule, e.decided_by),
            (PickRule::SkillMatch, DecidedBy::SkillSurplus)
        );
        assert_eq!(e.chosen, vec![a("x")]);
        assert_eq!(e.steps_reached, 1);
        assert_eq!(e.step.as_ref().and_then(|s| s.level_min), Some(1));
        assert_eq!(e.skills[0].level_min, 1, "the needs after the step");
        assert_eq!(
            e.candidates
                .iter()
                .map(|c| c.skill_surplus)
                .collect::<Vec<_>>(),
            vec![Some(4), Some(1)]
        );
        q.enqueue(CallId::new("2"), 0, 0, vec![a("y")], needs);
        let e = granted(&mut q, "2");
        assert_eq!(
            (e.chosen[0].clone(), e.decided_by),
            (a("y"), DecidedBy::TriedLast)
        );
        assert_eq!(e.tried_agents, 1);
    }

    /// Goal: a call keeps its latest explanations only, and counts all.
    #[test]
    fn record_keeps_the_latest_offers() {
        let mut q = Queue::new(QueueId::new("q"), Strategy::LongestIdle, 1);
        q.agent_available(a("x"), &info(1, 0));
        q.enqueue(CallId::new("1"), 0, 0, vec![], CallNeeds::default());
        let e = granted(&mut q, "1");
        let mut r = RoutingRecord::default();
        for n in 0..(ROUTING_OFFERS_KEPT as u64 + 2) {
            let mut e = e.clone();
            e.offered_ms = n;
            r.note(e);
        }
        assert_eq!(r.offers.len(), ROUTING_OFFERS_KEPT);
        assert_eq!(r.offers_total as usize, ROUTING_OFFERS_KEPT + 2);
        assert_eq!(
            r.latest().map(|e| e.offered_ms),
            Some(ROUTING_OFFERS_KEPT as u64 + 1)
        );
        assert_eq!(r.offers[0].offered_ms, 2);
    }
}
