//! The JSON API under `/api/v1`: the handlers of session, agent,
//! supervisor and admin requests. Every handler checks the caller's role
//! first; an agent acts only on its own calls, which its agent actor decides
//! (a call control names the call, and the actor refuses another's). See
//! `openapi.json` for the contract.

use actix_web::{web, HttpRequest, HttpResponse};
use edgecc_actors::agent::actor::CallCommand;
use edgecc_actors::call::supervision::SuperviseMode;
use edgecc_actors::registry::{
    AgentCommand, AgentRequest, AgentSnapshot, CallRequest, SuperviseAgent, SupervisorCommand,
    SupervisorRequest,
};
use edgecc_actors::sticky::{SetSticky, StickyAnswer, StickyError, StickySource};
use edgecc_actors::{AgentId, CallAction, CallId, CcError, QueueId};
use serde::Deserialize;
use serde_json::json;
use tracing::{info, warn};

use super::auth::{bearer, Caller};
use super::config::Role;
use super::error::{ApiError, ApiJson};
use super::views;
use super::AppState;
use crate::ops::admin::AdminRequest;

/// Longest id (agent, queue, call, reason code) accepted in a path or body.
pub const ID_LEN_MAX: usize = 128;
/// Longest dialable number.
pub const DIAL_NUMBER_LEN_MAX: usize = 32;
/// Most records one admin list answers (the admin layer caps it too).
pub const ADMIN_LIST_LIMIT_DEFAULT: usize = 100;

type Data = web::Data<AppState>;

/// `POST /api/v1/session`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    /// The user id (named `agent_id` for scripts; supervisors use it too).
    #[serde(alias = "user_id")]
    pub agent_id: String,
    /// The password.
    pub password: String,
}

/// Logs in: answers a bearer token.
pub async fn login(
    state: Data,
    req: HttpRequest,
    body: ApiJson<LoginBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    if !is_plain_id(&body.agent_id) {
        return Err(ApiError::bad_request(format!(
            "field `agent_id`: empty, longer than {ID_LEN_MAX} bytes or with control characters"
        )));
    }
    let peer = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    let now = crate::clock::now_ms();
    let (token, session) = state
        .auth
        .login(&body.agent_id, &body.password, &peer, now)
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "token": token,
        "user_id": session.user_id,
        "role": session.role,
        "expires_at_ms": session.expires_at_ms,
    })))
}

/// Logs out: revokes the token.
pub async fn logout(state: Data, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let token = bearer(&req).ok_or_else(|| ApiError::unauthorized("missing token"))?;
    if !state.auth.logout(&token).await {
        return Err(ApiError::unauthorized("unknown or revoked token"));
    }
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /api/v1/me`: the agent's desktop snapshot, or the user for others.
pub async fn me(state: Data, caller: Caller) -> Result<HttpResponse, ApiError> {
    match caller.session.role {
        Role::Agent => {
            let agent = caller.agent()?;
            Ok(HttpResponse::Ok().json(views::desktop(&state, &agent).await?))
        }
        _ => Ok(HttpResponse::Ok().json(json!({
            "user_id": caller.session.user_id,
            "role": caller.session.role,
            "expires_at_ms": caller.session.expires_at_ms,
        }))),
    }
}

/// `GET /api/v1/reason_codes`.
pub async fn reason_codes(state: Data, _caller: Caller) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "reason_codes": state.reason_codes() }))
}

/// Sends `command` for `agent` to the registry.
async fn agent_request(
    state: &AppState,
    agent: AgentId,
    command: AgentCommand,
) -> Result<(), ApiError> {
    state
        .registry
        .send(AgentRequest { agent, command })
        .await
        .map_err(|e| ApiError::unavailable(format!("contact center: {e}")))?
        .map_err(ApiError::from)
}

/// `POST /api/v1/agent/state`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateBody {
    /// `login`, `ready`, `not_ready` or `logout`.
    pub state: String,
    /// The reason code (with `not_ready`).
    #[serde(default)]
    pub reason_code: Option<String>,
}

/// Changes the caller's own state.
pub async fn set_state(
    state: Data,
    caller: Caller,
    body: ApiJson<StateBody>,
) -> Result<HttpResponse, ApiError> {
    let agent = caller.agent()?;
    let command = match (body.0.state.as_str(), body.0.reason_code) {
        ("login", None) => AgentCommand::Login,
        ("ready", None) => AgentCommand::Ready,
        ("logout", None) => AgentCommand::Logout,
        ("not_ready", Some(code)) => {
            if !state.reason_codes().iter().any(|r| r.code == code) {
                return Err(ApiError::bad_request(format!(
                    "field `reason_code`: unknown reason code `{}`",
                    truncate(&code)
                )));
            }
            AgentCommand::NotReady { reason_code: code }
        }
        ("not_ready", None) => {
            return Err(ApiError::bad_request(
                "field `reason_code`: required with `not_ready`",
            ))
        }
        ("login" | "ready" | "logout", Some(_)) => {
            return Err(ApiError::bad_request(
                "field `reason_code`: only with `not_ready`",
            ))
        }
        (other, _) => {
            return Err(ApiError::bad_request(format!(
                "field `state`: `{}` is not one of login, ready, not_ready, logout",
                truncate(other)
            )))
        }
    };
    agent_request(&state, agent.clone(), command).await?;
    Ok(HttpResponse::Ok().json(views::desktop(&state, &agent).await?))
}

/// `POST /api/v1/agent/wrap_up/end`.
pub async fn end_wrap_up(state: Data, caller: Caller) -> Result<HttpResponse, ApiError> {
    let agent = caller.agent()?;
    agent_request(&state, agent.clone(), AgentCommand::EndWrapUp).await?;
    Ok(HttpResponse::Ok().json(views::desktop(&state, &agent).await?))
}

/// `POST /api/v1/agent/dial`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialBody {
    /// The customer's number: digits, `+`, `*`, `#`.
    pub number: String,
}

/// Outbound dial (Not Ready only).
pub async fn dial(
    state: Data,
    caller: Caller,
    body: ApiJson<DialBody>,
) -> Result<HttpResponse, ApiError> {
    let agent = caller.agent()?;
    let number = body.0.number;
    if number.is_empty()
        || number.len() > DIAL_NUMBER_LEN_MAX
        || !number
            .chars()
            .all(|c| c.is_ascii_digit() || "+*#".contains(c))
    {
        return Err(ApiError::bad_request(format!(
            "field `number`: 1-{DIAL_NUMBER_LEN_MAX} digits, `+`, `*` or `#`"
        )));
    }
    let view = state
        .registry
        .send(AgentSnapshot(agent.clone()))
        .await
        .map_err(|e| ApiError::unavailable(format!("contact center: {e}")))?;
    if view.is_none_or(|(v, _)| v.state.name() != "not_ready") {
        return Err(ApiError::conflict("outbound dial only while Not Ready"));
    }
    agent_request(&state, agent.clone(), AgentCommand::DialOutbound { number }).await?;
    Ok(HttpResponse::Accepted().json(views::desktop(&state, &agent).await?))
}

/// Whether `id` can be an id at all: 1 to [`ID_LEN_MAX`] bytes, no control
/// characters (newlines, escape codes). Checked at the API boundary, so an
/// id that reaches a log line or an answer is one of these.
fn is_plain_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= ID_LEN_MAX && !id.chars().any(char::is_control)
}

/// The call id of a path, or 404 when it cannot be one.
fn parse_call_id(call: &str) -> Result<CallId, ApiError> {
    if !is_plain_id(call) {
        return Err(ApiError::not_found("unknown call"));
    }
    Ok(CallId::new(call.to_owned()))
}

/// The agent id of a path, or 404 when it cannot be one.
fn parse_agent_id(agent: &str) -> Result<AgentId, ApiError> {
    if !is_plain_id(agent) {
        return Err(ApiError::not_found("unknown agent"));
    }
    Ok(AgentId::new(agent.to_owned()))
}

/// Has the agent actor do `command` on `call`. It refuses a call that is not
/// its current call or offer: 403 for another agent's live call, 404 for an
/// unknown one.
pub(super) async fn call_request(
    state: &AppState,
    agent: &AgentId,
    call: &CallId,
    command: CallCommand,
) -> Result<(), ApiError> {
    state
        .registry
        .send(CallRequest {
            agent: agent.clone(),
            call: call.clone(),
            command,
        })
        .await
        .map_err(|e| ApiError::unavailable(format!("contact center: {e}")))?
        .map_err(ApiError::from)
}

/// Whether the agent's request was refused because the call is not (or
/// no longer) the agent's: another agent's (403) or not live (404).
fn refused_as_not_ours(e: &ApiError) -> bool {
    e.status == 403 || e.status == 404
}

/// Optional body of the call actions that take an argument.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallBody {
    /// Target agent (transfer, consult, conference add).
    #[serde(default)]
    pub target_agent: Option<String>,
    /// Target queue (transfer).
    #[serde(default)]
    pub target_queue: Option<String>,
    /// Wrap-up code.
    #[serde(default)]
    pub code: Option<String>,
}

/// `POST /api/v1/calls/{call_id}/{action}`: the agent's call controls.
pub async fn call_action(
    state: Data,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let agent = caller.agent()?;
    let (call_id, action) = path.into_inner();
    let body: CallBody = if body.iter().all(u8::is_ascii_whitespace) {
        CallBody::default()
    } else {
        super::error::parse_json(&body)?
    };
    let target_agent = |b: &CallBody| -> Result<AgentId, ApiError> {
        b.target_agent
            .clone()
            .filter(|t| is_plain_id(t))
            .map(AgentId::new)
            .ok_or_else(|| ApiError::bad_request("field `target_agent`: required"))
    };
    let command = match action.as_str() {
        "accept" => CallCommand::Accept,
        "reject" => CallCommand::Reject,
        "hold" => CallCommand::Control(CallAction::Hold),
        "resume" => CallCommand::Control(CallAction::Resume),
        "mute" => CallCommand::Control(CallAction::Mute),
        "unmute" => CallCommand::Control(CallAction::Unmute),
        "hangup" => CallCommand::Control(CallAction::HangUp),
        "transfer" => match (&body.target_agent, &body.target_queue) {
            (Some(_), None) => CallCommand::Control(CallAction::TransferToAgent {
                target: target_agent(&body)?,
            }),
            (None, Some(q)) if is_plain_id(q) => {
                CallCommand::Control(CallAction::TransferToQueue {
                    queue: QueueId::new(q.clone()),
                })
            }
            _ => {
                return Err(ApiError::bad_request(
                    "transfer needs exactly one of `target_agent`, `target_queue`",
                ))
            }
        },
        "consult" => CallCommand::Control(CallAction::Consult {
            target: target_agent(&body)?,
        }),
        "consult_complete" => CallCommand::Control(CallAction::CompleteConsult),
        "consult_conference" => CallCommand::Control(CallAction::ConferenceConsult),
        "consult_cancel" => CallCommand::Control(CallAction::CancelConsult),
        "conference_add" => CallCommand::Control(CallAction::AddToConference {
            target: target_agent(&body)?,
        }),
        "wrap_up" => {
            let code = body
                .code
                .clone()
                .filter(|c| is_plain_id(c))
                .ok_or_else(|| ApiError::bad_request("field `code`: required"))?;
            CallCommand::Control(CallAction::WrapUpCode { code })
        }
        other => {
            return Err(ApiError::not_found(format!(
                "unknown call action `{}`",
                truncate(other)
            )))
        }
    };
    let call = parse_call_id(&call_id)?;
    let wrap_up = matches!(command, CallCommand::Control(CallAction::WrapUpCode { .. }));
    match call_request(&state, &agent, &call, command).await {
        // A code for a call the agent had, once nothing can record it any
        // more: its wrap-up is over (not "not yours").
        Err(e) if wrap_up && refused_as_not_ours(&e) => {
            if views::recent_call(&state, &agent, &call).await?.is_some() {
                return Err(CcError::WrapUpOver { call }.into());
            }
            return Err(e);
        }
        other => other?,
    }
    info!(agent_id = %agent, call_id = %call, action = %action, "Agent call action.");
    Ok(HttpResponse::Ok().json(views::desktop(&state, &agent).await?))
}

/// `GET /api/v1/interactions/{call_id}`: sync state and CRM link.
pub async fn interaction(
    state: Data,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let call = CallId::new(path.into_inner());
    if caller.session.role == Role::Agent {
        let agent = caller.agent()?;
        if views::recent_call(&state, &agent, &call).await?.is_none() {
            let call = parse_call_id(&call.0)?;
            call_request(&state, &agent, &call, CallCommand::Check).await?;
        }
    }
    Ok(HttpResponse::Ok().json(views::interaction(&state, &call)))
}

/// `POST /api/v1/calls/{call_id}/sticky`: the caller becomes "my customer":
/// the caller's number belongs to the agent in the contact center's sticky
/// book (durable in the actors' state, never asked of the CRM). The answer
/// says what routing does with it: `waits_for_agent` with the agent's
/// queues that hold the caller's calls for it (`sticky.wait_ms`), or
/// `no_queue_waits` when none of its queues does. A number the config pins
/// to another agent is refused (409).
pub async fn sticky(
    state: Data,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let agent = caller.agent()?;
    let call = CallId::new(path.into_inner());
    let recent = match views::recent_call(&state, &agent, &call).await? {
        Some(r) if !r.ani.is_empty() => r,
        _ => {
            let call = parse_call_id(&call.0)?;
            call_request(&state, &agent, &call, CallCommand::Check).await?;
            return Err(ApiError::conflict("the caller's number is not known yet"));
        }
    };
    let answer = set_sticky(
        &state,
        recent.ani.clone(),
        agent.clone(),
        StickySource::Agent,
    )
    .await?;
    info!(agent_id = %agent, call_id = %call, queues = answer.queues.len(), "Caller set as sticky customer.");
    Ok(HttpResponse::Ok().json(sticky_json(&answer)))
}

/// `PUT /api/v1/sticky_customers/{ani}` (supervisor, admin).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StickyCustomerBody {
    /// The agent the number belongs to from now on.
    pub agent_id: String,
}

/// A supervisor or admin makes a caller's number belong to an agent
/// (source `api`); answers like the agent's sticky endpoint.
pub async fn set_sticky_customer(
    state: Data,
    caller: Caller,
    path: web::Path<String>,
    body: ApiJson<StickyCustomerBody>,
) -> Result<HttpResponse, ApiError> {
    caller.require_supervisor()?;
    let agent = parse_agent_id(&body.0.agent_id)?;
    let answer = set_sticky(&state, path.into_inner(), agent, StickySource::Api).await?;
    info!(user_id = %caller.session.user_id, agent_id = %answer.entry.agent, "Sticky customer set by the API.");
    Ok(HttpResponse::Ok().json(sticky_json(&answer)))
}

/// Sets `ani` → `agent` in the contact center's sticky book.
async fn set_sticky(
    state: &Data,
    ani: String,
    agent: AgentId,
    source: StickySource,
) -> Result<StickyAnswer, ApiError> {
    state
        .registry
        .send(SetSticky { ani, agent, source })
        .await
        .map_err(|e| ApiError::unavailable(format!("contact center: {e}")))?
        .map_err(|e| match e {
            StickyError::UnknownAgent(_) => ApiError::not_found(e.to_string()),
            StickyError::Pinned { .. } | StickyError::BadNumber => {
                ApiError::conflict(e.to_string())
            }
        })
}

/// The sticky endpoints' answer: the entry and what routing does with it.
fn sticky_json(answer: &StickyAnswer) -> serde_json::Value {
    let routing = if answer.queues.is_empty() {
        "no_queue_waits"
    } else {
        "waits_for_agent"
    };
    let queues: Vec<_> = answer
        .queues
        .iter()
        .map(|(q, wait_ms)| json!({"queue_id": q, "wait_ms": wait_ms}))
        .collect();
    json!({
        "ani": answer.entry.ani,
        "agent_id": answer.entry.agent,
        "source": answer.entry.source,
        "routing": routing,
        "queues": queues,
    })
}

/// `GET /api/v1/agents` (supervisor): the team's real-time view.
pub async fn agents(state: Data, caller: Caller) -> Result<HttpResponse, ApiError> {
    caller.require_supervisor()?;
    let snap = views::center(&state, false).await?;
    let now = crate::clock::now_ms();
    Ok(HttpResponse::Ok().json(json!({"now_ms": now, "agents": views::team(&snap, now)})))
}

/// `GET /api/v1/queues`: waiting calls, longest wait, service level.
pub async fn queues(state: Data, caller: Caller) -> Result<HttpResponse, ApiError> {
    let show_numbers = caller.session.role != Role::Agent || state.http.agents_see_waiting_numbers;
    let snap = views::center(&state, true).await?;
    let now = crate::clock::now_ms();
    Ok(HttpResponse::Ok()
        .json(json!({"now_ms": now, "queues": views::queues(&snap, show_numbers)})))
}

/// `GET /api/v1/directory` (any role): agents with their availability and
/// queues, for the desktop's transfer and consult picker.
pub async fn directory(state: Data, _caller: Caller) -> Result<HttpResponse, ApiError> {
    let snap = views::center(&state, true).await?;
    Ok(HttpResponse::Ok().json(views::directory(&snap)))
}

/// `GET /api/v1/calls` (supervisor, admin): live calls.
pub async fn calls(state: Data, caller: Caller) -> Result<HttpResponse, ApiError> {
    caller.require_supervisor()?;
    let snap = views::center(&state, false).await?;
    Ok(HttpResponse::Ok().json(json!({"calls": snap.calls, "ended": snap.ended})))
}

/// `GET /api/v1/wallboard` (supervisor): agents and queues at once.
pub async fn wallboard(state: Data, caller: Caller) -> Result<HttpResponse, ApiError> {
    caller.require_supervisor()?;
    Ok(HttpResponse::Ok().json(views::wallboard(&state).await?))
}

/// `POST /api/v1/agents/{agent_id}/state` (supervisor).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForceStateBody {
    /// `not_ready`, `ready` or `logout`.
    pub state: String,
    /// With `not_ready`: a configured reason code the agent sees (absent:
    /// the system reason `supervisor`).
    #[serde(default)]
    pub reason_code: Option<String>,
}

/// A supervisor changes an agent's state.
pub async fn force_state(
    state: Data,
    caller: Caller,
    path: web::Path<String>,
    body: ApiJson<ForceStateBody>,
) -> Result<HttpResponse, ApiError> {
    caller.require_supervisor()?;
    let agent = parse_agent_id(&path.into_inner())?;
    let command = match (body.0.state.as_str(), body.0.reason_code.as_deref()) {
        ("not_ready", None) => SupervisorCommand::NotReady,
        ("not_ready", Some(code)) => super::wallboard::forced_not_ready(&state, code)?,
        (_, Some(_)) => {
            return Err(ApiError::bad_request(
                "field `reason_code`: only with state not_ready",
            ))
        }
        ("ready", None) => SupervisorCommand::Ready,
        ("logout", None) => SupervisorCommand::Logout,
        (other, None) => {
            return Err(ApiError::bad_request(format!(
                "field `state`: `{}` is not one of not_ready, ready, logout",
                truncate(other)
            )))
        }
    };
    info!(supervisor = %caller.session.user_id, agent_id = %agent, command = ?command, "Supervisor forces agent state.");
    state
        .registry
        .send(SupervisorRequest {
            agent: agent.clone(),
            command,
        })
        .await
        .map_err(|e| ApiError::unavailable(format!("contact center: {e}")))??;
    Ok(HttpResponse::Ok().json(json!({"agent_id": agent, "requested": body.0.state})))
}

/// `POST /api/v1/agents/{agent_id}/{monitor|whisper|barge}` (supervisor):
/// the supervisor's own device (its `endpoint` in `[[users]]`) joins the call
/// the agent is on: a snoop on the agent's leg (monitor, whisper) or a leg in
/// the call's bridge (barge). Asking again with another mode switches.
pub async fn supervise_call(
    state: Data,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    caller.require_supervisor()?;
    let (agent, mode_name) = path.into_inner();
    let agent = parse_agent_id(&agent)?;
    let mode = SuperviseMode::parse(&mode_name)
        .ok_or_else(|| ApiError::not_found(format!("unknown action `{}`", truncate(&mode_name))))?;
    let supervisor = caller.session.user_id.clone();
    let endpoint = state.auth.endpoint_of(&supervisor).ok_or_else(|| {
        ApiError::conflict(format!(
            "supervisor {supervisor} has no device: set `endpoint` in its [[users]] entry"
        ))
    })?;
    info!(supervisor = %supervisor, agent_id = %agent, mode = mode.as_str(), endpoint = %endpoint, "Supervisor call action.");
    let done = state
        .registry
        .send(SuperviseAgent {
            supervisor,
            endpoint,
            agent: agent.clone(),
            mode: Some(mode),
        })
        .await
        .map_err(|e| ApiError::unavailable(format!("contact center: {e}")))??;
    Ok(HttpResponse::Ok().json(json!({
        "agent_id": agent, "mode": mode.as_str(), "call_id": done.call, "leg_id": done.leg,
    })))
}

/// `DELETE /api/v1/agents/{agent_id}/supervision` (supervisor): the
/// supervisor leaves the agent's call (its leg is hung up).
pub async fn end_supervision(
    state: Data,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require_supervisor()?;
    let agent = parse_agent_id(&path.into_inner())?;
    let supervisor = caller.session.user_id.clone();
    info!(supervisor = %supervisor, agent_id = %agent, "Supervisor leaves the call.");
    let done = state
        .registry
        .send(SuperviseAgent {
            supervisor,
            endpoint: String::new(),
            agent: agent.clone(),
            mode: None,
        })
        .await
        .map_err(|e| ApiError::unavailable(format!("contact center: {e}")))??;
    Ok(HttpResponse::Ok().json(json!({"agent_id": agent, "call_id": done.call, "left": true})))
}

/// Query of the admin lists.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// First sequence.
    #[serde(default)]
    pub from: u64,
    /// How many at most.
    #[serde(default)]
    pub limit: Option<usize>,
}

async fn admin(
    state: &AppState,
    caller: &Caller,
    request: AdminRequest,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Admin])?;
    let answer =
        crate::ops::admin::requests::execute(&state.storage, &request, crate::clock::now_ms())
            .await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// `GET /api/v1/admin/outbox`.
pub async fn outbox_status(state: Data, caller: Caller) -> Result<HttpResponse, ApiError> {
    admin(&state, &caller, AdminRequest::OutboxStatus).await
}

/// `GET /api/v1/admin/outbox/records`.
pub async fn outbox_list(
    state: Data,
    caller: Caller,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = q.limit.unwrap_or(ADMIN_LIST_LIMIT_DEFAULT);
    admin(
        &state,
        &caller,
        AdminRequest::OutboxList {
            from: q.from,
            limit,
        },
    )
    .await
}

/// `GET /api/v1/admin/dead_letters`.
pub async fn dead_list(
    state: Data,
    caller: Caller,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = q.limit.unwrap_or(ADMIN_LIST_LIMIT_DEFAULT);
    admin(
        &state,
        &caller,
        AdminRequest::DeadList {
            from: q.from,
            limit,
        },
    )
    .await
}

/// `POST /api/v1/admin/dead_letters/{seq}/requeue`.
pub async fn dead_requeue(
    state: Data,
    caller: Caller,
    path: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let seq = path.into_inner();
    info!(admin = %caller.session.user_id, seq, "Admin re-queues a dead letter.");
    admin(&state, &caller, AdminRequest::DeadRequeue { seq }).await
}

/// `POST /api/v1/admin/dead_letters/requeue_all`.
pub async fn dead_requeue_all(state: Data, caller: Caller) -> Result<HttpResponse, ApiError> {
    info!(admin = %caller.session.user_id, "Admin re-queues every dead letter.");
    admin(&state, &caller, AdminRequest::DeadRequeueAll).await
}

/// `POST /api/v1/admin/reload`: reloads the config through the daemon's
/// hook; a bad config is refused (422) and the old one stays.
pub async fn reload(state: Data, caller: Caller) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Admin])?;
    let Some(reloader) = &state.reload else {
        return Err(ApiError::unavailable(
            "config reload is not wired in this process",
        ));
    };
    info!(admin = %caller.session.user_id, "Admin reloads the config.");
    match reloader
        .send(super::Reload)
        .await
        .map_err(|e| ApiError::unavailable(format!("reload: {e}")))?
    {
        Ok(changes) => Ok(HttpResponse::Ok().json(json!({"reloaded": true, "changes": changes}))),
        Err(e @ (super::ReloadError::NotStarted | super::ReloadError::Actors(_))) => {
            Err(ApiError::unavailable(e.to_string()))
        }
        Err(refused) => Err(ApiError::new(
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            "config_refused",
            refused.to_string(),
        )),
    }
}

/// `POST /api/v1/admin/pbx/take_back`: takes the ARI application back
/// from the client that took it over (edgecc never does by itself). 409
/// when edgecc owns it, or drives no Asterisk.
pub async fn pbx_take_back(state: Data, caller: Caller) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Admin])?;
    let Some(owner) = &state.ari_owner else {
        return Err(ApiError::conflict(
            "edgecc drives no Asterisk (pbx.kind is not ari)",
        ));
    };
    if !owner.take_back() {
        return Err(ApiError::conflict(
            "no other client owns the ARI application: nothing to take back",
        ));
    }
    warn!(admin = %caller.session.user_id, "Admin takes the ARI application back.");
    Ok(HttpResponse::Ok().json(json!({"taking_back": true})))
}

/// Cuts user text echoed in messages, without its control characters.
fn truncate(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(ID_LEN_MAX)
        .collect()
}
