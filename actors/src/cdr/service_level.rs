//! The service level, counted one way wherever edgecc shows it (the
//! reports, the wallboard's figures, the `/metrics` counters):
//! **answered within the queue's threshold T / (offered − short
//! abandons)**. A queue stint is offered once it joined the queue; it is
//! answered within T when an agent answered it after a wait of at most T;
//! it is a short abandon when the caller hung up after waiting less than
//! the short-abandon threshold. Timed-out, overflowed and failed stints,
//! and stints still waiting, count as offered and not answered.

use super::{QueueStint, StintOutcome};

/// The formula, stated with every figure that uses it.
pub const SERVICE_LEVEL_FORMULA: &str =
    "answered within the queue's threshold / (offered - short abandons)";

/// The thresholds a queue's stints are judged with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// T: an answer after at most this wait counts as within, ms.
    pub service_level_ms: u64,
    /// An abandon after less than this wait is a short abandon, ms.
    pub short_abandon_ms: u64,
}

/// What one stint adds to a queue's service level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceLevelCounts {
    /// Stints offered (every stint counted).
    pub offered: u64,
    /// Of them, answered after a wait of at most T.
    pub answered_within_threshold: u64,
    /// Of them, abandoned after less than the short-abandon threshold.
    pub short_abandoned: u64,
}

impl ServiceLevelCounts {
    /// The counts of one stint judged with `t`.
    pub fn of(stint: &QueueStint, t: Thresholds) -> ServiceLevelCounts {
        Self::judge(stint.wait_ms().unwrap_or(0), stint.outcome, t)
    }

    /// The counts of one offered call that waited `wait_ms` and ended its
    /// wait with `outcome` (`None`: still waiting), judged with `t`; for
    /// figures kept outside a CDR (`edgecc simulate`'s replay).
    pub fn judge(wait_ms: u64, outcome: Option<StintOutcome>, t: Thresholds) -> ServiceLevelCounts {
        ServiceLevelCounts {
            offered: 1,
            answered_within_threshold: u64::from(
                outcome == Some(StintOutcome::Answered) && wait_ms <= t.service_level_ms,
            ),
            short_abandoned: u64::from(
                outcome == Some(StintOutcome::Abandoned) && wait_ms < t.short_abandon_ms,
            ),
        }
    }

    /// Adds `other` in.
    pub fn add(&mut self, other: ServiceLevelCounts) {
        self.offered += other.offered;
        self.answered_within_threshold += other.answered_within_threshold;
        self.short_abandoned += other.short_abandoned;
    }

    /// The service level in percent, rounded to two decimals; `None` when
    /// nothing counts (no stint, or only short abandons).
    pub fn percent(&self) -> Option<f64> {
        percent(
            self.answered_within_threshold,
            self.offered,
            self.short_abandoned,
        )
    }
}

/// answered within T / (offered − short abandons), in percent rounded to
/// two decimals; `None` when the denominator is 0.
pub fn percent(answered_within_threshold: u64, offered: u64, short_abandoned: u64) -> Option<f64> {
    let base = offered.saturating_sub(short_abandoned);
    (base > 0).then(|| (answered_within_threshold as f64 * 10_000.0 / base as f64).round() / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::QueueId;

    fn stint(wait_ms: Option<u64>, outcome: Option<StintOutcome>) -> QueueStint {
        QueueStint {
            queue: QueueId::new("sales"),
            entered_ms: 1_000,
            left_ms: wait_ms.map(|w| 1_000 + w),
            outcome,
            agent: None,
        }
    }

    /// An answer at exactly T is within, a millisecond later is not; an
    /// abandon just under the short threshold is short, at it is not;
    /// time-outs and waiting calls count against; 1 within of 4 offered
    /// with 1 short abandon is 33.33%.
    #[test]
    fn stints_count_by_the_one_formula() {
        let t = Thresholds {
            service_level_ms: 20_000,
            short_abandon_ms: 5_000,
        };
        let mut all = ServiceLevelCounts::default();
        for (wait, outcome) in [
            (Some(20_000), Some(StintOutcome::Answered)),
            (Some(20_001), Some(StintOutcome::Answered)),
            (Some(4_999), Some(StintOutcome::Abandoned)),
            (Some(5_000), Some(StintOutcome::Abandoned)),
            (Some(60_000), Some(StintOutcome::TimedOut)),
            (None, None),
        ] {
            all.add(ServiceLevelCounts::of(&stint(wait, outcome), t));
        }
        assert_eq!(
            all,
            ServiceLevelCounts {
                offered: 6,
                answered_within_threshold: 1,
                short_abandoned: 1,
            }
        );
        assert_eq!(all.percent(), Some(20.0));
        assert_eq!(percent(1, 4, 1), Some(33.33));
        assert_eq!(percent(0, 2, 2), None);
    }
}
