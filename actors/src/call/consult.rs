//! Consult and conference legs on the connected call: one extra leg at a
//! time ([`super::PendingLeg`]) rung for a consult (the caller holds) or a
//! conference invite; its answer, failure, cancel, and how a consult ends
//! (back to the consulter, completed as a transfer, or made a conference).

use super::effects::{bridge, end_offer, hang_up, left_call, move_leg, offer_ended};
use super::{AgentContact, Call, CallEffect, CallError, CallNotice, CallPhase};
use super::{CallTimer, Fx, PendingKind, PendingLeg, ORIGINATE_TIMEOUT_SLACK_MS};
use crate::agent::OfferOutcome;
use crate::crm::{ConsultEnd, LegFailure, UpdateEvent, ViaConsult};
use crate::ids::{AgentId, BridgeId, LegId, OfferToken};
use crate::ports::{HangupCause, PbxCommand};

impl Call {
    /// Consult: the caller holds, `to` (reserved, purpose Consult) is dialed.
    pub fn consult(
        &mut self,
        from: &AgentId,
        to: &AgentContact,
        token: OfferToken,
        now_ms: u64,
    ) -> Result<Fx, CallError> {
        self.single_party(from, "consult")?;
        let leg = LegId::for_offer(&self.id, token);
        let deadline_ms = now_ms + self.offer_timeout_ms;
        let timeout_ms = self.offer_timeout_ms + ORIGINATE_TIMEOUT_SLACK_MS;
        let s = self.session(from, "consult")?;
        let extension = s.parties[0].extension.clone();
        s.held = true;
        s.pending = Some(PendingLeg {
            kind: PendingKind::Consult,
            from: from.clone(),
            to: to.clone(),
            token,
            leg: leg.clone(),
            deadline_ms,
            answered: false,
            accepted_ms: None,
        });
        let mut fx = Vec::new();
        self.moh_on(&mut fx);
        fx.push(CallEffect::Pbx(PbxCommand::ConsultDial {
            leg_id: leg,
            endpoint: to.endpoint.clone(),
            caller_id: if extension.is_empty() {
                from.0.clone()
            } else {
                extension
            },
            timeout_ms,
        }));
        fx.push(CallEffect::Timer(CallTimer::Rona(token), deadline_ms));
        let event = UpdateEvent::ConsultInitiated {
            agent: from.clone(),
            target: to.agent.clone(),
        };
        self.push_update(&mut fx, event, now_ms);
        Ok(fx)
    }

    /// Conference: ring `to` (reserved, purpose Conference) to join the call.
    pub fn add_to_conference(
        &mut self,
        from: &AgentId,
        to: &AgentContact,
        token: OfferToken,
        now_ms: u64,
    ) -> Result<Fx, CallError> {
        self.can_start_leg(from, true)?;
        let leg = LegId::for_offer(&self.id, token);
        let deadline_ms = now_ms + self.offer_timeout_ms;
        let s = self.session(from, "add to conference")?;
        s.pending = Some(PendingLeg {
            kind: PendingKind::Conference,
            from: from.clone(),
            to: to.clone(),
            token,
            leg: leg.clone(),
            deadline_ms,
            answered: false,
            accepted_ms: None,
        });
        let mut fx = Vec::from(self.ring_leg(to, leg, token, deadline_ms));
        let event = UpdateEvent::ConferenceInvite {
            agent: from.clone(),
            target: to.agent.clone(),
        };
        self.push_update(&mut fx, event, now_ms);
        Ok(fx)
    }

    /// Connected: the pending consult or conference leg answered. A consult
    /// moves the consulter to the consult bridge (the caller keeps holding);
    /// a conference invitee joins the main bridge as a party.
    pub(super) fn accept_pending_leg(
        &mut self,
        token: OfferToken,
        now_ms: u64,
    ) -> Result<Fx, CallError> {
        let id = self.id.clone();
        let ani = self.ani.clone();
        let CallPhase::Connected(s) = &mut self.phase else {
            return Err(CallError::StaleOffer { call: id, token });
        };
        let Some(p) = s
            .pending
            .as_mut()
            .filter(|p| p.token == token && !p.answered)
        else {
            return Err(CallError::StaleOffer { call: id, token });
        };
        let mut fx = Vec::new();
        match p.kind {
            PendingKind::Consult => {
                p.answered = true;
                let to = p.to.agent.clone();
                let leg = p.leg.clone();
                let from_leg = s
                    .parties
                    .iter()
                    .find(|x| x.agent == p.from)
                    .map(|x| x.leg.clone());
                let consult = BridgeId::consult(&id);
                if let Some(from_leg) = from_leg {
                    fx.extend(move_leg(from_leg, BridgeId::main(&id), consult.clone()));
                }
                fx.push(bridge(consult, leg));
                fx.push(CallEffect::ConfirmAccept {
                    agent: to.clone(),
                    token,
                });
                let event = UpdateEvent::LegStarted {
                    reason: ViaConsult::Consult,
                    agent: to,
                    customer_ani: ani,
                };
                self.push_update(&mut fx, event, now_ms);
            }
            PendingKind::Conference => {
                let Some(p) = s.pending.take() else {
                    return Err(CallError::StaleOffer {
                        call: id.clone(),
                        token,
                    });
                };
                s.parties.push(p.joined_party(now_ms));
                let participants = s.participants();
                fx.push(bridge(BridgeId::main(&id), p.leg));
                fx.push(CallEffect::ConfirmAccept {
                    agent: p.to.agent.clone(),
                    token,
                });
                fx.push(CallEffect::Notice(CallNotice::ParticipantJoined {
                    agent: p.to.agent.clone(),
                    participants,
                }));
                let event = UpdateEvent::Conference {
                    joined: p.to.agent.clone(),
                    reason: None,
                };
                self.push_update(&mut fx, event, now_ms);
            }
        }
        Ok(fx)
    }

    /// The pending leg failed before answer: the call is back with `from`.
    pub(super) fn pending_failed(
        &mut self,
        token: OfferToken,
        outcome: OfferOutcome,
        cause: HangupCause,
        now_ms: u64,
    ) -> Result<Fx, CallError> {
        let id = self.id.clone();
        let CallPhase::Connected(s) = &mut self.phase else {
            return Err(CallError::StaleOffer { call: id, token });
        };
        if !s
            .pending
            .as_ref()
            .is_some_and(|p| p.token == token && !p.answered)
        {
            return Err(CallError::StaleOffer { call: id, token });
        }
        let Some(p) = s.pending.take() else {
            return Err(CallError::StaleOffer { call: id, token });
        };
        let was_consult = p.kind == PendingKind::Consult;
        if was_consult {
            s.held = false;
        }
        let mut fx = Vec::from(end_offer(p.leg, cause, p.to.agent.clone(), token, outcome));
        if was_consult {
            self.moh_off(&mut fx);
        }
        let reason = match outcome {
            OfferOutcome::Missed => LegFailure::Rona,
            OfferOutcome::Rejected | OfferOutcome::Refused => LegFailure::Rejected,
            OfferOutcome::Withdrawn => LegFailure::Cancelled,
        };
        fx.push(CallEffect::Notice(CallNotice::LegFailed {
            agent: p.from.clone(),
            target: p.to.agent.clone(),
            reason: reason.as_str().into(),
        }));
        let (agent, target, customer_ani) = (p.from, p.to.agent, self.ani.clone());
        let event = if was_consult {
            UpdateEvent::ConsultFailed {
                agent,
                target,
                reason,
                customer_ani,
            }
        } else {
            UpdateEvent::ConferenceAddFailed {
                agent,
                target,
                reason,
                customer_ani,
            }
        };
        self.push_update(&mut fx, event, now_ms);
        Ok(fx)
    }

    /// The consulted agent hung up after answering: back to the consulter.
    pub(super) fn pending_left(&mut self, agent: &AgentId, now_ms: u64) -> Fx {
        self.end_consult(agent, ConsultEnd::ConsultEnded, false, now_ms)
    }

    fn end_consult(
        &mut self,
        _who: &AgentId,
        reason: ConsultEnd,
        hang_up_leg: bool,
        now_ms: u64,
    ) -> Fx {
        let id = self.id.clone();
        let ani = self.ani.clone();
        let CallPhase::Connected(s) = &mut self.phase else {
            return Vec::new();
        };
        let Some(p) = s.pending.take() else {
            return Vec::new();
        };
        s.held = false;
        let mut fx = Vec::new();
        if hang_up_leg {
            fx.push(hang_up(p.leg.clone()));
        }
        if p.answered {
            fx.push(left_call(p.to.agent.clone(), None));
            if let Some(from_leg) = s
                .parties
                .iter()
                .find(|x| x.agent == p.from)
                .map(|x| x.leg.clone())
            {
                fx.extend(move_leg(
                    from_leg,
                    BridgeId::consult(&id),
                    BridgeId::main(&id),
                ));
            }
            fx.push(self.destroy_consult_bridge());
        } else {
            fx.push(offer_ended(
                p.to.agent.clone(),
                p.token,
                OfferOutcome::Withdrawn,
            ));
        }
        self.moh_off(&mut fx);
        let (agent, customer_ani) = (p.to.agent, ani);
        let event = if p.answered {
            UpdateEvent::LegEnded {
                reason,
                agent,
                customer_ani,
            }
        } else {
            UpdateEvent::ConsultCancelled {
                reason,
                agent,
                customer_ani,
            }
        };
        self.push_update(&mut fx, event, now_ms);
        fx
    }

    fn answered_consult(&mut self, from: &AgentId) -> Result<PendingLeg, CallError> {
        let id = self.id.clone();
        let s = self.session(from, "finish a consult")?;
        match &s.pending {
            Some(p) if p.kind == PendingKind::Consult && &p.from == from && p.answered => {
                Ok(p.clone())
            }
            _ => Err(CallError::NoConsult {
                call: id,
                agent: from.clone(),
            }),
        }
    }

    /// Cancel the consult: the consulted leg drops, the caller is back.
    pub fn cancel_consult(&mut self, from: &AgentId, now_ms: u64) -> Result<Fx, CallError> {
        let id = self.id.clone();
        let s = self.session(from, "cancel a consult")?;
        if s.pending.as_ref().is_none_or(|p| &p.from != from) {
            return Err(CallError::NoConsult {
                call: id,
                agent: from.clone(),
            });
        }
        Ok(self.end_consult(from, ConsultEnd::ConsultEnded, true, now_ms))
    }

    /// Complete the consult as a transfer: the consulted agent takes the
    /// caller; the consulter leaves.
    pub fn complete_consult(&mut self, from: &AgentId, now_ms: u64) -> Result<Fx, CallError> {
        self.answered_consult(from)?;
        self.party_leaves(from, true, now_ms)
    }

    /// Turn the consult into a 3-way conference.
    pub fn conference_consult(&mut self, from: &AgentId, now_ms: u64) -> Result<Fx, CallError> {
        let p = self.answered_consult(from)?;
        let id = self.id.clone();
        let caller = self.caller_leg.clone();
        let CallPhase::Connected(s) = &mut self.phase else {
            // answered_consult found the call connected.
            return Err(self.wrong("finish a consult"));
        };
        s.pending = None;
        s.held = false;
        s.parties.push(p.joined_party(now_ms));
        let legs: Vec<LegId> = std::iter::once(caller)
            .chain(s.parties.iter().map(|x| x.leg.clone()))
            .collect();
        let participants = s.participants();
        let mut fx = vec![
            CallEffect::Pbx(PbxCommand::Conference {
                bridge_id: BridgeId::main(&id),
                leg_ids: legs,
            }),
            self.destroy_consult_bridge(),
        ];
        self.moh_off(&mut fx);
        fx.push(CallEffect::Notice(CallNotice::ParticipantJoined {
            agent: p.to.agent.clone(),
            participants,
        }));
        let event = UpdateEvent::Conference {
            joined: p.to.agent.clone(),
            reason: Some(ViaConsult::Consult),
        };
        self.push_update(&mut fx, event, now_ms);
        Ok(fx)
    }
}
