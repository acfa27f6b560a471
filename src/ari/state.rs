//! What the adapter knows about Asterisk, and the pure rules that turn ARI
//! events into edgecc's [`PbxEvent`]s: no I/O, no runtime, unit-tested on
//! the real captures.
//!
//! A channel edgecc cares about is a [`Leg`]: an inbound caller (its id is
//! Asterisk's and becomes the call id), or a channel edgecc originated (an
//! agent, consult, supervisor or outbound customer leg, whose id edgecc
//! chose: `{call_id}~{token}`), or the snoop channel of a silent monitor.
//! Events for any other channel (the `;2` halves of Local channels, other
//! applications) are ignored.
//!
//! Each leg reports each fact at most once, which is what makes duplicated
//! events harmless: `LegRinging` on the first `Dial RINGING` or `Ringing`
//! state, `LegAnswered` on `StasisStart` (an originated channel enters the
//! application only when the far end answers), `LegHungUp` when it leaves
//! (`StasisEnd` or `ChannelDestroyed`, whichever comes first), classified by
//! [`super::classify`]. Work that needs REST (hang up an orphan, bridge a
//! barging supervisor once it answers, dial the customer of an outbound call
//! once the agent answers) comes out as [`Effect`]s for the adapter.

use std::collections::{BTreeSet, HashMap, HashSet};

use edgecc_actors::ports::AttachedVar;
use edgecc_actors::{HangupCause, LegId, PbxEvent, ATTACHED_KEY_LEN_MAX, ATTACHED_VARS_MAX};
use tracing::{debug, info, warn};

use super::classify::{cause_from_q850, classify_leg_end};
use super::events::{AriEvent, Bridge, Channel, Envelope};

/// Longest channel or bridge id accepted from Asterisk; longer is absurd.
pub const ID_LEN_MAX: usize = 200;
/// Most legs tracked at once; past it new inbound calls are handed back to
/// the dialplan (its fallback) rather than letting memory grow unbounded.
pub const LEGS_MAX: usize = 100_000;
/// First `Stasis()` argument of an inbound call.
pub const ARG_INBOUND: &str = "inbound";
/// First `Stasis()` argument of a call placed by an agent's phone.
pub const ARG_AGENT_OUTBOUND: &str = "agent-outbound";
/// The `cause` of the soft `ChannelHangupRequest` Asterisk sends for every
/// channel when it shuts down or restarts with calls up (`core stop now`,
/// `core restart now`, the last step of a graceful stop): its
/// `AST_SOFTHANGUP_SHUTDOWN` flag (`ast_softhangup_all()` in
/// main/channel.c). An app's own `DELETE` gives 32 (`..._EXPLICIT`).
pub const SOFTHANGUP_SHUTDOWN: i64 = 4;
/// Ends the playback id of a prompt to a waiting caller (see
/// [`super::play`]): a prompt finishing restarts the caller's hold media,
/// and a hang-up does not wait for it.
pub const PROMPT_SUFFIX: &str = "~prompt";

/// Whether `playback` is a prompt to a waiting caller (not an announcement
/// a hang-up waits for).
pub fn is_prompt(playback: &str) -> bool {
    playback.ends_with(PROMPT_SUFFIX)
}

/// What a leg is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LegRole {
    /// An inbound caller (or a call placed by a phone) in Stasis.
    Caller,
    /// A channel edgecc originated (agent, consult, supervisor, customer).
    Originated,
    /// The snoop channel of a monitor or whisper; `supervisor` is the
    /// supervisor's leg that will be bridged with it.
    Spy {
        /// The supervisor's leg.
        supervisor: String,
    },
}

/// What to do when an originated leg answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OnAnswer {
    /// Nothing: the actors bridge it.
    Nothing,
    /// Barge: join the call's bridge.
    JoinBridge {
        /// The bridge.
        bridge: String,
    },
    /// Monitor/whisper: bridge with the snoop channel.
    BridgeWithSpy {
        /// The snoop channel.
        spy: String,
        /// The private bridge edgecc creates for the two.
        bridge: String,
    },
    /// Outbound call: the agent answered, now dial the customer.
    DialCustomer {
        /// The customer's leg id.
        customer: String,
        /// Its dial string.
        endpoint: String,
        /// Caller id shown to the customer.
        caller_id: String,
        /// Ring timeout, ms.
        timeout_ms: u64,
    },
}

/// Media a held or waiting leg hears now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldMedia {
    /// Music on hold.
    Moh,
    /// Ringing indication.
    Ringing,
}

/// One channel edgecc tracks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leg {
    /// What it is.
    pub role: LegRole,
    /// Answered (in Stasis).
    pub up: bool,
    /// `LegRinging` was emitted.
    pub ringing_reported: bool,
    /// Last non-empty `Dial.dialstatus` (originated legs).
    pub dialstatus: Option<String>,
    /// Cause of a far-end hang-up request (not the app's soft 32).
    pub far_cause: Option<i64>,
    /// edgecc asked for the hang-up, with this cause (reported as such).
    pub hangup_requested: Option<HangupCause>,
    /// Sent back to the dialplan: its StasisEnd is not a hang-up.
    pub redirected: bool,
    /// What to do on answer.
    pub on_answer: OnAnswer,
    /// The bridge it is in, as far as edgecc knows.
    pub bridge: Option<String>,
    /// Hold media playing to it, if any.
    pub hold: Option<HoldMedia>,
    /// The bridge a held caller was taken out of (it goes back on resume).
    pub held_from: Option<String>,
    /// Playbacks started on it and not finished.
    pub playbacks: BTreeSet<String>,
    /// Last DTMF (event ms, digit), to drop a duplicate.
    pub last_dtmf: Option<(Option<i64>, char)>,
}

impl Leg {
    /// A leg of `role`, not answered yet.
    pub fn new(role: LegRole, on_answer: OnAnswer) -> Leg {
        Leg {
            role,
            up: false,
            ringing_reported: false,
            dialstatus: None,
            far_cause: None,
            hangup_requested: None,
            redirected: false,
            on_answer,
            bridge: None,
            hold: None,
            held_from: None,
            playbacks: BTreeSet::new(),
            last_dtmf: None,
        }
    }
}

/// Work for the adapter that follows from an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Deliver to the registry.
    Emit(PbxEvent),
    /// DELETE a channel (an orphan of edgecc's, a leg edgecc already asked
    /// to hang up, the supervisor of a monitor whose target left).
    HangupChannel {
        /// The channel.
        channel: String,
        /// Q.850 cause to send.
        cause: HangupCause,
    },
    /// Hand a channel back to the dialplan (`continue`, next priority): an
    /// inbound call edgecc cannot take.
    ContinueChannel {
        /// The channel.
        channel: String,
    },
    /// Add a channel to a bridge (creating the bridge if needed).
    JoinBridge {
        /// The bridge.
        bridge: String,
        /// The channel.
        channel: String,
    },
    /// Create `bridge` and put `spy` and `supervisor` in it.
    BridgeSpy {
        /// The bridge.
        bridge: String,
        /// The snoop channel.
        spy: String,
        /// The supervisor's leg.
        supervisor: String,
    },
    /// DELETE a bridge edgecc made for itself (monitor).
    DestroyBridge {
        /// The bridge.
        bridge: String,
    },
    /// Originate the customer of an outbound call.
    DialCustomer {
        /// The customer leg id.
        customer: String,
        /// Dial string.
        endpoint: String,
        /// Caller id.
        caller_id: String,
        /// Ring timeout, ms.
        timeout_ms: u64,
    },
    /// A prompt to a waiting caller finished: start its hold media again
    /// (a play suspends it), unless it is bridged or another prompt plays.
    RestoreHoldMedia {
        /// The caller's channel.
        channel: String,
    },
    /// Another WebSocket took over the application.
    Replaced,
    /// After a reconcile: check these unknown channels again a moment
    /// later (their StasisStart may still be on its way) and hand them back
    /// if still unknown.
    CheckOrphans {
        /// Channels in the application edgecc does not know.
        channels: Vec<String>,
        /// Bridges with edgecc's naming that no leg uses.
        bridges: Vec<String>,
    },
}

/// Counters, for tests, the benchmark and logs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateStats {
    /// Events handled (parsed and applied).
    pub events: u64,
    /// Calls that arrived.
    pub arrivals: u64,
    /// Legs re-adopted by reconciles.
    pub readopted: u64,
    /// Legs ended by reconciles (vanished while the link was down).
    pub vanished: u64,
    /// Offers found answered by reconciles.
    pub answered_meanwhile: u64,
    /// Legs ended by reconciles after Asterisk restarted (lost by the PBX).
    pub lost_by_pbx: u64,
}

/// The adapter's picture of Asterisk.
#[derive(Debug)]
pub struct AriState {
    /// The Stasis application.
    app: String,
    /// Legs by channel id.
    pub legs: HashMap<String, Leg>,
    /// Bridges edgecc made, with their members as last seen.
    pub bridges: HashMap<String, BTreeSet<String>>,
    /// Bridges the actors asked to destroy while the link was down.
    pub bridges_to_destroy: BTreeSet<String>,
    /// Counters.
    pub stats: StateStats,
    /// False once the daemon is stopping: new inbound calls go back to the
    /// dialplan at once instead of waiting in Stasis for nobody.
    pub taking_calls: bool,
    /// Asterisk's start-up time as the last (re)connect read it, to tell a
    /// restart of Asterisk from a link drop.
    pbx_startup: Option<String>,
    /// Asterisk restarted since the previous connect: the next reconcile
    /// ends the legs it finds gone as lost by the PBX.
    pbx_restarted: bool,
    /// Asterisk is shutting down (a soft hang-up request with
    /// [`SOFTHANGUP_SHUTDOWN`] arrived this session): every leg that ends
    /// from now on without edgecc asking was dropped by the PBX.
    pbx_stopping: bool,
}

/// Whether an id from the wire is usable.
pub(crate) fn id_ok(id: &str) -> bool {
    !id.is_empty() && id.len() <= ID_LEN_MAX && !id.chars().any(char::is_control)
}

/// Attached data of an inbound call: `key=value` arguments after the DNIS,
/// then `channelvars` (when ari.conf lists some), at most
/// [`ATTACHED_VARS_MAX`], keys cut to [`ATTACHED_KEY_LEN_MAX`].
pub fn attached_data(args: &[String], channel: &Channel) -> Vec<AttachedVar> {
    let mut out: Vec<AttachedVar> = Vec::new();
    let mut push = |key: &str, value: &str| {
        let key: String = key.trim().chars().take(ATTACHED_KEY_LEN_MAX).collect();
        if key.is_empty() || out.len() >= ATTACHED_VARS_MAX || out.iter().any(|v| v.key == key) {
            return;
        }
        out.push(AttachedVar {
            key,
            value: value
                .chars()
                .take(edgecc_actors::ATTACHED_VALUE_LEN_MAX)
                .collect(),
        });
    };
    for arg in args {
        match arg.split_once('=') {
            Some((k, v)) => push(k, v),
            None => debug!(arg = %arg, "Stasis argument without '=' ignored."),
        }
    }
    if let Some(vars) = &channel.channelvars {
        for (k, v) in vars {
            if let Some(v) = v.as_str().filter(|v| !v.is_empty()) {
                push(k, v);
            }
        }
    }
    out
}

/// The snoop channel edgecc creates for supervisor leg `supervisor`
/// (`{call}~{token}`; monitor and whisper): `{call}~spy{token}`. Neither
/// id is a prefix of the other, nor of any other leg's: Asterisk refuses
/// a new channel id that is a prefix of a live one's (issue 16: with
/// `{leg}~spy` made first, the supervisor's `{leg}` was refused 409).
pub fn spy_of(supervisor: &str) -> String {
    let sep = edgecc_actors::ids::LEG_ID_SEPARATOR;
    match supervisor.rsplit_once(sep) {
        Some((call, suffix)) => format!("{call}{sep}spy{suffix}"),
        None => format!("{supervisor}{sep}spy"),
    }
}

/// The lane (call) a channel or leg id belongs to.
pub fn call_of_leg(id: &str) -> String {
    LegId::new(id).call_id().0
}

/// The lane (call) a bridge id belongs to (`b~{call}`, `k~{call}`,
/// `s~{call}~{token}`; the format is defined in `edgecc_actors::ids`).
pub fn call_of_bridge(id: &str) -> String {
    edgecc_actors::ids::BridgeId::new(id).call_id().0
}

impl AriState {
    /// Nothing known yet, for application `app`.
    pub fn new(app: &str) -> AriState {
        AriState {
            app: app.to_owned(),
            legs: HashMap::new(),
            bridges: HashMap::new(),
            bridges_to_destroy: BTreeSet::new(),
            stats: StateStats::default(),
            taking_calls: true,
            pbx_startup: None,
            pbx_restarted: false,
            pbx_stopping: false,
        }
    }

    /// The start-up time a previous edgecc process saw last (kept durable,
    /// read back from the restored state): the first connect compares
    /// with it, so an Asterisk that restarted while edgecc was down too is
    /// told from one that did not. Call before the link starts.
    pub fn previous_startup(&mut self, startup: Option<String>) {
        if self.pbx_startup.is_none() {
            self.pbx_startup = startup;
        }
    }

    /// The cause of a leg that ended without edgecc asking, `usual` unless
    /// Asterisk is shutting down ([`HangupCause::PbxLost`] then).
    fn unasked_cause(&mut self, usual: HangupCause) -> HangupCause {
        if self.pbx_stopping {
            self.stats.lost_by_pbx += 1;
            HangupCause::PbxLost
        } else {
            usual
        }
    }

    /// Asterisk's start-up time (`status.startup_time` of `GET
    /// /asterisk/info`) as a (re)connect read it, before its reconcile. A
    /// value other than the one read before means Asterisk restarted while
    /// the link was down: the legs the reconcile finds gone were lost by
    /// the PBX, not hung up, and end with [`HangupCause::PbxLost`]. `None`
    /// (not readable) changes nothing. Answers whether it restarted since
    /// the last reconcile (a session that lost the application before its
    /// reconcile leaves the news for the next one).
    pub fn pbx_started(&mut self, startup: Option<&str>) -> bool {
        let Some(startup) = startup else {
            return false;
        };
        let restarted = self
            .pbx_startup
            .as_deref()
            .is_some_and(|before| before != startup);
        if restarted {
            warn!(startup_time = %startup, legs = self.legs.len(),
                  "Asterisk restarted while the link was down; calls it had are lost.");
            self.pbx_restarted = true;
        }
        self.pbx_startup = Some(startup.to_owned());
        self.pbx_restarted
    }

    /// The Stasis application.
    pub fn app(&self) -> &str {
        &self.app
    }

    /// Applies one event.
    pub fn on_event(&mut self, env: &Envelope) -> Vec<Effect> {
        self.stats.events += 1;
        let mut fx = Vec::new();
        match &env.event {
            AriEvent::StasisStart { args, channel } => self.stasis_start(args, channel, &mut fx),
            AriEvent::StasisEnd { channel } => {
                let Some(leg) = self.legs.get(&channel.id) else {
                    return fx;
                };
                if leg.redirected {
                    info!(leg_id = %channel.id, "Leg left edgecc for the dialplan.");
                    self.forget(&channel.id);
                } else {
                    let cause = match leg.hangup_requested {
                        Some(asked) => asked,
                        None => {
                            let usual = cause_from_q850(leg.far_cause, leg.up);
                            self.unasked_cause(usual)
                        }
                    };
                    self.end_leg(&channel.id, cause, &mut fx);
                }
            }
            AriEvent::ChannelDestroyed { cause, channel, .. } => {
                if let Some(leg) = self.legs.get(&channel.id) {
                    let cause = match leg.hangup_requested {
                        Some(asked) => asked,
                        None => {
                            let usual = classify_leg_end(leg.dialstatus.as_deref(), *cause, leg.up);
                            self.unasked_cause(usual)
                        }
                    };
                    self.end_leg(&channel.id, cause, &mut fx);
                }
            }
            AriEvent::Dial { dialstatus, peer } => {
                if let Some(leg) = self.legs.get_mut(&peer.id).filter(|l| !l.up) {
                    if !dialstatus.is_empty() {
                        leg.dialstatus = Some(dialstatus.clone());
                    }
                    if matches!(dialstatus.as_str(), "RINGING" | "PROGRESS") {
                        Self::ringing(&peer.id, leg, &mut fx);
                    }
                }
            }
            AriEvent::ChannelStateChange { channel } => {
                if let Some(leg) = self.legs.get_mut(&channel.id).filter(|l| !l.up) {
                    if channel.state == "Ringing" {
                        Self::ringing(&channel.id, leg, &mut fx);
                    }
                }
            }
            AriEvent::ChannelHangupRequest {
                cause,
                soft,
                channel,
            } => {
                if *soft == Some(true) && *cause == Some(SOFTHANGUP_SHUTDOWN) && !self.pbx_stopping
                {
                    warn!(channel = %channel.id, legs = self.legs.len(),
                          "Asterisk is shutting down: calls it hangs up now are lost by the PBX.");
                    self.pbx_stopping = true;
                }
                if let Some(leg) = self.legs.get_mut(&channel.id) {
                    if *soft != Some(true) && cause.is_some() {
                        leg.far_cause = *cause;
                    }
                }
            }
            AriEvent::ChannelEnteredBridge { bridge, channel }
            | AriEvent::ChannelLeftBridge { bridge, channel } => {
                let entered = matches!(env.event, AriEvent::ChannelEnteredBridge { .. });
                self.bridge_seen(bridge);
                if let Some(leg) = self.legs.get_mut(&channel.id) {
                    if entered {
                        leg.bridge = Some(bridge.id.clone());
                    } else if leg.bridge.as_deref() == Some(bridge.id.as_str()) {
                        leg.bridge = None;
                    }
                }
            }
            AriEvent::BridgeDestroyed { bridge } => {
                self.bridges.remove(&bridge.id);
                for leg in self.legs.values_mut() {
                    if leg.bridge.as_deref() == Some(bridge.id.as_str()) {
                        leg.bridge = None;
                    }
                }
            }
            AriEvent::ChannelDtmfReceived { digit, channel } => {
                let Some(leg) = self.legs.get_mut(&channel.id) else {
                    return fx;
                };
                let mut chars = digit.chars();
                let d = match (chars.next(), chars.next()) {
                    (Some(d), None) if d.is_ascii_digit() || "*#ABCD".contains(d) => d,
                    _ => {
                        warn!(leg_id = %channel.id, digit = %digit, "DTMF digit not understood; skipped.");
                        return fx;
                    }
                };
                if matches!(leg.role, LegRole::Spy { .. }) {
                    return fx;
                }
                let key = (env.timestamp_ms, d);
                if env.timestamp_ms.is_some() && leg.last_dtmf == Some(key) {
                    return fx; // the same digit event twice
                }
                leg.last_dtmf = Some(key);
                fx.push(Effect::Emit(PbxEvent::Dtmf {
                    leg_id: LegId::new(channel.id.clone()),
                    digit: d,
                }));
            }
            AriEvent::PlaybackStarted { .. } => {}
            AriEvent::PlaybackFinished { playback } => {
                if let Some(ch) = playback.target_uri.strip_prefix("channel:") {
                    if let Some(leg) = self.legs.get_mut(ch) {
                        leg.playbacks.remove(&playback.id);
                        if is_prompt(&playback.id) && leg.hold.is_some() {
                            fx.push(Effect::RestoreHoldMedia {
                                channel: ch.to_owned(),
                            });
                        }
                    }
                }
            }
            AriEvent::ApplicationReplaced {} => fx.push(Effect::Replaced),
            AriEvent::Other => {}
        }
        fx
    }

    fn ringing(id: &str, leg: &mut Leg, fx: &mut Vec<Effect>) {
        if !leg.ringing_reported && leg.hangup_requested.is_none() {
            leg.ringing_reported = true;
            if !matches!(leg.role, LegRole::Spy { .. }) {
                fx.push(Effect::Emit(PbxEvent::LegRinging {
                    leg_id: LegId::new(id),
                }));
            }
        }
    }

    fn bridge_seen(&mut self, bridge: &Bridge) {
        if let Some(members) = self.bridges.get_mut(&bridge.id) {
            *members = bridge.channels.iter().cloned().collect();
        }
    }

    /// A channel entered the application with `args`: an answer of one
    /// of edgecc's legs, a new call, or something to hand back.
    pub(super) fn stasis_start(
        &mut self,
        args: &[String],
        channel: &Channel,
        fx: &mut Vec<Effect>,
    ) {
        let id = &channel.id;
        if !id_ok(id) {
            warn!(
                len = id.len(),
                "StasisStart with an unusable channel id; skipped."
            );
            return;
        }
        if self.legs.contains_key(id) {
            self.answered(id, fx);
            return;
        }
        match args.first().map(String::as_str) {
            Some(ARG_INBOUND) | Some(ARG_AGENT_OUTBOUND) if !self.taking_calls => {
                warn!(channel = %id, "Stopping: new call handed back to the dialplan.");
                fx.push(Effect::ContinueChannel {
                    channel: id.clone(),
                });
            }
            Some(ARG_INBOUND) | Some(ARG_AGENT_OUTBOUND) => {
                if self.legs.len() >= LEGS_MAX {
                    warn!(channel = %id, "Too many legs; inbound call handed back to the dialplan.");
                    fx.push(Effect::ContinueChannel {
                        channel: id.clone(),
                    });
                    return;
                }
                if id.contains(edgecc_actors::ids::LEG_ID_SEPARATOR) {
                    warn!(channel = %id, "Inbound channel id contains '~'; handed back to the dialplan.");
                    fx.push(Effect::ContinueChannel {
                        channel: id.clone(),
                    });
                    return;
                }
                let dnis = args
                    .get(1)
                    .filter(|d| !d.is_empty())
                    .cloned()
                    .unwrap_or_else(|| channel.dialplan.exten.clone());
                let attached = attached_data(args.get(2..).unwrap_or(&[]), channel);
                let mut leg = Leg::new(LegRole::Caller, OnAnswer::Nothing);
                leg.up = true;
                self.legs.insert(id.clone(), leg);
                self.stats.arrivals += 1;
                fx.push(Effect::Emit(PbxEvent::CallArrived {
                    leg_id: LegId::new(id.clone()),
                    ani: channel.caller.number.chars().take(64).collect(),
                    dnis: dnis.chars().take(64).collect(),
                    attached,
                }));
            }
            _ if id.contains(edgecc_actors::ids::LEG_ID_SEPARATOR) => {
                // One of edgecc's ids that it no longer tracks (it was hung
                // up or given up on while its answer was on the way).
                info!(channel = %id, "Late answer of a leg edgecc gave up on; hanging it up.");
                fx.push(Effect::HangupChannel {
                    channel: id.clone(),
                    cause: HangupCause::Normal,
                });
            }
            first => {
                warn!(channel = %id, arg = ?first, "StasisStart edgecc does not know; handed back to the dialplan.");
                fx.push(Effect::ContinueChannel {
                    channel: id.clone(),
                });
            }
        }
    }

    /// An originated leg (or a spy) entered Stasis: it answered.
    fn answered(&mut self, id: &str, fx: &mut Vec<Effect>) {
        let Some(leg) = self.legs.get_mut(id) else {
            return;
        };
        if leg.up {
            return; // duplicate
        }
        leg.up = true;
        if let Some(cause) = leg.hangup_requested {
            fx.push(Effect::HangupChannel {
                channel: id.to_owned(),
                cause,
            });
            return;
        }
        match leg.role.clone() {
            LegRole::Spy { supervisor } => {
                if let Some(OnAnswer::BridgeWithSpy { bridge, .. }) = self
                    .legs
                    .get(&supervisor)
                    .filter(|s| s.up)
                    .map(|s| s.on_answer.clone())
                {
                    fx.push(Effect::BridgeSpy {
                        bridge,
                        spy: id.to_owned(),
                        supervisor,
                    });
                }
            }
            LegRole::Caller => {}
            LegRole::Originated => {
                fx.push(Effect::Emit(PbxEvent::LegAnswered {
                    leg_id: LegId::new(id),
                }));
                self.on_answer_effects(id, fx);
            }
        }
    }

    fn on_answer_effects(&mut self, id: &str, fx: &mut Vec<Effect>) {
        let Some(leg) = self.legs.get(id) else {
            return;
        };
        match leg.on_answer.clone() {
            OnAnswer::Nothing => {}
            OnAnswer::JoinBridge { bridge } => fx.push(Effect::JoinBridge {
                bridge,
                channel: id.to_owned(),
            }),
            OnAnswer::BridgeWithSpy { spy, bridge } => {
                if self.legs.get(&spy).is_some_and(|s| s.up) {
                    fx.push(Effect::BridgeSpy {
                        bridge,
                        spy,
                        supervisor: id.to_owned(),
                    });
                }
            }
            OnAnswer::DialCustomer {
                customer,
                endpoint,
                caller_id,
                timeout_ms,
            } => fx.push(Effect::DialCustomer {
                customer,
                endpoint,
                caller_id,
                timeout_ms,
            }),
        }
    }

    /// Removes a leg without reporting anything (redirected away).
    pub fn forget(&mut self, id: &str) -> Option<Leg> {
        let leg = self.legs.remove(id)?;
        if let Some(b) = &leg.bridge {
            if let Some(m) = self.bridges.get_mut(b) {
                m.remove(id);
            }
        }
        Some(leg)
    }

    /// Ends a leg: reports `LegHungUp` once, and cleans up what edgecc made
    /// for it (a monitor's snoop channel and bridge).
    pub fn end_leg(&mut self, id: &str, cause: HangupCause, fx: &mut Vec<Effect>) {
        let Some(leg) = self.forget(id) else {
            return;
        };
        match &leg.role {
            LegRole::Spy { supervisor } => {
                // The monitored leg is gone: so is the monitor.
                if let Some(sup) = self.legs.get_mut(supervisor) {
                    if sup.hangup_requested.is_none() {
                        sup.hangup_requested = Some(HangupCause::Normal);
                        fx.push(Effect::HangupChannel {
                            channel: supervisor.clone(),
                            cause: HangupCause::Normal,
                        });
                    }
                }
            }
            LegRole::Caller | LegRole::Originated => {
                info!(leg_id = %id, cause = ?cause, "Leg hung up.");
                fx.push(Effect::Emit(PbxEvent::LegHungUp {
                    leg_id: LegId::new(id),
                    cause,
                }));
            }
        }
        if let OnAnswer::BridgeWithSpy { spy, bridge } = &leg.on_answer {
            if self.legs.contains_key(spy) {
                fx.push(Effect::HangupChannel {
                    channel: spy.clone(),
                    cause: HangupCause::Normal,
                });
                if let Some(s) = self.legs.get_mut(spy) {
                    s.hangup_requested = Some(HangupCause::Normal);
                }
            }
            if self.bridges.contains_key(bridge) {
                fx.push(Effect::DestroyBridge {
                    bridge: bridge.clone(),
                });
            }
        }
    }

    /// Asterisk stayed unreachable past `lost_after_ms`: every leg edgecc
    /// tracks ends now, with the hang-up edgecc asked for if it asked, else
    /// [`HangupCause::PbxLost`], and the picture is emptied (no REST: there
    /// is no one to send it to). If Asterisk comes back after all, what it
    /// still has is unknown, so the reconcile treats it as orphans.
    pub fn give_up(&mut self) -> Vec<Effect> {
        let mut ids: Vec<String> = self.legs.keys().cloned().collect();
        ids.sort();
        let mut fx = Vec::new();
        for id in ids {
            let Some(leg) = self.legs.remove(&id) else {
                continue;
            };
            if matches!(leg.role, LegRole::Spy { .. }) {
                continue;
            }
            let cause = leg.hangup_requested.unwrap_or(HangupCause::PbxLost);
            if cause == HangupCause::PbxLost {
                self.stats.lost_by_pbx += 1;
            }
            fx.push(Effect::Emit(PbxEvent::LegHungUp {
                leg_id: LegId::new(id),
                cause,
            }));
        }
        self.bridges.clear();
        self.bridges_to_destroy.clear();
        fx
    }

    /// After a (re)connect: compares what Asterisk has with what edgecc
    /// knows. Legs still there are re-adopted (an offer answered meanwhile
    /// reports `LegAnswered`, one still ringing its `LegRinging`); legs gone
    /// end with `LegHungUp` (a connected leg `Normal`, an unanswered offer
    /// `NoAnswer` unless its dialstatus said more; every one `PbxLost` when
    /// [`Self::pbx_started`] saw Asterisk restart); legs edgecc asked to
    /// hang up while the link was down are hung up now. Channels in the
    /// application that edgecc does not know, apart from those whose
    /// StasisStart is already buffered (`starting`), are checked again
    /// later as possible orphans.
    pub fn reconcile(
        &mut self,
        channels: &[Channel],
        bridges: &[Bridge],
        starting: &HashSet<String>,
    ) -> Vec<Effect> {
        let mut fx = Vec::new();
        let restarted = std::mem::take(&mut self.pbx_restarted);
        // A new session: a shutdown seen on the last one is over (the
        // start-up time says whether Asterisk restarted since).
        let stopped = std::mem::take(&mut self.pbx_stopping);
        let live: HashMap<&str, &Channel> = channels.iter().map(|c| (c.id.as_str(), c)).collect();
        let mut ids: Vec<String> = self.legs.keys().cloned().collect();
        ids.sort();
        for id in ids {
            match live.get(id.as_str()) {
                Some(ch) => {
                    let in_app = ch.in_app(&self.app);
                    let Some(leg) = self.legs.get_mut(&id) else {
                        continue;
                    };
                    if leg.redirected && !in_app {
                        // Its StasisEnd was lost with the link: it left.
                        self.forget(&id);
                        continue;
                    }
                    if let Some(cause) = leg.hangup_requested {
                        fx.push(Effect::HangupChannel {
                            channel: id.clone(),
                            cause,
                        });
                        continue;
                    }
                    if leg.up {
                        self.stats.readopted += 1;
                        continue;
                    }
                    if in_app || (ch.state == "Up" && matches!(leg.role, LegRole::Spy { .. })) {
                        self.stats.answered_meanwhile += 1;
                        self.answered(&id, &mut fx);
                    } else if ch.state == "Ringing" {
                        Self::ringing(&id, leg, &mut fx);
                    }
                }
                None => {
                    let Some(leg) = self.legs.get(&id) else {
                        continue;
                    };
                    if leg.redirected {
                        self.forget(&id);
                        continue;
                    }
                    let cause = leg.hangup_requested.unwrap_or_else(|| {
                        if restarted || stopped {
                            HangupCause::PbxLost
                        } else if leg.up {
                            HangupCause::Normal
                        } else {
                            match leg.dialstatus.as_deref() {
                                Some("BUSY") | Some("CONGESTION") | Some("CHANUNAVAIL") => {
                                    classify_leg_end(leg.dialstatus.as_deref(), None, false)
                                }
                                _ => HangupCause::NoAnswer,
                            }
                        }
                    });
                    self.stats.vanished += 1;
                    if cause == HangupCause::PbxLost {
                        self.stats.lost_by_pbx += 1;
                    }
                    self.end_leg(&id, cause, &mut fx);
                }
            }
        }
        // Bridges: edgecc's that are gone are forgotten; membership is
        // refreshed.
        let live_bridges: HashMap<&str, &Bridge> =
            bridges.iter().map(|b| (b.id.as_str(), b)).collect();
        for b in std::mem::take(&mut self.bridges_to_destroy) {
            if live_bridges.contains_key(b.as_str()) {
                fx.push(Effect::DestroyBridge { bridge: b });
            }
        }
        self.bridges
            .retain(|id, _| live_bridges.contains_key(id.as_str()));
        for (id, members) in self.bridges.iter_mut() {
            if let Some(b) = live_bridges.get(id.as_str()) {
                *members = b.channels.iter().cloned().collect();
            }
        }
        for leg in self.legs.values_mut() {
            if let Some(b) = &leg.bridge {
                if !self.bridges.contains_key(b) {
                    leg.bridge = None;
                }
            }
        }
        let orphans: Vec<String> = channels
            .iter()
            .filter(|c| c.in_app(&self.app) && id_ok(&c.id))
            .filter(|c| !self.legs.contains_key(&c.id) && !starting.contains(&c.id))
            .map(|c| c.id.clone())
            .collect();
        let orphan_bridges: Vec<String> = bridges
            .iter()
            .filter(|b| b.id.contains(edgecc_actors::ids::LEG_ID_SEPARATOR))
            .filter(|b| !self.bridges.contains_key(&b.id))
            .filter(|b| b.channels.iter().all(|c| !self.legs.contains_key(c)))
            .map(|b| b.id.clone())
            .collect();
        if !orphans.is_empty() || !orphan_bridges.is_empty() {
            fx.push(Effect::CheckOrphans {
                channels: orphans,
                bridges: orphan_bridges,
            });
        }
        fx
    }
}

#[cfg(test)]
mod tests {
    use super::super::events::parse_event;
    use super::*;

    /// Replays the `ws` events of a capture (all of them, or only those of
    /// connection `conn`) through a state that tracks `originated` as legs
    /// edgecc originated.
    fn replay(file: &str, originated: &[&str]) -> (AriState, Vec<Effect>) {
        let path = format!("{}/tests/fixtures/ari/{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(path).unwrap();
        let mut st = AriState::new("edgecc");
        for id in originated {
            st.legs.insert(
                (*id).to_string(),
                Leg::new(LegRole::Originated, OnAnswer::Nothing),
            );
        }
        let mut fx = Vec::new();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            if v["kind"] != "ws" {
                continue;
            }
            let frame = v["event"].to_string();
            let env = parse_event(&frame).unwrap_or_else(|e| panic!("{e}: {frame}"));
            fx.extend(st.on_event(&env));
        }
        (st, fx)
    }

    fn emitted(fx: &[Effect]) -> Vec<PbxEvent> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Emit(ev) => Some(ev.clone()),
                _ => None,
            })
            .collect()
    }

    fn leg(s: &str) -> LegId {
        LegId::new(s)
    }

    /// Every event of the Local-channel capture parses, and the agent legs
    /// originated in it end with the causes their dialplan produced: busy,
    /// rejected, congestion, no answer (timeout) and a cancel.
    #[test]
    fn prompts_are_told_by_their_playback_id() {
        assert!(is_prompt("abc~pb3~prompt") && !is_prompt("abc~pb3"));
    }

    #[test]
    fn local_capture_classifies_every_outcome() {
        let (st, fx) = replay(
            "transcript-local.jsonl",
            &[
                "agent-1",
                "agent-noans",
                "agent-busy",
                "agent-reject",
                "agent-cong",
                "agent-4",
            ],
        );
        let ev = emitted(&fx);
        let hung = |id: &str| {
            ev.iter()
                .filter_map(|e| match e {
                    PbxEvent::LegHungUp { leg_id, cause } if leg_id.as_str() == id => Some(*cause),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(hung("agent-busy"), vec![HangupCause::Busy]);
        assert_eq!(hung("agent-reject"), vec![HangupCause::Rejected]);
        assert_eq!(hung("agent-cong"), vec![HangupCause::Congestion]);
        assert_eq!(hung("agent-noans"), vec![HangupCause::NoAnswer]);
        // Answered then hung up by the app: one LegHungUp, normal.
        assert_eq!(hung("agent-1"), vec![HangupCause::Normal]);
        assert_eq!(hung("agent-4"), vec![HangupCause::Normal]);
        // Answered legs answered once, rung once.
        for id in ["agent-1", "agent-4"] {
            assert_eq!(
                ev.iter()
                    .filter(|e| **e == PbxEvent::LegAnswered { leg_id: leg(id) })
                    .count(),
                1,
                "{id}"
            );
            assert_eq!(
                ev.iter()
                    .filter(|e| **e == PbxEvent::LegRinging { leg_id: leg(id) })
                    .count(),
                1,
                "{id}"
            );
        }
        // The busy one never rang or answered.
        assert!(!ev.contains(&PbxEvent::LegAnswered {
            leg_id: leg("agent-busy")
        }));
        // Inbound calls arrived with their DNIS and ANI, and ended once
        // (StasisEnd is their last event).
        let arrivals: Vec<_> = ev
            .iter()
            .filter_map(|e| match e {
                PbxEvent::CallArrived {
                    leg_id, ani, dnis, ..
                } => Some((leg_id.0.clone(), ani.clone(), dnis.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            arrivals[0],
            (
                "inbound-1".to_string(),
                "5551234".to_string(),
                "s".to_string()
            )
        );
        assert!(arrivals.contains(&("inbound-2".into(), String::new(), "5000".into())));
        for id in ["inbound-1", "inbound-2", "inbound-3"] {
            assert_eq!(hung(id), vec![HangupCause::Normal], "{id}");
        }
        // inbound-5 went back to the dialplan through `continue`; without
        // edgecc marking it redirected its StasisEnd is a hang-up.
        assert_eq!(hung("inbound-5"), vec![HangupCause::Normal]);
        // The `Stasis` channels created un-dialled (`agent-dial*`) are not
        // edgecc's: it hands them back rather than adopting them.
        assert!(fx.contains(&Effect::ContinueChannel {
            channel: "agent-dial".into()
        }));
        // Nothing is left over.
        assert!(
            st.legs.is_empty(),
            "{:?}",
            st.legs.keys().collect::<Vec<_>>()
        );
    }

    /// The SIP capture delivers most events of the agent channel twice
    /// (subscribed through the endpoint too): each fact is still reported
    /// once.
    #[test]
    fn sip_capture_duplicates_report_once() {
        let (st, fx) = replay("transcript-sip.jsonl", &["sip-agent-1"]);
        let ev = emitted(&fx);
        let l = leg("sip-agent-1");
        assert_eq!(
            ev.iter()
                .filter(|e| **e == PbxEvent::LegRinging { leg_id: l.clone() })
                .count(),
            1
        );
        assert_eq!(
            ev.iter()
                .filter(|e| **e == PbxEvent::LegAnswered { leg_id: l.clone() })
                .count(),
            1
        );
        assert_eq!(
            ev.iter()
                .filter(|e| matches!(e, PbxEvent::LegHungUp { leg_id, .. } if *leg_id == l))
                .count(),
            1
        );
        assert!(ev.contains(&PbxEvent::CallArrived {
            leg_id: leg("inbound-s"),
            ani: "5550001".into(),
            dnis: "8000".into(),
            attached: vec![],
        }));
        assert!(st.legs.is_empty());
    }

    /// The WebSocket capture: ApplicationReplaced is reported, and the
    /// call is adopted from the second connection.
    #[test]
    fn websocket_capture() {
        let (_, fx) = replay("transcript-websocket.jsonl", &[]);
        assert!(fx.contains(&Effect::Replaced));
        assert!(emitted(&fx)
            .iter()
            .any(|e| matches!(e, PbxEvent::CallArrived { leg_id, dnis, .. } if leg_id.as_str() == "inbound-w" && dnis == "9000")));
    }

    /// Attached data comes from `key=value` arguments and channel
    /// variables, bounded in count and key length.
    #[test]
    fn attached_data_is_bounded() {
        let mut ch = Channel::default();
        let mut vars = std::collections::BTreeMap::new();
        vars.insert("CUSTOMER_TIER".to_string(), serde_json::json!("gold"));
        vars.insert("EMPTY".to_string(), serde_json::json!(""));
        ch.channelvars = Some(vars);
        let args: Vec<String> = [
            "lang=fr",
            "noequals",
            "account=42",
            "a_very_long_key_name_here=x",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let a = attached_data(&args, &ch);
        let keys: Vec<&str> = a.iter().map(|v| v.key.as_str()).collect();
        assert_eq!(
            keys,
            vec!["lang", "account", "a_very_long_key", "CUSTOMER_TIER"]
        );
        let many: Vec<String> = (0..50).map(|i| format!("k{i}=v")).collect();
        assert_eq!(
            attached_data(&many, &Channel::default()).len(),
            ATTACHED_VARS_MAX
        );
    }

    fn channel(id: &str, state: &str, in_stasis: bool) -> Channel {
        let mut c = Channel {
            id: id.into(),
            state: state.into(),
            ..Channel::default()
        };
        if in_stasis {
            c.dialplan.app_name = "Stasis".into();
            c.dialplan.app_data = "edgecc,agent".into();
        }
        c
    }

    /// Reconcile after a reconnect: a connected call is re-adopted
    /// silently, an offer answered meanwhile reports LegAnswered, one that
    /// vanished ends NoAnswer, a vanished connected leg ends Normal, a leg
    /// edgecc asked to hang up is hung up, an unknown channel in the app is
    /// an orphan to check; each exactly once (a second reconcile adds
    /// nothing).
    #[test]
    fn reconcile_resolves_each_leg_once() {
        let mut st = AriState::new("edgecc");
        let mut caller = Leg::new(LegRole::Caller, OnAnswer::Nothing);
        caller.up = true;
        st.legs.insert("c1".into(), caller.clone());
        let mut agent = Leg::new(LegRole::Originated, OnAnswer::Nothing);
        agent.up = true;
        st.legs.insert("c1~1".into(), agent.clone());
        st.legs.insert("c2".into(), caller.clone());
        st.legs.insert(
            "c2~2".into(),
            Leg::new(LegRole::Originated, OnAnswer::Nothing),
        );
        st.legs.insert("c3".into(), caller.clone());
        st.legs.insert(
            "c3~3".into(),
            Leg::new(LegRole::Originated, OnAnswer::Nothing),
        );
        st.legs.insert("c4".into(), caller);
        st.legs.insert("c4~4".into(), agent);
        let mut doomed = Leg::new(LegRole::Originated, OnAnswer::Nothing);
        doomed.hangup_requested = Some(HangupCause::Normal);
        st.legs.insert("c5~5".into(), doomed);
        st.bridges.insert("b~c1".into(), BTreeSet::new());
        let channels = vec![
            channel("c1", "Up", true),
            channel("c1~1", "Up", true),
            channel("c2", "Up", true),
            channel("c2~2", "Up", true), // answered while the link was down
            channel("c3", "Up", true),   // c3~3 vanished while ringing
            channel("c4", "Up", true),   // c4~4 (connected) vanished
            channel("c5~5", "Ringing", false),
            channel("stray", "Up", true),
            channel("new", "Ring", true),
        ];
        let bridges = vec![Bridge {
            id: "b~c1".into(),
            bridge_type: "mixing".into(),
            channels: vec!["c1".into(), "c1~1".into()],
        }];
        let starting: HashSet<String> = ["new".to_string()].into_iter().collect();
        let fx = st.reconcile(&channels, &bridges, &starting);
        let ev = emitted(&fx);
        assert_eq!(
            ev,
            vec![
                PbxEvent::LegAnswered {
                    leg_id: leg("c2~2")
                },
                PbxEvent::LegHungUp {
                    leg_id: leg("c3~3"),
                    cause: HangupCause::NoAnswer
                },
                PbxEvent::LegHungUp {
                    leg_id: leg("c4~4"),
                    cause: HangupCause::Normal
                },
            ]
        );
        assert!(fx.contains(&Effect::HangupChannel {
            channel: "c5~5".into(),
            cause: HangupCause::Normal
        }));
        assert!(fx.contains(&Effect::CheckOrphans {
            channels: vec!["stray".into()],
            bridges: vec![]
        }));
        assert_eq!(st.bridges["b~c1"].len(), 2);
        assert_eq!(st.stats.readopted, 5);
        // Again: nothing new to report.
        let fx2 = st.reconcile(&channels, &bridges, &starting);
        assert!(emitted(&fx2).is_empty(), "{fx2:?}");
    }

    /// Goal: tell an Asterisk restart from a link drop (issue 16). Method:
    /// a connected call (c1, c1~1) and a ringing offer (c2~2) whose caller
    /// is up; the first connect reads start-up time T1, a reconnect with
    /// the same T1 finds c1's agent leg gone, then one with T2 finds nothing
    /// at all. Expected: same T1, the vanished leg ends `Normal` as before
    /// (and the offer still ringing reports its ringing);
    /// T2, every leg ends `PbxLost` once (`lost_by_pbx` counts them), and a
    /// later reconcile with T2 again (a plain link drop) reports nothing
    /// new and flags no restart.
    #[test]
    fn a_changed_startup_time_ends_vanished_legs_pbx_lost() {
        let mut st = AriState::new("edgecc");
        let mut up = Leg::new(LegRole::Caller, OnAnswer::Nothing);
        up.up = true;
        st.legs.insert("c1".into(), up.clone());
        let mut agent = Leg::new(LegRole::Originated, OnAnswer::Nothing);
        agent.up = true;
        st.legs.insert("c1~1".into(), agent);
        st.legs.insert("c2".into(), up);
        st.legs.insert(
            "c2~2".into(),
            Leg::new(LegRole::Originated, OnAnswer::Nothing),
        );
        let none = HashSet::new();
        assert!(
            !st.pbx_started(Some("T1")),
            "the first start-up time is no restart"
        );
        let channels = vec![
            channel("c1", "Up", true),
            channel("c2", "Up", true),
            channel("c2~2", "Ringing", false),
        ];
        assert!(!st.pbx_started(Some("T1")));
        let fx = st.reconcile(&channels, &[], &none);
        assert_eq!(
            emitted(&fx),
            vec![
                PbxEvent::LegHungUp {
                    leg_id: leg("c1~1"),
                    cause: HangupCause::Normal
                },
                PbxEvent::LegRinging {
                    leg_id: leg("c2~2")
                }
            ]
        );
        assert!(st.pbx_started(Some("T2")));
        assert!(!st.pbx_started(None), "an unreadable time changes nothing");
        let fx = st.reconcile(&[], &[], &none);
        let lost = |id: &str| PbxEvent::LegHungUp {
            leg_id: leg(id),
            cause: HangupCause::PbxLost,
        };
        assert_eq!(emitted(&fx), vec![lost("c1"), lost("c2"), lost("c2~2")]);
        assert_eq!(st.stats.lost_by_pbx, 3);
        assert!(!st.pbx_started(Some("T2")));
        assert!(emitted(&st.reconcile(&[], &[], &none)).is_empty());
    }

    /// Goal: tell a shutting-down Asterisk's hang-ups from ordinary ones
    /// (`core stop now`, `core restart now`). Method: a connected call (c1,
    /// c1~1) and a caller whose offer rings (c2, c2~2); the far end of c1~1
    /// hangs up first (cause 16, no `soft`), then Asterisk's
    /// `ast_softhangup_all()`: a soft request with cause 4 for a channel,
    /// and every leg leaves (StasisEnd, ChannelDestroyed). Expected: c1~1
    /// ends `Normal` (before the shutdown), every other leg `PbxLost`, the
    /// app's own soft 32 does not count as a shutdown, and the next
    /// session's reconcile starts without it.
    #[test]
    fn a_shutdown_soft_hangup_ends_legs_pbx_lost() {
        let mut st = AriState::new("edgecc");
        let mut up = Leg::new(LegRole::Caller, OnAnswer::Nothing);
        up.up = true;
        st.legs.insert("c1".into(), up.clone());
        let mut agent = Leg::new(LegRole::Originated, OnAnswer::Nothing);
        agent.up = true;
        st.legs.insert("c1~1".into(), agent);
        st.legs.insert("c2".into(), up);
        st.legs.insert(
            "c2~2".into(),
            Leg::new(LegRole::Originated, OnAnswer::Nothing),
        );
        let ev = |event: AriEvent| Envelope {
            type_name: String::new(),
            timestamp_ms: None,
            event,
        };
        let request = |id: &str, cause: i64, soft: Option<bool>| {
            ev(AriEvent::ChannelHangupRequest {
                cause: Some(cause),
                soft,
                channel: channel(id, "Up", true),
            })
        };
        let end = |id: &str| {
            ev(AriEvent::StasisEnd {
                channel: channel(id, "Up", true),
            })
        };
        let mut fx = st.on_event(&request("c1~1", 16, None));
        fx.extend(st.on_event(&end("c1~1")));
        fx.extend(st.on_event(&request("c2", 32, Some(true))));
        assert!(!st.pbx_stopping, "the app's own hang-up is no shutdown");
        for id in ["c1", "c2", "c2~2"] {
            fx.extend(st.on_event(&request(id, SOFTHANGUP_SHUTDOWN, Some(true))));
        }
        fx.extend(st.on_event(&end("c1")));
        fx.extend(st.on_event(&end("c2")));
        fx.extend(st.on_event(&ev(AriEvent::ChannelDestroyed {
            cause: Some(16),
            cause_txt: String::new(),
            channel: channel("c2~2", "Ringing", false),
        })));
        let hung = |id: &str, cause| PbxEvent::LegHungUp {
            leg_id: leg(id),
            cause,
        };
        assert_eq!(
            emitted(&fx),
            vec![
                hung("c1~1", HangupCause::Normal),
                hung("c1", HangupCause::PbxLost),
                hung("c2", HangupCause::PbxLost),
                hung("c2~2", HangupCause::PbxLost),
            ]
        );
        assert_eq!(st.stats.lost_by_pbx, 3);
        st.reconcile(&[], &[], &HashSet::new());
        assert!(!st.pbx_stopping, "a new session starts without it");
    }

    /// A monitor of call c1: supervisor leg `c1~9` (bridged with the spy
    /// when it answers) and its snoop channel `c1~spy9`.
    fn insert_monitor(st: &mut AriState) {
        st.legs.insert(
            "c1~9".into(),
            Leg::new(
                LegRole::Originated,
                OnAnswer::BridgeWithSpy {
                    spy: "c1~spy9".into(),
                    bridge: "s~c1~9".into(),
                },
            ),
        );
        st.legs.insert(
            "c1~spy9".into(),
            Leg::new(
                LegRole::Spy {
                    supervisor: "c1~9".into(),
                },
                OnAnswer::Nothing,
            ),
        );
    }

    /// Goal: calls of an Asterisk that never comes back end (issue 16).
    /// Method: a connected call with a monitor (supervisor and snoop
    /// channel), a leg edgecc already asked to hang up, then `give_up`.
    /// Expected: each caller or originated leg reports `LegHungUp` once,
    /// `PbxLost` unless edgecc asked for another cause; the snoop channel
    /// reports nothing; the picture is empty.
    #[test]
    fn giving_up_ends_every_leg_once() {
        let mut st = AriState::new("edgecc");
        let mut up = Leg::new(LegRole::Caller, OnAnswer::Nothing);
        up.up = true;
        st.legs.insert("c1".into(), up);
        insert_monitor(&mut st);
        let mut doomed = Leg::new(LegRole::Originated, OnAnswer::Nothing);
        doomed.hangup_requested = Some(HangupCause::NoAnswer);
        st.legs.insert("c1~2".into(), doomed);
        st.bridges.insert("b~c1".into(), BTreeSet::new());
        let fx = st.give_up();
        assert_eq!(fx.len(), 3, "{fx:?}");
        let hung = |id: &str, cause| PbxEvent::LegHungUp {
            leg_id: leg(id),
            cause,
        };
        assert_eq!(
            emitted(&fx),
            vec![
                hung("c1", HangupCause::PbxLost),
                hung("c1~2", HangupCause::NoAnswer),
                hung("c1~9", HangupCause::PbxLost),
            ]
        );
        assert!(st.legs.is_empty() && st.bridges.is_empty());
        assert_eq!(st.stats.lost_by_pbx, 2);
        assert!(st.give_up().is_empty());
    }

    /// A monitor: the supervisor answers, the spy is bridged with it; when
    /// the monitored leg goes, the spy goes and the supervisor is hung up.
    #[test]
    fn monitor_lifecycle() {
        let mut st = AriState::new("edgecc");
        insert_monitor(&mut st);
        let start = |id: &str| Envelope {
            event: AriEvent::StasisStart {
                args: vec!["snoop".into()],
                channel: channel(id, "Up", true),
            },
            timestamp_ms: None,
            type_name: "StasisStart".into(),
        };
        assert!(emitted(&st.on_event(&start("c1~spy9"))).is_empty());
        let fx = st.on_event(&start("c1~9"));
        assert!(fx.contains(&Effect::BridgeSpy {
            bridge: "s~c1~9".into(),
            spy: "c1~spy9".into(),
            supervisor: "c1~9".into()
        }));
        let end = Envelope {
            event: AriEvent::StasisEnd {
                channel: channel("c1~spy9", "Up", true),
            },
            timestamp_ms: None,
            type_name: "StasisEnd".into(),
        };
        let fx = st.on_event(&end);
        assert!(emitted(&fx).is_empty());
        assert!(fx.contains(&Effect::HangupChannel {
            channel: "c1~9".into(),
            cause: HangupCause::Normal
        }));
    }

    /// Lanes: legs and bridges route to their call.
    #[test]
    fn lanes_route_to_calls() {
        assert_eq!(call_of_leg("1712.7~3"), "1712.7");
        assert_eq!(call_of_leg("1712.7"), "1712.7");
        assert_eq!(call_of_bridge("b~1712.7"), "1712.7");
        assert_eq!(call_of_bridge("s~1712.7~3"), "1712.7");
    }
}
