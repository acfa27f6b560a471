//! A reload changed the rules of the queue a call belongs to: the call takes
//! the new rules (wrap-up, final destination, max wait, announcements,
//! callbacks, overflow) and keeps its own priority, its place in line and
//! its age.

use super::{Call, CallEffect, CallPhase, CallTimer, Fx, QueueRules};
use crate::shared::Shared;

impl Call {
    /// Takes `rules`, the reloaded rules of the call's queue (ignored for
    /// another queue, or when nothing changed). A changed max wait moves the
    /// current stint's deadline by the difference, so the wait counted so
    /// far still counts. Changed announcements apply to a caller already
    /// waiting: the next one comes one new interval after `now_ms` (none
    /// when they were turned off). Either change re-arms the stint's
    /// timers under a new stint, which fences the old ones (the re-entry
    /// window's end included); a deadline already behind `now_ms` fires at
    /// once. Callback and overflow rules are read when used, so the new
    /// ones apply as they are stored here.
    pub fn reconfigure(&mut self, rules: impl Into<Shared<QueueRules>>, now_ms: u64) -> Fx {
        let rules = rules.into();
        let Some(old) = self.rules.clone() else {
            return Vec::new();
        };
        if old.queue != rules.queue || old == rules {
            return Vec::new();
        }
        let mut fx = Vec::new();
        let waiting = matches!(
            self.phase,
            CallPhase::Queued { .. } | CallPhase::Offering { .. }
        );
        let max_wait_moves = old.max_wait_ms != rules.max_wait_ms
            && !self.max_wait_elapsed
            && self.max_wait_deadline_ms.is_some();
        let announce_changed = old.announce != rules.announce;
        self.rules = Some(rules);
        if !waiting || !(max_wait_moves || announce_changed) {
            return fx;
        }
        self.stint += 1;
        if let (true, Some(at), Some(r)) = (max_wait_moves, self.max_wait_deadline_ms, &self.rules)
        {
            let new_at = at
                .saturating_sub(old.max_wait_ms)
                .saturating_add(r.max_wait_ms);
            self.max_wait_deadline_ms = Some(new_at);
        }
        if let (false, Some(at)) = (self.max_wait_elapsed, self.max_wait_deadline_ms) {
            fx.push(CallEffect::Timer(CallTimer::MaxWait(self.stint), at));
        }
        let announce = self.rules.as_ref().map(|r| &r.announce);
        if let Some(a) = announce.filter(|a| a.enabled()) {
            let at = now_ms.saturating_add(a.interval_ms);
            fx.push(CallEffect::Timer(CallTimer::Announce(self.stint), at));
        }
        for (timer, at) in self.waiting_timers() {
            if !matches!(timer, CallTimer::Announce(_)) {
                fx.push(CallEffect::Timer(timer, at));
            }
        }
        fx
    }
}
