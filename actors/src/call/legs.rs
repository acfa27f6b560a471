//! PBX leg events: a leg answered (an offer or pending leg accepted, or the
//! customer of an outbound call), a leg hung up (the caller, an agent, a
//! ringing offer, a supervisor), a PBX failure; and how each ends the call
//! or the part of it that leg carried.

use super::{AgentNotice, Call, CallEffect, CallPhase, Fx, Session, TerminalReason};
use crate::agent::OfferOutcome;
use crate::crm::{CallbackReason, CreateReason};
use crate::ids::{BridgeId, LegId};
use crate::ports::{HangupCause, PbxCommand};

impl Call {
    /// A leg was answered at the PBX.
    pub fn leg_answered(&mut self, leg: &LegId, now_ms: u64) -> Fx {
        let offer = match &self.phase {
            CallPhase::Offering { offers, .. } => offers
                .iter()
                .find(|o| &o.leg == leg)
                .map(|o| (o.agent.clone(), o.token)),
            CallPhase::Connected(s) => s
                .pending
                .as_ref()
                .filter(|p| &p.leg == leg && !p.answered)
                .map(|p| (p.to.agent.clone(), p.token)),
            CallPhase::Dialing { .. } if leg == &self.caller_leg => {
                return self.customer_answered(now_ms);
            }
            CallPhase::Dialing { .. }
            | CallPhase::Routing
            | CallPhase::Queued { .. }
            | CallPhase::Ended(_) => None,
        };
        match offer {
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
                    let outcome = match cause {
                        HangupCause::Busy | HangupCause::Rejected => OfferOutcome::Rejected,
                        _ => OfferOutcome::Missed,
                    };
                    return self
                        .offer_failed(&agent, token, outcome, cause, now_ms)
                        .unwrap_or_default();
                }
                Vec::new()
            }
            CallPhase::Dialing { party } if &party.leg == leg => {
                let mut fx = vec![
                    CallEffect::Pbx(PbxCommand::Hangup {
                        leg_id: self.caller_leg.clone(),
                        cause: HangupCause::Normal,
                    }),
                    CallEffect::Agent(
                        party.agent.clone(),
                        AgentNotice::LeftCall { wrap_up_ms: None },
                    ),
                ];
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
                    let outcome = match cause {
                        HangupCause::Busy | HangupCause::Rejected => OfferOutcome::Rejected,
                        _ => OfferOutcome::Missed,
                    };
                    let token = p.token;
                    return self
                        .pending_failed(token, outcome, cause, now_ms)
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
                for o in offers {
                    fx.push(CallEffect::Pbx(PbxCommand::Hangup {
                        leg_id: o.leg,
                        cause: HangupCause::Normal,
                    }));
                    fx.push(CallEffect::Agent(
                        o.agent,
                        AgentNotice::OfferEnded {
                            token: o.token,
                            outcome: OfferOutcome::Withdrawn,
                        },
                    ));
                }
                self.abandon(&mut fx, now_ms);
            }
            CallPhase::Dialing { party } => {
                fx.push(CallEffect::Pbx(PbxCommand::Hangup {
                    leg_id: party.leg,
                    cause: HangupCause::Normal,
                }));
                fx.push(CallEffect::Agent(
                    party.agent,
                    AgentNotice::LeftCall { wrap_up_ms: None },
                ));
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
            fx.push(CallEffect::Pbx(PbxCommand::Hangup {
                leg_id: p.leg,
                cause: HangupCause::Normal,
            }));
            let notice = if p.answered {
                AgentNotice::LeftCall { wrap_up_ms: None }
            } else {
                AgentNotice::OfferEnded {
                    token: p.token,
                    outcome: OfferOutcome::Withdrawn,
                }
            };
            fx.push(CallEffect::Agent(p.to.agent, notice));
            fx.push(CallEffect::Pbx(PbxCommand::DestroyBridge {
                bridge_id: BridgeId::consult(&self.id),
            }));
        }
        for p in s.parties {
            fx.push(CallEffect::Pbx(PbxCommand::Hangup {
                leg_id: p.leg,
                cause: HangupCause::Normal,
            }));
            fx.push(CallEffect::Agent(
                p.agent,
                AgentNotice::LeftCall {
                    wrap_up_ms: p.wrap_up_ms,
                },
            ));
        }
    }

    /// The caller hung up before an agent answered.
    fn abandon(&mut self, fx: &mut Fx, now_ms: u64) {
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
        let bridge = BridgeId::main(&self.id);
        let mut fx = vec![
            CallEffect::Pbx(PbxCommand::Bridge {
                bridge_id: bridge.clone(),
                leg_id: party.leg.clone(),
            }),
            CallEffect::Pbx(PbxCommand::Bridge {
                bridge_id: bridge,
                leg_id: self.caller_leg.clone(),
            }),
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
                for o in offers {
                    fx.push(CallEffect::Pbx(PbxCommand::Hangup {
                        leg_id: o.leg,
                        cause: HangupCause::Normal,
                    }));
                    fx.push(CallEffect::Agent(
                        o.agent,
                        AgentNotice::OfferEnded {
                            token: o.token,
                            outcome: OfferOutcome::Withdrawn,
                        },
                    ));
                }
            }
            CallPhase::Dialing { party } => {
                fx.push(CallEffect::Agent(
                    party.agent,
                    AgentNotice::LeftCall { wrap_up_ms: None },
                ));
            }
            CallPhase::Connected(s) => self.release_session(s, &mut fx),
            ended @ CallPhase::Ended(_) => {
                self.phase = ended;
                return fx;
            }
            CallPhase::Routing => {}
        }
        fx.push(CallEffect::Pbx(PbxCommand::Hangup {
            leg_id: self.caller_leg.clone(),
            cause: HangupCause::Normal,
        }));
        self.end(TerminalReason::Failed { error }, &mut fx, now_ms);
        fx
    }
}
