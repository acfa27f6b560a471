//! What an agent's desktop presence persists and how a restart reads it.
//! Presence is saved with the agent (through the storage writer, as its
//! other fields are), so a restart is not read as every desktop closing:
//! an agent whose desktop was connected comes back connected and waiting
//! for that desktop to reconnect, for one grace counted from when the
//! HTTP layer listens again (then it is a disconnect, as if the desktop
//! had closed at the restart);
//! one whose last desktop had closed keeps its grace's own deadline (at
//! once if it passed while edgecc was down).

use super::Presence;
use serde::{Deserialize, Serialize};

/// The agent's presence as its actor last saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedPresence {
    /// Connected or not, and since when.
    pub presence: Presence,
    /// When the grace after the last desktop closed runs out (wall ms);
    /// `None` while a desktop is connected or once the grace has acted.
    #[serde(default)]
    pub grace_until_ms: Option<u64>,
}

/// What the restored actor does about its desktop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    /// Nothing pending.
    Nothing,
    /// A desktop was connected at the kill: it has one grace from the
    /// restart (the grace comes from the HTTP settings, see
    /// [`super::actor::AwaitDesktops`]) to come back.
    AwaitReconnect {
        /// When the restored actor was built (the restart).
        restart_ms: u64,
    },
    /// The grace of a desktop closed before the kill ends at this time.
    GraceUntil(u64),
}

/// The presence a restored agent starts with and what it must still do;
/// `saved` is `None` in records older than presence saving (then the
/// desktop counts as closed at the restart, with no grace, as before).
pub fn resume(saved: Option<&SavedPresence>, now_ms: u64) -> (Presence, Resume) {
    match saved {
        None => (Presence::Disconnected { since_ms: now_ms }, Resume::Nothing),
        Some(s) => match s.presence {
            Presence::Connected { .. } => {
                (s.presence, Resume::AwaitReconnect { restart_ms: now_ms })
            }
            Presence::Disconnected { .. } => (
                s.presence,
                s.grace_until_ms.map_or(Resume::Nothing, Resume::GraceUntil),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: a restart reads a saved presence as it was, not as a close.
    /// Method: connected → still connected since its own start and
    /// awaiting a reconnect; closed within its grace → that deadline;
    /// closed long ago → nothing; an older record → closed at the restart.
    #[test]
    fn a_restart_keeps_the_saved_presence() {
        let connected = SavedPresence {
            presence: Presence::Connected { since_ms: 10 },
            grace_until_ms: None,
        };
        assert_eq!(
            resume(Some(&connected), 500),
            (
                Presence::Connected { since_ms: 10 },
                Resume::AwaitReconnect { restart_ms: 500 }
            )
        );
        let closing = SavedPresence {
            presence: Presence::Disconnected { since_ms: 20 },
            grace_until_ms: Some(700),
        };
        assert_eq!(
            resume(Some(&closing), 500),
            (
                Presence::Disconnected { since_ms: 20 },
                Resume::GraceUntil(700)
            )
        );
        let closed = SavedPresence {
            grace_until_ms: None,
            ..closing
        };
        assert_eq!(resume(Some(&closed), 500).1, Resume::Nothing);
        assert_eq!(
            resume(None, 500),
            (Presence::Disconnected { since_ms: 500 }, Resume::Nothing)
        );
    }
}
