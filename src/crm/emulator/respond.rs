//! The emulator's answers: JSON bodies, ServiceNow's error shapes (its
//! 401, `400 Invalid table`), and reading a string field of a request.

use actix_web::http::header::CONTENT_TYPE;
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::Value;

use super::state::Shared;
use crate::crm::sn_instance::{error_body, invalid_table_message, TableDef};

/// A JSON answer.
pub(super) fn answer(status: u16, body: Value) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .insert_header((CONTENT_TYPE, "application/json"))
        .body(body.to_string())
}

/// The ServiceNow error shape.
pub(super) fn sn_error(status: u16, message: &str) -> HttpResponse {
    answer(status, error_body(message, None))
}

/// ServiceNow's answer to missing or wrong credentials.
pub(super) fn not_authenticated() -> HttpResponse {
    answer(
        401,
        error_body(
            "User Not Authenticated",
            Some("Required to provide Auth information"),
        ),
    )
}

/// `400 Invalid table <name>` unless the instance has `table`.
pub(super) fn known_table<'a>(
    shared: &'a Shared,
    table: &str,
) -> Result<&'a TableDef, HttpResponse> {
    shared
        .config
        .sn_tables
        .get(table)
        .ok_or_else(|| sn_error(400, &invalid_table_message(table)))
}

/// A string field of a JSON object ("" when absent).
pub(super) fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}
