//! `GET /api/v1/events`: the WebSocket of desktops and wallboards. It owns
//! one connection's life: authentication, the snapshot, the event feed from
//! the hub, heartbeats and limits. An agent desktop's opening and closing
//! goes to the agent actor (through the registry), which keeps the presence
//! and the grace after the last close.
//!
//! Protocol: authenticate with `?token=` or, since browsers cannot set
//! headers on a WebSocket, with a first text message `{"token": "…"}` within
//! [`AUTH_TIMEOUT`]. The server then sends a full snapshot (`type:
//! "snapshot"` for an agent, `"wallboard"` for supervisors), then events
//! (`agent_changed`, `call_changed`, `call_notice`, `outbox_stalled`; on a
//! desktop also `queues_changed`, naming the queues it serves whose waiting
//! line changed) each followed by a fresh snapshot, coalesced to at most one per
//! [`SNAPSHOT_INTERVAL_MIN`]. A reconnect gets the same snapshot, so a
//! refresh restores the screen (an alerting offer included). The client may
//! send `{"type":"resync"}` at any time; anything else is answered with
//! `{"type":"error","error":"bad_message","message":…}`.
//!
//! Limits: pings every [`HEARTBEAT_INTERVAL`], closed after
//! [`CLIENT_TIMEOUT`] of silence; a client too slow to take a message within
//! [`SEND_TIMEOUT`], or lagging the broadcast, is disconnected.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason, Message, Session};
use edgecc_actors::agent::actor::DesktopEvent;
use edgecc_actors::registry::AgentDesktop;
use edgecc_actors::AgentId;
use tokio::sync::broadcast::error::RecvError;
use tracing::info;

use super::auth::{Caller, Session as AuthSession};
use super::config::Role;
use super::error::ApiError;
use super::hub::Broadcast;
use super::{views, AppState};

/// How long a connection may take to send its token.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// Server pings this often.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);
/// A client silent this long (no pong, no message) is closed.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait to hand one message to a client before closing it as slow.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Snapshots after events are coalesced to at most one per this interval.
pub const SNAPSHOT_INTERVAL_MIN: Duration = Duration::from_millis(200);
/// Largest frame accepted from a client, bytes.
pub const FRAME_BYTES_MAX: usize = 4 * 1024;

/// Upgrades the request and spawns the connection task.
pub async fn events(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let query_token =
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .ok()
            .and_then(|q| q.get("token").cloned());
    let header_token = super::auth::bearer(&req);
    // Check a token given up front before upgrading, so a bad one is a 401.
    let pre = match query_token.or(header_token) {
        Some(token) => Some(
            state
                .auth
                .check(&token, crate::clock::now_ms())
                .map(|session| Caller { token, session })?,
        ),
        None => None,
    };
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let stream = stream.max_frame_size(FRAME_BYTES_MAX);
    let state = state.into_inner();
    actix_web::rt::spawn(async move {
        run(state, pre, session, stream).await;
    });
    Ok(response)
}

/// Why a connection ends.
enum End {
    /// The client closed or went away.
    Client,
    /// A limit was hit: the close code to send, and why.
    Limit(CloseCode, &'static str),
}

/// Checks a client's text message: `{"type":"resync"}` is the only one
/// there is (desktop actions go through the HTTP API). Why not, otherwise.
fn client_message(text: &str) -> Result<(), String> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| format!("not JSON ({e}): the only message is {{\"type\":\"resync\"}}"))?;
    match value.get("type").and_then(serde_json::Value::as_str) {
        Some("resync") => Ok(()),
        Some(other) => Err(format!(
            "unknown type {other:?}: the only message is {{\"type\":\"resync\"}}"
        )),
        None => Err("no \"type\": the only message is {\"type\":\"resync\"}".into()),
    }
}

async fn send(session: &mut Session, text: String) -> Result<(), End> {
    match tokio::time::timeout(SEND_TIMEOUT, session.text(text)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(End::Client),
        Err(_) => Err(End::Limit(CloseCode::Again, "slow client")),
    }
}

/// The snapshot for this caller.
async fn snapshot(state: &AppState, caller: &AuthSession) -> Result<String, ApiError> {
    let value = match caller.role {
        Role::Agent => views::desktop(state, &AgentId::new(caller.user_id.clone())).await?,
        Role::Supervisor | Role::Admin => views::wallboard(state).await?,
    };
    Ok(value.to_string())
}

/// Waits for `{"token": "..."}` as the first message.
async fn first_message_auth(
    state: &AppState,
    session: &mut Session,
    stream: &mut actix_ws::MessageStream,
) -> Option<Caller> {
    let deadline = tokio::time::Instant::now() + AUTH_TIMEOUT;
    loop {
        let msg = tokio::time::timeout_at(deadline, stream.recv())
            .await
            .ok()??;
        match msg {
            Ok(Message::Text(text)) => {
                let token = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v.get("token").and_then(|t| t.as_str()).map(str::to_owned));
                let result = token
                    .ok_or_else(|| ApiError::unauthorized("first message must be {\"token\": …}"))
                    .and_then(|t| {
                        state
                            .auth
                            .check(&t, crate::clock::now_ms())
                            .map(|s| Caller {
                                token: t,
                                session: s,
                            })
                    });
                return match result {
                    Ok(c) => Some(c),
                    Err(e) => {
                        let _ = send(session, serde_json::json!({"type": "error", "error": e.error, "message": e.message}).to_string()).await;
                        None
                    }
                };
            }
            Ok(Message::Ping(p)) => {
                let _ = session.pong(&p).await;
            }
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

async fn run(
    state: Arc<AppState>,
    pre: Option<Caller>,
    mut session: Session,
    mut stream: actix_ws::MessageStream,
) {
    let caller = match pre {
        Some(c) => Some(c),
        None => first_message_auth(&state, &mut session, &mut stream).await,
    };
    let Some(caller) = caller else {
        let _ = session
            .close(Some(CloseReason {
                code: CloseCode::Policy,
                description: Some("unauthorized".into()),
            }))
            .await;
        return;
    };
    let who = caller.session.clone();
    let agent = (who.role == Role::Agent).then(|| AgentId::new(who.user_id.clone()));
    if let Some(agent) = &agent {
        state.registry.do_send(AgentDesktop {
            agent: agent.clone(),
            event: DesktopEvent::Connected,
        });
    }
    info!(user_id = %who.user_id, role = ?who.role, "WebSocket connected.");
    let end = serve(&state, &caller, &mut session, &mut stream).await;
    let (code, reason) = match end {
        End::Client => (CloseCode::Normal, "client closed"),
        End::Limit(code, why) => (code, why),
    };
    info!(user_id = %who.user_id, reason, "WebSocket closed.");
    let _ = session
        .close(Some(CloseReason {
            code,
            description: Some(reason.into()),
        }))
        .await;
    if let Some(agent) = agent {
        state.registry.do_send(AgentDesktop {
            agent,
            event: DesktopEvent::Disconnected {
                grace_ms: state.http.desktop_grace_ms,
            },
        });
    }
}

async fn serve(
    state: &AppState,
    caller: &Caller,
    session: &mut Session,
    stream: &mut actix_ws::MessageStream,
) -> End {
    let who = &caller.session;
    let mut feed = Feed::open(state, who);
    let end = serve_feed(state, caller, session, stream, &mut feed).await;
    if let Feed::Desk { agent, id, .. } = &feed {
        state.hub.detach_desktop(agent, *id);
    }
    end
}

/// Where a connection's events come from: an agent desktop has its own
/// bounded queue fed only with its events; supervisors read every event
/// from the broadcast channel.
enum Feed {
    /// An agent desktop.
    Desk {
        /// The agent.
        agent: AgentId,
        /// The feed's id (to detach it).
        id: u64,
        /// Its queue.
        rx: tokio::sync::mpsc::Receiver<Arc<Broadcast>>,
    },
    /// A supervisor or admin screen.
    Board(tokio::sync::broadcast::Receiver<Arc<Broadcast>>),
}

impl Feed {
    fn open(state: &AppState, who: &AuthSession) -> Feed {
        match who.role {
            Role::Agent => {
                let agent = AgentId::new(who.user_id.clone());
                let (id, rx) = state.hub.attach_desktop(&agent);
                Feed::Desk { agent, id, rx }
            }
            Role::Supervisor | Role::Admin => Feed::Board(state.hub.tx.subscribe()),
        }
    }

    /// The next event for this connection.
    async fn recv(&mut self) -> Result<Arc<Broadcast>, End> {
        match self {
            // The hub drops a desktop's queue when it is full.
            Feed::Desk { rx, .. } => rx
                .recv()
                .await
                .ok_or(End::Limit(CloseCode::Again, "slow client (events dropped)")),
            Feed::Board(rx) => match rx.recv().await {
                Ok(b) => Ok(b),
                Err(RecvError::Lagged(_)) => {
                    Err(End::Limit(CloseCode::Again, "slow client (events lagged)"))
                }
                Err(RecvError::Closed) => Err(End::Limit(CloseCode::Restart, "shutting down")),
            },
        }
    }
}

async fn serve_feed(
    state: &AppState,
    caller: &Caller,
    session: &mut Session,
    stream: &mut actix_ws::MessageStream,
    feed: &mut Feed,
) -> End {
    let who = &caller.session;
    match snapshot(state, who).await {
        Ok(s) => {
            if let Err(e) = send(session, s).await {
                return e;
            }
        }
        Err(_) => return End::Limit(CloseCode::Error, "snapshot unavailable"),
    }
    let mut heartbeat = tokio::time::interval(HEARTBEAT_INTERVAL);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_seen = tokio::time::Instant::now();
    let mut dirty = false;
    let mut next_snapshot = tokio::time::Instant::now();
    loop {
        let snapshot_due = tokio::time::sleep_until(next_snapshot);
        tokio::select! {
            event = feed.recv() => match event {
                // The hub routes: a desktop's feed holds only its agent's
                // events, a supervisor's holds every event.
                Ok(b) => {
                    if let Err(e) = send(session, b.text.clone()).await {
                        return e;
                    }
                    dirty |= b.refresh;
                }
                Err(end) => return end,
            },
            msg = stream.recv() => {
                last_seen = tokio::time::Instant::now();
                match msg {
                    Some(Ok(Message::Ping(p))) => {
                        if session.pong(&p).await.is_err() {
                            return End::Client;
                        }
                    }
                    Some(Ok(Message::Text(text))) => match client_message(&text) {
                        Ok(()) => {
                            dirty = true;
                            next_snapshot = tokio::time::Instant::now();
                        }
                        Err(why) => {
                            let answer = serde_json::json!({
                                "type": "error",
                                "error": "bad_message",
                                "message": why,
                            });
                            if let Err(e) = send(session, answer.to_string()).await {
                                return e;
                            }
                        }
                    },
                    Some(Ok(Message::Close(_))) | None => return End::Client,
                    Some(Ok(_)) => {}
                    Some(Err(actix_ws::ProtocolError::Overflow)) => {
                        return End::Limit(CloseCode::Size, "message too large")
                    }
                    Some(Err(_)) => return End::Limit(CloseCode::Protocol, "protocol error"),
                }
            }
            _ = heartbeat.tick() => {
                if last_seen.elapsed() > CLIENT_TIMEOUT {
                    return End::Limit(CloseCode::Policy, "heartbeat timeout");
                }
                if state.auth.check(&caller.token, crate::clock::now_ms()).is_err() {
                    return End::Limit(CloseCode::Policy, "token expired or revoked");
                }
                if session.ping(b"").await.is_err() {
                    return End::Client;
                }
            }
            _ = snapshot_due, if dirty => {
                dirty = false;
                next_snapshot = tokio::time::Instant::now() + SNAPSHOT_INTERVAL_MIN;
                match snapshot(state, who).await {
                    Ok(s) => {
                        if let Err(e) = send(session, s).await {
                            return e;
                        }
                    }
                    Err(_) => return End::Limit(CloseCode::Error, "snapshot unavailable"),
                }
            }
        }
    }
}
