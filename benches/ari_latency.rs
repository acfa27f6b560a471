//! ARI adapter benchmark, against the ARI emulator on 127.0.0.1.
//!
//! 1. Offer latency: calls arrive at a steady rate (default 100/s) and are
//!    routed by the real actors over [`edgecc::ari::AriPbx`], the system
//!    assembled by the composition root (`edgecc::system`) as `edgecc run`
//!    does (PBX gate, the actors' state in a temporary data directory; the
//!    CRM records in a `MemoryOutbox`); for each call,
//!    the time from `inbound_call` (the emulator emits StasisStart) to the
//!    arrival at the emulator of the `POST /channels` that originates the
//!    chosen agent. Baseline, in the same run on a fresh emulator: a
//!    trivial client that reads the WebSocket and POSTs the originate for
//!    each StasisStart at once (the emulator's own WS -> REST round trip).
//! 2. Reconcile: with N live connected calls (default 1,000: 2,000
//!    channels, 1,000 bridges) the WebSocket is dropped; the time until the
//!    adapter is up again (reconnect + `GET /channels` + `GET /bridges` +
//!    reconcile), and the adapter's own reconcile time; baseline: a plain
//!    `GET /channels` + `GET /bridges` by the same HTTP client.
//!
//! Run: `cargo bench -p edgecc --bench ari_latency`
//! (env `EDGECC_BENCH_ARI_CALLS` = calls of part 1, default 1,000;
//! `EDGECC_BENCH_ARI_RATE` = calls/s, default 100;
//! `EDGECC_BENCH_ARI_LIVE` = live calls of part 2, default 1,000).

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use edgecc::ari::{AriPbx, AriSettings};
use edgecc::ari_emulator::{AriEmulator, AriEmulatorConfig, EndpointBehaviour};
use edgecc::config::Config;
use edgecc::pbx::PbxAdapter;
use edgecc::system::storage::open_storage;
use edgecc::system::{System, SystemParts};
use edgecc_actors::config::{AgentConfig, FinalDestination, QueueConfig, Strategy};
use edgecc_actors::*;
use futures_util::StreamExt;

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

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(hex, 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The call id of an originate request (`channelId={call}~{token}`).
fn originate_call(path: &str) -> Option<String> {
    let q = path.strip_prefix("/ari/channels?")?;
    let id = q
        .split('&')
        .find_map(|kv| kv.strip_prefix("channelId="))
        .map(percent_decode)?;
    Some(id.split_once('~').map(|(c, _)| c.to_owned()).unwrap_or(id))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(name: &str, mut v: Vec<f64>) {
    v.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{name:<44} n={:>5}  p50={:>7.2} ms  p90={:>7.2} ms  p99={:>7.2} ms  max={:>7.2} ms",
        v.len(),
        percentile(&v, 0.50),
        percentile(&v, 0.90),
        percentile(&v, 0.99),
        v.last().copied().unwrap_or(f64::NAN)
    );
}

fn cc_config(agents: usize) -> ContactCenterConfig {
    let mut cfg = ContactCenterConfig {
        site_id: "bench".into(),
        ..Default::default()
    };
    cfg.timers.offer_timeout_ms = 20_000;
    cfg.queues.push(QueueConfig {
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
        cfg.agents.push(AgentConfig {
            id: format!("a{i}"),
            name: format!("a{i}"),
            extension: format!("{}", 10_000 + i),
            endpoint: Some(format!("PJSIP/{}", 10_000 + i)),
            skills: vec![],
            queues: vec!["q".into()],
            auto_accept: false,
            wrap_up_ms: None,
            reject_delay_ms: None,
        });
    }
    cfg
}

fn emulator(agents: usize, ring_ms: u64) -> AriEmulator {
    let emu = AriEmulator::start(AriEmulatorConfig::default()).expect("emulator");
    for i in 0..agents {
        emu.set_endpoint(
            &format!("PJSIP/{}", 10_000 + i),
            EndpointBehaviour::AnswerAfter { ring_ms },
        );
    }
    emu
}

async fn wait_for(what: &str, limit: Duration, mut pred: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !pred() {
        assert!(
            Instant::now() < deadline,
            "bench: timed out waiting for {what}"
        );
        actix_rt::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A system the composition root started, with its data directory.
struct Center {
    /// The adapter (also the actors' PBX port).
    ari: AriPbx,
    /// The contact center.
    registry: actix::Addr<Registry>,
    /// The running system; shut down before the next part starts.
    system: System,
    /// Its temporary data directory (dropped after the system).
    _dir: tempfile::TempDir,
}

/// Starts the system (composition root) on the adapter against `emu`;
/// waits for the link and makes every agent Ready.
async fn start_center(emu: &AriEmulator, agents: usize) -> Center {
    let c = emu.config();
    let settings = AriSettings::for_test(&emu.base_url(), &c.app, &c.user, &c.password);
    let ari = AriPbx::new(settings).expect("adapter");
    let config = Config {
        contact_center: cc_config(agents),
        ..Config::default()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = open_storage(&config, dir.path()).expect("storage");
    let system = SystemParts::new(config, storage)
        .with_pbx(PbxAdapter::Ari(ari.clone()))
        .with_outbox(Rc::new(MemoryOutbox::new()))
        .with_clock(TokioClock::shared(1_700_000_000_000))
        .start()
        .await
        .expect("system starts");
    let registry = system.running.registry.clone();
    let (a, e) = (ari.clone(), emu.clone());
    wait_for("link up", Duration::from_secs(10), move || {
        a.link_is_up() && e.app_active()
    })
    .await;
    for i in 0..agents {
        for command in [AgentCommand::Login, AgentCommand::Ready] {
            registry
                .send(AgentRequest {
                    agent: AgentId::new(format!("a{i}")),
                    command,
                })
                .await
                .expect("registry")
                .expect("agent ready");
        }
    }
    Center {
        ari,
        registry,
        system,
        _dir: dir,
    }
}

/// Places `calls` inbound calls at `rate`/s, hanging each up after
/// `talk_ms` (0: never); answers (call id, when placed).
async fn drive(
    emu: &AriEmulator,
    calls: usize,
    rate: usize,
    talk_ms: u64,
) -> Vec<(String, Instant)> {
    let start = Instant::now();
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    let mut placed = Vec::with_capacity(calls);
    let mut hangups: std::collections::VecDeque<(Instant, String)> = Default::default();
    for i in 0..calls {
        let due = start + period * i as u32;
        let now = Instant::now();
        if due > now {
            actix_rt::time::sleep(due - now).await;
        }
        while hangups.front().is_some_and(|(t, _)| *t <= Instant::now()) {
            let (_, id) = hangups.pop_front().expect("checked");
            let _ = emu.caller_hangup(&id);
        }
        let t0 = Instant::now();
        match emu.inbound_call(&format!("555{i:07}"), "Bench", "800", &[]) {
            Ok(id) => {
                if talk_ms > 0 {
                    hangups.push_back((t0 + Duration::from_millis(talk_ms), id.clone()));
                }
                placed.push((id, t0));
            }
            Err(e) => eprintln!("bench: call {i} refused: {e}"),
        }
    }
    while let Some((t, id)) = hangups.pop_front() {
        let now = Instant::now();
        if t > now {
            actix_rt::time::sleep(t - now).await;
        }
        let _ = emu.caller_hangup(&id);
    }
    placed
}

/// Latencies (ms) from placing each call to its first originate request.
fn latencies(emu: &AriEmulator, placed: &[(String, Instant)]) -> Vec<f64> {
    let mut first: HashMap<String, Instant> = HashMap::new();
    for r in emu.requests() {
        if r.method != "POST" {
            continue;
        }
        if let Some(call) = originate_call(&r.path) {
            first.entry(call).or_insert(r.at);
        }
    }
    placed
        .iter()
        .filter_map(|(id, t0)| {
            first
                .get(id)
                .map(|t| t.saturating_duration_since(*t0).as_secs_f64() * 1e3)
        })
        .collect()
}

/// The baseline client: reads the WebSocket and originates at once for
/// every StasisStart of an inbound call.
async fn baseline_client(emu: AriEmulator, stop: Rc<std::cell::Cell<bool>>) {
    let c = emu.config().clone();
    let client = awc::Client::new();
    let (_, mut ws) = client
        .ws(format!("{}?app={}", emu.ws_url(), c.app))
        .basic_auth(&c.user, Some(&c.password))
        .max_frame_size(1 << 20)
        .connect()
        .await
        .expect("baseline websocket");
    let mut n = 0u64;
    while !stop.get() {
        let frame = match actix_rt::time::timeout(Duration::from_millis(50), ws.next()).await {
            Ok(Some(Ok(awc::ws::Frame::Text(t)))) => t,
            Ok(Some(Ok(_))) | Err(_) => continue,
            _ => break,
        };
        let v: serde_json::Value = match serde_json::from_slice(&frame) {
            Ok(v) => v,
            Err(_) => continue,
        };
        if v["type"] != "StasisStart" || v["args"][0] != "inbound" {
            continue;
        }
        let id = v["channel"]["id"].as_str().unwrap_or_default().to_owned();
        n += 1;
        let endpoint = format!("PJSIP/{}", 10_000 + (n % 200));
        let leg = format!("{id}~b");
        let req = client
            .post(format!("{}/channels", emu.base_url()))
            .basic_auth(&c.user, &c.password)
            .query(&[
                ("endpoint", endpoint.as_str()),
                ("app", c.app.as_str()),
                ("channelId", leg.as_str()),
            ])
            .expect("query");
        actix_rt::spawn(async move {
            let _ = req.send().await;
        });
    }
}

fn main() {
    let calls = env_usize("EDGECC_BENCH_ARI_CALLS", 1_000);
    let rate = env_usize("EDGECC_BENCH_ARI_RATE", 100).max(1);
    let live = env_usize("EDGECC_BENCH_ARI_LIVE", 1_000);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    println!(
        "ari_latency: {calls} calls at {rate}/s; reconcile with {live} live calls; {cores} cores; load average {}",
        load_average()
    );
    actix_rt::System::new().block_on(async move {
        // --- 1a. baseline: trivial client, WS -> originate -------------
        let agents = 200;
        let emu = emulator(agents, 100);
        let stop = Rc::new(std::cell::Cell::new(false));
        actix_rt::spawn(baseline_client(emu.clone(), stop.clone()));
        let e = emu.clone();
        wait_for("baseline link", Duration::from_secs(10), move || {
            e.app_active()
        })
        .await;
        let placed = drive(&emu, calls, rate, 0).await;
        actix_rt::time::sleep(Duration::from_millis(500)).await;
        stop.set(true);
        let base = latencies(&emu, &placed);
        summary("baseline: StasisStart -> originate (trivial)", base);
        drop(emu);

        // --- 1b. edgecc: actors + adapter ------------------------------
        let emu = emulator(agents, 100);
        let center = start_center(&emu, agents).await;
        let ari = center.ari.clone();
        let placed = drive(&emu, calls, rate, 1_000).await;
        actix_rt::time::sleep(Duration::from_millis(500)).await;
        let lat = latencies(&emu, &placed);
        if lat.len() < placed.len() {
            println!(
                "  ({} of {} calls got no originate)",
                placed.len() - lat.len(),
                placed.len()
            );
        }
        summary("edgecc:   StasisStart -> originate (routed)", lat);
        // Where the time goes: the caller's answer and music-on-hold
        // requests, which precede the originate in the call's lane.
        for (label, op) in [
            ("edgecc:   StasisStart -> POST answer", "answer"),
            ("edgecc:   StasisStart -> POST moh", "moh"),
        ] {
            let reqs = emu.requests();
            let mut at: HashMap<String, Instant> = HashMap::new();
            for r in &reqs {
                if r.method != "POST" {
                    continue;
                }
                if let Some(rest) = r.path.strip_prefix("/ari/channels/") {
                    let path = rest.split('?').next().unwrap_or(rest);
                    if let Some((id, what)) = path.rsplit_once('/') {
                        if what == op {
                            at.entry(percent_decode(id)).or_insert(r.at);
                        }
                    }
                }
            }
            let v: Vec<f64> = placed
                .iter()
                .filter_map(|(id, t0)| {
                    at.get(id)
                        .map(|t| t.saturating_duration_since(*t0).as_secs_f64() * 1e3)
                })
                .collect();
            summary(label, v);
        }
        center.system.shutdown().await;
        ari.stop();
        drop(emu);

        // --- 2. reconcile with `live` connected calls --------------------
        let emu = emulator(live, 10);
        let center = start_center(&emu, live).await;
        let (ari, registry) = (center.ari.clone(), center.registry.clone());
        let t = Instant::now();
        drive(&emu, live, 500, 0).await;
        let r = registry.clone();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let snap = r
                .send(Snapshot { with_queues: false })
                .await
                .expect("snapshot");
            let connected = snap.calls.iter().filter(|c| c.phase == "connected").count();
            if connected >= live {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "only {connected} of {live} calls connected"
            );
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
        println!(
            "set-up: {live} connected calls in {:.1} s ({} channels, {} bridges at the emulator)",
            t.elapsed().as_secs_f64(),
            emu.channels().len(),
            emu.bridges().len()
        );
        // Baseline: the two listings alone, same HTTP stack.
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(30))
            .finish();
        let c = emu.config().clone();
        let mut base = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            for what in ["channels", "bridges"] {
                let mut resp = client
                    .get(format!("{}/{what}", emu.base_url()))
                    .basic_auth(&c.user, &c.password)
                    .send()
                    .await
                    .expect("listing");
                let body = resp.body().limit(64 << 20).await.expect("body");
                let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
                std::hint::black_box(v);
            }
            base.push(t.elapsed().as_secs_f64() * 1e3);
        }
        summary("baseline: GET /channels + GET /bridges", base);
        let mut down_up = Vec::new();
        let mut reconcile = Vec::new();
        for _ in 0..5 {
            let connects = ari.stats().connects;
            let t = Instant::now();
            emu.drop_links();
            let a = ari.clone();
            wait_for("link back", Duration::from_secs(60), move || {
                a.stats().connects > connects && a.link_is_up()
            })
            .await;
            down_up.push(t.elapsed().as_secs_f64() * 1e3);
            reconcile.push(ari.stats().last_reconcile_us as f64 / 1e3);
            assert_eq!(ari.stats().last_reconcile_channels, emu.channels().len());
        }
        summary(
            "edgecc: drop -> link up again (reconnect+reconcile)",
            down_up,
        );
        summary("edgecc: reconcile alone (GETs + compare)", reconcile);
        let snap = registry
            .send(Snapshot { with_queues: false })
            .await
            .expect("snapshot");
        let connected = snap.calls.iter().filter(|c| c.phase == "connected").count();
        println!(
            "after 5 reconnects: {connected} of {live} calls still connected; legs tracked {}",
            ari.legs_tracked()
        );
        center.system.shutdown().await;
        ari.stop();
    });
}
