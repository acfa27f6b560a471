//! The interaction's `state` as ServiceNow's Interaction Management names
//! it; used by the one field mapping ([`super::fields`]) of every mode.
//!
//! ServiceNow's interaction states ("Interaction states", Interaction
//! Management): New (inserted), On Hold (waiting for assignment), Work In
//! Progress (an agent accepted it), Wrap Up, Closed Complete ("timed out or
//! the agent or consumer intentionally closed") and Closed Abandoned ("the
//! consumer disconnects or is unresponsive"). That page gives labels only;
//! the choice values are from ServiceNow's own docs and samples
//! (`ServiceNow/ServiceNowDocs`, `markdown/`):
//! - `new`: the sample OpenFrame operation handler sets
//!   `interactionGr.setValue('state', 'new')`, with `type = 'phone'`
//!   (`api-reference/server-api-reference/CTIOperationResponseAPI.md`);
//! - `closed_complete`: the voice-interaction resource's state parameter
//!   (`api-reference/rest-apis/voice-interaction-resource-api.md`) and a
//!   `g_modal` sample (`api-reference/g_modalClientAPINX.md`);
//! - `closed_abandoned`: an encoded query on `interaction`,
//!   `stateINon_hold,closed_abandoned`
//!   (`it-service-management/itsm-success-dashboard-indicators/update-live-agent-script-include.md`);
//! - `work_in_progress`: no ServiceNow page shows it; it follows the
//!   pattern of the others (label in snake case) and is the one value
//!   resting on third-party code. The README asks installers to check it
//!   against their `interaction.state` choice list.
//!
//! `direction` is `inbound` in the openframe API's examples
//! (`api-reference/rest-apis/openframe-api.md`); edgecc sends the call's
//! own `inbound` / `outbound`. edgecc's wrap-up is its own (the agent's
//! desk), so `wrap_up` is never sent. `on_hold` is never sent either: in
//! ServiceNow it means "waiting for assignment"
//! (`servicenow-platform/interaction-management/interaction-states.md`),
//! not a caller on hold, so a `hold` (and its `resume`) is a work note
//! only. `agent_connected` (an agent answered after a transfer to a queue)
//! puts a re-queued interaction back to work in progress.

use serde_json::{Map, Value};

/// A string field of a record's data ("" when absent or not a string).
fn text<'a>(data: &'a Map<String, Value>, key: &str) -> &'a str {
    data.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The state an interaction is created in, from the create's `reason`: an
/// accepted (or answered outbound) call is being worked; one that never
/// reached an agent (time-out, abandon, missed call, …) is new, waiting for
/// its callback work item to be assigned.
pub(super) fn create_state(reason: &str) -> &'static str {
    match reason {
        "accepted" | "outbound" => "work_in_progress",
        _ => "new",
    }
}

/// The state an `interaction.update` moves the interaction to, if any.
pub(super) fn update_state(data: &Map<String, Value>) -> Option<&'static str> {
    match text(data, "event") {
        "ended" => Some(closed_state(data)),
        "agent_connected" => Some("work_in_progress"),
        _ => None,
    }
}

/// The closed state of an `ended` update, from its terminal reason (an
/// object `{"reason": …}` on the wire, a bare string in older records): a
/// caller who hung up before an agent answered closes it abandoned; every
/// other ending (completed, a time-out, a PBX failure) closes it complete.
pub(super) fn closed_state(data: &Map<String, Value>) -> &'static str {
    let terminal = data.get("terminal");
    let reason = terminal
        .and_then(|t| t.get("reason"))
        .or(terminal)
        .and_then(Value::as_str)
        .unwrap_or("");
    match reason {
        "abandoned" => "closed_abandoned",
        _ => "closed_complete",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    /// The states sent are ServiceNow's choice values.
    #[test]
    fn states_are_servicenow_choices() {
        assert_eq!(create_state("accepted"), "work_in_progress");
        assert_eq!(create_state("queue_timeout"), "new");
        let ended = |t: &str| update_state(&data(t));
        assert_eq!(
            ended(r#"{"event":"ended","terminal":{"reason":"completed"}}"#),
            Some("closed_complete")
        );
        assert_eq!(
            ended(r#"{"event":"ended","terminal":{"reason":"abandoned"}}"#),
            Some("closed_abandoned")
        );
        assert_eq!(
            ended(r#"{"event":"ended","terminal":"abandoned"}"#),
            Some("closed_abandoned")
        );
        assert_eq!(ended(r#"{"event":"hold"}"#), None);
        assert_eq!(ended(r#"{"event":"resume"}"#), None);
        assert_eq!(
            ended(r#"{"event":"agent_connected","agent":"b"}"#),
            Some("work_in_progress")
        );
        assert_eq!(ended(r#"{"event":"mute"}"#), None);
    }
}
