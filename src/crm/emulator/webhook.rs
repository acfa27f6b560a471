//! `POST /webhook`: the generic webhook receiver (HMAC signature check,
//! one document or a batch, duplicates counted by document id).

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use tracing::debug;

use super::gate::{gate, record_fault};
use super::respond::{answer, text};
use super::state::Shared;
use super::Received;
use crate::crm::webhook::{verify_signature, SIGNATURE_HEADER};

/// `POST /webhook`.
pub(super) async fn webhook(
    shared: web::Data<Shared>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    if let Some(r) = gate(&shared, &req, &body).await {
        return r;
    }
    if let Some(secret) = &shared.config.webhook_secret {
        let header = req
            .headers()
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let now = crate::clock::now_ms() / 1000;
        if let Err(e) = verify_signature(
            secret,
            header,
            &body,
            now,
            shared.config.signature_tolerance_secs,
        ) {
            shared.state().stats.rejected += 1;
            debug!(error = %e, "Emulator: bad webhook signature.");
            return answer(401, json!({"error": e.to_string()}));
        }
    }
    if let Some(r) = record_fault(&shared, &body) {
        return r;
    }
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return answer(400, json!({"error": format!("not JSON: {e}")})),
    };
    let idempotency_key = req
        .headers()
        .get("Idempotency-Key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let docs = match parsed {
        Value::Array(docs) => docs,
        doc @ Value::Object(_) => vec![doc],
        _ => return answer(400, json!({"error": "expected an object or an array"})),
    };
    if docs.iter().any(|d| text(d, "id").is_empty()) {
        return answer(422, json!({"error": "every document needs an id"}));
    }
    let single = docs.len() == 1;
    let mut st = shared.state();
    let mut duplicates = 0;
    for doc in docs.iter() {
        let received = Received {
            key: text(doc, "id"),
            interaction: text(doc, "interaction"),
            kind: text(doc, "kind"),
            channel: "webhook".into(),
            idempotency_key: if single {
                idempotency_key.clone()
            } else {
                None
            },
            document: doc.clone(),
        };
        if !st.arrive(received) {
            duplicates += 1;
        }
    }
    answer(
        200,
        json!({"received": docs.len(), "duplicates": duplicates}),
    )
}
