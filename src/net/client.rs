//! The outbound HTTP client: awc with every timeout set explicitly, a
//! bounded connection pool, no redirects, and for https a rustls 0.23
//! (ring) config with the webpki roots. Every adapter that talks HTTP or a
//! WebSocket builds its client here, so none relies on a library default.

use std::sync::Arc;
use std::time::Duration;

/// Most pooled connections per client (each adapter bounds its own
/// concurrency anyway; this is the backstop).
pub const CONNECTIONS_MAX: usize = 32;

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// rustls refused the protocol versions of the ring provider (a build
    /// of rustls without TLS 1.2/1.3).
    #[error("TLS set-up failed: {0}")]
    Tls(#[from] rustls::Error),
}

/// An HTTP client with every timeout set explicitly, no redirects (a peer
/// that redirects is misconfigured; following would re-POST elsewhere), and
/// for https a rustls 0.23 (ring) config with the webpki roots.
pub fn http_client(
    connect_timeout: Duration,
    request_timeout: Duration,
    https: bool,
) -> Result<awc::Client, ClientError> {
    let mut connector = awc::Connector::new()
        .timeout(connect_timeout)
        .handshake_timeout(connect_timeout)
        .limit(CONNECTIONS_MAX);
    if https {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        connector = connector.rustls_0_23(Arc::new(tls));
    }
    Ok(awc::Client::builder()
        .connector(connector)
        .timeout(request_timeout)
        .disable_redirects()
        .finish())
}
