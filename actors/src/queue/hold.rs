//! Waiting calls held for their preferred agent (the caller's own manager,
//! "sticky agent"): until its hold ends, a held call is offered to that
//! agent alone, as soon as the agent is Ready in this queue's index, ahead
//! of the line (the agent is the caller's, not the line's). Other agents
//! take the later calls meanwhile.
//!
//! The queue does not read the clock: the glue decides a hold and its end
//! (see [`crate::sticky`]), arms a timer, and calls [`Queue::end_hold`]
//! when it fires. A hold also ends when the call leaves the line (granted,
//! abandoned, timed out); a call whose offer to its preferred agent failed
//! rejoins without a hold.

use super::{Ask, Queue};
use crate::ids::{AgentId, CallId};
use std::collections::BTreeMap;

/// One hold: whom the call waits for, and until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    /// The preferred agent: the only one the call is offered to meanwhile.
    pub agent: AgentId,
    /// When the hold ends (wall ms), for the glue's timer; the queue itself
    /// only compares it to tell a stale timer from the current hold.
    pub until_ms: u64,
}

/// The holds of one queue's waiting calls.
#[derive(Debug, Default)]
pub struct Holds {
    /// Holds by call (ordered, so dispatch is deterministic).
    by_call: BTreeMap<CallId, Hold>,
}

impl Holds {
    /// Whether `call` is held.
    pub fn has(&self, call: &CallId) -> bool {
        !self.by_call.is_empty() && self.by_call.contains_key(call)
    }

    /// Forgets `call`'s hold (it left the line).
    pub fn end(&mut self, call: &CallId) {
        self.by_call.remove(call);
    }
}

impl Queue {
    /// Holds the waiting `call` for `agent` until `until_ms`. False (and no
    /// hold) when the call does not wait here.
    pub fn hold_for(&mut self, call: &CallId, agent: AgentId, until_ms: u64) -> bool {
        if !self.positions.contains_key(call) {
            return false;
        }
        self.holds
            .by_call
            .insert(call.clone(), Hold { agent, until_ms });
        true
    }

    /// The hold of `call` that ends at `until_ms` is over: any agent may
    /// take the call now. False when that hold is already gone.
    pub fn end_hold(&mut self, call: &CallId, until_ms: u64) -> bool {
        match self.holds.by_call.get(call) {
            Some(h) if h.until_ms == until_ms => {
                self.holds.by_call.remove(call);
                true
            }
            _ => false,
        }
    }

    /// Every hold, by call (the glue arms their timers after a restore).
    pub fn holds(&self) -> Vec<(CallId, Hold)> {
        self.holds
            .by_call
            .iter()
            .map(|(c, h)| (c.clone(), h.clone()))
            .collect()
    }

    /// Asks each held call's agent for it when that agent is in the ready
    /// index, in line order.
    pub(super) fn dispatch_holds(&mut self, asks: &mut Vec<Ask>) {
        if self.holds.by_call.is_empty() {
            return;
        }
        let mut due: Vec<_> = self
            .holds
            .by_call
            .iter()
            .filter_map(|(call, h)| {
                let key = self.positions.get(call)?;
                let asking = self.waiting.get(key)?.asking;
                let entry = (*self.ready.get(&h.agent)?, h.agent.clone());
                (asking == 0).then(|| (*key, call.clone(), entry, h.until_ms))
            })
            .collect();
        due.sort();
        for (key, call, entry, until_ms) in due {
            // Two calls held for one agent: the first in line gets it.
            if self.order.contains(&entry) {
                if let Some(w) = self.waiting.get(&key) {
                    let e = self.explain_hold(w, &entry, until_ms);
                    self.explained.insert(call.clone(), e);
                }
                self.ask(entry, &call, false, asks);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Strategy;
    use crate::ids::QueueId;
    use crate::queue::{AnswerAction, ReadyInfo};

    fn info(since: u64) -> ReadyInfo {
        ReadyInfo {
            since_ms: since,
            calls_handled: 0,
            talk_ms_total: 0,
            score_rank: 0,
        }
    }

    fn a(s: &str) -> AgentId {
        AgentId::new(s)
    }

    fn c(s: &str) -> CallId {
        CallId::new(s)
    }

    /// Goal: a held call waits for its agent alone, gets it ahead of the
    /// line, and is open to anyone once the hold ends. Method: `first`
    /// (plain) and `mine` (held for m) wait; x is Ready; then m is Ready;
    /// then a second held call's hold ends with only x Ready.
    #[test]
    fn a_held_call_waits_for_its_agent_then_anyone() {
        let mut q = Queue::new(QueueId::new("q"), Strategy::LongestIdle, 1);
        q.enqueue(c("first"), 0, 10, vec![], Default::default());
        q.enqueue(c("mine"), 0, 20, vec![], Default::default());
        assert!(q.hold_for(&c("mine"), a("m"), 5_000));
        assert!(!q.hold_for(&c("absent"), a("m"), 5_000));
        q.agent_available(a("x"), &info(0));
        let asks = q.dispatch();
        assert_eq!(asks.len(), 1, "x takes the first call, not the held one");
        assert_eq!(asks[0].call, c("first"));
        // m is idle longer than y, but the held call is m's.
        q.enqueue(c("later"), 0, 30, vec![], Default::default());
        q.agent_available(a("m"), &info(1));
        q.agent_available(a("y"), &info(2));
        let asks = q.dispatch();
        assert_eq!(
            asks[0],
            Ask {
                call: c("mine"),
                agent: a("m"),
                ring_all: false
            }
        );
        assert_eq!(
            asks[1],
            Ask {
                call: c("later"),
                agent: a("y"),
                ring_all: false
            }
        );
        assert_eq!(
            q.reservation_answered(&a("m"), &c("mine"), true),
            AnswerAction::Offer
        );
        assert!(q.holds().is_empty(), "a granted call's hold ends");

        q.enqueue(c("held"), 0, 40, vec![], Default::default());
        q.hold_for(&c("held"), a("m"), 9_000);
        q.reservation_answered(&a("x"), &c("first"), true);
        q.agent_available(a("x"), &info(3));
        assert!(
            q.dispatch().is_empty(),
            "only x is Ready: the call waits for m"
        );
        assert!(!q.end_hold(&c("held"), 1), "a stale timer changes nothing");
        assert!(q.end_hold(&c("held"), 9_000));
        assert_eq!(
            q.dispatch(),
            vec![Ask {
                call: c("held"),
                agent: a("x"),
                ring_all: false
            }]
        );
    }
}
