//! Restart figures: with 1,000 live calls and 2,000 agents, edgecc is
//! killed (no orderly stop) and started again on the same data directory;
//! how long from the start to READY, and to "all calls re-adopted".
//!
//! Each life of edgecc runs on its own arbiter (its own thread), assembled
//! as `edgecc run` assembles it (`open_storage`, `SystemParts::start`,
//! durable storage, no CRM); the PBX lives outside it and outlives it, as
//! `tests/restart.rs` does:
//!
//! - `sim`: the simulated PBX, on the bench's own thread;
//! - `ari`: the ARI emulator on 127.0.0.1 (its own threads), driven by the
//!   real adapter (`AriPbx`) over HTTP and the WebSocket.
//!
//! Set-up (first life, fresh data directory): 2,000 agents log in and go
//! ready, 1,000 callers arrive and are connected (they talk for good);
//! once every state change is durable (`states_pending` 0) the life is
//! killed: its arbiter stops, dropping every actor, timer and write in
//! flight with no shutdown step, and the storage's clean marker is
//! removed so the next open is the one a SIGKILL leaves (the unclean open:
//! the storage checks sled in the background). Then, `restarts` times:
//! a new life starts on that data directory, and is timed:
//!
//! - **open**: `open_storage` returned;
//! - **READY**: `SystemParts::start` returned: storage recovered, actors
//!   restored from the state tree, PBX adapter started (on the simulated
//!   PBX its legs listed and reconciled), the point where `edgecc run`
//!   tells systemd `READY=1` (HTTP, the admin socket and the first health
//!   check are left out here);
//! - **all re-adopted**: every restored call reconciled with the PBX: on
//!   ARI the adapter's adoption is done (`AriPbx::adoption`: link up,
//!   `GET /channels` and `/bridges`, adopted) and the registry has taken
//!   its `Reconcile` (a snapshot round trip after it); on the simulated PBX
//!   the same round trip after READY (its reconcile is inside `start`).
//!
//! After each restart the bench checks that all calls are still connected
//! (and on ARI that the adoption found every channel, none gone and no
//! orphan), then kills that life too.
//!
//! Run: `cargo bench --locked --bench restart` (env `EDGECC_BENCH_RESTART_CALLS`
//! default 1,000; `EDGECC_BENCH_RESTART_AGENTS` default 2,000;
//! `EDGECC_BENCH_RESTARTS` default 3; `EDGECC_BENCH_RESTART_PBX` = `sim`,
//! `ari` or `sim,ari`, the default).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use actix::prelude::*;
use edgecc::ari::{AriPbx, AriSettings};
use edgecc::ari_emulator::{AriEmulator, AriEmulatorConfig, EndpointBehaviour};
use edgecc::config::{Config, CrmAdapterConfig};
use edgecc::pbx::PbxAdapter;
use edgecc::system::storage::open_storage;
use edgecc::system::SystemParts;
use edgecc_actors::config::{AgentConfig, FinalDestination, QueueConfig, Strategy};
use edgecc_actors::registry::{AgentCommand, AgentRequest, Registry, Snapshot};
use edgecc_actors::sim::{Caller, PhoneProfile, PlaceCall, SetPhoneProfile, SimPbx};
use edgecc_actors::{AgentId, ContactCenterConfig, LegId};
use tokio::sync::oneshot;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace(['_', ','], "").parse().ok())
        .unwrap_or(default)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Which PBX a run restarts in front of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// The simulated PBX, on the bench's thread.
    Sim,
    /// The ARI emulator on loopback.
    Ari,
}

/// One queue (DNIS 800), `agents` agents in it; on ARI each agent has its
/// own PJSIP endpoint at the emulator.
fn contact_center(agents: usize, kind: Kind) -> ContactCenterConfig {
    let mut cc = ContactCenterConfig {
        site_id: "bench".into(),
        ..ContactCenterConfig::default()
    };
    cc.timers.offer_timeout_ms = 20_000;
    cc.queues.push(QueueConfig {
        id: "q".into(),
        name: "q".into(),
        dnis: vec!["800".into()],
        strategy: Strategy::LongestIdle,
        priority: 0,
        max_wait_ms: 600_000,
        wrap_up_ms: 0,
        final_destination: FinalDestination::default(),
        required_skills: vec![],
        routing: Default::default(),
        sticky: Default::default(),
        limits: Default::default(),
        announcements: Default::default(),
        callback: Default::default(),
        wrap_up_codes: Default::default(),
    });
    for i in 0..agents {
        cc.agents.push(AgentConfig {
            id: format!("a{i}"),
            name: format!("a{i}"),
            extension: format!("{}", 10_000 + i),
            endpoint: (kind == Kind::Ari).then(|| format!("PJSIP/{}", 10_000 + i)),
            skills: vec![],
            queues: vec!["q".into()],
            auto_accept: false,
            wrap_up_ms: None,
            reject_delay_ms: None,
        });
    }
    cc
}

fn config(agents: usize, kind: Kind) -> Config {
    let cc = contact_center(agents, kind);
    let mut config = Config {
        site_id: cc.site_id.clone(),
        contact_center: cc,
        ..Config::default()
    };
    config.crm.adapter = CrmAdapterConfig::None;
    config
}

/// How a life reaches its PBX (built on the life's own thread).
#[derive(Clone)]
enum PbxLink {
    /// The simulated PBX on the bench's thread.
    Sim(Addr<SimPbx>),
    /// The ARI emulator: its base URL, app, user and password.
    Ari(String, String, String, String),
}

impl PbxLink {
    fn adapter(&self) -> PbxAdapter {
        match self {
            PbxLink::Sim(sim) => PbxAdapter::Sim(sim.clone()),
            PbxLink::Ari(url, app, user, password) => {
                let mut s = AriSettings::for_test(url, app, user, password);
                s.reconnect_backoff_base_ms = 20;
                s.reconnect_backoff_cap_ms = 200;
                PbxAdapter::Ari(AriPbx::new(s).expect("ARI adapter"))
            }
        }
    }
}

/// What a life's start took, from its first instruction.
#[derive(Clone, Copy, Debug)]
struct Timing {
    /// `open_storage` returned.
    open: Duration,
    /// `SystemParts::start` returned (READY).
    ready: Duration,
}

/// What the re-adoption found and when it was done.
#[derive(Clone, Debug)]
struct Adopted {
    /// From the life's first instruction to every call re-adopted.
    at: Duration,
    /// ARI: channels, bridges, gone, orphans and the adapter's own
    /// `took_ms`; `None` on the simulated PBX.
    ari: Option<(usize, usize, usize, usize, u64)>,
}

/// One life of edgecc on its own arbiter.
struct Life {
    /// The life's thread.
    arbiter: Arbiter,
    /// The contact center's facade.
    registry: Addr<Registry>,
    /// How long the start took.
    timing: Timing,
    /// Told once every restored call is re-adopted.
    adopted: oneshot::Receiver<Adopted>,
}

impl Life {
    /// Starts a life on `data`; `restored`: the data directory holds a
    /// previous life's state (watch for the re-adoption).
    async fn start(data: &Path, config: &Config, pbx: &PbxLink, restored: bool) -> Life {
        let arbiter = Arbiter::new();
        let (ready_tx, ready_rx) = oneshot::channel();
        let (adopted_tx, adopted) = oneshot::channel();
        let (data, config, pbx) = (data.to_path_buf(), config.clone(), pbx.clone());
        arbiter.spawn_fn(move || {
            actix_rt::spawn(async move {
                let t0 = Instant::now();
                let storage = open_storage(&config, &data).expect("open the data directory");
                let open = t0.elapsed();
                let system = SystemParts::new(config, storage)
                    .with_pbx(pbx.adapter())
                    .start()
                    .await
                    .expect("system starts");
                let ready = t0.elapsed();
                let registry = system.running.registry.clone();
                let _ = ready_tx.send((registry.clone(), Timing { open, ready }));
                let ari = match &system.running.ari {
                    Some(ari) if restored => loop {
                        if let Some(r) = ari.adoption() {
                            break Some((r.channels, r.bridges, r.gone, r.orphans, r.took_ms));
                        }
                        actix_rt::time::sleep(Duration::from_millis(1)).await;
                    },
                    _ => None,
                };
                // The registry has taken the `Reconcile` sent before this.
                let _ = registry.send(Snapshot { with_queues: false }).await;
                let _ = adopted_tx.send(Adopted {
                    at: t0.elapsed(),
                    ari,
                });
                // Lives on until its arbiter is stopped (the crash).
                std::future::pending::<()>().await;
                drop(system);
            });
        });
        let (registry, timing) = ready_rx.await.expect("the life started");
        Life {
            arbiter,
            registry,
            timing,
            adopted,
        }
    }

    /// Kills the life: its arbiter stops, dropping every actor, timer and
    /// write in flight; then the clean marker goes, as after a SIGKILL.
    async fn crash(self, data: &Path) {
        let Life { arbiter, .. } = self;
        arbiter.stop();
        actix_rt::task::spawn_blocking(move || arbiter.join())
            .await
            .expect("join")
            .expect("the life's thread ends");
        remove_clean_markers(data);
    }
}

/// Removes the storage's clean marker(s) under `dir`.
fn remove_clean_markers(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            remove_clean_markers(&p);
        } else if p.file_name().and_then(|n| n.to_str()) == Some(edgecc_storage::CLEAN_FILE) {
            let _ = std::fs::remove_file(&p);
        }
    }
}

/// Calls connected now, and the outbox's pending state records.
async fn census(registry: &Addr<Registry>) -> (usize, usize) {
    let snap = registry
        .send(Snapshot { with_queues: false })
        .await
        .expect("registry");
    let connected = snap.calls.iter().filter(|c| c.phase == "connected").count();
    (
        connected,
        (snap.outbox.states_pending + snap.outbox.records_pending) as usize,
    )
}

/// Waits until `pred` holds on the census, up to `limit`.
async fn wait_census(
    registry: &Addr<Registry>,
    what: &str,
    limit: Duration,
    pred: impl Fn(usize, usize) -> bool,
) {
    let deadline = Instant::now() + limit;
    loop {
        let (connected, pending) = census(registry).await;
        if pred(connected, pending) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "bench: timed out waiting for {what} (connected {connected}, pending {pending})"
        );
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sets up `calls` connected calls with `agents` agents, then kills and
/// restarts edgecc `restarts` times, printing one line per restart.
async fn run(kind: Kind, calls: usize, agents: usize, restarts: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data: PathBuf = dir.path().join("data");
    let config = config(agents, kind);
    let mut emu: Option<AriEmulator> = None;
    let pbx = match kind {
        Kind::Sim => {
            let sim = SimPbx::new(7).start();
            sim.send(SetPhoneProfile {
                endpoint: None,
                profile: PhoneProfile {
                    answer_p: 1.0,
                    reject_p: 0.0,
                    answer_ms: (10, 30),
                    reject_ms: 0,
                },
            })
            .await
            .expect("sim");
            PbxLink::Sim(sim)
        }
        Kind::Ari => {
            let e = AriEmulator::start(AriEmulatorConfig::default()).expect("emulator");
            for i in 0..agents {
                e.set_endpoint(
                    &format!("PJSIP/{}", 10_000 + i),
                    EndpointBehaviour::AnswerAfter { ring_ms: 10 },
                );
            }
            let c = e.config().clone();
            let link = PbxLink::Ari(e.base_url(), c.app, c.user, c.password);
            emu = Some(e);
            link
        }
    };

    // First life: agents ready, calls connected, everything durable.
    let t = Instant::now();
    let life = Life::start(&data, &config, &pbx, false).await;
    if let Some(e) = &emu {
        let e = e.clone();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !e.app_active() {
            assert!(
                Instant::now() < deadline,
                "bench: the ARI link never came up"
            );
            actix_rt::time::sleep(Duration::from_millis(5)).await;
        }
    }
    for i in 0..agents {
        for command in [AgentCommand::Login, AgentCommand::Ready] {
            life.registry
                .send(AgentRequest {
                    agent: AgentId::new(format!("a{i}")),
                    command,
                })
                .await
                .expect("registry")
                .expect("agent command");
        }
    }
    let period = Duration::from_micros(2_000); // 500 calls/s
    let placing = Instant::now();
    for i in 0..calls {
        let due = placing + period * i as u32;
        let now = Instant::now();
        if due > now {
            actix_rt::time::sleep(due - now).await;
        }
        match (&pbx, &emu) {
            (PbxLink::Sim(sim), _) => {
                let mut c = Caller::new("+15550000000", "800");
                c.leg_id = Some(LegId::new(format!("c{i}")));
                sim.do_send(PlaceCall(c));
            }
            (PbxLink::Ari(..), Some(e)) => {
                e.inbound_call(&format!("555{i:07}"), "Caller", "800", &[])
                    .expect("the app is connected");
            }
            (PbxLink::Ari(..), None) => unreachable!("the ARI run has an emulator"),
        }
    }
    wait_census(
        &life.registry,
        "every call connected and durable",
        Duration::from_secs(180),
        |connected, pending| connected >= calls && pending == 0,
    )
    .await;
    println!(
        "{:>4} set-up: {agents} agents ready, {calls} calls connected and durable in {:.1} s{}; load {}",
        format!("{kind:?}").to_lowercase(),
        t.elapsed().as_secs_f64(),
        match &emu {
            Some(e) => format!(
                " ({} channels, {} bridges at the emulator)",
                e.channels().len(),
                e.bridges().len()
            ),
            None => String::new(),
        },
        load_average()
    );
    let mut life = life;
    for n in 1..=restarts {
        life.crash(&data).await;
        if let Some(e) = &emu {
            let e = e.clone();
            while e.app_active() {
                actix_rt::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let next = Life::start(&data, &config, &pbx, true).await;
        let Life {
            arbiter,
            registry,
            timing,
            adopted,
        } = next;
        let adopted = tokio::time::timeout(Duration::from_secs(120), adopted)
            .await
            .expect("re-adopted in time")
            .expect("the life reports");
        let (connected, _) = census(&registry).await;
        assert_eq!(
            connected, calls,
            "every call still connected after the restart"
        );
        if let Some((channels, _, gone, orphans, _)) = adopted.ari {
            assert_eq!(
                (channels, gone, orphans),
                (2 * calls, 0, 0),
                "every channel adopted"
            );
        }
        println!(
            "{:>4} restart {n}: open {:>7.1} ms  READY {:>7.1} ms  all {calls} calls re-adopted {:>7.1} ms{}  load {}",
            format!("{kind:?}").to_lowercase(),
            timing.open.as_secs_f64() * 1e3,
            timing.ready.as_secs_f64() * 1e3,
            adopted.at.as_secs_f64() * 1e3,
            match adopted.ari {
                Some((c, b, _, _, took)) => {
                    format!("  (adapter: {c} channels, {b} bridges adopted; {took} ms from link start)")
                }
                None => String::new(),
            },
            load_average()
        );
        life = Life {
            arbiter,
            registry,
            timing,
            adopted: oneshot::channel().1,
        };
    }
    life.crash(&data).await;
    drop(emu);
}

fn main() {
    let calls = env_usize("EDGECC_BENCH_RESTART_CALLS", 1_000);
    let agents = env_usize("EDGECC_BENCH_RESTART_AGENTS", 2_000);
    let restarts = env_usize("EDGECC_BENCH_RESTARTS", 3);
    let kinds: Vec<Kind> = std::env::var("EDGECC_BENCH_RESTART_PBX")
        .unwrap_or_else(|_| "sim,ari".into())
        .split(',')
        .filter_map(|k| match k.trim() {
            "sim" => Some(Kind::Sim),
            "ari" => Some(Kind::Ari),
            _ => None,
        })
        .collect();
    println!(
        "restart after a crash: {calls} live calls, {agents} agents, durable storage, {restarts} restarts per PBX; {} cores; load {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    for kind in kinds {
        actix::System::new().block_on(run(kind, calls, agents, restarts));
    }
}
