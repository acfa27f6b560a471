//! The WebSocket `/api/v1/events`: authentication (query token or first
//! message), the snapshot on connect, events, and the promise that a
//! reconnect mid-offer or mid-call restores the same screen while the call
//! carries on; a desktop gone past the grace gets no new queue calls.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};

use crate::util::HttpTest;

/// Long token lifetime for these tests.
const LONG_MS: u64 = 3_600_000;
/// Longest wait for one expected message.
const MESSAGE_WAIT: Duration = Duration::from_secs(10);

/// A client WebSocket connection (awc's framed socket).
pub(crate) trait Conn:
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

/// Opens the event stream, with `?token=` when given.
pub(crate) async fn connect(t: &HttpTest, token: Option<&str>) -> Result<impl Conn, u16> {
    let url = match token {
        Some(tok) => format!("ws://{}/api/v1/events?token={tok}", t.http.local_addr),
        None => format!("ws://{}/api/v1/events", t.http.local_addr),
    };
    match awc::Client::new().ws(url).connect().await {
        Ok((_res, conn)) => Ok(conn),
        Err(awc::error::WsClientError::InvalidResponseStatus(s)) => Err(s.as_u16()),
        Err(e) => panic!("ws connect: {e}"),
    }
}

/// Reads JSON messages until `pred` holds (bounded); panics on close.
pub(crate) async fn until(
    conn: &mut impl Conn,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + MESSAGE_WAIT;
    loop {
        let frame = tokio::time::timeout_at(deadline, conn.next())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
        match frame {
            Some(Ok(awc::ws::Frame::Text(bytes))) => {
                let v: Value = serde_json::from_slice(&bytes).expect("json message");
                if pred(&v) {
                    return v;
                }
            }
            Some(Ok(awc::ws::Frame::Ping(p))) => {
                let _ = conn.send(awc::ws::Message::Pong(p)).await;
            }
            Some(Ok(awc::ws::Frame::Close(r))) => panic!("closed while waiting for {what}: {r:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("ws error while waiting for {what}: {e}"),
            None => panic!("stream ended while waiting for {what}"),
        }
    }
}

/// Logs `user` in and puts it Ready.
async fn ready(t: &HttpTest, user: &str) -> String {
    let token = t.login(user).await;
    for s in ["login", "ready"] {
        let (status, v) = t
            .call(
                "POST",
                "/api/v1/agent/state",
                Some(&token),
                Some(json!({"state": s})),
            )
            .await;
        assert_eq!(status, 200, "{v}");
    }
    token
}

/// A bad token in the query is refused at the handshake (401); a bad first
/// message gets an error and a close; a good first message gets the
/// snapshot.
#[actix_rt::test]
async fn http_ws_auth() {
    let t = HttpTest::start(crate::util::http_config(LONG_MS, LONG_MS)).await;
    assert_eq!(connect(&t, Some("bogus")).await.err(), Some(401));
    let mut conn = connect(&t, None).await.expect("connect");
    conn.send(awc::ws::Message::Text(r#"{"token":"bogus"}"#.into()))
        .await
        .unwrap();
    let v = until(&mut conn, "error", |v| v["type"] == "error").await;
    assert_eq!(v["error"], "unauthorized");

    let token = t.login("ann").await;
    let mut conn = connect(&t, None).await.expect("connect");
    conn.send(awc::ws::Message::Text(
        json!({"token": token}).to_string().into(),
    ))
    .await
    .unwrap();
    let v = until(&mut conn, "snapshot", |v| v["type"] == "snapshot").await;
    assert_eq!(v["agent"]["agent_id"], "ann");
    assert!(
        v["reason_codes"].as_array().is_some_and(|r| r.len() == 2),
        "{v}"
    );

    let sue = t.login("sue").await;
    let mut wall = connect(&t, Some(&sue)).await.expect("connect");
    let v = until(&mut wall, "wallboard", |v| v["type"] == "wallboard").await;
    assert_eq!(v["agents"].as_array().map(Vec::len), Some(2), "{v}");
    let (s, _) = t
        .call(
            "POST",
            "/api/v1/agent/state",
            Some(&token),
            Some(json!({"state": "login"})),
        )
        .await;
    assert_eq!(s, 200);
    until(&mut wall, "ann's change", |v| {
        v["type"] == "agent_changed" && v["agent"]["agent"] == "ann"
    })
    .await;
    until(&mut wall, "wallboard refresh", |v| {
        v["type"] == "wallboard"
            && v["agents"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|a| a["agent_id"] == "ann" && a["state"] == "not_ready")
            })
    })
    .await;
    t.http.stop().await;
}

/// A message the server does not know gets an error naming the one it
/// does, and the connection stays; `resync` gets a fresh snapshot; a frame
/// over the size limit closes the connection with 1009 (message too big).
#[actix_rt::test]
async fn http_ws_bad_messages_get_an_error() {
    let t = HttpTest::start(crate::util::http_config(LONG_MS, LONG_MS)).await;
    let token = t.login("ann").await;
    let mut conn = connect(&t, Some(&token)).await.expect("connect");
    until(&mut conn, "snapshot", |v| v["type"] == "snapshot").await;
    for bad in ["not json", r#"{"type":"accept"}"#, r#"{"kind":"resync"}"#] {
        conn.send(awc::ws::Message::Text(bad.into())).await.unwrap();
        let v = until(&mut conn, "error", |v| v["type"] == "error").await;
        assert_eq!(v["error"], "bad_message", "{bad}: {v}");
        assert!(
            v["message"].as_str().is_some_and(|m| m.contains("resync")),
            "{bad}: {v}"
        );
    }
    conn.send(awc::ws::Message::Text(r#"{"type":"resync"}"#.into()))
        .await
        .unwrap();
    until(&mut conn, "snapshot after resync", |v| {
        v["type"] == "snapshot"
    })
    .await;
    let big = format!(r#"{{"type":"resync","pad":"{}"}}"#, "x".repeat(8 * 1024));
    conn.send(awc::ws::Message::Text(big.into())).await.unwrap();
    let deadline = tokio::time::Instant::now() + MESSAGE_WAIT;
    let code = loop {
        let frame = tokio::time::timeout_at(deadline, conn.next())
            .await
            .expect("a close after the oversized frame");
        match frame {
            Some(Ok(awc::ws::Frame::Close(r))) => break r.map(|r| r.code),
            Some(Ok(_)) => {}
            other => panic!("no close frame: {other:?}"),
        }
    };
    assert_eq!(code, Some(awc::ws::CloseCode::Size));
    t.http.stop().await;
}

/// Reconnecting mid-offer shows the same offer again (caller number,
/// attached data); reconnecting mid-call shows the same call, held, with
/// its duration; the call never notices the disconnects.
#[actix_rt::test]
async fn http_ws_reconnect_restores_offer_and_call() {
    let t = HttpTest::start(crate::util::http_config(LONG_MS, LONG_MS)).await;
    let ann = ready(&t, "ann").await;
    t.phone_rings("1001", 1).await;
    let mut conn = connect(&t, Some(&ann)).await.expect("connect");
    let v = until(&mut conn, "snapshot", |v| v["type"] == "snapshot").await;
    assert_eq!(v["agent"]["state"], "ready");

    let call = t.place_call("+15551112222").await;
    let offer = until(&mut conn, "offer", |v| {
        v["type"] == "snapshot" && v["offer"] == true
    })
    .await;
    assert_eq!(offer["call"]["call_id"], call.as_str());
    assert_eq!(offer["call"]["ani"], "+15551112222");
    drop(conn);

    // Refresh mid-offer: the offer is shown again.
    actix_rt::time::sleep(Duration::from_millis(100)).await;
    let mut conn = connect(&t, Some(&ann)).await.expect("reconnect");
    let again = until(&mut conn, "snapshot", |v| v["type"] == "snapshot").await;
    assert_eq!(again["offer"], true, "{again}");
    assert_eq!(again["call"]["call_id"], call.as_str());
    assert_eq!(again["call"]["ani"], "+15551112222");
    assert_eq!(again["agent"]["state"], "reserved");

    let (s, v) = t
        .call(
            "POST",
            &format!("/api/v1/calls/{call}/accept"),
            Some(&ann),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    until(&mut conn, "talking", |v| {
        v["type"] == "snapshot" && v["agent"]["state"] == "talking"
    })
    .await;
    let (s, v) = t
        .call(
            "POST",
            &format!("/api/v1/calls/{call}/hold"),
            Some(&ann),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = t
        .call(
            "POST",
            &format!("/api/v1/calls/{call}/mute"),
            Some(&ann),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    until(&mut conn, "held", |v| {
        v["type"] == "snapshot" && v["call"]["held"] == true
    })
    .await;
    drop(conn);

    // Network blip mid-call: same call, still held and muted, still talking.
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    let mut conn = connect(&t, Some(&ann)).await.expect("reconnect");
    let back = until(&mut conn, "snapshot", |v| v["type"] == "snapshot").await;
    assert_eq!(back["agent"]["state"], "talking", "{back}");
    assert_eq!(back["call"]["call_id"], call.as_str());
    assert_eq!(back["call"]["held"], true);
    assert_eq!(back["call"]["muted"], true);
    assert!(
        back["call"]["duration_ms"]
            .as_u64()
            .is_some_and(|d| d >= 300),
        "{back}"
    );
    assert!(
        back["call"]["interaction"]["sync_state"].is_string(),
        "{back}"
    );

    // Resync on request.
    conn.send(awc::ws::Message::Text(r#"{"type":"resync"}"#.into()))
        .await
        .unwrap();
    until(&mut conn, "resync", |v| {
        v["type"] == "snapshot" && v["call"]["call_id"] == call.as_str()
    })
    .await;
    t.http.stop().await;
}

/// A desktop that stays away past the grace gets no new queue calls (the
/// agent goes Not Ready); one back within the grace stays Ready; a call in
/// progress continues (Not Ready is pending until it ends).
#[actix_rt::test]
async fn http_ws_desktop_grace() {
    let grace_ms = 400;
    let t = HttpTest::start(crate::util::http_config(LONG_MS, grace_ms)).await;
    let ann = ready(&t, "ann").await;
    let bob = ready(&t, "bob").await;

    // Ann blips and comes back within the grace: still Ready.
    let conn = connect(&t, Some(&ann)).await.expect("connect");
    drop(conn);
    actix_rt::time::sleep(Duration::from_millis(100)).await;
    let mut conn = connect(&t, Some(&ann)).await.expect("reconnect");
    until(&mut conn, "snapshot", |v| v["type"] == "snapshot").await;
    actix_rt::time::sleep(Duration::from_millis(grace_ms + 300)).await;
    let (_, me) = t.call("GET", "/api/v1/me", Some(&ann), None).await;
    assert_eq!(me["agent"]["state"], "ready", "{me}");

    // Bob connects, takes a call (auto-answering phone), then goes away.
    let mut bconn = connect(&t, Some(&bob)).await.expect("connect");
    until(&mut bconn, "snapshot", |v| v["type"] == "snapshot").await;
    let (s, _) = t
        .call(
            "POST",
            "/api/v1/agent/state",
            Some(&ann),
            Some(json!({"state": "not_ready", "reason_code": "break"})),
        )
        .await;
    assert_eq!(s, 200);
    let call = t.place_call("+15553334444").await;
    until(&mut bconn, "talking", |v| {
        v["type"] == "snapshot" && v["agent"]["state"] == "talking"
    })
    .await;
    drop(bconn);
    actix_rt::time::sleep(Duration::from_millis(grace_ms + 400)).await;
    let me = t
        .wait_me(&bob, "pending not ready", |v| {
            !v["agent"]["pending"].is_null()
        })
        .await;
    assert_eq!(me["agent"]["state"], "talking", "call continues: {me}");
    assert_eq!(me["call"]["call_id"], call.as_str());

    // Ann (Ready, connected) closes her desktop: Not Ready after the grace.
    let (s, _) = t
        .call(
            "POST",
            "/api/v1/agent/state",
            Some(&ann),
            Some(json!({"state": "ready"})),
        )
        .await;
    assert_eq!(s, 200);
    drop(conn);
    let me = t
        .wait_me(&ann, "not ready after grace", |v| {
            v["agent"]["state"] == "not_ready"
        })
        .await;
    assert!(
        me["agent"]["reason"]
            .as_str()
            .unwrap_or("")
            .starts_with("system:"),
        "{me}"
    );
    t.http.stop().await;
}

/// Mute is per party (issue 13): in a conference each desktop shows its own
/// microphone. Ann mutes and Bob's desktop still shows him unmuted; Bob
/// mutes and Ann unmutes, and each desktop follows its own agent. Checked on
/// both desktops' WebSocket snapshots and their `/me`. (The hub used to keep
/// one mute flag per call, so every desktop showed the last one set.)
#[actix_rt::test]
async fn http_ws_conference_mute_is_per_party() {
    let t = HttpTest::start(crate::util::http_config(LONG_MS, LONG_MS)).await;
    let ann = ready(&t, "ann").await;
    let bob = t.login("bob").await;
    let (s, v) = t
        .call(
            "POST",
            "/api/v1/agent/state",
            Some(&bob),
            Some(json!({"state": "login"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let mut aconn = connect(&t, Some(&ann)).await.expect("connect ann");
    until(&mut aconn, "ann's snapshot", |v| v["type"] == "snapshot").await;
    let mut bconn = connect(&t, Some(&bob)).await.expect("connect bob");
    until(&mut bconn, "bob's snapshot", |v| v["type"] == "snapshot").await;

    // Ann's phone answers by itself; she adds Bob (his phone too).
    let call = t.place_call("+15556667777").await;
    until(&mut aconn, "ann talking", |v| {
        v["type"] == "snapshot" && v["agent"]["state"] == "talking"
    })
    .await;
    let path = |a: &str| format!("/api/v1/calls/{call}/{a}");
    let (s, v) = t
        .call(
            "POST",
            &path("conference_add"),
            Some(&ann),
            Some(json!({"target_agent": "bob"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    until(&mut bconn, "bob in the conference", |v| {
        v["type"] == "snapshot"
            && v["agent"]["state"] == "talking"
            && v["call"]["call_id"] == call.as_str()
            && v["call"]["parties"].as_array().map(Vec::len) == Some(2)
    })
    .await;

    // Ann mutes: her desktop shows it, Bob's does not.
    let (s, v) = t.call("POST", &path("mute"), Some(&ann), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["call"]["muted"], true, "ann's answer: {v}");
    let (_, me) = t.call("GET", "/api/v1/me", Some(&bob), None).await;
    assert_eq!(me["call"]["muted"], false, "bob's /me: {me}");
    let (_, me) = t.call("GET", "/api/v1/me", Some(&ann), None).await;
    assert_eq!(me["call"]["muted"], true, "ann's /me: {me}");
    // A desktop's frames after the call's event are snapshots taken after it.
    for (conn, own) in [(&mut aconn, true), (&mut bconn, false)] {
        until(&mut *conn, "the call's view naming ann muted", |v| {
            v["type"] == "call_changed" && v["call"]["muted"] == json!(["ann"])
        })
        .await;
        let snap = until(&mut *conn, "a snapshot", |v| v["type"] == "snapshot").await;
        assert_eq!(snap["call"]["muted"], own, "{snap}");
    }

    // Bob mutes, Ann unmutes: each desktop shows its own agent.
    let (s, v) = t.call("POST", &path("mute"), Some(&bob), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["call"]["muted"], true, "bob's answer: {v}");
    let (s, v) = t.call("POST", &path("unmute"), Some(&ann), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["call"]["muted"], false, "ann's answer: {v}");
    let (_, me) = t.call("GET", "/api/v1/me", Some(&bob), None).await;
    assert_eq!(me["call"]["muted"], true, "bob's /me: {me}");
    for (conn, own) in [(&mut aconn, false), (&mut bconn, true)] {
        until(&mut *conn, "the call's view naming bob muted", |v| {
            v["type"] == "call_changed" && v["call"]["muted"] == json!(["bob"])
        })
        .await;
        let snap = until(&mut *conn, "a snapshot", |v| v["type"] == "snapshot").await;
        assert_eq!(snap["call"]["call_id"], call.as_str());
        assert_eq!(snap["call"]["muted"], own, "{snap}");
    }
    t.http.stop().await;
}
