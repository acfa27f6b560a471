//! A reload changed the rules of the queue a call belongs to: the call takes
//! the new rules (wrap-up, final destination, max wait) and keeps its own
//! priority, its place in line and its age.

use super::{Call, CallEffect, CallPhase, CallTimer, Fx, QueueRules};

impl Call {
    /// Takes `rules`, the reloaded rules of the call's queue (ignored for
    /// another queue, or when nothing changed). A changed max wait moves the
    /// current stint's deadline by the difference, so the wait counted so
    /// far still counts: the timer is re-armed under a new stint, which
    /// fences the old one. A deadline already behind `now` fires at once.
    pub fn reconfigure(&mut self, rules: QueueRules) -> Fx {
        let Some(old) = self.rules.as_ref() else {
            return Vec::new();
        };
        if old.queue != rules.queue || *old == rules {
            return Vec::new();
        }
        let mut fx = Vec::new();
        let waiting = matches!(
            self.phase,
            CallPhase::Queued { .. } | CallPhase::Offering { .. }
        );
        if let (true, false, Some(at)) = (waiting, self.max_wait_elapsed, self.max_wait_deadline_ms)
        {
            if old.max_wait_ms != rules.max_wait_ms {
                let new_at = at
                    .saturating_sub(old.max_wait_ms)
                    .saturating_add(rules.max_wait_ms);
                self.stint += 1;
                self.max_wait_deadline_ms = Some(new_at);
                fx.push(CallEffect::Timer(CallTimer::MaxWait(self.stint), new_at));
            }
        }
        self.rules = Some(rules);
        fx
    }
}
