//! Routing with persistence on: the routing benchmark's set-up (simulated
//! PBX in real time, 2,000 agents in 20 queues, each agent in 2 queues,
//! phones answer after 20-60 ms, callers talk 400 ms, no wrap-up), run
//! side by side:
//!
//! - `memory`: the actors alone with the in-memory outbox and no state
//!   (what `cargo bench -p edgecc-actors --bench routing` measures);
//! - `durable`: the whole system as `edgecc run` assembles it
//!   (`SystemParts`) on a temporary data directory: CRM records in the
//!   durable outbox, every state change in the `actor_state` tree through
//!   the same ordered writer (no CRM configured, so nothing is delivered);
//! - `skills` and `skills-d`: the same two with skills-based routing
//!   (issue 18): 20 skills spread over the agents at levels 1-5 (each
//!   agent holds its two queues' skills and two more), every queue needing
//!   its skill at level 3 with escalation steps (level 1 after 2 s, any
//!   member after 5 s), and every other call asking a second skill of its
//!   own from attached data (`skills = s{n}:2`, held by half the queue's
//!   members), so the pick is the exact best match of two skills. Every
//!   offer is explained ([`edgecc_actors::queue::explain`]) in all runs.
//!
//! - `records` and `skills-records`: the actors as `durable` wires them
//!   (state through the outbox writer's FIFO, coalesced per key in each
//!   batch) but committed to a store that only JSON-encodes each record as
//!   the daemon's state store does and counts it, by kind: what one routed
//!   call costs the storage (records and bytes per offer), measured without
//!   a disk and whatever the machine's load.
//!
//! - `drain` and `skills-drain`: `durable` and `skills-d` with the webhook
//!   CRM configured (the CRM emulator in this process): a stage with the
//!   CRM down builds an outbox backlog, then routing is timed while the
//!   sync worker replays it (issue 15: routing within its goals while the
//!   outbox drains). See [`drain_run`].
//!
//! Latency = caller placed at the PBX to the offer's originate reaching it.
//! Prints, per rate, the placement rate achieved, offers, p50/p99/max and
//! the backlog left in the queues; for the durable runs, the CRM and state
//! records written; the load average beside each line.
//!
//! Run: `cargo bench --bench routing_durable` (rates with
//! `EDGECC_BENCH_RATES=500,1000`, seconds per stage with
//! `EDGECC_BENCH_STAGE_SECS=4`, runs with
//! `EDGECC_BENCH_RUNS=memory,durable,skills,skills-d`; add `records`,
//! `skills-records` for the counts, `drain`, `skills-drain` for routing
//! while the CRM sync replays a backlog).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use edgecc::config::{Config, CrmAdapterConfig, CrmSettings};
use edgecc::pbx::PbxAdapter;
use edgecc::system::storage::open_storage;
use edgecc::system::SystemParts;
use edgecc_actors::config::{
    AgentConfig, EscalationStep, FinalDestination, QueueConfig, SkillLevel, SkillRequirement,
    Strategy,
};
use edgecc_actors::durable::{StateRecord, StateStore};
use edgecc_actors::ports::{AttachedVar, LocalBoxFuture, OutboxError};
use edgecc_actors::registry::{AgentCommand, AgentRequest, ContactCenter, Registry, Snapshot};
use edgecc_actors::sim::{
    Caller, ConnectEvents, PhoneProfile, PlaceCall, SetPhoneProfile, SimPbx, SimPbxPort,
};
use edgecc_actors::{AgentId, ContactCenterConfig, LegId, MemoryOutbox, TokioClock};

const AGENTS: usize = 2_000;
const QUEUES: usize = 20;
/// Skills of the skilled runs: one per queue.
const SKILLS: usize = 20;

type Arrivals = Rc<RefCell<HashMap<String, Instant>>>;
/// Per offer: when its caller was placed, and the µs to the offer.
type Latencies = Rc<RefCell<Vec<(Instant, u64)>>>;

/// A skill level in 1..=5, spread evenly by a hash of (agent, slot).
fn level_of(agent: usize, slot: usize) -> u8 {
    let mut x = (agent as u64) << 8 | slot as u64;
    x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    1 + (x % 5) as u8
}

fn skill(n: usize) -> String {
    format!("s{}", n % SKILLS)
}

fn contact_center(skilled: bool) -> ContactCenterConfig {
    let mut cfg = ContactCenterConfig::default();
    cfg.timers.offer_timeout_ms = 10_000;
    for q in 0..QUEUES {
        cfg.queues.push(QueueConfig {
            id: format!("q{q}"),
            name: String::new(),
            dnis: vec![format!("8{q:03}")],
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
    }
    if skilled {
        for (q, queue) in cfg.queues.iter_mut().enumerate() {
            queue.required_skills = vec![SkillRequirement {
                skill: skill(q),
                level_min: 3,
            }];
            queue.routing.steps = vec![
                EscalationStep {
                    after_ms: 2_000,
                    level_min: Some(1),
                    any_member: false,
                    overflow: false,
                },
                EscalationStep {
                    after_ms: 5_000,
                    level_min: None,
                    any_member: true,
                    overflow: false,
                },
            ];
        }
    }
    for a in 0..AGENTS {
        // Its two queues' skills, and two more: a call to queue q asking
        // s{q+3} finds it with the members whose first queue is q.
        let skills = if skilled {
            [a, a + 7, a + 3, a + 11]
                .iter()
                .enumerate()
                .map(|(slot, n)| SkillLevel {
                    skill: skill(*n),
                    level: level_of(a, slot),
                })
                .collect()
        } else {
            vec![]
        };
        cfg.agents.push(AgentConfig {
            id: format!("a{a}"),
            name: String::new(),
            extension: format!("{}", 100_000 + a),
            endpoint: None,
            skills,
            queues: vec![format!("q{}", a % QUEUES), format!("q{}", (a + 7) % QUEUES)],
            auto_accept: false,
            wrap_up_ms: None,
            reject_delay_ms: None,
        });
    }
    cfg
}

/// The simulated PBX, timing each offer against its caller's arrival.
fn sim(arrivals: Arrivals, lat: Latencies) -> Addr<SimPbx> {
    SimPbx::new(7)
        .with_originate_hook(Box::new(move |leg| {
            if let Some(t) = arrivals.borrow_mut().remove(leg.call_id().as_str()) {
                lat.borrow_mut().push((t, t.elapsed().as_micros() as u64));
            }
        }))
        .start()
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rates() -> Vec<u64> {
    std::env::var("EDGECC_BENCH_RATES")
        .ok()
        .map(|v| v.split(',').filter_map(|r| r.trim().parse().ok()).collect())
        .filter(|v: &Vec<u64>| !v.is_empty())
        .unwrap_or_else(|| vec![500, 1_000])
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Logs every agent in and makes it Ready, answering like the routing
/// bench's phones.
async fn staff(reg: &Addr<Registry>, sim: &Addr<SimPbx>) {
    sim.send(SetPhoneProfile {
        endpoint: None,
        profile: PhoneProfile {
            answer_p: 1.0,
            reject_p: 0.0,
            answer_ms: (20, 60),
            reject_ms: 0,
        },
    })
    .await
    .expect("sim");
    for a in 0..AGENTS {
        for command in [AgentCommand::Login, AgentCommand::Ready] {
            reg.send(AgentRequest {
                agent: AgentId::new(format!("a{a}")),
                command,
            })
            .await
            .expect("registry")
            .expect("agent command");
        }
    }
}

/// One stage's arrivals.
struct Stage<'a> {
    /// Run name, the prefix of its call ids.
    mode: &'a str,
    /// Skilled calls (every other one asks a second skill).
    skilled: bool,
    /// The PBX the callers are placed at.
    sim: &'a Addr<SimPbx>,
    /// Arrival times by call, read by the originate hook.
    arrivals: &'a Arrivals,
}

impl Stage<'_> {
    /// Places callers at `rate` per second for `secs`, `each_tick` called
    /// every millisecond tick (after the tick's callers); returns the
    /// callers placed and the seconds it took.
    async fn place(
        &self,
        seq: &mut u64,
        rate: u64,
        secs: u64,
        mut each_tick: impl FnMut(),
    ) -> (u64, f64) {
        let start = Instant::now();
        let mut placed = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        while start.elapsed() < Duration::from_secs(secs) {
            tick.tick().await;
            let due = (start.elapsed().as_micros() as u64 * rate) / 1_000_000;
            while placed < due {
                *seq += 1;
                placed += 1;
                let id = format!("{}{rate}-{seq}", self.mode);
                self.arrivals
                    .borrow_mut()
                    .insert(id.clone(), Instant::now());
                let q = *seq as usize % QUEUES;
                let mut c = Caller::new("+15550000000", &format!("8{q:03}"));
                if self.skilled && *seq % 2 == 0 {
                    c.attached.push(AttachedVar {
                        key: "skills".into(),
                        value: format!("{}:2", skill(q + 3)),
                    });
                }
                c.leg_id = Some(LegId::new(id));
                c.talk_ms = Some(400);
                self.sim.do_send(PlaceCall(c));
            }
            each_tick();
        }
        (placed, start.elapsed().as_secs_f64())
    }
}

/// Latencies (µs), sorted.
fn sorted(samples: impl Iterator<Item = u64>) -> Vec<u64> {
    let mut l: Vec<u64> = samples.collect();
    l.sort_unstable();
    l
}

/// Runs the stages on a started system.
async fn stages(
    mode: &str,
    skilled: bool,
    reg: &Addr<Registry>,
    sim: &Addr<SimPbx>,
    arrivals: &Arrivals,
    lat: &Latencies,
    counts: Option<&Counts>,
) {
    staff(reg, sim).await;
    let stage_secs: u64 = env_or("EDGECC_BENCH_STAGE_SECS", 4);
    let stage = Stage {
        mode,
        skilled,
        sim,
        arrivals,
    };
    let mut seq = 0u64;
    for rate in rates() {
        lat.borrow_mut().clear();
        if let Some(c) = counts {
            c.borrow_mut().clear();
        }
        let (placed, elapsed) = stage.place(&mut seq, rate, stage_secs, || {}).await;
        let snap = reg
            .send(Snapshot { with_queues: true })
            .await
            .expect("registry");
        let backlog: usize = snap.queues.iter().map(|q| q.waiting.len()).sum();
        let l = sorted(lat.borrow().iter().map(|(_, us)| *us));
        println!(
            "{:>8} {:>8} {:>9.0} {:>7} {:>7} {:>7} {:>8} {:>8} {:>10} {:>10}  load {}",
            mode,
            rate,
            placed as f64 / elapsed,
            l.len(),
            pct(&l, 0.5),
            pct(&l, 0.99),
            l.last().copied().unwrap_or(0),
            backlog,
            snap.outbox.records_written,
            snap.outbox.states_written,
            load_average()
        );
        // Let the stage drain before the next one.
        tokio::time::sleep(Duration::from_secs(2)).await;
        if let Some(c) = counts {
            print_counts(&c.borrow(), l.len());
        }
    }
}

/// Records and JSON bytes committed, by kind (a batch's records are
/// coalesced per key first, as the writer does for the daemon).
type Counts = Rc<RefCell<CountsInner>>;

/// What [`CountingStore`] saw in one stage.
#[derive(Default)]
struct CountsInner {
    /// Commits (one group commit each in the daemon).
    commits: u64,
    /// Per kind: (records, bytes).
    kinds: std::collections::BTreeMap<&'static str, (u64, u64)>,
    /// Call records' JSON bytes by top-level field: which parts of the
    /// per-step call record the bytes are.
    call_fields: std::collections::BTreeMap<String, u64>,
}

impl CountsInner {
    fn clear(&mut self) {
        *self = Self::default();
    }
}

/// A state store that encodes each record as the daemon's does (one JSON
/// value per key; a removal writes no value) and counts it.
struct CountingStore(Counts);

fn kind_of(r: &StateRecord) -> &'static str {
    match r {
        StateRecord::Agent(_) => "agent",
        StateRecord::Call(_) => "call",
        StateRecord::CallRemoved(_) => "call removed",
        StateRecord::QueueOrder { .. } => "queue order",
        StateRecord::Tokens { .. } => "tokens",
        StateRecord::Sticky(_) | StateRecord::StickyRemoved(_) => "sticky",
        StateRecord::PbxStartup { .. } => "pbx startup",
        StateRecord::CallDetail(_) => "call detail",
        StateRecord::AgentInterval(_) => "agent interval",
    }
}

impl StateStore for CountingStore {
    fn commit(
        &self,
        records: Vec<StateRecord>,
    ) -> LocalBoxFuture<'static, Result<(), OutboxError>> {
        let mut c = self.0.borrow_mut();
        c.commits += 1;
        for r in &records {
            let key = r.key().to_bytes().len() as u64;
            let value = if r.is_removal() {
                0
            } else {
                serde_json::to_vec(r).map_or(0, |v| v.len() as u64)
            };
            let e = c.kinds.entry(kind_of(r)).or_default();
            e.0 += 1;
            e.1 += key + value;
            if let StateRecord::Call(call) = r {
                if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(call) {
                    for (name, v) in fields {
                        let n = serde_json::to_vec(&v).map_or(0, |v| v.len() as u64);
                        *c.call_fields.entry(name).or_default() += n;
                    }
                }
            }
        }
        Box::pin(std::future::ready(Ok(())))
    }
}

fn print_counts(c: &CountsInner, offers: usize) {
    let per = |n: u64| n as f64 / offers.max(1) as f64;
    let (mut records, mut bytes) = (0, 0);
    for (kind, (n, b)) in &c.kinds {
        records += n;
        bytes += b;
        println!(
            "    {kind:>15}: {:>7.2} records/offer {:>8.0} bytes/offer {:>6} bytes/record",
            per(*n),
            per(*b),
            b / (*n).max(1)
        );
    }
    println!(
        "    {:>15}: {:>7.2} records/offer {:>8.0} bytes/offer; {} commits, {:.1} records/commit",
        "all",
        per(records),
        per(bytes),
        c.commits,
        records as f64 / c.commits.max(1) as f64
    );
    let calls = c.kinds.get("call").map_or(0, |(n, _)| *n).max(1);
    let mut fields: Vec<_> = c.call_fields.iter().collect();
    fields.sort_by(|a, b| b.1.cmp(a.1));
    let shown: Vec<String> = fields
        .iter()
        .take(6)
        .map(|(name, b)| format!("{name} {}", *b / calls))
        .collect();
    println!(
        "    call record's largest fields, bytes/record: {}",
        shown.join(", ")
    );
}

async fn memory_run(mode: &str, skilled: bool) {
    let (arrivals, lat): (Arrivals, Latencies) = (Rc::default(), Rc::default());
    let sim = sim(arrivals.clone(), lat.clone());
    let reg = ContactCenter::start(
        contact_center(skilled),
        Rc::new(SimPbxPort { addr: sim.clone() }),
        Rc::new(MemoryOutbox::new()),
        TokioClock::shared(edgecc::clock::now_ms()),
    )
    .expect("config");
    sim.send(ConnectEvents(reg.clone().recipient()))
        .await
        .expect("sim");
    stages(mode, skilled, &reg, &sim, &arrivals, &lat, None).await;
}

/// The actors wired as the daemon wires them (state through the outbox
/// writer), committing to a [`CountingStore`].
async fn records_run(mode: &str, skilled: bool) {
    let (arrivals, lat): (Arrivals, Latencies) = (Rc::default(), Rc::default());
    let counts = Counts::default();
    let sim = sim(arrivals.clone(), lat.clone());
    let reg = ContactCenter::start_durable(
        contact_center(skilled),
        Rc::new(SimPbxPort { addr: sim.clone() }),
        Rc::new(MemoryOutbox::new()),
        Rc::new(CountingStore(counts.clone())),
        TokioClock::shared(edgecc::clock::now_ms()),
        None,
    )
    .expect("config");
    sim.send(ConnectEvents(reg.clone().recipient()))
        .await
        .expect("sim");
    stages(mode, skilled, &reg, &sim, &arrivals, &lat, Some(&counts)).await;
}

/// The whole system as `edgecc run` assembles it (`SystemParts`) on the
/// simulated PBX, its data in `dir`: the set-up of the durable runs and of
/// the drain runs.
struct Durable {
    /// The running system (stopped by [`Durable::shutdown`]).
    system: edgecc::system::System,
    /// Its registry, where the agents' commands go.
    reg: Addr<Registry>,
    /// The simulated PBX the callers are placed on.
    sim: Addr<SimPbx>,
    /// When each caller was placed.
    arrivals: Arrivals,
    /// Each offer's latency.
    lat: Latencies,
    /// Its data directory, removed on drop (after the system stopped).
    _dir: tempfile::TempDir,
}

impl Durable {
    /// Starts it on `dir`'s `data`, with `crm` (none when `None`).
    async fn start(dir: tempfile::TempDir, skilled: bool, crm: Option<CrmSettings>) -> Durable {
        let (arrivals, lat): (Arrivals, Latencies) = (Rc::default(), Rc::default());
        let sim = sim(arrivals.clone(), lat.clone());
        let mut config = Config {
            site_id: "bench".into(),
            contact_center: contact_center(skilled),
            ..Config::default()
        };
        match crm {
            Some(crm) => config.crm = crm,
            None => config.crm.adapter = CrmAdapterConfig::None,
        }
        let storage = open_storage(&config, &dir.path().join("data")).expect("storage");
        let system = SystemParts::new(config, storage)
            .with_pbx(PbxAdapter::Sim(sim.clone()))
            .start()
            .await
            .expect("system");
        let reg = system.running.registry.clone();
        Durable {
            system,
            reg,
            sim,
            arrivals,
            lat,
            _dir: dir,
        }
    }

    /// Stops the system, then removes its data directory.
    async fn shutdown(self) {
        self.system.shutdown().await;
    }
}

async fn durable_run(mode: &str, skilled: bool) {
    let d = Durable::start(tempfile::tempdir().expect("tempdir"), skilled, None).await;
    stages(mode, skilled, &d.reg, &d.sim, &d.arrivals, &d.lat, None).await;
    d.shutdown().await;
}

/// The webhook secret the emulator and the drain run's CRM adapter share.
const DRAIN_SECRET: &str = "whsec_bench_routing_durable_drain";

/// `drain` and `skills-drain`: `durable` (or `skills-d`) with the webhook
/// CRM configured, the CRM emulator on 127.0.0.1 (its server on its own
/// thread of this process, so on the same two cores). One stage of
/// `EDGECC_BENCH_OUTAGE_SECS` (8) with the CRM refusing connections
/// builds an outbox backlog; then the CRM comes back and a stage of
/// `EDGECC_BENCH_STAGE_SECS` (4) runs while the sync worker (on its own
/// niced thread, as in the daemon) replays it. Printed: the outage
/// stage's latencies, the backlog when the CRM came back, how long until
/// the worker had delivered all of it, and the latencies of the callers
/// placed before then (and of the whole second stage). One rate: the
/// first of `EDGECC_BENCH_RATES`.
async fn drain_run(mode: &str, skilled: bool) {
    use edgecc::crm::emulator::{EmulatorConfig, EmulatorHandle, Mode};
    use edgecc::crm::sync::{GetSyncStatus, SyncConfig};
    use edgecc::crm::webhook::WebhookConfig;

    let dir = tempfile::tempdir().expect("tempdir");
    let crm = EmulatorHandle::start(EmulatorConfig {
        webhook_secret: Some(DRAIN_SECRET.as_bytes().to_vec()),
        ..EmulatorConfig::default()
    })
    .await
    .expect("CRM emulator");
    crm.set_mode(Mode::Refuse { for_ms: None })
        .await
        .expect("CRM down");
    let secret_file = dir.path().join("webhook-secret");
    std::fs::write(&secret_file, DRAIN_SECRET).expect("secret");
    let settings = CrmSettings {
        adapter: CrmAdapterConfig::Webhook(WebhookConfig {
            url: crm.webhook_url(),
            secret_file: Some(secret_file),
            connect_timeout_ms: 1_000,
            request_timeout_ms: 3_000,
            batch_max: 1,
        }),
        // The demo's: a down CRM is probed every second.
        sync: SyncConfig {
            breaker_probe_interval_ms: 1_000,
            backoff_cap_ms: 5_000,
            ..SyncConfig::default()
        },
    };
    let d = Durable::start(dir, skilled, Some(settings)).await;
    let (reg, sim, arrivals, lat) = (&d.reg, &d.sim, &d.arrivals, &d.lat);
    let sync = d
        .system
        .running
        .sync
        .clone()
        .expect("the webhook CRM's sync worker");
    staff(reg, sim).await;
    let rate = rates()[0];
    let stage = Stage {
        mode,
        skilled,
        sim,
        arrivals,
    };
    let mut seq = 0u64;

    // The outage: every CRM record stays in the outbox.
    let outage_secs: u64 = env_or("EDGECC_BENCH_OUTAGE_SECS", 8);
    let (placed, elapsed) = stage.place(&mut seq, rate, outage_secs, || {}).await;
    let down = sorted(lat.borrow().iter().map(|(_, us)| *us));
    // Let the outage's last calls finish (talk 400 ms) and their records
    // reach the outbox.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let appended = reg
        .send(Snapshot { with_queues: false })
        .await
        .expect("registry")
        .outbox
        .records_written;
    let before = sync.send(GetSyncStatus).await.expect("sync").delivered;
    drain_row(
        mode,
        rate,
        Some(placed as f64 / elapsed),
        &down,
        &format!(
            "CRM down {outage_secs} s: {appended} records appended, {before} delivered  load {}",
            load_average()
        ),
    );

    // The CRM comes back: the replay and the next stage's routing share
    // the machine. Who has delivered the backlog is polled every 100 ms
    // (a message to the worker's thread).
    lat.borrow_mut().clear();
    crm.set_mode(Mode::Normal).await.expect("CRM up");
    let up_at = Instant::now();
    let drained_at: Rc<RefCell<Option<Instant>>> = Rc::default();
    let poller = {
        let (sync, drained_at) = (sync.clone(), drained_at.clone());
        actix::spawn(async move {
            loop {
                let delivered = sync.send(GetSyncStatus).await.map_or(0, |s| s.delivered);
                if delivered >= appended {
                    *drained_at.borrow_mut() = Some(Instant::now());
                    return delivered;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let stage_secs: u64 = env_or("EDGECC_BENCH_STAGE_SECS", 4);
    let (placed, elapsed) = stage.place(&mut seq, rate, stage_secs, || {}).await;
    let drained = *drained_at.borrow();
    let all = sorted(lat.borrow().iter().map(|(_, us)| *us));
    let during = sorted(
        lat.borrow()
            .iter()
            .filter(|(at, _)| drained.is_none_or(|d| *at < d))
            .map(|(_, us)| *us),
    );
    let drained_text = match drained {
        Some(d) => format!(
            "backlog delivered {:.1} s after the CRM came back",
            (d - up_at).as_secs_f64()
        ),
        None => {
            poller.abort();
            "backlog still draining at the stage's end".to_string()
        }
    };
    drain_row(
        mode,
        rate,
        Some(placed as f64 / elapsed),
        &during,
        &format!(
            "CRM up, while draining: {drained_text}  load {}",
            load_average()
        ),
    );
    drain_row(mode, rate, None, &all, "CRM up, whole stage");
    d.shutdown().await;
    crm.stop().await;
}

/// One row of the drain run, in the columns of the table: the rate the
/// stage achieved (blank on a row that would repeat it), the offer
/// latencies (`us`, sorted), then what the CRM was doing.
fn drain_row(mode: &str, rate: u64, placed_per_s: Option<f64>, us: &[u64], crm: &str) {
    let placed_per_s = placed_per_s.map_or_else(String::new, |p| format!("{p:.0}"));
    println!(
        "{:>8} {:>8} {:>9} {:>7} {:>7} {:>7} {:>8}   {crm}",
        mode,
        rate,
        placed_per_s,
        us.len(),
        pct(us, 0.5),
        pct(us, 0.99),
        us.last().copied().unwrap_or(0),
    );
}

fn main() {
    println!(
        "routing, persistence off (memory, skills) and on (durable, skills-d): {AGENTS} agents, {QUEUES} queues, talk 400 ms, answer 20-60 ms, no wrap-up; skills runs: {SKILLS} skills, levels 1-5, queue needs level 3, steps at 2 s and 5 s, every other call needs a 2nd skill"
    );
    println!(
        "{:>8} {:>8} {:>9} {:>7} {:>7} {:>7} {:>8} {:>8} {:>10} {:>10}",
        "mode",
        "rate/s",
        "placed/s",
        "offers",
        "p50 us",
        "p99 us",
        "max us",
        "backlog",
        "crm recs",
        "states"
    );
    let runs = std::env::var("EDGECC_BENCH_RUNS")
        .unwrap_or_else(|_| "memory,durable,skills,skills-d".into());
    // Each run on its own actix system, one after the other.
    for run in runs.split(',').map(str::trim) {
        match run {
            "memory" => actix::System::new().block_on(memory_run(run, false)),
            "durable" => actix::System::new().block_on(durable_run(run, false)),
            "skills" => actix::System::new().block_on(memory_run(run, true)),
            "skills-d" => actix::System::new().block_on(durable_run(run, true)),
            "records" => actix::System::new().block_on(records_run(run, false)),
            "skills-records" => actix::System::new().block_on(records_run(run, true)),
            "drain" => actix::System::new().block_on(drain_run(run, false)),
            "skills-drain" => actix::System::new().block_on(drain_run(run, true)),
            other => eprintln!(
                "unknown run `{other}` (memory, durable, skills, skills-d, records, skills-records, drain, skills-drain)"
            ),
        }
    }
}
