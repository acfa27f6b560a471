//! edgecc-actors: the contact-center domain. Calls, agents and queues as actix
//! actors around pure state machines; routing; the ports to the PBX and the
//! CRM outbox; and the simulated PBX. No network or disk I/O happens here: the
//! daemon wires the ports to real adapters.
//!
//! # Layout
//!
//! - [`ids`]: [`CallId`], [`AgentId`], [`QueueId`], [`LegId`], [`OfferToken`]
//!   (fencing tokens of offers) and [`TokenSource`]; the one definition of
//!   the leg and bridge id format (`{call}~{token}`, `b~{call}`, ...) that the
//!   PBX adapters parse with.
//! - [`config`]: [`ContactCenterConfig`] (queues, agents, reason codes,
//!   timers) with `validate()` naming key paths; [`config::waiting`]: a
//!   queue's announcements and callbacks; [`config::overflow`]: its
//!   overflow rules with caps and hours.
//! - [`crm`]: the CRM contract: [`RecordKind`] (one definition with the
//!   outbox, from `edgecc-record-kind`) and its wire names,
//!   [`CrmRecord`], the typed body of each kind and
//!   [`crm::UpdateEvent`], every event an interaction update carries.
//! - [`ports`]: [`OutboxPort`] + [`MemoryOutbox`] (re-exporting
//!   [`CrmRecord`]); [`PbxPort`] + [`PbxCommand`] + [`PbxEvent`];
//!   [`ports::LegStatus`] for the reconcile after a restart.
//! - [`durable`]: what comes back after a restart: [`StatePort`] (persist
//!   returns at once), one [`StateRecord`] per agent, call, queue line,
//!   sticky customer and the token reservation (latest wins), [`StateSnapshot`],
//!   [`StateStore`] (where the outbox writer commits them) and
//!   [`MemoryState`].
//! - [`clock`]: [`Clock`] / [`TokioClock`], wall-clock ms from a start epoch
//!   plus tokio's pausable time.
//! - [`agent`]: the pure agent state machine ([`agent::Agent`]) and
//!   [`agent::actor::AgentActor`].
//! - [`call`]: the pure call state machine ([`call::Call`]) split by job:
//!   `state` (phases, effects, errors), `queueing`, `offer` (offers, accept,
//!   RONA), `legs` (PBX leg events, the end), `connected` (hold, mute,
//!   transfer), `consult` (consult and conference legs), `crm` (the records
//!   it writes), `supervision`, `announce` (place and expected wait),
//!   `callback` (callbacks, re-entry); its dispatch table is in the module
//!   doc.
//!   [`call::actor::CallActor`] is the glue.
//! - [`queue`]: waiting calls, the ready-agent index and strategies
//!   ([`queue::Queue`]), a caller's place in line and the agents tried last
//!   ([`queue::placement`]), calls held for their own agent
//!   ([`queue::hold`]), its limits ([`queue::limits`]: maximum length,
//!   members needed to join and stay), the expected wait
//!   ([`queue::estimate`]) and [`queue::actor::QueueActor`]; skills with
//!   levels and the best match (`skills`), escalation steps (`escalation`),
//!   priority and aging (`priority`), queue weights (`weight`), why each
//!   offer went to its agent ([`queue::explain`]).
//! - [`sticky`]: sticky customers (caller number → own agent): the book,
//!   its sources, its durable records and the hold rule.
//! - [`registry`]: [`ContactCenter::start`] builds everything
//!   ([`ContactCenter::start_with_state`] with a state port,
//!   [`ContactCenter::restore`] from a snapshot,
//!   [`ContactCenter::start_durable`] with state through the outbox FIFO; `registry/restore.rs` turns
//!   the snapshot into actors); the [`Registry`] actor is the facade
//!   ([`AgentRequest`], [`CallRequest`], [`AgentDesktop`],
//!   [`SupervisorRequest`], [`Snapshot`], [`Subscribe`], `PbxEvent`,
//!   [`registry::Reconcile`] after a restore, [`registry::ApplyConfig`]
//!   for a hot reload: `registry/reload.rs`, with `registry/wiring.rs`
//!   shared with the start and `registry/staffing.rs` counting members
//!   per queue; `registry/reentry.rs` keeps the places of callers who
//!   left, for re-entry).
//! - [`cdr`]: call detail records kept from each call's steps
//!   ([`cdr::CallTrail`] in the call, [`cdr::CallDetailRecord`] once it
//!   ended) and agents' state intervals ([`cdr::agent`]), persisted as
//!   history beside the state.
//! - [`outbox`]: [`outbox::OutboxWriter`], the ordered, retrying writer
//!   (of CRM records, and of state records behind them).
//! - [`events`]: [`CcEvent`] and the views for subscribers (agent state and
//!   time in it, desktop presence, per-party mute, queue waits).
//! - [`recent`]: each agent's recent calls with the caller's number, kept
//!   by the registry from the views ([`registry::RecentCallOf`] asks).
//! - [`waits`]: queue waits and service level, counted once by the registry
//!   from the calls' views.
//! - [`sim`]: [`sim::SimPbx`], the simulated PBX, and its port (it lists
//!   its legs for a reconcile: [`sim::ListLegs`]; it records what it
//!   played: [`sim::GetPlayed`]).
//! - [`env`], [`error`], [`rng`]: shared context, [`CcError`], SplitMix64.
//! - [`shared`]: [`shared::Shared`], an immutable part of a call shared by
//!   reference with the records persisted at its steps.

pub mod agent;
pub mod call;
pub mod cdr;
pub mod clock;
pub mod config;
pub mod crm;
pub mod durable;
pub mod env;
pub mod error;
pub mod events;
pub mod ids;
pub mod outbox;
pub mod ports;
pub mod queue;
pub mod recent;
pub mod registry;
pub mod rng;
pub mod shared;
pub mod sim;
pub mod sticky;
pub mod waits;

pub use call::actor::CallAction;
pub use clock::{Clock, SharedClock, TokioClock};
pub use config::{ConfigError, ContactCenterConfig};
pub use durable::{
    MemoryState, NoState, SharedState, SharedStateStore, StatePort, StateRecord, StateSnapshot,
    StateStore,
};
pub use error::CcError;
pub use events::CcEvent;
pub use ids::{AgentId, CallId, LegId, OfferToken, QueueId, TokenSource};
pub use ports::{
    CrmRecord, HangupCause, MemoryOutbox, OutboxAppend, OutboxError, OutboxPort, PbxCommand,
    PbxError, PbxEvent, PbxPort, RecordKind,
};
pub use registry::{
    AgentCommand, AgentDesktop, AgentRequest, CallRequest, CenterSnapshot, ContactCenter, Registry,
    Snapshot, Subscribe, SupervisorCommand, SupervisorRequest,
};

/// Most attached-data variables kept per call (from the IVR).
pub const ATTACHED_VARS_MAX: usize = 10;
/// Attached-data keys are truncated to this many characters.
pub const ATTACHED_KEY_LEN_MAX: usize = 15;
/// Attached-data values are truncated to this many characters.
pub const ATTACHED_VALUE_LEN_MAX: usize = 256;
