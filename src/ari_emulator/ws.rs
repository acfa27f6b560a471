//! `GET /ari/events?app=…`: the app's WebSocket. The upgrade checks the
//! credentials like REST (401 without them) and is refused with 503 while
//! the emulator does not accept links. Each connection has a writer task
//! fed by an unbounded queue that the state fills under its lock, so
//! events leave in the order they happened; dropping the queue's sender
//! (a link drop) closes the connection.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{Message, MessageStream, Session};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tracing::debug;

use super::auth::{authorized, json_answer, unauthorized};
use super::wire::{self, message};
use super::Shared;

/// Largest frame accepted from the client, bytes (clients send nothing
/// but pings).
const FRAME_BYTES_MAX: usize = 64 * 1024;

/// The upgrade handler.
pub async fn events(req: HttpRequest, body: web::Payload, data: web::Data<Shared>) -> HttpResponse {
    let shared = data.into_inner();
    if !shared.lock().accept_links {
        return json_answer(503, &message("Service Unavailable"));
    }
    if !authorized(&req, &shared.cfg) {
        return unauthorized();
    }
    let p = wire::params(req.query_string(), b"");
    let app = p.get("app").cloned().unwrap_or_default();
    if app.is_empty() {
        return json_answer(400, &message("Missing required parameter: app"));
    }
    if !app.split(',').any(|a| a == shared.cfg.app) {
        return json_answer(400, &message("Application not known to the emulator"));
    }
    let (response, session, stream) = match actix_ws::handle(&req, body) {
        Ok(x) => x,
        Err(e) => return e.error_response(),
    };
    let stream = stream.max_frame_size(FRAME_BYTES_MAX);
    let (tx, rx) = unbounded_channel();
    // Attach before answering: once the client sees 101, calls reach Stasis.
    let id = shared.run(|c| c.attach(tx));
    debug!(link = id, "ARI emulator: WebSocket connected.");
    actix_web::rt::spawn(run(shared, id, session, stream, rx));
    response
}

async fn run(
    shared: Arc<Shared>,
    id: u64,
    mut session: Session,
    mut stream: MessageStream,
    mut rx: UnboundedReceiver<String>,
) {
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(text) => {
                    if session.text(text).await.is_err() {
                        break;
                    }
                }
                // The state dropped this link (drop_links).
                None => break,
            },
            msg = stream.recv() => match msg {
                Some(Ok(Message::Ping(b))) => {
                    if session.pong(&b).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
    shared.run(|c| c.detach(id));
    debug!(link = id, "ARI emulator: WebSocket closed.");
    let _ = session.close(None).await;
}
