//! QueueActor: one per queue. Thin glue around [`Queue`]: receives calls and
//! agent availability pushes, dispatches, asks agents for reservations,
//! hands granted agents to the calls, and holds a sticky customer's call for
//! its own agent (a timer ends the hold). One timer follows the queue's step
//! schedule: when a waiting call's escalation step is due it widens and the
//! queue dispatches again.

use super::estimate::WaitEstimate;
use super::limits::{Limits, Staffed};
use super::needs::CallNeeds;
use super::skills::SkillIndex;
use super::{AnswerAction, Queue, ReadyInfo};
use crate::agent::actor::{OfferEnded, ReserveForQueue};
use crate::agent::{OfferOutcome, OfferPurpose};
use crate::call::actor::{CallActor, OfferCall, TurnedAway};
use crate::config::QueueConfig;
use crate::crm::CallbackReason;
use crate::durable::StateRecord;
use crate::env::{Env, SharedEnv};
use crate::events::QueueView;
use crate::ids::{AgentId, CallId, OfferToken};
use actix::prelude::*;
use std::collections::HashMap;
use std::time::Duration;
use tracing::{debug, info, warn};

/// Mailbox capacity of a queue actor: it receives every push of its members.
pub const QUEUE_MAILBOX_CAPACITY: usize = 4096;

/// How long after its offer's deadline (offer timeout plus lease grace) a
/// call that comes back to the queue still counts as a rejoin, not a new
/// arrival, for the queue's limits.
pub const REJOIN_SLACK_MS: u64 = 5_000;

/// The limits a queue actor for `queue` starts with.
fn limits_of(env: &SharedEnv, queue: &Queue) -> Limits {
    let config = env
        .config
        .queue(queue.id.as_str())
        .map(|q| q.limits.clone());
    Limits::new(config.unwrap_or_default())
}

/// A call joins the queue (or rejoins after a redirect).
#[derive(Message)]
#[rtype(result = "()")]
pub struct EnqueueCall {
    /// The call.
    pub call: CallId,
    /// Its actor.
    pub addr: Addr<CallActor>,
    /// Priority (higher first).
    pub priority: u8,
    /// When the call took its place in line (wall ms): kept through failed
    /// offers and overflows, so the call rejoins at its place.
    pub since_ms: u64,
    /// Agents whose offer of it failed: offered it again after the others.
    pub tried: Vec<AgentId>,
    /// The caller's number: a sticky customer's call waits for its agent.
    pub ani: String,
    /// Its own required skills and when its stint in this queue started
    /// (aging, escalation).
    pub needs: CallNeeds,
}

/// A call leaves the queue (abandoned, timed out).
#[derive(Message)]
#[rtype(result = "()")]
pub struct DequeueCall {
    /// The call.
    pub call: CallId,
}

/// A member became Ready (pushed by the agent).
#[derive(Message)]
#[rtype(result = "()")]
pub struct AgentAvailable {
    /// The agent.
    pub agent: AgentId,
    /// Its routing keys.
    pub info: ReadyInfo,
}

/// A member left Ready (pushed by the agent).
#[derive(Message)]
#[rtype(result = "()")]
pub struct AgentUnavailable {
    /// The agent.
    pub agent: AgentId,
}

/// An agent answered a reservation request.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReservationAnswered {
    /// The agent.
    pub agent: AgentId,
    /// The call asked for.
    pub call: CallId,
    /// The lease's token.
    pub token: OfferToken,
    /// Yes or no.
    pub granted: bool,
}

/// The PBX link went down (`up = false`: hold every call, offer nothing)
/// or came back (dispatch what waits). From the registry.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PbxLinkChanged {
    /// Whether the link is up.
    pub up: bool,
}

/// A reload changed this queue (`Some`: its new settings) or removed it
/// (`None`). The queue moves to the newest [`crate::env::Env`] either way;
/// a removed queue stops if it holds no call (the registry refuses to
/// remove a queue in which calls wait; one that joined in the same instant
/// leaves by its max wait, as the queue has no members any more).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reconfigure {
    /// The queue's reloaded settings; `None` when the reload removed it.
    pub config: Option<QueueConfig>,
    /// Its members' reloaded skill levels.
    pub skills: SkillIndex,
}

/// How many members are there (from the registry, on every change).
#[derive(Message)]
#[rtype(result = "()")]
pub struct QueueStaffed(pub Staffed);

/// Where a waiting call stands, for its announcement (`None`: the call
/// does not wait here).
#[derive(Message)]
#[rtype(result = "Option<crate::call::Place>")]
pub struct GetPlace {
    /// The call.
    pub call: CallId,
}

/// Read the queue's view.
#[derive(Message)]
#[rtype(result = "QueueView")]
pub struct GetQueue;

/// A member is held back from routing (backing off, cooling off) or no
/// longer is (`held: None`); pushed by the agent when that changes, so an
/// offer's explanation can name who was skipped ([`super::explain`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct AgentHeldBack {
    /// The agent.
    pub agent: AgentId,
    /// Why and until when, or `None` when it is not held back any more.
    pub held: Option<super::explain::HeldBack>,
}

/// The actor.
pub struct QueueActor {
    /// Shared ports and directory.
    env: SharedEnv,
    /// The pure queue.
    queue: Queue,
    /// Actors of the calls the queue knows.
    calls: HashMap<CallId, Addr<CallActor>>,
    /// False while the PBX link is down: an offer could not ring, and a
    /// failed one must not count against the agent, so nothing is offered.
    pbx_link_up: bool,
    /// The escalation timer armed, and for when: re-armed only when an
    /// earlier step becomes due.
    step_timer: Option<(u64, SpawnHandle)>,
    /// Maximum length and staffing rules ([`super::limits`]).
    limits: Limits,
    /// Recent departures to agents: the expected wait announced.
    estimate: WaitEstimate,
    /// Members held back from routing now, as their agents pushed it.
    held_back: HashMap<AgentId, super::explain::HeldBack>,
}

impl QueueActor {
    /// A queue actor around `queue`.
    pub fn new(env: SharedEnv, queue: Queue) -> Self {
        let limits = limits_of(&env, &queue);
        Self {
            env,
            queue,
            calls: HashMap::new(),
            pbx_link_up: true,
            step_timer: None,
            limits,
            estimate: WaitEstimate::default(),
            held_back: HashMap::new(),
        }
    }

    /// A queue rebuilt from its durable line: `waiting` in routing order,
    /// each with its restored actor, place, tried agents, caller (a sticky
    /// customer's call is held again while its wait lasts) and needs (the
    /// escalation steps its wait reached apply again when it starts). It
    /// offers nothing until the registry says the PBX is reconciled (link
    /// up), so no caller who hung up while edgecc was down rings an agent.
    pub fn restored(env: SharedEnv, queue: Queue, waiting: Vec<EnqueueCall>) -> Self {
        let limits = limits_of(&env, &queue);
        let mut actor = Self {
            env,
            queue,
            calls: HashMap::new(),
            pbx_link_up: false,
            step_timer: None,
            limits,
            estimate: WaitEstimate::default(),
            held_back: HashMap::new(),
        };
        for msg in waiting {
            actor.join(msg);
        }
        actor
    }

    /// A call joins the line, held for its own agent when it is a sticky
    /// customer's; answers the end of the hold (its timer is the caller's).
    fn join(&mut self, msg: EnqueueCall) -> Option<(CallId, u64)> {
        let hold = crate::sticky::hold(
            &self.env,
            &self.queue.id,
            &msg.ani,
            msg.since_ms,
            &msg.tried,
        );
        self.calls.insert(msg.call.clone(), msg.addr);
        self.queue.enqueue(
            msg.call.clone(),
            msg.priority,
            msg.since_ms,
            msg.tried,
            msg.needs,
        );
        let hold = hold?;
        let until_ms = hold.until_ms;
        self.queue
            .hold_for(&msg.call, hold.agent, until_ms)
            .then_some((msg.call, until_ms))
    }

    /// Ends `call`'s hold at `until_ms`, then dispatches.
    fn end_hold_at(&self, call: CallId, until_ms: u64, ctx: &mut Context<Self>) {
        let wait = until_ms.saturating_sub(self.env.now_ms());
        ctx.run_later(Duration::from_millis(wait), move |act, ctx| {
            if act.queue.end_hold(&call, until_ms) {
                debug!(queue_id = %act.queue.id, call_id = %call, "Own agent's wait over; any agent may take the call.");
                act.dispatch(ctx);
            }
        });
    }

    /// Applies the escalation steps due now and arms the timer for the
    /// next one (if earlier than the one armed).
    fn escalate(&mut self, ctx: &mut Context<Self>) {
        let now = self.env.now_ms();
        let widened = self.queue.escalate_due(now);
        if widened > 0 {
            debug!(queue_id = %self.queue.id, calls = widened, "Escalation step reached.");
        }
        let Some(due) = self.queue.next_step_due_ms() else {
            return;
        };
        if let Some((armed, handle)) = self.step_timer {
            if armed <= due {
                return;
            }
            ctx.cancel_future(handle);
        }
        let delay = Duration::from_millis(due.saturating_sub(now));
        let handle = ctx.run_later(delay, |act, ctx| {
            act.step_timer = None;
            act.escalate(ctx);
            act.dispatch(ctx);
        });
        self.step_timer = Some((due, handle));
    }

    /// Turns `call` away for `reason`: out of the line, and told so (it
    /// goes where a timed-out call goes).
    fn turn_away(&mut self, call: &CallId, addr: &Addr<CallActor>, reason: CallbackReason) {
        info!(queue_id = %self.queue.id, call_id = %call, reason = ?reason, "Call turned away by the queue's limits.");
        self.queue.remove(call);
        self.calls.remove(call);
        addr.do_send(TurnedAway {
            queue: self.queue.id.clone(),
            reason,
        });
    }

    /// Persists the waiting line if `before` (its length before the
    /// handler) shows it changed.
    fn persist_if_changed(&self, before: usize) {
        if self.queue.waiting_len() != before {
            self.env.persist(|| StateRecord::QueueOrder {
                queue: self.queue.id.clone(),
                waiting: self.queue.waiting_calls(),
            });
        }
    }

    /// Why `call` went to the agent that just granted it, stamped now.
    fn explain(&mut self, call: &CallId) -> Option<Box<super::explain::RoutingExplanation>> {
        let mut e = self.queue.take_explanation(call)?;
        e.stamp(self.env.now_ms(), self.held_back.values());
        Some(Box::new(e))
    }

    fn dispatch(&mut self, ctx: &mut Context<Self>) {
        if !self.pbx_link_up {
            return;
        }
        for ask in self.queue.dispatch() {
            let (Some(agent), Some(call_addr)) = (
                self.env.directory.agents.get(&ask.agent),
                self.calls.get(&ask.call),
            ) else {
                continue;
            };
            agent.addr.do_send(ReserveForQueue {
                call: ask.call,
                call_addr: call_addr.clone(),
                token: self.env.mint_token(),
                queue: self.queue.id.clone(),
                reply_to: ctx.address().recipient(),
            });
        }
    }
}

impl Actor for QueueActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(QUEUE_MAILBOX_CAPACITY);
        self.escalate(ctx);
        // Holds of a restored line.
        for (call, hold) in self.queue.holds() {
            self.end_hold_at(call, hold.until_ms, ctx);
        }
    }
}

impl Handler<EnqueueCall> for QueueActor {
    type Result = ();

    fn handle(&mut self, msg: EnqueueCall, ctx: &mut Self::Context) {
        debug!(queue_id = %self.queue.id, call_id = %msg.call, "Call queued.");
        let before = self.queue.waiting_len();
        if !self.queue.knows(&msg.call) {
            if let Err(reason) = self.limits.admit(&msg.call, before) {
                return self.turn_away(&msg.call, &msg.addr, reason);
            }
        }
        if let Some((call, until_ms)) = self.join(msg) {
            self.end_hold_at(call, until_ms, ctx);
        }
        self.escalate(ctx);
        self.persist_if_changed(before);
        self.dispatch(ctx);
    }
}

impl Handler<DequeueCall> for QueueActor {
    type Result = ();

    fn handle(&mut self, msg: DequeueCall, _ctx: &mut Self::Context) {
        let before = self.queue.waiting_len();
        self.queue.remove(&msg.call);
        self.calls.remove(&msg.call);
        self.persist_if_changed(before);
    }
}

impl Handler<AgentAvailable> for QueueActor {
    type Result = ();

    fn handle(&mut self, msg: AgentAvailable, ctx: &mut Self::Context) {
        self.queue.agent_available(msg.agent, &msg.info);
        self.dispatch(ctx);
    }
}

impl Handler<PbxLinkChanged> for QueueActor {
    type Result = ();

    fn handle(&mut self, msg: PbxLinkChanged, ctx: &mut Self::Context) {
        if self.pbx_link_up != msg.up {
            debug!(queue_id = %self.queue.id, up = msg.up, "Routing follows the PBX link.");
        }
        self.pbx_link_up = msg.up;
        self.dispatch(ctx);
    }
}

impl Handler<AgentUnavailable> for QueueActor {
    type Result = ();

    fn handle(&mut self, msg: AgentUnavailable, _ctx: &mut Self::Context) {
        self.queue.agent_unavailable(&msg.agent);
    }
}

impl Handler<ReservationAnswered> for QueueActor {
    type Result = ();

    fn handle(&mut self, msg: ReservationAnswered, ctx: &mut Self::Context) {
        let before = self.queue.waiting_len();
        let action = self
            .queue
            .reservation_answered(&msg.agent, &msg.call, msg.granted);
        if self.queue.waiting_len() < before {
            self.estimate.departed(self.env.now_ms());
        }
        let explanation = match action {
            AnswerAction::Offer => self.explain(&msg.call),
            _ => None,
        };
        let agent = self.env.directory.agents.get(&msg.agent);
        match (action, agent) {
            (AnswerAction::Offer, Some(agent)) => match self.calls.get(&msg.call) {
                Some(addr) => {
                    let t = &self.env.config.timers;
                    let window = t.offer_timeout_ms + t.offer_lease_grace_ms + REJOIN_SLACK_MS;
                    self.limits
                        .offered(msg.call.clone(), self.env.now_ms(), window);
                    addr.do_send(OfferCall {
                        contact: agent.contact.clone(),
                        token: msg.token,
                        purpose: OfferPurpose::Queue(self.queue.id.clone()),
                        ring_all: self.queue.strategy == crate::config::Strategy::RingAll,
                        explanation,
                    })
                }
                None => agent.addr.do_send(OfferEnded {
                    call: msg.call.clone(),
                    token: msg.token,
                    outcome: OfferOutcome::Withdrawn,
                }),
            },
            (AnswerAction::Release, Some(agent)) => agent.addr.do_send(OfferEnded {
                call: msg.call.clone(),
                token: msg.token,
                outcome: OfferOutcome::Withdrawn,
            }),
            _ => {}
        }
        if !self.queue.knows(&msg.call) {
            self.calls.remove(&msg.call);
        }
        self.persist_if_changed(before);
        self.dispatch(ctx);
    }
}

impl Handler<Reconfigure> for QueueActor {
    type Result = ();

    fn handle(&mut self, msg: Reconfigure, ctx: &mut Self::Context) {
        self.env = Env::latest(&self.env);
        match msg.config {
            Some(config) => {
                self.queue.reconfigure(&config, msg.skills);
                self.limits.reconfigure(config.limits);
                self.escalate(ctx);
                self.dispatch(ctx);
            }
            None if self.calls.is_empty() => {
                info!(queue_id = %self.queue.id, "Queue removed by a reload; it stops.");
                ctx.stop();
            }
            None => warn!(
                queue_id = %self.queue.id,
                calls = self.calls.len(),
                "Queue removed by a reload while it holds calls; they leave by their max wait."
            ),
        }
    }
}

impl Handler<QueueStaffed> for QueueActor {
    type Result = ();

    fn handle(&mut self, msg: QueueStaffed, _ctx: &mut Self::Context) {
        self.limits.set_staffed(msg.0);
        if !self.limits.must_empty() {
            return;
        }
        let before = self.queue.waiting_len();
        for call in self.queue.waiting_calls() {
            if let Some(addr) = self.calls.get(&call).cloned() {
                self.turn_away(&call, &addr, CallbackReason::QueueUnstaffed);
            }
        }
        self.persist_if_changed(before);
    }
}

impl Handler<GetPlace> for QueueActor {
    type Result = Option<crate::call::Place>;

    fn handle(&mut self, msg: GetPlace, _ctx: &mut Self::Context) -> Self::Result {
        let position = self.queue.position(&msg.call)?;
        Some(crate::call::Place {
            position,
            wait_estimate_ms: self.estimate.wait_ms(position, self.env.now_ms()),
        })
    }
}

impl Handler<AgentHeldBack> for QueueActor {
    type Result = ();

    fn handle(&mut self, msg: AgentHeldBack, _ctx: &mut Self::Context) {
        match msg.held {
            Some(h) => self.held_back.insert(msg.agent, h),
            None => self.held_back.remove(&msg.agent),
        };
    }
}

impl Handler<GetQueue> for QueueActor {
    type Result = MessageResult<GetQueue>;

    fn handle(&mut self, _msg: GetQueue, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(QueueView {
            queue: self.queue.id.clone(),
            waiting: self.queue.waiting_calls(),
            ready: self.queue.ready_agents(),
            wait_ms: Vec::new(),
            answered: Default::default(),
        })
    }
}
