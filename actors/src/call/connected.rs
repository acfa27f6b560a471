//! Controls on the connected call by one of its agents: hold and resume
//! (music for the caller), mute, hang-up and leaving (the last agent out ends
//! the call; a consulter leaving hands the caller to the consulted agent),
//! blind transfer to an agent or a queue, and wrap-up codes.

use super::effects::{hang_up, left_call, move_leg};
use super::{AgentContact, Call, CallEffect, CallError, CallNotice, CallPhase, Fx};
use super::{HoldState, Party, PendingKind, QueueRules, Session, TerminalReason};
use crate::agent::OfferPurpose;
use crate::crm::{LegFailure, TransferTarget, UpdateEvent, ViaConsult};
use crate::ids::{AgentId, BridgeId, OfferToken};
use crate::ports::{HangupCause, PbxCommand};
use crate::shared::Shared;

impl Call {
    pub(super) fn session(
        &mut self,
        agent: &AgentId,
        action: &'static str,
    ) -> Result<&mut Session, CallError> {
        let id = self.id.clone();
        let phase = self.phase.name();
        match &mut self.phase {
            CallPhase::Connected(s) => {
                if s.parties.iter().any(|p| &p.agent == agent) {
                    Ok(s)
                } else {
                    Err(CallError::NotAParty {
                        agent: agent.clone(),
                        call: id,
                    })
                }
            }
            _ => Err(CallError::WrongPhase {
                call: id,
                action,
                phase,
            }),
        }
    }

    /// Put the caller on hold (music).
    pub fn hold(&mut self, agent: &AgentId, now_ms: u64) -> Result<Fx, CallError> {
        let id = self.id.clone();
        let s = self.session(agent, "hold")?;
        if s.held {
            return Err(CallError::HoldState {
                call: id,
                state: HoldState::AlreadyHeld,
            });
        }
        s.held = true;
        let mut fx = Vec::new();
        self.moh_on(&mut fx);
        let event = UpdateEvent::Hold {
            agent: agent.clone(),
        };
        self.push_update(&mut fx, event, now_ms);
        Ok(fx)
    }

    /// Take the caller off hold.
    pub fn resume(&mut self, agent: &AgentId, now_ms: u64) -> Result<Fx, CallError> {
        let id = self.id.clone();
        let s = self.session(agent, "resume")?;
        if !s.held {
            return Err(CallError::HoldState {
                call: id,
                state: HoldState::NotHeld,
            });
        }
        if s.pending
            .as_ref()
            .is_some_and(|p| p.kind == PendingKind::Consult)
        {
            return Err(CallError::LegInProgress(id));
        }
        s.held = false;
        let mut fx = Vec::new();
        self.moh_off(&mut fx);
        let event = UpdateEvent::Resume {
            agent: agent.clone(),
        };
        self.push_update(&mut fx, event, now_ms);
        Ok(fx)
    }

    /// Mute or unmute the agent's microphone.
    pub fn mute(&mut self, agent: &AgentId, muted: bool, now_ms: u64) -> Result<Fx, CallError> {
        let not_a_party = CallError::NotAParty {
            agent: agent.clone(),
            call: self.id.clone(),
        };
        let s = self.session(agent, "mute")?;
        let Some(p) = s.parties.iter_mut().find(|p| &p.agent == agent) else {
            return Err(not_a_party);
        };
        p.muted = muted;
        let leg_id = p.leg.clone();
        let mut fx = vec![CallEffect::Pbx(if muted {
            PbxCommand::Mute { leg_id }
        } else {
            PbxCommand::Unmute { leg_id }
        })];
        let agent = agent.clone();
        let event = if muted {
            UpdateEvent::Mute { agent }
        } else {
            UpdateEvent::Unmute { agent }
        };
        self.push_update(&mut fx, event, now_ms);
        Ok(fx)
    }

    /// The agent hangs up (desktop).
    /// Dialing: the dialing agent gives up (as if its leg hung up).
    /// Connected: the agent leaves (the last one out ends the call). Other
    /// phases have no party to hang up.
    pub fn hang_up(&mut self, agent: &AgentId, now_ms: u64) -> Result<Fx, CallError> {
        match &self.phase {
            CallPhase::Dialing { party } if &party.agent == agent => {
                let leg = party.leg.clone();
                Ok(self.leg_hung_up(&leg, HangupCause::Normal, now_ms))
            }
            CallPhase::Connected(_) => {
                self.session(agent, "hang up")?;
                self.party_leaves(agent, true, now_ms)
            }
            CallPhase::Dialing { .. }
            | CallPhase::Routing
            | CallPhase::Queued { .. }
            | CallPhase::Offering { .. }
            | CallPhase::Ended(_) => Err(self.wrong("hang up")),
        }
    }

    /// The wrap-up the call's queue asks of an agent who takes the call,
    /// from the queue or by a transfer; `None` for a call never queued.
    pub(super) fn queue_wrap_up_ms(&self) -> Option<u64> {
        self.rules.as_ref().map(|r| r.wrap_up_ms)
    }

    /// An agent leaves the connected call (hang-up, transfer away).
    pub(super) fn party_leaves(
        &mut self,
        agent: &AgentId,
        hang_up_leg: bool,
        now_ms: u64,
    ) -> Result<Fx, CallError> {
        let not_a_party = CallError::NotAParty {
            agent: agent.clone(),
            call: self.id.clone(),
        };
        let wrap_up_ms = self.queue_wrap_up_ms();
        let s = self.session(agent, "leave")?;
        let Some(i) = s.parties.iter().position(|p| &p.agent == agent) else {
            return Err(not_a_party);
        };
        let party = s.parties.remove(i);
        let mut fx = Vec::new();
        if hang_up_leg {
            fx.push(hang_up(party.leg.clone()));
        }
        fx.push(left_call(party.agent.clone(), party.wrap_up_ms));
        // A consult by the leaving agent: answered -> the consulted agent
        // takes the call; still ringing -> cancelled.
        if let Some(p) = s.pending.take_if(|p| &p.from == agent) {
            if p.answered {
                // The consulted agent takes the call over, with its wrap-up.
                s.parties.push(Party {
                    wrap_up_ms,
                    ..p.joined_party(now_ms)
                });
                s.held = false;
                let (consult, main) = (BridgeId::consult(&self.id), BridgeId::main(&self.id));
                fx.extend(move_leg(p.leg.clone(), consult, main));
                fx.push(self.destroy_consult_bridge());
                self.moh_off(&mut fx);
                let event = UpdateEvent::Transfer {
                    from: agent.clone(),
                    to: TransferTarget::ToAgent(p.to.agent.clone()),
                    reason: Some(ViaConsult::Consult),
                };
                self.push_update(&mut fx, event, now_ms);
            } else {
                fx.extend(p.withdraw());
                let event = UpdateEvent::ConsultFailed {
                    agent: agent.clone(),
                    target: p.to.agent.clone(),
                    reason: LegFailure::ConsultingAgentLeft,
                    customer_ani: self.ani.clone(),
                };
                self.push_update(&mut fx, event, now_ms);
            }
        }
        self.release_supervisions_of(&party.leg, &mut fx);
        let CallPhase::Connected(s) = &mut self.phase else {
            // Leaving never changes the phase before this point.
            return Err(self.wrong("leave"));
        };
        if s.parties.is_empty() {
            let s = std::mem::replace(
                s,
                Session {
                    parties: vec![],
                    held: false,
                    pending: None,
                },
            );
            self.release_session(s, &mut fx);
            fx.push(self.hang_up_caller());
            self.end(TerminalReason::Completed, &mut fx, now_ms);
        } else {
            let participants = s.participants();
            fx.push(CallEffect::Notice(CallNotice::ParticipantLeft {
                agent: agent.clone(),
                participants,
            }));
            let event = UpdateEvent::ParticipantLeft {
                agent: agent.clone(),
            };
            self.push_update(&mut fx, event, now_ms);
        }
        Ok(fx)
    }

    pub(super) fn single_party(
        &mut self,
        agent: &AgentId,
        action: &'static str,
    ) -> Result<(), CallError> {
        let id = self.id.clone();
        let s = self.session(agent, action)?;
        if s.pending.is_some() {
            return Err(CallError::LegInProgress(id));
        }
        if s.parties.len() > 1 {
            return Err(CallError::InConference(id));
        }
        Ok(())
    }

    /// Whether `agent` may transfer, consult or add someone now (checked
    /// before the glue reserves the target).
    pub fn can_start_leg(&mut self, agent: &AgentId, conference: bool) -> Result<(), CallError> {
        if conference {
            let id = self.id.clone();
            let s = self.session(agent, "add to conference")?;
            if s.pending.is_some() {
                return Err(CallError::LegInProgress(id));
            }
            Ok(())
        } else {
            self.single_party(agent, "transfer or consult")
        }
    }

    /// Blind transfer to an agent the glue reserved (purpose Transfer).
    pub fn transfer_to_agent(
        &mut self,
        from: &AgentId,
        to: &AgentContact,
        token: OfferToken,
        now_ms: u64,
    ) -> Result<Fx, CallError> {
        let target = TransferTarget::ToAgent(to.agent.clone());
        let mut fx = self.leave_for_transfer(from, target, now_ms)?;
        self.moh_on(&mut fx);
        fx.push(self.unbridge_caller());
        let offer = self.ring(to, token, OfferPurpose::Transfer, now_ms, &mut fx);
        self.phase = CallPhase::Offering {
            offers: vec![offer],
            ring_all: false,
        };
        Ok(fx)
    }

    /// Blind transfer to a queue.
    pub fn transfer_to_queue(
        &mut self,
        from: &AgentId,
        rules: impl Into<Shared<QueueRules>>,
        now_ms: u64,
    ) -> Result<Fx, CallError> {
        let rules = rules.into();
        let target = TransferTarget::ToQueue(rules.queue.clone());
        let mut fx = self.leave_for_transfer(from, target, now_ms)?;
        fx.push(self.unbridge_caller());
        self.tried.clear();
        self.phase = CallPhase::Routing;
        fx.extend(self.enqueue(rules, now_ms)?);
        Ok(fx)
    }

    /// The first half of a blind transfer: `from`, the only party, leaves
    /// (its leg hung up, its wrap-up owed) and the transfer update to
    /// `target` is written.
    fn leave_for_transfer(
        &mut self,
        from: &AgentId,
        target: TransferTarget,
        now_ms: u64,
    ) -> Result<Fx, CallError> {
        self.single_party(from, "transfer")?;
        let s = self.session(from, "transfer")?;
        let mut fx = Vec::from(s.parties.remove(0).release());
        let event = UpdateEvent::Transfer {
            from: from.clone(),
            to: target,
            reason: None,
        };
        self.push_update(&mut fx, event, now_ms);
        Ok(fx)
    }

    /// A wrap-up (disposition) code from an agent who was on the call.
    pub fn wrap_up_code(
        &mut self,
        agent: &AgentId,
        code: &str,
        now_ms: u64,
    ) -> Result<Fx, CallError> {
        if !self.interaction_created {
            return Err(CallError::NoInteraction(self.id.clone()));
        }
        let mut fx = Vec::new();
        let event = UpdateEvent::WrapUpCode {
            agent: agent.clone(),
            code: code.to_owned(),
        };
        self.push_update(&mut fx, event, now_ms);
        Ok(fx)
    }
}
