//! What the web UI needs from the server (issue 20), over HTTP on
//! 127.0.0.1 with the simulated PBX: the pages gzipped, revalidated by
//! `ETag` and with a tab icon; the agent directory the transfer picker
//! reads; and a consult as both sides' screens and the wallboard show it
//! (the consulted agent's row names the consulting agent, not the caller).

use serde_json::{json, Value};

use crate::util::{http_config, HttpTest};

/// Long enough not to expire during a test.
const LONG_MS: u64 = 3_600_000;

/// `GET path` without decompression: status, headers, body bytes.
async fn raw_get(
    t: &HttpTest,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, awc::http::header::HeaderMap, Vec<u8>) {
    let client = awc::Client::builder().no_default_headers().finish();
    let mut req = client.get(t.url(path)).no_decompress();
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    let mut res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let body = res.body().limit(1 << 20).await.expect("body").to_vec();
    (status, res.headers().clone(), body)
}

/// The pages and their files are gzipped when asked, carry an `ETag` with
/// `no-cache`, answer 304 to a matching `If-None-Match`; the favicon is an
/// icon, not a JSON 404.
#[actix_rt::test]
async fn http_ui_pages_gzipped_revalidated_and_favicon() {
    let t = HttpTest::start(http_config(LONG_MS, LONG_MS)).await;
    for path in ["/", "/wallboard", "/ui/desktop.js", "/ui/style.css"] {
        let (s, h, plain) = raw_get(&t, path, &[]).await;
        assert_eq!(s, 200, "{path}");
        assert!(h.get("content-encoding").is_none(), "{path}: not asked");
        let (s, h, zipped) = raw_get(&t, path, &[("Accept-Encoding", "gzip")]).await;
        assert_eq!(s, 200, "{path}");
        assert_eq!(h.get("content-encoding").unwrap(), "gzip", "{path}");
        assert!(
            zipped.len() * 2 < plain.len(),
            "{path}: {} gzipped vs {} plain",
            zipped.len(),
            plain.len()
        );
        assert_eq!(h.get("cache-control").unwrap(), "no-cache", "{path}");
        let tag = h.get("etag").expect("etag").to_str().unwrap().to_owned();
        let (s, _, body) = raw_get(&t, path, &[("If-None-Match", &tag)]).await;
        assert_eq!(s, 304, "{path}");
        assert!(body.is_empty());
        let (s, _, _) = raw_get(&t, path, &[("If-None-Match", "\"other\"")]).await;
        assert_eq!(s, 200, "{path}: another tag");
    }
    let (s, h, body) = raw_get(&t, "/favicon.ico", &[]).await;
    assert_eq!(s, 200);
    assert_eq!(h.get("content-type").unwrap(), "image/svg+xml");
    assert!(String::from_utf8_lossy(&body).starts_with("<svg"));
    t.http.stop().await;
}

async fn state(t: &HttpTest, token: &str, state: &str) {
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

/// The directory lists every agent with its availability and every queue,
/// to any logged-in user; without a token, 401.
#[actix_rt::test]
async fn http_directory_lists_agents_and_queues() {
    let t = HttpTest::start(http_config(LONG_MS, LONG_MS)).await;
    let ann = t.login("ann").await;
    state(&t, &ann, "login").await;
    state(&t, &ann, "ready").await;
    let (s, _) = t.call("GET", "/api/v1/directory", None, None).await;
    assert_eq!(s, 401);
    let (s, v) = t.call("GET", "/api/v1/directory", Some(&ann), None).await;
    assert_eq!(s, 200, "{v}");
    let agent = |id: &str| -> Value {
        v["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["agent_id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} missing: {v}"))
    };
    assert_eq!(agent("ann")["availability"], "free");
    assert_eq!(agent("bob")["availability"], "logged_out");
    assert_eq!(v["queues"][0]["queue_id"], "sales");
    assert_eq!(v["queues"][0]["ready_agents"], 1);
    assert!(v["queues"][0].get("waiting_calls").is_none(), "no numbers");
    t.http.stop().await;
}

/// Ann consults Bob: her snapshot has the consult leg (hers, ringing), Bob's
/// offer says who consults with a countdown, and the wallboard's Bob row
/// names Ann instead of the caller's number.
#[actix_rt::test]
async fn http_consult_as_the_screens_show_it() {
    let t = HttpTest::start(http_config(LONG_MS, LONG_MS)).await;
    let (ann, bob, sue) = (
        t.login("ann").await,
        t.login("bob").await,
        t.login("sue").await,
    );
    state(&t, &ann, "login").await;
    state(&t, &ann, "ready").await;
    state(&t, &bob, "login").await;
    t.phone_rings("1001", 1).await;
    t.phone_rings("1002", 1).await;
    let call = t.place_call("+15554440000").await;
    t.wait_me(&ann, "offer", |v| v["offer"] == true).await;
    let v = t
        .wait_me(&ann, "deadline", |v| {
            v["call"]["offer_deadline_ms"].is_u64()
        })
        .await;
    assert!(v["call"]["offer_deadline_ms"].as_u64() > v["now_ms"].as_u64());
    let path = format!("/api/v1/calls/{call}/accept");
    let (s, v) = t.call("POST", &path, Some(&ann), None).await;
    assert_eq!(s, 200, "{v}");
    t.wait_me(&ann, "talking", |v| v["agent"]["state"] == "talking")
        .await;
    let (s, v) = t
        .call(
            "POST",
            &format!("/api/v1/calls/{call}/consult"),
            Some(&ann),
            Some(json!({"target_agent": "bob"})),
        )
        .await;
    assert_eq!(s, 200, "consult: {v}");
    let v = t
        .wait_me(&ann, "consult leg", |v| {
            v["call"]["pending_leg"].is_object()
        })
        .await;
    let leg = &v["call"]["pending_leg"];
    assert_eq!(
        (&leg["kind"], &leg["to"], &leg["mine"], &leg["answered"]),
        (
            &json!("consult"),
            &json!("bob"),
            &json!(true),
            &json!(false)
        ),
        "{v}"
    );
    let v = t
        .wait_me(&bob, "consult offer", |v| v["offer"] == true)
        .await;
    assert_eq!(v["call"]["consult_from"], "ann", "{v}");
    assert_eq!(v["call"]["pending_leg"]["mine"], false, "{v}");
    assert!(
        v["call"]["offer_deadline_ms"].as_u64() > v["now_ms"].as_u64(),
        "{v}"
    );
    let (s, w) = t.call("GET", "/api/v1/wallboard", Some(&sue), None).await;
    assert_eq!(s, 200);
    let row = |id: &str| -> Value {
        w["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["agent_id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(row("bob")["call"]["consult_from"], "ann", "{w}");
    assert!(row("bob")["call"]["ani"].is_null(), "{w}");
    assert_eq!(row("ann")["call"]["ani"], "+15554440000", "{w}");
    t.http.stop().await;
}

/// The agent's desktop says when a supervisor whispers or barges (the agent
/// hears it), never who, and says nothing of a silent monitor.
#[actix_rt::test]
async fn http_desktop_tells_whisper_not_monitor() {
    let t = HttpTest::start(http_config(LONG_MS, LONG_MS)).await;
    let (ann, sue) = (t.login("ann").await, t.login("sue").await);
    state(&t, &ann, "login").await;
    state(&t, &ann, "ready").await;
    t.place_call("+15554441111").await;
    t.wait_me(&ann, "talking", |v| v["agent"]["state"] == "talking")
        .await;
    let (s, v) = t
        .call("POST", "/api/v1/agents/ann/monitor", Some(&sue), None)
        .await;
    assert_eq!(s, 200, "{v}");
    let (_, me) = t.call("GET", "/api/v1/me", Some(&ann), None).await;
    assert_eq!(me["call"]["supervised"], json!([]), "{me}");
    let (s, v) = t
        .call("POST", "/api/v1/agents/ann/whisper", Some(&sue), None)
        .await;
    assert_eq!(s, 200, "{v}");
    let me = t
        .wait_me(&ann, "whisper shown", |v| {
            v["call"]["supervised"] == json!(["whisper"])
        })
        .await;
    assert!(!me.to_string().contains("sue"), "{me}");
    t.http.stop().await;
}
