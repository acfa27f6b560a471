//! Per-queue call figures for `/metrics`, fed by each ended call's
//! [`CallDetailRecord`] (carried by [`super::CallFinished`]): a histogram of
//! waits (joining a queue to answer, abandon or time-out), a histogram of
//! handle time (talk + hold + wrap-up, of the answered calls), ended
//! calls by terminal reason, and the three counts of the reports' service
//! level ([`crate::cdr::service_level`]: offered, answered within the
//! queue's threshold, short abandons), so a Prometheus user computes the
//! same service level as the reports. The thresholds come from
//! `[reports]` ([`SetServiceLevels`], again at each reload); the wait
//! buckets of each queue include its threshold as it was when the queue
//! was first counted.
//!
//! Handle time counts the wrap-up known when the call ends (the agents'
//! wrap-up as they left the call); a wrap-up code set later does not
//! change it.

use std::collections::{BTreeMap, HashMap};

use actix::prelude::*;

use crate::call::TerminalReason;
use crate::cdr::service_level::{ServiceLevelCounts, Thresholds};
use crate::cdr::{CallDetailRecord, StintOutcome};
use crate::ids::QueueId;
use crate::waits::WAIT_BUCKETS_S;

use super::Registry;

/// Short-abandon threshold until `[reports]` sets one, ms (the reports'
/// default).
pub const SHORT_ABANDON_MS_DEFAULT: u64 = 5_000;

/// Upper bounds (seconds) of the handle-time buckets.
pub const HANDLE_BUCKETS_S: [f64; 10] = [
    30.0, 60.0, 120.0, 180.0, 300.0, 450.0, 600.0, 900.0, 1800.0, 3600.0,
];

/// A histogram from per-bucket (not cumulative) counts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    /// Upper bounds of the finite buckets, seconds, ascending.
    pub bounds: Vec<f64>,
    /// Count per bucket: one per bound, then the `+Inf` one.
    pub counts: Vec<u64>,
    /// Sum of the observations, seconds.
    pub sum: f64,
}

impl Histogram {
    /// An empty histogram over `bounds` (sorted, duplicates dropped).
    pub fn new(mut bounds: Vec<f64>) -> Histogram {
        bounds.sort_by(f64::total_cmp);
        bounds.dedup();
        let counts = vec![0; bounds.len() + 1];
        Histogram {
            bounds,
            counts,
            sum: 0.0,
        }
    }

    /// Counts one observation of `ms` milliseconds; a value equal to a
    /// bound falls in that bound's bucket (Prometheus' `le`).
    pub fn observe_ms(&mut self, ms: u64) {
        let s = ms as f64 / 1000.0;
        let i = self
            .bounds
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(self.bounds.len());
        self.counts[i] += 1;
        self.sum += s;
    }
}

/// The figures of one queue.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueueCallFigures {
    /// The queue's service-level threshold now, ms (one of the wait
    /// bounds unless a reload changed it since the queue was first
    /// counted).
    pub service_level_ms: u64,
    /// Waits in the queue: to answer, abandon or time-out.
    pub wait: Histogram,
    /// Handle time of the calls answered from the queue.
    pub handle: Histogram,
    /// Ended calls whose last queue this was, by terminal reason.
    pub ended: BTreeMap<&'static str, u64>,
    /// The service level's counts of the ended calls' stints in the queue.
    pub service_level: ServiceLevelCounts,
}

/// The call figures of every queue.
#[derive(Clone, Debug, PartialEq)]
pub struct CallMetrics {
    /// Threshold of queues without their own, ms.
    default_service_level_ms: u64,
    /// Per-queue thresholds, ms.
    service_level_ms: HashMap<String, u64>,
    /// Abandons after less than this wait are short abandons, ms.
    short_abandon_ms: u64,
    /// Figures per queue, since start.
    pub queues: BTreeMap<QueueId, QueueCallFigures>,
}

impl Default for CallMetrics {
    fn default() -> Self {
        CallMetrics {
            default_service_level_ms: crate::waits::SERVICE_LEVEL_THRESHOLD_MS,
            service_level_ms: HashMap::new(),
            short_abandon_ms: SHORT_ABANDON_MS_DEFAULT,
            queues: BTreeMap::new(),
        }
    }
}

/// The name of a terminal reason, as `/metrics` labels it.
pub fn reason_name(reason: &TerminalReason) -> &'static str {
    match reason {
        TerminalReason::Completed => "completed",
        TerminalReason::Abandoned => "abandoned",
        TerminalReason::Overflowed { .. } => "overflowed",
        TerminalReason::TimedOut => "timed_out",
        TerminalReason::Failed { .. } => "failed",
        TerminalReason::PbxLost => "pbx_lost",
    }
}

impl CallMetrics {
    /// The threshold of `queue` now, ms.
    fn threshold_ms(&self, queue: &QueueId) -> u64 {
        self.service_level_ms
            .get(&queue.0)
            .copied()
            .unwrap_or(self.default_service_level_ms)
    }

    fn queue(&mut self, queue: &QueueId) -> &mut QueueCallFigures {
        let t = self.threshold_ms(queue);
        self.queues
            .entry(queue.clone())
            .or_insert_with(|| QueueCallFigures {
                service_level_ms: t,
                wait: Histogram::new(
                    WAIT_BUCKETS_S
                        .iter()
                        .copied()
                        .chain([t as f64 / 1000.0])
                        .collect(),
                ),
                handle: Histogram::new(HANDLE_BUCKETS_S.to_vec()),
                ended: BTreeMap::new(),
                service_level: ServiceLevelCounts::default(),
            })
    }

    /// Takes new thresholds: calls ended from now on count with them.
    pub fn set_thresholds(&mut self, msg: SetServiceLevels) {
        self.default_service_level_ms = msg.default_ms;
        self.service_level_ms = msg.queues.into_iter().collect();
        self.short_abandon_ms = msg.short_abandon_ms;
        let queues: Vec<QueueId> = self.queues.keys().cloned().collect();
        for q in queues {
            let t = self.threshold_ms(&q);
            if let Some(f) = self.queues.get_mut(&q) {
                f.service_level_ms = t;
            }
        }
    }

    /// Counts one ended call.
    pub fn observe(&mut self, record: &CallDetailRecord, reason: &TerminalReason) {
        for stint in &record.trail.queues {
            let waited = matches!(
                stint.outcome,
                Some(StintOutcome::Answered | StintOutcome::Abandoned | StintOutcome::TimedOut)
            );
            if let (true, Some(wait_ms)) = (waited, stint.wait_ms()) {
                self.queue(&stint.queue).wait.observe_ms(wait_ms);
            }
            let t = Thresholds {
                service_level_ms: self.threshold_ms(&stint.queue),
                short_abandon_ms: self.short_abandon_ms,
            };
            self.queue(&stint.queue)
                .service_level
                .add(ServiceLevelCounts::of(stint, t));
        }
        let answered_in = record
            .trail
            .queues
            .iter()
            .rev()
            .find(|s| s.outcome == Some(StintOutcome::Answered));
        if let (Some(stint), Some(_)) = (answered_in, record.answered_ms) {
            let handle_ms = record.handle_ms();
            let queue = stint.queue.clone();
            self.queue(&queue).handle.observe_ms(handle_ms);
        }
        if let Some(last) = record.trail.queues.last() {
            let queue = last.queue.clone();
            *self
                .queue(&queue)
                .ended
                .entry(reason_name(reason))
                .or_default() += 1;
        }
    }
}

/// Sets the service-level threshold of each queue (ms; `default_ms` for
/// the others) and the short-abandon threshold. Sent at start, before
/// calls arrive, and at each config reload: calls ended from then on count
/// with them; queues already counted keep their wait buckets.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetServiceLevels {
    /// Threshold of queues not in `queues`, ms.
    pub default_ms: u64,
    /// Per-queue thresholds, ms.
    pub queues: BTreeMap<String, u64>,
    /// Abandons after less than this wait are short abandons, ms.
    pub short_abandon_ms: u64,
}

/// Asks for a copy of the per-queue call figures.
#[derive(Message)]
#[rtype(result = "CallMetrics")]
pub struct GetCallMetrics;

impl Handler<SetServiceLevels> for Registry {
    type Result = ();

    fn handle(&mut self, msg: SetServiceLevels, _ctx: &mut Self::Context) {
        self.call_metrics.set_thresholds(msg);
    }
}

impl Handler<GetCallMetrics> for Registry {
    type Result = MessageResult<GetCallMetrics>;

    fn handle(&mut self, _msg: GetCallMetrics, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.call_metrics.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::Direction;
    use crate::cdr::{CallTrail, QueueStint};
    use crate::ids::{AgentId, CallId};

    fn record(
        wait_ms: u64,
        outcome: StintOutcome,
        handle: Option<(u64, u64, u64)>,
    ) -> CallDetailRecord {
        let (talk_ms, hold_ms, wrap_up_ms) = handle.unwrap_or((0, 0, 0));
        CallDetailRecord {
            call: CallId::new("c"),
            interaction_id: None,
            direction: Direction::Inbound,
            ani: String::new(),
            dnis: String::new(),
            arrived_ms: 1_000,
            answered_ms: handle.map(|_| 1_000 + wait_ms),
            talk_ms,
            wrap_up_ms,
            data: Vec::new(),
            trail: CallTrail {
                queues: vec![QueueStint {
                    queue: QueueId::new("sales"),
                    entered_ms: 1_000,
                    left_ms: Some(1_000 + wait_ms),
                    outcome: Some(outcome),
                    agent: handle.map(|_| AgentId::new("ann")),
                }],
                hold_ms,
                ..CallTrail::default()
            },
        }
    }

    /// The threshold (15 s, between the default bounds 10 and 20) is a
    /// bucket bound: a wait of exactly 15 s falls in it, 15.001 s in the
    /// next; handle time is talk + hold + wrap-up of the answered call;
    /// ended calls count by reason.
    #[test]
    fn waits_fall_in_the_threshold_bucket_and_handle_time_adds_up() {
        let mut m = CallMetrics::default();
        m.service_level_ms.insert("sales".into(), 15_000);
        m.observe(
            &record(
                15_000,
                StintOutcome::Answered,
                Some((100_000, 20_000, 30_000)),
            ),
            &TerminalReason::Completed,
        );
        m.observe(
            &record(15_001, StintOutcome::Abandoned, None),
            &TerminalReason::Abandoned,
        );
        let f = &m.queues[&QueueId::new("sales")];
        let at = f
            .wait
            .bounds
            .iter()
            .position(|b| *b == 15.0)
            .expect("threshold bound");
        assert_eq!(f.wait.bounds[at - 1], 10.0);
        assert_eq!((f.wait.counts[at], f.wait.counts[at + 1]), (1, 1));
        assert_eq!(f.wait.counts.iter().sum::<u64>(), 2);
        let h = f
            .handle
            .bounds
            .iter()
            .position(|b| *b == 180.0)
            .expect("180 s bound");
        assert_eq!(
            f.handle.counts[h], 1,
            "150 s of handle time: {:?}",
            f.handle
        );
        assert_eq!(f.handle.sum, 150.0);
        assert_eq!((f.ended["completed"], f.ended["abandoned"]), (1, 1));
        // The reports' counts: the 15 s answer is within T, the 15.001 s
        // abandon is not short (5 s).
        assert_eq!(
            f.service_level,
            ServiceLevelCounts {
                offered: 2,
                answered_within_threshold: 1,
                short_abandoned: 0,
            }
        );
    }

    /// A reload's thresholds count the calls ended after it: a 3 s answer
    /// is outside a new 2 s threshold, a 3 s abandon is short under a new
    /// 4 s short-abandon threshold; the gauge shows the new threshold.
    #[test]
    fn new_thresholds_count_from_the_reload_on() {
        let mut m = CallMetrics::default();
        m.observe(
            &record(3_000, StintOutcome::Answered, Some((1_000, 0, 0))),
            &TerminalReason::Completed,
        );
        m.set_thresholds(SetServiceLevels {
            default_ms: 2_000,
            queues: BTreeMap::new(),
            short_abandon_ms: 4_000,
        });
        m.observe(
            &record(3_000, StintOutcome::Answered, Some((1_000, 0, 0))),
            &TerminalReason::Completed,
        );
        m.observe(
            &record(3_000, StintOutcome::Abandoned, None),
            &TerminalReason::Abandoned,
        );
        let f = &m.queues[&QueueId::new("sales")];
        assert_eq!(f.service_level_ms, 2_000);
        assert_eq!(
            f.service_level,
            ServiceLevelCounts {
                offered: 3,
                answered_within_threshold: 1,
                short_abandoned: 1,
            }
        );
        assert_eq!(f.service_level.percent(), Some(50.0));
    }
}
