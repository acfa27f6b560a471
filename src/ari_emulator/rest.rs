//! The `/ari/...` REST surface: one dispatcher over the path segments, and the answers Asterisk gives: 200
//! with an object for creates and reads, 201 for playbacks, 204 with an
//! empty body for actions, `{"message": …}` errors (and `{"error":
//! "Allocation failed"}` for an endpoint that cannot be dialled).

use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::{Server, Service as _};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};

use super::auth::{authorized, json_answer, unauthorized};
use super::model::{Core, FaultKind, HttpError, PlayTarget};
use super::wire::{self, message, percent_decode};
use super::Shared;

/// Largest request body accepted, bytes (ARI bodies are small JSON objects).
const BODY_BYTES_MAX: usize = 64 * 1024;

/// What a successful request answers.
enum Reply {
    /// 200 with a JSON body.
    Json(Value),
    /// 201 with a JSON body (playbacks).
    Created(Value),
    /// 204, empty body.
    NoContent,
}

/// Builds the HTTP server on `listener` (not yet running).
pub fn server(shared: Arc<Shared>, listener: std::net::TcpListener) -> std::io::Result<Server> {
    let data = web::Data::from(shared);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(BODY_BYTES_MAX))
            .wrap_fn(|req, srv| {
                let shared = req.app_data::<web::Data<Shared>>().cloned();
                let method = req.method().to_string();
                let path = match req.query_string() {
                    "" => req.path().to_owned(),
                    q => format!("{}?{}", req.path(), q),
                };
                let at = Instant::now();
                let fut = srv.call(req);
                async move {
                    let res = fut.await?;
                    if let Some(s) = shared {
                        s.lock()
                            .log_request(&method, &path, res.status().as_u16(), at);
                    }
                    Ok(res)
                }
            })
            .route("/ari/events", web::get().to(super::ws::events))
            .default_service(web::to(dispatch))
    })
    // Small frames go out at once: with Nagle's algorithm on, a frame
    // written while the previous one is unacknowledged waits for the
    // client's delayed ACK (40 ms steps; BENCHMARKS.md, ARI section).
    .on_connect(|conn, _ext| {
        if let Some(sock) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            let _ = sock.set_nodelay(true);
        }
    })
    .workers(1)
    .backlog(256)
    .max_connections(1024)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run())
}

async fn dispatch(req: HttpRequest, body: web::Bytes, data: web::Data<Shared>) -> HttpResponse {
    let shared = data.into_inner();
    if !authorized(&req, &shared.cfg) {
        return unauthorized();
    }
    let method = req.method().as_str().to_owned();
    let under_ari = req.path().trim_start_matches("/ari/");
    match shared.run(|core| core.take_fault(&method, under_ari)) {
        None => carry_out(&shared, &req, &method, &body),
        Some(FaultKind::Status(status)) => json_answer(status, &message("Injected fault")),
        Some(FaultKind::Hang(d)) => {
            actix_rt::time::sleep(d).await;
            json_answer(504, &message("Injected hang"))
        }
        Some(FaultKind::Late(d)) => {
            // On its own task: a client that gives up (or dies) drops this
            // handler, not the request Asterisk already has.
            let (tx, rx) = tokio::sync::oneshot::channel();
            actix_rt::spawn(async move {
                actix_rt::time::sleep(d).await;
                let _ = tx.send(carry_out(&shared, &req, &method, &body));
            });
            rx.await
                .unwrap_or_else(|_| json_answer(500, &message("Internal Server Error")))
        }
    }
}

/// Carries out one authorized request on the emulated Asterisk.
fn carry_out(
    shared: &Arc<Shared>,
    req: &HttpRequest,
    method: &str,
    body: &web::Bytes,
) -> HttpResponse {
    let p = wire::params(req.query_string(), body);
    let segs: Vec<String> = req
        .path()
        .trim_start_matches('/')
        .trim_end_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let answer = shared.run(|core| {
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        match segs.split_first() {
            Some((&"ari", rest)) => route(core, method, rest, &p),
            _ => Err((404, message("Resource not found"))),
        }
    });
    match answer {
        Ok(Reply::Json(v)) => json_answer(200, &v),
        Ok(Reply::Created(v)) => json_answer(201, &v),
        Ok(Reply::NoContent) => HttpResponse::NoContent().finish(),
        Err((status, body)) => json_answer(status, &body),
    }
}

type Params = std::collections::HashMap<String, String>;

fn route(c: &mut Core, method: &str, segs: &[&str], p: &Params) -> Result<Reply, HttpError> {
    use Reply::{Created, Json, NoContent};
    let on = method == "POST";
    match (method, segs) {
        ("GET", ["asterisk", "info"]) => Ok(Json(wire::asterisk_info(&c.startup))),
        ("GET", ["asterisk", "ping"]) => Ok(Json(json!({
            "ping": "pong", "timestamp": wire::now(), "asterisk_id": wire::ASTERISK_ID,
        }))),
        ("GET", ["applications"]) => Ok(Json(json!([c.app_json()]))),
        ("GET", ["applications", app]) => {
            if *app == c.app {
                Ok(Json(c.app_json()))
            } else {
                Err((404, message("Application not found")))
            }
        }
        ("POST" | "DELETE", ["applications", app, "subscription"]) => {
            if *app != c.app {
                return Err((404, message("Application not found")));
            }
            let src = p.get("eventSource").cloned().unwrap_or_default();
            c.subscription(&src, on).map(Json)
        }
        ("GET", ["channels"]) => Ok(Json(c.channels_json())),
        ("POST", ["channels"]) => c.originate(p, false, None).map(Json),
        ("POST", ["channels", "create"]) => c.originate(p, true, None).map(Json),
        ("POST", ["channels", id]) => c.originate(p, false, Some(id)).map(Json),
        ("GET", ["channels", id]) => c.channel_get(id).map(Json),
        ("DELETE", ["channels", id]) => c.hangup_app(id).map(|_| NoContent),
        ("POST", ["channels", id, "answer"]) => c.answer(id).map(|_| NoContent),
        (
            "POST" | "DELETE",
            ["channels", id, what @ ("ring" | "hold" | "moh" | "mute" | "silence")],
        ) => c.flag(id, what, on, p).map(|_| NoContent),
        ("POST", ["channels", id, what @ ("dtmf" | "unhold")]) => {
            c.flag(id, what, on, p).map(|_| NoContent)
        }
        ("POST", ["channels", id, "dial"]) => c.dial(id, p).map(|_| NoContent),
        ("POST", ["channels", id, "play"]) => c.play(PlayTarget::Channel, id, p, None).map(Created),
        ("POST", ["channels", id, "play", pid]) => {
            c.play(PlayTarget::Channel, id, p, Some(pid)).map(Created)
        }
        ("POST", ["channels", id, "snoop"]) => c.snoop(id, p, None).map(Json),
        ("POST", ["channels", id, "snoop", sid]) => c.snoop(id, p, Some(sid)).map(Json),
        ("POST", ["channels", id, "continue"]) => c.continue_in_dialplan(id, p).map(|_| NoContent),
        ("POST", ["channels", id, "redirect"]) => c.redirect(id, p).map(|_| NoContent),
        ("GET", ["channels", id, "variable"]) => c.variable_get(id, p).map(Json),
        ("POST", ["channels", id, "variable"]) => c.variable_set(id, p).map(|_| NoContent),
        ("GET", ["bridges"]) => Ok(Json(c.bridges_json())),
        ("POST", ["bridges"]) => c.bridge_create(p, None).map(Json),
        ("POST", ["bridges", id]) => c.bridge_create(p, Some(id)).map(Json),
        ("GET", ["bridges", id]) => c.bridge_get(id).map(Json),
        ("DELETE", ["bridges", id]) => c.bridge_destroy(id).map(|_| NoContent),
        ("POST", ["bridges", id, "addChannel"]) => c.bridge_add(id, p).map(|_| NoContent),
        ("POST", ["bridges", id, "removeChannel"]) => c.bridge_remove(id, p).map(|_| NoContent),
        ("POST" | "DELETE", ["bridges", id, "moh"]) => c.bridge_moh(id, on).map(|_| NoContent),
        ("POST", ["bridges", id, "play"]) => c.play(PlayTarget::Bridge, id, p, None).map(Created),
        ("POST", ["bridges", id, "play", pid]) => {
            c.play(PlayTarget::Bridge, id, p, Some(pid)).map(Created)
        }
        ("GET", ["playbacks", id]) => c.playback_get(id).map(Json),
        ("DELETE", ["playbacks", id]) => c.playback_stop(id).map(|_| NoContent),
        ("GET", ["endpoints"]) => Ok(Json(c.endpoints_json())),
        ("GET", ["endpoints", tech, resource]) => c.endpoint_get(tech, resource).map(Json),
        _ => Err((404, message("Resource not found"))),
    }
}
