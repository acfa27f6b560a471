//! The event hub: subscribes to the registry once and fans events out to
//! every WebSocket through a bounded broadcast channel. On the way it keeps
//! what the actors' views do not carry but the desktop and wallboard need:
//! time in state, mute flags, queue wait times and service level, which
//! agents took part in which call, and desktop presence.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use actix::prelude::*;
use edgecc_actors::events::{AgentView, CallView};
use edgecc_actors::{AgentId, CallId, CcEvent, QueueId};
use serde_json::json;
use tokio::sync::{broadcast, mpsc};

/// Events buffered for WebSocket connections; a connection that falls this
/// far behind is closed as too slow (it reconnects and gets a snapshot).
pub const EVENTS_BROADCAST_CAPACITY: usize = 1_024;
/// Mailbox of the hub: the registry drops events for a full subscriber.
pub const HUB_MAILBOX_CAPACITY: usize = 8_192;
/// Recent calls remembered per agent (for "Open interaction" after the call
/// and "my customer").
pub const RECENT_CALLS_PER_AGENT: usize = 20;
/// A call answered within this wait counts toward the service level, ms.
pub const SERVICE_LEVEL_THRESHOLD_MS: u64 = 20_000;
/// Upper bounds (seconds) of the queue wait histogram buckets.
pub const WAIT_BUCKETS_S: [f64; 9] = [1.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0];
/// Most calls tracked at once (waiting, muted, parties); a bound, far above
/// what one box carries.
pub const TRACKED_CALLS_MAX: usize = 10_000;

/// One event for WebSocket connections.
#[derive(Debug)]
pub struct Broadcast {
    /// Agents whose desktops get it; supervisors get every event.
    pub agents: Vec<AgentId>,
    /// Whether agent desktops should refresh their snapshot after it.
    pub refresh: bool,
    /// The JSON text sent.
    pub text: String,
}

/// A call's caller number, remembered per agent.
#[derive(Clone, Debug)]
pub struct RecentCall {
    /// The call (= the local interaction id).
    pub call: CallId,
    /// Its caller number.
    pub ani: String,
}

/// Wait figures of one queue.
#[derive(Clone, Debug, Default)]
pub struct QueueFigures {
    /// Calls answered after waiting in the queue.
    pub answered: u64,
    /// Of which within [`SERVICE_LEVEL_THRESHOLD_MS`].
    pub answered_in_threshold: u64,
    /// Histogram counts per [`WAIT_BUCKETS_S`] bucket (not cumulative), plus
    /// one overflow bucket.
    pub wait_buckets: [u64; WAIT_BUCKETS_S.len() + 1],
    /// Sum of the waits, seconds.
    pub wait_sum_s: f64,
}

/// A desktop's connections.
#[derive(Clone, Copy, Debug, Default)]
pub struct Presence {
    /// Open WebSockets of this agent.
    pub connections: usize,
    /// Bumped at every connect and disconnect: a grace timer acts only if
    /// nothing happened since it started.
    pub generation: u64,
}

/// What the hub tracks.
#[derive(Default)]
pub struct Tracked {
    /// Agent → (state name, call, since wall ms).
    pub state_since: HashMap<AgentId, (String, Option<CallId>, u64)>,
    /// Calls whose agent is muted.
    pub muted: HashSet<CallId>,
    /// Calls waiting: first time queued (wall ms) and queue.
    pub queued_since: HashMap<CallId, (QueueId, u64)>,
    /// Agents that were offered or took part in each live call.
    pub call_agents: HashMap<CallId, HashSet<AgentId>>,
    /// Recent calls per agent, newest last.
    pub recent: HashMap<AgentId, VecDeque<RecentCall>>,
    /// Per-queue wait figures.
    pub queues: HashMap<QueueId, QueueFigures>,
    /// Desktop presence per agent.
    pub presence: HashMap<AgentId, Presence>,
}

/// Events queued per agent desktop connection; a desktop that falls this
/// far behind is closed as too slow (it reconnects and gets a snapshot).
pub const DESKTOP_QUEUE_EVENTS: usize = 256;

/// One agent desktop's feed: its connection id and the sending half of its
/// bounded queue.
type DesktopFeed = (u64, mpsc::Sender<Arc<Broadcast>>);

/// Shared between the hub actor and every HTTP worker.
///
/// Fan-out: an event goes to the desktops of the agents it names through
/// each connection's own bounded queue (so 1,000 desktops do not all wake
/// up for every event), and to every supervisor screen through one
/// broadcast channel.
pub struct HubShared {
    /// Supervisors' fan-out channel (every event).
    pub tx: broadcast::Sender<Arc<Broadcast>>,
    /// Agent desktop queues, by agent.
    desktops: Mutex<HashMap<AgentId, Vec<DesktopFeed>>>,
    /// Last desktop connection id handed out.
    desktop_ids: std::sync::atomic::AtomicU64,
    /// The tracked figures.
    pub tracked: Mutex<Tracked>,
}

impl HubShared {
    /// Locks the tracked figures (recovering from a poisoned lock).
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Tracked> {
        self.tracked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Since when `agent` is in its current state (wall ms), if seen.
    pub fn state_since(&self, agent: &AgentId) -> Option<u64> {
        self.lock().state_since.get(agent).map(|(_, _, s)| *s)
    }

    /// Whether the agent on `call` is muted.
    pub fn is_muted(&self, call: &CallId) -> bool {
        self.lock().muted.contains(call)
    }

    /// Records a mute change made through the API and tells the desktops.
    pub fn set_muted(&self, call: &CallId, agent: &AgentId, muted: bool) {
        {
            let mut t = self.lock();
            if muted {
                if t.muted.len() < TRACKED_CALLS_MAX {
                    t.muted.insert(call.clone());
                }
            } else {
                t.muted.remove(call);
            }
        }
        self.send(Broadcast {
            agents: vec![agent.clone()],
            refresh: true,
            text: json!({"type": "call_muted", "at_us": crate::clock::now_us(), "call": call, "muted": muted}).to_string(),
        });
    }

    /// Whether `agent` had `call` recently (or has it now).
    pub fn agent_had_call(&self, agent: &AgentId, call: &CallId) -> Option<RecentCall> {
        self.lock()
            .recent
            .get(agent)
            .and_then(|r| r.iter().find(|c| &c.call == call).cloned())
    }

    /// Sends to the named agents' desktops and every supervisor screen (no
    /// receivers is fine). A desktop whose queue is full loses its feed: its
    /// connection ends as too slow and the desktop reconnects to a snapshot.
    pub fn send(&self, b: Broadcast) {
        let b = Arc::new(b);
        if !b.agents.is_empty() {
            let mut desktops = self.desktops.lock().unwrap_or_else(|p| p.into_inner());
            for agent in &b.agents {
                if let Some(feeds) = desktops.get_mut(agent) {
                    feeds.retain(|(_, tx)| tx.try_send(b.clone()).is_ok());
                }
            }
        }
        let _ = self.tx.send(b);
    }

    /// Opens the event feed of one desktop of `agent`.
    pub fn attach_desktop(&self, agent: &AgentId) -> (u64, mpsc::Receiver<Arc<Broadcast>>) {
        let id = self
            .desktop_ids
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let (tx, rx) = mpsc::channel(DESKTOP_QUEUE_EVENTS);
        self.desktops
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(agent.clone())
            .or_default()
            .push((id, tx));
        (id, rx)
    }

    /// Closes desktop feed `id` of `agent`.
    pub fn detach_desktop(&self, agent: &AgentId, id: u64) {
        let mut desktops = self.desktops.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(feeds) = desktops.get_mut(agent) {
            feeds.retain(|(i, _)| *i != id);
            if feeds.is_empty() {
                desktops.remove(agent);
            }
        }
    }

    /// A desktop of `agent` connected; answers the new generation.
    pub fn desktop_connected(&self, agent: &AgentId) -> u64 {
        let mut t = self.lock();
        let p = t.presence.entry(agent.clone()).or_default();
        p.connections += 1;
        p.generation += 1;
        p.generation
    }

    /// A desktop of `agent` disconnected; answers the generation to check
    /// after the grace, and whether no desktop is left.
    pub fn desktop_disconnected(&self, agent: &AgentId) -> (u64, bool) {
        let mut t = self.lock();
        let p = t.presence.entry(agent.clone()).or_default();
        p.connections = p.connections.saturating_sub(1);
        p.generation += 1;
        (p.generation, p.connections == 0)
    }

    /// Whether `agent` is still without a desktop since `generation`.
    pub fn desktop_gone_since(&self, agent: &AgentId, generation: u64) -> bool {
        self.lock()
            .presence
            .get(agent)
            .is_some_and(|p| p.connections == 0 && p.generation == generation)
    }

    /// Longest current wait in `queue` (ms) and the waits of its calls.
    pub fn waits(&self, queue: &QueueId, calls: &[CallId], now_ms: u64) -> Vec<u64> {
        let t = self.lock();
        calls
            .iter()
            .map(|c| match t.queued_since.get(c) {
                Some((q, since)) if q == queue => now_ms.saturating_sub(*since),
                _ => 0,
            })
            .collect()
    }
}

/// The hub actor: receives [`CcEvent`]s from the registry.
pub struct Hub {
    /// Shared with the HTTP workers.
    shared: Arc<HubShared>,
}

impl Hub {
    /// Starts a hub on the current arbiter; subscribe it to the registry.
    pub fn start(shared: Arc<HubShared>) -> Addr<Hub> {
        Hub { shared }.start()
    }

    /// A fresh shared part with its channel.
    pub fn shared() -> Arc<HubShared> {
        let (tx, _rx) = broadcast::channel(EVENTS_BROADCAST_CAPACITY);
        Arc::new(HubShared {
            tx,
            desktops: Mutex::new(HashMap::new()),
            desktop_ids: std::sync::atomic::AtomicU64::new(0),
            tracked: Mutex::new(Tracked::default()),
        })
    }

    fn on_agent(&self, view: &AgentView, now_ms: u64) -> u64 {
        let name = state_name(view).to_owned();
        let call = view.state.call().cloned();
        let mut t = self.shared.lock();
        let entry = t
            .state_since
            .entry(view.agent.clone())
            .or_insert_with(|| (name.clone(), call.clone(), now_ms));
        if entry.0 != name || entry.1 != call {
            *entry = (name, call.clone(), state_start(view).unwrap_or(now_ms));
        }
        let since = entry.2;
        if let Some(call) = call {
            remember(&mut t, &view.agent, &call, None);
        }
        since
    }

    fn on_call(&self, view: &CallView, now_ms: u64) -> Vec<AgentId> {
        let mut t = self.shared.lock();
        let mut agents: HashSet<AgentId> = t.call_agents.remove(&view.call).unwrap_or_default();
        agents.extend(view.offers.iter().map(|(a, _)| a.clone()));
        agents.extend(view.parties.iter().cloned());
        for a in &agents {
            remember(&mut t, a, &view.call, Some(&view.ani));
        }
        match view.phase {
            "queued" | "offering" | "routing" => {
                if let Some(q) = &view.queue {
                    if !t.queued_since.contains_key(&view.call)
                        && t.queued_since.len() < TRACKED_CALLS_MAX
                    {
                        t.queued_since
                            .insert(view.call.clone(), (q.clone(), now_ms));
                    }
                }
            }
            phase => {
                if let Some((queue, since)) = t.queued_since.remove(&view.call) {
                    if phase == "connected" {
                        let wait_ms = now_ms.saturating_sub(since);
                        let f = t.queues.entry(queue).or_default();
                        f.answered += 1;
                        if wait_ms <= SERVICE_LEVEL_THRESHOLD_MS {
                            f.answered_in_threshold += 1;
                        }
                        let wait_s = wait_ms as f64 / 1000.0;
                        f.wait_sum_s += wait_s;
                        let i = WAIT_BUCKETS_S
                            .iter()
                            .position(|b| wait_s <= *b)
                            .unwrap_or(WAIT_BUCKETS_S.len());
                        f.wait_buckets[i] += 1;
                    }
                }
            }
        }
        let list: Vec<AgentId> = agents.iter().cloned().collect();
        if view.phase == "ended" {
            t.muted.remove(&view.call);
        } else if t.call_agents.len() < TRACKED_CALLS_MAX {
            t.call_agents.insert(view.call.clone(), agents);
        }
        list
    }
}

/// Adds `call` to `agent`'s recent calls (updating the caller number).
fn remember(t: &mut Tracked, agent: &AgentId, call: &CallId, ani: Option<&str>) {
    if !t.recent.contains_key(agent) && t.recent.len() >= TRACKED_CALLS_MAX {
        return;
    }
    let recent = t.recent.entry(agent.clone()).or_default();
    match recent.iter_mut().find(|c| &c.call == call) {
        Some(c) => {
            if let Some(ani) = ani {
                c.ani = ani.to_owned();
            }
        }
        None => {
            if recent.len() >= RECENT_CALLS_PER_AGENT {
                recent.pop_front();
            }
            recent.push_back(RecentCall {
                call: call.clone(),
                ani: ani.unwrap_or_default().to_owned(),
            });
        }
    }
}

/// The state's name as the API shows it (`ready`, `not_ready`, …).
pub fn state_name(view: &AgentView) -> &'static str {
    use edgecc_actors::agent::AgentState as S;
    match &view.state {
        S::LoggedOut => "logged_out",
        S::NotReady { .. } => "not_ready",
        S::Ready { .. } => "ready",
        S::Reserved { .. } => "reserved",
        S::Talking { .. } => "talking",
        S::WrapUp { .. } => "wrap_up",
    }
}

/// When the state started, if the state itself says.
fn state_start(view: &AgentView) -> Option<u64> {
    use edgecc_actors::agent::AgentState as S;
    match &view.state {
        S::Ready { since_ms } | S::Talking { since_ms, .. } => Some(*since_ms),
        _ => None,
    }
}

impl Actor for Hub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(HUB_MAILBOX_CAPACITY);
    }
}

impl Handler<CcEvent> for Hub {
    type Result = ();

    fn handle(&mut self, msg: CcEvent, _ctx: &mut Self::Context) {
        let at_us = crate::clock::now_us();
        let now_ms = at_us / 1_000;
        let b = match &msg {
            CcEvent::AgentChanged(view) => {
                let since = self.on_agent(view, now_ms);
                Broadcast {
                    agents: vec![view.agent.clone()],
                    refresh: true,
                    text: json!({
                        "type": "agent_changed",
                        "at_us": at_us,
                        "agent": view,
                        "state_name": state_name(view),
                        "state_since_ms": since,
                    })
                    .to_string(),
                }
            }
            CcEvent::CallChanged(view) => {
                let agents = self.on_call(view, now_ms);
                let muted = self.shared.is_muted(&view.call);
                Broadcast {
                    agents,
                    refresh: true,
                    text: json!({"type": "call_changed", "at_us": at_us, "call": view, "muted": muted})
                        .to_string(),
                }
            }
            CcEvent::CallNotice { call, .. } => {
                let agents = self
                    .shared
                    .lock()
                    .call_agents
                    .get(call)
                    .map(|a| a.iter().cloned().collect())
                    .unwrap_or_default();
                Broadcast {
                    agents,
                    refresh: true,
                    text: stamped(&msg, at_us),
                }
            }
            CcEvent::OutboxStalled(_) => Broadcast {
                agents: Vec::new(),
                refresh: false,
                text: stamped(&msg, at_us),
            },
        };
        self.shared.send(b);
    }
}

/// `msg` as JSON with the hub's stamp `at_us` (wall-clock microseconds when
/// the hub got the event).
fn stamped(msg: &CcEvent, at_us: u64) -> String {
    let mut v = serde_json::to_value(msg).unwrap_or_default();
    if let Some(map) = v.as_object_mut() {
        map.insert("at_us".into(), json!(at_us));
    }
    v.to_string()
}

/// Seeds time-in-state from a first snapshot (called once at start).
pub fn seed(shared: &HubShared, agents: &[AgentView], now_ms: u64) {
    let mut t = shared.lock();
    for a in agents {
        t.state_since.entry(a.agent.clone()).or_insert((
            state_name(a).to_owned(),
            a.state.call().cloned(),
            state_start(a).unwrap_or(now_ms),
        ));
    }
}
