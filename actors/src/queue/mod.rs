//! The queue state machine, pure: waiting calls ordered by priority then
//! arrival, the index of Ready member agents (pushed by agents, never scanned
//! per call), the routing strategy and the reservation handshake.
//!
//! Dispatch pairs the first waiting call with the best eligible agent and asks
//! the agent for a reservation; the agent may say no (another queue won it),
//! so an asked agent leaves the index until its answer arrives. A call keeps
//! its place in line through failed offers and tries the agents who missed
//! it last ([`placement`]); a call held for its preferred agent waits for
//! that agent alone until its hold ends ([`hold`]). The actor glue lives in
//! [`actor`]; a reload's changes in `reconfigure.rs`; maximum length and
//! staffing rules in [`limits`].
//!
//! A call needing skills is paired through the per-skill index of
//! [`skills`] (best match first, the strategy breaks ties); its needs widen
//! as it waits ([`escalation`]); its place in line is its [`priority`]
//! rank, which ages, then its arrival. [`needs`] is what the call brings;
//! [`weight`] is how an agent in several queues answers them. Every pick
//! that asks an agent is explained ([`explain`]): the candidates read and
//! what decided. [`overflow_rules`] picks the overflow rule that takes a
//! leaving call and counts what each target holds.

pub mod actor;
pub mod escalation;
pub mod estimate;
pub mod explain;
pub mod hold;
pub mod limits;
pub mod needs;
pub mod overflow_rules;
pub mod placement;
pub mod priority;
mod reconfigure;
pub mod skills;
pub mod weight;

use crate::config::{EscalationStep, QueueConfig, SkillRequirement, Strategy};
use crate::ids::{AgentId, CallId, QueueId};
use crate::rng::SplitMix64;
use placement::WaitKey;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Most agents rung at once by a ring-all queue.
pub const RING_ALL_AGENTS_MAX: usize = 32;
/// Most waiting calls looked at in one dispatch pass (a call whose agents
/// are all asked elsewhere gets none; the next calls still get agents).
pub const DISPATCH_SCAN_CALLS_MAX: usize = 64;

/// What an agent pushes to its queues when it becomes Ready.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReadyInfo {
    /// Idle since (wall ms): longest-idle key.
    pub since_ms: u64,
    /// Calls handled: fewest-calls key.
    pub calls_handled: u64,
    /// Talk time: least-talk-time key.
    pub talk_ms_total: u64,
    /// The agent's score ([`crate::agent::score::AgentScore::rank`]): breaks
    /// ties of the strategy's key, lower first.
    pub score_rank: u64,
}

/// A call waiting in the queue.
#[derive(Clone, Debug, Serialize)]
pub struct WaitingCall {
    /// The call.
    pub call: CallId,
    /// Agents whose offer of it failed, oldest try first: offered it again
    /// only after every other eligible agent ([`placement::pick`]).
    pub tried: Vec<AgentId>,
    /// Reservation requests in flight for this call.
    pub asking: u32,
    /// The queue's and the call's own required skills, before any step.
    pub skills_base: Vec<SkillRequirement>,
    /// What an agent needs now: `skills_base` after the steps reached.
    pub skills_now: Vec<SkillRequirement>,
    /// Escalation steps reached.
    pub steps_reached: usize,
    /// Its stint in this queue started (wall ms): steps and aging count
    /// from here (its place in line keeps its first arrival, in its key).
    pub since_ms: u64,
    /// When its next step is due (its entry in the step schedule).
    pub step_due_ms: Option<u64>,
}

/// How a queue chooses beyond its strategy (from `queues[]`).
#[derive(Clone, Debug, Default)]
pub struct QueuePolicy {
    /// Skills every call of the queue requires.
    pub required_skills: Vec<SkillRequirement>,
    /// Escalation steps (`routing.steps`).
    pub steps: Vec<EscalationStep>,
    /// Priority points per waited second (`routing.aging_per_s`).
    pub aging_per_s: u32,
}

impl QueuePolicy {
    /// The policy queue `q` is configured with.
    pub fn of(q: &QueueConfig) -> Self {
        Self {
            required_skills: q.required_skills.clone(),
            steps: q.routing.steps.clone(),
            aging_per_s: q.routing.aging_per_s,
        }
    }
}

/// Ordering key of ready agents: the strategy's key, then the score rank
/// (ties of the strategy go to the better score), then the agent id.
pub type AgentKey = (u64, u64);

/// One reservation the glue must request from an agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ask {
    /// The call.
    pub call: CallId,
    /// The agent.
    pub agent: AgentId,
    /// Whether the call rings several agents (ring-all).
    pub ring_all: bool,
}

/// What to do with an agent's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnswerAction {
    /// Tell the call to offer itself to the agent.
    Offer,
    /// The call is gone: free the agent.
    Release,
    /// Nothing (refused, or stale).
    Nothing,
}

/// A queue: waiting calls, the ready index, the handshake bookkeeping.
#[derive(Debug)]
pub struct Queue {
    /// Which queue.
    pub id: QueueId,
    /// How agents are chosen.
    pub strategy: Strategy,
    /// Waiting calls in routing order.
    waiting: BTreeMap<WaitKey, WaitingCall>,
    /// Where each waiting call sits in `waiting`.
    positions: HashMap<CallId, WaitKey>,
    /// Calls granted to a ring-all offer while other answers are pending.
    ringing: HashMap<CallId, u32>,
    /// Ready members by strategy key: the front is the best agent.
    order: BTreeSet<(AgentKey, AgentId)>,
    /// The key each ready agent has in `order`.
    ready: HashMap<AgentId, AgentKey>,
    /// Agents asked for a reservation, with the call asked for.
    asked: HashMap<AgentId, CallId>,
    /// Round-robin: when each agent was last picked.
    last_pick: HashMap<AgentId, u64>,
    /// Arrival sequence and pick counter.
    seq: u64,
    /// Random strategy.
    rng: SplitMix64,
    /// Skills, escalation and aging.
    policy: QueuePolicy,
    /// The members' skills and the per-skill index of the Ready ones.
    skills: skills::SkillIndex,
    /// Waiting calls by when their next escalation step is due.
    steps_due: BTreeSet<(u64, CallId)>,
    /// Waiting calls held for their preferred agent (sticky).
    holds: hold::Holds,
    /// Why each call in flight was paired with its agent, until the grant
    /// hands it to the glue ([`explain`]).
    explained: HashMap<CallId, explain::RoutingExplanation>,
}

impl Queue {
    /// An empty queue.
    pub fn new(id: QueueId, strategy: Strategy, seed: u64) -> Self {
        Self {
            id,
            strategy,
            waiting: BTreeMap::new(),
            positions: HashMap::new(),
            ringing: HashMap::new(),
            order: BTreeSet::new(),
            ready: HashMap::new(),
            asked: HashMap::new(),
            last_pick: HashMap::new(),
            seq: 0,
            rng: SplitMix64::new(seed),
            policy: QueuePolicy::default(),
            skills: skills::SkillIndex::default(),
            steps_due: BTreeSet::new(),
            holds: hold::Holds::default(),
            explained: HashMap::new(),
        }
    }

    /// The queue with its skills, steps and aging, and its members' skills.
    pub fn with_policy(mut self, policy: QueuePolicy, skills: skills::SkillIndex) -> Self {
        self.policy = policy;
        self.skills = skills;
        self
    }

    /// When the earliest escalation step of a waiting call is due.
    pub fn next_step_due_ms(&self) -> Option<u64> {
        self.steps_due.first().map(|(at, _)| *at)
    }

    /// Applies every escalation step due by `now_ms` to the calls waiting
    /// (their candidate agents widen); returns how many calls widened.
    pub fn escalate_due(&mut self, now_ms: u64) -> usize {
        let mut widened = 0;
        while let Some((at, call)) = self.steps_due.first().cloned() {
            if at > now_ms {
                break;
            }
            self.steps_due.remove(&(at, call.clone()));
            let Some(w) = self
                .positions
                .get(&call)
                .and_then(|k| self.waiting.get_mut(k))
            else {
                continue;
            };
            let steps = &self.policy.steps;
            w.steps_reached = escalation::reached(steps, now_ms.saturating_sub(w.since_ms));
            w.skills_now = escalation::relax(&w.skills_base, steps, w.steps_reached);
            w.step_due_ms = escalation::next_due_ms(steps, w.since_ms, w.steps_reached);
            if let Some(next) = w.step_due_ms {
                self.steps_due.insert((next, call));
            }
            widened += 1;
        }
        widened
    }

    /// The escalation steps `call` reached, if it waits here.
    pub fn steps_reached(&self, call: &CallId) -> Option<usize> {
        let key = self.positions.get(call)?;
        self.waiting.get(key).map(|w| w.steps_reached)
    }

    /// Calls waiting.
    pub fn waiting_len(&self) -> usize {
        self.waiting.len()
    }

    /// Ready agents in the index.
    pub fn ready_len(&self) -> usize {
        self.order.len()
    }

    /// Waiting calls in routing order.
    pub fn waiting_calls(&self) -> Vec<CallId> {
        self.waiting.values().map(|w| w.call.clone()).collect()
    }

    /// Ready agents in pick order.
    pub fn ready_agents(&self) -> Vec<AgentId> {
        self.order.iter().map(|(_, a)| a.clone()).collect()
    }

    /// The place of a waiting call (1 = next to be offered).
    pub fn position(&self, call: &CallId) -> Option<usize> {
        self.positions.get(call)?;
        self.waiting
            .values()
            .position(|w| &w.call == call)
            .map(|i| i + 1)
    }

    /// Whether the call waits or rings (ring-all) here.
    pub fn knows(&self, call: &CallId) -> bool {
        self.positions.contains_key(call) || self.ringing.contains_key(call)
    }

    /// A call joins, or rejoins after a failed offer: its place is its
    /// priority rank (aged from `needs.since_ms`, the start of its stint in
    /// this queue), then `since_ms`, when it first took its place in line
    /// (kept through failed offers and overflows), so it goes back ahead of
    /// later arrivals. `tried` are the agents whose offer of it failed. Its
    /// escalation starts at step 0; [`Self::escalate_due`] catches up a
    /// call whose wait already reached later steps (a restored one).
    pub fn enqueue(
        &mut self,
        call: CallId,
        priority: u8,
        since_ms: u64,
        tried: Vec<AgentId>,
        needs: needs::CallNeeds,
    ) {
        if self.positions.contains_key(&call) {
            return;
        }
        self.seq += 1;
        let rank = priority::rank(priority, needs.since_ms, self.policy.aging_per_s);
        let key = placement::wait_key(rank, since_ms, self.seq);
        self.positions.insert(call.clone(), key);
        self.ringing.remove(&call);
        let skills_base = skills::merge(&self.policy.required_skills, &needs.skills);
        let step_due_ms = escalation::next_due_ms(&self.policy.steps, needs.since_ms, 0);
        if let Some(at) = step_due_ms {
            self.steps_due.insert((at, call.clone()));
        }
        self.waiting.insert(
            key,
            WaitingCall {
                call,
                tried,
                asking: 0,
                skills_now: skills_base.clone(),
                skills_base,
                steps_reached: 0,
                since_ms: needs.since_ms,
                step_due_ms,
            },
        );
    }

    /// A call leaves (abandoned, timed out, transferred). True if it waited.
    pub fn remove(&mut self, call: &CallId) -> bool {
        self.ringing.remove(call);
        self.holds.end(call);
        self.explained.remove(call);
        match self.positions.remove(call) {
            Some(key) => self.take_waiting(&key).is_some(),
            None => false,
        }
    }

    /// Takes a call out of the line and out of the step schedule.
    fn take_waiting(&mut self, key: &WaitKey) -> Option<WaitingCall> {
        let w = self.waiting.remove(key)?;
        if let Some(at) = w.step_due_ms {
            self.steps_due.remove(&(at, w.call.clone()));
        }
        Some(w)
    }

    fn key_for(&mut self, agent: &AgentId, info: &ReadyInfo) -> AgentKey {
        let key = match self.strategy {
            Strategy::LongestIdle | Strategy::RingAll => info.since_ms,
            Strategy::FewestCalls => info.calls_handled,
            Strategy::LeastTalkTime => info.talk_ms_total,
            Strategy::RoundRobin => self.last_pick.get(agent).copied().unwrap_or(0),
            Strategy::Random => self.rng.next_u64(),
        };
        (key, info.score_rank)
    }

    /// An agent became Ready (pushed by the agent).
    pub fn agent_available(&mut self, agent: AgentId, info: &ReadyInfo) {
        if self.asked.contains_key(&agent) {
            // Its answer to our request settles it.
            return;
        }
        self.agent_unavailable(&agent);
        let key = self.key_for(&agent, info);
        self.ready.insert(agent.clone(), key);
        self.skills.insert(&agent, key);
        self.order.insert((key, agent));
    }

    /// An agent left Ready (pushed by the agent).
    pub fn agent_unavailable(&mut self, agent: &AgentId) {
        if let Some(key) = self.ready.remove(agent) {
            self.skills.remove(agent, key);
            self.order.remove(&(key, agent.clone()));
        }
    }

    /// Where in the ready index a pick starts: the front (the best agent),
    /// or for the random strategy a position drawn per pick. Keys drawn
    /// when agents become Ready alone are not a fair draw: the agents left
    /// with high keys would wait while the one just picked draws again.
    fn scan_start(&mut self) -> usize {
        match self.strategy {
            Strategy::Random => self.rng.below(self.order.len() as u64) as usize,
            _ => 0,
        }
    }

    /// Pairs waiting calls with agents; each pair must be asked for. Held
    /// calls get their preferred agent first; the others, in line order,
    /// get the best agents they have not tried (the best skill match for a
    /// call needing skills), else the ones they tried.
    pub fn dispatch(&mut self) -> Vec<Ask> {
        let mut asks = Vec::new();
        if self.order.is_empty() {
            return asks;
        }
        self.dispatch_holds(&mut asks);
        let ring_all = self.strategy == Strategy::RingAll;
        let keys: Vec<WaitKey> = self
            .waiting
            .iter()
            .filter(|(_, w)| w.asking == 0 && !self.holds.has(&w.call))
            .take(DISPATCH_SCAN_CALLS_MAX)
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            if self.order.is_empty() {
                break;
            }
            // A call needing skills picks from the skill index, best match
            // first; the random strategy's drawn start is for the others.
            let skilled = self
                .waiting
                .get(&key)
                .is_some_and(|w| !w.skills_now.is_empty());
            let start = if skilled { 0 } else { self.scan_start() };
            let Some(w) = self.waiting.get(&key) else {
                continue;
            };
            let want = if ring_all { RING_ALL_AGENTS_MAX } else { 1 };
            let (picked, explanation) = if !skilled {
                let rotated = self
                    .order
                    .iter()
                    .chain(self.order.iter())
                    .skip(start)
                    .take(self.order.len());
                let picked = placement::pick(rotated, &w.tried, want);
                let e = (!picked.is_empty()).then(|| self.explain_order(w, start, &picked));
                (picked, e)
            } else {
                let ranked = self.skills.rank(&w.skills_now, &w.tried, want);
                let e = (!ranked.picked.is_empty()).then(|| self.explain_ranked(w, &ranked));
                (ranked.picked, e)
            };
            let call = w.call.clone();
            if let Some(e) = explanation {
                self.explained.insert(call.clone(), e);
            }
            for entry in picked {
                self.ask(entry, &call, ring_all, &mut asks);
            }
        }
        asks
    }

    /// Takes `entry` out of the index and asks its agent for `call`.
    fn ask(
        &mut self,
        entry: (AgentKey, AgentId),
        call: &CallId,
        ring_all: bool,
        asks: &mut Vec<Ask>,
    ) {
        self.order.remove(&entry);
        self.ready.remove(&entry.1);
        self.skills.remove(&entry.1, entry.0);
        self.seq += 1;
        self.last_pick.insert(entry.1.clone(), self.seq);
        self.asked.insert(entry.1.clone(), call.clone());
        if let Some(w) = self
            .positions
            .get(call)
            .and_then(|key| self.waiting.get_mut(key))
        {
            w.asking += 1;
        }
        asks.push(Ask {
            call: call.clone(),
            agent: entry.1,
            ring_all,
        });
    }

    /// An agent answered a reservation request.
    pub fn reservation_answered(
        &mut self,
        agent: &AgentId,
        call: &CallId,
        granted: bool,
    ) -> AnswerAction {
        match self.asked.get(agent) {
            Some(c) if c == call => {
                self.asked.remove(agent);
            }
            _ => {
                return if granted {
                    AnswerAction::Release
                } else {
                    AnswerAction::Nothing
                }
            }
        }
        // Still waiting?
        if let Some(key) = self.positions.get(call).copied() {
            let w = self
                .waiting
                .get_mut(&key)
                .expect("positions and waiting agree");
            w.asking = w.asking.saturating_sub(1);
            if !granted {
                return AnswerAction::Nothing;
            }
            // The call leaves the queue with its first grant.
            let left = w.asking;
            self.holds.end(call);
            self.positions.remove(call);
            self.take_waiting(&key);
            if left > 0 {
                self.ringing.insert(call.clone(), left);
            }
            return AnswerAction::Offer;
        }
        // A ring-all call already offered: more grants join the offer.
        if let Some(left) = self.ringing.get_mut(call) {
            *left = left.saturating_sub(1);
            if *left == 0 {
                self.ringing.remove(call);
            }
            return if granted {
                AnswerAction::Offer
            } else {
                AnswerAction::Nothing
            };
        }
        if granted {
            AnswerAction::Release
        } else {
            AnswerAction::Nothing
        }
    }
}

#[cfg(test)]
mod strategy_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn info(since: u64, calls: u64) -> ReadyInfo {
        ReadyInfo {
            since_ms: since,
            calls_handled: calls,
            talk_ms_total: 0,
            score_rank: 0,
        }
    }

    fn a(s: &str) -> AgentId {
        AgentId::new(s)
    }

    fn needs(since_ms: u64) -> needs::CallNeeds {
        needs::CallNeeds {
            skills: vec![],
            since_ms,
        }
    }

    fn c(s: &str) -> CallId {
        CallId::new(s)
    }

    /// Priority first, then arrival; longest-idle picks the oldest Ready.
    #[test]
    fn priority_then_arrival_longest_idle() {
        let mut q = Queue::new(QueueId::new("q"), Strategy::LongestIdle, 1);
        q.enqueue(c("low"), 0, 0, vec![], needs(0));
        q.enqueue(c("high"), 5, 0, vec![], needs(0));
        q.agent_available(a("new"), &info(50, 0));
        q.agent_available(a("old"), &info(10, 0));
        let asks = q.dispatch();
        assert_eq!(asks[0].call, c("high"));
        assert_eq!(asks[0].agent, a("old"));
        assert_eq!(asks[1].call, c("low"));
        assert_eq!(asks[1].agent, a("new"));
        assert_eq!(
            q.reservation_answered(&a("old"), &c("high"), true),
            AnswerAction::Offer
        );
        assert_eq!(q.waiting_calls(), vec![c("low")]);
    }

    /// A refused agent leaves the index; the call can be dispatched again;
    /// an agent the call tried goes last, not never.
    #[test]
    fn refusal_and_tried_agents() {
        let mut q = Queue::new(QueueId::new("q"), Strategy::FewestCalls, 1);
        q.enqueue(c("x"), 0, 0, vec![a("busy")], needs(0));
        q.agent_available(a("busy"), &info(0, 0));
        q.agent_available(a("b"), &info(0, 3));
        let asks = q.dispatch();
        assert_eq!(asks.len(), 1);
        assert_eq!(asks[0].agent, a("b"));
        // In flight: nothing more for this call.
        assert!(q.dispatch().is_empty());
        assert_eq!(
            q.reservation_answered(&a("b"), &c("x"), false),
            AnswerAction::Nothing
        );
        assert_eq!(q.ready_agents(), vec![a("busy")]);
        // Only the agent the call tried is left: it is asked again.
        let asks = q.dispatch();
        assert_eq!(asks.len(), 1);
        assert_eq!(asks[0].agent, a("busy"));
        q.reservation_answered(&a("busy"), &c("x"), false);
        q.agent_available(a("busy"), &info(0, 0));
        // A grant for a call that left is released.
        q.remove(&c("x"));
        q.enqueue(c("y"), 0, 0, vec![], needs(0));
        let asks = q.dispatch();
        q.remove(&c("y"));
        assert_eq!(
            q.reservation_answered(&asks[0].agent, &c("y"), true),
            AnswerAction::Release
        );
    }

    /// Goal: a call whose offer failed goes back to its place, not behind
    /// later arrivals. Method: `early` (placed at 100) is granted to x; `late`
    /// (placed at 200) joins; `early` rejoins after x missed it, with its
    /// first place time. Expected: `early` is first in line and gets the next
    /// agent; x, who missed it, is still in line for it, last.
    #[test]
    fn a_missed_call_keeps_its_place() {
        let mut q = Queue::new(QueueId::new("q"), Strategy::LongestIdle, 1);
        q.enqueue(c("early"), 0, 100, vec![], needs(0));
        q.agent_available(a("x"), &info(0, 0));
        assert_eq!(q.dispatch()[0].call, c("early"));
        assert_eq!(
            q.reservation_answered(&a("x"), &c("early"), true),
            AnswerAction::Offer
        );
        q.enqueue(c("late"), 0, 200, vec![], needs(0));
        q.enqueue(c("early"), 0, 100, vec![a("x")], needs(0));
        assert_eq!(q.waiting_calls(), vec![c("early"), c("late")]);
        q.agent_available(a("x"), &info(5, 0));
        q.agent_available(a("y"), &info(9, 0));
        let asks = q.dispatch();
        assert_eq!(
            asks[0],
            Ask {
                call: c("early"),
                agent: a("y"),
                ring_all: false
            }
        );
        assert_eq!(
            asks[1],
            Ask {
                call: c("late"),
                agent: a("x"),
                ring_all: false
            }
        );
        // A higher priority still goes first.
        let mut p = Queue::new(QueueId::new("p"), Strategy::LongestIdle, 1);
        p.enqueue(c("old"), 0, 100, vec![], needs(0));
        p.enqueue(c("vip"), 3, 500, vec![], needs(0));
        assert_eq!(p.waiting_calls(), vec![c("vip"), c("old")]);
    }

    /// Goal: the line key joins both times: aging counts from the start of
    /// the call's stint in this queue, its arrival (place time) breaks
    /// equal ranks. Method: `moved` took its place at 0 but started its
    /// stint here at 10 s (an overflow); `local` arrived at 5 s. Without
    /// aging `moved` is first (earlier arrival); with 1 point a second,
    /// `local` has aged longer here and is first.
    #[test]
    fn aging_from_the_stint_then_arrival() {
        for (aging_per_s, first) in [(0, "moved"), (1, "local")] {
            let policy = QueuePolicy {
                aging_per_s,
                ..QueuePolicy::default()
            };
            let mut q = Queue::new(QueueId::new("q"), Strategy::LongestIdle, 1)
                .with_policy(policy, skills::SkillIndex::default());
            q.enqueue(c("moved"), 0, 0, vec![], needs(10_000));
            q.enqueue(c("local"), 0, 5_000, vec![], needs(5_000));
            assert_eq!(q.waiting_calls()[0], c(first), "aging {aging_per_s}");
        }
    }

    /// Goal: a call needing a skill offers itself to the agents it tried
    /// last, not never. Method: x (level 5) and y (level 2) hold `en`; the
    /// call asking `en:1` tried x. Expected: y is asked first; once y is
    /// gone, x is asked again.
    #[test]
    fn skilled_call_tries_the_agents_it_tried_last() {
        let levels = |l: u8| {
            vec![crate::config::SkillLevel {
                skill: "en".into(),
                level: l,
            }]
        };
        let (lx, ly) = (levels(5), levels(2));
        let index = skills::SkillIndex::new([(a("x"), lx.as_slice()), (a("y"), ly.as_slice())]);
        let mut q = Queue::new(QueueId::new("q"), Strategy::LongestIdle, 1)
            .with_policy(QueuePolicy::default(), index);
        let needs = needs::CallNeeds {
            skills: vec![SkillRequirement {
                skill: "en".into(),
                level_min: 1,
            }],
            since_ms: 0,
        };
        q.enqueue(c("1"), 0, 0, vec![a("x")], needs);
        q.agent_available(a("x"), &info(0, 0));
        q.agent_available(a("y"), &info(5, 0));
        let asks = q.dispatch();
        assert_eq!(asks.len(), 1);
        assert_eq!(asks[0].agent, a("y"), "the untried agent first");
        q.reservation_answered(&a("y"), &c("1"), false);
        let asks = q.dispatch();
        assert_eq!(asks.len(), 1);
        assert_eq!(asks[0].agent, a("x"), "then the one it tried");
    }

    /// Goal: a reload carries the members' new skills and the queue's new
    /// aging. Method: a call needing `en` waits; x is Ready without it;
    /// the reload gives x `en:3`. Expected: nothing asked before, x asked
    /// after, without x pushing its availability again.
    #[test]
    fn reload_carries_new_skills() {
        let mut q = Queue::new(QueueId::new("q"), Strategy::LongestIdle, 1);
        let en = vec![crate::config::SkillLevel {
            skill: "en".into(),
            level: 3,
        }];
        let needs = needs::CallNeeds {
            skills: vec![SkillRequirement {
                skill: "en".into(),
                level_min: 1,
            }],
            since_ms: 0,
        };
        q.enqueue(c("1"), 0, 0, vec![], needs);
        q.agent_available(a("x"), &info(0, 0));
        assert!(q.dispatch().is_empty(), "x lacks the skill");
        let mut config: crate::config::QueueConfig =
            serde_json::from_str(r#"{"id": "q"}"#).unwrap();
        config.routing.aging_per_s = 2;
        q.reconfigure(&config, skills::SkillIndex::new([(a("x"), en.as_slice())]));
        assert_eq!(q.policy.aging_per_s, 2);
        assert_eq!(q.dispatch()[0].agent, a("x"));
    }

    /// Round-robin rotates; ring-all asks every ready agent.
    #[test]
    fn round_robin_and_ring_all() {
        let mut q = Queue::new(QueueId::new("q"), Strategy::RoundRobin, 1);
        for n in ["a", "b"] {
            q.agent_available(a(n), &info(0, 0));
        }
        q.enqueue(c("1"), 0, 0, vec![], needs(0));
        let first = q.dispatch()[0].agent.clone();
        q.reservation_answered(&first, &c("1"), true);
        q.agent_available(first.clone(), &info(0, 0));
        q.enqueue(c("2"), 0, 0, vec![], needs(0));
        let second = q.dispatch()[0].agent.clone();
        assert_ne!(first, second);

        let mut r = Queue::new(QueueId::new("r"), Strategy::RingAll, 1);
        for n in ["a", "b", "c"] {
            r.agent_available(a(n), &info(0, 0));
        }
        r.enqueue(c("1"), 0, 0, vec![], needs(0));
        let asks = r.dispatch();
        assert_eq!(asks.len(), 3);
        assert_eq!(
            r.reservation_answered(&a("a"), &c("1"), true),
            AnswerAction::Offer
        );
        assert_eq!(
            r.reservation_answered(&a("b"), &c("1"), false),
            AnswerAction::Nothing
        );
        assert_eq!(
            r.reservation_answered(&a("c"), &c("1"), true),
            AnswerAction::Offer
        );
        assert_eq!(r.waiting_len(), 0);
    }

    /// While asked, availability pushes are ignored; the answer settles.
    #[test]
    fn asked_agents_wait_for_their_answer() {
        let mut q = Queue::new(QueueId::new("q"), Strategy::LongestIdle, 1);
        q.agent_available(a("x"), &info(0, 0));
        q.enqueue(c("1"), 0, 0, vec![], needs(0));
        q.dispatch();
        q.agent_available(a("x"), &info(5, 0));
        assert_eq!(q.ready_len(), 0);
        q.reservation_answered(&a("x"), &c("1"), false);
        q.agent_available(a("x"), &info(9, 0));
        assert_eq!(q.ready_len(), 1);
    }
}
