//! The event hub: subscribes to the registry once and fans its events out to
//! the WebSockets: each agent desktop through its own bounded queue, every
//! supervisor screen through one broadcast channel. It owns connection
//! bookkeeping only: the desktop feeds, and which agents each live call
//! reached (so its notices reach their desktops). Domain state is the
//! actors': time in state and desktop presence are in the agent view, mute
//! per party in the call view, queue waits and service level in the queue
//! view, each agent's recent calls with the caller's number in the
//! registry (`edgecc_actors::registry::RecentCallOf`). It also tells the
//! desktops of a queue's members when the queue's waiting line changed,
//! throttled ([`super::desk_queues`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use actix::prelude::*;
use edgecc_actors::events::{AgentView, CallView};
use edgecc_actors::{AgentId, CallId, CcEvent, QueueId};
use serde_json::json;
use tokio::sync::{broadcast, mpsc};

use super::desk_queues::{QueueWatch, Served, QUEUE_PUSH_INTERVAL};
use std::time::Duration;

/// Events buffered for WebSocket connections; a connection that falls this
/// far behind is closed as too slow (it reconnects and gets a snapshot).
pub const EVENTS_BROADCAST_CAPACITY: usize = 1_024;
/// Mailbox of the hub: the registry drops events for a full subscriber.
pub const HUB_MAILBOX_CAPACITY: usize = 8_192;
/// Most live calls whose reach is tracked at once; a bound, far above what
/// one box carries.
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

/// What the hub remembers to route events.
#[derive(Default)]
pub struct Tracked {
    /// Agents that were offered or took part in each live call: the
    /// desktops its notices go to.
    pub call_agents: HashMap<CallId, HashSet<AgentId>>,
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
    /// Call reach.
    tracked: Mutex<Tracked>,
    /// The queues each open desktop's agent serves (the queue panel's
    /// pushes, [`super::desk_queues`]).
    served: Mutex<Served>,
}

impl HubShared {
    /// Locks the tracked routes (recovering from a poisoned lock).
    fn lock(&self) -> std::sync::MutexGuard<'_, Tracked> {
        self.tracked.lock().unwrap_or_else(|p| p.into_inner())
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
                self.served().forget(agent);
            }
        }
    }

    fn served(&self) -> std::sync::MutexGuard<'_, Served> {
        self.served.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the queues `agent` serves, from its desktop's snapshot, when
    /// it has a desktop open (the queue panel's pushes go to it).
    pub fn set_served(&self, agent: &AgentId, queues: Vec<QueueId>) {
        let desktops = self.desktops.lock().unwrap_or_else(|p| p.into_inner());
        if desktops.contains_key(agent) {
            self.served().set(agent, queues);
        }
    }

    /// Sends to the named agents' desktops only, as [`HubShared::send`]
    /// does (supervisor screens do not get it).
    fn send_desktops(&self, b: Broadcast) {
        let b = Arc::new(b);
        let mut desktops = self.desktops.lock().unwrap_or_else(|p| p.into_inner());
        for agent in &b.agents {
            if let Some(feeds) = desktops.get_mut(agent) {
                feeds.retain(|(_, tx)| tx.try_send(b.clone()).is_ok());
            }
        }
    }
}

/// The hub actor: receives [`CcEvent`]s from the registry.
pub struct Hub {
    /// Shared with the HTTP workers.
    shared: Arc<HubShared>,
    /// Queue waiting lines and which changed (the queue panel's pushes).
    queues: QueueWatch,
    /// A `queues_changed` push is scheduled.
    queue_push_due: bool,
    /// When the last `queues_changed` push went out (the throttle).
    queue_pushed_at: Option<tokio::time::Instant>,
}

impl Hub {
    /// Starts a hub on the current arbiter; subscribe it to the registry.
    pub fn start(shared: Arc<HubShared>) -> Addr<Hub> {
        Hub {
            shared,
            queues: QueueWatch::default(),
            queue_push_due: false,
            queue_pushed_at: None,
        }
        .start()
    }

    /// A fresh shared part with its channel.
    pub fn shared() -> Arc<HubShared> {
        let (tx, _rx) = broadcast::channel(EVENTS_BROADCAST_CAPACITY);
        Arc::new(HubShared {
            tx,
            desktops: Mutex::new(HashMap::new()),
            desktop_ids: std::sync::atomic::AtomicU64::new(0),
            tracked: Mutex::new(Tracked::default()),
            served: Mutex::new(Served::default()),
        })
    }

    /// Schedules the next `queues_changed` push when a queue changed: at
    /// once after a quiet spell, else [`QUEUE_PUSH_INTERVAL`] after the last.
    fn schedule_queue_push(&mut self, ctx: &mut Context<Self>) {
        if self.queue_push_due || !self.queues.pending() {
            return;
        }
        self.queue_push_due = true;
        let wait = self.queue_pushed_at.map_or(Duration::ZERO, |at| {
            (at + QUEUE_PUSH_INTERVAL).saturating_duration_since(tokio::time::Instant::now())
        });
        ctx.run_later(wait, |hub, _ctx| hub.push_queues());
    }

    /// Tells the members' desktops which of their queues changed.
    fn push_queues(&mut self) {
        self.queue_push_due = false;
        self.queue_pushed_at = Some(tokio::time::Instant::now());
        let queues = self.queues.take();
        let agents = self.shared.served().members_of(&queues);
        if agents.is_empty() {
            return;
        }
        self.shared.send_desktops(Broadcast {
            agents,
            refresh: true,
            text:
                json!({"type": "queues_changed", "at_us": crate::clock::now_us(), "queues": queues})
                    .to_string(),
        });
    }

    /// Updates the call's reach; answers the agents whose desktops get it.
    fn on_call(&self, view: &CallView) -> Vec<AgentId> {
        let mut t = self.shared.lock();
        let mut agents: HashSet<AgentId> = t.call_agents.remove(&view.call).unwrap_or_default();
        agents.extend(view.offers.iter().map(|(a, _)| a.clone()));
        agents.extend(view.parties.iter().cloned());
        let list: Vec<AgentId> = agents.iter().cloned().collect();
        if view.phase != "ended" && t.call_agents.len() < TRACKED_CALLS_MAX {
            t.call_agents.insert(view.call.clone(), agents);
        }
        list
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

impl Actor for Hub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(HUB_MAILBOX_CAPACITY);
    }
}

impl Handler<CcEvent> for Hub {
    type Result = ();

    fn handle(&mut self, msg: CcEvent, ctx: &mut Self::Context) {
        let at_us = crate::clock::now_us();
        let b = match &msg {
            CcEvent::AgentChanged(view) => Broadcast {
                agents: vec![view.agent.clone()],
                refresh: true,
                text: json!({
                    "type": "agent_changed",
                    "at_us": at_us,
                    "agent": view,
                    "state_name": state_name(view),
                    "state_since_ms": view.state_since_ms,
                })
                .to_string(),
            },
            CcEvent::CallChanged(view) => {
                self.queues.observe(view);
                self.schedule_queue_push(ctx);
                Broadcast {
                    agents: self.on_call(view),
                    refresh: true,
                    text: json!({"type": "call_changed", "at_us": at_us, "call": view}).to_string(),
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
