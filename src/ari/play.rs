//! Prompts to waiting callers and callbacks over ARI.
//!
//! - [`PbxCommand::PlayPrompts`](edgecc_actors::PbxCommand::PlayPrompts):
//!   one `POST /channels/{id}/play?media=sound:…,number:…&playbackId=…`
//!   (Asterisk 14+ plays a comma-separated list in order as one playback,
//!   so one `DELETE /playbacks/{id}` stops it all). Its playback id ends in
//!   [`PROMPT_SUFFIX`] (the state tells prompts by it, [`is_prompt`]): a
//!   hang-up does not wait for a prompt (it waits for
//!   announcements only, see `steps::wait_playbacks`).
//! - `StopPrompts`: `DELETE /playbacks/{id}` for each prompt still playing
//!   (404: it finished already, which is fine). The call sends it when an
//!   offer starts, so a prompt never holds up routing.
//! - A play suspends the music on hold (or the ringing) of a waiting
//!   caller and Asterisk does not resume it: when a prompt finishes and the
//!   caller is still waiting out of a bridge, its hold media is started
//!   again ([`Calls::restore_hold_media`], asked by the state on
//!   `PlaybackFinished`).
//! - `DialCallback`: the caller's number through `outbound_endpoint`
//!   (`{number}` replaced), originated into the application like an
//!   outbound customer; it answers with `LegAnswered` or ends with
//!   `LegHungUp`.

use std::rc::Rc;

use awc::http::Method;
use edgecc_actors::ports::{PbxError, PromptMedia};
use tracing::{debug, warn};

use super::calls::Calls;
use super::commands::{number_ok, prompt_ok};
use super::rest::{encode_segment, RestError};
use super::state::{is_prompt, HoldMedia, OnAnswer, PROMPT_SUFFIX};

/// Most media in one prompt list (an announcement is a handful).
pub const PROMPT_MEDIA_MAX: usize = 16;

/// The ARI media list of `media` (comma separated), or why it is refused.
pub fn media_list(media: &[PromptMedia]) -> Result<String, PbxError> {
    if media.is_empty() || media.len() > PROMPT_MEDIA_MAX {
        return Err(PbxError::Refused(format!(
            "a prompt list has 1..={PROMPT_MEDIA_MAX} media"
        )));
    }
    for m in media {
        let ok = match m {
            PromptMedia::Sound(name) => prompt_ok(name),
            PromptMedia::Number(_) => true,
            PromptMedia::Digits(d) => {
                !d.is_empty() && d.len() <= 40 && d.chars().all(|c| c.is_ascii_digit())
            }
        };
        if !ok {
            return Err(PbxError::Refused(format!("{m:?} is not a prompt")));
        }
    }
    Ok(media
        .iter()
        .map(PromptMedia::uri)
        .collect::<Vec<_>>()
        .join(","))
}

impl Calls {
    /// `PlayPrompts`: starts the list; Asterisk answers 201 at once.
    pub(super) async fn play_prompts(
        self: &Rc<Self>,
        leg: &str,
        media: &[PromptMedia],
    ) -> Result<(), PbxError> {
        let list = media_list(media)?;
        let pb = format!("{}{PROMPT_SUFFIX}", self.next_playback_id(leg));
        // Recorded before the request, as announcements are: the
        // PlaybackFinished of a short list may come before the answer.
        if let Some(l) = self.state.borrow_mut().legs.get_mut(leg) {
            l.playbacks.insert(pb.clone());
        }
        let r = self
            .channel_op(
                Method::POST,
                leg,
                "play",
                &[("media", list.as_str()), ("playbackId", pb.as_str())],
            )
            .await;
        if r.is_err() {
            if let Some(l) = self.state.borrow_mut().legs.get_mut(leg) {
                l.playbacks.remove(&pb);
            }
        }
        r
    }

    /// `StopPrompts`: stops every prompt still playing to `leg`.
    pub(super) async fn stop_prompts(self: &Rc<Self>, leg: &str) -> Result<(), PbxError> {
        let playing: Vec<String> = match self.state.borrow_mut().legs.get_mut(leg) {
            Some(l) => {
                let p: Vec<String> = l
                    .playbacks
                    .iter()
                    .filter(|p| is_prompt(p))
                    .cloned()
                    .collect();
                for id in &p {
                    l.playbacks.remove(id);
                }
                p
            }
            None => Vec::new(),
        };
        for pb in playing {
            let path = format!("/playbacks/{}", encode_segment(&pb));
            match self.rest.call(Method::DELETE, &path, &[], None).await {
                Ok(_) | Err(RestError::Status { status: 404, .. }) => {
                    debug!(leg_id = %leg, playback_id = %pb, "Prompt stopped.");
                }
                Err(e) => {
                    warn!(leg_id = %leg, playback_id = %pb, error = %e, "Prompt not stopped.");
                }
            }
        }
        Ok(())
    }

    /// A prompt to `leg` finished while it waits out of a bridge with hold
    /// media: start the media again (the play suspended it).
    pub(super) async fn restore_hold_media(self: &Rc<Self>, leg: &str) {
        let media = {
            let st = self.state.borrow();
            match st.legs.get(leg) {
                Some(l) if l.bridge.is_none() && !l.playbacks.iter().any(|p| is_prompt(p)) => {
                    l.hold
                }
                _ => None,
            }
        };
        let r = match media {
            None => return,
            Some(HoldMedia::Ringing) => self.channel_op(Method::POST, leg, "ring", &[]).await,
            Some(HoldMedia::Moh) => {
                let class = self.settings.moh_class.clone();
                let q: Vec<(&str, &str)> = if class.is_empty() {
                    vec![]
                } else {
                    vec![("mohClass", class.as_str())]
                };
                self.channel_op(Method::POST, leg, "moh", &q).await
            }
        };
        if let Err(e) = r {
            debug!(leg_id = %leg, error = %e, "Hold media not restarted after a prompt.");
        }
    }

    /// `DialCallback`: originates the caller's number into the application.
    pub(super) async fn dial_callback(
        self: &Rc<Self>,
        leg: &str,
        number: &str,
        caller_id: &str,
        timeout_ms: u64,
    ) -> Result<(), PbxError> {
        if !number_ok(number) {
            return Err(PbxError::Refused(format!(
                "{number:?} is not a dialable number"
            )));
        }
        let endpoint = self.settings.outbound_endpoint.replace("{number}", number);
        let caller_id = if number_ok(caller_id) { caller_id } else { "" };
        self.originate(
            leg,
            &endpoint,
            caller_id,
            timeout_ms,
            false,
            OnAnswer::Nothing,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A list becomes one comma-separated media parameter; a sound that
    /// could smuggle a path, digits that are not digits and an empty list
    /// are refused.
    #[test]
    fn media_lists_are_checked() {
        let list = media_list(&[
            PromptMedia::Sound("queue-thereare".into()),
            PromptMedia::Number(3),
            PromptMedia::Digits("42".into()),
        ])
        .unwrap();
        assert_eq!(list, "sound:queue-thereare,number:3,digits:42");
        assert!(media_list(&[]).is_err());
        assert!(media_list(&[PromptMedia::Sound("../etc/passwd".into())]).is_err());
        assert!(media_list(&[PromptMedia::Digits("1,2".into())]).is_err());
    }
}
