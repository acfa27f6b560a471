//! [`AriPbx`]: the actors' [`PbxPort`] over ARI. It owns the leg/channel
//! and bridge picture ([`AriState`]), runs each call's commands in order in
//! that call's *lane* (different calls run in parallel), carries out the
//! [`Effect`]s events produce, and delivers [`PbxEvent`]s to the registry.
//!
//! Semantics follow the simulated PBX (`edgecc_actors::sim`) command by
//! command, so the actors cannot tell them apart:
//!
//! | command | ARI |
//! |---|---|
//! | Answer (caller) | `POST /channels/{id}/answer` |
//! | Answer (alerting agent leg) | waits, bounded, for the phone to be picked up |
//! | OriginateAgentLeg / ConsultDial | `POST /channels?endpoint&app&channelId&otherChannelId&callerId&timeout` |
//! | Bridge / Conference | `POST /bridges?type=mixing&bridgeId` on first use, `addChannel` |
//! | Unbridge | `removeChannel` |
//! | DestroyBridge | `DELETE /bridges/{id}` |
//! | Hold / Resume | a bridged caller leaves its bridge, `POST/DELETE /channels/{id}/moh` (`/ring` for a waiting caller), back in the bridge on resume |
//! | Mute / Unmute | `POST/DELETE /channels/{id}/mute?direction=in` |
//! | Hangup | `DELETE /channels/{id}?reason_code=` (after a playing announcement) |
//! | RedirectExternal | `POST /channels/{id}/continue?context&extension&priority=1` |
//! | PlayAnnouncement | `POST /channels/{id}/play?media=sound:…&playbackId` |
//! | Snoop | `POST /channels/{id}/snoop`, originate the supervisor, bridge the two |
//! | Barge | originate the supervisor, add it to the call's bridge on answer |
//! | OutboundDial | originate the agent, then the customer once the agent answers |
//!
//! While the link is down every command fails at once with
//! [`PbxError::LinkDown`]; a hang-up asked for meanwhile is remembered and
//! done after the reconnect ([`super::link`]).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::Recipient;
use awc::http::Method;
use edgecc_actors::ports::{LocalBoxFuture, PbxCommand, PbxError, PbxEvent, PbxPort};
use edgecc_actors::HangupCause;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::rest::{encode_segment, ProbeError, RestClient, RestError};
use super::settings::{AriSettings, WaitingMedia};
use super::state::{
    call_of_bridge, call_of_leg, AriState, Effect, HoldMedia, Leg, LegRole, OnAnswer,
};
use crate::net::ClientError;

/// How often a bounded wait (announcement end, remote answer) looks again.
pub const WAIT_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How long after a reconcile unknown channels are checked again before
/// being handed back (their StasisStart may still be on its way).
pub const ORPHAN_CHECK_DELAY: Duration = Duration::from_secs(2);

/// First wait before a hang-up Asterisk refused (5xx) is asked again; it
/// doubles up to [`HANGUP_RETRY_MAX`].
pub const HANGUP_RETRY_FIRST: Duration = Duration::from_millis(200);
/// Longest wait between two tries of a refused hang-up.
pub const HANGUP_RETRY_MAX: Duration = Duration::from_secs(10);
/// Longest number accepted for a redirect or an outbound dial.
pub const NUMBER_LEN_MAX: usize = 40;

/// Counters of the adapter, for tests, the benchmark and `check-config`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AriStats {
    /// Commands received.
    pub commands: u64,
    /// Commands refused at once because the link was down.
    pub link_down_refusals: u64,
    /// Successful (re)connects followed by a reconcile.
    pub connects: u64,
    /// Frames skipped: malformed, truncated, too large, absurd.
    pub frames_skipped: u64,
    /// Exact duplicate frames dropped.
    pub frames_duplicate: u64,
    /// Last reconcile's duration, µs.
    pub last_reconcile_us: u64,
    /// Channels listed by the last reconcile.
    pub last_reconcile_channels: usize,
}

/// One unit of work in a call's lane.
pub(crate) enum Job {
    /// A command from the actors, with where its result goes.
    Command(PbxCommand, oneshot::Sender<Result<(), PbxError>>),
    /// Work that followed from an event.
    Effect(Effect),
}

/// A call's commands, run one at a time.
#[derive(Default)]
struct Lane {
    /// Waiting jobs.
    jobs: VecDeque<Job>,
    /// A runner task is draining `jobs`.
    running: bool,
}

/// Everything the adapter shares between the port, the lanes and the link.
pub(crate) struct Inner {
    /// Settings.
    pub settings: Arc<AriSettings>,
    /// REST client.
    pub rest: RestClient,
    /// The picture of Asterisk.
    pub state: RefCell<AriState>,
    /// Where events go.
    pub events: RefCell<Option<Recipient<PbxEvent>>>,
    /// The link is up and reconciled: commands are accepted.
    pub link_up: Cell<bool>,
    /// Lanes by call id.
    lanes: RefCell<HashMap<String, Lane>>,
    /// Counters.
    pub stats: RefCell<AriStats>,
    /// Playback ids minted so far.
    playback_seq: Cell<u64>,
    /// Set to stop the link task.
    pub stopping: Cell<bool>,
    /// Requests to close the current WebSocket (tests, shutdown).
    pub kick: Cell<u64>,
}

/// The ARI adapter. Cheap to clone; lives on the actix system's thread.
#[derive(Clone)]
pub struct AriPbx {
    /// Shared state.
    pub(crate) inner: Rc<Inner>,
}

/// Maps a failed REST call to the port's error. A transport failure (no
/// answer, reset, timeout) while the event link is up also restarts the
/// link: the adapter no longer knows what Asterisk did with the request,
/// and only a reconnect's reconcile (which needs REST to answer again)
/// tells it, and reports the link up again so queues resume.
fn map_rest(inner: &Inner, e: RestError, leg: Option<&str>, bridge: Option<&str>) -> PbxError {
    match e {
        RestError::Transport(m) => {
            if inner.link_up.get() {
                warn!(error = %m, "ARI request failed; reconnecting the link to reconcile.");
                inner.kick.set(inner.kick.get() + 1);
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
    }
}

/// The lane of a command: the call its ids belong to.
fn lane_of(cmd: &PbxCommand) -> String {
    match cmd {
        PbxCommand::Conference { bridge_id, .. } | PbxCommand::DestroyBridge { bridge_id } => {
            call_of_bridge(bridge_id.as_str())
        }
        PbxCommand::Snoop { snoop_leg_id, .. } => call_of_leg(snoop_leg_id.as_str()),
        other => other
            .leg()
            .map(|l| call_of_leg(l.as_str()))
            .unwrap_or_default(),
    }
}

fn number_ok(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= NUMBER_LEN_MAX
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || "+*#-_.".contains(c))
}

fn prompt_ok(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 200
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_/.".contains(c))
        && !p.contains("..")
}

impl AriPbx {
    /// An adapter for `settings`; nothing connects until [`Self::start`].
    pub fn new(settings: AriSettings) -> Result<AriPbx, ClientError> {
        let settings = Arc::new(settings);
        let rest = RestClient::new(settings.clone())?;
        Ok(AriPbx {
            inner: Rc::new(Inner {
                state: RefCell::new(AriState::new(&settings.app)),
                settings,
                rest,
                events: RefCell::new(None),
                link_up: Cell::new(false),
                lanes: RefCell::new(HashMap::new()),
                stats: RefCell::new(AriStats::default()),
                playback_seq: Cell::new(0),
                stopping: Cell::new(false),
                kick: Cell::new(0),
            }),
        })
    }

    /// Sets where events go (the registry).
    pub fn connect_events(&self, recipient: Recipient<PbxEvent>) {
        *self.inner.events.borrow_mut() = Some(recipient);
    }

    /// Starts the WebSocket link task (connect, reconcile, read events,
    /// reconnect). Call on the actix system, after [`Self::connect_events`].
    pub fn start(&self) {
        let inner = self.inner.clone();
        actix_rt::spawn(super::link::run(inner));
    }

    /// Stops the link task at its next step and marks the link down.
    pub fn stop(&self) {
        self.inner.stopping.set(true);
        self.inner.kick.set(self.inner.kick.get() + 1);
    }

    /// Stops taking new calls (the daemon is stopping): from now on an
    /// inbound call is handed back to the dialplan (`continue`) as it
    /// arrives, instead of waiting in Stasis for actors that no longer
    /// take it. Calls already taken go on.
    pub fn stop_taking_calls(&self) {
        self.inner.state.borrow_mut().taking_calls = false;
    }

    /// Whether the link is up and reconciled.
    pub fn link_is_up(&self) -> bool {
        self.inner.link_up.get()
    }

    /// A copy of the counters.
    pub fn stats(&self) -> AriStats {
        self.inner.stats.borrow().clone()
    }

    /// Legs tracked now.
    pub fn legs_tracked(&self) -> usize {
        self.inner.state.borrow().legs.len()
    }

    /// Closes the current WebSocket (as if it dropped); the link reconnects.
    pub fn drop_link(&self) {
        self.inner.kick.set(self.inner.kick.get() + 1);
    }

    /// Checks credentials and reachability (`GET /asterisk/info`); answers
    /// the Asterisk version.
    pub async fn probe(settings: AriSettings) -> Result<String, ProbeError> {
        let rest = RestClient::new(Arc::new(settings))?;
        Ok(rest.probe().await?)
    }
}

impl PbxPort for AriPbx {
    fn send(&self, cmd: PbxCommand) -> LocalBoxFuture<'static, Result<(), PbxError>> {
        self.inner.stats.borrow_mut().commands += 1;
        if !self.inner.link_up.get() {
            self.inner.refuse_while_down(&cmd);
            return Box::pin(async { Err(PbxError::LinkDown) });
        }
        let (tx, rx) = oneshot::channel();
        let lane = lane_of(&cmd);
        Inner::enqueue(&self.inner, lane, Job::Command(cmd, tx));
        Box::pin(async move { rx.await.unwrap_or(Err(PbxError::LinkDown)) })
    }
}

impl Inner {
    /// Delivers an event to the registry.
    pub fn emit(&self, ev: PbxEvent) {
        match self.events.borrow().as_ref() {
            // `do_send` as the simulated PBX does: a PBX fact is never
            // dropped for a full mailbox.
            Some(r) => r.do_send(ev),
            None => debug!(event = ?ev, "No registry yet; PBX event dropped."),
        }
    }

    /// A command arrived while the link is down: refuse it, but remember a
    /// hang-up (and a bridge to destroy) for after the reconnect.
    pub fn refuse_while_down(&self, cmd: &PbxCommand) {
        self.stats.borrow_mut().link_down_refusals += 1;
        let mut st = self.state.borrow_mut();
        match cmd {
            PbxCommand::Hangup { leg_id, cause } => {
                if let Some(leg) = st.legs.get_mut(leg_id.as_str()) {
                    leg.hangup_requested.get_or_insert(*cause);
                    info!(leg_id = %leg_id, "Hang-up asked while the PBX link is down; done after the reconnect.");
                }
            }
            PbxCommand::DestroyBridge { bridge_id }
                if st.bridges.contains_key(bridge_id.as_str()) =>
            {
                st.bridges_to_destroy.insert(bridge_id.0.clone());
            }
            _ => {}
        }
        debug!(cmd = ?cmd, "PBX command refused: link down.");
    }

    /// Queues `job` in `lane`, starting the lane's runner if idle.
    pub fn enqueue(this: &Rc<Inner>, lane: String, job: Job) {
        let start = {
            let mut lanes = this.lanes.borrow_mut();
            let l = lanes.entry(lane.clone()).or_default();
            l.jobs.push_back(job);
            !std::mem::replace(&mut l.running, true)
        };
        if start {
            let inner = this.clone();
            actix_rt::spawn(async move {
                loop {
                    let job = {
                        let mut lanes = inner.lanes.borrow_mut();
                        match lanes.get_mut(&lane).and_then(|l| l.jobs.pop_front()) {
                            Some(j) => j,
                            None => {
                                lanes.remove(&lane);
                                break;
                            }
                        }
                    };
                    match job {
                        Job::Command(cmd, tx) => {
                            let r = if inner.link_up.get() {
                                inner.execute(cmd.clone()).await
                            } else {
                                inner.refuse_while_down(&cmd);
                                Err(PbxError::LinkDown)
                            };
                            if let Err(e) = &r {
                                debug!(cmd = ?cmd, error = %e, "PBX command failed.");
                            }
                            let _ = tx.send(r);
                        }
                        Job::Effect(fx) => inner.effect(fx).await,
                    }
                }
            });
        }
    }

    /// Carries out the effects of an event: events go out now (in order),
    /// REST work into the lane of its call.
    pub fn apply(this: &Rc<Inner>, effects: Vec<Effect>) -> bool {
        let mut replaced = false;
        for fx in effects {
            match fx {
                Effect::Emit(ev) => this.emit(ev),
                Effect::Replaced => replaced = true,
                Effect::CheckOrphans { channels, bridges } => {
                    let inner = this.clone();
                    actix_rt::spawn(async move {
                        actix_rt::time::sleep(ORPHAN_CHECK_DELAY).await;
                        inner.check_orphans(channels, bridges).await;
                    });
                }
                other => {
                    let lane = match &other {
                        Effect::HangupChannel { channel, .. }
                        | Effect::ContinueChannel { channel }
                        | Effect::JoinBridge { channel, .. } => call_of_leg(channel),
                        Effect::BridgeSpy { supervisor, .. } => call_of_leg(supervisor),
                        Effect::DestroyBridge { bridge } => call_of_bridge(bridge),
                        Effect::DialCustomer { customer, .. } => call_of_leg(customer),
                        _ => String::new(),
                    };
                    Inner::enqueue(this, lane, Job::Effect(other));
                }
            }
        }
        replaced
    }

    async fn check_orphans(self: Rc<Self>, channels: Vec<String>, bridges: Vec<String>) {
        for ch in channels {
            if self.state.borrow().legs.contains_key(&ch) {
                continue;
            }
            let path = format!("/channels/{}", encode_segment(&ch));
            if ch.contains(edgecc_actors::ids::LEG_ID_SEPARATOR) {
                warn!(channel = %ch, "Orphan leg of edgecc's found after a reconnect; hanging it up.");
                let _ = self.rest.call(Method::DELETE, &path, &[], None).await;
            } else {
                warn!(channel = %ch, "Unknown call in the application after a reconnect; handed back to the dialplan.");
                let _ = self
                    .rest
                    .call(Method::POST, &format!("{path}/continue"), &[], None)
                    .await;
            }
        }
        for b in bridges {
            if self.state.borrow().bridges.contains_key(&b) {
                continue;
            }
            info!(bridge_id = %b, "Orphan bridge of edgecc's destroyed after a reconnect.");
            let _ = self
                .rest
                .call(
                    Method::DELETE,
                    &format!("/bridges/{}", encode_segment(&b)),
                    &[],
                    None,
                )
                .await;
        }
    }

    /// Runs one effect's REST work.
    async fn effect(self: &Rc<Self>, fx: Effect) {
        match fx {
            Effect::HangupChannel { channel, cause } => {
                let code = q850_of(cause).to_string();
                let path = format!("/channels/{}", encode_segment(&channel));
                if let Err(e) = self
                    .rest
                    .call(Method::DELETE, &path, &[("reason_code", &code)], None)
                    .await
                {
                    debug!(channel = %channel, error = %e, "Hang-up of a leftover channel failed.");
                    if e.status() == Some(404) {
                        let mut out = Vec::new();
                        self.state.borrow_mut().end_leg(&channel, cause, &mut out);
                        Inner::apply(self, out);
                    }
                }
            }
            Effect::ContinueChannel { channel } => {
                let path = format!("/channels/{}/continue", encode_segment(&channel));
                if let Err(e) = self.rest.call(Method::POST, &path, &[], None).await {
                    warn!(channel = %channel, error = %e, "Handing a channel back to the dialplan failed.");
                }
            }
            Effect::JoinBridge { bridge, channel } => {
                if let Err(e) = self.add_to_bridge(&bridge, &channel).await {
                    warn!(bridge_id = %bridge, leg_id = %channel, error = %e, "Barge: joining the bridge failed; hanging up.");
                    self.hangup_leg(&channel, HangupCause::Normal).await.ok();
                }
            }
            Effect::BridgeSpy {
                bridge,
                spy,
                supervisor,
            } => {
                let r = async {
                    self.add_to_bridge(&bridge, &spy).await?;
                    self.add_to_bridge(&bridge, &supervisor).await
                }
                .await;
                if let Err(e) = r {
                    warn!(leg_id = %supervisor, error = %e, "Monitor: bridging with the snoop channel failed; hanging up.");
                    self.hangup_leg(&supervisor, HangupCause::Normal).await.ok();
                }
            }
            Effect::DestroyBridge { bridge } => {
                let path = format!("/bridges/{}", encode_segment(&bridge));
                let _ = self.rest.call(Method::DELETE, &path, &[], None).await;
                self.state.borrow_mut().bridges.remove(&bridge);
            }
            Effect::DialCustomer {
                customer,
                endpoint,
                caller_id,
                timeout_ms,
            } => {
                if let Err(e) = self
                    .originate(
                        &customer,
                        &endpoint,
                        &caller_id,
                        timeout_ms,
                        false,
                        OnAnswer::Nothing,
                    )
                    .await
                {
                    warn!(leg_id = %customer, error = %e, "Outbound dial of the customer failed.");
                    let cause = match e {
                        PbxError::Unreachable(_) => HangupCause::Unreachable,
                        _ => HangupCause::Congestion,
                    };
                    self.emit(PbxEvent::LegHungUp {
                        leg_id: customer.as_str().into(),
                        cause,
                    });
                }
            }
            Effect::Emit(_) | Effect::Replaced | Effect::CheckOrphans { .. } => {}
        }
    }

    /// Executes one command.
    async fn execute(self: &Rc<Self>, cmd: PbxCommand) -> Result<(), PbxError> {
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
                self.wait_playbacks(id).await;
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
                let n = self.playback_seq.get() + 1;
                self.playback_seq.set(n);
                let pb = format!("{}~pb{n}", leg_id.as_str());
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
                let spy = format!("{sup}~spy");
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

    /// `POST|DELETE /channels/{id}/{op}?query`.
    async fn channel_op(
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

    async fn answer(&self, id: &str) -> Result<(), PbxError> {
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
    async fn originate(
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
        match r {
            Ok(_) => Ok(()),
            // The id exists: a retried originate that landed.
            Err(RestError::Status { status: 409, .. }) => Ok(()),
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
    async fn add_to_bridge(&self, bridge: &str, leg: &str) -> Result<(), PbxError> {
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
    async fn remove_from_bridge(&self, bridge: &str, leg: &str) -> Result<(), PbxError> {
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

    /// Waits (bounded) until the announcements playing on `id` finished.
    async fn wait_playbacks(&self, id: &str) {
        let deadline = tokio::time::Instant::now() + self.settings.announcement_wait_max;
        while self
            .state
            .borrow()
            .legs
            .get(id)
            .is_some_and(|l| !l.playbacks.is_empty())
        {
            if tokio::time::Instant::now() >= deadline || !self.link_up.get() {
                warn!(leg_id = %id, "Announcement still playing after the wait; going on.");
                return;
            }
            actix_rt::time::sleep(WAIT_POLL_INTERVAL).await;
        }
    }

    /// Hangs up a leg (after its announcement), reporting the asked cause.
    async fn hangup_leg(self: &Rc<Self>, id: &str, cause: HangupCause) -> Result<(), PbxError> {
        self.wait_playbacks(id).await;
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
                Inner::apply(self, out);
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
    fn retry_hangup(self: &Rc<Self>, id: String, cause: HangupCause) {
        let inner = self.clone();
        actix_rt::spawn(async move {
            let code = q850_of(cause).to_string();
            let path = format!("/channels/{}", encode_segment(&id));
            let mut wait = HANGUP_RETRY_FIRST;
            loop {
                actix_rt::time::sleep(wait).await;
                wait = (wait * 2).min(HANGUP_RETRY_MAX);
                let asked = inner
                    .state
                    .borrow()
                    .legs
                    .get(&id)
                    .is_some_and(|l| l.hangup_requested.is_some());
                if !asked || inner.stopping.get() || !inner.link_up.get() {
                    return;
                }
                match inner
                    .rest
                    .call(Method::DELETE, &path, &[("reason_code", &code)], None)
                    .await
                {
                    Ok(_) => return,
                    Err(RestError::Status { status: 404, .. }) => {
                        let mut out = Vec::new();
                        inner.state.borrow_mut().end_leg(&id, cause, &mut out);
                        Inner::apply(&inner, out);
                        return;
                    }
                    Err(e) => debug!(leg_id = %id, error = %e, "Hang-up refused again."),
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgecc_actors::ids::BridgeId;
    use edgecc_actors::LegId;

    /// Every command's lane is its call, so one call's commands stay in
    /// order while calls run in parallel.
    #[test]
    fn commands_run_in_their_call_lane() {
        let l = LegId::new("c1~4");
        assert_eq!(
            lane_of(&PbxCommand::Hangup {
                leg_id: l.clone(),
                cause: HangupCause::Normal
            }),
            "c1"
        );
        assert_eq!(
            lane_of(&PbxCommand::DestroyBridge {
                bridge_id: BridgeId::consult(&"c1".into())
            }),
            "c1"
        );
        assert_eq!(
            lane_of(&PbxCommand::Answer {
                leg_id: LegId::new("c1")
            }),
            "c1"
        );
    }

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
