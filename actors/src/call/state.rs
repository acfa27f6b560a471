//! The call's data: its phase (the state enum), what a phase holds (offers,
//! the connected session, a pending consult or conference leg), and what
//! the machine emits ([`CallEffect`], [`AgentNotice`], [`CallNotice`],
//! [`CallTimer`]) or refuses ([`CallError`]). No behaviour beyond naming.

use crate::agent::{OfferOutcome, OfferPurpose};
use crate::config::FinalDestination;
use crate::ids::{AgentId, CallId, LegId, OfferToken, QueueId};
use crate::ports::{CrmRecord, PbxCommand};
use serde::{Deserialize, Serialize};

/// Direction of the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// A customer called in.
    Inbound,
    /// An agent dialed out.
    Outbound,
}

/// How a call ended: exactly one per call (invariant 3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum TerminalReason {
    /// Answered by an agent, then ended.
    Completed,
    /// The caller hung up before an agent answered.
    Abandoned,
    /// Sent to an external number.
    Overflowed {
        /// Where.
        number: String,
    },
    /// Waited too long (or missed its extension): a callback work item.
    TimedOut,
    /// A PBX error ended it (logged).
    Failed {
        /// The error.
        error: String,
    },
    /// The PBX lost the call: it restarted or died with the call up (the
    /// caller did not hang up, no agent ended it). A caller who had not
    /// been answered gets a callback work item (reason `pbx_lost`).
    PbxLost,
}

/// What a queue tells the call when it enters: its rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueRules {
    /// The queue.
    pub queue: QueueId,
    /// Priority of its calls.
    pub priority: u8,
    /// Longest wait before the final destination.
    pub max_wait_ms: u64,
    /// Wrap-up after its calls.
    pub wrap_up_ms: u64,
    /// Where timed-out calls go.
    pub final_destination: FinalDestination,
    /// Whether it rings all agents.
    pub ring_all: bool,
    /// What its waiting callers hear (place, expected wait).
    #[serde(default)]
    pub announce: crate::config::AnnounceConfig,
    /// Its callback and re-entry rules.
    #[serde(default)]
    pub callback: crate::config::CallbackConfig,
    /// A call overflowing into this queue keeps its priority (else it
    /// starts over from its own).
    #[serde(default)]
    pub keep_priority_on_overflow: bool,
    /// Its overflow rules (caps and hours), tried before the final
    /// destination.
    #[serde(default)]
    pub overflow: crate::config::overflow::OverflowConfig,
}

/// What the call needs to know about an agent to ring it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentContact {
    /// The agent.
    pub agent: AgentId,
    /// Its extension (caller id of consults).
    pub extension: String,
    /// Its device's dial string.
    pub endpoint: String,
    /// Whether its device answers by itself.
    pub auto_accept: bool,
}

/// One offer (a lease on an agent).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// The agent rung.
    pub agent: AgentId,
    /// Fencing token.
    pub token: OfferToken,
    /// The agent leg (`{call}~{token}`).
    pub leg: LegId,
    /// RONA deadline.
    pub deadline_ms: u64,
    /// Why (queue, direct, transfer).
    pub purpose: OfferPurpose,
    /// The agent's extension (caller id of its later consults).
    pub extension: String,
    /// When the agent accepted on its desktop while its phone still rang:
    /// the call connects when the phone answers (a PBX may not be able to
    /// pick up an alerting phone, Asterisk's ARI cannot), and the offer
    /// counts as the agent's no-answer if it never does.
    #[serde(default)]
    pub accepted_ms: Option<u64>,
}

/// An agent on the connected call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    /// The agent.
    pub agent: AgentId,
    /// Its leg.
    pub leg: LegId,
    /// Its extension.
    pub extension: String,
    /// Its microphone is muted.
    pub muted: bool,
    /// Wrap-up when it leaves (queue calls only).
    pub wrap_up_ms: Option<u64>,
    /// When it joined.
    pub joined_ms: u64,
}

/// What a pending extra leg is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PendingKind {
    /// A consult while the caller holds.
    Consult,
    /// Adding an agent to the conference.
    Conference,
}

/// A consult or conference leg being set up (one at a time).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLeg {
    /// Consult or conference.
    pub kind: PendingKind,
    /// The agent who asked.
    pub from: AgentId,
    /// The agent rung.
    pub to: AgentContact,
    /// Fencing token of the offer to `to`.
    pub token: OfferToken,
    /// The new leg.
    pub leg: LegId,
    /// RONA deadline.
    pub deadline_ms: u64,
    /// Whether `to` answered.
    pub answered: bool,
    /// When `to` accepted on its desktop while its phone still rang (see
    /// [`Offer::accepted_ms`]): the leg joins when the phone answers.
    #[serde(default)]
    pub accepted_ms: Option<u64>,
}

/// The connected call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Agents on the call; more than one = conference.
    pub parties: Vec<Party>,
    /// The caller hears music on hold.
    pub held: bool,
    /// A consult or conference leg being set up.
    pub pending: Option<PendingLeg>,
}

/// The call's phase.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum CallPhase {
    /// Arrived; not yet queued or offered.
    Routing,
    /// Waiting in a queue.
    Queued {
        /// The queue.
        queue: QueueId,
        /// Since when.
        since_ms: u64,
    },
    /// Ringing one agent (several for ring-all).
    Offering {
        /// The offers.
        offers: Vec<Offer>,
        /// Several offers allowed.
        ring_all: bool,
    },
    /// Outbound: the customer is being dialed.
    Dialing {
        /// The agent who dials.
        party: Party,
    },
    /// Talking.
    Connected(Session),
    /// Over.
    Ended(TerminalReason),
}

impl CallPhase {
    /// Short name for views and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Routing => "routing",
            Self::Queued { .. } => "queued",
            Self::Offering { .. } => "offering",
            Self::Dialing { .. } => "dialing",
            Self::Connected(_) => "connected",
            Self::Ended(_) => "ended",
        }
    }
}

/// A message for an agent, produced by the call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentNotice {
    /// The offer ended without a connection.
    OfferEnded {
        /// The offer.
        token: OfferToken,
        /// How.
        outcome: OfferOutcome,
    },
    /// The agent's part in the call ended.
    LeftCall {
        /// Wrap-up to apply (queue calls only).
        wrap_up_ms: Option<u64>,
    },
}

/// Something subscribers (desktops) are told.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "notice", rename_all = "snake_case")]
pub enum CallNotice {
    /// An agent joined; every participant is told.
    ParticipantJoined {
        /// Who joined.
        agent: AgentId,
        /// Everyone on the call now.
        participants: Vec<AgentId>,
    },
    /// An agent dropped; every participant is told.
    ParticipantLeft {
        /// Who left.
        agent: AgentId,
        /// Everyone still on the call.
        participants: Vec<AgentId>,
    },
    /// A consult or conference leg failed; the call is back with `agent`.
    LegFailed {
        /// Who asked.
        agent: AgentId,
        /// Who did not join.
        target: AgentId,
        /// Why.
        reason: String,
    },
}

/// Timers the call owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallTimer {
    /// Offer timeout of `token` (RONA).
    Rona(OfferToken),
    /// Max wait of queue stint `n`.
    MaxWait(u32),
    /// Next place announcement of queue stint `n` (the glue asks the queue
    /// for the place, then calls [`super::Call::announce`]).
    Announce(u32),
    /// End of the re-entry window of a caller who left without a callback.
    ReentryEnd(u32),
}

/// An effect for the glue to carry out, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum CallEffect {
    /// Send to the PBX.
    Pbx(PbxCommand),
    /// Tell an agent.
    Agent(AgentId, AgentNotice),
    /// Join a queue (glue: send to the queue with the call's address).
    Enqueue {
        /// The queue.
        queue: QueueId,
        /// Priority.
        priority: u8,
        /// When the call took its place in line (its key after priority).
        since_ms: u64,
        /// Agents whose offer failed: offered again only after the others.
        tried: Vec<AgentId>,
        /// Its own skills and when its stint in this queue began.
        needs: crate::queue::needs::CallNeeds,
    },
    /// Leave a queue.
    Dequeue(QueueId),
    /// Move to another queue (glue looks up its rules and calls
    /// [`Call::enqueue`]).
    MoveToQueue(QueueId),
    /// Append to the outbox, in order.
    Records(Vec<CrmRecord>),
    /// Confirm the accept to the agent once every record so far is durable.
    ConfirmAccept {
        /// The agent.
        agent: AgentId,
        /// Its offer.
        token: OfferToken,
    },
    /// Start a timer.
    Timer(CallTimer, u64),
    /// Tell subscribers.
    Notice(CallNotice),
    /// The caller left and keeps the place: a call from `ani` to `queue`
    /// until `until_ms` takes it back (glue: tell the registry).
    KeepPlace {
        /// The caller's number.
        ani: String,
        /// The queue holding the place.
        queue: QueueId,
        /// End of the re-entry window.
        until_ms: u64,
    },
    /// The call is over.
    Ended(TerminalReason),
    /// The call leaves its queue for `reason` and the queue has overflow
    /// rules: the glue asks [`super::Call::overflow`] with the contact
    /// center's overflow book.
    Overflow(crate::crm::CallbackReason),
}

/// Errors of the call state machine. Never panics on outside input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum CallError {
    /// The request does not fit the call's phase.
    #[error("call {call} cannot {action} while {phase}")]
    WrongPhase {
        /// The call.
        call: CallId,
        /// What was asked.
        action: &'static str,
        /// Its phase.
        phase: &'static str,
    },
    /// The agent is not on this call.
    #[error("agent {agent} is not on call {call}")]
    NotAParty {
        /// The agent.
        agent: AgentId,
        /// The call.
        call: CallId,
    },
    /// The offer is not current (redirected, answered elsewhere).
    #[error("offer {token} is not current on call {call}")]
    StaleOffer {
        /// The call.
        call: CallId,
        /// The token.
        token: OfferToken,
    },
    /// A consult or conference leg is already being set up.
    #[error("call {0} already has a consult or conference leg in progress")]
    LegInProgress(CallId),
    /// No consult in progress (or it is not answered yet).
    #[error("call {call} has no answered consult by {agent}")]
    NoConsult {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
    },
    /// The call is on hold / not on hold.
    #[error("call {call} is {state}")]
    HoldState {
        /// The call.
        call: CallId,
        /// Held already (hold refused) or not held (resume refused).
        state: HoldState,
    },
    /// Blind transfer or consult needs a one-agent call.
    #[error("call {0} is a conference; leave it instead")]
    InConference(CallId),
    /// The supervisor is not on this call.
    #[error("supervisor {supervisor} is not on call {call}")]
    NotSupervising {
        /// The call.
        call: CallId,
        /// The supervisor.
        supervisor: String,
    },
    /// No interaction exists yet for records.
    #[error("call {0} has no interaction yet")]
    NoInteraction(CallId),
    /// An agent asked to drop itself from a conference.
    #[error("you cannot drop yourself from the conference on call {0}; hang up to leave it")]
    DropSelf(CallId),
    /// The agent to drop is not on the call's conference.
    #[error("agent {agent} is not in the conference on call {call}")]
    NotInConference {
        /// The agent named.
        agent: AgentId,
        /// The call.
        call: CallId,
    },
}

/// Why a hold or resume was refused: the caller's hold state already is what
/// was asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HoldState {
    /// Hold asked while the caller is held.
    #[serde(rename = "already held")]
    AlreadyHeld,
    /// Resume asked while the caller is not held.
    #[serde(rename = "not held")]
    NotHeld,
}

impl std::fmt::Display for HoldState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::AlreadyHeld => "already held",
            Self::NotHeld => "not held",
        })
    }
}
