//! Footprint of the release `edgecc` binary on an edge box: its size, the
//! idle RSS of `edgecc run`, the RSS of `edgecc demo` carrying 1,000
//! concurrent calls with 500 agents, and the RSS and start-to-ready time of
//! `edgecc run` on a 1,000,000-record outbox backlog with the CRM
//! unreachable.
//!
//! Run: `cargo bench -p edgecc --bench footprint` (it measures the binary
//! cargo builds for the bench, `target/release/edgecc`, the same profile as
//! `cargo build --release`; `EDGECC_BIN` measures another one).
//! Knobs: `EDGECC_FOOTPRINT_BACKLOG` (records, default 1,000,000),
//! `EDGECC_FOOTPRINT_DIR` (where the backlog is built, default the temp
//! dir; ~850 MB at 1M), `EDGECC_FOOTPRINT_SKIP` (comma list of `idle`,
//! `calls`, `backlog`), `EDGECC_FOOTPRINT_ENV` (`K=V,K=V` added to the
//! measured processes' environment, for A/B runs such as
//! `MALLOC_ARENA_MAX=4`), `EDGECC_FOOTPRINT_CACHE_MB` (the daemon's
//! `storage.cache_capacity_bytes`, default: the config default).
//!
//! Every figure comes from the measured process's `/proc/PID/status`
//! (VmRSS, VmHWM, Threads), sampled while it runs. Ready is measured two
//! ways from the moment of spawn: `READY=1` on a `NOTIFY_SOCKET` the bench
//! binds (sd_notify, when the binary sends it) and the first `200` from
//! `/readyz` (polled every 10 ms). Concurrency in the calls scenario is read
//! from the demo's own `/metrics` (`edgecc_calls_live`, agents talking,
//! queue depth) at each RSS sample.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use edgecc_storage::{NewRecord, RecordKind, Storage, StorageConfig};

/// Goals from issue 7.
const GOAL_BINARY_BYTES: u64 = 20 * 1000 * 1000;
const GOAL_IDLE_RSS_KIB: u64 = 30 * 1000 * 1000 / 1024;
const GOAL_BACKLOG_RSS_KIB: u64 = 150 * 1000 * 1000 / 1024;
const GOAL_READY: Duration = Duration::from_secs(2);

/// Records per append while building the backlog, and concurrent appenders.
const APPEND_BATCH: usize = 63;
const FILL_TASKS: usize = 8;
/// Body size of backlog records (the storage and CRM benches use the same).
const BODY_BYTES: usize = 400;
/// The idle daemon's user's password.
const LOGIN_PASSWORD: &str = "footprint-pw";
/// Longest wait for a process to become ready.
const READY_WAIT: Duration = Duration::from_secs(120);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace(['_', ','], "").parse().ok())
        .unwrap_or(default)
}

fn skipped(what: &str) -> bool {
    std::env::var("EDGECC_FOOTPRINT_SKIP")
        .map(|v| v.split(',').any(|s| s.trim() == what))
        .unwrap_or(false)
}

/// Extra environment for the measured processes.
fn extra_env() -> Vec<(String, String)> {
    std::env::var("EDGECC_FOOTPRINT_ENV")
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// VmRSS, VmHWM (KiB) and thread count of `pid`; zeros once it is gone.
#[derive(Clone, Copy, Debug, Default)]
struct Mem {
    rss_kib: u64,
    hwm_kib: u64,
    threads: u64,
}

fn mem(pid: u32) -> Mem {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Mem {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
        threads: field("Threads:"),
    }
}

fn binary() -> PathBuf {
    std::env::var_os("EDGECC_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_edgecc")))
}

/// A port that was free a moment ago (the daemon binds it next).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One plain HTTP/1.1 GET; (status, body) or None when nothing answers.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// One plain HTTP/1.1 POST of a JSON body; the status, or None.
fn http_post_json(port: u16, path: &str, body: &str) -> Option<u16> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    String::from_utf8_lossy(&buf)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The value of the first metric line starting with `prefix`, summed over
/// every line that does (labels included in the prefix or not).
fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A `NOTIFY_SOCKET` for one process: reports when `READY=1` arrives.
struct Notify {
    path: PathBuf,
    ready: mpsc::Receiver<Instant>,
}

impl Notify {
    fn bind(dir: &Path) -> Notify {
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let (tx, ready) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let started = Instant::now();
            while started.elapsed() < READY_WAIT * 2 {
                if let Ok(n) = sock.recv(&mut buf) {
                    let msg = String::from_utf8_lossy(&buf[..n]);
                    if msg.lines().any(|l| l == "READY=1") {
                        let _ = tx.send(Instant::now());
                        return;
                    }
                }
            }
        });
        Notify { path, ready }
    }
}

/// What a start of the daemon showed.
struct Started {
    child: Child,
    spawned: Instant,
    /// First 200 from /readyz.
    readyz: Option<Duration>,
}

/// Spawns `edgecc run` with `config` on `data_dir`, `NOTIFY_SOCKET` set,
/// and waits for /readyz to answer 200.
fn start_daemon(dir: &Path, config: &Path, data_dir: &Path, port: u16, notify: &Notify) -> Started {
    let log = std::fs::File::create(dir.join("daemon.log")).expect("log file");
    let mut cmd = Command::new(binary());
    cmd.arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--admin-socket")
        .arg(dir.join("admin.sock"))
        .arg("run")
        .env("NOTIFY_SOCKET", &notify.path)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log);
    for (k, v) in extra_env() {
        cmd.env(k, v);
    }
    let spawned = Instant::now();
    let mut child = cmd.spawn().expect("spawn edgecc run");
    let mut readyz = None;
    while spawned.elapsed() < READY_WAIT {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default();
            panic!("edgecc run exited early ({status}):\n{log}");
        }
        if let Some((200, _)) = http_get(port, "/readyz") {
            readyz = Some(spawned.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Started {
        child,
        spawned,
        readyz,
    }
}

/// SIGTERM, then the time to exit (killed after 30 s).
fn stop(child: &mut Child) -> Duration {
    let t = Instant::now();
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    while t.elapsed() < Duration::from_secs(30) {
        if let Ok(Some(_)) = child.try_wait() {
            return t.elapsed();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    t.elapsed()
}

/// `READY=1` seen within `wait` after `Started::spawned`?
fn notify_ready(notify: &Notify, started: &Started, wait: Duration) -> Option<Duration> {
    notify
        .ready
        .recv_timeout(wait)
        .ok()
        .map(|at| at.duration_since(started.spawned))
}

fn fmt_ready(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.3} s", d.as_secs_f64()))
        .unwrap_or_else(|| "not seen".to_string())
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

/// A small daemon config: the simulated PBX, two queues, `agents` agents,
/// HTTP on `port`, and `crm` as the `[crm]` section.
fn write_config(dir: &Path, port: u16, agents: usize, crm: &str) -> PathBuf {
    let mut text = format!(
        "[site]\nid = \"edge-bench\"\n\n[pbx]\nkind = \"sim\"\n\n{crm}\n\n[http]\nlisten = \"127.0.0.1:{port}\"\n\n"
    );
    if let Ok(mb) = std::env::var("EDGECC_FOOTPRINT_CACHE_MB") {
        let mb: u64 = mb.parse().expect("EDGECC_FOOTPRINT_CACHE_MB: whole MiB");
        text.push_str(&format!(
            "[storage]\ncache_capacity_bytes = {}\n\n",
            mb * 1024 * 1024
        ));
    }
    for (id, dnis) in [("sales", "+18005550100"), ("support", "+18005550200")] {
        text.push_str(&format!(
            "[[queues]]\nid = \"{id}\"\nname = \"{id}\"\ndnis = [\"{dnis}\"]\nstrategy = \"longest-idle\"\nmax_wait_ms = 300000\nwrap_up_ms = 0\nfinal_destination = {{ kind = \"announcement\", prompt = \"callback-offered\" }}\n\n"
        ));
    }
    for n in 0..agents {
        text.push_str(&format!(
            "[[agents]]\nid = \"agent{n:03}\"\nname = \"Agent {n}\"\nextension = \"{}\"\nqueues = [\"sales\", \"support\"]\n\n",
            1001 + n
        ));
    }
    let path = dir.join("edgecc.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// Size of the binary as built and after `strip --strip-all` of a copy.
fn binary_size() -> bool {
    let bin = binary();
    let built = std::fs::metadata(&bin).expect("the edgecc binary").len();
    let copy = std::env::temp_dir().join(format!("edgecc-footprint-strip-{}", std::process::id()));
    std::fs::copy(&bin, &copy).expect("copy");
    let stripped = Command::new("strip")
        .arg("--strip-all")
        .arg(&copy)
        .status()
        .ok()
        .filter(|s| s.success())
        .and_then(|_| std::fs::metadata(&copy).ok())
        .map(|m| m.len());
    let _ = std::fs::remove_file(&copy);
    let measured = stripped.unwrap_or(built);
    println!("## Binary\n");
    println!(
        "- {}: {} bytes as built ({:.2} MB)",
        bin.display(),
        built,
        built as f64 / 1e6
    );
    match stripped {
        Some(s) => println!(
            "- after `strip --strip-all`: {s} bytes ({:.2} MB)",
            s as f64 / 1e6
        ),
        None => println!("- `strip` not available: the as-built size counts"),
    }
    let ok = measured <= GOAL_BINARY_BYTES;
    println!("- goal <= 20 MB: **{}**\n", verdict(ok));
    ok
}

/// Idle `edgecc run`: small config, no CRM, nothing happening.
fn idle() -> bool {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let config = write_config(dir.path(), port, 4, "[crm]\nkind = \"none\"");
    // One user, so logins (argon2 at its default 19 MiB) can be measured.
    let hash = edgecc::http::hash_password(LOGIN_PASSWORD).expect("hash");
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(&format!(
        "[[users]]\nid = \"sup\"\nrole = \"supervisor\"\npassword_hash = \"{hash}\"\n"
    ));
    std::fs::write(&config, text).expect("config");
    let notify = Notify::bind(dir.path());
    let mut started = start_daemon(dir.path(), &config, &dir.path().join("data"), port, &notify);
    let pid = started.child.id();
    let at_ready = mem(pid);
    let ready = notify_ready(&notify, &started, Duration::from_secs(2));
    std::thread::sleep(Duration::from_secs(5));
    let idle = mem(pid);
    // A few requests, as a wallboard poll would make, then idle again.
    for _ in 0..20 {
        let _ = http_get(port, "/metrics");
    }
    std::thread::sleep(Duration::from_secs(2));
    let after = mem(pid);
    // Logins: 4 one after the other, then 4 at once (each hashes on the
    // blocking pool), then idle again.
    let body = format!(r#"{{"agent_id":"sup","password":"{LOGIN_PASSWORD}"}}"#);
    let mut login_ok = 0;
    for _ in 0..4 {
        login_ok += usize::from(http_post_json(port, "/api/v1/session", &body) == Some(200));
    }
    let at_once: Vec<_> = (0..4)
        .map(|_| {
            let body = body.clone();
            std::thread::spawn(move || http_post_json(port, "/api/v1/session", &body))
        })
        .collect();
    for t in at_once {
        login_ok += usize::from(t.join().ok().flatten() == Some(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    let after_logins = mem(pid);
    let stopped = stop(&mut started.child);
    println!("## Idle `edgecc run` (4 agents, 2 queues, 1 user, CRM none, HTTP on)\n");
    println!(
        "- ready: /readyz 200 after {}; READY=1 on NOTIFY_SOCKET: {}",
        fmt_ready(started.readyz),
        fmt_ready(ready)
    );
    println!(
        "- VmRSS at ready {:.1} MiB; after 5 s idle {:.1} MiB ({} threads); after 20 /metrics requests + 2 s {:.1} MiB; VmHWM {:.1} MiB",
        mib(at_ready.rss_kib),
        mib(idle.rss_kib),
        idle.threads,
        mib(after.rss_kib),
        mib(after.hwm_kib)
    );
    println!(
        "- after 8 logins ({login_ok} answered 200; 4 sequential, 4 at once) + 2 s: VmRSS {:.1} MiB, VmHWM {:.1} MiB ({} threads)",
        mib(after_logins.rss_kib),
        mib(after_logins.hwm_kib),
        after_logins.threads
    );
    println!("- SIGTERM → exit: {:.2} s", stopped.as_secs_f64());
    let ok = after.rss_kib.max(idle.rss_kib) <= GOAL_IDLE_RSS_KIB;
    println!("- goal idle RSS <= 30 MB: **{}**\n", verdict(ok));
    ok
}

/// `edgecc demo` with 500 agents and enough callers for 1,000 live calls:
/// 26 calls/s answered until the 500 agents are all talking (~19 s), calls
/// talk 60-70 s (none ends during the run), so from then on the queues
/// fill until the demo's 20 s max wait times the oldest out: ~500 talking
/// plus ~520 waiting from ~40 s to the end of arrivals at 55 s.
fn calls() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let summary = dir.path().join("summary.json");
    let args: Vec<String> = [
        "demo",
        "--agents",
        "500",
        "--rate",
        "26",
        "--duration",
        "55",
        "--talk-ms",
        "60000-70000",
        "--patience-ms",
        "90000-120000",
        "--answer-ms",
        "100-300",
        "--wrap-up-ms",
        "0",
        "--crm-outage",
        "none",
        "--drain-wait",
        "180",
        "--seed",
        "5",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        "--http".to_string(),
        format!("127.0.0.1:{port}"),
        "--summary-json".to_string(),
        summary.display().to_string(),
        "--data-dir".to_string(),
        dir.path().join("data").display().to_string(),
    ])
    .collect();
    let mut cmd = Command::new(binary());
    cmd.args(&args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in extra_env() {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn edgecc demo");
    let pid = child.id();
    // (seconds, live calls, talking, waiting, VmRSS KiB)
    let mut samples: Vec<(f64, f64, f64, f64, u64)> = Vec::new();
    let t0 = Instant::now();
    let mut last = Mem::default();
    while child.try_wait().ok().flatten().is_none() && t0.elapsed() < Duration::from_secs(400) {
        if let Some((200, text)) = http_get(port, "/metrics") {
            let m = mem(pid);
            if m.hwm_kib > 0 {
                last = m;
            }
            samples.push((
                t0.elapsed().as_secs_f64(),
                metric(&text, "edgecc_calls_live "),
                metric(&text, "edgecc_agents{state=\"talking\"}"),
                metric(&text, "edgecc_queue_depth{"),
                m.rss_kib,
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let status = child.wait().expect("demo exit");
    let text = std::fs::read_to_string(&summary).unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let peak =
        samples.iter().cloned().fold(
            (0.0, 0.0, 0.0, 0.0, 0u64),
            |a, s| if s.1 > a.1 { s } else { a },
        );
    let at_1000: Vec<_> = samples.iter().filter(|s| s.1 >= 1000.0).collect();
    let rss_at_1000 = at_1000.iter().map(|s| s.4).max().unwrap_or(0);
    let rss_min_1000 = at_1000.iter().map(|s| s.4).min().unwrap_or(0);
    println!("## 1,000 concurrent calls, 500 agents (`edgecc demo`, simulated PBX, CRM emulator in process)\n");
    println!("- command: `edgecc {}`", args.join(" "));
    println!(
        "- concurrency (the demo's /metrics, every 0.5 s): peak {} live calls at t={:.1} s ({} agents talking, {} waiting in queue); {} samples with >= 1,000 live calls, from t={:.1} s to t={:.1} s",
        peak.1,
        peak.0,
        peak.2,
        peak.3,
        at_1000.len(),
        at_1000.first().map(|s| s.0).unwrap_or(0.0),
        at_1000.last().map(|s| s.0).unwrap_or(0.0),
    );
    println!(
        "- VmRSS at the peak {:.1} MiB; while >= 1,000 calls were live {:.1} to {:.1} MiB; VmHWM of the whole run {:.1} MiB ({} threads)",
        mib(peak.4),
        mib(rss_min_1000),
        mib(rss_at_1000),
        mib(last.hwm_kib),
        last.threads
    );
    println!(
        "- demo result: exit {}; calls {} placed, {} answered, {} abandoned, {} timed out; records {} appended, {} delivered; checks ok = {}",
        status.code().unwrap_or(-1),
        json["calls_total"],
        json["calls_accepted"],
        json["calls_abandoned"],
        json["calls_timed_out"],
        json["records_appended"],
        json["records_delivered"],
        json["ok"]
    );
    println!("- samples (t s, live, talking, waiting, VmRSS MiB), every 10th:");
    for s in samples.iter().step_by(10) {
        println!(
            "  - {:.0} s: {} live, {} talking, {} waiting, {:.1} MiB",
            s.0,
            s.1,
            s.2,
            s.3,
            mib(s.4)
        );
    }
    println!();
}

/// Record `i` of the backlog: each interaction is create, phone log, update.
fn backlog_record(i: usize, now_ms: u64) -> NewRecord {
    let call = i / 3;
    let kind = match i % 3 {
        0 => RecordKind::InteractionCreate,
        1 => RecordKind::PhoneLogCreate,
        _ => RecordKind::InteractionUpdate,
    };
    let mut body = format!(
        concat!(
            r#"{{"call_id":"fp-call-{call:07}","direction":"inbound","queue":"support","#,
            r#""agent":"agent{a:03}","caller":"+4930{c:08}","callee":"+493098765400","#,
            r#""state":"{st}","started_at_ms":{t},"wait_ms":{w},"notes":""#
        ),
        call = call,
        a = call % 500,
        c = (call * 7919) % 100_000_000,
        st = kind.as_str(),
        t = now_ms,
        w = (call * 37) % 60_000,
    );
    while body.len() < BODY_BYTES - 2 {
        body.push('x');
    }
    body.push_str("\"}");
    NewRecord {
        correlation_id: format!("edge-bench:fp-call-{call:07}:{i:08}"),
        interaction_key: format!("fp-call-{call:07}"),
        kind,
        body: body.into_bytes(),
        created_at_ms: now_ms,
    }
}

/// Builds an `n`-record backlog in `data_dir` with the storage crate.
fn fill(data_dir: &Path, n: usize) -> f64 {
    let started = Instant::now();
    let storage = Storage::open(data_dir, StorageConfig::default()).expect("open storage");
    let outbox = storage.outbox();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let now = edgecc::clock::now_ms();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..FILL_TASKS {
            let outbox = outbox.clone();
            let next = next.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let from = next.fetch_add(APPEND_BATCH, std::sync::atomic::Ordering::Relaxed);
                    if from >= n {
                        break;
                    }
                    let to = (from + APPEND_BATCH).min(n);
                    let batch = (from..to).map(|i| backlog_record(i, now)).collect();
                    outbox
                        .append_batch(batch)
                        .await
                        .map_err(|e| e.failure)
                        .expect("append_batch");
                }
            }));
        }
        for t in tasks {
            t.await.expect("fill task");
        }
    });
    let depth = outbox.stats(now).expect("stats").depth;
    assert_eq!(depth as usize, n, "backlog depth after the fill");
    drop(outbox);
    drop(storage);
    started.elapsed().as_secs_f64()
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => total += dir_bytes(&e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// `edgecc run` on an `n`-record backlog, CRM unreachable; two starts.
fn backlog() -> (bool, bool) {
    let n = env_usize("EDGECC_FOOTPRINT_BACKLOG", 1_000_000);
    let base = std::env::var_os("EDGECC_FOOTPRINT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&base).expect("footprint dir");
    let dir = tempfile::tempdir_in(&base).expect("temp dir");
    let data_dir = dir.path().join("data");
    println!("## Outbox backlog of {n} records, CRM unreachable\n");
    let fill_s = fill(&data_dir, n);
    println!(
        "- backlog built with the storage crate (8 tasks × append_batch of 63, {BODY_BYTES}-byte JSON bodies): {fill_s:.1} s, {:.0} MiB on disk",
        dir_bytes(&data_dir) as f64 / 1048576.0
    );
    // A CRM nobody answers: a port that was free a moment ago.
    let crm_port = free_port();
    let port = free_port();
    let config = write_config(
        dir.path(),
        port,
        4,
        &format!("[crm]\nkind = \"webhook\"\n\n[crm.webhook]\nurl = \"http://127.0.0.1:{crm_port}/records\""),
    );
    let mut rss_ok = true;
    let mut ready_ok = true;
    for (round, what) in [
        (
            1,
            "first start after the fill (sled replays the fill's log)",
        ),
        (2, "restart"),
    ] {
        let notify = Notify::bind(dir.path());
        let mut started = start_daemon(dir.path(), &config, &data_dir, port, &notify);
        let pid = started.child.id();
        let at_ready = mem(pid);
        let ready = notify_ready(&notify, &started, Duration::from_secs(3));
        let depth = http_get(port, "/metrics")
            .map(|(_, t)| metric(&t, "edgecc_outbox_depth "))
            .unwrap_or(-1.0);
        let mut peak = at_ready;
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(15) {
            let m = mem(pid);
            if m.rss_kib > peak.rss_kib {
                peak = m;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let end = mem(pid);
        let stopped = stop(&mut started.child);
        println!(
            "- start {round}, {what}: /readyz 200 after {}; READY=1: {}; outbox depth {depth}; VmRSS at ready {:.1} MiB, highest over the next 15 s {:.1} MiB, VmHWM {:.1} MiB ({} threads); SIGTERM → exit {:.2} s",
            fmt_ready(started.readyz),
            fmt_ready(ready),
            mib(at_ready.rss_kib),
            mib(peak.rss_kib),
            mib(end.hwm_kib),
            end.threads,
            stopped.as_secs_f64()
        );
        rss_ok &= end.hwm_kib <= GOAL_BACKLOG_RSS_KIB;
        let seen = ready.or(started.readyz);
        ready_ok &= seen.is_some_and(|d| d <= GOAL_READY);
    }
    println!(
        "- goal RSS with the backlog <= 150 MB (VmHWM): **{}**; goal ready <= 2 s (READY=1, else /readyz): **{}**\n",
        verdict(rss_ok),
        verdict(ready_ok)
    );
    (rss_ok, ready_ok)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    println!("# edgecc footprint\n");
    println!(
        "binary {}; load average at start {}; extra env {:?}\n",
        binary().display(),
        load_average(),
        extra_env()
    );
    binary_size();
    if !skipped("idle") {
        idle();
    }
    if !skipped("calls") {
        calls();
    }
    if !skipped("backlog") {
        backlog();
    }
    println!("load average at the end {}", load_average());
}
