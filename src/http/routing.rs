//! `GET /api/v1/calls/{call_id}/routing` (supervisors, admins): why a live
//! call's latest queue offers went to their agents, as the call keeps it
//! (`edgecc_actors::queue::explain`): the candidates read with their skill
//! surplus, strategy key, score and idle time, and the rule or step that
//! chose. Agents get 403 (the candidates are other agents' figures); a call
//! that is not live (nor lingering after its end) is 404.

use actix_web::{web, HttpResponse};
use edgecc_actors::registry::GetCallRouting;
use edgecc_actors::CallId;

use super::api::ID_LEN_MAX;
use super::auth::Caller;
use super::error::ApiError;
use super::AppState;

/// Answers the call's routing explanations.
pub async fn call_routing(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require_supervisor()?;
    let id = path.into_inner();
    if id.is_empty() || id.len() > ID_LEN_MAX || id.chars().any(char::is_control) {
        return Err(ApiError::not_found("unknown call"));
    }
    let answer = state
        .registry
        .send(GetCallRouting(CallId::new(id)))
        .await
        .map_err(|e| ApiError::unavailable(format!("contact center: {e}")))?;
    match answer {
        Some(routing) => Ok(HttpResponse::Ok().json(routing)),
        None => Err(ApiError::not_found("unknown call")),
    }
}
