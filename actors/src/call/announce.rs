//! Announcements to a waiting caller: every `interval_ms` of a stint (the
//! first after `first_after_ms`), the caller hears its place in line and
//! the expected wait, in the Asterisk core sounds app_queue uses
//! (`queue-youarenext`, `queue-thereare` N `queue-callswaiting`,
//! `queue-holdtime` N `queue-minutes`). The place comes from the queue
//! (the glue asks it when the timer fires); this file decides whether and
//! what to play. Routing never waits for a prompt: a prompt that may
//! still play when an offer starts is stopped ([`Call::stop_prompts`]).

use super::{Call, CallEffect, CallPhase, CallTimer, Fx};
use crate::config::AnnounceConfig;
use crate::ports::{PbxCommand, PromptMedia};
use serde::{Deserialize, Serialize};

/// Longest wait said in minutes; a longer estimate is said as this (an
/// estimate past an hour says nothing useful and may be an outlier).
pub const WAIT_ESTIMATE_MINUTES_MAX: u64 = 60;

/// A waiting call's place, as its queue sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    /// 1 for the next call to be offered.
    pub position: usize,
    /// Expected wait from recent answers, when the queue has history.
    pub wait_estimate_ms: Option<u64>,
}

/// What a caller at `place` hears under `cfg` (empty: nothing to say).
pub fn announcement(place: &Place, cfg: &AnnounceConfig) -> Vec<PromptMedia> {
    let mut media = Vec::new();
    if cfg.position {
        if place.position <= 1 {
            media.push(PromptMedia::Sound("queue-youarenext".into()));
        } else {
            media.push(PromptMedia::Sound("queue-thereare".into()));
            media.push(PromptMedia::Number(place.position as u64));
            media.push(PromptMedia::Sound("queue-callswaiting".into()));
        }
    }
    if let (true, Some(ms)) = (cfg.wait_estimate, place.wait_estimate_ms) {
        media.push(PromptMedia::Sound("queue-holdtime".into()));
        let minutes = ms.div_ceil(60_000).clamp(1, WAIT_ESTIMATE_MINUTES_MAX);
        if ms < 60_000 {
            media.push(PromptMedia::Sound("queue-less-than".into()));
        }
        media.push(PromptMedia::Number(minutes));
        media.push(PromptMedia::Sound(if minutes == 1 {
            "queue-minute".into()
        } else {
            "queue-minutes".into()
        }));
    }
    media
}

impl Call {
    /// Arms the first announcement of the stint just begun (on joining a
    /// queue whose rules announce).
    pub(super) fn arm_announcements(&self, now_ms: u64, fx: &mut Fx) {
        let Some(cfg) = self.rules.as_ref().map(|r| &r.announce) else {
            return;
        };
        if cfg.enabled() {
            let first = cfg.first_after_ms.unwrap_or(cfg.interval_ms);
            fx.push(CallEffect::Timer(
                CallTimer::Announce(self.stint),
                now_ms + first,
            ));
        }
    }

    /// Whether the announcement timer of `stint` still matters: the glue
    /// asks the queue for the place only then.
    pub fn wants_place(&self, stint: u32) -> bool {
        stint == self.stint
            && self.callback.is_none()
            && matches!(self.phase, CallPhase::Queued { .. })
    }

    /// The announcement timer of `stint`, due at `due_ms`, fired, and the
    /// queue said the call's `place` (none if it did not know the call). A queued caller
    /// hears it; the next one is armed while the call still waits in this
    /// stint (ringing an agent counts: it may come back to the line; so
    /// does a kept place: the caller may call again).
    pub fn announce(&mut self, stint: u32, place: Option<Place>, due_ms: u64) -> Fx {
        let mut fx = Vec::new();
        let waiting = matches!(
            self.phase,
            CallPhase::Queued { .. } | CallPhase::Offering { .. }
        );
        if stint != self.stint || !waiting {
            return fx;
        }
        let Some(cfg) = self.rules.as_ref().map(|r| r.announce.clone()) else {
            return fx;
        };
        // A caller who left (a kept place) hears nothing, but the timer
        // goes on: the caller may come back.
        let here = self.callback.is_none();
        if let (CallPhase::Queued { .. }, Some(place), true) = (&self.phase, place, here) {
            let media = announcement(&place, &cfg);
            if !media.is_empty() {
                self.prompts_played += 1;
                fx.push(CallEffect::Pbx(PbxCommand::PlayPrompts {
                    leg_id: self.caller_leg.clone(),
                    media,
                }));
            }
        }
        fx.push(CallEffect::Timer(
            CallTimer::Announce(stint),
            due_ms + cfg.interval_ms,
        ));
        fx
    }

    /// Stops a prompt that may still play (one was played this call), so
    /// the caller hears the ringing agent, or the confirmation, at once.
    pub(super) fn stop_prompts(&self, fx: &mut Fx) {
        if self.prompts_played > 0 {
            fx.push(CallEffect::Pbx(PbxCommand::StopPrompts {
                leg_id: self.caller_leg.clone(),
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> AnnounceConfig {
        AnnounceConfig {
            interval_ms: 30_000,
            ..AnnounceConfig::default()
        }
    }

    /// The caller next in line hears that; others hear their place; the
    /// wait is said in whole minutes, "less than one" under a minute, and
    /// only when the queue has an estimate.
    #[test]
    fn what_a_caller_hears() {
        let uris = |p: Place| -> Vec<String> {
            announcement(&p, &cfg()).iter().map(|m| m.uri()).collect()
        };
        assert_eq!(
            uris(Place {
                position: 1,
                wait_estimate_ms: None
            }),
            ["sound:queue-youarenext"]
        );
        assert_eq!(
            uris(Place {
                position: 4,
                wait_estimate_ms: Some(150_000)
            }),
            [
                "sound:queue-thereare",
                "number:4",
                "sound:queue-callswaiting",
                "sound:queue-holdtime",
                "number:3",
                "sound:queue-minutes"
            ]
        );
        assert_eq!(
            uris(Place {
                position: 2,
                wait_estimate_ms: Some(20_000)
            })[3..],
            [
                "sound:queue-holdtime",
                "sound:queue-less-than",
                "number:1",
                "sound:queue-minute"
            ]
        );
    }
}
