//! An Asterisk ARI emulator for tests: HTTP and one WebSocket on 127.0.0.1
//! that answer as the real Asterisk 22.10.1 did in the captures of issue 6
//! (`tests/fixtures/ari/`): the same JSON shapes, status codes, empty 204
//! bodies, event order, Local channels with their `;2` halves, Dial events
//! with their `dialstatus` progression, the failure table, the hang-up
//! shapes, duplicated events through endpoint subscriptions, and the link
//! behaviour (no replay, calls in Stasis survive a disconnect, a call that
//! reaches `Stasis()` with no WebSocket fails at once), and Asterisk's
//! restarts and shutdowns (`core stop|restart now|gracefully`, from
//! main/asterisk.c and main/channel.c: no capture has them).
//!
//! A product module as well as the tests' Asterisk: it is the simulated
//! PBX that lives outside the daemon's process, as a real PBX does: `edgecc
//! pbx-emulator` runs it as a process of its own, and `edgecc demo
//! --restart-at` spawns that process and kills and restarts the daemon in
//! front of it.
//!
//! # Layout
//!
//! - [`AriEmulator`] — start it, drive the far ends (callers, phones),
//!   break the link, and look at its state.
//! - `model` — the emulated Asterisk in one struct behind one mutex;
//!   every transition and the events it emits.
//! - `auth` — the credentials check and the answers both surfaces share.
//! - `rest` — the `/ari/...` REST surface.
//! - `ws` — the `/ari/events` WebSocket and its writer task.
//! - `wire` — timestamps, JSON objects, parsers.
//! - [`serve`] — `edgecc pbx-emulator`: the emulator as a process of its
//!   own, with agent phones and callers, for a daemon to talk ARI to.
//! - [`control`] — that process's control and status API (its channels,
//!   bridges and hang-up counts; callers dialling in and hanging up; link
//!   cuts), for the demo and tests outside it.
//!
//! # The emulated dialplan
//!
//! As in REAL-ARI.md: `Local/<dnis>@inbound` calls enter
//! `Stasis(app, inbound[, dnis])`; `Local/1001..1007@agents` behave as its
//! table (1001 answers after 1 s, 1002 after 3 s, 1003 rings forever, 1004
//! busy, 1005 rejects, 1006 congestion, 1007 answers then hangs up after
//! 5 s); `PJSIP/2001..2003` are registered and answer only when a test says
//! ([`AriEmulator::answer`]). Any other endpoint is `500 Allocation failed`.
//! [`AriEmulator::set_endpoint`] changes or adds endpoints (and their
//! times, so tests stay short).
//!
//! Other endpoints (an external number behind a trunk, say
//! `PJSIP/5551234@trunk` or `Local/5551234@outbound`) exist once a test
//! sets a behaviour for them.
//!
//! # Use from a test
//!
//! ```ignore
//! let emu = AriEmulator::start(AriEmulatorConfig::default())?;
//! emu.set_endpoint("Local/1001@agents", EndpointBehaviour::AnswerAfter { ring_ms: 20 });
//! // connect the adapter to emu.base_url() / emu.ws_url() (user edgecc,
//! // password edgecc-secret), then:
//! let call = emu.inbound_call("5551234", "Alice", "8000", &["vip"])?;
//! assert!(emu.wait_until(Duration::from_secs(5), |s| {
//!     s.channel(&call).is_some_and(|c| c.bridge_id.is_some())
//! }));
//! emu.drop_links(); // a network blip: calls in Stasis stay up
//! emu.caller_hangup(&call)?;
//! ```
//!
//! Everything the emulator does happens in real time on its own thread, so
//! a test may run the code under test with a paused tokio clock.
//!
//! # Known differences from Asterisk
//!
//! - JSON keys are written in alphabetical order (Asterisk's order varies
//!   too; clients must not rely on it).
//! - No media: playbacks last [`AriEmulator::set_playback_ms`] (a list of
//!   several media URIs too), and are recorded ([`AriEmulator::played`]);
//!   DTMF sent to a channel is accepted and not reported, a caller's DTMF
//!   is what a test says ([`AriEmulator::caller_dtmf`]).
//! - Only the configured app exists; a WebSocket for another app is
//!   refused with 400.
//! - Results not in the captures (409 on a reused channel or bridge id, 422
//!   for a channel not in Stasis when bridged) follow Asterisk's sources as
//!   documented, not a capture.
//! - A new channel id (originate `channelId`/`otherChannelId`, create,
//!   snoop) is refused when it is, ignoring case, a prefix of a live
//!   channel's id, as Asterisk 22 does (issue 16: `x~spy` then `x` was
//!   refused 409 by a real Asterisk 22.10.1; the rule is its partial-key
//!   id lookup). An originate answers 409 "Channel with given unique ID
//!   already exists", a snoop 500 "Snoop channel could not be created".

mod auth;
pub mod control;
mod model;
mod rest;
pub mod serve;
pub mod wire;
mod ws;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

pub use model::tally::Tally;
use model::Core;
pub use model::{
    normalize_endpoint, FaultKind, PlayedView, RestFault, EVENTS_LOG_MAX,
    ORIGINATE_TIMEOUT_SECS_DEFAULT, PLAYBACK_MS_DEFAULT, PLAYED_MAX, REQUESTS_MAX,
};

/// How often [`AriEmulator::wait_until`] looks at the state.
const WAIT_POLL: Duration = Duration::from_millis(5);

/// Start-up options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AriEmulatorConfig {
    /// The Stasis application (`edgecc`).
    pub app: String,
    /// ARI user.
    pub user: String,
    /// ARI password.
    pub password: String,
}

impl Default for AriEmulatorConfig {
    fn default() -> Self {
        AriEmulatorConfig {
            app: "edgecc".into(),
            user: "edgecc".into(),
            password: "edgecc-secret".into(),
        }
    }
}

/// How an endpoint's far end behaves when dialled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointBehaviour {
    /// Rings for `ring_ms`, then answers (1001, 1002).
    AnswerAfter {
        /// Ringing time, ms.
        ring_ms: u64,
    },
    /// Rings until the originate timeout or a hang-up (1003).
    RingForever,
    /// `Busy()`: dialstatus BUSY (1004).
    Busy,
    /// `Hangup(21)` before answer: dialstatus NOANSWER, cause 21 (1005).
    Reject,
    /// `Congestion()`: dialstatus CONGESTION (1006).
    Congestion,
    /// Answers after `ring_ms`, hangs up (cause 16) `talk_ms` later (1007).
    AnswerThenHangup {
        /// Ringing time, ms.
        ring_ms: u64,
        /// Talk time before the far end hangs up, ms.
        talk_ms: u64,
    },
    /// Not registered / not allocatable: originate answers 500.
    Unreachable,
    /// Rings until the test calls [`AriEmulator::answer`] or
    /// [`AriEmulator::far_end_hangup`] (SIP phones).
    Manual,
}

/// Why a test-side action failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmulatorError {
    /// No WebSocket is connected for the app: `Stasis()` fails at once.
    #[error("Stasis app not active (no WebSocket connected)")]
    NoLink,
    /// No such channel.
    #[error("channel not found: {0}")]
    ChannelNotFound(String),
    /// The channel is not a ringing outgoing dial.
    #[error("channel is not ringing: {0}")]
    NotRinging(String),
    /// No such (registered) endpoint.
    #[error("endpoint not found or not registered: {0}")]
    EndpointNotFound(String),
    /// Asterisk is shutting down: no new channel.
    #[error("Asterisk is shutting down: channel allocation refused")]
    ShuttingDown,
}

/// A channel as tests see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelView {
    /// ARI id.
    pub id: String,
    /// Channel name.
    pub name: String,
    /// `Down`, `Ring`, `Ringing`, `Up`, `Busy`.
    pub state: String,
    /// Bridge it is in.
    pub bridge_id: Option<String>,
    /// In the Stasis app.
    pub in_stasis: bool,
    /// Held through ARI.
    pub held: bool,
    /// Muted (any direction) through ARI.
    pub muted: bool,
    /// Music on hold on the channel.
    pub moh: bool,
    /// Caller number.
    pub caller_number: String,
    /// Endpoint (`PJSIP/2001`) for PJSIP channels.
    pub endpoint: Option<String>,
    /// The other half of a Local pair.
    pub other_half: Option<String>,
    /// The channel a snoop channel spies on.
    pub snoop_of: Option<String>,
    /// Snoop spy direction (empty if not a snoop).
    pub snoop_spy: String,
    /// Snoop whisper direction (empty if not a snoop).
    pub snoop_whisper: String,
    /// Dialplan context.
    pub context: String,
    /// Dialplan extension.
    pub exten: String,
}

/// A bridge as tests see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeView {
    /// ARI id.
    pub id: String,
    /// Name given on create.
    pub name: String,
    /// `mixing` or `holding`.
    pub bridge_type: String,
    /// Member channel ids, sorted.
    pub channels: Vec<String>,
    /// Music on hold playing to the bridge.
    pub moh: bool,
}

/// One HTTP request the emulator answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLog {
    /// Method.
    pub method: String,
    /// Path and query (`/ari/channels?endpoint=…`).
    pub path: String,
    /// Status answered.
    pub status: u16,
    /// When it arrived.
    pub at: Instant,
}

/// A snapshot of the emulator for [`AriEmulator::wait_until`].
#[derive(Debug, Clone)]
pub struct EmulatorState {
    /// Channels.
    pub channels: Vec<ChannelView>,
    /// Bridges.
    pub bridges: Vec<BridgeView>,
    /// Open WebSocket connections (current and replaced).
    pub connected_links: usize,
    /// A WebSocket is connected for the app.
    pub app_active: bool,
    /// REST requests seen (within [`REQUESTS_MAX`]).
    pub requests: usize,
    /// Events sent (within [`EVENTS_LOG_MAX`]).
    pub events_sent: usize,
}

impl EmulatorState {
    /// The channel with this id.
    pub fn channel(&self, id: &str) -> Option<&ChannelView> {
        self.channels.iter().find(|c| c.id == id)
    }

    /// The bridge with this id.
    pub fn bridge(&self, id: &str) -> Option<&BridgeView> {
        self.bridges.iter().find(|b| b.id == id)
    }
}

/// State shared by the server, the WebSocket tasks, timers and the handle.
pub(crate) struct Shared {
    /// The emulated Asterisk.
    core: Mutex<Core>,
    /// Runtime that runs timers (the emulator's own thread).
    rt: tokio::runtime::Handle,
    /// Credentials and app name.
    cfg: AriEmulatorConfig,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` under the lock, then spawns the timers it asked for.
    fn run<R>(self: &Arc<Self>, f: impl FnOnce(&mut Core) -> R) -> R {
        let (r, timers) = {
            let mut core = self.lock();
            let r = f(&mut core);
            core.settle_shutdown();
            (r, std::mem::take(&mut core.timers))
        };
        self.spawn_timers(timers);
        r
    }

    /// Spawns timers on the emulator's runtime (not generic, so timers
    /// that start timers do not instantiate without end).
    fn spawn_timers(self: &Arc<Self>, timers: Vec<(Duration, model::Timer)>) {
        for (after, timer) in timers {
            let shared = Arc::clone(self);
            self.rt.spawn(async move {
                tokio::time::sleep(after).await;
                let more = {
                    let mut core = shared.lock();
                    core.fire(timer);
                    core.settle_shutdown();
                    std::mem::take(&mut core.timers)
                };
                shared.spawn_timers(more);
            });
        }
    }
}

/// Stops the server and its thread when the last handle is dropped.
struct Guard {
    /// The emulator thread's actix system.
    system: actix_rt::System,
    /// The HTTP server.
    server: actix_web::dev::ServerHandle,
}

impl Drop for Guard {
    fn drop(&mut self) {
        // `stop` sends the command at once; the returned future only waits.
        drop(self.server.stop(false));
        self.system.stop();
    }
}

/// A running ARI emulator; clones share it. The server stops when the last
/// clone is dropped.
#[derive(Clone)]
pub struct AriEmulator {
    /// The state.
    shared: Arc<Shared>,
    /// Stops the server on drop.
    _guard: Arc<Guard>,
    /// Where it listens.
    addr: SocketAddr,
}

impl std::fmt::Debug for AriEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AriEmulator")
            .field("addr", &self.addr)
            .finish()
    }
}

impl AriEmulator {
    /// Binds 127.0.0.1:0 and serves on its own thread (own actix/tokio
    /// runtime, real time), so callers may use paused time or another runtime.
    pub fn start(cfg: AriEmulatorConfig) -> std::io::Result<AriEmulator> {
        Self::start_on(cfg, 0)
    }

    /// Like [`Self::start`], on 127.0.0.1:`port` (0: any free port).
    pub fn start_on(cfg: AriEmulatorConfig, port: u16) -> std::io::Result<AriEmulator> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        let addr = listener.local_addr()?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("ari-emulator".into())
            .spawn(move || {
                let runner = actix_rt::System::new();
                let setup = runner.block_on(async move {
                    let shared = Arc::new(Shared {
                        core: Mutex::new(Core::new(&cfg.app)),
                        rt: tokio::runtime::Handle::current(),
                        cfg,
                    });
                    let server = rest::server(Arc::clone(&shared), listener)?;
                    let handle = server.handle();
                    actix_rt::spawn(server);
                    Ok::<_, std::io::Error>((shared, handle, actix_rt::System::current()))
                });
                let ok = setup.is_ok();
                let _ = tx.send(setup);
                if ok {
                    let _ = runner.run();
                }
            })?;
        let (shared, server, system) = rx
            .recv()
            .map_err(|_| std::io::Error::other("ARI emulator thread ended during start-up"))??;
        tracing::debug!(%addr, "ARI emulator listening.");
        Ok(AriEmulator {
            shared,
            _guard: Arc::new(Guard { system, server }),
            addr,
        })
    }

    /// `http://127.0.0.1:PORT/ari`.
    pub fn base_url(&self) -> String {
        format!("http://{}/ari", self.addr)
    }

    /// `ws://127.0.0.1:PORT/ari/events`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ari/events", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The configuration it was started with.
    pub fn config(&self) -> &AriEmulatorConfig {
        &self.shared.cfg
    }

    /// Sets or adds an endpoint, e.g. `PJSIP/2001`, `Local/1001@agents`.
    /// PJSIP endpoints are registered unless `Unreachable` (subscribers to
    /// the endpoint see EndpointStateChange, PeerStatusChange and
    /// ContactStatusChange when that changes).
    pub fn set_endpoint(&self, endpoint: &str, b: EndpointBehaviour) {
        self.shared.run(|c| c.set_endpoint(endpoint, b));
    }

    /// An inbound call: a `Local/<dnis>@inbound` pair whose `;2` half enters
    /// `Stasis(app, "inbound", dnis, extra args…)`. Returns the Stasis
    /// channel id, or `Err(NoLink)` if no WebSocket is connected (the call
    /// fails at once, as Asterisk does).
    pub fn inbound_call(
        &self,
        caller_number: &str,
        caller_name: &str,
        dnis: &str,
        extra_args: &[&str],
    ) -> Result<String, EmulatorError> {
        let extra: Vec<String> = extra_args.iter().map(|s| (*s).to_owned()).collect();
        let caller = wire::Party::new(caller_name, caller_number);
        self.shared
            .run(|c| c.inbound(caller, dnis, &extra, None, None))
            .map(|(_, id)| id)
            .map_err(|(_, e)| e)
    }

    /// The caller hangs up (cause 16, no `soft`). Either half's id works.
    pub fn caller_hangup(&self, channel_id: &str) -> Result<(), EmulatorError> {
        self.far_end_hangup(channel_id, 16)
    }

    /// The far end of a ringing dial answers (for `Manual` endpoints, or to
    /// answer early).
    pub fn answer(&self, channel_id: &str) -> Result<(), EmulatorError> {
        self.shared.run(|c| c.answer_dial(channel_id))
    }

    /// The far end hangs up with `cause`: an agent hanging up (16), or
    /// rejecting while ringing (21; 17 gives BUSY, 34 CONGESTION).
    pub fn far_end_hangup(&self, channel_id: &str, cause: u16) -> Result<(), EmulatorError> {
        self.shared.run(|c| c.far_end_hangup(channel_id, cause))
    }

    /// A SIP phone (`PJSIP/2001`) places a call to `exten`: it enters
    /// `Stasis(app, agent-outbound, exten)`. Returns the channel id.
    pub fn phone_dials(&self, endpoint: &str, exten: &str) -> Result<String, EmulatorError> {
        self.shared.run(|c| c.phone_dials(endpoint, exten))
    }

    /// Closes every WebSocket (a network blip); channels survive and events
    /// until the next connection are lost.
    pub fn drop_links(&self) {
        self.shared.run(|c| c.drop_links());
    }

    /// Asterisk restarts with calls up: links close, channels and bridges
    /// vanish without events, the start-up time changes (see
    /// `Core::restart_pbx`).
    pub fn restart_pbx(&self) {
        self.shared.run(|c| c.restart_pbx());
    }

    /// `core stop now` (`restart` false) or `core restart now`: every
    /// channel gets a soft hang-up request with cause 4
    /// (`AST_SOFTHANGUP_SHUTDOWN`), leaves the application and is
    /// destroyed, then the links close; stopped, Asterisk stays down until
    /// [`Self::start_again`], restarted it answers with a new start-up
    /// time (see `Core::shutdown_now`).
    pub fn shutdown_now(&self, restart: bool) {
        self.shared.run(|c| c.shutdown_now(restart));
    }

    /// `core stop gracefully` (`restart` false) or `core restart
    /// gracefully`: no new channel from now on (originates answer 500
    /// "Allocation failed", inbound calls fail), calls up go on, and once
    /// the last channel has gone Asterisk ends as [`Self::shutdown_now`]
    /// does.
    pub fn shutdown_gracefully(&self, restart: bool) {
        self.shared.run(|c| c.shutdown_gracefully(restart));
    }

    /// A stopped Asterisk is started again (after [`Self::shutdown_now`]
    /// or a graceful stop): WebSocket upgrades are accepted again.
    pub fn start_again(&self) {
        self.shared.run(|c| c.start_again());
    }

    /// Refuses WebSocket upgrades (503) while `false`.
    pub fn set_accept_links(&self, accept: bool) {
        self.shared.run(|c| c.accept_links = accept);
    }

    /// Injects a fault into the next matching REST requests.
    pub fn inject_rest_fault(&self, fault: RestFault) {
        self.shared.run(|c| c.faults.push(fault));
    }

    /// Sends every event except StasisStart twice.
    pub fn set_duplicate_events(&self, on: bool) {
        self.shared.run(|c| c.duplicate_events = on);
    }

    /// Sends a raw text frame (malformed JSON, a truncated event, an unknown
    /// type) to the connected WebSocket.
    pub fn send_raw_frame(&self, text: &str) {
        self.shared.run(|c| c.send_raw(text));
    }

    /// How long playbacks last, ms.
    pub fn set_playback_ms(&self, ms: u64) {
        self.shared.run(|c| c.playback_ms = ms);
    }

    /// Every play so far (channel and bridge), with its media URIs and
    /// whether `DELETE /playbacks/{id}` stopped it.
    pub fn played(&self) -> Vec<PlayedView> {
        self.shared.run(|c| c.playbacks.played())
    }

    /// The caller (or any far end) of `channel_id` presses `digit`: a
    /// `ChannelDtmfReceived` event.
    pub fn caller_dtmf(&self, channel_id: &str, digit: char) -> Result<(), EmulatorError> {
        self.shared.run(|c| c.far_end_dtmf(channel_id, digit))
    }

    /// Channels now.
    pub fn channels(&self) -> Vec<ChannelView> {
        self.shared.lock().channel_views()
    }

    /// Bridges now.
    pub fn bridges(&self) -> Vec<BridgeView> {
        self.shared.lock().bridge_views()
    }

    /// Every REST request seen (the last [`REQUESTS_MAX`]).
    pub fn requests(&self) -> Vec<RequestLog> {
        self.shared.lock().requests.iter().cloned().collect()
    }

    /// Every event sent on a WebSocket, duplicates included (the last
    /// [`EVENTS_LOG_MAX`]).
    pub fn sent_events(&self) -> Vec<Value> {
        let c = self.shared.lock();
        c.sent
            .iter()
            .map(|t| serde_json::from_str(t).unwrap_or(Value::Null))
            .collect()
    }

    /// Events dropped because no WebSocket was connected.
    pub fn dropped_events(&self) -> u64 {
        self.shared.lock().dropped_events
    }

    /// Open WebSocket connections: the app's current one plus replaced ones
    /// the client has not closed.
    pub fn connected_links(&self) -> usize {
        let c = self.shared.lock();
        usize::from(c.link.is_some()) + c.detached.len()
    }

    /// A WebSocket is connected for the app (calls can reach Stasis).
    pub fn app_active(&self) -> bool {
        self.shared.lock().link.is_some()
    }

    /// What ended channels and who asked, since start.
    pub fn tally(&self) -> Tally {
        self.shared.lock().tally.clone()
    }

    /// A snapshot of the state.
    pub fn state(&self) -> EmulatorState {
        let c = self.shared.lock();
        EmulatorState {
            channels: c.channel_views(),
            bridges: c.bridge_views(),
            connected_links: usize::from(c.link.is_some()) + c.detached.len(),
            app_active: c.link.is_some(),
            requests: c.requests.len(),
            events_sent: c.sent.len(),
        }
    }

    /// Waits (real time, at most `timeout`) until `pred` holds on the
    /// state; returns whether it did.
    pub fn wait_until(&self, timeout: Duration, pred: impl Fn(&EmulatorState) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if pred(&self.state()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(WAIT_POLL);
        }
    }

    /// [`wait_until`](Self::wait_until) for async tests: polls with
    /// `tokio::time::sleep` (do not use it under paused time).
    pub async fn wait_until_async(
        &self,
        timeout: Duration,
        pred: impl Fn(&EmulatorState) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if pred(&self.state()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(WAIT_POLL).await;
        }
    }
}
