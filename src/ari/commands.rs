//! The actors' commands turned into ARI requests: [`Calls::execute`], one
//! arm per [`PbxCommand`] (see the table in [`super::adapter`]), plus the
//! checks on what a command may carry (numbers, prompt names) and the map
//! from a REST failure to the port's [`PbxError`].

use std::rc::Rc;

use awc::http::Method;
use edgecc_actors::ports::{PbxCommand, PbxError};
use edgecc_actors::HangupCause;
use tracing::{debug, info, warn};

use super::calls::Calls;
use super::rest::{encode_segment, RestError};
use super::settings::WaitingMedia;
use super::state::{spy_of, HoldMedia, Leg, LegRole, OnAnswer};

/// Longest number accepted for a redirect or an outbound dial.
pub const NUMBER_LEN_MAX: usize = 40;

/// Maps a failed REST call to the port's error. A transport failure (no
/// answer, reset, timeout) while the event link is up also restarts the
/// link: the adapter no longer knows what Asterisk did with the request,
/// and only a reconnect's reconcile (which needs REST to answer again)
/// tells it, and reports the link up again so queues resume.
pub(super) fn map_rest(
    calls: &Calls,
    e: RestError,
    leg: Option<&str>,
    bridge: Option<&str>,
) -> PbxError {
    match e {
        RestError::Transport(m) => {
            if calls.link.is_up() {
                warn!(error = %m, "ARI request failed; reconnecting the link to reconcile.");
                calls.link.restart();
            } else {
                debug!(error = %m, "ARI request failed while the link is down.");
            }
            PbxError::LinkDown
        }
        RestError::Status { status: 404, .. } if leg.is_some() && bridge.is_none() => {
            PbxError::UnknownLeg(leg.unwrap_or_default().to_owned())
        }
        RestError::Status { status: 404, .. } if bridge.is_some() => {
            PbxError::UnknownBridge(bridge.unwrap_or_default().to_owned())
        }
        RestError::Status {
            status: 400,
            message,
        } if leg.is_some() && message.contains("not found") => {
            PbxError::UnknownLeg(leg.unwrap_or_default().to_owned())
        }
        RestError::Status { status, message } => PbxError::Refused(format!("{status} {message}")),
        RestError::Decode(m) => PbxError::Refused(m),
    }
}

/// Q.850 code of a hang-up cause, for `reason_code`.
pub fn q850_of(cause: HangupCause) -> u16 {
    match cause {
        HangupCause::Normal => 16,
        HangupCause::Busy => 17,
        HangupCause::Rejected => 21,
        HangupCause::NoAnswer => 19,
        HangupCause::Congestion => 34,
        HangupCause::Unreachable => 3,
        // Never sent (the PBX reports it, edgecc does not ask for it):
        // "network out of order".
        HangupCause::PbxLost => 38,
    }
}

/// Whether `n` is a number a redirect or an outbound dial may carry (no
/// dialplan separators).
pub(super) fn number_ok(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= NUMBER_LEN_MAX
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || "+*#-_.".contains(c))
}

/// Whether `p` is a prompt name (a relative sound path, no `..`).
pub(super) fn prompt_ok(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 200
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_/.".contains(c))
        && !p.contains("..")
}

impl Calls {
    /// Executes one command.
    pub(super) async fn execute(self: &Rc<Self>, cmd: PbxCommand) -> Result<(), PbxError> {
        let s = self.settings.clone();
        match cmd {
            PbxCommand::Answer { leg_id } => self.answer(leg_id.as_str()).await,
            PbxCommand::OriginateAgentLeg {
                leg_id,
                endpoint,
                caller_id,
                timeout_ms,
                auto_answer,
            } => {
                self.originate(
                    leg_id.as_str(),
                    &endpoint,
                    &caller_id,
                    timeout_ms,
                    auto_answer,
                    OnAnswer::Nothing,
                )
                .await
            }
            PbxCommand::ConsultDial {
                leg_id,
                endpoint,
                caller_id,
                timeout_ms,
            } => {
                self.originate(
                    leg_id.as_str(),
                    &endpoint,
                    &caller_id,
                    timeout_ms,
                    false,
                    OnAnswer::Nothing,
                )
                .await
            }
            PbxCommand::Bridge { bridge_id, leg_id } => {
                self.add_to_bridge(bridge_id.as_str(), leg_id.as_str())
                    .await
            }
            PbxCommand::Unbridge { bridge_id, leg_id } => {
                self.remove_from_bridge(bridge_id.as_str(), leg_id.as_str())
                    .await
            }
            PbxCommand::Conference { bridge_id, leg_ids } => {
                for leg in &leg_ids {
                    self.add_to_bridge(bridge_id.as_str(), leg.as_str()).await?;
                }
                Ok(())
            }
            PbxCommand::DestroyBridge { bridge_id } => {
                let path = format!("/bridges/{}", encode_segment(bridge_id.as_str()));
                let r = self.rest.call(Method::DELETE, &path, &[], None).await;
                match r {
                    Ok(_) | Err(RestError::Status { status: 404, .. }) => {
                        let mut st = self.state.borrow_mut();
                        st.bridges.remove(bridge_id.as_str());
                        st.bridges_to_destroy.remove(bridge_id.as_str());
                        Ok(())
                    }
                    Err(e) => Err(map_rest(self, e, None, Some(bridge_id.as_str()))),
                }
            }
            PbxCommand::Hold { leg_id } => {
                let id = leg_id.as_str();
                // A caller talking in a bridge is taken out of it first: in
                // the bridge it would go on hearing (and being heard by)
                // the agent under the music. Resume puts it back.
                let (waiting, bridged_with_others) = {
                    let st = self.state.borrow();
                    match st.legs.get(id).filter(|l| l.role == LegRole::Caller) {
                        Some(l) => match &l.bridge {
                            Some(b) if st.bridges.get(b).is_some_and(|m| m.len() > 1) => {
                                (false, Some(b.clone()))
                            }
                            _ => (true, None),
                        },
                        None => (false, None),
                    }
                };
                if let Some(b) = bridged_with_others {
                    self.remove_from_bridge(&b, id).await?;
                    if let Some(l) = self.state.borrow_mut().legs.get_mut(id) {
                        l.held_from = Some(b);
                    }
                }
                let media = if waiting && s.waiting_media == WaitingMedia::Ringing {
                    HoldMedia::Ringing
                } else {
                    HoldMedia::Moh
                };
                let r = match media {
                    HoldMedia::Ringing => self.channel_op(Method::POST, id, "ring", &[]).await,
                    HoldMedia::Moh => {
                        let q: Vec<(&str, &str)> = if s.moh_class.is_empty() {
                            vec![]
                        } else {
                            vec![("mohClass", s.moh_class.as_str())]
                        };
                        self.channel_op(Method::POST, id, "moh", &q).await
                    }
                };
                if r.is_ok() {
                    if let Some(l) = self.state.borrow_mut().legs.get_mut(id) {
                        l.hold = Some(media);
                    }
                }
                r
            }
            PbxCommand::Resume { leg_id } => {
                let id = leg_id.as_str();
                let (media, back_to) = {
                    let mut st = self.state.borrow_mut();
                    match st.legs.get_mut(id) {
                        Some(l) => (
                            l.hold.take().unwrap_or(HoldMedia::Moh),
                            l.held_from.take().filter(|_| l.bridge.is_none()),
                        ),
                        None => (HoldMedia::Moh, None),
                    }
                };
                let r = match media {
                    HoldMedia::Ringing => self.channel_op(Method::DELETE, id, "ring", &[]).await,
                    HoldMedia::Moh => self.channel_op(Method::DELETE, id, "moh", &[]).await,
                };
                if let Some(b) = back_to {
                    let live = self.state.borrow().bridges.contains_key(&b);
                    if live {
                        self.add_to_bridge(&b, id).await?;
                    }
                }
                r
            }
            PbxCommand::Mute { leg_id } => {
                self.channel_op(
                    Method::POST,
                    leg_id.as_str(),
                    "mute",
                    &[("direction", "in")],
                )
                .await
            }
            PbxCommand::Unmute { leg_id } => {
                self.channel_op(
                    Method::DELETE,
                    leg_id.as_str(),
                    "mute",
                    &[("direction", "in")],
                )
                .await
            }
            PbxCommand::Hangup { leg_id, cause } => self.hangup_leg(leg_id.as_str(), cause).await,
            PbxCommand::RedirectExternal { leg_id, number } => {
                if !number_ok(&number) {
                    return Err(PbxError::Refused(format!(
                        "{number:?} is not a dialable number"
                    )));
                }
                let id = leg_id.as_str();
                if !self.wait_playbacks(id).await {
                    return Err(PbxError::LinkDown);
                }
                if let Some(l) = self.state.borrow_mut().legs.get_mut(id) {
                    l.redirected = true;
                }
                let r = self
                    .channel_op(
                        Method::POST,
                        id,
                        "continue",
                        &[
                            ("context", s.redirect_context.as_str()),
                            ("extension", number.as_str()),
                            ("priority", "1"),
                        ],
                    )
                    .await;
                if r.is_err() {
                    if let Some(l) = self.state.borrow_mut().legs.get_mut(id) {
                        l.redirected = false;
                    }
                } else {
                    info!(leg_id = %id, number = %number, context = %s.redirect_context, "Caller redirected to the dialplan.");
                }
                r
            }
            PbxCommand::PlayAnnouncement { leg_id, prompt } => {
                if !prompt_ok(&prompt) {
                    return Err(PbxError::Refused(format!(
                        "{prompt:?} is not a prompt name"
                    )));
                }
                let pb = self.next_playback_id(leg_id.as_str());
                let media = format!("sound:{prompt}");
                // Recorded before the request: PlaybackFinished can arrive
                // before its answer (a short or missing prompt), and a
                // playback recorded after it would hold every later
                // hang-up of the leg for `announcement_wait_max`.
                if let Some(l) = self.state.borrow_mut().legs.get_mut(leg_id.as_str()) {
                    l.playbacks.insert(pb.clone());
                }
                let r = self
                    .channel_op(
                        Method::POST,
                        leg_id.as_str(),
                        "play",
                        &[("media", media.as_str()), ("playbackId", pb.as_str())],
                    )
                    .await;
                if r.is_err() {
                    if let Some(l) = self.state.borrow_mut().legs.get_mut(leg_id.as_str()) {
                        l.playbacks.remove(&pb);
                    }
                }
                r
            }
            PbxCommand::PlayPrompts { leg_id, media } => {
                self.play_prompts(leg_id.as_str(), &media).await
            }
            PbxCommand::StopPrompts { leg_id } => self.stop_prompts(leg_id.as_str()).await,
            PbxCommand::DialCallback {
                leg_id,
                number,
                caller_id,
                timeout_ms,
            } => {
                self.dial_callback(leg_id.as_str(), &number, &caller_id, timeout_ms)
                    .await
            }
            PbxCommand::Snoop {
                snoop_leg_id,
                leg_id,
                whisper,
                endpoint,
            } => {
                let sup = snoop_leg_id.as_str();
                if self.state.borrow().legs.contains_key(sup) {
                    return Ok(()); // a retried command
                }
                let spy = spy_of(sup);
                let bridge = format!("s~{sup}");
                self.state.borrow_mut().legs.insert(
                    spy.clone(),
                    Leg::new(
                        LegRole::Spy {
                            supervisor: sup.to_owned(),
                        },
                        OnAnswer::Nothing,
                    ),
                );
                let r = self
                    .channel_op(
                        Method::POST,
                        leg_id.as_str(),
                        "snoop",
                        &[
                            ("spy", "both"),
                            ("whisper", if whisper { "out" } else { "none" }),
                            ("app", s.app.as_str()),
                            ("appArgs", "snoop"),
                            ("snoopId", spy.as_str()),
                        ],
                    )
                    .await;
                if let Err(e) = r {
                    self.state.borrow_mut().forget(&spy);
                    return Err(e);
                }
                let r = self
                    .originate(
                        sup,
                        &endpoint,
                        "",
                        s.remote_answer_wait.as_millis() as u64 * 3,
                        false,
                        OnAnswer::BridgeWithSpy {
                            spy: spy.clone(),
                            bridge,
                        },
                    )
                    .await;
                if r.is_err() {
                    self.state.borrow_mut().forget(&spy);
                    let path = format!("/channels/{}", encode_segment(&spy));
                    let _ = self.rest.call(Method::DELETE, &path, &[], None).await;
                }
                r
            }
            PbxCommand::Barge {
                leg_id,
                bridge_id,
                endpoint,
            } => {
                self.originate(
                    leg_id.as_str(),
                    &endpoint,
                    "",
                    s.remote_answer_wait.as_millis() as u64 * 3,
                    false,
                    OnAnswer::JoinBridge {
                        bridge: bridge_id.0.clone(),
                    },
                )
                .await
            }
            PbxCommand::OutboundDial {
                agent_leg_id,
                endpoint,
                customer_leg_id,
                number,
                timeout_ms,
            } => {
                if !number_ok(&number) {
                    return Err(PbxError::Refused(format!(
                        "{number:?} is not a dialable number"
                    )));
                }
                let customer_endpoint = s.outbound_endpoint.replace("{number}", &number);
                self.originate(
                    agent_leg_id.as_str(),
                    &endpoint,
                    &number,
                    timeout_ms,
                    false,
                    OnAnswer::DialCustomer {
                        customer: customer_leg_id.0.clone(),
                        endpoint: customer_endpoint,
                        caller_id: String::new(),
                        timeout_ms,
                    },
                )
                .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Numbers and prompts that could smuggle dialplan or paths are refused.
    #[test]
    fn numbers_and_prompts_are_checked() {
        assert!(number_ok("+33123456789"));
        assert!(!number_ok("123,Hangup"));
        assert!(!number_ok(""));
        assert!(prompt_ok("all-agents-busy"));
        assert!(prompt_ok("custom/queue-full"));
        assert!(!prompt_ok("../../etc/passwd"));
        assert!(!prompt_ok("a,b"));
        assert_eq!(q850_of(HangupCause::Rejected), 21);
    }
}
