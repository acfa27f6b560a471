//! Playbacks as Asterisk 22 keeps them: a `POST /channels/{id}/play` with
//! one or several media URIs (comma separated, played in order as one
//! playback) is live until its time is up or `DELETE /playbacks/{id}`
//! stops it (204, then `PlaybackFinished` with state `done`; an unknown or
//! finished id is 404 "Playback not found"). Every play is recorded, with
//! whether it was stopped, so tests can assert what callers heard; the
//! far end's DTMF ([`Core::far_end_dtmf`]) is reported as
//! `ChannelDtmfReceived`.

use std::collections::{BTreeMap, VecDeque};

use serde_json::{json, Value};

use super::{fields, message, Core, HttpError};
use crate::ari_emulator::EmulatorError;

/// Most plays remembered for tests (the oldest are dropped).
pub const PLAYED_MAX: usize = 1_000;

/// One play, as tests see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayedView {
    /// The playback id.
    pub id: String,
    /// `channel:<id>` or `bridge:<id>`.
    pub target_uri: String,
    /// The media URIs, in order.
    pub media: Vec<String>,
    /// Stopped by `DELETE /playbacks/{id}` before its end.
    pub stopped: bool,
}

/// Live playbacks and the record of every play.
#[derive(Debug, Default)]
pub struct Playbacks {
    /// Live playbacks by id: their object (state `playing`).
    live: BTreeMap<String, Value>,
    /// Every play, oldest first.
    played: VecDeque<PlayedView>,
}

impl Playbacks {
    /// A play started.
    pub fn started(&mut self, id: &str, playback: Value, target_uri: &str, media: &[&str]) {
        self.live.insert(id.to_owned(), playback);
        if self.played.len() == PLAYED_MAX {
            self.played.pop_front();
        }
        self.played.push_back(PlayedView {
            id: id.to_owned(),
            target_uri: target_uri.to_owned(),
            media: media.iter().map(|m| (*m).to_owned()).collect(),
            stopped: false,
        });
    }

    /// A play reached its end: true if it was still live (not stopped).
    pub fn ended(&mut self, id: &str) -> bool {
        self.live.remove(id).is_some()
    }

    /// Every play so far.
    pub fn played(&self) -> Vec<PlayedView> {
        self.played.iter().cloned().collect()
    }
}

impl Core {
    /// `GET /playbacks/{id}`.
    pub fn playback_get(&self, id: &str) -> Result<Value, HttpError> {
        self.playbacks
            .live
            .get(id)
            .cloned()
            .ok_or_else(playback_not_found)
    }

    /// `DELETE /playbacks/{id}`: stops a live playback.
    pub fn playback_stop(&mut self, id: &str) -> Result<(), HttpError> {
        let mut playback = self
            .playbacks
            .live
            .remove(id)
            .ok_or_else(playback_not_found)?;
        if let Some(p) = self.playbacks.played.iter_mut().rev().find(|p| p.id == id) {
            p.stopped = true;
        }
        playback["state"] = json!("done");
        self.emit_global("PlaybackFinished", fields(&[("playback", playback)]));
        Ok(())
    }

    /// The caller (or far end) of `id` presses `digit`.
    pub fn far_end_dtmf(&mut self, id: &str, digit: char) -> Result<(), EmulatorError> {
        if !self.channels.contains_key(id) {
            return Err(EmulatorError::ChannelNotFound(id.to_owned()));
        }
        self.emit_chan(
            "ChannelDtmfReceived",
            id,
            fields(&[
                ("digit", json!(digit.to_string())),
                ("duration_ms", json!(100)),
            ]),
        );
        Ok(())
    }
}

fn playback_not_found() -> HttpError {
    (404, message("Playback not found"))
}
