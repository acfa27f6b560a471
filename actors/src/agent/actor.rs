//! AgentActor: one per agent. Thin glue around [`Agent`]: it arbitrates its
//! own reservation (two queues asking at once get one yes and one no), pushes
//! Ready / not Ready to its queues' indexes (a backing-off agent is Ready
//! but not pushed), owns the wrap-up, reject-delay, back-off, cooling-off
//! and lease timers, and publishes its view to the registry. It is the one
//! owner of the agent's time in state and desktop presence (with the grace
//! timer after the last desktop closes), and the arbiter of which call is
//! the agent's: a desktop's accept, reject or call control names a call, and
//! the agent refuses one that is not its own before forwarding the rest to
//! the call's actor.

use super::presence::{Resume, SavedPresence};
use super::{
    Agent, AgentError, AgentSettings, AgentState, NotReadyReason, OfferOutcome, OfferPurpose,
    Presence, SystemReason,
};
use crate::call::actor::{CallAction, CallActor, ControlCall, SettleOffer};
use crate::call::AgentContact;
use crate::durable::StateRecord;
use crate::env::{Env, SharedEnv};
use crate::error::CcError;
use crate::events::AgentView;
use crate::ids::{AgentId, CallId, OfferToken, QueueId};
use crate::queue::actor::{AgentAvailable, AgentHeldBack, AgentUnavailable, ReservationAnswered};
use crate::queue::explain::{HeldBack, HeldBackReason};
use crate::queue::weight::{weights_differ, WeighedAsks};
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

/// What an agent's desktop may do to a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallCommand {
    /// Nothing: only check that the call is the agent's.
    Check,
    /// Accept the offer.
    Accept,
    /// Reject the offer.
    Reject,
    /// Act on the connected (or wrapped-up) call.
    Control(CallAction),
}

/// The desktop acts on a call. The agent is the arbiter of what is its own:
/// a named call must be its current offer or call, else
/// [`CcError::NotYourCall`]; `None` means whichever call it is on now.
#[derive(Message)]
#[rtype(result = "Result<(), CcError>")]
pub struct ActOnCall {
    /// The call the desktop names (`None`: the agent's current one).
    pub call: Option<CallId>,
    /// What to do.
    pub command: CallCommand,
}

/// The actor of the agent's outbound call runs (the registry starts it once
/// the agent agreed to dial): controls go to it from now on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct OutboundStarted {
    /// The call.
    pub call: CallId,
    /// Its actor.
    pub call_addr: Addr<CallActor>,
}

/// A desktop of the agent opened or closed its event stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DesktopEvent {
    /// One more desktop is connected.
    Connected,
    /// One desktop closed; when none is left and none comes back within
    /// `grace_ms`, the agent leaves routing ([`Agent::desktop_gone`]).
    Disconnected {
        /// The grace, from the HTTP settings.
        grace_ms: u64,
    },
}

/// A desktop of the agent opened or closed (from the HTTP layer).
#[derive(Message)]
#[rtype(result = "()")]
pub struct DesktopChanged(pub DesktopEvent);

/// The desktops of a restored system may now reconnect (the HTTP layer
/// listens): an agent whose desktop was connected at the kill waits
/// `grace_ms` from now for it, then takes it as gone since the restart.
#[derive(Message, Clone, Copy)]
#[rtype(result = "()")]
pub struct AwaitDesktops {
    /// The desktop grace, from the HTTP settings.
    pub grace_ms: u64,
}

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
    /// The call's queue, whose wrap-up codes apply (`None`: never queued).
    pub queue: Option<QueueId>,
}

/// The call recorded a wrap-up code of the agent's (from the call): a
/// required code is no longer owed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WrapUpCodeRecorded {
    /// The call.
    pub call: CallId,
}

/// The agent starts an outbound call (only from Not Ready).
#[derive(Message)]
#[rtype(result = "Result<(), AgentError>")]
pub struct BeginOutbound {
    /// The new call.
    pub call: CallId,
}

/// A reload: the agent moves to the newest [`crate::env::Env`] and takes
/// `settings`. A Ready agent leaves the queues it is no longer a member of
/// and pushes itself to its queues again (new members join the index, a
/// changed strategy re-keys it).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reconfigure {
    /// The agent's reloaded timers and rules.
    pub settings: AgentSettings,
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
    /// The last call the agent was on, with its actor: a wrap-up code sent
    /// for it after the wrap-up ended is still recorded while the ended
    /// call's actor lingers.
    last_call: Option<(CallId, Addr<CallActor>)>,
    /// Whether the queues currently have the agent as Ready.
    pushed_ready: bool,
    /// The state name and call time in state is measured against
    /// ([`super::AgentState::time_key`]).
    time_key: TimeKey,
    /// When that state began (wall ms).
    state_since_ms: u64,
    /// Desktops connected now (a browser may have two tabs open).
    desktops: u32,
    /// Whether any desktop is connected, and since when.
    presence: Presence,
    /// Bumped at every presence change: a grace timer acts only if nothing
    /// changed since it started.
    presence_epoch: u64,
    /// Rebuilt from the durable state: `started` pushes its availability
    /// and re-arms its timers.
    restored: bool,
    /// Queue requests gathered while Ready, answered by queue weight once
    /// the round is in (only when the agent's queues weigh differently).
    weighed: WeighedAsks<ReserveForQueue>,
    /// What the queues were last told of the agent being held back from
    /// routing (back-off, cooling-off), for their offers' explanations.
    pushed_held: Option<HeldBack>,
    /// Times the agent's states for its history intervals
    /// ([`crate::cdr::agent`]); a cell because views persist from `&self`.
    activity: std::cell::RefCell<crate::cdr::agent::ActivityTracker>,
    /// What the restore left pending about the desktop (a reconnect
    /// awaited, a grace to finish; see [`super::presence`]).
    desktop_resume: Resume,
}

/// The state name, call and Not Ready reason time in state is measured
/// against ([`super::AgentState::time_key`]).
type TimeKey = (&'static str, Option<CallId>, Option<NotReadyReason>);

impl AgentActor {
    /// A logged-out agent.
    pub fn new(env: SharedEnv, id: AgentId, settings: AgentSettings) -> Self {
        let now = env.now_ms();
        Self {
            env,
            agent: Agent::new(id, settings),
            call_addr: None,
            last_call: None,
            pushed_ready: false,
            time_key: (super::AgentState::LoggedOut.name(), None, None),
            state_since_ms: now,
            desktops: 0,
            presence: Presence::Disconnected { since_ms: now },
            presence_epoch: 0,
            restored: false,
            weighed: WeighedAsks::default(),
            pushed_held: None,
            activity: Default::default(),
            desktop_resume: Resume::Nothing,
        }
    }

    /// An agent rebuilt from its durable record; `call_addr` is the actor
    /// of the call it is reserved for or on (restored first). A Reserved
    /// agent keeps its lease until the PBX reconcile resolves the offer (or
    /// the lease expires); a Talking one stays on its call.
    pub fn restored(env: SharedEnv, agent: Agent, call_addr: Option<Addr<CallActor>>) -> Self {
        let now = env.now_ms();
        let (name, call, reason) = agent.state.time_key();
        let time_key = (name, call.cloned(), reason.cloned());
        // Logged out: since the persisted logout, not since this start.
        let logged_out = agent
            .logged_out_ms
            .filter(|_| agent.state == AgentState::LoggedOut);
        let saved_since = agent
            .state_since
            .as_ref()
            .and_then(|s| s.start_of(&agent.state));
        let state_since_ms = agent
            .state
            .started_ms()
            .or(logged_out)
            .or(saved_since)
            .unwrap_or(now);
        let agent_state = agent.state.clone();
        // The desktop as it was saved: a restart is not a close.
        let (presence, desktop_resume) = super::presence::resume(agent.desktop.as_ref(), now);
        Self {
            env,
            last_call: agent_call_addr(&agent, &call_addr),
            agent,
            call_addr,
            pushed_ready: false,
            time_key,
            state_since_ms,
            // No desktop is connected to a new process: they reconnect
            // (see `desktop_resume`).
            desktops: 0,
            presence,
            presence_epoch: 0,
            restored: true,
            weighed: WeighedAsks::default(),
            pushed_held: None,
            // The state in progress at the kill goes on being timed from
            // its start, so its history interval is whole.
            activity: std::cell::RefCell::new(crate::cdr::agent::ActivityTracker::resumed(
                &agent_state,
                state_since_ms,
            )),
            desktop_resume,
        }
    }

    /// What subscribers see of the agent.
    pub fn view(&self) -> AgentView {
        AgentView {
            agent: self.agent.id.clone(),
            state: self.agent.state.clone(),
            pending: self.agent.pending.clone(),
            stats: self.agent.stats.clone(),
            state_since_ms: self.state_since_ms,
            presence: self.presence,
            logged_out_ms: self.agent.logged_out_ms,
        }
    }

    /// Restarts the time in state when the state's name or call changed: at
    /// the state's own start when it records one, else now.
    fn track_time_in_state(&mut self, now_ms: u64) {
        let (name, call, reason) = self.agent.state.time_key();
        let known = &self.time_key;
        if (name, call, reason) != (known.0, known.1.as_ref(), known.2.as_ref()) {
            self.time_key = (name, call.cloned(), reason.cloned());
            self.state_since_ms = self.agent.state.started_ms().unwrap_or(now_ms);
            self.agent.state_since = Some(super::since::StateSince::of(
                &self.agent.state,
                self.state_since_ms,
            ));
            if self.agent.state == AgentState::LoggedOut {
                self.agent.logged_out_ms = Some(self.state_since_ms);
            }
        }
    }

    /// After any transition: views, queue index pushes, timers.
    fn after(&mut self, epoch_before: u64, ctx: &mut Context<Self>) {
        if self.agent.epoch == epoch_before {
            return;
        }
        let now = self.env.now_ms();
        self.track_time_in_state(now);
        self.publish(ctx);
    }

    /// Pushes availability to the queues, arms the state's timer, persists
    /// the agent and publishes its view.
    fn publish(&mut self, ctx: &mut Context<Self>) {
        let ready = self.agent.routable(self.env.now_ms());
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
                score_rank: self.agent.stats.score.rank(),
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
        self.push_held_back();
        if let Some(last) = agent_call_addr(&self.agent, &self.call_addr) {
            self.last_call = Some(last);
        }
        if self.agent.state.call().is_none() {
            self.call_addr = None;
        }
        let epoch = self.agent.epoch;
        match &self.agent.state {
            super::AgentState::WrapUp { until_ms, .. } => {
                self.settle_at(*until_ms, ctx, move |act, now| {
                    if act.agent.wrap_up_elapsed(epoch, now) {
                        debug!(agent_id = %act.agent.id, "Wrap-up ended.");
                    }
                });
            }
            super::AgentState::Reserved {
                token,
                lease_until_ms,
                ..
            } => {
                let token = *token;
                self.settle_at(*lease_until_ms, ctx, move |act, now| {
                    if act.agent.lease_expired(token, now) {
                        warn!(agent_id = %act.agent.id, token = %token, "Offer lease expired; agent freed.");
                    }
                });
            }
            _ => {}
        }
        self.arm_backoff_timers(ctx);
        self.changed();
    }

    /// At `until_ms` (at once if past), runs `check` with the time then and
    /// settles what it changed ([`Self::after`]): the one shape of the
    /// agent's deadlines (wrap-up, offer lease, cooling-off).
    fn settle_at(
        &self,
        until_ms: u64,
        ctx: &mut Context<Self>,
        check: impl FnOnce(&mut Self, u64) + 'static,
    ) {
        let delay = Duration::from_millis(until_ms.saturating_sub(self.env.now_ms()));
        ctx.run_later(delay, move |act, ctx| {
            let before = act.agent.epoch;
            let now = act.env.now_ms();
            check(act, now);
            act.after(before, ctx);
        });
    }

    /// Arms the end of a back-off (Ready but not pushed) or of a timed
    /// cooling-off, for the current epoch.
    fn arm_backoff_timers(&mut self, ctx: &mut Context<Self>) {
        let now = self.env.now_ms();
        let epoch = self.agent.epoch;
        let backoff = &self.agent.stats.backoff;
        if self.agent.is_ready() && backoff.holds(now) {
            let delay = Duration::from_millis(backoff.until_ms - now);
            ctx.run_later(delay, move |act, ctx| {
                let now = act.env.now_ms();
                if act.agent.epoch == epoch && act.agent.backoff_elapsed(now) {
                    debug!(agent_id = %act.agent.id, "Back-off ended; agent offered calls again.");
                    act.publish(ctx);
                }
            });
        }
        let cooling = NotReadyReason::System(SystemReason::CoolingOff);
        match (&self.agent.state, backoff.cooling_off_until_ms) {
            (AgentState::NotReady { reason }, Some(until)) if *reason == cooling => {
                self.settle_at(until, ctx, move |act, now| {
                    if act.agent.cooling_off_elapsed(epoch, now) {
                        info!(agent_id = %act.agent.id, "Cooling-off ended; agent Ready again.");
                    }
                });
            }
            _ => {}
        }
    }

    /// Tells the agent's queues when it becomes or stops being held back
    /// from routing (backing off while Ready, cooling off).
    fn push_held_back(&mut self) {
        let env = self.env.clone();
        let Some(handle) = env.directory.agents.get(&self.agent.id) else {
            return;
        };
        let backoff = &self.agent.stats.backoff;
        let cooling = NotReadyReason::System(SystemReason::CoolingOff);
        let held = match &self.agent.state {
            AgentState::Ready { .. } if backoff.holds(self.env.now_ms()) => Some(HeldBack {
                agent: self.agent.id.clone(),
                reason: HeldBackReason::BackingOff,
                until_ms: Some(backoff.until_ms),
            }),
            AgentState::NotReady { reason } if *reason == cooling => Some(HeldBack {
                agent: self.agent.id.clone(),
                reason: HeldBackReason::CoolingOff,
                until_ms: backoff.cooling_off_until_ms,
            }),
            _ => None,
        };
        if held == self.pushed_held {
            return;
        }
        for q in &handle.queues {
            if let Some(qh) = env.directory.queues.get(q) {
                qh.addr.do_send(AgentHeldBack {
                    agent: self.agent.id.clone(),
                    held: held.clone(),
                });
            }
        }
        self.pushed_held = held;
    }

    /// Persists the agent and publishes its view.
    fn changed(&self) {
        let now = self.env.now_ms();
        let left = self
            .activity
            .borrow_mut()
            .observe(&self.agent.id, &self.agent.state, now);
        if let Some(interval) = left {
            self.env.persist(|| StateRecord::AgentInterval(interval));
        }
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

/// The agent's current call with its actor, if both are known.
fn agent_call_addr(
    agent: &Agent,
    call_addr: &Option<Addr<CallActor>>,
) -> Option<(CallId, Addr<CallActor>)> {
    Some((agent.state.call()?.clone(), call_addr.clone()?))
}

/// A wrap-up code for the agent's last call, sent after its wrap-up ended
/// (the desktop saved it late, or ended the wrap-up first): recorded while
/// the ended call's actor lingers (it keeps the interaction's update
/// order); once it stopped, the answer says the wrap-up is over.
fn late_wrap_up_code(
    agent: AgentId,
    call: CallId,
    code: String,
    addr: Addr<CallActor>,
) -> ResponseFuture<Result<(), CcError>> {
    let control = ControlCall {
        agent: agent.clone(),
        call: call.clone(),
        action: CallAction::WrapUpCode { code },
    };
    Box::pin(async move {
        match addr.send(control).await {
            Ok(Ok(())) => {
                info!(agent_id = %agent, call_id = %call, "Wrap-up code recorded after the wrap-up ended.");
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(CcError::WrapUpOver { call }),
        }
    })
}

impl Actor for AgentActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(AGENT_MAILBOX_CAPACITY);
        if !self.restored {
            return;
        }
        self.publish(ctx);
        if let Resume::GraceUntil(at_ms) = self.desktop_resume {
            self.desktop_resume = Resume::Nothing;
            self.arm_desktop_grace(at_ms, at_ms, ctx);
        }
        if self.agent.state
            == (super::AgentState::NotReady {
                reason: NotReadyReason::System(SystemReason::RejectDelay),
            })
        {
            // The delay runs from its saved start (see `super::since`): what
            // is left of it, at once if it passed while edgecc was down or
            // its start is unknown (an older record).
            let now = self.env.now_ms();
            let left = self
                .agent
                .state_since
                .as_ref()
                .and_then(|s| s.start_of(&self.agent.state))
                .map(|start| (start + self.agent.settings.reject_delay_ms).saturating_sub(now))
                .unwrap_or(0);
            self.schedule_reject_delay(left, ctx);
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
        if self.agent.is_ready() && self.weighs_queues() {
            let weight = self
                .env
                .directory
                .queues
                .get(&msg.queue)
                .map_or(0, |q| q.weight);
            if self.weighed.push(weight, msg) {
                // Answer once every queue woken with this one has asked.
                ctx.run_later(Duration::ZERO, |act, ctx| {
                    for ask in act.weighed.take_in_order() {
                        act.answer_queue(ask, ctx);
                    }
                });
            }
            return;
        }
        self.answer_queue(msg, ctx);
    }
}

impl AgentActor {
    /// Whether the agent's queues weigh differently ([`crate::queue::weight`]).
    fn weighs_queues(&self) -> bool {
        let dir = &self.env.directory;
        let Some(handle) = dir.agents.get(&self.agent.id) else {
            return false;
        };
        weights_differ(
            handle
                .queues
                .iter()
                .filter_map(|q| dir.queues.get(q).map(|h| h.weight)),
        )
    }

    /// Grants or refuses a queue's request and answers the queue.
    fn answer_queue(&mut self, msg: ReserveForQueue, ctx: &mut Context<Self>) {
        let before = self.agent.epoch;
        let lease = self.lease_until();
        let now = self.env.now_ms();
        // Backing off: a queue that still had the agent is refused.
        let granted = self.agent.routable(now)
            && self
                .agent
                .reserve(
                    msg.call.clone(),
                    msg.token,
                    OfferPurpose::Queue(msg.queue),
                    lease,
                )
                .is_ok();
        if granted {
            self.agent.offer_alerting(now);
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
        self.agent.offer_alerting(self.env.now_ms());
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

impl Handler<ActOnCall> for AgentActor {
    type Result = ResponseFuture<Result<(), CcError>>;

    fn handle(&mut self, msg: ActOnCall, _ctx: &mut Self::Context) -> Self::Result {
        let agent = self.agent.id.clone();
        let current = self.agent.state.call().cloned();
        let call = match (msg.call, current) {
            (Some(named), Some(current)) if named == current => current,
            (Some(named), _) => {
                if let CallCommand::Control(CallAction::WrapUpCode { code }) = &msg.command {
                    if let Some((_, addr)) = self.last_call.as_ref().filter(|(c, _)| c == &named) {
                        return late_wrap_up_code(agent, named, code.clone(), addr.clone());
                    }
                }
                debug!(agent_id = %agent, call_id = %named, "Desktop named a call that is not the agent's.");
                let err = CcError::NotYourCall { agent, call: named };
                return Box::pin(async move { Err(err) });
            }
            (None, Some(current)) => current,
            (None, None) => {
                let err = match msg.command {
                    CallCommand::Accept | CallCommand::Reject => CcError::NoOffer(agent),
                    CallCommand::Check | CallCommand::Control(_) => CcError::NotOnACall(agent),
                };
                return Box::pin(async move { Err(err) });
            }
        };
        match msg.command {
            CallCommand::Check => Box::pin(async { Ok(()) }),
            CallCommand::Accept => self.settle(true),
            CallCommand::Reject => self.settle(false),
            CallCommand::Control(action) => {
                let addr = self.call_addr.clone();
                Box::pin(async move {
                    let addr = addr.ok_or_else(|| CcError::NotOnACall(agent.clone()))?;
                    let control = ControlCall {
                        agent: agent.clone(),
                        call,
                        action,
                    };
                    // The call's actor stopped (ended and lingered out): the
                    // agent is no longer on a live call.
                    addr.send(control)
                        .await
                        .map_err(|_| CcError::NotOnACall(agent))?
                })
            }
        }
    }
}

impl Handler<OutboundStarted> for AgentActor {
    type Result = ();

    fn handle(&mut self, msg: OutboundStarted, _ctx: &mut Self::Context) {
        if self.agent.state.call() == Some(&msg.call) {
            self.call_addr = Some(msg.call_addr);
        }
    }
}

impl Handler<DesktopChanged> for AgentActor {
    type Result = ();

    fn handle(&mut self, msg: DesktopChanged, ctx: &mut Self::Context) {
        let now = self.env.now_ms();
        match msg.0 {
            DesktopEvent::Connected => {
                self.desktops = self.desktops.saturating_add(1);
                if self.desktops == 1 {
                    // A desktop back after a restart keeps its presence's
                    // start: it was connected all along.
                    if !matches!(self.presence, Presence::Connected { .. }) {
                        self.presence = Presence::Connected { since_ms: now };
                    }
                    self.presence_epoch += 1;
                    self.desktop_resume = Resume::Nothing;
                    self.save_presence(None);
                    self.changed();
                }
            }
            DesktopEvent::Disconnected { grace_ms } => {
                if self.desktops == 0 {
                    return;
                }
                self.desktops -= 1;
                if self.desktops > 0 {
                    return;
                }
                self.presence = Presence::Disconnected { since_ms: now };
                self.presence_epoch += 1;
                let until_ms = now.saturating_add(grace_ms);
                self.save_presence(Some(until_ms));
                self.changed();
                self.arm_desktop_grace(until_ms, now, ctx);
            }
        }
    }
}

impl Handler<AwaitDesktops> for AgentActor {
    type Result = ();

    fn handle(&mut self, msg: AwaitDesktops, ctx: &mut Self::Context) {
        if let Resume::AwaitReconnect { restart_ms } = self.desktop_resume {
            self.desktop_resume = Resume::Nothing;
            if self.desktops == 0 {
                // From now: no desktop could reconnect before the HTTP
                // layer listened.
                let until_ms = self.env.now_ms().saturating_add(msg.grace_ms);
                self.arm_desktop_grace(until_ms, restart_ms, ctx);
            }
        }
    }
}

impl AgentActor {
    /// Records the presence in the agent's saved record (persisted with
    /// its next change), with the grace deadline running, if any.
    fn save_presence(&mut self, grace_until_ms: Option<u64>) {
        self.agent.desktop = Some(SavedPresence {
            presence: self.presence,
            grace_until_ms,
        });
    }

    /// At `at_ms`, unless a desktop connected meanwhile, the desktop is
    /// gone: presence says so (a desktop awaited after a restart, still
    /// shown connected, counts as gone since `gone_since_ms`) and the
    /// agent leaves routing.
    fn arm_desktop_grace(&mut self, at_ms: u64, gone_since_ms: u64, ctx: &mut Context<Self>) {
        let presence_epoch = self.presence_epoch;
        let wait = at_ms.saturating_sub(self.env.now_ms());
        ctx.run_later(Duration::from_millis(wait), move |act, ctx| {
            if act.presence_epoch != presence_epoch || act.desktops > 0 {
                return;
            }
            if let Presence::Connected { .. } = act.presence {
                // Awaited after a restart and not back: closed at the restart.
                act.presence = Presence::Disconnected {
                    since_ms: gone_since_ms,
                };
            }
            act.save_presence(None);
            let before = act.agent.epoch;
            let state = act.agent.state.name();
            if act.agent.desktop_gone() {
                warn!(agent_id = %act.agent.id, state, "Desktop gone past the grace; agent set Not Ready.");
            }
            if act.agent.epoch == before {
                // Only the presence or a pending change: the view still changed.
                act.changed();
            }
            act.after(before, ctx);
        });
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
                let unreachable = NotReadyReason::System(SystemReason::DeviceUnreachable);
                if msg.outcome == OfferOutcome::Refused
                    && matches!(&self.agent.state, AgentState::NotReady { reason } if *reason == unreachable)
                {
                    warn!(agent_id = %self.agent.id, call_id = %msg.call,
                          refusals = self.agent.stats.refusals_in_row,
                          "Device refused offers in a row; agent set Not Ready (device unreachable).");
                }
                let cooling = NotReadyReason::System(SystemReason::CoolingOff);
                if matches!(&self.agent.state, AgentState::NotReady { reason } if *reason == cooling)
                {
                    warn!(agent_id = %self.agent.id, call_id = %msg.call,
                          until_ms = ?self.agent.stats.backoff.cooling_off_until_ms,
                          "Too many offers missed; agent set Not Ready (cooling off).");
                } else if msg.outcome != OfferOutcome::Withdrawn
                    && self.agent.stats.backoff.holds(now)
                {
                    info!(agent_id = %self.agent.id, call_id = %msg.call, outcome = ?msg.outcome,
                          until_ms = self.agent.stats.backoff.until_ms,
                          "Agent backs off; queues skip it until the delay ends.");
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
            Ok(_) => {
                let coding = super::WrapUpCoding::for_queue(&self.env.config, msg.queue);
                self.agent.wrap_up_coding(&msg.call, coding);
                self.after(before, ctx)
            }
            Err(e) => debug!(agent_id = %self.agent.id, error = %e, "Stale call end ignored."),
        }
    }
}

impl Handler<WrapUpCodeRecorded> for AgentActor {
    type Result = ();

    fn handle(&mut self, msg: WrapUpCodeRecorded, _ctx: &mut Self::Context) {
        if self.agent.wrap_up_code_recorded(&msg.call) {
            debug!(agent_id = %self.agent.id, call_id = %msg.call, "Required wrap-up code recorded.");
            self.changed();
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

impl Handler<Reconfigure> for AgentActor {
    type Result = ();

    fn handle(&mut self, msg: Reconfigure, ctx: &mut Self::Context) {
        let latest = Env::latest(&self.env);
        let old = std::mem::replace(&mut self.env, latest);
        self.agent.settings = msg.settings;
        let queues_of = |env: &SharedEnv| {
            env.directory
                .agents
                .get(&self.agent.id)
                .map(|h| h.queues.clone())
                .unwrap_or_default()
        };
        let now_member = queues_of(&self.env);
        if self.pushed_ready {
            for q in queues_of(&old).iter().filter(|q| !now_member.contains(q)) {
                if let Some(qh) = old.directory.queues.get(q) {
                    qh.addr.do_send(AgentUnavailable {
                        agent: self.agent.id.clone(),
                    });
                }
            }
        }
        if self.agent.is_ready() {
            self.publish(ctx);
        } else {
            self.changed();
        }
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
