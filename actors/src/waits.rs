//! Queue waits, counted in one place from the calls' views: when each call
//! joined its queue, and per queue the waits of the calls it answered (how
//! many, a histogram over [`WAIT_BUCKETS_S`]). Service level is not counted
//! here: it is the call records' ([`crate::cdr::service_level`]), with
//! abandons and each queue's threshold.
//!
//! The registry owns the one [`WaitFigures`] and feeds it every call view it
//! receives; snapshots copy the figures into each [`crate::events::QueueView`].
//! A call waits from the first view that shows it queued, offering or routing
//! with a queue, until the first view in another phase: an offer that rang
//! and was missed does not restart the wait; a later transfer to a queue
//! starts a new one. Answered = that other phase is `connected`.

use crate::events::CallView;
use crate::ids::{CallId, QueueId};
use serde::Serialize;
use std::collections::HashMap;

/// The service-level threshold of a queue `[reports]` does not set, ms
/// (the industry's usual 20 s).
pub const SERVICE_LEVEL_THRESHOLD_MS: u64 = 20_000;
/// Upper bounds (seconds) of the answered-wait histogram buckets.
pub const WAIT_BUCKETS_S: [f64; 9] = [1.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0];
/// Most waiting calls tracked at once; a bound far above what one box
/// carries (a call beyond it shows a wait of 0 and is not counted).
pub const TRACKED_WAITS_MAX: usize = 10_000;

/// Waits of the calls one queue answered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AnsweredWaits {
    /// Calls answered after waiting in the queue.
    pub answered: u64,
    /// Counts per [`WAIT_BUCKETS_S`] bucket (not cumulative), plus one
    /// overflow bucket: the Prometheus histogram of `/metrics`.
    pub wait_buckets: [u64; WAIT_BUCKETS_S.len() + 1],
    /// Sum of the answered waits, ms (the histogram's sum).
    pub wait_sum_ms: u64,
}

impl AnsweredWaits {
    fn count(&mut self, wait_ms: u64) {
        self.answered += 1;
        self.wait_sum_ms = self.wait_sum_ms.saturating_add(wait_ms);
        let wait_s = wait_ms as f64 / 1000.0;
        let i = WAIT_BUCKETS_S
            .iter()
            .position(|b| wait_s <= *b)
            .unwrap_or(WAIT_BUCKETS_S.len());
        self.wait_buckets[i] += 1;
    }
}

/// The wait figures of every queue.
#[derive(Debug, Default)]
pub struct WaitFigures {
    /// Calls waiting now: their queue and since when (wall ms).
    waiting_since: HashMap<CallId, (QueueId, u64)>,
    /// Answered waits per queue, since start.
    answered: HashMap<QueueId, AnsweredWaits>,
}

impl WaitFigures {
    /// Takes in a call's new view, seen at `now_ms`.
    pub fn observe(&mut self, view: &CallView, now_ms: u64) {
        match view.phase {
            "queued" | "offering" | "routing" => {
                if let Some(queue) = &view.queue {
                    if !self.waiting_since.contains_key(&view.call)
                        && self.waiting_since.len() < TRACKED_WAITS_MAX
                    {
                        self.waiting_since
                            .insert(view.call.clone(), (queue.clone(), now_ms));
                    }
                }
            }
            phase => {
                if let Some((queue, since)) = self.waiting_since.remove(&view.call) {
                    if phase == "connected" {
                        self.answered
                            .entry(queue)
                            .or_default()
                            .count(now_ms.saturating_sub(since));
                    }
                }
            }
        }
    }

    /// The current wait (ms) of each of `calls` in `queue`; 0 for a call not
    /// seen waiting there.
    pub fn waits(&self, queue: &QueueId, calls: &[CallId], now_ms: u64) -> Vec<u64> {
        calls
            .iter()
            .map(|c| match self.waiting_since.get(c) {
                Some((q, since)) if q == queue => now_ms.saturating_sub(*since),
                _ => 0,
            })
            .collect()
    }

    /// The answered waits of `queue` so far.
    pub fn answered(&self, queue: &QueueId) -> AnsweredWaits {
        self.answered.get(queue).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A missed offer does not restart the wait; the answer counts the wait
    /// from the first queued view, in the right bucket; an abandoned call
    /// is not counted; a transfer to the queue
    /// after the answer starts a new wait.
    #[test]
    fn waits_run_from_the_first_queued_view_to_the_answer() {
        let q = QueueId::new("sales");
        let mut f = WaitFigures::default();
        f.observe(&CallView::fixture("c1", "queued", Some("sales")), 1_000);
        f.observe(&CallView::fixture("c2", "queued", Some("sales")), 2_000);
        f.observe(&CallView::fixture("c1", "offering", Some("sales")), 3_000);
        f.observe(&CallView::fixture("c1", "queued", Some("sales")), 9_000);
        let calls = [CallId::new("c1"), CallId::new("c2"), CallId::new("c3")];
        assert_eq!(f.waits(&q, &calls, 10_000), vec![9_000, 8_000, 0]);
        assert_eq!(
            f.waits(&QueueId::new("other"), &calls, 10_000),
            vec![0, 0, 0]
        );
        assert_eq!(f.answered(&q).answered, 0);

        f.observe(&CallView::fixture("c1", "connected", Some("sales")), 26_000);
        f.observe(&CallView::fixture("c2", "ended", Some("sales")), 26_000);
        let a = f.answered(&q);
        assert_eq!(a.answered, 1);
        assert_eq!(a.wait_sum_ms, 25_000);
        assert_eq!(a.wait_buckets[4], 1, "25 s falls in the 30 s bucket");

        f.observe(&CallView::fixture("c1", "queued", Some("sales")), 30_000);
        f.observe(&CallView::fixture("c1", "connected", Some("sales")), 31_000);
        let a = f.answered(&q);
        assert_eq!(a.answered, 2);
        assert_eq!(a.wait_buckets[0], 1, "1 s falls in the 1 s bucket");
    }
}
