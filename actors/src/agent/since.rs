//! When an agent's current state began, kept in the agent's durable record
//! so a restart does not restart the clock: a Not Ready, a wrap-up and an
//! offer record no start of their own (Ready and Talking do), so without
//! it every desktop's and wallboard's time in state, and the state's
//! history interval, would begin again at the restart. The agent actor
//! sets it when the time in state restarts; the restored actor reads it
//! back only for the very state it was taken for (same name, call and Not
//! Ready reason), since a restore repair may have changed the state.

use super::{AgentState, NotReadyReason};
use crate::ids::CallId;
use serde::{Deserialize, Serialize};

/// The state the time in state is measured against, and its start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateSince {
    /// The state's short name ([`AgentState::name`]).
    pub state: String,
    /// Its call, if it has one: a new call is a new state.
    #[serde(default)]
    pub call: Option<CallId>,
    /// Its Not Ready reason, if any: a new reason is a new state.
    #[serde(default)]
    pub reason: Option<NotReadyReason>,
    /// When it began (wall ms).
    pub since_ms: u64,
}

impl StateSince {
    /// `state`, begun at `since_ms`.
    pub fn of(state: &AgentState, since_ms: u64) -> Self {
        let (name, call, reason) = state.time_key();
        Self {
            state: name.to_owned(),
            call: call.cloned(),
            reason: reason.cloned(),
            since_ms,
        }
    }

    /// When `state` began, if this is the record of that very state.
    pub fn start_of(&self, state: &AgentState) -> Option<u64> {
        let (name, call, reason) = state.time_key();
        (self.state == name && self.call.as_ref() == call && self.reason.as_ref() == reason)
            .then_some(self.since_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::SystemReason;

    /// Goal: a start is read back only for the state it was taken for.
    /// Method: a Not Ready (break) start read for the same Not Ready, for
    /// another reason, and for a wrap-up.
    #[test]
    fn a_start_belongs_to_its_own_state() {
        let brk = AgentState::NotReady {
            reason: NotReadyReason::Code("break".into()),
        };
        let since = StateSince::of(&brk, 42);
        assert_eq!(since.start_of(&brk), Some(42));
        let restart = AgentState::NotReady {
            reason: NotReadyReason::System(SystemReason::Restart),
        };
        assert_eq!(since.start_of(&restart), None);
        let wrap = AgentState::WrapUp {
            call: CallId::new("c1"),
            until_ms: 100,
            coding: Default::default(),
        };
        assert_eq!(since.start_of(&wrap), None);
        assert_eq!(StateSince::of(&wrap, 7).start_of(&wrap), Some(7));
    }
}
