//! The agent's routing score, kept by the agent and persisted with it: how
//! fast it answers (a moving average of the time from offer to connection)
//! and how its routed offers ended unanswered (no-answer, reject from the
//! desktop, busy/refused by the device). Queues use [`AgentScore::rank`] to
//! break ties between agents their strategy ranks equal.
//!
//! Only routed offers count ([`super::OfferPurpose::penalised`]: queue calls,
//! blind transfers, calls to the extension); a consult or conference leg a
//! colleague rings does not.

use super::OfferOutcome;
use serde::{Deserialize, Serialize};

/// Weight of the newest sample in the moving averages: 1 / this (an
/// exponential moving average over roughly the last eight offers).
pub const SCORE_SMOOTHING: u64 = 8;
/// A miss-share sample for an offer that ended unanswered (per mille).
const MISS_PERMILLE: u64 = 1_000;

/// The score. Every field defaults, so snapshots written before it existed
/// read as an agent with no history.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentScore {
    /// Moving average of the answer time (offer to connection, ms); `None`
    /// before the first answer.
    pub answer_ms_avg: Option<u64>,
    /// Routed offers answered.
    pub answered: u64,
    /// Routed offers that rang out (no answer before the offer timeout, or
    /// the device failed).
    pub no_answers: u64,
    /// Routed offers rejected from the desktop.
    pub rejects: u64,
    /// Routed offers the device refused (busy, cause 17, or rejected, cause
    /// 21).
    pub refusals: u64,
    /// Moving share of routed offers that ended unanswered, per mille (0:
    /// answers everything; 1000: answers nothing lately).
    pub miss_permille: u64,
    /// When the routed offer now alerting began (wall ms), to measure its
    /// answer time; `None` between offers.
    pub offered_ms: Option<u64>,
}

/// One step of an exponential moving average towards `sample`.
fn smooth(avg: u64, sample: u64) -> u64 {
    // avg + (sample - avg) / N, in integers and without underflow.
    (avg * (SCORE_SMOOTHING - 1) + sample) / SCORE_SMOOTHING
}

impl AgentScore {
    /// A routed offer starts alerting at `now_ms`.
    pub fn offered(&mut self, now_ms: u64) {
        self.offered_ms = Some(now_ms);
    }

    /// The routed offer was answered at `now_ms`.
    pub fn answered(&mut self, now_ms: u64) {
        self.answered += 1;
        self.miss_permille = smooth(self.miss_permille, 0);
        if let Some(start) = self.offered_ms.take() {
            let took = now_ms.saturating_sub(start);
            self.answer_ms_avg = Some(match self.answer_ms_avg {
                Some(avg) => smooth(avg, took),
                None => took,
            });
        }
    }

    /// The routed offer ended without a connection. A withdrawn offer (the
    /// call went elsewhere) is nobody's fault and counts nothing.
    pub fn unanswered(&mut self, outcome: OfferOutcome) {
        self.offered_ms = None;
        let counter = match outcome {
            OfferOutcome::Withdrawn => return,
            OfferOutcome::Missed => &mut self.no_answers,
            OfferOutcome::Rejected => &mut self.rejects,
            OfferOutcome::Refused => &mut self.refusals,
        };
        *counter += 1;
        self.miss_permille = smooth(self.miss_permille, MISS_PERMILLE);
    }

    /// The tie-breaker, lower first: the agent that missed fewer of its
    /// recent offers, then the one that answers faster. An agent with no
    /// history ranks 0 (it has not missed anything yet).
    pub fn rank(&self) -> u64 {
        let answer = self.answer_ms_avg.unwrap_or(0).min(u64::from(u32::MAX));
        (self.miss_permille.min(MISS_PERMILLE) << 32) | answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{Agent, AgentSettings, NotReadyReason, SystemReason};
    use crate::durable::StateRecord;
    use crate::ids::AgentId;

    /// An agent record written before the score and the back-off existed
    /// (no `score`, `backoff` in its stats or settings) still reads, as an
    /// agent with no history and no back-off.
    #[test]
    fn old_agent_records_read_without_a_score() {
        let old = serde_json::json!({
            "record": "agent",
            "id": "a1",
            "state": { "state": "ready", "since_ms": 5 },
            "pending": null,
            "resume_not_ready": null,
            "stats": { "calls_handled": 3, "talk_ms_total": 900, "rona_count": 1,
                       "reject_count": 2, "refusals_in_row": 0 },
            "epoch": 7,
            "settings": { "wrap_up_ms": null, "reject_delay_ms": 0,
                          "rona_sets_not_ready": true,
                          "rona_reason": { "system": "rona" },
                          "device_refusals_max": 3 }
        });
        let StateRecord::Agent(agent) = serde_json::from_value(old).unwrap() else {
            panic!("not an agent record");
        };
        let mut expected = Agent::new(
            AgentId::new("a1"),
            AgentSettings {
                wrap_up_ms: None,
                reject_delay_ms: 0,
                rona_sets_not_ready: true,
                rona_reason: NotReadyReason::System(SystemReason::Rona),
                device_refusals_max: 3,
                backoff: Default::default(),
            },
        );
        expected.state = crate::agent::AgentState::Ready { since_ms: 5 };
        expected.stats.calls_handled = 3;
        expected.stats.talk_ms_total = 900;
        expected.stats.rona_count = 1;
        expected.stats.reject_count = 2;
        expected.epoch = 7;
        assert_eq!(*agent, expected);
        assert_eq!(agent.stats.score, AgentScore::default());
    }

    /// The average moves an eighth of the way; misses rank behind answers;
    /// among agents that never miss the faster ranks first.
    #[test]
    fn averages_counts_and_rank() {
        let mut fast = AgentScore::default();
        fast.offered(0);
        fast.answered(800);
        assert_eq!(fast.answer_ms_avg, Some(800));
        fast.offered(1_000);
        fast.answered(2_600);
        assert_eq!(fast.answer_ms_avg, Some((800 * 7 + 1_600) / 8));
        let mut slow = AgentScore::default();
        slow.offered(0);
        slow.answered(5_000);
        assert!(fast.rank() < slow.rank());
        let mut missing = fast.clone();
        missing.offered(3_000);
        missing.unanswered(OfferOutcome::Missed);
        missing.unanswered(OfferOutcome::Rejected);
        missing.unanswered(OfferOutcome::Refused);
        missing.unanswered(OfferOutcome::Withdrawn);
        assert_eq!(
            (missing.no_answers, missing.rejects, missing.refusals),
            (1, 1, 1)
        );
        assert_eq!(missing.offered_ms, None);
        assert!(slow.rank() < missing.rank(), "a miss outweighs speed");
    }
}
