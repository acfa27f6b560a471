//! HTTPS: with `tls_cert_file` and `tls_key_file` the API, the UI and the
//! WebSocket are served over rustls; plain HTTP on that port gets nothing;
//! a wrong certificate path is refused at start with the key named.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::util::{HttpTest, HTTP_TEST_PASSWORD};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

/// A client that trusts only the test certificate.
fn tls_client() -> awc::Client {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(fixture("cert.pem")).expect("cert file") {
        roots.add(cert.expect("cert")).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    awc::Client::builder()
        .connector(awc::Connector::new().rustls_0_23(Arc::new(config)))
        .timeout(Duration::from_secs(10))
        .finish()
}

/// Goal: a configured certificate turns the listener into HTTPS that a
/// client trusting that certificate can log in through, while plain HTTP on
/// the same port does not get an answer. Method: start with the fixture
/// certificate, log in and read /api/v1/me over https, try http.
#[actix_rt::test]
async fn http_tls_serves_https_only() {
    let mut config = crate::util::http_config(3_600_000, 3_600_000);
    config.http.tls_cert_file = Some(fixture("cert.pem"));
    config.http.tls_key_file = Some(fixture("key.pem"));
    let t = HttpTest::start(config).await;
    assert!(t.http.tls, "the handle says HTTPS");
    let base = format!("https://{}", t.http.local_addr);
    let client = tls_client();
    let mut res = client
        .post(format!("{base}/api/v1/session"))
        .send_json(&serde_json::json!({"agent_id": "ann", "password": HTTP_TEST_PASSWORD}))
        .await
        .expect("https login");
    assert_eq!(res.status().as_u16(), 200);
    let v: serde_json::Value = res.json().await.expect("json");
    let token = v["token"].as_str().expect("token").to_owned();
    let mut res = client
        .get(format!("{base}/api/v1/me"))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send()
        .await
        .expect("https me");
    assert_eq!(res.status().as_u16(), 200);
    let me: serde_json::Value = res.json().await.expect("json");
    assert_eq!(me["agent"]["agent_id"], "ann", "{me}");
    let (_res, _ws) = client
        .ws(format!("wss://{}/api/v1/events", t.http.local_addr))
        .bearer_auth(&token)
        .connect()
        .await
        .expect("wss upgrade");
    // The same port does not speak plain HTTP.
    let plain = awc::Client::builder()
        .timeout(Duration::from_secs(2))
        .finish()
        .get(format!("http://{}/healthz", t.http.local_addr))
        .send()
        .await;
    assert!(
        plain.as_ref().map_or(true, |r| r.status().as_u16() != 200),
        "plain HTTP must not be served: {:?}",
        plain.map(|r| r.status())
    );
    t.http.stop().await;
}

/// Goal: a certificate file that is not there stops the start with an error
/// naming the key and the path (nothing listens half-configured).
#[actix_rt::test]
async fn http_tls_bad_certificate_path_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = crate::util::http_config(3_600_000, 3_600_000);
    config.http.tls_cert_file = Some(dir.path().join("missing.pem"));
    config.http.tls_key_file = Some(fixture("key.pem"));
    let storage =
        edgecc::system::storage::open_storage(&config, &dir.path().join("data")).expect("storage");
    let parts = edgecc::system::SystemParts::new(config, storage).serve_http(None);
    let err = match parts.start().await {
        Ok(_) => panic!("start must fail with a missing certificate"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("http.tls_cert_file") && err.contains("missing.pem"),
        "{err}"
    );
}
