//! What the supervisor's wallboard adds to the shared views: agents'
//! display names (`[[users]] name`), and the check of the reason a
//! supervisor gives a forced Not Ready (one of the configured reason codes,
//! as the agent's own Not Ready).

use edgecc_actors::registry::SupervisorCommand;
use serde_json::{json, Value};

use super::error::ApiError;
use super::AppState;

/// Longest reason code quoted back in an error.
const CODE_SHOWN_MAX: usize = 40;

/// The command for a forced Not Ready with `code`, or a 400 naming the
/// field when `code` is not a configured reason code.
pub fn forced_not_ready(state: &AppState, code: &str) -> Result<SupervisorCommand, ApiError> {
    if state.reason_codes().iter().any(|r| r.code == code) {
        return Ok(SupervisorCommand::NotReadyWithReason {
            code: code.to_owned(),
        });
    }
    let shown: String = code.chars().take(CODE_SHOWN_MAX).collect();
    Err(ApiError::bad_request(format!(
        "field `reason_code`: `{shown}` is not a configured reason code"
    )))
}

/// Adds each agent's display name (`name`, `null` without one) to the
/// wallboard's `agents`.
pub fn with_names(state: &AppState, mut agents: Vec<Value>) -> Vec<Value> {
    for a in &mut agents {
        let name = a["agent_id"]
            .as_str()
            .and_then(|id| state.auth.display_name(id));
        a["name"] = json!(name);
    }
    agents
}
