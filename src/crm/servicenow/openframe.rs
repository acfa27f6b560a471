//! `openframe` mode: ServiceNow's own CCaaS voice API, the recommended
//! path. The interaction's create is `POST /api/now/openframe/voice-interaction`
//! (`clientSessionId` = the call's id, `interactionContext` = the IVR's
//! attached data, `userPhoneNumber` the caller's number or
//! [`super::ANONYMOUS_CALLER`] when the ANI is empty: the API requires it);
//! the phone log, each update and a work item are a
//! `PATCH …/voice-interaction/{sys_id}` of that interaction (phone logs as
//! `phoneLogs`, which ServiceNow creates and links itself). The fields sent
//! as `additionalParams` and as the phone log are the one mapping of
//! [`super::fields`], less `channel` and `queue`; the `ended` update closes
//! the interaction. A work item is then routed to its AWA queue (the
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
use super::fields::{data, non_empty, or_anonymous, text};
use super::links::KEY_INTERACTION;
use super::{Early, ServiceNowAdapter};

/// The voice-interaction endpoint, below the instance URL.
pub const VOICE_INTERACTION_PATH: &str = "/api/now/openframe/voice-interaction";

/// `fields` without the empty ones and without the references the
/// voice-interaction API sets itself (`channel`) or that would route the
/// interaction outside edgecc's AWA call (`queue`).
fn params(fields: &Map<String, Value>) -> Map<String, Value> {
    let mut p = non_empty(fields.clone());
    p.remove("channel");
    p.remove("queue");
    p
}

/// The create body of an `interaction.create` record, from its ServiceNow
/// `fields` ([`super::fields`]): `userPhoneNumber` is the caller's number,
/// or [`ANONYMOUS_CALLER`] when there is none (the API requires it).
pub(super) fn create_body(record: &Record, key_field: &str, fields: &Map<String, Value>) -> Value {
    let d = data(record);
    let mut p = params(fields);
    p.insert(key_field.into(), record.interaction_key.clone().into());
    let ani = text(&d, "ani");
    let context = d.get("attached").cloned().unwrap_or_else(|| json!({}));
    let mut interaction = json!({
        "userPhoneNumber": or_anonymous(ani),
        "clientSessionId": record.interaction_key,
        "additionalParams": p,
    });
    if !ani.is_empty() {
        interaction["callbackPhoneNumber"] = ani.into();
    }
    json!({
        "interaction": interaction,
        "interactionContext": context,
    })
}

/// The PATCH body of a phone log, an update or a work item, from its
/// ServiceNow `fields` ([`super::fields`]).
pub(super) fn patch_body(record: &Record, fields: &Map<String, Value>) -> Value {
    let d = data(record);
    match record.kind {
        RecordKind::PhoneLogCreate => json!({
            "interaction": {"clientSessionId": record.interaction_key},
            "phoneLogs": [non_empty(fields.clone())],
        }),
        RecordKind::WorkItemCreate => {
            let mut p = params(fields);
            p.insert("state".into(), "new".into());
            let mut interaction = json!({"additionalParams": p});
            let number = text(&d, "callback_number");
            if !number.is_empty() {
                interaction["callbackPhoneNumber"] = number.into();
            }
            json!({ "interaction": interaction })
        }
        _ => json!({"interaction": {"additionalParams": params(fields)}}),
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
        let fields = self.record_fields(record).await;
        let url = format!("{}{VOICE_INTERACTION_PATH}/{sys_id}", self.base);
        let body = patch_body(record, &fields);
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
                let fields = self.record_fields(record).await;
                let body = create_body(record, &key_field, &fields);
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
    use super::super::fields::ANONYMOUS_CALLER;
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

    fn fields(record: &Record) -> Map<String, Value> {
        let refs = super::super::fields::Refs {
            caller: None,
            agent: Some("u-7".into()),
        };
        let c = super::super::ServiceNowConfig::with_instance("https://x.service-now.com");
        super::super::fields::target_fields(record, &c, &refs)
    }

    /// The create carries the call id as clientSessionId and in the key
    /// field, the IVR data as context, ServiceNow's own fields and state;
    /// an empty ANI sends the placeholder, never "".
    #[test]
    fn create_body_uses_servicenow_fields() {
        let r = record(
            RecordKind::InteractionCreate,
            r#"{"ani":"+15550100","direction":"inbound","reason":"accepted","agent":"a","attached":{"lang":"en"}}"#,
        );
        let b = create_body(&r, "u_edgecc_call_id", &fields(&r));
        assert_eq!(b["interaction"]["clientSessionId"], "c-1");
        assert_eq!(b["interaction"]["userPhoneNumber"], "+15550100");
        let p = &b["interaction"]["additionalParams"];
        assert_eq!(p["type"], "phone");
        assert_eq!(p["state"], "work_in_progress");
        assert_eq!(p["u_edgecc_call_id"], "c-1");
        assert_eq!(p["assigned_to"], "u-7");
        assert_eq!(p["caller_phone_number"], "+15550100");
        assert_eq!(p["direction"], "inbound");
        assert!(p.get("opened_for").is_none() && p.get("queue").is_none());
        assert_eq!(b["interactionContext"]["lang"], "en");
        let anonymous = record(
            RecordKind::InteractionCreate,
            r#"{"ani":"","direction":"inbound","reason":"accepted"}"#,
        );
        let b = create_body(&anonymous, "u_edgecc_call_id", &fields(&anonymous));
        assert_eq!(b["interaction"]["userPhoneNumber"], ANONYMOUS_CALLER);
        assert!(b["interaction"].get("callbackPhoneNumber").is_none());
    }

    /// `ended` closes the interaction; the phone log's start is in
    /// ServiceNow's date-time format.
    #[test]
    fn patch_bodies() {
        let body = |kind, json: &str| {
            let r = record(kind, json);
            patch_body(&r, &fields(&r))
        };
        let ended = body(
            RecordKind::InteractionUpdate,
            r#"{"event":"ended","terminal":"hangup","seq":3}"#,
        );
        let p = &ended["interaction"]["additionalParams"];
        assert_eq!(p["state"], "closed_complete");
        assert_eq!(p["closed_at"], "1970-01-01 00:00:00");
        assert!(p["work_notes"]
            .as_str()
            .unwrap()
            .starts_with("edgecc ended"));
        let abandoned = body(
            RecordKind::InteractionUpdate,
            r#"{"event":"ended","terminal":{"reason":"abandoned"},"seq":3}"#,
        );
        assert_eq!(
            abandoned["interaction"]["additionalParams"]["state"],
            "closed_abandoned"
        );
        let log = body(
            RecordKind::PhoneLogCreate,
            r#"{"answered_ms":1795278919394,"direction":"inbound","ani":"+1555","agent":"a"}"#,
        );
        assert_eq!(log["phoneLogs"][0]["start_time"], "2026-11-21 16:35:19");
        assert_eq!(log["phoneLogs"][0]["phone_number"], "+1555");
        assert_eq!(log["phoneLogs"][0]["agent"], "u-7");
    }
}
