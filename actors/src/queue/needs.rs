//! What a waiting call brings to its queue beyond its id: its own required
//! skills (from its attached data) and when it joined the queue (aging and
//! escalation count from there). Built by the call, carried by
//! [`super::actor::EnqueueCall`], rebuilt after a restart from the
//! persisted call.

use crate::config::SkillRequirement;

/// A call's routing needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallNeeds {
    /// The call's own required skills (the queue adds its own).
    pub skills: Vec<SkillRequirement>,
    /// When the call joined this queue (wall ms): a redirect after a missed
    /// offer keeps it, so the wait already served still counts.
    pub since_ms: u64,
}
