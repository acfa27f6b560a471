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

/// Goal: HTTPS never negotiates HTTP/2 (h2 0.3 carries RUSTSEC-2026-0258).
/// Method: a TLS client offering `h2` first, then `http/1.1`, completes a
/// handshake with the server and reads the protocol the server chose.
#[actix_rt::test]
async fn https_offers_http1_only() {
    let mut config = crate::util::http_config(LONG_MS, LONG_MS);
    let fixtures = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    config.http.tls_cert_file = Some(fixtures.join("cert.pem"));
    config.http.tls_key_file = Some(fixtures.join("key.pem"));
    let t = HttpTest::start(config).await;
    let addr = t.http.local_addr;
    let chosen = tokio::task::spawn_blocking(move || {
        use rustls::pki_types::pem::PemObject;
        use std::io::Write;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_file_iter(fixtures.join("cert.pem"))
            .expect("cert")
        {
            roots.add(cert.expect("cert")).expect("root");
        }
        let mut client = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        client.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let mut conn =
            rustls::ClientConnection::new(std::sync::Arc::new(client), name).expect("client");
        let mut sock = std::net::TcpStream::connect(addr).expect("connect");
        sock.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .expect("timeout");
        let mut tls = rustls::Stream::new(&mut conn, &mut sock);
        tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .expect("handshake and request");
        conn.alpn_protocol().map(|p| p.to_vec())
    })
    .await
    .expect("client thread");
    assert_eq!(
        chosen.as_deref(),
        Some(&b"http/1.1"[..]),
        "ALPN chose {chosen:?}"
    );
    t.http.stop().await;
}

/// Goal: one address cannot take every connection slot. Method: hold
/// HTTP_CONNECTIONS_PER_ADDRESS_MAX idle connections from 127.0.0.1; a
/// request on one more is answered 503 and closed; once the idle ones are
/// gone, requests are served again.
#[actix_rt::test]
async fn connections_per_address_are_capped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let t = HttpTest::start(crate::util::http_config(LONG_MS, LONG_MS)).await;
    let addr = t.http.local_addr;
    let mut idle = Vec::new();
    for _ in 0..edgecc::http::HTTP_CONNECTIONS_PER_ADDRESS_MAX {
        idle.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
    }
    let request = |addr| async move {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("send");
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            s.read_to_end(&mut answer),
        )
        .await;
        String::from_utf8_lossy(&answer).into_owned()
    };
    // The server counts a connection when a worker takes it; give it a
    // moment to take the idle ones.
    let mut answer = String::new();
    for _ in 0..50 {
        answer = request(addr).await;
        if answer.starts_with("HTTP/1.1 503") {
            break;
        }
        actix_rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    drop(idle);
    let mut served = false;
    for _ in 0..50 {
        if request(addr).await.starts_with("HTTP/1.1 200") {
            served = true;
            break;
        }
        actix_rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(served, "served again once the idle connections closed");
    t.http.stop().await;
}

/// Goal: a client trickling a JSON body cannot hold a connection: the
/// body must arrive within JSON_BODY_TIMEOUT. Method: send a login head
/// announcing 100 bytes, 10 of them, and wait; the answer is 408.
#[actix_rt::test]
async fn a_slow_body_times_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let t = HttpTest::start(crate::util::http_config(LONG_MS, LONG_MS)).await;
    let mut s = tokio::net::TcpStream::connect(t.http.local_addr)
        .await
        .expect("connect");
    s.write_all(
        b"POST /api/v1/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"agent_id",
    )
    .await
    .expect("send");
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let wait = edgecc::http::error::JSON_BODY_TIMEOUT + std::time::Duration::from_secs(5);
    let _ = tokio::time::timeout(wait, s.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "after {:?}: {answer}",
        started.elapsed()
    );
    t.http.stop().await;
}

/// Goal: an agent does not see who is waiting unless the box says so;
/// supervisors do. Method: one call waits in `sales` (nobody is Ready);
/// `GET /api/v1/queues` as an agent has its wait but no number, as a
/// supervisor both; with `[http] agents_see_waiting_numbers = true` the
/// agent sees the number too.
#[actix_rt::test]
async fn waiting_callers_numbers_are_for_supervisors_by_default() {
    let waiting = |v: &serde_json::Value| {
        v["queues"]
            .as_array()
            .and_then(|qs| qs.iter().find(|q| q["queue_id"] == "sales"))
            .and_then(|q| q["waiting_calls"].as_array())
            .and_then(|c| c.first())
            .cloned()
    };
    for agents_see in [false, true] {
        let mut config = crate::util::http_config(LONG_MS, LONG_MS);
        config.http.agents_see_waiting_numbers = agents_see;
        let t = HttpTest::start(config).await;
        let ann = t.login("ann").await;
        let sue = t.login("sue").await;
        t.place_call("+15550142").await;
        let mut as_agent = None;
        for _ in 0..100 {
            let (s, v) = t.call("GET", "/api/v1/queues", Some(&ann), None).await;
            assert_eq!(s, 200, "{v}");
            if let Some(w) = waiting(&v) {
                as_agent = Some(w);
                break;
            }
            actix_rt::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let as_agent = as_agent.expect("a waiting call");
        assert!(as_agent["wait_ms"].is_u64(), "{as_agent}");
        if agents_see {
            assert_eq!(as_agent["ani"], "+15550142", "{as_agent}");
        } else {
            assert!(
                as_agent.get("ani").is_none(),
                "an agent sees the number: {as_agent}"
            );
        }
        let (s, v) = t.call("GET", "/api/v1/queues", Some(&sue), None).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(waiting(&v).expect("waiting")["ani"], "+15550142", "{v}");
        t.http.stop().await;
    }
}

/// Goal: ids from outside are checked before they reach a log line or an
/// answer. Method: a supervisor forces the state of, and joins the call
/// of, agent ids with a newline, an escape code and 60 KB; each is a 404
/// that does not echo the id; a login id with a newline is a 400.
#[actix_rt::test]
async fn ids_with_control_characters_or_too_long_are_refused() {
    let t = HttpTest::start(crate::util::http_config(LONG_MS, LONG_MS)).await;
    let sue = t.login("sue").await;
    let long = "a".repeat(60 * 1024);
    for bad in ["ann%0Aforged%20line", "ann%1B%5B31m", long.as_str()] {
        let (s, e) = t
            .call(
                "POST",
                &format!("/api/v1/agents/{bad}/state"),
                Some(&sue),
                Some(json!({"state": "not_ready"})),
            )
            .await;
        assert_eq!(s, 404, "{bad:.40}: {e}");
        assert_eq!(e["message"], "unknown agent", "{e}");
        let (s, e) = t
            .call(
                "POST",
                &format!("/api/v1/agents/{bad}/monitor"),
                Some(&sue),
                None,
            )
            .await;
        assert_eq!(s, 404, "{bad:.40}: {e}");
        assert!(e.to_string().len() < 200, "the id is not echoed");
    }
    let (s, e) = t
        .call(
            "POST",
            "/api/v1/session",
            None,
            Some(json!({"agent_id": "ann\nforged", "password": "x"})),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    t.http.stop().await;
}
