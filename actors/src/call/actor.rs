//! CallActor: one per call. Thin glue around [`Call`]: routes the new call,
//! carries out the state machine's effects (PBX commands, agent and queue
//! messages, outbox appends, timers), reserves agents for direct calls,
//! transfers, consults and conferences, and publishes its view. It never
//! waits for the CRM: records go to the outbox writer and only the accept
//! confirmation to the agent waits (bounded) for them to be durable.

use super::supervision::SuperviseMode;
use super::{AgentContact, AgentNotice, Call, CallEffect, CallError, CallTimer, TerminalReason};
use crate::agent::actor::{CallConnected, CallLeft, OfferEnded, ReserveForCall};
use crate::agent::{AgentError, OfferOutcome, OfferPurpose};
use crate::durable::StateRecord;
use crate::env::{Env, SharedEnv};
use crate::error::CcError;
use crate::events::{CallView, PendingLegView, SupervisorOnCall};
use crate::ids::{AgentId, CallId, LegId, OfferToken, QueueId};
use crate::ports::{HangupCause, LegStatus, PbxCommand, PbxError, PbxEvent};
use crate::queue::actor::{DequeueCall, EnqueueCall, GetPlace};
use crate::registry::{CallChanged, CallFinished, CallNoticed, CallStopped};
use actix::prelude::*;
use std::rc::Rc;
use std::time::Duration;
use tracing::{debug, error, info, warn};

mod wrap_up_code;

/// Mailbox capacity of a call actor.
pub const CALL_MAILBOX_CAPACITY: usize = 64;
/// How long an ended call stays reachable for wrap-up codes beyond the
/// longest wrap-up of its agents.
pub const CALL_LINGER_SLACK_MS: u64 = 1_000;
/// How often an ended call waiting for its caller to leave looks again.
const ENDING_POLL_MS: u64 = 500;

/// A queue granted an agent: ring it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct OfferCall {
    /// How to ring the agent.
    pub contact: AgentContact,
    /// The lease's token.
    pub token: OfferToken,
    /// Why (the queue).
    pub purpose: OfferPurpose,
    /// Whether the queue rings all agents.
    pub ring_all: bool,
    /// Why the queue chose this agent: kept with the call once it rings.
    pub explanation: Option<Box<crate::queue::explain::RoutingExplanation>>,
}

/// Why the call's latest queue offers went to their agents, and its phase.
#[derive(Message)]
#[rtype(result = "(&'static str, crate::queue::explain::RoutingRecord)")]
pub struct GetRouting;

/// The agent's desktop accepts or rejects its offer.
#[derive(Message)]
#[rtype(result = "Result<(), CcError>")]
pub struct SettleOffer {
    /// The agent.
    pub agent: AgentId,
    /// The call it believes it is offered.
    pub call: CallId,
    /// The lease's token.
    pub token: OfferToken,
    /// Accept (true) or reject.
    pub accept: bool,
}

/// A PBX event about one of the call's legs (routed by the registry).
#[derive(Message)]
#[rtype(result = "()")]
pub struct LegEvent(pub PbxEvent);

/// After a restart: the legs of this call the PBX still has (routed by the
/// registry from a [`crate::registry::Reconcile`]), and how a leg not
/// listed ended (`Normal`, or `PbxLost` when the PBX restarted too).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReconcileCall(
    pub std::collections::HashMap<LegId, LegStatus>,
    pub HangupCause,
);

/// The queue's limits turned the call away (see [`Call::turned_away`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct TurnedAway {
    /// The queue.
    pub queue: QueueId,
    /// Why: `queue_full` or `queue_unstaffed`, on the call's records.
    pub reason: crate::crm::CallbackReason,
}

/// A reload: the call moves to the newest [`crate::env::Env`] and takes the
/// reloaded rules of its queue (see [`Call::reconfigure`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reconfigure;

/// An action on the connected call by one of its agents.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum CallAction {
    /// Music on hold for the caller.
    Hold,
    /// Back from hold.
    Resume,
    /// Mute the agent.
    Mute,
    /// Unmute the agent.
    Unmute,
    /// The agent hangs up.
    HangUp,
    /// Blind transfer to a Ready agent.
    TransferToAgent {
        /// The target.
        target: AgentId,
    },
    /// Blind transfer to a queue.
    TransferToQueue {
        /// The queue.
        queue: QueueId,
    },
    /// Consult an agent while the caller holds.
    Consult {
        /// The target.
        target: AgentId,
    },
    /// Complete the consult as a transfer.
    CompleteConsult,
    /// Make the consult a 3-way conference.
    ConferenceConsult,
    /// Cancel the consult.
    CancelConsult,
    /// Ring an agent into the conference.
    AddToConference {
        /// The target.
        target: AgentId,
    },
    /// Record a wrap-up (disposition) code.
    WrapUpCode {
        /// The code.
        code: String,
    },
    /// Drop another agent from the conference.
    DropParty {
        /// The agent to drop.
        target: AgentId,
    },
}

/// Perform `action` for `agent`.
#[derive(Message)]
#[rtype(result = "Result<(), CcError>")]
pub struct ControlCall {
    /// Who acts.
    pub agent: AgentId,
    /// The call the agent means (its agent actor checked it is its own); a
    /// call actor refuses another call's id.
    pub call: CallId,
    /// What.
    pub action: CallAction,
}

/// A pure transition that starts a leg to a reserved agent.
type LegStarter =
    fn(&mut Call, &AgentId, &AgentContact, OfferToken, u64) -> Result<Vec<CallEffect>, CallError>;

/// The actor.
pub struct CallActor {
    /// Shared ports and directory.
    env: SharedEnv,
    /// The pure state machine.
    call: Call,
    /// Longest wrap-up of agents that left, for the linger after the end.
    linger_ms: u64,
    /// Whether the end was already handled.
    finished: bool,
    /// Rebuilt from the durable state: `started` re-arms its timers instead
    /// of waiting for first effects.
    restored: bool,
    /// The agent who left the call last: a completed call of a queue with
    /// `sticky.after_call` makes the caller that agent's customer.
    last_party: Option<AgentId>,
    /// Ended, and its caller may still be at the PBX hearing the ending or
    /// waiting for its redirect to be taken (restored: until the reconcile
    /// says): the record is kept until the caller leaves or the PBX took
    /// the redirect, so a restart meanwhile finishes the ending instead of
    /// taking the caller for a new call (see `call/ending.rs`).
    caller_at_pbx: bool,
    /// Restored already ended: the previous process may have died before
    /// the PBX carried the ending out, so the reconcile finishes it if the
    /// caller is still there ([`super::Call::finish_ending`]).
    ended_before_restart: bool,
}

impl CallActor {
    /// Starts the actor for a call built by [`Call::inbound`] or
    /// [`Call::outbound`], carrying out its first effects.
    pub fn start_with(env: SharedEnv, call: Call, first: Vec<CallEffect>) -> Addr<Self> {
        let addr = Self {
            env,
            call,
            linger_ms: 0,
            finished: false,
            restored: false,
            last_party: None,
            caller_at_pbx: false,
            ended_before_restart: false,
        }
        .start();
        addr.do_send(Start(first));
        addr
    }

    /// The actor of a call rebuilt from its durable record: when started it
    /// re-arms the call's timers from their persisted deadlines (one whose
    /// deadline passed fires at once) or, for an ended call, lingers for
    /// wrap-up codes (`linger_ms`: the longest wrap-up left of its agents)
    /// and stops. Nothing is sent to the PBX: the reconcile decides what is
    /// still up.
    pub fn restored(env: SharedEnv, call: Call, linger_ms: u64) -> Self {
        Self {
            env,
            finished: call.is_ended(),
            caller_at_pbx: call.is_ended(),
            ended_before_restart: call.is_ended(),
            call,
            linger_ms,
            restored: true,
            last_party: None,
        }
    }

    /// The call's id.
    pub fn id(&self) -> &CallId {
        &self.call.id
    }

    /// The pure call (read by the restore to rebuild queue lines).
    pub fn call(&self) -> &Call {
        &self.call
    }

    fn view(&self) -> CallView {
        let answer_pending = match &self.call.phase {
            super::CallPhase::Offering { offers, .. } => offers
                .iter()
                .filter(|o| o.accepted_ms.is_some())
                .map(|o| o.agent.clone())
                .collect(),
            super::CallPhase::Connected(s) => s
                .pending
                .iter()
                .filter(|p| !p.answered && p.accepted_ms.is_some())
                .map(|p| p.to.agent.clone())
                .collect(),
            _ => Vec::new(),
        };
        let (held, ring_all) = match &self.call.phase {
            super::CallPhase::Connected(s) => (s.held, false),
            super::CallPhase::Offering { ring_all, .. } => (false, *ring_all),
            _ => (false, false),
        };
        CallView {
            call: self.call.id.clone(),
            ani: self.call.ani.clone(),
            dnis: self.call.dnis.clone(),
            attached: self.call.attached.clone(),
            phase: self.call.phase.name(),
            queue: self.call.rules.as_ref().map(|r| r.queue.clone()),
            offers: self.call.offers(),
            answer_pending,
            ring_all,
            parties: self.call.parties(),
            muted: match &self.call.phase {
                super::CallPhase::Connected(s) => s
                    .parties
                    .iter()
                    .filter(|p| p.muted)
                    .map(|p| p.agent.clone())
                    .collect(),
                _ => Vec::new(),
            },
            held,
            supervisors: self
                .call
                .supervisions
                .iter()
                .map(|s| SupervisorOnCall {
                    supervisor: s.supervisor.clone(),
                    agent: s.agent.clone(),
                    mode: s.mode,
                    since_ms: s.since_ms,
                })
                .collect(),
            terminal: match &self.call.phase {
                super::CallPhase::Ended(r) => Some(r.clone()),
                _ => None,
            },
            pending_leg: match &self.call.phase {
                super::CallPhase::Connected(s) => s.pending.as_ref().map(|p| PendingLegView {
                    kind: match p.kind {
                        super::PendingKind::Consult => "consult",
                        super::PendingKind::Conference => "conference",
                    },
                    from: p.from.clone(),
                    to: p.to.agent.clone(),
                    answered: p.answered,
                }),
                _ => None,
            },
            offer_deadlines_ms: self.call.offer_deadlines_ms(),
        }
    }

    /// Carries out effects in order, then publishes the view.
    fn apply(&mut self, fx: Vec<CallEffect>, ctx: &mut Context<Self>) {
        self.run(fx, ctx);
        if self.call.is_ended() {
            // Before the ended state: durable whenever that state is.
            self.env.persist(|| {
                StateRecord::CallDetail(Box::new(crate::cdr::CallDetailRecord::of(&self.call)))
            });
        }
        self.env
            .persist(|| StateRecord::Call(Box::new(self.call.clone())));
        self.env.registry.do_send(CallChanged(self.view()));
    }

    fn run(&mut self, fx: Vec<CallEffect>, ctx: &mut Context<Self>) {
        crate::cdr::observe(&mut self.call, &fx, self.env.now_ms());
        for effect in fx {
            match effect {
                CallEffect::Pbx(cmd) => self.send_pbx(cmd, ctx),
                CallEffect::Agent(agent, notice) => self.tell_agent(&agent, notice),
                CallEffect::Enqueue {
                    queue,
                    priority,
                    since_ms,
                    tried,
                    needs,
                } => match self.env.directory.queues.get(&queue) {
                    Some(q) => q.addr.do_send(EnqueueCall {
                        call: self.call.id.clone(),
                        addr: ctx.address(),
                        priority,
                        since_ms,
                        tried,
                        ani: self.call.ani.clone(),
                        needs,
                    }),
                    None => error!(call_id = %self.call.id, queue_id = %queue, "Unknown queue."),
                },
                CallEffect::Dequeue(queue) => {
                    if let Some(q) = self.env.directory.queues.get(&queue) {
                        q.addr.do_send(DequeueCall {
                            call: self.call.id.clone(),
                        });
                    }
                }
                CallEffect::MoveToQueue(queue) => {
                    let now = self.env.now_ms();
                    let more = match self.env.directory.queues.get(&queue) {
                        Some(q) => self.call.overflow_to(q.rules.clone(), now),
                        None => Ok(self.call.pbx_failed(format!("unknown queue {queue}"), now)),
                    };
                    match more {
                        Ok(more) => self.run(more, ctx),
                        Err(e) => error!(call_id = %self.call.id, error = %e, "Overflow failed."),
                    }
                }
                CallEffect::Records(records) => self.env.writer.append(records),
                CallEffect::ConfirmAccept { agent, token } => {
                    self.confirm_accept(agent, token, ctx)
                }
                CallEffect::Timer(timer, at_ms) => self.start_timer(timer, at_ms, ctx),
                CallEffect::Notice(notice) => self.env.registry.do_send(CallNoticed {
                    call: self.call.id.clone(),
                    notice,
                }),
                CallEffect::KeepPlace {
                    ani,
                    queue,
                    until_ms,
                } => self.env.registry.do_send(crate::registry::PlaceKept {
                    call: self.call.id.clone(),
                    ani,
                    queue,
                    until_ms,
                }),
                CallEffect::Ended(reason) => self.ended(reason, ctx),
                CallEffect::Overflow(reason) => {
                    let now = self.env.now_ms();
                    let book = Rc::clone(&self.env.overflow);
                    let more = self.call.overflow(reason, &mut book.borrow_mut(), now);
                    self.run(more, ctx);
                }
            }
        }
    }

    fn send_pbx(&self, cmd: PbxCommand, ctx: &mut Context<Self>) {
        let fut = self.env.pbx.send(cmd.clone());
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            if let PbxCommand::RedirectExternal { leg_id, .. } = &cmd {
                // The PBX took the caller away (or it was gone): nothing of
                // the ending is left for a next life to carry out.
                if *leg_id == act.call.caller_leg
                    && matches!(res, Ok(()) | Err(PbxError::UnknownLeg(_)))
                {
                    act.caller_at_pbx = false;
                }
            }
            let Err(e) = res else { return };
            let now = act.env.now_ms();
            match &cmd {
                PbxCommand::OriginateAgentLeg { leg_id, .. } | PbxCommand::ConsultDial { leg_id, .. }
                    if e == PbxError::LinkDown =>
                {
                    warn!(call_id = %act.call.id, leg_id = %leg_id, "Offer not sent: PBX link down; the agent is not penalised.");
                    // The port says the link is down: queues hold their
                    // calls until the adapter reports it up again (so a
                    // failing port cannot spin offers through the agents).
                    act.env.registry.do_send(PbxEvent::LinkDown);
                    let fx = act.call.offer_not_sent(leg_id, now);
                    act.apply(fx, ctx);
                }
                PbxCommand::OriginateAgentLeg { leg_id, .. } | PbxCommand::ConsultDial { leg_id, .. } => {
                    warn!(call_id = %act.call.id, leg_id = %leg_id, error = %e, "Originate failed.");
                    let fx = act.call.leg_hung_up(leg_id, HangupCause::Unreachable, now);
                    act.apply(fx, ctx);
                }
                PbxCommand::OutboundDial { customer_leg_id, .. } => {
                    warn!(call_id = %act.call.id, error = %e, "Outbound dial failed.");
                    let fx = act.call.leg_hung_up(customer_leg_id, HangupCause::Unreachable, now);
                    act.apply(fx, ctx);
                }
                PbxCommand::Snoop { snoop_leg_id: leg, .. } | PbxCommand::Barge { leg_id: leg, .. } => {
                    warn!(call_id = %act.call.id, leg_id = %leg, error = %e, "Supervisor leg failed.");
                    if act.call.supervisor_leg_gone(leg) {
                        act.apply(Vec::new(), ctx);
                    }
                }
                _ if !act.call.is_ended() && caller_gone(&cmd, &e, &act.call.caller_leg) => {
                    // The caller hung up as we answered, bridged or
                    // conferenced them: the PBX's hang-up event is on its
                    // way. End the call as that event would (abandoned, or
                    // completed once talking); when it arrives it finds the
                    // call ended.
                    let leg_id = act.call.caller_leg.clone();
                    info!(call_id = %act.call.id, leg_id = %leg_id, "Caller gone before the PBX carried out the command; the call ends as hung up.");
                    let fx = act.call.leg_hung_up(&leg_id, HangupCause::Normal, now);
                    act.apply(fx, ctx);
                }
                PbxCommand::Bridge { .. } | PbxCommand::Conference { .. } if !act.call.is_ended() => {
                    error!(call_id = %act.call.id, error = %e, "PBX failed to bridge; call ends.");
                    let fx = act.call.pbx_failed(e.to_string(), now);
                    act.apply(fx, ctx);
                }
                PbxCommand::Answer { leg_id } if leg_id == &act.call.caller_leg && !act.call.is_ended() => {
                    error!(call_id = %act.call.id, error = %e, "PBX failed to answer; call ends.");
                    let fx = act.call.pbx_failed(e.to_string(), now);
                    act.apply(fx, ctx);
                }
                PbxCommand::Answer { leg_id } => {
                    // An agent accepted on its desktop and its phone was
                    // not picked up: the agent's no-answer.
                    let fx = act.call.phone_not_answered(leg_id, now);
                    if fx.is_empty() {
                        debug!(call_id = %act.call.id, leg_id = %leg_id, error = %e, "Answer failed on a leg no longer offered.");
                    } else {
                        warn!(call_id = %act.call.id, leg_id = %leg_id, error = %e, "Accepted on the desktop but the phone did not answer; the call goes back to its queue.");
                        act.apply(fx, ctx);
                    }
                }
                _ => debug!(call_id = %act.call.id, error = %e, "PBX command failed (ignored)."),
            }
        }));
    }

    fn tell_agent(&mut self, agent: &AgentId, notice: AgentNotice) {
        let Some(h) = self.env.directory.agents.get(agent) else {
            return;
        };
        let call = self.call.id.clone();
        match notice {
            AgentNotice::OfferEnded { token, outcome } => {
                if outcome != OfferOutcome::Withdrawn {
                    info!(call_id = %call, agent_id = %agent, outcome = ?outcome, "Offer redirected.");
                }
                h.addr.do_send(OfferEnded {
                    call,
                    token,
                    outcome,
                });
            }
            AgentNotice::LeftCall { wrap_up_ms } => {
                self.last_party = Some(agent.clone());
                let wrap = wrap_up_ms
                    .map(|w| h.wrap_up_ms_override.unwrap_or(w))
                    .unwrap_or(0);
                self.linger_ms = self.linger_ms.max(wrap);
                let queue = self.call.rules.as_ref().map(|r| r.queue.clone());
                h.addr.do_send(CallLeft {
                    call,
                    wrap_up_ms,
                    queue,
                });
            }
        }
    }

    fn confirm_accept(&self, agent: AgentId, token: OfferToken, ctx: &mut Context<Self>) {
        let Some(addr) = self
            .env
            .directory
            .agents
            .get(&agent)
            .map(|h| h.addr.clone())
        else {
            return;
        };
        let call = self.call.id.clone();
        let durable = self.env.writer.append_confirmed(Vec::new());
        let wait = Duration::from_millis(self.env.config.timers.accept_confirm_wait_ms);
        ctx.spawn(
            async move {
                let ok = matches!(tokio::time::timeout(wait, durable).await, Ok(Ok(true)));
                if !ok {
                    warn!(call_id = %call, agent_id = %agent, "CRM records not durable yet; accept confirmed anyway.");
                }
                info!(call_id = %call, agent_id = %agent, "Call answered.");
                addr.do_send(CallConnected { call, token });
            }
            .into_actor(self),
        );
    }

    fn start_timer(&self, timer: CallTimer, at_ms: u64, ctx: &mut Context<Self>) {
        let delay = Duration::from_millis(at_ms.saturating_sub(self.env.now_ms()));
        ctx.run_later(delay, move |act, ctx| {
            let now = act.env.now_ms();
            let fx = match &timer {
                CallTimer::Rona(token) => act.call.rona(*token, now),
                CallTimer::MaxWait(stint) => act.call.max_wait_elapsed(*stint, now),
                CallTimer::Announce(stint) => return act.announce(*stint, at_ms, ctx),
                CallTimer::ReentryEnd(stint) => act.call.reentry_ended(*stint, now),
            };
            if !fx.is_empty() {
                act.apply(fx, ctx);
            }
        });
    }

    /// The announcement timer of `stint`, due at `due_ms`, fired: the
    /// queue says the place (routing never waits for it: the answer is a
    /// message like any other), then the call decides what the caller
    /// hears. The next one is due an interval after this one was, so the
    /// cadence does not drift by the queue's answer time.
    fn announce(&mut self, stint: u32, due_ms: u64, ctx: &mut Context<Self>) {
        let queue = match (&self.call.phase, self.call.wants_place(stint)) {
            (super::CallPhase::Queued { queue, .. }, true) => {
                self.env.directory.queues.get(queue).map(|q| q.addr.clone())
            }
            _ => None,
        };
        let Some(queue) = queue else {
            let fx = self.call.announce(stint, None, due_ms);
            return self.apply(fx, ctx);
        };
        let ask = queue.send(GetPlace {
            call: self.call.id.clone(),
        });
        ctx.spawn(ask.into_actor(self).map(move |place, act, ctx| {
            let fx = act
                .call
                .announce(stint, place.ok().flatten(), act.env.now_ms());
            act.apply(fx, ctx);
        }));
    }

    fn ended(&mut self, reason: TerminalReason, ctx: &mut Context<Self>) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.env.overflow.borrow_mut().release(&self.call.id);
        match &reason {
            TerminalReason::Failed { error } => {
                error!(call_id = %self.call.id, error = %error, "Call failed.")
            }
            _ => info!(call_id = %self.call.id, reason = ?reason, "Call ended."),
        }
        if reason == TerminalReason::Completed {
            self.remember_caller();
        }
        self.env.registry.do_send(CallFinished {
            call: self.call.id.clone(),
            reason,
            record: Box::new(crate::cdr::CallDetailRecord::of(&self.call)),
        });
        let linger = if self.call.interaction_created {
            self.linger_ms + CALL_LINGER_SLACK_MS
        } else {
            0
        };
        self.caller_at_pbx = self.call.ending_waits_on_pbx();
        self.stop_after(linger, ctx);
    }

    /// Stops the ended call after `linger_ms`, and not before its caller
    /// left the PBX (at most [`super::ENDING_WAIT_MAX_MS`] from now).
    fn stop_after(&mut self, linger_ms: u64, ctx: &mut Context<Self>) {
        let give_up_ms = self.env.now_ms() + super::ENDING_WAIT_MAX_MS;
        ctx.run_later(Duration::from_millis(linger_ms), move |act, ctx| {
            act.stop_once_caller_left(give_up_ms, ctx)
        });
    }

    fn stop_once_caller_left(&mut self, give_up_ms: u64, ctx: &mut Context<Self>) {
        if !self.caller_at_pbx || self.env.now_ms() >= give_up_ms {
            ctx.stop();
            return;
        }
        ctx.run_later(Duration::from_millis(ENDING_POLL_MS), move |act, ctx| {
            act.stop_once_caller_left(give_up_ms, ctx)
        });
    }

    /// After a completed call of a queue with `sticky.after_call`, the
    /// caller becomes the last agent's customer (unless the config pins the
    /// number to another agent).
    fn remember_caller(&self) {
        let (Some(agent), Some(rules)) = (&self.last_party, &self.call.rules) else {
            return;
        };
        let after_call = self
            .env
            .config
            .queue(rules.queue.as_str())
            .is_some_and(|q| q.sticky.after_call);
        if !after_call || self.call.ani.is_empty() {
            return;
        }
        let source = crate::sticky::StickySource::AfterCall;
        if let Err(e) = crate::sticky::remember(&self.env, &self.call.ani, agent, source) {
            debug!(call_id = %self.call.id, agent_id = %agent, error = %e, "Caller not made the agent's customer.");
        }
    }

    /// Routes a new inbound call: queue by DNIS, agent by extension, default
    /// queue, or no route.
    fn route(&mut self, ctx: &mut Context<Self>) {
        let now = self.env.now_ms();
        let dir = &self.env.directory;
        if let Some(q) = dir
            .by_dnis
            .get(&self.call.dnis)
            .and_then(|q| dir.queues.get(q))
        {
            let fx = self.call.enqueue(q.rules.clone(), now).unwrap_or_default();
            return self.apply(fx, ctx);
        }
        if let Some(agent) = dir
            .by_extension
            .get(&self.call.dnis)
            .and_then(|a| dir.agents.get(a))
        {
            let token = self.env.mint_token();
            let req = agent.addr.send(ReserveForCall {
                call: self.call.id.clone(),
                call_addr: ctx.address(),
                token,
                purpose: OfferPurpose::Direct,
            });
            ctx.spawn(req.into_actor(self).map(move |res, act, ctx| {
                let now = act.env.now_ms();
                let fx = match res {
                    Ok(Ok(contact)) => {
                        act.call
                            .offer(&contact, token, OfferPurpose::Direct, false, now)
                    }
                    _ => act.call.direct_missed(now),
                };
                act.apply(fx, ctx);
            }));
            return;
        }
        let default = self.env.config.routing.default_queue.clone();
        if let Some(q) = default.and_then(|q| dir.queues.get(&QueueId::new(q))) {
            let fx = self.call.enqueue(q.rules.clone(), now).unwrap_or_default();
            return self.apply(fx, ctx);
        }
        let prompt = self.env.config.routing.no_route_prompt.clone();
        warn!(call_id = %self.call.id, dnis = %self.call.dnis, "No route for call.");
        let fx = self.call.unroutable(&prompt, now);
        self.apply(fx, ctx);
    }

    /// Check that `agent` may start a leg now (a transfer or consult needs a
    /// one-agent call, a conference invite no leg in progress), reserve
    /// `target` for `purpose`, then run `then` with its contact.
    fn reserve_then(
        &mut self,
        agent: AgentId,
        target: AgentId,
        purpose: OfferPurpose,
        then: LegStarter,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Result<(), CcError>> {
        let conference = matches!(purpose, OfferPurpose::Conference);
        if let Err(e) = self.call.can_start_leg(&agent, conference) {
            return Box::pin(actix::fut::ready(Err(e.into())));
        }
        let Some(handle) = self.env.directory.agents.get(&target) else {
            return Box::pin(actix::fut::ready(Err(CcError::UnknownAgent(target))));
        };
        let token = self.env.mint_token();
        let req = handle.addr.send(ReserveForCall {
            call: self.call.id.clone(),
            call_addr: ctx.address(),
            token,
            purpose,
        });
        let call_id = self.call.id.clone();
        Box::pin(req.into_actor(self).map(move |res, act, ctx| {
            let contact = match res {
                Ok(Ok(contact)) => contact,
                Ok(Err(AgentError::NotAvailable { state, .. })) => {
                    return Err(CcError::TargetNotAvailable { target, state })
                }
                Ok(Err(e)) => return Err(CcError::Agent(e)),
                Err(e) => return Err(CcError::Mailbox(e.to_string())),
            };
            let now = act.env.now_ms();
            match then(&mut act.call, &agent, &contact, token, now) {
                Ok(fx) => {
                    act.apply(fx, ctx);
                    Ok(())
                }
                Err(e) => {
                    // The call changed while we asked: free the target.
                    act.tell_agent(
                        &contact.agent,
                        AgentNotice::OfferEnded {
                            token,
                            outcome: OfferOutcome::Withdrawn,
                        },
                    );
                    debug!(call_id = %call_id, error = %e, "Leg not started.");
                    Err(CcError::Call(e))
                }
            }
        }))
    }
}

/// Whether `e`, the PBX's answer to `cmd`, says that the caller's own leg
/// (`caller`) is gone while edgecc answered, bridged or conferenced it:
/// the caller hung up at that moment, and its hang-up event follows.
fn caller_gone(cmd: &PbxCommand, e: &PbxError, caller: &LegId) -> bool {
    let on_caller = match cmd {
        PbxCommand::Answer { leg_id } | PbxCommand::Bridge { leg_id, .. } => leg_id == caller,
        PbxCommand::Conference { leg_ids, .. } => leg_ids.contains(caller),
        _ => false,
    };
    on_caller && matches!(e, PbxError::UnknownLeg(gone) if *gone == caller.0)
}

/// First effects of a new call (internal).
#[derive(Message)]
#[rtype(result = "()")]
struct Start(Vec<CallEffect>);

impl Actor for CallActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(CALL_MAILBOX_CAPACITY);
        if !self.restored {
            return;
        }
        if self.call.is_ended() {
            self.stop_after(self.linger_ms + CALL_LINGER_SLACK_MS, ctx);
        } else {
            if let Some(queue) = &self.call.overflow_slot {
                self.env.overflow.borrow_mut().restore(&self.call.id, queue);
            }
            for (timer, at_ms) in self.call.armed_timers() {
                self.start_timer(timer, at_ms, ctx);
            }
        }
        self.env.registry.do_send(CallChanged(self.view()));
        if matches!(self.call.phase, super::CallPhase::Routing) {
            // Arrived just before the restart, not routed yet: route it now
            // (queues hold it until the reconcile).
            self.route(ctx);
        }
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.env
            .persist(|| StateRecord::CallRemoved(self.call.id.clone()));
        self.env.registry.do_send(CallStopped(self.call.id.clone()));
    }
}

impl Handler<Start> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: Start, ctx: &mut Self::Context) {
        self.apply(msg.0, ctx);
        if self.call.direction == super::Direction::Inbound {
            info!(call_id = %self.call.id, ani = %self.call.ani, dnis = %self.call.dnis, "Call arrived.");
            self.route(ctx);
        }
    }
}

impl Handler<OfferCall> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: OfferCall, ctx: &mut Self::Context) {
        let now = self.env.now_ms();
        let fx = self
            .call
            .offer(&msg.contact, msg.token, msg.purpose, msg.ring_all, now);
        let rings = matches!(&self.call.phase, super::CallPhase::Offering { offers, .. }
            if offers.iter().any(|o| o.token == msg.token));
        if let (Some(e), true) = (msg.explanation, rings) {
            self.call.routing.note(*e);
        }
        self.apply(fx, ctx);
    }
}

impl Handler<GetRouting> for CallActor {
    type Result = MessageResult<GetRouting>;

    fn handle(&mut self, _msg: GetRouting, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult((self.call.phase.name(), self.call.routing.clone()))
    }
}

impl Handler<SettleOffer> for CallActor {
    type Result = Result<(), CcError>;

    fn handle(&mut self, msg: SettleOffer, ctx: &mut Self::Context) -> Self::Result {
        let now = self.env.now_ms();
        let fx = if msg.accept {
            self.call.accept(&msg.agent, msg.token, true, now)?
        } else {
            self.call.reject(&msg.agent, msg.token, now)?
        };
        self.apply(fx, ctx);
        Ok(())
    }
}

/// A supervisor starts monitoring, whispering or barging in on one agent's
/// part of the call, from its own device. Answers the supervisor's leg.
#[derive(Message)]
#[rtype(result = "Result<LegId, CcError>")]
pub struct Supervise {
    /// The supervisor's user id.
    pub supervisor: String,
    /// The supervisor's device (dial string).
    pub endpoint: String,
    /// The agent supervised.
    pub agent: AgentId,
    /// How.
    pub mode: SuperviseMode,
}

/// A supervisor leaves the call.
#[derive(Message)]
#[rtype(result = "Result<(), CcError>")]
pub struct EndSupervision {
    /// The supervisor's user id.
    pub supervisor: String,
}

impl Handler<Supervise> for CallActor {
    type Result = ResponseActFuture<Self, Result<LegId, CcError>>;

    /// The answer waits for the PBX to take the supervisor's leg (a snoop
    /// and the supervisor's device dialled, or the barging device
    /// dialled): a refusal is the supervisor's answer, not a log line.
    fn handle(&mut self, msg: Supervise, ctx: &mut Self::Context) -> Self::Result {
        let token = self.env.mint_token();
        let now = self.env.now_ms();
        let mut fx = match self.call.supervise(
            &msg.supervisor,
            &msg.endpoint,
            &msg.agent,
            msg.mode,
            token,
            now,
        ) {
            Ok(fx) => fx,
            Err(e) => return Box::pin(actix::fut::ready(Err(e.into()))),
        };
        let leg = LegId::for_offer(&self.call.id, token);
        // The supervisor's leg is the last effect; the rest (an earlier
        // supervision's hang-up) goes as usual.
        let join = match fx.pop() {
            Some(CallEffect::Pbx(cmd)) => cmd,
            other => {
                fx.extend(other);
                self.apply(fx, ctx);
                return Box::pin(actix::fut::ready(Ok(leg)));
            }
        };
        self.apply(fx, ctx);
        let call = self.call.id.clone();
        let send = self.env.pbx.send(join);
        Box::pin(send.into_actor(self).map(move |res, act, ctx| match res {
            Ok(()) => {
                info!(call_id = %call, supervisor = %msg.supervisor, agent_id = %msg.agent,
                      mode = msg.mode.as_str(), leg_id = %leg, "Supervisor joins the call.");
                Ok(leg)
            }
            Err(e) => {
                warn!(call_id = %call, supervisor = %msg.supervisor, agent_id = %msg.agent,
                      mode = msg.mode.as_str(), leg_id = %leg, error = %e, "Supervisor could not join the call.");
                if act.call.supervisor_leg_gone(&leg) {
                    act.apply(Vec::new(), ctx);
                }
                Err(CcError::Pbx(e.to_string()))
            }
        }))
    }
}

impl Handler<EndSupervision> for CallActor {
    type Result = Result<(), CcError>;

    fn handle(&mut self, msg: EndSupervision, ctx: &mut Self::Context) -> Self::Result {
        let fx = self.call.end_supervision(&msg.supervisor)?;
        info!(call_id = %self.call.id, supervisor = %msg.supervisor, "Supervisor leaves the call.");
        self.apply(fx, ctx);
        Ok(())
    }
}

impl Handler<LegEvent> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: LegEvent, ctx: &mut Self::Context) {
        let now = self.env.now_ms();
        if matches!(&msg.0, PbxEvent::LegHungUp { leg_id, .. } if *leg_id == self.call.caller_leg) {
            self.caller_at_pbx = false;
        }
        let supervisors = self.call.supervisions.len();
        let fx = match &msg.0 {
            PbxEvent::LegAnswered { leg_id } => self.call.leg_answered(leg_id, now),
            PbxEvent::LegHungUp { leg_id, cause } => self.call.leg_hung_up(leg_id, *cause, now),
            PbxEvent::Dtmf { leg_id, digit } => {
                debug!(call_id = %self.call.id, leg_id = %leg_id, digit = %digit, "DTMF.");
                let fx = self.call.dtmf(leg_id, *digit, now);
                if !fx.is_empty() {
                    info!(call_id = %self.call.id, digit = %digit, "Caller asked for a callback; the place is kept.");
                }
                fx
            }
            _ => Vec::new(),
        };
        if !fx.is_empty() || self.call.supervisions.len() != supervisors {
            self.apply(fx, ctx);
        }
    }
}

/// A caller called again within the re-entry window: the new caller leg
/// takes this call's kept place (from the registry).
#[derive(Message)]
#[rtype(result = "Result<(), CallError>")]
pub struct Reenter {
    /// The new caller leg.
    pub leg: LegId,
}

impl Handler<Reenter> for CallActor {
    type Result = Result<(), CallError>;

    fn handle(&mut self, msg: Reenter, ctx: &mut Self::Context) -> Self::Result {
        let fx = self.call.reenter(msg.leg.clone(), self.env.now_ms())?;
        info!(call_id = %self.call.id, leg_id = %msg.leg, "Caller called again and takes the kept place back.");
        self.apply(fx, ctx);
        Ok(())
    }
}

impl Handler<ReconcileCall> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: ReconcileCall, ctx: &mut Self::Context) {
        let now = self.env.now_ms();
        let fx = if self.ended_before_restart {
            // Once: a later reconcile (a reconnect) finds the ending done.
            self.ended_before_restart = false;
            let caller_there = msg.0.contains_key(&self.call.caller_leg);
            self.caller_at_pbx = caller_there && self.call.ending_waits_on_pbx();
            if caller_there {
                info!(call_id = %self.call.id, terminal = ?self.call.phase, "Restart: the caller of an ended call is still at the PBX; its ending is carried out.");
                self.call.finish_ending()
            } else {
                Vec::new()
            }
        } else {
            self.call.reconcile_gone(&msg.0, msg.1, now)
        };
        info!(call_id = %self.call.id, phase = self.call.phase.name(), legs_up = msg.0.len(), "Call reconciled with the PBX.");
        self.apply(fx, ctx);
    }
}

impl Handler<TurnedAway> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: TurnedAway, ctx: &mut Self::Context) {
        let now = self.env.now_ms();
        let fx = self.call.turned_away(&msg.queue, msg.reason, now);
        if !fx.is_empty() {
            self.apply(fx, ctx);
        }
    }
}

impl Handler<Reconfigure> for CallActor {
    type Result = ();

    fn handle(&mut self, _msg: Reconfigure, ctx: &mut Self::Context) {
        self.env = Env::latest(&self.env);
        let rules = self
            .call
            .rules
            .as_ref()
            .and_then(|r| self.env.directory.queues.get(&r.queue))
            .map(|q| q.rules.clone());
        if let Some(rules) = rules {
            if self.call.rules.as_ref() != Some(&rules) {
                let now = self.env.now_ms();
                let fx = self.call.reconfigure(rules, now);
                self.apply(fx, ctx);
            }
        }
    }
}

impl Handler<ControlCall> for CallActor {
    type Result = ResponseActFuture<Self, Result<(), CcError>>;

    fn handle(&mut self, msg: ControlCall, ctx: &mut Self::Context) -> Self::Result {
        let now = self.env.now_ms();
        let agent = msg.agent;
        if msg.call != self.call.id {
            let err = CcError::NotYourCall {
                agent,
                call: msg.call,
            };
            return Box::pin(actix::fut::ready(Err(err)));
        }
        let fx = match msg.action {
            CallAction::Hold => self.call.hold(&agent, now),
            CallAction::Resume => self.call.resume(&agent, now),
            CallAction::Mute => self.call.mute(&agent, true, now),
            CallAction::Unmute => self.call.mute(&agent, false, now),
            CallAction::HangUp => self.call.hang_up(&agent, now),
            CallAction::CompleteConsult => self.call.complete_consult(&agent, now),
            CallAction::ConferenceConsult => self.call.conference_consult(&agent, now),
            CallAction::CancelConsult => self.call.cancel_consult(&agent, now),
            CallAction::DropParty { target } => {
                let fx = self.call.drop_party(&agent, &target, now);
                if fx.is_ok() {
                    info!(call_id = %self.call.id, agent_id = %agent, dropped = %target, "Agent dropped from the conference.");
                }
                fx
            }
            CallAction::WrapUpCode { code } => {
                return Box::pin(actix::fut::ready(self.wrap_up_code(agent, code, ctx)));
            }
            CallAction::TransferToQueue { queue } => match self.env.directory.queues.get(&queue) {
                Some(q) => self.call.transfer_to_queue(&agent, q.rules.clone(), now),
                None => return Box::pin(actix::fut::ready(Err(CcError::UnknownQueue(queue)))),
            },
            CallAction::TransferToAgent { target } => {
                let purpose = OfferPurpose::Transfer;
                return self.reserve_then(agent, target, purpose, Call::transfer_to_agent, ctx);
            }
            CallAction::Consult { target } => {
                return self.reserve_then(agent, target, OfferPurpose::Consult, Call::consult, ctx);
            }
            CallAction::AddToConference { target } => {
                let purpose = OfferPurpose::Conference;
                return self.reserve_then(agent, target, purpose, Call::add_to_conference, ctx);
            }
        };
        let result = fx.map(|fx| self.apply(fx, ctx)).map_err(CcError::from);
        Box::pin(actix::fut::ready(result))
    }
}
