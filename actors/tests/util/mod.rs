//! Helpers: start a contact center on the simulated PBX with paused time.
#![allow(dead_code)]

use actix::prelude::*;
use edgecc_actors::agent::AgentState;
use edgecc_actors::config::*;
use edgecc_actors::events::AgentView;
use edgecc_actors::sim::{Caller, ConnectEvents, PlaceCall, SimPbx, SimPbxPort};
use edgecc_actors::*;
use std::rc::Rc;
use std::time::Duration;

/// A running contact center.
pub struct Harness {
    /// The facade.
    pub registry: Addr<Registry>,
    /// The simulated PBX.
    pub sim: Addr<SimPbx>,
    /// The in-memory outbox.
    pub outbox: MemoryOutbox,
}

/// Epoch of the test clock.
pub const EPOCH_MS: u64 = 1_700_000_000_000;

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

pub fn start_with(cfg: ContactCenterConfig, pbx: SimPbx) -> Harness {
    let sim = pbx.start();
    let outbox = MemoryOutbox::new();
    let registry = ContactCenter::start(
        cfg,
        Rc::new(SimPbxPort { addr: sim.clone() }),
        Rc::new(outbox.clone()),
        TokioClock::shared(EPOCH_MS),
    )
    .expect("valid config");
    sim.do_send(ConnectEvents(registry.clone().recipient()));
    Harness {
        registry,
        sim,
        outbox,
    }
}

/// Let everything ready run (paused time: advances only when idle).
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

pub async fn advance(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

impl Harness {
    pub async fn cmd(&self, agent: &str, command: AgentCommand) -> Result<(), CcError> {
        let r = self
            .registry
            .send(AgentRequest {
                agent: AgentId::new(agent),
                command,
            })
            .await
            .unwrap();
        settle().await;
        r
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

    pub fn kinds(&self, call: &CallId) -> Vec<CrmRecordKind> {
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
            .filter(|r| r.kind == CrmRecordKind::InteractionUpdate)
            .map(|r| r.body["event"].as_str().unwrap_or("").to_string())
            .collect()
    }
}

pub fn is(state: &AgentState, name: &str) -> bool {
    state.name() == name
}
