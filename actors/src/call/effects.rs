//! The small effect sequences the call's steps share, each written once:
//! hanging a leg up, releasing a party, ending or withdrawing an offer,
//! moving a leg between the main and the consult bridge, a consulted or
//! invited agent joining as a party. Pure constructors: the steps decide
//! when and in which order, these say what each sequence is.

use super::{AgentContact, AgentNotice, Call, CallEffect, CallTimer, Offer, Party, PendingLeg};
use super::{Session, ORIGINATE_TIMEOUT_SLACK_MS};
use crate::agent::OfferOutcome;
use crate::ids::{AgentId, BridgeId, LegId, OfferToken};
use crate::ports::{HangupCause, PbxCommand};

/// Hangs `leg` up normally (the call ends the leg, not the line).
pub(super) fn hang_up(leg: LegId) -> CallEffect {
    CallEffect::Pbx(PbxCommand::Hangup {
        leg_id: leg,
        cause: HangupCause::Normal,
    })
}

/// Tells `agent` its part in the call is over, with the wrap-up it owes.
pub(super) fn left_call(agent: AgentId, wrap_up_ms: Option<u64>) -> CallEffect {
    CallEffect::Agent(agent, AgentNotice::LeftCall { wrap_up_ms })
}

/// Tells `agent` its offer `token` ended unanswered, and how.
pub(super) fn offer_ended(agent: AgentId, token: OfferToken, outcome: OfferOutcome) -> CallEffect {
    CallEffect::Agent(agent, AgentNotice::OfferEnded { token, outcome })
}

/// Ends an unanswered offer or pending leg: its leg is hung up with
/// `cause`, then its agent hears `outcome`.
pub(super) fn end_offer(
    leg: LegId,
    cause: HangupCause,
    agent: AgentId,
    token: OfferToken,
    outcome: OfferOutcome,
) -> [CallEffect; 2] {
    [
        CallEffect::Pbx(PbxCommand::Hangup { leg_id: leg, cause }),
        offer_ended(agent, token, outcome),
    ]
}

/// Releases an agent from the call: its `leg` is hung up, then it hears it
/// left, with the wrap-up it owes.
pub(super) fn release_agent(
    leg: LegId,
    agent: AgentId,
    wrap_up_ms: Option<u64>,
) -> [CallEffect; 2] {
    [hang_up(leg), left_call(agent, wrap_up_ms)]
}

/// Puts `leg` into `bridge`.
pub(super) fn bridge(bridge: BridgeId, leg: LegId) -> CallEffect {
    CallEffect::Pbx(PbxCommand::Bridge {
        bridge_id: bridge,
        leg_id: leg,
    })
}

/// Moves `leg` out of bridge `from` into bridge `to`.
pub(super) fn move_leg(leg: LegId, from: BridgeId, to: BridgeId) -> [CallEffect; 2] {
    [
        CallEffect::Pbx(PbxCommand::Unbridge {
            bridge_id: from,
            leg_id: leg.clone(),
        }),
        bridge(to, leg),
    ]
}

/// What an offered leg hanging up with `cause` means for its agent: a busy
/// or refusing device refused the offer, anything else missed it.
pub(super) fn outcome_of(cause: HangupCause) -> OfferOutcome {
    match cause {
        HangupCause::Busy | HangupCause::Rejected => OfferOutcome::Refused,
        _ => OfferOutcome::Missed,
    }
}

impl Call {
    /// Hangs the caller's leg up normally.
    pub(super) fn hang_up_caller(&self) -> CallEffect {
        hang_up(self.caller_leg.clone())
    }

    /// Takes the caller out of the main bridge (a blind transfer: the caller
    /// waits alone for the next agent).
    pub(super) fn unbridge_caller(&self) -> CallEffect {
        CallEffect::Pbx(PbxCommand::Unbridge {
            bridge_id: BridgeId::main(&self.id),
            leg_id: self.caller_leg.clone(),
        })
    }

    /// Rings `agent` on `leg` for offer `token` (the caller's number shown,
    /// the PBX giving up a little after edgecc's RONA at `deadline_ms`).
    pub(super) fn ring_leg(
        &self,
        agent: &AgentContact,
        leg: LegId,
        token: OfferToken,
        deadline_ms: u64,
    ) -> [CallEffect; 2] {
        [
            CallEffect::Pbx(PbxCommand::OriginateAgentLeg {
                leg_id: leg,
                endpoint: agent.endpoint.clone(),
                caller_id: self.ani.clone(),
                timeout_ms: self.offer_timeout_ms + ORIGINATE_TIMEOUT_SLACK_MS,
                auto_answer: agent.auto_accept,
            }),
            CallEffect::Timer(CallTimer::Rona(token), deadline_ms),
        ]
    }

    /// Plays `prompt` to the caller, then hangs the caller up.
    pub(super) fn announce_and_hang_up(&self, prompt: String) -> [CallEffect; 2] {
        [
            CallEffect::Pbx(PbxCommand::PlayAnnouncement {
                leg_id: self.caller_leg.clone(),
                prompt,
            }),
            self.hang_up_caller(),
        ]
    }

    /// Destroys the consult bridge (the consult is over).
    pub(super) fn destroy_consult_bridge(&self) -> CallEffect {
        CallEffect::Pbx(PbxCommand::DestroyBridge {
            bridge_id: BridgeId::consult(&self.id),
        })
    }
}

impl Party {
    /// Releases the party: its leg is hung up and its agent goes to the
    /// wrap-up the party owes.
    pub(super) fn release(self) -> [CallEffect; 2] {
        release_agent(self.leg, self.agent, self.wrap_up_ms)
    }
}

impl Offer {
    /// Withdraws the ringing offer (the call went elsewhere): its leg is
    /// hung up and its agent is free again without penalty.
    pub(super) fn withdraw(self) -> [CallEffect; 2] {
        end_offer(
            self.leg,
            HangupCause::Normal,
            self.agent,
            self.token,
            OfferOutcome::Withdrawn,
        )
    }
}

impl PendingLeg {
    /// Withdraws the leg before its answer (the consult or invite is called
    /// off): it is hung up and its agent is free again without penalty.
    pub(super) fn withdraw(&self) -> [CallEffect; 2] {
        end_offer(
            self.leg.clone(),
            HangupCause::Normal,
            self.to.agent.clone(),
            self.token,
            OfferOutcome::Withdrawn,
        )
    }

    /// The consulted or invited agent as a party of the call from `now_ms`
    /// (unmuted, no wrap-up: it did not take the call from a queue).
    pub(super) fn joined_party(&self, now_ms: u64) -> Party {
        Party {
            agent: self.to.agent.clone(),
            leg: self.leg.clone(),
            extension: self.to.extension.clone(),
            muted: false,
            wrap_up_ms: None,
            joined_ms: now_ms,
        }
    }
}

impl Session {
    /// The agents on the call, in the order they joined.
    pub(super) fn participants(&self) -> Vec<AgentId> {
        self.parties.iter().map(|p| p.agent.clone()).collect()
    }
}
