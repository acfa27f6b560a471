//! A queue's limits at work ([`QueueLimits`]): whether a call arriving may
//! join (maximum length, members there), and whether waiting calls must
//! leave because the members the queue needs are gone. The registry tells
//! the queue how many members are logged in and available
//! ([`Staffed`], from the agents' views); the queue actor turns a call away
//! by telling it (`TurnedAway`), and the call goes where a timed-out call
//! goes with the reason on its records.
//!
//! A call that comes back after a failed offer (reject, no answer) is not a
//! new arrival: it is let back in whatever the limits say, so it keeps its
//! place. The queue remembers the calls it handed to agents for as long as
//! such a return can take ([`Limits::offered`]).

use crate::config::{QueueLimits, Staffing};
use crate::crm::CallbackReason;
use crate::ids::CallId;
use std::collections::HashMap;

/// Members of a queue that are there, counted by the registry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Staffed {
    /// Members logged in (any state but logged out).
    pub logged_in: u32,
    /// Members Ready or busy with an offer, a call or its wrap-up.
    pub available: u32,
}

impl Staffed {
    /// Whether these members meet `need`.
    pub fn meets(&self, need: Staffing) -> bool {
        match need {
            Staffing::Nobody => true,
            Staffing::LoggedIn => self.logged_in > 0,
            Staffing::Available => self.available > 0,
        }
    }
}

/// A queue's limits and what they are checked against.
#[derive(Debug, Default)]
pub struct Limits {
    /// The configured limits (replaced by a reload).
    config: QueueLimits,
    /// Members there now.
    staffed: Staffed,
    /// Calls handed to an agent, with when: one that comes back within
    /// the return window is a rejoin, not an arrival.
    offered: HashMap<CallId, u64>,
}

impl Limits {
    /// Limits `config`, with no member there yet.
    pub fn new(config: QueueLimits) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// A reload's limits; the counts and the offered calls stay.
    pub fn reconfigure(&mut self, config: QueueLimits) {
        self.config = config;
    }

    /// The members there now.
    pub fn set_staffed(&mut self, staffed: Staffed) {
        self.staffed = staffed;
    }

    /// Whether `call` may join a line of `waiting` calls: a
    /// rejoin after a failed offer always may; a new call is turned away
    /// when the line is full or the members the queue needs (to join or
    /// to stay) are not there.
    pub fn admit(&mut self, call: &CallId, waiting: usize) -> Result<(), CallbackReason> {
        if self.offered.remove(call).is_some() {
            return Ok(());
        }
        if let Some(max) = self.config.waiting_max {
            if waiting >= max as usize {
                return Err(CallbackReason::QueueFull);
            }
        }
        if !self.staffed.meets(self.config.join_requires)
            || !self.staffed.meets(self.config.stay_requires)
        {
            return Err(CallbackReason::QueueUnstaffed);
        }
        Ok(())
    }

    /// `call` was handed to an agent at `now_ms`; it may come back within
    /// `return_window_ms`. Older entries are dropped here, so the map holds
    /// at most the calls offered within one window.
    pub fn offered(&mut self, call: CallId, now_ms: u64, return_window_ms: u64) {
        let oldest = now_ms.saturating_sub(return_window_ms);
        self.offered.retain(|_, at| *at >= oldest);
        self.offered.insert(call, now_ms);
    }

    /// Whether waiting calls must leave: the members the queue needs to
    /// keep them are gone.
    pub fn must_empty(&self) -> bool {
        !self.staffed.meets(self.config.stay_requires)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> CallId {
        CallId::new(s)
    }

    /// Full and unstaffed lines turn new calls away; a rejoin within its
    /// window gets in regardless; an old offer no longer counts.
    #[test]
    fn admit_full_unstaffed_and_rejoin() {
        let mut l = Limits::new(QueueLimits {
            waiting_max: Some(2),
            join_requires: Staffing::LoggedIn,
            stay_requires: Staffing::Nobody,
        });
        assert_eq!(l.admit(&c("1"), 0), Err(CallbackReason::QueueUnstaffed));
        l.set_staffed(Staffed {
            logged_in: 1,
            available: 0,
        });
        assert_eq!(l.admit(&c("1"), 1), Ok(()));
        assert_eq!(l.admit(&c("2"), 2), Err(CallbackReason::QueueFull));
        l.offered(c("1"), 1_000, 500);
        assert_eq!(l.admit(&c("1"), 2), Ok(()));
        l.offered(c("1"), 1_000, 500);
        l.offered(c("3"), 2_000, 500);
        assert_eq!(l.admit(&c("1"), 2), Err(CallbackReason::QueueFull));
        assert!(!l.must_empty());
        l.reconfigure(QueueLimits {
            stay_requires: Staffing::Available,
            ..QueueLimits::default()
        });
        assert!(l.must_empty());
    }
}
