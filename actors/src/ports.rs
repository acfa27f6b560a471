//! Ports: the only ways the actors reach the outside world.
//!
//! - [`OutboxPort`]: append CRM records ([`CrmRecord`], defined with the
//!   rest of the CRM contract in [`crate::crm`]) to the durable outbox. The daemon backs
//!   it with the sled outbox's group-commit `append_batch`; tests and the demo
//!   use [`MemoryOutbox`].
//! - [`PbxPort`]: send normalized [`PbxCommand`]s to the PBX (prompt lists
//!   are [`PromptMedia`]). Events come back
//!   as [`PbxEvent`] messages to the registry. Adapters: [`crate::sim`] (in
//!   process), and later ARI in the daemon.
//!
//! edgecc mints every leg id it originates (`{call_id}~{token}`), so a retried
//! command is detectable and every event routes to its call without a table.
//! The one foreign id is the caller leg of an inbound call, which the PBX
//! chooses; edgecc adopts it as the call id.

pub use crate::crm::{CrmRecord, RecordKind};
use crate::ids::{BridgeId, CallId, LegId};
use actix::Message;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

/// A boxed future that need not be `Send` (actors live on one arbiter).
pub type LocalBoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Why an append to the outbox failed. The records come back to the caller
/// with it (see [`OutboxAppend`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OutboxError {
    /// The storage could not make the records durable (disk full, I/O error).
    #[error("outbox unavailable: {0}")]
    Unavailable(String),
    /// The outbox refused the records (too large, corrupt); not retryable by
    /// itself, but edgecc keeps retrying and surfaces it rather than dropping.
    #[error("outbox rejected the records: {0}")]
    Rejected(String),
}

/// What [`OutboxPort::append`] resolves to: the records are durable, or the
/// error with the records handed back, all of them and in order, for the
/// writer's retry.
pub type OutboxAppend = Result<(), (OutboxError, Vec<CrmRecord>)>;

/// The durable outbox. `append` resolves once the records are durable.
pub trait OutboxPort {
    /// Appends `records` in order; resolves when they are durable. The
    /// outbox owns the records: on success they are gone, on an error they
    /// come back for the retry, so the writer never copies a batch (the
    /// contract of [`crate::durable::StateStore::commit_batch`] too).
    fn append(&self, records: Vec<CrmRecord>) -> LocalBoxFuture<'static, OutboxAppend>;
}

/// Shared outbox handle handed to the writer.
pub type SharedOutbox = Rc<dyn OutboxPort>;

/// In-memory outbox for tests and the demo: inspectable, and it can be made to
/// fail or to be slow.
#[derive(Clone, Default)]
pub struct MemoryOutbox {
    /// The state, shared between the writer and the test that inspects it.
    inner: Rc<RefCell<MemoryOutboxState>>,
}

/// What [`MemoryOutbox`] holds.
#[derive(Default)]
struct MemoryOutboxState {
    /// Records made "durable", in append order.
    records: Vec<CrmRecord>,
    /// Appends still to fail before succeeding again.
    failures_left: u32,
    /// Fail every append while true.
    failing: bool,
    /// Simulated durability latency of an append.
    delay_ms: u64,
    /// Appends attempted (including failed ones).
    attempts: u64,
}

impl MemoryOutbox {
    /// An empty, healthy outbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the durable records, in order.
    pub fn records(&self) -> Vec<CrmRecord> {
        self.inner.borrow().records.clone()
    }

    /// How many records are durable.
    pub fn len(&self) -> usize {
        self.inner.borrow().records.len()
    }

    /// True when nothing was appended.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends attempted so far, failed ones included.
    pub fn attempts(&self) -> u64 {
        self.inner.borrow().attempts
    }

    /// Makes the next `n` appends fail.
    pub fn fail_next(&self, n: u32) {
        self.inner.borrow_mut().failures_left = n;
    }

    /// Makes every append fail (true) or succeed (false).
    pub fn set_failing(&self, failing: bool) {
        self.inner.borrow_mut().failing = failing;
    }

    /// Makes every append take `delay_ms` (tokio time) before it is durable.
    pub fn set_delay_ms(&self, delay_ms: u64) {
        self.inner.borrow_mut().delay_ms = delay_ms;
    }

    /// Records of one interaction, in order.
    pub fn records_of(&self, call: &CallId) -> Vec<CrmRecord> {
        self.inner
            .borrow()
            .records
            .iter()
            .filter(|r| r.interaction_key == call.0)
            .cloned()
            .collect()
    }
}

impl OutboxPort for MemoryOutbox {
    fn append(&self, records: Vec<CrmRecord>) -> LocalBoxFuture<'static, OutboxAppend> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let delay_ms = inner.borrow().delay_ms;
            if delay_ms > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
            }
            let mut state = inner.borrow_mut();
            state.attempts += 1;
            if state.failing {
                let e = OutboxError::Unavailable("memory outbox set to fail".into());
                return Err((e, records));
            }
            if state.failures_left > 0 {
                state.failures_left -= 1;
                let e = OutboxError::Unavailable("memory outbox injected failure".into());
                return Err((e, records));
            }
            state.records.extend(records);
            Ok(())
        })
    }
}

/// Why a leg ended, normalized from the PBX's causes (Q.850, ARI dialstatus).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HangupCause {
    /// Normal clearing (16): someone hung up.
    Normal,
    /// The device was busy (17).
    Busy,
    /// The device or user rejected the call (21).
    Rejected,
    /// Alerting, no answer (19), or the originate timeout expired.
    NoAnswer,
    /// Network congestion (34).
    Congestion,
    /// The endpoint is unknown or unregistered (originate failed).
    Unreachable,
    /// Nobody hung up: the PBX lost the leg (it restarted or died with the
    /// leg up). An adapter reports it only when it knows the PBX went away
    /// (ARI: Asterisk's start-up time changed across a reconnect); every
    /// other leg of the call is lost with it.
    PbxLost,
}

/// What the PBX says of a leg it still has, in a [`crate::registry::Reconcile`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegStatus {
    /// Alerting (an offer or consult leg not answered yet).
    Ringing,
    /// Answered and up.
    Up,
}

/// A normalized command to the PBX. Every leg edgecc creates carries an id
/// edgecc chose, so an adapter can detect a retried command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum PbxCommand {
    /// Answer a leg: the caller leg when edgecc takes the call, or an alerting
    /// agent leg when the agent accepts from the desktop (remote answer).
    Answer {
        /// The leg to answer.
        leg_id: LegId,
    },
    /// Offer: originate a leg to an agent's device.
    OriginateAgentLeg {
        /// The id edgecc chose for the new leg (`{call}~{token}`).
        leg_id: LegId,
        /// Dial string of the agent's device (`PJSIP/1001`, `sim/1001`).
        endpoint: String,
        /// Caller id shown on the phone (the caller's ANI).
        caller_id: String,
        /// The PBX gives up ringing after this long (a bound behind RONA).
        timeout_ms: u64,
        /// Ask the device to answer by itself (auto-accept agents).
        auto_answer: bool,
    },
    /// Consult: originate a leg from one agent to another while the caller
    /// holds; the consulted agent sees the consulting agent as caller id.
    ConsultDial {
        /// The id edgecc chose for the consult leg.
        leg_id: LegId,
        /// Dial string of the consulted agent's device.
        endpoint: String,
        /// Caller id shown (the consulting agent's extension).
        caller_id: String,
        /// The PBX gives up ringing after this long.
        timeout_ms: u64,
    },
    /// Put a leg into a bridge (creating the bridge if needed).
    Bridge {
        /// The bridge.
        bridge_id: BridgeId,
        /// The leg to add.
        leg_id: LegId,
    },
    /// Take a leg out of a bridge.
    Unbridge {
        /// The bridge.
        bridge_id: BridgeId,
        /// The leg to remove.
        leg_id: LegId,
    },
    /// Merge legs into one mixing bridge (3-way conference).
    Conference {
        /// The bridge that becomes the conference.
        bridge_id: BridgeId,
        /// Every leg that must be in it.
        leg_ids: Vec<LegId>,
    },
    /// Destroy a bridge once the call is over.
    DestroyBridge {
        /// The bridge.
        bridge_id: BridgeId,
    },
    /// Music on hold to a leg (held callers, queued callers).
    Hold {
        /// The leg that hears music.
        leg_id: LegId,
    },
    /// Stop the music on hold.
    Resume {
        /// The leg.
        leg_id: LegId,
    },
    /// Mute a leg's audio towards the bridge.
    Mute {
        /// The leg.
        leg_id: LegId,
    },
    /// Unmute.
    Unmute {
        /// The leg.
        leg_id: LegId,
    },
    /// Hang up a leg with a cause.
    Hangup {
        /// The leg.
        leg_id: LegId,
        /// The cause to signal.
        cause: HangupCause,
    },
    /// Send a leg to an external number; it leaves edgecc's control.
    RedirectExternal {
        /// The leg (the caller).
        leg_id: LegId,
        /// E.164 or dialplan number.
        number: String,
    },
    /// Play an announcement to a leg.
    PlayAnnouncement {
        /// The leg.
        leg_id: LegId,
        /// The prompt (sound file name).
        prompt: String,
    },
    /// Play a list of prompts to a waiting caller (its place and expected
    /// wait). Never holds up routing: the PBX starts it and answers; a
    /// later [`PbxCommand::StopPrompts`] cuts it short.
    PlayPrompts {
        /// The caller leg.
        leg_id: LegId,
        /// What to say, in order.
        media: Vec<PromptMedia>,
    },
    /// Stop the prompts playing to a leg (it is offered to an agent, or
    /// leaves the line); nothing playing is not an error.
    StopPrompts {
        /// The caller leg.
        leg_id: LegId,
    },
    /// Call a waiting caller back once its agent is connected: originate
    /// the customer leg to `number`; it answers with `LegAnswered`, or ends
    /// with `LegHungUp` (not reached).
    DialCallback {
        /// The id edgecc chose for the customer leg (`{call}~c`).
        leg_id: LegId,
        /// The caller's number.
        number: String,
        /// Caller id shown to the customer (the number they dialled).
        caller_id: String,
        /// The PBX gives up ringing after this long.
        timeout_ms: u64,
    },
    /// Silent monitor or whisper: a supervisor leg snooping on a leg.
    Snoop {
        /// The id edgecc chose for the supervisor's snoop leg.
        snoop_leg_id: LegId,
        /// The leg being monitored.
        leg_id: LegId,
        /// Whisper (speak to the agent) rather than listen only.
        whisper: bool,
        /// The supervisor's device.
        endpoint: String,
    },
    /// Barge-in: a supervisor leg joins the call's bridge.
    Barge {
        /// The id edgecc chose for the supervisor's leg.
        leg_id: LegId,
        /// The bridge to join.
        bridge_id: BridgeId,
        /// The supervisor's device.
        endpoint: String,
    },
    /// Outbound call: ring the agent's device, then dial the customer.
    OutboundDial {
        /// The agent's leg.
        agent_leg_id: LegId,
        /// The agent's device.
        endpoint: String,
        /// The customer's leg.
        customer_leg_id: LegId,
        /// The number to dial.
        number: String,
        /// Give up after this long.
        timeout_ms: u64,
    },
}

impl PbxCommand {
    /// The leg this command creates or acts on, if any (for logs).
    pub fn leg(&self) -> Option<&LegId> {
        match self {
            Self::Answer { leg_id }
            | Self::OriginateAgentLeg { leg_id, .. }
            | Self::ConsultDial { leg_id, .. }
            | Self::Bridge { leg_id, .. }
            | Self::Unbridge { leg_id, .. }
            | Self::Hold { leg_id }
            | Self::Resume { leg_id }
            | Self::Mute { leg_id }
            | Self::Unmute { leg_id }
            | Self::Hangup { leg_id, .. }
            | Self::RedirectExternal { leg_id, .. }
            | Self::PlayAnnouncement { leg_id, .. }
            | Self::PlayPrompts { leg_id, .. }
            | Self::StopPrompts { leg_id }
            | Self::DialCallback { leg_id, .. }
            | Self::Snoop { leg_id, .. }
            | Self::Barge { leg_id, .. } => Some(leg_id),
            Self::OutboundDial { agent_leg_id, .. } => Some(agent_leg_id),
            Self::Conference { .. } | Self::DestroyBridge { .. } => None,
        }
    }
}

/// One prompt of a [`PbxCommand::PlayPrompts`], as the PBX says it (ARI
/// media URIs `sound:`, `number:`, `digits:`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum PromptMedia {
    /// A sound file by name (`queue-youarenext`).
    Sound(String),
    /// A number said as a number ("twelve").
    Number(u64),
    /// Digits said one by one.
    Digits(String),
}

impl PromptMedia {
    /// The ARI media URI (`sound:queue-youarenext`, `number:12`).
    pub fn uri(&self) -> String {
        match self {
            Self::Sound(name) => format!("sound:{name}"),
            Self::Number(n) => format!("number:{n}"),
            Self::Digits(d) => format!("digits:{d}"),
        }
    }
}

/// Why a PBX command failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PbxError {
    /// The leg does not exist (any more) at the PBX.
    #[error("unknown leg {0}")]
    UnknownLeg(String),
    /// The bridge does not exist at the PBX.
    #[error("unknown bridge {0}")]
    UnknownBridge(String),
    /// The endpoint could not be dialed (unregistered, unknown technology).
    #[error("endpoint unreachable: {0}")]
    Unreachable(String),
    /// The CTI link is down; the command was not delivered.
    #[error("PBX link down")]
    LinkDown,
    /// The PBX refused the command.
    #[error("PBX refused the command: {0}")]
    Refused(String),
}

/// The PBX.
pub trait PbxPort {
    /// Sends one command; resolves when the PBX accepted or refused it.
    fn send(&self, cmd: PbxCommand) -> LocalBoxFuture<'static, Result<(), PbxError>>;
}

/// Shared PBX handle handed to the actors.
pub type SharedPbx = Rc<dyn PbxPort>;

/// One attached-data variable from the IVR.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachedVar {
    /// The key, truncated to [`crate::ATTACHED_KEY_LEN_MAX`] characters.
    pub key: String,
    /// The value.
    pub value: String,
}

/// A normalized event from the PBX, delivered to the registry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Message)]
#[rtype(result = "()")]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum PbxEvent {
    /// An inbound call entered edgecc's control.
    CallArrived {
        /// The caller leg (its id becomes the call id).
        leg_id: LegId,
        /// Caller number.
        ani: String,
        /// Dialed number.
        dnis: String,
        /// IVR variables (at most [`crate::ATTACHED_VARS_MAX`] are kept).
        attached: Vec<AttachedVar>,
    },
    /// An originated leg is alerting.
    LegRinging {
        /// The leg.
        leg_id: LegId,
    },
    /// A leg was answered.
    LegAnswered {
        /// The leg.
        leg_id: LegId,
    },
    /// A leg is gone.
    LegHungUp {
        /// The leg.
        leg_id: LegId,
        /// Why.
        cause: HangupCause,
    },
    /// A digit was pressed on a leg.
    Dtmf {
        /// The leg.
        leg_id: LegId,
        /// The digit (`0-9*#A-D`).
        digit: char,
    },
    /// The CTI link is up (again); the adapter resynced.
    LinkUp,
    /// The CTI link is down; commands fail with `LinkDown` until it is back.
    LinkDown,
}
