//! An ending the PBX may not have carried out: a call ends in edgecc's
//! state at once, while its caller may still be at the PBX for a while
//! (hearing the final announcement before the hang-up, or the redirect to
//! an external number or the hang-up still on their way). A process that
//! dies in between leaves an ended call whose caller is still there.
//!
//! This file owns the two halves of getting that right:
//! - the ended call's actor keeps its record while its caller hears the
//!   final announcement ([`Call::ending_plays_to_caller`]) or until the PBX
//!   took the redirect to an external number ([`Call::ending_waits_on_pbx`]),
//!   at most [`ENDING_WAIT_MAX_MS`], so a restart in between finds the call
//!   (a redirect stuck at Asterisk past the linger used to leave the caller
//!   in the application with no record: the next life routed it anew);
//! - the reconcile after a restart finishes an ended call whose caller
//!   the PBX still lists ([`Call::finish_ending`]): the final destination
//!   or the hang-up its terminal reason says, and no record (those of the
//!   end were durable before the state that says the call ended).

use super::{Call, CallEffect, CallPhase, Fx, TerminalReason, PROMPT_UNAVAILABLE};
use crate::config::FinalDestination;
use crate::ports::PbxCommand;

/// Longest an ended call keeps its record while its caller still hears
/// the final announcement (or, restored, until the PBX's reconcile says
/// whether its caller is still there): a bound for a hang-up that never
/// reports back.
pub const ENDING_WAIT_MAX_MS: u64 = 60_000;

impl Call {
    /// Whether the ended call's caller is left hearing the final
    /// announcement before the PBX hangs it up (a queue's timeout): until
    /// the caller's leg is gone, a restart must still find the call.
    pub fn ending_plays_to_caller(&self) -> bool {
        matches!(self.phase, CallPhase::Ended(TerminalReason::TimedOut)) && self.callback.is_none()
    }

    /// Whether the ended call's caller stays at the PBX until the PBX
    /// carries out something more than a hang-up: the final announcement,
    /// or the redirect to the external number it overflowed to (until the
    /// PBX accepted it). Until then a restart must still find the call.
    pub fn ending_waits_on_pbx(&self) -> bool {
        self.ending_plays_to_caller()
            || matches!(
                self.phase,
                CallPhase::Ended(TerminalReason::Overflowed { .. })
            )
    }

    /// The PBX commands that carry out the end of this ended call on its
    /// caller, still at the PBX after a restart: the external number it
    /// overflowed to, the final announcement then the hang-up for a
    /// timeout (the announcement is played from its start: the caller may
    /// have heard part of it, never none of it), a hang-up otherwise.
    /// Nothing for a call that has not ended.
    pub fn finish_ending(&self) -> Fx {
        let CallPhase::Ended(reason) = &self.phase else {
            return Vec::new();
        };
        match reason {
            TerminalReason::Overflowed { number } => {
                vec![CallEffect::Pbx(PbxCommand::RedirectExternal {
                    leg_id: self.caller_leg.clone(),
                    number: number.clone(),
                })]
            }
            TerminalReason::TimedOut if self.ending_plays_to_caller() => {
                self.announce_and_hang_up(self.final_prompt()).into()
            }
            TerminalReason::Completed
            | TerminalReason::Abandoned
            | TerminalReason::TimedOut
            | TerminalReason::Failed { .. }
            | TerminalReason::PbxLost => vec![self.hang_up_caller()],
        }
    }

    /// What a caller timed out of the queue hears: the queue's final
    /// announcement, or the one played when the final queue is out of reach.
    fn final_prompt(&self) -> String {
        match self.rules.as_ref().map(|r| &r.final_destination) {
            Some(FinalDestination::Announcement { prompt }) => prompt.clone(),
            _ => PROMPT_UNAVAILABLE.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::call::{Call, CallEffect, CallPhase, QueueRules, TerminalReason};
    use crate::config::FinalDestination;
    use crate::ids::LegId;
    use crate::ports::{HangupCause, PbxCommand};

    fn queued(dest: FinalDestination) -> Call {
        let (mut call, _) = Call::inbound(
            "s",
            LegId::new("c1"),
            "+1".into(),
            "100".into(),
            vec![],
            0,
            10,
        );
        let rules = QueueRules {
            final_destination: dest,
            ..QueueRules::plain("q", 1_000, 0)
        };
        call.enqueue(rules, 0).expect("queued");
        call
    }

    fn pbx(fx: &[CallEffect]) -> Vec<PbxCommand> {
        fx.iter()
            .filter_map(|e| match e {
                CallEffect::Pbx(c) => Some(c.clone()),
                _ => None,
            })
            .collect()
    }

    /// Goal: an ended call's ending is carried out again as its terminal
    /// reason says, and nothing else (no record, no second end). Method:
    /// calls timed out to an announcement and to an external number, one
    /// abandoned, one still queued. Expected: the announcement then the
    /// hang-up; the redirect to the number; a hang-up; nothing for the
    /// queued call; only the timed-out one keeps its record while its
    /// caller listens.
    #[test]
    fn an_ending_is_finished_as_its_terminal_reason_says() {
        let caller = LegId::new("c1");
        let mut timed_out = queued(FinalDestination::Announcement {
            prompt: "queue-closed".into(),
        });
        let first = timed_out.max_wait_elapsed(timed_out.stint, 1_000);
        assert_eq!(timed_out.phase, CallPhase::Ended(TerminalReason::TimedOut));
        let again = timed_out.finish_ending();
        assert_eq!(
            pbx(&again),
            vec![
                PbxCommand::PlayAnnouncement {
                    leg_id: caller.clone(),
                    prompt: "queue-closed".into()
                },
                PbxCommand::Hangup {
                    leg_id: caller.clone(),
                    cause: HangupCause::Normal
                },
            ]
        );
        assert_eq!(
            pbx(&again),
            pbx(&first),
            "the same ending as the first time"
        );
        assert_eq!(again.len(), 2, "no record, no second end: {again:?}");
        assert!(timed_out.ending_plays_to_caller());

        let mut overflowed = queued(FinalDestination::External {
            number: "5559999".into(),
        });
        overflowed.max_wait_elapsed(overflowed.stint, 1_000);
        assert_eq!(
            overflowed.finish_ending(),
            vec![CallEffect::Pbx(PbxCommand::RedirectExternal {
                leg_id: caller.clone(),
                number: "5559999".into()
            })]
        );
        assert!(!overflowed.ending_plays_to_caller());
        assert!(overflowed.ending_waits_on_pbx());
        assert!(timed_out.ending_waits_on_pbx());

        let mut abandoned = queued(FinalDestination::default());
        abandoned.leg_hung_up(&caller, HangupCause::Normal, 500);
        assert_eq!(
            pbx(&abandoned.finish_ending()),
            vec![PbxCommand::Hangup {
                leg_id: caller,
                cause: HangupCause::Normal
            }]
        );
        assert!(!abandoned.ending_plays_to_caller());
        assert!(!abandoned.ending_waits_on_pbx());

        let live = queued(FinalDestination::default());
        assert!(live.finish_ending().is_empty());
        assert!(!live.ending_plays_to_caller());
    }
}
