//! The figures of a replay, per queue and per agent: pure arithmetic on
//! [`Replay`] outcomes, tested without actors.
//!
//! A call counts in the queue its DNIS leads to (its entry queue), even if
//! a final destination moved it on. Definitions, as `simulate` prints them:
//!
//! - offered: calls that arrived on the queue's DNIS;
//! - answered: an agent answered (wait = arrival to answer);
//! - abandoned: the caller hung up unanswered; short abandons are those
//!   who hung up within `short_abandon_ms`;
//! - service level = answered within the queue's threshold (wait ≤ T) /
//!   (offered − short abandons) ([`SERVICE_LEVEL_FORMULA`]), in percent
//!   rounded to two decimals: counted by the reports' own implementation
//!   ([`edgecc_actors::cdr::service_level`]), so a replay and a report of
//!   the same calls give the same figure;
//! - ASA: the mean wait of answered calls; p90 wait: the 90th percentile
//!   (nearest rank) of the waits of answered calls;
//! - occupancy of an agent: time Reserved, Talking or in WrapUp / the span
//!   from the first arrival to the end of the last call or wrap-up (every
//!   simulated agent is staffed and Ready for the whole span).

use edgecc_actors::cdr::service_level::{ServiceLevelCounts, Thresholds};
use edgecc_actors::cdr::StintOutcome;
use serde::Serialize;

use super::replay::{CallEnd, CallOutcome, Replay};
use super::settings::SimulateSettings;

/// The service-level formula, as the output states it.
pub const SERVICE_LEVEL_FORMULA: &str =
    "service level = answered within the queue's threshold / (offered - abandoned within short_abandon_ms)";

/// One queue's figures for one config.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct QueueFigures {
    /// The queue id.
    pub queue: String,
    /// The service-level threshold used, ms.
    pub service_level_ms: u64,
    /// Calls that arrived on the queue's DNIS.
    pub offered: u64,
    /// Calls an agent answered.
    pub answered: u64,
    /// Calls whose caller hung up unanswered.
    pub abandoned: u64,
    /// Of `abandoned`, those gone within the short-abandon threshold.
    pub abandoned_short: u64,
    /// Calls that reached `max_wait_ms` or were turned away (work item).
    pub timed_out: u64,
    /// Calls sent to an external number.
    pub overflowed: u64,
    /// Calls a PBX error ended.
    pub failed: u64,
    /// Calls still going when the replay stopped (should be 0).
    pub unfinished: u64,
    /// Answered with a wait within the threshold.
    pub answered_within_threshold: u64,
    /// See [`SERVICE_LEVEL_FORMULA`], in percent rounded to two
    /// decimals (as the reports give it); `None` when the denominator is 0.
    pub service_level_pct: Option<f64>,
    /// Average speed of answer, ms; `None` when nothing was answered.
    pub asa_ms: Option<f64>,
    /// 90th percentile of answered waits, ms.
    pub wait_p90_ms: Option<u64>,
}

/// One agent's figures for one config.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AgentFigures {
    /// The agent id.
    pub agent: String,
    /// Time Reserved, Talking or in WrapUp, ms.
    pub busy_ms: u64,
    /// `busy_ms` over the replay's span; `None` for an empty span.
    pub occupancy: Option<f64>,
}

/// Figures per queue (`queues`: id and DNIS list, in config order; calls
/// with a DNIS of none are not counted) and per agent.
pub fn figures(
    replay: &Replay,
    dnis: &[String],
    queues: &[(String, Vec<String>)],
    settings: &SimulateSettings,
) -> (Vec<QueueFigures>, Vec<AgentFigures>) {
    let mut out: Vec<QueueFigures> = queues
        .iter()
        .map(|(id, _)| QueueFigures {
            queue: id.clone(),
            service_level_ms: settings.service_level_ms_of(id),
            ..QueueFigures::default()
        })
        .collect();
    let mut waits: Vec<Vec<u64>> = vec![Vec::new(); queues.len()];
    let mut counts = vec![ServiceLevelCounts::default(); queues.len()];
    for (call, dnis) in replay.calls.iter().zip(dnis) {
        let Some(q) = queues.iter().position(|(_, d)| d.contains(dnis)) else {
            continue;
        };
        let f = &mut out[q];
        if let Some(wait) = call.wait_ms {
            f.answered += 1;
            waits[q].push(wait);
        }
        match call.end {
            None => f.unfinished += 1,
            Some((CallEnd::Abandoned, _)) => f.abandoned += 1,
            Some((CallEnd::TimedOut, _)) => f.timed_out += 1,
            Some((CallEnd::Overflowed, _)) => f.overflowed += 1,
            Some((CallEnd::Failed, _)) => f.failed += 1,
            Some((CallEnd::Completed, _)) => {}
        }
        let t = Thresholds {
            service_level_ms: f.service_level_ms,
            short_abandon_ms: settings.short_abandon_ms,
        };
        counts[q].add(judged(call, t));
    }
    for ((f, waits), counts) in out.iter_mut().zip(waits.iter_mut()).zip(&counts) {
        f.offered = counts.offered;
        f.answered_within_threshold = counts.answered_within_threshold;
        f.abandoned_short = counts.short_abandoned;
        f.service_level_pct = counts.percent();
        if !waits.is_empty() {
            waits.sort_unstable();
            let sum: u64 = waits.iter().sum();
            f.asa_ms = Some(sum as f64 / waits.len() as f64);
            f.wait_p90_ms = Some(percentile(waits, 0.9));
        }
    }
    let agents = replay
        .agent_busy_ms
        .iter()
        .map(|(agent, busy_ms)| AgentFigures {
            agent: agent.clone(),
            busy_ms: *busy_ms,
            occupancy: (replay.span_ms > 0).then(|| *busy_ms as f64 / replay.span_ms as f64),
        })
        .collect();
    (out, agents)
}

/// What one replayed call adds to its queue's service level: its wait
/// until an agent answered, or until the caller hung up, judged by the
/// reports' implementation.
fn judged(call: &CallOutcome, t: Thresholds) -> ServiceLevelCounts {
    let (wait_ms, outcome) = match (call.wait_ms, call.end) {
        (Some(wait), _) => (wait, Some(StintOutcome::Answered)),
        (None, Some((CallEnd::Abandoned, at))) => {
            (at.saturating_sub(call.at_ms), Some(StintOutcome::Abandoned))
        }
        // Timed out, overflowed, failed or still going: offered, not
        // answered, whatever the wait.
        (None, _) => (0, None),
    };
    ServiceLevelCounts::judge(wait_ms, outcome, t)
}

/// The nearest-rank `p` percentile of `sorted` (not empty).
fn percentile(sorted: &[u64], p: f64) -> u64 {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(at_ms: u64, wait_ms: Option<u64>, end: CallEnd, end_ms: u64) -> CallOutcome {
        CallOutcome {
            at_ms,
            wait_ms,
            end: Some((end, end_ms)),
        }
    }

    /// Goal: the stated formulas. Method: ten hand-made outcomes on one
    /// queue (threshold 20 s, short abandon 5 s) and one on another DNIS;
    /// every figure is worked out by hand in the comments.
    #[test]
    fn figures_follow_the_stated_formulas() {
        let mut calls: Vec<CallOutcome> = [0, 5_000, 10_000, 19_000, 20_000, 25_000, 60_000]
            .iter()
            .map(|&w| call(0, Some(w), CallEnd::Completed, w + 1_000))
            .collect();
        calls.push(call(100, None, CallEnd::Abandoned, 3_100)); // short (3 s)
        calls.push(call(100, None, CallEnd::Abandoned, 30_100)); // long
        calls.push(call(100, None, CallEnd::TimedOut, 90_100));
        calls.push(call(0, Some(0), CallEnd::Completed, 1)); // the other queue
        let mut dnis = vec!["800".to_string(); 10];
        dnis.push("900".to_string());
        let replay = Replay {
            calls,
            agent_busy_ms: vec![("a1".into(), 30_000), ("a2".into(), 0)],
            span_ms: 120_000,
            ..Replay::default()
        };
        let queues = vec![
            ("sales".to_string(), vec!["800".to_string()]),
            ("support".to_string(), vec!["900".to_string()]),
        ];
        let (q, a) = figures(&replay, &dnis, &queues, &SimulateSettings::default());
        let s = &q[0];
        assert_eq!(
            (
                s.offered,
                s.answered,
                s.abandoned,
                s.abandoned_short,
                s.timed_out
            ),
            (10, 7, 2, 1, 1)
        );
        // Within 20 s (inclusive): 0, 5, 10, 19, 20 s = 5 of (10 - 1).
        assert_eq!(s.answered_within_threshold, 5);
        // 5 / 9 in percent, two decimals: the reports' figure for the
        // same counts.
        assert_eq!(s.service_level_pct, Some(55.56));
        assert_eq!(
            s.service_level_pct,
            edgecc_actors::cdr::service_level::percent(5, 10, 1)
        );
        // ASA: (0+5+10+19+20+25+60) / 7 = 139 / 7 s.
        assert_eq!(s.asa_ms, Some(139_000.0 / 7.0));
        // p90 of 7 waits: rank ceil(6.3) = 7, the largest.
        assert_eq!(s.wait_p90_ms, Some(60_000));
        assert_eq!((q[1].offered, q[1].answered), (1, 1));
        assert_eq!(a[0].occupancy, Some(0.25));
        assert_eq!(a[1].occupancy, Some(0.0));
    }

    /// A queue with no calls has no service level, ASA or p90 (not 0 or
    /// 100 %), and unfinished calls are counted, not lost.
    #[test]
    fn empty_queues_have_no_ratios_and_unfinished_calls_count() {
        let replay = Replay {
            calls: vec![CallOutcome {
                at_ms: 0,
                wait_ms: None,
                end: None,
            }],
            ..Replay::default()
        };
        let queues = vec![
            ("a".to_string(), vec!["1".to_string()]),
            ("b".to_string(), vec!["2".to_string()]),
        ];
        let (q, _) = figures(
            &replay,
            &["1".into()],
            &queues,
            &SimulateSettings::default(),
        );
        assert_eq!((q[0].offered, q[0].unfinished), (1, 1));
        assert_eq!(q[0].service_level_pct, Some(0.0));
        assert_eq!(
            (q[1].service_level_pct, q[1].asa_ms, q[1].wait_p90_ms),
            (None, None, None)
        );
    }

    /// Nearest-rank percentiles on small and exact samples.
    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<u64> = (1..=10).collect();
        assert_eq!(percentile(&v, 0.9), 9);
        assert_eq!(percentile(&[7], 0.9), 7);
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.9), 90);
    }
}
