//! The HTTP API over real HTTP on 127.0.0.1: every endpoint, with the ways
//! a request goes wrong (no token, expired token, wrong role, another
//! agent's call, malformed JSON, unknown call id). Each test starts the
//! whole system (simulated PBX, temp data dir) and the server on port 0.

use std::time::Duration;

use serde_json::json;

use crate::util::{HttpTest, HTTP_TEST_PASSWORD};

/// Long token lifetime and desktop grace for tests that are not about them.
const LONG_MS: u64 = 3_600_000;

/// Login answers a token; wrong passwords are 401 and repeated failures are
/// throttled (429); logout revokes the token.
#[actix_rt::test]
async fn http_session_login_logout_and_throttle() {
    let t = HttpTest::start(crate::util::http_config(LONG_MS, LONG_MS)).await;
    let token = t.login("ann").await;
    let (s, me) = t.call("GET", "/api/v1/me", Some(&token), None).await;
    assert_eq!(s, 200, "{me}");
    assert_eq!(me["agent"]["agent_id"], "ann");
    assert_eq!(me["agent"]["state"], "logged_out");

    let (s, _) = t
        .call("DELETE", "/api/v1/session", Some(&token), None)
        .await;
    assert_eq!(s, 204);
    let (s, e) = t.call("GET", "/api/v1/me", Some(&token), None).await;
    assert_eq!(s, 401, "revoked token: {e}");
    assert_eq!(e["error"], "unauthorized");

    let wrong = json!({"agent_id": "bob", "password": "nope"});
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let (s, _) = t
            .call("POST", "/api/v1/session", None, Some(wrong.clone()))
            .await;
        statuses.push(s);
    }
    assert_eq!(&statuses[..3], &[401, 401, 401]);
    assert!(
        statuses[3..].contains(&429),
        "throttled after failures: {statuses:?}"
    );
    // Even the right password waits out the lock.
    let right = json!({"agent_id": "bob", "password": HTTP_TEST_PASSWORD});
    let (s, e) = t.call("POST", "/api/v1/session", None, Some(right)).await;
    assert_eq!(s, 429, "{e}");
    assert_eq!(e["error"], "too_many_attempts");

    // Unknown user: 401, same as a wrong password.
    let (s, _) = t
        .call(
            "POST",
            "/api/v1/session",
            None,
            Some(json!({"agent_id": "zed", "password": "x"})),
        )
        .await;
    assert!(s == 401 || s == 429, "{s}");
    t.http.stop().await;
}

/// No token, a garbage token and an expired token are 401 with a JSON
/// error; the fixed script endpoints keep their shape.
#[actix_rt::test]
async fn http_auth_no_token_and_expired_token() {
    // A login includes one durable write (the session is kept across
    // restarts): the lifetime leaves room for it on a loaded box.
    let t = HttpTest::start(crate::util::http_config(1_500, LONG_MS)).await;
    for path in [
        "/api/v1/agents",
        "/api/v1/queues",
        "/api/v1/me",
        "/api/v1/calls",
    ] {
        let (s, e) = t.call("GET", path, None, None).await;
        assert_eq!(s, 401, "{path}: {e}");
        assert_eq!(e["error"], "unauthorized", "{path}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
        let (s, _) = t.call("GET", path, Some("not-a-token"), None).await;
        assert_eq!(s, 401, "{path} with a garbage token");
    }
    let token = t.login("sue").await;
    let (s, v) = t.call("GET", "/api/v1/agents", Some(&token), None).await;
    assert_eq!(s, 200, "{v}");
    actix_rt::time::sleep(Duration::from_millis(1_700)).await;
    let (s, e) = t.call("GET", "/api/v1/agents", Some(&token), None).await;
    assert_eq!(s, 401, "expired: {e}");
    assert!(
        e["message"].as_str().unwrap_or("").contains("expired"),
        "{e}"
    );
    t.http.stop().await;
}

/// Malformed JSON, unknown fields, wrong types and oversized bodies are 400
/// (413) with a message naming the field; unknown routes are JSON 404s.
#[actix_rt::test]
async fn http_bad_bodies_name_the_field() {
    let t = HttpTest::start(crate::util::http_config(LONG_MS, LONG_MS)).await;
    let raw = |body: &'static str| {
        let t = &t;
        async move {
            let mut res = t
                .client()
                .post(t.url("/api/v1/session"))
                .insert_header(("Content-Type", "application/json"))
                .send_body(body)
                .await
                .expect("request");
            let v: serde_json::Value = res.json().await.unwrap_or_default();
            (res.status().as_u16(), v)
        }
    };
    let (s, e) = raw("{\"agent_id\": ").await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(e["error"], "bad_request");
    let (s, e) = raw(r#"{"agent_id": "ann", "password": "x", "extra": 1}"#).await;
    assert_eq!(s, 400);
    assert!(e["message"].as_str().unwrap().contains("extra"), "{e}");
    let (s, e) = raw(r#"{"agent_id": 42, "password": "x"}"#).await;
    assert_eq!(s, 400);
    assert!(e["message"].as_str().unwrap().contains("agent_id"), "{e}");
    let (s, e) = raw(r#"{"agent_id": "ann"}"#).await;
    assert_eq!(s, 400);
    assert!(e["message"].as_str().unwrap().contains("password"), "{e}");

    let big = "x".repeat(64 * 1024);
    let (s, e) = t
        .call(
            "POST",
            "/api/v1/session",
            None,
            Some(json!({"agent_id": big, "password": "x"})),
        )
        .await;
    assert_eq!(s, 413, "{e}");

    let token = t.login("ann").await;
    let (s, e) = t
        .call(
            "POST",
            "/api/v1/agent/state",
            Some(&token),
            Some(json!({"state": 7})),
        )
        .await;
    assert_eq!(s, 400);
    assert!(e["message"].as_str().unwrap().contains("state"), "{e}");
    let (s, e) = t
        .call(
            "POST",
            "/api/v1/agent/state",
            Some(&token),
            Some(json!({"state": "dancing"})),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    let (s, e) = t
        .call(
            "POST",
            "/api/v1/agent/state",
            Some(&token),
            Some(json!({"state": "not_ready", "reason_code": "nap"})),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("reason_code"),
        "{e}"
    );
    let (s, e) = t.call("GET", "/api/v1/nowhere", Some(&token), None).await;
    assert_eq!(s, 404);
    assert_eq!(e["error"], "not_found");
    let (s, e) = t
        .call(
            "GET",
            "/api/v1/admin/dead_letters?from=abc",
            Some(&token),
            None,
        )
        .await;
    assert!(s == 400 || s == 403, "{s} {e}");
    t.http.stop().await;
}

/// The agent flow: login, Not Ready with a reason, Ready, an offer, accept,
/// hold, resume, mute, unmute, open interaction, sticky customer, hang up,
/// wrap-up code, end wrap-up. Bob may not touch Ann's call; unknown calls
/// are 404; a supervisor may not use agent controls.
#[actix_rt::test]
async fn http_agent_call_controls_and_ownership() {
    let mut config = crate::util::http_config(LONG_MS, LONG_MS);
    config.contact_center.queues[0].sticky.wait_ms = 30_000;
    let t = HttpTest::start(config).await;
    let ann = t.login("ann").await;
    let bob = t.login("bob").await;
    let sue = t.login("sue").await;
    let state = |s: &str| json!({"state": s});
    let (s, v) = t
        .call(
            "POST",
            "/api/v1/agent/state",
            Some(&ann),
            Some(state("login")),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = t
        .call(
            "POST",
            "/api/v1/agent/state",
            Some(&ann),
            Some(json!({"state": "not_ready", "reason_code": "break"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["agent"]["state"], "not_ready");
    assert_eq!(v["agent"]["reason"], "break");
    let (s, v) = t
        .call(
            "POST",
            "/api/v1/agent/state",
            Some(&ann),
            Some(state("ready")),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = t
        .call(
            "POST",
            "/api/v1/agent/state",
            Some(&bob),
            Some(state("login")),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = t
        .call(
            "POST",
            "/api/v1/agent/state",
            Some(&sue),
            Some(state("ready")),
        )
        .await;
    assert_eq!(s, 403, "a supervisor has no agent state");

    t.phone_rings("1001", 1).await;
    let call = t.place_call("+15551234567").await;
    let me = t
        .wait_me(&ann, "offer", |v| {
            v["offer"] == true && v["call"]["call_id"] == call.as_str()
        })
        .await;
    assert_eq!(me["call"]["ani"], "+15551234567");
    assert_eq!(me["agent"]["state"], "reserved");

    let path = |a: &str| format!("/api/v1/calls/{call}/{a}");
    let (s, e) = t.call("POST", &path("accept"), Some(&bob), None).await;
    assert_eq!(s, 403, "bob accepts ann's call: {e}");
    let (s, e) = t.call("POST", &path("hold"), Some(&sue), None).await;
    assert_eq!(s, 403, "supervisor uses agent controls: {e}");
    let (s, e) = t
        .call("POST", "/api/v1/calls/no-such-call/hold", Some(&ann), None)
        .await;
    assert_eq!(s, 404, "{e}");
    let (s, e) = t.call("POST", &path("dance"), Some(&ann), None).await;
    assert_eq!(s, 404, "{e}");

    let (s, v) = t.call("POST", &path("accept"), Some(&ann), None).await;
    assert_eq!(s, 200, "{v}");
    t.wait_me(&ann, "talking", |v| v["agent"]["state"] == "talking")
        .await;
    let (s, v) = t.call("POST", &path("hold"), Some(&ann), None).await;
    assert_eq!(s, 200, "{v}");
    t.wait_me(&ann, "held", |v| v["call"]["held"] == true).await;
    let (s, _) = t.call("POST", &path("hold"), Some(&bob), None).await;
    assert_eq!(s, 403);
    let (s, v) = t.call("POST", &path("resume"), Some(&ann), None).await;
    assert_eq!(s, 200, "{v}");
    t.wait_me(&ann, "resumed", |v| v["call"]["held"] == false)
        .await;
    let (s, v) = t.call("POST", &path("mute"), Some(&ann), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["call"]["muted"], true);
    let (s, v) = t.call("POST", &path("unmute"), Some(&ann), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["call"]["muted"], false);
    assert!(v["call"]["duration_ms"].is_u64(), "{v}");

    let (s, v) = t
        .call(
            "GET",
            &format!("/api/v1/interactions/{call}"),
            Some(&ann),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["interaction_id"], call.as_str());
    assert!(
        ["pending", "local", "delivered"].contains(&v["sync_state"].as_str().unwrap()),
        "{v}"
    );
    let (s, _) = t
        .call(
            "GET",
            &format!("/api/v1/interactions/{call}"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(s, 403, "bob opens ann's interaction");
    let (s, v) = t
        .call(
            "GET",
            &format!("/api/v1/interactions/{call}"),
            Some(&sue),
            None,
        )
        .await;
    assert_eq!(s, 200, "supervisor opens it: {v}");

    // The caller becomes ann's customer, and the answer says what routing
    // does with it: sales holds the caller's calls 30 s for ann.
    let (s, v) = t.call("POST", &path("sticky"), Some(&ann), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["ani"], "+15551234567", "{v}");
    assert_eq!(v["agent_id"], "ann", "{v}");
    assert_eq!(v["source"], "agent", "{v}");
    assert_eq!(v["routing"], "waits_for_agent", "{v}");
    assert_eq!(
        v["queues"],
        json!([{"queue_id": "sales", "wait_ms": 30_000}]),
        "{v}"
    );

    let (s, e) = t
        .call("POST", &path("transfer"), Some(&ann), Some(json!({})))
        .await;
    assert_eq!(s, 400, "{e}");
    let (s, e) = t
        .call(
            "POST",
            &path("transfer"),
            Some(&ann),
            Some(json!({"target_agent": "bob", "bogus": 1})),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert!(e["message"].as_str().unwrap().contains("bogus"), "{e}");

    let (s, v) = t.call("POST", &path("hangup"), Some(&ann), None).await;
    assert_eq!(s, 200, "{v}");
    let me = t
        .wait_me(&ann, "wrap-up", |v| v["agent"]["state"] == "wrap_up")
        .await;
    // The ended call as the desktop shows it in wrap-up: its caller number
    // comes from the agent's recent calls, which the actors keep.
    assert_eq!(me["call"]["phase"], "ended", "{me}");
    assert_eq!(me["call"]["ani"], "+15551234567", "{me}");
    let (s, e) = t
        .call("POST", &path("wrap_up"), Some(&ann), Some(json!({})))
        .await;
    assert_eq!(s, 400, "{e}");
    let (s, v) = t
        .call(
            "POST",
            &path("wrap_up"),
            Some(&ann),
            Some(json!({"code": "sale"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = t
        .call(
            "GET",
            &format!("/api/v1/interactions/{call}"),
            Some(&ann),
            None,
        )
        .await;
    assert_eq!(s, 200, "after the call: {v}");
    let (s, v) = t
        .call("POST", "/api/v1/agent/wrap_up/end", Some(&ann), None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["agent"]["state"], "ready");
    // Ready again, the call is still among ann's recent calls: she opens its
    // interaction and makes its caller her customer; bob still may not.
    let (s, v) = t
        .call(
            "GET",
            &format!("/api/v1/interactions/{call}"),
            Some(&ann),
            None,
        )
        .await;
    assert_eq!(s, 200, "after wrap-up: {v}");
    let (s, v) = t.call("POST", &path("sticky"), Some(&ann), None).await;
    assert_eq!(s, 200, "sticky after the call: {v}");
    assert_eq!(v["ani"], "+15551234567", "{v}");
    let (s, _) = t.call("POST", &path("sticky"), Some(&bob), None).await;
    assert_ne!(s, 200, "bob makes ann's customer his");
    t.http.stop().await;
}

/// Goal: the sticky endpoint routes (issue 18), with no CRM at all
/// (`crm.kind = "none"`: every record waits in the outbox). Method: sales
/// waits 60 s for a caller's own agent; ann answers a call from a number and
/// makes the caller hers, hangs up, ends her wrap-up and goes Not Ready;
/// bob is Ready; the number calls again. Expected: a second later bob is
/// still Ready, not offered the call; once ann says Ready she is offered it.
#[actix_rt::test]
async fn http_sticky_customer_waits_for_its_agent() {
    let mut config = crate::util::http_config(LONG_MS, LONG_MS);
    config.contact_center.queues[0].sticky.wait_ms = 60_000;
    let t = HttpTest::start(config).await;
    let ann = t.login("ann").await;
    let bob = t.login("bob").await;
    let set = |token: &str, body: serde_json::Value| {
        let token = token.to_owned();
        let t = &t;
        async move {
            let (s, v) = t
                .call("POST", "/api/v1/agent/state", Some(&token), Some(body))
                .await;
            assert_eq!(s, 200, "{v}");
        }
    };
    set(&ann, json!({"state": "login"})).await;
    set(&ann, json!({"state": "ready"})).await;
    t.phone_rings("1001", 2).await;
    let first = t.place_call("+15557654321").await;
    t.wait_me(&ann, "offer", |v| v["call"]["call_id"] == first.as_str())
        .await;
    let path = |call: &str, a: &str| format!("/api/v1/calls/{call}/{a}");
    let (s, v) = t
        .call("POST", &path(&first, "accept"), Some(&ann), None)
        .await;
    assert_eq!(s, 200, "{v}");
    t.wait_me(&ann, "talking", |v| v["agent"]["state"] == "talking")
        .await;
    let (s, v) = t
        .call("POST", &path(&first, "sticky"), Some(&ann), None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["routing"], "waits_for_agent", "{v}");
    let (s, v) = t
        .call("POST", &path(&first, "hangup"), Some(&ann), None)
        .await;
    assert_eq!(s, 200, "{v}");
    t.wait_me(&ann, "wrap-up", |v| v["agent"]["state"] == "wrap_up")
        .await;
    let (s, v) = t
        .call("POST", "/api/v1/agent/wrap_up/end", Some(&ann), None)
        .await;
    assert_eq!(s, 200, "{v}");
    set(&ann, json!({"state": "not_ready", "reason_code": "break"})).await;
    set(&bob, json!({"state": "login"})).await;
    set(&bob, json!({"state": "ready"})).await;
    t.phone_rings("1002", 1).await;

    let again = t.place_call("+15557654321").await;
    actix_rt::time::sleep(std::time::Duration::from_millis(1_000)).await;
    let (s, v) = t.call("GET", "/api/v1/me", Some(&bob), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["agent"]["state"], "ready",
        "bob takes ann's customer: {v}"
    );
    set(&ann, json!({"state": "ready"})).await;
    t.wait_me(&ann, "the customer's call", |v| {
        v["agent"]["state"] == "reserved" && v["call"]["call_id"] == again.as_str()
    })
    .await;
    t.http.stop().await;
}

/// Transfer and consult: blind transfer to a Ready agent moves the call
/// before any CRM confirmation; consult then cancel; outbound dial only in
/// Not Ready.
#[actix_rt::test]
async fn http_transfer_consult_and_dial() {
    let t = HttpTest::start(crate::util::http_config(LONG_MS, LONG_MS)).await;
    let ann = t.login("ann").await;
    let bob = t.login("bob").await;
    for tok in [&ann, &bob] {
        let (s, v) = t
            .call(
                "POST",
                "/api/v1/agent/state",
                Some(tok),
                Some(json!({"state": "login"})),
            )
            .await;
        assert_eq!(s, 200, "{v}");
    }
    let (s, _) = t
        .call(
            "POST",
            "/api/v1/agent/state",
            Some(&ann),
            Some(json!({"state": "ready"})),
        )
        .await;
    assert_eq!(s, 200);
    t.phone_rings("1001", 1).await;
    let call = t.place_call("+15550001111").await;
    t.wait_me(&ann, "offer", |v| v["offer"] == true).await;
    let (s, v) = t
        .call(
            "POST",
            &format!("/api/v1/calls/{call}/accept"),
            Some(&ann),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    t.wait_me(&ann, "talking", |v| v["agent"]["state"] == "talking")
        .await;

    // Bob is Not Ready: a transfer to him is refused (409), the call stays.
    let (s, e) = t
        .call(
            "POST",
            &format!("/api/v1/calls/{call}/transfer"),
            Some(&ann),
            Some(json!({"target_agent": "bob"})),
        )
        .await;
    assert_eq!(s, 409, "{e}");
    // Dial is refused while talking.
    let (s, e) = t
        .call(
            "POST",
            "/api/v1/agent/dial",
            Some(&ann),
            Some(json!({"number": "+15550002222"})),
        )
        .await;
    assert_eq!(s, 409, "{e}");
    let (s, e) = t
        .call(
            "POST",
            "/api/v1/agent/dial",
            Some(&bob),
            Some(json!({"number": "call me"})),
        )
        .await;
    assert_eq!(s, 400, "{e}");

    // Consult Bob (Ready now), then cancel.
    let (s, _) = t
        .call(
            "POST",
            "/api/v1/agent/state",
            Some(&bob),
            Some(json!({"state": "ready"})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, v) = t
        .call(
            "POST",
            &format!("/api/v1/calls/{call}/consult"),
            Some(&ann),
            Some(json!({"target_agent": "bob"})),
        )
        .await;
    assert!(s == 200 || s == 409, "consult: {s} {v}");
    if s == 200 {
        let (s, v) = t
            .call(
                "POST",
                &format!("/api/v1/calls/{call}/consult_cancel"),
                Some(&ann),
                None,
            )
            .await;
        assert!(s == 200 || s == 409, "cancel: {s} {v}");
        t.wait_me(&bob, "bob free again", |v| {
            v["agent"]["state"] != "reserved" && v["agent"]["state"] != "talking"
        })
        .await;
    }
    // Blind transfer to Bob (the interaction is local; no CRM configured).
    t.phone_rings("1002", 0).await;
    t.wait_me(&bob, "bob ready", |v| v["agent"]["state"] == "ready")
        .await;
    let (s, v) = t
        .call(
            "POST",
            &format!("/api/v1/calls/{call}/transfer"),
            Some(&ann),
            Some(json!({"target_agent": "bob"})),
        )
        .await;
    assert_eq!(s, 200, "transfer: {v}");
    t.wait_me(&bob, "bob has the call", |v| {
        v["call"]["call_id"] == call.as_str()
    })
    .await;

    // Outbound dial from Not Ready is accepted.
    let (s, _) = t
        .call(
            "POST",
            "/api/v1/agent/state",
            Some(&ann),
            Some(json!({"state": "not_ready", "reason_code": "lunch"})),
        )
        .await;
    assert_eq!(s, 200);
    let ann_state = t
        .wait_me(&ann, "ann not talking", |v| {
            v["agent"]["state"] != "talking"
        })
        .await;
    if ann_state["agent"]["state"] == "wrap_up" {
        let _ = t
            .call("POST", "/api/v1/agent/wrap_up/end", Some(&ann), None)
            .await;
    }
    let me = t
        .wait_me(&ann, "ann not ready", |v| {
            v["agent"]["state"] == "not_ready"
        })
        .await;
    assert_eq!(me["agent"]["reason"], "lunch", "{me}");
    let (s, v) = t
        .call(
            "POST",
            "/api/v1/agent/dial",
            Some(&ann),
            Some(json!({"number": "+15550002222"})),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    t.http.stop().await;
}

/// Supervisor: team view, queues with waiting calls and longest wait, force
/// Not Ready and logout, monitor/whisper/barge from the supervisor's device
/// (legs checked at the simulated PBX) and leaving; agents are 403 there.
#[actix_rt::test]
async fn http_supervisor_views_and_actions() {
    let t = HttpTest::start(crate::util::http_config(LONG_MS, LONG_MS)).await;
    let sue = t.login("sue").await;
    let ann = t.login("ann").await;
    let (s, _) = t.call("GET", "/api/v1/agents", Some(&ann), None).await;
    assert_eq!(s, 403, "agents list is for supervisors");
    let (s, _) = t
        .call(
            "POST",
            "/api/v1/agents/bob/state",
            Some(&ann),
            Some(json!({"state": "logout"})),
        )
        .await;
    assert_eq!(s, 403);

    // A call waits in the queue while nobody is Ready.
    let call = t.place_call("+15559990000").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let queues = loop {
        let (s, v) = t.call("GET", "/api/v1/queues", Some(&sue), None).await;
        assert_eq!(s, 200, "{v}");
        if v["queues"][0]["waiting"] == 1 && v["queues"][0]["longest_wait_ms"].as_u64() > Some(0) {
            break v;
        }
        assert!(std::time::Instant::now() < deadline, "no waiting call: {v}");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(queues["queues"][0]["queue_id"], "sales");
    assert_eq!(
        queues["queues"][0]["waiting_calls"][0]["call_id"],
        call.as_str()
    );
    let (s, v) = t.call("GET", "/api/v1/queues", Some(&ann), None).await;
    assert_eq!(s, 200, "agents see queues: {v}");

    let (s, v) = t
        .call(
            "POST",
            "/api/v1/agent/state",
            Some(&ann),
            Some(json!({"state": "login"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = t.call("GET", "/api/v1/agents", Some(&sue), None).await;
    assert_eq!(s, 200);
    let a = v["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agent_id"] == "ann")
        .unwrap()
        .clone();
    assert_eq!(a["state"], "not_ready", "{a}");
    assert!(a["time_in_state_ms"].is_u64());
    // The routing score and back-off are part of the team view (issue 18).
    assert_eq!(a["stats"]["score"]["no_answers"], 0, "{a}");
    assert_eq!(a["stats"]["backoff"]["until_ms"], 0, "{a}");

    let (s, v) = t
        .call(
            "POST",
            "/api/v1/agents/ann/state",
            Some(&sue),
            Some(json!({"state": "ready"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = t
        .call(
            "POST",
            "/api/v1/agents/ann/state",
            Some(&sue),
            Some(json!({"state": "sleep"})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = t
        .call(
            "POST",
            "/api/v1/agents/nobody/state",
            Some(&sue),
            Some(json!({"state": "ready"})),
        )
        .await;
    assert_eq!(s, 404, "{v}");
    let (s, v) = t
        .call("POST", "/api/v1/agents/bob/monitor", Some(&sue), None)
        .await;
    assert_eq!(s, 409, "bob is not on a call: {v}");
    // Ann (Ready) takes the waiting call (her phone answers by itself).
    t.wait_me(&ann, "ann talking", |v| v["agent"]["state"] == "talking")
        .await;
    supervise_ann(&t, &sue, &ann, &call).await;
    let (s, v) = t
        .call(
            "POST",
            "/api/v1/agents/ann/state",
            Some(&sue),
            Some(json!({"state": "logout"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = t.call("GET", "/api/v1/calls", Some(&sue), None).await;
    assert_eq!(s, 200);
    assert_eq!(v["calls"][0]["call"], call.as_str(), "{v}");
    let (s, v) = t.call("GET", "/api/v1/wallboard", Some(&sue), None).await;
    assert_eq!(s, 200);
    assert_eq!(v["queues"][0]["queue_id"], "sales", "{v}");
    let me = t
        .wait_me(&ann, "logout pending", |v| !v["agent"]["pending"].is_null())
        .await;
    assert_eq!(me["agent"]["state"], "talking", "the call continues: {me}");
    t.http.stop().await;
}

/// Admin: outbox status, records, dead letters, re-queue of an unknown
/// sequence (404), reload refused by the hook (422); others are 403.
#[actix_rt::test]
async fn http_admin_endpoints() {
    let t = HttpTest::start(crate::util::http_config(LONG_MS, LONG_MS)).await;
    let root = t.login("root").await;
    let sue = t.login("sue").await;
    let (s, v) = t
        .call("GET", "/api/v1/admin/outbox", Some(&root), None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(v["depth"].is_u64(), "{v}");
    let (s, _) = t
        .call("GET", "/api/v1/admin/outbox", Some(&sue), None)
        .await;
    assert_eq!(s, 403);
    let (s, v) = t
        .call(
            "GET",
            "/api/v1/admin/outbox/records?from=0&limit=10",
            Some(&root),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(v["records"].is_array());
    let (s, v) = t
        .call("GET", "/api/v1/admin/dead_letters", Some(&root), None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(v["dead_letters"].is_array());
    let (s, v) = t
        .call(
            "GET",
            "/api/v1/admin/dead_letters?from=x",
            Some(&root),
            None,
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"], "bad_request");
    let (s, v) = t
        .call(
            "POST",
            "/api/v1/admin/dead_letters/999/requeue",
            Some(&root),
            None,
        )
        .await;
    assert_eq!(s, 404, "{v}");
    let (s, v) = t
        .call(
            "POST",
            "/api/v1/admin/dead_letters/requeue_all",
            Some(&root),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = t
        .call("POST", "/api/v1/admin/reload", Some(&root), None)
        .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"], "config_refused");
    let (s, _) = t
        .call("POST", "/api/v1/admin/reload", Some(&sue), None)
        .await;
    assert_eq!(s, 403);
    let (s, v) = t.call("GET", "/api/v1/calls", Some(&root), None).await;
    assert_eq!(s, 200, "{v}");
    t.http.stop().await;
}

/// Monitor, whisper and barge on Ann's call: each starts a leg from Sue's
/// device at the simulated PBX (a snoop, then a leg in the call's bridge),
/// switching hangs the previous leg up, the wallboard shows who listens, and
/// leaving hangs the leg up. Agents may not; a supervisor without a device
/// gets a clear 409.
async fn supervise_ann(t: &HttpTest, sue: &str, ann: &str, call: &str) {
    use edgecc_actors::sim::{GetLeg, GetSimStats};
    let sim = t.running.sim.clone().expect("sim");
    let (s, v) = t
        .call("POST", "/api/v1/agents/ann/monitor", Some(ann), None)
        .await;
    assert_eq!(s, 403, "{v}");
    let (s, v) = t
        .call("POST", "/api/v1/agents/ann/listen", Some(sue), None)
        .await;
    assert_eq!(s, 404, "{v}");
    let mut legs: Vec<edgecc_actors::LegId> = Vec::new();
    for (mode, snoops, barges) in [("monitor", 1, 0), ("whisper", 2, 0), ("barge", 2, 1)] {
        let (s, v) = t
            .call(
                "POST",
                &format!("/api/v1/agents/ann/{mode}"),
                Some(sue),
                None,
            )
            .await;
        assert_eq!(s, 200, "{mode}: {v}");
        assert_eq!(v["call_id"], call, "{v}");
        let leg = edgecc_actors::LegId::new(v["leg_id"].as_str().expect("leg id"));
        assert_eq!(
            leg.call_id().0,
            call,
            "the supervisor leg belongs to the call"
        );
        let stats = sim.send(GetSimStats).await.unwrap();
        assert_eq!((stats.snoops, stats.barges), (snoops, barges), "{mode}");
        let info = sim.send(GetLeg(leg.clone())).await.unwrap();
        assert!(info.is_some(), "{mode}: leg {leg} is up at the PBX");
        if mode == "barge" {
            assert_eq!(
                info.unwrap().bridge,
                Some(edgecc_actors::ids::BridgeId::main(
                    &edgecc_actors::CallId::new(call)
                )),
                "barge joins the call's bridge"
            );
        }
        // Switching mode hangs the previous leg up.
        if let Some(prev) = legs.last() {
            assert!(
                sim.send(GetLeg(prev.clone())).await.unwrap().is_none(),
                "{mode}: old leg gone"
            );
        }
        legs.push(leg);
        let (_, w) = t.call("GET", "/api/v1/wallboard", Some(sue), None).await;
        let row = w["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["agent_id"] == "ann")
            .unwrap()
            .clone();
        assert_eq!(row["call"]["supervisors"][0]["supervisor"], "sue", "{row}");
        assert_eq!(row["call"]["supervisors"][0]["mode"], mode, "{row}");
    }
    // Silent monitor stays silent: Ann's desktop does not say who listens.
    let (_, me) = t.call("GET", "/api/v1/me", Some(ann), None).await;
    assert!(!me.to_string().contains("sue"), "{me}");
    let (s, v) = t
        .call("DELETE", "/api/v1/agents/ann/supervision", Some(sue), None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(
        sim.send(GetLeg(legs[2].clone())).await.unwrap().is_none(),
        "barge leg hung up"
    );
    let (s, v) = t
        .call("DELETE", "/api/v1/agents/ann/supervision", Some(sue), None)
        .await;
    assert_eq!(s, 409, "not supervising any more: {v}");
    let root = t.login("root").await;
    let (s, v) = t
        .call("POST", "/api/v1/agents/ann/monitor", Some(&root), None)
        .await;
    assert_eq!(s, 409, "{v}");
    assert!(v["message"].as_str().unwrap().contains("endpoint"), "{v}");
}

/// Operations: /healthz, /readyz, /metrics (Prometheus names), the OpenAPI
/// document and the UI pages.
#[actix_rt::test]
async fn http_operations_and_ui() {
    let t = HttpTest::start(crate::util::http_config(LONG_MS, LONG_MS)).await;
    let (s, v) = t.call("GET", "/healthz", None, None).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("alive")));
    let (s, v) = t.call("GET", "/readyz", None, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["ready"], true);
    // The PBX link going down makes edgecc unready; back up, ready again.
    t.running
        .registry
        .do_send(edgecc_actors::PbxEvent::LinkDown);
    let (s, v) = t.call("GET", "/readyz", None, None).await;
    assert_eq!((s, v["pbx"].as_str()), (503, Some("down")), "{v}");
    t.running.registry.do_send(edgecc_actors::PbxEvent::LinkUp);
    let (s, v) = t.call("GET", "/readyz", None, None).await;
    assert_eq!((s, v["pbx"].as_str()), (200, Some("up")), "{v}");
    let (s, v) = t.call("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(s, 200);
    assert!(
        v["openapi"].as_str().is_some_and(|o| o.starts_with("3.")),
        "{v}"
    );
    assert!(v["paths"]["/api/v1/session"].is_object());

    t.place_call("+15557770000").await;
    let mut res = t.client().get(t.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let text = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
    for name in [
        "edgecc_calls_ended_total",
        "edgecc_calls_ended_total{outcome=\"pbx_lost\"} 0",
        "edgecc_queue_depth{queue=\"sales\"}",
        "edgecc_queue_wait_seconds_bucket",
        "edgecc_agents{state=\"logged_out\"} 2",
        "edgecc_outbox_depth",
        "edgecc_outbox_oldest_age_seconds",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    for (path, needle) in [
        ("/", "Agent desktop"),
        ("/wallboard", "Wallboard"),
        ("/ui/common.js", "WebSocket"),
    ] {
        let mut res = t.client().get(t.url(path)).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200, "{path}");
        let body = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
        assert!(body.contains(needle), "{path} lacks {needle}");
    }
    t.http.stop().await;
}
