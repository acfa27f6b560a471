//! Queueing: joining a queue (music on hold, max-wait timer), the max wait
//! elapsing, and the final destination of a call that waited too long
//! (another queue, an external number, an announcement) with its records: a
//! callback work item unless an external number took the caller. Also what
//! the call brings to its queue ([`Call::needs`]) and its priority on an
//! overflow ([`Call::overflow_to`]).

use super::{Call, CallEffect, CallError, CallPhase, CallTimer, Fx, QueueRules, TerminalReason};
use super::{PROMPT_UNAVAILABLE, QUEUE_HOPS_MAX};
use crate::agent::OfferPurpose;
use crate::config::FinalDestination;
use crate::crm::{CallbackReason, UpdateEvent};
use crate::ids::QueueId;
use crate::ports::PbxCommand;
use crate::queue::needs::CallNeeds;
use crate::queue::skills::{parse_call_skills, CALL_SKILLS_KEY};
use crate::shared::Shared;

impl Call {
    /// Join a queue: music on hold, max-wait timer, enqueue. A call moved
    /// by an overflow keeps the place time it had in the line it leaves.
    pub fn enqueue(
        &mut self,
        rules: impl Into<Shared<QueueRules>>,
        now_ms: u64,
    ) -> Result<Fx, CallError> {
        let rules = rules.into();
        let since_ms = match &self.phase {
            CallPhase::Queued { since_ms, .. } => *since_ms,
            _ => now_ms,
        };
        match &self.phase {
            // Routing: a new call; Queued: moved by an overflow; Offering: a
            // failed blind transfer goes back; Connected: a transfer to a
            // queue (the glue left the session first).
            CallPhase::Routing
            | CallPhase::Queued { .. }
            | CallPhase::Connected(_)
            | CallPhase::Offering { .. } => {}
            CallPhase::Dialing { .. } | CallPhase::Ended(_) => {
                return Err(self.wrong("join a queue"))
            }
        }
        let mut fx = Vec::new();
        self.moh_on(&mut fx);
        self.stint += 1;
        self.stint_since_ms = Some(now_ms);
        self.max_wait_elapsed = false;
        self.overflow_stay_until_ms = None;
        if self.priority == 0 {
            self.priority = rules.priority;
        }
        let max_wait_at = now_ms + rules.max_wait_ms;
        self.max_wait_deadline_ms = Some(max_wait_at);
        fx.push(CallEffect::Timer(
            CallTimer::MaxWait(self.stint),
            max_wait_at,
        ));
        self.queued_since_ms = Some(since_ms);
        fx.push(CallEffect::Enqueue {
            queue: rules.queue.clone(),
            priority: self.priority,
            since_ms,
            tried: self.tried.clone(),
            needs: self.needs(now_ms),
        });
        self.phase = CallPhase::Queued {
            queue: rules.queue.clone(),
            since_ms,
        };
        self.rules = Some(rules);
        self.arm_announcements(now_ms, &mut fx);
        Ok(fx)
    }

    /// Puts the call back in `queue` at its place in line (its first
    /// arrival, not behind later arrivals): after a missed offer, a caller
    /// who left a callback while ringing, or an overflow rule that keeps it
    /// waiting.
    pub(super) fn back_in_line(&mut self, queue: QueueId, fx: &mut Fx, now_ms: u64) {
        let since_ms = *self.queued_since_ms.get_or_insert(now_ms);
        self.phase = CallPhase::Queued {
            queue: queue.clone(),
            since_ms,
        };
        fx.push(CallEffect::Enqueue {
            queue,
            priority: self.priority,
            since_ms,
            tried: self.tried.clone(),
            needs: self.needs(now_ms),
        });
    }

    /// What the call brings to its queue: its own required skills (the
    /// attached variable [`CALL_SKILLS_KEY`]) and when its stint began
    /// (`now_ms` if it has not begun yet).
    pub fn needs(&self, now_ms: u64) -> CallNeeds {
        let skills = self
            .attached
            .iter()
            .find(|v| v.key == CALL_SKILLS_KEY)
            .map(|v| parse_call_skills(&v.value).required)
            .unwrap_or_default();
        let since_ms = match (&self.stint_since_ms, &self.phase) {
            (Some(at), _) => *at,
            (None, CallPhase::Queued { since_ms, .. }) => *since_ms,
            (None, _) => now_ms,
        };
        CallNeeds { skills, since_ms }
    }

    /// Moved to another queue by an overflow: the priority starts over
    /// from the call's own (the target queue's default applies if that is
    /// 0), unless the target keeps the current one.
    pub fn overflow_to(
        &mut self,
        rules: impl Into<Shared<QueueRules>>,
        now_ms: u64,
    ) -> Result<Fx, CallError> {
        let rules = rules.into();
        if !rules.keep_priority_on_overflow {
            self.priority = self.own_priority;
        }
        self.enqueue(rules, now_ms)
    }

    /// No route for this call: announce and hang up (logged as a failure).
    pub fn unroutable(&mut self, prompt: &str, now_ms: u64) -> Fx {
        let mut fx = Vec::from(self.announce_and_hang_up(prompt.to_owned()));
        self.end(
            TerminalReason::Failed {
                error: format!("no route for DNIS {}", self.dnis),
            },
            &mut fx,
            now_ms,
        );
        fx
    }

    /// The max-wait timer of `stint` fired.
    pub fn max_wait_elapsed(&mut self, stint: u32, now_ms: u64) -> Fx {
        if stint != self.stint {
            return Vec::new();
        }
        match &self.phase {
            CallPhase::Queued { queue, .. } => {
                let mut fx = Vec::new();
                // With overflow rules the call may stay in line: it leaves
                // it only once they decided ([`Call::overflow`]).
                if !self.has_overflow_rules() {
                    fx.push(CallEffect::Dequeue(queue.clone()));
                }
                self.time_out(&mut fx, now_ms);
                fx
            }
            CallPhase::Offering { offers, .. }
                if offers
                    .iter()
                    .all(|o| matches!(o.purpose, OfferPurpose::Queue(_))) =>
            {
                // Let the ringing offer finish; time out if it fails.
                self.max_wait_elapsed = true;
                Vec::new()
            }
            CallPhase::Routing
            | CallPhase::Offering { .. }
            | CallPhase::Dialing { .. }
            | CallPhase::Connected(_)
            | CallPhase::Ended(_) => Vec::new(),
        }
    }

    /// Queue timeout: interaction + callback work item, then the final
    /// destination. A move to another queue is not a timeout (no records).
    pub(super) fn time_out(&mut self, fx: &mut Fx, now_ms: u64) {
        self.leave_for_final_destination(fx, CallbackReason::QueueTimeout, now_ms);
    }

    /// The call leaves its queue unanswered, with `reason` on its records:
    /// the max wait, or the queue's limits turned it away. A queue with
    /// overflow rules lets them decide first (the glue carries
    /// [`CallEffect::Overflow`] to [`Call::overflow`] with the overflow
    /// book); otherwise the final destination.
    pub(super) fn leave_for_final_destination(
        &mut self,
        fx: &mut Fx,
        reason: CallbackReason,
        now_ms: u64,
    ) {
        if self.has_overflow_rules() {
            fx.push(CallEffect::Overflow(reason));
            return;
        }
        self.final_destination(fx, reason, now_ms);
    }

    /// The queue's final destination for a call nobody took, with `reason`
    /// on its records.
    pub(super) fn final_destination(&mut self, fx: &mut Fx, reason: CallbackReason, now_ms: u64) {
        let dest = self
            .rules
            .as_ref()
            .map(|r| r.final_destination.clone())
            .unwrap_or_default();
        if let FinalDestination::Queue { queue } = &dest {
            if self.queue_hops < QUEUE_HOPS_MAX {
                self.queue_hops += 1;
                let to_queue = QueueId::new(queue.clone());
                self.push_update(
                    fx,
                    UpdateEvent::Overflow {
                        to_queue: to_queue.clone(),
                    },
                    now_ms,
                );
                fx.push(CallEffect::MoveToQueue(to_queue));
                return;
            }
        }
        self.work_item_and_end(fx, reason, now_ms, dest);
    }

    /// A call nobody took: its interaction (if none yet), then the final
    /// destination ends it. Sent to an external number, the caller is in
    /// the hands of a destination that may answer: the `ended` update
    /// records where it went (terminal reason `overflowed` with the number)
    /// and no callback work item is written, which would be duplicate work
    /// for the back office. Otherwise nobody will call back unless told: a
    /// callback work item.
    pub(super) fn work_item_and_end(
        &mut self,
        fx: &mut Fx,
        reason: CallbackReason,
        now_ms: u64,
        dest: FinalDestination,
    ) {
        if self.callback_unused(fx, reason, now_ms) {
            return;
        }
        let mut records = Vec::new();
        records.extend(self.interaction_create(reason.into(), None, now_ms));
        let (prompt, terminal) = match dest {
            FinalDestination::External { number } => {
                fx.push(CallEffect::Records(records));
                fx.push(CallEffect::Pbx(PbxCommand::RedirectExternal {
                    leg_id: self.caller_leg.clone(),
                    number: number.clone(),
                }));
                return self.end(TerminalReason::Overflowed { number }, fx, now_ms);
            }
            FinalDestination::Announcement { prompt } => (prompt, TerminalReason::TimedOut),
            FinalDestination::Queue { .. } => (PROMPT_UNAVAILABLE.into(), TerminalReason::TimedOut),
        };
        records.push(self.work_item(reason, now_ms));
        fx.push(CallEffect::Records(records));
        fx.extend(self.announce_and_hang_up(prompt));
        self.end(terminal, fx, now_ms);
    }
}
