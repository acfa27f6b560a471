//! The ARI event link: one WebSocket on `/ari/events?app=…`, kept up for as
//! long as the daemon runs.
//!
//! Asterisk keeps no events for a disconnected application and never sends
//! StasisStart again, and a call that reaches `Stasis(edgecc)` while no
//! WebSocket is connected fails at once. So the loop is:
//!
//! 1. connect (Basic auth or `api_key`), with a bounded handshake;
//! 2. reconcile: `GET /asterisk/info` (the start-up time tells an
//!    Asterisk restart from a link drop), `GET /channels` and `GET
//!    /bridges` while frames that arrive meanwhile are buffered, then [`AriState::reconcile`] (after
//!    an edgecc restart, the first one adopts what the restored state
//!    names first: [`super::adopt`]), then the buffered frames in order; only then is the link *up*: commands are
//!    accepted and [`PbxEvent::LinkUp`](edgecc_actors::PbxEvent::LinkUp) goes to the registry;
//! 3. read frames: each text frame is parsed and applied; malformed,
//!    truncated, fragmented, oversized or absurd frames are logged and skipped; an exact
//!    duplicate of a recent frame is dropped; pings are answered, and the
//!    link is pinged so a dead peer is noticed within `link_idle_timeout_ms`;
//! 4. on close, error or silence: the link is down (commands fail with
//!    `LinkDown`, [`PbxEvent::LinkDown`](edgecc_actors::PbxEvent::LinkDown) is sent once),
//!    wait a full-jitter backoff (`rand(0, min(cap, base·2^attempt))`), and
//!    go to 1; if no session comes up within `lost_after_ms` of the link
//!    going down, the calls Asterisk had are given up as lost by it
//!    ([`LinkSink::pbx_gone`]);
//! 5. on `ApplicationReplaced` (another client opened a WebSocket for the
//!    same application, and Asterisk now sends it every event): the link
//!    is down and stays down, with an error logged, until an operator takes
//!    the application back ([`AppOwnership::take_back`]: the admin API) or
//!    edgecc restarts. Taking it back by itself would make two clients
//!    pointed at one application take it from each other for ever; who
//!    owns the application is the installer's (or an HA pair's cluster
//!    engine's) decision. [`AppOwnership`] tells `/readyz` and `/metrics`.
//!
//! # Ownership
//!
//! The link owns the socket, the reconnect loop and the link's switches
//! ([`LinkControl`]: up, stop, restart requests, frame counters); it owns
//! no call state. What the frames mean is the adapter's: the link hands
//! the reconcile picture and each event to a [`LinkSink`] (the adapter's
//! [`super::calls::Calls`]), which applies them to its picture and answers
//! whether the application was taken over. The adapter, in turn, reads
//! and steers the link only through [`LinkControl`]'s methods.
//!
//! [`AriState::reconcile`]: super::state::AriState::reconcile

use std::cell::Cell;
use std::collections::{HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_codec::Framed;
use awc::ws::{Codec, Frame, Message};
use awc::BoxedSocket;
use edgecc_actors::rng::SplitMix64;
use futures_util::{SinkExt, StreamExt};
use tracing::{debug, error, info, warn};

use super::events::{parse_event, AriEvent, Bridge, Channel, Envelope, EVENT_FRAME_BYTES_MAX};
use super::rest::{encode_segment, RestClient, RestError};
use super::settings::{AriAuth, AriSettings};
use crate::net::{http_client, ClientError};

/// Frames remembered to drop exact duplicates (the same event delivered
/// twice when a channel is subscribed through two sources).
pub const DUPLICATE_WINDOW: usize = 256;
/// Frames buffered while a reconcile runs; past it the link is restarted
/// (a reconcile that slow is a sick link).
pub const RECONCILE_BUFFER_MAX: usize = 100_000;
/// Bytes of frames buffered while a reconcile runs; past it the link is
/// restarted too.
pub const RECONCILE_BUFFER_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Largest WebSocket frame the codec accepts. Frames between
/// [`EVENT_FRAME_BYTES_MAX`] and this are read and skipped; a larger one
/// breaks the codec and the link is re-established.
pub const WS_FRAME_BYTES_MAX: usize = 16 * EVENT_FRAME_BYTES_MAX;
/// How often the loop checks for a kick (tests, shutdown) while reading.
const KICK_POLL: Duration = Duration::from_millis(50);

type Socket = Framed<BoxedSocket, Codec>;

/// Counters of the link, merged into [`super::AriStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
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

/// Who owns the Stasis application: edgecc, or another client that took
/// it over. Shared with the HTTP threads (`/readyz`, `/metrics`, the admin
/// take-back), hence atomics.
#[derive(Debug, Default)]
pub struct AppOwnership {
    /// Wall-clock ms since another client owns the application; 0 while
    /// edgecc owns it (or is connecting to take it).
    taken_over_since_ms: AtomicU64,
    /// Times another client took the application over since start.
    takeovers: AtomicU64,
    /// An operator asked to take the application back.
    take_back: AtomicBool,
}

impl AppOwnership {
    /// Since when (wall-clock ms) another client owns the application;
    /// `None` while edgecc owns it or is connecting to.
    pub fn taken_over_since_ms(&self) -> Option<u64> {
        match self.taken_over_since_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(ms),
        }
    }

    /// Times another client took the application over since start.
    pub fn takeovers(&self) -> u64 {
        self.takeovers.load(Ordering::Relaxed)
    }

    /// Asks the link to open its WebSocket again, which takes the
    /// application back from the other client. False (and nothing asked)
    /// when no other client owns it.
    pub fn take_back(&self) -> bool {
        if self.taken_over_since_ms().is_none() {
            return false;
        }
        self.take_back.store(true, Ordering::Relaxed);
        true
    }

    /// Another client took the application over at `now_ms`.
    fn taken_over(&self, now_ms: u64) {
        self.take_back.store(false, Ordering::Relaxed);
        self.takeovers.fetch_add(1, Ordering::Relaxed);
        self.taken_over_since_ms
            .store(now_ms.max(1), Ordering::Relaxed);
    }

    /// Whether an operator asked to take the application back; if so,
    /// edgecc goes back to owning it (or connecting to).
    fn take_back_asked(&self) -> bool {
        if !self.take_back.swap(false, Ordering::Relaxed) {
            return false;
        }
        self.taken_over_since_ms.store(0, Ordering::Relaxed);
        true
    }
}

/// The link's switches. Only the link task sets `up` and the counters;
/// the adapter reads them and asks for a restart or a stop through the
/// methods. All on the actix system's one thread, hence `Cell`s.
#[derive(Default)]
pub(crate) struct LinkControl {
    /// The link is up and reconciled: commands are accepted.
    up: Cell<bool>,
    /// Set once to end the link task at its next step.
    stopping: Cell<bool>,
    /// Bumped to close the current WebSocket (a REST failure that leaves
    /// the picture in doubt, tests, shutdown); the session compares it
    /// with the value it started with.
    restarts: Cell<u64>,
    /// Frame and reconnect counters.
    stats: Cell<LinkStats>,
    /// Times the link went down; a give-up timer armed at one fires only
    /// if no later session came up meanwhile.
    downs: Cell<u64>,
    /// Who owns the application (shared with HTTP).
    pub owner: Arc<AppOwnership>,
}

impl LinkControl {
    /// Whether the link is up and reconciled.
    pub fn is_up(&self) -> bool {
        self.up.get()
    }

    /// Whether the link task was told to stop.
    pub fn is_stopping(&self) -> bool {
        self.stopping.get()
    }

    /// Closes the current WebSocket; the link reconnects and reconciles.
    pub fn restart(&self) {
        self.restarts.set(self.restarts.get() + 1);
    }

    /// Ends the link task at its next step (it marks the link down).
    pub fn stop(&self) {
        self.stopping.set(true);
        self.restart();
    }

    /// A copy of the counters.
    pub fn stats(&self) -> LinkStats {
        self.stats.get()
    }

    /// Changes the counters.
    fn count(&self, f: impl FnOnce(&mut LinkStats)) {
        let mut stats = self.stats.get();
        f(&mut stats);
        self.stats.set(stats);
    }
}

/// Whether the application is still ours after applying frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Go on reading.
    Continue,
    /// `ApplicationReplaced`: another client took the application over.
    Replaced,
}

/// Where the link hands what Asterisk says: the owner of the call
/// picture (the adapter's [`super::calls::Calls`]).
pub(crate) trait LinkSink {
    /// A session's reconcile: Asterisk's start-up time (`None` when its
    /// answer did not carry one; a change says Asterisk restarted), the channels and
    /// bridges Asterisk lists now, then the frames that arrived while they
    /// were fetched, in order. Answers the flow and the legs tracked
    /// afterwards.
    fn reconciled(
        self: Rc<Self>,
        startup: Option<&str>,
        channels: &[Channel],
        bridges: &[Bridge],
        buffered: &[Envelope],
    ) -> (Flow, usize);
    /// One event of an up link.
    fn event(self: Rc<Self>, envelope: &Envelope) -> Flow;
    /// The link went up (after the reconcile) or down; told once per
    /// change.
    fn link_changed(self: Rc<Self>, up: bool);
    /// Asterisk stayed unreachable for `lost_after_ms` since the link went
    /// down: the calls it had are given up as lost by the PBX.
    fn pbx_gone(self: Rc<Self>);
}

/// The link task's parts: what it reads from, where it reports.
pub(crate) struct Link {
    /// The switches, shared with the adapter.
    pub control: Rc<LinkControl>,
    /// URL, credentials, timeouts, backoff.
    pub settings: Arc<AriSettings>,
    /// For the reconcile's `GET /channels` and `GET /bridges`.
    pub rest: RestClient,
    /// The owner of the call picture.
    pub sink: Rc<dyn LinkSink>,
}

/// Why a connected session ended.
enum SessionEnd {
    /// Closed, failed or went silent: reconnect soon.
    Dropped(String),
    /// Another client took the application over: wait for an operator.
    Replaced,
    /// Shutting down.
    Stopped,
}

/// Full-jitter backoff: a uniform delay in `[0, min(cap, base·2^attempt)]`.
pub fn backoff_ms(rng: &mut SplitMix64, base_ms: u64, cap_ms: u64, attempt: u32) -> u64 {
    let bound = base_ms.saturating_mul(1u64 << attempt.min(30)).min(cap_ms);
    rng.below(bound.saturating_add(1))
}

/// The events WebSocket URL with the application and, for `api_key`,
/// the credentials.
pub fn events_url(s: &AriSettings) -> String {
    let mut url = format!(
        "{}?app={}&subscribeAll=false",
        s.ws_url,
        encode_segment(&s.app)
    );
    if s.auth == AriAuth::ApiKey {
        url.push_str(&format!(
            "&api_key={}:{}",
            encode_segment(&s.user),
            encode_segment(&s.password)
        ));
    }
    url
}

/// Drops exact duplicates among recent frames.
struct Dedup {
    /// Recent frame hashes, oldest first.
    order: VecDeque<u64>,
    /// The same, for lookup.
    seen: HashSet<u64>,
}

impl Dedup {
    fn new() -> Dedup {
        Dedup {
            order: VecDeque::with_capacity(DUPLICATE_WINDOW),
            seen: HashSet::with_capacity(DUPLICATE_WINDOW),
        }
    }

    /// True when `text` was seen recently.
    fn duplicate(&mut self, text: &str) -> bool {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        text.hash(&mut h);
        let h = h.finish();
        if self.seen.contains(&h) {
            return true;
        }
        if self.order.len() >= DUPLICATE_WINDOW {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.order.push_back(h);
        self.seen.insert(h);
        false
    }
}

/// The link task: runs until [`LinkControl::stop`].
pub(crate) async fn run(link: Link) {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7);
    let mut rng = SplitMix64::new(seed);
    let mut attempt: u32 = 0;
    // None: nothing reported yet; Some(up).
    let mut reported: Option<bool> = None;
    let s = link.settings.clone();
    while !link.control.is_stopping() {
        let end = match connect(&s).await {
            Ok(socket) => {
                attempt = 0;
                session(&link, socket, &mut reported).await
            }
            Err(e) => SessionEnd::Dropped(e.to_string()),
        };
        let was_up = link.control.up.replace(false);
        if reported != Some(false) {
            reported = Some(false);
            link.sink.clone().link_changed(false);
            arm_give_up(&link);
        }
        let delay = match &end {
            SessionEnd::Stopped => break,
            SessionEnd::Replaced => {
                link.control.owner.taken_over(crate::clock::now_ms());
                error!(app = %s.app, "Another client took over the ARI application: calls now reach it, not edgecc. edgecc does not take the application back by itself; stop the other client, then take it back (POST /api/v1/admin/pbx/take_back, or restart edgecc).");
                if !wait_for_take_back(&link.control).await {
                    break;
                }
                warn!(app = %s.app, "Taking the ARI application back, as an operator asked.");
                0
            }
            SessionEnd::Dropped(why) => {
                let d = backoff_ms(
                    &mut rng,
                    s.reconnect_backoff_base_ms,
                    s.reconnect_backoff_cap_ms,
                    attempt,
                );
                if was_up || attempt == 0 {
                    warn!(reason = %why, retry_in_ms = d, "PBX link down.");
                } else {
                    debug!(reason = %why, attempt, retry_in_ms = d, "PBX link still down.");
                }
                attempt = attempt.saturating_add(1);
                d
            }
        };
        actix_rt::time::sleep(Duration::from_millis(delay)).await;
    }
    link.control.up.set(false);
    info!("PBX link stopped.");
}

/// The link just went down: unless a session comes up again within
/// `lost_after_ms`, the calls Asterisk had are given up as lost
/// ([`LinkSink::pbx_gone`]). Not while another client owns the application
/// (Asterisk is there; the calls are the other client's to end) or once
/// the link stops.
fn arm_give_up(link: &Link) {
    let control = link.control.clone();
    let sink = link.sink.clone();
    let after = link.settings.lost_after;
    let down = control.downs.get() + 1;
    control.downs.set(down);
    actix_rt::spawn(async move {
        actix_rt::time::sleep(after).await;
        let still_down = control.downs.get() == down && !control.is_up();
        if still_down && !control.is_stopping() && control.owner.taken_over_since_ms().is_none() {
            error!(
                lost_after_ms = after.as_millis() as u64,
                "Asterisk unreachable for too long: its calls are given up as lost by the PBX."
            );
            sink.pbx_gone();
        }
    });
}

/// Waits until an operator asks to take the application back (true) or
/// the link stops (false).
async fn wait_for_take_back(control: &LinkControl) -> bool {
    loop {
        if control.is_stopping() {
            return false;
        }
        if control.owner.take_back_asked() {
            return true;
        }
        actix_rt::time::sleep(KICK_POLL).await;
    }
}

/// Why the events WebSocket could not be opened (each ends the attempt;
/// the loop backs off and tries again).
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    /// The HTTP client could not be built (TLS set-up).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Asterisk answered the upgrade with 401.
    #[error("ARI refused the credentials (401): check pbx.ari.user and the password")]
    CredentialsRefused,
    /// Refused, reset, or answered with another status.
    #[error("WebSocket connect failed: {0}")]
    Failed(awc::error::WsClientError),
    /// No upgrade within connect + request timeouts.
    #[error("WebSocket handshake timed out")]
    TimedOut,
}

/// Opens the events WebSocket, the handshake bounded.
async fn connect(s: &AriSettings) -> Result<Socket, ConnectError> {
    let client = http_client(
        s.connect_timeout,
        s.connect_timeout + s.request_timeout,
        s.ws_url.starts_with("wss://"),
    )?;
    let mut req = client.ws(events_url(s)).max_frame_size(WS_FRAME_BYTES_MAX);
    if s.auth == AriAuth::Basic {
        req = req.basic_auth(&s.user, Some(&s.password));
    }
    let handshake = actix_rt::time::timeout(s.connect_timeout + s.request_timeout, req.connect());
    match handshake.await {
        Ok(Ok((_, socket))) => Ok(socket),
        Ok(Err(awc::error::WsClientError::InvalidResponseStatus(st))) if st.as_u16() == 401 => {
            Err(ConnectError::CredentialsRefused)
        }
        Ok(Err(e)) => Err(ConnectError::Failed(e)),
        Err(_) => Err(ConnectError::TimedOut),
    }
}

/// What reading one frame gave.
enum Read {
    /// A text frame.
    Text(String),
    /// Nothing to apply (ping answered, pong, binary).
    Nothing,
    /// The session is over.
    End(SessionEnd),
}

/// Reads the next frame, assembling continuations (bounded), answering
/// pings and pinging on silence.
async fn read_frame(
    link: &Link,
    socket: &mut Socket,
    last_rx: &mut Instant,
    last_ping: &mut Instant,
    restarts: u64,
) -> Read {
    let s = &link.settings;
    loop {
        if link.control.is_stopping() {
            let _ = socket.send(Message::Close(None)).await;
            return Read::End(SessionEnd::Stopped);
        }
        if link.control.restarts.get() != restarts {
            let _ = socket.send(Message::Close(None)).await;
            return Read::End(SessionEnd::Dropped("link closed by edgecc".into()));
        }
        if last_rx.elapsed() >= s.link_idle_timeout {
            return Read::End(SessionEnd::Dropped(format!(
                "no frame for {} ms",
                s.link_idle_timeout.as_millis()
            )));
        }
        if last_ping.elapsed() >= s.ping_interval {
            *last_ping = Instant::now();
            if socket
                .send(Message::Ping(Default::default()))
                .await
                .is_err()
            {
                return Read::End(SessionEnd::Dropped("ping failed".into()));
            }
        }
        let next = actix_rt::time::timeout(KICK_POLL, socket.next()).await;
        let item = match next {
            Err(_) => continue,
            Ok(None) => return Read::End(SessionEnd::Dropped("WebSocket closed".into())),
            Ok(Some(Err(e))) => {
                return Read::End(SessionEnd::Dropped(format!("WebSocket error: {e}")))
            }
            Ok(Some(Ok(f))) => f,
        };
        *last_rx = Instant::now();
        return match item {
            Frame::Text(b) => Read::Text(String::from_utf8_lossy(&b).into_owned()),
            Frame::Binary(_) => {
                link.control.count(|c| c.frames_skipped += 1);
                warn!("Binary frame from ARI skipped.");
                Read::Nothing
            }
            Frame::Continuation(_) => {
                // Asterisk sends each event in one frame; a fragmented
                // frame is not an event edgecc can trust.
                link.control.count(|c| c.frames_skipped += 1);
                warn!("Fragmented ARI frame skipped.");
                Read::Nothing
            }
            Frame::Ping(p) => {
                if socket.send(Message::Pong(p)).await.is_err() {
                    return Read::End(SessionEnd::Dropped("pong failed".into()));
                }
                Read::Nothing
            }
            Frame::Pong(_) => Read::Nothing,
            Frame::Close(reason) => Read::End(SessionEnd::Dropped(format!(
                "closed by Asterisk: {reason:?}"
            ))),
        };
    }
}

/// Parses a text frame; counts and logs what is skipped.
fn parse(control: &LinkControl, dedup: &mut Dedup, text: &str) -> Option<Envelope> {
    if dedup.duplicate(text) {
        control.count(|c| c.frames_duplicate += 1);
        return None;
    }
    match parse_event(text) {
        Ok(env) => Some(env),
        Err(e) => {
            control.count(|c| c.frames_skipped += 1);
            let excerpt: String = text.chars().take(120).collect();
            warn!(error = %e, frame = %excerpt, "ARI frame skipped.");
            None
        }
    }
}

/// One connected session: reconcile, then events until it ends.
async fn session(link: &Link, mut socket: Socket, reported: &mut Option<bool>) -> SessionEnd {
    let restarts = link.control.restarts.get();
    let mut last_rx = Instant::now();
    let mut last_ping = Instant::now();
    let mut dedup = Dedup::new();
    let started = Instant::now();
    // Reconcile while buffering frames.
    let fetch = fetch_picture(&link.rest);
    tokio::pin!(fetch);
    let mut buffered: Vec<String> = Vec::new();
    let mut buffered_bytes = 0usize;
    let picture = loop {
        tokio::select! {
            pic = &mut fetch => break pic,
            r = read_frame(link, &mut socket, &mut last_rx, &mut last_ping, restarts) => match r {
                // Too large to be an event: parsing would skip it anyway.
                Read::Text(t) if t.len() > EVENT_FRAME_BYTES_MAX => {
                    warn!(bytes = t.len(), "Oversized ARI frame during the reconcile; skipped.");
                }
                Read::Text(t) => {
                    buffered_bytes += t.len();
                    buffered.push(t);
                    if buffered.len() > RECONCILE_BUFFER_MAX
                        || buffered_bytes > RECONCILE_BUFFER_BYTES_MAX
                    {
                        return SessionEnd::Dropped("too many frames during the reconcile".into());
                    }
                }
                Read::Nothing => {}
                Read::End(end) => return end,
            }
        }
    };
    let (startup, channels, bridges) = match picture {
        Ok(p) => p,
        Err(e) => return SessionEnd::Dropped(format!("reconcile failed: {e}")),
    };
    let envelopes: Vec<Envelope> = buffered
        .iter()
        .filter_map(|t| parse(&link.control, &mut dedup, t))
        .collect();
    let (flow, legs) =
        link.sink
            .clone()
            .reconciled(startup.as_deref(), &channels, &bridges, &envelopes);
    if flow == Flow::Replaced {
        return SessionEnd::Replaced;
    }
    link.control.count(|c| {
        c.connects += 1;
        c.last_reconcile_us = started.elapsed().as_micros() as u64;
        c.last_reconcile_channels = channels.len();
    });
    info!(
        channels = channels.len(),
        legs,
        reconcile_ms = started.elapsed().as_millis() as u64,
        "PBX link up."
    );
    link.control.up.set(true);
    *reported = Some(true);
    link.sink.clone().link_changed(true);
    loop {
        match read_frame(link, &mut socket, &mut last_rx, &mut last_ping, restarts).await {
            Read::Text(t) => {
                let Some(env) = parse(&link.control, &mut dedup, &t) else {
                    continue;
                };
                if link.sink.clone().event(&env) == Flow::Replaced {
                    return SessionEnd::Replaced;
                }
            }
            Read::Nothing => {}
            Read::End(end) => return end,
        }
    }
}

/// The channel ids a batch of buffered frames starts (their StasisStart
/// is among them), so the reconcile does not hand them back as unknown.
pub(crate) fn starting_channels(envelopes: &[Envelope]) -> HashSet<String> {
    envelopes
        .iter()
        .filter_map(|e| match &e.event {
            AriEvent::StasisStart { channel, .. } => Some(channel.id.clone()),
            _ => None,
        })
        .collect()
}

/// What a reconcile starts from: Asterisk's start-up time, its channels,
/// its bridges.
type Picture = (Option<String>, Vec<Channel>, Vec<Bridge>);

/// `GET /asterisk/info` (its `status.startup_time`, which changes when
/// Asterisk restarts; an answer without it is `None`, so a PBX that hides
/// it never fails the reconcile, but a failed request does, as a failed
/// `GET /channels` does), then `GET /channels` and `GET /bridges`.
async fn fetch_picture(rest: &RestClient) -> Result<Picture, RestError> {
    use awc::http::Method;
    let info: serde_json::Value = rest.call_json(Method::GET, "/asterisk/info", &[]).await?;
    let startup = info
        .pointer("/status/startup_time")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let channels: Vec<serde_json::Value> = rest.call_json(Method::GET, "/channels", &[]).await?;
    let bridges: Vec<serde_json::Value> = rest.call_json(Method::GET, "/bridges", &[]).await?;
    Ok((
        startup,
        channels.iter().filter_map(channel_of).collect(),
        bridges.iter().filter_map(bridge_of).collect(),
    ))
}

/// One channel of a `GET /channels` answer. A field of an unexpected type
/// (another Asterisk version, a channel of another application) is left
/// at its default rather than failing the whole reconcile, which would
/// keep the link down; an object without an id is skipped.
fn channel_of(v: &serde_json::Value) -> Option<Channel> {
    let id = id_of(v, "channel")?;
    if let Ok(c) = serde_json::from_value::<Channel>(v.clone()) {
        return Some(c);
    }
    warn!(channel = %id, "A channel with fields of unexpected types; read what could be.");
    Some(Channel {
        id: id.to_owned(),
        name: field(v, "name"),
        state: field(v, "state"),
        caller: field(v, "caller"),
        connected: field(v, "connected"),
        dialplan: field(v, "dialplan"),
        creationtime: field(v, "creationtime"),
        channelvars: field(v, "channelvars"),
    })
}

/// One bridge of a `GET /bridges` answer, read as leniently as a channel.
fn bridge_of(v: &serde_json::Value) -> Option<Bridge> {
    let id = id_of(v, "bridge")?;
    if let Ok(b) = serde_json::from_value::<Bridge>(v.clone()) {
        return Some(b);
    }
    warn!(bridge = %id, "A bridge with fields of unexpected types; read what could be.");
    Some(Bridge {
        id: id.to_owned(),
        bridge_type: field(v, "bridge_type"),
        channels: field(v, "channels"),
    })
}

/// The non-empty `id` of an object of a `GET` list; logged and `None`
/// without one (the object is skipped).
fn id_of<'a>(v: &'a serde_json::Value, what: &str) -> Option<&'a str> {
    let id = v
        .get("id")
        .and_then(serde_json::Value::as_str)
        .filter(|id| !id.is_empty());
    if id.is_none() {
        let object: String = v.to_string().chars().take(200).collect();
        warn!(
            what,
            object, "An ARI object without an id in a GET answer; skipped."
        );
    }
    id
}

/// Field `key` of `v` if it has the expected type, else the default.
fn field<T: serde::de::DeserializeOwned + Default>(v: &serde_json::Value, key: &str) -> T {
    v.get(key)
        .and_then(|f| serde_json::from_value(f.clone()).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One odd object does not fail the reconcile: a wrongly typed field
    /// is left at its default, an object without an id is skipped.
    #[test]
    fn odd_channels_and_bridges_are_read_leniently() {
        let good = serde_json::json!({"id": "c1", "name": "PJSIP/1-1", "state": "Up",
            "dialplan": {"context": "x", "exten": "s", "priority": 1,
                         "app_name": "Stasis", "app_data": "edgecc,inbound"}});
        let odd = serde_json::json!({"id": "c2", "name": null, "state": "Ring",
            "caller": 5, "dialplan": {"app_name": "Stasis", "app_data": "edgecc"}});
        let no_id = serde_json::json!({"name": "x"});
        let chans: Vec<Channel> = [good, odd, no_id].iter().filter_map(channel_of).collect();
        assert_eq!(chans.len(), 2);
        assert_eq!(chans[0].name, "PJSIP/1-1");
        assert_eq!(
            (chans[1].id.as_str(), chans[1].state.as_str()),
            ("c2", "Ring")
        );
        assert_eq!(chans[1].name, "");
        assert!(chans[1].in_app("edgecc"));
        let odd_bridge = serde_json::json!({"id": "b1", "bridge_type": 7, "channels": ["c1"]});
        let b = bridge_of(&odd_bridge).expect("kept");
        assert_eq!(b.channels, vec!["c1".to_string()]);
        assert!(bridge_of(&serde_json::json!([1])).is_none());
    }

    /// Full jitter stays within its bound, which doubles up to the cap.
    #[test]
    fn backoff_is_bounded_full_jitter() {
        let mut rng = SplitMix64::new(1);
        for attempt in 0..40 {
            let bound = (100u64 << attempt.min(30)).min(2_000);
            for _ in 0..50 {
                assert!(backoff_ms(&mut rng, 100, 2_000, attempt) <= bound);
            }
        }
        let spread: HashSet<u64> = (0..100)
            .map(|_| backoff_ms(&mut rng, 100, 2_000, 5))
            .collect();
        assert!(spread.len() > 10, "no jitter: {spread:?}");
    }

    /// Exact duplicates within the window are caught; others pass.
    #[test]
    fn dedup_window() {
        let mut d = Dedup::new();
        assert!(!d.duplicate("a"));
        assert!(d.duplicate("a"));
        for i in 0..DUPLICATE_WINDOW {
            assert!(!d.duplicate(&i.to_string()));
        }
        assert!(!d.duplicate("a"), "forgotten after the window");
    }

    /// `api_key` credentials go in the query, encoded.
    #[test]
    fn events_url_carries_app_and_key() {
        let mut s = AriSettings::for_test("http://127.0.0.1:8088/ari", "edgecc", "u", "p w");
        assert_eq!(
            events_url(&s),
            "ws://127.0.0.1:8088/ari/events?app=edgecc&subscribeAll=false"
        );
        s.auth = AriAuth::ApiKey;
        assert!(events_url(&s).ends_with("&api_key=u:p%20w"));
    }
}
