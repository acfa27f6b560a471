//! The agent desktop's own endpoints beyond the call actions of `api`:
//! dropping a colleague from a conference, and the agent's figures for
//! today. Both are for the agent role and act on the caller's own call or
//! figures only.
//!
//! - `DELETE /api/v1/calls/{call_id}/parties/{agent_id}`: an agent on the
//!   conference drops another agent from it (its leg is hung up, with
//!   the wrap-up it owes, if any). The call must be the caller's (403 another agent's,
//!   404 an unknown one); 404 `not_in_conference` when the named agent is
//!   not on it; 409 when the caller names itself (hang up to leave).
//! - `GET /api/v1/agent/today`: the caller's calls handled, average handle
//!   time and Not Ready time since the site's local midnight (`[site]
//!   time_zone`, UTC by default), from the call detail records and state
//!   intervals the reports read (`crate::reports::today`), plus the Not
//!   Ready stint in progress, which the history has not closed yet.

use actix_web::{web, HttpResponse};
use edgecc_actors::agent::actor::CallCommand;
use edgecc_actors::agent::AgentState;
use edgecc_actors::registry::AgentSnapshot;
use edgecc_actors::{AgentId, CallAction, CallId};
use serde_json::json;
use tracing::info;

use super::api::{call_request, ID_LEN_MAX};
use super::auth::Caller;
use super::error::ApiError;
use super::AppState;
use crate::reports::figures::AgentRow;
use crate::reports::http::ReportsState;
use crate::reports::time::format_time;
use crate::reports::ReportError;

/// An id of a path, or 404 when it cannot be one.
fn path_id(id: &str, what: &str) -> Result<String, ApiError> {
    if id.is_empty() || id.len() > ID_LEN_MAX || id.chars().any(char::is_control) {
        return Err(ApiError::not_found(format!("unknown {what}")));
    }
    Ok(id.to_owned())
}

/// `DELETE /api/v1/calls/{call_id}/parties/{agent_id}`.
pub async fn drop_party(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let agent = caller.agent()?;
    let (call, target) = path.into_inner();
    let call = CallId::new(path_id(&call, "call")?);
    let target = AgentId::new(path_id(&target, "agent")?);
    let command = CallCommand::Control(CallAction::DropParty {
        target: target.clone(),
    });
    call_request(&state, &agent, &call, command).await?;
    info!(agent_id = %agent, call_id = %call, dropped = %target, "Agent dropped a colleague from the conference.");
    Ok(HttpResponse::Ok().json(super::views::desktop(&state, &agent).await?))
}

/// `GET /api/v1/agent/today`.
pub async fn today(
    state: web::Data<AppState>,
    reports: web::Data<ReportsState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let agent = caller.agent()?;
    let now_ms = crate::clock::now_ms();
    let settings = reports.settings.get();
    let time_zone = settings.time_zone.clone();
    let tree = reports.tree.clone();
    let who = agent.0.clone();
    let (from_ms, row) =
        web::block(move || crate::reports::today::agent_today(&tree, &who, now_ms, &settings))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(|e| match e {
                ReportError::BadRange(m) => ApiError::internal(m),
                ReportError::History(e) => ApiError::unavailable(e.to_string()),
            })?;
    // The Not Ready stint in progress: not in the history until it ends.
    let view = state
        .registry
        .send(AgentSnapshot(agent.clone()))
        .await
        .map_err(|e| ApiError::unavailable(format!("contact center: {e}")))?;
    let not_ready_now_ms = match view {
        Some((v, _)) if matches!(v.state, AgentState::NotReady { .. }) => {
            now_ms.saturating_sub(v.state_since_ms.max(from_ms))
        }
        _ => 0,
    };
    let mut body = today_json(&row, from_ms, now_ms, not_ready_now_ms);
    body["time_zone"] = json!(time_zone);
    Ok(HttpResponse::Ok().json(body))
}

/// The answer of [`today`] from the agent's row of the day.
fn today_json(
    row: &AgentRow,
    from_ms: u64,
    now_ms: u64,
    not_ready_now_ms: u64,
) -> serde_json::Value {
    json!({
        "from": format_time(from_ms),
        "now_ms": now_ms,
        "calls_handled": row.answered,
        "offers_missed": row.no_answers,
        "aht_ms": row.aht_ms,
        "talk_ms": row.talk_ms,
        "wrap_up_ms": row.wrap_up_ms,
        "not_ready_ms": row.not_ready_total_ms + not_ready_now_ms,
        "not_ready_by_reason_ms": row.not_ready_ms,
    })
}
