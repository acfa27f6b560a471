//! The agent desktop's own endpoints (issue 20) over HTTP on 127.0.0.1
//! with the simulated PBX: dropping a colleague from a conference (who may,
//! and the errors for a party not in it), and the agent's figures for
//! today, which an agent reads for itself only.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::HttpTest;

/// Long enough not to expire during a test.
const LONG_MS: u64 = 3_600_000;
/// Longest wait for the history to show a call.
const HISTORY_WAIT: Duration = Duration::from_secs(10);

/// `token` moves to each of `states` in turn.
async fn states(t: &HttpTest, token: &str, states: &[&str]) {
    for state in states {
        let (s, v) = t
            .call(
                "POST",
                "/api/v1/agent/state",
                Some(token),
                Some(json!({"state": state})),
            )
            .await;
        assert_eq!(s, 200, "{state}: {v}");
    }
}

/// `token` does `action` on `call` (with `body`); answers status and body.
async fn act(
    t: &HttpTest,
    token: &str,
    call: &str,
    action: &str,
    body: Option<Value>,
) -> (u16, Value) {
    t.call(
        "POST",
        &format!("/api/v1/calls/{call}/{action}"),
        Some(token),
        body,
    )
    .await
}

/// Ann takes a call and makes a conference with Bob (consulted, then
/// joined): both are on the call. Answers the call id.
async fn conference(t: &HttpTest, ann: &str, bob: &str) -> String {
    t.phone_rings("1001", 1).await;
    t.phone_rings("1002", 1).await;
    states(t, bob, &["login"]).await;
    states(t, ann, &["login", "ready"]).await;
    let call = t.place_call("+15550003000").await;
    t.wait_me(ann, "offer", |v| v["offer"] == true).await;
    assert_eq!(act(t, ann, &call, "accept", None).await.0, 200);
    t.wait_me(ann, "talking", |v| v["agent"]["state"] == "talking")
        .await;
    let (s, v) = act(
        t,
        ann,
        &call,
        "consult",
        Some(json!({"target_agent": "bob"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    t.wait_me(bob, "bob's offer", |v| v["offer"] == true).await;
    assert_eq!(act(t, bob, &call, "accept", None).await.0, 200);
    t.wait_me(ann, "consult answered", |v| {
        v["call"]["pending_leg"]["answered"] == true
    })
    .await;
    let (s, v) = act(t, ann, &call, "consult_conference", None).await;
    assert_eq!(s, 200, "{v}");
    t.wait_me(ann, "conference", |v| {
        v["call"]["parties"] == json!(["ann", "bob"])
    })
    .await;
    call
}

/// Dropping a party: a supervisor may not (403), another call's agent may
/// not (403), nobody can drop an agent who is not in the conference (404
/// `not_in_conference`) or themselves (409, hang up instead); Ann drops
/// Bob: Bob's leg is hung up and he is off the call, Ann talks on alone,
/// and a second drop of Bob is a 404.
#[actix_rt::test]
async fn an_agent_drops_a_colleague_from_the_conference() {
    let t = HttpTest::start(crate::util::http_config(LONG_MS, LONG_MS)).await;
    let (ann, bob) = (t.login("ann").await, t.login("bob").await);
    let call = conference(&t, &ann, &bob).await;
    let drop = |who: &str| format!("/api/v1/calls/{call}/parties/{who}");

    let sue = t.login("sue").await;
    let (s, v) = t.call("DELETE", &drop("bob"), Some(&sue), None).await;
    assert_eq!(s, 403, "{v}");
    let (s, v) = t.call("DELETE", &drop("carl"), Some(&ann), None).await;
    assert_eq!((s, &v["error"]), (404, &json!("not_in_conference")), "{v}");
    assert_eq!(
        v["message"],
        format!("agent carl is not in the conference on call {call}")
    );
    let (s, v) = t.call("DELETE", &drop("ann"), Some(&ann), None).await;
    assert_eq!(s, 409, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or("")
            .contains("hang up to leave"),
        "{v}"
    );

    let (s, v) = t.call("DELETE", &drop("bob"), Some(&ann), None).await;
    assert_eq!(s, 200, "{v}");
    // Bob joined through a consult: he owes no wrap-up and is back in the
    // Not Ready he was in.
    t.wait_me(&bob, "bob off the call", |v| {
        v["agent"]["state"] == "not_ready" && v["call"].is_null()
    })
    .await;
    let v = t
        .wait_me(&ann, "ann alone", |v| {
            v["call"]["parties"] == json!(["ann"])
        })
        .await;
    assert_eq!(v["agent"]["state"], "talking", "{v}");
    let (s, v) = t.call("DELETE", &drop("bob"), Some(&ann), None).await;
    assert_eq!((s, &v["error"]), (404, &json!("not_in_conference")), "{v}");
    // Bob is no longer on the call: it is not his to act on.
    let (s, v) = t.call("DELETE", &drop("ann"), Some(&bob), None).await;
    assert_eq!(s, 403, "{v}");
    t.http.stop().await;
}

/// Today's figures: Not Ready time counts (the stint in progress too), a
/// call handled and its handle time (talk plus wrap-up) appear once the
/// call ended, and only an agent reads them, its own.
#[actix_rt::test]
async fn an_agent_reads_its_own_figures_for_today() {
    let t = HttpTest::start(crate::util::http_config(LONG_MS, LONG_MS)).await;
    let ann = t.login("ann").await;
    let today = |token: String| {
        let t = &t;
        async move {
            t.call("GET", "/api/v1/agent/today", Some(&token), None)
                .await
        }
    };
    let (s, v) = today(ann.clone()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["calls_handled"].as_u64(), v["not_ready_ms"].as_u64()),
        (Some(0), Some(0)),
        "{v}"
    );

    states(&t, &ann, &["login"]).await;
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    let (_, v) = today(ann.clone()).await;
    assert!(
        v["not_ready_ms"].as_u64().unwrap() >= 300,
        "in progress: {v}"
    );

    t.phone_rings("1001", 1).await;
    states(&t, &ann, &["ready"]).await;
    let call = t.place_call("+15550004000").await;
    t.wait_me(&ann, "offer", |v| v["offer"] == true).await;
    assert_eq!(act(&t, &ann, &call, "accept", None).await.0, 200);
    t.wait_me(&ann, "talking", |v| v["agent"]["state"] == "talking")
        .await;
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(act(&t, &ann, &call, "hangup", None).await.0, 200);
    t.wait_me(&ann, "wrap-up", |v| v["agent"]["state"] == "wrap_up")
        .await;
    let (s, _) = t
        .call("POST", "/api/v1/agent/wrap_up/end", Some(&ann), None)
        .await;
    assert_eq!(s, 200);

    let deadline = Instant::now() + HISTORY_WAIT;
    let v = loop {
        let (_, v) = today(ann.clone()).await;
        if v["calls_handled"] == 1 {
            break v;
        }
        assert!(Instant::now() < deadline, "the call never counted: {v}");
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(v["talk_ms"].as_u64().unwrap() >= 200, "{v}");
    // The wrap-up granted (10 min) is part of the handle time.
    assert!(v["aht_ms"].as_u64().unwrap() >= 600_000, "{v}");
    assert!(v["not_ready_ms"].as_u64().unwrap() >= 300, "{v}");
    assert!(v["from"].as_str().unwrap().ends_with("T00:00:00Z"), "{v}");

    let sue = t.login("sue").await;
    let (s, v) = today(sue).await;
    assert_eq!(s, 403, "{v}");
    t.http.stop().await;
}

/// The support queue's number (the queue panel test's second queue).
const SUPPORT_DNIS: &str = "+18005550200";
/// How far apart the actors' clock and the system clock may read, ms.
const CLOCKS_APART_MS: u64 = 50;

/// Every JSON message `conn` gets within `wait`.
async fn messages_within(conn: &mut impl crate::http_ws::Conn, wait: Duration) -> Vec<Value> {
    use futures_util::{SinkExt as _, StreamExt as _};
    let deadline = tokio::time::Instant::now() + wait;
    let mut got = Vec::new();
    while let Ok(frame) = tokio::time::timeout_at(deadline, conn.next()).await {
        match frame {
            Some(Ok(awc::ws::Frame::Text(bytes))) => {
                got.push(serde_json::from_slice(&bytes).expect("json message"))
            }
            Some(Ok(awc::ws::Frame::Ping(p))) => {
                let _ = conn.send(awc::ws::Message::Pong(p)).await;
            }
            Some(Ok(_)) => {}
            other => panic!("connection ended: {other:?}"),
        }
    }
    got
}

/// `v`'s queue panel row of `queue`.
fn panel_row<'a>(v: &'a Value, queue: &str) -> Option<&'a Value> {
    v["queues"]
        .as_array()?
        .iter()
        .find(|q| q["queue_id"] == queue)
}

/// The queue panel: Ann serves sales and support, Bob sales only. A call
/// waiting in support reaches Ann's open desktop by itself (a
/// `queues_changed` push, then a snapshot with one call waiting since its
/// arrival), not Bob's; `GET /api/v1/me` shows the same start time a
/// second later with the wait grown; once Ann answers it, support has
/// nobody waiting and no wait.
#[actix_rt::test]
async fn a_waiting_call_shows_on_its_members_desktops_until_answered() {
    let mut config = crate::util::http_config(LONG_MS, LONG_MS);
    let mut support = config.contact_center.queues[0].clone();
    support.id = "support".into();
    support.name = "Support".into();
    support.dnis = vec![SUPPORT_DNIS.into()];
    config.contact_center.queues.push(support);
    config.contact_center.agents[0]
        .queues
        .push("support".into());
    let t = HttpTest::start(config).await;
    let (ann, bob) = (t.login("ann").await, t.login("bob").await);
    let mut ann_ws = crate::http_ws::connect(&t, Some(&ann))
        .await
        .expect("connect");
    let mut bob_ws = crate::http_ws::connect(&t, Some(&bob))
        .await
        .expect("connect");
    let first =
        crate::http_ws::until(&mut ann_ws, "ann's snapshot", |v| v["type"] == "snapshot").await;
    let names: Vec<_> = first["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .map(|q| {
            (
                q["queue_id"].clone(),
                q["name"].clone(),
                q["waiting"].clone(),
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![
            (json!("sales"), json!("Sales"), json!(0)),
            (json!("support"), json!("Support"), json!(0))
        ]
    );
    let first =
        crate::http_ws::until(&mut bob_ws, "bob's snapshot", |v| v["type"] == "snapshot").await;
    assert_eq!(
        first["queues"],
        json!([{"queue_id": "sales", "name": "Sales", "waiting": 0,
                "oldest_since_ms": null, "longest_wait_ms": 0}])
    );

    // Nobody is logged in: the call waits in support.
    let before = edgecc::clock::now_ms();
    let sim = t.running.sim.as_ref().expect("sim");
    sim.send(edgecc_actors::sim::PlaceCall(
        edgecc_actors::sim::Caller::new("+15550005000", SUPPORT_DNIS),
    ))
    .await
    .expect("place call");
    let after = edgecc::clock::now_ms();
    crate::http_ws::until(&mut ann_ws, "the push", |v| {
        v["type"] == "queues_changed" && v["queues"] == json!(["support"])
    })
    .await;
    let v = crate::http_ws::until(&mut ann_ws, "a call waiting", |v| {
        v["type"] == "snapshot" && panel_row(v, "support").is_some_and(|q| q["waiting"] == 1)
    })
    .await;
    let since = panel_row(&v, "support").expect("support")["oldest_since_ms"]
        .as_u64()
        .expect("a start time");
    // The actors' clock and the system clock read here may differ by a
    // few ms.
    assert!(
        (before - CLOCKS_APART_MS..=after + CLOCKS_APART_MS).contains(&since),
        "{before} {since} {after}"
    );
    // Bob serves no queue the call is in: no push about it, no snapshot
    // showing it (his own presence change may still reach him).
    let bob_got = messages_within(&mut bob_ws, Duration::from_millis(1_500)).await;
    let about_support: Vec<_> = bob_got
        .iter()
        .filter(|v| v["type"] == "queues_changed" || panel_row(v, "support").is_some())
        .collect();
    assert!(about_support.is_empty(), "{bob_got:?}");

    let (_, v) = t.call("GET", "/api/v1/me", Some(&ann), None).await;
    let row = panel_row(&v, "support").expect("support").clone();
    assert_eq!(row["oldest_since_ms"], since, "{row}");
    assert!(row["longest_wait_ms"].as_u64().unwrap() >= 1_400, "{row}");

    t.phone_rings("1001", 1).await;
    states(&t, &ann, &["login", "ready"]).await;
    let v = t.wait_me(&ann, "offer", |v| v["offer"] == true).await;
    let call = v["call"]["call_id"].as_str().expect("call").to_owned();
    assert_eq!(act(&t, &ann, &call, "accept", None).await.0, 200);
    let v = crate::http_ws::until(&mut ann_ws, "answered", |v| {
        v["type"] == "snapshot" && v["agent"]["state"] == "talking"
    })
    .await;
    assert_eq!(
        panel_row(&v, "support"),
        Some(
            &json!({"queue_id": "support", "name": "Support", "waiting": 0,
                     "oldest_since_ms": null, "longest_wait_ms": 0})
        )
    );
    t.http.stop().await;
}
