//! Helpers: start a contact center on the simulated PBX with paused time,
//! drive its agents and phones, and the set-ups several tests share (an
//! agent talking on a call, a consult answered).
#![allow(dead_code)]

use actix::prelude::*;
use edgecc_actors::agent::AgentState;
use edgecc_actors::config::*;
use edgecc_actors::events::AgentView;
use edgecc_actors::ports::LocalBoxFuture;
use edgecc_actors::registry::Reconcile;
use edgecc_actors::sim::{
    Caller, ConnectEvents, DisconnectEvents, GetLeg, HangUpLeg, LegInfo, ListLegs, PhoneAction,
    PlaceCall, ScriptPhone, SimPbx, SimPbxPort,
};
use edgecc_actors::*;
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

/// A running contact center.
pub struct Harness {
    /// The facade.
    pub registry: Addr<Registry>,
    /// The simulated PBX.
    pub sim: Addr<SimPbx>,
    /// The in-memory outbox (shared by every life of the system).
    pub outbox: MemoryOutbox,
    /// The in-memory state store (shared by every life of the system).
    pub state: MemoryState,
    /// Kills this life of the system (see [`Harness::restart`]).
    pub kill: Kill,
    /// The configuration, for the next life.
    pub cfg: ContactCenterConfig,
    /// The clock, shared by every life (wall time goes on).
    pub clock: SharedClock,
}

/// A switch shared by one life's ports: once thrown the system is as dead
/// as a SIGKILLed process: its PBX commands never arrive, its outbox appends
/// never become durable, its state records are lost.
#[derive(Clone, Default)]
pub struct Kill(Rc<Cell<bool>>);

impl Kill {
    pub fn dead(&self) -> bool {
        self.0.get()
    }
}

struct KillablePbx(Kill, SimPbxPort);
impl PbxPort for KillablePbx {
    fn send(&self, cmd: PbxCommand) -> LocalBoxFuture<'static, Result<(), PbxError>> {
        if self.0.dead() {
            return Box::pin(std::future::pending());
        }
        self.1.send(cmd)
    }
}

struct KillableOutbox(Kill, MemoryOutbox);
impl OutboxPort for KillableOutbox {
    fn append(&self, records: Vec<CrmRecord>) -> LocalBoxFuture<'static, OutboxAppend> {
        if self.0.dead() {
            return Box::pin(std::future::pending());
        }
        let kill = self.0.clone();
        let append = self.1.clone();
        Box::pin(async move {
            // An append still in flight when the process dies is lost.
            if kill.dead() {
                return std::future::pending().await;
            }
            append.append(records).await
        })
    }
}

struct KillableState(Kill, MemoryState);
impl StatePort for KillableState {
    fn persist(&self, record: StateRecord) {
        if !self.0.dead() {
            self.1.persist(record);
        }
    }
}

/// Epoch of the test clock.
pub const EPOCH_MS: u64 = 1_700_000_000_000;

/// A caller from the tests' one customer number dialing `dnis`.
pub fn caller(dnis: &str) -> Caller {
    Caller::new("+15551230000", dnis)
}

pub fn queue(id: &str, dnis: &str) -> QueueConfig {
    QueueConfig {
        id: id.into(),
        name: id.into(),
        dnis: vec![dnis.into()],
        strategy: Strategy::LongestIdle,
        priority: 0,
        max_wait_ms: 60_000,
        wrap_up_ms: 0,
        final_destination: FinalDestination::default(),
        required_skills: vec![],
        routing: Default::default(),
        sticky: Default::default(),
        limits: Default::default(),
        announcements: Default::default(),
        callback: Default::default(),
        wrap_up_codes: Default::default(),
    }
}

pub fn agent(id: &str, ext: &str, queues: &[&str]) -> AgentConfig {
    AgentConfig {
        id: id.into(),
        name: id.into(),
        extension: ext.into(),
        endpoint: None,
        skills: vec![],
        queues: queues.iter().map(|q| q.to_string()).collect(),
        auto_accept: false,
        wrap_up_ms: None,
        reject_delay_ms: None,
    }
}

/// One queue `q` (DNIS 800) and agents a1..an (ext 100+i).
pub fn basic(n: usize) -> ContactCenterConfig {
    let mut cfg = ContactCenterConfig {
        site_id: "t".into(),
        ..Default::default()
    };
    cfg.timers.offer_timeout_ms = 10_000;
    cfg.reason_codes.push(ReasonCodeConfig {
        code: "break".into(),
        label: "Break".into(),
    });
    cfg.queues.push(queue("q", "800"));
    for i in 1..=n {
        cfg.agents
            .push(agent(&format!("a{i}"), &format!("{}", 100 + i), &["q"]));
    }
    cfg
}

pub fn start(cfg: ContactCenterConfig, seed: u64) -> Harness {
    start_with(cfg, SimPbx::new(seed))
}

/// Starts `cfg` (queue `q` on DNIS 800 and an agent a1 in it) with a1
/// talking to a caller: a1 Ready, the call placed, a1's phone answering
/// (after 1 s) and the call's records durable.
pub async fn talking(cfg: ContactCenterConfig) -> (Harness, CallId) {
    let h = start(cfg, 1);
    h.ready("a1").await;
    let call = h.call(caller("800")).await;
    advance(1_500).await;
    (h, call)
}

/// Starts `cfg` with a call offered to a1 (Ready, queue `q`, extension
/// 101) whose phone does `phone`.
pub async fn offered(cfg: ContactCenterConfig, phone: PhoneAction) -> (Harness, CallId) {
    let h = start(cfg, 1);
    h.ready("a1").await;
    h.script("101", vec![phone]);
    let call = h.call(caller("800")).await;
    (h, call)
}

/// [`talking`], then a1 consults a2 (logged in, Not Ready) and a2's phone
/// answers: a1 and a2 talk while the caller holds.
pub async fn consulting(cfg: ContactCenterConfig) -> (Harness, CallId) {
    let (h, call) = talking(cfg).await;
    h.cmd("a2", AgentCommand::Login).await.unwrap();
    h.consult("a1", "a2").await.unwrap();
    advance(1_500).await;
    (h, call)
}

pub fn start_with(cfg: ContactCenterConfig, pbx: SimPbx) -> Harness {
    let sim = pbx.start();
    let outbox = MemoryOutbox::new();
    let state = MemoryState::new();
    let kill = Kill::default();
    let clock = TokioClock::shared(EPOCH_MS);
    let registry = ContactCenter::start_with_state(
        cfg.clone(),
        Rc::new(KillablePbx(kill.clone(), SimPbxPort { addr: sim.clone() })),
        Rc::new(KillableOutbox(kill.clone(), outbox.clone())),
        Rc::new(KillableState(kill.clone(), state.clone())),
        clock.clone(),
    )
    .expect("valid config");
    sim.do_send(ConnectEvents(registry.clone().recipient()));
    Harness {
        registry,
        sim,
        outbox,
        state,
        kill,
        cfg,
        clock,
    }
}

/// Leg `id` hangs up at the PBX without waiting (for [`Harness::kill_and`]:
/// a caller gives up while edgecc is down).
pub fn hang_up_at(sim: &Addr<SimPbx>, id: &str) {
    sim.do_send(HangUpLeg {
        leg_id: LegId::new(id),
        cause: HangupCause::Normal,
    });
}

/// Let everything ready run (paused time: advances only when idle).
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

pub async fn advance(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

impl Harness {
    /// Kills this life of the system (SIGKILL: nothing more reaches the
    /// PBX, the outbox or the state store), keeps it down `down_ms` while
    /// the PBX and its callers and phones carry on, then restores a new
    /// life from the state store's snapshot, reconciles it with the legs
    /// the PBX still has and reconnects the PBX's events.
    pub async fn restart(self, down_ms: u64) -> Harness {
        let h = self.kill_and(|_| ()).await;
        h.restart_killed(down_ms).await
    }

    /// Kills this life, then lets `while_down` act on the PBX (a caller
    /// hangs up while edgecc is down); finish with [`Self::restart_killed`]
    /// (or [`Self::restart`], which kills again harmlessly).
    pub async fn kill_and(self, while_down: impl FnOnce(&Addr<SimPbx>)) -> Harness {
        self.kill.0.set(true);
        self.sim.send(DisconnectEvents).await.unwrap();
        while_down(&self.sim);
        settle().await;
        self
    }

    /// Restores a new life of a killed system after `down_ms`.
    pub async fn restart_killed(self, down_ms: u64) -> Harness {
        advance(down_ms).await;
        let snapshot = self.state.snapshot();
        let kill = Kill::default();
        let registry = ContactCenter::restore(
            self.cfg.clone(),
            Rc::new(KillablePbx(
                kill.clone(),
                SimPbxPort {
                    addr: self.sim.clone(),
                },
            )),
            Rc::new(KillableOutbox(kill.clone(), self.outbox.clone())),
            Rc::new(KillableState(kill.clone(), self.state.clone())),
            self.clock.clone(),
            snapshot,
        )
        .expect("valid config");
        let legs = self.sim.send(ListLegs).await.unwrap();
        registry
            .send(Reconcile {
                legs,
                pbx_lost: false,
                pbx_startup: None,
            })
            .await
            .unwrap();
        self.sim
            .do_send(ConnectEvents(registry.clone().recipient()));
        settle().await;
        Harness {
            registry,
            kill,
            ..self
        }
    }

    /// `agent` sends `command`; time does not move (see [`Self::cmd`]).
    pub async fn request(&self, agent: &str, command: AgentCommand) -> Result<(), CcError> {
        self.registry
            .send(AgentRequest {
                agent: AgentId::new(agent),
                command,
            })
            .await
            .unwrap()
    }

    /// `agent` sends `command`, then everything it set off runs.
    pub async fn cmd(&self, agent: &str, command: AgentCommand) -> Result<(), CcError> {
        let r = self.request(agent, command).await;
        settle().await;
        r
    }

    /// `agent` asks its call for `action`.
    pub async fn act(&self, agent: &str, action: CallAction) -> Result<(), CcError> {
        self.cmd(agent, AgentCommand::Call(action)).await
    }

    /// `from` consults `to` on its call.
    pub async fn consult(&self, from: &str, to: &str) -> Result<(), CcError> {
        let target = AgentId::new(to);
        self.act(from, CallAction::Consult { target }).await
    }

    /// `agent` asks for Not Ready with `reason_code`.
    pub async fn not_ready(&self, agent: &str, reason_code: &str) -> Result<(), CcError> {
        let reason_code = reason_code.to_owned();
        self.cmd(agent, AgentCommand::NotReady { reason_code })
            .await
    }

    /// `agent` dials `number` out.
    pub async fn dial(&self, agent: &str, number: &str) -> Result<(), CcError> {
        let number = number.to_owned();
        self.cmd(agent, AgentCommand::DialOutbound { number }).await
    }

    pub async fn ready(&self, agent: &str) {
        self.cmd(agent, AgentCommand::Login).await.unwrap();
        self.cmd(agent, AgentCommand::Ready).await.unwrap();
    }

    pub async fn call(&self, caller: Caller) -> CallId {
        let leg = self.sim.send(PlaceCall(caller)).await.unwrap();
        settle().await;
        leg.call_id()
    }

    /// Scripts what the phone of extension `ext` does with its next calls.
    pub fn script(&self, ext: &str, actions: Vec<PhoneAction>) {
        self.sim.do_send(ScriptPhone {
            endpoint: format!("sim/{ext}"),
            actions,
        });
    }

    /// The PBX's view of leg `id`; `None` once it is gone.
    pub async fn leg(&self, id: &str) -> Option<LegInfo> {
        self.sim.send(GetLeg(LegId::new(id))).await.unwrap()
    }

    /// Leg `id` hangs up at the PBX (its caller or phone put down).
    pub async fn hang_up(&self, id: &str) {
        self.sim
            .send(HangUpLeg {
                leg_id: LegId::new(id),
                cause: HangupCause::Normal,
            })
            .await
            .unwrap();
        settle().await;
    }

    pub async fn snapshot(&self) -> CenterSnapshot {
        self.registry
            .send(Snapshot { with_queues: true })
            .await
            .unwrap()
    }

    pub async fn agent(&self, id: &str) -> AgentView {
        self.snapshot()
            .await
            .agents
            .into_iter()
            .find(|a| a.agent.as_str() == id)
            .unwrap()
    }

    pub async fn state(&self, id: &str) -> AgentState {
        self.agent(id).await.state
    }

    pub fn kinds(&self, call: &CallId) -> Vec<RecordKind> {
        self.outbox
            .records_of(call)
            .iter()
            .map(|r| r.kind)
            .collect()
    }

    pub fn events(&self, call: &CallId) -> Vec<String> {
        self.outbox
            .records_of(call)
            .iter()
            .filter(|r| r.kind == RecordKind::InteractionUpdate)
            .map(|r| r.body["event"].as_str().unwrap_or("").to_string())
            .collect()
    }
}

pub fn is(state: &AgentState, name: &str) -> bool {
    state.name() == name
}
