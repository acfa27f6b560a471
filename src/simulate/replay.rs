//! One replay: a day of traffic through the real routing code (the actors'
//! registry, queues, agents and calls) on the built-in simulated PBX, with
//! no CRM (a null outbox) and tokio's clock paused, so a day passes in
//! seconds and every figure is in exact virtual milliseconds.
//!
//! Every agent of the config logs in and goes Ready at the start; its
//! phone answers every offer after its answer delay (`[simulate]`); the
//! caller hangs up after its patience if unanswered, or after its talk time
//! once answered; wrap-up is the actors' own (queue or agent `wrap_up_ms`).
//!
//! The replay hangs callers up itself, each hang-up a tokio task of its
//! own, rather than through the simulated PBX's caller timers: those are
//! `run_later`s of the PBX actor, and actix polls every pending item of a
//! context on each of its messages, so with hundreds of calls up every PBX
//! command cost hundreds of timer polls (the replay's hot spot).
//! What happens is read from the registry's event stream, the one the
//! wallboard reads: a call is answered when its view first shows it
//! `connected`, ends with its terminal reason; an agent is busy while
//! Reserved, Talking or in WrapUp.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;
use edgecc_actors::agent::AgentState;
use edgecc_actors::call::TerminalReason;
use edgecc_actors::ports::{CrmRecord, HangupCause, LocalBoxFuture, OutboxAppend, OutboxPort};
use edgecc_actors::sim::{
    Caller, ConnectEvents, HangUpLeg, PhoneProfile, PlaceCall, SetPhoneProfile, SimPbx, SimPbxPort,
};
use edgecc_actors::{
    AgentCommand, AgentId, AgentRequest, CcEvent, ContactCenter, ContactCenterConfig, LegId,
    Subscribe, TokioClock,
};

use super::settings::SimulateSettings;
use super::traffic::TrafficCall;

/// The virtual wall clock at the traffic's time 0: 2026-01-05 00:00 UTC, a
/// Monday (nothing in routing reads the date today).
pub const REPLAY_EPOCH_MS: u64 = 1_767_571_200_000;
/// How long after the last arrival the replay waits for calls to end
/// before it stops and counts the rest as unfinished: a day of talk plus a
/// day in the queue (the longest the traffic and `max_wait_ms` allow) and
/// an hour of wrap-up.
pub const REPLAY_DRAIN_MS_MAX: u64 = 2 * 86_400_000 + 3_600_000;
/// Mailbox of the event collector: the registry drops events for a full
/// subscriber, and one virtual millisecond can bring thousands at once.
const COLLECTOR_MAILBOX: usize = 1 << 22;
/// Prefix of the caller leg ids the replay mints (`w<index>`): views of
/// other calls (none today) are not the traffic's.
const LEG_PREFIX: &str = "w";

/// How a call of the traffic ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallEnd {
    /// Answered by an agent, then hung up.
    Completed,
    /// The caller hung up before an agent answered.
    Abandoned,
    /// Reached the queue's `max_wait_ms` (or was turned away by its limits)
    /// and went to the final destination's work item.
    TimedOut,
    /// Sent to an external number.
    Overflowed,
    /// A PBX error (or a lost PBX) ended it.
    Failed,
}

/// What became of one call of the traffic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallOutcome {
    /// Arrival, virtual ms from the traffic's start.
    pub at_ms: u64,
    /// Wait from arrival until an agent answered, ms; `None` if never.
    pub wait_ms: Option<u64>,
    /// How and when (virtual ms) it ended; `None`: still going when the
    /// replay gave up ([`REPLAY_DRAIN_MS_MAX`]).
    pub end: Option<(CallEnd, u64)>,
}

/// The outcome of a replay, in the traffic's order.
#[derive(Clone, Debug, Default)]
pub struct Replay {
    /// One outcome per call, in the order given to [`replay`].
    pub calls: Vec<CallOutcome>,
    /// Per agent of the config (its order): time Reserved, Talking or in
    /// WrapUp, ms.
    pub agent_busy_ms: Vec<(String, u64)>,
    /// Virtual ms from the first arrival until the last call ended: the
    /// time the agents were staffed, occupancy's denominator.
    pub span_ms: u64,
    /// Real time the replay took.
    pub wall: Duration,
}

/// The replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The actors refused the config (it passed `check-config`, so this is
    /// a bug or a config built in code).
    #[error("the routing actors refused the config: {0}")]
    Config(String),
    /// An agent could not log in or go Ready at the start.
    #[error("agent {agent} could not {step}: {message}")]
    Agent {
        /// The agent.
        agent: String,
        /// `log in` or `go Ready`.
        step: &'static str,
        /// Why.
        message: String,
    },
    /// An actor's mailbox closed under the replay (a bug).
    #[error("the routing actors stopped during the replay: {0}")]
    Stopped(String),
    /// The paused-clock runtime could not be built.
    #[error("cannot start the replay's runtime: {0}")]
    Runtime(String),
}

/// The outbox of a replay: records are dropped (the CRM plays no part in
/// routing, and 200,000 calls' records would only cost memory).
struct NullOutbox;

impl OutboxPort for NullOutbox {
    fn append(&self, _records: Vec<CrmRecord>) -> LocalBoxFuture<'static, OutboxAppend> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// What the collector has seen so far.
struct Seen {
    /// Outcomes by traffic index.
    calls: Vec<CallOutcome>,
    /// Talk times by traffic index, ms: the hang-up set off by the answer.
    talk_ms: Vec<u64>,
    /// Agent index by id.
    agent_index: HashMap<AgentId, usize>,
    /// Per agent: busy ms so far, and since when it is busy now.
    agents: Vec<(u64, Option<u64>)>,
    /// Calls ended so far.
    ended: usize,
    /// When an agent last stopped being busy, virtual ms: the day ends
    /// with the last wrap-up, not the last hang-up.
    last_free_ms: u64,
    /// The replay's virtual time 0.
    start: tokio::time::Instant,
    /// Woken when every call has ended.
    done: Rc<tokio::sync::Notify>,
}

impl Seen {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
}

/// Collects call and agent changes from the registry's event stream, and
/// hangs answered callers up after their talk time.
struct Collector(Rc<RefCell<Seen>>, Addr<SimPbx>);

impl Actor for Collector {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(COLLECTOR_MAILBOX);
    }
}

impl Handler<CcEvent> for Collector {
    type Result = ();

    fn handle(&mut self, event: CcEvent, _: &mut Context<Self>) {
        let mut seen = self.0.borrow_mut();
        let now = seen.now_ms();
        match event {
            CcEvent::CallChanged(view) => {
                let Some(index) = view
                    .call
                    .as_str()
                    .strip_prefix(LEG_PREFIX)
                    .and_then(|i| i.parse::<usize>().ok())
                else {
                    return;
                };
                let n = seen.calls.len();
                let talk = Duration::from_millis(seen.talk_ms.get(index).copied().unwrap_or(0));
                let Some(call) = seen.calls.get_mut(index) else {
                    return;
                };
                if call.wait_ms.is_none() && view.phase == "connected" {
                    call.wait_ms = Some(now.saturating_sub(call.at_ms));
                    hang_up_after(self.1.clone(), view.call.as_str(), talk, None);
                }
                if let (None, Some(reason)) = (call.end, &view.terminal) {
                    let end = match reason {
                        TerminalReason::Completed => CallEnd::Completed,
                        TerminalReason::Abandoned => CallEnd::Abandoned,
                        TerminalReason::TimedOut => CallEnd::TimedOut,
                        TerminalReason::Overflowed { .. } => CallEnd::Overflowed,
                        TerminalReason::Failed { .. } | TerminalReason::PbxLost => CallEnd::Failed,
                    };
                    call.end = Some((end, now));
                    seen.ended += 1;
                    if seen.ended == n {
                        seen.done.notify_one();
                    }
                }
            }
            CcEvent::AgentChanged(view) => {
                let Some(&i) = seen.agent_index.get(&view.agent) else {
                    return;
                };
                let busy = matches!(
                    view.state,
                    AgentState::Reserved { .. }
                        | AgentState::Talking { .. }
                        | AgentState::WrapUp { .. }
                );
                let agent = &mut seen.agents[i];
                match (busy, agent.1) {
                    (true, None) => agent.1 = Some(now),
                    (false, Some(since)) => {
                        agent.0 += now.saturating_sub(since);
                        agent.1 = None;
                        seen.last_free_ms = seen.last_free_ms.max(now);
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

/// Hangs the caller leg `leg` up after `after`, unless `unless` (the
/// replay's record and the call's index) shows the call answered or ended
/// by then.
fn hang_up_after(
    sim: Addr<SimPbx>,
    leg: &str,
    after: Duration,
    unless: Option<(Rc<RefCell<Seen>>, usize)>,
) {
    let leg_id = LegId::new(leg);
    actix_rt::spawn(async move {
        tokio::time::sleep(after).await;
        if let Some((seen, index)) = unless {
            let seen = seen.borrow();
            let call = &seen.calls[index];
            if call.wait_ms.is_some() || call.end.is_some() {
                return;
            }
        }
        sim.do_send(HangUpLeg {
            leg_id,
            cause: HangupCause::Normal,
        });
    });
}

/// Replays `calls` (sorted by `at_ms`; ties keep their order) through the
/// routing actors configured by `center`, agents answering as `settings`
/// says. Runs its own actix system on a current-thread runtime with the
/// clock paused: call it from a thread with no runtime.
pub fn replay(
    center: &ContactCenterConfig,
    settings: &SimulateSettings,
    calls: &[TrafficCall],
) -> Result<Replay, ReplayError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .map_err(|e| ReplayError::Runtime(e.to_string()))?;
    let system = actix_rt::System::with_tokio_rt(move || runtime);
    let wall = std::time::Instant::now();
    let mut result = system.block_on(run(center.clone(), settings.clone(), calls))?;
    result.wall = wall.elapsed();
    Ok(result)
}

async fn run(
    center: ContactCenterConfig,
    settings: SimulateSettings,
    calls: &[TrafficCall],
) -> Result<Replay, ReplayError> {
    let stopped = |e: MailboxError| ReplayError::Stopped(e.to_string());
    let sim = SimPbx::new(0).start();
    for agent in &center.agents {
        let delay = settings.answer_delay_ms_of(&agent.id);
        sim.send(SetPhoneProfile {
            endpoint: Some(agent.endpoint()),
            profile: PhoneProfile {
                answer_p: 1.0,
                reject_p: 0.0,
                answer_ms: (delay, delay),
                ..PhoneProfile::default()
            },
        })
        .await
        .map_err(stopped)?;
    }
    let registry = ContactCenter::start(
        center.clone(),
        Rc::new(SimPbxPort { addr: sim.clone() }),
        Rc::new(NullOutbox),
        TokioClock::shared(REPLAY_EPOCH_MS),
    )
    .map_err(|errors| {
        ReplayError::Config(
            errors
                .iter()
                .map(|e| format!("{}: {}", e.path, e.message))
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    sim.send(ConnectEvents(registry.clone().recipient()))
        .await
        .map_err(stopped)?;
    let done = Rc::new(tokio::sync::Notify::new());
    let seen = Rc::new(RefCell::new(Seen {
        calls: calls
            .iter()
            .map(|c| CallOutcome {
                at_ms: c.at_ms,
                ..CallOutcome::default()
            })
            .collect(),
        talk_ms: calls.iter().map(|c| c.talk_ms).collect(),
        agent_index: center
            .agents
            .iter()
            .enumerate()
            .map(|(i, a)| (AgentId::new(a.id.clone()), i))
            .collect(),
        agents: vec![(0, None); center.agents.len()],
        ended: 0,
        last_free_ms: 0,
        start: tokio::time::Instant::now(),
        done: done.clone(),
    }));
    let collector = Collector(seen.clone(), sim.clone()).start();
    registry
        .send(Subscribe(collector.recipient()))
        .await
        .map_err(stopped)?
        .map_err(|e| ReplayError::Stopped(e.to_string()))?;
    for agent in &center.agents {
        for (command, step) in [
            (AgentCommand::Login, "log in"),
            (AgentCommand::Ready, "go Ready"),
        ] {
            registry
                .send(AgentRequest {
                    agent: AgentId::new(agent.id.clone()),
                    command,
                })
                .await
                .map_err(stopped)?
                .map_err(|e| ReplayError::Agent {
                    agent: agent.id.clone(),
                    step,
                    message: e.to_string(),
                })?;
        }
    }
    let start = seen.borrow().start;
    for (i, call) in calls.iter().enumerate() {
        tokio::time::sleep_until(start + Duration::from_millis(call.at_ms)).await;
        let leg = format!("{LEG_PREFIX}{i}");
        let caller = Caller {
            leg_id: Some(LegId::new(leg.clone())),
            ani: call.ani.clone(),
            dnis: call.dnis.clone(),
            attached: call.attached(),
            // Both hang-ups are the replay's own (see the module's note).
            patience_ms: None,
            talk_ms: None,
        };
        sim.send(PlaceCall(caller)).await.map_err(stopped)?;
        if let Some(patience_ms) = call.patience_ms {
            let unless = Some((seen.clone(), i));
            hang_up_after(
                sim.clone(),
                &leg,
                Duration::from_millis(patience_ms),
                unless,
            );
        }
    }
    let last_at_ms = calls.last().map_or(0, |c| c.at_ms);
    let drain_until = start + Duration::from_millis(last_at_ms + REPLAY_DRAIN_MS_MAX);
    tokio::select! {
        _ = done.notified() => {}
        _ = tokio::time::sleep_until(drain_until) => {}
    }
    // Let the wrap-ups that follow the last calls finish (they are part of
    // the agents' busy time), then close what is still open.
    let wrap_up_ms_max = center
        .queues
        .iter()
        .map(|q| q.wrap_up_ms)
        .chain(center.agents.iter().filter_map(|a| a.wrap_up_ms))
        .max()
        .unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(wrap_up_ms_max + 1)).await;
    let mut seen = seen.borrow_mut();
    let first_at_ms = calls.first().map_or(0, |c| c.at_ms);
    let end_ms = seen
        .calls
        .iter()
        .filter_map(|c| c.end.map(|(_, at)| at))
        .max()
        .unwrap_or(first_at_ms)
        .max(seen.last_free_ms);
    let now = end_ms;
    let agent_busy_ms = center
        .agents
        .iter()
        .zip(seen.agents.iter_mut())
        .map(|(a, (busy, since))| {
            if let Some(since) = since.take() {
                *busy += now.saturating_sub(since);
            }
            (a.id.clone(), *busy)
        })
        .collect();
    Ok(Replay {
        calls: std::mem::take(&mut seen.calls),
        agent_busy_ms,
        span_ms: end_ms.saturating_sub(first_at_ms),
        wall: Duration::ZERO,
    })
}
