//! The REST steps commands and effects are made of: a channel operation,
//! answering, originating into the application, joining and leaving a
//! bridge, waiting for announcements, and hanging up (asked again while
//! Asterisk refuses). Each keeps the call picture in step with what it
//! asked Asterisk to do.

use std::rc::Rc;
use std::time::Duration;

use awc::http::Method;
use edgecc_actors::ports::PbxError;
use edgecc_actors::HangupCause;
use tracing::{debug, info, warn};

use super::calls::Calls;
use super::commands::{map_rest, q850_of};
use super::rest::{encode_segment, RestError};
use super::state::{Leg, LegRole, OnAnswer};

/// How often a bounded wait (announcement end, remote answer) looks again.
pub const WAIT_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// First wait before a hang-up Asterisk refused (5xx) is asked again; it
/// doubles up to [`HANGUP_RETRY_MAX`].
pub const HANGUP_RETRY_FIRST: Duration = Duration::from_millis(200);
/// Longest wait between two tries of a refused hang-up.
pub const HANGUP_RETRY_MAX: Duration = Duration::from_secs(10);

impl Calls {
    /// `POST|DELETE /channels/{id}/{op}?query`.
    pub(super) async fn channel_op(
        &self,
        method: Method,
        id: &str,
        op: &str,
        query: &[(&str, &str)],
    ) -> Result<(), PbxError> {
        let path = format!("/channels/{}/{op}", encode_segment(id));
        self.rest
            .call(method, &path, query, None)
            .await
            .map(|_| ())
            .map_err(|e| map_rest(self, e, Some(id), None))
    }

    pub(super) async fn answer(&self, id: &str) -> Result<(), PbxError> {
        let pending = self
            .state
            .borrow()
            .legs
            .get(id)
            .map(|l| (l.role.clone(), l.up));
        match pending {
            Some((LegRole::Originated, true)) => Ok(()),
            Some((LegRole::Originated, false)) => {
                // ARI cannot pick up an alerting phone: wait (bounded) for
                // the agent to do it, so the bridge that follows works.
                let deadline = tokio::time::Instant::now() + self.settings.remote_answer_wait;
                loop {
                    match self.state.borrow().legs.get(id).map(|l| l.up) {
                        Some(true) => return Ok(()),
                        None => return Err(PbxError::UnknownLeg(id.to_owned())),
                        Some(false) => {}
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(PbxError::Refused(
                            "the phone was not picked up (ARI cannot answer an alerting phone)"
                                .into(),
                        ));
                    }
                    actix_rt::time::sleep(WAIT_POLL_INTERVAL).await;
                }
            }
            _ => self.channel_op(Method::POST, id, "answer", &[]).await,
        }
    }

    /// Originates `leg` into the application. The leg is tracked before the
    /// request, because its first events can arrive before the answer.
    pub(super) async fn originate(
        &self,
        leg: &str,
        endpoint: &str,
        caller_id: &str,
        timeout_ms: u64,
        auto_answer: bool,
        on_answer: OnAnswer,
    ) -> Result<(), PbxError> {
        if self.state.borrow().legs.contains_key(leg) {
            return Ok(()); // a retried command: the leg exists
        }
        if endpoint.is_empty() || endpoint.len() > 200 || endpoint.chars().any(char::is_control) {
            return Err(PbxError::Unreachable(endpoint.to_owned()));
        }
        self.state
            .borrow_mut()
            .legs
            .insert(leg.to_owned(), Leg::new(LegRole::Originated, on_answer));
        let timeout_s = timeout_ms.div_ceil(1000).clamp(1, 3600).to_string();
        let other = format!("{leg};2");
        let mut q: Vec<(&str, &str)> = vec![
            ("endpoint", endpoint),
            ("app", self.settings.app.as_str()),
            ("channelId", leg),
            ("timeout", timeout_s.as_str()),
        ];
        if endpoint.starts_with("Local/") {
            q.push(("otherChannelId", other.as_str()));
        }
        if !caller_id.is_empty() {
            q.push(("callerId", caller_id));
        }
        let body = match (&self.settings.auto_answer_header, auto_answer) {
            (Some((name, value)), true) if endpoint.starts_with("PJSIP/") => {
                Some(serde_json::json!({
                    "variables": { format!("PJSIP_HEADER(add,{name})"): value }
                }))
            }
            _ => None,
        };
        let started = std::time::Instant::now();
        let r = self
            .rest
            .call(Method::POST, "/channels", &q, body.as_ref())
            .await;
        debug!(leg_id = %leg, endpoint = %endpoint, ms = started.elapsed().as_millis() as u64, ok = r.is_ok(), "Originate sent.");
        let r = match r {
            // 409: a channel holds the id, or an id it is a prefix of. It
            // is this leg only if a channel has exactly this id (a retried
            // originate that landed); otherwise Asterisk refused the id.
            Err(RestError::Status {
                status: 409,
                message,
            }) => {
                let path = format!("/channels/{}", encode_segment(leg));
                match self.rest.call(Method::GET, &path, &[], None).await {
                    Ok(_) => Ok(()),
                    Err(_) => {
                        warn!(leg_id = %leg, endpoint = %endpoint, error = %message, "Originate refused: the id conflicts with a live channel's.");
                        Err(RestError::Status {
                            status: 409,
                            message,
                        })
                    }
                }
            }
            other => other.map(|_| ()),
        };
        match r {
            Ok(()) => Ok(()),
            Err(e) => {
                let mut st = self.state.borrow_mut();
                if st.legs.get(leg).is_some_and(|l| !l.up) {
                    st.forget(leg);
                }
                drop(st);
                Err(match e {
                    RestError::Status {
                        status: 500,
                        message,
                    } if message.contains("Allocation failed") => {
                        info!(leg_id = %leg, endpoint = %endpoint, "Endpoint unreachable (Allocation failed).");
                        PbxError::Unreachable(endpoint.to_owned())
                    }
                    RestError::Status {
                        status: 400 | 404,
                        message,
                    } => PbxError::Unreachable(format!("{endpoint}: {message}")),
                    other => map_rest(self, other, Some(leg), None),
                })
            }
        }
    }

    /// Creates `bridge` on first use, then adds `leg` (moving it out of the
    /// bridge edgecc last saw it in).
    pub(super) async fn add_to_bridge(&self, bridge: &str, leg: &str) -> Result<(), PbxError> {
        let (known, current) = {
            let st = self.state.borrow();
            (
                st.bridges.contains_key(bridge),
                st.legs.get(leg).and_then(|l| l.bridge.clone()),
            )
        };
        if !known {
            match self
                .rest
                .call(
                    Method::POST,
                    "/bridges",
                    &[("type", "mixing"), ("bridgeId", bridge), ("name", bridge)],
                    None,
                )
                .await
            {
                Ok(_) | Err(RestError::Status { status: 409, .. }) => {
                    self.state
                        .borrow_mut()
                        .bridges
                        .entry(bridge.to_owned())
                        .or_default();
                }
                Err(e) => return Err(map_rest(self, e, None, Some(bridge))),
            }
        }
        if current.as_deref() == Some(bridge) {
            return Ok(());
        }
        if let Some(old) = current {
            let path = format!("/bridges/{}/removeChannel", encode_segment(&old));
            let _ = self
                .rest
                .call(Method::POST, &path, &[("channel", leg)], None)
                .await;
        }
        let path = format!("/bridges/{}/addChannel", encode_segment(bridge));
        self.rest
            .call(Method::POST, &path, &[("channel", leg)], None)
            .await
            .map_err(|e| map_rest(self, e, Some(leg), Some(bridge)))?;
        let mut st = self.state.borrow_mut();
        if let Some(l) = st.legs.get_mut(leg) {
            l.bridge = Some(bridge.to_owned());
        }
        if let Some(m) = st.bridges.get_mut(bridge) {
            m.insert(leg.to_owned());
        }
        Ok(())
    }

    /// Takes `leg` out of `bridge` (a 422, not in that bridge any more, is
    /// success).
    pub(super) async fn remove_from_bridge(&self, bridge: &str, leg: &str) -> Result<(), PbxError> {
        let path = format!("/bridges/{}/removeChannel", encode_segment(bridge));
        match self
            .rest
            .call(Method::POST, &path, &[("channel", leg)], None)
            .await
        {
            Ok(_) | Err(RestError::Status { status: 422, .. }) => {
                let mut st = self.state.borrow_mut();
                if let Some(l) = st.legs.get_mut(leg) {
                    if l.bridge.as_deref() == Some(bridge) {
                        l.bridge = None;
                    }
                    l.held_from = None;
                }
                if let Some(m) = st.bridges.get_mut(bridge) {
                    m.remove(leg);
                }
                Ok(())
            }
            Err(e) => Err(map_rest(self, e, Some(leg), Some(bridge))),
        }
    }

    /// Waits (bounded) until the announcements playing on `id` finished
    /// (not a prompt to a waiting caller: it dies with the leg). `false`
    /// when the adapter is stopping meanwhile: the caller is left hearing
    /// it, and the next life finishes the call's ending (the adoption takes
    /// an ended call's caller still in the application).
    pub(super) async fn wait_playbacks(&self, id: &str) -> bool {
        let deadline = tokio::time::Instant::now() + self.settings.announcement_wait_max;
        while self
            .state
            .borrow()
            .legs
            .get(id)
            .is_some_and(|l| l.playbacks.iter().any(|p| !super::state::is_prompt(p)))
        {
            if self.link.is_stopping() {
                info!(leg_id = %id, "Stopping during an announcement; the next start finishes the ending.");
                return false;
            }
            if tokio::time::Instant::now() >= deadline || !self.link.is_up() {
                warn!(leg_id = %id, "Announcement still playing after the wait; going on.");
                return true;
            }
            actix_rt::time::sleep(WAIT_POLL_INTERVAL).await;
        }
        true
    }

    /// Hangs up a leg (after its announcement), reporting the asked cause.
    pub(super) async fn hangup_leg(
        self: &Rc<Self>,
        id: &str,
        cause: HangupCause,
    ) -> Result<(), PbxError> {
        if !self.wait_playbacks(id).await {
            return Err(PbxError::LinkDown);
        }
        let known = {
            let mut st = self.state.borrow_mut();
            match st.legs.get_mut(id) {
                Some(l) => {
                    l.hangup_requested.get_or_insert(cause);
                    true
                }
                None => false,
            }
        };
        let code = q850_of(cause).to_string();
        let path = format!("/channels/{}", encode_segment(id));
        match self
            .rest
            .call(Method::DELETE, &path, &[("reason_code", &code)], None)
            .await
        {
            Ok(_) => Ok(()),
            Err(RestError::Status { status: 404, .. }) if known => {
                // Gone already, and its end not seen: report it now.
                let mut out = Vec::new();
                self.state.borrow_mut().end_leg(id, cause, &mut out);
                Calls::apply(self, out);
                Ok(())
            }
            Err(e) => {
                if known && e.status().is_some_and(|s| s >= 500) {
                    warn!(leg_id = %id, error = %e, "Hang-up refused; asking again until the channel ends.");
                    self.retry_hangup(id.to_owned(), cause);
                }
                Err(map_rest(self, e, Some(id), None))
            }
        }
    }

    /// Asks again, with a doubling wait, to hang up a leg Asterisk refused
    /// to (5xx), for as long as the leg is tracked with its hang-up asked
    /// for. Stops when the link goes down: the reconnect's reconcile hangs
    /// up what was asked for.
    pub(super) fn retry_hangup(self: &Rc<Self>, id: String, cause: HangupCause) {
        let calls = self.clone();
        actix_rt::spawn(async move {
            let code = q850_of(cause).to_string();
            let path = format!("/channels/{}", encode_segment(&id));
            let mut wait = HANGUP_RETRY_FIRST;
            loop {
                actix_rt::time::sleep(wait).await;
                wait = (wait * 2).min(HANGUP_RETRY_MAX);
                let asked = calls
                    .state
                    .borrow()
                    .legs
                    .get(&id)
                    .is_some_and(|l| l.hangup_requested.is_some());
                if !asked || calls.link.is_stopping() || !calls.link.is_up() {
                    return;
                }
                match calls
                    .rest
                    .call(Method::DELETE, &path, &[("reason_code", &code)], None)
                    .await
                {
                    Ok(_) => return,
                    Err(RestError::Status { status: 404, .. }) => {
                        let mut out = Vec::new();
                        calls.state.borrow_mut().end_leg(&id, cause, &mut out);
                        Calls::apply(&calls, out);
                        return;
                    }
                    Err(e) => debug!(leg_id = %id, error = %e, "Hang-up refused again."),
                }
            }
        });
    }
}
