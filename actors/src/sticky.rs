//! Sticky customers ("own manager"): the book of caller numbers (ANI) and
//! the agent each belongs to, where its entries come from, how they stay
//! durable, and the rule that holds a queued call for its agent.
//!
//! - **Sources**: the config's `sticky_customers` (pinned: a run-time set
//!   for a pinned number is refused), an agent for the caller of its call
//!   and the API (both through [`SetSticky`]),
//!   and, when the queue's `sticky.after_call` is on, the last agent of a
//!   completed call of that queue.
//! - **Durable and local**: a run-time entry is a
//!   [`StateRecord::Sticky`](crate::durable::StateRecord) in the actors'
//!   state (key `s/{ani}`), restored with the rest of the system; nothing
//!   here asks the CRM, so a CRM outage changes nothing.
//! - **Routing**: a call from a number in the book, joining a queue whose
//!   `sticky.wait_ms` is set, is held for its agent (when the agent is a
//!   member and has not missed the call already) until `wait_ms` after the
//!   call took its place in line; the queue offers it to that agent alone
//!   meanwhile ([`crate::queue::hold`]), to anyone after.

use crate::durable::StateRecord;
use crate::env::Env;
use crate::ids::{AgentId, QueueId};
use crate::queue::hold::Hold;
use crate::registry::Registry;
use actix::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tracing::{debug, info};

/// Most numbers in the book: about 100 bytes each, so 10 MB at most. Past
/// it, a new run-time entry replaces the one set longest ago.
pub const STICKY_CUSTOMERS_MAX: usize = 100_000;
/// Longest a caller number may be (ITU E.164 allows 15 digits; SIP URIs
/// are longer, so generous).
pub const STICKY_ANI_LEN_MAX: usize = 128;

/// A queue's sticky settings (`[contact_center.queues.sticky]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StickyQueueConfig {
    /// How long a call from a sticky customer waits for its own agent,
    /// counted from when it took its place in line; 0 routes it like any
    /// other call.
    pub wait_ms: u64,
    /// After a completed call of this queue, the caller's number belongs to
    /// the last agent on the call.
    pub after_call: bool,
}

/// A number pinned to an agent by the config (`[[contact_center.sticky_customers]]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StickyCustomerConfig {
    /// The caller's number, as the PBX reports it (ANI).
    pub ani: String,
    /// The agent id.
    pub agent: String,
}

/// Who set an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StickySource {
    /// The config (pinned).
    Config,
    /// An agent, for the caller of its call.
    Agent,
    /// A supervisor or admin through the API.
    Api,
    /// The last agent of a completed call (`sticky.after_call`).
    AfterCall,
}

/// One number and its agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StickyEntry {
    /// The caller's number.
    pub ani: String,
    /// The agent the number belongs to.
    pub agent: AgentId,
    /// Who set it (config entries are pinned).
    pub source: StickySource,
    /// When (wall ms): the oldest run-time entry makes room when full.
    pub set_ms: u64,
}

/// Why an entry was not set.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StickyError {
    /// The config pins the number to an agent.
    #[error("the number is pinned to agent {agent} by the config")]
    Pinned {
        /// The config's agent.
        agent: AgentId,
    },
    /// The number is empty (anonymous caller) or too long.
    #[error("the caller's number is empty or longer than {STICKY_ANI_LEN_MAX} characters")]
    BadNumber,
    /// No such agent.
    #[error("unknown agent {0}")]
    UnknownAgent(AgentId),
}

/// The book: one entry per number.
#[derive(Debug, Default)]
pub struct StickyBook {
    /// Entries by number.
    by_ani: HashMap<String, StickyEntry>,
}

impl StickyBook {
    /// The book at start: the run-time entries a previous run kept, then
    /// the config's pinned entries over them.
    pub fn new(
        pinned: &[StickyCustomerConfig],
        kept: impl IntoIterator<Item = StickyEntry>,
    ) -> Self {
        let mut book = Self {
            by_ani: kept
                .into_iter()
                .filter(|e| e.source != StickySource::Config)
                .map(|e| (e.ani.clone(), e))
                .collect(),
        };
        book.repin(pinned);
        book
    }

    /// Takes the config's pinned entries (at start, and on a reload): they
    /// replace every earlier pinned entry and win over a run-time entry of
    /// the same number; other run-time entries stay.
    pub fn repin(&mut self, pinned: &[StickyCustomerConfig]) {
        self.by_ani.retain(|_, e| e.source != StickySource::Config);
        for p in pinned {
            self.by_ani.insert(
                p.ani.clone(),
                StickyEntry {
                    ani: p.ani.clone(),
                    agent: AgentId::new(p.agent.clone()),
                    source: StickySource::Config,
                    set_ms: 0,
                },
            );
        }
    }

    /// The entry of `ani`.
    pub fn get(&self, ani: &str) -> Option<&StickyEntry> {
        if self.by_ani.is_empty() {
            return None;
        }
        self.by_ani.get(ani)
    }

    /// Numbers in the book.
    pub fn len(&self) -> usize {
        self.by_ani.len()
    }

    /// Whether the book is empty.
    pub fn is_empty(&self) -> bool {
        self.by_ani.is_empty()
    }

    /// Sets a run-time entry. `Ok(None)` when nothing changed (the number
    /// already belongs to that agent); otherwise the records to persist
    /// (the entry, and the removal of the entry it replaced when full).
    pub fn set(&mut self, entry: StickyEntry) -> Result<Option<Vec<StateRecord>>, StickyError> {
        if entry.ani.is_empty() || entry.ani.chars().count() > STICKY_ANI_LEN_MAX {
            return Err(StickyError::BadNumber);
        }
        match self.by_ani.get(&entry.ani) {
            Some(e) if e.agent == entry.agent => return Ok(None),
            Some(e) if e.source == StickySource::Config => {
                return Err(StickyError::Pinned {
                    agent: e.agent.clone(),
                })
            }
            _ => {}
        }
        let mut records = Vec::new();
        if !self.by_ani.contains_key(&entry.ani) && self.by_ani.len() >= STICKY_CUSTOMERS_MAX {
            let oldest = self
                .by_ani
                .values()
                .filter(|e| e.source != StickySource::Config)
                .min_by_key(|e| (e.set_ms, e.ani.clone()))
                .map(|e| e.ani.clone());
            if let Some(ani) = oldest {
                self.by_ani.remove(&ani);
                records.push(StateRecord::StickyRemoved(ani));
            }
        }
        records.push(StateRecord::Sticky(entry.clone()));
        self.by_ani.insert(entry.ani.clone(), entry);
        Ok(Some(records))
    }
}

/// Sets `ani` → `agent` from `source` now, persisting the change; answers
/// the entry the book holds then (the existing one when the number already
/// belonged to `agent`). Refused for an unknown agent, a bad number or a
/// number the config pins to another agent.
pub fn remember(
    env: &Env,
    ani: &str,
    agent: &AgentId,
    source: StickySource,
) -> Result<StickyEntry, StickyError> {
    if !env.directory.agents.contains_key(agent) {
        return Err(StickyError::UnknownAgent(agent.clone()));
    }
    let entry = StickyEntry {
        ani: ani.to_owned(),
        agent: agent.clone(),
        source,
        set_ms: env.now_ms(),
    };
    let records = env.sticky.borrow_mut().set(entry.clone())?;
    for r in records.into_iter().flatten() {
        env.persist(|| r);
    }
    Ok(env.sticky.borrow().get(ani).cloned().unwrap_or(entry))
}

/// Make a caller's number belong to an agent (an agent for the caller of
/// its call, or the API). Answers the entry and the queues that will hold
/// the caller's calls for the agent.
#[derive(Message)]
#[rtype(result = "Result<StickyAnswer, StickyError>")]
pub struct SetSticky {
    /// The caller's number.
    pub ani: String,
    /// Its agent.
    pub agent: AgentId,
    /// Who asks.
    pub source: StickySource,
}

/// What a sticky entry does for routing now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StickyAnswer {
    /// The entry the book holds.
    pub entry: StickyEntry,
    /// The agent's queues that hold its customers' calls for it, with how
    /// long (`sticky.wait_ms`); empty: the entry is kept but no queue waits.
    pub queues: Vec<(QueueId, u64)>,
}

impl Handler<SetSticky> for Registry {
    type Result = Result<StickyAnswer, StickyError>;

    fn handle(&mut self, msg: SetSticky, _ctx: &mut Self::Context) -> Self::Result {
        let env = self.env();
        let entry = remember(env, &msg.ani, &msg.agent, msg.source)?;
        let queues = waiting_queues(env, &entry.agent);
        info!(agent_id = %entry.agent, source = ?msg.source, queues = queues.len(), "Sticky customer set.");
        Ok(StickyAnswer { entry, queues })
    }
}

/// The queues that hold a call of `agent`'s customers for it, with their
/// wait: the queues it is a member of whose `sticky.wait_ms` is set.
pub fn waiting_queues(env: &Env, agent: &AgentId) -> Vec<(QueueId, u64)> {
    let Some(handle) = env.directory.agents.get(agent) else {
        return Vec::new();
    };
    handle
        .queues
        .iter()
        .filter_map(|q| {
            let wait_ms = env.config.queue(q.as_str())?.sticky.wait_ms;
            (wait_ms > 0).then(|| (q.clone(), wait_ms))
        })
        .collect()
}

/// The hold a call from `ani` joining `queue` gets: its agent, until
/// `since_ms` (its place time) plus the queue's `sticky.wait_ms`. None when
/// the queue does not wait, the number is not in the book, its agent is
/// not a member of the queue or already missed the call (`tried`), or the
/// wait is over.
pub fn hold(
    env: &Env,
    queue: &QueueId,
    ani: &str,
    since_ms: u64,
    tried: &[AgentId],
) -> Option<Hold> {
    let book = env.sticky.borrow();
    let entry = book.get(ani)?;
    let wait_ms = env.config.queue(queue.as_str())?.sticky.wait_ms;
    if wait_ms == 0 || tried.contains(&entry.agent) {
        return None;
    }
    let member = env
        .directory
        .agents
        .get(&entry.agent)
        .is_some_and(|a| a.queues.contains(queue));
    let until_ms = since_ms.saturating_add(wait_ms);
    if !member || until_ms <= env.now_ms() {
        return None;
    }
    debug!(queue_id = %queue, agent_id = %entry.agent, until_ms, "Call held for its own agent.");
    Some(Hold {
        agent: entry.agent.clone(),
        until_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ani: &str, agent: &str, set_ms: u64) -> StickyEntry {
        StickyEntry {
            ani: ani.into(),
            agent: AgentId::new(agent),
            source: StickySource::Api,
            set_ms,
        }
    }

    /// A reload re-pins: the old config's entries go, the new config's
    /// win over a run-time entry of their number, other run-time entries
    /// stay.
    #[test]
    fn repin_replaces_only_the_configs_entries() {
        let pin = |ani: &str, agent: &str| StickyCustomerConfig {
            ani: ani.into(),
            agent: agent.into(),
        };
        let mut book = StickyBook::new(
            &[pin("+1", "boss")],
            [entry("+2", "y", 6), entry("+3", "w", 7)],
        );
        book.repin(&[pin("+3", "chief")]);
        assert_eq!(book.get("+1"), None);
        assert_eq!(book.get("+2").map(|e| e.agent.as_str()), Some("y"));
        let three = book.get("+3").unwrap();
        assert_eq!(
            (three.agent.as_str(), three.source),
            ("chief", StickySource::Config)
        );
        assert_eq!(book.len(), 2);
    }

    /// Config entries are pinned and win over kept ones; a run-time set
    /// persists once, and not again for the same agent; bad numbers are
    /// refused.
    #[test]
    fn pinned_kept_and_set() {
        let pinned = [StickyCustomerConfig {
            ani: "+1".into(),
            agent: "boss".into(),
        }];
        let mut book = StickyBook::new(&pinned, [entry("+1", "x", 5), entry("+2", "y", 6)]);
        assert_eq!(book.get("+1").map(|e| e.agent.as_str()), Some("boss"));
        assert_eq!(book.get("+2").map(|e| e.agent.as_str()), Some("y"));
        assert_eq!(
            book.set(entry("+1", "z", 7)),
            Err(StickyError::Pinned {
                agent: AgentId::new("boss")
            })
        );
        assert_eq!(book.set(entry("+2", "y", 8)), Ok(None));
        assert_eq!(
            book.set(entry("+2", "z", 9)),
            Ok(Some(vec![StateRecord::Sticky(entry("+2", "z", 9))]))
        );
        assert_eq!(book.set(entry("", "z", 9)), Err(StickyError::BadNumber));
        assert_eq!(book.len(), 2);
    }
}
