//! Helpers for the ARI tests: the system as the composition root
//! (`edgecc::system`) assembles it for `edgecc run`, on a data directory in
//! a temporary directory, driving the ARI emulator on 127.0.0.1 through
//! [`edgecc::ari::AriPbx`] (its events pass the PBX gate), with the CRM
//! records in an in-memory outbox the tests read at once (the actors' state
//! goes to the data directory). Everything waits with bounded, polling `until`s
//! (never the emulator's blocking `wait_until`, which would stall the
//! actors on this thread).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use edgecc::ari::{AriPbx, AriSettings};
use edgecc::ari_emulator::{AriEmulator, AriEmulatorConfig, EmulatorState, EndpointBehaviour};
use edgecc::config::Config;
use edgecc::pbx::PbxAdapter;
use edgecc::system::storage::open_storage;
use edgecc::system::{System, SystemParts};
use edgecc_actors::agent::AgentState;
use edgecc_actors::config::{AgentConfig, FinalDestination, QueueConfig, Strategy};
use edgecc_actors::events::CallView;
use edgecc_actors::*;

/// Longest any single wait in these tests may take.
pub const WAIT: Duration = Duration::from_secs(10);
/// The queue's DNIS.
pub const DNIS: &str = "800";

/// A contact center on the ARI adapter, against an emulator.
pub struct AriHarness {
    /// The emulated Asterisk.
    pub emu: AriEmulator,
    /// The adapter (also the actors' PBX port).
    pub ari: AriPbx,
    /// The contact center.
    pub registry: Addr<Registry>,
    /// What the actors wrote for the CRM.
    pub outbox: MemoryOutbox,
    /// The system the composition root built, and its data directory;
    /// `None` when a test assembled the actors itself (the killable lives
    /// of tests/ari_restart.rs).
    pub booted: Option<Booted>,
}

/// A system the composition root started for a harness.
pub struct Booted {
    /// The running system: actors, PBX gate, storage.
    pub system: System,
    /// Its data directory, a temporary one (dropped after the system).
    pub dir: tempfile::TempDir,
}

/// A queue `q` on DNIS 800.
pub fn queue() -> QueueConfig {
    QueueConfig {
        id: "q".into(),
        name: "q".into(),
        dnis: vec![DNIS.into()],
        strategy: Strategy::LongestIdle,
        priority: 0,
        max_wait_ms: 120_000,
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

/// Agent `id` with device `endpoint`, in queue `q`.
pub fn agent(id: &str, ext: &str, endpoint: &str) -> AgentConfig {
    AgentConfig {
        id: id.into(),
        name: id.into(),
        extension: ext.into(),
        endpoint: Some(endpoint.into()),
        skills: vec![],
        queues: vec!["q".into()],
        auto_accept: false,
        wrap_up_ms: None,
        reject_delay_ms: None,
    }
}

/// Agents `(id, endpoint)` in queue `q`, offer timeout `offer_timeout_ms`.
pub fn config(agents: &[(&str, &str)], offer_timeout_ms: u64) -> ContactCenterConfig {
    let mut cfg = ContactCenterConfig {
        site_id: "ari".into(),
        ..Default::default()
    };
    cfg.timers.offer_timeout_ms = offer_timeout_ms;
    cfg.queues.push(queue());
    for (i, (id, endpoint)) in agents.iter().enumerate() {
        cfg.agents
            .push(agent(id, &format!("{}", 100 + i), endpoint));
    }
    cfg
}

/// Adapter settings for `emu`, with a fast reconnect.
pub fn settings(emu: &AriEmulator) -> AriSettings {
    let c = emu.config();
    let mut s = AriSettings::for_test(&emu.base_url(), &c.app, &c.user, &c.password);
    s.reconnect_backoff_base_ms = 20;
    s.reconnect_backoff_cap_ms = 200;
    s.announcement_wait_max = Duration::from_secs(2);
    s.remote_answer_wait = Duration::from_secs(3);
    s
}

/// Polls `pred` every 10 ms until it holds; panics naming `what` after
/// [`WAIT`].
pub async fn until(what: &str, mut pred: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !pred() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sleeps `ms` (lets events flow).
pub async fn pause(ms: u64) {
    actix_rt::time::sleep(Duration::from_millis(ms)).await;
}

impl AriHarness {
    /// Starts an emulator with `endpoints`, the actors on the adapter, and
    /// waits until the link is up.
    pub async fn start(
        cfg: ContactCenterConfig,
        endpoints: &[(&str, EndpointBehaviour)],
    ) -> AriHarness {
        let emu = AriEmulator::start(AriEmulatorConfig::default()).expect("emulator starts");
        for (e, b) in endpoints {
            emu.set_endpoint(e, b.clone());
        }
        Self::start_on(emu, cfg).await
    }

    /// Like [`Self::start`] on an existing emulator.
    pub async fn start_on(emu: AriEmulator, cfg: ContactCenterConfig) -> AriHarness {
        let s = settings(&emu);
        Self::start_with_settings(emu, cfg, s).await
    }

    /// Like [`Self::start_on`] with adapter settings of the test's own.
    pub async fn start_with_settings(
        emu: AriEmulator,
        cfg: ContactCenterConfig,
        settings: AriSettings,
    ) -> AriHarness {
        let ari = AriPbx::new(settings).expect("adapter");
        let outbox = MemoryOutbox::new();
        let config = Config {
            contact_center: cfg,
            ..Config::default()
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = open_storage(&config, dir.path()).expect("open the data directory");
        let system = SystemParts::new(config, storage)
            .with_pbx(PbxAdapter::Ari(ari.clone()))
            .with_outbox(Rc::new(outbox.clone()))
            .with_clock(TokioClock::shared(1_700_000_000_000))
            .start()
            .await
            .expect("system starts");
        let h = AriHarness {
            emu,
            ari,
            registry: system.running.registry.clone(),
            outbox,
            booted: Some(Booted { system, dir }),
        };
        h.link_up().await;
        h
    }

    /// On a system the composition root built: waits until the actors'
    /// outbox writer handed every CRM record it holds to the outbox. It
    /// commits the actors' state to the data directory in the same FIFO,
    /// so a call's last records can trail what the emulator and the views
    /// show by a disk write; every `until_*` ends with this, so the record
    /// readers ([`Self::kinds`], [`Self::updates`]) see what happened up to
    /// there. (The lives tests/ari_restart.rs assembles write no state
    /// through the writer, and a killed life never drains: not waited on.)
    async fn written(&self) {
        if self.booted.is_none() {
            return;
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let pending = self.snapshot().await.outbox.records_pending;
            if pending == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {pending} records to reach the outbox"
            );
            pause(5).await;
        }
    }

    /// Waits until the adapter's link is up and the emulator sees it.
    pub async fn link_up(&self) {
        let (ari, emu) = (self.ari.clone(), self.emu.clone());
        until("the ARI link is up", move || {
            ari.link_is_up() && emu.app_active()
        })
        .await;
    }

    /// Waits until `pred` holds on the emulator's state.
    pub async fn until_emu(&self, what: &str, pred: impl Fn(&EmulatorState) -> bool) {
        let emu = self.emu.clone();
        until(what, move || pred(&emu.state())).await;
        self.written().await;
    }

    /// An agent command.
    pub async fn cmd(&self, agent: &str, command: AgentCommand) -> Result<(), CcError> {
        self.registry
            .send(AgentRequest {
                agent: AgentId::new(agent),
                command,
            })
            .await
            .expect("registry answers")
    }

    /// An action on the agent's call.
    pub async fn act(&self, agent: &str, action: CallAction) -> Result<(), CcError> {
        self.cmd(agent, AgentCommand::Call(action)).await
    }

    /// Logs `agent` in and makes it Ready.
    pub async fn ready(&self, agent: &str) {
        self.cmd(agent, AgentCommand::Login).await.expect("login");
        self.cmd(agent, AgentCommand::Ready).await.expect("ready");
    }

    /// The supervisor view.
    pub async fn snapshot(&self) -> CenterSnapshot {
        self.registry
            .send(Snapshot { with_queues: false })
            .await
            .expect("snapshot")
    }

    /// An agent's state.
    pub async fn state(&self, agent: &str) -> AgentState {
        self.snapshot()
            .await
            .agents
            .into_iter()
            .find(|a| a.agent.as_str() == agent)
            .expect("agent exists")
            .state
    }

    /// Waits until `agent`'s state satisfies `pred`.
    pub async fn until_agent(&self, agent: &str, what: &str, pred: impl Fn(&AgentState) -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            let s = self.state(agent).await;
            if pred(&s) {
                self.written().await;
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {agent}: {what}; it is {s:?}"
            );
            pause(10).await;
        }
    }

    /// A live call's view.
    pub async fn call(&self, call: &str) -> Option<CallView> {
        self.snapshot()
            .await
            .calls
            .into_iter()
            .find(|c| c.call.as_str() == call)
    }

    /// Waits until the live call's view satisfies `pred`.
    pub async fn until_call(&self, call: &str, what: &str, pred: impl Fn(&CallView) -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            let v = self.call(call).await;
            if v.as_ref().is_some_and(&pred) {
                self.written().await;
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for call {call}: {what}; it is {v:?}"
            );
            pause(10).await;
        }
    }

    /// Ended calls by terminal reason.
    pub async fn ended(&self) -> BTreeMap<String, u64> {
        self.snapshot().await.ended
    }

    /// Waits until `n` calls ended with `reason`.
    pub async fn until_ended(&self, reason: &str, n: u64) {
        let deadline = Instant::now() + WAIT;
        loop {
            let e = self.ended().await;
            if e.get(reason).copied().unwrap_or(0) >= n {
                self.written().await;
                return;
            }
            if Instant::now() >= deadline {
                // Say how the calls ended (the `ended` updates carry the
                // terminal reason with its error text).
                let terminals: Vec<String> = self
                    .outbox
                    .records()
                    .iter()
                    .filter_map(|r| {
                        r.body
                            .get("terminal")
                            .map(|t| format!("{}: {t}", r.interaction_key))
                    })
                    .collect();
                panic!("timed out waiting for {n} {reason} calls; ended: {e:?}; terminals: {terminals:?}");
            }
            pause(10).await;
        }
    }

    /// Record kinds written for a call, in order.
    pub fn kinds(&self, call: &str) -> Vec<RecordKind> {
        self.outbox
            .records_of(&CallId::new(call))
            .iter()
            .map(|r| r.kind)
            .collect()
    }

    /// Interaction update events written for a call, in order.
    pub fn updates(&self, call: &str) -> Vec<String> {
        self.outbox
            .records_of(&CallId::new(call))
            .iter()
            .filter(|r| r.kind == RecordKind::InteractionUpdate)
            .filter_map(|r| {
                r.body
                    .get("event")
                    .and_then(|e| e.as_str())
                    .map(str::to_owned)
            })
            .collect()
    }

    /// An inbound call to the queue from `ani`; answers the call id.
    pub fn inbound(&self, ani: &str) -> String {
        self.emu
            .inbound_call(ani, "Caller", DNIS, &[])
            .expect("the app is connected")
    }

    /// The agent leg currently offered/connected to `agent` on `call` (the
    /// emulator channel whose id starts with `{call}~`, on `endpoint`).
    pub fn legs_of(&self, call: &str) -> Vec<String> {
        let prefix = format!("{call}~");
        self.emu
            .channels()
            .into_iter()
            .filter(|c| c.id.starts_with(&prefix) && !c.id.ends_with(";2"))
            .map(|c| c.id)
            .collect()
    }

    /// Waits until edgecc's dial of `call` to `endpoint` reached the
    /// emulator, and answers that leg's id. The actors show the agent
    /// Reserved (and the desktop its offer) as soon as they offered the
    /// call; the originate reaches Asterisk after that, over HTTP from
    /// the adapter, and on a busy machine well after the next poll of the
    /// test: reading the leg at once after Reserved found none now and
    /// then.
    pub async fn until_leg(&self, call: &str, endpoint: &str) -> String {
        until_leg_at(&self.emu, call, endpoint).await
    }

    /// Requests whose path starts with `prefix` (method too).
    pub fn requests(&self, method: &str, prefix: &str) -> usize {
        self.emu
            .requests()
            .iter()
            .filter(|r| r.method == method && r.path.starts_with(prefix))
            .count()
    }
}

/// Waits until `emu` holds a leg of `call` (its id starts with `{call}~`)
/// on `endpoint`, and answers its id (see [`AriHarness::until_leg`]).
pub async fn until_leg_at(emu: &AriEmulator, call: &str, endpoint: &str) -> String {
    let prefix = format!("{call}~");
    let find = || {
        emu.channels()
            .into_iter()
            .find(|c| c.id.starts_with(&prefix) && c.endpoint.as_deref() == Some(endpoint))
            .map(|c| c.id)
    };
    let mut found = None;
    until(&format!("the dial of {call} to {endpoint}"), || {
        found = find();
        found.is_some()
    })
    .await;
    found.unwrap_or_default()
}

/// Whether the agent is Talking.
pub fn talking(s: &AgentState) -> bool {
    matches!(s, AgentState::Talking { .. })
}

/// Whether the agent is Reserved.
pub fn reserved(s: &AgentState) -> bool {
    matches!(s, AgentState::Reserved { .. })
}

/// Whether the agent is free of calls (Ready, Not Ready or wrap-up).
pub fn free(s: &AgentState) -> bool {
    !matches!(s, AgentState::Reserved { .. } | AgentState::Talking { .. })
}

/// How many of `kinds` are `kind`.
pub fn count(kinds: &[RecordKind], kind: RecordKind) -> usize {
    kinds.iter().filter(|k| **k == kind).count()
}

/// What Asterisk (`emu`) was asked that ends or gives away a call: channel
/// hang-ups, hand-backs to the dialplan, bridge destructions.
pub fn given_away(emu: &AriEmulator) -> Vec<String> {
    emu.requests()
        .iter()
        .filter(|r| {
            let path = r.path.split('?').next().unwrap_or_default();
            let segs: Vec<&str> = path.trim_start_matches("/ari/").split('/').collect();
            matches!(
                (r.method.as_str(), segs.as_slice()),
                ("DELETE", ["channels" | "bridges", _]) | ("POST", ["channels", _, "continue"])
            )
        })
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}
