//! A call leaving its queue unanswered under the queue's overflow rules
//! (`[queues.routing.overflow]`): the first rule within its hours and
//! under its cap takes it (another queue, keeping its place time; or a
//! spare number through the PBX, ending the call as `overflowed`). When
//! none does, a call that waited out its max wait stays in line for the
//! rules' `stay_ms`, trying them again every
//! [`crate::queue::overflow_rules::RETRY_MS`] (agents may still take it),
//! then goes to the queue's final destination; a call the queue's limits
//! turned away goes there at once.

use super::{Call, CallEffect, CallPhase, CallTimer, Fx, QUEUE_HOPS_MAX};
use crate::config::FinalDestination;
use crate::crm::{CallbackReason, UpdateEvent};
use crate::queue::overflow_rules::{OverflowBook, OverflowTarget, RETRY_MS};
use tracing::info;

impl Call {
    /// Whether the call's queue has overflow rules.
    pub(super) fn has_overflow_rules(&self) -> bool {
        self.rules
            .as_ref()
            .is_some_and(|r| !r.overflow.rules.is_empty())
    }

    /// The call leaves its queue for `reason` (see the module doc); `book`
    /// holds what each overflow target has taken so far.
    pub fn overflow(&mut self, reason: CallbackReason, book: &mut OverflowBook, now_ms: u64) -> Fx {
        let mut fx = Vec::new();
        let Some(rules) = self.rules.clone() else {
            return fx;
        };
        if self.is_ended() {
            return fx;
        }
        let cfg = &rules.overflow;
        // A caller who left the line (a kept place) cannot be sent to a
        // number; a call that hopped queues too often goes to no queue.
        let away = self.callback.is_some();
        let hops_left = self.queue_hops < QUEUE_HOPS_MAX;
        let picked = book.pick(cfg, now_ms, |t| match t {
            OverflowTarget::Queue(_) => hops_left,
            OverflowTarget::Number(_) => !away,
        });
        if let Some((i, target)) = picked {
            self.leave_line(&rules.queue, &mut fx);
            book.take(&self.id, &cfg.rules[i], &target, now_ms);
            info!(call_id = %self.id, queue_id = %rules.queue, rule = i, target = ?target, reason = ?reason, "Overflow rule takes the call.");
            match target {
                OverflowTarget::Queue(to_queue) => {
                    self.queue_hops += 1;
                    self.overflow_slot = Some(to_queue.clone());
                    self.push_update(
                        &mut fx,
                        UpdateEvent::Overflow {
                            to_queue: to_queue.clone(),
                        },
                        now_ms,
                    );
                    fx.push(CallEffect::MoveToQueue(to_queue));
                }
                OverflowTarget::Number(number) => {
                    self.work_item_and_end(
                        &mut fx,
                        reason,
                        now_ms,
                        FinalDestination::External { number },
                    );
                }
            }
            return fx;
        }
        if reason == CallbackReason::QueueTimeout && cfg.stay_ms > 0 {
            let until = *self
                .overflow_stay_until_ms
                .get_or_insert(now_ms.saturating_add(cfg.stay_ms));
            if now_ms < until {
                self.stay_in_line(&rules.queue, until, now_ms, &mut fx);
                return fx;
            }
        }
        info!(call_id = %self.id, queue_id = %rules.queue, reason = ?reason, "No overflow rule takes the call; final destination.");
        self.leave_line(&rules.queue, &mut fx);
        self.final_destination(&mut fx, reason, now_ms);
        fx
    }

    /// Out of the queue's line (a no-op at the queue if it already is).
    fn leave_line(&self, queue: &crate::ids::QueueId, fx: &mut Fx) {
        if matches!(self.phase, CallPhase::Queued { .. }) {
            fx.push(CallEffect::Dequeue(queue.clone()));
        }
    }

    /// No rule takes the call now: it keeps (or, back from a ringing
    /// offer, takes again) its place, and the max-wait timer of its stint
    /// comes back at the next retry, at the latest when the stay ends.
    fn stay_in_line(
        &mut self,
        queue: &crate::ids::QueueId,
        until_ms: u64,
        now_ms: u64,
        fx: &mut Fx,
    ) {
        if !matches!(self.phase, CallPhase::Queued { .. }) {
            self.back_in_line(queue.clone(), fx, now_ms);
        }
        let at = now_ms.saturating_add(RETRY_MS).min(until_ms);
        self.max_wait_elapsed = false;
        self.max_wait_deadline_ms = Some(at);
        fx.push(CallEffect::Timer(CallTimer::MaxWait(self.stint), at));
        info!(call_id = %self.id, queue_id = %queue, retry_ms = at - now_ms, stay_until_ms = until_ms, "No overflow rule takes the call now; it stays in line.");
    }
}
