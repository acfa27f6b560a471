//! Why a leg ended, from what Asterisk says: the last `Dial.dialstatus` of an
//! originate first, the `ChannelDestroyed` (or far-end hang-up request)
//! cause second, because the cause alone is unreliable. On a real Asterisk 22
//! a busy Local agent destroys its `;1` half with cause 0, a rejected one
//! ends with dialstatus `NOANSWER` and cause 21, and an expired originate
//! timeout gives no final dialstatus at all and cause 19 (see
//! `/work/shared/ari/REAL-ARI.md`, table in fact 2).

use edgecc_actors::HangupCause;

/// Maps a Q.850 cause to edgecc's causes; `answered` says whether the leg
/// was ever up (an unanswered leg with an uninformative cause did not
/// answer; an answered one hung up normally).
pub fn cause_from_q850(cause: Option<i64>, answered: bool) -> HangupCause {
    match cause {
        Some(17) => HangupCause::Busy,
        Some(21) => HangupCause::Rejected,
        Some(18) | Some(19) => HangupCause::NoAnswer,
        Some(34) | Some(38) | Some(41) | Some(42) | Some(44) | Some(47) => HangupCause::Congestion,
        // Unallocated number, no route, unregistered, out of order,
        // invalid number format.
        Some(1) | Some(2) | Some(3) | Some(20) | Some(27) | Some(28) => HangupCause::Unreachable,
        _ if answered => HangupCause::Normal,
        _ => HangupCause::NoAnswer,
    }
}

/// The cause of an originated leg that ended: `dialstatus` is the last
/// non-empty `Dial.dialstatus` seen for it (if any), `cause` the cause of its
/// `ChannelDestroyed` (or of a far-end hang-up request).
pub fn classify_leg_end(
    dialstatus: Option<&str>,
    cause: Option<i64>,
    answered: bool,
) -> HangupCause {
    match dialstatus.map(str::to_ascii_uppercase).as_deref() {
        Some("BUSY") => HangupCause::Busy,
        Some("CONGESTION") => HangupCause::Congestion,
        Some("CHANUNAVAIL") => HangupCause::Unreachable,
        // NOANSWER covers a reject (cause 21), a busy far end seen only
        // through the cause (17), and a plain no-answer.
        Some("NOANSWER") => match cause {
            Some(21) => HangupCause::Rejected,
            Some(17) => HangupCause::Busy,
            _ => HangupCause::NoAnswer,
        },
        Some("CANCEL") => HangupCause::NoAnswer,
        Some("ANSWER") => cause_from_q850(cause, true),
        _ => cause_from_q850(cause, answered),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table of REAL-ARI.md fact 2: dialstatus first, cause second.
    #[test]
    fn real_asterisk_outcomes_classify() {
        // busy: dialstatus BUSY, `;1` destroyed with cause 0
        assert_eq!(
            classify_leg_end(Some("BUSY"), Some(0), false),
            HangupCause::Busy
        );
        // congestion: CONGESTION, cause 0
        assert_eq!(
            classify_leg_end(Some("CONGESTION"), Some(0), false),
            HangupCause::Congestion
        );
        // rejected (Hangup(21)): NOANSWER + 21
        assert_eq!(
            classify_leg_end(Some("NOANSWER"), Some(21), false),
            HangupCause::Rejected
        );
        // originate timeout: no final dialstatus (only RINGING), cause 19
        assert_eq!(
            classify_leg_end(Some("RINGING"), Some(19), false),
            HangupCause::NoAnswer
        );
        assert_eq!(
            classify_leg_end(None, Some(19), false),
            HangupCause::NoAnswer
        );
        // app DELETE while ringing: NOANSWER + 16
        assert_eq!(
            classify_leg_end(Some("NOANSWER"), Some(16), false),
            HangupCause::NoAnswer
        );
        // answered then hung up normally
        assert_eq!(
            classify_leg_end(Some("ANSWER"), Some(16), true),
            HangupCause::Normal
        );
        // the cause alone would have said "normal" for the busy case
        assert_eq!(cause_from_q850(Some(0), true), HangupCause::Normal);
        assert_eq!(
            classify_leg_end(Some("CHANUNAVAIL"), None, false),
            HangupCause::Unreachable
        );
        assert_eq!(
            classify_leg_end(Some("busy"), None, false),
            HangupCause::Busy
        );
    }

    /// Without a dialstatus the cause decides; unknown causes depend on
    /// whether the leg was answered.
    #[test]
    fn causes_alone() {
        assert_eq!(cause_from_q850(Some(17), true), HangupCause::Busy);
        assert_eq!(cause_from_q850(Some(34), false), HangupCause::Congestion);
        assert_eq!(cause_from_q850(Some(3), false), HangupCause::Unreachable);
        assert_eq!(cause_from_q850(Some(16), true), HangupCause::Normal);
        assert_eq!(cause_from_q850(Some(16), false), HangupCause::NoAnswer);
        assert_eq!(cause_from_q850(None, false), HangupCause::NoAnswer);
        assert_eq!(cause_from_q850(Some(-5), true), HangupCause::Normal);
        assert_eq!(
            cause_from_q850(Some(i64::MAX), false),
            HangupCause::NoAnswer
        );
    }
}
