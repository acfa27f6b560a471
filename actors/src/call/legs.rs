//! PBX leg events: a leg answered (an offer or pending leg accepted, or the
//! customer of an outbound call), a leg hung up (the caller, an agent, a
//! ringing offer, a supervisor), a PBX failure, the PBX losing the call
//! (restarted or died); and how each ends the call or the part of it that
//! leg carried.

use super::effects::{bridge, left_call, outcome_of, release_agent};
use super::{Call, CallEffect, CallPhase, Direction, Fx, Offer, Party, Session, TerminalReason};
use crate::crm::{CallbackReason, CreateReason};
use crate::ids::{BridgeId, LegId};
use crate::ports::HangupCause;

impl Call {
    /// A leg was answered at the PBX.
    pub fn leg_answered(&mut self, leg: &LegId, now_ms: u64) -> Fx {
        if let Some(fx) = self.callback_answered(leg, now_ms) {
            return fx;
        }
        if matches!(self.phase, CallPhase::Dialing { .. }) && leg == &self.caller_leg {
            return self.customer_answered(now_ms);
        }
        match self.unanswered_leg(leg) {
            Some((agent, token)) => self
                .accept(&agent, token, false, now_ms)
                .unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// A leg hung up at the PBX.
    pub fn leg_hung_up(&mut self, leg: &LegId, cause: HangupCause, now_ms: u64) -> Fx {
        if self.is_ended() {
            return Vec::new();
        }
        if cause == HangupCause::PbxLost && self.known_legs().contains(leg) {
            return self.pbx_lost(now_ms);
        }
        if let Some(fx) = self.callback_leg_gone(leg, now_ms) {
            return fx;
        }
        if leg == &self.caller_leg {
            return self.caller_hung_up(cause, now_ms);
        }
        if self.supervisor_leg_gone(leg) {
            return Vec::new();
        }
        match &self.phase {
            CallPhase::Offering { offers, .. } => {
                if let Some(o) = offers.iter().find(|o| &o.leg == leg) {
                    let (agent, token) = (o.agent.clone(), o.token);
                    return self
                        .offer_failed(&agent, token, outcome_of(cause), cause, now_ms)
                        .unwrap_or_default();
                }
                Vec::new()
            }
            CallPhase::Dialing { party } if &party.leg == leg => {
                let mut fx = vec![self.hang_up_caller(), left_call(party.agent.clone(), None)];
                self.end(
                    TerminalReason::Failed {
                        error: "agent leg ended before the customer answered".into(),
                    },
                    &mut fx,
                    now_ms,
                );
                fx
            }
            CallPhase::Connected(s) => {
                if let Some(p) = s.parties.iter().find(|p| &p.leg == leg) {
                    let agent = p.agent.clone();
                    return self.party_leaves(&agent, false, now_ms).unwrap_or_default();
                }
                if let Some(p) = s.pending.as_ref().filter(|p| &p.leg == leg) {
                    if p.answered {
                        let agent = p.to.agent.clone();
                        return self.pending_left(&agent, now_ms);
                    }
                    let token = p.token;
                    return self
                        .pending_failed(token, outcome_of(cause), cause, now_ms)
                        .unwrap_or_default();
                }
                Vec::new()
            }
            CallPhase::Dialing { .. }
            | CallPhase::Routing
            | CallPhase::Queued { .. }
            | CallPhase::Ended(_) => Vec::new(),
        }
    }

    /// The caller (customer) hung up: a call nobody answered is abandoned,
    /// an outbound call that never reached the customer failed, a connected
    /// call is completed.
    fn caller_hung_up(&mut self, cause: HangupCause, now_ms: u64) -> Fx {
        let mut fx = Vec::new();
        match std::mem::replace(&mut self.phase, CallPhase::Routing) {
            CallPhase::Routing => self.abandon(&mut fx, now_ms),
            CallPhase::Queued { queue, .. } => {
                fx.push(CallEffect::Dequeue(queue));
                self.abandon(&mut fx, now_ms);
            }
            CallPhase::Offering { offers, .. } => {
                fx.extend(offers.into_iter().flat_map(Offer::withdraw));
                self.abandon(&mut fx, now_ms);
            }
            CallPhase::Dialing { party } => {
                fx.extend(release_agent(party.leg, party.agent, None));
                self.end(
                    TerminalReason::Failed {
                        error: format!("customer not reached: {cause:?}"),
                    },
                    &mut fx,
                    now_ms,
                );
            }
            CallPhase::Connected(s) => {
                self.release_session(s, &mut fx);
                self.end(TerminalReason::Completed, &mut fx, now_ms);
            }
            ended @ CallPhase::Ended(_) => self.phase = ended,
        }
        fx
    }

    pub(super) fn release_session(&mut self, s: Session, fx: &mut Fx) {
        if let Some(p) = s.pending {
            if p.answered {
                fx.extend(release_agent(p.leg, p.to.agent, None));
            } else {
                fx.extend(p.withdraw());
            }
            fx.push(self.destroy_consult_bridge());
        }
        fx.extend(s.parties.into_iter().flat_map(Party::release));
    }

    /// The PBX lost the call (it restarted or died): every leg is gone
    /// with the one reported, and nobody chose it. Offers are withdrawn
    /// (no agent is penalised), agents on the call leave it as when the
    /// caller hangs up (with their wrap-up: the customer may need a note),
    /// and the call ends `pbx_lost`: the `ended` update says so for an
    /// answered call; a caller nobody had answered gets its interaction and
    /// a callback work item with reason `pbx_lost` (the caller did not give
    /// up, so somebody should call back). An outbound call still dialing
    /// just ends: its agent knows whom it was calling.
    fn pbx_lost(&mut self, now_ms: u64) -> Fx {
        let mut fx = Vec::new();
        let unanswered = match std::mem::replace(&mut self.phase, CallPhase::Routing) {
            CallPhase::Routing => true,
            CallPhase::Queued { queue, .. } => {
                fx.push(CallEffect::Dequeue(queue));
                true
            }
            CallPhase::Offering { offers, .. } => {
                fx.extend(offers.into_iter().flat_map(Offer::withdraw));
                true
            }
            CallPhase::Dialing { party } => {
                fx.push(left_call(party.agent, None));
                false
            }
            CallPhase::Connected(s) => {
                self.release_session(s, &mut fx);
                false
            }
            ended @ CallPhase::Ended(_) => {
                self.phase = ended;
                return fx;
            }
        };
        if unanswered && self.direction == Direction::Inbound {
            let mut records = Vec::new();
            records.extend(self.interaction_create(CreateReason::PbxLost, None, now_ms));
            records.push(self.work_item(CallbackReason::PbxLost, now_ms));
            fx.push(CallEffect::Records(records));
        }
        self.end(TerminalReason::PbxLost, &mut fx, now_ms);
        fx
    }

    /// The caller hung up before an agent answered.
    pub(super) fn abandon(&mut self, fx: &mut Fx, now_ms: u64) {
        let mut records = Vec::new();
        records.extend(self.interaction_create(CreateReason::Abandoned, None, now_ms));
        records.push(self.work_item(CallbackReason::Abandoned, now_ms));
        fx.push(CallEffect::Records(records));
        self.end(TerminalReason::Abandoned, fx, now_ms);
    }

    /// Dialing: the customer answered the agent's outbound call.
    fn customer_answered(&mut self, now_ms: u64) -> Fx {
        let CallPhase::Dialing { party } = std::mem::replace(&mut self.phase, CallPhase::Routing)
        else {
            return Vec::new();
        };
        let main = BridgeId::main(&self.id);
        let mut fx = vec![
            bridge(main.clone(), party.leg.clone()),
            bridge(main, self.caller_leg.clone()),
        ];
        self.answered_ms = Some(now_ms);
        let mut records = Vec::new();
        records.extend(self.interaction_create(CreateReason::Outbound, Some(&party.agent), now_ms));
        records.push(self.outbound_phone_log(&party.agent, now_ms));
        fx.push(CallEffect::Records(records));
        self.phase = CallPhase::Connected(Session {
            parties: vec![party],
            held: false,
            pending: None,
        });
        fx
    }

    /// A PBX command failed in a way that breaks the call: end it (logged).
    pub fn pbx_failed(&mut self, error: String, now_ms: u64) -> Fx {
        let mut fx = Vec::new();
        match std::mem::replace(&mut self.phase, CallPhase::Routing) {
            CallPhase::Queued { queue, .. } => fx.push(CallEffect::Dequeue(queue)),
            CallPhase::Offering { offers, .. } => {
                fx.extend(offers.into_iter().flat_map(Offer::withdraw));
            }
            CallPhase::Dialing { party } => fx.push(left_call(party.agent, None)),
            CallPhase::Connected(s) => self.release_session(s, &mut fx),
            ended @ CallPhase::Ended(_) => {
                self.phase = ended;
                return fx;
            }
            CallPhase::Routing => {}
        }
        fx.push(self.hang_up_caller());
        self.end(TerminalReason::Failed { error }, &mut fx, now_ms);
        fx
    }
}
