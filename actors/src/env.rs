//! What every actor shares: ports (the state port included), the clock, the
//! outbox writer, the token source with its persisted reservation, and the
//! directory of actor addresses (built from the config). A reload builds a
//! new `Env` with [`Env::reconfigured`] (same ports and token source, new
//! config and directory), links it as the old one's successor, and sends
//! every actor its `Reconfigure`; the actor then moves to [`Env::latest`].
//! (Messages between actors must be `Send`, an `Rc` is not: hence the link.)

use crate::agent::actor::AgentActor;
use crate::call::{AgentContact, QueueRules};
use crate::clock::SharedClock;
use crate::config::ContactCenterConfig;
use crate::durable::{SharedState, StateRecord, TOKEN_RESERVE_BLOCK};
use crate::ids::{AgentId, OfferToken, QueueId, TokenSource};
use crate::outbox::OutboxWriter;
use crate::ports::SharedPbx;
use crate::queue::actor::QueueActor;
use crate::queue::overflow_rules::OverflowBook;
use crate::registry::Registry;
use crate::shared::Shared;
use crate::sticky::StickyBook;
use actix::Addr;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

/// An agent as other actors see it.
#[derive(Clone)]
pub struct AgentHandle {
    /// How to ring it.
    pub contact: AgentContact,
    /// Its actor.
    pub addr: Addr<AgentActor>,
    /// Queues it is a member of (listed; skills decide per call).
    pub queues: Vec<QueueId>,
    /// Its wrap-up override (how long its call stays reachable for codes).
    pub wrap_up_ms_override: Option<u64>,
}

/// A queue as other actors see it.
#[derive(Clone)]
pub struct QueueHandle {
    /// Its rules, shared with the calls that join it.
    pub rules: Shared<QueueRules>,
    /// Its actor.
    pub addr: Addr<QueueActor>,
    /// Its weight for agents in several queues (`routing.weight`).
    pub weight: u32,
}

/// Addresses of every agent and queue, and the number plans.
#[derive(Default)]
pub struct Directory {
    /// Agents by id.
    pub agents: HashMap<AgentId, AgentHandle>,
    /// Agent by extension (direct calls).
    pub by_extension: HashMap<String, AgentId>,
    /// Queues by id.
    pub queues: HashMap<QueueId, QueueHandle>,
    /// Queue by DNIS.
    pub by_dnis: HashMap<String, QueueId>,
}

/// Shared by every actor of one contact center (one arbiter).
pub struct Env {
    /// The configuration, validated.
    pub config: ContactCenterConfig,
    /// Time.
    pub clock: SharedClock,
    /// The PBX port.
    pub pbx: SharedPbx,
    /// The outbox writer (FIFO, retrying).
    pub writer: OutboxWriter,
    /// Fencing tokens; mint through [`Env::mint_token`], which persists
    /// the reservation first.
    pub tokens: TokenSource,
    /// The highest token covered by a persisted reservation: minting above
    /// it persists the next block first (see [`crate::durable`]). Shared
    /// with every reconfigured `Env`, so a reload never re-reserves.
    pub tokens_reserved: Rc<Cell<u64>>,
    /// Where state changes go to be durable (never waited for).
    pub state: SharedState,
    /// The registry (views, events, call lookup).
    pub registry: Addr<Registry>,
    /// Agents and queues.
    pub directory: Directory,
    /// Sticky customers (caller number → own agent): the one copy, read
    /// when a call joins a queue, changed through [`crate::sticky::remember`];
    /// shared with every reconfigured `Env` (a reload re-pins the config's
    /// entries in place).
    pub sticky: Rc<RefCell<StickyBook>>,
    /// The `Env` a reload put in this one's place, if any: an actor told to
    /// reconfigure follows the links to [`Env::latest`]. Links point from
    /// old to new only, so an old `Env` is freed once no actor holds it.
    pub successor: RefCell<Option<SharedEnv>>,
    /// What each overflow target holds from the queues' overflow rules
    /// (their caps count across queues and calls); shared with every
    /// reconfigured `Env`, so a reload changes caps, never counts.
    pub overflow: Rc<RefCell<OverflowBook>>,
}

/// Shared handle.
pub type SharedEnv = Rc<Env>;

impl Env {
    /// The same ports, clock, writer and token source with `config` and
    /// `directory` (a reload): actors that take it see the new rules.
    pub fn reconfigured(&self, config: ContactCenterConfig, directory: Directory) -> Env {
        self.sticky.borrow_mut().repin(&config.sticky_customers);
        Env {
            config,
            clock: self.clock.clone(),
            pbx: self.pbx.clone(),
            writer: self.writer.clone(),
            tokens: self.tokens.clone(),
            tokens_reserved: Rc::clone(&self.tokens_reserved),
            state: self.state.clone(),
            registry: self.registry.clone(),
            directory,
            sticky: Rc::clone(&self.sticky),
            successor: RefCell::new(None),
            overflow: Rc::clone(&self.overflow),
        }
    }

    /// The newest `Env`: `env` itself unless a reload replaced it.
    pub fn latest(env: &SharedEnv) -> SharedEnv {
        let mut env = Rc::clone(env);
        loop {
            let next = env.successor.borrow().clone();
            match next {
                Some(next) => env = next,
                None => return env,
            }
        }
    }

    /// Now, in wall-clock ms.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// A fresh fencing token. When it is above the persisted reservation,
    /// the next block is reserved (and persisted) before it is handed out.
    pub fn mint_token(&self) -> OfferToken {
        let token = self.tokens.mint();
        if token.0 > self.tokens_reserved.get() {
            let reserved_through = token.0.saturating_add(TOKEN_RESERVE_BLOCK);
            self.tokens_reserved.set(reserved_through);
            self.state.persist(StateRecord::Tokens { reserved_through });
        }
        token
    }

    /// Builds the record and hands it to the state port, unless the port
    /// keeps nothing.
    pub fn persist(&self, record: impl FnOnce() -> StateRecord) {
        if self.state.enabled() {
            self.state.persist(record());
        }
    }
}
