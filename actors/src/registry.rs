//! The registry: builds every actor from the configuration, finds them by id,
//! routes PBX events to calls, keeps the supervisor view (fed by the actors,
//! in causal order since all actors share one arbiter), fans events out to
//! subscribers, and is the facade the daemon and the HTTP layer talk to.
//! It owns the queue wait figures ([`WaitFigures`]) and each agent's recent
//! calls ([`RecentCalls`]), both fed by the views it receives, and hands a desktop's requests to the agent actor, which decides whether
//! the call named is the agent's.

use crate::agent::actor::{
    supervisor_reason, ActOnCall, AgentActor, BeginOutbound, CallCommand, ChangeState,
    DesktopChanged, DesktopEvent, OutboundStarted, StateCommand,
};
use crate::agent::NotReadyReason;
use crate::call::actor::{
    CallAction, CallActor, EndSupervision, LegEvent, ReconcileCall, Supervise,
};
use crate::call::supervision::SuperviseMode;
use crate::call::{AgentContact, Call, CallNotice, TerminalReason};
use crate::clock::SharedClock;
use crate::config::{ConfigError, ContactCenterConfig};
use crate::durable::{NoState, SharedState, SharedStateStore, StateSnapshot};
use crate::env::{Directory, Env, QueueHandle, SharedEnv};
use crate::error::CcError;
use crate::events::{AgentView, CallView, CcEvent, QueueView};
use crate::ids::{AgentId, CallId, LegId, QueueId, TokenSource};

pub mod call_metrics;
mod pbx_startup;
mod reentry;
mod reload;
mod restore;
mod routing;
mod served;
mod staffing;
mod wiring;
use crate::outbox::{OutboxStatus, OutboxWriter};
use crate::ports::{LegStatus, PbxEvent, SharedOutbox, SharedPbx};
use crate::queue::actor::{GetQueue, PbxLinkChanged, QueueActor};
use crate::queue::{Queue, QueuePolicy};
use crate::recent::{RecentCall, RecentCalls};
use crate::sticky::StickyBook;
use crate::waits::WaitFigures;
use actix::prelude::*;
pub use pbx_startup::PbxStarted;
pub use reentry::PlaceKept;
pub use reload::{ApplyConfig, ReloadSummary};
pub use routing::{CallRouting, GetCallRouting};
use serde::Serialize;
pub use served::{QueuesServed, ServedQueue};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use tracing::{debug, error, info, warn};

/// Most event subscribers (desktops, wallboards) at once.
pub const SUBSCRIBERS_MAX: usize = 1024;
/// Mailbox capacity of the registry: every view update passes through it.
pub const REGISTRY_MAILBOX_CAPACITY: usize = 65_536;

/// A request from an agent's desktop.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum AgentCommand {
    /// Log in.
    Login,
    /// Go Ready (also ends wrap-up).
    Ready,
    /// Go Not Ready with a configured reason code.
    NotReady {
        /// The code.
        reason_code: String,
    },
    /// Log out.
    Logout,
    /// End wrap-up now.
    EndWrapUp,
    /// Accept the current offer.
    Accept,
    /// Reject the current offer.
    Reject,
    /// Dial a customer (Not Ready only).
    DialOutbound {
        /// The number.
        number: String,
    },
    /// Act on the agent's call (whichever it is on; a desktop names the
    /// call with [`CallRequest`]).
    Call(CallAction),
}

/// Perform `command` for `agent`.
#[derive(Message)]
#[rtype(result = "Result<(), CcError>")]
pub struct AgentRequest {
    /// The agent.
    pub agent: AgentId,
    /// What.
    pub command: AgentCommand,
}

/// An agent's desktop acts on the call it names (accept, reject, a control,
/// or only a check): the agent actor refuses a call that is not the agent's
/// ([`CcError::NotYourCall`], or [`CcError::UnknownCall`] when no live call
/// has that id).
#[derive(Message)]
#[rtype(result = "Result<(), CcError>")]
pub struct CallRequest {
    /// The agent.
    pub agent: AgentId,
    /// The call named.
    pub call: CallId,
    /// What.
    pub command: CallCommand,
}

/// A desktop of `agent` connected or disconnected (from the HTTP layer's
/// WebSocket); the agent actor keeps the presence and runs the grace.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AgentDesktop {
    /// The agent.
    pub agent: AgentId,
    /// Connected, or disconnected with the grace.
    pub event: DesktopEvent,
}

/// What a supervisor may do to an agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum SupervisorCommand {
    /// Force Not Ready (reason supervisor; pending while busy).
    NotReady,
    /// Force Ready.
    Ready,
    /// Force logout (pending while on a call).
    Logout,
    /// Force Not Ready with a configured reason code (pending while busy):
    /// the agent's desktop shows that reason.
    NotReadyWithReason {
        /// The reason code (one of `[[reason_codes]]`).
        code: String,
    },
}

/// A supervisor changes an agent's state.
#[derive(Message)]
#[rtype(result = "Result<(), CcError>")]
pub struct SupervisorRequest {
    /// The agent.
    pub agent: AgentId,
    /// What.
    pub command: SupervisorCommand,
}

/// A supervisor joins (`mode`) or leaves (`None`) the call an agent is on,
/// from the supervisor's own device.
#[derive(Message)]
#[rtype(result = "Result<Supervising, CcError>")]
pub struct SuperviseAgent {
    /// The supervisor's user id.
    pub supervisor: String,
    /// The supervisor's device (dial string); unused when leaving.
    pub endpoint: String,
    /// The agent whose call it is.
    pub agent: AgentId,
    /// Monitor, whisper, barge; `None` = leave.
    pub mode: Option<SuperviseMode>,
}

/// What [`SuperviseAgent`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Supervising {
    /// The call.
    pub call: CallId,
    /// The supervisor's new leg (none when leaving).
    pub leg: Option<LegId>,
}

/// Everything a supervisor view needs.
#[derive(Clone, Debug, Serialize)]
pub struct CenterSnapshot {
    /// Wall-clock time of the snapshot.
    pub at_ms: u64,
    /// Agents, by id.
    pub agents: Vec<AgentView>,
    /// Live calls.
    pub calls: Vec<CallView>,
    /// Queues.
    pub queues: Vec<QueueView>,
    /// Outbox writer health.
    pub outbox: OutboxStatus,
    /// Ended calls per terminal reason.
    pub ended: BTreeMap<String, u64>,
    /// Calls that reported a second terminal reason (must stay 0).
    pub terminal_anomalies: u64,
    /// The PBX adapter reported its link up (and has not reported it down
    /// since).
    pub pbx_link_up: bool,
    /// What the restart's reconcile found, once it ran (`None` on a fresh
    /// start, and while a restored system waits for it).
    pub restart: Option<RestartFigures>,
}

/// What the reconcile after a restart found: how many restored calls
/// the PBX still had.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RestartFigures {
    /// Live calls restored from the saved state and reconciled.
    pub calls_restored: u64,
    /// Of those, calls the PBX still had legs of (carried on; the others
    /// were closed).
    pub calls_adopted: u64,
}

/// Read the supervisor view.
#[derive(Message)]
#[rtype(result = "CenterSnapshot")]
pub struct Snapshot {
    /// Include queue views (asks every queue actor).
    pub with_queues: bool,
}

/// Read one agent's view and the view of the call it is on (cheap: no
/// other agent or call is copied; the desktop asks this after its events).
#[derive(Message)]
#[rtype(result = "Option<(AgentView, Option<CallView>)>")]
pub struct AgentSnapshot(pub AgentId);

/// `call` among `agent`'s recent calls (or its current one), with the
/// caller's number: whether it was the agent's, after it ended too.
#[derive(Message)]
#[rtype(result = "Option<RecentCall>")]
pub struct RecentCallOf {
    /// The agent.
    pub agent: AgentId,
    /// The call.
    pub call: CallId,
}

/// Subscribe to events (agent and call changes, notices).
#[derive(Message)]
#[rtype(result = "Result<(), CcError>")]
pub struct Subscribe(pub Recipient<CcEvent>);

/// An agent's view changed (from the agent actor).
#[derive(Message)]
#[rtype(result = "()")]
pub struct AgentChanged(pub AgentView);

/// A call's view changed (from the call actor).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CallChanged(pub CallView);

/// A call produced a notice (from the call actor).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CallNoticed {
    /// The call.
    pub call: CallId,
    /// The notice.
    pub notice: CallNotice,
}

/// A call ended (from the call actor).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CallFinished {
    /// The call.
    pub call: CallId,
    /// Its terminal reason.
    pub reason: TerminalReason,
    /// Its detail record as it ended (the per-queue `/metrics` figures).
    pub record: Box<crate::cdr::CallDetailRecord>,
}

/// The outbox writer reports a stall.
#[derive(Message)]
#[rtype(result = "()")]
pub struct OutboxStalled(pub OutboxStatus);

/// After a restart, the PBX adapter's account of every leg edgecc gave an
/// id to that is still up or ringing (ARI: list channels; the simulated
/// PBX: its legs). Each restored call carries on from it (a leg not listed
/// is gone), then the queues route again. Answers how many calls were
/// reconciled.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Reconcile {
    /// Legs still at the PBX, with whether each is answered.
    pub legs: HashMap<LegId, LegStatus>,
    /// The PBX restarted while edgecc was down (its start-up time
    /// changed): a leg not listed was dropped by it, and its call ends
    /// `pbx_lost` rather than as a hang-up.
    pub pbx_lost: bool,
    /// The PBX's start-up time read by this reconcile, persisted once
    /// every call reconciled (so it is never durable before the calls'
    /// ends it implies): see [`PbxStarted`].
    pub pbx_startup: Option<String>,
}

/// A call the registry knows.
struct LiveCall {
    /// Its actor.
    addr: Addr<CallActor>,
    /// Its latest view.
    view: Option<CallView>,
    /// Whether it reported its terminal reason.
    finished: bool,
}

/// The registry actor.
pub struct Registry {
    /// Shared ports and directory (set right after start).
    env: Option<SharedEnv>,
    /// Calls by id.
    calls: HashMap<CallId, LiveCall>,
    /// Agents' latest views.
    agents: HashMap<AgentId, AgentView>,
    /// Event subscribers.
    subscribers: Vec<Recipient<CcEvent>>,
    /// Ended calls per terminal reason.
    ended: BTreeMap<String, u64>,
    /// Second terminal reports (a bug if ever non-zero).
    terminal_anomalies: u64,
    /// Sequence of outbound call ids.
    outbound_seq: u64,
    /// Last link state the PBX adapter reported.
    pbx_link_up: bool,
    /// Queue waits and service level, fed by every call view.
    waits: WaitFigures,
    /// Each agent's recent calls with the caller's number, fed by every
    /// agent and call view.
    recent: RecentCalls,
    /// Restored and not reconciled yet: queues hold their calls even if
    /// the link comes up, until [`Reconcile`] says which callers are there.
    awaiting_reconcile: bool,
    /// What the restart's reconcile found, for the snapshot (`/metrics`,
    /// the demo's restart line).
    restart: Option<RestartFigures>,
    /// Members logged in and available per queue, for the queues' limits.
    staffing: staffing::Staffing,
    /// Places kept by callers who left, for re-entry; aliases of taken ones.
    reentry: reentry::Reentries,
    /// Per-queue wait and handle histograms and ended calls by reason, fed
    /// by each ended call's record (`/metrics`).
    call_metrics: call_metrics::CallMetrics,
}

/// Builds and starts a contact center on the current arbiter.
pub struct ContactCenter;

/// Where the actors' state records go.
enum StateWiring {
    /// Straight to a port (tests, the demo's in-memory store, or nowhere).
    Port(SharedState),
    /// Through the outbox writer's FIFO to a store (the daemon).
    Writer(SharedStateStore),
}

impl ContactCenter {
    /// Validates `config`, starts every actor and the outbox writer, and
    /// returns the registry's address (the facade). Must run inside an actix
    /// system. Feed PBX events to the registry (`Recipient<PbxEvent>`).
    pub fn start(
        config: ContactCenterConfig,
        pbx: SharedPbx,
        outbox: SharedOutbox,
        clock: SharedClock,
    ) -> Result<Addr<Registry>, Vec<ConfigError>> {
        Self::build(
            config,
            pbx,
            outbox,
            StateWiring::Port(Rc::new(NoState)),
            clock,
            None,
        )
    }

    /// Like [`Self::start`], with every state change handed to `state` (see
    /// [`crate::durable`]): a fresh system whose state can be restored.
    pub fn start_with_state(
        config: ContactCenterConfig,
        pbx: SharedPbx,
        outbox: SharedOutbox,
        state: SharedState,
        clock: SharedClock,
    ) -> Result<Addr<Registry>, Vec<ConfigError>> {
        Self::build(config, pbx, outbox, StateWiring::Port(state), clock, None)
    }

    /// Rebuilds a contact center from `snapshot` (what `state` held when
    /// the previous process stopped): agents in their states, calls in
    /// their phases with their timers re-armed from the persisted
    /// deadlines, queues in their order, the token source above every token
    /// handed out. Queues offer nothing until the PBX adapter reports
    /// [`Reconcile`] (or `LinkUp`): the adapter must then send what it found.
    pub fn restore(
        config: ContactCenterConfig,
        pbx: SharedPbx,
        outbox: SharedOutbox,
        state: SharedState,
        clock: SharedClock,
        snapshot: StateSnapshot,
    ) -> Result<Addr<Registry>, Vec<ConfigError>> {
        Self::build(
            config,
            pbx,
            outbox,
            StateWiring::Port(state),
            clock,
            Some(snapshot),
        )
    }

    /// The daemon's way: every state change goes through the outbox
    /// writer's one FIFO behind the CRM records emitted before it, and is
    /// committed to `store` once they are durable (see [`crate::outbox`]).
    /// With `snapshot`, rebuilds from it as [`Self::restore`] does (the PBX
    /// adapter must then send [`Reconcile`]); without, starts fresh.
    pub fn start_durable(
        config: ContactCenterConfig,
        pbx: SharedPbx,
        outbox: SharedOutbox,
        store: SharedStateStore,
        clock: SharedClock,
        snapshot: Option<StateSnapshot>,
    ) -> Result<Addr<Registry>, Vec<ConfigError>> {
        Self::build(
            config,
            pbx,
            outbox,
            StateWiring::Writer(store),
            clock,
            snapshot,
        )
    }

    fn build(
        config: ContactCenterConfig,
        pbx: SharedPbx,
        outbox: SharedOutbox,
        state: StateWiring,
        clock: SharedClock,
        snapshot: Option<StateSnapshot>,
    ) -> Result<Addr<Registry>, Vec<ConfigError>> {
        config.validate()?;
        let registry_ctx: Context<Registry> = Context::new();
        let registry = registry_ctx.address();
        let stall_target = registry.clone();
        let on_stall: crate::outbox::StallHook =
            Rc::new(move |s: &OutboxStatus| stall_target.do_send(OutboxStalled(s.clone())));
        let (writer, state) = match state {
            StateWiring::Port(port) => (OutboxWriter::spawn(outbox, Some(on_stall)), port),
            StateWiring::Writer(store) => {
                let (writer, port) = OutboxWriter::spawn_with_state(outbox, store, Some(on_stall));
                (writer, Rc::new(port) as SharedState)
            }
        };

        let mut directory = Directory::default();
        let mut queue_ctxs = Vec::new();
        for (i, q) in config.queues.iter().enumerate() {
            let ctx: Context<QueueActor> = Context::new();
            let id = QueueId::new(q.id.clone());
            let rules = wiring::queue_rules(q);
            for d in &q.dnis {
                directory.by_dnis.insert(d.clone(), id.clone());
            }
            directory.queues.insert(
                id.clone(),
                QueueHandle {
                    rules,
                    addr: ctx.address(),
                    weight: q.routing.weight,
                },
            );
            let seed = config.routing.random_seed.wrapping_add(i as u64);
            let queue = Queue::new(id, q.strategy, seed)
                .with_policy(QueuePolicy::of(q), wiring::skill_index(&config, q));
            queue_ctxs.push((ctx, queue));
        }
        let mut agent_ctxs = Vec::new();
        for a in &config.agents {
            let ctx: Context<AgentActor> = Context::new();
            let id = AgentId::new(a.id.clone());

            directory
                .by_extension
                .insert(a.extension.clone(), id.clone());
            directory
                .agents
                .insert(id.clone(), wiring::agent_handle(&config, a, ctx.address()));
            let settings = wiring::agent_settings(&config, a);
            agent_ctxs.push((ctx, id, settings));
        }
        let restoring = snapshot.is_some();
        let sticky = StickyBook::new(
            &config.sticky_customers,
            snapshot.iter().flat_map(|s| s.sticky.values().cloned()),
        );
        let token_high_water = snapshot.as_ref().map_or(0, |s| s.token_high_water());
        let env = Rc::new(Env {
            config,
            clock,
            pbx,
            writer,
            tokens: TokenSource::starting_after(token_high_water),
            tokens_reserved: Rc::new(std::cell::Cell::new(token_high_water)),
            state,
            registry: registry.clone(),
            directory,
            sticky: Rc::new(std::cell::RefCell::new(sticky)),
            overflow: Default::default(),
            successor: std::cell::RefCell::new(None),
        });
        let mut restored = snapshot
            .map(|s| restore::Restored::from_snapshot(&env, s))
            .unwrap_or_default();
        let mut agents = HashMap::new();
        for (ctx, id, settings) in agent_ctxs {
            let actor = match restored.agents.remove(&id) {
                Some(mut agent) => {
                    agent.settings = settings;
                    let call_addr = agent
                        .state
                        .call()
                        .and_then(|c| restored.call_addrs.get(c))
                        .cloned();
                    AgentActor::restored(env.clone(), agent, call_addr)
                }
                None => AgentActor::new(env.clone(), id.clone(), settings),
            };
            agents.insert(id.clone(), actor.view());
            actix::spawn(ctx.into_future(actor));
        }
        for (ctx, queue) in queue_ctxs {
            let actor = match restored.queues.remove(&queue.id) {
                Some(waiting) => QueueActor::restored(env.clone(), queue, waiting),
                None if restoring => QueueActor::restored(env.clone(), queue, Vec::new()),
                None => QueueActor::new(env.clone(), queue),
            };
            actix::spawn(ctx.into_future(actor));
        }
        let mut calls = HashMap::new();
        let mut kept = reentry::Reentries::default();
        for (ctx, actor) in restored.calls {
            let id = actor.id().clone();
            kept.restore(actor.call());
            let finished = restored.ended.contains(&id);
            calls.insert(
                id,
                LiveCall {
                    addr: ctx.address(),
                    view: None,
                    finished,
                },
            );
            actix::spawn(ctx.into_future(actor));
        }
        info!(
            agents = agents.len(),
            queues = env.directory.queues.len(),
            calls_restored = calls.len(),
            restored = restoring,
            "Contact center started."
        );
        let mut staffing = staffing::Staffing::default();
        staffing.recount(agents.values(), &env.directory);
        actix::spawn(registry_ctx.into_future(Registry {
            env: Some(env),
            calls,
            agents,
            subscribers: Vec::new(),
            ended: BTreeMap::new(),
            terminal_anomalies: 0,
            outbound_seq: 0,
            pbx_link_up: false,
            waits: WaitFigures::default(),
            recent: RecentCalls::default(),
            awaiting_reconcile: restoring,
            restart: None,
            staffing,
            reentry: kept,
            call_metrics: Default::default(),
        }));
        Ok(registry)
    }
}

impl Registry {
    pub(crate) fn env(&self) -> &SharedEnv {
        self.env.as_ref().expect("set at start")
    }

    fn publish(&mut self, event: impl FnOnce() -> CcEvent) {
        if self.subscribers.is_empty() {
            return;
        }
        let event = event();
        self.subscribers
            .retain(|s| match s.try_send(event.clone()) {
                Ok(()) => true,
                Err(SendError::Full(_)) => {
                    warn!("Event subscriber is slow; event dropped for it.");
                    true
                }
                Err(SendError::Closed(_)) => false,
            });
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(REGISTRY_MAILBOX_CAPACITY);
    }
}

impl Handler<PbxEvent> for Registry {
    type Result = ();

    fn handle(&mut self, msg: PbxEvent, ctx: &mut Self::Context) {
        match msg {
            PbxEvent::CallArrived {
                leg_id,
                ani,
                dnis,
                attached,
            } => {
                let id = leg_id.call_id();
                if self.calls.contains_key(&id) || self.reentry.resolve(&id).is_some() {
                    warn!(call_id = %id, "Duplicate call arrival ignored.");
                    return;
                }
                self.call_arrived(leg_id, ani, dnis, attached, ctx);
            }
            PbxEvent::LinkUp | PbxEvent::LinkDown => {
                let up = matches!(msg, PbxEvent::LinkUp);
                self.pbx_link_up = up;
                if up {
                    info!("PBX link up: queues route again.");
                } else {
                    warn!("PBX link down: queues hold their calls until it is back.");
                }
                if up && self.awaiting_reconcile {
                    info!("PBX link up; queues wait for the reconcile of the restored calls.");
                    return;
                }
                for q in self.env().directory.queues.values() {
                    q.addr.do_send(PbxLinkChanged { up });
                }
            }
            PbxEvent::LegRinging { .. } => {}
            ev @ (PbxEvent::LegAnswered { .. }
            | PbxEvent::LegHungUp { .. }
            | PbxEvent::Dtmf { .. }) => {
                let leg = match &ev {
                    PbxEvent::LegAnswered { leg_id }
                    | PbxEvent::LegHungUp { leg_id, .. }
                    | PbxEvent::Dtmf { leg_id, .. } => leg_id,
                    _ => unreachable!("matched above"),
                };
                let id = leg.call_id();
                let id = self.reentry.resolve(&id).cloned().unwrap_or(id);
                match self.calls.get(&id) {
                    Some(c) => c.addr.do_send(LegEvent(ev)),
                    None => debug!(leg_id = %leg, "Event for an unknown call ignored."),
                }
            }
        }
    }
}

impl Handler<Reconcile> for Registry {
    type Result = ResponseActFuture<Self, usize>;

    fn handle(&mut self, msg: Reconcile, _ctx: &mut Self::Context) -> Self::Result {
        let mut by_call: HashMap<CallId, HashMap<LegId, LegStatus>> = HashMap::new();
        for (leg, status) in msg.legs {
            // A returning caller's leg belongs to the call whose place it took.
            let id = leg.call_id();
            let id = self.reentry.resolve(&id).cloned().unwrap_or(id);
            by_call.entry(id).or_default().insert(leg, status);
        }
        let mut adopted = 0u64;
        let gone = if msg.pbx_lost {
            crate::ports::HangupCause::PbxLost
        } else {
            crate::ports::HangupCause::Normal
        };
        let startup = msg.pbx_startup;
        // Ended calls hear it too: one restored ended may have a caller
        // still at the PBX whose ending was never carried out (see
        // `call/ending.rs`); only live ones count as reconciled.
        let mut live = 0usize;
        let sends: Vec<_> = self
            .calls
            .iter()
            .map(|(id, c)| {
                let legs = by_call.remove(id).unwrap_or_default();
                if !c.finished {
                    live += 1;
                    if !legs.is_empty() {
                        adopted += 1;
                    }
                }
                c.addr.send(ReconcileCall(legs, gone))
            })
            .collect();
        let queues: Vec<_> = self
            .env()
            .directory
            .queues
            .values()
            .map(|q| q.addr.clone())
            .collect();
        // Queues route again only once every call has reconciled (and sent
        // its dequeue if its caller is gone), so no dead caller is offered.
        Box::pin(
            async move {
                let reconciled = live;
                for send in sends {
                    let _ = send.await;
                }
                for q in queues {
                    q.do_send(PbxLinkChanged { up: true });
                }
                reconciled
            }
            .into_actor(self)
            .map(move |reconciled, act, _| {
                if let Some(startup_time) = startup {
                    act.env()
                        .state
                        .persist(crate::durable::StateRecord::PbxStartup { startup_time });
                }
                act.pbx_link_up = true;
                act.awaiting_reconcile = false;
                if act.restart.is_none() {
                    act.restart = Some(RestartFigures {
                        calls_restored: reconciled as u64,
                        calls_adopted: adopted,
                    });
                }
                info!(
                    calls = reconciled,
                    calls_adopted = adopted,
                    "Restored calls reconciled with the PBX; queues route again."
                );
                reconciled
            }),
        )
    }
}

impl Handler<AgentRequest> for Registry {
    type Result = ResponseFuture<Result<(), CcError>>;

    fn handle(&mut self, msg: AgentRequest, _ctx: &mut Self::Context) -> Self::Result {
        let env = self.env().clone();
        let Some(handle) = env.directory.agents.get(&msg.agent).cloned() else {
            return Box::pin(async move { Err(CcError::UnknownAgent(msg.agent)) });
        };
        let state = |cmd: StateCommand| {
            let addr = handle.addr.clone();
            Box::pin(async move {
                addr.send(ChangeState(cmd))
                    .await
                    .map_err(|e| CcError::Mailbox(e.to_string()))?
                    .map(|_| ())
                    .map_err(CcError::from)
            }) as ResponseFuture<Result<(), CcError>>
        };
        match msg.command {
            AgentCommand::Login => state(StateCommand::Login),
            AgentCommand::Ready => state(StateCommand::Ready),
            AgentCommand::NotReady { reason_code } => state(StateCommand::NotReady {
                reason: NotReadyReason::Code(reason_code),
            }),
            AgentCommand::Logout => state(StateCommand::Logout),
            AgentCommand::EndWrapUp => state(StateCommand::EndWrapUp),
            AgentCommand::Accept => act_on_call(&handle.addr, None, CallCommand::Accept),
            AgentCommand::Reject => act_on_call(&handle.addr, None, CallCommand::Reject),
            AgentCommand::DialOutbound { number } => {
                self.outbound_seq += 1;
                let call_id = CallId::new(format!("out-{}-{}", env.now_ms(), self.outbound_seq));
                let registry = env.registry.clone();
                Box::pin(async move {
                    handle
                        .addr
                        .send(BeginOutbound {
                            call: call_id.clone(),
                        })
                        .await
                        .map_err(|e| CcError::Mailbox(e.to_string()))??;
                    registry
                        .send(StartOutbound {
                            call: call_id,
                            contact: handle.contact.clone(),
                            number,
                        })
                        .await
                        .map_err(|e| CcError::Mailbox(e.to_string()))
                })
            }
            AgentCommand::Call(action) => {
                act_on_call(&handle.addr, None, CallCommand::Control(action))
            }
        }
    }
}

/// Asks the agent actor to act on `call` (`None`: its current one).
fn act_on_call(
    agent: &Addr<AgentActor>,
    call: Option<CallId>,
    command: CallCommand,
) -> ResponseFuture<Result<(), CcError>> {
    let request = agent.send(ActOnCall { call, command });
    Box::pin(async move { request.await.map_err(|e| CcError::Mailbox(e.to_string()))? })
}

impl Handler<CallRequest> for Registry {
    type Result = ResponseFuture<Result<(), CcError>>;

    fn handle(&mut self, msg: CallRequest, _ctx: &mut Self::Context) -> Self::Result {
        let Some(handle) = self.env().directory.agents.get(&msg.agent) else {
            return Box::pin(async move { Err(CcError::UnknownAgent(msg.agent)) });
        };
        // Whether the call is live decides 403 (another agent's) from 404
        // (no such call) when the agent refuses it.
        let live = self.calls.get(&msg.call).is_some_and(|c| !c.finished);
        let call = msg.call.clone();
        let request = act_on_call(&handle.addr, Some(msg.call), msg.command);
        Box::pin(async move {
            match request.await {
                Err(CcError::NotYourCall { .. }) if !live => Err(CcError::UnknownCall(call)),
                other => other,
            }
        })
    }
}

impl Handler<AgentDesktop> for Registry {
    type Result = ();

    fn handle(&mut self, msg: AgentDesktop, _ctx: &mut Self::Context) {
        match self.env().directory.agents.get(&msg.agent) {
            Some(handle) => handle.addr.do_send(DesktopChanged(msg.event)),
            None => debug!(agent_id = %msg.agent, "Desktop of an unknown agent ignored."),
        }
    }
}

/// Start the actor of an outbound call (internal).
#[derive(Message)]
#[rtype(result = "()")]
struct StartOutbound {
    /// The new call's id.
    call: CallId,
    /// The dialing agent.
    contact: AgentContact,
    /// The number.
    number: String,
}

impl Handler<StartOutbound> for Registry {
    type Result = ();

    fn handle(&mut self, msg: StartOutbound, _ctx: &mut Self::Context) {
        let env = self.env().clone();
        let token = env.mint_token();
        let (mut call, fx) = Call::outbound(
            &env.config.site_id,
            msg.call.clone(),
            &msg.contact,
            token,
            msg.number,
            env.now_ms(),
            env.config.timers.offer_timeout_ms,
        );
        call.owe_outbound_wrap_up(env.config.timers.outbound_wrap_up_ms);
        let addr = CallActor::start_with(env.clone(), call, fx);
        if let Some(agent) = env.directory.agents.get(&msg.contact.agent) {
            agent.addr.do_send(OutboundStarted {
                call: msg.call.clone(),
                call_addr: addr.clone(),
            });
        }
        self.calls.insert(
            msg.call,
            LiveCall {
                addr,
                view: None,
                finished: false,
            },
        );
    }
}

impl Handler<SupervisorRequest> for Registry {
    type Result = ResponseFuture<Result<(), CcError>>;

    fn handle(&mut self, msg: SupervisorRequest, _ctx: &mut Self::Context) -> Self::Result {
        let Some(handle) = self.env().directory.agents.get(&msg.agent).cloned() else {
            return Box::pin(async move { Err(CcError::UnknownAgent(msg.agent)) });
        };
        let cmd = match msg.command {
            SupervisorCommand::NotReady => StateCommand::NotReady {
                reason: supervisor_reason(),
            },
            SupervisorCommand::Ready => StateCommand::Ready,
            SupervisorCommand::Logout => StateCommand::Logout,
            SupervisorCommand::NotReadyWithReason { code } => StateCommand::NotReady {
                reason: crate::agent::NotReadyReason::Code(code),
            },
        };
        info!(agent_id = %msg.agent, command = ?cmd, "Supervisor changes agent state.");
        Box::pin(async move {
            handle
                .addr
                .send(ChangeState(cmd))
                .await
                .map_err(|e| CcError::Mailbox(e.to_string()))?
                .map(|_| ())
                .map_err(CcError::from)
        })
    }
}

impl Handler<SuperviseAgent> for Registry {
    type Result = ResponseFuture<Result<Supervising, CcError>>;

    fn handle(&mut self, msg: SuperviseAgent, _ctx: &mut Self::Context) -> Self::Result {
        let call = self
            .agents
            .get(&msg.agent)
            .ok_or_else(|| CcError::UnknownAgent(msg.agent.clone()))
            .and_then(|v| {
                v.state
                    .call()
                    .cloned()
                    .ok_or_else(|| CcError::NotOnACall(msg.agent.clone()))
            });
        let addr = call.clone().and_then(|call| {
            self.calls
                .get(&call)
                .map(|c| c.addr.clone())
                .ok_or_else(|| CcError::NotOnACall(msg.agent.clone()))
        });
        Box::pin(async move {
            let (call, addr) = (call?, addr?);
            let mailbox = |e: MailboxError| CcError::Mailbox(e.to_string());
            let leg = match msg.mode {
                Some(mode) => Some(
                    addr.send(Supervise {
                        supervisor: msg.supervisor,
                        endpoint: msg.endpoint,
                        agent: msg.agent,
                        mode,
                    })
                    .await
                    .map_err(mailbox)??,
                ),
                None => {
                    addr.send(EndSupervision {
                        supervisor: msg.supervisor,
                    })
                    .await
                    .map_err(mailbox)??;
                    None
                }
            };
            Ok(Supervising { call, leg })
        })
    }
}

impl Handler<AgentSnapshot> for Registry {
    type Result = Option<(AgentView, Option<CallView>)>;

    fn handle(&mut self, msg: AgentSnapshot, _ctx: &mut Self::Context) -> Self::Result {
        let agent = self.agents.get(&msg.0)?.clone();
        let call = agent
            .state
            .call()
            .and_then(|c| self.calls.get(c))
            .filter(|c| !c.finished)
            .and_then(|c| c.view.clone());
        Some((agent, call))
    }
}

impl Handler<Snapshot> for Registry {
    type Result = ResponseActFuture<Self, CenterSnapshot>;

    fn handle(&mut self, msg: Snapshot, _ctx: &mut Self::Context) -> Self::Result {
        let env = self.env().clone();
        let mut agents: Vec<AgentView> = self.agents.values().cloned().collect();
        agents.sort_by(|a, b| a.agent.cmp(&b.agent));
        let mut calls: Vec<CallView> = self
            .calls
            .values()
            .filter(|c| !c.finished)
            .filter_map(|c| c.view.clone())
            .collect();
        calls.sort_by(|a, b| a.call.cmp(&b.call));
        let mut snap = CenterSnapshot {
            at_ms: env.now_ms(),
            agents,
            calls,
            queues: Vec::new(),
            outbox: env.writer.status(),
            ended: self.ended.clone(),
            terminal_anomalies: self.terminal_anomalies,
            pbx_link_up: self.pbx_link_up,
            restart: self.restart,
        };
        let queues: Vec<Addr<QueueActor>> = if msg.with_queues {
            env.directory
                .queues
                .values()
                .map(|q| q.addr.clone())
                .collect()
        } else {
            Vec::new()
        };
        let collect = async move {
            for q in queues {
                if let Ok(view) = q.send(GetQueue).await {
                    snap.queues.push(view);
                }
            }
            snap.queues.sort_by(|a, b| a.queue.cmp(&b.queue));
            snap
        };
        Box::pin(collect.into_actor(self).map(|mut snap, act, _ctx| {
            let now_ms = act.env().now_ms();
            for q in &mut snap.queues {
                q.wait_ms = act.waits.waits(&q.queue, &q.waiting, now_ms);
                q.answered = act.waits.answered(&q.queue);
            }
            snap
        }))
    }
}

impl Handler<RecentCallOf> for Registry {
    type Result = Option<RecentCall>;

    fn handle(&mut self, msg: RecentCallOf, _ctx: &mut Self::Context) -> Self::Result {
        self.recent.get(&msg.agent, &msg.call)
    }
}

impl Handler<Subscribe> for Registry {
    type Result = Result<(), CcError>;

    fn handle(&mut self, msg: Subscribe, _ctx: &mut Self::Context) -> Self::Result {
        if self.subscribers.len() >= SUBSCRIBERS_MAX {
            return Err(CcError::TooManySubscribers {
                max: SUBSCRIBERS_MAX,
            });
        }
        self.subscribers.push(msg.0);
        Ok(())
    }
}

impl Handler<AgentChanged> for Registry {
    type Result = ();

    fn handle(&mut self, msg: AgentChanged, _ctx: &mut Self::Context) {
        let view = msg.0;
        let ani = view
            .state
            .call()
            .and_then(|c| self.calls.get(c))
            .and_then(|c| c.view.as_ref())
            .map(|v| v.ani.as_str());
        self.recent.observe_agent(&view, ani);
        let env = self.env().clone();
        self.staffing.observe(&view, &env.directory, true);
        self.agents.insert(view.agent.clone(), view.clone());
        self.publish(|| CcEvent::AgentChanged(view));
    }
}

impl Handler<CallChanged> for Registry {
    type Result = ();

    fn handle(&mut self, msg: CallChanged, _ctx: &mut Self::Context) {
        let view = msg.0;
        let now_ms = self.env().now_ms();
        self.waits.observe(&view, now_ms);
        self.recent.observe_call(&view);
        if let Some(c) = self.calls.get_mut(&view.call) {
            c.view = Some(view.clone());
        }
        self.publish(|| CcEvent::CallChanged(view));
    }
}

impl Handler<CallNoticed> for Registry {
    type Result = ();

    fn handle(&mut self, msg: CallNoticed, _ctx: &mut Self::Context) {
        self.publish(|| CcEvent::CallNotice {
            call: msg.call,
            notice: msg.notice,
        });
    }
}

impl Handler<CallFinished> for Registry {
    type Result = ();

    fn handle(&mut self, msg: CallFinished, _ctx: &mut Self::Context) {
        let name = call_metrics::reason_name(&msg.reason);
        self.call_metrics.observe(&msg.record, &msg.reason);
        *self.ended.entry(name.to_owned()).or_default() += 1;
        match self.calls.get_mut(&msg.call) {
            Some(c) if !c.finished => c.finished = true,
            _ => {
                self.terminal_anomalies += 1;
                error!(call_id = %msg.call, "Call reported a second terminal reason.");
            }
        }
    }
}

/// A call actor stopped (after its linger): forget it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CallStopped(pub CallId);

impl Handler<CallStopped> for Registry {
    type Result = ();

    fn handle(&mut self, msg: CallStopped, _ctx: &mut Self::Context) {
        self.reentry.forget(&msg.0);
        self.calls.remove(&msg.0);
    }
}

impl Handler<OutboxStalled> for Registry {
    type Result = ();

    fn handle(&mut self, msg: OutboxStalled, _ctx: &mut Self::Context) {
        self.publish(|| CcEvent::OutboxStalled(msg.0));
    }
}
