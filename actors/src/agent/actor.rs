//! AgentActor: one per agent. Thin glue around [`Agent`]: it arbitrates its
//! own reservation (two queues asking at once get one yes and one no), pushes
//! Ready / not Ready to its queues' indexes, owns the wrap-up, reject-delay
//! and lease timers, and publishes its view to the registry.

use super::{
    Agent, AgentError, AgentSettings, NotReadyReason, OfferOutcome, OfferPurpose, SystemReason,
};
use crate::call::actor::{CallActor, SettleOffer};
use crate::call::AgentContact;
use crate::durable::StateRecord;
use crate::env::SharedEnv;
use crate::error::CcError;
use crate::events::AgentView;
use crate::ids::{AgentId, CallId, OfferToken, QueueId};
use crate::queue::actor::{AgentAvailable, AgentUnavailable, ReservationAnswered};
use crate::queue::ReadyInfo;
use crate::registry::AgentChanged;
use actix::prelude::*;
use std::time::Duration;
use tracing::{debug, info, warn};

/// Mailbox capacity of an agent actor (messages beyond wait in senders).
pub const AGENT_MAILBOX_CAPACITY: usize = 64;

/// A state change asked by the agent (or a supervisor, with a system reason).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum StateCommand {
    /// Log in (Not Ready, reason login).
    Login,
    /// Go Ready (ends wrap-up early).
    Ready,
    /// Go Not Ready (pending while busy).
    NotReady {
        /// The reason.
        reason: NotReadyReason,
    },
    /// Log out (pending while on a call).
    Logout,
    /// End wrap-up now.
    EndWrapUp,
}

/// Change the agent's state.
#[derive(Message)]
#[rtype(result = "Result<AgentView, AgentError>")]
pub struct ChangeState(pub StateCommand);

/// Reserve the agent for a queue call; the answer goes to `reply_to`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReserveForQueue {
    /// The call.
    pub call: CallId,
    /// Its actor, to forward desktop accept/reject.
    pub call_addr: Addr<CallActor>,
    /// The lease's token.
    pub token: OfferToken,
    /// The asking queue.
    pub queue: QueueId,
    /// Where the answer goes (the queue's mailbox: keeps order with pushes).
    pub reply_to: Recipient<ReservationAnswered>,
}

/// Reserve the agent for a call-driven offer (direct, transfer, consult,
/// conference); answers with how to ring it.
#[derive(Message)]
#[rtype(result = "Result<AgentContact, AgentError>")]
pub struct ReserveForCall {
    /// The call.
    pub call: CallId,
    /// Its actor.
    pub call_addr: Addr<CallActor>,
    /// The lease's token.
    pub token: OfferToken,
    /// Why.
    pub purpose: OfferPurpose,
}

/// The desktop accepts the current offer.
#[derive(Message)]
#[rtype(result = "Result<(), CcError>")]
pub struct AcceptOffer;

/// The desktop rejects the current offer.
#[derive(Message)]
#[rtype(result = "Result<(), CcError>")]
pub struct RejectOffer;

/// The offer ended without a connection (from the call).
#[derive(Message)]
#[rtype(result = "()")]
pub struct OfferEnded {
    /// The call.
    pub call: CallId,
    /// The offer.
    pub token: OfferToken,
    /// How.
    pub outcome: OfferOutcome,
}

/// The accept is confirmed: records are durable, the agent is talking.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CallConnected {
    /// The call.
    pub call: CallId,
    /// The offer accepted.
    pub token: OfferToken,
}

/// The agent's part in the call ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CallLeft {
    /// The call.
    pub call: CallId,
    /// Wrap-up to apply (queue calls).
    pub wrap_up_ms: Option<u64>,
}

/// The agent starts an outbound call (only from Not Ready).
#[derive(Message)]
#[rtype(result = "Result<(), AgentError>")]
pub struct BeginOutbound {
    /// The new call.
    pub call: CallId,
}

/// Read the agent's view.
#[derive(Message)]
#[rtype(result = "AgentView")]
pub struct GetAgent;

/// The actor.
pub struct AgentActor {
    /// Shared ports and directory.
    env: SharedEnv,
    /// The pure state machine.
    agent: Agent,
    /// The actor of the call the agent is reserved for or on.
    call_addr: Option<Addr<CallActor>>,
    /// Whether the queues currently have the agent as Ready.
    pushed_ready: bool,
    /// Rebuilt from the durable state: `started` pushes its availability
    /// and re-arms its timers.
    restored: bool,
}

impl AgentActor {
    /// A logged-out agent.
    pub fn new(env: SharedEnv, id: AgentId, settings: AgentSettings) -> Self {
        Self {
            env,
            agent: Agent::new(id, settings),
            call_addr: None,
            pushed_ready: false,
            restored: false,
        }
    }

    /// An agent rebuilt from its durable record; `call_addr` is the actor
    /// of the call it is reserved for or on (restored first). A Reserved
    /// agent keeps its lease until the PBX reconcile resolves the offer (or
    /// the lease expires); a Talking one stays on its call.
    pub fn restored(env: SharedEnv, agent: Agent, call_addr: Option<Addr<CallActor>>) -> Self {
        Self {
            env,
            agent,
            call_addr,
            pushed_ready: false,
            restored: true,
        }
    }

    /// What subscribers see of the agent.
    pub fn view(&self) -> AgentView {
        AgentView {
            agent: self.agent.id.clone(),
            state: self.agent.state.clone(),
            pending: self.agent.pending.clone(),
            stats: self.agent.stats.clone(),
        }
    }

    /// After any transition: views, queue index pushes, timers.
    fn after(&mut self, epoch_before: u64, ctx: &mut Context<Self>) {
        if self.agent.epoch == epoch_before {
            return;
        }
        self.publish(ctx);
    }

    /// Pushes availability to the queues, arms the state's timer, persists
    /// the agent and publishes its view.
    fn publish(&mut self, ctx: &mut Context<Self>) {
        let ready = self.agent.is_ready();
        let Some(handle) = self.env.directory.agents.get(&self.agent.id) else {
            return;
        };
        if ready {
            let since_ms = match self.agent.state {
                super::AgentState::Ready { since_ms } => since_ms,
                _ => 0,
            };
            let info = ReadyInfo {
                since_ms,
                calls_handled: self.agent.stats.calls_handled,
                talk_ms_total: self.agent.stats.talk_ms_total,
            };
            for q in &handle.queues {
                if let Some(qh) = self.env.directory.queues.get(q) {
                    qh.addr.do_send(AgentAvailable {
                        agent: self.agent.id.clone(),
                        info: info.clone(),
                    });
                }
            }
        } else if self.pushed_ready {
            for q in &handle.queues {
                if let Some(qh) = self.env.directory.queues.get(q) {
                    qh.addr.do_send(AgentUnavailable {
                        agent: self.agent.id.clone(),
                    });
                }
            }
        }
        self.pushed_ready = ready;
        if self.agent.state.call().is_none() {
            self.call_addr = None;
        }
        let now = self.env.now_ms();
        let epoch = self.agent.epoch;
        match &self.agent.state {
            super::AgentState::WrapUp { until_ms, .. } => {
                let delay = Duration::from_millis(until_ms.saturating_sub(now));
                ctx.run_later(delay, move |act, ctx| {
                    let before = act.agent.epoch;
                    let now = act.env.now_ms();
                    if act.agent.wrap_up_elapsed(epoch, now) {
                        debug!(agent_id = %act.agent.id, "Wrap-up ended.");
                    }
                    act.after(before, ctx);
                });
            }
            super::AgentState::Reserved {
                token,
                lease_until_ms,
                ..
            } => {
                let token = *token;
                let delay = Duration::from_millis(lease_until_ms.saturating_sub(now));
                ctx.run_later(delay, move |act, ctx| {
                    let before = act.agent.epoch;
                    let now = act.env.now_ms();
                    if act.agent.lease_expired(token, now) {
                        warn!(agent_id = %act.agent.id, token = %token, "Offer lease expired; agent freed.");
                    }
                    act.after(before, ctx);
                });
            }
            _ => {}
        }
        self.changed();
    }

    /// Persists the agent and publishes its view.
    fn changed(&self) {
        self.env
            .persist(|| StateRecord::Agent(Box::new(self.agent.clone())));
        self.env.registry.do_send(AgentChanged(self.view()));
    }

    fn schedule_reject_delay(&self, delay_ms: u64, ctx: &mut Context<Self>) {
        let epoch = self.agent.epoch;
        ctx.run_later(Duration::from_millis(delay_ms), move |act, ctx| {
            let before = act.agent.epoch;
            let now = act.env.now_ms();
            act.agent.reject_delay_elapsed(epoch, now);
            act.after(before, ctx);
        });
    }

    fn lease_until(&self) -> u64 {
        let t = &self.env.config.timers;
        self.env.now_ms() + t.offer_timeout_ms + t.offer_lease_grace_ms
    }

    fn current_offer(&self) -> Result<(CallId, OfferToken, Addr<CallActor>), CcError> {
        match (&self.agent.state, &self.call_addr) {
            (super::AgentState::Reserved { call, token, .. }, Some(addr)) => {
                Ok((call.clone(), *token, addr.clone()))
            }
            _ => Err(CcError::NoOffer(self.agent.id.clone())),
        }
    }

    fn settle(&mut self, accept: bool) -> ResponseFuture<Result<(), CcError>> {
        let offer = self.current_offer();
        let agent = self.agent.id.clone();
        Box::pin(async move {
            let (call, token, addr) = offer?;
            addr.send(SettleOffer {
                agent,
                call,
                token,
                accept,
            })
            .await
            .map_err(|e| CcError::Mailbox(e.to_string()))?
        })
    }
}

impl Actor for AgentActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(AGENT_MAILBOX_CAPACITY);
        if !self.restored {
            return;
        }
        self.publish(ctx);
        if self.agent.state
            == (super::AgentState::NotReady {
                reason: NotReadyReason::System(SystemReason::RejectDelay),
            })
        {
            // The delay's deadline is not persisted: it ends now.
            self.schedule_reject_delay(0, ctx);
        }
    }
}

impl Handler<ChangeState> for AgentActor {
    type Result = Result<AgentView, AgentError>;

    fn handle(&mut self, msg: ChangeState, ctx: &mut Self::Context) -> Self::Result {
        let before = self.agent.epoch;
        let now = self.env.now_ms();
        match msg.0 {
            StateCommand::Login => self.agent.login()?,
            StateCommand::Ready => self.agent.set_ready(now)?,
            StateCommand::NotReady { reason } => {
                if let NotReadyReason::Code(code) = &reason {
                    if !self.env.config.has_reason_code(code) {
                        return Err(AgentError::UnknownReasonCode(code.clone()));
                    }
                }
                self.agent.set_not_ready(reason)?
            }
            StateCommand::Logout => self.agent.logout()?,
            StateCommand::EndWrapUp => self.agent.end_wrap_up(now)?,
        }
        info!(agent_id = %self.agent.id, state = self.agent.state.name(), "Agent state changed.");
        if self.agent.epoch == before {
            // Only a pending change: the view still changed.
            self.changed();
        }
        self.after(before, ctx);
        Ok(self.view())
    }
}

impl Handler<ReserveForQueue> for AgentActor {
    type Result = ();

    fn handle(&mut self, msg: ReserveForQueue, ctx: &mut Self::Context) {
        let before = self.agent.epoch;
        let lease = self.lease_until();
        let granted = self
            .agent
            .reserve(
                msg.call.clone(),
                msg.token,
                OfferPurpose::Queue(msg.queue),
                lease,
            )
            .is_ok();
        if granted {
            self.call_addr = Some(msg.call_addr);
        }
        // The view goes out before the answer, so the registry's mirror sees
        // the reservation before the call's offer.
        self.after(before, ctx);
        msg.reply_to.do_send(ReservationAnswered {
            agent: self.agent.id.clone(),
            call: msg.call,
            token: msg.token,
            granted,
        });
    }
}

impl Handler<ReserveForCall> for AgentActor {
    type Result = Result<AgentContact, AgentError>;

    fn handle(&mut self, msg: ReserveForCall, ctx: &mut Self::Context) -> Self::Result {
        let before = self.agent.epoch;
        let lease = self.lease_until();
        self.agent
            .reserve(msg.call, msg.token, msg.purpose, lease)?;
        self.call_addr = Some(msg.call_addr);
        self.after(before, ctx);
        self.env
            .directory
            .agents
            .get(&self.agent.id)
            .map(|h| h.contact.clone())
            .ok_or_else(|| AgentError::NotLoggedIn(self.agent.id.clone()))
    }
}

impl Handler<AcceptOffer> for AgentActor {
    type Result = ResponseFuture<Result<(), CcError>>;

    fn handle(&mut self, _msg: AcceptOffer, _ctx: &mut Self::Context) -> Self::Result {
        self.settle(true)
    }
}

impl Handler<RejectOffer> for AgentActor {
    type Result = ResponseFuture<Result<(), CcError>>;

    fn handle(&mut self, _msg: RejectOffer, _ctx: &mut Self::Context) -> Self::Result {
        self.settle(false)
    }
}

impl Handler<OfferEnded> for AgentActor {
    type Result = ();

    fn handle(&mut self, msg: OfferEnded, ctx: &mut Self::Context) {
        let before = self.agent.epoch;
        let now = self.env.now_ms();
        match self
            .agent
            .offer_ended(&msg.call, msg.token, msg.outcome, now)
        {
            Ok(delay) => {
                if msg.outcome == OfferOutcome::Missed {
                    info!(agent_id = %self.agent.id, call_id = %msg.call, "Offer missed (RONA).");
                }
                self.after(before, ctx);
                if let Some(ms) = delay {
                    self.schedule_reject_delay(ms, ctx);
                }
            }
            Err(e) => debug!(agent_id = %self.agent.id, error = %e, "Stale offer end ignored."),
        }
    }
}

impl Handler<CallConnected> for AgentActor {
    type Result = ();

    fn handle(&mut self, msg: CallConnected, ctx: &mut Self::Context) {
        let before = self.agent.epoch;
        let now = self.env.now_ms();
        match self.agent.connected(&msg.call, msg.token, now) {
            Ok(()) => {
                info!(agent_id = %self.agent.id, call_id = %msg.call, "Call connected to agent.");
                self.after(before, ctx);
            }
            Err(e) => debug!(agent_id = %self.agent.id, error = %e, "Stale connect ignored."),
        }
    }
}

impl Handler<CallLeft> for AgentActor {
    type Result = ();

    fn handle(&mut self, msg: CallLeft, ctx: &mut Self::Context) {
        let before = self.agent.epoch;
        let now = self.env.now_ms();
        match self.agent.left_call(&msg.call, msg.wrap_up_ms, now) {
            Ok(_) => self.after(before, ctx),
            Err(e) => debug!(agent_id = %self.agent.id, error = %e, "Stale call end ignored."),
        }
    }
}

impl Handler<BeginOutbound> for AgentActor {
    type Result = Result<(), AgentError>;

    fn handle(&mut self, msg: BeginOutbound, ctx: &mut Self::Context) -> Self::Result {
        let before = self.agent.epoch;
        let now = self.env.now_ms();
        self.agent.start_outbound(msg.call, now)?;
        self.after(before, ctx);
        Ok(())
    }
}

impl Handler<GetAgent> for AgentActor {
    type Result = MessageResult<GetAgent>;

    fn handle(&mut self, _msg: GetAgent, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.view())
    }
}

/// The reason a supervisor action sets.
pub fn supervisor_reason() -> NotReadyReason {
    NotReadyReason::System(SystemReason::Supervisor)
}
