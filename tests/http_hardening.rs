//! The API against a hostile client, over real HTTP on 127.0.0.1: bodies
//! that are not declared JSON, throttled logins and what they answer.
//! (Issue 17: hardening.)

use serde_json::json;

use crate::util::{HttpTest, HTTP_TEST_PASSWORD};

/// Long token lifetime and desktop grace for tests that are not about them.
const LONG_MS: u64 = 3_600_000;

/// A login posted as `text/plain`, as a form or with no type (what any
/// web page can send without a CORS preflight) is refused with 415 before
/// the password is checked, so it never counts against the throttle;
/// `application/json` (with a charset) logs in.
#[actix_rt::test]
async fn login_takes_json_only() {
    let t = HttpTest::start(crate::util::http_config(LONG_MS, LONG_MS)).await;
    let body = json!({"agent_id": "bob", "password": "wrong"}).to_string();
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        for _ in 0..6 {
            let mut req = t.client().post(t.url("/api/v1/session"));
            if let Some(ct) = content_type {
                req = req.insert_header(("Content-Type", ct));
            }
            let mut res = req.send_body(body.clone()).await.expect("request");
            let v: serde_json::Value = res.json().await.unwrap_or_default();
            assert_eq!(res.status().as_u16(), 415, "{content_type:?}: {v}");
            assert_eq!(v["error"], "unsupported_media_type", "{v}");
        }
    }
    let right = json!({"agent_id": "bob", "password": HTTP_TEST_PASSWORD}).to_string();
    let mut res = t
        .client()
        .post(t.url("/api/v1/session"))
        .insert_header(("Content-Type", "application/json; charset=utf-8"))
        .send_body(right)
        .await
        .expect("request");
    let v: serde_json::Value = res.json().await.unwrap_or_default();
    assert_eq!(
        res.status().as_u16(),
        200,
        "not throttled by refused bodies: {v}"
    );
    t.http.stop().await;
}

/// A throttled login answers 429 with a `Retry-After` header in seconds.
#[actix_rt::test]
async fn throttled_login_says_when_to_retry() {
    let t = HttpTest::start(crate::util::http_config(LONG_MS, LONG_MS)).await;
    let wrong = json!({"agent_id": "bob", "password": "nope"});
    let mut last = None;
    for _ in 0..6 {
        let res = t
            .client()
            .post(t.url("/api/v1/session"))
            .send_json(&wrong)
            .await
            .expect("request");
        last = Some((
            res.status().as_u16(),
            res.headers()
                .get("Retry-After")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        ));
    }
    let (status, retry_after) = last.expect("answers");
    assert_eq!(status, 429);
    let seconds: u64 = retry_after
        .expect("Retry-After on 429")
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&seconds), "{seconds}");
    t.http.stop().await;
}
