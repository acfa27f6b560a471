//! How many members of each queue are logged in and available, counted
//! from the agents' views, for the queues' limits
//! ([`crate::queue::limits`]). The registry sees every agent view in causal
//! order, so it counts; a queue hears its counts only when they change
//! (and all of them at start and after a reload).

use crate::agent::AgentState;
use crate::env::Directory;
use crate::events::AgentView;
use crate::ids::{AgentId, QueueId};
use crate::queue::actor::QueueStaffed;
use crate::queue::limits::Staffed;
use std::collections::HashMap;

/// Per queue, the members there; per agent, what it counted as.
#[derive(Debug, Default)]
pub(super) struct Staffing {
    /// Each queue's counts.
    queues: HashMap<QueueId, Staffed>,
    /// Each agent's last (logged in, available), so a view that changes
    /// neither costs nothing.
    agents: HashMap<AgentId, (bool, bool)>,
}

/// What `state` counts as: (logged in, available).
fn presence(state: &AgentState) -> (bool, bool) {
    match state {
        AgentState::LoggedOut => (false, false),
        AgentState::NotReady { .. } => (true, false),
        _ => (true, true),
    }
}

impl Staffing {
    /// Counts every agent in `views` against the membership in `directory`
    /// and tells every queue its counts (start, reload).
    pub(super) fn recount<'a>(
        &mut self,
        views: impl IntoIterator<Item = &'a AgentView>,
        directory: &Directory,
    ) {
        *self = Staffing::default();
        for q in directory.queues.keys() {
            self.queues.insert(q.clone(), Staffed::default());
        }
        for view in views {
            self.observe(view, directory, false);
        }
        for (id, q) in &directory.queues {
            let staffed = self.queues.get(id).copied().unwrap_or_default();
            q.addr.do_send(QueueStaffed(staffed));
        }
    }

    /// Takes an agent's new view; with `tell`, sends each of its queues
    /// whose counts changed the new counts.
    pub(super) fn observe(&mut self, view: &AgentView, directory: &Directory, tell: bool) {
        let now = presence(&view.state);
        let before = self
            .agents
            .insert(view.agent.clone(), now)
            .unwrap_or((false, false));
        if before == now {
            return;
        }
        let Some(handle) = directory.agents.get(&view.agent) else {
            return;
        };
        let step = |was: bool, is: bool, n: &mut u32| match (was, is) {
            (false, true) => *n += 1,
            (true, false) => *n = n.saturating_sub(1),
            _ => {}
        };
        for q in &handle.queues {
            let staffed = self.queues.entry(q.clone()).or_default();
            step(before.0, now.0, &mut staffed.logged_in);
            step(before.1, now.1, &mut staffed.available);
            if tell {
                if let Some(qh) = directory.queues.get(q) {
                    qh.addr.do_send(QueueStaffed(*staffed));
                }
            }
        }
    }
}
