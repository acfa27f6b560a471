//! Callbacks and re-entry: a waiting caller who presses the queue's digit
//! (or hangs up, when the queue keeps callbacks) leaves the line but keeps
//! the place as a callback entry. When the entry is offered and the agent
//! answers, the agent is connected first, then the caller is dialled
//! ([`crate::ports::PbxCommand::DialCallback`]); once the caller answers
//! the call is answered as any other (one interaction, one phone log). A
//! callback nobody answers, or that waits past the queue's max wait,
//! writes the interaction and a callback work item, as a call nobody took
//! does today. A caller who calls again from the same number within the
//! re-entry window takes the place back ([`Call::reenter`]); a place kept
//! only for re-entry (no callback) ends as an abandon when its window ends
//! or when it reaches an agent first.
//!
//! ```text
//! Queued --digit / hang-up--> Queued (entry) --offer--> Offering --answer--> Dialing(agent) --caller answers--> Connected
//!                               |  ^ reenter (same number, window)                             \--not reached--> work item
//! ```

use super::effects::{bridge, hang_up, offer_ended, release_agent};
use super::{AgentContact, Call, CallEffect, CallError, CallNotice, CallPhase, CallTimer, Fx};
use super::{Offer, Party, Session, TerminalReason};
use crate::agent::{OfferOutcome, OfferPurpose};
use crate::crm::{CallbackReason, CreateReason};
use crate::ids::{AgentId, BridgeId, LegId, OfferToken};
use crate::ports::PbxCommand;
use serde::{Deserialize, Serialize};

/// Why a caller left the line keeping the place.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackTrigger {
    /// Pressed the queue's callback digit.
    Digit,
    /// Hung up while waiting.
    Hangup,
}

/// A caller who left the line and keeps the place.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackEntry {
    /// How the caller left.
    pub trigger: CallbackTrigger,
    /// When the caller left (the work item's wait counts from arrival).
    pub since_ms: u64,
    /// The caller is dialled when the place comes up; false: the place is
    /// only held for re-entry and ends as an abandon when it comes up.
    pub dial_back: bool,
    /// A new call from the same number takes the place back until then
    /// (0: no re-entry).
    pub reentry_until_ms: u64,
}

impl Call {
    /// A digit on one of the call's legs: the queue's callback digit from
    /// a waiting caller makes the call a callback entry (the prompts stop,
    /// the caller hears the confirmation and is hung up); any other digit
    /// is ignored.
    pub fn dtmf(&mut self, leg: &LegId, digit: char, now_ms: u64) -> Fx {
        let mut fx = Vec::new();
        let Some(rules) = self.rules.clone() else {
            return fx;
        };
        let waiting = matches!(self.phase, CallPhase::Queued { .. });
        if leg != &self.caller_leg
            || !waiting
            || self.callback.is_some()
            || rules.callback.digit_char() != Some(digit)
        {
            return fx;
        }
        self.stop_prompts(&mut fx);
        fx.push(CallEffect::Pbx(PbxCommand::PlayAnnouncement {
            leg_id: self.caller_leg.clone(),
            prompt: rules.callback.confirm_prompt.clone(),
        }));
        fx.push(hang_up(self.caller_leg.clone()));
        self.keep_place(CallbackTrigger::Digit, true, now_ms, &mut fx);
        fx
    }

    /// Makes the waiting call an entry that keeps its place: music off
    /// (the caller is gone), and the re-entry window opened.
    fn keep_place(&mut self, trigger: CallbackTrigger, dial_back: bool, now_ms: u64, fx: &mut Fx) {
        let (window, queue) = match &self.rules {
            Some(r) => (r.callback.reentry_window_ms, r.queue.clone()),
            None => return,
        };
        let until = if window > 0 { now_ms + window } else { 0 };
        // The caller's leg is gone (or going): nothing to put on hold.
        self.moh = true;
        self.callback = Some(CallbackEntry {
            trigger,
            since_ms: now_ms,
            dial_back,
            reentry_until_ms: until,
        });
        if window > 0 {
            fx.push(CallEffect::KeepPlace {
                ani: self.ani.clone(),
                queue,
                until_ms: until,
            });
            if !dial_back {
                fx.push(CallEffect::Timer(CallTimer::ReentryEnd(self.stint), until));
            }
        }
    }

    /// A leg went away that matters to a callback (before the usual
    /// rules): the old caller leg of an entry (ignored), the caller of a
    /// queue that keeps places (the call keeps it instead of abandoning),
    /// or a leg of a callback being dialled (not reached). `None`: the
    /// usual rules apply.
    pub(super) fn callback_leg_gone(&mut self, leg: &LegId, now_ms: u64) -> Option<Fx> {
        if let CallPhase::Dialing { party } = &self.phase {
            if self.callback.is_some() && (leg == &self.caller_leg || leg == &party.leg) {
                return Some(self.callback_not_reached(leg, now_ms));
            }
            return None;
        }
        let waiting = matches!(
            self.phase,
            CallPhase::Queued { .. } | CallPhase::Offering { .. }
        );
        if !waiting || leg != &self.caller_leg {
            return None;
        }
        if self.callback.is_some() {
            return Some(Vec::new());
        }
        let rules = self.rules.as_ref()?;
        let keep = rules.callback.on_hangup || rules.callback.reentry_window_ms > 0;
        if !keep {
            return None;
        }
        let dial_back = rules.callback.on_hangup;
        let mut fx = Vec::new();
        if let CallPhase::Offering { offers, .. } = &mut self.phase {
            // Ringing an agent for a caller who left: the offer is
            // withdrawn (the agent is not penalised) and the call goes
            // back to its place in line (its original key).
            let queue = match offers.first().map(|o| &o.purpose) {
                Some(OfferPurpose::Queue(q)) => q.clone(),
                _ => return None,
            };
            let offers = std::mem::take(offers);
            fx.extend(offers.into_iter().flat_map(Offer::withdraw));
            self.back_in_line(queue, &mut fx, now_ms);
        }
        self.keep_place(CallbackTrigger::Hangup, dial_back, now_ms, &mut fx);
        Some(fx)
    }

    /// The queue granted an agent to a place kept only for re-entry: the
    /// caller is not there, so the agent is released (no penalty) and the
    /// call ends as the abandon it was. `None`: not such a place.
    pub(super) fn offer_to_empty_place(
        &mut self,
        agent: &AgentContact,
        token: OfferToken,
        now_ms: u64,
    ) -> Option<Fx> {
        let entry = self.callback.as_ref()?;
        if entry.dial_back || !matches!(self.phase, CallPhase::Queued { .. }) {
            return None;
        }
        let mut fx = vec![offer_ended(
            agent.agent.clone(),
            token,
            OfferOutcome::Withdrawn,
        )];
        self.phase = CallPhase::Routing;
        self.abandon(&mut fx, now_ms);
        Some(fx)
    }

    /// The re-entry window of stint `stint` ended for a place kept without
    /// a callback: it leaves the line as an abandon.
    pub fn reentry_ended(&mut self, stint: u32, now_ms: u64) -> Fx {
        let mut fx = Vec::new();
        let held = self.callback.as_ref().is_some_and(|e| !e.dial_back);
        if let (true, true, CallPhase::Queued { queue, .. }) =
            (held, stint == self.stint, &self.phase)
        {
            fx.push(CallEffect::Dequeue(queue.clone()));
            self.phase = CallPhase::Routing;
            self.abandon(&mut fx, now_ms);
        }
        fx
    }

    /// The caller called again within the window: the new caller `leg`
    /// takes the kept place (answered, music on); the call waits on as if
    /// the caller had never left, its interaction still to come.
    pub fn reenter(&mut self, leg: LegId, now_ms: u64) -> Result<Fx, CallError> {
        let open = self
            .callback
            .as_ref()
            .is_some_and(|e| e.reentry_until_ms >= now_ms);
        let waiting = matches!(
            self.phase,
            CallPhase::Queued { .. } | CallPhase::Offering { .. }
        );
        if !open || !waiting {
            return Err(self.wrong("take a caller back"));
        }
        self.callback = None;
        self.caller_leg = leg.clone();
        self.moh = false;
        self.prompts_played = 0;
        let mut fx = vec![CallEffect::Pbx(PbxCommand::Answer { leg_id: leg })];
        self.moh_on(&mut fx);
        Ok(fx)
    }

    /// Offering a callback entry, the agent's leg answered: the agent is
    /// connected first (alone in the call's bridge) and told, then the
    /// caller is dialled. Nothing is written before the caller answers.
    /// `None`: not a callback.
    pub(super) fn accept_callback(
        &mut self,
        agent: &AgentId,
        token: OfferToken,
        now_ms: u64,
    ) -> Option<Result<Fx, CallError>> {
        if !self.callback.as_ref().is_some_and(|e| e.dial_back) {
            return None;
        }
        let Some(rules) = self.rules.clone() else {
            return Some(Err(self.wrong("call back without a queue")));
        };
        let (won, others) = match self.take_offer(agent, token, "accept an offer") {
            Ok(x) => x,
            Err(e) => return Some(Err(e)),
        };
        let others = std::mem::take(others);
        let mut fx: Fx = others.into_iter().flat_map(Offer::withdraw).collect();
        fx.push(bridge(BridgeId::main(&self.id), won.leg.clone()));
        let customer = LegId::customer(&self.id);
        self.caller_leg = customer.clone();
        self.moh = false;
        fx.push(CallEffect::Pbx(PbxCommand::DialCallback {
            leg_id: customer,
            number: self.ani.clone(),
            caller_id: self.dnis.clone(),
            timeout_ms: rules.callback.dial_timeout_ms,
        }));
        fx.push(CallEffect::ConfirmAccept {
            agent: won.agent.clone(),
            token,
        });
        fx.push(CallEffect::Notice(CallNotice::ParticipantJoined {
            agent: won.agent.clone(),
            participants: vec![won.agent.clone()],
        }));
        let wrap_up_ms = match &won.purpose {
            OfferPurpose::Queue(_) => Some(rules.wrap_up_ms),
            _ => None,
        };
        self.phase = CallPhase::Dialing {
            party: Party {
                agent: won.agent,
                leg: won.leg,
                extension: won.extension,
                muted: false,
                wrap_up_ms,
                joined_ms: now_ms,
            },
        };
        Some(Ok(fx))
    }

    /// Dialing a callback, the caller answered: bridged with the agent,
    /// and the call is answered (its interaction and phone log, once).
    /// `None`: not a callback being dialled.
    pub(super) fn callback_answered(&mut self, leg: &LegId, now_ms: u64) -> Option<Fx> {
        if self.callback.is_none() || leg != &self.caller_leg {
            return None;
        }
        let CallPhase::Dialing { party } = std::mem::replace(&mut self.phase, CallPhase::Routing)
        else {
            return None;
        };
        self.callback = None;
        let mut fx = vec![bridge(BridgeId::main(&self.id), self.caller_leg.clone())];
        self.answered_ms = Some(now_ms);
        let mut records = Vec::new();
        records.extend(self.interaction_create(CreateReason::Accepted, Some(&party.agent), now_ms));
        records.extend(self.inbound_phone_log(&party.agent, now_ms));
        fx.push(CallEffect::Records(records));
        self.phase = CallPhase::Connected(Session {
            parties: vec![party],
            held: false,
            pending: None,
        });
        Some(fx)
    }

    /// The callback did not reach the caller (no answer, busy, or the
    /// agent left first): the agent is released without wrap-up, the
    /// bridge goes, and the interaction and a callback work item are
    /// written (reason `callback_failed`).
    fn callback_not_reached(&mut self, gone: &LegId, now_ms: u64) -> Fx {
        let CallPhase::Dialing { party } = std::mem::replace(&mut self.phase, CallPhase::Routing)
        else {
            return Vec::new();
        };
        let mut fx = Vec::new();
        if gone != &self.caller_leg {
            fx.push(hang_up(self.caller_leg.clone()));
        }
        if gone == &party.leg {
            fx.push(super::effects::left_call(party.agent, None));
        } else {
            fx.extend(release_agent(party.leg, party.agent, None));
        }
        fx.push(CallEffect::Pbx(PbxCommand::DestroyBridge {
            bridge_id: BridgeId::main(&self.id),
        }));
        self.callback_unused(&mut fx, CallbackReason::CallbackFailed, now_ms);
        fx
    }

    /// A callback entry nobody called back (its max wait passed, or the
    /// dial failed): its interaction and a callback work item, then the
    /// end (timed out). Nothing is sent to the caller's leg: it is gone.
    /// False: not a callback entry (the usual final destination applies).
    pub(super) fn callback_unused(
        &mut self,
        fx: &mut Fx,
        reason: CallbackReason,
        now_ms: u64,
    ) -> bool {
        if self.callback.is_none() {
            return false;
        }
        let mut records = Vec::new();
        records.extend(self.interaction_create(reason.into(), None, now_ms));
        records.push(self.work_item(reason, now_ms));
        fx.push(CallEffect::Records(records));
        self.end(TerminalReason::TimedOut, fx, now_ms);
        true
    }

    /// Timers of a waiting call a restored call re-arms: the end of a
    /// kept place's window, and the announcements (the next one is due one
    /// interval after the caller joined, at once if that passed).
    pub(super) fn waiting_timers(&self) -> Vec<(CallTimer, u64)> {
        let mut timers = Vec::new();
        if let Some(e) = self.callback.as_ref().filter(|e| !e.dial_back) {
            if e.reentry_until_ms > 0 {
                timers.push((CallTimer::ReentryEnd(self.stint), e.reentry_until_ms));
            }
        }
        let announce = self.rules.as_ref().map(|r| &r.announce);
        if let (CallPhase::Queued { since_ms, .. }, Some(a)) = (&self.phase, announce) {
            if a.enabled() {
                let first = a.first_after_ms.unwrap_or(a.interval_ms);
                timers.push((CallTimer::Announce(self.stint), since_ms + first));
            }
        }
        timers
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::QueueRules;
    use crate::config::CallbackConfig;
    use crate::durable::{StateRecord, StateSnapshot};

    fn waiting_call() -> Call {
        let (mut call, _) = Call::inbound(
            "s",
            LegId::new("c1"),
            "+1".into(),
            "800".into(),
            vec![],
            0,
            10_000,
        );
        let rules = QueueRules {
            callback: CallbackConfig {
                digit: Some("1".into()),
                reentry_window_ms: 30_000,
                ..CallbackConfig::default()
            },
            ..QueueRules::plain("q", 60_000, 0)
        };
        call.enqueue(rules, 0).unwrap();
        call
    }

    /// Goal: a callback entry comes back from the state store, and a call
    /// persisted before callbacks existed still reads. Method: a record of
    /// a call that pressed the digit goes through JSON (the store's
    /// format); then the same record without the new keys.
    #[test]
    fn entries_persist_and_old_records_read() {
        let mut call = waiting_call();
        let fx = call.dtmf(&LegId::new("c1"), '1', 5_000);
        assert!(fx.iter().any(|e| matches!(
            e,
            CallEffect::KeepPlace {
                until_ms: 35_000,
                ..
            }
        )));
        let json = serde_json::to_value(StateRecord::Call(Box::new(call.clone()))).unwrap();
        let back: StateRecord = serde_json::from_value(json.clone()).unwrap();
        let snap = StateSnapshot::from_records([back]);
        let restored = &snap.calls[&call.id];
        assert_eq!(restored.callback, call.callback);
        assert_eq!(
            restored.callback.as_ref().map(|e| e.trigger),
            Some(CallbackTrigger::Digit)
        );
        let mut old = json;
        let o = old.as_object_mut().unwrap();
        o.remove("callback");
        o.remove("prompts_played");
        let rules = o["rules"].as_object_mut().unwrap();
        rules.remove("announce");
        rules.remove("callback");
        let read: StateRecord = serde_json::from_value(old).expect("an old record reads");
        let StateRecord::Call(c) = read else {
            panic!("not a call")
        };
        assert_eq!(c.callback, None);
        assert_eq!(c.rules.unwrap().callback, CallbackConfig::default());
    }

    /// A digit that is not the queue's, or from a caller already offered,
    /// changes nothing.
    #[test]
    fn other_digits_are_ignored() {
        let mut call = waiting_call();
        assert!(call.dtmf(&LegId::new("c1"), '2', 1).is_empty());
        assert!(call.dtmf(&LegId::new("other"), '1', 1).is_empty());
        assert!(call.callback.is_none());
    }
}
