//! `edgecc demo --restart-at SECS[,SECS...]`: the daemon killed and
//! restarted under load, in front of a PBX that lives on in its own
//! process, as a real one does.
//!
//! Three processes: the simulated PBX is one of its own (`edgecc
//! pbx-emulator`, [`super::pbx_process`]: Asterisk's ARI over HTTP and
//! WebSocket on 127.0.0.1, with the agents' phones, some slow, some
//! rejecting, some never answering), spawned by the demo and ended on
//! every exit path; the daemon is another (`edgecc run` on a config the
//! demo writes, [`super::child`], its ARI adapter pointed at the PBX); the
//! demo's own process plays the callers, who dial in and hang up through
//! the PBX's control API, and the CRM emulator. At each `--restart-at`
//! second the daemon is SIGKILLed and started again on the same data
//! directory, while the PBX process keeps every call up; the status line
//! says what that cost: the time from the spawn to `/readyz` answering 200
//! (the PBX link up and the restored calls reconciled) and the calls the
//! restarted daemon re-adopted from the PBX (`edgecc_restart_calls_adopted`
//! in its `/metrics`), and 3 s after that, from the PBX's side, whether
//! the calls talking at the kill still talk on the same bridge, whether
//! the callers waiting at the kill are still in the application, and what
//! the PBX counted meanwhile (channels destroyed, the application's
//! hang-ups and hand-backs). `--link-cut-at` cuts the PBX link (every
//! WebSocket closed, new ones refused for 2 s); `--crm-faults` makes the
//! CRM refuse connections, answer 429 and answer 500 in turn.
//!
//! The check at the end is made from outside, at the PBX (its status API)
//! and the CRM, so that no restart can hide anything: no call talking at a
//! kill was cut (its caller hung it up, or it still talks), every call
//! edgecc took has exactly one terminal record at the CRM (answered: one
//! interaction, one phone log, updates in order with exactly one `ended`,
//! the last; abandoned or timed out: one interaction and one work item), no
//! agent phone ever rang with two calls at once, no record lost (the
//! outbox empty, no dead letters) and no call, channel or bridge left at
//! the PBX.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use edgecc_actors::rng::SplitMix64;
use serde::Serialize;

use super::child::{self, Api, ChildConfig, Launch};
use super::pbx_process::PbxProcess;
use super::Plan;
use crate::ari_emulator::control::Status;
use crate::ari_emulator::{EndpointBehaviour, Tally};
use crate::crm::emulator::{EmulatorConfig, EmulatorHandle, Mode};

/// How long a start may take before the demo gives up.
const READY_WAIT: Duration = Duration::from_secs(60);
/// How long the PBX refuses a new link after a cut.
const LINK_CUT: Duration = Duration::from_secs(2);
/// How long each CRM fault of `--crm-faults` lasts, and the gap after it.
const CRM_FAULT: Duration = Duration::from_secs(3);
/// How often callers and phones are looked at.
const TICK: Duration = Duration::from_millis(50);
/// How long after a restarted daemon reconciled the PBX is looked at
/// again for what the restart cost: past the daemon's orphan check (2 s
/// after the link is up).
const AFTER_RESTART_LOOK: Duration = Duration::from_secs(3);

/// What one restart cost.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestartCost {
    /// When, in seconds from the start.
    pub at_s: u64,
    /// Spawn to `/readyz` 200, ms.
    pub ready_ms: u64,
    /// Spawn to the restored calls reconciled with the PBX (re-adopted
    /// or closed), ms.
    pub reconciled_ms: u64,
    /// Live calls the restarted daemon restored from its saved state.
    pub calls_restored: u64,
    /// Of those, calls the PBX still had, re-adopted and carried on.
    pub calls_adopted: u64,
    /// Calls talking at the PBX at the kill (the caller bridged with an
    /// agent's phone).
    pub talking_at_kill: u64,
    /// Of those, still talking on the same bridge with the same channels
    /// 3 s after the restarted daemon reconciled.
    pub talking_kept: u64,
    /// Of those, ended by their caller meanwhile (the demo hung up).
    pub talking_ended_by_caller: u64,
    /// Callers waiting in the application at the kill.
    pub queued_at_kill: u64,
    /// Of those, still in the application (waiting, or answered since) at
    /// that look.
    pub queued_kept: u64,
    /// Of those, gone because their caller hung up meanwhile.
    pub queued_ended_by_caller: u64,
    /// Channels the PBX destroyed from the kill to that look, whatever the
    /// cause (its own count, [`Tally`]).
    pub pbx_channels_destroyed: u64,
    /// Channels the daemon hung up over ARI in that time (the PBX's count).
    pub pbx_app_hangups: u64,
    /// Channels the daemon handed back to the dialplan in that time.
    pub pbx_app_continues: u64,
    /// True once the PBX was looked at after the restart (the fields above
    /// from `talking_kept` on are filled).
    pub looked_after: bool,
}

/// The summary of a run with restarts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestartSummary {
    /// Calls the callers placed.
    pub calls_placed: u64,
    /// Of those, calls the PBX could not hand to edgecc (no link: the
    /// daemon down or restarting); Asterisk's dialplan takes them.
    pub calls_not_taken: u64,
    /// Calls edgecc handed back to the dialplan (`continue`) with no CRM
    /// record: calls whose arrival died with a killed process or a cut
    /// link, found unknown in the application afterwards. Asterisk's
    /// dialplan takes them (a `Queue()` fallback, say).
    pub calls_handed_back_unknown: u64,
    /// Calls handed back to the dialplan after their end was recorded
    /// (a timed-out caller hearing its announcement when the process
    /// died: the restarted one no longer knows the channel).
    pub calls_handed_back_after_end: u64,
    /// Calls answered by an agent and ended (CRM: phone log and `ended`).
    pub calls_accepted: u64,
    /// Calls that ended without an agent: abandoned or timed out (CRM:
    /// work item).
    pub calls_not_answered: u64,
    /// Restarts done, and what each cost.
    pub restarts: Vec<RestartCost>,
    /// PBX link cuts done.
    pub link_cuts: u64,
    /// CRM faults played (down, 429, 500).
    pub crm_faults: u64,
    /// Distinct records the CRM holds.
    pub records_delivered: u64,
    /// Re-deliveries the CRM deduplicated by idempotency key.
    pub crm_duplicates: u64,
    /// Records still in the outbox at the end.
    pub records_pending: u64,
    /// Records in the dead letters at the end.
    pub records_dead: u64,
    /// Times an agent's phone had two calls ringing or up at once (each
    /// set of channels counted once; looked at every 50 ms).
    pub agent_double_offers: u64,
    /// What failed, if anything.
    pub failures: Vec<String>,
    /// True when every check passed.
    pub ok: bool,
    /// The PBX process's id, as its status API reports it (not the
    /// daemon's, not the demo's).
    pub pbx_pid: u32,
    /// The daemon's process ids, one per life.
    pub daemon_pids: Vec<u32>,
}

/// The flags of the restart mode, parsed.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// SIGKILL and restart at these seconds.
    pub restarts: Vec<u64>,
    /// Cut the PBX link at these seconds.
    pub link_cuts: Vec<u64>,
    /// Play CRM faults (down, 429, 500) in turn during the run.
    pub crm_faults: bool,
}

impl Faults {
    /// The restart mode's flags, or `None` when none is given (the demo
    /// then runs in one process).
    pub fn from_args(args: &super::DemoArgs) -> Result<Option<Faults>, String> {
        if args.restart_at.is_none() && args.link_cut_at.is_none() && !args.crm_faults {
            return Ok(None);
        }
        if args.http.is_some() || args.crm_url.is_some() {
            return Err(
                "--restart-at, --link-cut-at and --crm-faults run with the built-in CRM and without --http"
                    .to_string(),
            );
        }
        let list = |flag: &str, v: &Option<String>| match v {
            Some(text) => seconds_list(flag, text, args.duration),
            None => Ok(Vec::new()),
        };
        Ok(Some(Faults {
            restarts: list("--restart-at", &args.restart_at)?,
            link_cuts: list("--link-cut-at", &args.link_cut_at)?,
            crm_faults: args.crm_faults,
        }))
    }
}

/// Parses `SECS[,SECS...]` for `flag`: whole seconds within the run.
pub fn seconds_list(flag: &str, text: &str, duration_s: u64) -> Result<Vec<u64>, String> {
    let mut out = Vec::new();
    for part in text.split(',') {
        match part.trim().parse::<u64>() {
            Ok(s) if s >= 1 && s < duration_s => out.push(s),
            _ => {
                return Err(format!(
                    "{flag}: {part:?} is not a whole second from 1 to {} (the run's --duration minus one)",
                    duration_s.saturating_sub(1)
                ))
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// One caller the demo placed.
struct CallerState {
    /// When it was placed.
    placed: Instant,
    /// How long it waits for an agent.
    patience: Duration,
    /// How long it talks once answered.
    talk: Duration,
    /// When an agent joined it.
    answered: Option<Instant>,
    /// The demo hung it up (once).
    hung_up: bool,
}

/// Every call edgecc took, by caller channel: whether edgecc handed it
/// back to the dialplan (seen out of the application while up).
type Taken = HashMap<String, bool>;

/// The PBX as it was at a kill, to compare once the daemon is back.
struct AtKill {
    /// Index of the restart in the summary.
    restart: usize,
    /// Calls talking: caller channel, its bridge, the bridge's channels.
    talking: Vec<(String, String, Vec<String>)>,
    /// Callers waiting in the application.
    queued: Vec<String>,
    /// The PBX's counts.
    tally: Tally,
}

impl AtKill {
    /// What the PBX shows of the callers in `callers`.
    fn new(restart: usize, state: &Status, callers: &HashMap<String, CallerState>) -> AtKill {
        let mut at = AtKill {
            restart,
            talking: Vec::new(),
            queued: Vec::new(),
            tally: state.tally.clone(),
        };
        for id in callers.keys() {
            let Some(ch) = state.channel(id).filter(|c| c.in_stasis) else {
                continue;
            };
            match ch
                .bridge_id
                .as_deref()
                .and_then(|b| state.bridge(b))
                .filter(|b| b.channels.len() >= 2)
            {
                Some(b) => at
                    .talking
                    .push((id.clone(), b.id.clone(), b.channels.clone())),
                None => at.queued.push(id.clone()),
            }
        }
        at
    }

    /// Fills the restart's cost from the PBX now; `hung_up`: the callers
    /// the demo hung up so far.
    fn look(&self, cost: &mut RestartCost, state: &Status, hung_up: &HashSet<String>) {
        cost.talking_at_kill = self.talking.len() as u64;
        cost.queued_at_kill = self.queued.len() as u64;
        for (id, bridge, channels) in &self.talking {
            let same = state
                .bridge(bridge)
                .is_some_and(|b| &b.channels == channels);
            if hung_up.contains(id) {
                cost.talking_ended_by_caller += 1;
            } else if same {
                cost.talking_kept += 1;
            }
        }
        for id in &self.queued {
            if hung_up.contains(id) {
                cost.queued_ended_by_caller += 1;
            } else if state.channel(id).is_some_and(|c| c.in_stasis) {
                cost.queued_kept += 1;
            }
        }
        let t = &state.tally;
        cost.pbx_channels_destroyed = t
            .destroyed_total()
            .saturating_sub(self.tally.destroyed_total());
        cost.pbx_app_hangups = t.app_hangups.saturating_sub(self.tally.app_hangups);
        cost.pbx_app_continues = t.app_continues.saturating_sub(self.tally.app_continues);
        cost.looked_after = true;
    }
}

/// Runs the demo with the daemon as a child process.
pub(super) async fn run(
    plan: &Plan,
    args: &super::DemoArgs,
    faults: &Faults,
    data_dir: &std::path::Path,
) -> Result<RestartSummary, String> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    // The world: the CRM and the PBX, each on its own port.
    let crm = EmulatorHandle::start(EmulatorConfig {
        webhook_secret: Some(super::DEMO_SECRET.as_bytes().to_vec()),
        ..EmulatorConfig::default()
    })
    .await
    .map_err(|e| format!("cannot start the CRM emulator: {e}"))?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut cc = super::demo_config(plan.agents, args.wrap_up_ms, false);
    // Agents are Ready again after a missed offer, as the in-process
    // demo's keeper does for its agents.
    cc.timers.rona_sets_not_ready = false;
    let mut rng = SplitMix64::new(args.seed);
    let mut phones = Vec::with_capacity(cc.agents.len());
    for agent in &mut cc.agents {
        let endpoint = format!("PJSIP/{}", agent.extension);
        // Phones like people: most answer, a few reject, a few never do.
        let behaviour = match rng.below(100) {
            0..=3 => EndpointBehaviour::Reject,
            4..=6 => EndpointBehaviour::RingForever,
            _ => EndpointBehaviour::AnswerAfter {
                ring_ms: rng.range(plan.answer_ms.0, plan.answer_ms.1),
            },
        };
        phones.push((endpoint.clone(), behaviour));
        agent.endpoint = Some(endpoint);
    }
    // The PBX: a process of its own, which the daemon's SIGKILLs do not
    // touch; killed when `pbx` is dropped, whichever way this returns.
    let mut pbx = PbxProcess::spawn(&exe, &phones, &data_dir.join("pbx.log"))?;
    let pbx_pid = pbx.status().await?.pid;
    let http = child::free_port()?;
    let config = child::write_config(
        data_dir,
        &ChildConfig {
            cc: &cc,
            ari_url: pbx.ari_url.clone(),
            ari_user: pbx.credentials.clone(),
            crm_url: crm.webhook_url(),
            http,
            password_hash: crate::http::hash_password(child::AGENT_PASSWORD)?,
        },
    )?;
    let launch = Launch {
        exe,
        config,
        data_dir: data_dir.join("data"),
        log: data_dir.join("daemon.log"),
    };
    let api = Api::new(http);
    let mut daemon = launch.spawn()?;
    let first_ready = match api.wait_ready(daemon.spawned, READY_WAIT, false).await {
        Ok(r) => r.ready.unwrap_or_default(),
        Err(e) => {
            daemon.kill();
            return Err(format!("{e}; see {}", launch.log.display()));
        }
    };
    let mut summary = RestartSummary {
        pbx_pid,
        daemon_pids: vec![daemon.pid()],
        ..RestartSummary::default()
    };
    for agent in &cc.agents {
        api.agent_ready(&agent.id).await?;
    }
    println!(
        "edgecc demo: {} agents, {} calls/s for {} s; edgecc runs as process {} (ready in {} ms), the PBX as process {} ({}), the CRM {} here; restarts at {:?} s, link cuts at {:?} s{}; daemon log {}",
        plan.agents,
        plan.rate,
        plan.duration_s,
        daemon.pid(),
        first_ready.as_millis(),
        pbx_pid,
        pbx.ari_url,
        crm.webhook_url(),
        faults.restarts,
        faults.link_cuts,
        if faults.crm_faults { ", CRM faults" } else { "" },
        launch.log.display(),
    );

    let mut callers: HashMap<String, CallerState> = HashMap::new();
    let mut taken: Taken = HashMap::new();
    let mut doubles = std::collections::HashSet::new();
    let mut caller_rng = SplitMix64::new(args.seed ^ 0xCA11);
    let start = Instant::now();
    let end = start + Duration::from_secs(plan.duration_s);
    let mut next_arrival = start;
    let mut next_status = start + Duration::from_secs(1);
    let mut restarts = faults.restarts.iter().copied().peekable();
    let mut restarting: Option<(
        u64,
        tokio::sync::oneshot::Receiver<Result<child::Readiness, String>>,
    )> = None;
    let mut cuts = faults.link_cuts.iter().copied().peekable();
    // The PBX at the last kill, and when to look at it again.
    let mut at_kill: Option<AtKill> = None;
    let mut look_at: Option<Instant> = None;
    let mut hung_up: HashSet<String> = HashSet::new();
    let mut crm_fault = CrmFaults::new(faults.crm_faults);
    let mut crm_down = false;
    let endpoints: Vec<String> = cc.agents.iter().map(|a| a.endpoint()).collect();
    while Instant::now() < end {
        let elapsed = start.elapsed().as_secs();
        if restarting.is_none() && restarts.peek().is_some_and(|&at| elapsed >= at) {
            // SIGKILL, then at once a new process on the same data
            // directory; callers keep arriving at the PBX meanwhile.
            let at = restarts.next().unwrap_or(elapsed);
            let state = pbx.status().await?;
            // A restart not yet looked at is looked at now.
            if let Some(prev) = at_kill.take() {
                if let Some(cost) = summary.restarts.get_mut(prev.restart) {
                    prev.look(cost, &state, &hung_up);
                }
            }
            look_at = None;
            at_kill = Some(AtKill::new(summary.restarts.len(), &state, &callers));
            daemon.kill();
            println!(
                "t={elapsed:>3}s  edgecc SIGKILLed; starting it again on the same data directory"
            );
            daemon = launch.spawn()?;
            summary.daemon_pids.push(daemon.pid());
            let (tx, rx) = tokio::sync::oneshot::channel();
            let (api, spawned) = (api.clone(), daemon.spawned);
            actix_rt::spawn(async move {
                let _ = tx.send(api.wait_ready(spawned, READY_WAIT, true).await);
            });
            restarting = Some((at, rx));
        }
        if let Some((at, rx)) = &mut restarting {
            match rx.try_recv() {
                Ok(Ok(r)) => {
                    let cost = RestartCost {
                        at_s: *at,
                        ready_ms: r.ready.unwrap_or_default().as_millis() as u64,
                        reconciled_ms: r.reconciled.unwrap_or_default().as_millis() as u64,
                        calls_restored: r.calls_restored,
                        calls_adopted: r.calls_adopted,
                        ..RestartCost::default()
                    };
                    println!(
                        "t={:>3}s  edgecc back (process {}): READY in {} ms, restored calls reconciled in {} ms: {} calls re-adopted from the PBX ({} restored)",
                        start.elapsed().as_secs(),
                        daemon.pid(),
                        cost.ready_ms,
                        cost.reconciled_ms,
                        cost.calls_adopted,
                        cost.calls_restored
                    );
                    summary.restarts.push(cost);
                    restarting = None;
                    look_at = Some(Instant::now() + AFTER_RESTART_LOOK);
                }
                Ok(Err(e)) => return Err(format!("restart at {at} s: {e}")),
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {
                    if let Some(status) = daemon.exited() {
                        return Err(format!("restart at {at} s: the daemon exited ({status})"));
                    }
                }
                Err(e) => return Err(format!("restart at {at} s: {e}")),
            }
        }
        if look_at.is_some_and(|t| Instant::now() >= t) {
            look_at = None;
            if let Some(k) = at_kill.take() {
                let state = pbx.status().await?;
                if let Some(cost) = summary.restarts.get_mut(k.restart) {
                    k.look(cost, &state, &hung_up);
                    print_look(start.elapsed().as_secs(), cost);
                }
            }
        }
        if cuts.peek().is_some_and(|&at| elapsed >= at) {
            cuts.next();
            pbx.cut_link(LINK_CUT).await?;
            summary.link_cuts += 1;
            println!("t={elapsed:>3}s  PBX link cut for {} s", LINK_CUT.as_secs());
        }
        if let Some(status) = pbx.exited() {
            return Err(format!("the PBX process exited ({status})"));
        }
        if let (false, Some((from, to))) = (faults.crm_faults, plan.outage) {
            let want_down = elapsed >= from && elapsed < to;
            if want_down != crm_down {
                crm_down = want_down;
                let mode = if crm_down {
                    Mode::Refuse { for_ms: None }
                } else {
                    Mode::Normal
                };
                crm.set_mode(mode.clone())
                    .await
                    .map_err(|e| format!("CRM emulator: {e}"))?;
                println!("t={elapsed:>3}s  CRM {}", describe(&mode));
            }
        }
        if let Some(change) = crm_fault.step(start.elapsed()) {
            crm.set_mode(change.clone())
                .await
                .map_err(|e| format!("CRM emulator: {e}"))?;
            println!("t={elapsed:>3}s  CRM {}", describe(&change));
            if !matches!(change, Mode::Normal) {
                summary.crm_faults += 1;
            }
        }
        // Poisson arrivals into the PBX: exponential gaps, mean 1/rate.
        while next_arrival <= Instant::now() && next_arrival < end {
            let u = (caller_rng.below(1 << 53) as f64 + 1.0) / (1u64 << 53) as f64;
            next_arrival += Duration::from_secs_f64(-u.ln() / plan.rate);
            summary.calls_placed += 1;
            let (_, dnis) = super::QUEUES[caller_rng.below(super::QUEUES.len() as u64) as usize];
            let ani = format!("+1555{:07}", caller_rng.below(10_000_000));
            let patience = caller_rng.range(plan.patience_ms.0, plan.patience_ms.1);
            let talk = caller_rng.range(plan.talk_ms.0, plan.talk_ms.1);
            match pbx.place_call(&ani, dnis).await? {
                Some(id) => {
                    taken.insert(id.clone(), false);
                    callers.insert(
                        id,
                        CallerState {
                            placed: Instant::now(),
                            patience: Duration::from_millis(patience),
                            talk: Duration::from_millis(talk),
                            answered: None,
                            hung_up: false,
                        },
                    );
                }
                None => summary.calls_not_taken += 1,
            }
        }
        drive_callers(
            &pbx,
            &mut callers,
            &mut taken,
            &mut doubles,
            &mut hung_up,
            &endpoints,
            &mut summary,
            false,
        )
        .await?;
        if Instant::now() >= next_status {
            next_status += Duration::from_secs(1);
            print_status(elapsed, &summary, &callers, &crm, &api).await;
        }
        tokio::time::sleep(TICK).await;
    }
    if let Some((at, rx)) = restarting.take() {
        let r = rx
            .await
            .map_err(|e| format!("restart at {at} s: {e}"))?
            .map_err(|e| format!("restart at {at} s: {e}"))?;
        summary.restarts.push(RestartCost {
            at_s: at,
            ready_ms: r.ready.unwrap_or_default().as_millis() as u64,
            reconciled_ms: r.reconciled.unwrap_or_default().as_millis() as u64,
            calls_restored: r.calls_restored,
            calls_adopted: r.calls_adopted,
            ..RestartCost::default()
        });
    }
    // A restart not yet looked at (the run ended first) is looked at once
    // the daemon had its time to reconcile.
    if let Some(k) = at_kill.take() {
        tokio::time::sleep(AFTER_RESTART_LOOK).await;
        let state = pbx.status().await?;
        if let Some(cost) = summary.restarts.get_mut(k.restart) {
            k.look(cost, &state, &hung_up);
            print_look(start.elapsed().as_secs(), cost);
        }
    }
    if crm_fault.active() || crm_down {
        crm.set_mode(Mode::Normal)
            .await
            .map_err(|e| format!("CRM emulator: {e}"))?;
        println!("t={:>3}s  CRM back to normal", plan.duration_s);
    }

    // The end of the shift: calls finish, then whoever is left hangs up.
    let settle_until = Instant::now() + super::SETTLE_WAIT;
    while Instant::now() < settle_until && callers.values().any(|c| !c.hung_up) {
        drive_callers(
            &pbx,
            &mut callers,
            &mut taken,
            &mut doubles,
            &mut hung_up,
            &endpoints,
            &mut summary,
            false,
        )
        .await?;
        tokio::time::sleep(TICK).await;
    }
    let gone_by = Instant::now() + Duration::from_secs(30);
    while Instant::now() < gone_by && !callers.is_empty() {
        drive_callers(
            &pbx,
            &mut callers,
            &mut taken,
            &mut doubles,
            &mut hung_up,
            &endpoints,
            &mut summary,
            true,
        )
        .await?;
        tokio::time::sleep(TICK).await;
    }
    // The daemon hands everything to the CRM, then stops cleanly.
    let drained_by = Instant::now() + plan.drain_wait;
    let mut last = (u64::MAX, u64::MAX);
    loop {
        let scrape = api.metrics().await.unwrap_or_default();
        let live = child::metric(&scrape, "edgecc_calls_live").unwrap_or(f64::NAN);
        let depth = child::metric(&scrape, "edgecc_outbox_depth").unwrap_or(f64::NAN);
        summary.records_pending = if depth.is_nan() { 0 } else { depth as u64 };
        summary.records_dead =
            child::metric(&scrape, "edgecc_outbox_dead_letters").unwrap_or(0.0) as u64;
        let now = (live as u64, depth as u64);
        // Twice in a row nothing live and nothing pending: settled.
        if live == 0.0 && depth == 0.0 && last == now {
            break;
        }
        last = now;
        if Instant::now() >= drained_by {
            println!("outbox not drained after {} s", plan.drain_wait.as_secs());
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if !daemon.stop(Duration::from_secs(20)).await {
        summary
            .failures
            .push("the daemon did not stop cleanly on SIGTERM".to_string());
    }
    let left = pbx.status().await?;
    check(&mut summary, &taken, &left, &crm);
    crm.stop().await;
    Ok(summary)
}

/// Callers talk, lose patience and hang up (the ones hung up go into
/// `hung_up`); the agents' phones are looked at for a second call. `all`:
/// every caller still there hangs up now.
#[allow(clippy::too_many_arguments)]
async fn drive_callers(
    pbx: &PbxProcess,
    callers: &mut HashMap<String, CallerState>,
    taken: &mut Taken,
    doubles: &mut HashSet<String>,
    hung_up: &mut HashSet<String>,
    endpoints: &[String],
    summary: &mut RestartSummary,
    all: bool,
) -> Result<(), String> {
    let state = pbx.status().await?;
    let mut per_endpoint: HashMap<&str, Vec<&str>> = HashMap::new();
    for c in &state.channels {
        if let Some(e) = c.endpoint.as_deref() {
            if c.snoop_of.is_none() {
                per_endpoint.entry(e).or_default().push(c.id.as_str());
            }
        }
    }
    for e in endpoints {
        if let Some(ids) = per_endpoint.get(e.as_str()).filter(|ids| ids.len() > 1) {
            // Counted once per set of channels, however long it lasts.
            let mut ids = ids.clone();
            ids.sort_unstable();
            if doubles.insert(ids.join(" ")) {
                summary.agent_double_offers += 1;
                tracing::error!(endpoint = %e, channels = ?ids, "An agent's phone has two calls at once.");
            }
        }
    }
    let now = Instant::now();
    let mut hang_up = Vec::new();
    callers.retain(|id, caller| {
        let Some(ch) = state.channel(id) else {
            return false; // gone: hung up, or ended by edgecc
        };
        if !ch.in_stasis {
            taken.insert(id.clone(), true);
        }
        if caller.answered.is_none() {
            let with_agent = ch
                .bridge_id
                .as_deref()
                .and_then(|b| state.bridge(b))
                .is_some_and(|b| b.channels.len() >= 2);
            if with_agent {
                caller.answered = Some(now);
            }
        }
        let done = match caller.answered {
            Some(at) => now >= at + caller.talk,
            None => now >= caller.placed + caller.patience,
        };
        if (done || all) && !caller.hung_up {
            hang_up.push(id.clone());
        }
        true
    });
    for id in hang_up {
        if pbx.hang_up(&id).await? {
            if let Some(c) = callers.get_mut(&id) {
                c.hung_up = true;
            }
            hung_up.insert(id);
        }
    }
    Ok(())
}

/// The line saying what a restart cost at the PBX.
fn print_look(elapsed: u64, r: &RestartCost) {
    println!(
        "t={elapsed:>3}s  at the PBX since the kill at {} s: {} of {} talking calls still talking ({} hung up by their caller), {} of {} waiting callers still in line ({} hung up); the PBX destroyed {} channels, edgecc hung up {} and handed back {}",
        r.at_s,
        r.talking_kept,
        r.talking_at_kill,
        r.talking_ended_by_caller,
        r.queued_kept,
        r.queued_at_kill,
        r.queued_ended_by_caller,
        r.pbx_channels_destroyed,
        r.pbx_app_hangups,
        r.pbx_app_continues,
    );
}

/// The CRM faults of `--crm-faults`, in turn: refused connections, 429
/// with `Retry-After`, 500; each for [`CRM_FAULT`], then as long normal.
struct CrmFaults {
    /// Whether to play them at all.
    on: bool,
    /// The fault playing now (index into the cycle), if any.
    current: Option<usize>,
    /// When the next change is due, from the start.
    next: Duration,
    /// The next fault to play.
    turn: usize,
}

impl CrmFaults {
    fn new(on: bool) -> CrmFaults {
        CrmFaults {
            on,
            current: None,
            next: CRM_FAULT,
            turn: 0,
        }
    }

    /// The CRM mode to switch to at `elapsed`, if it changes.
    fn step(&mut self, elapsed: Duration) -> Option<Mode> {
        if !self.on || elapsed < self.next {
            return None;
        }
        self.next = elapsed + CRM_FAULT;
        if self.current.take().is_some() {
            return Some(Mode::Normal);
        }
        let cycle = [
            Mode::Refuse { for_ms: None },
            Mode::RetryAfter { secs: 1 },
            Mode::Status {
                status: 500,
                body: "demo: internal error".to_string(),
            },
        ];
        let i = self.turn % cycle.len();
        self.turn += 1;
        self.current = Some(i);
        Some(cycle[i].clone())
    }

    /// A fault is playing now.
    fn active(&self) -> bool {
        self.current.is_some()
    }
}

/// How a CRM mode reads on the status line.
fn describe(mode: &Mode) -> String {
    match mode {
        Mode::Normal => "back to normal".to_string(),
        Mode::Refuse { .. } => "goes DOWN (connections refused)".to_string(),
        Mode::RetryAfter { secs } => format!("answers 429 (Retry-After: {secs})"),
        Mode::Status { status, .. } => format!("answers {status}"),
        other => format!("{other:?}"),
    }
}

/// One status line: the PBX side from here, the daemon's from its metrics.
async fn print_status(
    elapsed: u64,
    s: &RestartSummary,
    callers: &HashMap<String, CallerState>,
    crm: &EmulatorHandle,
    api: &Api,
) {
    let talking = callers.values().filter(|c| c.answered.is_some()).count();
    let waiting = callers.len() - talking;
    let scrape = api.metrics().await.ok();
    let daemon = match &scrape {
        Some(m) => format!(
            "edgecc: live {} ready agents {} talking {} outbox {}",
            child::metric(m, "edgecc_calls_live").unwrap_or(0.0),
            child::metric(m, "edgecc_agents{state=\"ready\"}").unwrap_or(0.0),
            child::metric(m, "edgecc_agents{state=\"talking\"}").unwrap_or(0.0),
            child::metric(m, "edgecc_outbox_depth").unwrap_or(0.0),
        ),
        None => "edgecc: not answering".to_string(),
    };
    println!(
        "t={elapsed:>3}s  placed {} (not taken {})  at the PBX: talking {talking} waiting {waiting}  |  {daemon}  |  CRM records {}  |  restarts {}",
        s.calls_placed,
        s.calls_not_taken,
        crm.stats().records,
        s.restarts.len(),
    );
}

/// Every check, from the PBX and the CRM; fills the counts, `failures`
/// and `ok`.
fn check(s: &mut RestartSummary, taken: &Taken, left: &Status, crm: &EmulatorHandle) {
    let stats = crm.stats();
    s.records_delivered = stats.records;
    s.crm_duplicates = stats.duplicates;
    // What the CRM holds, per interaction, in arrival order.
    let mut by_call: BTreeMap<String, Vec<crate::crm::emulator::Received>> = BTreeMap::new();
    for r in crm.records() {
        by_call.entry(r.interaction.clone()).or_default().push(r);
    }
    let mut bad: Vec<String> = Vec::new();
    for (call, records) in &by_call {
        let n = |kind: &str| records.iter().filter(|r| r.kind == kind).count();
        let updates: Vec<&str> = records
            .iter()
            .filter(|r| r.kind == "interaction.update")
            .map(|r| r.document["data"]["event"].as_str().unwrap_or(""))
            .collect();
        let ended = updates.iter().filter(|e| **e == "ended").count();
        let in_order = records
            .windows(2)
            .all(|w| w[0].document["sequence"].as_u64() <= w[1].document["sequence"].as_u64());
        let accepted = n("interaction.create") == 1
            && n("phone_log.create") == 1
            && n("work_item.create") == 0
            && ended == 1
            && updates.last() == Some(&"ended");
        let not_answered = n("interaction.create") == 1
            && n("work_item.create") == 1
            && n("phone_log.create") == 0
            && ended == 0;
        if accepted && in_order {
            s.calls_accepted += 1;
        } else if not_answered && in_order {
            s.calls_not_answered += 1;
        } else {
            bad.push(format!(
                "{call}: {} interactions, {} phone logs, {} work items, updates {updates:?}{}",
                n("interaction.create"),
                n("phone_log.create"),
                n("work_item.create"),
                if in_order { "" } else { ", out of order" }
            ));
        }
    }
    // Calls with nothing at the CRM: handed back to the dialplan unknown
    // (accounted for, by the PBX), or lost.
    let mut lost: Vec<&str> = Vec::new();
    for (call, handed_back) in taken {
        match (by_call.contains_key(call), handed_back) {
            (false, true) => s.calls_handed_back_unknown += 1,
            (false, false) => lost.push(call),
            (true, true) => s.calls_handed_back_after_end += 1,
            (true, false) => {}
        }
    }
    let foreign = by_call.keys().filter(|c| !taken.contains_key(*c)).count();
    let mut fail = |what: String| s.failures.push(what);
    if !lost.is_empty() {
        lost.sort_unstable();
        fail(format!(
            "{} calls reached edgecc and have no record at the CRM and were not handed back, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(3)]
        ));
    }
    if foreign != 0 {
        fail(format!(
            "{foreign} interactions at the CRM are of no call placed"
        ));
    }
    if !bad.is_empty() {
        fail(format!(
            "{} interactions at the CRM are not one terminal record set, e.g. {}",
            bad.len(),
            bad.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
        ));
    }
    let accounted = s.calls_accepted + s.calls_not_answered + s.calls_handed_back_unknown;
    if accounted != taken.len() as u64 {
        fail(format!(
            "{} calls reached edgecc but {accounted} are accounted for (one terminal record set at the CRM, or handed back unknown)",
            taken.len()
        ));
    }
    if s.agent_double_offers != 0 {
        fail(format!(
            "an agent's phone had two calls at once {} times",
            s.agent_double_offers
        ));
    }
    if s.records_pending != 0 {
        fail(format!("{} records still in the outbox", s.records_pending));
    }
    if s.records_dead != 0 {
        fail(format!("{} records in the dead letters", s.records_dead));
    }
    if stats.dropped != 0 {
        fail(format!(
            "the CRM emulator dropped {} records",
            stats.dropped
        ));
    }
    for r in &s.restarts {
        let cut = r.talking_at_kill - r.talking_kept - r.talking_ended_by_caller;
        if !r.looked_after {
            fail(format!(
                "restart at {} s: the PBX was not looked at after it",
                r.at_s
            ));
        } else if cut != 0 {
            fail(format!(
                "restart at {} s: {cut} of the {} calls talking at the kill were cut (not ended by their caller, no longer on their bridge)",
                r.at_s, r.talking_at_kill
            ));
        }
    }
    if !left.channels.is_empty() || !left.bridges.is_empty() {
        fail(format!(
            "left at the PBX: {} channels, {} bridges",
            left.channels.len(),
            left.bridges.len()
        ));
    }
    s.ok = s.failures.is_empty();
}

/// Prints the summary for people.
pub fn print_summary(s: &RestartSummary) {
    println!();
    println!("summary");
    println!("  calls placed      {}", s.calls_placed);
    println!(
        "  not taken         {} (the PBX had no link to edgecc)",
        s.calls_not_taken
    );
    println!("  accepted          {}", s.calls_accepted);
    println!(
        "  not answered      {} (abandoned or timed out: work items)",
        s.calls_not_answered
    );
    println!(
        "  handed back       {} unknown to edgecc (arrived as it died), {} after their end",
        s.calls_handed_back_unknown, s.calls_handed_back_after_end
    );
    for r in &s.restarts {
        println!(
            "  restart at {:>3}s  READY in {} ms, reconciled in {} ms, {} calls re-adopted ({} restored); at the PBX: {} of {} talking calls kept ({} hung up by their caller), {} of {} waiting callers kept ({} hung up), {} channels destroyed, {} hung up and {} handed back by edgecc",
            r.at_s,
            r.ready_ms,
            r.reconciled_ms,
            r.calls_adopted,
            r.calls_restored,
            r.talking_kept,
            r.talking_at_kill,
            r.talking_ended_by_caller,
            r.queued_kept,
            r.queued_at_kill,
            r.queued_ended_by_caller,
            r.pbx_channels_destroyed,
            r.pbx_app_hangups,
            r.pbx_app_continues
        );
    }
    println!("  link cuts         {}", s.link_cuts);
    println!("  CRM faults        {}", s.crm_faults);
    println!(
        "  records delivered {} (re-deliveries deduplicated: {})",
        s.records_delivered, s.crm_duplicates
    );
    println!(
        "  pending / dead    {} / {}",
        s.records_pending, s.records_dead
    );
    if s.ok {
        println!("check: OK — no call talking at a kill was cut; every call edgecc took has one terminal record set at the CRM (answered: one interaction, one phone log, updates in order ending in one `ended`; not answered: one interaction and one work item); no agent had two calls at once; nothing lost, nothing left at the PBX");
    } else {
        for f in &s.failures {
            println!("check FAILED: {f}");
        }
    }
}
