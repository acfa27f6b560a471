//! Call priority, pure: where a call's priority comes from (its attached
//! data, then its caller, then the queue) and aging, the points a call
//! gains per second it waits.
//!
//! # Aging without re-sorting
//!
//! A call of priority `p` that joined at `since_ms` has, at time `t`, the
//! effective priority `p + aging_per_s * (t - since_ms) / 1000`. Every call
//! of a queue ages at the queue's rate, so the order of two calls never
//! depends on `t`: ordering by `1000 * p - aging_per_s * since_ms` (the
//! [`rank`]) is ordering by effective priority at any moment. The waiting
//! line stays one ordered map with a key fixed at entry; no timer re-sorts
//! it.

use crate::config::RoutingConfig;

/// The rank of a call (higher first; see the module doc). With no aging it
/// is the priority alone, so ties go by arrival as before.
pub fn rank(priority: u8, since_ms: u64, aging_per_s: u32) -> i64 {
    let base = i64::from(priority) * 1000;
    let aged = i64::from(aging_per_s).saturating_mul(i64::try_from(since_ms).unwrap_or(i64::MAX));
    base.saturating_sub(aged)
}

/// The priority a known caller has (`routing.caller_priorities`).
pub fn for_caller(routing: &RoutingConfig, ani: &str) -> Option<u8> {
    routing
        .caller_priorities
        .iter()
        .find(|c| c.ani == ani)
        .map(|c| c.priority)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A low-priority call that waited long enough ranks above a later
    /// high-priority one, and the order is the effective priority's.
    #[test]
    fn aging_overtakes_a_later_higher_priority() {
        // 1 point a second: priority 0 since t=0 vs priority 5 since 4 s.
        assert!(rank(0, 0, 1) < rank(5, 4_000, 1));
        // Since 6 s, the priority-5 call is behind (0 + 6 > 5 + 0 at 6 s).
        assert!(rank(0, 0, 1) > rank(5, 6_000, 1));
        // No aging: priority, then (by the caller's tie-break) arrival.
        assert!(rank(1, 9_000, 0) > rank(0, 0, 0));
        assert_eq!(rank(3, 0, 0), rank(3, 9_000, 0));
    }
}
