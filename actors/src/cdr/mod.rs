//! Call detail records: what happened to each call, derived from the call's
//! own state transitions (never a second bookkeeping path), and each
//! agent's state intervals, derived from the agent's.
//!
//! # How a record is kept
//!
//! - [`CallTrail`] lives inside the [`Call`] (`Call::trail`), so it is
//!   persisted with every call state record (`c/{call}`) and comes back
//!   with the call after a restart. The call actor calls [`observe`] with
//!   the effects of every step before it carries them out: the trail reads
//!   the step's facts (a queue joined, an offer ended with an outcome, an
//!   agent left with its wrap-up, the terminal reason) and compares the
//!   call's state after the step with what it saw last (offers ringing,
//!   parties on the call, hold).
//! - Once the call is ended its [`CallDetailRecord`] (the trail plus who
//!   called whom and when) is persisted as a history record under
//!   [`StateKey::CallDetail`](crate::durable::StateKey::CallDetail), through
//!   the same state port, so the same outbox FIFO and storage group commit
//!   as the call's state: the actor persists it right before the ended call
//!   state, so (prefix rule) an ended call that is durable has its record
//!   durable too; a later step (a wrap-up code) rewrites it under the same
//!   key.
//! - [`agent::ActivityTracker`] turns an agent's state changes into
//!   [`agent::AgentInterval`]s (one per state left, zero-length ones
//!   skipped) persisted under
//!   [`StateKey::AgentInterval`](crate::durable::StateKey::AgentInterval).
//!
//! History keys start with [`HISTORY_KEY_PREFIX`], which sorts after every
//! state key: a restart reads the state and stops at the first history key.
//!
//! ```text
//! key                                 record
//! ~c/{arrived_ms:020}/{call}           CallDetail (one per call)
//! ~g/{start_ms:020}/{agent}            AgentInterval (one per state left)
//! ```
//!
//! The record's routing explanation ([`CallTrail::explanation`]) is the
//! call's own [`RoutingRecord`](crate::queue::explain::RoutingRecord) (its
//! latest explained offers), copied in when the record is made.

pub mod agent;
pub mod service_level;

use crate::agent::{OfferOutcome, OfferPurpose};
use crate::call::{
    AgentNotice, Call, CallEffect, CallPhase, Direction, PendingKind, TerminalReason,
};
use crate::crm::{CrmRecord, RecordKind};
use crate::ids::{AgentId, CallId, OfferToken, QueueId};
use serde::{Deserialize, Serialize};

/// First byte of every history key: `~` sorts after every state key (`a/`,
/// `c/`, `p`, `q/`, `s/`, `t`), so history never slows a restart's read.
pub const HISTORY_KEY_PREFIX: u8 = b'~';
/// Key prefix of call detail records (then the arrival, zero-padded).
pub const CALL_DETAIL_KEY_PREFIX: &str = "~c/";
/// Key prefix of agent intervals (then the start, zero-padded).
pub const AGENT_INTERVAL_KEY_PREFIX: &str = "~g/";
/// Most offers a trail keeps: a call bounced through a RONA storm keeps
/// its first offers and counts the rest in [`CallTrail::offers_dropped`],
/// so a call's state record stays small.
pub const TRAIL_OFFERS_MAX: usize = 64;
/// Most queue stints a trail keeps (overflow hops are bounded by
/// [`crate::call::QUEUE_HOPS_MAX`]; transfers back into queues are not).
pub const TRAIL_QUEUES_MAX: usize = 16;
/// Most party entries a trail keeps.
pub const TRAIL_PARTIES_MAX: usize = 32;

/// The key of a call's detail record.
pub fn call_detail_key(arrived_ms: u64, call: &CallId) -> Vec<u8> {
    format!("{CALL_DETAIL_KEY_PREFIX}{arrived_ms:020}/{call}").into_bytes()
}

/// The first key of call detail records of calls arrived at or after
/// `arrived_ms` (a range start for reading history).
pub fn call_detail_key_from(arrived_ms: u64) -> Vec<u8> {
    format!("{CALL_DETAIL_KEY_PREFIX}{arrived_ms:020}/").into_bytes()
}

/// How a queue stint ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StintOutcome {
    /// An agent answered the call from this queue.
    Answered,
    /// The caller hung up while waiting.
    Abandoned,
    /// The call timed out to a work item from this queue.
    TimedOut,
    /// The call left for another queue or an external number unanswered.
    Overflowed,
    /// A PBX error, or the PBX lost the call, while it waited.
    Failed,
}

/// One stay of the call in a queue: from joining to answer or leaving.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStint {
    /// The queue waited in.
    pub queue: QueueId,
    /// When the call joined it (wall ms): the interval a report counts the
    /// call in.
    pub entered_ms: u64,
    /// When it was answered from or left the queue; `None` while waiting.
    pub left_ms: Option<u64>,
    /// How the stay ended; `None` while waiting.
    pub outcome: Option<StintOutcome>,
    /// The agent who answered, for an answered stint.
    pub agent: Option<AgentId>,
}

impl QueueStint {
    /// The wait (join to answer or leaving), once the stint is over.
    pub fn wait_ms(&self) -> Option<u64> {
        self.left_ms.map(|l| l.saturating_sub(self.entered_ms))
    }
}

/// How an offer ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferResult {
    /// The agent answered.
    Answered,
    /// Rejected from the desktop.
    Rejected,
    /// The device refused it (busy, rejected).
    Refused,
    /// No answer in time (RONA) or the device failed.
    Missed,
    /// The call went elsewhere.
    Withdrawn,
}

impl OfferResult {
    /// Whether the offer counts as the agent's no-answer in reports.
    pub fn is_no_answer(self) -> bool {
        matches!(self, Self::Rejected | Self::Refused | Self::Missed)
    }
}

impl From<OfferOutcome> for OfferResult {
    fn from(o: OfferOutcome) -> Self {
        match o {
            OfferOutcome::Rejected => Self::Rejected,
            OfferOutcome::Refused => Self::Refused,
            OfferOutcome::Missed => Self::Missed,
            OfferOutcome::Withdrawn => Self::Withdrawn,
        }
    }
}

/// One offer of the call to an agent (a queue offer, a direct call, a
/// transfer, a consult or conference leg).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferDetail {
    /// The agent rung.
    pub agent: AgentId,
    /// The offer's fencing token: ties the record to the agent's lease.
    pub token: OfferToken,
    /// Why the agent was rung (queue, direct, transfer, consult,
    /// conference).
    pub purpose: OfferPurpose,
    /// When it started ringing (wall ms).
    pub offered_ms: u64,
    /// When it was answered or ended; `None` while ringing.
    pub ended_ms: Option<u64>,
    /// How it ended; `None` while ringing.
    pub outcome: Option<OfferResult>,
}

/// One agent's part in the connected call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartyDetail {
    /// The agent.
    pub agent: AgentId,
    /// When it joined the call (wall ms).
    pub joined_ms: u64,
    /// When it left; `None` while on the call.
    pub left_ms: Option<u64>,
    /// The wrap-up the call granted it on leaving (the queue's wrap-up);
    /// the agent may end it early, which its intervals show.
    pub wrap_up_ms: u64,
}

/// What happened to the call so far, kept in the call's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallTrail {
    /// Queue stints, in order.
    #[serde(default)]
    pub queues: Vec<QueueStint>,
    /// Offers, in order (at most [`TRAIL_OFFERS_MAX`]).
    #[serde(default)]
    pub offers: Vec<OfferDetail>,
    /// Offers left out once [`TRAIL_OFFERS_MAX`] was reached.
    #[serde(default)]
    pub offers_dropped: u32,
    /// Agents on the call, in joining order.
    #[serde(default)]
    pub parties: Vec<PartyDetail>,
    /// When the caller was first put on hold in the current hold, if held.
    #[serde(default)]
    pub hold_since_ms: Option<u64>,
    /// Total time the caller was held (wall ms), finished holds only.
    #[serde(default)]
    pub hold_ms: u64,
    /// Holds started.
    #[serde(default)]
    pub holds: u32,
    /// Blind transfers: to an agent, or back into a queue after answer.
    #[serde(default)]
    pub transfers: u32,
    /// Consult legs started.
    #[serde(default)]
    pub consults: u32,
    /// Times a conference formed (a second agent joined the talk).
    #[serde(default)]
    pub conferences: u32,
    /// Most agents on the call at once, to count conferences.
    #[serde(default)]
    pub parties_now: u32,
    /// When the call ended.
    #[serde(default)]
    pub ended_ms: Option<u64>,
    /// Its one terminal reason.
    #[serde(default)]
    pub terminal: Option<TerminalReason>,
    /// Why its latest queue offers went to their agents: the call's
    /// [`RoutingRecord`](crate::queue::explain::RoutingRecord), set by
    /// [`CallDetailRecord::of`]; `None` when no queue offer was made.
    #[serde(default)]
    pub explanation: Option<Explanation>,
}

/// A detail record's routing explanation: the call's own record when it
/// is made (its explanations shared with the call, so an ended call's
/// step neither copies nor encodes them on the actors' thread), and as
/// stored when read back, whatever its shape, so a row written by another
/// version always decodes. Both are written as the same JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Explanation {
    /// The call's record (a row written by this version reads back so).
    Kept(crate::queue::explain::RoutingRecord),
    /// What the row holds, when it is not a record of this version.
    Read(serde_json::Value),
}

/// A finished call's detail record: the history row reports are built
/// from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallDetailRecord {
    /// The call.
    pub call: CallId,
    /// The CRM interaction's correlation id (what the CRM knows it by), if
    /// the call created one.
    pub interaction_id: Option<String>,
    /// In or out.
    pub direction: Direction,
    /// The caller's number.
    pub ani: String,
    /// The dialed number.
    pub dnis: String,
    /// When it arrived (wall ms).
    pub arrived_ms: u64,
    /// When an agent first answered.
    pub answered_ms: Option<u64>,
    /// Talk time: first answer to end, less the time on hold.
    pub talk_ms: u64,
    /// Wrap-up granted to its agents, summed.
    pub wrap_up_ms: u64,
    /// IVR variables attached to the call (what-if replays them).
    #[serde(default)]
    pub data: Vec<crate::ports::AttachedVar>,
    /// Everything else that happened.
    #[serde(flatten)]
    pub trail: CallTrail,
}

impl CallDetailRecord {
    /// The record of `call` as it stands (meant for an ended call).
    pub fn of(call: &Call) -> Self {
        let t = &call.trail;
        let ended = t.ended_ms.unwrap_or(call.arrived_ms);
        let talk_ms = call
            .answered_ms
            .map_or(0, |a| ended.saturating_sub(a).saturating_sub(t.hold_ms));
        Self {
            call: call.id.clone(),
            interaction_id: call.interaction_created.then(|| {
                CrmRecord::correlation_id(&call.site, &call.id, RecordKind::InteractionCreate, 0)
            }),
            direction: call.direction,
            ani: call.ani.clone(),
            dnis: call.dnis.clone(),
            arrived_ms: call.arrived_ms,
            answered_ms: call.answered_ms,
            talk_ms,
            wrap_up_ms: t.parties.iter().map(|p| p.wrap_up_ms).sum(),
            data: call.attached.clone(),
            trail: CallTrail {
                explanation: (call.routing.offers_total > 0)
                    .then(|| Explanation::Kept(call.routing.clone())),
                ..t.clone()
            },
        }
    }

    /// Its history key.
    pub fn key(&self) -> Vec<u8> {
        call_detail_key(self.arrived_ms, &self.call)
    }

    /// Handle time: talk, hold and wrap-up.
    pub fn handle_ms(&self) -> u64 {
        self.talk_ms + self.trail.hold_ms + self.wrap_up_ms
    }
}

/// Updates `call.trail` from one step: `fx` are the step's effects (not
/// yet carried out), the call is in its state after the step.
pub fn observe(call: &mut Call, fx: &[CallEffect], now_ms: u64) {
    // A call answered before joins a queue only as a transfer.
    let answered = call.answered_ms.is_some();
    let mut trail = std::mem::take(&mut call.trail);
    for effect in fx {
        match effect {
            CallEffect::Enqueue { queue, .. } => trail.joined(queue, answered, now_ms),
            CallEffect::Agent(agent, AgentNotice::OfferEnded { token, outcome }) => {
                trail.offer_ended(agent, *token, (*outcome).into(), now_ms)
            }
            CallEffect::Agent(agent, AgentNotice::LeftCall { wrap_up_ms }) => {
                trail.left(agent, wrap_up_ms.unwrap_or(0), now_ms)
            }
            _ => {}
        }
    }
    trail.follow_state(call, now_ms);
    for effect in fx {
        if let CallEffect::Ended(reason) = effect {
            trail.ended(reason, now_ms);
        }
    }
    call.trail = trail;
}

impl CallTrail {
    /// The queue stint still open (waiting, not answered).
    fn open_stint(&mut self) -> Option<&mut QueueStint> {
        self.queues.last_mut().filter(|s| s.outcome.is_none())
    }

    fn close_stint(&mut self, outcome: StintOutcome, agent: Option<&AgentId>, now_ms: u64) {
        if let Some(s) = self.open_stint() {
            s.left_ms = Some(now_ms);
            s.outcome = Some(outcome);
            s.agent = agent.cloned();
        }
    }

    /// The call joins `queue` (a re-join of the queue it waits in after a
    /// failed offer keeps the stint).
    fn joined(&mut self, queue: &QueueId, answered: bool, now_ms: u64) {
        if let Some(open) = self.open_stint() {
            if &open.queue == queue {
                return;
            }
        }
        self.close_stint(StintOutcome::Overflowed, None, now_ms);
        if answered {
            self.transfers += 1;
        }
        if self.queues.len() < TRAIL_QUEUES_MAX {
            self.queues.push(QueueStint {
                queue: queue.clone(),
                entered_ms: now_ms,
                left_ms: None,
                outcome: None,
                agent: None,
            });
        }
    }

    fn offer_ended(
        &mut self,
        agent: &AgentId,
        token: OfferToken,
        result: OfferResult,
        now_ms: u64,
    ) {
        if let Some(o) = self
            .offers
            .iter_mut()
            .find(|o| o.token == token && &o.agent == agent && o.outcome.is_none())
        {
            o.outcome = Some(result);
            o.ended_ms = Some(now_ms);
        }
    }

    fn left(&mut self, agent: &AgentId, wrap_up_ms: u64, now_ms: u64) {
        if let Some(p) = self.parties.iter_mut().rev().find(|p| &p.agent == agent) {
            p.left_ms.get_or_insert(now_ms);
            p.wrap_up_ms = wrap_up_ms;
        }
    }

    /// Compares the call's state after the step with what the trail saw:
    /// new offers, answers, parties joining and leaving, hold.
    fn follow_state(&mut self, call: &Call, now_ms: u64) {
        // Offers ringing now (queue, direct and transfer offers, and a
        // consult or conference leg).
        let ringing: Vec<(AgentId, OfferToken, OfferPurpose)> = match &call.phase {
            CallPhase::Offering { offers, .. } => offers
                .iter()
                .map(|o| (o.agent.clone(), o.token, o.purpose.clone()))
                .collect(),
            CallPhase::Connected(s) => s
                .pending
                .iter()
                .map(|p| {
                    let purpose = match p.kind {
                        PendingKind::Consult => OfferPurpose::Consult,
                        PendingKind::Conference => OfferPurpose::Conference,
                    };
                    (p.to.agent.clone(), p.token, purpose)
                })
                .collect(),
            _ => Vec::new(),
        };
        for (agent, token, purpose) in ringing {
            if self.offers.iter().any(|o| o.token == token) {
                continue;
            }
            match purpose {
                OfferPurpose::Transfer => self.transfers += 1,
                OfferPurpose::Consult => self.consults += 1,
                _ => {}
            }
            if self.offers.len() >= TRAIL_OFFERS_MAX {
                self.offers_dropped = self.offers_dropped.saturating_add(1);
                continue;
            }
            self.offers.push(OfferDetail {
                agent,
                token,
                purpose,
                offered_ms: now_ms,
                ended_ms: None,
                outcome: None,
            });
        }
        // Agents talking now.
        let talking: Vec<AgentId> = match &call.phase {
            CallPhase::Connected(s) => {
                let mut v: Vec<AgentId> = s.parties.iter().map(|p| p.agent.clone()).collect();
                if let Some(p) = s.pending.as_ref().filter(|p| p.answered) {
                    v.push(p.to.agent.clone());
                }
                v
            }
            CallPhase::Dialing { party } => vec![party.agent.clone()],
            _ => Vec::new(),
        };
        let connected = matches!(call.phase, CallPhase::Connected(_));
        for agent in &talking {
            // Its ringing offer was answered.
            if let Some(o) = self
                .offers
                .iter_mut()
                .rev()
                .find(|o| &o.agent == agent && o.outcome.is_none())
            {
                o.outcome = Some(OfferResult::Answered);
                o.ended_ms = Some(now_ms);
            }
            let on = self
                .parties
                .iter()
                .any(|p| &p.agent == agent && p.left_ms.is_none());
            if !on && self.parties.len() < TRAIL_PARTIES_MAX {
                self.parties.push(PartyDetail {
                    agent: agent.clone(),
                    joined_ms: now_ms,
                    left_ms: None,
                    wrap_up_ms: 0,
                });
            }
        }
        if connected {
            if let Some(first) = talking.first() {
                self.close_stint(StintOutcome::Answered, Some(first), now_ms);
            }
        }
        for p in self.parties.iter_mut().filter(|p| p.left_ms.is_none()) {
            if !talking.contains(&p.agent) {
                p.left_ms = Some(now_ms);
            }
        }
        let in_talk = match &call.phase {
            CallPhase::Connected(s) => s.parties.len() as u32,
            _ => 0,
        };
        if in_talk >= 2 && in_talk > self.parties_now {
            self.conferences += 1;
        }
        self.parties_now = in_talk;
        let held = matches!(&call.phase, CallPhase::Connected(s) if s.held);
        match (held, self.hold_since_ms) {
            (true, None) => {
                self.hold_since_ms = Some(now_ms);
                self.holds += 1;
            }
            (false, Some(since)) => {
                self.hold_ms += now_ms.saturating_sub(since);
                self.hold_since_ms = None;
            }
            _ => {}
        }
    }

    fn ended(&mut self, reason: &TerminalReason, now_ms: u64) {
        if let Some(since) = self.hold_since_ms.take() {
            self.hold_ms += now_ms.saturating_sub(since);
        }
        let outcome = match reason {
            TerminalReason::Completed => StintOutcome::Answered,
            TerminalReason::Abandoned => StintOutcome::Abandoned,
            TerminalReason::TimedOut => StintOutcome::TimedOut,
            TerminalReason::Overflowed { .. } => StintOutcome::Overflowed,
            TerminalReason::Failed { .. } | TerminalReason::PbxLost => StintOutcome::Failed,
        };
        self.close_stint(outcome, None, now_ms);
        for o in self.offers.iter_mut().filter(|o| o.outcome.is_none()) {
            o.outcome = Some(OfferResult::Withdrawn);
            o.ended_ms = Some(now_ms);
        }
        for p in self.parties.iter_mut().filter(|p| p.left_ms.is_none()) {
            p.left_ms = Some(now_ms);
        }
        self.parties_now = 0;
        self.ended_ms = Some(now_ms);
        self.terminal = Some(reason.clone());
    }
}

#[cfg(test)]
mod tests;
