//! The wrap-up an outbound call owes its agent: none while the customer is
//! being dialed (a dial that never reached anyone ends at once), the
//! configured `timers.outbound_wrap_up_ms` once the customer answered
//! (the agent's own `wrap_up_ms` overrides it, as for queue calls).

use super::{Call, CallPhase};

impl Call {
    /// Sets the wrap-up the dialing agent gets if the customer answers;
    /// 0 means none. Only an outbound call still dialing takes it.
    pub fn owe_outbound_wrap_up(&mut self, wrap_up_ms: u64) {
        if let CallPhase::Dialing { party } = &mut self.phase {
            party.wrap_up_ms = (wrap_up_ms > 0).then_some(wrap_up_ms);
        }
    }
}
