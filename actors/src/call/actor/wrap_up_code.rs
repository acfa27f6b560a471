//! The call actor's side of a wrap-up code: the code must be one of the
//! call's queue's codes when the queue lists them (the configuration now,
//! so a reload applies to the next code), the call records it, and the
//! agent hears that its required code is no longer owed.

use super::CallActor;
use crate::agent::actor::WrapUpCodeRecorded;
use crate::error::CcError;
use crate::ids::AgentId;
use actix::prelude::*;

impl CallActor {
    /// Records `code` from `agent`, or refuses a code the call's queue
    /// does not list ([`CcError::WrapUpCodeNotListed`]).
    pub(super) fn wrap_up_code(
        &mut self,
        agent: AgentId,
        code: String,
        ctx: &mut Context<Self>,
    ) -> Result<(), CcError> {
        let queue = self.call.rules.as_ref().map(|r| r.queue.clone());
        if let Some(queue) = &queue {
            if let Some(codes) = self.env.config.wrap_up_codes_of(queue) {
                codes
                    .check(&code)
                    .map_err(|refused| CcError::WrapUpCodeNotListed {
                        queue: queue.clone(),
                        message: refused.to_string(),
                    })?;
            }
        }
        let now = self.env.now_ms();
        let fx = self.call.wrap_up_code(&agent, &code, now)?;
        self.apply(fx, ctx);
        if let Some(h) = self.env.directory.agents.get(&agent) {
            h.addr.do_send(WrapUpCodeRecorded {
                call: self.call.id.clone(),
            });
        }
        Ok(())
    }
}
