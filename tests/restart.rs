//! Restarting the whole system (the composition root, the durable storage,
//! the CRM sync worker) with calls up, on the simulated PBX.
//!
//! Each life of edgecc runs on its own arbiter (its own thread), as a
//! process of its own would; the simulated PBX and the CRM emulator live
//! outside it, on the test's arbiter, and outlive it as a real PBX and CRM
//! do. A crash stops the arbiter: every actor, timer and in-flight write of
//! that life is dropped where it stood, with no shutdown step. The next
//! life opens the same data directory with the same PBX, and the test
//! checks the PBX side (no leg hung up that should not be, talking and held
//! calls carry on with their agents, the ringing offer is kept, the queued
//! caller keeps its place and is routed after) and the CRM side (every call
//! one terminal reason; every answered call one interaction, one phone log
//! and one end update, each stored once).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use actix::prelude::*;
use edgecc::ari::AriPbx;
use edgecc::ari_emulator::{AriEmulator, AriEmulatorConfig, EndpointBehaviour};
use edgecc::config::{Config, CrmAdapterConfig, CrmSettings};
use edgecc::crm::emulator::{EmulatorConfig, EmulatorHandle};
use edgecc::crm::sync::SyncConfig;
use edgecc::crm::webhook::WebhookConfig;
use edgecc::pbx::PbxAdapter;
use edgecc::system::storage::open_storage;
use edgecc::system::SystemParts;
use edgecc_actors::agent::{AgentState, NotReadyReason};
use edgecc_actors::config::{
    AgentConfig, FinalDestination, QueueConfig, ReasonCodeConfig, Strategy,
};
use edgecc_actors::ports::{HangupCause, LegStatus};
use edgecc_actors::registry::{
    AgentCommand, AgentRequest, AgentSnapshot, CenterSnapshot, Registry, Snapshot,
};
use edgecc_actors::sim::{
    Caller, GetLeg, GetSimStats, HangUpLeg, ListLegs, PhoneAction, PlaceCall, ScriptPhone, SimPbx,
};
use edgecc_actors::{CallAction, CallId, ContactCenterConfig, LegId};
use tokio::sync::oneshot;

/// Longest wait for anything in these tests.
const WAIT: Duration = Duration::from_secs(20);

/// The contact center: queue `sales` (DNIS 800), agents a1..a4 (ext
/// 101..104), no wrap-up, offers ringing for a minute.
fn contact_center() -> ContactCenterConfig {
    let mut cc = ContactCenterConfig {
        site_id: "rst".to_string(),
        ..ContactCenterConfig::default()
    };
    cc.timers.offer_timeout_ms = 60_000;
    cc.timers.reject_delay_ms = 0;
    cc.reason_codes.push(ReasonCodeConfig {
        code: "break".to_string(),
        label: "Break".to_string(),
    });
    cc.queues.push(QueueConfig {
        id: "sales".to_string(),
        name: "Sales".to_string(),
        dnis: vec!["800".to_string()],
        strategy: Strategy::LongestIdle,
        priority: 0,
        max_wait_ms: 120_000,
        wrap_up_ms: 0,
        final_destination: FinalDestination::default(),
        required_skills: Vec::new(),
        routing: Default::default(),
        sticky: Default::default(),
        limits: Default::default(),
        announcements: Default::default(),
        callback: Default::default(),
        wrap_up_codes: Default::default(),
    });
    for i in 1..=4 {
        cc.agents.push(AgentConfig {
            id: format!("a{i}"),
            name: format!("a{i}"),
            extension: format!("{}", 100 + i),
            endpoint: None,
            skills: Vec::new(),
            queues: vec!["sales".to_string()],
            auto_accept: false,
            wrap_up_ms: None,
            reject_delay_ms: None,
        });
    }
    cc
}

/// The daemon's config: the contact center, the webhook CRM at `url`.
fn config(url: &str) -> Config {
    let cc = contact_center();
    Config {
        site_id: cc.site_id.clone(),
        contact_center: cc,
        crm: CrmSettings {
            adapter: CrmAdapterConfig::Webhook(WebhookConfig {
                url: url.to_string(),
                secret_file: None,
                connect_timeout_ms: 500,
                request_timeout_ms: 2_000,
                batch_max: 1,
            }),
            sync: SyncConfig {
                backoff_base_ms: 50,
                backoff_cap_ms: 400,
                breaker_probe_interval_ms: 200,
                ..SyncConfig::default()
            },
        },
        ..Config::default()
    }
}

/// One life of edgecc, on its own arbiter.
struct Life {
    /// The arbiter (thread) the life runs on.
    arbiter: Arbiter,
    /// The contact center's facade.
    registry: Addr<Registry>,
    /// Asks the life to shut down in order.
    stop: oneshot::Sender<()>,
    /// Told once the orderly shutdown is done.
    stopped: oneshot::Receiver<()>,
}

impl Life {
    /// Starts a life on `data` with the PBX `sim` and the CRM at `url`,
    /// assembled as `edgecc run` assembles it.
    async fn start(data: &Path, url: &str, sim: &Addr<SimPbx>) -> Life {
        let sim = sim.clone();
        Life::start_with(data, url, config, move || PbxAdapter::Sim(sim)).await
    }

    /// Starts a life on `data` with the config `config(url)` and the PBX
    /// adapter `pbx` builds on the life's own thread.
    async fn start_with(
        data: &Path,
        url: &str,
        config: fn(&str) -> Config,
        pbx: impl FnOnce() -> PbxAdapter + Send + 'static,
    ) -> Life {
        let arbiter = Arbiter::new();
        let (ready_tx, ready_rx) = oneshot::channel();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let (stopped_tx, stopped) = oneshot::channel::<()>();
        let (data, url) = (data.to_path_buf(), url.to_string());
        arbiter.spawn_fn(move || {
            actix_rt::spawn(async move {
                let config = config(&url);
                let storage = open_storage(&config, &data).expect("open the data directory");
                let system = SystemParts::new(config, storage)
                    .with_pbx(pbx())
                    .start()
                    .await
                    .expect("system starts");
                let _ = ready_tx.send(system.running.registry.clone());
                if stop_rx.await.is_ok() {
                    system.shutdown().await;
                    let _ = stopped_tx.send(());
                }
            });
        });
        let registry = ready_rx.await.expect("the life started");
        Life {
            arbiter,
            registry,
            stop,
            stopped,
        }
    }

    /// Kills the life as SIGKILL would: its arbiter stops, dropping every
    /// actor, timer and write in flight; nothing is flushed or told.
    async fn crash(self) {
        let Life { arbiter, stop, .. } = self;
        arbiter.stop();
        actix_rt::task::spawn_blocking(move || arbiter.join())
            .await
            .expect("join")
            .expect("the life's thread ends");
        drop(stop);
    }

    /// Stops the life the orderly way (`System::shutdown`), then its arbiter.
    async fn shut_down(self) {
        let Life {
            arbiter,
            stop,
            stopped,
            ..
        } = self;
        stop.send(()).expect("the life listens");
        tokio::time::timeout(WAIT, stopped)
            .await
            .expect("shutdown in time")
            .expect("shutdown done");
        arbiter.stop();
        actix_rt::task::spawn_blocking(move || arbiter.join())
            .await
            .expect("join")
            .expect("the life's thread ends");
    }

    async fn cmd(&self, agent: &str, command: AgentCommand) {
        self.registry
            .send(AgentRequest {
                agent: agent.into(),
                command,
            })
            .await
            .expect("registry answers")
            .unwrap_or_else(|e| panic!("{agent}: {e}"));
    }

    async fn state(&self, agent: &str) -> AgentState {
        self.registry
            .send(AgentSnapshot(agent.into()))
            .await
            .expect("registry answers")
            .expect("known agent")
            .0
            .state
    }

    async fn snapshot(&self) -> CenterSnapshot {
        self.registry
            .send(Snapshot { with_queues: true })
            .await
            .expect("registry answers")
    }

    /// Waits until `agent`'s state is named `name`.
    async fn until_state(&self, agent: &str, name: &str) -> AgentState {
        let deadline = Instant::now() + WAIT;
        loop {
            let s = self.state(agent).await;
            if s.name() == name {
                return s;
            }
            assert!(Instant::now() < deadline, "{agent} never {name}: {s:?}");
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `agent` talks on `call`.
    async fn until_talking_on(&self, agent: &str, call: &CallId) {
        let deadline = Instant::now() + WAIT;
        loop {
            let s = self.state(agent).await;
            if matches!(&s, AgentState::Talking { call: c, .. } if c == call) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{agent} never talked on {call}: {s:?}"
            );
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every CRM record and state change of this life is
    /// durable (what a crash right after a group commit leaves).
    async fn until_durable(&self) {
        let deadline = Instant::now() + WAIT;
        loop {
            let o = self.snapshot().await.outbox;
            if o.records_pending == 0 && o.states_pending == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "writer never idle: {o:?}");
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Waits until `done()` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn place(sim: &Addr<SimPbx>, id: &str) -> CallId {
    let caller = Caller {
        leg_id: Some(LegId::new(id)),
        ..Caller::new("+15551230000", "800")
    };
    sim.send(PlaceCall(caller))
        .await
        .expect("sim answers")
        .call_id()
}

fn script(sim: &Addr<SimPbx>, ext: &str, actions: Vec<PhoneAction>) {
    sim.do_send(ScriptPhone {
        endpoint: format!("sim/{ext}"),
        actions,
    });
}

async fn hang_up(sim: &Addr<SimPbx>, id: &CallId) {
    let gone = sim
        .send(HangUpLeg {
            leg_id: LegId::new(id.as_str()),
            cause: HangupCause::Normal,
        })
        .await
        .expect("sim answers");
    assert!(gone, "{id} was still up at the PBX");
}

/// Every leg the PBX has, with its status.
async fn legs(sim: &Addr<SimPbx>) -> HashMap<LegId, LegStatus> {
    sim.send(ListLegs).await.expect("sim answers")
}

/// The fencing tokens of the agent legs (`{call}~{token}`) in `legs`.
fn tokens(legs: &HashMap<LegId, LegStatus>) -> Vec<u64> {
    legs.keys()
        .filter_map(|l| l.as_str().rsplit_once('~'))
        .filter_map(|(_, t)| t.parse().ok())
        .collect()
}

/// What the CRM holds of one interaction: record kinds and update events.
fn crm_of(crm: &EmulatorHandle, call: &CallId) -> (BTreeMap<String, usize>, Vec<String>) {
    let mut kinds = BTreeMap::new();
    let mut events = Vec::new();
    for r in crm
        .records()
        .iter()
        .filter(|r| r.interaction == call.as_str())
    {
        *kinds.entry(r.kind.clone()).or_insert(0) += 1;
        if r.kind == "interaction.update" {
            events.push(
                r.document["data"]["event"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            );
        }
    }
    (kinds, events)
}

/// `call` at the CRM: exactly one interaction, one phone log and one end
/// update.
fn one_interaction_phone_log_and_end(crm: &EmulatorHandle, call: &CallId) {
    let (kinds, events) = crm_of(crm, call);
    assert_eq!(
        kinds.get("interaction.create"),
        Some(&1),
        "{call}: {kinds:?}"
    );
    assert_eq!(kinds.get("phone_log.create"), Some(&1), "{call}: {kinds:?}");
    assert_eq!(
        events.iter().filter(|e| *e == "ended").count(),
        1,
        "{call}: {events:?}"
    );
}

/// How the first life ends.
#[derive(Clone, Copy, Debug)]
enum Stop {
    /// Killed: no shutdown step.
    Crash,
    /// `System::shutdown`.
    Orderly,
}

/// Calls talking, held, ringing and queued, an agent on a break; the first
/// life stops (`stop`); a queued caller hangs up while edgecc is down; the
/// second life carries everything on, routes the queued caller, and every
/// call ends with the CRM holding exactly what it should.
async fn restart_with_calls_up(stop: Stop) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data: PathBuf = dir.path().join("data");
    let crm = EmulatorHandle::start(EmulatorConfig::default())
        .await
        .expect("CRM emulator");
    let url = crm.webhook_url();
    let sim = SimPbx::new(7).start();
    for ext in ["101", "102", "104"] {
        script(&sim, ext, vec![PhoneAction::Answer { after_ms: 100 }]);
    }
    script(&sim, "103", vec![PhoneAction::NoAnswer]);

    let life = Life::start(&data, &url, &sim).await;
    // a1 talks on c1; a2 on c2, held; a3's phone rings with c3.
    let mut calls = Vec::new();
    for (agent, id) in [("a1", "c1"), ("a2", "c2"), ("a3", "c3")] {
        life.cmd(agent, AgentCommand::Login).await;
        life.cmd(agent, AgentCommand::Ready).await;
        calls.push(place(&sim, id).await);
        let want = if agent == "a3" { "reserved" } else { "talking" };
        life.until_state(agent, want).await;
    }
    let (c1, c2, c3) = (calls[0].clone(), calls[1].clone(), calls[2].clone());
    life.cmd("a2", AgentCommand::Call(CallAction::Hold)).await;
    // c4 then c5 wait in line; a4 is logged in, on a break.
    let c4 = place(&sim, "c4").await;
    actix_rt::time::sleep(Duration::from_millis(20)).await;
    let c5 = place(&sim, "c5").await;
    life.cmd("a4", AgentCommand::Login).await;
    life.cmd(
        "a4",
        AgentCommand::NotReady {
            reason_code: "break".to_string(),
        },
    )
    .await;
    let AgentState::Reserved { token: ringing, .. } = life.state("a3").await else {
        panic!("a3 not reserved");
    };
    let line = life.snapshot().await.queues[0].waiting.clone();
    assert_eq!(line, vec![c4.clone(), c5.clone()]);
    life.until_durable().await;
    let legs_before = legs(&sim).await;
    let old_tokens = tokens(&legs_before);
    assert!(old_tokens.contains(&ringing.0), "{legs_before:?}");
    let stats_before = sim.send(GetSimStats).await.expect("sim answers");

    match stop {
        Stop::Crash => life.crash().await,
        Stop::Orderly => life.shut_down().await,
    }
    // While edgecc is down, c5 gives up; everyone else stays on the line.
    hang_up(&sim, &c5).await;
    actix_rt::time::sleep(Duration::from_millis(200)).await;

    let life = Life::start(&data, &url, &sim).await;
    // The PBX side: nothing hung up but c5, no bridge destroyed.
    let stats = sim.send(GetSimStats).await.expect("sim answers");
    assert_eq!(stats.legs, stats_before.legs - 1, "only c5's leg is gone");
    assert_eq!(stats.bridges, stats_before.bridges, "no bridge destroyed");
    let mut expected = legs_before.clone();
    expected.remove(&LegId::new(c5.as_str()));
    assert_eq!(legs(&sim).await, expected, "every other leg as it was");
    // Talking and held calls carry on with their agents.
    assert!(matches!(life.state("a1").await, AgentState::Talking { call, .. } if call == c1));
    assert!(matches!(life.state("a2").await, AgentState::Talking { call, .. } if call == c2));
    let held = sim.send(GetLeg(LegId::new(c2.as_str()))).await.unwrap();
    assert!(held.is_some_and(|l| l.held), "c2 still hears music");
    let snap = life.snapshot().await;
    // The reconcile's figures (`/metrics`, the demo's restart line): five
    // live calls restored, four still at the PBX (c5's caller left).
    assert_eq!(
        snap.restart,
        Some(edgecc_actors::registry::RestartFigures {
            calls_restored: 5,
            calls_adopted: 4
        })
    );
    assert!(
        snap.calls.iter().any(|c| c.call == c2 && c.held),
        "{:?}",
        snap.calls
    );
    // The ringing offer is kept, with its token; no second offer.
    assert!(
        matches!(life.state("a3").await, AgentState::Reserved { call, token, .. } if call == c3 && token == ringing)
    );
    // a4 is still on its break, not logged out.
    assert!(matches!(
        life.state("a4").await,
        AgentState::NotReady { reason: NotReadyReason::Code(code), .. } if code == "break"
    ));
    // c4 keeps its place (c5 is closed as abandoned).
    assert_eq!(snap.queues[0].waiting, vec![c4.clone()]);
    assert_eq!(snap.ended.get("abandoned"), Some(&1), "{:?}", snap.ended);

    // a1 finishes c1, is Ready again (no wrap-up) and gets c4, the first
    // in line, with a token above every token of the first life.
    script(&sim, "101", vec![PhoneAction::Answer { after_ms: 100 }]);
    life.cmd("a1", AgentCommand::Call(CallAction::HangUp)).await;
    life.until_talking_on("a1", &c4).await;
    let new_tokens: Vec<u64> = tokens(&legs(&sim).await)
        .into_iter()
        .filter(|t| !old_tokens.contains(t))
        .collect();
    assert_eq!(new_tokens.len(), 1, "one new offer: {new_tokens:?}");
    assert!(
        new_tokens[0] > *old_tokens.iter().max().unwrap(),
        "token {new_tokens:?} reissued below {old_tokens:?}"
    );

    // Everyone hangs up: c3's caller while it rings, c2 while held, c4.
    for c in [&c3, &c2, &c4] {
        hang_up(&sim, c).await;
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let snap = life.snapshot().await;
        if snap.ended.values().sum::<u64>() >= 5 {
            assert_eq!(snap.terminal_anomalies, 0);
            assert_eq!(snap.ended.get("completed"), Some(&3), "{:?}", snap.ended);
            assert_eq!(snap.ended.get("abandoned"), Some(&2), "{:?}", snap.ended);
            assert!(snap.calls.is_empty(), "{:?}", snap.calls);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "calls never ended: {:?}",
            snap.calls
        );
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    for agent in ["a1", "a2", "a3"] {
        let s = life.state(agent).await;
        assert!(
            !matches!(s, AgentState::Reserved { .. } | AgentState::Talking { .. }),
            "{agent}: {s:?}"
        );
    }

    // The CRM side: each answered call one interaction, one phone log and
    // exactly one end update (the last); each record stored once; the
    // abandoned ones an interaction and a work item, no end update.
    let answered = [&c1, &c2, &c4];
    until("the CRM to hold every record", || {
        answered
            .iter()
            .all(|c| crm_of(&crm, c).1.last().map(String::as_str) == Some("ended"))
            && [&c3, &c5]
                .iter()
                .all(|c| crm_of(&crm, c).0.contains_key("work_item.create"))
    })
    .await;
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    for c in answered {
        one_interaction_phone_log_and_end(&crm, c);
        let (_, events) = crm_of(&crm, c);
        assert_eq!(
            events.last().map(String::as_str),
            Some("ended"),
            "{c}: {events:?}"
        );
    }
    let (_, events) = crm_of(&crm, &c2);
    assert!(events.starts_with(&["hold".to_string()]), "{events:?}");
    for c in [&c3, &c5] {
        let (kinds, events) = crm_of(&crm, c);
        assert_eq!(kinds.get("work_item.create"), Some(&1), "{c}: {kinds:?}");
        assert!(!kinds.contains_key("phone_log.create"), "{c}: {kinds:?}");
        assert!(events.is_empty(), "{c}: {events:?}");
    }
    life.shut_down().await;
}

/// Goal: a crash with calls up costs no call. Method: the scenario above
/// with the first life killed (its arbiter stopped, nothing flushed).
#[actix_rt::test]
async fn crash_with_calls_up_costs_no_call() {
    restart_with_calls_up(Stop::Crash).await;
}

/// Goal: an orderly restart (an upgrade) costs no call either. Method: the
/// scenario above with the first life stopped by `System::shutdown`.
#[actix_rt::test]
async fn orderly_restart_with_calls_up_costs_no_call() {
    restart_with_calls_up(Stop::Orderly).await;
}

/// Goal: a consult and a conference in progress survive a crash. Method:
/// a1 consults a2 on c1 (the caller on hold), a3 and a4 confer on c2; the
/// first life is killed; in the second, a1 completes the consult (a2 takes
/// c1), a3 leaves the conference (a4 carries on), no leg was hung up on
/// the way, and each call ends once with one end update at the CRM.
#[actix_rt::test]
async fn crash_during_consult_and_conference_costs_no_call() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data: PathBuf = dir.path().join("data");
    let crm = EmulatorHandle::start(EmulatorConfig::default())
        .await
        .expect("CRM emulator");
    let url = crm.webhook_url();
    let sim = SimPbx::new(11).start();
    for ext in ["101", "102", "103", "104"] {
        script(&sim, ext, vec![PhoneAction::Answer { after_ms: 100 }]);
    }
    let life = Life::start(&data, &url, &sim).await;
    for agent in ["a2", "a4"] {
        life.cmd(agent, AgentCommand::Login).await;
    }
    let mut calls = Vec::new();
    for (agent, id, partner) in [("a1", "k1", "a2"), ("a3", "k2", "a4")] {
        life.cmd(agent, AgentCommand::Login).await;
        life.cmd(agent, AgentCommand::Ready).await;
        let call = place(&sim, id).await;
        life.until_talking_on(agent, &call).await;
        life.cmd(
            agent,
            AgentCommand::Call(CallAction::Consult {
                target: partner.into(),
            }),
        )
        .await;
        life.until_state(partner, "talking").await;
        calls.push(call);
    }
    let (k1, k2) = (calls[0].clone(), calls[1].clone());
    life.cmd("a3", AgentCommand::Call(CallAction::ConferenceConsult))
        .await;
    let deadline = Instant::now() + WAIT;
    while !life
        .snapshot()
        .await
        .calls
        .iter()
        .any(|c| c.call == k2 && c.parties.len() == 2)
    {
        assert!(Instant::now() < deadline, "no conference on {k2}");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    life.until_durable().await;
    let legs_before = legs(&sim).await;
    life.crash().await;

    let life = Life::start(&data, &url, &sim).await;
    assert_eq!(legs(&sim).await, legs_before, "no leg hung up");
    for (agent, call) in [("a1", &k1), ("a2", &k1), ("a3", &k2), ("a4", &k2)] {
        let s = life.state(agent).await;
        assert!(
            matches!(&s, AgentState::Talking { call: c, .. } if c == call),
            "{agent}: {s:?}"
        );
    }
    let held = sim.send(GetLeg(LegId::new(k1.as_str()))).await.unwrap();
    assert!(
        held.is_some_and(|l| l.held),
        "k1's caller holds during the consult"
    );
    let snap = life.snapshot().await;
    let conference = snap
        .calls
        .iter()
        .find(|c| c.call == k2)
        .expect("k2 restored");
    assert_eq!(conference.parties.len(), 2, "{conference:?}");

    life.cmd("a1", AgentCommand::Call(CallAction::CompleteConsult))
        .await;
    life.cmd("a3", AgentCommand::Call(CallAction::HangUp)).await;
    for agent in ["a1", "a3"] {
        let deadline = Instant::now() + WAIT;
        while matches!(life.state(agent).await, AgentState::Talking { .. }) {
            assert!(Instant::now() < deadline, "{agent} still talking");
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    }
    life.until_talking_on("a2", &k1).await;
    life.until_talking_on("a4", &k2).await;
    let k1_leg = sim.send(GetLeg(LegId::new(k1.as_str()))).await.unwrap();
    assert!(k1_leg.is_some_and(|l| l.up && !l.held), "k1 back off hold");
    assert!(sim
        .send(GetLeg(LegId::new(k2.as_str())))
        .await
        .unwrap()
        .is_some());
    for c in [&k1, &k2] {
        hang_up(&sim, c).await;
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let snap = life.snapshot().await;
        if snap.ended.values().sum::<u64>() >= 2 {
            assert_eq!(snap.ended.get("completed"), Some(&2), "{:?}", snap.ended);
            assert_eq!(snap.terminal_anomalies, 0);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "calls never ended: {:?}",
            snap.calls
        );
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    until("the CRM to hold both ends", || {
        [&k1, &k2]
            .iter()
            .all(|c| crm_of(&crm, c).1.last().map(String::as_str) == Some("ended"))
    })
    .await;
    for c in [&k1, &k2] {
        one_interaction_phone_log_and_end(&crm, c);
    }
    life.shut_down().await;
}

/// Goal: a state record the next start cannot read costs that record
/// only. Method: an orderly stop with a1 Ready, then a value that is not
/// JSON written under a call's key and a record under a key not its own;
/// the next start skips both (logged), restores a1 Ready, and routes.
#[actix_rt::test]
async fn undecodable_state_records_are_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data: PathBuf = dir.path().join("data");
    let crm = EmulatorHandle::start(EmulatorConfig::default())
        .await
        .expect("CRM emulator");
    let url = crm.webhook_url();
    let sim = SimPbx::new(3).start();
    let life = Life::start(&data, &url, &sim).await;
    life.cmd("a1", AgentCommand::Login).await;
    life.cmd("a1", AgentCommand::Ready).await;
    life.until_durable().await;
    life.shut_down().await;
    {
        let storage = open_storage(&config(&url), &data).expect("offline open");
        let tree = edgecc::system::storage::Tree::ActorState
            .open(&storage)
            .expect("tree");
        let a1 = tree.get(b"a/a1").expect("read").expect("a1 persisted");
        tree.put(b"c/junk", b"{not json").await.expect("put");
        tree.put(b"a/a2", &a1).await.expect("put");
    }
    let life = Life::start(&data, &url, &sim).await;
    assert!(matches!(life.state("a1").await, AgentState::Ready { .. }));
    assert!(matches!(life.state("a2").await, AgentState::LoggedOut));
    script(&sim, "101", vec![PhoneAction::Answer { after_ms: 50 }]);
    let call = place(&sim, "j1").await;
    life.until_talking_on("a1", &call).await;
    life.shut_down().await;
}

/// The daemon's config for Asterisk: agents a1..a4 on `PJSIP/101`..`104`.
fn config_on_asterisk(url: &str) -> Config {
    let mut c = config(url);
    for a in &mut c.contact_center.agents {
        a.endpoint = Some(format!("PJSIP/{}", a.extension));
    }
    c
}

/// The whole daemon (composition root, durable storage, CRM sync) on
/// Asterisk (the ARI emulator, which lives on as Asterisk does): a talking
/// call and a queued caller; the daemon crashes and starts again on the
/// same data directory. Nothing is hung up, handed back to the dialplan or
/// destroyed; the talking call is still bridged with its agent, who is
/// still talking on it; the queued caller is offered to the next agent;
/// both calls end with one interaction, one phone log and one end update
/// at the CRM.
#[actix_rt::test]
async fn restart_on_asterisk_keeps_the_talking_call_and_the_queued_caller() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data: PathBuf = dir.path().join("data");
    let crm = EmulatorHandle::start(EmulatorConfig::default())
        .await
        .expect("CRM emulator");
    let url = crm.webhook_url();
    let emu = AriEmulator::start(AriEmulatorConfig::default()).expect("ARI emulator");
    for ext in ["101", "102"] {
        emu.set_endpoint(
            &format!("PJSIP/{ext}"),
            EndpointBehaviour::AnswerAfter { ring_ms: 50 },
        );
    }
    let adapter = {
        let c = emu.config();
        let mut s =
            edgecc::ari::AriSettings::for_test(&emu.base_url(), &c.app, &c.user, &c.password);
        s.reconnect_backoff_base_ms = 20;
        s.reconnect_backoff_cap_ms = 200;
        move || PbxAdapter::Ari(AriPbx::new(s).expect("adapter"))
    };
    let life = Life::start_with(&data, &url, config_on_asterisk, adapter.clone()).await;
    until("the app is up", || emu.app_active()).await;
    life.cmd("a1", AgentCommand::Login).await;
    life.cmd("a1", AgentCommand::Ready).await;
    let c1 = CallId::new(
        emu.inbound_call("5552001", "Caller", "800", &[])
            .expect("app up"),
    );
    life.until_talking_on("a1", &c1).await;
    let c2 = CallId::new(
        emu.inbound_call("5552002", "Caller", "800", &[])
            .expect("app up"),
    );
    let deadline = Instant::now() + WAIT;
    while life.snapshot().await.queues[0].waiting != vec![c2.clone()] {
        assert!(Instant::now() < deadline, "c2 never queued");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    life.until_durable().await;
    let before = crate::ari_harness::given_away(&emu);
    life.crash().await;
    until("Asterisk sees the app gone", || !emu.app_active()).await;

    let life = Life::start_with(&data, &url, config_on_asterisk, adapter).await;
    until("the app is up again", || emu.app_active()).await;
    life.until_talking_on("a1", &c1).await;
    // The adapter checks for orphans 2 s after a reconcile: let it.
    actix_rt::time::sleep(Duration::from_millis(2_300)).await;
    assert_eq!(
        crate::ari_harness::given_away(&emu),
        before,
        "nothing hung up, handed back or destroyed"
    );
    let main_bridge = edgecc_actors::ids::BridgeId::main(&c1).0;
    let members = emu
        .state()
        .bridge(&main_bridge)
        .map(|b| b.channels.clone())
        .unwrap_or_default();
    assert!(
        members.contains(&c1.as_str().to_string()) && members.len() == 2,
        "c1 still bridged with its agent: {members:?}"
    );
    assert!(matches!(life.state("a1").await, AgentState::Talking { call, .. } if call == c1));
    // The queued caller kept its place: the next agent gets it.
    life.cmd("a2", AgentCommand::Login).await;
    life.cmd("a2", AgentCommand::Ready).await;
    life.until_talking_on("a2", &c2).await;
    for c in [&c1, &c2] {
        emu.caller_hangup(c.as_str()).expect("caller hangs up");
    }
    life.until_state("a1", "ready").await;
    life.until_state("a2", "ready").await;
    until("the CRM has both calls' end updates", || {
        [&c1, &c2]
            .iter()
            .all(|c| crm_of(&crm, c).1.contains(&"ended".to_string()))
    })
    .await;
    for c in [&c1, &c2] {
        one_interaction_phone_log_and_end(&crm, c);
    }
    life.shut_down().await;
}
