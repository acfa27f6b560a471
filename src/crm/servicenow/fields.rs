//! The one mapping from an edgecc record to the ServiceNow fields of its
//! target record, used by all three modes: table mode sends the fields as
//! Table API fields, openframe mode as `additionalParams` / `phoneLogs`,
//! import mode as staging columns `<import_field_prefix><field>`.
//!
//! | record | fields |
//! |---|---|
//! | `interaction.create` | `type` (`phone`), `state`, `direction`, `caller_phone_number` (the ANI), `short_description`, `opened_for` (the caller's `sys_user`), `assigned_to` (the agent's `sys_user`), `channel`, `queue`, `opened_at` |
//! | `interaction.update` | `state` (when the event moves it), `assigned_to`, `queue`, `work_notes` (always: one line naming the event and its details), `closed_at` (on the update that closes it) |
//! | `phone_log.create` | `call_id`, `direction`, `phone_number`, `start_time`, `contact` (the caller's `sys_user`), `agent` (the agent's `sys_user`) |
//! | `work_item.create` | `queue`, `work_notes` |
//!
//! A field with nothing to say is `""` ("leave the target field as it is");
//! table and openframe modes leave such fields out, import mode sends them
//! (its transform maps skip empty source fields). Date-times are
//! ServiceNow's `yyyy-MM-dd HH:mm:ss` in UTC. The sys_ids come from the
//! adapter ([`Refs`]: `sys_user` look-ups) and the config (`channel`,
//! `queue`: [`super::references`]). edgecc's own keys (`event`, `seq`,
//! `ani` …) are none of these fields.

use edgecc_storage::{Record, RecordKind};
use serde_json::{Map, Value};

use super::references::references;
use super::states::{create_state, update_state};
use super::{ServiceNowAdapter, ServiceNowConfig};

/// An instant in ServiceNow's internal date-time format,
/// `yyyy-MM-dd HH:mm:ss` in UTC (what a transform map reads without a
/// per-field date format, and what the Table API stores).
pub(super) fn glide_datetime(ms: u64) -> String {
    crate::clock::timestamp(ms)
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// What `userPhoneNumber` and the texts say for a caller without a number
/// (a withheld or empty ANI): ServiceNow's voice-interaction API requires
/// `userPhoneNumber`, and `""` is refused.
pub const ANONYMOUS_CALLER: &str = "anonymous";

/// The record's body as a JSON object (empty when it is not one).
pub(super) fn data(record: &Record) -> Map<String, Value> {
    match serde_json::from_slice(&record.body) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// A string field of a record's data ("" when absent or not a string).
pub(super) fn text<'a>(data: &'a Map<String, Value>, key: &str) -> &'a str {
    data.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The `sys_user` sys_ids the adapter resolved for a record.
#[derive(Debug, Default, Clone)]
pub(super) struct Refs {
    /// The caller ([`caller_number`] found in `sys_user`).
    pub(super) caller: Option<String>,
    /// The agent ([`agent_of`] found in `sys_user`).
    pub(super) agent: Option<String>,
}

/// The caller's number of a record that names the caller (the create's
/// and the inbound phone log's `ani`, the outbound phone log's `number`).
pub(super) fn caller_number(kind: RecordKind, data: &Map<String, Value>) -> Option<&str> {
    let number = match kind {
        RecordKind::InteractionCreate => text(data, "ani"),
        RecordKind::PhoneLogCreate => match text(data, "ani") {
            "" => text(data, "number"),
            ani => ani,
        },
        _ => "",
    };
    (!number.is_empty()).then_some(number)
}

/// The edgecc agent whose `sys_user` the record names: the agent who took
/// the call (create, phone log), the agent a transfer went to, or the agent
/// who answered after a transfer to a queue (`agent_connected`).
pub(super) fn agent_of(kind: RecordKind, data: &Map<String, Value>) -> Option<&str> {
    let agent = match kind {
        RecordKind::InteractionCreate | RecordKind::PhoneLogCreate => text(data, "agent"),
        RecordKind::InteractionUpdate => match text(data, "event") {
            "transfer" => text(data, "to_agent"),
            "agent_connected" => text(data, "agent"),
            _ => "",
        },
        RecordKind::WorkItemCreate => "",
    };
    (!agent.is_empty()).then_some(agent)
}

/// A millisecond field as ServiceNow's date-time ("" when absent).
fn datetime(data: &Map<String, Value>, key: &str) -> Option<String> {
    data.get(key).and_then(Value::as_u64).map(glide_datetime)
}

/// The ServiceNow fields of `record`'s target record (see the module
/// table), `""` where there is nothing to say.
pub(super) fn target_fields(
    record: &Record,
    c: &ServiceNowConfig,
    refs: &Refs,
) -> Map<String, Value> {
    let d = data(record);
    let mut f = Map::new();
    let mut put = |k: &str, v: String| {
        f.insert(k.to_string(), Value::String(v));
    };
    let user = |u: &Option<String>| u.clone().unwrap_or_default();
    let (reference_fields, _) = references(record.kind, &d, c);
    let reference = |name: &str| {
        reference_fields
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    match record.kind {
        RecordKind::InteractionCreate => {
            let reason = text(&d, "reason");
            put("type", "phone".into());
            put("state", create_state(reason).into());
            put("direction", text(&d, "direction").into());
            put("caller_phone_number", text(&d, "ani").into());
            put("short_description", short_description(&d));
            put("opened_for", user(&refs.caller));
            put("assigned_to", user(&refs.agent));
            put("channel", reference("channel"));
            put("queue", reference("queue"));
            let opened =
                datetime(&d, "arrived_ms").unwrap_or_else(|| glide_datetime(record.created_at_ms));
            put("opened_at", opened);
        }
        RecordKind::InteractionUpdate => {
            let state = update_state(&d);
            put("state", state.unwrap_or("").into());
            put("assigned_to", user(&refs.agent));
            put("queue", reference("queue"));
            put("work_notes", work_note(&d));
            let closes = state.is_some_and(|s| s.starts_with("closed"));
            put(
                "closed_at",
                if closes {
                    glide_datetime(record.created_at_ms)
                } else {
                    String::new()
                },
            );
        }
        RecordKind::PhoneLogCreate => {
            let call_id = match text(&d, "call_id") {
                "" => record.interaction_key.clone(),
                id => id.to_string(),
            };
            put("call_id", call_id);
            put("direction", text(&d, "direction").into());
            put(
                "phone_number",
                caller_number(record.kind, &d).unwrap_or("").into(),
            );
            put(
                "start_time",
                datetime(&d, "answered_ms").unwrap_or_else(|| glide_datetime(record.created_at_ms)),
            );
            put("contact", user(&refs.caller));
            put("agent", user(&refs.agent));
        }
        RecordKind::WorkItemCreate => {
            put("queue", reference("queue"));
            put(
                "work_notes",
                format!(
                    "Callback requested ({}): {}",
                    text(&d, "reason"),
                    or_anonymous(text(&d, "callback_number"))
                ),
            );
        }
    }
    f
}

/// `number`, or [`ANONYMOUS_CALLER`] when empty.
pub(super) fn or_anonymous(number: &str) -> &str {
    if number.is_empty() {
        ANONYMOUS_CALLER
    } else {
        number
    }
}

/// The create's one-line summary: direction, the customer's number, why
/// it was created.
fn short_description(d: &Map<String, Value>) -> String {
    let number = or_anonymous(text(d, "ani"));
    let reason = text(d, "reason").replace('_', " ");
    match text(d, "direction") {
        "outbound" => format!("Outbound call to {number} ({reason})"),
        _ => format!("Inbound call from {number} ({reason})"),
    }
}

/// A data value as work-note text (nested objects as `k v` pairs).
fn note_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| match k.as_str() {
                "reason" => note_value(v),
                _ => format!("{} {}", k.replace('_', " "), note_value(v)),
            })
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

/// Seconds of a millisecond field, for a note.
fn secs(d: &Map<String, Value>, key: &str) -> u64 {
    d.get(key).and_then(Value::as_u64).unwrap_or(0) / 1000
}

/// The work note of an update: one readable line naming the event and its
/// details (edgecc's `event` name first, so notes can be searched).
pub(super) fn work_note(d: &Map<String, Value>) -> String {
    let event = text(d, "event");
    let t = |k: &str| text(d, k);
    let consult = if t("reason") == "consult" {
        " after a consult"
    } else {
        ""
    };
    let detail = match event {
        "hold" => format!("caller put on hold by agent {}", t("agent")),
        "resume" => format!("caller taken off hold by agent {}", t("agent")),
        "mute" => format!("agent {} muted", t("agent")),
        "unmute" => format!("agent {} unmuted", t("agent")),
        "transfer" if !t("to_agent").is_empty() => format!(
            "transferred by agent {} to agent {}{consult}",
            t("from"),
            t("to_agent")
        ),
        "transfer" => format!(
            "transferred by agent {} to queue {}{consult}",
            t("from"),
            t("to_queue")
        ),
        "agent_connected" => format!("agent {} took the call", t("agent")),
        "overflow" => format!("moved to queue {}", t("to_queue")),
        "wrap_up_code" => format!("wrap-up code {} by agent {}", t("code"), t("agent")),
        "ended" => format!(
            "call ended ({}), {} s after it arrived, {} s talking",
            d.get("terminal").map(note_value).unwrap_or_default(),
            secs(d, "duration_ms"),
            secs(d, "talk_ms")
        ),
        _ => d
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "event" | "seq"))
            .map(|(k, v)| format!("{} {}", k.replace('_', " "), note_value(v)))
            .collect::<Vec<_>>()
            .join(", "),
    };
    format!("edgecc {event}: {detail}")
}

/// `fields` without the empty ones (table and openframe modes: an empty
/// value would clear the target field).
pub(super) fn non_empty(fields: Map<String, Value>) -> Map<String, Value> {
    fields
        .into_iter()
        .filter(|(_, v)| v.as_str().is_none_or(|s| !s.is_empty()))
        .collect()
}

impl ServiceNowAdapter {
    /// The ServiceNow fields of `record` ([`target_fields`]), with the
    /// caller and the agent looked up in `sys_user` (cached; a failed or
    /// empty look-up leaves the field empty) and an unmapped queue logged.
    pub(super) async fn record_fields(&self, record: &Record) -> Map<String, Value> {
        let d = data(record);
        let caller = match caller_number(record.kind, &d) {
            Some(number) => self.caller_user(number).await,
            None => None,
        };
        let agent = match agent_of(record.kind, &d) {
            Some(agent) => self.agent_user(agent).await,
            None => None,
        };
        self.note_unmapped_queue(record.kind, &d);
        target_fields(record, &self.config, &Refs { caller, agent })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(kind: RecordKind, body: Value) -> Record {
        Record {
            seq: 1,
            correlation_id: "edge:c-1:x".into(),
            interaction_key: "c-1".into(),
            kind,
            body: body.to_string().into_bytes(),
            created_at_ms: 1_795_278_919_394,
            attempts: 0,
            next_attempt_at_ms: 0,
            last_error: None,
        }
    }

    fn keys(m: &Map<String, Value>) -> Vec<&str> {
        m.keys().map(String::as_str).collect()
    }

    /// Each kind maps to exactly the contract's fields, never edgecc's own
    /// keys; the ANI becomes caller_phone_number / phone_number.
    #[test]
    fn each_kind_maps_to_servicenow_fields() {
        let c = ServiceNowConfig::with_instance("https://x.service-now.com");
        let refs = Refs {
            caller: Some("c".repeat(32)),
            agent: Some("a".repeat(32)),
        };
        let create = target_fields(
            &record(
                RecordKind::InteractionCreate,
                json!({"call_id":"c-1","ani":"+15550100","direction":"inbound","reason":"accepted",
                       "agent":"alice","arrived_ms":1_795_278_900_000_u64,"dnis":"100","attached":{}}),
            ),
            &c,
            &refs,
        );
        let mut want = vec![
            "assigned_to",
            "caller_phone_number",
            "channel",
            "direction",
            "opened_at",
            "opened_for",
            "queue",
            "short_description",
            "state",
            "type",
        ];
        want.sort();
        assert_eq!(keys(&create), want);
        assert_eq!(create["caller_phone_number"], "+15550100");
        assert_eq!(create["opened_for"], "c".repeat(32));
        assert_eq!(create["opened_at"], "2026-11-21 16:35:00");
        assert_eq!(
            create["short_description"],
            "Inbound call from +15550100 (accepted)"
        );
        let update = target_fields(
            &record(
                RecordKind::InteractionUpdate,
                json!({"event":"ended","terminal":{"reason":"completed"},"duration_ms":95_000,"talk_ms":80_000,"seq":3}),
            ),
            &c,
            &Refs::default(),
        );
        assert_eq!(
            keys(&update),
            vec!["assigned_to", "closed_at", "queue", "state", "work_notes"]
        );
        assert_eq!(update["state"], "closed_complete");
        assert_eq!(update["closed_at"], "2026-11-21 16:35:19");
        assert_eq!(
            update["work_notes"],
            "edgecc ended: call ended (completed), 95 s after it arrived, 80 s talking"
        );
        let log = target_fields(
            &record(
                RecordKind::PhoneLogCreate,
                json!({"call_id":"c-1","direction":"outbound","number":"+15550199","agent":"alice",
                       "answered_ms":1_795_278_919_394_u64}),
            ),
            &c,
            &refs,
        );
        assert_eq!(
            keys(&log),
            vec![
                "agent",
                "call_id",
                "contact",
                "direction",
                "phone_number",
                "start_time"
            ]
        );
        assert_eq!(log["phone_number"], "+15550199");
        assert_eq!(log["agent"], "a".repeat(32));
        let work = target_fields(
            &record(
                RecordKind::WorkItemCreate,
                json!({"reason":"queue_timeout","callback_number":""}),
            ),
            &c,
            &refs,
        );
        assert_eq!(keys(&work), vec!["queue", "work_notes"]);
        assert_eq!(
            work["work_notes"],
            "Callback requested (queue_timeout): anonymous"
        );
    }

    /// Hold is a note, not a state; agent_connected and a transfer to an
    /// agent name the new agent; every event gets a readable note.
    #[test]
    fn hold_is_a_note_and_agent_connected_assigns() {
        let d = |v: Value| match v {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let hold = d(json!({"event":"hold","agent":"alice","seq":1}));
        assert_eq!(update_state(&hold), None);
        assert_eq!(
            work_note(&hold),
            "edgecc hold: caller put on hold by agent alice"
        );
        let connected = d(json!({"event":"agent_connected","agent":"bob","seq":2}));
        assert_eq!(
            agent_of(RecordKind::InteractionUpdate, &connected),
            Some("bob")
        );
        let to_queue = d(json!({"event":"transfer","from":"alice","to_queue":"q","seq":3}));
        assert_eq!(agent_of(RecordKind::InteractionUpdate, &to_queue), None);
        assert_eq!(
            work_note(&to_queue),
            "edgecc transfer: transferred by agent alice to queue q"
        );
        let failed = d(
            json!({"event":"consult_failed","agent":"alice","target":"bob",
                              "reason":"rona","customer_ani":"+1","seq":4}),
        );
        assert_eq!(
            work_note(&failed),
            "edgecc consult_failed: agent alice, customer ani +1, reason rona, target bob"
        );
    }
}
