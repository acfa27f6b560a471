//! WebSocket fan-out benchmark: event delivery latency to agent desktops and
//! a supervisor wallboard while calls flow, with 1,000 desktops connected,
//! next to a baseline phase of the same call flow with one wallboard only.
//!
//! Run: `cargo bench -p edgecc --bench ws_fanout`
//! (env `EDGECC_BENCH_DESKTOPS` = agent desktops, default 1,000;
//! `EDGECC_BENCH_RATE` = calls per second, default 100;
//! `EDGECC_BENCH_SECS` = seconds per phase, default 30;
//! `EDGECC_BENCH_TALK_MS` = talk time per call, default 4,000).
//!
//! Two processes, so the daemon's CPU and RSS are its own: this binary
//! re-runs itself as the server (`EDGECC_WS_BENCH_SERVER=1`): the real
//! storage, actors, simulated PBX and HTTP server (`edgecc::system::
//! SystemParts`, as `edgecc run` assembles them), one agent per desktop in one
//! queue, and a call generator driven over stdin. The parent is the client:
//! it logs every agent in over HTTP, makes it Ready, opens the WebSockets
//! and measures.
//!
//! Latency = client receive time - the event's `at_us` (the hub's wall clock
//! when it got the event from the registry), both on this host's clock: it
//! covers the hub, the per-connection fan-out, framing, the kernel and the
//! client's read; not the actor hop before the hub. Both processes share the
//! machine's cores, so the client's own work is part of what is measured.
//!
//! Phases: (1) baseline: one supervisor wallboard connected, no agent
//! desktop; (2) the same wallboard plus every agent desktop. Calls flow at
//! the same rate in both. Per phase: p50/p99/max latency of the wallboard's
//! events and of the desktops' events, events received, the server's CPU
//! (user+system time / wall time, 100% = one core) and RSS.

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};

/// Env var that makes this binary the server.
const SERVER_ROLE: &str = "EDGECC_WS_BENCH_SERVER";
/// The queue's DNIS.
const DNIS: &str = "+18005550100";
/// Password of every bench user.
const PASSWORD: &str = "bench-password";
/// HTTP requests in flight while logging desktops in.
const LOGIN_CONCURRENCY: usize = 16;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace(['_', ','], "").parse().ok())
        .unwrap_or(default)
}

fn main() {
    if std::env::var_os(SERVER_ROLE).is_some() {
        server_main();
    } else {
        client_main();
    }
}

// ----- server ---------------------------------------------------------------

/// An argon2id hash with the smallest parameters: logging 1,000 users in is
/// set-up, not what is measured (production hashes use the defaults).
fn cheap_hash(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let params = argon2::Params::new(8, 1, 1, None).expect("argon2 params");
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(b"edgecc-bench-salt").expect("salt");
    argon
        .hash_password(password.as_bytes(), &salt)
        .expect("hash")
        .to_string()
}

fn server_config(desktops: usize) -> edgecc::config::Config {
    let hash = cheap_hash(PASSWORD);
    let mut text = format!(
        "[site]\nid = \"bench\"\n[pbx]\nkind = \"sim\"\n[crm]\nkind = \"none\"\n\
         [timers]\noffer_timeout_ms = 30000\n\
         [[queues]]\nid = \"q\"\nname = \"Q\"\ndnis = [\"{DNIS}\"]\nwrap_up_ms = 1000\n\
         [http]\nlisten = \"127.0.0.1:0\"\n\
         [[users]]\nid = \"sup\"\nrole = \"supervisor\"\npassword_hash = \"{hash}\"\n"
    );
    for i in 0..desktops {
        text.push_str(&format!(
            "[[agents]]\nid = \"a{i:04}\"\nextension = \"{}\"\nqueues = [\"q\"]\n\
             [[users]]\nid = \"a{i:04}\"\nrole = \"agent\"\npassword_hash = \"{hash}\"\n",
            10_000 + i
        ));
    }
    let mut config = edgecc::config::Config::parse(&text, std::path::Path::new("ws-bench.toml"))
        .expect("bench config");
    config.http.desktop_grace_ms = 24 * 3_600_000;
    config
}

/// The server: prints `LISTEN addr`, then obeys stdin: `GO rate talk_ms`
/// starts placing calls, `STOP` stops (answers `STOPPED placed`), EOF exits.
fn server_main() {
    let desktops = env_u64("EDGECC_BENCH_DESKTOPS", 1_000) as usize;
    edgecc::ops::logging::init("error");
    let system = actix_rt::System::new();
    system.block_on(async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = server_config(desktops);
        let storage = edgecc::system::storage::open_storage(&config, &dir.path().join("data"))
            .expect("storage");
        let system = edgecc::system::SystemParts::new(config, storage)
            .serve_http(None)
            .start()
            .await
            .expect("system");
        let http = system.http.as_ref().expect("http");
        println!("LISTEN {}", http.local_addr);
        std::io::stdout().flush().ok();
        let sim = system.running.sim.clone().expect("sim");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut generator: Option<(actix_rt::task::JoinHandle<()>, Rc<RefCell<u64>>)> = None;
        while let Some(line) = rx.recv().await {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["GO", rate, talk_ms] => {
                    let rate: u64 = rate.parse().expect("rate");
                    let talk_ms: u64 = talk_ms.parse().expect("talk");
                    let placed = Rc::new(RefCell::new(0u64));
                    let count = placed.clone();
                    let sim = sim.clone();
                    let task = actix_rt::spawn(async move {
                        let mut tick =
                            tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
                        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                        loop {
                            tick.tick().await;
                            let n = *count.borrow();
                            let mut caller = edgecc_actors::sim::Caller::new(
                                &format!("+1555{:07}", n % 10_000_000),
                                DNIS,
                            );
                            caller.talk_ms = Some(talk_ms);
                            sim.do_send(edgecc_actors::sim::PlaceCall(caller));
                            *count.borrow_mut() += 1;
                        }
                    });
                    generator = Some((task, placed));
                }
                ["STOP"] => {
                    let placed = match generator.take() {
                        Some((task, placed)) => {
                            task.abort();
                            let n = *placed.borrow();
                            n
                        }
                        None => 0,
                    };
                    println!("STOPPED {placed}");
                    std::io::stdout().flush().ok();
                }
                _ => eprintln!("server: unknown command {line:?}"),
            }
        }
        system.shutdown().await;
    });
}

// ----- client ---------------------------------------------------------------

/// The server child and its control pipe.
struct Server {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Server {
    fn command(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("server stdin");
        self.stdin.flush().expect("flush");
    }

    fn read_line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("server stdout");
        line.trim().to_owned()
    }

    /// utime + stime of the server in clock ticks, and VmRSS / VmHWM in KiB.
    fn usage(&self) -> (u64, u64, u64) {
        let pid = self.child.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command name, which is in parentheses.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
            + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let kib = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (ticks, kib("VmRSS:"), kib("VmHWM:"))
    }
}

/// Latencies (µs) and counts seen by the client, per kind of screen.
#[derive(Default)]
struct Samples {
    /// Measuring now (events outside a phase are not recorded).
    on: bool,
    /// Wallboard event latencies.
    board: Vec<u64>,
    /// Agent desktop event latencies.
    desk: Vec<u64>,
    /// Frames without a stamp (snapshots), per kind.
    board_snapshots: u64,
    /// Desktop snapshots.
    desk_snapshots: u64,
    /// Connections that ended during the run.
    closed: u64,
}

type Shared = Rc<RefCell<Samples>>;

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The event's `at_us`, found without parsing the whole frame (wallboard
/// snapshots are large).
fn stamp(text: &str) -> Option<u64> {
    let i = text.find("\"at_us\":")? + 8;
    let digits: String = text[i..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

async fn login(client: &awc::Client, base: &str, user: &str) -> String {
    let mut res = client
        .post(format!("{base}/api/v1/session"))
        .send_json(&serde_json::json!({"agent_id": user, "password": PASSWORD}))
        .await
        .expect("login");
    assert_eq!(res.status().as_u16(), 200, "login {user}");
    let v: serde_json::Value = res.json().await.expect("login json");
    v["token"].as_str().expect("token").to_owned()
}

async fn set_state(client: &awc::Client, base: &str, token: &str, state: &str) {
    let res = client
        .post(format!("{base}/api/v1/agent/state"))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send_json(&serde_json::json!({ "state": state }))
        .await
        .expect("state");
    assert_eq!(res.status().as_u16(), 200, "state {state}");
}

/// Opens a WebSocket and records every stamped frame until it closes.
async fn watch(addr: String, token: String, board: bool, samples: Shared) {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .max_http_version(awc::http::Version::HTTP_11)
        .finish();
    let (_res, mut ws) = client
        .ws(format!("ws://{addr}/api/v1/events?token={token}"))
        .max_frame_size(16 * 1024 * 1024)
        .connect()
        .await
        .expect("ws connect");
    while let Some(frame) = ws.next().await {
        let received = now_us();
        match frame {
            Ok(awc::ws::Frame::Text(bytes)) => {
                let text = std::str::from_utf8(&bytes).unwrap_or("");
                let mut s = samples.borrow_mut();
                if !s.on {
                    continue;
                }
                match (stamp(text), board) {
                    (Some(at), true) => s.board.push(received.saturating_sub(at)),
                    (Some(at), false) => s.desk.push(received.saturating_sub(at)),
                    (None, true) => s.board_snapshots += 1,
                    (None, false) => s.desk_snapshots += 1,
                }
            }
            Ok(awc::ws::Frame::Ping(p)) => {
                if ws.send(awc::ws::Message::Pong(p)).await.is_err() {
                    break;
                }
            }
            Ok(awc::ws::Frame::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    samples.borrow_mut().closed += 1;
}

fn pct(v: &mut [u64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i] as f64 / 1_000.0
}

/// Runs one phase; prints its row.
async fn phase(
    name: &str,
    server: &mut Server,
    samples: &Shared,
    rate: u64,
    talk_ms: u64,
    secs: u64,
) {
    server.command(&format!("GO {rate} {talk_ms}"));
    // Let the call flow settle (talk time + answer) before measuring.
    actix_rt::time::sleep(Duration::from_millis(talk_ms + 2_000)).await;
    let ticks_per_s = 100.0; // USER_HZ on Linux
    let (t0, _, _) = server.usage();
    let wall = Instant::now();
    samples.borrow_mut().on = true;
    actix_rt::time::sleep(Duration::from_secs(secs)).await;
    samples.borrow_mut().on = false;
    let (t1, rss, hwm) = server.usage();
    let elapsed = wall.elapsed().as_secs_f64();
    server.command("STOP");
    let stopped = server.read_line();
    {
        let mut s = samples.borrow_mut();
        let cpu = (t1 - t0) as f64 / ticks_per_s / elapsed * 100.0;
        let board = [
            pct(&mut s.board, 0.5),
            pct(&mut s.board, 0.99),
            pct(&mut s.board, 1.0),
        ];
        let desk = [
            pct(&mut s.desk, 0.5),
            pct(&mut s.desk, 0.99),
            pct(&mut s.desk, 1.0),
        ];
        println!(
            "{name:<28} board p50 {:>7.2} ms p99 {:>7.2} ms max {:>8.2} ms ({:>6} ev, {:>4} snap) | \
             desks p50 {:>7.2} ms p99 {:>7.2} ms max {:>8.2} ms ({:>6} ev, {:>5} snap) | \
             server CPU {cpu:>5.1}% RSS {:>6.1} MiB (peak {:>6.1}) | {stopped}, closed {}",
            board[0],
            board[1],
            board[2],
            s.board.len(),
            s.board_snapshots,
            desk[0],
            desk[1],
            desk[2],
            s.desk.len(),
            s.desk_snapshots,
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0,
            s.closed,
        );
        *s = Samples::default();
    }
    // Let the last calls end before the next phase.
    actix_rt::time::sleep(Duration::from_millis(talk_ms + 2_000)).await;
}

fn client_main() {
    let desktops = env_u64("EDGECC_BENCH_DESKTOPS", 1_000) as usize;
    let rate = env_u64("EDGECC_BENCH_RATE", 100);
    let secs = env_u64("EDGECC_BENCH_SECS", 30);
    let talk_ms = env_u64("EDGECC_BENCH_TALK_MS", 4_000);
    let exe = std::env::current_exe().expect("own path");
    let mut child = Command::new(exe)
        .env(SERVER_ROLE, "1")
        .env("EDGECC_BENCH_DESKTOPS", desktops.to_string())
        .env(
            "RUST_LOG",
            std::env::var("EDGECC_BENCH_SERVER_LOG").unwrap_or_else(|_| "error".into()),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn server");
    let stdin = child.stdin.take().expect("stdin");
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut server = Server {
        child,
        stdin,
        stdout,
    };
    let listen = server.read_line();
    let addr = listen
        .strip_prefix("LISTEN ")
        .expect("LISTEN line")
        .to_owned();
    let base = format!("http://{addr}");
    println!(
        "ws_fanout: {desktops} agent desktops, {rate} calls/s, {talk_ms} ms talk, {secs} s per phase, server pid {}",
        server.child.id()
    );
    let (_, idle_rss, _) = server.usage();
    println!(
        "server idle RSS with {desktops} agents configured: {:.1} MiB",
        idle_rss as f64 / 1024.0
    );
    let mut server = actix_rt::System::new().block_on(async move {
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(30))
            .finish();
        // Log every agent in and make it Ready (desktops connect later).
        let started = Instant::now();
        let users: Vec<String> = (0..desktops).map(|i| format!("a{i:04}")).collect();
        let mut tokens = Vec::with_capacity(desktops);
        for chunk in users.chunks(LOGIN_CONCURRENCY) {
            let batch = futures_util::future::join_all(chunk.iter().map(|u| {
                let (client, base) = (client.clone(), base.clone());
                async move {
                    let token = login(&client, &base, u).await;
                    set_state(&client, &base, &token, "login").await;
                    set_state(&client, &base, &token, "ready").await;
                    token
                }
            }))
            .await;
            tokens.extend(batch);
        }
        println!(
            "{desktops} agents logged in and Ready in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let samples: Shared = Rc::default();
        let sup = login(&client, &base, "sup").await;
        actix_rt::spawn(watch(addr.clone(), sup, true, samples.clone()));
        phase(
            "baseline: 1 wallboard",
            &mut server,
            &samples,
            rate,
            talk_ms,
            secs,
        )
        .await;
        let connecting = Instant::now();
        for token in tokens {
            actix_rt::spawn(watch(addr.clone(), token, false, samples.clone()));
        }
        // Wait until every desktop got its first snapshot.
        actix_rt::time::sleep(Duration::from_secs(3)).await;
        println!(
            "{desktops} desktops connecting for {:.1} s",
            connecting.elapsed().as_secs_f64()
        );
        let label = format!("{desktops} desktops + wallboard");
        phase(&label, &mut server, &samples, rate, talk_ms, secs).await;
        server
    });
    drop(server.stdin);
    let _ = server.child.wait();
}
