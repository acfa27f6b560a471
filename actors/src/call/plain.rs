//! A queue's rules and an agent's contact with every option at its
//! default: what the call machine's tests, property runs and the CRM
//! contract build calls from, in one place (they each spelled the whole
//! struct out before, and every new rule meant editing all of them).

use super::{AgentContact, QueueRules};
use crate::config::FinalDestination;
use crate::ids::{AgentId, QueueId};

impl QueueRules {
    /// Rules of `queue` with no option set: priority 0, no ring-all, no
    /// announcements, no callback, no overflow, the default final
    /// destination.
    pub fn plain(queue: &str, max_wait_ms: u64, wrap_up_ms: u64) -> QueueRules {
        QueueRules {
            queue: QueueId::new(queue),
            priority: 0,
            max_wait_ms,
            wrap_up_ms,
            final_destination: FinalDestination::default(),
            ring_all: false,
            announce: Default::default(),
            callback: Default::default(),
            keep_priority_on_overflow: false,
            overflow: Default::default(),
        }
    }
}

impl AgentContact {
    /// Agent `agent` on extension `x{agent}` and the simulator's device
    /// `sim/{agent}`, answering its phone itself.
    pub fn sim(agent: &str) -> AgentContact {
        AgentContact {
            agent: AgentId::new(agent),
            extension: format!("x{agent}"),
            endpoint: format!("sim/{agent}"),
            auto_accept: false,
        }
    }
}
