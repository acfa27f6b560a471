//! [`EmulatorHandle`], how tests, the demo and `edgecc crm-emulator` start,
//! read and steer an emulator, and the route table of its server.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};
use serde_json::{Map, Value};
use tracing::info;

use super::awa::route_work_item;
use super::control::{control_expire, control_mode, control_records, control_stats};
use super::import_set::import;
use super::oauth_token::oauth_token;
use super::openframe::{voice_create, voice_update};
use super::state::{Shared, State};
use super::table_api::{table_get, table_patch, table_post};
use super::webhook::webhook;
use super::{
    DroppedKeys, EmulatorConfig, EmulatorStats, Mode, RawRequest, Received, BODY_BYTES_MAX,
};

/// A running emulator. Cheap to clone; every clone drives the same one.
#[derive(Clone)]
pub struct EmulatorHandle {
    /// The emulator's state and server.
    shared: Arc<Shared>,
}

impl std::fmt::Debug for EmulatorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorHandle")
            .field("addr", &self.shared.addr)
            .finish()
    }
}

impl EmulatorHandle {
    /// Starts the emulator on `127.0.0.1:<config.port>`. Must be called
    /// inside an actix system (an `#[actix_rt::test]`, the daemon).
    pub async fn start(config: EmulatorConfig) -> std::io::Result<EmulatorHandle> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", config.port))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            addr,
            config,
            state: Mutex::new(State::default()),
            server: Mutex::new(None),
            home: actix_rt::Arbiter::current(),
            start_server,
        });
        let server = start_server(&shared, listener)?;
        *shared.server() = Some(server);
        info!(%addr, "CRM emulator listening.");
        Ok(EmulatorHandle { shared })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `http://127.0.0.1:<port>` (the ServiceNow instance URL).
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// The webhook endpoint's URL.
    pub fn webhook_url(&self) -> String {
        format!("http://{}/webhook", self.shared.addr)
    }

    /// Switches behaviour; `Refuse` closes the listener and any other mode
    /// reopens it on the same port.
    pub async fn set_mode(&self, mode: Mode) -> std::io::Result<()> {
        self.shared.apply_mode(mode).await
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.shared.state().mode.clone()
    }

    /// Counters.
    pub fn stats(&self) -> EmulatorStats {
        self.shared.state().stats.clone()
    }

    /// Stored records, in first-arrival order.
    pub fn records(&self) -> Vec<Received> {
        self.shared.state().received.clone()
    }

    /// Arrivals of an already-stored key.
    pub fn duplicates(&self) -> u64 {
        self.shared.state().stats.duplicates
    }

    /// Keys of `interaction`'s records, in first-arrival order.
    pub fn order(&self, interaction: &str) -> Vec<String> {
        self.shared
            .state()
            .order
            .get(interaction)
            .cloned()
            .unwrap_or_default()
    }

    /// The last CRM request, verbatim.
    pub fn last_request(&self) -> Option<RawRequest> {
        self.shared.state().last_request.clone()
    }

    /// ServiceNow rows of `table` (fields plus `sys_id`).
    pub fn table_rows(&self, table: &str) -> Vec<Value> {
        let st = self.shared.state();
        st.tables
            .get(table)
            .map(|rows| {
                rows.iter()
                    .map(|r| {
                        let mut f = r.fields.clone();
                        f.insert("sys_id".into(), Value::String(r.sys_id.clone()));
                        Value::Object(f)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The Table API and voice-interaction writes that named keys their
    /// table lacks (dropped, as ServiceNow drops them), in arrival order.
    pub fn dropped_keys(&self) -> Vec<DroppedKeys> {
        self.shared.state().dropped.clone()
    }

    /// Puts a row into `table` as if someone else had created it (a
    /// stranger's record for lookup tests); answers its sys_id.
    pub fn seed_row(&self, table: &str, fields: Map<String, Value>) -> String {
        self.shared.state().insert_row(table, String::new(), fields)
    }

    /// Forgets every OAuth token: the next API call answers 401.
    pub fn expire_tokens(&self) {
        self.shared.state().tokens.clear();
    }

    /// Stops the server (the handle stays readable).
    pub async fn stop(&self) {
        let running = self.shared.server().take();
        if let Some(server) = running {
            server.stop(false).await;
        }
    }
}

/// Builds and spawns a server on `listener`.
pub(super) fn start_server(
    shared: &Arc<Shared>,
    listener: std::net::TcpListener,
) -> std::io::Result<ServerHandle> {
    let data = web::Data::from(Arc::clone(shared));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(BODY_BYTES_MAX))
            .route("/webhook", web::post().to(webhook))
            .route("/api/now/import/{table}", web::post().to(import))
            .route("/api/now/table/{table}", web::get().to(table_get))
            .route("/api/now/table/{table}", web::post().to(table_post))
            .route(
                "/api/now/table/{table}/{sys_id}",
                web::patch().to(table_patch),
            )
            .route(
                "/api/now/openframe/voice-interaction",
                web::post().to(voice_create),
            )
            .route(
                "/api/now/openframe/voice-interaction/{sys_id}",
                web::patch().to(voice_update),
            )
            .route(
                "/api/now/awa/queues/{queue}/work_item",
                web::post().to(route_work_item),
            )
            .route("/oauth_token.do", web::post().to(oauth_token))
            .route("/_emulator/stats", web::get().to(control_stats))
            .route("/_emulator/records", web::get().to(control_records))
            .route("/_emulator/mode", web::post().to(control_mode))
            .route("/_emulator/expire_tokens", web::post().to(control_expire))
    })
    .workers(1)
    .backlog(64)
    .max_connections(256)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    let handle = server.handle();
    actix_rt::spawn(server);
    Ok(handle)
}
