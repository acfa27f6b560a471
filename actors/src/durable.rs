//! The durable state of the domain: what edgecc needs to come back after a
//! restart, as one record per entity (latest wins, keyed by entity id), the
//! port the actors hand those records to, and the snapshot a restarted
//! system is rebuilt from.
//!
//! # Contract
//!
//! - Every actor calls [`StatePort::persist`] right after a state change
//!   that matters to come back (the call's [`CallEffect`]s are carried out
//!   first, so the outbox append of its records is queued before the state
//!   that says they were written). `persist` returns at once: the actor never
//!   waits for the disk, so routing latency does not depend on it. The
//!   adapter queues the record for the storage writer's next group commit.
//! - Records of one port are made durable in the order `persist` was called
//!   (a power cut may lose a suffix, never a hole). The daemon must put them
//!   in the same ordered writer as the outbox, so a state that says "the
//!   interaction was created" is never durable before the record itself:
//!   [`crate::ContactCenter::start_durable`] does, with the outbox writer's
//!   FIFO carrying both kinds and a [`StateStore`] committing the state
//!   records once the CRM records queued before them are durable.
//! - Only the latest record of a key matters: the daemon keeps them in a
//!   state tree keyed by [`StateKey::to_bytes`] and may coalesce records of
//!   one key inside a batch. A record with [`StateRecord::is_removal`]
//!   deletes its key.
//! - Encode records with a self-describing format (serde_json): the domain
//!   enums are internally tagged (`#[serde(tag = ...)]`), which bincode 1
//!   cannot decode.
//! - Fencing tokens are reserved in blocks of [`TOKEN_RESERVE_BLOCK`]: the
//!   reservation is persisted before the first token of the block is used,
//!   so (by the prefix rule) a restored system that starts above the
//!   persisted reservation never reissues a token.
//!
//! ```text
//! key              record                       written when
//! a/{agent}        Agent (state, pending, stats) every agent state or pending change
//! c/{call}         Call (phase, offers, session,  every call step; removed when the
//!                  interaction flags, update seq, ended call's actor stops
//!                  a callback entry: new keys
//!                  default when absent)
//! q/{queue}        QueueOrder (waiting call ids)  a call joins or leaves the line
//! s/{ani}          Sticky (number -> agent)       a run-time sticky entry is set
//!                                                 (removed when the book is full)
//! t                Tokens { reserved_through }    a new token block is reserved
//! p                PbxStartup { startup_time }    the PBX adapter saw the PBX (re)start
//! ~c/{arrived}/{call} CallDetail (history)       an ended call's step (crate::cdr)
//! ~g/{start}/{agent}  AgentInterval (history)    an agent leaves a state
//! ```
//!
//! History keys (`~`) sort after every state key; they are never read into
//! a [`StateSnapshot`].
//!
//! [`CallEffect`]: crate::call::CallEffect

use crate::agent::{Agent, AgentState};
use crate::call::{Call, CallPhase};
use crate::ids::{AgentId, CallId, QueueId};
use crate::ports::{LocalBoxFuture, OutboxError};
use crate::sticky::StickyEntry;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// Tokens reserved per persisted reservation: one `t` record per this many
/// offers keeps the token source off the write path (a record per 1,024
/// offers), and a restart skips at most this many unused tokens.
pub const TOKEN_RESERVE_BLOCK: u64 = 1_024;

/// The key of one durable record: one per entity.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum StateKey {
    /// An agent.
    Agent(AgentId),
    /// A live (or lingering ended) call.
    Call(CallId),
    /// A queue's waiting line.
    Queue(QueueId),
    /// The fencing token reservation (one for the whole system).
    Tokens,
    /// A sticky customer's number ([`crate::sticky`]).
    Sticky(String),
    /// The PBX's start-up time as last seen (one for the whole system).
    PbxStartup,
    /// A finished call's detail record (history, see [`crate::cdr`]).
    CallDetail {
        /// When the call arrived: history keys sort by it.
        arrived_ms: u64,
        /// The call.
        call: CallId,
    },
    /// One state an agent left (history, see [`crate::cdr::agent`]).
    AgentInterval {
        /// When the state began: history keys sort by it.
        start_ms: u64,
        /// The agent.
        agent: AgentId,
    },
}

impl StateKey {
    /// The key as bytes for an ordered key-value tree (`a/`, `c/`, `q/`
    /// prefixes then the id; `t` for the tokens).
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Self::Agent(id) => format!("a/{id}").into_bytes(),
            Self::Call(id) => format!("c/{id}").into_bytes(),
            Self::Queue(id) => format!("q/{id}").into_bytes(),
            Self::Tokens => b"t".to_vec(),
            Self::Sticky(ani) => format!("s/{ani}").into_bytes(),
            Self::PbxStartup => b"p".to_vec(),
            Self::CallDetail { arrived_ms, call } => crate::cdr::call_detail_key(*arrived_ms, call),
            Self::AgentInterval { start_ms, agent } => format!(
                "{}{start_ms:020}/{agent}",
                crate::cdr::AGENT_INTERVAL_KEY_PREFIX
            )
            .into_bytes(),
        }
    }

    /// Whether the key is history (a call detail record or an agent
    /// interval) rather than state a restart needs.
    pub fn is_history(&self) -> bool {
        matches!(self, Self::CallDetail { .. } | Self::AgentInterval { .. })
    }
}

/// One durable record: the latest state of one entity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum StateRecord {
    /// An agent's pure machine: state (with since-when, the reservation's
    /// token and lease, the wrap-up deadline), pending change, counters
    /// (its routing score), epoch and settings.
    Agent(Box<Agent>),
    /// A call's pure machine: phase (queued with arrival and priority,
    /// offering with tokens and deadlines, connected with parties, hold,
    /// mutes, consult or conference leg), interaction flags, the last CRM
    /// update sequence, attached data, timers' deadlines.
    Call(Box<Call>),
    /// The call's actor stopped: its key is deleted.
    CallRemoved(CallId),
    /// A queue's waiting calls, in routing order.
    QueueOrder {
        /// The queue.
        queue: QueueId,
        /// Waiting calls, first to be routed first.
        waiting: Vec<CallId>,
    },
    /// Tokens up to this one may have been handed out.
    Tokens {
        /// The highest token reserved so far.
        reserved_through: u64,
    },
    /// A sticky customer's number now belongs to an agent.
    Sticky(StickyEntry),
    /// A sticky entry was dropped (the book was full): its key is deleted.
    StickyRemoved(String),
    /// The PBX's start-up time as the adapter last read it (Asterisk's
    /// `status.startup_time`): a restarted edgecc compares it with what
    /// the PBX says on its first connect, to tell calls the PBX dropped
    /// while both were down from calls hung up.
    PbxStartup {
        /// The start-up time, as the PBX wrote it.
        startup_time: String,
    },
    /// A finished call's detail record: history, never read back into the
    /// snapshot (see [`crate::cdr`]).
    CallDetail(Box<crate::cdr::CallDetailRecord>),
    /// One state an agent left: history (see [`crate::cdr::agent`]).
    AgentInterval(crate::cdr::agent::AgentInterval),
}

impl StateRecord {
    /// The entity this record is the latest state of.
    pub fn key(&self) -> StateKey {
        match self {
            Self::Agent(a) => StateKey::Agent(a.id.clone()),
            Self::Call(c) => StateKey::Call(c.id.clone()),
            Self::CallRemoved(id) => StateKey::Call(id.clone()),
            Self::QueueOrder { queue, .. } => StateKey::Queue(queue.clone()),
            Self::Tokens { .. } => StateKey::Tokens,
            Self::Sticky(e) => StateKey::Sticky(e.ani.clone()),
            Self::StickyRemoved(ani) => StateKey::Sticky(ani.clone()),
            Self::PbxStartup { .. } => StateKey::PbxStartup,
            Self::CallDetail(r) => StateKey::CallDetail {
                arrived_ms: r.arrived_ms,
                call: r.call.clone(),
            },
            Self::AgentInterval(i) => StateKey::AgentInterval {
                start_ms: i.start_ms,
                agent: i.agent.clone(),
            },
        }
    }

    /// Whether the record deletes its key rather than storing a value.
    pub fn is_removal(&self) -> bool {
        matches!(self, Self::CallRemoved(_) | Self::StickyRemoved(_))
    }
}

/// Where the actors hand their state records. Implementations must not
/// block: see the module's contract.
pub trait StatePort {
    /// Queues `record` for durability and returns at once.
    fn persist(&self, record: StateRecord);

    /// Whether records are kept at all; when false the actors do not even
    /// build them (no clone of a call per step on the routing path).
    fn enabled(&self) -> bool {
        true
    }
}

/// Shared state port handed to every actor.
pub type SharedState = Rc<dyn StatePort>;

/// What [`StateStore::commit_batch`] resolves to: the records written
/// (after coalescing per key), or the error with the records handed back
/// for the writer's retry.
pub type BatchCommit = Result<usize, (OutboxError, Vec<StateRecord>)>;

/// Where the outbox writer commits state records (the daemon's state tree):
/// the durable side of [`crate::outbox::WriterState`].
pub trait StateStore {
    /// Makes `records` durable (at most one per key, in order; a removal
    /// deletes its key); resolves once they are. On an error the writer
    /// retries the same records.
    fn commit(&self, records: Vec<StateRecord>)
        -> LocalBoxFuture<'static, Result<(), OutboxError>>;

    /// Makes one batch durable as the writer took it from its FIFO (in
    /// persist order, several records of a key possible: only the latest
    /// of each is committed). The store owns the records: on success they
    /// are gone, on an error they come back for the retry, so the writer
    /// never copies a batch. The default coalesces on the caller's thread
    /// and copies for [`Self::commit`]; the daemon's store coalesces,
    /// encodes and frees off the actors' thread.
    fn commit_batch(&self, records: Vec<StateRecord>) -> LocalBoxFuture<'static, BatchCommit> {
        let latest = latest_per_key(records);
        let written = latest.len();
        let commit = self.commit(latest.clone());
        Box::pin(async move {
            match commit.await {
                Ok(()) => Ok(written),
                Err(e) => Err((e, latest)),
            }
        })
    }
}

/// The latest record of each key, in the order of those latest records.
pub fn latest_per_key(states: Vec<StateRecord>) -> Vec<StateRecord> {
    let mut seen: std::collections::HashSet<StateKey> =
        std::collections::HashSet::with_capacity(states.len());
    let mut latest: Vec<StateRecord> = states
        .into_iter()
        .rev()
        .filter(|r| seen.insert(r.key()))
        .collect();
    latest.reverse();
    latest
}

/// Shared state store handed to the outbox writer.
pub type SharedStateStore = Rc<dyn StateStore>;

/// A port that keeps nothing: the system starts fresh after a restart.
/// [`crate::ContactCenter::start`] uses it.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoState;

impl StatePort for NoState {
    fn persist(&self, _record: StateRecord) {}

    fn enabled(&self) -> bool {
        false
    }
}

/// Everything a restarted system is rebuilt from: the latest record of
/// every key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StateSnapshot {
    /// Agents by id.
    pub agents: BTreeMap<AgentId, Agent>,
    /// Calls by id (ended ones included while their actor lingered).
    pub calls: BTreeMap<CallId, Call>,
    /// Waiting lines by queue.
    pub queues: BTreeMap<QueueId, Vec<CallId>>,
    /// The highest token that may have been handed out.
    pub tokens_reserved_through: u64,
    /// Sticky customers set at run time, by number.
    #[serde(default)]
    pub sticky: BTreeMap<String, StickyEntry>,
    /// The PBX's start-up time as last seen, if the adapter ever read one.
    #[serde(default)]
    pub pbx_startup_time: Option<String>,
}

impl StateSnapshot {
    /// Builds the snapshot from records in persist order (later ones win).
    pub fn from_records(records: impl IntoIterator<Item = StateRecord>) -> Self {
        let mut s = Self::default();
        for r in records {
            s.apply(r);
        }
        s
    }

    /// Applies one record (latest wins).
    pub fn apply(&mut self, record: StateRecord) {
        match record {
            StateRecord::Agent(a) => {
                self.agents.insert(a.id.clone(), *a);
            }
            StateRecord::Call(c) => {
                self.calls.insert(c.id.clone(), *c);
            }
            StateRecord::CallRemoved(id) => {
                self.calls.remove(&id);
            }
            StateRecord::QueueOrder { queue, waiting } => {
                self.queues.insert(queue, waiting);
            }
            StateRecord::Tokens { reserved_through } => {
                self.tokens_reserved_through = self.tokens_reserved_through.max(reserved_through);
            }
            StateRecord::Sticky(e) => {
                self.sticky.insert(e.ani.clone(), e);
            }
            StateRecord::StickyRemoved(ani) => {
                self.sticky.remove(&ani);
            }
            StateRecord::PbxStartup { startup_time } => {
                self.pbx_startup_time = Some(startup_time);
            }
            // History is not state: a restart does not need it.
            StateRecord::CallDetail(_) | StateRecord::AgentInterval(_) => {}
        }
    }

    /// The highest fencing token any record mentions or reserves: a
    /// restored token source starts above it.
    pub fn token_high_water(&self) -> u64 {
        let from_agents = self.agents.values().filter_map(|a| match &a.state {
            AgentState::Reserved { token, .. } => Some(token.0),
            _ => None,
        });
        let from_calls = self.calls.values().flat_map(|c| {
            let mut t: Vec<u64> = Vec::new();
            if let CallPhase::Offering { offers, .. } = &c.phase {
                t.extend(offers.iter().map(|o| o.token.0));
            }
            if let CallPhase::Connected(s) = &c.phase {
                t.extend(s.parties.iter().filter_map(|p| p.leg.token().map(|x| x.0)));
                t.extend(s.pending.iter().map(|p| p.token.0));
            }
            t.extend(
                c.supervisions
                    .iter()
                    .filter_map(|s| s.leg.token().map(|x| x.0)),
            );
            t
        });
        from_agents
            .chain(from_calls)
            .fold(self.tokens_reserved_through, u64::max)
    }
}

/// In-memory state port for tests and the demo: keeps the latest record
/// per key, like the daemon's state tree, and counts what was persisted.
#[derive(Clone, Default)]
pub struct MemoryState {
    /// The records, shared between the actors and the test that reads them.
    inner: Rc<RefCell<MemoryStateInner>>,
}

/// What [`MemoryState`] holds.
#[derive(Default)]
struct MemoryStateInner {
    /// Latest record per key (removals delete).
    records: BTreeMap<StateKey, StateRecord>,
    /// Records persisted so far (removals included).
    persisted: u64,
}

impl MemoryState {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The snapshot a restarted system would read.
    pub fn snapshot(&self) -> StateSnapshot {
        StateSnapshot::from_records(self.inner.borrow().records.values().cloned())
    }

    /// The latest record of `key`.
    pub fn get(&self, key: &StateKey) -> Option<StateRecord> {
        self.inner.borrow().records.get(key).cloned()
    }

    /// Records persisted so far.
    pub fn persisted(&self) -> u64 {
        self.inner.borrow().persisted
    }

    /// The latest history records (call detail records, agent intervals),
    /// in key order: oldest first.
    pub fn history(&self) -> Vec<StateRecord> {
        self.inner
            .borrow()
            .records
            .iter()
            .filter(|(k, _)| k.is_history())
            .map(|(_, r)| r.clone())
            .collect()
    }
}

impl StatePort for MemoryState {
    fn persist(&self, record: StateRecord) {
        let mut inner = self.inner.borrow_mut();
        inner.persisted += 1;
        let key = record.key();
        if record.is_removal() {
            inner.records.remove(&key);
        } else {
            inner.records.insert(key, record);
        }
    }
}

impl StateStore for MemoryState {
    fn commit(
        &self,
        records: Vec<StateRecord>,
    ) -> LocalBoxFuture<'static, Result<(), OutboxError>> {
        for r in records {
            self.persist(r);
        }
        Box::pin(std::future::ready(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{AgentSettings, NotReadyReason, OfferPurpose, SystemReason};
    use crate::ids::OfferToken;

    fn agent(id: &str) -> Agent {
        Agent::new(
            AgentId::new(id),
            AgentSettings {
                wrap_up_ms: None,
                reject_delay_ms: 0,
                rona_sets_not_ready: false,
                rona_reason: NotReadyReason::System(SystemReason::Rona),
                device_refusals_max: 0,
                backoff: Default::default(),
            },
        )
    }

    /// The latest record of a key wins, a removal deletes it, the token
    /// reservation only grows, and the high-water mark covers a token an
    /// agent holds above the reservation.
    #[test]
    fn snapshot_keeps_the_latest_per_key() {
        let mut a = agent("a1");
        let first = StateRecord::Agent(Box::new(a.clone()));
        a.state = AgentState::Reserved {
            call: CallId::new("c1"),
            token: OfferToken(5_000),
            purpose: OfferPurpose::Direct,
            lease_until_ms: 9,
        };
        let store = MemoryState::new();
        for r in [
            first,
            StateRecord::Tokens {
                reserved_through: 1_025,
            },
            StateRecord::Agent(Box::new(a.clone())),
            StateRecord::Tokens {
                reserved_through: 3,
            },
            StateRecord::QueueOrder {
                queue: QueueId::new("q"),
                waiting: vec![CallId::new("c2")],
            },
            StateRecord::CallRemoved(CallId::new("c9")),
        ] {
            store.persist(r);
        }
        assert_eq!(store.persisted(), 6);
        let snap = store.snapshot();
        assert_eq!(snap.agents[&AgentId::new("a1")], a);
        assert_eq!(
            snap.tokens_reserved_through, 3,
            "the store keeps the latest"
        );
        assert_eq!(snap.token_high_water(), 5_000);
        assert_eq!(snap.queues[&QueueId::new("q")], vec![CallId::new("c2")]);
        assert_eq!(snap.pbx_startup_time, None);
        for t in ["T1", "T2"] {
            store.persist(StateRecord::PbxStartup {
                startup_time: t.into(),
            });
        }
        assert_eq!(store.snapshot().pbx_startup_time.as_deref(), Some("T2"));
        assert!(store.get(&StateKey::Call(CallId::new("c9"))).is_none());
        let replayed = StateSnapshot::from_records([
            StateRecord::Tokens {
                reserved_through: 1_025,
            },
            StateRecord::Tokens {
                reserved_through: 3,
            },
        ]);
        assert_eq!(
            replayed.tokens_reserved_through, 1_025,
            "a replay never lowers it"
        );
        assert_eq!(StateKey::Agent(AgentId::new("a1")).to_bytes(), b"a/a1");
        assert_eq!(StateKey::Tokens.to_bytes(), b"t");
    }
}
