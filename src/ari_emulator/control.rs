//! The control and status API of `edgecc pbx-emulator`: how something
//! outside the PBX process (the demo, a test) reads the simulated PBX's
//! truth and plays the callers, without living in its process. It is not
//! part of Asterisk's ARI and a daemon never calls it.
//!
//! Served on 127.0.0.1 only, on its own port (`--control-port`), with the
//! ARI credentials (Basic auth, user `edgecc`); every body is JSON.
//!
//! - `GET /emulator/status` (read-only): `pid` (the PBX process),
//!   `app_active` (a daemon holds the Stasis application), `channels`
//!   (`id`, `state`, `endpoint`, `in_stasis`, `bridge_id`, `snoop_of`),
//!   `bridges` (`id`, `channels`) and `tally`: the channels destroyed by
//!   Q.850 cause (`destroyed_by_cause`) and the application's own
//!   `app_hangups`, `app_continues` and `app_redirects`, counted since the
//!   PBX started ([`Tally`]).
//! - `POST /emulator/calls` `{"ani", "dnis", "name"?}` (test-only: a
//!   caller dials in): 200 `{"id"}`, the channel in the Stasis application;
//!   503 when no daemon holds the application (Asterisk's `Stasis()` fails
//!   the call at once).
//! - `POST /emulator/calls/{id}/hangup` (test-only: the caller hangs up,
//!   cause 16): 204, or 404.
//! - `POST /emulator/link-cut` `{"ms"}` (test-only: a network blip): every
//!   ARI WebSocket closed and new ones refused for `ms` (at most 60,000);
//!   204.

use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{web, HttpRequest, HttpResponse, HttpServer};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::{authorized, json_answer, unauthorized};
use super::{AriEmulator, EmulatorError, Tally};

/// The longest link cut asked for, ms.
const LINK_CUT_MAX_MS: u64 = 60_000;
/// Largest request body accepted, bytes.
const BODY_BYTES_MAX: usize = 4 * 1024;

/// `GET /emulator/status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Status {
    /// The PBX process's id: a reader can tell it is not the daemon's.
    pub pid: u32,
    /// A daemon holds the Stasis application (its WebSocket is up).
    pub app_active: bool,
    /// Every channel now.
    pub channels: Vec<ChannelStatus>,
    /// Every bridge now.
    pub bridges: Vec<BridgeStatus>,
    /// What ended channels and who asked, since the PBX started.
    pub tally: Tally,
}

impl Status {
    /// The channel with this id.
    pub fn channel(&self, id: &str) -> Option<&ChannelStatus> {
        self.channels.iter().find(|c| c.id == id)
    }

    /// The bridge with this id.
    pub fn bridge(&self, id: &str) -> Option<&BridgeStatus> {
        self.bridges.iter().find(|b| b.id == id)
    }
}

/// One channel in [`Status`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelStatus {
    /// ARI id (a caller's is the id edgecc knows the call by).
    pub id: String,
    /// `Down`, `Ring`, `Ringing`, `Up`, `Busy`.
    pub state: String,
    /// Its endpoint (`PJSIP/3101`) for an agent phone's channel.
    pub endpoint: Option<String>,
    /// In the Stasis application (not handed back to the dialplan).
    pub in_stasis: bool,
    /// The bridge it is in.
    pub bridge_id: Option<String>,
    /// The channel it spies on, for a snoop channel.
    pub snoop_of: Option<String>,
}

/// One bridge in [`Status`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeStatus {
    /// ARI id.
    pub id: String,
    /// Member channel ids, sorted.
    pub channels: Vec<String>,
}

/// `POST /emulator/calls`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallRequest {
    /// The caller's number.
    pub ani: String,
    /// The number dialled.
    pub dnis: String,
    /// The caller's name.
    #[serde(default)]
    pub name: Option<String>,
}

/// `POST /emulator/link-cut`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkCut {
    /// How long new links are refused, ms.
    pub ms: u64,
}

/// The PBX's status now.
pub fn status(pbx: &AriEmulator) -> Status {
    let state = pbx.state();
    Status {
        pid: std::process::id(),
        app_active: state.app_active,
        channels: state
            .channels
            .into_iter()
            .map(|c| ChannelStatus {
                id: c.id,
                state: c.state,
                endpoint: c.endpoint,
                in_stasis: c.in_stasis,
                bridge_id: c.bridge_id,
                snoop_of: c.snoop_of,
            })
            .collect(),
        bridges: state
            .bridges
            .into_iter()
            .map(|b| BridgeStatus {
                id: b.id,
                channels: b.channels,
            })
            .collect(),
        tally: pbx.tally(),
    }
}

/// Builds the control server for `pbx` on `listener` (not yet running).
pub fn server(pbx: AriEmulator, listener: std::net::TcpListener) -> std::io::Result<Server> {
    let data = web::Data::new(pbx);
    Ok(HttpServer::new(move || {
        actix_web::App::new()
            .app_data(data.clone())
            .app_data(web::JsonConfig::default().limit(BODY_BYTES_MAX))
            .route("/emulator/status", web::get().to(get_status))
            .route("/emulator/calls", web::post().to(place_call))
            .route("/emulator/calls/{id}/hangup", web::post().to(hang_up))
            .route("/emulator/link-cut", web::post().to(link_cut))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run())
}

/// The ARI credentials, or Asterisk's 401.
fn check(req: &HttpRequest, pbx: &AriEmulator) -> Result<(), HttpResponse> {
    if authorized(req, pbx.config()) {
        Ok(())
    } else {
        Err(unauthorized())
    }
}

async fn get_status(req: HttpRequest, pbx: web::Data<AriEmulator>) -> HttpResponse {
    if let Err(r) = check(&req, &pbx) {
        return r;
    }
    HttpResponse::Ok().json(status(&pbx))
}

async fn place_call(
    req: HttpRequest,
    pbx: web::Data<AriEmulator>,
    body: web::Json<CallRequest>,
) -> HttpResponse {
    if let Err(r) = check(&req, &pbx) {
        return r;
    }
    let name = body.name.as_deref().unwrap_or("Caller");
    match pbx.inbound_call(&body.ani, name, &body.dnis, &[]) {
        Ok(id) => json_answer(200, &json!({ "id": id })),
        Err(e @ (EmulatorError::NoLink | EmulatorError::ShuttingDown)) => {
            json_answer(503, &json!({ "message": e.to_string() }))
        }
        Err(e) => json_answer(409, &json!({ "message": e.to_string() })),
    }
}

async fn hang_up(
    req: HttpRequest,
    pbx: web::Data<AriEmulator>,
    id: web::Path<String>,
) -> HttpResponse {
    if let Err(r) = check(&req, &pbx) {
        return r;
    }
    match pbx.caller_hangup(&id) {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(e) => json_answer(404, &json!({ "message": e.to_string() })),
    }
}

async fn link_cut(
    req: HttpRequest,
    pbx: web::Data<AriEmulator>,
    body: web::Json<LinkCut>,
) -> HttpResponse {
    if let Err(r) = check(&req, &pbx) {
        return r;
    }
    if body.ms > LINK_CUT_MAX_MS {
        return json_answer(
            400,
            &json!({ "message": format!("ms: at most {LINK_CUT_MAX_MS}") }),
        );
    }
    pbx.set_accept_links(false);
    pbx.drop_links();
    tracing::info!(
        ms = body.ms,
        "PBX link cut: links closed, new ones refused."
    );
    let (pbx, ms) = (pbx.into_inner(), body.ms);
    actix_rt::spawn(async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        pbx.set_accept_links(true);
    });
    HttpResponse::NoContent().finish()
}
