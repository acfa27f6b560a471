//! Events for subscribers (the agent desktop WebSocket, the wallboard) and the
//! views the registry keeps for the supervisor snapshot.

use crate::agent::{AgentState, AgentStats, Pending, Presence};
use crate::call::{CallNotice, TerminalReason};
use crate::ids::{AgentId, CallId, OfferToken, QueueId};
use crate::outbox::OutboxStatus;
use crate::ports::AttachedVar;
use crate::waits::AnsweredWaits;
use actix::Message;
use serde::Serialize;

/// What a subscriber sees of an agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AgentView {
    /// The agent.
    pub agent: AgentId,
    /// Its state.
    pub state: AgentState,
    /// A pending Not Ready or logout.
    pub pending: Option<Pending>,
    /// Counters.
    pub stats: AgentStats,
    /// When the current state began (wall ms): time in state for the desktop
    /// and the wallboard. A new Not Ready reason restarts the clock.
    pub state_since_ms: u64,
    /// Whether the agent's desktop is open (the grace that follows a close
    /// is the agent actor's too).
    pub presence: Presence,
    /// When the agent last logged out (wall ms), kept across restarts;
    /// `None` when this data directory never saw it log out (the desktop
    /// then shows no logged-out time rather than the time since start).
    pub logged_out_ms: Option<u64>,
}

/// What a subscriber sees of a call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CallView {
    /// The call.
    pub call: CallId,
    /// Caller number.
    pub ani: String,
    /// Dialed number.
    pub dnis: String,
    /// IVR data.
    pub attached: Vec<AttachedVar>,
    /// Phase name.
    pub phase: &'static str,
    /// The queue it is or was in.
    pub queue: Option<QueueId>,
    /// Offers ringing now.
    pub offers: Vec<(AgentId, OfferToken)>,
    /// Agents of `offers` who accepted on the desktop and whose phone has
    /// not answered yet: their desktop shows "waiting for your phone to
    /// answer"; the call connects when it does.
    pub answer_pending: Vec<AgentId>,
    /// Whether several offers may ring (ring-all).
    pub ring_all: bool,
    /// Agents on the call.
    pub parties: Vec<AgentId>,
    /// Parties whose microphone is muted (mute is per party: in a conference
    /// each desktop shows its own).
    pub muted: Vec<AgentId>,
    /// Caller on hold.
    pub held: bool,
    /// Supervisors monitoring, whispering or barged in.
    pub supervisors: Vec<SupervisorOnCall>,
    /// How it ended.
    pub terminal: Option<TerminalReason>,
    /// The consult or conference leg being set up, if any: the desktops'
    /// consult status and which consult buttons apply.
    pub pending_leg: Option<PendingLegView>,
    /// The no-answer deadline (wall ms) of each offer of `offers`, in the
    /// same order: the ringing desktop's countdown.
    pub offer_deadlines_ms: Vec<u64>,
}

impl CallView {
    /// A view of `call` in `phase` (and `queue`) with nothing else on it:
    /// no caller number, offers, parties or supervisors. The tests' fixture
    /// (here and in the root crate's), completed with struct update syntax;
    /// never used by the daemon, which builds its views from the call.
    #[doc(hidden)]
    pub fn fixture(call: &str, phase: &'static str, queue: Option<&str>) -> Self {
        CallView {
            call: CallId::new(call),
            ani: String::new(),
            dnis: String::new(),
            attached: Vec::new(),
            phase,
            queue: queue.map(QueueId::new),
            offers: Vec::new(),
            answer_pending: Vec::new(),
            ring_all: false,
            parties: Vec::new(),
            muted: Vec::new(),
            held: false,
            supervisors: Vec::new(),
            terminal: None,
            pending_leg: None,
            offer_deadlines_ms: Vec::new(),
        }
    }
}

/// A consult or conference leg being set up, as views show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PendingLegView {
    /// `consult` (the caller holds) or `conference` (an invite).
    pub kind: &'static str,
    /// The agent who asked.
    pub from: AgentId,
    /// The agent rung.
    pub to: AgentId,
    /// Whether `to` answered (a consult can now be completed, made a
    /// conference or cancelled).
    pub answered: bool,
}

/// A supervisor on a call, as views show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SupervisorOnCall {
    /// The supervisor's user id.
    pub supervisor: String,
    /// The agent it watches.
    pub agent: AgentId,
    /// Monitor, whisper or barge.
    pub mode: crate::call::supervision::SuperviseMode,
    /// Since when.
    pub since_ms: u64,
}

/// What a subscriber sees of a queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QueueView {
    /// The queue.
    pub queue: QueueId,
    /// Calls waiting, in routing order.
    pub waiting: Vec<CallId>,
    /// Ready agents, in pick order.
    pub ready: Vec<AgentId>,
    /// The current wait (ms) of each call of `waiting`, in the same order,
    /// from [`crate::waits`] (filled in by the registry's snapshot).
    pub wait_ms: Vec<u64>,
    /// Waits of the calls this queue answered, from [`crate::waits`]
    /// (filled in by the registry's snapshot).
    pub answered: AnsweredWaits,
}

/// One event for subscribers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Message)]
#[rtype(result = "()")]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CcEvent {
    /// An agent's state changed.
    AgentChanged(AgentView),
    /// A call changed (offered, connected, held, ended...).
    CallChanged(CallView),
    /// Participants joined/left, or a consult failed.
    CallNotice {
        /// The call.
        call: CallId,
        /// What happened.
        notice: CallNotice,
    },
    /// The outbox keeps failing (records are kept and retried).
    OutboxStalled(OutboxStatus),
}
