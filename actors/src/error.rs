//! The facade's error type: every fault on outside input is one of these,
//! never a panic.

use crate::agent::AgentError;
use crate::call::CallError;
use crate::ids::{AgentId, CallId, QueueId};
use serde::Serialize;

/// Why a request to the contact center failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum CcError {
    /// No agent with this id in the configuration.
    #[error("unknown agent {0}")]
    UnknownAgent(AgentId),
    /// No queue with this id in the configuration.
    #[error("unknown queue {0}")]
    UnknownQueue(QueueId),
    /// The agent is not on a call (for call controls).
    #[error("agent {0} is not on a call")]
    NotOnACall(AgentId),
    /// The call named is not the agent's current call or offer (it is
    /// another agent's, or the agent moved on).
    #[error("call {call} is not yours")]
    NotYourCall {
        /// The agent asking.
        agent: AgentId,
        /// The call it named.
        call: CallId,
    },
    /// The agent's wrap-up of this call is over and its code can no longer
    /// be recorded (the ended call was let go).
    #[error("the wrap-up of call {call} is over; the code was not recorded")]
    WrapUpOver {
        /// The call.
        call: CallId,
    },
    /// No live call has this id.
    #[error("unknown call {0}")]
    UnknownCall(CallId),
    /// The agent has no offer to accept or reject.
    #[error("agent {0} has no offer")]
    NoOffer(AgentId),
    /// Transfer/consult/conference target cannot take the call now.
    #[error("agent {target} is not available ({state})")]
    TargetNotAvailable {
        /// The target.
        target: AgentId,
        /// Its state.
        state: &'static str,
    },
    /// The agent refused the request.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// The call refused the request.
    #[error(transparent)]
    Call(#[from] CallError),
    /// The PBX refused or could not carry out what the request needs (a
    /// supervisor's snoop or device leg); nothing was left behind.
    #[error("the PBX did not do it: {0}")]
    Pbx(String),
    /// An actor was gone (the call ended meanwhile) or its mailbox closed.
    #[error("actor unavailable: {0}")]
    Mailbox(String),
    /// The registry already fans events out to its most subscribers; the
    /// caller may retry once one has gone.
    #[error("too many subscribers (at most {max})")]
    TooManySubscribers {
        /// The limit.
        max: usize,
    },
    /// A wrap-up code the call's queue does not list.
    #[error("{message}")]
    WrapUpCodeNotListed {
        /// The call's queue.
        queue: QueueId,
        /// Which codes it takes, for a person.
        message: String,
    },
}
