//! The ARI emulator against the captures of a real Asterisk 22.10.1
//! (`tests/fixtures/ari/`): each capture scenario is replayed request by
//! request over real HTTP and WebSocket on 127.0.0.1, and the emulator's
//! answers (status, body shape: the same keys and value types at every
//! level) and events (types in order with their ids, dial statuses, causes
//! and states, ignoring the noise types ChannelVarset, ChannelDialplan,
//! ChannelCallerId, ChannelConnectedLine, ChannelDtmfReceived) must match
//! what Asterisk did. Hand-written tests cover what the test-side API
//! drives: inbound calls, far-end hang-ups, link drops, duplicates, raw
//! frames. Behaviour times are shrunk so the whole module runs in seconds.

use std::cell::Cell;
use std::time::Duration;

use edgecc::ari_emulator::{AriEmulator, AriEmulatorConfig, EmulatorError, EndpointBehaviour};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};

/// Longest wait for expected events.
const EVENT_WAIT: Duration = Duration::from_secs(5);
/// How long to keep listening for unexpected extra events.
const SETTLE: Duration = Duration::from_millis(150);
/// Shrunk ring time for agents that answer, ms.
const RING_MS: u64 = 40;
/// Shrunk playback length, ms.
const PLAYBACK_MS: u64 = 40;
/// Event types the captures show that a client must ignore.
const NOISE: [&str; 5] = [
    "ChannelVarset",
    "ChannelDialplan",
    "ChannelCallerId",
    "ChannelConnectedLine",
    "ChannelDtmfReceived",
];

/// A client WebSocket connection (awc's framed socket).
trait Conn:
    futures_util::Stream<Item = Result<awc::ws::Frame, awc::error::WsProtocolError>>
    + futures_util::Sink<awc::ws::Message, Error = awc::error::WsProtocolError>
    + Unpin
{
}

impl<T> Conn for T where
    T: futures_util::Stream<Item = Result<awc::ws::Frame, awc::error::WsProtocolError>>
        + futures_util::Sink<awc::ws::Message, Error = awc::error::WsProtocolError>
        + Unpin
{
}

/// An events WebSocket and what it received.
struct Ws<C: Conn> {
    /// The connection.
    conn: C,
    /// Text frames, as received.
    texts: Vec<String>,
    /// Text frames that parsed as JSON.
    events: Vec<Value>,
    /// The server closed it.
    closed: bool,
}

impl<C: Conn> Ws<C> {
    /// Reads frames until `pred` holds on the events or `wait` passes.
    async fn read_until(&mut self, wait: Duration, pred: impl Fn(&[Value]) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if pred(&self.events) {
                return true;
            }
            if self.closed {
                return false;
            }
            match tokio::time::timeout_at(deadline, self.conn.next()).await {
                Err(_) => return pred(&self.events),
                Ok(Some(Ok(awc::ws::Frame::Text(b)))) => {
                    let text = String::from_utf8_lossy(&b).into_owned();
                    if let Ok(v) = serde_json::from_str::<Value>(&text) {
                        self.events.push(v);
                    }
                    self.texts.push(text);
                }
                Ok(Some(Ok(awc::ws::Frame::Ping(p)))) => {
                    let _ = self.conn.send(awc::ws::Message::Pong(p)).await;
                }
                Ok(Some(Ok(awc::ws::Frame::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => {
                    self.closed = true;
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Keeps reading for `d` (to catch events that should not come).
    async fn settle(&mut self, d: Duration) {
        self.read_until(d, |_| false).await;
    }

    /// Signatures of the events so far (noise removed).
    fn sigs(&self) -> Vec<String> {
        self.events.iter().filter_map(sig).collect()
    }

    /// Types of the events so far.
    fn types(&self) -> Vec<String> {
        self.events
            .iter()
            .map(|e| e["type"].as_str().unwrap_or("").to_owned())
            .collect()
    }
}

/// Credentials to send.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// None.
    None,
    /// HTTP Basic.
    Basic,
    /// `?api_key=user:pass`.
    ApiKey,
    /// Basic with a wrong password.
    Wrong,
}

/// Opens `/ari/events?app=edgecc`.
async fn ws_connect(emu: &AriEmulator, auth: Auth) -> Result<Ws<impl Conn>, u16> {
    let mut url = format!("{}?app=edgecc&subscribeAll=false", emu.ws_url());
    if auth == Auth::ApiKey {
        url.push_str("&api_key=edgecc:edgecc-secret");
    }
    let mut req = awc::Client::new().ws(url);
    match auth {
        Auth::Basic => req = req.basic_auth("edgecc", Some("edgecc-secret")),
        Auth::Wrong => req = req.basic_auth("edgecc", Some("nope")),
        _ => {}
    }
    match req.connect().await {
        Ok((_res, conn)) => Ok(Ws {
            conn,
            texts: Vec::new(),
            events: Vec::new(),
            closed: false,
        }),
        Err(awc::error::WsClientError::InvalidResponseStatus(s)) => Err(s.as_u16()),
        Err(e) => panic!("ws connect: {e}"),
    }
}

/// An HTTP answer: status, content type, headers of interest, raw body, JSON body.
struct Answer {
    status: u16,
    content_type: Option<String>,
    www_authenticate: Option<String>,
    raw: Vec<u8>,
    json: Value,
}

/// Sends `method path` (path from `/ari/...`, already encoded).
async fn call(emu: &AriEmulator, method: &str, path: &str, auth: Auth) -> Answer {
    let url = format!("http://{}{}", emu.addr(), path);
    let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish()
        .request(method, url);
    match auth {
        Auth::Basic => req = req.basic_auth("edgecc", "edgecc-secret"),
        Auth::Wrong => req = req.basic_auth("edgecc", "nope"),
        Auth::ApiKey | Auth::None => {}
    }
    let mut res = req.send().await.expect("http send");
    let header = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header("content-type");
    let www_authenticate = header("www-authenticate");
    let raw = res.body().await.expect("body").to_vec();
    let json = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    Answer {
        status: res.status().as_u16(),
        content_type,
        www_authenticate,
        raw,
        json,
    }
}

/// `call` with Basic auth, returning the JSON and checking the status.
async fn ok(emu: &AriEmulator, method: &str, path: &str, status: u16) -> Value {
    let a = call(emu, method, path, Auth::Basic).await;
    assert_eq!(
        a.status,
        status,
        "{method} {path}: {}",
        String::from_utf8_lossy(&a.raw)
    );
    a.json
}

/// An emulator with short behaviour times.
fn emulator() -> AriEmulator {
    let emu = AriEmulator::start(AriEmulatorConfig::default()).expect("start emulator");
    for ext in ["1001", "1002"] {
        emu.set_endpoint(
            &format!("Local/{ext}@agents"),
            EndpointBehaviour::AnswerAfter { ring_ms: RING_MS },
        );
    }
    emu.set_endpoint(
        "Local/1007@agents",
        EndpointBehaviour::AnswerThenHangup {
            ring_ms: RING_MS,
            talk_ms: 100,
        },
    );
    emu.set_playback_ms(PLAYBACK_MS);
    emu
}

/// The JSON shape of a value: keys at every level with the type of each
/// value (arrays by the shape of their first element).
fn shape(v: &Value) -> Value {
    match v {
        Value::Null => json!("null"),
        Value::Bool(_) => json!("bool"),
        Value::Number(_) => json!("number"),
        Value::String(_) => json!("string"),
        Value::Array(a) => match a.first() {
            Some(x) => json!([shape(x)]),
            None => json!([]),
        },
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
    }
}

/// An event's signature: type, the id it is about, and what matters of it.
fn sig(e: &Value) -> Option<String> {
    let t = e["type"].as_str()?;
    if NOISE.contains(&t) {
        return None;
    }
    let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let id = [
        &e["channel"]["id"],
        &e["peer"]["id"],
        &e["bridge"]["id"],
        &e["playback"]["id"],
    ]
    .into_iter()
    .find(|v| v.is_string())
    .map(s)
    .unwrap_or_else(|| s(&e["endpoint"]["resource"]));
    let list = |v: &Value| {
        v.as_array()
            .map(|a| a.iter().map(s).collect::<Vec<_>>().join(","))
            .unwrap_or_default()
    };
    let detail = match t {
        "Dial" => s(&e["dialstatus"]),
        "ChannelHangupRequest" => format!(
            "{}{}",
            e["cause"],
            if e["soft"] == json!(true) {
                " soft"
            } else {
                ""
            }
        ),
        "ChannelDestroyed" => format!("{} {}", e["cause"], s(&e["cause_txt"])),
        "ChannelStateChange" => s(&e["channel"]["state"]),
        "ChannelEnteredBridge" | "ChannelLeftBridge" => {
            format!(
                "{} [{}]",
                s(&e["bridge"]["id"]),
                list(&e["bridge"]["channels"])
            )
        }
        "StasisStart" => format!("[{}] {}", list(&e["args"]), s(&e["channel"]["state"])),
        "PlaybackStarted" | "PlaybackFinished" => {
            format!(
                "{} {}",
                s(&e["playback"]["target_uri"]),
                s(&e["playback"]["state"])
            )
        }
        "EndpointStateChange" => format!(
            "{} [{}]",
            s(&e["endpoint"]["state"]),
            list(&e["endpoint"]["channel_ids"])
        ),
        "PeerStatusChange" => s(&e["peer"]["peer_status"]),
        "ContactStatusChange" => s(&e["contact_info"]["contact_status"]),
        _ => String::new(),
    };
    Some(format!("{t} {id} {detail}"))
}

/// Reads a capture from `tests/fixtures/ari/`.
fn capture(name: &str) -> Vec<Value> {
    let path = format!("{}/tests/fixtures/ari/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {path}: {e}"))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("capture line is JSON"))
        .collect()
}

/// The lines from the note starting with `from` (or the start) up to the
/// note starting with `to` (or the end).
fn section(lines: &[Value], from: Option<&str>, to: Option<&str>) -> Vec<Value> {
    let is_note = |l: &Value, p: &str| {
        l["kind"] == "note" && l["text"].as_str().is_some_and(|t| t.starts_with(p))
    };
    let start = from.map_or(0, |p| {
        lines
            .iter()
            .position(|l| is_note(l, p))
            .expect("section start")
    });
    let end = to.map_or(lines.len(), |p| {
        lines
            .iter()
            .position(|l| is_note(l, p))
            .expect("section end")
    });
    lines[start..end].to_vec()
}

/// Hooks of a replay.
struct Hooks<'a> {
    /// Rewrites a request path (shorter timeouts); `None` skips the request.
    rewrite: &'a dyn Fn(&str) -> Option<String>,
    /// Runs after a note with this text prefix.
    on_note: &'a dyn Fn(&str),
    /// Runs after the answer to a request.
    on_answer: &'a dyn Fn(&str),
}

fn keep(p: &str) -> Option<String> {
    Some(p.to_owned())
}

fn nothing(_: &str) {}

/// Replays `lines` against the emulator: each request is sent once the
/// emulator has sent as many (non-noise) events as Asterisk had by then;
/// statuses and body shapes must match; at the end the event signatures
/// must equal the capture's.
async fn replay<C: Conn>(emu: &AriEmulator, ws: &mut Ws<C>, lines: &[Value], hooks: &Hooks<'_>) {
    let base = ws.sigs().len();
    let mut expected: Vec<String> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = &lines[i];
        match l["kind"].as_str() {
            Some("ws") => {
                if let Some(s) = sig(&l["event"]) {
                    expected.push(s);
                }
            }
            Some("note") => (hooks.on_note)(l["text"].as_str().unwrap_or("")),
            Some("req") => {
                let url = l["url"].as_str().expect("url");
                let method = l["method"].as_str().expect("method");
                // The answer is the next `http` line for the same request.
                let answer = lines[i..]
                    .iter()
                    .find(|a| {
                        a["kind"] == "http" && a["url"] == l["url"] && a["method"] == l["method"]
                    })
                    .expect("captured answer");
                let Some(path) = (hooks.rewrite)(url) else {
                    i += 1;
                    continue;
                };
                let want = expected.len();
                ws.read_until(EVENT_WAIT, |evs| {
                    evs.iter().filter_map(sig).count() >= base + want
                })
                .await;
                let auth = if l["auth"] == "none" {
                    Auth::None
                } else {
                    Auth::Basic
                };
                let got = call(emu, method, &path, auth).await;
                let status = answer["status"].as_u64().expect("status") as u16;
                assert_eq!(
                    got.status,
                    status,
                    "{method} {url}: status (body {})",
                    String::from_utf8_lossy(&got.raw)
                );
                if answer["resp"].is_null() {
                    assert!(got.raw.is_empty(), "{method} {url}: body must be empty");
                    assert_eq!(
                        got.content_type, None,
                        "{method} {url}: no content type on 204"
                    );
                } else {
                    assert_eq!(
                        shape(&got.json),
                        shape(&answer["resp"]),
                        "{method} {url}: body shape\n ours: {}\n real: {}",
                        got.json,
                        answer["resp"]
                    );
                    assert_eq!(got.content_type.as_deref(), Some("application/json"));
                }
                (hooks.on_answer)(url);
            }
            _ => {}
        }
        i += 1;
    }
    let want = expected.len();
    ws.read_until(EVENT_WAIT, |evs| {
        evs.iter().filter_map(sig).count() >= base + want
    })
    .await;
    ws.settle(SETTLE).await;
    let got: Vec<String> = ws.sigs()[base..].to_vec();
    assert_eq!(got, expected, "event sequence differs from the capture");
}

/// Every event our emulator sent has the shape of a captured event of the
/// same type (same keys and value types at every level).
fn check_event_shapes(events: &[Value], captured: &[Value]) {
    for e in events {
        let t = e["type"].as_str().expect("type");
        let same_type: Vec<&Value> = captured
            .iter()
            .filter(|c| c["kind"] == "ws" && c["event"]["type"] == t)
            .map(|c| &c["event"])
            .collect();
        if same_type.is_empty() {
            continue;
        }
        assert!(
            same_type.iter().any(|c| shape(c) == shape(e)),
            "{t}: shape differs from every captured {t}\n ours: {e}"
        );
        assert!(
            e["timestamp"].as_str().is_some_and(is_ari_time),
            "{t}: timestamp {}",
            e["timestamp"]
        );
        assert_eq!(e["asterisk_id"], "02:fc:00:00:00:01");
        assert_eq!(e["application"], "edgecc");
    }
}

/// `2026-11-21T16:35:19.394+0000`.
fn is_ari_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 28
        && b[4] == b'-'
        && b[10] == b'T'
        && b[19] == b'.'
        && s.ends_with("+0000")
        && s[..4].chars().all(|c| c.is_ascii_digit())
}

/// Replays one section of the Local-channel capture on a fresh emulator.
async fn replay_local(
    from: Option<&str>,
    to: Option<&str>,
    rewrite: &dyn Fn(&str) -> Option<String>,
) {
    let emu = emulator();
    let mut ws = ws_connect(&emu, Auth::ApiKey).await.expect("ws connect");
    let all = capture("transcript-local.jsonl");
    let lines = section(&all, from, to);
    let hooks = Hooks {
        rewrite,
        on_note: &nothing,
        on_answer: &nothing,
    };
    replay(&emu, &mut ws, &lines, &hooks).await;
    check_event_shapes(&ws.events, &all);
}

/// Scenario A of the capture: auth on REST, an inbound call into Stasis,
/// ring/answer, a bridge with MOH, an agent originated into the app and
/// bridged, hold/mute (204, no events), channel and bridge playbacks (201),
/// variables, then the app hangs up the agent, the caller and the bridge.
#[actix_rt::test]
async fn ari_replay_inbound_bridge_and_app_hangups() {
    replay_local(None, Some("B:"), &keep).await;
}

/// Scenario B: originate failures by the table (timeout → cause 19 and no
/// final dialstatus, BUSY/0, NOANSWER/21, CONGESTION/0) and an originate
/// cancelled by DELETE while ringing (NOANSWER, 16).
#[actix_rt::test]
async fn ari_replay_originate_failures() {
    // The capture's 4 s originate timeout, shortened to 1 s.
    replay_local(Some("B:"), Some("C:"), &|p| {
        Some(p.replace("timeout=4", "timeout=1"))
    })
    .await;
}

/// Scenario C: `/channels/create` enters Stasis at once (Down); `/dial`
/// then gives Dial RINGING/ANSWER, and a busy dial leaves the channel in
/// Stasis until it is deleted.
#[actix_rt::test]
async fn ari_replay_create_and_dial() {
    replay_local(Some("C:"), Some("D:"), &keep).await;
}

/// Scenarios D and F: the caller hangs up while queued and while talking;
/// the agent stays alone in the bridge (no hang-up across it), and the
/// dialplan channel's last event is StasisEnd.
#[actix_rt::test]
async fn ari_replay_caller_hangups() {
    replay_local(Some("D:"), Some("G:"), &keep).await;
}

/// Scenarios G and E: channel MOH, `/continue` (StasisEnd), and the error
/// shapes (404 Channel/Bridge not found, 400 on addChannel of an unknown
/// channel, 400 without app or extension, 500 Allocation failed).
#[actix_rt::test]
async fn ari_replay_continue_and_errors() {
    // The emulator has no `/asterisk/modules`.
    let rewrite = |p: &str| (!p.contains("/asterisk/modules")).then(|| p.to_owned());
    replay_local(Some("G:"), None, &rewrite).await;
}

/// The SIP capture: with `endpoint:PJSIP/2001` subscribed, registration
/// events, a PJSIP agent originated into the app (every event but
/// StasisStart and the bridge events twice), its hang-up, an unregistered
/// endpoint (500 Allocation failed) and un-registration.
#[actix_rt::test]
async fn ari_replay_sip_agent_with_endpoint_subscription() {
    let emu = emulator();
    emu.set_endpoint("PJSIP/2001", EndpointBehaviour::Unreachable);
    emu.set_endpoint("PJSIP/2002", EndpointBehaviour::Unreachable);
    let mut ws = ws_connect(&emu, Auth::Basic).await.expect("ws connect");
    let lines = capture("transcript-sip.jsonl");
    let endpoint_reads = Cell::new(0);
    let on_answer = |url: &str| {
        if url == "/ari/endpoints/PJSIP/2001" {
            // The phone registers after the first read (sipp REGISTER).
            endpoint_reads.set(endpoint_reads.get() + 1);
            if endpoint_reads.get() == 1 {
                emu.set_endpoint("PJSIP/2001", EndpointBehaviour::Manual);
            }
        }
        if url.contains("endpoint=PJSIP/2001&") {
            // sipp answers at once.
            emu.answer("sip-agent-1").expect("answer the SIP agent");
        }
    };
    let on_note = |text: &str| {
        if text.starts_with("S3: unregister 2001") {
            emu.set_endpoint("PJSIP/2001", EndpointBehaviour::Unreachable);
        }
    };
    let hooks = Hooks {
        rewrite: &keep,
        on_note: &on_note,
        on_answer: &on_answer,
    };
    replay(&emu, &mut ws, &lines, &hooks).await;
    check_event_shapes(&ws.events, &lines);
}

/// Auth: REST and the WebSocket upgrade without credentials (or with a
/// wrong password) get 401 `{"message":"Authentication required"}` with
/// `WWW-Authenticate`; Basic and `api_key` both work.
#[actix_rt::test]
async fn ari_auth_rest_and_websocket() {
    let emu = emulator();
    for auth in [Auth::None, Auth::Wrong] {
        let a = call(&emu, "GET", "/ari/asterisk/info", auth).await;
        assert_eq!(a.status, 401);
        assert_eq!(a.json, json!({"message": "Authentication required"}));
        assert_eq!(
            a.www_authenticate.as_deref(),
            Some("Basic realm=\"Asterisk REST Interface\"")
        );
        assert_eq!(ws_connect(&emu, auth).await.err(), Some(401));
    }
    assert_eq!(
        call(&emu, "GET", "/ari/asterisk/info", Auth::Basic)
            .await
            .status,
        200
    );
    let a = call(
        &emu,
        "GET",
        "/ari/asterisk/ping?api_key=edgecc:edgecc-secret",
        Auth::ApiKey,
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json["ping"], "pong");
    assert!(ws_connect(&emu, Auth::Basic).await.is_ok());
    assert!(ws_connect(&emu, Auth::ApiKey).await.is_ok());
    // Every request was logged with its answer.
    let log = emu.requests();
    assert!(log
        .iter()
        .any(|r| r.path == "/ari/asterisk/info" && r.status == 401));
    assert!(log
        .iter()
        .any(|r| r.path.starts_with("/ari/asterisk/ping?") && r.status == 200));
}

/// The WebSocket capture: a second connection for the app takes over (the
/// first gets ApplicationReplaced and nothing more); with both closed the
/// call in Stasis survives, and a call reaching Stasis meanwhile fails at
/// once; after reconnecting, events resume without a replay of
/// StasisStart.
#[actix_rt::test]
async fn ari_websocket_replaced_drop_and_reconnect() {
    let emu = emulator();
    let cap = capture("transcript-websocket.jsonl");
    let mut ws1 = ws_connect(&emu, Auth::Basic).await.expect("ws1");
    let mut ws2 = ws_connect(&emu, Auth::ApiKey).await.expect("ws2");
    assert!(ws1.read_until(EVENT_WAIT, |e| !e.is_empty()).await);
    assert_eq!(ws1.types(), ["ApplicationReplaced"]);
    let replaced = cap
        .iter()
        .find(|l| l["event"]["type"] == "ApplicationReplaced")
        .expect("captured");
    assert_eq!(shape(&ws1.events[0]), shape(&replaced["event"]));

    ok(&emu, "POST", "/ari/channels?endpoint=Local/9000@inbound&context=caller&extension=s&priority=1&channelId=caller-w&otherChannelId=inbound-w", 200).await;
    assert!(ws2.read_until(EVENT_WAIT, |e| !e.is_empty()).await);
    ws1.settle(SETTLE).await;
    assert_eq!(
        ws1.types(),
        ["ApplicationReplaced"],
        "the replaced link gets nothing more"
    );
    assert_eq!(ws2.sigs(), ["StasisStart inbound-w [inbound,9000] Ring"]);

    // Both links go away: the call in Stasis survives.
    emu.drop_links();
    ws1.settle(SETTLE).await;
    ws2.settle(SETTLE).await;
    assert!(
        ws1.closed && ws2.closed,
        "drop_links closes every connection"
    );
    assert!(
        emu.wait_until_async(EVENT_WAIT, |s| s.connected_links == 0)
            .await
    );
    let ch = ok(&emu, "GET", "/ari/channels/inbound-w", 200).await;
    assert_eq!(ch["state"], "Ring");
    let app = ok(&emu, "GET", "/ari/applications/edgecc", 200).await;
    assert_eq!(app["channel_ids"], json!(["inbound-w"]));
    // A call reaching Stasis now fails at once: originate succeeds, the
    // pair is gone.
    ok(&emu, "POST", "/ari/channels?endpoint=Local/9001@inbound&context=caller&extension=s&priority=1&channelId=caller-w2&otherChannelId=inbound-w2", 200).await;
    assert_eq!(
        call(&emu, "GET", "/ari/channels/inbound-w2", Auth::Basic)
            .await
            .status,
        404
    );
    assert_eq!(
        emu.inbound_call("5550000", "Dora", "9002", &[]),
        Err(EmulatorError::NoLink)
    );
    // Events while disconnected are lost.
    ok(&emu, "POST", "/ari/channels/inbound-w/ring", 204).await;
    assert!(emu.dropped_events() == 0, "ring sends no event");

    let mut ws3 = ws_connect(&emu, Auth::ApiKey).await.expect("ws3");
    ok(&emu, "POST", "/ari/channels/inbound-w/answer", 204).await;
    ok(&emu, "DELETE", "/ari/channels/inbound-w", 204).await;
    assert_eq!(
        call(&emu, "DELETE", "/ari/channels/caller-w2", Auth::Basic)
            .await
            .status,
        404
    );
    assert!(ws3.read_until(EVENT_WAIT, |e| e.len() >= 3).await);
    ws3.settle(SETTLE).await;
    // As the capture: ws3 got ['ChannelStateChange', 'ChannelHangupRequest', 'StasisEnd'].
    assert_eq!(
        ws3.types(),
        ["ChannelStateChange", "ChannelHangupRequest", "StasisEnd"]
    );
    check_event_shapes(&ws3.events, &capture("transcript-local.jsonl"));
}

/// The test-side API: an inbound call with extra Stasis args, an agent on
/// a manual SIP phone answered by the test, the caller hanging up (the
/// agent stays alone in the bridge), then the phone rejecting a second
/// offer while ringing (cause 21: NOANSWER, ChannelDestroyed 21).
#[actix_rt::test]
async fn ari_api_inbound_answer_caller_hangup_and_reject() {
    let emu = emulator();
    let mut ws = ws_connect(&emu, Auth::ApiKey).await.expect("ws");
    let inbound = emu
        .inbound_call("5551234", "Alice", "8000", &["vip", "acct=42"])
        .expect("inbound call");
    assert!(ws.read_until(EVENT_WAIT, |e| !e.is_empty()).await);
    let start = &ws.events[0];
    assert_eq!(start["type"], "StasisStart");
    assert_eq!(start["args"], json!(["inbound", "8000", "vip", "acct=42"]));
    assert_eq!(
        start["channel"]["caller"],
        json!({"name": "Alice", "number": "5551234"})
    );
    assert_eq!(
        start["channel"]["dialplan"]["app_data"],
        "edgecc,inbound,8000,vip,acct=42"
    );
    assert!(start["channel"]["name"]
        .as_str()
        .is_some_and(|n| n.starts_with("Local/8000@inbound-") && n.ends_with(";2")));

    ok(
        &emu,
        "POST",
        &format!("/ari/channels/{inbound}/answer"),
        204,
    )
    .await;
    ok(&emu, "POST", "/ari/bridges?type=mixing&bridgeId=b1", 200).await;
    ok(
        &emu,
        "POST",
        &format!("/ari/bridges/b1/addChannel?channel={inbound}"),
        204,
    )
    .await;
    let agent = ok(&emu, "POST", "/ari/channels?endpoint=PJSIP/2001&app=edgecc&appArgs=agent,2001&channelId=offer-1&timeout=20", 200).await;
    assert_eq!(agent["name"], "PJSIP/2001-00000000");
    assert!(
        ws.read_until(EVENT_WAIT, |e| e
            .iter()
            .any(|x| x["dialstatus"] == "RINGING"))
            .await
    );
    emu.answer("offer-1").expect("answer");
    assert!(
        ws.read_until(EVENT_WAIT, |e| e
            .iter()
            .filter(|x| x["type"] == "StasisStart")
            .count()
            == 2)
            .await
    );
    ok(
        &emu,
        "POST",
        "/ari/bridges/b1/addChannel?channel=offer-1",
        204,
    )
    .await;
    emu.caller_hangup(&inbound).expect("caller hangs up");
    assert!(
        emu.wait_until_async(EVENT_WAIT, |s| s
            .bridge("b1")
            .is_some_and(|b| b.channels == ["offer-1"])
            && s.channel("offer-1")
                .is_some_and(|c| c.in_stasis && c.state == "Up")
            && s.channel(&inbound).is_none())
            .await,
        "the agent stays alone in the bridge"
    );
    // A second offer, rejected while ringing.
    ok(
        &emu,
        "POST",
        "/ari/channels?endpoint=PJSIP/2002&app=edgecc&channelId=offer-2",
        200,
    )
    .await;
    assert!(
        ws.read_until(EVENT_WAIT, |e| e
            .iter()
            .any(|x| x["peer"]["id"] == "offer-2" && x["dialstatus"] == "RINGING"))
            .await
    );
    emu.far_end_hangup("offer-2", 21).expect("reject");
    assert!(
        ws.read_until(EVENT_WAIT, |e| e.iter().any(|x| x["type"]
            == "ChannelDestroyed"
            && x["channel"]["id"] == "offer-2"))
            .await
    );
    ws.settle(SETTLE).await;
    let sigs = ws.sigs();
    let tail: Vec<&String> = sigs.iter().filter(|s| s.contains(" offer-2 ")).collect();
    assert_eq!(
        tail,
        [
            "Dial offer-2 ",
            "Dial offer-2 RINGING",
            "ChannelStateChange offer-2 Ringing",
            "ChannelHangupRequest offer-2 21",
            "Dial offer-2 NOANSWER",
            "ChannelDestroyed offer-2 21 Call Rejected",
        ]
    );
    let caller_events: Vec<&String> = sigs
        .iter()
        .filter(|s| s.contains(&format!(" {inbound} ")))
        .collect();
    assert_eq!(
        caller_events.last().map(|s| s.as_str()),
        Some(format!("StasisEnd {inbound} ").as_str()),
        "StasisEnd is the last event of a dialplan Stasis() channel"
    );
    assert_eq!(
        emu.answer("nope"),
        Err(EmulatorError::ChannelNotFound("nope".into()))
    );
    check_event_shapes(&ws.events, &capture("transcript-local.jsonl"));
}

/// Duplicated events (every event but StasisStart twice) and raw frames
/// (malformed JSON, a truncated event, an unknown type) reach the client as
/// they are.
#[actix_rt::test]
async fn ari_duplicates_and_raw_frames() {
    let emu = emulator();
    let mut ws = ws_connect(&emu, Auth::ApiKey).await.expect("ws");
    emu.set_duplicate_events(true);
    let id = emu.inbound_call("1", "", "s", &[]).expect("inbound");
    ok(&emu, "POST", &format!("/ari/channels/{id}/answer"), 204).await;
    assert!(ws.read_until(EVENT_WAIT, |e| e.len() >= 3).await);
    ws.settle(SETTLE).await;
    assert_eq!(
        ws.types(),
        ["StasisStart", "ChannelStateChange", "ChannelStateChange"]
    );
    emu.set_duplicate_events(false);
    let raw = [
        "{not json",
        r#"{"type":"StasisStart","timest"#,
        r#"{"type":"SomethingNew","timestamp":"2026-11-21T16:35:19.394+0000","application":"edgecc"}"#,
    ];
    for r in raw {
        emu.send_raw_frame(r);
    }
    // Only the unknown-type frame parses as JSON.
    assert!(ws.read_until(EVENT_WAIT, |e| e.len() >= 4).await);
    ws.settle(SETTLE).await;
    assert_eq!(&ws.texts[3..], raw);
}

/// Snoop channels enter Stasis and die with their target; a far end that
/// answers then hangs up (1007) gives cause 16 without `soft`; redirect
/// ends the channel's Stasis; a phone placing a call enters
/// `Stasis(app, agent-outbound, exten)`.
#[actix_rt::test]
async fn ari_snoop_far_hangup_redirect_and_phone_call() {
    let emu = emulator();
    let mut ws = ws_connect(&emu, Auth::ApiKey).await.expect("ws");
    ok(
        &emu,
        "POST",
        "/ari/channels?endpoint=Local/1007@agents/n&app=edgecc&appArgs=agent&channelId=a7",
        200,
    )
    .await;
    assert!(
        ws.read_until(EVENT_WAIT, |e| e.iter().any(|x| x["type"] == "StasisStart"))
            .await
    );
    let snoop = ok(
        &emu,
        "POST",
        "/ari/channels/a7/snoop?spy=both&whisper=out&app=edgecc&appArgs=monitor&snoopId=snoop-1",
        200,
    )
    .await;
    assert!(snoop["name"]
        .as_str()
        .is_some_and(|n| n.starts_with("Snoop/")));
    let s = emu.state();
    let sv = s.channel("snoop-1").expect("snoop channel");
    assert_eq!(
        (
            sv.snoop_of.as_deref(),
            sv.snoop_spy.as_str(),
            sv.snoop_whisper.as_str()
        ),
        (Some("a7"), "both", "out")
    );
    assert!(
        ws.read_until(EVENT_WAIT, |e| e.iter().any(|x| x["type"]
            == "ChannelDestroyed"
            && x["channel"]["id"] == "snoop-1"))
            .await
    );
    ws.settle(SETTLE).await;
    let sigs: Vec<String> = ws
        .sigs()
        .into_iter()
        .filter(|s| !s.contains("a7;2"))
        .collect();
    assert_eq!(
        sigs,
        [
            "Dial a7 ",
            "ChannelStateChange a7 Ringing",
            "Dial a7 RINGING",
            "ChannelStateChange a7 Up",
            "Dial a7 ANSWER",
            "StasisStart a7 [agent] Up",
            "StasisStart snoop-1 [monitor] Up",
            "ChannelHangupRequest a7 16",
            "StasisEnd a7 ",
            "ChannelDestroyed a7 16 Normal Clearing",
            "ChannelHangupRequest snoop-1 16",
            "StasisEnd snoop-1 ",
            "ChannelDestroyed snoop-1 16 Normal Clearing",
        ]
    );
    let phone = emu
        .phone_dials("PJSIP/2003", "5559999")
        .expect("phone dials");
    assert!(
        ws.read_until(EVENT_WAIT, |e| e
            .iter()
            .any(|x| x["channel"]["id"] == phone.as_str()))
            .await
    );
    let start = ws
        .events
        .iter()
        .rev()
        .find(|x| x["type"] == "StasisStart")
        .expect("start");
    assert_eq!(start["args"], json!(["agent-outbound", "5559999"]));
    assert_eq!(
        call(
            &emu,
            "POST",
            &format!("/ari/channels/{phone}/redirect"),
            Auth::Basic
        )
        .await
        .status,
        400
    );
    ok(
        &emu,
        "POST",
        &format!("/ari/channels/{phone}/redirect?endpoint=PJSIP/2002"),
        204,
    )
    .await;
    assert!(
        emu.wait_until_async(EVENT_WAIT, |s| s.channel(&phone).is_none())
            .await
    );
    assert_eq!(
        emu.phone_dials("PJSIP/9999", "1"),
        Err(EmulatorError::EndpointNotFound("PJSIP/9999".into()))
    );
    check_event_shapes(&ws.events, &capture("transcript-local.jsonl"));
}

/// While links are refused the upgrade gets 503; an offer that is answered
/// while no WebSocket is connected fails like `Stasis()` (the channel is
/// gone after the reconnect) while the call already in Stasis survives;
/// originate `variables` in a JSON body are readable.
#[actix_rt::test]
async fn ari_link_refused_and_answer_without_link() {
    let emu = emulator();
    emu.set_accept_links(false);
    assert_eq!(ws_connect(&emu, Auth::ApiKey).await.err(), Some(503));
    emu.set_accept_links(true);
    let mut ws = ws_connect(&emu, Auth::ApiKey).await.expect("ws");
    assert!(emu.app_active());
    let caller = emu
        .inbound_call("5551234", "Alice", "7000", &[])
        .expect("inbound");
    let url = format!("http://{}/ari/channels", emu.addr());
    let body = json!({"endpoint": "PJSIP/2001", "app": "edgecc", "channelId": "offer-9",
                      "variables": {"EDGECC_CALL": "c-9"}});
    let mut res = awc::Client::new()
        .post(url)
        .basic_auth("edgecc", "edgecc-secret")
        .send_json(&body)
        .await
        .expect("originate");
    assert_eq!(res.status().as_u16(), 200, "{:?}", res.body().await);
    let v = ok(
        &emu,
        "GET",
        "/ari/channels/offer-9/variable?variable=EDGECC_CALL",
        200,
    )
    .await;
    assert_eq!(v, json!({"value": "c-9"}));
    assert!(
        ws.read_until(EVENT_WAIT, |e| e
            .iter()
            .any(|x| x["dialstatus"] == "RINGING"))
            .await
    );

    emu.drop_links();
    assert!(!emu.app_active());
    emu.answer("offer-9").expect("the phone answers");
    assert!(
        emu.wait_until_async(EVENT_WAIT, |s| s.channel("offer-9").is_none())
            .await
    );
    assert!(
        emu.dropped_events() > 0,
        "events while disconnected are dropped"
    );
    let mut ws2 = ws_connect(&emu, Auth::ApiKey).await.expect("reconnect");
    assert_eq!(
        call(&emu, "GET", "/ari/channels/offer-9", Auth::Basic)
            .await
            .status,
        404
    );
    let ch = ok(&emu, "GET", &format!("/ari/channels/{caller}"), 200).await;
    assert_eq!(ch["dialplan"]["app_name"], "Stasis");
    ws2.settle(SETTLE).await;
    assert!(
        ws2.events.is_empty(),
        "no replay after a reconnect: {:?}",
        ws2.types()
    );
}

/// Dropping the last handle stops the server: the port stops answering.
#[actix_rt::test]
async fn ari_emulator_stops_when_dropped() {
    let emu = emulator();
    let addr = emu.addr();
    assert_eq!(
        call(&emu, "GET", "/ari/asterisk/ping", Auth::Basic)
            .await
            .status,
        200
    );
    drop(emu);
    let deadline = std::time::Instant::now() + EVENT_WAIT;
    while std::net::TcpStream::connect(addr).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "still listening after drop"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Consult-style moves: adding a channel that is in another bridge moves
/// it (ChannelLeftBridge from the old one, then ChannelEnteredBridge with
/// the new membership); hold, mute and MOH answer 204, send no event and
/// show in the channel views; a bridge never used sends no BridgeDestroyed.
#[actix_rt::test]
async fn ari_bridge_moves_and_channel_flags() {
    let emu = emulator();
    let mut ws = ws_connect(&emu, Auth::ApiKey).await.expect("ws");
    let a = emu.inbound_call("1", "", "100", &[]).expect("a");
    let b = emu.inbound_call("2", "", "101", &[]).expect("b");
    ok(&emu, "POST", "/ari/bridges?type=mixing&bridgeId=main", 200).await;
    let consult = ok(
        &emu,
        "POST",
        "/ari/bridges?type=holding&bridgeId=consult&name=c",
        200,
    )
    .await;
    assert_eq!(
        (
            consult["bridge_type"].as_str(),
            consult["technology"].as_str()
        ),
        (Some("holding"), Some("holding_bridge"))
    );
    ok(&emu, "POST", "/ari/bridges?bridgeId=unused", 200).await;
    ok(
        &emu,
        "POST",
        &format!("/ari/bridges/main/addChannel?channel={a},{b}"),
        204,
    )
    .await;
    ok(
        &emu,
        "POST",
        &format!("/ari/bridges/consult/addChannel?channel={b}"),
        204,
    )
    .await;
    assert_eq!(
        call(
            &emu,
            "POST",
            &format!("/ari/bridges/consult/removeChannel?channel={a}"),
            Auth::Basic
        )
        .await
        .status,
        422
    );
    assert!(
        ws.read_until(EVENT_WAIT, |e| e.iter().any(|x| x["type"]
            == "ChannelEnteredBridge"
            && x["bridge"]["id"] == "consult"))
            .await
    );
    ws.settle(SETTLE).await;
    let before = ws.events.len();
    for (m, what) in [
        ("POST", "hold"),
        ("POST", "mute?direction=in"),
        ("POST", "moh?mohClass=default"),
    ] {
        ok(&emu, m, &format!("/ari/channels/{a}/{what}"), 204).await;
    }
    let view = emu.channels().into_iter().find(|c| c.id == a).expect("a");
    assert!(view.held && view.muted && view.moh);
    for what in ["hold", "mute", "moh"] {
        ok(&emu, "DELETE", &format!("/ari/channels/{a}/{what}"), 204).await;
    }
    let view = emu.channels().into_iter().find(|c| c.id == a).expect("a");
    assert!(!view.held && !view.muted && !view.moh);
    assert_eq!(
        call(
            &emu,
            "POST",
            &format!("/ari/channels/{a}/mute?direction=sideways"),
            Auth::Basic
        )
        .await
        .status,
        400
    );
    for id in ["main", "consult", "unused"] {
        ok(&emu, "DELETE", &format!("/ari/bridges/{id}"), 204).await;
    }
    assert!(
        ws.read_until(EVENT_WAIT, |e| e
            .iter()
            .filter(|x| x["type"] == "BridgeDestroyed")
            .count()
            == 2)
            .await
    );
    ws.settle(SETTLE).await;
    let bridge_sigs: Vec<String> = ws.events[before..].iter().filter_map(sig).collect();
    assert_eq!(
        bridge_sigs,
        [
            format!("ChannelLeftBridge {a} main []"),
            "BridgeDestroyed main ".to_owned(),
            format!("ChannelLeftBridge {b} consult []"),
            "BridgeDestroyed consult ".to_owned(),
        ],
        "flags send nothing; deleting bridges empties them; the unused one sends nothing"
    );
    let all: Vec<String> = ws.sigs();
    let moved: Vec<&String> = all
        .iter()
        .filter(|s| s.contains(&format!(" {b} ")))
        .collect();
    assert_eq!(
        moved[1..],
        [
            &format!("ChannelEnteredBridge {b} main [{a},{b}]"),
            &format!("ChannelLeftBridge {b} main [{a}]"),
            &format!("ChannelEnteredBridge {b} consult [{b}]"),
            &format!("ChannelLeftBridge {b} consult []"),
        ]
    );
}

/// What a restarted client reconciles from: while no client is connected
/// (edgecc down), calls in Stasis, a ringing originated leg and bridges
/// stay; `GET /channels` and `GET /bridges` list them in the captured
/// shapes (a caller in Stasis with its `Stasis` dialplan, a ringing
/// originate in `AppDial2`, a bridge's `channels` as its membership after
/// a removal); a new client sees the same lists and no replayed event.
#[actix_rt::test]
async fn ari_lists_what_a_restarted_client_adopts() {
    let emu = emulator();
    emu.set_endpoint("PJSIP/3101", EndpointBehaviour::Manual);
    let lines = capture("transcript-local.jsonl");
    let captured = |url: &str| {
        lines
            .iter()
            .find(|l| l["kind"] == "http" && l["url"] == url)
            .map(|l| l["resp"].clone())
            .expect("captured answer")
    };
    let channel_shape = shape(&captured("/ari/channels")[0]);
    let bridge_shape = shape(&captured("/ari/bridges/bridge-1"));
    let _ws = ws_connect(&emu, Auth::ApiKey).await.expect("ws");
    let a = emu.inbound_call("1", "", "100", &[]).expect("a");
    let b = emu.inbound_call("2", "", "101", &[]).expect("b");
    for c in [&a, &b] {
        ok(&emu, "POST", &format!("/ari/channels/{c}/answer"), 204).await;
    }
    ok(&emu, "POST", "/ari/bridges?type=mixing&bridgeId=b~x", 200).await;
    let add = format!("/ari/bridges/b~x/addChannel?channel={a},{b}");
    ok(&emu, "POST", &add, 204).await;
    let remove = format!("/ari/bridges/b~x/removeChannel?channel={b}");
    ok(&emu, "POST", &remove, 204).await;
    ok(&emu, "POST", &format!("/ari/channels/{b}/moh"), 204).await;
    let originate = "/ari/channels?endpoint=PJSIP/3101&app=edgecc&channelId=x~1&timeout=30";
    ok(&emu, "POST", originate, 200).await;
    emu.drop_links();
    assert!(!emu.app_active());

    let lists = || async {
        (
            ok(&emu, "GET", "/ari/channels", 200).await,
            ok(&emu, "GET", "/ari/bridges", 200).await,
        )
    };
    let (channels, bridges) = lists().await;
    let by_id = |id: &str| {
        channels
            .as_array()
            .and_then(|a| a.iter().find(|c| c["id"] == id))
            .cloned()
            .unwrap_or_else(|| panic!("{id} listed: {channels}"))
    };
    for id in [a.as_str(), b.as_str(), "x~1"] {
        assert_eq!(shape(&by_id(id)), channel_shape, "{id}");
    }
    let caller = by_id(&a);
    assert_eq!(
        (
            caller["state"].as_str(),
            caller["dialplan"]["app_name"].as_str()
        ),
        (Some("Up"), Some("Stasis"))
    );
    assert!(caller["dialplan"]["app_data"]
        .as_str()
        .is_some_and(|d| d.starts_with("edgecc,inbound")));
    let ringing = by_id("x~1");
    assert_eq!(
        (
            ringing["state"].as_str(),
            ringing["dialplan"]["app_name"].as_str()
        ),
        (Some("Ringing"), Some("AppDial2"))
    );
    let listed = bridges.as_array().cloned().unwrap_or_default();
    assert_eq!(listed.len(), 1, "{bridges}");
    assert_eq!(shape(&listed[0]), bridge_shape);
    assert_eq!(listed[0]["id"], "b~x");
    assert_eq!(listed[0]["channels"], json!([a]));

    let mut ws2 = ws_connect(&emu, Auth::ApiKey).await.expect("a new client");
    let (channels2, bridges2) = lists().await;
    assert_eq!((channels2, bridges2), (channels.clone(), bridges.clone()));
    ws2.settle(SETTLE).await;
    assert!(ws2.events.is_empty(), "no replay: {:?}", ws2.types());
}

/// An Asterisk restart as the emulator plays it: the connected WebSocket
/// is closed, the call in Stasis and every bridge vanish without an event,
/// and `GET /asterisk/info` answers a new `status.startup_time` (what the
/// adapter compares to tell a restart from a link drop); afterwards calls
/// are taken again on a new connection.
#[actix_rt::test]
async fn ari_restart_drops_everything_and_changes_the_startup_time() {
    let emu = emulator();
    let startup = |a: Answer| a.json["status"]["startup_time"].as_str().map(str::to_owned);
    let before = startup(call(&emu, "GET", "/ari/asterisk/info", Auth::Basic).await);
    assert!(before.is_some(), "the start-up time is served");
    let ws = ws_connect(&emu, Auth::Basic).await;
    assert!(ws.is_ok());
    let caller = emu.inbound_call("5550100", "Ann", "800", &[]).unwrap();
    assert!(emu.state().channel(&caller).is_some());
    let sent = emu.sent_events().len();
    emu.restart_pbx();
    let after = startup(call(&emu, "GET", "/ari/asterisk/info", Auth::Basic).await);
    assert!(
        after.is_some() && after != before,
        "{before:?} -> {after:?}"
    );
    assert!(emu.channels().is_empty(), "{:?}", emu.channels());
    assert!(emu.bridges().is_empty());
    assert_eq!(emu.connected_links(), 0);
    assert_eq!(emu.sent_events().len(), sent, "no event for what vanished");
    let again = ws_connect(&emu, Auth::Basic).await;
    assert!(again.is_ok());
    assert!(emu.inbound_call("5550101", "Bob", "800", &[]).is_ok());
    drop((ws, again));
}

/// Asterisk 22 refuses a new channel id that is, ignoring case, a prefix of
/// (or equal to) a live channel's id (issue 16: `x~spy` then `x` got 409 on
/// a real 22.10.1; main/channel.c looks assigned ids up by partial key).
/// The converse is allowed. An originate answers 409, a snoop 500, and
/// nothing is created.
#[actix_rt::test]
async fn ari_new_channel_id_that_prefixes_a_live_one_is_refused() {
    let emu = emulator();
    let _ws = ws_connect(&emu, Auth::Basic).await.expect("ws");
    let ring = "/ari/channels?endpoint=Local/1003@agents/n&app=edgecc";
    ok(&emu, "POST", &format!("{ring}&channelId=c1~7~spy"), 200).await;
    let conflict = json!({"message": "Channel with given unique ID already exists"});
    for refused in ["c1~7", "C1~7~S", "c1~7~spy", "c1"] {
        let v = ok(&emu, "POST", &format!("{ring}&channelId={refused}"), 409).await;
        assert_eq!(v, conflict, "{refused}");
    }
    // `otherChannelId` (the `;2` half's id) is checked too.
    let v = ok(
        &emu,
        "POST",
        &format!("{ring}&channelId=fresh&otherChannelId=c1~7~s"),
        409,
    )
    .await;
    assert_eq!(v, conflict);
    assert!(emu.state().channel("fresh").is_none(), "nothing created");
    // A new id that a live id is a prefix of is fine.
    ok(&emu, "POST", &format!("{ring}&channelId=c1~7~spy~2"), 200).await;
    ok(&emu, "POST", &format!("{ring}&channelId=c1~spy7"), 200).await;
    // A snoop whose id prefixes a live channel's cannot be allocated.
    let v = ok(
        &emu,
        "POST",
        "/ari/channels/c1~spy7/snoop?spy=both&app=edgecc&snoopId=c1~7",
        500,
    )
    .await;
    assert_eq!(v, json!({"message": "Snoop channel could not be created"}));
    assert!(emu.state().channel("c1~7").is_none());
}

/// `core restart now` as the emulator plays it (main/asterisk.c
/// `can_safely_quit` with `SHUTDOWN_NORMAL`: `ast_softhangup_all()`): every
/// channel of the app gets a soft `ChannelHangupRequest` with cause 4
/// (`AST_SOFTHANGUP_SHUTDOWN`) before any of them leaves, then each leaves
/// the application and is destroyed, then the WebSocket closes and the
/// start-up time changes. `core stop now` does the same and then refuses
/// connections until Asterisk is started again.
#[actix_rt::test]
async fn ari_shutdown_now_soft_hangs_up_every_channel_with_cause_4() {
    let emu = emulator();
    let startup = |a: Answer| a.json["status"]["startup_time"].as_str().map(str::to_owned);
    let before = startup(call(&emu, "GET", "/ari/asterisk/info", Auth::Basic).await);
    let mut ws = ws_connect(&emu, Auth::Basic).await.expect("ws");
    let a = emu.inbound_call("5550100", "Ann", "800", &[]).unwrap();
    let b = emu.inbound_call("5550101", "Bob", "800", &[]).unwrap();
    assert!(ws.read_until(EVENT_WAIT, |e| e.len() >= 2).await);
    let skip = ws.events.len();
    emu.shutdown_now(true);
    ws.read_until(EVENT_WAIT, |_| false).await;
    assert!(ws.closed, "the WebSocket closes");
    let after: Vec<&Value> = ws.events[skip..]
        .iter()
        .filter(|e| !NOISE.contains(&e["type"].as_str().unwrap_or("")))
        .collect();
    let requests: Vec<(&str, &Value, &Value)> = after
        .iter()
        .filter(|e| e["type"] == "ChannelHangupRequest")
        .map(|e| {
            (
                e["channel"]["id"].as_str().unwrap_or(""),
                &e["cause"],
                &e["soft"],
            )
        })
        .collect();
    assert_eq!(
        requests,
        vec![
            (a.as_str(), &json!(4), &json!(true)),
            (b.as_str(), &json!(4), &json!(true))
        ]
    );
    let first_end = after.iter().position(|e| e["type"] == "StasisEnd");
    assert_eq!(first_end, Some(2), "both requests come first: {after:?}");
    assert_eq!(
        after.iter().filter(|e| e["type"] == "StasisEnd").count(),
        2,
        "{after:?}"
    );
    assert!(emu.channels().is_empty());
    let after_time = startup(call(&emu, "GET", "/ari/asterisk/info", Auth::Basic).await);
    assert!(after_time.is_some() && after_time != before);
    assert!(ws_connect(&emu, Auth::Basic).await.is_ok(), "restarted");
    emu.shutdown_now(false);
    assert!(
        ws_connect(&emu, Auth::Basic).await.is_err(),
        "stopped: no connection"
    );
    emu.start_again();
    assert!(ws_connect(&emu, Auth::Basic).await.is_ok());
}

/// `core restart gracefully` (`SHUTDOWN_NICE`): no new channel (an
/// originate answers 500 "Allocation failed", an inbound call fails), the
/// call up goes on without a single event, and when its last channel has
/// gone Asterisk restarts: the WebSocket closes and the start-up time
/// changes.
#[actix_rt::test]
async fn ari_graceful_shutdown_refuses_new_channels_and_waits_for_the_last_call() {
    let emu = emulator();
    let startup = |a: Answer| a.json["status"]["startup_time"].as_str().map(str::to_owned);
    let before = startup(call(&emu, "GET", "/ari/asterisk/info", Auth::Basic).await);
    let mut ws = ws_connect(&emu, Auth::Basic).await.expect("ws");
    let a = emu.inbound_call("5550100", "Ann", "800", &[]).unwrap();
    assert!(ws.read_until(EVENT_WAIT, |e| !e.is_empty()).await);
    emu.shutdown_gracefully(true);
    let v = ok(
        &emu,
        "POST",
        "/ari/channels?endpoint=Local/1001@agents/n&app=edgecc&channelId=x~1",
        500,
    )
    .await;
    assert_eq!(v, json!({"error": "Allocation failed"}));
    assert_eq!(
        emu.inbound_call("5550101", "Bob", "800", &[]),
        Err(EmulatorError::ShuttingDown)
    );
    let seen = ws.events.len();
    ws.settle(SETTLE).await;
    assert_eq!(ws.events.len(), seen, "the call up hears nothing");
    assert!(emu.state().channel(&a).is_some());
    assert_eq!(
        startup(call(&emu, "GET", "/ari/asterisk/info", Auth::Basic).await),
        before
    );
    emu.caller_hangup(&a).unwrap();
    ws.read_until(EVENT_WAIT, |_| false).await;
    assert!(ws.closed, "Asterisk ended once the last call had");
    let after = startup(call(&emu, "GET", "/ari/asterisk/info", Auth::Basic).await);
    assert!(after.is_some() && after != before);
    let _again = ws_connect(&emu, Auth::Basic).await.expect("restarted");
    assert!(emu.inbound_call("5550102", "Cy", "800", &[]).is_ok());
}
