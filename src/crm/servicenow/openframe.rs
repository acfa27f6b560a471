//! `openframe` mode: ServiceNow's own CCaaS voice API, the recommended
//! path. The interaction's create is `POST /api/now/openframe/voice-interaction`
//! (`clientSessionId` = the call's id, `interactionContext` = the IVR's
//! attached data); the phone log, each update and a work item are a
//! `PATCH …/voice-interaction/{sys_id}` of that interaction (phone logs as
//! `phoneLogs`, which ServiceNow creates and links itself; the state and a
//! work note as `additionalParams`); the `ended` update closes it. The
//! states come from [`super::states`]; `assigned_to` is the agent's `sys_user`
//! ([`super::users`]); a work item is then routed to its AWA queue (the
//! call's queue's `awa_queues` entry, else `awa_queue`; [`super::awa`]).
//!
//! The interaction's sys_id (the create's `result.sysId`) is kept in the
//! persisted sys_id map (`i:<call id>`), so replays and updates after a
//! restart PATCH the same interaction. The create is not idempotent at
//! ServiceNow, so it also writes the call id into
//! `table_interaction_key_field` (checked in `sys_dictionary` like table
//! mode's lookups), and a create without a stored sys_id looks that field
//! up first: a replay after a lost answer finds the earlier interaction.
//!
//! Answers: `{"result": {"status": "SUCCESS", "sysId": …}}` is delivered;
//! `{"result": {"status": "FAILURE"}}` is permanent when its message names
//! a refusal ([`super::PERMANENT_MARKERS`]), otherwise retried without
//! counting towards the breaker; other statuses as in the other modes.

use awc::http::Method;
use edgecc_storage::{Record, RecordKind};
use serde_json::{json, Map, Value};
use tracing::debug;

use super::super::transport::{excerpt, Answer};
use super::super::Outcome;
use super::answer::{failure_body, mentions, PERMANENT_MARKERS};
use super::awa::AWA_WORK_ITEM_TABLE;
use super::links::KEY_INTERACTION;
use super::rows::glide_datetime;
use super::states::{assignee, create_state, update_state};
use super::{Early, ServiceNowAdapter};

/// The voice-interaction endpoint, below the instance URL.
pub const VOICE_INTERACTION_PATH: &str = "/api/now/openframe/voice-interaction";

/// The record's body as a JSON object (empty when it is not one).
fn data(record: &Record) -> Map<String, Value> {
    match serde_json::from_slice(&record.body) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// A string field of the record's data ("" when absent).
fn text<'a>(data: &'a Map<String, Value>, key: &str) -> &'a str {
    data.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The create body of an `interaction.create` record.
/// `assigned_to` is the agent's `sys_user` sys_id when it was found.
pub(super) fn create_body(record: &Record, key_field: &str, assigned_to: Option<&str>) -> Value {
    let d = data(record);
    let reason = text(&d, "reason");
    let mut params = Map::new();
    params.insert("type".into(), "phone".into());
    params.insert("state".into(), create_state(reason).into());
    if let Some(user) = assigned_to {
        params.insert("assigned_to".into(), user.into());
    }
    params.insert("direction".into(), text(&d, "direction").into());
    params.insert(
        "short_description".into(),
        format!("Phone call {} ({reason})", record.interaction_key).into(),
    );
    params.insert(key_field.into(), record.interaction_key.clone().into());
    let context = d.get("attached").cloned().unwrap_or_else(|| json!({}));
    json!({
        "interaction": {
            "userPhoneNumber": text(&d, "ani"),
            "callbackPhoneNumber": text(&d, "ani"),
            "clientSessionId": record.interaction_key,
            "additionalParams": params,
        },
        "interactionContext": context,
    })
}

/// The PATCH body of a phone log, an update or a work item;
/// `assigned_to`: the `sys_user` sys_id of the agent a transfer went to.
pub(super) fn patch_body(record: &Record, assigned_to: Option<&str>) -> Value {
    let d = data(record);
    match record.kind {
        RecordKind::PhoneLogCreate => {
            let answered = d.get("answered_ms").and_then(Value::as_u64).unwrap_or(0);
            json!({
                "interaction": {"clientSessionId": record.interaction_key},
                "phoneLogs": [{
                    "call_id": record.interaction_key,
                    "direction": text(&d, "direction"),
                    "start_time": glide_datetime(answered),
                }],
            })
        }
        RecordKind::WorkItemCreate => json!({
            "interaction": {
                "callbackPhoneNumber": text(&d, "callback_number"),
                "additionalParams": {
                    "state": "new",
                    "work_notes": format!(
                        "Callback requested ({}): {}",
                        text(&d, "reason"),
                        text(&d, "callback_number")
                    ),
                },
            },
        }),
        _ => {
            let event = text(&d, "event");
            let mut params = Map::new();
            if let Some(state) = update_state(&d) {
                params.insert("state".into(), state.into());
            }
            if let Some(user) = assigned_to {
                params.insert("assigned_to".into(), user.into());
            }
            let mut rest = d.clone();
            rest.remove("event");
            params.insert(
                "work_notes".into(),
                format!("edgecc: {event} {}", Value::Object(rest)).into(),
            );
            json!({"interaction": {"additionalParams": params}})
        }
    }
}

/// What a voice-interaction answer's `result` says: `Ok(sysId)` on
/// SUCCESS (empty when absent), else the outcome.
fn read_result(answer: &Answer) -> Result<String, Outcome> {
    let parsed: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    let result = parsed.get("result");
    let field = |k: &str| {
        result
            .and_then(|r| r.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    match field("status") {
        s if s.eq_ignore_ascii_case("success") => Ok(field("sysId").to_string()),
        s if s.eq_ignore_ascii_case("failure") => {
            let message = [field("message"), field("error")].join(" ");
            let reason = format!(
                "voice-interaction FAILURE: {}",
                excerpt(message.trim().as_bytes())
            );
            if PERMANENT_MARKERS.iter().any(|m| mentions(&message, m)) {
                Err(Outcome::Permanent {
                    status: answer.status,
                    reason,
                })
            } else {
                Err(Outcome::Retry {
                    reason,
                    retry_after: answer.retry_after,
                    crm_down: false,
                })
            }
        }
        _ => Err(Outcome::Retry {
            reason: format!(
                "unrecognised voice-interaction answer: {}",
                excerpt(&answer.body)
            ),
            retry_after: None,
            crm_down: false,
        }),
    }
}

impl ServiceNowAdapter {
    /// Sends one voice-interaction request and reads its `result`.
    async fn voice(&self, method: Method, url: &str, body: &Value) -> Result<String, Early> {
        let answer = self.call(method, url, &[], Some(body)).await?;
        if !(200..=299).contains(&answer.status) {
            return Err(self.refused(&answer, &self.config.table_interaction, false));
        }
        if let Some(outcome) = failure_body(&answer) {
            return Err(outcome);
        }
        read_result(&answer)
    }

    /// `openframe` mode: one record; see the module notes.
    pub(super) async fn deliver_openframe(&self, record: &Record) -> Outcome {
        let table = self.config.table_interaction.clone();
        if record.kind == RecordKind::InteractionCreate {
            return self.openframe_create(record).await;
        }
        let sys_id = match self.interaction_sys_id(&record.interaction_key).await {
            Ok(id) => id,
            Err(outcome) => return outcome,
        };
        let user = match assignee(record.kind, &data(record)) {
            Some(agent) => self.agent_user(&agent).await,
            None => None,
        };
        let url = format!("{}{VOICE_INTERACTION_PATH}/{sys_id}", self.base);
        let body = patch_body(record, user.as_deref());
        if let Err(outcome) = self.voice(Method::PATCH, &url, &body).await {
            return outcome;
        }
        if record.kind == RecordKind::WorkItemCreate {
            match self.route_work_item(record, &sys_id).await {
                Ok(Some(item)) => {
                    return Outcome::Delivered {
                        link: Some(self.record_url(AWA_WORK_ITEM_TABLE, &item)),
                    }
                }
                Ok(None) => {}
                Err(outcome) => return outcome,
            }
        }
        Outcome::Delivered {
            link: Some(self.record_url(&table, &sys_id)),
        }
    }

    /// The interaction's create: stored sys_id, else lookup, else POST.
    async fn openframe_create(&self, record: &Record) -> Outcome {
        let table = self.config.table_interaction.clone();
        let key = format!("{KEY_INTERACTION}{}", record.interaction_key);
        if let Some(sys_id) = self.stored(&key) {
            return Outcome::Delivered {
                link: Some(self.record_url(&table, &sys_id)),
            };
        }
        let key_field = self.config.table_interaction_key_field.clone();
        let found = match self
            .lookup(&table, &key_field, &record.interaction_key)
            .await
        {
            Ok(found) => found,
            Err(outcome) => return outcome,
        };
        let sys_id = match found {
            Some(id) => {
                debug!(interaction = %record.interaction_key, sys_id = %id,
                    "ServiceNow voice interaction already exists; not creating it again.");
                id
            }
            None => {
                let url = format!("{}{VOICE_INTERACTION_PATH}", self.base);
                let user = match assignee(record.kind, &data(record)) {
                    Some(agent) => self.agent_user(&agent).await,
                    None => None,
                };
                let body = create_body(record, &key_field, user.as_deref());
                match self.voice(Method::POST, &url, &body).await {
                    Ok(id) if !id.is_empty() => id,
                    Ok(_) => {
                        return Outcome::Retry {
                            reason: "voice-interaction SUCCESS without a sysId".into(),
                            retry_after: None,
                            crm_down: false,
                        }
                    }
                    Err(outcome) => return outcome,
                }
            }
        };
        self.remember(&key, &sys_id).await;
        Outcome::Delivered {
            link: Some(self.record_url(&table, &sys_id)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: RecordKind, body: &str) -> Record {
        Record {
            seq: 1,
            correlation_id: "edge:c-1:x".into(),
            interaction_key: "c-1".into(),
            kind,
            body: body.as_bytes().to_vec(),
            created_at_ms: 0,
            attempts: 0,
            next_attempt_at_ms: 0,
            last_error: None,
        }
    }

    /// The create carries the call id as clientSessionId and in the key
    /// field, the IVR data as context, ServiceNow's own fields and state.
    #[test]
    fn create_body_uses_servicenow_fields() {
        let r = record(
            RecordKind::InteractionCreate,
            r#"{"ani":"+15550100","direction":"inbound","reason":"accepted","attached":{"lang":"en"}}"#,
        );
        let b = create_body(&r, "u_edgecc_call_id", Some("u-7"));
        assert_eq!(b["interaction"]["clientSessionId"], "c-1");
        assert_eq!(b["interaction"]["userPhoneNumber"], "+15550100");
        let p = &b["interaction"]["additionalParams"];
        assert_eq!(p["type"], "phone");
        assert_eq!(p["state"], "work_in_progress");
        assert_eq!(p["u_edgecc_call_id"], "c-1");
        assert_eq!(p["assigned_to"], "u-7");
        assert_eq!(b["interactionContext"]["lang"], "en");
    }

    /// `ended` closes the interaction; the phone log's start is in
    /// ServiceNow's date-time format.
    #[test]
    fn patch_bodies() {
        let ended = patch_body(
            &record(
                RecordKind::InteractionUpdate,
                r#"{"event":"ended","terminal":"hangup","seq":3}"#,
            ),
            None,
        );
        assert_eq!(
            ended["interaction"]["additionalParams"]["state"],
            "closed_complete"
        );
        let completed = patch_body(
            &record(
                RecordKind::InteractionUpdate,
                r#"{"event":"ended","terminal":{"reason":"completed"},"seq":3}"#,
            ),
            None,
        );
        assert_eq!(
            completed["interaction"]["additionalParams"]["state"],
            "closed_complete"
        );
        let abandoned = patch_body(
            &record(
                RecordKind::InteractionUpdate,
                r#"{"event":"ended","terminal":{"reason":"abandoned"},"seq":3}"#,
            ),
            None,
        );
        assert_eq!(
            abandoned["interaction"]["additionalParams"]["state"],
            "closed_abandoned"
        );
        let log = patch_body(
            &record(
                RecordKind::PhoneLogCreate,
                r#"{"answered_ms":1795278919394,"direction":"inbound"}"#,
            ),
            None,
        );
        assert_eq!(log["phoneLogs"][0]["start_time"], "2026-11-21 16:35:19");
    }
}
