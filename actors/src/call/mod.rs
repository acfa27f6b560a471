//! The call state machine, pure: phases, offers (leases), the connected
//! session (parties, hold, mute, consult, conference) and the CRM records each
//! step produces. Inputs are methods; outputs are [`CallEffect`]s the actor
//! glue in [`actor`] carries out. No runtime, no I/O: unit-tested directly
//! and property-tested (`tests.rs`, `props.rs`).
//!
//! ```text
//! Routing -> Queued -> Offering(offers) -> Connected(session) -> Ended(reason)
//!              ^           |  reject / RONA: back to its  |
//!              +-----------+  place, the agent tried last  +-> transfer: Offering / Queued
//! ```
//!
//! # Dispatch
//!
//! Each input is a public method whose body is one `match` on the phase,
//! naming the handler of every phase that takes the input; every other phase
//! ignores it (events) or refuses it with a [`CallError`] (requests).
//!
//! | input | Routing | Queued | Offering | Dialing | Connected | Ended |
//! | --- | --- | --- | --- | --- | --- | --- |
//! | `enqueue` | join | re-join | join | refused | join | refused |
//! | `offer` | ring (direct) | ring (its queue) | ring (ring-all) | withdrawn | withdrawn | withdrawn |
//! | `accept` | stale | stale | `accept_offer` | stale | `accept_pending_leg` | stale |
//! | `reject` (`rona`: same, else ignored) | stale | stale | `offer_failed` | stale | `pending_failed` | stale |
//! | `leg_answered` | - | - | accept its offer | `customer_answered` | accept the pending leg | - |
//! | `leg_hung_up` (caller) | abandon | abandon | abandon | failed | completed | - |
//! | `max_wait_elapsed` | - | time out | time out when the offer fails | - | - | - |
//! | `dtmf` (the queue's callback digit) | - | callback entry | - | - | - | - |
//! | `announce` (timer) | - | play, re-arm | re-arm | - | - | - |
//! | controls (hold, consult, ...) | refused | refused | refused | refused (but hang-up) | `session` checks the party | refused |
//!
//! # Files
//!
//! - `state.rs`: the phase enum and what it holds, effects, errors.
//! - `queueing.rs`: joining a queue, max wait, time-out, final destinations.
//! - `offer.rs`: offering, accept, reject, RONA, redirect to the next agent.
//! - `legs.rs`: PBX leg events (answer, hang-up), abandon, the end.
//! - `connected.rs`: hold, mute, hang-up, leaving, blind transfer, wrap-up codes.
//! - `consult.rs`: consult and conference legs.
//! - `effects.rs`: the effect sequences several steps share (hang up,
//!   release a party, withdraw an offer, move a leg between bridges).
//! - `crm.rs`: the records the call writes (typed bodies from [`crate::crm`]).
//! - `reconcile.rs`: carrying on after a restart from the legs the PBX
//!   still has.
//! - `ending.rs`: an ending the PBX may not have carried out when the
//!   process died (kept while the caller hears it, finished after a
//!   restart).
//! - `limits.rs`: turned away by its queue's limits (full, unstaffed).
//! - `reconfigure.rs`: taking the reloaded rules of its queue (place and
//!   age kept).
//! - [`supervision`]: monitor, whisper, barge.
//! - `announce.rs`: place and expected-wait announcements while queued.
//! - `callback.rs`: callback entries (a digit, a hang-up), the dial back
//!   once the agent is connected, re-entry within the window.
//! - `overflow.rs`: leaving the queue under its overflow rules (caps,
//!   hours, staying in line when none takes the call).

pub mod actor;
mod announce;
mod callback;
mod conference_drop;
mod connected;
mod consult;
mod crm;
mod effects;
mod ending;
mod legs;
mod limits;
mod offer;
mod overflow;
mod plain;
mod queueing;
mod reconcile;
mod reconfigure;
mod state;
pub mod supervision;
mod wrap_up;

pub use announce::{announcement, Place};
pub use callback::{CallbackEntry, CallbackTrigger};
pub use ending::ENDING_WAIT_MAX_MS;
pub use state::{
    AgentContact, AgentNotice, CallEffect, CallError, CallNotice, CallPhase, CallTimer, Direction,
    HoldState, Offer, Party, PendingKind, PendingLeg, QueueRules, Session, TerminalReason,
};

use crate::ids::{AgentId, BridgeId, CallId, LegId, OfferToken, QueueId};
use crate::ports::{AttachedVar, PbxCommand};
use crate::shared::Shared;
use serde::{Deserialize, Serialize};

/// Most hops through queue final destinations before a call is announced and
/// hung up (guards against overflow cycles).
pub const QUEUE_HOPS_MAX: u8 = 4;
/// Extra time the PBX rings beyond the offer timeout, so edgecc's RONA always
/// decides first.
pub const ORIGINATE_TIMEOUT_SLACK_MS: u64 = 5_000;
/// Prompt when a call exceeded [`QUEUE_HOPS_MAX`] or an extension is missed.
pub const PROMPT_UNAVAILABLE: &str = "all-agents-busy";

/// Keeps at most [`crate::ATTACHED_VARS_MAX`] variables, keys truncated to
/// [`crate::ATTACHED_KEY_LEN_MAX`] characters.
pub fn normalize_attached(vars: Vec<AttachedVar>) -> Vec<AttachedVar> {
    vars.into_iter()
        .take(crate::ATTACHED_VARS_MAX)
        .map(|v| AttachedVar {
            key: v.key.chars().take(crate::ATTACHED_KEY_LEN_MAX).collect(),
            value: v
                .value
                .chars()
                .take(crate::ATTACHED_VALUE_LEN_MAX)
                .collect(),
        })
        .collect()
}

/// A call: everything needed to route it, control it and write its records.
/// Serializable, so it can be persisted and rebuilt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Call {
    /// The call and interaction id.
    pub id: CallId,
    /// Site prefix of correlation ids.
    pub site: String,
    /// In or out.
    pub direction: Direction,
    /// Caller number (customer number for outbound).
    pub ani: String,
    /// Dialed number.
    pub dnis: String,
    /// IVR variables, normalized.
    pub attached: Vec<AttachedVar>,
    /// The customer's leg.
    pub caller_leg: LegId,
    /// When it arrived.
    pub arrived_ms: u64,
    /// Where it is.
    pub phase: CallPhase,
    /// The queue it is or was in, and its rules: shared with the queue's
    /// handle and with every persisted copy of the call (stored as the
    /// rules themselves).
    pub rules: Option<Shared<QueueRules>>,
    /// Routing priority.
    pub priority: u8,
    /// Agents whose offer of it failed (rejected, missed, refused), oldest
    /// try first: its queue offers it to them again only after every other
    /// eligible agent (see [`crate::queue::placement`]).
    #[serde(alias = "excluded")]
    pub tried: Vec<AgentId>,
    /// When the call took its place in its current line (wall ms): set when
    /// it joins a queue, kept through failed offers and an overflow to
    /// another queue, so it rejoins ahead of later arrivals.
    #[serde(default)]
    pub queued_since_ms: Option<u64>,
    /// `interaction.create` was emitted (never twice).
    pub interaction_created: bool,
    /// `phone_log.create` was emitted (never twice).
    pub phone_log_created: bool,
    /// Ordinal of the last `interaction.update`.
    pub update_seq: u32,
    /// First answer.
    pub answered_ms: Option<u64>,
    /// Max wait elapsed while an offer was ringing: time out when it fails.
    pub max_wait_elapsed: bool,
    /// Queue stints (fences max-wait timers).
    pub stint: u32,
    /// Queue final-destination hops.
    pub queue_hops: u8,
    /// The caller hears music.
    pub moh: bool,
    /// Offer timeout.
    pub offer_timeout_ms: u64,
    /// Supervisors monitoring, whispering or barged in.
    #[serde(default)]
    pub supervisions: Vec<supervision::Supervision>,
    /// Deadline of the current stint's max-wait timer, kept so a restored
    /// call re-arms it (the timer itself lives in the actor).
    #[serde(default)]
    pub max_wait_deadline_ms: Option<u64>,
    /// The caller left the line and keeps the place (a callback, or a
    /// re-entry window); persisted so it survives a restart.
    #[serde(default)]
    pub callback: Option<CallbackEntry>,
    /// Announcements played this call: a play may still be going when an
    /// offer starts, so it is stopped.
    #[serde(default)]
    pub prompts_played: u32,
    /// The call's own priority (attached data, else its caller's), which an
    /// overflow goes back to unless the target queue keeps the current one.
    #[serde(default)]
    pub own_priority: u8,
    /// When the current queue stint began: a redirect after a missed offer
    /// keeps it, so aging and escalation steps count the whole wait (and a
    /// restored queue re-applies the steps reached). Older snapshots lack
    /// it: the queued phase's `since_ms` stands in.
    #[serde(default)]
    pub stint_since_ms: Option<u64>,
    /// Why its latest queue offers went to their agents (bounded, see
    /// [`crate::queue::explain`]); persisted with the call, shown by
    /// `GET /api/v1/calls/{id}/routing`.
    #[serde(default)]
    pub routing: crate::queue::explain::RoutingRecord,
    /// The queue an overflow rule moved the call to: it counts against
    /// that rule's cap until it ends (and again after a restart).
    #[serde(default)]
    pub overflow_slot: Option<QueueId>,
    /// No overflow rule took the call at its max wait: it stays in line
    /// until then (`stay_ms`), trying the rules again, and then goes to the
    /// final destination.
    #[serde(default)]
    pub overflow_stay_until_ms: Option<u64>,
    /// What happened to the call so far, for its detail record (kept by
    /// [`crate::cdr::observe`] from each step).
    #[serde(default)]
    pub trail: crate::cdr::CallTrail,
}

/// The effects of one step, in order.
type Fx = Vec<CallEffect>;

impl Call {
    /// An inbound call that just arrived; answers the caller leg.
    pub fn inbound(
        site: &str,
        leg: LegId,
        ani: String,
        dnis: String,
        attached: Vec<AttachedVar>,
        now_ms: u64,
        offer_timeout_ms: u64,
    ) -> (Self, Fx) {
        let attached = normalize_attached(attached);
        let priority = attached
            .iter()
            .find(|v| v.key == "priority")
            .and_then(|v| v.value.parse().ok());
        let call = Self {
            ani,
            dnis,
            attached,
            priority: priority.unwrap_or(0),
            own_priority: priority.unwrap_or(0),
            ..Self::begun(
                leg.call_id(),
                site,
                Direction::Inbound,
                leg.clone(),
                CallPhase::Routing,
                now_ms,
                offer_timeout_ms,
            )
        };
        (
            call,
            vec![CallEffect::Pbx(PbxCommand::Answer { leg_id: leg })],
        )
    }

    /// An outbound call dialed by `agent` (already Talking).
    pub fn outbound(
        site: &str,
        id: CallId,
        agent: &AgentContact,
        token: OfferToken,
        number: String,
        now_ms: u64,
        offer_timeout_ms: u64,
    ) -> (Self, Fx) {
        let agent_leg = LegId::for_offer(&id, token);
        let customer = LegId::customer(&id);
        let party = Party {
            agent: agent.agent.clone(),
            leg: agent_leg.clone(),
            extension: agent.extension.clone(),
            muted: false,
            wrap_up_ms: None,
            joined_ms: now_ms,
        };
        let call = Self {
            ani: number.clone(),
            dnis: agent.extension.clone(),
            ..Self::begun(
                id,
                site,
                Direction::Outbound,
                customer.clone(),
                CallPhase::Dialing { party },
                now_ms,
                offer_timeout_ms,
            )
        };
        let fx = vec![CallEffect::Pbx(PbxCommand::OutboundDial {
            agent_leg_id: agent_leg,
            endpoint: agent.endpoint.clone(),
            customer_leg_id: customer,
            number,
            timeout_ms: offer_timeout_ms + ORIGINATE_TIMEOUT_SLACK_MS,
        })];
        (call, fx)
    }

    /// A call that just began in `phase`: nothing routed, answered or
    /// written yet; [`Self::inbound`] and [`Self::outbound`] say who calls.
    fn begun(
        id: CallId,
        site: &str,
        direction: Direction,
        caller_leg: LegId,
        phase: CallPhase,
        now_ms: u64,
        offer_timeout_ms: u64,
    ) -> Self {
        Self {
            id,
            site: site.to_owned(),
            direction,
            ani: String::new(),
            dnis: String::new(),
            attached: Vec::new(),
            caller_leg,
            arrived_ms: now_ms,
            phase,
            rules: None,
            priority: 0,
            tried: Vec::new(),
            queued_since_ms: None,
            interaction_created: false,
            phone_log_created: false,
            update_seq: 0,
            answered_ms: None,
            max_wait_elapsed: false,
            stint: 0,
            queue_hops: 0,
            moh: false,
            offer_timeout_ms,
            supervisions: Vec::new(),
            max_wait_deadline_ms: None,
            callback: None,
            prompts_played: 0,
            own_priority: 0,
            stint_since_ms: None,
            routing: Default::default(),
            overflow_slot: None,
            overflow_stay_until_ms: None,
            trail: Default::default(),
        }
    }

    /// The timers a restored call must re-arm, with their deadlines: the
    /// max wait of the current stint (unless it already elapsed), the RONA
    /// of every ringing offer and of a consult or conference leg still
    /// ringing. A stale one is harmless (timers are fenced by stint and
    /// token); one whose deadline passed fires at once.
    pub fn armed_timers(&self) -> Vec<(CallTimer, u64)> {
        let mut timers = Vec::new();
        if let (Some(at), false) = (self.max_wait_deadline_ms, self.max_wait_elapsed) {
            if matches!(
                self.phase,
                CallPhase::Queued { .. } | CallPhase::Offering { .. }
            ) {
                timers.push((CallTimer::MaxWait(self.stint), at));
            }
        }
        timers.extend(self.waiting_timers());
        match &self.phase {
            CallPhase::Offering { offers, .. } => {
                timers.extend(
                    offers
                        .iter()
                        .map(|o| (CallTimer::Rona(o.token), o.deadline_ms)),
                );
            }
            CallPhase::Connected(s) => {
                if let Some(p) = s.pending.as_ref().filter(|p| !p.answered) {
                    timers.push((CallTimer::Rona(p.token), p.deadline_ms));
                }
            }
            _ => {}
        }
        timers
    }

    /// Whether the call is over.
    pub fn is_ended(&self) -> bool {
        matches!(self.phase, CallPhase::Ended(_))
    }

    /// The offers currently ringing (invariant 2: at most one unless ring-all).
    pub fn offers(&self) -> Vec<(AgentId, OfferToken)> {
        let mut out = Vec::new();
        match &self.phase {
            CallPhase::Offering { offers, .. } => {
                out.extend(offers.iter().map(|o| (o.agent.clone(), o.token)));
            }
            CallPhase::Connected(s) => {
                if let Some(p) = s.pending.as_ref().filter(|p| !p.answered) {
                    out.push((p.to.agent.clone(), p.token));
                }
            }
            _ => {}
        }
        out
    }

    /// The no-answer deadline of each offer of [`Call::offers`], in order.
    pub fn offer_deadlines_ms(&self) -> Vec<u64> {
        match &self.phase {
            CallPhase::Offering { offers, .. } => offers.iter().map(|o| o.deadline_ms).collect(),
            CallPhase::Connected(s) => s
                .pending
                .iter()
                .filter(|p| !p.answered)
                .map(|p| p.deadline_ms)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The offer or pending consult/conference leg ringing on `leg`, not
    /// answered yet: its agent and token (its answer or loss is news).
    fn unanswered_leg(&self, leg: &LegId) -> Option<(AgentId, OfferToken)> {
        match &self.phase {
            CallPhase::Offering { offers, .. } => offers
                .iter()
                .find(|o| &o.leg == leg)
                .map(|o| (o.agent.clone(), o.token)),
            CallPhase::Connected(s) => s
                .pending
                .as_ref()
                .filter(|p| &p.leg == leg && !p.answered)
                .map(|p| (p.to.agent.clone(), p.token)),
            CallPhase::Routing
            | CallPhase::Queued { .. }
            | CallPhase::Dialing { .. }
            | CallPhase::Ended(_) => None,
        }
    }

    /// Agents on the call.
    pub fn parties(&self) -> Vec<AgentId> {
        match &self.phase {
            CallPhase::Connected(s) => {
                let mut v = s.participants();
                if let Some(p) = s.pending.as_ref().filter(|p| p.answered) {
                    v.push(p.to.agent.clone());
                }
                v
            }
            CallPhase::Dialing { party } => vec![party.agent.clone()],
            _ => Vec::new(),
        }
    }

    fn wrong(&self, action: &'static str) -> CallError {
        CallError::WrongPhase {
            call: self.id.clone(),
            action,
            phase: self.phase.name(),
        }
    }

    fn moh_on(&mut self, fx: &mut Fx) {
        if !self.moh {
            self.moh = true;
            fx.push(CallEffect::Pbx(PbxCommand::Hold {
                leg_id: self.caller_leg.clone(),
            }));
        }
    }

    fn moh_off(&mut self, fx: &mut Fx) {
        if self.moh {
            self.moh = false;
            fx.push(CallEffect::Pbx(PbxCommand::Resume {
                leg_id: self.caller_leg.clone(),
            }));
        }
    }

    /// The call is over: supervisors leave, an answered call writes its
    /// `ended` update and destroys its bridge, a call handed to an external
    /// number writes its `ended` update too (the record of where it went:
    /// it gets no callback work item), and the one terminal reason is set
    /// (invariant 3: nothing happens to an ended call after this).
    fn end(&mut self, reason: TerminalReason, fx: &mut Fx, now_ms: u64) {
        debug_assert!(!self.is_ended(), "call {} ends twice", self.id);
        self.release_all_supervisions(fx);
        let overflowed = matches!(reason, TerminalReason::Overflowed { .. });
        if self.answered_ms.is_some() || overflowed {
            let event = crate::crm::UpdateEvent::Ended {
                terminal: reason.clone(),
                duration_ms: now_ms.saturating_sub(self.arrived_ms),
                talk_ms: self
                    .answered_ms
                    .map_or(0, |answered| now_ms.saturating_sub(answered)),
            };
            self.push_update(fx, event, now_ms);
        }
        if self.answered_ms.is_some() {
            fx.push(CallEffect::Pbx(PbxCommand::DestroyBridge {
                bridge_id: BridgeId::main(&self.id),
            }));
        }
        self.phase = CallPhase::Ended(reason.clone());
        fx.push(CallEffect::Ended(reason));
    }
}

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
