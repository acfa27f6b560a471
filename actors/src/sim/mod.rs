//! The simulated PBX: the embedded default PBX for the demo, the tests and the
//! benchmark. Inbound callers (ANI, DNIS, up to 10 IVR variables, a patience
//! after which they hang up, an optional talk time), agent phones that answer
//! after a delay, never answer, or reject (scripted per phone or by seeded
//! probabilities), legs, bridges, hold with music, mute, hang-up causes,
//! redirects to external numbers and outbound dialing, prompts played to
//! waiting callers (recorded: [`GetPlayed`]), digits pressed
//! ([`PressDigit`]) and callers dialled back ([`ScriptCallback`]).
//!
//! [`SimPbx`] is an actor; [`SimPbxPort`] is its [`PbxPort`]. Events go to the
//! registry's `Recipient<PbxEvent>`. Time is tokio time, so tests pause it.

use crate::ids::{BridgeId, LegId};
use crate::ports::{
    AttachedVar, HangupCause, LegStatus, LocalBoxFuture, PbxCommand, PbxError, PbxEvent, PbxPort,
};
use crate::rng::SplitMix64;
use actix::prelude::*;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Duration;

/// How fast a device with auto-answer picks up.
pub const SIM_AUTO_ANSWER_MS: u64 = 100;
/// Mailbox capacity of the simulated PBX.
pub const SIM_MAILBOX_CAPACITY: usize = 65_536;

/// What a phone does with the next offer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PhoneAction {
    /// Answer after a delay.
    Answer {
        /// The delay.
        after_ms: u64,
    },
    /// Reject (cause 21) after a delay.
    Reject {
        /// The delay.
        after_ms: u64,
    },
    /// Busy (cause 17) after a delay: the device is on another call.
    Busy {
        /// The delay.
        after_ms: u64,
    },
    /// Ring until the PBX gives up.
    NoAnswer,
}

/// Seeded behaviour of phones without a script.
#[derive(Clone, Debug, PartialEq)]
pub struct PhoneProfile {
    /// Probability to answer.
    pub answer_p: f64,
    /// Probability to reject (the rest never answers).
    pub reject_p: f64,
    /// Answer delay range.
    pub answer_ms: (u64, u64),
    /// Reject delay.
    pub reject_ms: u64,
}

impl Default for PhoneProfile {
    fn default() -> Self {
        Self {
            answer_p: 1.0,
            reject_p: 0.0,
            answer_ms: (1_000, 1_000),
            reject_ms: 500,
        }
    }
}

/// An inbound caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The caller leg id (becomes the call id); `None` mints `sim-{n}`.
    pub leg_id: Option<LegId>,
    /// Caller number.
    pub ani: String,
    /// Dialed number.
    pub dnis: String,
    /// IVR variables.
    pub attached: Vec<AttachedVar>,
    /// Hangs up if no agent talks to it within this long.
    pub patience_ms: Option<u64>,
    /// Hangs up this long after an agent is connected.
    pub talk_ms: Option<u64>,
}

impl Caller {
    /// A caller with no patience limit and no talk limit.
    pub fn new(ani: &str, dnis: &str) -> Self {
        Self {
            leg_id: None,
            ani: ani.into(),
            dnis: dnis.into(),
            attached: Vec::new(),
            patience_ms: None,
            talk_ms: None,
        }
    }
}

/// What kind of leg.
#[derive(Clone, Debug, PartialEq, Eq)]
enum LegKind {
    /// An inbound caller.
    Caller {
        /// Talk limit.
        talk_ms: Option<u64>,
        /// An agent talks to it.
        served: bool,
    },
    /// An agent (or consult, or supervisor) device.
    Device {
        /// Dial string.
        endpoint: String,
    },
    /// An outbound customer.
    Customer,
}

/// One leg at the simulated PBX.
#[derive(Clone, Debug)]
struct SimLeg {
    /// Kind.
    kind: LegKind,
    /// Answered.
    up: bool,
    /// Hearing music on hold.
    held: bool,
    /// Muted.
    muted: bool,
    /// Its bridge.
    bridge: Option<BridgeId>,
}

/// Counters for tests and the benchmark.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Legs alive.
    pub legs: usize,
    /// Bridges alive.
    pub bridges: usize,
    /// Offers (agent legs) originated.
    pub originated: u64,
    /// Redirects to external numbers.
    pub redirects: u64,
    /// Announcements played.
    pub announcements: u64,
    /// Times a device rang while already ringing (must stay 0: invariant 1).
    pub double_ringing: u64,
    /// Commands refused (unknown legs etc.).
    pub refused: u64,
    /// Legs on hold now.
    pub held: usize,
    /// Legs muted now.
    pub muted: usize,
    /// Snoop legs started (monitor, whisper).
    pub snoops: u64,
    /// Barge-in legs started.
    pub barges: u64,
    /// Prompt lists started on waiting callers ([`PbxCommand::PlayPrompts`]).
    pub prompts: u64,
    /// Prompt lists stopped while playing.
    pub prompts_stopped: u64,
    /// Callers dialled back ([`PbxCommand::DialCallback`]).
    pub callbacks_dialled: u64,
}

/// One play the simulated PBX carried out, for tests to assert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Played {
    /// Simulated time of the play (tokio ms since the PBX started).
    pub at_ms: u64,
    /// The leg it played to.
    pub leg_id: LegId,
    /// The media URIs, as ARI would get them (`sound:…`, `number:…`).
    pub media: Vec<String>,
}

/// How long a simulated prompt plays per media item: a played list is
/// "playing" this long per item (what [`PbxCommand::StopPrompts`] cuts).
pub const SIM_PROMPT_MS_PER_MEDIA: u64 = 1_000;
/// Most plays the simulated PBX remembers (the oldest are dropped).
pub const SIM_PLAYED_MAX: usize = 10_000;

/// Observer of originate commands (the benchmark measures offer latency).
pub type OriginateHook = Box<dyn FnMut(&LegId)>;

/// The simulated PBX actor.
pub struct SimPbx {
    /// Where events go (the registry).
    events: Option<Recipient<PbxEvent>>,
    /// Legs by id.
    legs: HashMap<LegId, SimLeg>,
    /// Bridges and their legs.
    bridges: HashMap<BridgeId, BTreeSet<LegId>>,
    /// Scripted actions per endpoint, used first.
    scripts: HashMap<String, VecDeque<PhoneAction>>,
    /// Profile for unscripted phones.
    profile: PhoneProfile,
    /// Per-endpoint profiles (override `profile`).
    profiles: HashMap<String, PhoneProfile>,
    /// Endpoints that cannot be reached.
    unreachable: BTreeSet<String>,
    /// Ringing legs per endpoint.
    ringing: HashMap<String, u32>,
    /// Outbound numbers' answer probability.
    customer_answer_p: f64,
    /// Randomness.
    rng: SplitMix64,
    /// Minted caller ids.
    seq: u64,
    /// Counters.
    stats: SimStats,
    /// Called on every agent-leg originate.
    on_originate: Option<OriginateHook>,
    /// Every play, in order (bounded by [`SIM_PLAYED_MAX`]).
    played: VecDeque<Played>,
    /// Prompt lists playing, by leg: until when.
    prompts_until: HashMap<LegId, tokio::time::Instant>,
    /// When the PBX started (the clock of [`Played::at_ms`]).
    started: tokio::time::Instant,
    /// What callers dialled back do: answer after a delay (default 1 s),
    /// busy, or never answer; by number, used in order.
    callback_scripts: HashMap<String, VecDeque<PhoneAction>>,
    /// Talk time (ms) of a caller served by one of these devices, instead
    /// of the caller's own: the demo's human agent gets long calls.
    served_talk_ms: HashMap<String, u64>,
}

impl SimPbx {
    /// A PBX seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            events: None,
            legs: HashMap::new(),
            bridges: HashMap::new(),
            scripts: HashMap::new(),
            profile: PhoneProfile::default(),
            profiles: HashMap::new(),
            unreachable: BTreeSet::new(),
            ringing: HashMap::new(),
            customer_answer_p: 0.8,
            rng: SplitMix64::new(seed),
            seq: 0,
            stats: SimStats::default(),
            on_originate: None,
            played: VecDeque::new(),
            prompts_until: HashMap::new(),
            started: tokio::time::Instant::now(),
            callback_scripts: HashMap::new(),
            served_talk_ms: HashMap::new(),
        }
    }

    /// Records a play of `media` to `leg`.
    fn record_play(&mut self, leg: &LegId, media: Vec<String>) {
        if self.played.len() == SIM_PLAYED_MAX {
            self.played.pop_front();
        }
        self.played.push_back(Played {
            at_ms: self.started.elapsed().as_millis() as u64,
            leg_id: leg.clone(),
            media,
        });
    }

    /// Dials a caller back: a customer leg that answers, is busy or rings
    /// out as its number's script says (answer after 1 s by default).
    fn dial_callback(
        &mut self,
        leg: LegId,
        number: &str,
        timeout_ms: u64,
        ctx: &mut Context<Self>,
    ) -> Result<(), PbxError> {
        if self.legs.contains_key(&leg) {
            return Ok(()); // A retried command: the leg exists.
        }
        self.stats.callbacks_dialled += 1;
        self.legs.insert(
            leg.clone(),
            SimLeg {
                kind: LegKind::Customer,
                up: false,
                held: false,
                muted: false,
                bridge: None,
            },
        );
        let action = self
            .callback_scripts
            .get_mut(number)
            .and_then(|s| s.pop_front())
            .unwrap_or(PhoneAction::Answer { after_ms: 1_000 });
        let (after, answer, cause) = match action {
            PhoneAction::Answer { after_ms } => (after_ms, true, HangupCause::Normal),
            PhoneAction::Reject { after_ms } => (after_ms, false, HangupCause::Rejected),
            PhoneAction::Busy { after_ms } => (after_ms, false, HangupCause::Busy),
            PhoneAction::NoAnswer => (timeout_ms, false, HangupCause::NoAnswer),
        };
        ctx.run_later(Duration::from_millis(after), move |act, _| {
            match act.legs.get_mut(&leg) {
                Some(l) if !l.up && answer => {
                    l.up = true;
                    act.emit(PbxEvent::LegAnswered { leg_id: leg });
                }
                Some(l) if !l.up => {
                    act.hang_up(&leg, cause);
                }
                _ => {}
            }
        });
        Ok(())
    }

    /// Sets the hook called on every agent-leg originate.
    pub fn with_originate_hook(mut self, hook: OriginateHook) -> Self {
        self.on_originate = Some(hook);
        self
    }

    fn emit(&self, ev: PbxEvent) {
        if let Some(r) = &self.events {
            r.do_send(ev);
        }
    }

    fn leg_gone(&mut self, leg: &LegId) -> Option<SimLeg> {
        let l = self.legs.remove(leg)?;
        if let Some(b) = &l.bridge {
            if let Some(set) = self.bridges.get_mut(b) {
                set.remove(leg);
            }
        }
        if let LegKind::Device { endpoint } = &l.kind {
            if !l.up {
                self.unring(endpoint);
            }
        }
        Some(l)
    }

    fn unring(&mut self, endpoint: &str) {
        if let Some(n) = self.ringing.get_mut(endpoint) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.ringing.remove(endpoint);
            }
        }
    }

    fn hang_up(&mut self, leg: &LegId, cause: HangupCause) -> bool {
        if self.leg_gone(leg).is_some() {
            self.emit(PbxEvent::LegHungUp {
                leg_id: leg.clone(),
                cause,
            });
            true
        } else {
            false
        }
    }

    fn answer_device(&mut self, leg: &LegId) {
        let endpoint = match self.legs.get_mut(leg) {
            Some(l) if !l.up => {
                l.up = true;
                match &l.kind {
                    LegKind::Device { endpoint } => Some(endpoint.clone()),
                    _ => None,
                }
            }
            _ => return,
        };
        if let Some(e) = endpoint {
            self.unring(&e);
        }
        self.emit(PbxEvent::LegAnswered {
            leg_id: leg.clone(),
        });
    }

    fn originate(
        &mut self,
        leg: LegId,
        endpoint: String,
        timeout_ms: u64,
        auto_answer: bool,
        ctx: &mut Context<Self>,
    ) -> Result<(), PbxError> {
        if self.legs.contains_key(&leg) {
            return Ok(()); // A retried command: the leg exists.
        }
        if self.unreachable.contains(&endpoint) {
            return Err(PbxError::Unreachable(endpoint));
        }
        self.stats.originated += 1;
        if let Some(hook) = &mut self.on_originate {
            hook(&leg);
        }
        let n = self.ringing.entry(endpoint.clone()).or_default();
        *n += 1;
        if *n > 1 {
            self.stats.double_ringing += 1;
        }
        self.legs.insert(
            leg.clone(),
            SimLeg {
                kind: LegKind::Device {
                    endpoint: endpoint.clone(),
                },
                up: false,
                held: false,
                muted: false,
                bridge: None,
            },
        );
        self.emit(PbxEvent::LegRinging {
            leg_id: leg.clone(),
        });
        let action = if auto_answer {
            PhoneAction::Answer {
                after_ms: SIM_AUTO_ANSWER_MS,
            }
        } else if let Some(a) = self.scripts.get_mut(&endpoint).and_then(|s| s.pop_front()) {
            a
        } else {
            let p = self
                .profiles
                .get(&endpoint)
                .unwrap_or(&self.profile)
                .clone();
            if self.rng.chance(p.answer_p) {
                PhoneAction::Answer {
                    after_ms: self.rng.range(p.answer_ms.0, p.answer_ms.1),
                }
            } else if self
                .rng
                .chance(p.reject_p / (1.0 - p.answer_p).max(f64::EPSILON))
            {
                PhoneAction::Reject {
                    after_ms: p.reject_ms,
                }
            } else {
                PhoneAction::NoAnswer
            }
        };
        match action {
            PhoneAction::Answer { after_ms } => {
                ctx.run_later(Duration::from_millis(after_ms), move |act, _| {
                    act.answer_device(&leg)
                });
            }
            PhoneAction::Reject { after_ms } | PhoneAction::Busy { after_ms } => {
                let cause = match action {
                    PhoneAction::Busy { .. } => HangupCause::Busy,
                    _ => HangupCause::Rejected,
                };
                ctx.run_later(Duration::from_millis(after_ms), move |act, _| {
                    if act.legs.get(&leg).is_some_and(|l| !l.up) {
                        act.hang_up(&leg, cause);
                    }
                });
            }
            PhoneAction::NoAnswer => {
                ctx.run_later(Duration::from_millis(timeout_ms), move |act, _| {
                    if act.legs.get(&leg).is_some_and(|l| !l.up) {
                        act.hang_up(&leg, HangupCause::NoAnswer);
                    }
                });
            }
        }
        Ok(())
    }

    fn bridge(
        &mut self,
        bridge: &BridgeId,
        leg: &LegId,
        ctx: &mut Context<Self>,
    ) -> Result<(), PbxError> {
        let old = match self.legs.get_mut(leg) {
            Some(l) => l.bridge.replace(bridge.clone()),
            None => return Err(PbxError::UnknownLeg(leg.0.clone())),
        };
        if let Some(old) = old.filter(|o| o != bridge) {
            if let Some(set) = self.bridges.get_mut(&old) {
                set.remove(leg);
            }
        }
        self.bridges
            .entry(bridge.clone())
            .or_default()
            .insert(leg.clone());
        self.check_served(bridge, ctx);
        Ok(())
    }

    /// A caller in a bridge with an answered device is served: patience
    /// stops, talk time starts.
    fn check_served(&mut self, bridge: &BridgeId, ctx: &mut Context<Self>) {
        let Some(set) = self.bridges.get(bridge) else {
            return;
        };
        let device = set.iter().find_map(|l| match self.legs.get(l) {
            Some(SimLeg {
                kind: LegKind::Device { endpoint },
                up: true,
                ..
            }) => Some(endpoint),
            _ => None,
        });
        let Some(device) = device else {
            return;
        };
        let talk_override = self.served_talk_ms.get(device).copied();
        let callers: Vec<LegId> = set.iter().cloned().collect();
        for c in callers {
            let talk = match self.legs.get_mut(&c).map(|l| &mut l.kind) {
                Some(LegKind::Caller { talk_ms, served }) if !*served => {
                    *served = true;
                    talk_override.or(*talk_ms)
                }
                _ => continue,
            };
            if let Some(ms) = talk {
                ctx.run_later(Duration::from_millis(ms), move |act, _| {
                    act.hang_up(&c, HangupCause::Normal);
                });
            }
        }
    }

    fn with_leg(&mut self, leg: &LegId, f: impl FnOnce(&mut SimLeg)) -> Result<(), PbxError> {
        match self.legs.get_mut(leg) {
            Some(l) => {
                f(l);
                Ok(())
            }
            None => Err(PbxError::UnknownLeg(leg.0.clone())),
        }
    }

    fn command(&mut self, cmd: PbxCommand, ctx: &mut Context<Self>) -> Result<(), PbxError> {
        match cmd {
            PbxCommand::Answer { leg_id } => {
                let device = match self.legs.get(&leg_id) {
                    Some(l) => matches!(l.kind, LegKind::Device { .. }),
                    None => return Err(PbxError::UnknownLeg(leg_id.0)),
                };
                if device {
                    self.answer_device(&leg_id);
                } else {
                    self.with_leg(&leg_id, |l| l.up = true)?;
                }
                Ok(())
            }
            PbxCommand::OriginateAgentLeg {
                leg_id,
                endpoint,
                timeout_ms,
                auto_answer,
                ..
            } => self.originate(leg_id, endpoint, timeout_ms, auto_answer, ctx),
            PbxCommand::ConsultDial {
                leg_id,
                endpoint,
                timeout_ms,
                ..
            } => self.originate(leg_id, endpoint, timeout_ms, false, ctx),
            PbxCommand::Bridge { bridge_id, leg_id } => self.bridge(&bridge_id, &leg_id, ctx),
            PbxCommand::Unbridge { bridge_id, leg_id } => {
                if let Some(set) = self.bridges.get_mut(&bridge_id) {
                    set.remove(&leg_id);
                }
                self.with_leg(&leg_id, |l| {
                    if l.bridge.as_ref() == Some(&bridge_id) {
                        l.bridge = None;
                    }
                })
            }
            PbxCommand::Conference { bridge_id, leg_ids } => {
                for leg in &leg_ids {
                    self.bridge(&bridge_id, leg, ctx)?;
                }
                Ok(())
            }
            PbxCommand::DestroyBridge { bridge_id } => {
                if let Some(set) = self.bridges.remove(&bridge_id) {
                    for leg in set {
                        if let Some(l) = self.legs.get_mut(&leg) {
                            l.bridge = None;
                        }
                    }
                }
                Ok(())
            }
            PbxCommand::Hold { leg_id } => self.with_leg(&leg_id, |l| l.held = true),
            PbxCommand::Resume { leg_id } => self.with_leg(&leg_id, |l| l.held = false),
            PbxCommand::Mute { leg_id } => self.with_leg(&leg_id, |l| l.muted = true),
            PbxCommand::Unmute { leg_id } => self.with_leg(&leg_id, |l| l.muted = false),
            PbxCommand::Hangup { leg_id, cause } => {
                if self.hang_up(&leg_id, cause) {
                    Ok(())
                } else {
                    Err(PbxError::UnknownLeg(leg_id.0))
                }
            }
            PbxCommand::RedirectExternal { leg_id, .. } => {
                if self.leg_gone(&leg_id).is_none() {
                    return Err(PbxError::UnknownLeg(leg_id.0));
                }
                self.stats.redirects += 1;
                Ok(())
            }
            PbxCommand::PlayAnnouncement { leg_id, prompt } => {
                self.stats.announcements += 1;
                self.with_leg(&leg_id, |_| {})?;
                self.record_play(&leg_id, vec![format!("sound:{prompt}")]);
                Ok(())
            }
            PbxCommand::PlayPrompts { leg_id, media } => {
                self.with_leg(&leg_id, |_| {})?;
                self.stats.prompts += 1;
                let until = tokio::time::Instant::now()
                    + Duration::from_millis(SIM_PROMPT_MS_PER_MEDIA * media.len() as u64);
                self.prompts_until.insert(leg_id.clone(), until);
                self.record_play(&leg_id, media.iter().map(|m| m.uri()).collect());
                Ok(())
            }
            PbxCommand::StopPrompts { leg_id } => {
                let playing = self
                    .prompts_until
                    .remove(&leg_id)
                    .is_some_and(|until| until > tokio::time::Instant::now());
                if playing {
                    self.stats.prompts_stopped += 1;
                }
                Ok(())
            }
            PbxCommand::DialCallback {
                leg_id,
                number,
                timeout_ms,
                ..
            } => self.dial_callback(leg_id, &number, timeout_ms, ctx),
            PbxCommand::Snoop {
                snoop_leg_id,
                leg_id,
                endpoint,
                ..
            } => {
                self.with_leg(&leg_id, |_| {})?;
                self.stats.snoops += 1;
                self.legs.insert(
                    snoop_leg_id,
                    SimLeg {
                        kind: LegKind::Device { endpoint },
                        up: true,
                        held: false,
                        muted: false,
                        bridge: None,
                    },
                );
                Ok(())
            }
            PbxCommand::Barge {
                leg_id,
                bridge_id,
                endpoint,
            } => {
                if !self.bridges.contains_key(&bridge_id) {
                    return Err(PbxError::UnknownBridge(bridge_id.0));
                }
                self.stats.barges += 1;
                self.legs.insert(
                    leg_id.clone(),
                    SimLeg {
                        kind: LegKind::Device { endpoint },
                        up: true,
                        held: false,
                        muted: false,
                        bridge: None,
                    },
                );
                self.bridge(&bridge_id, &leg_id, ctx)
            }
            PbxCommand::OutboundDial {
                agent_leg_id,
                endpoint,
                customer_leg_id,
                timeout_ms,
                ..
            } => {
                self.legs.insert(
                    agent_leg_id,
                    SimLeg {
                        kind: LegKind::Device { endpoint },
                        up: true,
                        held: false,
                        muted: false,
                        bridge: None,
                    },
                );
                self.legs.insert(
                    customer_leg_id.clone(),
                    SimLeg {
                        kind: LegKind::Customer,
                        up: false,
                        held: false,
                        muted: false,
                        bridge: None,
                    },
                );
                let answers = self.rng.chance(self.customer_answer_p);
                let after = if answers {
                    self.rng.range(2_000, 8_000)
                } else {
                    timeout_ms.min(20_000)
                };
                ctx.run_later(Duration::from_millis(after), move |act, _| {
                    match act.legs.get_mut(&customer_leg_id) {
                        Some(l) if !l.up => {
                            if answers {
                                l.up = true;
                                act.emit(PbxEvent::LegAnswered {
                                    leg_id: customer_leg_id,
                                });
                            } else {
                                act.hang_up(&customer_leg_id, HangupCause::NoAnswer);
                            }
                        }
                        _ => {}
                    }
                });
                Ok(())
            }
        }
    }
}

impl Actor for SimPbx {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(SIM_MAILBOX_CAPACITY);
    }
}

/// Where events go (set once the registry exists).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ConnectEvents(pub Recipient<PbxEvent>);

/// A PBX command (from [`SimPbxPort`]).
#[derive(Message)]
#[rtype(result = "Result<(), PbxError>")]
pub struct SimCommand(pub PbxCommand);

/// An inbound caller dials in; answers with the caller leg id.
#[derive(Message)]
#[rtype(result = "LegId")]
pub struct PlaceCall(pub Caller);

/// Script the next offers of a phone.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ScriptPhone {
    /// The endpoint (`sim/1001`).
    pub endpoint: String,
    /// Actions, used in order, then the profile applies.
    pub actions: Vec<PhoneAction>,
}

/// Set the profile of unscripted phones (all, or one endpoint).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetPhoneProfile {
    /// One endpoint, or all when `None`.
    pub endpoint: Option<String>,
    /// The profile.
    pub profile: PhoneProfile,
}

/// Callers served by `endpoint` talk `talk_ms` (instead of their own talk
/// time) once it answers.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetServedTalk {
    /// The device.
    pub endpoint: String,
    /// How long its callers talk, ms.
    pub talk_ms: u64,
}

/// Make an endpoint unreachable (originates fail).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetUnreachable {
    /// The endpoint.
    pub endpoint: String,
    /// Unreachable (true) or back (false).
    pub unreachable: bool,
}

/// Someone hangs up a leg at the PBX side (caller or phone).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct HangUpLeg {
    /// The leg.
    pub leg_id: LegId,
    /// The cause.
    pub cause: HangupCause,
}

/// Read the counters.
#[derive(Message)]
#[rtype(result = "SimStats")]
pub struct GetSimStats;

/// Every play so far (announcements and prompt lists), in order.
#[derive(Message)]
#[rtype(result = "Vec<Played>")]
pub struct GetPlayed;

/// A caller presses a digit on its leg (the PBX reports `Dtmf`).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct PressDigit {
    /// The leg.
    pub leg_id: LegId,
    /// The digit.
    pub digit: char,
}

/// Script what the next callbacks to `number` do (answer after a delay,
/// busy, reject, never answer); unscripted callbacks answer after 1 s.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ScriptCallback {
    /// The number dialled back.
    pub number: String,
    /// Actions, used in order.
    pub actions: Vec<PhoneAction>,
}

/// Whether a leg is alive, up, held, muted, and its bridge.
#[derive(Message)]
#[rtype(result = "Option<LegInfo>")]
pub struct GetLeg(pub LegId);

/// The PBX restarts with calls up: every leg is gone, each reported
/// `LegHungUp` with [`HangupCause::PbxLost`] (what an adapter that learned
/// of the restart reports). Answers how many legs were lost.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct RestartPbx;

/// Stop sending events (the daemon holding the link died); commands still
/// work, legs and phones carry on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DisconnectEvents;

/// The legs the PBX has, as the reconcile after a restart needs them: every
/// leg, answered (`Up`) or not (`Ringing`; a caller leg not answered yet
/// counts as ringing).
#[derive(Message)]
#[rtype(result = "HashMap<LegId, LegStatus>")]
pub struct ListLegs;

/// What [`GetLeg`] answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegInfo {
    /// Answered.
    pub up: bool,
    /// Hearing music on hold.
    pub held: bool,
    /// Muted.
    pub muted: bool,
    /// Its bridge.
    pub bridge: Option<BridgeId>,
}

impl Handler<ConnectEvents> for SimPbx {
    type Result = ();

    fn handle(&mut self, msg: ConnectEvents, _ctx: &mut Self::Context) {
        // The simulated link is up as soon as someone listens.
        msg.0.do_send(PbxEvent::LinkUp);
        self.events = Some(msg.0);
    }
}

impl Handler<DisconnectEvents> for SimPbx {
    type Result = ();

    fn handle(&mut self, _msg: DisconnectEvents, _ctx: &mut Self::Context) {
        self.events = None;
    }
}

impl Handler<RestartPbx> for SimPbx {
    type Result = usize;

    fn handle(&mut self, _msg: RestartPbx, _ctx: &mut Self::Context) -> usize {
        let mut legs: Vec<LegId> = self.legs.keys().cloned().collect();
        legs.sort();
        let lost = legs
            .iter()
            .filter(|leg| self.hang_up(leg, HangupCause::PbxLost))
            .count();
        self.bridges.clear();
        lost
    }
}

impl Handler<ListLegs> for SimPbx {
    type Result = MessageResult<ListLegs>;

    fn handle(&mut self, _msg: ListLegs, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(
            self.legs
                .iter()
                .map(|(id, l)| {
                    let status = if l.up {
                        LegStatus::Up
                    } else {
                        LegStatus::Ringing
                    };
                    (id.clone(), status)
                })
                .collect(),
        )
    }
}

impl Handler<SimCommand> for SimPbx {
    type Result = Result<(), PbxError>;

    fn handle(&mut self, msg: SimCommand, ctx: &mut Self::Context) -> Self::Result {
        let r = self.command(msg.0, ctx);
        if r.is_err() {
            self.stats.refused += 1;
        }
        r
    }
}

impl Handler<PlaceCall> for SimPbx {
    type Result = MessageResult<PlaceCall>;

    fn handle(&mut self, msg: PlaceCall, ctx: &mut Self::Context) -> Self::Result {
        let c = msg.0;
        self.seq += 1;
        let leg = c
            .leg_id
            .clone()
            .unwrap_or_else(|| LegId::new(format!("sim-{}", self.seq)));
        self.legs.insert(
            leg.clone(),
            SimLeg {
                kind: LegKind::Caller {
                    talk_ms: c.talk_ms,
                    served: false,
                },
                up: false,
                held: false,
                muted: false,
                bridge: None,
            },
        );
        if let Some(p) = c.patience_ms {
            let l = leg.clone();
            ctx.run_later(Duration::from_millis(p), move |act, _| {
                if matches!(
                    act.legs.get(&l).map(|x| &x.kind),
                    Some(LegKind::Caller { served: false, .. })
                ) {
                    act.hang_up(&l, HangupCause::Normal);
                }
            });
        }
        self.emit(PbxEvent::CallArrived {
            leg_id: leg.clone(),
            ani: c.ani,
            dnis: c.dnis,
            attached: c.attached,
        });
        MessageResult(leg)
    }
}

impl Handler<ScriptPhone> for SimPbx {
    type Result = ();

    fn handle(&mut self, msg: ScriptPhone, _ctx: &mut Self::Context) {
        self.scripts
            .entry(msg.endpoint)
            .or_default()
            .extend(msg.actions);
    }
}

impl Handler<SetPhoneProfile> for SimPbx {
    type Result = ();

    fn handle(&mut self, msg: SetPhoneProfile, _ctx: &mut Self::Context) {
        match msg.endpoint {
            Some(e) => {
                self.profiles.insert(e, msg.profile);
            }
            None => self.profile = msg.profile,
        }
    }
}

impl Handler<SetServedTalk> for SimPbx {
    type Result = ();

    fn handle(&mut self, msg: SetServedTalk, _ctx: &mut Self::Context) {
        self.served_talk_ms.insert(msg.endpoint, msg.talk_ms);
    }
}

impl Handler<SetUnreachable> for SimPbx {
    type Result = ();

    fn handle(&mut self, msg: SetUnreachable, _ctx: &mut Self::Context) {
        if msg.unreachable {
            self.unreachable.insert(msg.endpoint);
        } else {
            self.unreachable.remove(&msg.endpoint);
        }
    }
}

impl Handler<HangUpLeg> for SimPbx {
    type Result = bool;

    fn handle(&mut self, msg: HangUpLeg, _ctx: &mut Self::Context) -> bool {
        self.hang_up(&msg.leg_id, msg.cause)
    }
}

impl Handler<GetSimStats> for SimPbx {
    type Result = MessageResult<GetSimStats>;

    fn handle(&mut self, _msg: GetSimStats, _ctx: &mut Self::Context) -> Self::Result {
        let mut s = self.stats.clone();
        s.legs = self.legs.len();
        s.bridges = self.bridges.len();
        s.held = self.legs.values().filter(|l| l.held).count();
        s.muted = self.legs.values().filter(|l| l.muted).count();
        MessageResult(s)
    }
}

impl Handler<GetPlayed> for SimPbx {
    type Result = MessageResult<GetPlayed>;

    fn handle(&mut self, _msg: GetPlayed, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.played.iter().cloned().collect())
    }
}

impl Handler<PressDigit> for SimPbx {
    type Result = bool;

    fn handle(&mut self, msg: PressDigit, _ctx: &mut Self::Context) -> bool {
        if !self.legs.contains_key(&msg.leg_id) {
            return false;
        }
        self.emit(PbxEvent::Dtmf {
            leg_id: msg.leg_id,
            digit: msg.digit,
        });
        true
    }
}

impl Handler<ScriptCallback> for SimPbx {
    type Result = ();

    fn handle(&mut self, msg: ScriptCallback, _ctx: &mut Self::Context) {
        self.callback_scripts
            .entry(msg.number)
            .or_default()
            .extend(msg.actions);
    }
}

impl Handler<GetLeg> for SimPbx {
    type Result = Option<LegInfo>;

    fn handle(&mut self, msg: GetLeg, _ctx: &mut Self::Context) -> Self::Result {
        self.legs.get(&msg.0).map(|l| LegInfo {
            up: l.up,
            held: l.held,
            muted: l.muted,
            bridge: l.bridge.clone(),
        })
    }
}

/// The [`PbxPort`] of a [`SimPbx`]. Commands are queued in send order.
#[derive(Clone)]
pub struct SimPbxPort {
    /// The simulated PBX.
    pub addr: Addr<SimPbx>,
}

impl PbxPort for SimPbxPort {
    fn send(&self, cmd: PbxCommand) -> LocalBoxFuture<'static, Result<(), PbxError>> {
        // `send` enqueues now, so commands keep their order.
        let req = self.addr.send(SimCommand(cmd));
        Box::pin(async move { req.await.map_err(|_| PbxError::LinkDown)? })
    }
}
