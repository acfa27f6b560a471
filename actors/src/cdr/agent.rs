//! An agent's state intervals: each state the agent left, with its start
//! and end, derived from the agent actor's own state changes. Reports read
//! them for occupancy and Not Ready time by reason.

use crate::agent::{AgentState, NotReadyReason};
use crate::ids::AgentId;
use serde::{Deserialize, Serialize};

/// One state the agent was in, from `start_ms` to `end_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInterval {
    /// The agent.
    pub agent: AgentId,
    /// The state's short name (`ready`, `reserved`, `talking`, `wrap_up`,
    /// `not_ready`; logged-out time is not recorded).
    pub state: String,
    /// The Not Ready reason (a configured code, or `system:<reason>`).
    #[serde(default)]
    pub reason: Option<String>,
    /// When the state began (wall ms).
    pub start_ms: u64,
    /// When the agent left it.
    pub end_ms: u64,
}

impl AgentInterval {
    /// Its history key: the start then the agent, so a range of keys is a
    /// range of time.
    pub fn key(&self) -> Vec<u8> {
        format!(
            "{}{:020}/{}",
            super::AGENT_INTERVAL_KEY_PREFIX,
            self.start_ms,
            self.agent
        )
        .into_bytes()
    }
}

/// A Not Ready reason as reports show it.
pub fn reason_label(reason: &NotReadyReason) -> String {
    match reason {
        NotReadyReason::Code(c) => c.clone(),
        NotReadyReason::System(s) => {
            let name = serde_json::to_value(s)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("{s:?}"));
            format!("system:{name}")
        }
    }
}

/// What an interval is about: state name and reason.
type Slot = (&'static str, Option<String>);

fn slot(state: &AgentState) -> Slot {
    match state {
        AgentState::NotReady { reason } => ("not_ready", Some(reason_label(reason))),
        other => (other.name(), None),
    }
}

/// Follows one agent's state: told the state after every change, it hands
/// back the interval of the state just left.
#[derive(Clone, Debug, Default)]
pub struct ActivityTracker {
    /// The state being timed and since when; `None` before the first
    /// observation (a restored agent resumes the state it was in, see
    /// [`Self::resumed`]).
    current: Option<(Slot, u64)>,
}

impl ActivityTracker {
    /// A tracker already timing `state` since `since_ms` (a restored
    /// agent: the state it was in at the kill, from its saved start).
    pub fn resumed(state: &AgentState, since_ms: u64) -> Self {
        Self {
            current: Some((slot(state), since_ms)),
        }
    }

    /// The agent is in `state` at `now_ms`: the interval of the state it
    /// left, if it changed (a new Not Ready reason is a new interval;
    /// logged-out time and zero-length states are not recorded).
    pub fn observe(
        &mut self,
        agent: &AgentId,
        state: &AgentState,
        now_ms: u64,
    ) -> Option<AgentInterval> {
        let now_slot = slot(state);
        match self.current.take() {
            Some((was, since)) if was == now_slot => {
                self.current = Some((was, since));
                None
            }
            Some(((name, reason), since)) => {
                self.current = Some((now_slot, now_ms));
                (name != "logged_out" && now_ms > since).then(|| AgentInterval {
                    agent: agent.clone(),
                    state: name.to_owned(),
                    reason,
                    start_ms: since,
                    end_ms: now_ms,
                })
            }
            None => {
                self.current = Some((now_slot, now_ms));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::SystemReason;
    use crate::ids::{CallId, OfferToken};

    /// Goal: each state left is one interval with its start and end, a new
    /// Not Ready reason starts a new one, a repeated state does not, and
    /// logged-out time is not recorded.
    #[test]
    fn intervals_follow_the_state_changes() {
        let a = AgentId::new("a1");
        let mut t = ActivityTracker::default();
        let lunch = AgentState::NotReady {
            reason: NotReadyReason::Code("lunch".into()),
        };
        let login = AgentState::NotReady {
            reason: NotReadyReason::System(SystemReason::Login),
        };
        assert_eq!(t.observe(&a, &AgentState::LoggedOut, 0), None);
        assert_eq!(
            t.observe(&a, &login, 5),
            None,
            "logged-out time is not kept"
        );
        let i = t.observe(&a, &lunch, 10).expect("reason changed");
        assert_eq!(
            (i.state.as_str(), i.reason.as_deref(), i.start_ms, i.end_ms),
            ("not_ready", Some("system:login"), 5, 10)
        );
        assert_eq!(t.observe(&a, &lunch, 20), None, "same state, same reason");
        let i = t
            .observe(&a, &AgentState::Ready { since_ms: 70 }, 70)
            .unwrap();
        assert_eq!(
            (i.reason.as_deref(), i.start_ms, i.end_ms),
            (Some("lunch"), 10, 70)
        );
        let reserved = AgentState::Reserved {
            call: CallId::new("c"),
            token: OfferToken(1),
            purpose: crate::agent::OfferPurpose::Direct,
            lease_until_ms: 99,
        };
        let i = t.observe(&a, &reserved, 100).unwrap();
        assert_eq!((i.state.as_str(), i.start_ms, i.end_ms), ("ready", 70, 100));
        assert_eq!(
            t.observe(&a, &AgentState::Ready { since_ms: 100 }, 100),
            None,
            "a zero-length state is not an interval"
        );
        assert!(i.key().starts_with(b"~g/00000000000000000070/a1"));
    }
}
