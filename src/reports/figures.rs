//! The figures of a report, pure: call detail records and agent intervals
//! in, one row per queue (or agent) and interval out. No I/O, no clock.
//!
//! A queue counts a call in the interval its stint in the queue began
//! (the call joined the queue); an agent counts an offer in the interval
//! it rang, a call's talk and wrap-up in the interval the agent joined it,
//! and its state time where it fell (an interval spanning two report
//! intervals is split between them).

use std::collections::BTreeMap;

use edgecc_actors::cdr::agent::AgentInterval;
use edgecc_actors::cdr::service_level::{self, ServiceLevelCounts};
use edgecc_actors::cdr::{CallDetailRecord, OfferResult, QueueStint, StintOutcome};
use serde::Serialize;

use super::config::ReportSettings;
use super::time::{format_time, Interval};

/// The service-level formula, stated in every answer and in the docs
/// (one implementation: [`edgecc_actors::cdr::service_level`]).
pub use edgecc_actors::cdr::service_level::SERVICE_LEVEL_FORMULA;

/// Most rows one report may have (entities × intervals): bounds the
/// memory and the answer of one request.
pub const REPORT_ROWS_MAX: u64 = 50_000;

/// What a report covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ReportRange {
    /// Start, inclusive (ms since the epoch), aligned down on the interval.
    pub from_ms: u64,
    /// End, exclusive, aligned up on the interval.
    pub to_ms: u64,
    /// Length of each row's interval.
    pub interval: Interval,
}

impl ReportRange {
    /// The range `[from_ms, to_ms)` widened to whole intervals; an error
    /// when it is empty.
    pub fn new(from_ms: u64, to_ms: u64, interval: Interval) -> Result<Self, String> {
        if to_ms <= from_ms {
            return Err("`to` must be after `from`".to_string());
        }
        let len = interval.ms();
        let from_ms = from_ms - from_ms % len;
        let to_ms = to_ms.div_ceil(len).saturating_mul(len);
        Ok(ReportRange {
            from_ms,
            to_ms,
            interval,
        })
    }

    /// Intervals in the range.
    pub fn buckets(&self) -> u64 {
        (self.to_ms - self.from_ms) / self.interval.ms()
    }

    /// The interval `at_ms` falls in, if inside the range.
    fn bucket(&self, at_ms: u64) -> Option<u64> {
        (self.from_ms..self.to_ms)
            .contains(&at_ms)
            .then(|| (at_ms - self.from_ms) / self.interval.ms())
    }

    fn start_of(&self, bucket: u64) -> u64 {
        self.from_ms + bucket * self.interval.ms()
    }
}

/// One queue over one interval.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct QueueRow {
    /// The queue.
    pub queue: String,
    /// Interval start (RFC 3339 UTC).
    pub start: String,
    /// Interval start, ms since the epoch.
    pub start_ms: u64,
    /// Calls that joined the queue.
    pub offered: u64,
    /// Of them, answered by an agent from this queue.
    pub answered: u64,
    /// Of them, answered within the service-level threshold.
    pub answered_within_threshold: u64,
    /// Of them, the caller hung up while waiting (short abandons included).
    pub abandoned: u64,
    /// Of the abandoned, gone within the short-abandon threshold.
    pub short_abandoned: u64,
    /// Of them, timed out to a work item.
    pub timed_out: u64,
    /// Of them, sent on to another queue or an external number unanswered.
    pub overflowed: u64,
    /// Of them, ended by a PBX error or a lost PBX while waiting.
    pub failed: u64,
    /// Still waiting at the time of the report (no outcome yet).
    pub waiting: u64,
    /// The threshold T of this queue, ms.
    pub service_level_threshold_ms: u64,
    /// answered within T / (offered - short abandons), in percent; `null`
    /// when nothing counts.
    pub service_level_pct: Option<f64>,
    /// Average speed of answer: mean wait of answered calls, ms.
    pub asa_ms: Option<u64>,
    /// Mean wait of every call that left the queue, ms.
    pub wait_avg_ms: Option<u64>,
    /// 90th percentile (nearest rank) of those waits, ms.
    pub wait_p90_ms: Option<u64>,
    /// Longest of those waits, ms.
    pub wait_max_ms: Option<u64>,
    /// Average handle time of answered calls: the answering agent's talk
    /// (hold included) plus its wrap-up, ms.
    pub aht_ms: Option<u64>,
    /// Offers of its calls the agent did not take (rejected, refused,
    /// missed).
    pub no_answers: u64,
}

/// One agent over one interval.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AgentRow {
    /// The agent.
    pub agent: String,
    /// Interval start (RFC 3339 UTC).
    pub start: String,
    /// Interval start, ms since the epoch.
    pub start_ms: u64,
    /// Offers that rang the agent.
    pub offered: u64,
    /// Of them, answered.
    pub answered: u64,
    /// Of them, rejected, refused or missed.
    pub no_answers: u64,
    /// Time on calls joined in the interval (hold included), ms.
    pub talk_ms: u64,
    /// Wrap-up granted after those calls, ms.
    pub wrap_up_ms: u64,
    /// Average handle time: (talk + wrap-up) / calls handled, ms.
    pub aht_ms: Option<u64>,
    /// Time Ready (idle), ms.
    pub ready_ms: u64,
    /// Time reserved (an offer ringing), ms.
    pub reserved_ms: u64,
    /// Time Talking, ms.
    pub talking_ms: u64,
    /// Time in wrap-up, ms.
    pub wrap_up_state_ms: u64,
    /// Time Not Ready, ms (all reasons).
    pub not_ready_total_ms: u64,
    /// Time Not Ready by reason, ms.
    pub not_ready_ms: BTreeMap<String, u64>,
    /// Occupancy: (reserved + talking + wrap-up) / (ready + reserved +
    /// talking + wrap-up), in percent; `null` when the agent was never
    /// available.
    pub occupancy_pct: Option<f64>,
}

/// Accumulates one queue row's waits.
#[derive(Default)]
struct QueueAcc {
    row: QueueRow,
    waits: Vec<u64>,
    answer_waits: Vec<u64>,
    handles: Vec<u64>,
}

fn mean(v: &[u64]) -> Option<u64> {
    (!v.is_empty()).then(|| v.iter().sum::<u64>() / v.len() as u64)
}

/// Nearest-rank percentile `p` (0-100) of `v`.
fn percentile(v: &mut [u64], p: u64) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let rank = (p * v.len() as u64).div_ceil(100).max(1);
    Some(v[rank as usize - 1])
}

fn pct(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| (num as f64 * 10_000.0 / den as f64).round() / 100.0)
}

/// The handle time of the stint's answering agent: its time on the call
/// from answering, plus its wrap-up.
fn stint_handle_ms(call: &CallDetailRecord, stint: &QueueStint) -> Option<u64> {
    let agent = stint.agent.as_ref()?;
    let answered = stint.left_ms?;
    let party = call
        .trail
        .parties
        .iter()
        .find(|p| &p.agent == agent && p.joined_ms >= answered)?;
    let left = party.left_ms?;
    Some(left.saturating_sub(party.joined_ms) + party.wrap_up_ms)
}

/// One row per configured (and seen) queue and interval.
pub fn queue_rows(
    calls: &[CallDetailRecord],
    range: &ReportRange,
    settings: &ReportSettings,
) -> Vec<QueueRow> {
    let mut acc: BTreeMap<(String, u64), QueueAcc> = BTreeMap::new();
    let mut queues: Vec<String> = settings.queues.clone();
    for call in calls {
        for stint in &call.trail.queues {
            let Some(b) = range.bucket(stint.entered_ms) else {
                continue;
            };
            let queue = stint.queue.0.clone();
            if !queues.contains(&queue) {
                queues.push(queue.clone());
            }
            let thresholds = settings.thresholds_of(&queue);
            let a = acc.entry((queue, b)).or_default();
            let sl = ServiceLevelCounts::of(stint, thresholds);
            let r = &mut a.row;
            r.offered += sl.offered;
            r.answered_within_threshold += sl.answered_within_threshold;
            r.short_abandoned += sl.short_abandoned;
            let wait = stint.wait_ms();
            match stint.outcome {
                Some(StintOutcome::Answered) => {
                    r.answered += 1;
                    a.answer_waits.push(wait.unwrap_or(0));
                    a.handles.extend(stint_handle_ms(call, stint));
                }
                Some(StintOutcome::Abandoned) => r.abandoned += 1,
                Some(StintOutcome::TimedOut) => r.timed_out += 1,
                Some(StintOutcome::Overflowed) => r.overflowed += 1,
                Some(StintOutcome::Failed) => r.failed += 1,
                None => r.waiting += 1,
            }
            a.waits.extend(wait);
            let (start, end) = (stint.entered_ms, stint.left_ms.unwrap_or(u64::MAX));
            r.no_answers += call
                .trail
                .offers
                .iter()
                .filter(|o| (start..=end).contains(&o.offered_ms))
                .filter(|o| o.outcome.is_some_and(OfferResult::is_no_answer))
                .count() as u64;
        }
    }
    let mut rows = Vec::new();
    for queue in queues {
        let threshold = settings.service_level_ms_of(&queue);
        for b in 0..range.buckets() {
            let mut a = acc.remove(&(queue.clone(), b)).unwrap_or_default();
            let start_ms = range.start_of(b);
            let r = &mut a.row;
            r.queue = queue.clone();
            r.start_ms = start_ms;
            r.start = format_time(start_ms);
            r.service_level_threshold_ms = threshold;
            r.service_level_pct =
                service_level::percent(r.answered_within_threshold, r.offered, r.short_abandoned);
            r.asa_ms = mean(&a.answer_waits);
            r.wait_avg_ms = mean(&a.waits);
            r.wait_p90_ms = percentile(&mut a.waits, 90);
            r.wait_max_ms = a.waits.iter().copied().max();
            r.aht_ms = mean(&a.handles);
            rows.push(a.row);
        }
    }
    rows
}

/// One row per configured (and seen) agent and interval.
pub fn agent_rows(
    calls: &[CallDetailRecord],
    intervals: &[AgentInterval],
    range: &ReportRange,
    settings: &ReportSettings,
) -> Vec<AgentRow> {
    let mut acc: BTreeMap<(String, u64), (AgentRow, u64)> = BTreeMap::new();
    let mut agents: Vec<String> = settings.agents.clone();
    let mut seen = |agent: &str| {
        if !agents.iter().any(|a| a == agent) {
            agents.push(agent.to_string());
        }
    };
    for call in calls {
        for o in &call.trail.offers {
            let Some(b) = range.bucket(o.offered_ms) else {
                continue;
            };
            seen(&o.agent.0);
            let (r, _) = acc.entry((o.agent.0.clone(), b)).or_default();
            r.offered += 1;
            match o.outcome {
                Some(OfferResult::Answered) => r.answered += 1,
                Some(x) if x.is_no_answer() => r.no_answers += 1,
                _ => {}
            }
        }
        for p in &call.trail.parties {
            let Some(b) = range.bucket(p.joined_ms) else {
                continue;
            };
            seen(&p.agent.0);
            let (r, handled) = acc.entry((p.agent.0.clone(), b)).or_default();
            r.talk_ms += p.left_ms.unwrap_or(p.joined_ms).saturating_sub(p.joined_ms);
            r.wrap_up_ms += p.wrap_up_ms;
            *handled += 1;
        }
    }
    let len = range.interval.ms();
    for i in intervals {
        let (start, end) = (i.start_ms.max(range.from_ms), i.end_ms.min(range.to_ms));
        if start >= end {
            continue;
        }
        seen(&i.agent.0);
        let mut at = start;
        while at < end {
            let b = (at - range.from_ms) / len;
            let bucket_end = range.start_of(b + 1).min(end);
            let ms = bucket_end - at;
            let (r, _) = acc.entry((i.agent.0.clone(), b)).or_default();
            match i.state.as_str() {
                "ready" => r.ready_ms += ms,
                "reserved" => r.reserved_ms += ms,
                "talking" => r.talking_ms += ms,
                "wrap_up" => r.wrap_up_state_ms += ms,
                "not_ready" => {
                    r.not_ready_total_ms += ms;
                    let reason = i.reason.clone().unwrap_or_else(|| "unknown".into());
                    *r.not_ready_ms.entry(reason).or_default() += ms;
                }
                _ => {}
            }
            at = bucket_end;
        }
    }
    let mut rows = Vec::new();
    for agent in agents {
        for b in 0..range.buckets() {
            let (mut r, handled) = acc.remove(&(agent.clone(), b)).unwrap_or_default();
            let start_ms = range.start_of(b);
            r.agent = agent.clone();
            r.start_ms = start_ms;
            r.start = format_time(start_ms);
            r.aht_ms = (handled > 0).then(|| (r.talk_ms + r.wrap_up_ms) / handled);
            let busy = r.reserved_ms + r.talking_ms + r.wrap_up_state_ms;
            r.occupancy_pct = pct(busy, busy + r.ready_ms);
            rows.push(r);
        }
    }
    rows
}
