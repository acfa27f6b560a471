//! Offering: ringing agents (one, or several for ring-all), the accept that
//! connects the call, and the failures (reject, RONA, an originate that never
//! left) that send the call to the next agent, back to its queue, or to its
//! fallback. Invariant 2 (one offer at a time, ring-all aside) is asserted
//! where offers are added.

use super::effects::{bridge, end_offer, offer_ended};
use super::PROMPT_UNAVAILABLE;
use super::{AgentContact, Call, CallEffect, CallError, CallNotice, CallPhase};
use super::{Fx, Offer, Party, Session, TerminalReason};
use crate::agent::{OfferOutcome, OfferPurpose};
use crate::config::FinalDestination;
use crate::crm::{CallbackReason, CreateReason, UpdateEvent};
use crate::ids::{AgentId, BridgeId, LegId, OfferToken};
use crate::ports::{HangupCause, PbxCommand};

impl Call {
    /// Ring `agent` (reserved by its queue or by the glue for `purpose`).
    /// When the call cannot take it, the agent is released.
    pub fn offer(
        &mut self,
        agent: &AgentContact,
        token: OfferToken,
        purpose: OfferPurpose,
        ring_all: bool,
        now_ms: u64,
    ) -> Fx {
        if let Some(fx) = self.offer_to_empty_place(agent, token, now_ms) {
            return fx;
        }
        let takes = match (&self.phase, &purpose) {
            (CallPhase::Queued { queue, .. }, OfferPurpose::Queue(q)) => queue == q,
            (
                CallPhase::Offering {
                    ring_all: true,
                    offers,
                },
                OfferPurpose::Queue(_),
            ) => ring_all && offers.len() < crate::queue::RING_ALL_AGENTS_MAX,
            (CallPhase::Routing, OfferPurpose::Direct) => true,
            _ => false,
        };
        // The same agent twice at once never (a grant that crossed another).
        let ringing = self.offers().iter().any(|(a, _)| *a == agent.agent);
        if !takes || ringing {
            return vec![offer_ended(
                agent.agent.clone(),
                token,
                OfferOutcome::Withdrawn,
            )];
        }
        let mut fx = Vec::new();
        self.stop_prompts(&mut fx);
        self.moh_on(&mut fx);
        let offer = self.ring(agent, token, purpose, now_ms, &mut fx);
        match &mut self.phase {
            CallPhase::Offering { offers, .. } => offers.push(offer),
            _ => {
                self.phase = CallPhase::Offering {
                    offers: vec![offer],
                    ring_all,
                }
            }
        }
        debug_assert!(
            self.offers_within_bounds(),
            "invariant 2: call {} rings {} agents without ring-all",
            self.id,
            self.offers().len()
        );
        fx
    }

    /// Invariant 2: one offer at a time unless the call rings all, never the
    /// same agent twice.
    pub(super) fn offers_within_bounds(&self) -> bool {
        match &self.phase {
            CallPhase::Offering { offers, ring_all } => {
                let distinct = offers
                    .iter()
                    .enumerate()
                    .all(|(i, o)| offers[..i].iter().all(|p| p.agent != o.agent));
                distinct
                    && if *ring_all {
                        offers.len() <= crate::queue::RING_ALL_AGENTS_MAX
                    } else {
                        offers.len() <= 1
                    }
            }
            _ => self.offers().len() <= 1,
        }
    }

    pub(super) fn ring(
        &self,
        agent: &AgentContact,
        token: OfferToken,
        purpose: OfferPurpose,
        now_ms: u64,
        fx: &mut Fx,
    ) -> Offer {
        let leg = LegId::for_offer(&self.id, token);
        let deadline_ms = now_ms + self.offer_timeout_ms;
        fx.extend(self.ring_leg(agent, leg.clone(), token, deadline_ms));
        Offer {
            agent: agent.agent.clone(),
            token,
            leg,
            deadline_ms,
            purpose,
            extension: agent.extension.clone(),
            accepted_ms: None,
        }
    }

    /// A direct call's agent could not be reserved, or its offer failed: the
    /// caller gets a callback work item.
    pub fn direct_missed(&mut self, now_ms: u64) -> Fx {
        let mut fx = Vec::new();
        if matches!(self.phase, CallPhase::Routing | CallPhase::Offering { .. }) {
            self.work_item_and_end(
                &mut fx,
                CallbackReason::MissedExtension,
                now_ms,
                FinalDestination::Announcement {
                    prompt: PROMPT_UNAVAILABLE.into(),
                },
            );
        }
        fx
    }

    /// The agent accepted (its leg answered, or from the desktop): in
    /// Offering the call connects to it when its leg answered; a desktop
    /// accept asks the PBX to answer the leg and connects on the answer
    /// ([`Self::accept_on_desktop`]). In Connected it is the consulted or
    /// invited agent answering the pending leg. Any other phase has no offer
    /// to accept: the token is stale.
    pub fn accept(
        &mut self,
        agent: &AgentId,
        token: OfferToken,
        from_desktop: bool,
        now_ms: u64,
    ) -> Result<Fx, CallError> {
        match &self.phase {
            CallPhase::Offering { .. } if from_desktop => {
                self.accept_on_desktop(agent, token, now_ms)
            }
            CallPhase::Offering { .. } => self.accept_offer(agent, token, now_ms),
            CallPhase::Connected(_) if from_desktop => {
                self.accept_pending_on_desktop(token, now_ms)
            }
            CallPhase::Connected(_) => self.accept_pending_leg(token, now_ms),
            CallPhase::Routing
            | CallPhase::Queued { .. }
            | CallPhase::Dialing { .. }
            | CallPhase::Ended(_) => Err(self.stale(token)),
        }
    }

    pub(super) fn stale(&self, token: OfferToken) -> CallError {
        CallError::StaleOffer {
            call: self.id.clone(),
            token,
        }
    }

    /// Offering, from the desktop: the agent claims the offer while its
    /// phone rings. The other ring-all offers are withdrawn and the PBX is
    /// asked to answer the agent's leg; the call stays offered to the agent
    /// until the leg answers (then [`Self::accept_offer`] connects it, as
    /// for a phone picked up by hand). Nothing is bridged and nothing is
    /// written for the CRM before that: if the phone never answers (the
    /// PBX gives up on the answer, or the offer times out), the offer is
    /// the agent's no-answer and the call goes back to its place in line.
    /// Accepting again while waiting changes nothing.
    fn accept_on_desktop(
        &mut self,
        agent: &AgentId,
        token: OfferToken,
        now_ms: u64,
    ) -> Result<Fx, CallError> {
        let (wrong, stale) = (self.wrong("accept an offer"), self.stale(token));
        let CallPhase::Offering { offers, .. } = &mut self.phase else {
            return Err(wrong);
        };
        let Some(won) = offers
            .iter_mut()
            .find(|o| o.token == token && &o.agent == agent)
        else {
            return Err(stale);
        };
        if won.accepted_ms.is_some() {
            return Ok(Vec::new());
        }
        won.accepted_ms = Some(now_ms);
        let leg = won.leg.clone();
        let (kept, others): (Vec<Offer>, Vec<Offer>) = std::mem::take(offers)
            .into_iter()
            .partition(|o| o.token == token);
        *offers = kept;
        let mut fx: Fx = others.into_iter().flat_map(Offer::withdraw).collect();
        fx.push(CallEffect::Pbx(PbxCommand::Answer { leg_id: leg }));
        Ok(fx)
    }

    /// Connected, from the desktop: the consulted or invited agent claims
    /// the pending leg while its phone rings. As for an offer
    /// ([`Self::accept_on_desktop`]), the PBX is asked to answer the leg and
    /// nothing is bridged before it does.
    fn accept_pending_on_desktop(
        &mut self,
        token: OfferToken,
        now_ms: u64,
    ) -> Result<Fx, CallError> {
        let stale = self.stale(token);
        let CallPhase::Connected(s) = &mut self.phase else {
            return Err(stale);
        };
        let Some(p) = s
            .pending
            .as_mut()
            .filter(|p| p.token == token && !p.answered)
        else {
            return Err(stale);
        };
        if p.accepted_ms.is_some() {
            return Ok(Vec::new());
        }
        p.accepted_ms = Some(now_ms);
        Ok(vec![CallEffect::Pbx(PbxCommand::Answer {
            leg_id: p.leg.clone(),
        })])
    }

    /// The PBX could not answer `leg` after a desktop accept (the phone was
    /// not picked up): the offer (or the consult or invite) is the agent's
    /// no-answer, as a RONA is.
    pub fn phone_not_answered(&mut self, leg: &LegId, now_ms: u64) -> Fx {
        let accepted = match &self.phase {
            CallPhase::Offering { offers, .. } => offers
                .iter()
                .find(|o| &o.leg == leg && o.accepted_ms.is_some())
                .map(|o| (o.agent.clone(), o.token)),
            CallPhase::Connected(s) => s
                .pending
                .as_ref()
                .filter(|p| &p.leg == leg && !p.answered && p.accepted_ms.is_some())
                .map(|p| (p.to.agent.clone(), p.token)),
            _ => None,
        };
        match accepted {
            Some((agent, token)) => self
                .offer_failed(
                    &agent,
                    token,
                    OfferOutcome::Missed,
                    HangupCause::NoAnswer,
                    now_ms,
                )
                .unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// Offering: `agent`'s offer wins (its leg answered); the other
    /// ring-all offers are withdrawn, the caller is bridged to the agent,
    /// and the first accept writes the interaction and the phone log before
    /// the agent is told.
    fn accept_offer(
        &mut self,
        agent: &AgentId,
        token: OfferToken,
        now_ms: u64,
    ) -> Result<Fx, CallError> {
        if let Some(r) = self.accept_callback(agent, token, now_ms) {
            return r;
        }
        let (won, others) = self.take_offer(agent, token, "accept an offer")?;
        let others = std::mem::take(others);
        let mut fx: Fx = others.into_iter().flat_map(Offer::withdraw).collect();
        self.moh_off(&mut fx);
        let main = BridgeId::main(&self.id);
        fx.push(bridge(main.clone(), self.caller_leg.clone()));
        fx.push(bridge(main, won.leg.clone()));
        let first_answer = self.answered_ms.is_none();
        if first_answer {
            self.answered_ms = Some(now_ms);
        }
        let mut records = Vec::new();
        records.extend(self.interaction_create(CreateReason::Accepted, Some(&won.agent), now_ms));
        records.extend(self.inbound_phone_log(&won.agent, now_ms));
        if !first_answer {
            let event = UpdateEvent::AgentConnected {
                agent: won.agent.clone(),
            };
            records.extend(self.update(event, now_ms));
        }
        debug_assert!(
            self.interaction_created && self.phone_log_created,
            "invariant 4: accepted call {} has its interaction and phone log",
            self.id
        );
        fx.push(CallEffect::Records(records));
        fx.push(CallEffect::ConfirmAccept {
            agent: won.agent.clone(),
            token,
        });
        let wrap_up_ms = match &won.purpose {
            // A transferred call is the queue's call still: wrap-up follows.
            OfferPurpose::Queue(_) | OfferPurpose::Transfer => self.queue_wrap_up_ms(),
            _ => None,
        };
        let party = Party {
            agent: won.agent.clone(),
            leg: won.leg,
            extension: won.extension,
            muted: false,
            wrap_up_ms,
            joined_ms: now_ms,
        };
        fx.push(CallEffect::Notice(CallNotice::ParticipantJoined {
            agent: won.agent,
            participants: vec![party.agent.clone()],
        }));
        self.phase = CallPhase::Connected(Session {
            parties: vec![party],
            held: false,
            pending: None,
        });
        Ok(fx)
    }

    /// Offering: takes `agent`'s offer `token` out of the ringing offers;
    /// also gives the offers still ringing. Any other phase cannot `action`;
    /// an offer not ringing is stale.
    pub(super) fn take_offer(
        &mut self,
        agent: &AgentId,
        token: OfferToken,
        action: &'static str,
    ) -> Result<(Offer, &mut Vec<Offer>), CallError> {
        // Both errors are built first: the answer keeps the offers borrowed.
        let (wrong, stale) = (self.wrong(action), self.stale(token));
        let CallPhase::Offering { offers, .. } = &mut self.phase else {
            return Err(wrong);
        };
        match offers
            .iter()
            .position(|o| o.token == token && &o.agent == agent)
        {
            Some(i) => Ok((offers.remove(i), offers)),
            None => Err(stale),
        }
    }

    /// The agent rejected the offer (desktop, or its device refused).
    pub fn reject(
        &mut self,
        agent: &AgentId,
        token: OfferToken,
        now_ms: u64,
    ) -> Result<Fx, CallError> {
        self.offer_failed(
            agent,
            token,
            OfferOutcome::Rejected,
            HangupCause::Rejected,
            now_ms,
        )
    }

    /// The RONA timer of `token` fired.
    pub fn rona(&mut self, token: OfferToken, now_ms: u64) -> Fx {
        let agent = match &self.phase {
            CallPhase::Offering { offers, .. } => offers
                .iter()
                .find(|o| o.token == token && o.deadline_ms <= now_ms)
                .map(|o| o.agent.clone()),
            CallPhase::Connected(s) => s
                .pending
                .as_ref()
                .filter(|p| p.token == token && !p.answered && p.deadline_ms <= now_ms)
                .map(|p| p.to.agent.clone()),
            CallPhase::Routing
            | CallPhase::Queued { .. }
            | CallPhase::Dialing { .. }
            | CallPhase::Ended(_) => None,
        };
        match agent {
            Some(agent) => self
                .offer_failed(
                    &agent,
                    token,
                    OfferOutcome::Missed,
                    HangupCause::NoAnswer,
                    now_ms,
                )
                .unwrap_or_default(),
            None => Vec::new(),
        }
    }

    pub(super) fn offer_failed(
        &mut self,
        agent: &AgentId,
        token: OfferToken,
        outcome: OfferOutcome,
        cause: HangupCause,
        now_ms: u64,
    ) -> Result<Fx, CallError> {
        self.offer_failed_with(agent, token, outcome, cause, true, now_ms)
    }

    /// An offer's originate never reached the PBX because the CTI link is
    /// down: not the agent's doing. The agent is released without penalty
    /// (withdrawn, not excluded, no RONA) and the call goes back where it
    /// came from; queues hold their calls until the link is back. A consult
    /// or conference leg not sent is withdrawn the same way.
    pub fn offer_not_sent(&mut self, leg: &LegId, now_ms: u64) -> Fx {
        match self.unanswered_leg(leg) {
            Some((agent, token)) => self
                .offer_failed_with(
                    &agent,
                    token,
                    OfferOutcome::Withdrawn,
                    HangupCause::Normal,
                    false,
                    now_ms,
                )
                .unwrap_or_default(),
            None => Vec::new(),
        }
    }

    fn offer_failed_with(
        &mut self,
        agent: &AgentId,
        token: OfferToken,
        outcome: OfferOutcome,
        cause: HangupCause,
        exclude: bool,
        now_ms: u64,
    ) -> Result<Fx, CallError> {
        match &self.phase {
            CallPhase::Offering { .. } => {}
            CallPhase::Connected(_) => return self.pending_failed(token, outcome, cause, now_ms),
            CallPhase::Routing
            | CallPhase::Queued { .. }
            | CallPhase::Dialing { .. }
            | CallPhase::Ended(_) => return Err(self.stale(token)),
        }
        let (offer, others) = self.take_offer(agent, token, "end an offer")?;
        let empty = others.is_empty();
        let mut fx = Vec::from(end_offer(
            offer.leg.clone(),
            cause,
            offer.agent.clone(),
            token,
            outcome,
        ));
        if exclude {
            crate::queue::placement::note_tried(&mut self.tried, &offer.agent);
        }
        if empty {
            self.redirect(&offer.purpose, &mut fx, now_ms);
        }
        Ok(fx)
    }

    /// Every offer failed: next agent (back to the queue), or the fallback.
    fn redirect(&mut self, purpose: &OfferPurpose, fx: &mut Fx, now_ms: u64) {
        match purpose {
            OfferPurpose::Queue(queue) => {
                if self.max_wait_elapsed {
                    self.time_out(fx, now_ms);
                } else {
                    self.back_in_line(queue.clone(), fx, now_ms);
                }
            }
            OfferPurpose::Direct => {
                self.phase = CallPhase::Routing;
                fx.extend(self.direct_missed(now_ms));
            }
            OfferPurpose::Transfer
            | OfferPurpose::Consult
            | OfferPurpose::Conference
            | OfferPurpose::Outbound => {
                // A failed blind transfer: back to the call's queue, else end.
                match self.rules.clone() {
                    Some(rules) => {
                        self.phase = CallPhase::Routing;
                        fx.extend(self.enqueue(rules, now_ms).unwrap_or_default());
                    }
                    None => {
                        fx.push(self.hang_up_caller());
                        self.end(TerminalReason::Completed, fx, now_ms);
                    }
                }
            }
        }
    }
}
