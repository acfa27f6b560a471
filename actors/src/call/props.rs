//! Property tests: random sequences of PBX events, queue offers, desktop
//! requests and agent presence changes, with time advancing, drive several
//! pure [`Call`]s and [`Agent`]s wired the way the actors wire them (the
//! agent reserves before the call rings it; the call's notices settle the
//! agent; timers fire in time order). After every step, DESIGN.md's
//! invariants are checked:
//!
//! 1. an agent is offered at most one call at a time;
//! 2. a call is offered to at most one agent at a time (no ring-all here);
//! 3. every call ends in exactly one terminal reason, and nothing happens to
//!    it after that (only a late wrap-up code, or the release of an agent a
//!    queue reserved for it in the meantime);
//! 4. an accepted call has exactly one interaction create and one phone log;
//! 5. per interaction, updates follow the create and their sequence numbers
//!    count 1, 2, 3... (and every correlation id is unique).
//!
//! At the end every call is hung up by its caller and time runs out: every
//! call has ended exactly once and no agent is left reserved or talking.

use super::*;
use crate::agent::{Agent, AgentSettings, AgentState, NotReadyReason, SystemReason};
use crate::agent::{OfferOutcome, OfferPurpose};
use crate::config::FinalDestination;
use crate::crm::RecordKind;
use crate::ids::QueueId;
use crate::ports::{CrmRecord, HangupCause};
use proptest::prelude::*;
use std::collections::HashSet;

const AGENTS: usize = 4;
const CALLS_MAX: usize = 5;
const OFFER_TIMEOUT_MS: u64 = 1_000;
const LEASE_GRACE_MS: u64 = 500;

#[derive(Clone, Copy, Debug)]
enum Control {
    Hold,
    Resume,
    Mute,
    Unmute,
    HangUp,
    CompleteConsult,
    ConferenceConsult,
    CancelConsult,
    WrapUpCode,
    TransferToQueue,
}

#[derive(Clone, Copy, Debug)]
enum LegKind {
    Transfer,
    Consult,
    Conference,
}

#[derive(Clone, Copy, Debug)]
enum Presence {
    Login,
    Ready,
    NotReady,
    Logout,
    EndWrapUp,
}

#[derive(Clone, Debug)]
enum Op {
    Arrive {
        dest: u8,
        max_wait_ms: u64,
    },
    Direct {
        agent: usize,
    },
    Outbound {
        agent: usize,
    },
    Route {
        call: usize,
        agent: usize,
    },
    Answer {
        call: usize,
    },
    Reject {
        call: usize,
    },
    DeviceHangUp {
        call: usize,
        cause: u8,
    },
    LinkDown {
        call: usize,
    },
    CallerHangUp {
        call: usize,
    },
    PbxFailed {
        call: usize,
    },
    Control {
        call: usize,
        party: usize,
        action: Control,
    },
    Leg {
        call: usize,
        party: usize,
        target: usize,
        kind: LegKind,
    },
    Presence {
        agent: usize,
        op: Presence,
    },
    Advance {
        ms: u64,
    },
    /// edgecc restarts: every machine is replaced by what its durable
    /// record decodes to, and the timers by what a restored actor re-arms.
    Restart,
}

fn control() -> impl Strategy<Value = Control> {
    prop_oneof![
        Just(Control::Hold),
        Just(Control::Resume),
        Just(Control::Mute),
        Just(Control::Unmute),
        Just(Control::HangUp),
        Just(Control::CompleteConsult),
        Just(Control::ConferenceConsult),
        Just(Control::CancelConsult),
        Just(Control::WrapUpCode),
        Just(Control::TransferToQueue),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let i = || 0usize..8;
    prop_oneof![
        3 => (0u8..3, 2_000u64..20_000).prop_map(|(dest, max_wait_ms)| Op::Arrive { dest, max_wait_ms }),
        1 => i().prop_map(|agent| Op::Direct { agent }),
        1 => i().prop_map(|agent| Op::Outbound { agent }),
        6 => (i(), i()).prop_map(|(call, agent)| Op::Route { call, agent }),
        6 => i().prop_map(|call| Op::Answer { call }),
        1 => i().prop_map(|call| Op::Reject { call }),
        1 => (i(), 0u8..4).prop_map(|(call, cause)| Op::DeviceHangUp { call, cause }),
        1 => i().prop_map(|call| Op::LinkDown { call }),
        1 => i().prop_map(|call| Op::CallerHangUp { call }),
        1 => i().prop_map(|call| Op::PbxFailed { call }),
        6 => (i(), i(), control()).prop_map(|(call, party, action)| Op::Control { call, party, action }),
        5 => (i(), i(), i(), prop_oneof![Just(LegKind::Transfer), Just(LegKind::Consult), Just(LegKind::Conference)])
            .prop_map(|(call, party, target, kind)| Op::Leg { call, party, target, kind }),
        3 => (i(), prop_oneof![Just(Presence::Login), Just(Presence::Ready), Just(Presence::NotReady), Just(Presence::Logout), Just(Presence::EndWrapUp)])
            .prop_map(|(agent, op)| Op::Presence { agent, op }),
        3 => (1u64..1_500).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Restart),
    ]
}

/// A transition that starts a leg to a reserved agent (as the actor's).
type Starter =
    fn(&mut Call, &AgentId, &AgentContact, OfferToken, u64) -> Result<Vec<CallEffect>, CallError>;

/// A timer some machine asked for.
#[derive(Clone, Debug)]
enum Timer {
    Call(usize, CallTimer),
    WrapUp(usize, u64),
    RejectDelay(usize, u64),
    Lease(usize, OfferToken),
}

/// One call and what it emitted.
struct Tracked {
    /// The machine.
    call: Call,
    /// Every record it emitted, in order.
    records: Vec<CrmRecord>,
    /// `Ended` effects seen.
    terminals: u32,
}

/// The calls, the agents, the clock and the pending timers.
struct World {
    now: u64,
    tokens: u64,
    calls: Vec<Tracked>,
    agents: Vec<Agent>,
    timers: Vec<(u64, Timer)>,
}

fn agent_id(i: usize) -> AgentId {
    AgentId::new(format!("a{i}"))
}

fn contact(i: usize) -> AgentContact {
    AgentContact {
        agent: agent_id(i),
        extension: format!("x{i}"),
        endpoint: format!("sim/a{i}"),
        auto_accept: false,
    }
}

fn rules(queue: &str, dest: u8, max_wait_ms: u64) -> QueueRules {
    QueueRules {
        final_destination: match dest {
            0 => FinalDestination::default(),
            1 => FinalDestination::External {
                number: "+4400".into(),
            },
            _ => FinalDestination::Queue { queue: "q2".into() },
        },
        ..QueueRules::plain(queue, max_wait_ms, 300)
    }
}

impl World {
    fn new() -> Self {
        let agents = (0..AGENTS)
            .map(|i| {
                Agent::new(
                    agent_id(i),
                    AgentSettings {
                        wrap_up_ms: None,
                        reject_delay_ms: 400,
                        rona_sets_not_ready: i % 2 == 0,
                        rona_reason: NotReadyReason::System(SystemReason::Rona),
                        device_refusals_max: 2,
                        backoff: Default::default(),
                    },
                )
            })
            .collect();
        World {
            now: 0,
            tokens: 0,
            calls: Vec::new(),
            agents,
            timers: Vec::new(),
        }
    }

    fn mint(&mut self) -> OfferToken {
        self.tokens += 1;
        OfferToken(self.tokens)
    }

    fn agent_index(id: &AgentId) -> usize {
        id.0[1..].parse().expect("harness agent ids are a0..")
    }

    fn pick(&self, i: usize) -> Option<usize> {
        (!self.calls.is_empty()).then(|| i % self.calls.len())
    }

    fn add_call(&mut self, call: Call, fx: Vec<CallEffect>) -> usize {
        self.calls.push(Tracked {
            call,
            records: Vec::new(),
            terminals: 0,
        });
        let ci = self.calls.len() - 1;
        self.apply(ci, fx);
        ci
    }

    /// Carries out a call's effects as the actor glue does; checks that an
    /// ended call does nothing (invariant 3).
    fn apply(&mut self, ci: usize, fx: Vec<CallEffect>) {
        let call_id = self.calls[ci].call.id.clone();
        let ended_before = self.calls[ci].terminals > 0;
        let now = self.now;
        for effect in fx {
            if ended_before {
                let allowed = match &effect {
                    CallEffect::Records(r) => r.iter().all(|r| {
                        r.body.get("event").and_then(|e| e.as_str()) == Some("wrap_up_code")
                    }),
                    CallEffect::Agent(
                        _,
                        AgentNotice::OfferEnded {
                            outcome: OfferOutcome::Withdrawn,
                            ..
                        },
                    ) => true,
                    _ => false,
                };
                assert!(allowed, "call {call_id} acted after its end: {effect:?}");
            }
            match effect {
                CallEffect::Pbx(_)
                | CallEffect::Enqueue { .. }
                | CallEffect::Dequeue(_)
                | CallEffect::Notice(_)
                | CallEffect::KeepPlace { .. } => {}
                CallEffect::Agent(agent, AgentNotice::OfferEnded { token, outcome }) => {
                    let a = Self::agent_index(&agent);
                    if let Ok(Some(delay)) =
                        self.agents[a].offer_ended(&call_id, token, outcome, now)
                    {
                        let epoch = self.agents[a].epoch;
                        self.timers
                            .push((now + delay, Timer::RejectDelay(a, epoch)));
                    }
                }
                CallEffect::Agent(agent, AgentNotice::LeftCall { wrap_up_ms }) => {
                    let a = Self::agent_index(&agent);
                    if let Ok(Some(until)) = self.agents[a].left_call(&call_id, wrap_up_ms, now) {
                        let epoch = self.agents[a].epoch;
                        self.timers.push((until, Timer::WrapUp(a, epoch)));
                    }
                }
                CallEffect::ConfirmAccept { agent, token } => {
                    let a = Self::agent_index(&agent);
                    let _ = self.agents[a].connected(&call_id, token, now);
                }
                CallEffect::MoveToQueue(q) => {
                    let more = self.calls[ci]
                        .call
                        .overflow_to(rules(q.as_str(), 0, 1_000), now);
                    self.apply(ci, more.expect("an overflowing call can join a queue"));
                }
                CallEffect::Records(r) => self.calls[ci].records.extend(r),
                CallEffect::Timer(t, at) => self.timers.push((at, Timer::Call(ci, t))),
                CallEffect::Ended(_) => self.calls[ci].terminals += 1,
                CallEffect::Overflow(reason) => {
                    let mut book = crate::queue::overflow_rules::OverflowBook::default();
                    let more = self.calls[ci].call.overflow(reason, &mut book, now);
                    self.apply(ci, more);
                }
            }
        }
    }

    /// The leg ringing on call `ci` (an offer or a pending leg), if any.
    fn ringing(&self, ci: usize) -> Option<(AgentId, OfferToken, LegId)> {
        match &self.calls[ci].call.phase {
            CallPhase::Offering { offers, .. } => offers
                .first()
                .map(|o| (o.agent.clone(), o.token, o.leg.clone())),
            CallPhase::Connected(s) => s
                .pending
                .as_ref()
                .filter(|p| !p.answered)
                .map(|p| (p.to.agent.clone(), p.token, p.leg.clone())),
            _ => None,
        }
    }

    /// Reserves agent `a` for call `ci` (the agent arbitrates), with a lease.
    fn reserve(&mut self, ci: usize, a: usize, purpose: OfferPurpose) -> Option<OfferToken> {
        let token = self.mint();
        let lease = self.now + OFFER_TIMEOUT_MS + LEASE_GRACE_MS;
        let id = self.calls[ci].call.id.clone();
        self.agents[a].reserve(id, token, purpose, lease).ok()?;
        self.timers.push((lease, Timer::Lease(a, token)));
        Some(token)
    }

    fn step(&mut self, op: &Op) {
        let now = self.now;
        match *op {
            Op::Arrive { dest, max_wait_ms } if self.calls.len() < CALLS_MAX => {
                let id = format!("c{}", self.calls.len());
                let (call, fx) = Call::inbound(
                    "s",
                    LegId::new(id),
                    "+1".into(),
                    "800".into(),
                    vec![],
                    now,
                    OFFER_TIMEOUT_MS,
                );
                let ci = self.add_call(call, fx);
                let fx = self.calls[ci]
                    .call
                    .enqueue(rules("q", dest, max_wait_ms), now);
                self.apply(ci, fx.expect("a new call joins its queue"));
            }
            Op::Direct { agent } if self.calls.len() < CALLS_MAX => {
                let id = format!("c{}", self.calls.len());
                let (call, fx) = Call::inbound(
                    "s",
                    LegId::new(id),
                    "+1".into(),
                    format!("x{}", agent % AGENTS),
                    vec![],
                    now,
                    OFFER_TIMEOUT_MS,
                );
                let ci = self.add_call(call, fx);
                let a = agent % AGENTS;
                let fx = match self.reserve(ci, a, OfferPurpose::Direct) {
                    Some(token) => self.calls[ci].call.offer(
                        &contact(a),
                        token,
                        OfferPurpose::Direct,
                        false,
                        now,
                    ),
                    None => self.calls[ci].call.direct_missed(now),
                };
                self.apply(ci, fx);
            }
            Op::Outbound { agent } if self.calls.len() < CALLS_MAX => {
                let a = agent % AGENTS;
                let id = CallId::new(format!("c{}", self.calls.len()));
                if self.agents[a].start_outbound(id.clone(), now).is_ok() {
                    let token = self.mint();
                    let (call, fx) = Call::outbound(
                        "s",
                        id,
                        &contact(a),
                        token,
                        "+2".into(),
                        now,
                        OFFER_TIMEOUT_MS,
                    );
                    self.add_call(call, fx);
                }
            }
            Op::Arrive { .. } | Op::Direct { .. } | Op::Outbound { .. } => {}
            Op::Route { call, agent } => {
                let Some(ci) = self.pick(call) else { return };
                let queue = match &self.calls[ci].call.phase {
                    CallPhase::Queued { queue, .. } => queue.clone(),
                    _ => QueueId::new("q"),
                };
                let a = agent % AGENTS;
                let purpose = OfferPurpose::Queue(queue);
                if let Some(token) = self.reserve(ci, a, purpose.clone()) {
                    let fx = self.calls[ci]
                        .call
                        .offer(&contact(a), token, purpose, false, now);
                    self.apply(ci, fx);
                }
            }
            Op::Answer { call } => {
                let Some(ci) = self.pick(call) else { return };
                let leg = match &self.calls[ci].call.phase {
                    CallPhase::Dialing { .. } => Some(self.calls[ci].call.caller_leg.clone()),
                    _ => self.ringing(ci).map(|(_, _, leg)| leg),
                };
                if let Some(leg) = leg {
                    let fx = self.calls[ci].call.leg_answered(&leg, now);
                    self.apply(ci, fx);
                }
            }
            Op::Reject { call } => {
                let Some(ci) = self.pick(call) else { return };
                if let Some((agent, token, _)) = self.ringing(ci) {
                    let a = Self::agent_index(&agent);
                    let id = self.calls[ci].call.id.clone();
                    if self.agents[a].current_offer(&id, token).is_ok() {
                        if let Ok(fx) = self.calls[ci].call.reject(&agent, token, now) {
                            self.apply(ci, fx);
                        }
                    }
                }
            }
            Op::DeviceHangUp { call, cause } => {
                let Some(ci) = self.pick(call) else { return };
                if let Some((_, _, leg)) = self.ringing(ci) {
                    let cause = [
                        HangupCause::Busy,
                        HangupCause::NoAnswer,
                        HangupCause::Unreachable,
                        HangupCause::Normal,
                    ][cause as usize % 4];
                    let fx = self.calls[ci].call.leg_hung_up(&leg, cause, now);
                    self.apply(ci, fx);
                }
            }
            Op::LinkDown { call } => {
                let Some(ci) = self.pick(call) else { return };
                if let Some((_, _, leg)) = self.ringing(ci) {
                    let fx = self.calls[ci].call.offer_not_sent(&leg, now);
                    self.apply(ci, fx);
                }
            }
            Op::CallerHangUp { call } => {
                let Some(ci) = self.pick(call) else { return };
                let leg = self.calls[ci].call.caller_leg.clone();
                let fx = self.calls[ci]
                    .call
                    .leg_hung_up(&leg, HangupCause::Normal, now);
                self.apply(ci, fx);
            }
            Op::PbxFailed { call } => {
                let Some(ci) = self.pick(call) else { return };
                let fx = self.calls[ci].call.pbx_failed("bridge refused".into(), now);
                self.apply(ci, fx);
            }
            Op::Control {
                call,
                party,
                action,
            } => {
                let Some(ci) = self.pick(call) else { return };
                let parties = self.calls[ci].call.parties();
                let agent = if parties.is_empty() {
                    agent_id(party % AGENTS)
                } else {
                    parties[party % parties.len()].clone()
                };
                let c = &mut self.calls[ci].call;
                let fx = match action {
                    Control::Hold => c.hold(&agent, now),
                    Control::Resume => c.resume(&agent, now),
                    Control::Mute => c.mute(&agent, true, now),
                    Control::Unmute => c.mute(&agent, false, now),
                    Control::HangUp => c.hang_up(&agent, now),
                    Control::CompleteConsult => c.complete_consult(&agent, now),
                    Control::ConferenceConsult => c.conference_consult(&agent, now),
                    Control::CancelConsult => c.cancel_consult(&agent, now),
                    Control::WrapUpCode => c.wrap_up_code(&agent, "sale", now),
                    Control::TransferToQueue => {
                        c.transfer_to_queue(&agent, rules("q2", 0, 1_000), now)
                    }
                };
                if let Ok(fx) = fx {
                    self.apply(ci, fx);
                }
            }
            Op::Leg {
                call,
                party,
                target,
                kind,
            } => {
                let Some(ci) = self.pick(call) else { return };
                let parties = self.calls[ci].call.parties();
                if parties.is_empty() {
                    return;
                }
                let from = parties[party % parties.len()].clone();
                let conference = matches!(kind, LegKind::Conference);
                if self.calls[ci]
                    .call
                    .can_start_leg(&from, conference)
                    .is_err()
                {
                    return;
                }
                let (purpose, start): (OfferPurpose, Starter) = match kind {
                    LegKind::Transfer => (OfferPurpose::Transfer, Call::transfer_to_agent),
                    LegKind::Consult => (OfferPurpose::Consult, Call::consult),
                    LegKind::Conference => (OfferPurpose::Conference, Call::add_to_conference),
                };
                let t = target % AGENTS;
                let Some(token) = self.reserve(ci, t, purpose) else {
                    return;
                };
                match start(&mut self.calls[ci].call, &from, &contact(t), token, now) {
                    Ok(fx) => self.apply(ci, fx),
                    Err(_) => {
                        let id = self.calls[ci].call.id.clone();
                        let _ =
                            self.agents[t].offer_ended(&id, token, OfferOutcome::Withdrawn, now);
                    }
                }
            }
            Op::Presence { agent, op } => {
                let a = &mut self.agents[agent % AGENTS];
                let _ = match op {
                    Presence::Login => a.login(),
                    Presence::Ready => a.set_ready(now),
                    Presence::NotReady => a.set_not_ready(NotReadyReason::Code("break".into())),
                    Presence::Logout => a.logout(),
                    Presence::EndWrapUp => a.end_wrap_up(now),
                };
            }
            Op::Advance { ms } => self.advance(ms),
            Op::Restart => self.restart(),
        }
    }

    /// Moves the clock, firing due timers in time order at their own time.
    fn advance(&mut self, ms: u64) {
        let until = self.now + ms;
        loop {
            let due = self
                .timers
                .iter()
                .enumerate()
                .filter(|(_, (at, _))| *at <= until)
                .min_by_key(|(i, (at, _))| (*at, *i))
                .map(|(i, _)| i);
            let Some(i) = due else { break };
            let (at, timer) = self.timers.remove(i);
            self.now = self.now.max(at);
            let now = self.now;
            match timer {
                Timer::Call(ci, CallTimer::Rona(token)) => {
                    let fx = self.calls[ci].call.rona(token, now);
                    self.apply(ci, fx);
                }
                Timer::Call(ci, CallTimer::MaxWait(stint)) => {
                    let fx = self.calls[ci].call.max_wait_elapsed(stint, now);
                    self.apply(ci, fx);
                }
                Timer::Call(ci, CallTimer::Announce(stint)) => {
                    let fx = self.calls[ci].call.announce(stint, None, now);
                    self.apply(ci, fx);
                }
                Timer::Call(ci, CallTimer::ReentryEnd(stint)) => {
                    let fx = self.calls[ci].call.reentry_ended(stint, now);
                    self.apply(ci, fx);
                }
                Timer::WrapUp(a, epoch) => {
                    self.agents[a].wrap_up_elapsed(epoch, now);
                }
                Timer::RejectDelay(a, epoch) => {
                    self.agents[a].reject_delay_elapsed(epoch, now);
                }
                Timer::Lease(a, token) => {
                    self.agents[a].lease_expired(token, now);
                }
            }
            self.check();
        }
        self.now = until;
    }

    /// A restart at this step: every call and agent goes through its
    /// durable record (encoded as the daemon stores it, decoded, latest per
    /// key) and must come back equal; pending timers are lost and re-armed
    /// as the restored actors do (call timers from their deadlines, the
    /// agent's wrap-up and lease from its state, a reject delay at once).
    fn restart(&mut self) {
        use crate::durable::{StateRecord, StateSnapshot};
        let records: Vec<StateRecord> = self
            .calls
            .iter()
            .map(|t| StateRecord::Call(Box::new(t.call.clone())))
            .chain(
                self.agents
                    .iter()
                    .map(|a| StateRecord::Agent(Box::new(a.clone()))),
            )
            .collect();
        let bytes = serde_json::to_vec(&records).expect("records encode");
        let decoded: Vec<StateRecord> = serde_json::from_slice(&bytes).expect("records decode");
        let snapshot = StateSnapshot::from_records(decoded);
        for t in &mut self.calls {
            let back = &snapshot.calls[&t.call.id];
            assert_eq!(
                back, &t.call,
                "call {} changed through its record",
                t.call.id
            );
            t.call = back.clone();
        }
        for a in &mut self.agents {
            let back = &snapshot.agents[&a.id];
            assert_eq!(back, a, "agent {} changed through its record", a.id);
            *a = back.clone();
        }
        self.timers.clear();
        for (ci, t) in self.calls.iter().enumerate() {
            for (timer, at) in t.call.armed_timers() {
                self.timers.push((at.max(self.now), Timer::Call(ci, timer)));
            }
        }
        for (i, a) in self.agents.iter().enumerate() {
            match &a.state {
                AgentState::WrapUp { until_ms, .. } => self
                    .timers
                    .push(((*until_ms).max(self.now), Timer::WrapUp(i, a.epoch))),
                AgentState::Reserved {
                    token,
                    lease_until_ms,
                    ..
                } => self
                    .timers
                    .push(((*lease_until_ms).max(self.now), Timer::Lease(i, *token))),
                AgentState::NotReady {
                    reason: NotReadyReason::System(SystemReason::RejectDelay),
                } => self.timers.push((self.now, Timer::RejectDelay(i, a.epoch))),
                _ => {}
            }
        }
    }

    /// The invariants that hold between any two steps.
    fn check(&self) {
        // Invariant 1: each agent rings for at most one call.
        for a in 0..AGENTS {
            let id = agent_id(a);
            let ringing: Vec<&CallId> = self
                .calls
                .iter()
                .filter(|t| t.call.offers().iter().any(|(x, _)| x == &id))
                .map(|t| &t.call.id)
                .collect();
            assert!(ringing.len() <= 1, "agent {id} offered {ringing:?} at once");
        }
        for t in &self.calls {
            let c = &t.call;
            // Timers are never lost (across restarts too): no offer rings
            // past its RONA deadline, no call waits past its max wait.
            if let CallPhase::Offering { offers, .. } = &c.phase {
                for o in offers {
                    assert!(
                        o.deadline_ms >= self.now,
                        "call {} offer past its deadline",
                        c.id
                    );
                }
            }
            if let (CallPhase::Queued { .. }, Some(at)) = (&c.phase, c.max_wait_deadline_ms) {
                assert!(at >= self.now, "call {} queued past its max wait", c.id);
            }
            // Invariant 2.
            assert!(
                c.offers().len() <= 1,
                "call {} offered to {:?}",
                c.id,
                c.offers()
            );
            // Invariant 3: one terminal, and the phase says so.
            assert!(
                t.terminals <= 1,
                "call {} ended {} times",
                c.id,
                t.terminals
            );
            assert_eq!(c.is_ended(), t.terminals == 1, "call {} phase vs end", c.id);
            // Invariants 4 and 5.
            let count = |k: RecordKind| t.records.iter().filter(|r| r.kind == k).count();
            let creates = count(RecordKind::InteractionCreate);
            let logs = count(RecordKind::PhoneLogCreate);
            assert!(creates <= 1 && logs <= 1, "call {} created twice", c.id);
            if c.answered_ms.is_some() {
                assert_eq!((creates, logs), (1, 1), "accepted call {} records", c.id);
            }
            let mut ids = HashSet::new();
            let mut seq = 0u64;
            let mut created = false;
            for r in &t.records {
                assert!(
                    ids.insert(&r.correlation_id),
                    "duplicate {}",
                    r.correlation_id
                );
                match r.kind {
                    RecordKind::InteractionCreate => created = true,
                    RecordKind::InteractionUpdate => {
                        assert!(created, "call {} updated before its create", c.id);
                        let n = r.body["seq"].as_u64().expect("updates carry seq");
                        assert_eq!(n, seq + 1, "call {} update out of order", c.id);
                        seq = n;
                    }
                    RecordKind::PhoneLogCreate | RecordKind::WorkItemCreate => {}
                }
            }
        }
    }

    /// Every caller hangs up and time runs out: nothing is left behind.
    fn drain(&mut self) {
        for ci in 0..self.calls.len() {
            let leg = self.calls[ci].call.caller_leg.clone();
            let now = self.now;
            let fx = self.calls[ci]
                .call
                .leg_hung_up(&leg, HangupCause::Normal, now);
            self.apply(ci, fx);
            self.check();
        }
        self.advance(60_000);
        for t in &self.calls {
            assert_eq!(
                t.terminals, 1,
                "call {} did not end exactly once",
                t.call.id
            );
        }
        for a in &self.agents {
            assert!(
                !matches!(
                    a.state,
                    AgentState::Reserved { .. } | AgentState::Talking { .. }
                ),
                "agent {} left {:?} after every call ended",
                a.id,
                a.state
            );
        }
    }
}

/// Every agent starts logged in and Ready, so calls get offered early.
fn ready_world() -> World {
    let mut w = World::new();
    for a in &mut w.agents {
        a.login().expect("fresh agent logs in");
        a.set_ready(0).expect("logged-in agent gets ready");
    }
    w
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    /// DESIGN.md's invariants over random sequences with time advancing.
    #[test]
    fn call_and_agent_invariants(ops in prop::collection::vec(op(), 1..80)) {
        let mut w = ready_world();
        for op in &ops {
            w.step(op);
            w.check();
        }
        w.drain();
    }
}

#[derive(Clone, Debug)]
enum AgentOp {
    Presence(Presence),
    Reserve { call: u8, purpose: u8 },
    Connected { call: u8, token_back: u64 },
    OfferEnded { outcome: u8 },
    LeftCall { wrap: Option<u64> },
    Outbound { call: u8 },
    Timers { ms: u64 },
}

fn agent_op() -> impl Strategy<Value = AgentOp> {
    prop_oneof![
        (prop_oneof![
            Just(Presence::Login),
            Just(Presence::Ready),
            Just(Presence::NotReady),
            Just(Presence::Logout),
            Just(Presence::EndWrapUp)
        ])
        .prop_map(AgentOp::Presence),
        (0u8..3, 0u8..6).prop_map(|(call, purpose)| AgentOp::Reserve { call, purpose }),
        (0u8..3, 0u64..2).prop_map(|(call, token_back)| AgentOp::Connected { call, token_back }),
        (0u8..4).prop_map(|outcome| AgentOp::OfferEnded { outcome }),
        prop::option::of(0u64..500).prop_map(|wrap| AgentOp::LeftCall { wrap }),
        (0u8..3).prop_map(|call| AgentOp::Outbound { call }),
        (1u64..1_000).prop_map(|ms| AgentOp::Timers { ms }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    /// The agent alone: it holds at most one offer or call at a time (a
    /// reservation succeeds only when it has none), it connects only the
    /// offer it holds, and every state change moves its epoch (what fences
    /// stale timers).
    #[test]
    fn agent_holds_one_call_at_a_time(ops in prop::collection::vec(agent_op(), 1..60)) {
        let mut a = Agent::new(agent_id(0), AgentSettings {
            wrap_up_ms: None,
            reject_delay_ms: 300,
            rona_sets_not_ready: true,
            rona_reason: NotReadyReason::System(SystemReason::Rona),
            device_refusals_max: 2,
            backoff: Default::default(),
        });
        let mut now = 0u64;
        let mut token = 0u64;
        for op in ops {
            let before = a.clone();
            let ok = match op {
                AgentOp::Presence(p) => match p {
                    Presence::Login => a.login().is_ok(),
                    Presence::Ready => a.set_ready(now).is_ok(),
                    Presence::NotReady => a.set_not_ready(NotReadyReason::Code("b".into())).is_ok(),
                    Presence::Logout => a.logout().is_ok(),
                    Presence::EndWrapUp => a.end_wrap_up(now).is_ok(),
                },
                AgentOp::Reserve { call, purpose } => {
                    token += 1;
                    let purpose = match purpose {
                        0 => OfferPurpose::Queue(QueueId::new("q")),
                        1 => OfferPurpose::Direct,
                        2 => OfferPurpose::Transfer,
                        3 => OfferPurpose::Consult,
                        4 => OfferPurpose::Conference,
                        _ => OfferPurpose::Outbound,
                    };
                    let ok = a
                        .reserve(CallId::new(format!("c{call}")), OfferToken(token), purpose, now + 100)
                        .is_ok();
                    if ok {
                        prop_assert!(before.state.call().is_none(), "reserved while holding {:?}", before.state);
                    }
                    ok
                }
                AgentOp::Connected { call, token_back } => {
                    let t = OfferToken(token.saturating_sub(token_back));
                    let id = CallId::new(format!("c{call}"));
                    let ok = a.connected(&id, t, now).is_ok();
                    if ok {
                        let held = matches!(&before.state,
                            AgentState::Reserved { call: c, token: x, .. } if c == &id && *x == t);
                        prop_assert!(held, "connected {id}/{t} without holding it: {:?}", before.state);
                    }
                    ok
                }
                AgentOp::OfferEnded { outcome } => match before.state.clone() {
                    AgentState::Reserved { call, token: t, .. } => {
                        let outcome = [OfferOutcome::Rejected, OfferOutcome::Missed, OfferOutcome::Withdrawn, OfferOutcome::Refused][outcome as usize];
                        a.offer_ended(&call, t, outcome, now).is_ok()
                    }
                    _ => false,
                },
                AgentOp::LeftCall { wrap } => match before.state.call().cloned() {
                    Some(call) => a.left_call(&call, wrap, now).is_ok(),
                    None => false,
                },
                AgentOp::Outbound { call } => {
                    let ok = a.start_outbound(CallId::new(format!("o{call}")), now).is_ok();
                    if ok {
                        prop_assert!(before.state.call().is_none());
                    }
                    ok
                }
                AgentOp::Timers { ms } => {
                    now += ms;
                    let epoch = a.epoch;
                    let mut fired = a.wrap_up_elapsed(epoch, now);
                    fired |= a.reject_delay_elapsed(epoch, now);
                    if let AgentState::Reserved { token: t, .. } = a.state {
                        fired |= a.lease_expired(t, now);
                    }
                    fired
                }
            };
            if a.state != before.state {
                prop_assert!(a.epoch > before.epoch, "state changed without a new epoch");
            }
            if !ok {
                // A refused request changes nothing but, at most, a pending change.
                prop_assert_eq!(&a.state, &before.state);
            }
            // One call at most, by construction of the state: and the
            // logged-out agent holds nothing pending.
            if a.state == AgentState::LoggedOut {
                prop_assert!(a.pending.is_none() && a.resume_not_ready.is_none());
            }
        }
    }
}
