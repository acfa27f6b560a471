//! Back-off after a routed offer ended unanswered, and the cooling-off after
//! repeated no-answers (the seed ACD's "ban for inactivity").
//!
//! - **Back-off**: after a reject, a refusal by the device or a no-answer the
//!   agent stays Ready (the supervisor sees Ready, the time in state runs)
//!   but is not offered queue calls until `after_*_ms` passed: the agent
//!   actor does not push itself into its queues' indexes and refuses a queue
//!   reservation meanwhile. Calls to the extension, transfers, consults and
//!   conferences still reach it. Saying Ready again (from Not Ready) ends a
//!   back-off.
//! - **Cooling-off**: the `cooling_off_no_answers`-th no-answer within
//!   `cooling_off_window_ms` sets the agent Not Ready with the system reason
//!   `cooling_off` (instead of `rona`). It ends when the agent says Ready,
//!   or by itself after `cooling_off_ms` (0: only when the agent comes
//!   back). The count starts over when a cooling-off begins.
//! - Refusals by the device are not counted here:
//!   `routing.device_refusals_max` already takes a device that refuses
//!   offers in a row out of routing (system reason `device_unreachable`).
//!   `timers.reject_delay_ms` (Not Ready for a while after a reject) and
//!   `after_reject_ms` are alternatives; the configuration refuses both. An
//!   agent's own `reject_delay_ms` wins over the back-off after a reject or
//!   a refusal.

use super::OfferOutcome;
use serde::{Deserialize, Serialize};

/// Longest accepted back-off or cooling-off: an hour; longer is a typo.
pub const BACKOFF_MS_MAX: u64 = 3_600_000;
/// Longest accepted cooling-off window: a day.
pub const COOLING_OFF_WINDOW_MS_MAX: u64 = 86_400_000;
/// Highest accepted `cooling_off_no_answers` (0 turns the cooling-off off).
pub const COOLING_OFF_NO_ANSWERS_MAX: u32 = 100;

/// `[routing.backoff]`: the delays and the cooling-off rule. All default to
/// 0 (off), so a configuration without the section routes as before.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackoffSettings {
    /// After the agent rejects an offer from the desktop.
    pub after_reject_ms: u64,
    /// After the agent's device refuses an offer (busy or rejected).
    pub after_refused_ms: u64,
    /// After an offer rings out unanswered.
    pub after_no_answer_ms: u64,
    /// No-answers within the window that start a cooling-off; 0 never.
    pub cooling_off_no_answers: u32,
    /// The window the no-answers are counted in.
    pub cooling_off_window_ms: u64,
    /// How long a cooling-off lasts before the agent is Ready by itself; 0
    /// keeps it Not Ready until the agent says Ready.
    pub cooling_off_ms: u64,
}

impl BackoffSettings {
    /// The back-off after an offer ended with `outcome`.
    pub fn after(&self, outcome: OfferOutcome) -> u64 {
        match outcome {
            OfferOutcome::Rejected => self.after_reject_ms,
            OfferOutcome::Refused => self.after_refused_ms,
            OfferOutcome::Missed => self.after_no_answer_ms,
            OfferOutcome::Withdrawn => 0,
        }
    }

    /// Checks limits; each problem as (key under `prefix`, message).
    /// `reject_delay_ms` is `timers.reject_delay_ms`.
    pub fn check(&self, prefix: &str, reject_delay_ms: u64) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        for (key, ms) in [
            ("after_reject_ms", self.after_reject_ms),
            ("after_refused_ms", self.after_refused_ms),
            ("after_no_answer_ms", self.after_no_answer_ms),
            ("cooling_off_ms", self.cooling_off_ms),
        ] {
            if ms > BACKOFF_MS_MAX {
                errors.push((
                    format!("{prefix}.{key}"),
                    format!("must be at most {BACKOFF_MS_MAX}"),
                ));
            }
        }
        if self.cooling_off_no_answers > COOLING_OFF_NO_ANSWERS_MAX {
            errors.push((
                format!("{prefix}.cooling_off_no_answers"),
                format!("must be at most {COOLING_OFF_NO_ANSWERS_MAX} (0 turns it off)"),
            ));
        }
        if self.cooling_off_no_answers > 0
            && (self.cooling_off_window_ms == 0
                || self.cooling_off_window_ms > COOLING_OFF_WINDOW_MS_MAX)
        {
            errors.push((
                format!("{prefix}.cooling_off_window_ms"),
                format!(
                    "must be in 1..={COOLING_OFF_WINDOW_MS_MAX} when cooling_off_no_answers is set"
                ),
            ));
        }
        if self.after_reject_ms > 0 && reject_delay_ms > 0 {
            errors.push((
                format!("{prefix}.after_reject_ms"),
                "set this or timers.reject_delay_ms, not both (the reject delay shows the \
                 agent Not Ready, the back-off keeps it Ready)"
                    .into(),
            ));
        }
        errors
    }
}

/// The agent's back-off state, persisted with it (snapshots without it read
/// as no back-off).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Backoff {
    /// Queues skip the agent until then (wall ms); 0 for none.
    pub until_ms: u64,
    /// The recent no-answers (wall ms) counted towards a cooling-off.
    pub no_answers_ms: Vec<u64>,
    /// When the cooling-off now running ends by itself (wall ms); `None`
    /// when none runs or it lasts until the agent comes back.
    pub cooling_off_until_ms: Option<u64>,
}

impl Backoff {
    /// Whether queues skip the agent at `now_ms`.
    pub fn holds(&self, now_ms: u64) -> bool {
        self.until_ms > now_ms
    }

    /// Starts the back-off `outcome` calls for (a longer one running stays).
    pub fn start(&mut self, settings: &BackoffSettings, outcome: OfferOutcome, now_ms: u64) {
        let ms = settings.after(outcome);
        if ms > 0 {
            self.until_ms = self.until_ms.max(now_ms.saturating_add(ms));
        }
    }

    /// Counts a no-answer at `now_ms`; true when it starts a cooling-off
    /// (the count then starts over and the end is set).
    pub fn no_answer(&mut self, settings: &BackoffSettings, now_ms: u64) -> bool {
        let max = settings.cooling_off_no_answers as usize;
        if max == 0 {
            return false;
        }
        let since = now_ms.saturating_sub(settings.cooling_off_window_ms);
        self.no_answers_ms.retain(|t| *t > since);
        self.no_answers_ms.push(now_ms);
        if self.no_answers_ms.len() < max {
            return false;
        }
        self.no_answers_ms.clear();
        self.cooling_off_until_ms =
            (settings.cooling_off_ms > 0).then(|| now_ms.saturating_add(settings.cooling_off_ms));
        true
    }

    /// The agent said Ready: it is back, whatever held it out ends.
    pub fn agent_back(&mut self) {
        self.until_ms = 0;
        self.cooling_off_until_ms = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BackoffSettings {
        BackoffSettings {
            after_reject_ms: 1_000,
            after_refused_ms: 2_000,
            after_no_answer_ms: 3_000,
            cooling_off_no_answers: 3,
            cooling_off_window_ms: 10_000,
            cooling_off_ms: 60_000,
        }
    }

    /// Each outcome has its own delay; a longer running one stays.
    #[test]
    fn delay_per_outcome() {
        let s = settings();
        let mut b = Backoff::default();
        b.start(&s, OfferOutcome::Refused, 100);
        assert_eq!(b.until_ms, 2_100);
        b.start(&s, OfferOutcome::Rejected, 200);
        assert_eq!(b.until_ms, 2_100, "the longer stays");
        b.start(&s, OfferOutcome::Missed, 300);
        assert_eq!(b.until_ms, 3_300);
        assert!(b.holds(3_299) && !b.holds(3_300));
        b.agent_back();
        assert!(!b.holds(0));
    }

    /// Only no-answers inside the window count; the third starts a
    /// cooling-off and the count starts over.
    #[test]
    fn cooling_off_counts_inside_the_window() {
        let s = settings();
        let mut b = Backoff::default();
        assert!(!b.no_answer(&s, 0));
        assert!(!b.no_answer(&s, 5_000));
        assert!(!b.no_answer(&s, 12_000), "the first fell out of the window");
        assert!(b.no_answer(&s, 14_000));
        assert_eq!(b.cooling_off_until_ms, Some(74_000));
        assert!(b.no_answers_ms.is_empty());
        assert!(!b.no_answer(&BackoffSettings::default(), 15_000), "off");
    }

    /// The contact center's validation reports the section's problems
    /// under `routing.backoff`; a TOML/JSON section with an unknown key is
    /// refused.
    #[test]
    fn config_validation_names_the_section() {
        let mut cfg = crate::config::ContactCenterConfig::default();
        cfg.routing.backoff.cooling_off_no_answers = 3;
        let errors = cfg.validate().unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "routing.backoff.cooling_off_window_ms");
        let parsed: crate::config::RoutingConfig = serde_json::from_value(serde_json::json!({
            "backoff": { "after_reject_ms": 2000 }
        }))
        .unwrap();
        assert_eq!(parsed.backoff.after_reject_ms, 2_000);
        let bad = serde_json::from_value::<crate::config::RoutingConfig>(serde_json::json!({
            "backoff": { "after_rejects_ms": 2000 }
        }));
        assert!(bad.is_err());
    }

    /// Limits and the clash with the reject delay name their keys.
    #[test]
    fn check_names_keys() {
        let mut s = settings();
        assert!(s.check("routing.backoff", 0).is_empty());
        s.after_no_answer_ms = BACKOFF_MS_MAX + 1;
        s.cooling_off_window_ms = 0;
        let keys: Vec<String> = s
            .check("routing.backoff", 5)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            keys,
            [
                "routing.backoff.after_no_answer_ms",
                "routing.backoff.cooling_off_window_ms",
                "routing.backoff.after_reject_ms"
            ]
        );
    }
}
