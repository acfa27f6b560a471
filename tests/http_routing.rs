//! `GET /api/v1/calls/{id}/routing` on a running edgecc over HTTP on
//! 127.0.0.1 (issue 18, why this agent): a supervisor and an admin read why
//! a live call's offer went to its agent, an agent is refused, an unknown
//! call is 404; the wallboard loads the panel's script.

use serde_json::json;

use crate::util::HttpTest;

/// Token lifetime and desktop grace long enough never to matter here.
const LONG_MS: u64 = 3_600_000;

/// Goal: the route answers what the call recorded, to the roles allowed.
/// Method: ann (idle longer) and bob are Ready in sales (longest idle);
/// a call rings ann; sue (supervisor), root (admin), ann (agent) and no
/// one ask for its routing; then an unknown call; then the wallboard's
/// script. Expected: 200 naming ann chosen by the strategy's key over bob
/// for sue and root, 403 for ann, 401 without a token, 404 for the unknown
/// call, the script served and loaded by the wallboard page.
#[actix_rt::test]
async fn http_call_routing_explains_the_offer() {
    let t = HttpTest::start(crate::util::http_config(LONG_MS, LONG_MS)).await;
    let ann = t.login("ann").await;
    let bob = t.login("bob").await;
    for token in [&ann, &bob] {
        for state in ["login", "ready"] {
            let (s, v) = t
                .call(
                    "POST",
                    "/api/v1/agent/state",
                    Some(token),
                    Some(json!({ "state": state })),
                )
                .await;
            assert_eq!(s, 200, "{v}");
        }
        actix_rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    t.phone_rings("1001", 1).await;
    let call = t.place_call("+15551112222").await;
    t.wait_me(&ann, "offer", |v| v["call"]["call_id"] == call.as_str())
        .await;
    let path = format!("/api/v1/calls/{call}/routing");
    let sue = t.login("sue").await;
    let root = t.login("root").await;
    for token in [&sue, &root] {
        let (s, v) = t.call("GET", &path, Some(token), None).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["call_id"], call.as_str(), "{v}");
        assert_eq!(v["phase"], "offering", "{v}");
        assert_eq!(v["offers_total"], 1, "{v}");
        let offer = &v["offers"][0];
        assert_eq!(offer["queue"], "sales", "{v}");
        assert_eq!(offer["chosen"], json!(["ann"]), "{v}");
        assert_eq!(offer["rule"], "strategy", "{v}");
        assert_eq!(offer["decided_by"], "strategy_key", "{v}");
        assert_eq!(offer["strategy"], "longest-idle", "{v}");
        let names: Vec<&str> = offer["candidates"]
            .as_array()
            .expect("candidates")
            .iter()
            .map(|c| c["agent"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(names, ["ann", "bob"], "{v}");
        assert!(offer["candidates"][0]["idle_ms"].as_u64().is_some(), "{v}");
    }
    assert_eq!(t.call("GET", &path, Some(&ann), None).await.0, 403);
    assert_eq!(t.call("GET", &path, None, None).await.0, 401);
    let (s, v) = t
        .call(
            "GET",
            "/api/v1/calls/no-such-call/routing",
            Some(&sue),
            None,
        )
        .await;
    assert_eq!(s, 404, "{v}");
    for (path, needle) in [
        ("/wallboard", "/ui/wallboard_routing.js"),
        ("/ui/wallboard_routing.js", "/routing"),
    ] {
        let mut res = t.client().get(t.url(path)).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200, "{path}");
        let body = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
        assert!(body.contains(needle), "{path} lacks {needle}");
    }
    t.http.stop().await;
}
