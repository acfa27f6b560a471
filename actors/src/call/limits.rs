//! A queue's limits turned the call away (full, or no member there, see
//! [`crate::config::QueueLimits`]): it goes where a timed-out call goes,
//! with the reason on its records.

use super::{Call, CallEffect, CallPhase, Fx};
use crate::crm::CallbackReason;
use crate::ids::QueueId;

impl Call {
    /// `queue` turned the call away for `reason` (it already took it out of
    /// its line). Only a call still waiting there moves on; one offered or
    /// gone meanwhile ignores it.
    pub fn turned_away(&mut self, queue: &QueueId, reason: CallbackReason, now_ms: u64) -> Fx {
        match &self.phase {
            CallPhase::Queued { queue: q, .. } if q == queue => {
                // Fences the max-wait timer of the stint that ends here.
                self.stint += 1;
                self.max_wait_deadline_ms = None;
                let mut fx = vec![CallEffect::Dequeue(queue.clone())];
                self.leave_for_final_destination(&mut fx, reason, now_ms);
                fx
            }
            _ => Vec::new(),
        }
    }
}
