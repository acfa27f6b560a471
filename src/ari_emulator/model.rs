//! The emulated Asterisk: channels, bridges, endpoints, the app's
//! subscriptions and its WebSocket link, in one struct behind one mutex.
//! Every operation (a REST request, a test's far-end action, a timer) runs
//! to completion under the lock and emits its events, in order, into the
//! current link's queue; timers it needs are collected in
//! [`Core::timers`] and spawned by the caller after the lock is released.
//!
//! # Event delivery (as observed on Asterisk 22)
//!
//! An event about a channel reaches the app when the channel is in Stasis
//! or the app subscribes to it (it originated or created it, or asked for
//! `channel:<id>`). A channel of an endpoint the app subscribed to
//! (`endpoint:PJSIP/2001`) is a second source: its events arrive twice,
//! except StasisStart, StasisEnd and the bridge enter/leave events. After
//! StasisEnd only subscribed channels still report, so a channel that came
//! in through `Stasis()` in the dialplan ends with StasisEnd. With no link
//! connected, events are dropped (Asterisk keeps none).
//!
//! # Hang-up shapes
//!
//! - App `DELETE`: `ChannelHangupRequest {cause:32, soft:true}`, leave the
//!   bridge, StasisEnd, `ChannelDestroyed {cause:16}`.
//! - Far end: `ChannelHangupRequest {cause}` without `soft`, then the same.
//! - Never across a bridge: the other members stay.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use tokio::sync::mpsc::UnboundedSender;
use tracing::debug;

use super::wire::{self, cause_txt, message, Dialplan, Party};

mod playbacks;
pub mod tally;
use super::{BridgeView, ChannelView, EmulatorError, EndpointBehaviour, RequestLog};
pub use playbacks::{PlayedView, PLAYED_MAX};

/// An HTTP error answer: status and JSON body.
pub type HttpError = (u16, Value);

/// Most REST requests kept in the request log (older ones are dropped).
pub const REQUESTS_MAX: usize = 100_000;
/// Most sent events kept in the event log (older ones are dropped); kept
/// as text, about 1 KiB each.
pub const EVENTS_LOG_MAX: usize = 20_000;
/// Default originate `timeout`, seconds (ARI's default).
pub const ORIGINATE_TIMEOUT_SECS_DEFAULT: i64 = 30;
/// Default playback length, ms (the captures' prompt took about 2 s).
pub const PLAYBACK_MS_DEFAULT: u64 = 2_000;

/// Event types delivered once even when a channel has two sources.
const ONCE_TYPES: [&str; 4] = [
    "StasisStart",
    "StasisEnd",
    "ChannelEnteredBridge",
    "ChannelLeftBridge",
];

/// A timer an operation asked for; fired later through [`Core::fire`].
#[derive(Debug, Clone)]
pub enum Timer {
    /// The far end of a ringing dial answers.
    Answer {
        /// The dialled (app-side) channel.
        id: String,
        /// Its serial, so a reused id is not mistaken for it.
        serial: u64,
    },
    /// The originate `timeout` (or `/dial` timeout) expires.
    Timeout {
        /// The dialled channel.
        id: String,
        /// Its serial.
        serial: u64,
    },
    /// The far end hangs up an answered call.
    FarHangup {
        /// The app-side channel.
        id: String,
        /// Its serial.
        serial: u64,
        /// Q.850 cause.
        cause: u16,
    },
    /// A playback ends.
    PlaybackDone {
        /// The playback object (its `state` is replaced).
        playback: Value,
        /// Channel whose hang-up cancels the event, if on a channel.
        channel: Option<(String, u64)>,
    },
}

/// Which technology a channel uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tech {
    /// A Local channel half (`;1` or `;2`).
    Local,
    /// A PJSIP channel.
    Pjsip,
    /// A snoop channel.
    Snoop,
}

/// How a dial was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DialMode {
    /// `POST /channels` with an app (or a dialplan target): StasisStart on answer.
    Originate,
    /// `POST /channels/create` then `/dial`: already in Stasis.
    Created,
}

/// An outgoing dial in progress.
#[derive(Debug, Clone)]
struct DialState {
    /// How the far end behaves.
    behaviour: EndpointBehaviour,
    /// `dialstring` of the first Dial event (`1001@agents`, `2001`).
    dialstring: String,
    /// Originate or create+dial.
    mode: DialMode,
    /// Enter the app on answer (originate with `app`).
    into_app: bool,
    /// The far end answered.
    answered: bool,
    /// `/dial` was called (created channels) or originate started.
    started: bool,
}

/// One channel.
#[derive(Debug, Clone)]
struct Chan {
    /// ARI id.
    id: String,
    /// Unique serial (ids may be reused after a channel is gone).
    serial: u64,
    /// Name, e.g. `Local/1001@agents-00000002;1`.
    name: String,
    /// Technology.
    tech: Tech,
    /// `Down`, `Ring`, `Ringing`, `Up`, `Busy`.
    state: &'static str,
    /// SIP Call-ID for PJSIP channels.
    protocol_id: String,
    /// Caller.
    caller: Party,
    /// Connected line.
    connected: Party,
    /// Dialplan position.
    dialplan: Dialplan,
    /// The position to restore on StasisEnd.
    dialplan_before_stasis: Option<Dialplan>,
    /// Creation time, ARI format.
    creationtime: String,
    /// In the Stasis app now.
    in_stasis: bool,
    /// Arguments of StasisStart.
    stasis_args: Vec<String>,
    /// The app subscribes to it (originated, created, snooped, or asked).
    subscribed: bool,
    /// Endpoint (`PJSIP/2001`) for endpoint subscriptions.
    endpoint: Option<String>,
    /// The other half of a Local pair.
    other: Option<String>,
    /// The half the app controls (`;1` of an agent, `;2` of an inbound call).
    app_side: bool,
    /// Bridge it is in.
    bridge: Option<String>,
    /// Held through `POST /hold`.
    held: bool,
    /// Mute direction (`in`, `out`, `both`), when muted.
    mute: Option<String>,
    /// Music on hold on the channel.
    moh: bool,
    /// Ringing indicated through `POST /ring`.
    ringing_indicated: bool,
    /// Channel variables set over ARI.
    vars: BTreeMap<String, String>,
    /// Outgoing dial, for originated and created channels.
    dial: Option<DialState>,
    /// Channel this snoop channel spies on.
    snoop_of: Option<String>,
    /// Snoop `spy` and `whisper` directions.
    snoop_dirs: (String, String),
    /// The caller id was given on originate (the `;2` half reports it).
    caller_id_given: bool,
}

/// One bridge.
#[derive(Debug, Clone)]
struct Bridge {
    /// ARI id.
    id: String,
    /// Name given on create.
    name: String,
    /// `mixing` or `holding`.
    bridge_type: &'static str,
    /// Creation time.
    creationtime: String,
    /// Members, sorted (as Asterisk lists them).
    channels: BTreeSet<String>,
    /// Music on hold playing to the bridge.
    moh: bool,
    /// The app subscribes to it: a channel of the app entered it, or the
    /// app asked for `bridge:<id>`. Only then is BridgeDestroyed sent (the
    /// capture's never-used bridge-3 got none).
    subscribed: bool,
}

/// An endpoint the emulator knows.
#[derive(Debug, Clone)]
struct Endpoint {
    /// How it answers.
    behaviour: EndpointBehaviour,
}

/// A connected WebSocket.
#[derive(Debug)]
pub struct Link {
    /// Connection number.
    pub id: u64,
    /// Queue of text frames for the connection's writer task; dropping it
    /// closes the connection.
    pub tx: UnboundedSender<String>,
}

/// A fault the REST side injects into matching requests (tests): the
/// request is not carried out, or carried out late ([`FaultKind::Late`]).
#[derive(Clone, Debug)]
pub struct RestFault {
    /// HTTP method (`POST`, `DELETE` …).
    pub method: String,
    /// The path after `/ari/`, exactly (`channels` is an originate).
    pub path: String,
    /// How many matching requests get it.
    pub times: u32,
    /// What they get.
    pub kind: FaultKind,
}

/// What an injected fault does.
#[derive(Clone, Debug)]
pub enum FaultKind {
    /// Answer this status with an error message.
    Status(u16),
    /// Hold the request this long (past the client's timeout), then 504.
    Hang(std::time::Duration),
    /// Asterisk busy: the request is carried out this long after it came
    /// in, then answered, whether or not the client still waits (a real
    /// Asterisk carries out what it received even if the client died).
    Late(std::time::Duration),
}

/// Everything the emulated Asterisk knows.
pub struct Core {
    /// The Stasis app name.
    pub app: String,
    /// Channels by id.
    channels: BTreeMap<String, Chan>,
    /// Bridges by id.
    bridges: BTreeMap<String, Bridge>,
    /// Endpoints by `TECH/resource`.
    endpoints: BTreeMap<String, Endpoint>,
    /// Endpoint subscriptions of the app.
    endpoint_subs: BTreeSet<String>,
    /// The app's current WebSocket.
    pub link: Option<Link>,
    /// Replaced connections: kept open, sent nothing.
    pub detached: Vec<Link>,
    /// Accept WebSocket upgrades.
    pub accept_links: bool,
    /// Send every event except StasisStart twice.
    pub duplicate_events: bool,
    /// Faults injected into matching REST requests (tests).
    pub faults: Vec<RestFault>,
    /// Playback length, ms.
    pub playback_ms: u64,
    /// Next link number.
    pub next_link_id: u64,
    /// Local pair sequence (names).
    local_seq: u32,
    /// PJSIP channel sequence (names).
    pjsip_seq: u32,
    /// Announcer sequence (noise names).
    announcer_seq: u32,
    /// Serial / unique-id sequence.
    serial: u64,
    /// Start-up time, ARI format.
    pub startup: String,
    /// Every REST request seen.
    pub requests: VecDeque<RequestLog>,
    /// Every event sent on a link (after duplication), as sent.
    pub sent: VecDeque<String>,
    /// Events dropped because no link was connected.
    pub dropped_events: u64,
    /// Timers to spawn once the lock is released.
    pub timers: Vec<(Duration, Timer)>,
    /// Live playbacks and every play (see `playbacks`).
    pub playbacks: playbacks::Playbacks,
    /// A graceful shutdown under way (`core stop|restart gracefully`): no
    /// new channel; Asterisk goes once the last channel has gone.
    shutdown: Option<Shutdown>,
    /// What ended channels and who asked, since start (the status API of
    /// `edgecc pbx-emulator`).
    pub tally: tally::Tally,
}

/// A graceful shutdown waiting for the channels to end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shutdown {
    /// `core restart gracefully` (true) or `core stop gracefully`.
    restart: bool,
}

/// The `cause` of the soft hang-up request every channel gets when
/// Asterisk shuts down with calls up: `AST_SOFTHANGUP_SHUTDOWN`
/// (`ast_softhangup_all()`, main/channel.c).
pub const SOFTHANGUP_SHUTDOWN: u16 = 4;

impl Core {
    /// A fresh Asterisk with the captures' dialplan endpoints.
    pub fn new(app: &str) -> Core {
        let mut endpoints = BTreeMap::new();
        let mut add = |k: &str, b: EndpointBehaviour| {
            endpoints.insert(k.to_owned(), Endpoint { behaviour: b });
        };
        use EndpointBehaviour as B;
        add("Local/1001@agents", B::AnswerAfter { ring_ms: 1_000 });
        add("Local/1002@agents", B::AnswerAfter { ring_ms: 3_000 });
        add("Local/1003@agents", B::RingForever);
        add("Local/1004@agents", B::Busy);
        add("Local/1005@agents", B::Reject);
        add("Local/1006@agents", B::Congestion);
        add(
            "Local/1007@agents",
            B::AnswerThenHangup {
                ring_ms: 1_000,
                talk_ms: 5_000,
            },
        );
        for r in ["2001", "2002", "2003"] {
            add(&format!("PJSIP/{r}"), B::Manual);
        }
        Core {
            app: app.to_owned(),
            channels: BTreeMap::new(),
            bridges: BTreeMap::new(),
            endpoints,
            endpoint_subs: BTreeSet::new(),
            link: None,
            detached: Vec::new(),
            accept_links: true,
            duplicate_events: false,
            faults: Vec::new(),
            playback_ms: PLAYBACK_MS_DEFAULT,
            next_link_id: 1,
            local_seq: 0,
            pjsip_seq: 0,
            announcer_seq: 0,
            serial: 0,
            startup: wire::now(),
            requests: VecDeque::new(),
            sent: VecDeque::new(),
            dropped_events: 0,
            timers: Vec::new(),
            playbacks: playbacks::Playbacks::default(),
            shutdown: None,
            tally: tally::Tally::default(),
        }
    }

    /// Whether new channels are refused: a graceful shutdown is under way
    /// (main/channel.c refuses every allocation while `ast_shutting_down()`).
    pub fn shutting_down(&self) -> bool {
        self.shutdown.is_some()
    }

    /// `core stop now` / `core restart now` (`can_safely_quit` with
    /// `SHUTDOWN_NORMAL` in main/asterisk.c): `ast_softhangup_all()` gives
    /// every channel a soft hang-up request with cause
    /// [`SOFTHANGUP_SHUTDOWN`]; each channel then leaves its bridge and the
    /// application and is destroyed (cause 16 here: an assumption, no
    /// capture has it); once they are gone the process ends, so the
    /// WebSocket closes. Stopped (`restart` false), Asterisk stays down
    /// (WebSocket upgrades refused) until [`Self::start_again`]; restarted,
    /// it answers at once with a new start-up time.
    pub fn shutdown_now(&mut self, restart: bool) {
        let ids: Vec<String> = self.channels.keys().cloned().collect();
        for id in &ids {
            if self.exists(id) {
                self.hangup_request(id, SOFTHANGUP_SHUTDOWN, true);
            }
        }
        for id in &ids {
            if self.exists(id) {
                self.leave_bridge(id);
                self.leave_stasis(id);
                self.destroy(id, 16);
            }
        }
        self.process_ends(restart);
    }

    /// `core stop gracefully` / `core restart gracefully` (`SHUTDOWN_NICE`):
    /// no new channel from now on (originate 500 "Allocation failed", no
    /// inbound call), calls up go on; once the last channel is gone the
    /// process ends as in [`Self::shutdown_now`] (nothing left to hang up).
    pub fn shutdown_gracefully(&mut self, restart: bool) {
        self.shutdown = Some(Shutdown { restart });
        self.settle_shutdown();
    }

    /// After any change: a graceful shutdown whose channels are all gone
    /// ends the process.
    pub fn settle_shutdown(&mut self) {
        if let Some(s) = self.shutdown {
            if self.channels.is_empty() {
                self.process_ends(s.restart);
            }
        }
    }

    /// The Asterisk process ends: links close, what is left goes without
    /// an event, subscriptions are forgotten; restarted, a new start-up
    /// time, else down until [`Self::start_again`].
    fn process_ends(&mut self, restart: bool) {
        self.shutdown = None;
        self.restart_pbx();
        if !restart {
            self.accept_links = false;
        }
    }

    /// A stopped Asterisk is started again (WebSocket upgrades accepted).
    pub fn start_again(&mut self) {
        self.accept_links = true;
    }

    // ----- links ---------------------------------------------------------

    /// A new WebSocket for the app: the previous one gets
    /// ApplicationReplaced and nothing more.
    /// The fault for a `method` request to `/ari/{path}`, if one is
    /// injected (each fault serves its `times` requests, oldest first).
    pub fn take_fault(&mut self, method: &str, path: &str) -> Option<FaultKind> {
        let i = self
            .faults
            .iter()
            .position(|f| f.method == method && f.path == path)?;
        let kind = self.faults[i].kind.clone();
        self.faults[i].times = self.faults[i].times.saturating_sub(1);
        if self.faults[i].times == 0 {
            self.faults.remove(i);
        }
        Some(kind)
    }

    pub fn attach(&mut self, tx: UnboundedSender<String>) -> u64 {
        let id = self.next_link_id;
        self.next_link_id += 1;
        if let Some(old) = self.link.take() {
            let ev = wire::event("ApplicationReplaced", &self.app, Map::new());
            let _ = old.tx.send(ev.to_string());
            self.detached.push(old);
        }
        self.link = Some(Link { id, tx });
        id
    }

    /// A connection ended (the client closed it or it failed).
    pub fn detach(&mut self, id: u64) {
        if self.link.as_ref().is_some_and(|l| l.id == id) {
            self.link = None;
        }
        self.detached.retain(|l| l.id != id);
    }

    /// Closes every connection (their queues are dropped).
    pub fn drop_links(&mut self) {
        self.link = None;
        self.detached.clear();
    }

    /// Asterisk restarts (or dies and is started again): every connection
    /// closes, every channel and bridge is gone without a single event (the
    /// process that would have sent them is gone), the app's subscriptions
    /// are forgotten, and `GET /asterisk/info` answers a new start-up time.
    /// Endpoints keep their behaviour (phones register again).
    pub fn restart_pbx(&mut self) {
        self.drop_links();
        self.channels.clear();
        self.bridges.clear();
        self.endpoint_subs.clear();
        let now = crate::clock::now_ms();
        let mut startup = wire::ari_time(now);
        if startup == self.startup {
            startup = wire::ari_time(now + 1);
        }
        self.startup = startup;
    }

    /// Sends a raw text frame to the current link.
    pub fn send_raw(&mut self, text: &str) {
        if let Some(l) = &self.link {
            let _ = l.tx.send(text.to_owned());
        }
    }

    fn send(&mut self, ev: Value, copies: usize) {
        if copies == 0 {
            return;
        }
        let Some(link) = &self.link else {
            self.dropped_events += 1;
            return;
        };
        let text = ev.to_string();
        for _ in 0..copies {
            let _ = link.tx.send(text.clone());
            if self.sent.len() >= EVENTS_LOG_MAX {
                self.sent.pop_front();
            }
            self.sent.push_back(text.clone());
        }
    }

    fn copies_for(&self, c: &Chan, kind: &str) -> usize {
        let app_src = usize::from(c.in_stasis || c.subscribed);
        let ep_src = usize::from(
            c.endpoint
                .as_ref()
                .is_some_and(|e| self.endpoint_subs.contains(e)),
        );
        let mut n = app_src + ep_src;
        if ONCE_TYPES.contains(&kind) {
            n = n.min(1);
        }
        self.dup(n, kind)
    }

    fn dup(&self, n: usize, kind: &str) -> usize {
        if self.duplicate_events && n > 0 && kind != "StasisStart" {
            n.max(2)
        } else {
            n
        }
    }

    /// Emits an event about channel `id` (under `key`, `channel` or `peer`).
    fn emit_chan_as(&mut self, kind: &str, id: &str, key: &str, mut fields: Map<String, Value>) {
        let Some(c) = self.channels.get(id) else {
            return;
        };
        let copies = self.copies_for(c, kind);
        if copies == 0 {
            return;
        }
        fields.insert(key.into(), chan_json(c));
        let ev = wire::event(kind, &self.app, fields);
        self.send(ev, copies);
    }

    fn emit_chan(&mut self, kind: &str, id: &str, fields: Map<String, Value>) {
        self.emit_chan_as(kind, id, "channel", fields);
    }

    fn emit_global(&mut self, kind: &str, fields: Map<String, Value>) {
        let copies = self.dup(1, kind);
        let ev = wire::event(kind, &self.app, fields);
        self.send(ev, copies);
    }

    fn state_change(&mut self, id: &str, state: &'static str) {
        if let Some(c) = self.channels.get_mut(id) {
            if c.state == state {
                return;
            }
            c.state = state;
        }
        self.emit_chan("ChannelStateChange", id, Map::new());
    }

    fn varset(&mut self, id: &str, variable: &str, value: &str) {
        let f = fields(&[("variable", json!(variable)), ("value", json!(value))]);
        self.emit_chan("ChannelVarset", id, f);
    }

    fn dialplan_app(&mut self, id: &str, app: &str, data: &str) {
        if let Some(c) = self.channels.get_mut(id) {
            c.dialplan.app_name = app.to_owned();
            c.dialplan.app_data = data.to_owned();
        }
        let f = fields(&[
            ("dialplan_app", json!(app)),
            ("dialplan_app_data", json!(data)),
        ]);
        self.emit_chan("ChannelDialplan", id, f);
    }

    fn hangup_request(&mut self, id: &str, cause: u16, soft: bool) {
        let mut f = fields(&[("cause", json!(cause))]);
        if soft {
            f.insert("soft".into(), json!(true));
        }
        self.emit_chan("ChannelHangupRequest", id, f);
    }

    fn dial_event(&mut self, id: &str, status: &str, dialstring: &str) {
        let f = fields(&[
            ("dialstatus", json!(status)),
            ("forward", json!("")),
            ("dialstring", json!(dialstring)),
        ]);
        self.emit_chan_as("Dial", id, "peer", f);
    }

    fn endpoint_event(&mut self, key: &str, kind: &str, extra: &[(&str, Value)]) {
        if !self.endpoint_subs.contains(key) {
            return;
        }
        let mut f = fields(extra);
        f.insert("endpoint".into(), self.endpoint_json(key));
        // Endpoint events keep the key order of the capture: endpoint first.
        let mut ordered = Map::new();
        ordered.insert(
            "endpoint".into(),
            f.remove("endpoint").unwrap_or(Value::Null),
        );
        ordered.extend(f);
        self.emit_global(kind, ordered);
    }

    // ----- ids and names -------------------------------------------------

    fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    /// An Asterisk-style unique id (`<epoch secs>.<n>`).
    fn unique_id(&mut self) -> String {
        let n = self.next_serial();
        format!("{}.{}", crate::clock::now_ms() / 1000, n)
    }

    fn exists(&self, id: &str) -> bool {
        self.channels.contains_key(id)
    }

    /// Whether Asterisk refuses `id` for a new channel: it is, ignoring
    /// case, a prefix of (or equal to) a live channel's id. Asterisk 22
    /// looks an assigned id up with a partial-key match of the id's own
    /// length (`do_ids_conflict` in main/channel.c, `by_uniqueid_cb` in
    /// main/channelstorage_ao2_legacy.c: `strncasecmp(existing, new,
    /// strlen(new))`), so `x` is refused while `x~spy` lives; the converse
    /// is allowed (`x~spy` while `x` lives).
    fn id_in_use(&self, id: &str) -> bool {
        let new = id.to_ascii_lowercase();
        self.channels
            .keys()
            .any(|live| live.to_ascii_lowercase().starts_with(&new))
    }

    #[allow(clippy::too_many_arguments)]
    fn new_chan(
        &mut self,
        id: String,
        name: String,
        tech: Tech,
        state: &'static str,
        caller: Party,
        connected: Party,
        dialplan: Dialplan,
    ) -> Chan {
        let serial = self.next_serial();
        Chan {
            id,
            serial,
            name,
            tech,
            state,
            protocol_id: String::new(),
            caller,
            connected,
            dialplan,
            dialplan_before_stasis: None,
            creationtime: wire::now(),
            in_stasis: false,
            stasis_args: Vec::new(),
            subscribed: false,
            endpoint: None,
            other: None,
            app_side: false,
            bridge: None,
            held: false,
            mute: None,
            moh: false,
            ringing_indicated: false,
            vars: BTreeMap::new(),
            dial: None,
            snoop_of: None,
            snoop_dirs: (String::new(), String::new()),
            caller_id_given: false,
        }
    }

    fn enter_stasis(&mut self, id: &str, args: Vec<String>) {
        let app = self.app.clone();
        if let Some(c) = self.channels.get_mut(id) {
            let mut data = vec![app];
            data.extend(args.iter().cloned());
            c.dialplan_before_stasis = Some(c.dialplan.clone());
            c.dialplan.app_name = "Stasis".into();
            c.dialplan.app_data = data.join(",");
            c.in_stasis = true;
            c.stasis_args = args.clone();
        }
        let f = fields(&[("args", json!(args))]);
        self.emit_chan("StasisStart", id, f);
    }

    /// Leaves Stasis: StasisEnd, then STASISSTATUS for subscribed channels.
    fn leave_stasis(&mut self, id: &str) {
        let in_stasis = self.channels.get(id).is_some_and(|c| c.in_stasis);
        if !in_stasis {
            return;
        }
        self.emit_chan("StasisEnd", id, Map::new());
        if let Some(c) = self.channels.get_mut(id) {
            c.in_stasis = false;
        }
        self.varset(id, "STASISSTATUS", "SUCCESS");
        if let Some(c) = self.channels.get_mut(id) {
            if let Some(d) = c.dialplan_before_stasis.take() {
                c.dialplan = d;
            }
        }
    }

    /// ChannelDestroyed (for subscribed channels) and removal.
    fn destroy(&mut self, id: &str, cause: u16) {
        if !self.exists(id) {
            return;
        }
        self.tally.destroyed(cause);
        if let Some(c) = self.channels.get_mut(id) {
            c.in_stasis = false;
        }
        let f = fields(&[
            ("cause", json!(cause)),
            ("cause_txt", json!(cause_txt(cause))),
        ]);
        self.emit_chan("ChannelDestroyed", id, f);
        let endpoint = self.channels.get(id).and_then(|c| c.endpoint.clone());
        if let Some(b) = self.channels.get(id).and_then(|c| c.bridge.clone()) {
            if let Some(br) = self.bridges.get_mut(&b) {
                br.channels.remove(id);
            }
        }
        self.channels.remove(id);
        if let Some(e) = endpoint {
            self.endpoint_event(&e, "EndpointStateChange", &[]);
        }
        // Snoop channels on this one go too.
        let snoops: Vec<String> = self
            .channels
            .values()
            .filter(|c| c.snoop_of.as_deref() == Some(id))
            .map(|c| c.id.clone())
            .collect();
        for s in snoops {
            self.hangup_request(&s, 16, false);
            self.leave_bridge(&s);
            self.leave_stasis(&s);
            self.destroy(&s, 16);
        }
    }

    // ----- endpoints -----------------------------------------------------

    /// Sets (or adds) an endpoint's behaviour; PJSIP endpoints go online or
    /// offline with it.
    pub fn set_endpoint(&mut self, key: &str, b: EndpointBehaviour) {
        let key = normalize_endpoint(key);
        let was_online = self
            .endpoints
            .get(&key)
            .map(|e| e.behaviour != EndpointBehaviour::Unreachable);
        let online = b != EndpointBehaviour::Unreachable;
        self.endpoints
            .insert(key.clone(), Endpoint { behaviour: b });
        if key.starts_with("PJSIP/") && was_online != Some(online) {
            let resource = key.trim_start_matches("PJSIP/").to_owned();
            let (peer, contact) = if online {
                ("Reachable", "NonQualified")
            } else {
                ("Unreachable", "Removed")
            };
            self.endpoint_event(&key, "EndpointStateChange", &[]);
            self.endpoint_event(
                &key,
                "PeerStatusChange",
                &[("peer", json!({"peer_status": peer}))],
            );
            let info = json!({
                "uri": format!("sip:{resource}@127.0.0.1:5071;transport=udp"),
                "contact_status": contact,
                "aor": resource,
                "roundtrip_usec": "0",
            });
            self.endpoint_event(&key, "ContactStatusChange", &[("contact_info", info)]);
        }
    }

    fn endpoint_json(&self, key: &str) -> Value {
        let (tech, resource) = key.split_once('/').unwrap_or((key, ""));
        let online = self
            .endpoints
            .get(key)
            .is_some_and(|e| e.behaviour != EndpointBehaviour::Unreachable);
        let ids: Vec<&String> = self
            .channels
            .values()
            .filter(|c| c.endpoint.as_deref() == Some(key))
            .map(|c| &c.id)
            .collect();
        json!({
            "technology": tech,
            "resource": resource,
            "state": if online { "online" } else { "offline" },
            "channel_ids": ids,
        })
    }

    /// `GET /endpoints`: the PJSIP endpoints.
    pub fn endpoints_json(&self) -> Value {
        Value::Array(
            self.endpoints
                .keys()
                .filter(|k| k.starts_with("PJSIP/"))
                .map(|k| self.endpoint_json(k))
                .collect(),
        )
    }

    /// `GET /endpoints/{tech}/{resource}`.
    pub fn endpoint_get(&self, tech: &str, resource: &str) -> Result<Value, HttpError> {
        let key = format!("{tech}/{resource}");
        if tech == "PJSIP" && self.endpoints.contains_key(&key) {
            Ok(self.endpoint_json(&key))
        } else {
            Err((404, message("Endpoint not found")))
        }
    }

    // ----- applications --------------------------------------------------

    /// The application object.
    pub fn app_json(&self) -> Value {
        let ids: Vec<&String> = self
            .channels
            .values()
            .filter(|c| c.in_stasis || c.subscribed)
            .map(|c| &c.id)
            .collect();
        let bridges: Vec<&String> = self
            .bridges
            .values()
            .filter(|b| b.subscribed)
            .map(|b| &b.id)
            .collect();
        json!({
            "name": self.app,
            "channel_ids": ids,
            "bridge_ids": bridges,
            "endpoint_ids": self.endpoint_subs,
            "device_names": [],
            "events_allowed": [],
            "events_disallowed": [],
        })
    }

    /// `POST`/`DELETE /applications/{app}/subscription`.
    pub fn subscription(&mut self, sources: &str, add: bool) -> Result<Value, HttpError> {
        if sources.is_empty() {
            return Err((400, message("Missing parameter eventSource")));
        }
        for src in sources.split(',') {
            let (scheme, rest) = src.split_once(':').unwrap_or((src, ""));
            match scheme {
                "channel" => match self.channels.get_mut(rest) {
                    Some(c) => c.subscribed = add,
                    None => return Err((422, message("Event source does not exist"))),
                },
                "bridge" => match self.bridges.get_mut(rest) {
                    Some(b) => b.subscribed = add,
                    None => return Err((422, message("Event source does not exist"))),
                },
                "endpoint" => {
                    let key = normalize_endpoint(rest);
                    if !self.endpoints.contains_key(&key) {
                        return Err((422, message("Event source does not exist")));
                    }
                    if add {
                        self.endpoint_subs.insert(key);
                    } else {
                        self.endpoint_subs.remove(&key);
                    }
                }
                "deviceState" => {}
                _ => return Err((400, message("Invalid event source URI scheme"))),
            }
        }
        Ok(self.app_json())
    }

    // ----- channels: lookups ---------------------------------------------

    /// `GET /channels`.
    pub fn channels_json(&self) -> Value {
        Value::Array(self.channels.values().map(chan_json).collect())
    }

    /// `GET /channels/{id}`.
    pub fn channel_get(&self, id: &str) -> Result<Value, HttpError> {
        self.channels
            .get(id)
            .map(chan_json)
            .ok_or_else(chan_not_found)
    }

    fn in_stasis_or_err(&self, id: &str) -> Result<(), HttpError> {
        match self.channels.get(id) {
            None => Err(chan_not_found()),
            Some(c) if !c.in_stasis => Err((409, message("Channel not in Stasis application"))),
            Some(_) => Ok(()),
        }
    }

    /// Resolves an endpoint string for originate/create.
    fn resolve(&self, endpoint: &str) -> Result<Target, HttpError> {
        let alloc = || (500, json!({"error": "Allocation failed"}));
        let (tech, rest) = endpoint.split_once('/').ok_or_else(alloc)?;
        match tech.to_ascii_lowercase().as_str() {
            "local" => {
                let base = rest.split('/').next().unwrap_or(rest);
                let (exten, context) = base.split_once('@').ok_or_else(alloc)?;
                if context == "inbound" {
                    return Ok(Target::Inbound {
                        exten: exten.to_owned(),
                    });
                }
                let key = format!("Local/{base}");
                let ep = self.endpoints.get(&key).ok_or_else(alloc)?;
                if ep.behaviour == EndpointBehaviour::Unreachable {
                    return Err(alloc());
                }
                Ok(Target::Agent {
                    key,
                    tech: Tech::Local,
                    dialstring: rest.to_owned(),
                    exten: exten.to_owned(),
                    context: context.to_owned(),
                    behaviour: ep.behaviour.clone(),
                })
            }
            "pjsip" => {
                let key = format!("PJSIP/{rest}");
                let ep = self.endpoints.get(&key).ok_or_else(alloc)?;
                if ep.behaviour == EndpointBehaviour::Unreachable {
                    return Err(alloc());
                }
                Ok(Target::Agent {
                    key,
                    tech: Tech::Pjsip,
                    dialstring: rest.to_owned(),
                    exten: "s".into(),
                    context: "from-agents".into(),
                    behaviour: ep.behaviour.clone(),
                })
            }
            _ => Err(alloc()),
        }
    }

    // ----- inbound calls -------------------------------------------------

    /// An inbound call: a `Local/<dnis>@inbound` pair whose `;2` half enters
    /// `Stasis(app, inbound[, dnis], extra…)`. Without a link the call fails
    /// at once and both halves are gone. Returns (`;1` object, `;2` id).
    pub fn inbound(
        &mut self,
        caller: Party,
        dnis: &str,
        extra: &[String],
        id1: Option<String>,
        id2: Option<String>,
    ) -> Result<(Value, String), (Value, EmulatorError)> {
        self.local_seq += 1;
        let base = format!("Local/{dnis}@inbound-{:08x}", self.local_seq);
        let id1 = id1.unwrap_or_else(|| self.unique_id());
        let id2 = id2.unwrap_or_else(|| self.unique_id());
        let mut args = vec!["inbound".to_owned()];
        if dnis != "s" {
            args.push(dnis.to_owned());
        }
        args.extend(extra.iter().cloned());
        let mut half1 = self.new_chan(
            id1.clone(),
            format!("{base};1"),
            Tech::Local,
            "Down",
            caller.clone(),
            caller.clone(),
            Dialplan::new("inbound", dnis, 1, "AppDial2", "(Outgoing Line)"),
        );
        half1.other = Some(id2.clone());
        let json1 = chan_json(&half1);
        half1.dialplan = Dialplan::new("caller", "s", 2, "Wait", "3600");
        half1.state = "Up";
        let mut half2 = self.new_chan(
            id2.clone(),
            format!("{base};2"),
            Tech::Local,
            "Ring",
            caller.clone(),
            caller,
            Dialplan::new("inbound", dnis, 2, "", ""),
        );
        half2.other = Some(id1.clone());
        half2.app_side = true;
        if self.shutting_down() {
            debug!(dnis, "Shutting down: inbound call refused.");
            return Err((json1, EmulatorError::ShuttingDown));
        }
        if self.link.is_none() {
            debug!(dnis, "Stasis app not active: inbound call fails.");
            return Err((json1, EmulatorError::NoLink));
        }
        self.channels.insert(id1, half1);
        self.channels.insert(id2.clone(), half2);
        self.enter_stasis(&id2, args);
        Ok((json1, id2))
    }

    /// A SIP phone places a call: it enters `Stasis(app, agent-outbound, exten)`.
    pub fn phone_dials(&mut self, endpoint: &str, exten: &str) -> Result<String, EmulatorError> {
        let key = normalize_endpoint(endpoint);
        match self.endpoints.get(&key) {
            Some(e)
                if key.starts_with("PJSIP/") && e.behaviour != EndpointBehaviour::Unreachable => {}
            _ => return Err(EmulatorError::EndpointNotFound(endpoint.to_owned())),
        }
        if self.link.is_none() {
            return Err(EmulatorError::NoLink);
        }
        let resource = key.trim_start_matches("PJSIP/").to_owned();
        self.pjsip_seq += 1;
        let id = self.unique_id();
        let mut c = self.new_chan(
            id.clone(),
            format!("PJSIP/{resource}-{:08x}", self.pjsip_seq - 1),
            Tech::Pjsip,
            "Ring",
            Party::new("", &resource),
            Party::default(),
            Dialplan::new("from-agents", exten, 2, "", ""),
        );
        c.protocol_id = pseudo_call_id(c.serial);
        c.endpoint = Some(key.clone());
        c.app_side = true;
        self.channels.insert(id.clone(), c);
        self.endpoint_event(&key, "EndpointStateChange", &[]);
        self.emit_chan("ChannelCreated", &id, Map::new());
        self.enter_stasis(&id, vec!["agent-outbound".into(), exten.to_owned()]);
        Ok(id)
    }

    // ----- originate / create / dial -------------------------------------

    /// `POST /channels` (`create == false`) and `POST /channels/create`.
    pub fn originate(
        &mut self,
        p: &HashMap<String, String>,
        create: bool,
        id_from_path: Option<&str>,
    ) -> Result<Value, HttpError> {
        let endpoint = p.get("endpoint").map(String::as_str).unwrap_or("");
        if endpoint.is_empty() {
            return Err((400, message("Endpoint parameter not provided")));
        }
        let app = p.get("app").filter(|s| !s.is_empty()).cloned();
        let has_exten = p.get("extension").is_some_and(|s| !s.is_empty());
        if create && app.is_none() {
            return Err((400, message("Application must be specified")));
        }
        if app.is_none() && !has_exten {
            return Err((400, message("Application or extension must be specified")));
        }
        if let Some(a) = &app {
            if a != &self.app {
                // Another app: nobody is connected for it.
                return Err((400, message("Application not found or not active")));
            }
        }
        let id1 = id_from_path
            .map(str::to_owned)
            .or_else(|| p.get("channelId").filter(|s| !s.is_empty()).cloned());
        let id2 = p.get("otherChannelId").filter(|s| !s.is_empty()).cloned();
        for id in id1.iter().chain(id2.iter()) {
            if self.id_in_use(id) {
                return Err((409, message("Channel with given unique ID already exists")));
            }
        }
        if self.shutting_down() {
            return Err((500, json!({"error": "Allocation failed"})));
        }
        let caller_id = p.get("callerId").map(|s| wire::parse_caller_id(s));
        let target = self.resolve(endpoint)?;
        match target {
            Target::Inbound { exten } => {
                let caller = caller_id.unwrap_or_default();
                let id2 = id2.or_else(|| id1.as_ref().map(|i| format!("{i};2")));
                match self.inbound(caller, &exten, &[], id1, id2) {
                    Ok((json1, _)) => Ok(json1),
                    // The originate itself succeeds; the Stasis() half fails
                    // at once and the pair is hung up.
                    Err((json1, _)) => Ok(json1),
                }
            }
            Target::Agent {
                key,
                tech,
                dialstring,
                exten,
                context,
                behaviour,
            } => {
                let args: Vec<String> = p
                    .get("appArgs")
                    .filter(|s| !s.is_empty())
                    .map(|s| s.split(',').map(str::to_owned).collect())
                    .unwrap_or_default();
                let caller = caller_id.clone().unwrap_or_default();
                let id1 = id1.unwrap_or_else(|| self.unique_id());
                let (app_name, app_data) = if create {
                    ("", "")
                } else {
                    ("AppDial2", "(Outgoing Line)")
                };
                let (name, other) = match tech {
                    Tech::Local => {
                        self.local_seq += 1;
                        let base = dialstring.split('/').next().unwrap_or(&dialstring);
                        let n = format!("Local/{base}-{:08x}", self.local_seq);
                        let id2 = id2.unwrap_or_else(|| format!("{id1};2"));
                        (format!("{n};1"), Some((id2, format!("{n};2"))))
                    }
                    _ => {
                        self.pjsip_seq += 1;
                        (format!("{key}-{:08x}", self.pjsip_seq - 1), None)
                    }
                };
                let mut c = self.new_chan(
                    id1.clone(),
                    name,
                    tech,
                    "Down",
                    caller.clone(),
                    caller.clone(),
                    Dialplan::new(&context, &exten, 1, app_name, app_data),
                );
                c.app_side = true;
                c.caller_id_given = caller_id.is_some();
                c.dial = Some(DialState {
                    behaviour,
                    dialstring: dialstring.clone(),
                    mode: if create {
                        DialMode::Created
                    } else {
                        DialMode::Originate
                    },
                    into_app: app.is_some(),
                    answered: false,
                    started: false,
                });
                if tech == Tech::Pjsip {
                    c.protocol_id = pseudo_call_id(c.serial);
                    c.endpoint = Some(key.clone());
                }
                if let Some((id2, name2)) = &other {
                    c.other = Some(id2.clone());
                    let mut h2 = self.new_chan(
                        id2.clone(),
                        name2.clone(),
                        Tech::Local,
                        "Ring",
                        caller.clone(),
                        caller.clone(),
                        Dialplan::new(&context, &exten, 1, "", ""),
                    );
                    h2.other = Some(id1.clone());
                    // The app subscribes to both halves of what it originated
                    // (not to the far half of a created channel).
                    h2.subscribed = !create && app.is_some();
                    self.channels.insert(id2.clone(), h2);
                }
                for (k, v) in p {
                    if let Some(name) = k.strip_prefix(wire::VARIABLE_PREFIX) {
                        c.vars.insert(name.to_owned(), v.clone());
                    }
                }
                let json1 = chan_json(&c);
                self.channels.insert(id1.clone(), c);
                if create {
                    if let Some(c) = self.channels.get_mut(&id1) {
                        c.subscribed = true;
                    }
                    let mut data = vec![self.app.clone()];
                    data.extend(args.iter().cloned());
                    self.dialplan_app(&id1, "Stasis", &data.join(","));
                    self.varset(&id1, "STASISSTATUS", "");
                    self.enter_stasis(&id1, args);
                } else {
                    if let Some(c) = self.channels.get_mut(&id1) {
                        c.stasis_args = args;
                    }
                    let timeout = p
                        .get("timeout")
                        .and_then(|t| t.parse::<i64>().ok())
                        .unwrap_or(ORIGINATE_TIMEOUT_SECS_DEFAULT);
                    self.begin_dial(&id1, app.is_some(), timeout);
                }
                Ok(json1)
            }
        }
    }

    /// `POST /channels/{id}/dial`.
    pub fn dial(&mut self, id: &str, p: &HashMap<String, String>) -> Result<(), HttpError> {
        self.in_stasis_or_err(id)?;
        let c = self.channels.get(id).ok_or_else(chan_not_found)?;
        match &c.dial {
            Some(d) if d.mode == DialMode::Created && !d.started => {}
            _ => return Err((409, message("Channel is not in a dialable state"))),
        }
        let timeout = p
            .get("timeout")
            .and_then(|t| t.parse::<i64>().ok())
            .unwrap_or(0);
        self.begin_dial(id, false, if timeout > 0 { timeout } else { -1 });
        Ok(())
    }

    /// Starts the far end of a dial: Dial `""`, then as the endpoint behaves.
    fn begin_dial(&mut self, id: &str, into_app: bool, timeout_secs: i64) {
        let Some(c) = self.channels.get_mut(id) else {
            return;
        };
        let Some(d) = c.dial.as_mut() else {
            return;
        };
        d.started = true;
        d.into_app = into_app || d.mode == DialMode::Created;
        let d = d.clone();
        let (serial, tech, other, caller_id_given) =
            (c.serial, c.tech, c.other.clone(), c.caller_id_given);
        if d.mode == DialMode::Originate {
            if tech == Tech::Pjsip {
                // Seen through an endpoint subscription only (the app is not
                // subscribed to the channel yet).
                if let Some(e) = c.endpoint.clone() {
                    self.endpoint_event(&e, "EndpointStateChange", &[]);
                }
                self.emit_chan("ChannelCreated", id, Map::new());
                self.dialplan_app(id, "AppDial2", "(Outgoing Line)");
                self.emit_chan("ChannelCallerId", id, caller_presentation());
                self.emit_chan("ChannelConnectedLine", id, Map::new());
            }
            if let Some(c) = self.channels.get_mut(id) {
                c.subscribed = into_app;
            }
            if let (Some(o), true) = (&other, caller_id_given) {
                self.emit_chan("ChannelCallerId", o, caller_presentation());
                self.emit_chan("ChannelConnectedLine", o, Map::new());
            }
        }
        self.dial_event(id, "", &d.dialstring);
        match d.behaviour {
            EndpointBehaviour::Busy => self.fail_dial(id, FailKind::Busy),
            EndpointBehaviour::Congestion => self.fail_dial(id, FailKind::Congestion),
            EndpointBehaviour::Reject => self.fail_dial(id, FailKind::Rejected(21)),
            EndpointBehaviour::Unreachable => self.fail_dial(id, FailKind::Congestion),
            EndpointBehaviour::AnswerAfter { ring_ms }
            | EndpointBehaviour::AnswerThenHangup { ring_ms, .. } => {
                self.start_ringing(id, ring_ms);
                self.timers.push((
                    Duration::from_millis(ring_ms),
                    Timer::Answer {
                        id: id.to_owned(),
                        serial,
                    },
                ));
            }
            EndpointBehaviour::RingForever => self.start_ringing(id, 86_400_000),
            EndpointBehaviour::Manual => self.start_ringing(id, 60_000),
        }
        if timeout_secs > 0 && self.channels.get(id).is_some_and(|c| c.serial == serial) {
            self.timers.push((
                Duration::from_secs(timeout_secs as u64),
                Timer::Timeout {
                    id: id.to_owned(),
                    serial,
                },
            ));
        }
    }

    fn later_dialstring(&self, id: &str) -> String {
        match self.channels.get(id).and_then(|c| c.dial.as_ref()) {
            Some(d) if d.mode == DialMode::Originate => d.dialstring.clone(),
            _ => String::new(),
        }
    }

    fn start_ringing(&mut self, id: &str, ring_ms: u64) {
        let Some(c) = self.channels.get(id) else {
            return;
        };
        let (tech, other) = (c.tech, c.other.clone());
        let ds = self.later_dialstring(id);
        match (tech, other) {
            (Tech::Local, Some(o)) => {
                self.dialplan_app(&o, "Ringing", "");
                self.state_change(id, "Ringing");
                self.dial_event(id, "RINGING", &ds);
                let secs = (ring_ms / 1000).max(1).to_string();
                self.dialplan_app(&o, "Wait", &secs);
            }
            _ => {
                self.dial_event(id, "RINGING", &ds);
                self.state_change(id, "Ringing");
            }
        }
    }

    /// The far end of a ringing dial answers.
    pub fn answer_dial(&mut self, id: &str) -> Result<(), EmulatorError> {
        let resolved = self.app_side_of(id);
        let id = resolved.as_deref().unwrap_or(id);
        let c = self
            .channels
            .get(id)
            .ok_or_else(|| EmulatorError::ChannelNotFound(id.to_owned()))?;
        let d = match &c.dial {
            Some(d) if d.started && !d.answered => d.clone(),
            _ => return Err(EmulatorError::NotRinging(id.to_owned())),
        };
        let (serial, other) = (c.serial, c.other.clone());
        if let Some(c) = self.channels.get_mut(id) {
            if let Some(dd) = c.dial.as_mut() {
                dd.answered = true;
            }
        }
        if let Some(o) = &other {
            self.dialplan_app(o, "Answer", "");
            self.state_change(o, "Up");
        }
        self.state_change(id, "Up");
        let ds = self.later_dialstring(id);
        self.dial_event(id, "ANSWER", &ds);
        if d.mode == DialMode::Originate && d.into_app && self.link.is_none() {
            // Stasis() with no WebSocket for the app fails at once
            // (STASISSTATUS=FAILED) and the answered channel is hung up.
            debug!(
                channel = id,
                "Stasis app not active: answered originate fails."
            );
            self.varset(id, "STASISSTATUS", "FAILED");
            self.destroy(id, 16);
            if let Some(o) = &other {
                self.destroy(o, 16);
            }
            return Ok(());
        }
        if d.mode == DialMode::Originate && d.into_app {
            let args = self
                .channels
                .get(id)
                .map(|c| c.stasis_args.clone())
                .unwrap_or_default();
            let mut data = vec![self.app.clone()];
            data.extend(args.iter().cloned());
            if let Some(c) = self.channels.get_mut(id) {
                c.dialplan.app_name = "Stasis".into();
                c.dialplan.app_data = data.join(",");
            }
            self.varset(id, "STASISSTATUS", "");
            self.enter_stasis(id, args);
            if let Some(c) = self.channels.get_mut(id) {
                // Restore AppDial2 at StasisEnd, as the captures show.
                c.dialplan_before_stasis = Some(Dialplan::new(
                    &c.dialplan.context,
                    &c.dialplan.exten,
                    1,
                    "AppDial2",
                    "(Outgoing Line)",
                ));
            }
        }
        if let Some(o) = &other {
            if matches!(d.behaviour, EndpointBehaviour::AnswerAfter { .. }) {
                self.dialplan_app(o, "Echo", "");
            }
        }
        if let EndpointBehaviour::AnswerThenHangup { talk_ms, .. } = d.behaviour {
            self.timers.push((
                Duration::from_millis(talk_ms),
                Timer::FarHangup {
                    id: id.to_owned(),
                    serial,
                    cause: 16,
                },
            ));
        }
        Ok(())
    }

    /// A dial that fails before answer.
    fn fail_dial(&mut self, id: &str, kind: FailKind) {
        let Some(c) = self.channels.get(id) else {
            return;
        };
        let (tech, other) = (c.tech, c.other.clone());
        let mode = c
            .dial
            .as_ref()
            .map(|d| d.mode)
            .unwrap_or(DialMode::Originate);
        let ds = self.later_dialstring(id);
        if let Some(c) = self.channels.get_mut(id) {
            if let Some(d) = c.dial.as_mut() {
                d.answered = true; // no longer ringing
            }
        }
        if mode == DialMode::Created {
            // The created channel stays in Stasis (state Down) until deleted.
            let status = kind.dialstatus();
            if let Some(o) = &other {
                if matches!(kind, FailKind::Busy | FailKind::Congestion) {
                    if let Some(h) = self.channels.get_mut(o) {
                        h.state = "Busy";
                    }
                } else {
                    self.channels.remove(o);
                    if let Some(c) = self.channels.get_mut(id) {
                        c.other = None;
                    }
                }
            }
            if let Some(c) = self.channels.get_mut(id) {
                c.state = "Down";
            }
            if let Some(st) = status {
                self.dial_event(id, st, "");
            }
            return;
        }
        match (tech, other) {
            (Tech::Local, Some(o)) => match kind {
                FailKind::Busy => {
                    self.dialplan_app(&o, "Busy", "5");
                    self.state_change(&o, "Busy");
                    self.dial_event(id, "BUSY", &ds);
                    self.hangup_request(&o, 0, false);
                    self.destroy(id, 0);
                    self.hangup_request(&o, 16, true);
                    self.destroy(&o, 17);
                }
                FailKind::Congestion => {
                    self.dialplan_app(&o, "Congestion", "5");
                    self.dial_event(id, "CONGESTION", &ds);
                    self.hangup_request(&o, 0, false);
                    self.destroy(id, 0);
                    self.state_change(&o, "Busy");
                    self.hangup_request(&o, 16, true);
                    self.destroy(&o, 34);
                }
                FailKind::Rejected(cause) => {
                    self.dialplan_app(&o, "Hangup", &cause.to_string());
                    self.hangup_request(&o, 16, true);
                    self.hangup_request(id, cause, false);
                    self.dial_event(id, dialstatus_for_cause(cause), &ds);
                    self.destroy(id, cause);
                    self.destroy(&o, cause);
                }
                FailKind::Timeout => {
                    self.hangup_request(&o, 19, false);
                    self.destroy(id, 19);
                    self.hangup_request(&o, 16, true);
                    self.destroy(&o, 19);
                }
                FailKind::Cancelled => {
                    self.hangup_request(id, 32, true);
                    self.dial_event(id, "NOANSWER", &ds);
                    self.hangup_request(&o, 16, false);
                    self.hangup_request(&o, 16, true);
                    self.destroy(id, 16);
                    self.destroy(&o, 16);
                }
            },
            _ => {
                let (status, cause) = match kind {
                    FailKind::Busy => (Some("BUSY"), 17),
                    FailKind::Congestion => (Some("CONGESTION"), 34),
                    FailKind::Rejected(c) => (Some(dialstatus_for_cause(c)), c),
                    FailKind::Timeout => (None, 19),
                    FailKind::Cancelled => (Some("NOANSWER"), 16),
                };
                if kind == FailKind::Cancelled {
                    self.hangup_request(id, 32, true);
                } else {
                    self.hangup_request(id, cause, false);
                }
                if let Some(st) = status {
                    self.dial_event(id, st, &ds);
                }
                self.destroy(id, cause);
            }
        }
    }

    // ----- hang-ups ------------------------------------------------------

    /// Leaves the bridge (BRIDGEPEER cleared, ChannelLeftBridge).
    fn leave_bridge(&mut self, id: &str) {
        let Some(b) = self.channels.get(id).and_then(|c| c.bridge.clone()) else {
            return;
        };
        self.varset(id, "BRIDGEPEER", "");
        let bridge_json = match self.bridges.get_mut(&b) {
            Some(br) => {
                br.channels.remove(id);
                Some(bridge_json(br))
            }
            None => None,
        };
        if let Some(bj) = bridge_json {
            self.emit_chan("ChannelLeftBridge", id, fields(&[("bridge", bj)]));
        }
        if let Some(c) = self.channels.get_mut(id) {
            c.bridge = None;
        }
    }

    /// HangupRequest, bridge leave and StasisEnd of one channel.
    fn end_leg(&mut self, id: &str, cause: u16, soft: bool) {
        self.hangup_request(id, cause, soft);
        self.leave_bridge(id);
        self.leave_stasis(id);
    }

    /// `DELETE /channels/{id}`.
    pub fn hangup_app(&mut self, id: &str) -> Result<(), HttpError> {
        let c = self.channels.get(id).ok_or_else(chan_not_found)?;
        self.tally.app_hangups += 1;
        if let Some(d) = &c.dial {
            if d.started && !d.answered && d.mode == DialMode::Originate {
                self.fail_dial(id, FailKind::Cancelled);
                return Ok(());
            }
            if d.started && !d.answered && d.mode == DialMode::Created {
                let ds = self.later_dialstring(id);
                if let Some(c) = self.channels.get_mut(id) {
                    if let Some(d) = c.dial.as_mut() {
                        d.answered = true;
                    }
                }
                self.hangup_request(id, 32, true);
                self.dial_event(id, "NOANSWER", &ds);
                self.leave_stasis(id);
                let other = self.channels.get(id).and_then(|c| c.other.clone());
                self.destroy(id, 16);
                if let Some(o) = other {
                    self.channels.remove(&o);
                }
                return Ok(());
            }
        }
        let other = c.other.clone().filter(|o| self.exists(o));
        self.end_leg(id, 32, true);
        match other {
            Some(o) if self.channels.get(&o).is_some_and(|h| h.in_stasis) => {
                // The caller half of an inbound call: the Stasis half sees a
                // far-end hang-up.
                self.end_leg(&o, 16, false);
                self.destroy(id, 16);
                self.destroy(&o, 16);
            }
            Some(o) => {
                self.hangup_request(&o, 16, false);
                self.destroy(id, 16);
                self.hangup_request(&o, 16, true);
                self.destroy(&o, 16);
            }
            None => self.destroy(id, 16),
        }
        Ok(())
    }

    /// The app side of the pair `id` belongs to.
    fn app_side_of(&self, id: &str) -> Option<String> {
        let c = self.channels.get(id)?;
        if c.app_side {
            return Some(c.id.clone());
        }
        match &c.other {
            Some(o) if self.channels.get(o).is_some_and(|h| h.app_side) => Some(o.clone()),
            _ => Some(c.id.clone()),
        }
    }

    /// A far-end hang-up (the caller, or an agent's phone) with `cause`;
    /// while ringing, a rejection.
    pub fn far_end_hangup(&mut self, id: &str, cause: u16) -> Result<(), EmulatorError> {
        let id = self
            .app_side_of(id)
            .ok_or_else(|| EmulatorError::ChannelNotFound(id.to_owned()))?;
        let c = self
            .channels
            .get(&id)
            .ok_or_else(|| EmulatorError::ChannelNotFound(id.clone()))?;
        if let Some(d) = &c.dial {
            if d.started && !d.answered {
                let kind = match cause {
                    17 => FailKind::Busy,
                    34 | 38 | 42 => FailKind::Congestion,
                    c => FailKind::Rejected(c),
                };
                self.fail_dial(&id, kind);
                return Ok(());
            }
        }
        let other = c.other.clone();
        self.end_leg(&id, cause, false);
        self.destroy(&id, cause);
        if let Some(o) = other {
            self.destroy(&o, cause);
        }
        Ok(())
    }

    // ----- channel actions -----------------------------------------------

    /// `POST /channels/{id}/answer`.
    pub fn answer(&mut self, id: &str) -> Result<(), HttpError> {
        self.in_stasis_or_err(id)?;
        self.state_change(id, "Up");
        let other = self.channels.get(id).and_then(|c| c.other.clone());
        if let Some(o) = other {
            self.state_change(&o, "Up");
        }
        Ok(())
    }

    /// Channel flags without events: ring, hold, moh, mute.
    pub fn flag(
        &mut self,
        id: &str,
        what: &str,
        on: bool,
        p: &HashMap<String, String>,
    ) -> Result<(), HttpError> {
        self.in_stasis_or_err(id)?;
        let Some(c) = self.channels.get_mut(id) else {
            return Err(chan_not_found());
        };
        match what {
            "ring" => c.ringing_indicated = on,
            "hold" => c.held = on,
            "moh" => c.moh = on,
            "mute" => {
                let dir = p.get("direction").cloned().unwrap_or_else(|| "both".into());
                if !["in", "out", "both"].contains(&dir.as_str()) {
                    return Err((400, message("Invalid direction specified")));
                }
                c.mute = if on { Some(dir) } else { None };
            }
            _ => {}
        }
        Ok(())
    }

    /// `POST /channels/{id}/continue`: StasisEnd, the channel goes on in the dialplan.
    pub fn continue_in_dialplan(
        &mut self,
        id: &str,
        p: &HashMap<String, String>,
    ) -> Result<(), HttpError> {
        self.in_stasis_or_err(id)?;
        self.tally.app_continues += 1;
        self.leave_bridge(id);
        self.leave_stasis(id);
        if let Some(c) = self.channels.get_mut(id) {
            if let Some(ctx) = p.get("context") {
                c.dialplan.context = ctx.clone();
            }
            if let Some(e) = p.get("extension") {
                c.dialplan.exten = e.clone();
            }
            c.dialplan.priority = p.get("priority").and_then(|x| x.parse().ok()).unwrap_or(1);
            c.dialplan.app_name = String::new();
            c.dialplan.app_data = String::new();
        }
        Ok(())
    }

    /// `POST /channels/{id}/redirect`: the channel is transferred away and
    /// leaves (StasisEnd, then gone).
    pub fn redirect(&mut self, id: &str, p: &HashMap<String, String>) -> Result<(), HttpError> {
        if p.get("endpoint").is_none_or(|e| e.is_empty()) {
            return Err((400, message("Required parameter endpoint not present")));
        }
        self.in_stasis_or_err(id)?;
        self.tally.app_redirects += 1;
        self.end_leg(id, 16, false);
        let other = self.channels.get(id).and_then(|c| c.other.clone());
        self.destroy(id, 16);
        if let Some(o) = other {
            self.destroy(&o, 16);
        }
        Ok(())
    }

    /// `GET /channels/{id}/variable`.
    pub fn variable_get(&self, id: &str, p: &HashMap<String, String>) -> Result<Value, HttpError> {
        let c = self.channels.get(id).ok_or_else(chan_not_found)?;
        let var = p.get("variable").cloned().unwrap_or_default();
        if var.is_empty() {
            return Err((400, message("Variable name is required")));
        }
        if var == "CHANNEL(name)" {
            return Ok(json!({"value": c.name}));
        }
        if var.contains('(') {
            return Err((500, message("Unable to read provided function")));
        }
        match c.vars.get(&var) {
            Some(v) => Ok(json!({ "value": v })),
            None => Err((404, message("Provided variable was not found"))),
        }
    }

    /// `POST /channels/{id}/variable`.
    pub fn variable_set(&mut self, id: &str, p: &HashMap<String, String>) -> Result<(), HttpError> {
        if !self.exists(id) {
            return Err(chan_not_found());
        }
        let var = p.get("variable").cloned().unwrap_or_default();
        if var.is_empty() {
            return Err((400, message("Variable name is required")));
        }
        let value = p.get("value").cloned().unwrap_or_default();
        if let Some(c) = self.channels.get_mut(id) {
            c.vars.insert(var.clone(), value.clone());
        }
        self.varset(id, &var, &value);
        Ok(())
    }

    /// `POST /channels/{id}/snoop[/{snoopId}]`: a Snoop channel that enters Stasis.
    pub fn snoop(
        &mut self,
        id: &str,
        p: &HashMap<String, String>,
        snoop_id: Option<&str>,
    ) -> Result<Value, HttpError> {
        if !self.exists(id) {
            return Err(chan_not_found());
        }
        let app = p.get("app").cloned().unwrap_or_default();
        if app.is_empty() {
            return Err((400, message("Application name is required")));
        }
        if app != self.app {
            return Err((400, message("Application not found or not active")));
        }
        let spy = p.get("spy").cloned().unwrap_or_else(|| "none".into());
        let whisper = p.get("whisper").cloned().unwrap_or_else(|| "none".into());
        let ok = |d: &str| ["none", "in", "out", "both"].contains(&d);
        if !ok(&spy) || !ok(&whisper) {
            return Err((400, message("Invalid direction specified")));
        }
        if spy == "none" && whisper == "none" {
            return Err((400, message("Snoop must spy and/or whisper")));
        }
        let sid = snoop_id
            .map(str::to_owned)
            .or_else(|| p.get("snoopId").filter(|s| !s.is_empty()).cloned())
            .unwrap_or_else(|| self.unique_id());
        if self.id_in_use(&sid) || self.shutting_down() {
            // The snoop channel's allocation fails; ARI says no more than
            // this (res/ari/resource_channels.c).
            return Err((500, message("Snoop channel could not be created")));
        }
        self.announcer_seq += 1;
        let target_name = self
            .channels
            .get(id)
            .map(|c| c.name.clone())
            .unwrap_or_default();
        let mut c = self.new_chan(
            sid.clone(),
            format!("Snoop/{target_name}-{:08x}", self.announcer_seq),
            Tech::Snoop,
            "Up",
            Party::default(),
            Party::default(),
            Dialplan::new("default", "s", 1, "", ""),
        );
        c.subscribed = true;
        c.app_side = true;
        c.snoop_of = Some(id.to_owned());
        c.snoop_dirs = (spy, whisper);
        let json0 = chan_json(&c);
        self.channels.insert(sid.clone(), c);
        let args: Vec<String> = p
            .get("appArgs")
            .filter(|s| !s.is_empty())
            .map(|s| s.split(',').map(str::to_owned).collect())
            .unwrap_or_default();
        self.enter_stasis(&sid, args);
        Ok(json0)
    }

    /// `POST /channels/{id}/play` and `POST /bridges/{id}/play`.
    pub fn play(
        &mut self,
        target: PlayTarget,
        id: &str,
        p: &HashMap<String, String>,
        pb_id: Option<&str>,
    ) -> Result<Value, HttpError> {
        match target {
            PlayTarget::Channel => self.in_stasis_or_err(id)?,
            PlayTarget::Bridge => {
                if !self.bridges.contains_key(id) {
                    return Err(bridge_not_found());
                }
            }
        }
        let media = p.get("media").cloned().unwrap_or_default();
        if media.is_empty() {
            return Err((400, message("Required parameter media not present")));
        }
        let pid = pb_id
            .map(str::to_owned)
            .or_else(|| p.get("playbackId").filter(|s| !s.is_empty()).cloned())
            .unwrap_or_else(|| self.unique_id());
        let target_uri = match target {
            PlayTarget::Channel => format!("channel:{id}"),
            PlayTarget::Bridge => format!("bridge:{id}"),
        };
        let lang = p.get("lang").cloned().unwrap_or_else(|| "en".into());
        // Several media (Asterisk 14+) are one comma-separated list played
        // in order as one playback; the object names the first and the next.
        let list: Vec<&str> = media.split(',').filter(|m| !m.is_empty()).collect();
        let first = list.first().copied().unwrap_or_default();
        let mk = |state: &str| {
            let mut o = json!({"id": pid, "media_uri": first, "target_uri": target_uri, "language": lang, "state": state});
            if let Some(next) = list.get(1) {
                o["next_media_uri"] = json!(next);
            }
            o
        };
        if target == PlayTarget::Bridge {
            self.announcer_seq += 1;
            let ann = format!("Announcer/ARI-{:08x};2", self.announcer_seq);
            self.bridge_peer_noise(id, Some(&ann));
        }
        self.emit_global("PlaybackStarted", fields(&[("playback", mk("playing"))]));
        self.playbacks
            .started(&pid, mk("playing"), &target_uri, &list);
        let channel = match target {
            PlayTarget::Channel => self.channels.get(id).map(|c| (c.id.clone(), c.serial)),
            PlayTarget::Bridge => None,
        };
        self.timers.push((
            Duration::from_millis(self.playback_ms),
            Timer::PlaybackDone {
                playback: mk("done"),
                channel,
            },
        ));
        Ok(mk("queued"))
    }

    // ----- bridges -------------------------------------------------------

    /// `GET /bridges`.
    pub fn bridges_json(&self) -> Value {
        Value::Array(self.bridges.values().map(bridge_json).collect())
    }

    /// `GET /bridges/{id}`.
    pub fn bridge_get(&self, id: &str) -> Result<Value, HttpError> {
        self.bridges
            .get(id)
            .map(bridge_json)
            .ok_or_else(bridge_not_found)
    }

    /// `POST /bridges` (or `/bridges/{id}`): no BridgeCreated event.
    pub fn bridge_create(
        &mut self,
        p: &HashMap<String, String>,
        id_from_path: Option<&str>,
    ) -> Result<Value, HttpError> {
        let id = id_from_path
            .map(str::to_owned)
            .or_else(|| p.get("bridgeId").filter(|s| !s.is_empty()).cloned())
            .unwrap_or_else(|| self.unique_id());
        if self.bridges.contains_key(&id) {
            return Err((
                409,
                message(&format!("Bridge with id '{id}' already exists")),
            ));
        }
        let ty = p.get("type").cloned().unwrap_or_else(|| "mixing".into());
        let bridge_type = if ty.split(',').any(|t| t == "holding") {
            "holding"
        } else {
            "mixing"
        };
        let b = Bridge {
            id: id.clone(),
            name: p.get("name").cloned().unwrap_or_default(),
            bridge_type,
            creationtime: wire::now(),
            channels: BTreeSet::new(),
            moh: false,
            subscribed: false,
        };
        let j = bridge_json(&b);
        self.bridges.insert(id, b);
        Ok(j)
    }

    /// `DELETE /bridges/{id}`: members leave (and stay in Stasis), then BridgeDestroyed.
    pub fn bridge_destroy(&mut self, id: &str) -> Result<(), HttpError> {
        let members: Vec<String> = self
            .bridges
            .get(id)
            .ok_or_else(bridge_not_found)?
            .channels
            .iter()
            .cloned()
            .collect();
        for m in members {
            self.leave_bridge(&m);
        }
        if let Some(b) = self.bridges.remove(id) {
            if b.subscribed {
                self.emit_global("BridgeDestroyed", fields(&[("bridge", bridge_json(&b))]));
            }
        }
        Ok(())
    }

    /// `POST /bridges/{id}/addChannel`.
    pub fn bridge_add(&mut self, id: &str, p: &HashMap<String, String>) -> Result<(), HttpError> {
        let ids = self.bridge_channels(id, p, |ch| {
            (!ch.in_stasis).then(|| (422, message("Channel not in Stasis application")))
        })?;
        for c in ids.iter().map(String::as_str) {
            let current = self.channels.get(c).and_then(|ch| ch.bridge.clone());
            if current.as_deref() == Some(id) {
                continue;
            }
            if current.is_some() {
                self.leave_bridge(c);
            }
            let bj = match self.bridges.get_mut(id) {
                Some(b) => {
                    b.channels.insert(c.to_owned());
                    b.subscribed = true;
                    bridge_json(b)
                }
                None => continue,
            };
            if let Some(ch) = self.channels.get_mut(c) {
                ch.bridge = Some(id.to_owned());
            }
            self.emit_chan("ChannelEnteredBridge", c, fields(&[("bridge", bj)]));
            if self.bridges.get(id).is_some_and(|b| b.channels.len() >= 2) {
                self.bridge_peer_noise(id, None);
                let members: Vec<String> = self
                    .bridges
                    .get(id)
                    .map(|b| b.channels.iter().cloned().collect())
                    .unwrap_or_default();
                for m in members {
                    self.emit_chan("ChannelConnectedLine", &m, Map::new());
                }
            }
        }
        Ok(())
    }

    /// BRIDGEPEER noise on every member: the names of the others (and an
    /// announcer, while one plays).
    fn bridge_peer_noise(&mut self, bridge: &str, announcer: Option<&str>) {
        let members: Vec<String> = self
            .bridges
            .get(bridge)
            .map(|b| b.channels.iter().cloned().collect())
            .unwrap_or_default();
        for m in &members {
            let mut peers: Vec<String> = announcer.iter().map(|s| s.to_string()).collect();
            peers.extend(
                members
                    .iter()
                    .filter(|o| *o != m)
                    .filter_map(|o| self.channels.get(o).map(|c| c.name.clone())),
            );
            if !peers.is_empty() {
                self.varset(m, "BRIDGEPEER", &peers.join(","));
            }
        }
    }

    /// `POST /bridges/{id}/removeChannel`.
    pub fn bridge_remove(
        &mut self,
        id: &str,
        p: &HashMap<String, String>,
    ) -> Result<(), HttpError> {
        let ids = self.bridge_channels(id, p, |ch| {
            (ch.bridge.as_deref() != Some(id)).then(|| (422, message("Channel not in this bridge")))
        })?;
        for c in &ids {
            self.leave_bridge(c);
        }
        Ok(())
    }

    /// The `channel` list of an add/remove on bridge `id`, checked as
    /// Asterisk does before changing anything: the bridge exists, the list
    /// is given, every channel exists and passes `refuse` (an error or not).
    fn bridge_channels(
        &self,
        id: &str,
        p: &HashMap<String, String>,
        refuse: impl Fn(&Chan) -> Option<HttpError>,
    ) -> Result<Vec<String>, HttpError> {
        if !self.bridges.contains_key(id) {
            return Err(bridge_not_found());
        }
        let list = p.get("channel").map(String::as_str).unwrap_or_default();
        if list.is_empty() {
            return Err((400, message("Required parameter channel not present")));
        }
        let ids: Vec<String> = list.split(',').map(str::to_owned).collect();
        for c in &ids {
            match self.channels.get(c) {
                None => return Err((400, message("Channel not found"))),
                Some(ch) => {
                    if let Some(e) = refuse(ch) {
                        return Err(e);
                    }
                }
            }
        }
        Ok(ids)
    }

    /// `POST`/`DELETE /bridges/{id}/moh`.
    pub fn bridge_moh(&mut self, id: &str, on: bool) -> Result<(), HttpError> {
        let b = self.bridges.get_mut(id).ok_or_else(bridge_not_found)?;
        let was = b.moh;
        b.moh = on;
        if on && !was {
            self.announcer_seq += 1;
            let ann = format!("Announcer/ARI_MOH-{:08x};2", self.announcer_seq);
            let members: Vec<String> = self
                .bridges
                .get(id)
                .map(|b| b.channels.iter().cloned().collect())
                .unwrap_or_default();
            for m in &members {
                self.varset(m, "BRIDGEPEER", &ann);
                self.emit_chan("ChannelConnectedLine", m, Map::new());
            }
        }
        Ok(())
    }

    // ----- timers --------------------------------------------------------

    /// Runs a timer that came due.
    pub fn fire(&mut self, t: Timer) {
        let alive = |core: &Core, id: &str, serial: u64| {
            core.channels.get(id).is_some_and(|c| c.serial == serial)
        };
        match t {
            Timer::Answer { id, serial } => {
                if alive(self, &id, serial) {
                    let _ = self.answer_dial(&id);
                }
            }
            Timer::Timeout { id, serial } => {
                let ringing = self
                    .channels
                    .get(&id)
                    .filter(|c| c.serial == serial)
                    .and_then(|c| c.dial.as_ref())
                    .is_some_and(|d| d.started && !d.answered);
                if ringing {
                    let created = self
                        .channels
                        .get(&id)
                        .and_then(|c| c.dial.as_ref())
                        .is_some_and(|d| d.mode == DialMode::Created);
                    if created {
                        self.fail_dial(&id, FailKind::Rejected(19));
                    } else {
                        self.fail_dial(&id, FailKind::Timeout);
                    }
                }
            }
            Timer::FarHangup { id, serial, cause } => {
                if alive(self, &id, serial) {
                    let _ = self.far_end_hangup(&id, cause);
                }
            }
            Timer::PlaybackDone { playback, channel } => {
                let id = playback["id"].as_str().unwrap_or_default().to_owned();
                if !self.playbacks.ended(&id) {
                    return; // stopped by DELETE /playbacks/{id}
                }
                if let Some((id, serial)) = &channel {
                    if !alive(self, id, *serial) {
                        return;
                    }
                }
                self.emit_global("PlaybackFinished", fields(&[("playback", playback)]));
            }
        }
    }

    // ----- views ---------------------------------------------------------

    /// Channel views for tests.
    pub fn channel_views(&self) -> Vec<ChannelView> {
        self.channels
            .values()
            .map(|c| ChannelView {
                id: c.id.clone(),
                name: c.name.clone(),
                state: c.state.to_owned(),
                bridge_id: c.bridge.clone(),
                in_stasis: c.in_stasis,
                held: c.held,
                muted: c.mute.is_some(),
                moh: c.moh,
                caller_number: c.caller.number.clone(),
                endpoint: c.endpoint.clone(),
                other_half: c.other.clone(),
                snoop_of: c.snoop_of.clone(),
                snoop_spy: c.snoop_dirs.0.clone(),
                snoop_whisper: c.snoop_dirs.1.clone(),
                context: c.dialplan.context.clone(),
                exten: c.dialplan.exten.clone(),
            })
            .collect()
    }

    /// Bridge views for tests.
    pub fn bridge_views(&self) -> Vec<BridgeView> {
        self.bridges
            .values()
            .map(|b| BridgeView {
                id: b.id.clone(),
                name: b.name.clone(),
                bridge_type: b.bridge_type.to_owned(),
                channels: b.channels.iter().cloned().collect(),
                moh: b.moh,
            })
            .collect()
    }

    /// Records a REST request.
    pub fn log_request(&mut self, method: &str, path: &str, status: u16, at: Instant) {
        if self.requests.len() >= REQUESTS_MAX {
            self.requests.pop_front();
        }
        self.requests.push_back(RequestLog {
            method: method.to_owned(),
            path: path.to_owned(),
            status,
            at,
        });
    }
}

/// What a dial failed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailKind {
    /// `Busy()`.
    Busy,
    /// `Congestion()`.
    Congestion,
    /// Hung up before answer with this cause (21: rejected).
    Rejected(u16),
    /// The originate timeout expired.
    Timeout,
    /// The app deleted the ringing channel.
    Cancelled,
}

impl FailKind {
    fn dialstatus(self) -> Option<&'static str> {
        match self {
            FailKind::Busy => Some("BUSY"),
            FailKind::Congestion => Some("CONGESTION"),
            FailKind::Rejected(c) => Some(dialstatus_for_cause(c)),
            FailKind::Timeout | FailKind::Cancelled => Some("NOANSWER"),
        }
    }
}

/// What a play request targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayTarget {
    /// A channel.
    Channel,
    /// A bridge.
    Bridge,
}

/// A resolved originate endpoint.
enum Target {
    /// `Local/<exten>@inbound`: a simulated inbound call.
    Inbound {
        /// The dialled number.
        exten: String,
    },
    /// An agent endpoint with a behaviour.
    Agent {
        /// Behaviour key (`Local/1001@agents`, `PJSIP/2001`).
        key: String,
        /// Technology.
        tech: Tech,
        /// Dial string as Dial events show it.
        dialstring: String,
        /// Dialplan extension of the channel.
        exten: String,
        /// Dialplan context of the channel.
        context: String,
        /// How it answers.
        behaviour: EndpointBehaviour,
    },
}

/// `Local/1001@agents/n` → `Local/1001@agents`; `pjsip/2001` → `PJSIP/2001`.
pub fn normalize_endpoint(e: &str) -> String {
    let (tech, rest) = e.split_once('/').unwrap_or((e, ""));
    match tech.to_ascii_lowercase().as_str() {
        "local" => format!("Local/{}", rest.split('/').next().unwrap_or(rest)),
        "pjsip" => format!("PJSIP/{rest}"),
        _ => e.to_owned(),
    }
}

fn dialstatus_for_cause(cause: u16) -> &'static str {
    match cause {
        17 => "BUSY",
        34 | 38 | 42 => "CONGESTION",
        _ => "NOANSWER",
    }
}

fn fields(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn caller_presentation() -> Map<String, Value> {
    fields(&[
        ("caller_presentation", json!(0)),
        (
            "caller_presentation_txt",
            json!("Presentation Allowed, Not Screened"),
        ),
    ])
}

fn pseudo_call_id(serial: u64) -> String {
    format!(
        "{:08x}-e9c0-4d5a-a7f1-{:012x}",
        serial.wrapping_mul(2_654_435_761) as u32,
        serial
    )
}

fn chan_not_found() -> HttpError {
    (404, message("Channel not found"))
}

fn bridge_not_found() -> HttpError {
    (404, message("Bridge not found"))
}

fn chan_json(c: &Chan) -> Value {
    json!({
        "id": c.id,
        "name": c.name,
        "state": c.state,
        "protocol_id": c.protocol_id,
        "caller": c.caller.to_json(),
        "connected": c.connected.to_json(),
        "accountcode": "",
        "dialplan": c.dialplan.to_json(),
        "creationtime": c.creationtime,
        "language": "en",
    })
}

fn bridge_json(b: &Bridge) -> Value {
    let technology = if b.bridge_type == "holding" {
        "holding_bridge"
    } else {
        "simple_bridge"
    };
    json!({
        "id": b.id,
        "technology": technology,
        "bridge_type": b.bridge_type,
        "bridge_class": "stasis",
        "creator": "Stasis",
        "name": b.name,
        "channels": b.channels,
        "creationtime": b.creationtime,
        "video_mode": "talker",
    })
}
