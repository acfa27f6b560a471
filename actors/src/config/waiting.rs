//! What a queue offers the callers who wait in it, besides music: periodic
//! announcements of their place and expected wait (`[queues.announcements]`)
//! and callbacks with re-entry (`[queues.callback]`). Serde structs with
//! their defaults and [`validate`], which names the key path of a problem
//! (`queues[0].announcements.interval_ms: ...`).

use serde::{Deserialize, Serialize};

/// Shortest accepted interval between two announcements to one caller:
/// a caller told their place more often than this hears little else.
pub const ANNOUNCE_INTERVAL_MS_MIN: u64 = 10_000;
/// Longest accepted interval (an hour); longer is a typo.
pub const ANNOUNCE_INTERVAL_MS_MAX: u64 = 3_600_000;
/// Longest accepted re-entry window (a day, as a queue's longest wait).
pub const REENTRY_WINDOW_MS_MAX: u64 = 86_400_000;
/// Longest accepted ringing time of a callback dial (five minutes).
pub const CALLBACK_DIAL_TIMEOUT_MS_MAX: u64 = 300_000;

/// `[queues.announcements]`: what waiting callers hear between the music.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnnounceConfig {
    /// Time between two announcements to one caller; 0 turns them off,
    /// otherwise at least [`ANNOUNCE_INTERVAL_MS_MIN`].
    pub interval_ms: u64,
    /// Delay of the first announcement after the caller joins the queue;
    /// `None` waits one `interval_ms`.
    pub first_after_ms: Option<u64>,
    /// Say the caller's place in line.
    pub position: bool,
    /// Say the estimated wait (only once the queue has answered calls to
    /// estimate from).
    pub wait_estimate: bool,
}

impl Default for AnnounceConfig {
    fn default() -> Self {
        Self {
            interval_ms: 0,
            first_after_ms: None,
            position: true,
            wait_estimate: true,
        }
    }
}

impl AnnounceConfig {
    /// Whether callers hear announcements at all.
    pub fn enabled(&self) -> bool {
        self.interval_ms > 0 && (self.position || self.wait_estimate)
    }
}

/// `[queues.callback]`: a caller may leave the line and keep the place.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallbackConfig {
    /// The DTMF digit (`0-9`, `*`, `#`) a waiting caller presses to be
    /// called back; none turns the digit off.
    pub digit: Option<String>,
    /// A caller who hangs up while waiting is called back (keeps the
    /// place) instead of abandoning.
    pub on_hangup: bool,
    /// A caller who abandoned (or left a callback) and calls again from
    /// the same number within this long takes the old place back; 0 turns
    /// re-entry off.
    pub reentry_window_ms: u64,
    /// How long the caller's phone rings when called back before the
    /// callback counts as failed.
    pub dial_timeout_ms: u64,
    /// Prompt played to confirm the callback before the caller is hung up.
    pub confirm_prompt: String,
}

impl Default for CallbackConfig {
    fn default() -> Self {
        Self {
            digit: None,
            on_hangup: false,
            reentry_window_ms: 0,
            dial_timeout_ms: 30_000,
            confirm_prompt: "queue-callback-confirm".into(),
        }
    }
}

impl CallbackConfig {
    /// The callback digit, once validated.
    pub fn digit_char(&self) -> Option<char> {
        self.digit.as_deref().and_then(|d| d.chars().next())
    }

    /// Whether a caller can become a callback entry at all.
    pub fn enabled(&self) -> bool {
        self.digit.is_some() || self.on_hangup
    }
}

/// Checks one queue's `announcements` and `callback` under key path `p`
/// (`queues[0]`), calling `err` for every problem.
pub fn validate(
    p: &str,
    announce: &AnnounceConfig,
    callback: &CallbackConfig,
    err: &mut impl FnMut(String, String),
) {
    let a = announce;
    if a.interval_ms != 0
        && !(ANNOUNCE_INTERVAL_MS_MIN..=ANNOUNCE_INTERVAL_MS_MAX).contains(&a.interval_ms)
    {
        err(
            format!("{p}.announcements.interval_ms"),
            format!(
                "must be 0 (off) or in {ANNOUNCE_INTERVAL_MS_MIN}..={ANNOUNCE_INTERVAL_MS_MAX}"
            ),
        );
    }
    if a.first_after_ms
        .is_some_and(|f| f > ANNOUNCE_INTERVAL_MS_MAX)
    {
        err(
            format!("{p}.announcements.first_after_ms"),
            format!("must be at most {ANNOUNCE_INTERVAL_MS_MAX}"),
        );
    }
    let c = callback;
    if let Some(d) = &c.digit {
        let mut chars = d.chars();
        let ok = matches!((chars.next(), chars.next()), (Some(ch), None)
            if ch.is_ascii_digit() || ch == '*' || ch == '#');
        if !ok {
            err(
                format!("{p}.callback.digit"),
                format!("{d:?} is not one DTMF digit (0-9, * or #)"),
            );
        }
    }
    if c.reentry_window_ms > REENTRY_WINDOW_MS_MAX {
        err(
            format!("{p}.callback.reentry_window_ms"),
            format!("must be at most {REENTRY_WINDOW_MS_MAX}"),
        );
    }
    if c.dial_timeout_ms == 0 || c.dial_timeout_ms > CALLBACK_DIAL_TIMEOUT_MS_MAX {
        err(
            format!("{p}.callback.dial_timeout_ms"),
            format!("must be in 1..={CALLBACK_DIAL_TIMEOUT_MS_MAX}"),
        );
    }
    let prompt_ok = !c.confirm_prompt.is_empty()
        && c.confirm_prompt.len() <= 200
        && !c.confirm_prompt.contains("..")
        && c.confirm_prompt
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "-_/.".contains(ch));
    if !prompt_ok {
        err(
            format!("{p}.callback.confirm_prompt"),
            "must be a sound name (letters, digits, - _ / .; no ..)".into(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(a: &AnnounceConfig, c: &CallbackConfig) -> Vec<String> {
        let mut out = Vec::new();
        validate("queues[2]", a, c, &mut |k, m| out.push(format!("{k}: {m}")));
        out
    }

    /// The defaults pass and are off; every bad key is named with its path.
    #[test]
    fn bad_keys_are_named() {
        let (a, c) = (AnnounceConfig::default(), CallbackConfig::default());
        assert!(problems(&a, &c).is_empty());
        assert!(!a.enabled() && !c.enabled());
        let a = AnnounceConfig {
            interval_ms: 2_000,
            ..a
        };
        let c = CallbackConfig {
            digit: Some("12".into()),
            dial_timeout_ms: 0,
            confirm_prompt: "../x".into(),
            ..c
        };
        let p = problems(&a, &c);
        assert!(
            p[0].starts_with("queues[2].announcements.interval_ms: must be 0 (off) or in 10000")
        );
        assert!(p
            .iter()
            .any(|m| m.starts_with("queues[2].callback.digit: \"12\"")));
        assert!(p
            .iter()
            .any(|m| m.starts_with("queues[2].callback.dial_timeout_ms")));
        assert!(p
            .iter()
            .any(|m| m.starts_with("queues[2].callback.confirm_prompt")));
        let ok = CallbackConfig {
            digit: Some("#".into()),
            ..CallbackConfig::default()
        };
        assert_eq!(ok.digit_char(), Some('#'));
        assert!(problems(&AnnounceConfig::default(), &ok).is_empty());
    }
}
