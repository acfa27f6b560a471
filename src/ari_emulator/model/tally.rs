//! What ended the emulated Asterisk's channels, and who asked, counted
//! since it started: the channels destroyed by Q.850 cause and the
//! application's own hang-ups, hand-backs to the dialplan and redirects.
//! `edgecc pbx-emulator` serves it in its status API, so that a demo or a
//! test can tell from outside the daemon whether a restart hung anything
//! up.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The counts, since start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Channels destroyed, by the cause of their `ChannelDestroyed`
    /// (16 normal clearing, 21 rejected, 19 no answer...). Keys are the
    /// causes as text, so the JSON is an object.
    pub destroyed_by_cause: BTreeMap<String, u64>,
    /// `DELETE /channels/{id}` carried out: the application hung a channel
    /// up.
    pub app_hangups: u64,
    /// `POST /channels/{id}/continue` carried out: the application handed
    /// a channel back to the dialplan.
    pub app_continues: u64,
    /// `POST /channels/{id}/redirect` carried out: the application
    /// transferred a channel away.
    pub app_redirects: u64,
}

impl Tally {
    /// One channel destroyed with `cause`.
    pub fn destroyed(&mut self, cause: u16) {
        *self
            .destroyed_by_cause
            .entry(cause.to_string())
            .or_default() += 1;
    }

    /// Every channel destroyed, whatever the cause.
    pub fn destroyed_total(&self) -> u64 {
        self.destroyed_by_cause.values().sum()
    }
}
