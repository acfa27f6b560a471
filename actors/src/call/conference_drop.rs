//! Dropping one agent from a conference: any agent on the conference may
//! drop another (as on Finesse and the CCP); the dropped agent's leg is
//! hung up and it leaves as if it had hung up itself (with the wrap-up it
//! owes, if any; `participant_left` written, the others told). To leave,
//! an agent hangs up; the caller is not dropped this way (hang up ends the
//! call).

use super::{AgentId, Call, CallError, Fx};

impl Call {
    /// `by` drops `target` from the conference.
    pub fn drop_party(
        &mut self,
        by: &AgentId,
        target: &AgentId,
        now_ms: u64,
    ) -> Result<Fx, CallError> {
        let call = self.id.clone();
        let s = self.session(by, "drop a party")?;
        if by == target {
            return Err(CallError::DropSelf(call));
        }
        if !s.parties.iter().any(|p| &p.agent == target) {
            return Err(CallError::NotInConference {
                agent: target.clone(),
                call,
            });
        }
        self.party_leaves(target, true, now_ms)
    }
}
