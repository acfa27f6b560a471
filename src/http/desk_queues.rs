//! The agent desktop's queue panel kept live: which queues each open
//! desktop's agent serves, which calls wait in each queue as the hub saw
//! them, and when to tell desktops that a queue they serve changed.
//!
//! The panel itself (calls waiting, when the oldest began to wait) is in
//! the desktop snapshot (`views::desktop`, from the registry's
//! `QueuesServed`); the page ticks the longest wait from that start time.
//! This module only decides when a desktop should take a fresh snapshot:
//! a call joining or leaving a queue's waiting line (a call view in the
//! `queued` phase, or no longer in it) marks the queue changed, and the hub
//! pushes one `queues_changed` event per [`QUEUE_PUSH_INTERVAL`] at most,
//! naming every queue that changed, to the desktops of their members only.
//! A busy queue thus costs each of its members' desktops at most a few
//! snapshots a second, and other desktops nothing.
//!
//! Membership is learnt from each desktop's own snapshot (the registry's
//! answer, so a reload's new membership applies at the desktop's next
//! snapshot) and forgotten when the agent's last desktop closes.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use edgecc_actors::events::CallView;
use edgecc_actors::registry::QueuesServed;
use edgecc_actors::{AgentId, CallId, QueueId};
use serde_json::{json, Value};

use super::error::ApiError;
use super::AppState;

/// Most one `queues_changed` push per this interval (the first change after
/// a quiet spell goes out at once).
pub const QUEUE_PUSH_INTERVAL: Duration = Duration::from_millis(500);
/// Most calls whose place in a waiting line is tracked at once; a bound far
/// above what one box carries (a call beyond it is not pushed, the next
/// snapshot still shows it).
pub const TRACKED_WAITING_MAX: usize = 10_000;

/// Which calls wait in which queue, and which queues changed since the last
/// push (the hub actor's).
#[derive(Debug, Default)]
pub struct QueueWatch {
    /// Calls in a queue's waiting line, by the last view seen.
    waiting: HashMap<CallId, QueueId>,
    /// Queues whose waiting line changed since the last push.
    changed: HashSet<QueueId>,
}

impl QueueWatch {
    /// Takes in a call's new view; marks the queues whose waiting line it
    /// joined or left.
    pub fn observe(&mut self, view: &CallView) {
        let now = match (&view.queue, view.phase) {
            (Some(q), "queued") => Some(q),
            _ => None,
        };
        let before = self.waiting.get(&view.call);
        if before == now {
            return;
        }
        if let Some(q) = before {
            self.changed.insert(q.clone());
        }
        match now {
            Some(q) => {
                self.changed.insert(q.clone());
                if self.waiting.contains_key(&view.call) || self.waiting.len() < TRACKED_WAITING_MAX
                {
                    self.waiting.insert(view.call.clone(), q.clone());
                }
            }
            None => {
                self.waiting.remove(&view.call);
            }
        }
    }

    /// Whether some queue changed since the last [`QueueWatch::take`].
    pub fn pending(&self) -> bool {
        !self.changed.is_empty()
    }

    /// The queues that changed since the last call, sorted.
    pub fn take(&mut self) -> Vec<QueueId> {
        let mut queues: Vec<QueueId> = self.changed.drain().collect();
        queues.sort();
        queues
    }
}

/// The queues each agent with an open desktop serves (shared: the snapshot
/// writes it from HTTP workers, the hub reads it).
#[derive(Debug, Default)]
pub struct Served {
    /// Queues by agent.
    by_agent: HashMap<AgentId, Vec<QueueId>>,
}

impl Served {
    /// Records what `agent`'s latest snapshot said it serves.
    pub fn set(&mut self, agent: &AgentId, queues: Vec<QueueId>) {
        self.by_agent.insert(agent.clone(), queues);
    }

    /// Forgets `agent` (its last desktop closed).
    pub fn forget(&mut self, agent: &AgentId) {
        self.by_agent.remove(agent);
    }

    /// The agents serving any of `queues`, sorted.
    pub fn members_of(&self, queues: &[QueueId]) -> Vec<AgentId> {
        let mut agents: Vec<AgentId> = self
            .by_agent
            .iter()
            .filter(|(_, served)| served.iter().any(|q| queues.contains(q)))
            .map(|(a, _)| a.clone())
            .collect();
        agents.sort();
        agents
    }
}

/// The queue panel of `agent`'s desktop snapshot: each queue it serves
/// with its calls waiting, when the oldest began to wait (`oldest_since_ms`,
/// wall ms: the page ticks from it) and that wait now. Records the
/// membership for the pushes.
pub async fn panel(state: &AppState, agent: &AgentId, now_ms: u64) -> Result<Value, ApiError> {
    let served = state
        .registry
        .send(QueuesServed(agent.clone()))
        .await
        .map_err(|e| ApiError::unavailable(format!("contact center: {e}")))?;
    state
        .hub
        .set_served(agent, served.iter().map(|q| q.queue_id.clone()).collect());
    Ok(served
        .iter()
        .map(|q| {
            json!({
                "queue_id": q.queue_id,
                "name": q.name,
                "waiting": q.waiting,
                "oldest_since_ms": q.oldest_since_ms,
                "longest_wait_ms": q.oldest_since_ms.map_or(0, |s| now_ms.saturating_sub(s)),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<QueueId> {
        v.iter().map(|q| QueueId::new(*q)).collect()
    }

    /// Joining, leaving (offered, answered, gone) and moving between queues
    /// mark the queues concerned; a view that changes nothing in a line
    /// (a second queued view, a held call) marks none.
    #[test]
    fn joins_and_leaves_mark_their_queues() {
        let mut w = QueueWatch::default();
        w.observe(&CallView::fixture("c1", "routing", Some("sales")));
        assert!(!w.pending());
        w.observe(&CallView::fixture("c1", "queued", Some("sales")));
        w.observe(&CallView::fixture("c2", "queued", Some("support")));
        assert_eq!(w.take(), ids(&["sales", "support"]));
        w.observe(&CallView::fixture("c1", "queued", Some("sales")));
        assert!(!w.pending(), "no change in the line");
        w.observe(&CallView::fixture("c1", "offering", Some("sales")));
        assert_eq!(w.take(), ids(&["sales"]));
        w.observe(&CallView::fixture("c1", "connected", Some("sales")));
        assert!(!w.pending(), "already out of the line");
        // An overflow: out of one line, into another.
        w.observe(&CallView::fixture("c2", "queued", Some("billing")));
        assert_eq!(w.take(), ids(&["billing", "support"]));
        w.observe(&CallView::fixture("c2", "ended", Some("billing")));
        assert_eq!(w.take(), ids(&["billing"]));
        assert!(w.waiting.is_empty());
    }

    /// Only the members of a changed queue are named; a forgotten agent
    /// (desktop closed) is not.
    #[test]
    fn members_of_changed_queues() {
        let mut s = Served::default();
        s.set(&AgentId::new("ann"), ids(&["sales", "support"]));
        s.set(&AgentId::new("bob"), ids(&["sales"]));
        s.set(&AgentId::new("cat"), ids(&[]));
        assert_eq!(s.members_of(&ids(&["support"])), vec![AgentId::new("ann")]);
        assert_eq!(
            s.members_of(&ids(&["sales"])),
            vec![AgentId::new("ann"), AgentId::new("bob")]
        );
        s.forget(&AgentId::new("ann"));
        assert!(s.members_of(&ids(&["support"])).is_empty());
        s.set(&AgentId::new("bob"), ids(&["support"]));
        assert_eq!(s.members_of(&ids(&["support"])), vec![AgentId::new("bob")]);
    }
}
