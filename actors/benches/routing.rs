//! Routing benchmark on the simulated PBX in real time (not paused):
//! 2,000 agents, 20 queues, rising call rates. Prints the highest sustained
//! rate without backlog growth, p50/p99/max latency from "call arrived" to
//! "offer issued", and memory per idle agent and per waiting call (RSS
//! difference from /proc/self/status).
//!
//! Run: `cargo bench -p edgecc-actors --bench routing`

use actix::prelude::*;
use edgecc_actors::config::*;
use edgecc_actors::sim::{
    Caller, ConnectEvents, PhoneProfile, PlaceCall, SetPhoneProfile, SimPbx, SimPbxPort,
};
use edgecc_actors::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

const AGENTS: usize = 2_000;
const QUEUES: usize = 20;
const STAGE_SECS: u64 = 4;
const RATES: [u64; 6] = [250, 500, 1_000, 1_500, 2_000, 3_000];

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn config(agents: usize, talk_queue_wrap: u64) -> ContactCenterConfig {
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
            wrap_up_ms: talk_queue_wrap,
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
    for a in 0..agents {
        cfg.agents.push(AgentConfig {
            id: format!("a{a}"),
            name: String::new(),
            extension: format!("{}", 100_000 + a),
            endpoint: None,
            skills: vec![],
            queues: vec![format!("q{}", a % QUEUES), format!("q{}", (a + 7) % QUEUES)],
            auto_accept: false,
            wrap_up_ms: None,
            reject_delay_ms: None,
        });
    }
    cfg
}

type Arrivals = Rc<RefCell<HashMap<String, Instant>>>;
type Latencies = Rc<RefCell<Vec<u64>>>;

async fn start(
    cfg: ContactCenterConfig,
    arrivals: Arrivals,
    lat: Latencies,
) -> (Addr<Registry>, Addr<SimPbx>, MemoryOutbox) {
    let pbx = SimPbx::new(7).with_originate_hook(Box::new(move |leg| {
        if let Some(t) = arrivals.borrow_mut().remove(leg.call_id().as_str()) {
            lat.borrow_mut().push(t.elapsed().as_micros() as u64);
        }
    }));
    let sim = pbx.start();
    let outbox = MemoryOutbox::new();
    let reg = ContactCenter::start(
        cfg,
        Rc::new(SimPbxPort { addr: sim.clone() }),
        Rc::new(outbox.clone()),
        TokioClock::shared(1_700_000_000_000),
    )
    .expect("config");
    sim.send(ConnectEvents(reg.clone().recipient()))
        .await
        .unwrap();
    (reg, sim, outbox)
}

async fn login_all(reg: &Addr<Registry>, n: usize) {
    for a in 0..n {
        for command in [AgentCommand::Login, AgentCommand::Ready] {
            reg.send(AgentRequest {
                agent: AgentId::new(format!("a{a}")),
                command,
            })
            .await
            .unwrap()
            .unwrap();
        }
    }
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

async fn waiting(reg: &Addr<Registry>) -> usize {
    let snap = reg.send(Snapshot { with_queues: true }).await.unwrap();
    snap.queues.iter().map(|q| q.waiting.len()).sum()
}

async fn routing() {
    let arrivals: Arrivals = Rc::default();
    let lat: Latencies = Rc::default();
    let (reg, sim, outbox) = start(config(AGENTS, 0), arrivals.clone(), lat.clone()).await;
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
    .unwrap();
    login_all(&reg, AGENTS).await;
    println!("routing: {AGENTS} agents, {QUEUES} queues, {STAGE_SECS} s per stage, talk 400 ms, answer 20-60 ms, no wrap-up");
    println!(
        "{:>8} {:>9} {:>9} {:>8} {:>8} {:>8} {:>9}",
        "rate/s", "placed/s", "offers", "p50 us", "p99 us", "max us", "backlog"
    );
    let mut best = 0;
    let mut seq = 0u64;
    for rate in RATES {
        lat.borrow_mut().clear();
        let start = Instant::now();
        let mut placed = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        while start.elapsed() < Duration::from_secs(STAGE_SECS) {
            tick.tick().await;
            let due = (start.elapsed().as_micros() as u64 * rate) / 1_000_000;
            while placed < due {
                seq += 1;
                placed += 1;
                let id = format!("b{seq}");
                arrivals.borrow_mut().insert(id.clone(), Instant::now());
                let mut c = Caller::new("+15550000000", &format!("8{:03}", seq % QUEUES as u64));
                c.leg_id = Some(LegId::new(id));
                c.talk_ms = Some(400);
                sim.do_send(PlaceCall(c));
            }
        }
        let elapsed = start.elapsed().as_secs_f64();
        let backlog = waiting(&reg).await;
        let mut l = lat.borrow().clone();
        l.sort_unstable();
        println!(
            "{:>8} {:>9.0} {:>9} {:>8} {:>8} {:>8} {:>9}",
            rate,
            placed as f64 / elapsed,
            l.len(),
            pct(&l, 0.5),
            pct(&l, 0.99),
            l.last().copied().unwrap_or(0),
            backlog
        );
        let sustained = backlog < (rate as usize / 20).max(10)
            && (placed as f64 / elapsed) > rate as f64 * 0.95;
        if sustained {
            best = rate;
        }
        // Let the stage drain before the next one.
        tokio::time::sleep(Duration::from_secs(2)).await;
        if !sustained {
            break;
        }
    }
    println!("highest sustained rate without backlog growth: {best} calls/s");
    println!("outbox records written: {}", outbox.len());
}

async fn memory() {
    // Idle agents: a center with many Ready agents and no calls.
    let n_agents = 20_000;
    let before = rss_kib();
    let (reg, _sim, _o) = start(config(n_agents, 0), Rc::default(), Rc::default()).await;
    login_all(&reg, n_agents).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = rss_kib();
    println!(
        "memory per idle agent: {:.2} KiB ({} agents, RSS +{} KiB; includes actor, mailbox, views, queue index)",
        (after - before) as f64 / n_agents as f64,
        n_agents,
        after - before
    );
    // Waiting calls: no agents Ready, many calls queued.
    let n_calls = 20_000usize;
    let (_reg2, sim2, _o2) = start(config(0, 0), Rc::default(), Rc::default()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = rss_kib();
    for i in 0..n_calls {
        let mut c = Caller::new("+15550000000", &format!("8{:03}", i % QUEUES));
        for k in 0..5 {
            c.attached.push(edgecc_actors::ports::AttachedVar {
                key: format!("key{k}"),
                value: "value".into(),
            });
        }
        sim2.do_send(PlaceCall(c));
        if i % 1000 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let after = rss_kib();
    println!(
        "memory per waiting call: {:.2} KiB ({} calls, RSS +{} KiB; includes the call actor, queue entry, view and the simulated PBX's leg)",
        (after - before) as f64 / n_calls as f64,
        n_calls,
        after - before
    );
}

fn main() {
    let sys = actix::System::new();
    sys.block_on(async {
        routing().await;
        memory().await;
    });
}
