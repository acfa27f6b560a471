//! ServiceNow's openframe voice-interaction API as the emulator plays it:
//! create an interaction with its phone logs linked as channel metadata,
//! update it by sys_id, failures answered 200 with `status: FAILURE`.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::gate::{admitted, json_object};
use super::respond::{answer, text};
use super::state::{merge_fields, Shared, State};
use super::{Mode, Received};
use crate::crm::sn_instance::{TableDef, PHONE_LOG_TABLE};

/// A voice-interaction answer: `{"result": {…}}` with HTTP 200.
pub(super) fn voice_result(result: Value) -> HttpResponse {
    answer(200, json!({ "result": result }))
}

/// The openframe API's failure: HTTP 200, `{"result":{"status":"FAILURE"}}`.
pub(super) fn voice_failure(message: &str) -> HttpResponse {
    voice_result(json!({"status": "FAILURE", "message": message}))
}

/// What the voice-interaction endpoints share: gate, credentials, the
/// `Failure` mode (answered the openframe way), the body as an object.
pub(super) async fn voice_request(
    shared: &web::Data<Shared>,
    req: &HttpRequest,
    body: &web::Bytes,
) -> Result<Map<String, Value>, HttpResponse> {
    admitted(shared, req, body).await?;
    if let Mode::Failure { message } = &shared.state().mode {
        return Err(voice_failure(message));
    }
    json_object(body)
}

/// Applies a voice-interaction body to the interaction `sys_id`: its
/// `additionalParams` (fields the table has; the others dropped and
/// remembered, as the Table API's), `callbackPhoneNumber` as
/// `caller_phone_number`, and each of `phoneLogs` created in the phone-log
/// table and linked as the interaction's channel metadata.
pub(super) fn voice_apply(
    st: &mut State,
    tables: &BTreeMap<String, TableDef>,
    sys_id: &str,
    body: &Map<String, Value>,
) {
    let (Some(interaction_def), Some(log_def)) =
        (tables.get("interaction"), tables.get(PHONE_LOG_TABLE))
    else {
        return;
    };
    let interaction = body.get("interaction").cloned().unwrap_or(Value::Null);
    let mut fields = match interaction.get("additionalParams") {
        Some(Value::Object(p)) => {
            st.keep_known("openframe", "interaction", interaction_def, p.clone())
        }
        _ => Map::new(),
    };
    if let Some(number) = interaction
        .get("callbackPhoneNumber")
        .and_then(Value::as_str)
    {
        fields.insert("caller_phone_number".into(), number.into());
    }
    let logs: Vec<Map<String, Value>> = match body.get("phoneLogs") {
        Some(Value::Array(logs)) => logs
            .iter()
            .filter_map(|l| l.as_object().cloned())
            .map(|l| st.keep_known("openframe", PHONE_LOG_TABLE, log_def, l))
            .collect(),
        _ => Vec::new(),
    };
    for log in logs {
        let log_id = st.insert_row(PHONE_LOG_TABLE, String::new(), log);
        fields.insert("channel_metadata_table".into(), PHONE_LOG_TABLE.into());
        fields.insert("channel_metadata_document".into(), log_id.into());
    }
    st.note_references("interaction", &fields);
    if let Some(row) = st
        .tables
        .get_mut("interaction")
        .and_then(|rows| rows.iter_mut().find(|r| r.sys_id == sys_id))
    {
        merge_fields(&mut row.fields, fields);
    }
}

/// `POST /api/now/openframe/voice-interaction`: creates an interaction
/// (`userPhoneNumber` required) with its phone logs.
pub(super) async fn voice_create(
    shared: web::Data<Shared>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let doc = match voice_request(&shared, &req, &body).await {
        Ok(doc) => doc,
        Err(r) => return r,
    };
    let interaction = doc.get("interaction").cloned().unwrap_or(Value::Null);
    let session = text(&interaction, "clientSessionId");
    if text(&interaction, "userPhoneNumber").is_empty() {
        return voice_failure("userPhoneNumber is required");
    }
    let mut st = shared.state();
    let mut fields = Map::new();
    fields.insert("type".into(), "phone".into());
    fields.insert("state".into(), "new".into());
    let sys_id = st.insert_row("interaction", String::new(), fields);
    voice_apply(&mut st, &shared.config.sn_tables, &sys_id, &doc);
    st.arrive(Received {
        key: format!("openframe:{session}"),
        interaction: session,
        kind: "interaction.create".into(),
        channel: "openframe:create".into(),
        idempotency_key: None,
        document: Value::Object(doc),
    });
    let number = format!("IMS{:07}", st.serial % 10_000_000);
    voice_result(json!({"status": "SUCCESS", "sysId": sys_id, "number": number}))
}

/// `PATCH /api/now/openframe/voice-interaction/{sys_id}`.
pub(super) async fn voice_update(
    shared: web::Data<Shared>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let doc = match voice_request(&shared, &req, &body).await {
        Ok(doc) => doc,
        Err(r) => return r,
    };
    let sys_id = path.into_inner();
    let mut st = shared.state();
    let exists = st
        .tables
        .get("interaction")
        .is_some_and(|rows| rows.iter().any(|r| r.sys_id == sys_id));
    if !exists {
        return voice_failure("Interaction not found");
    }
    voice_apply(&mut st, &shared.config.sn_tables, &sys_id, &doc);
    st.serial += 1;
    let key = format!("openframe:{sys_id}:{}", st.serial);
    st.arrive(Received {
        key,
        interaction: sys_id,
        kind: "interaction.update".into(),
        channel: "openframe:update".into(),
        idempotency_key: None,
        document: Value::Object(doc),
    });
    voice_result(json!({"status": "SUCCESS"}))
}
