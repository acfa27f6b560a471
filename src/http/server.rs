//! The listener: plain HTTP/1.1, or HTTPS through rustls that offers
//! HTTP/1.1 only, with the server's limits (workers, connections in all and
//! per peer address, request-head, keep-alive and shutdown timeouts).
//!
//! Why HTTPS is assembled here rather than with actix-web's
//! `listen_rustls_0_23`: that one always offers `h2` in ALPN (the `http2`
//! feature of actix-http is on because awc, our HTTP client, needs it), and
//! the h2 0.3 line it would use carries RUSTSEC-2026-0258 (a peer's endless
//! empty DATA frames) with no fixed 0.3 release. A desktop API gains nothing
//! from HTTP/2, so the TLS acceptor here is followed by actix-http's HTTP/1
//! service alone, and ALPN offers `http/1.1`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_service::ServiceFactoryExt;
use actix_web::body::MessageBody;
use actix_web::dev::{AppConfig, ServerHandle, ServiceFactory, ServiceRequest, ServiceResponse};

/// Worker threads of the HTTP server: a desktop API is light; two keep one
/// slow request from stalling everyone.
pub const HTTP_WORKERS: usize = 2;
/// Most concurrent connections per worker (desktops, wallboards, scripts).
pub const HTTP_CONNECTIONS_MAX: usize = 2_048;
/// Most concurrent connections from one peer address. A desktop uses two
/// or three (API, WebSocket, a page load); a NAT in front of a team of 60
/// agents stays under it; one host holding slow connections cannot take
/// every slot. Beyond it a request is answered 503 and the connection
/// closed.
pub const HTTP_CONNECTIONS_PER_ADDRESS_MAX: usize = 256;
/// Time a client has to send its request head.
pub const HTTP_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Keep-alive of idle HTTP connections.
pub const HTTP_KEEP_ALIVE: Duration = Duration::from_secs(30);
/// Time a client has to finish closing a connection.
pub const HTTP_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time given to connections to finish when the server stops, s.
pub const HTTP_SHUTDOWN_TIMEOUT_S: u64 = 5;

/// Connections open per peer address, shared by the workers.
#[derive(Clone, Default)]
pub struct PeerConnections {
    /// Open connections by address; an entry goes when its count is 0.
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PeerConnections {
    /// Counts a new connection from `peer`; the slot says whether it is
    /// within [`HTTP_CONNECTIONS_PER_ADDRESS_MAX`] and gives the count back
    /// when the connection ends (the slot lives in the connection's data).
    fn admit(&self, peer: IpAddr) -> PeerSlot {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(peer).or_default();
        *count += 1;
        PeerSlot {
            admitted: *count <= HTTP_CONNECTIONS_PER_ADDRESS_MAX,
            peer,
            table: self.clone(),
        }
    }

    /// Connections open from `peer` now.
    pub fn open_from(&self, peer: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(&peer).copied().unwrap_or(0)
    }
}

/// One connection's place in [`PeerConnections`].
pub struct PeerSlot {
    /// Within the per-address cap when it opened.
    admitted: bool,
    /// Its peer address.
    peer: IpAddr,
    /// Where to give the count back.
    table: PeerConnections,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.peer) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.peer);
            }
        }
    }
}

/// The `on_connect` hook: puts the connection's [`PeerSlot`] in its data.
fn on_connect(
    peers: &PeerConnections,
    io: &dyn std::any::Any,
    ext: &mut actix_web::dev::Extensions,
) {
    let peer = if let Some(tcp) = io.downcast_ref::<actix_web::rt::net::TcpStream>() {
        tcp.peer_addr().ok()
    } else if let Some(tls) = io
        .downcast_ref::<actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>>()
    {
        tls.get_ref().0.peer_addr().ok()
    } else {
        None
    };
    if let Some(peer) = peer {
        ext.insert(std::rc::Rc::new(peers.admit(peer.ip())));
    }
}

/// Answers 503 (and closes the connection) for a request on a connection
/// beyond its address's cap; passes the others on.
pub async fn refuse_over_cap<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: actix_web::middleware::Next<B>,
) -> Result<ServiceResponse<actix_web::body::EitherBody<B>>, actix_web::Error> {
    let over = req
        .conn_data::<std::rc::Rc<PeerSlot>>()
        .is_some_and(|slot| !slot.admitted);
    if over {
        let peer = req
            .peer_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        tracing::warn!(
            peer,
            limit = HTTP_CONNECTIONS_PER_ADDRESS_MAX,
            "Connection refused: too many from one address."
        );
        let api = super::error::ApiError::busy(
            format!("more than {HTTP_CONNECTIONS_PER_ADDRESS_MAX} connections from this address"),
            1,
        );
        let mut res = actix_web::ResponseError::error_response(&api);
        res.head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
        return Ok(req.into_response(res).map_into_right_body());
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// Starts the server on `listener` (HTTPS when `tls` is set) with the
/// limits above; answers its handle. `factory` builds the app per worker.
pub fn serve<F, I, S, B>(
    factory: F,
    listener: std::net::TcpListener,
    tls: Option<rustls::ServerConfig>,
    peers: PeerConnections,
) -> std::io::Result<(actix_web::dev::Server, ServerHandle)>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: actix_service::IntoServiceFactory<S, actix_http::Request>,
    S: ServiceFactory<
            actix_http::Request,
            Config = AppConfig,
            Response = ServiceResponse<B>,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
    S::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let server = match tls {
        None => {
            let peers = peers.clone();
            actix_web::HttpServer::new(factory)
                .workers(HTTP_WORKERS)
                .max_connections(HTTP_CONNECTIONS_MAX)
                .client_request_timeout(HTTP_REQUEST_TIMEOUT)
                .client_disconnect_timeout(HTTP_DISCONNECT_TIMEOUT)
                .keep_alive(HTTP_KEEP_ALIVE)
                .shutdown_timeout(HTTP_SHUTDOWN_TIMEOUT_S)
                .on_connect(move |io, ext| on_connect(&peers, io, ext))
                .disable_signals()
                .listen(listener)?
                .run()
        }
        Some(mut config) => {
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            let config = Arc::new(config);
            let local: SocketAddr = listener.local_addr()?;
            let host = local.to_string();
            actix_server::Server::build()
                .workers(HTTP_WORKERS)
                .max_concurrent_connections(HTTP_CONNECTIONS_MAX)
                .shutdown_timeout(HTTP_SHUTDOWN_TIMEOUT_S)
                .disable_signals()
                .listen("edgecc-https", listener, move || {
                    let peers = peers.clone();
                    let host = host.clone();
                    let app = factory()
                        .into_factory()
                        .map_err(|err: actix_web::Error| err.error_response());
                    let app = actix_service::map_config(app, move |_| {
                        // The semver-exempt constructor is the only public
                        // one; it is what actix-web's own HTTPS listener
                        // builds (secure, host, local address).
                        AppConfig::__priv_test_new(true, host.clone(), local)
                    });
                    actix_http::HttpService::build()
                        .keep_alive(HTTP_KEEP_ALIVE)
                        .client_request_timeout(HTTP_REQUEST_TIMEOUT)
                        .client_disconnect_timeout(HTTP_DISCONNECT_TIMEOUT)
                        .secure()
                        .local_addr(local)
                        .on_connect_ext(move |io: &_, ext: _| {
                            on_connect(&peers, io as &dyn std::any::Any, ext)
                        })
                        .h1(app)
                        .rustls_0_23(rustls::ServerConfig::clone(&config))
                })?
                .run()
        }
    };
    let handle = server.handle();
    Ok((server, handle))
}
