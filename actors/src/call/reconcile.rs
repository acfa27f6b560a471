//! Reconcile after a restart: the PBX adapter lists which of the call's
//! legs are still up (and whether an offered leg was answered), and the
//! call carries on from its persisted phase. Every leg that is gone is a
//! hang-up the call missed while edgecc was down, so the usual transitions
//! write the usual records (one terminal reason, the final update, a work
//! item where the rules say so); an answered offer is an answer (so an
//! alerting offer is resolved exactly once); a ringing one keeps ringing
//! under its re-armed RONA timer. A caller still waiting in a queue hears
//! the waiting music again. An agent leg of an offer the call no longer
//! has is hung up.

use super::{Call, CallEffect, CallPhase, Fx};
use crate::ids::LegId;
use crate::ports::{HangupCause, LegStatus, PbxCommand};
use std::collections::HashMap;

impl Call {
    /// Every leg the call knows, the caller's first.
    pub fn known_legs(&self) -> Vec<LegId> {
        let mut legs = vec![self.caller_leg.clone()];
        match &self.phase {
            CallPhase::Offering { offers, .. } => legs.extend(offers.iter().map(|o| o.leg.clone())),
            CallPhase::Dialing { party } => legs.push(party.leg.clone()),
            CallPhase::Connected(s) => {
                legs.extend(s.parties.iter().map(|p| p.leg.clone()));
                legs.extend(s.pending.iter().map(|p| p.leg.clone()));
            }
            CallPhase::Routing | CallPhase::Queued { .. } | CallPhase::Ended(_) => {}
        }
        legs.extend(self.supervisions.iter().map(|s| s.leg.clone()));
        legs
    }

    /// Carries the call on after a restart given the legs the PBX still
    /// has (`legs`: every leg of this call that is up or ringing; a leg not
    /// in it is gone).
    pub fn reconcile(&mut self, legs: &HashMap<LegId, LegStatus>, now_ms: u64) -> Fx {
        self.reconcile_gone(legs, HangupCause::Normal, now_ms)
    }

    /// [`Self::reconcile`], a gone leg ending with `gone`: `Normal` when
    /// the legs were hung up while edgecc was down, `PbxLost` when the PBX
    /// restarted meanwhile and dropped them (the call then ends
    /// `pbx_lost`).
    pub fn reconcile_gone(
        &mut self,
        legs: &HashMap<LegId, LegStatus>,
        gone: HangupCause,
        now_ms: u64,
    ) -> Fx {
        if self.is_ended() {
            return Vec::new();
        }
        if !legs.contains_key(&self.caller_leg) {
            return self.leg_hung_up(&self.caller_leg.clone(), gone, now_ms);
        }
        let mut fx = Vec::new();
        let known = self.known_legs();
        for leg in known.iter().skip(1) {
            if !legs.contains_key(leg) {
                fx.extend(self.leg_hung_up(leg, gone, now_ms));
            }
        }
        for leg in known.iter().skip(1) {
            if legs.get(leg) == Some(&LegStatus::Up) && self.unanswered_leg(leg).is_some() {
                fx.extend(self.leg_answered(leg, now_ms));
            }
        }
        // An agent leg the call no longer has (its offer was withdrawn or
        // moved just before the kill, the hang-up not carried out): it
        // would ring on beside the call's next offer to that phone.
        let mut stale: Vec<&LegId> = legs
            .keys()
            .filter(|l| l.token().is_some() && !known.contains(l))
            .collect();
        stale.sort();
        for leg in stale {
            tracing::info!(call_id = %self.id, leg_id = %leg, reason = "restart", "Agent leg of an offer the call no longer has hung up.");
            fx.push(CallEffect::Pbx(PbxCommand::Hangup {
                leg_id: leg.clone(),
                cause: HangupCause::Normal,
            }));
        }
        if matches!(self.phase, CallPhase::Queued { .. }) && self.moh {
            fx.push(CallEffect::Pbx(PbxCommand::Hold {
                leg_id: self.caller_leg.clone(),
            }));
        }
        fx
    }
}
