//! Each agent's recent calls with the caller's number, kept in one place
//! from the views the actors publish: the calls an agent was offered or
//! took part in (a call view's offers and parties) and the call its own
//! state names (an agent view), newest last, at most
//! [`RECENT_CALLS_PER_AGENT`] per agent.
//!
//! The registry owns the one [`RecentCalls`] and feeds it every view it
//! receives; the HTTP layer asks it ([`crate::registry::RecentCallOf`])
//! whether a call was the agent's ("open interaction", "my customer" after
//! the call) and for the caller's number of a call in wrap-up.

use crate::events::{AgentView, CallView};
use crate::ids::{AgentId, CallId};
use std::collections::{HashMap, VecDeque};

/// Recent calls remembered per agent (for "open interaction" after the
/// call and "my customer").
pub const RECENT_CALLS_PER_AGENT: usize = 20;

/// A call an agent had, with its caller's number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecentCall {
    /// The call (= the local interaction id).
    pub call: CallId,
    /// Its caller number; empty until a view of the call named it.
    pub ani: String,
}

/// Every agent's recent calls.
#[derive(Debug, Default)]
pub struct RecentCalls {
    /// Recent calls per agent, newest last.
    by_agent: HashMap<AgentId, VecDeque<RecentCall>>,
}

impl RecentCalls {
    /// Remembers the call of `view` for every agent it offers or has on it.
    pub fn observe_call(&mut self, view: &CallView) {
        let offered = view.offers.iter().map(|(a, _)| a);
        for agent in offered.chain(view.parties.iter()) {
            self.remember(agent, &view.call, Some(&view.ani));
        }
    }

    /// Remembers the call the agent's state names; `ani` is its caller's
    /// number when a view of the call already said it.
    pub fn observe_agent(&mut self, view: &AgentView, ani: Option<&str>) {
        if let Some(call) = view.state.call() {
            self.remember(&view.agent, call, ani);
        }
    }

    /// `call` among `agent`'s recent calls (or its current one).
    pub fn get(&self, agent: &AgentId, call: &CallId) -> Option<RecentCall> {
        self.by_agent
            .get(agent)
            .and_then(|r| r.iter().find(|c| &c.call == call).cloned())
    }

    /// Adds `call` to `agent`'s recent calls, or updates its caller number.
    fn remember(&mut self, agent: &AgentId, call: &CallId, ani: Option<&str>) {
        let recent = self.by_agent.entry(agent.clone()).or_default();
        match recent.iter_mut().find(|c| &c.call == call) {
            Some(c) => {
                if let Some(ani) = ani {
                    c.ani = ani.to_owned();
                }
            }
            None => {
                if recent.len() >= RECENT_CALLS_PER_AGENT {
                    recent.pop_front();
                }
                recent.push_back(RecentCall {
                    call: call.clone(),
                    ani: ani.unwrap_or_default().to_owned(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{AgentState, AgentStats, Presence};
    use crate::ids::OfferToken;

    fn call(id: &str, ani: &str, offers: &[&str], parties: &[&str]) -> CallView {
        CallView {
            ani: ani.into(),
            offers: offers
                .iter()
                .map(|a| (AgentId::new(*a), OfferToken(1)))
                .collect(),
            parties: parties.iter().map(|a| AgentId::new(*a)).collect(),
            ..CallView::fixture(id, "offering", None)
        }
    }

    fn agent_in_wrap_up(agent: &str, call: &str) -> AgentView {
        AgentView {
            agent: AgentId::new(agent),
            state: AgentState::WrapUp {
                call: CallId::new(call),
                until_ms: 0,
                coding: Default::default(),
            },
            pending: None,
            stats: AgentStats::default(),
            state_since_ms: 0,
            presence: Presence::Connected { since_ms: 0 },
            logged_out_ms: None,
        }
    }

    /// Offered and connected agents get the call with its caller number;
    /// another agent does not; an agent view seen before any call view
    /// names the call with no number until a call view brings it.
    #[test]
    fn calls_are_remembered_with_their_caller_number() {
        let mut r = RecentCalls::default();
        let (a, b, c) = (AgentId::new("a"), AgentId::new("b"), AgentId::new("c"));
        let c1 = CallId::new("c1");
        r.observe_call(&call("c1", "+15550100", &["a"], &[]));
        r.observe_call(&call("c1", "+15550100", &[], &["b"]));
        assert_eq!(r.get(&a, &c1).map(|x| x.ani), Some("+15550100".into()));
        assert_eq!(r.get(&b, &c1).map(|x| x.ani), Some("+15550100".into()));
        assert_eq!(r.get(&c, &c1), None);

        let c2 = CallId::new("c2");
        r.observe_agent(&agent_in_wrap_up("c", "c2"), None);
        assert_eq!(r.get(&c, &c2).map(|x| x.ani), Some(String::new()));
        r.observe_call(&call("c2", "+15550111", &[], &["c"]));
        assert_eq!(r.get(&c, &c2).map(|x| x.ani), Some("+15550111".into()));
        r.observe_agent(&agent_in_wrap_up("c", "c2"), None);
        assert_eq!(
            r.get(&c, &c2).map(|x| x.ani),
            Some("+15550111".into()),
            "a later agent view keeps the number"
        );
    }

    /// Only the newest [`RECENT_CALLS_PER_AGENT`] calls stay.
    #[test]
    fn the_oldest_call_goes_beyond_the_bound() {
        let mut r = RecentCalls::default();
        let a = AgentId::new("a");
        for i in 0..=RECENT_CALLS_PER_AGENT {
            r.observe_call(&call(&format!("c{i}"), "+1", &["a"], &[]));
        }
        assert_eq!(r.get(&a, &CallId::new("c0")), None);
        assert!(r.get(&a, &CallId::new("c1")).is_some());
        let last = format!("c{RECENT_CALLS_PER_AGENT}");
        assert!(r.get(&a, &CallId::new(last)).is_some());
    }
}
