//! `edgecc demo`: the whole system on the simulated PBX, with a CRM that
//! goes down in the middle of the run.
//!
//! It runs the real system, assembled by [`crate::system`] exactly as
//! `edgecc run` assembles it (storage opened with the config's options,
//! the PBX gate, the webhook adapter and the sync worker, HTTP with
//! `--http`), from a daemon config the demo writes itself, on the simulated
//! PBX with simulated agents (some slow, some rejecting, some never
//! answering) and callers arriving at `--rate`, and the built-in CRM
//! emulator, which refuses connections during `--crm-outage`. Every second it
//! shows a status line ([`screen`]: in place on a terminal, its log lines in
//! a file it names; plain lines otherwise);
//! at the end it hangs up whatever calls remain, waits for the outbox to
//! drain, prints a summary and checks it: every accepted call has exactly
//! one interaction and one phone log at the CRM, every timed-out or
//! abandoned call one interaction and one work item, nothing lost, nothing
//! applied twice. The exit code is 1 when a check fails.
//!
//! This mode runs the simulated PBX inside the system's process
//! (`pbx.kind = "sim"`): it could not outlive a restart, so it has none.
//! With `--restart-at`, `--link-cut-at` or `--crm-faults` it runs in
//! [`restart`] mode instead: the daemon as a child process ([`child`]),
//! SIGKILLed and started again, in front of the simulated PBX as a third
//! process ([`pbx_process`]: `edgecc pbx-emulator`, the ARI emulator),
//! which keeps the calls up across the kills; the callers and the CRM
//! emulator stay in this process.

pub mod child;
pub mod pbx_process;
pub mod restart;
pub mod screen;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;
use edgecc_actors::config::{AgentConfig, FinalDestination, QueueConfig, Strategy};
use edgecc_actors::ports::{AttachedVar, HangupCause};
use edgecc_actors::registry::{AgentCommand, AgentRequest, Registry, Snapshot, Subscribe};
use edgecc_actors::rng::SplitMix64;
use edgecc_actors::sim::{
    Caller, HangUpLeg, PhoneProfile, PlaceCall, SetPhoneProfile, SetServedTalk, SimPbx,
};
use edgecc_actors::{CcEvent, ContactCenterConfig, LegId, TokioClock};
use serde::Serialize;
use tracing::info;

use crate::config::{Config, CrmAdapterConfig, CrmSettings};
use crate::crm::emulator::{EmulatorConfig, EmulatorHandle, Mode};
use crate::crm::sync::{GetSyncStatus, SyncConfig, SyncWorker};
use crate::crm::webhook::WebhookConfig;
use crate::http::config::{HttpConfig, Role, UserConfig};
use crate::pbx::PbxAdapter;
use crate::system::storage::open_storage;
use crate::system::SystemParts;

/// Most agents the demo simulates.
pub const DEMO_AGENTS_MAX: usize = 2_000;
/// Highest call rate the demo accepts, calls per second.
pub const DEMO_RATE_MAX: f64 = 500.0;
/// How long calls may finish on their own after the last arrival before
/// the remaining callers are hung up.
const SETTLE_WAIT: Duration = Duration::from_secs(8);
/// How long the summary waits for the actors' writer to hand its last
/// records to the outbox, whatever `--drain-wait` says (that one bounds the
/// CRM's delivery); without it a loaded box reported fewer records
/// appended than pending.
const WRITER_WAIT: Duration = Duration::from_secs(30);
/// Status line interval.
const STATUS_INTERVAL: Duration = Duration::from_secs(1);
/// The demo's queues and their dialed numbers.
const QUEUES: [(&str, &str); 2] = [("sales", "+18005550100"), ("support", "+18005550200")];
/// Secret the demo's webhook adapter signs with (the emulator checks it).
const DEMO_SECRET: &str = "edgecc-demo-secret";

/// Flags of `edgecc demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// How long callers keep arriving, in seconds.
    #[arg(long, default_value_t = 45)]
    pub duration: u64,
    /// New calls per second (Poisson arrivals).
    #[arg(long, default_value_t = 2.0)]
    pub rate: f64,
    /// Simulated agents.
    #[arg(long, default_value_t = 20)]
    pub agents: usize,
    /// When the built-in CRM is down, in seconds from the start: FROM-TO.
    /// Default: the middle third of the run. `none` for no outage.
    #[arg(long, value_name = "FROM-TO")]
    pub crm_outage: Option<String>,
    /// Send records to this webhook receiver instead of the built-in CRM
    /// emulator (signed with the demo secret "edgecc-demo-secret").
    #[arg(long, value_name = "URL")]
    pub crm_url: Option<String>,
    /// Write the summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub summary_json: Option<PathBuf>,
    /// Seed of the simulated callers and phones.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// How long a caller talks once answered, in ms: MIN-MAX.
    #[arg(long, value_name = "MIN-MAX", default_value = "2000-9000")]
    pub talk_ms: String,
    /// How long a caller waits for an agent before hanging up, in ms: MIN-MAX.
    #[arg(long, value_name = "MIN-MAX", default_value = "6000-40000")]
    pub patience_ms: String,
    /// How long to wait at the end for the CRM to receive everything, in s.
    #[arg(long, default_value_t = 120)]
    pub drain_wait: u64,
    /// How long simulated phones take to answer, in ms: MIN-MAX.
    #[arg(long, value_name = "MIN-MAX", default_value = "500-3000")]
    pub answer_ms: String,
    /// Wrap-up time after each queue call, in ms.
    #[arg(long, default_value_t = 1_500)]
    pub wrap_up_ms: u64,
    /// Serve the API and web UI on ADDR and add a human agent "you" (and a
    /// supervisor) whose credentials are printed.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8080")]
    pub http: Option<String>,
    /// SIGKILL the daemon at these seconds and start it again on the same
    /// data directory. The daemon then runs as a child process in front of
    /// a simulated PBX (the ARI emulator) in a process of its own, which
    /// keeps the calls up.
    #[arg(long, value_name = "SECS[,SECS...]")]
    pub restart_at: Option<String>,
    /// Cut the PBX link at these seconds (closed, refused for 2 s); runs
    /// the daemon as a child process, as --restart-at does.
    #[arg(long, value_name = "SECS[,SECS...]")]
    pub link_cut_at: Option<String>,
    /// Make the CRM refuse connections, answer 429 and answer 500 in turn
    /// (3 s each, 3 s apart) instead of --crm-outage; runs the daemon as a
    /// child process, as --restart-at does.
    #[arg(long)]
    pub crm_faults: bool,
}

/// The human agent's id and password in `demo --http`.
pub const DEMO_HUMAN: (&str, &str) = ("you", "demo-agent");
/// The supervisor's id and password in `demo --http`.
pub const DEMO_SUPERVISOR: (&str, &str) = ("supervisor", "demo-supervisor");
/// The human agent's extension (its simulated phone rings until the UI
/// accepts or rejects).
const DEMO_HUMAN_EXTENSION: &str = "1000";
/// How long the human agent's callers talk (ms): long enough to try hold,
/// consult and conference by hand, then hang up from the desktop.
const DEMO_HUMAN_TALK_MS: u64 = 10 * 60 * 1_000;

/// The demo's summary: what happened and whether it checks out.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Calls placed by simulated callers.
    pub calls_total: u64,
    /// Calls answered by an agent (and ended).
    pub calls_accepted: u64,
    /// Callers who hung up before an agent answered.
    pub calls_abandoned: u64,
    /// Calls that waited past the queue's max wait (work item).
    pub calls_timed_out: u64,
    /// Calls that ended on a PBX error.
    pub calls_failed: u64,
    /// Records the actors appended to the outbox.
    pub records_appended: u64,
    /// Distinct records the CRM holds.
    pub records_delivered: u64,
    /// Records in the dead letters.
    pub records_dead: u64,
    /// Records still in the outbox.
    pub records_pending: u64,
    /// Interactions at the CRM.
    pub crm_interactions: u64,
    /// Phone logs at the CRM.
    pub crm_phone_logs: u64,
    /// Work items at the CRM.
    pub crm_work_items: u64,
    /// Deliveries of a record the CRM already had (harmless: the
    /// idempotency key deduplicates; only with the built-in emulator).
    pub crm_duplicates: Option<u64>,
    /// Interactions whose updates arrived out of order (built-in emulator).
    pub crm_out_of_order: Option<u64>,
    /// Times the CRM circuit breaker opened.
    pub crm_breaker_opened: u64,
    /// Call arrived → first offer issued while the CRM was up: p50, µs.
    pub offer_latency_us_p50_crm_up: u64,
    /// The same, p99, µs.
    pub offer_latency_us_p99_crm_up: u64,
    /// Call arrived → first offer issued while the CRM was down: p50, µs.
    pub offer_latency_us_p50_crm_down: u64,
    /// The same, p99, µs.
    pub offer_latency_us_p99_crm_down: u64,
    /// What failed, if anything.
    pub failures: Vec<String>,
    /// True when every check passed.
    pub ok: bool,
    /// Routing decision time: arrival → first offer of the calls that found
    /// an agent Ready when they arrived (no wait for an agent in it), CRM
    /// up: p50, µs. The `offer_latency_*` figures add the queue wait.
    pub routing_us_p50_crm_up: u64,
    /// The same, p99, µs.
    pub routing_us_p99_crm_up: u64,
    /// Routing decision time with the CRM down: p50, µs.
    pub routing_us_p50_crm_down: u64,
    /// The same, p99, µs.
    pub routing_us_p99_crm_down: u64,
    /// Calls behind the routing figures (CRM up, down).
    pub routing_samples: (u64, u64),
}

/// Longest `--drain-wait`: a day.
const DRAIN_WAIT_MAX_S: u64 = 24 * 3600;

/// Runs the demo; the exit code says whether its checks passed.
pub fn run(args: &DemoArgs, data_dir: Option<&Path>) -> Result<ExitCode, String> {
    let plan = Plan::from_args(args)?;
    if let Some(faults) = restart::Faults::from_args(args)? {
        return run_with_restarts(&plan, args, &faults, data_dir);
    }
    // Only a directory the demo made for itself is removed afterwards, and
    // only with the built-in CRM (with a real one, records may be pending).
    let (data_dir, own_dir) = match data_dir {
        Some(d) => (d.to_path_buf(), false),
        None => (tempfile_dir()?, true),
    };
    let result = {
        let system = actix_rt::System::new();
        system.block_on(run_async(plan, args.clone(), data_dir.clone()))
        // The runtime drops here, and with it every actor: storage is
        // closed before its directory goes.
    };
    if own_dir && args.crm_url.is_none() {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    let summary = result?;
    print_summary(&summary);
    if let Some(path) = &args.summary_json {
        let text = serde_json::to_string_pretty(&summary)
            .map_err(|e| format!("cannot encode the summary: {e}"))?;
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(if summary.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `--restart-at`, `--link-cut-at`, `--crm-faults`: the daemon as a child
/// process ([`restart`]).
fn run_with_restarts(
    plan: &Plan,
    args: &DemoArgs,
    faults: &restart::Faults,
    data_dir: Option<&Path>,
) -> Result<ExitCode, String> {
    let (data_dir, own_dir) = match data_dir {
        Some(d) => (d.to_path_buf(), false),
        None => (tempfile_dir()?, true),
    };
    let result = actix_rt::System::new().block_on(restart::run(plan, args, faults, &data_dir));
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            return Err(format!(
                "{e} (the daemon's log is in {})",
                data_dir.join("daemon.log").display()
            ))
        }
    };
    restart::print_summary(&summary);
    if let Some(path) = &args.summary_json {
        let text = serde_json::to_string_pretty(&summary)
            .map_err(|e| format!("cannot encode the summary: {e}"))?;
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    if summary.ok && own_dir {
        let _ = std::fs::remove_dir_all(&data_dir);
    } else if !summary.ok {
        println!(
            "the daemon's log: {}",
            data_dir.join("daemon.log").display()
        );
    }
    Ok(if summary.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A fresh directory under the system's temp dir.
fn tempfile_dir() -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("edgecc-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

/// The validated flags.
#[derive(Debug, Clone)]
struct Plan {
    /// Seconds of arrivals.
    duration_s: u64,
    /// Calls per second.
    rate: f64,
    /// Simulated agents.
    agents: usize,
    /// CRM outage window in seconds, if any.
    outage: Option<(u64, u64)>,
    /// Talk time range, ms.
    talk_ms: (u64, u64),
    /// Patience range, ms.
    patience_ms: (u64, u64),
    /// End-of-run drain bound.
    drain_wait: Duration,
    /// Phone answer delay range, ms.
    answer_ms: (u64, u64),
}

/// Parses `MIN-MAX` (whole numbers, MIN ≤ MAX) for flag `flag`.
fn range_flag(flag: &str, text: &str) -> Result<(u64, u64), String> {
    let parsed = text
        .split_once('-')
        .and_then(|(a, b)| Some((a.trim().parse::<u64>().ok()?, b.trim().parse::<u64>().ok()?)));
    match parsed {
        Some((a, b)) if a <= b => Ok((a, b)),
        _ => Err(format!("{flag}: {text:?} is not MIN-MAX with MIN <= MAX")),
    }
}

impl Plan {
    fn from_args(args: &DemoArgs) -> Result<Plan, String> {
        if args.duration == 0 || args.duration > 24 * 3600 {
            return Err("--duration: use 1 to 86400 seconds".to_string());
        }
        if !(args.rate > 0.0 && args.rate <= DEMO_RATE_MAX) {
            return Err(format!(
                "--rate: use a number above 0 and at most {DEMO_RATE_MAX}"
            ));
        }
        if args.agents == 0 || args.agents > DEMO_AGENTS_MAX {
            return Err(format!("--agents: use 1 to {DEMO_AGENTS_MAX}"));
        }
        if args.drain_wait > DRAIN_WAIT_MAX_S {
            return Err(format!("--drain-wait: use 0 to {DRAIN_WAIT_MAX_S} seconds"));
        }
        let outage = match args.crm_outage.as_deref() {
            None => Some((args.duration / 3, 2 * args.duration / 3)),
            Some("none") => None,
            Some(text) => match range_flag("--crm-outage", text)? {
                (from, to) if from < to => Some((from, to)),
                _ => return Err(format!("--crm-outage: {text:?} needs FROM < TO (or none)")),
            },
        };
        Ok(Plan {
            duration_s: args.duration,
            rate: args.rate,
            agents: args.agents,
            outage,
            talk_ms: range_flag("--talk-ms", &args.talk_ms)?,
            patience_ms: range_flag("--patience-ms", &args.patience_ms)?,
            drain_wait: Duration::from_secs(args.drain_wait),
            answer_ms: range_flag("--answer-ms", &args.answer_ms)?,
        })
    }
}

/// The contact center the demo runs: two queues, `agents` agents in both.
fn demo_config(agents: usize, wrap_up_ms: u64, human: bool) -> ContactCenterConfig {
    let mut cfg = ContactCenterConfig {
        site_id: "demo".to_string(),
        ..ContactCenterConfig::default()
    };
    cfg.timers.offer_timeout_ms = 6_000;
    cfg.timers.reject_delay_ms = 1_000;
    for (i, (id, dnis)) in QUEUES.iter().enumerate() {
        cfg.queues.push(QueueConfig {
            id: (*id).to_string(),
            dnis: vec![(*dnis).to_string()],
            strategy: if i == 0 {
                Strategy::LongestIdle
            } else {
                Strategy::FewestCalls
            },
            name: (*id).to_string(),
            priority: 0,
            max_wait_ms: 20_000,
            wrap_up_ms,
            final_destination: FinalDestination::Announcement {
                prompt: "callback-offered".to_string(),
            },
            required_skills: Vec::new(),
            routing: Default::default(),
            sticky: Default::default(),
            limits: Default::default(),
            announcements: Default::default(),
            callback: Default::default(),
            wrap_up_codes: Default::default(),
        });
    }
    if human {
        cfg.timers.offer_timeout_ms = 20_000;
        cfg.reason_codes
            .push(edgecc_actors::config::ReasonCodeConfig {
                code: "break".to_string(),
                label: "Break".to_string(),
            });
        cfg.agents.push(AgentConfig {
            id: DEMO_HUMAN.0.to_string(),
            name: "You".to_string(),
            extension: DEMO_HUMAN_EXTENSION.to_string(),
            queues: QUEUES.iter().map(|(q, _)| (*q).to_string()).collect(),
            endpoint: None,
            skills: Vec::new(),
            auto_accept: false,
            wrap_up_ms: Some(10_000),
            reject_delay_ms: None,
        });
    }
    for n in 0..agents {
        cfg.agents.push(AgentConfig {
            id: format!("agent{:03}", n + 1),
            name: format!("Agent {}", n + 1),
            extension: format!("{}", 1001 + n),
            queues: QUEUES.iter().map(|(q, _)| (*q).to_string()).collect(),
            endpoint: None,
            skills: Vec::new(),
            auto_accept: false,
            wrap_up_ms: None,
            reject_delay_ms: None,
        });
    }
    cfg
}

/// Runs everything on the actix system and returns the summary.
async fn run_async(plan: Plan, args: DemoArgs, data_dir: PathBuf) -> Result<Summary, String> {
    let mut screen = screen::Screen::new();
    if let Some(file) = screen::terminal_log_file() {
        screen.line(&format!("edgecc demo: log lines go to {}", file.display()));
    }
    // The CRM: the built-in emulator, or an external receiver.
    let emulator = match &args.crm_url {
        Some(_) => None,
        None => Some(
            EmulatorHandle::start(EmulatorConfig {
                webhook_secret: Some(DEMO_SECRET.as_bytes().to_vec()),
                ..EmulatorConfig::default()
            })
            .await
            .map_err(|e| format!("cannot start the CRM emulator: {e}"))?,
        ),
    };
    let url = match (&args.crm_url, &emulator) {
        (Some(url), _) => url.clone(),
        (None, Some(e)) => e.webhook_url(),
        (None, None) => unreachable!("an emulator exists when no URL is given"),
    };
    // The secret lives next to the data: `--data-dir` may name a new one.
    std::fs::create_dir_all(&data_dir)
        .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    let secret_file = data_dir.join("demo-webhook-secret");
    std::fs::write(&secret_file, DEMO_SECRET)
        .map_err(|e| format!("cannot write {}: {e}", secret_file.display()))?;
    let cc = demo_config(plan.agents, args.wrap_up_ms, args.http.is_some());
    let agent_ids: Vec<String> = cc
        .agents
        .iter()
        .map(|a| a.id.clone())
        .filter(|id| id != DEMO_HUMAN.0)
        .collect();
    let webhook = WebhookConfig {
        url: url.clone(),
        secret_file: Some(secret_file),
        connect_timeout_ms: 1_000,
        request_timeout_ms: 3_000,
        batch_max: 1,
    };
    let config = demo_daemon_config(&cc, webhook, args.http.as_deref())?;
    let storage = open_storage(&config, &data_dir).map_err(|e| e.to_string())?;
    let outbox = storage.outbox();

    // The PBX: the simulated one, its phones answering like people. Its
    // originate hook measures "call arrived" → "first offer issued", split
    // by whether the CRM was down.
    let latency = Rc::new(std::cell::RefCell::new(OfferLatency::default()));
    let hook_latency = Rc::clone(&latency);
    let sim = SimPbx::new(args.seed)
        .with_originate_hook(Box::new(move |leg: &LegId| {
            hook_latency.borrow_mut().offered(leg.call_id().as_str());
        }))
        .start();
    sim.do_send(SetPhoneProfile {
        endpoint: None,
        profile: PhoneProfile {
            answer_p: 0.93,
            reject_p: 0.04,
            answer_ms: plan.answer_ms,
            reject_ms: 800,
        },
    });
    if args.http.is_some() {
        // The human's callers talk long enough to try the desktop's controls.
        sim.do_send(SetServedTalk {
            endpoint: format!("sim/{DEMO_HUMAN_EXTENSION}"),
            talk_ms: DEMO_HUMAN_TALK_MS,
        });
        // The human's phone rings until the desktop accepts or rejects.
        sim.do_send(SetPhoneProfile {
            endpoint: Some(format!("sim/{DEMO_HUMAN_EXTENSION}")),
            profile: PhoneProfile {
                answer_p: 0.0,
                reject_p: 0.0,
                answer_ms: (0, 0),
                reject_ms: 0,
            },
        });
    }

    // The system, assembled as `edgecc run` assembles it.
    let clock = TokioClock::shared(crate::clock::now_ms());
    let mut parts = SystemParts::new(config, storage)
        .with_pbx(PbxAdapter::Sim(sim.clone()))
        .with_clock(clock.clone())
        .with_sync_seed(args.seed);
    if args.http.is_some() {
        parts = parts.serve_http(None);
    }
    let system = parts.start().await.map_err(|e| format!("demo: {e}"))?;
    let registry = system.running.registry.clone();
    let sync = system
        .running
        .sync
        .clone()
        .ok_or("demo: the webhook CRM has no sync worker")?;
    if let Some(handle) = &system.http {
        screen.line(&format!(
            "web UI: http://{0}/  (agent desktop: {1} / {2}; wallboard http://{0}/wallboard: {3} / {4})",
            handle.local_addr, DEMO_HUMAN.0, DEMO_HUMAN.1, DEMO_SUPERVISOR.0, DEMO_SUPERVISOR.1
        ));
        screen.line(&format!(
            "your callers talk up to {} min (the simulated agents' {}-{} s): try hold, consult, conference; hang up from the desktop",
            DEMO_HUMAN_TALK_MS / 60_000,
            plan.talk_ms.0 / 1000,
            plan.talk_ms.1 / 1000
        ));
    }
    let keeper = AgentKeeper {
        registry: registry.clone(),
        latency: Rc::clone(&latency),
    }
    .start();
    let _ = registry.send(Subscribe(keeper.recipient())).await;
    for id in &agent_ids {
        for command in [AgentCommand::Login, AgentCommand::Ready] {
            let _ = registry
                .send(AgentRequest {
                    agent: id.as_str().into(),
                    command,
                })
                .await;
        }
    }
    info!(
        agents = plan.agents,
        rate = plan.rate,
        duration_s = plan.duration_s,
        crm = %url,
        data_dir = %data_dir.display(),
        "Demo started."
    );
    screen.line(&format!(
        "edgecc demo: {} agents, {} calls/s for {} s, CRM {}{}",
        plan.agents,
        plan.rate,
        plan.duration_s,
        url,
        match plan.outage {
            Some((a, b)) if emulator.is_some() => format!(", down from {a} s to {b} s"),
            _ => String::new(),
        }
    ));

    // Callers arrive; the CRM goes down and comes back; a line a second.
    let mut rng = SplitMix64::new(args.seed ^ 0xCA11);
    let mut calls_total = 0u64;
    let mut callers: Vec<LegId> = Vec::new();
    let tick = Duration::from_millis(50);
    let start = tokio::time::Instant::now();
    let end = start + Duration::from_secs(plan.duration_s);
    let mut next_status = start + STATUS_INTERVAL;
    let mut crm_down = false;
    let mut next_arrival = start;
    while tokio::time::Instant::now() < end {
        let elapsed = start.elapsed().as_secs();
        if let (Some((from, to)), Some(e)) = (plan.outage, &emulator) {
            let want_down = elapsed >= from && elapsed < to;
            if want_down != crm_down {
                crm_down = want_down;
                let mode = if crm_down {
                    Mode::Refuse { for_ms: None }
                } else {
                    Mode::Normal
                };
                e.set_mode(mode)
                    .await
                    .map_err(|err| format!("CRM emulator: {err}"))?;
                screen.line(&format!(
                    "t={elapsed:>3}s  CRM {}",
                    if crm_down { "goes DOWN" } else { "is back UP" }
                ));
            }
        }
        // Poisson arrivals: exponential gaps with mean 1/rate. A box that
        // cannot place them as fast as they are due catches up in bursts of
        // one tick, so the CRM's outage window and the status line above
        // still follow the clock (and each call is counted as placed with
        // the CRM up or down as it really was).
        let burst_until = tokio::time::Instant::now() + tick;
        while next_arrival <= tokio::time::Instant::now()
            && next_arrival < end
            && tokio::time::Instant::now() < burst_until
        {
            let u = (rng.below(1 << 53) as f64 + 1.0) / (1u64 << 53) as f64;
            next_arrival += Duration::from_secs_f64(-u.ln() / plan.rate);
            calls_total += 1;
            let leg_id = format!("demo-{calls_total}");
            latency.borrow_mut().placed(&leg_id, crm_down);
            let (_, dnis) = QUEUES[rng.below(QUEUES.len() as u64) as usize];
            let mut caller = Caller::new(&format!("+1555{:07}", rng.below(10_000_000)), dnis);
            caller.leg_id = Some(LegId::new(leg_id));
            caller.patience_ms = Some(rng.range(plan.patience_ms.0, plan.patience_ms.1));
            caller.talk_ms = Some(rng.range(plan.talk_ms.0, plan.talk_ms.1));
            let var = |key: &str, value: String| AttachedVar {
                key: key.to_string(),
                value,
            };
            caller.attached = vec![
                var("customer_id", format!("C{:06}", rng.below(1_000_000))),
                var(
                    "ivr_choice",
                    if rng.chance(0.5) { "billing" } else { "orders" }.to_string(),
                ),
            ];
            if let Ok(leg) = sim.send(PlaceCall(caller)).await {
                callers.push(leg);
            }
        }
        if tokio::time::Instant::now() >= next_status {
            next_status += STATUS_INTERVAL;
            let status = status_line(
                elapsed,
                calls_total,
                &registry,
                &sync,
                &outbox,
                crm_down,
                clock.now_ms(),
            )
            .await;
            if let Some(status) = status {
                screen.status(&status);
            }
        }
        if next_arrival <= tokio::time::Instant::now() && next_arrival < end {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(tick).await;
        }
    }
    if let Some(e) = &emulator {
        if crm_down {
            e.set_mode(Mode::Normal)
                .await
                .map_err(|err| format!("CRM emulator: {err}"))?;
            screen.line(&format!("t={:>3}s  CRM is back UP", plan.duration_s));
        }
    }

    screen.finish();
    // Let calls finish, then hang up whoever is left (end of the shift).
    let settle_until = tokio::time::Instant::now() + SETTLE_WAIT;
    while tokio::time::Instant::now() < settle_until && live_calls(&registry).await > 0 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for leg in &callers {
        let _ = sim
            .send(HangUpLeg {
                leg_id: leg.clone(),
                cause: HangupCause::Normal,
            })
            .await;
    }
    let calls_gone_by = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < calls_gone_by && live_calls(&registry).await > 0 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The actors' writer must have handed everything to the outbox (always
    // waited for, up to WRITER_WAIT: the summary's appended count and the
    // outbox depth are read after it); the CRM's delivery of it is waited
    // for up to `--drain-wait`.
    let drained_by = tokio::time::Instant::now() + plan.drain_wait;
    let written_by = tokio::time::Instant::now() + WRITER_WAIT;
    loop {
        let snap = registry.send(Snapshot { with_queues: false }).await;
        let writer_idle = snap.map(|s| s.outbox.records_pending == 0).unwrap_or(true);
        let stats = outbox.stats(clock.now_ms()).map_err(|e| e.to_string())?;
        if writer_idle && stats.depth == 0 {
            break;
        }
        let now = tokio::time::Instant::now();
        if !writer_idle && now < written_by {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        if now >= drained_by {
            screen.line(&format!(
                "outbox not drained after {} s",
                plan.drain_wait.as_secs()
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let snapshot = registry
        .send(Snapshot { with_queues: false })
        .await
        .map_err(|e| format!("snapshot: {e}"))?;
    let sync_status = sync.send(GetSyncStatus).await.map_err(|e| e.to_string())?;
    let stats = outbox.stats(clock.now_ms()).map_err(|e| e.to_string())?;
    let ended = |k: &str| snapshot.ended.get(k).copied().unwrap_or(0);
    let mut summary = Summary {
        calls_total,
        calls_accepted: ended("completed"),
        calls_abandoned: ended("abandoned"),
        calls_timed_out: ended("timed_out") + ended("overflowed"),
        calls_failed: ended("failed"),
        records_appended: snapshot.outbox.records_written,
        records_dead: stats.dead_letters,
        records_pending: stats.depth,
        crm_breaker_opened: sync_status.breaker_opened,
        ..Summary::default()
    };
    match &emulator {
        Some(e) => {
            let crm = e.stats();
            let received = e.records();
            let by_kind = |k: &str| received.iter().filter(|r| r.kind == k).count() as u64;
            summary.crm_interactions = by_kind("interaction.create");
            summary.crm_phone_logs = by_kind("phone_log.create");
            summary.crm_work_items = by_kind("work_item.create");
            summary.records_delivered = crm.records;
            summary.crm_duplicates = Some(crm.duplicates);
            summary.crm_out_of_order = Some(out_of_order(&received));
        }
        None => {
            summary.records_delivered = sync_status.delivered;
        }
    }
    {
        let mut l = latency.borrow_mut();
        (
            summary.offer_latency_us_p50_crm_up,
            summary.offer_latency_us_p99_crm_up,
        ) = percentiles(&mut l.up);
        (
            summary.offer_latency_us_p50_crm_down,
            summary.offer_latency_us_p99_crm_down,
        ) = percentiles(&mut l.down);
        summary.routing_samples = (l.routing_up.len() as u64, l.routing_down.len() as u64);
        (summary.routing_us_p50_crm_up, summary.routing_us_p99_crm_up) =
            percentiles(&mut l.routing_up);
        (
            summary.routing_us_p50_crm_down,
            summary.routing_us_p99_crm_down,
        ) = percentiles(&mut l.routing_down);
    }
    check(
        &mut summary,
        snapshot.terminal_anomalies,
        emulator.is_some(),
    );
    if let Some(e) = emulator {
        e.stop().await;
    }
    system.shutdown().await;
    Ok(summary)
}

/// The daemon config the demo runs: its contact center; the webhook CRM
/// (the built-in emulator or `--crm-url`) with quick retries, so the
/// backlog drains soon after the outage; with `--http`, the listener, a
/// human agent and a supervisor, and without it no HTTP at all.
fn demo_daemon_config(
    cc: &ContactCenterConfig,
    webhook: WebhookConfig,
    http: Option<&str>,
) -> Result<Config, String> {
    let mut config = Config {
        site_id: cc.site_id.clone(),
        contact_center: cc.clone(),
        crm: CrmSettings {
            adapter: CrmAdapterConfig::Webhook(webhook),
            sync: SyncConfig {
                breaker_probe_interval_ms: 1_000,
                backoff_cap_ms: 5_000,
                ..SyncConfig::default()
            },
        },
        http: HttpConfig {
            listen: None,
            ..HttpConfig::default()
        },
        ..Config::default()
    };
    let Some(addr) = http else {
        return Ok(config);
    };
    if addr.parse::<std::net::SocketAddr>().is_err() {
        return Err(format!(
            "--http: {addr:?} is not an address:port such as 127.0.0.1:8080"
        ));
    }
    config.http.listen = Some(addr.to_string());
    for (id, password, role) in [
        (DEMO_HUMAN.0, DEMO_HUMAN.1, Role::Agent),
        (DEMO_SUPERVISOR.0, DEMO_SUPERVISOR.1, Role::Supervisor),
    ] {
        config.users.push(UserConfig {
            id: id.to_string(),
            role,
            password_hash: crate::http::hash_password(password)?,
            endpoint: Some(format!("sim/{id}")),
            name: None,
        });
    }
    Ok(config)
}

/// The checks the demo promises; fills `failures` and `ok`.
fn check(s: &mut Summary, terminal_anomalies: u64, own_crm: bool) {
    let mut fail = |what: String| s.failures.push(what);
    let ended = s.calls_accepted + s.calls_abandoned + s.calls_timed_out + s.calls_failed;
    if ended != s.calls_total {
        fail(format!(
            "{} calls placed but {ended} ended with a reason",
            s.calls_total
        ));
    }
    if terminal_anomalies != 0 {
        fail(format!("{terminal_anomalies} calls ended twice"));
    }
    if s.records_pending != 0 {
        fail(format!("{} records still in the outbox", s.records_pending));
    }
    if s.records_dead != 0 {
        fail(format!("{} records in the dead letters", s.records_dead));
    }
    if s.records_delivered != s.records_appended {
        fail(format!(
            "{} records appended but {} delivered",
            s.records_appended, s.records_delivered
        ));
    }
    if own_crm {
        let with_interaction = s.calls_accepted + s.calls_abandoned + s.calls_timed_out;
        if s.crm_phone_logs != s.calls_accepted {
            fail(format!(
                "{} accepted calls but {} phone logs at the CRM",
                s.calls_accepted, s.crm_phone_logs
            ));
        }
        if s.crm_interactions != with_interaction {
            fail(format!(
                "{with_interaction} calls need an interaction but the CRM has {}",
                s.crm_interactions
            ));
        }
        if s.crm_work_items != s.calls_abandoned + s.calls_timed_out {
            fail(format!(
                "{} timed-out or abandoned calls but {} work items at the CRM",
                s.calls_abandoned + s.calls_timed_out,
                s.crm_work_items
            ));
        }
        if s.crm_out_of_order.unwrap_or(0) != 0 {
            fail(format!(
                "{} interactions got updates out of order",
                s.crm_out_of_order.unwrap_or(0)
            ));
        }
    }
    s.ok = s.failures.is_empty();
}

/// Arrival → first offer latencies, by CRM state at arrival; and the same
/// for the calls that found an agent Ready when they arrived, which is the
/// routing decision alone (the others also waited for an agent).
#[derive(Default)]
struct OfferLatency {
    /// Calls placed and not yet offered: when, whether the CRM was down,
    /// whether an agent was Ready.
    waiting: std::collections::HashMap<String, (std::time::Instant, bool, bool)>,
    /// Latencies (µs) of calls that arrived while the CRM was up.
    up: Vec<u64>,
    /// Latencies (µs) of calls that arrived while the CRM was down.
    down: Vec<u64>,
    /// Of `up`, the calls that found an agent Ready.
    routing_up: Vec<u64>,
    /// Of `down`, the calls that found an agent Ready.
    routing_down: Vec<u64>,
    /// Agents Ready now (from the agent events).
    ready: std::collections::HashSet<String>,
}

impl OfferLatency {
    /// A call is about to be placed.
    fn placed(&mut self, call: &str, crm_down: bool) {
        let free = !self.ready.is_empty();
        self.waiting.insert(
            call.to_string(),
            (std::time::Instant::now(), crm_down, free),
        );
    }

    /// The PBX is asked to ring an agent for `call`; only the first counts.
    fn offered(&mut self, call: &str) {
        if let Some((at, down, free)) = self.waiting.remove(call) {
            let us = at.elapsed().as_micros() as u64;
            let (all, routing) = if down {
                (&mut self.down, &mut self.routing_down)
            } else {
                (&mut self.up, &mut self.routing_up)
            };
            all.push(us);
            if free {
                routing.push(us);
            }
        }
    }

    /// An agent's state changed.
    fn agent(&mut self, agent: &str, ready: bool) {
        if ready {
            self.ready.insert(agent.to_string());
        } else {
            self.ready.remove(agent);
        }
    }
}

/// (p50, p99) of `v`, 0 when empty.
fn percentiles(v: &mut [u64]) -> (u64, u64) {
    if v.is_empty() {
        return (0, 0);
    }
    v.sort_unstable();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.50), at(0.99))
}

/// Interactions whose records reached the CRM out of their outbox order.
fn out_of_order(received: &[crate::crm::emulator::Received]) -> u64 {
    let mut last: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
    let mut bad: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for r in received {
        let Some(seq) = r
            .document
            .get("sequence")
            .and_then(serde_json::Value::as_u64)
        else {
            continue;
        };
        let prev = last.insert(r.interaction.as_str(), seq).unwrap_or(0);
        if seq < prev {
            bad.insert(r.interaction.as_str());
        }
    }
    bad.len() as u64
}

/// Calls not yet ended.
async fn live_calls(registry: &Addr<Registry>) -> usize {
    registry
        .send(Snapshot { with_queues: false })
        .await
        .map(|s| s.calls.len())
        .unwrap_or(0)
}

/// One status line.
#[allow(clippy::too_many_arguments)]
async fn status_line(
    elapsed: u64,
    calls_total: u64,
    registry: &Addr<Registry>,
    sync: &Addr<SyncWorker>,
    outbox: &edgecc_storage::Outbox,
    crm_down: bool,
    now_ms: u64,
) -> Option<String> {
    let Ok(snap) = registry.send(Snapshot { with_queues: false }).await else {
        return None;
    };
    let sync = sync.send(GetSyncStatus).await.unwrap_or_default();
    let stats = outbox.stats(now_ms).ok();
    let mut states: BTreeMap<&'static str, usize> = BTreeMap::new();
    for a in &snap.agents {
        *states.entry(a.state.name()).or_default() += 1;
    }
    let ended = |k: &str| snap.ended.get(k).copied().unwrap_or(0);
    Some(format!(
        "t={elapsed:>3}s  calls offered {calls_total} answered {} abandoned {} timed-out {} | ready {} talking {} | outbox {} ({:.1}s) | CRM {} {:?}, {} delivered",
        ended("completed") + snap.calls.iter().filter(|c| c.phase == "connected").count() as u64,
        ended("abandoned"),
        ended("timed_out") + ended("overflowed"),
        states.get("ready").copied().unwrap_or(0),
        states.get("talking").copied().unwrap_or(0),
        stats.as_ref().map(|s| s.depth).unwrap_or(0),
        stats.as_ref().map(|s| s.oldest_age_ms).unwrap_or(0) as f64 / 1000.0,
        if crm_down { "down" } else { "up" },
        sync.circuit.unwrap_or(crate::crm::sync::Circuit::Closed),
        sync.delivered,
    ))
}

/// Prints the summary for people.
fn print_summary(s: &Summary) {
    println!();
    println!("summary");
    println!("  calls placed      {}", s.calls_total);
    println!("  accepted          {}", s.calls_accepted);
    println!("  abandoned         {}", s.calls_abandoned);
    println!("  timed out         {}", s.calls_timed_out);
    println!("  failed            {}", s.calls_failed);
    println!("  records appended  {}", s.records_appended);
    println!("  records delivered {}", s.records_delivered);
    println!(
        "  pending / dead    {} / {}",
        s.records_pending, s.records_dead
    );
    println!(
        "  at the CRM        {} interactions, {} phone logs, {} work items",
        s.crm_interactions, s.crm_phone_logs, s.crm_work_items
    );
    if let Some(d) = s.crm_duplicates {
        println!("  re-deliveries     {d} (deduplicated by idempotency key)");
    }
    println!("  breaker opened    {} times", s.crm_breaker_opened);
    println!(
        "  routing decision  p50 {} µs / p99 {} µs with the CRM up; p50 {} µs / p99 {} µs with it down",
        s.routing_us_p50_crm_up,
        s.routing_us_p99_crm_up,
        s.routing_us_p50_crm_down,
        s.routing_us_p99_crm_down
    );
    println!(
        "                    (arrival → offer of the {} / {} calls that found an agent Ready)",
        s.routing_samples.0, s.routing_samples.1
    );
    println!(
        "  arrival → offer   p50 {} µs / p99 {} µs with the CRM up; p50 {} µs / p99 {} µs with it down",
        s.offer_latency_us_p50_crm_up,
        s.offer_latency_us_p99_crm_up,
        s.offer_latency_us_p50_crm_down,
        s.offer_latency_us_p99_crm_down
    );
    println!("                    (every call: routing plus the wait for a free agent)");
    if s.ok {
        println!("check: OK — every accepted call has one interaction and one phone log, every timed-out or abandoned call one work item; nothing lost, nothing applied twice");
    } else {
        for f in &s.failures {
            println!("check FAILED: {f}");
        }
    }
}

/// Keeps simulated agents working: an agent put Not Ready by a missed
/// offer (RONA) or a reject goes Ready again a few seconds later, as a
/// person at a desk would.
struct AgentKeeper {
    /// Where to send the Ready.
    registry: Addr<Registry>,
    /// Told which agents are Ready (routing time is measured on the calls
    /// that found one).
    latency: Rc<std::cell::RefCell<OfferLatency>>,
}

impl Actor for AgentKeeper {
    type Context = Context<Self>;
}

impl Handler<CcEvent> for AgentKeeper {
    type Result = ();

    fn handle(&mut self, event: CcEvent, ctx: &mut Self::Context) {
        if let CcEvent::AgentChanged(view) = event {
            self.latency
                .borrow_mut()
                .agent(view.agent.as_str(), view.state.name() == "ready");
            if view.state.name() == "not_ready"
                && view.pending.is_none()
                && view.agent.as_str() != DEMO_HUMAN.0
            {
                let registry = self.registry.clone();
                let agent = view.agent.clone();
                ctx.run_later(Duration::from_secs(3), move |_, _| {
                    registry.do_send(AgentRequest {
                        agent,
                        command: AgentCommand::Ready,
                    });
                });
            }
        }
    }
}
