//! The expected wait of a queue's callers, from recent history: the times
//! at which the last calls left the line for an agent give the queue's
//! answer rate, and a caller at place N expects N mean intervals. Pure and
//! bounded ([`DEPARTURES_KEPT`]); the queue actor feeds it and asks it when
//! a caller's announcement is due.

use std::collections::VecDeque;

/// Departures kept: enough for a steady rate, few enough to follow a
/// change of pace within minutes.
pub const DEPARTURES_KEPT: usize = 20;
/// Departures older than this say nothing about the current pace.
pub const DEPARTURE_AGE_MS_MAX: u64 = 30 * 60_000;

/// Recent departures of one queue.
#[derive(Clone, Debug, Default)]
pub struct WaitEstimate {
    /// Wall ms of the last departures (calls offered to an agent), oldest
    /// first.
    departures: VecDeque<u64>,
}

impl WaitEstimate {
    /// A call left the line for an agent at `now_ms`.
    pub fn departed(&mut self, now_ms: u64) {
        if self.departures.len() == DEPARTURES_KEPT {
            self.departures.pop_front();
        }
        self.departures.push_back(now_ms);
    }

    /// Expected wait of the caller at `position` (1 = next), or `None`
    /// before two recent departures give a pace.
    pub fn wait_ms(&self, position: usize, now_ms: u64) -> Option<u64> {
        let recent: Vec<u64> = self
            .departures
            .iter()
            .copied()
            .filter(|t| now_ms.saturating_sub(*t) <= DEPARTURE_AGE_MS_MAX)
            .collect();
        let (first, last) = (*recent.first()?, *recent.last()?);
        if recent.len() < 2 {
            return None;
        }
        let interval = (last - first) / (recent.len() as u64 - 1);
        Some(interval.saturating_mul(position as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No estimate without history; a caller at place 3 of a queue that
    /// answers one call per 40 s waits 120 s; old departures are dropped.
    #[test]
    fn estimate_follows_the_pace() {
        let mut e = WaitEstimate::default();
        assert_eq!(e.wait_ms(1, 0), None);
        e.departed(1_000);
        assert_eq!(e.wait_ms(1, 1_000), None);
        e.departed(41_000);
        e.departed(81_000);
        assert_eq!(e.wait_ms(3, 90_000), Some(120_000));
        assert_eq!(e.wait_ms(3, 81_000 + DEPARTURE_AGE_MS_MAX + 1), None);
        for i in 0..100 {
            e.departed(100_000 + i * 10_000);
        }
        assert_eq!(e.wait_ms(1, 1_100_000), Some(10_000));
    }
}
