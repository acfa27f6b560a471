//! The HTTP side of edgecc: the JSON API under `/api/v1` (agent desktop,
//! supervisor, admin), the WebSocket event stream, `/healthz`, `/readyz`,
//! `/metrics` and the web UI (agent desktop at `/`, wallboard at
//! `/wallboard`: plain HTML/CSS/JS embedded in the binary).
//!
//! # Layout
//!
//! - [`start`] binds the listener (HTTPS through rustls when a certificate
//!   and key are configured) and answers an [`HttpHandle`].
//! - [`auth`]: argon2 passwords ([`auth::hash_password`]), bearer tokens,
//!   the login throttle, the [`auth::Caller`] extractor and roles.
//! - [`sessions`]: sessions kept (by their token's SHA-256) in a state tree,
//!   loaded at start, so a restart logs no one out.
//! - [`api`]: the JSON handlers; [`error`]: `{error, message}` answers and
//!   the body extractor that names the wrong field; [`routing`]: why a
//!   call's offers went to their agents.
//! - [`ws`]: `/api/v1/events`, one task per WebSocket; it tells the agent
//!   actor (through the registry) when a desktop opens and closes.
//! - [`hub`]: the one registry subscription, fanned out to desktops and
//!   supervisor screens; it keeps connection bookkeeping only (feeds, which
//!   agents a call reached).
//! - [`views`]: desktop, team, queue and interaction views, built from the
//!   actors' views: the actors are the one source of domain state (time in
//!   state and presence on the agent, mute per party on the call, waits on
//!   the queue); service level is the reports' (`reports::wallboard`).
//! - [`desk`]: the desktop's own endpoints (dropping a conference party,
//!   today's figures); [`desk_queues`]: the desktop's queue panel and
//!   when its members' desktops are told a queue changed.
//! - [`wallboard`]: agents' display names and the forced Not Ready's
//!   reason check.
//! - [`metrics`]: `/metrics` and every metric name.
//! - `ui/`: the embedded web UI; `openapi.json`: the API contract.
//!
//! Threads: actix-web runs [`HTTP_WORKERS`] worker threads; they reach the
//! actors through `Addr`s (which are `Send`), and share [`AppState`]. The
//! daemon's reload hook is an `Rc`, so it stays on the caller's arbiter
//! behind a small [`Reloader`] actor.

pub mod api;
pub mod auth;
pub mod config;
pub mod desk;
pub mod desk_queues;
pub mod error;
pub mod hub;
pub mod metrics;
pub mod routing;
pub mod server;
pub mod sessions;
mod ui_cache;
pub mod views;
pub mod wallboard;
pub mod ws;

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix::prelude::*;
use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse};
use edgecc_actors::config::ReasonCodeConfig;
use edgecc_actors::ports::LocalBoxFuture;
use edgecc_actors::registry::{Registry, ReloadSummary, Snapshot, Subscribe};
use edgecc_storage::{StateTree, Storage};
use tracing::info;

use crate::config::Config;
use crate::crm::sync::SyncWorker;
use crate::system::running::Running;
use crate::system::storage::Tree;
use config::HttpConfig;

pub use server::{HTTP_CONNECTIONS_MAX, HTTP_CONNECTIONS_PER_ADDRESS_MAX, HTTP_WORKERS};
/// `/readyz` gives the actors and the storage this long to answer.
pub const READY_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The daemon's config reload ([`crate::ops::reload::hook`]): re-reads the
/// file, applies it and answers what changed, or refuses a bad one (the old
/// config stays). Wired to SIGHUP too.
pub type ReloadHook = Rc<dyn Fn() -> LocalBoxFuture<'static, Result<ReloadSummary, ReloadError>>>;

/// Why a reload was refused (the running configuration stays); the API
/// answers it as 422 `config_refused` with this text.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The daemon runs on the built-in defaults: there is no file to re-read.
    #[error("started without a config file: nothing to reload")]
    NoConfigFile,
    /// The file does not load, or the running system refuses it (names the
    /// file and the key).
    #[error(transparent)]
    Refused(#[from] crate::config::ConfigError),
    /// A reload arrived before the contact center was started.
    #[error("the contact center is not started yet")]
    NotStarted,
    /// The contact center did not answer (stopping).
    #[error("the contact center did not answer: {0}")]
    Actors(String),
}

/// Why the HTTP listener did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `[http]` has no `listen`.
    #[error("http.listen is not set")]
    NoListen,
    /// The TLS files are wrong (names the key and the file).
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A state tree HTTP keeps (sessions, health, CRM links) could not be
    /// opened.
    #[error("storage: {0}")]
    Storage(#[from] edgecc_storage::StorageError),
    /// The registry did not take the hub's subscription.
    #[error("registry: {0}")]
    Registry(String),
    /// The address could not be bound (in use, not ours).
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// `http.listen`.
        addr: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The server could not listen on the bound socket.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// `http.listen`.
        addr: String,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// Why the TLS files of `[http]` cannot serve HTTPS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// One of the two files is set without the other.
    #[error("http.tls_cert_file and http.tls_key_file go together")]
    Unpaired,
    /// The certificate file is unreadable or not PEM.
    #[error("http.tls_cert_file {}: {message}", file.display())]
    Cert {
        /// The file.
        file: std::path::PathBuf,
        /// What the PEM reader said.
        message: String,
    },
    /// The certificate file holds no certificate.
    #[error("http.tls_cert_file {}: no certificate", file.display())]
    NoCert {
        /// The file.
        file: std::path::PathBuf,
    },
    /// The key file is unreadable or not a PEM private key.
    #[error("http.tls_key_file {}: {message}", file.display())]
    Key {
        /// The file.
        file: std::path::PathBuf,
        /// What the PEM reader said.
        message: String,
    },
    /// rustls refused the pair (a key that does not match, say).
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Reload the configuration through the hook.
#[derive(Message)]
#[rtype(result = "Result<ReloadSummary, ReloadError>")]
pub struct Reload;

/// Holds the (non-`Send`) reload hook on the arbiter that started HTTP.
pub struct Reloader {
    /// The daemon's hook.
    hook: ReloadHook,
}

impl Actor for Reloader {
    type Context = Context<Self>;
}

impl Handler<Reload> for Reloader {
    type Result = ResponseFuture<Result<ReloadSummary, ReloadError>>;

    fn handle(&mut self, _msg: Reload, _ctx: &mut Self::Context) -> Self::Result {
        (self.hook)()
    }
}

/// What every handler shares.
pub struct AppState {
    /// The contact center's facade.
    pub registry: Addr<Registry>,
    /// The CRM sync worker (circuit, latencies), when a CRM is configured.
    pub sync: Option<Addr<SyncWorker>>,
    /// The data directory (outbox, state trees).
    pub storage: Storage,
    /// CRM links of delivered interactions (written by the sync worker).
    pub crm_links: Option<StateTree>,
    /// Readiness probe tree.
    pub health: StateTree,
    /// Users, sessions, throttle.
    pub auth: Arc<auth::Auth>,
    /// The event hub's shared part.
    pub hub: Arc<hub::HubShared>,
    /// Reason codes agents may pick (replaced on reload).
    pub reason_codes: RwLock<Vec<ReasonCodeConfig>>,
    /// Listener settings (grace, TTL).
    pub http: HttpConfig,
    /// The reload hook's actor, when the daemon wired one.
    pub reload: Option<Addr<Reloader>>,
    /// Who owns the ARI application, when the system drives an Asterisk
    /// (`/readyz`, `/metrics`, the admin take-back).
    pub ari_owner: Option<Arc<crate::ari::AppOwnership>>,
}

impl AppState {
    /// The reason codes now.
    pub fn reason_codes(&self) -> Vec<ReasonCodeConfig> {
        self.reason_codes
            .read()
            .map(|r| r.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }
}

/// Swaps what a config reload changes in the HTTP layer. Cheap to clone;
/// hand one to the reload hook.
#[derive(Clone)]
pub struct HttpControl {
    /// The shared state.
    state: Arc<AppState>,
}

impl HttpControl {
    /// Applies a reloaded config: users (sessions of removed users end) and
    /// reason codes. The listener address and TLS files need a restart.
    pub fn apply(&self, config: &Config) {
        self.state.auth.set_users(&config.users);
        if let Ok(mut r) = self.state.reason_codes.write() {
            *r = config.contact_center.reason_codes.clone();
        }
        info!(users = config.users.len(), "HTTP settings reloaded.");
    }
}

/// A running HTTP server.
pub struct HttpHandle {
    /// Where it listens (the real port when the config said `:0`).
    pub local_addr: SocketAddr,
    /// Stops the server.
    pub server: ServerHandle,
    /// Applies reloaded settings.
    pub control: HttpControl,
    /// Whether it serves HTTPS.
    pub tls: bool,
}

impl HttpHandle {
    /// Stops accepting, lets requests finish (bounded), closes.
    pub async fn stop(&self) {
        self.server.stop(true).await;
    }
}

/// Starts the HTTP server for `config.http` on the current actix system:
/// subscribes the event hub to the registry, binds `config.http.listen`
/// (error if `None`), and serves until [`HttpHandle::stop`]. `reload` is the
/// daemon's config reload (for `POST /api/v1/admin/reload`).
pub async fn start(
    config: &Config,
    running: &Running,
    storage: Storage,
    reload: Option<ReloadHook>,
) -> Result<HttpHandle, StartError> {
    let http = config.http.clone();
    let listen = http.listen.clone().ok_or(StartError::NoListen)?;
    let tls = tls_config(&http)?;
    let tree = |name: &str| storage.state(name).map_err(StartError::Storage);
    let crm_links = match running.sync {
        Some(_) => Some(tree(Tree::CrmLinks.name())?),
        None => None,
    };
    let mut auth = auth::Auth::new(&config.users, http.token_ttl_ms);
    auth.restore(
        sessions::SessionStore::new(tree(Tree::HttpSessions.name())?),
        crate::clock::now_ms(),
    )
    .await;
    let shared = hub::Hub::shared();
    let hub_addr = hub::Hub::start(shared.clone());
    running
        .registry
        .send(Subscribe(hub_addr.recipient()))
        .await
        .map_err(|e| StartError::Registry(e.to_string()))?
        .map_err(|e| StartError::Registry(e.to_string()))?;
    // Desktops connected when a restored system was killed may come back
    // from now on, within the grace (`edgecc_actors::agent::presence`).
    running
        .registry
        .do_send(edgecc_actors::agent::actor::AwaitDesktops {
            grace_ms: http.desktop_grace_ms,
        });
    // The per-queue wait buckets of `/metrics` include each threshold.
    running
        .registry
        .send(running.reports.service_levels())
        .await
        .map_err(|e| StartError::Registry(e.to_string()))?;
    let reports = web::Data::new(crate::reports::http::ReportsState::new(
        tree(Tree::ActorState.name())?,
        running.reports.clone(),
    ));
    let state = Arc::new(AppState {
        registry: running.registry.clone(),
        sync: running.sync.clone(),
        // Written by `/readyz` to prove the storage takes writes.
        health: tree(Tree::HttpHealth.name())?,
        storage,
        crm_links,
        auth: Arc::new(auth),
        hub: shared,
        reason_codes: RwLock::new(config.contact_center.reason_codes.clone()),
        http,
        reload: reload.map(|hook| Reloader { hook }.start()),
        ari_owner: running.ari.as_ref().map(|a| a.app_ownership()),
    });
    let data = web::Data::from(state.clone());
    let bind_error = |source| StartError::Bind {
        addr: listen.clone(),
        source,
    };
    let listener = std::net::TcpListener::bind(&listen).map_err(bind_error)?;
    let local_addr = listener.local_addr().map_err(bind_error)?;
    let peers = server::PeerConnections::default();
    let is_tls = tls.is_some();
    let (server, _) = server::serve(
        move || {
            App::new()
                .wrap(actix_web::middleware::from_fn(server::refuse_over_cap))
                .app_data(data.clone())
                .app_data(reports.clone())
                .app_data(error::payload_config())
                .app_data(query_config())
                .app_data(path_config())
                .configure(routes)
                .default_service(web::to(not_found))
        },
        listener,
        tls,
        peers,
    )
    .map_err(|source| StartError::Listen {
        addr: listen.clone(),
        source,
    })?;
    let handle = server.handle();
    actix_rt::spawn(server);
    info!(addr = %local_addr, tls = is_tls, "HTTP API listening.");
    Ok(HttpHandle {
        local_addr,
        server: handle,
        control: HttpControl { state },
        tls: is_tls,
    })
}

/// The rustls server config, when both files are set.
fn tls_config(http: &HttpConfig) -> Result<Option<rustls::ServerConfig>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (cert, key) = match (&http.tls_cert_file, &http.tls_key_file) {
        (Some(c), Some(k)) => (c, k),
        (None, None) => return Ok(None),
        _ => return Err(TlsError::Unpaired),
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Cert {
            file: cert.clone(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCert { file: cert.clone() });
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        file: key.clone(),
        message: e.to_string(),
    })?;
    Ok(Some(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?,
    ))
}

/// Query-string errors as JSON.
fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        let api = error::ApiError::bad_request(format!("query: {err}"));
        actix_web::error::InternalError::from_response(
            err,
            actix_web::ResponseError::error_response(&api),
        )
        .into()
    })
}

/// Path parameter errors as JSON (404: no such resource).
fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, _req| {
        let api = error::ApiError::not_found(format!("path: {err}"));
        actix_web::error::InternalError::from_response(
            err,
            actix_web::ResponseError::error_response(&api),
        )
        .into()
    })
}

async fn not_found() -> HttpResponse {
    actix_web::ResponseError::error_response(&error::ApiError::not_found("no such endpoint"))
}

/// Every route.
fn routes(cfg: &mut web::ServiceConfig) {
    // The pages and their files are gzipped for a client that takes it
    // (not the API: its answers are small and some stream).
    let gzip = actix_web::middleware::Compress::default;
    cfg.route("/", web::get().to(ui_desktop).wrap(gzip()))
        .route("/wallboard", web::get().to(ui_wallboard).wrap(gzip()))
        .route("/ui/{file}", web::get().to(ui_asset).wrap(gzip()))
        .route("/favicon.ico", web::get().to(favicon))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics_text))
        .service(
            web::scope("/api/v1")
                .route("/openapi.json", web::get().to(openapi))
                .route("/session", web::post().to(api::login))
                .route("/session", web::delete().to(api::logout))
                .route("/me", web::get().to(api::me))
                .route("/reason_codes", web::get().to(api::reason_codes))
                .route("/events", web::get().to(ws::events))
                .route("/agent/state", web::post().to(api::set_state))
                .route("/agent/wrap_up/end", web::post().to(api::end_wrap_up))
                .route("/agent/dial", web::post().to(api::dial))
                .route("/agent/today", web::get().to(desk::today))
                .route(
                    "/calls/{call_id}/parties/{agent_id}",
                    web::delete().to(desk::drop_party),
                )
                .route("/calls", web::get().to(api::calls))
                .route("/calls/{call_id}/sticky", web::post().to(api::sticky))
                .route(
                    "/calls/{call_id}/routing",
                    web::get().to(routing::call_routing),
                )
                .route(
                    "/calls/{call_id}/{action}",
                    web::post().to(api::call_action),
                )
                .route("/interactions/{call_id}", web::get().to(api::interaction))
                .route(
                    "/sticky_customers/{ani}",
                    web::put().to(api::set_sticky_customer),
                )
                .route("/agents", web::get().to(api::agents))
                .route("/agents/{agent_id}/state", web::post().to(api::force_state))
                .route(
                    "/agents/{agent_id}/supervision",
                    web::delete().to(api::end_supervision),
                )
                .route(
                    "/agents/{agent_id}/{mode}",
                    web::post().to(api::supervise_call),
                )
                .route("/queues", web::get().to(api::queues))
                .route("/directory", web::get().to(api::directory))
                .route("/wallboard", web::get().to(api::wallboard))
                .route(
                    "/reports/queues",
                    web::get().to(crate::reports::http::queues),
                )
                .route(
                    "/reports/agents",
                    web::get().to(crate::reports::http::agents),
                )
                .route(
                    "/reports/wallboard",
                    web::get().to(crate::reports::http::wallboard),
                )
                .route("/admin/outbox", web::get().to(api::outbox_status))
                .route("/admin/outbox/records", web::get().to(api::outbox_list))
                .route("/admin/dead_letters", web::get().to(api::dead_list))
                .route(
                    "/admin/dead_letters/requeue_all",
                    web::post().to(api::dead_requeue_all),
                )
                .route(
                    "/admin/dead_letters/{seq}/requeue",
                    web::post().to(api::dead_requeue),
                )
                .route("/admin/reload", web::post().to(api::reload))
                .route("/admin/pbx/take_back", web::post().to(api::pbx_take_back)),
        );
}

/// The OpenAPI document.
const OPENAPI_JSON: &str = include_str!("openapi.json");
/// Agent desktop page.
const UI_DESKTOP_HTML: &str = include_str!("ui/desktop.html");
/// Wallboard page.
const UI_WALLBOARD_HTML: &str = include_str!("ui/wallboard.html");
/// Shared styles.
const UI_STYLE_CSS: &str = include_str!("ui/style.css");
/// Shared script (API client, WebSocket with reconnect).
const UI_COMMON_JS: &str = include_str!("ui/common.js");
/// Agent desktop script.
const UI_DESKTOP_JS: &str = include_str!("ui/desktop.js");
/// Wallboard script.
const UI_WALLBOARD_JS: &str = include_str!("ui/wallboard.js");
/// The wallboard's "why this agent" panel for a live call.
const UI_WALLBOARD_ROUTING_JS: &str = include_str!("ui/wallboard_routing.js");
/// The wallboard's period figures and chart (from the reports).
const UI_WALLBOARD_REPORTS_JS: &str = include_str!("ui/wallboard_reports.js");

/// The tab icon: a headset mark in the header's colours (SVG, cached a day).
const UI_FAVICON_SVG: &str = "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'><rect width='16' height='16' rx='3' fill='#20262e'/><path d='M3 9a5 5 0 0 1 10 0v3h-3V9h2a4 4 0 0 0-8 0h2v3H3z' fill='#fff'/></svg>";

/// The UI's security headers: no framing, no inline scripts from elsewhere.
/// Pages are revalidated on every load (`no-cache` with an `ETag`), so a new
/// build is picked up at once while an unchanged page costs a 304.
fn ui_page(req: &HttpRequest, body: &'static str) -> HttpResponse {
    if let Some(unchanged) = ui_cache::not_modified(req, body) {
        return unchanged;
    }
    HttpResponse::Ok()
        .insert_header(ui_cache::etag(body))
        .insert_header(ui_cache::REVALIDATE)
        .content_type("text/html; charset=utf-8")
        .insert_header(("X-Frame-Options", "DENY"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header((
            "Content-Security-Policy",
            "default-src 'self'; connect-src 'self' ws: wss:; style-src 'self'; script-src 'self'",
        ))
        .body(body)
}

async fn ui_desktop(req: HttpRequest) -> HttpResponse {
    ui_page(&req, UI_DESKTOP_HTML)
}

async fn ui_wallboard(req: HttpRequest) -> HttpResponse {
    ui_page(&req, UI_WALLBOARD_HTML)
}

/// `/favicon.ico`: browsers ask for it on every page; an icon, not a 404.
async fn favicon() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("image/svg+xml")
        .insert_header(("Cache-Control", "public, max-age=86400"))
        .body(UI_FAVICON_SVG)
}

async fn ui_asset(req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let (body, kind) = match path.as_str() {
        "style.css" => (UI_STYLE_CSS, "text/css; charset=utf-8"),
        "common.js" => (UI_COMMON_JS, "text/javascript; charset=utf-8"),
        "desktop.js" => (UI_DESKTOP_JS, "text/javascript; charset=utf-8"),
        "wallboard.js" => (UI_WALLBOARD_JS, "text/javascript; charset=utf-8"),
        "wallboard_routing.js" => (UI_WALLBOARD_ROUTING_JS, "text/javascript; charset=utf-8"),
        "wallboard_reports.js" => (UI_WALLBOARD_REPORTS_JS, "text/javascript; charset=utf-8"),
        _ => {
            return actix_web::ResponseError::error_response(&error::ApiError::not_found(
                "no such file",
            ))
        }
    };
    if let Some(unchanged) = ui_cache::not_modified(&req, body) {
        return unchanged;
    }
    HttpResponse::Ok()
        .content_type(kind)
        .insert_header(ui_cache::etag(body))
        .insert_header(ui_cache::REVALIDATE)
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(body)
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(OPENAPI_JSON)
}

/// Alive: the process answers.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "alive"}))
}

/// Ready: the contact center answers, the PBX link is up and the storage
/// takes a durable write. A CRM outage does not make edgecc unready, nor
/// does a quarantined sled directory (the outbox was rebuilt from the log):
/// `storage_health` reports it, with the writer queue's depth, for an
/// installer to see.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let actors = tokio::time::timeout(
        READY_CHECK_TIMEOUT,
        state.registry.send(Snapshot { with_queues: false }),
    )
    .await;
    let (actors_ok, pbx_up) = match actors {
        Ok(Ok(snap)) => (true, snap.pbx_link_up),
        _ => (false, false),
    };
    let now = crate::clock::now_ms().to_be_bytes();
    let storage_ok = matches!(
        tokio::time::timeout(READY_CHECK_TIMEOUT, state.health.put(b"probe", &now)).await,
        Ok(Ok(()))
    );
    let ready = actors_ok && pbx_up && storage_ok;
    // Another client owns the ARI application: calls go to it, so this box
    // is not ready, and says why (an HA pair's standby reads the same).
    let taken_over = state
        .ari_owner
        .as_ref()
        .and_then(|o| o.taken_over_since_ms());
    let pbx = match (pbx_up, taken_over) {
        (true, _) => "up",
        (false, Some(_)) => "taken_over",
        (false, None) => "down",
    };
    let mut body = serde_json::json!({
        "ready": ready,
        "actors": if actors_ok { "responding" } else { "not responding" },
        "pbx": pbx,
        "storage": if storage_ok { "writable" } else { "failing" },
        "storage_health": state.storage.health(),
        "ha_role": crate::ops::ha_role::current().as_str(),
    });
    if let Some(since_ms) = taken_over {
        body["pbx_detail"] = serde_json::json!({
            "taken_over_since_ms": since_ms,
            "message": "another client took over the ARI application; edgecc does not take it back by itself: stop the other client, then POST /api/v1/admin/pbx/take_back (or restart edgecc)",
        });
    }
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn metrics_text(state: web::Data<AppState>) -> Result<HttpResponse, error::ApiError> {
    let text = metrics::render(&state).await?;
    Ok(HttpResponse::Ok()
        .content_type(metrics::CONTENT_TYPE)
        .body(text))
}

/// Re-exported for `edgecc passwd`.
pub use auth::hash_password;
