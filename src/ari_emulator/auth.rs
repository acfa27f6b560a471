//! What both surfaces of the emulated Asterisk (REST and the events
//! WebSocket) check and answer before they look at a request: the ARI
//! credentials (Basic or `?api_key=user:pass`), Asterisk's 401, and a JSON
//! answer with a status.

use actix_web::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use base64::Engine as _;
use serde_json::Value;

use super::wire::{self, message};
use super::AriEmulatorConfig;

/// True when the request carries the ARI credentials (Basic or `api_key`).
pub fn authorized(req: &HttpRequest, cfg: &AriEmulatorConfig) -> bool {
    let expected = format!("{}:{}", cfg.user, cfg.password);
    let p = wire::params(req.query_string(), b"");
    if let Some(k) = p.get("api_key") {
        return *k == expected;
    }
    let Some(h) = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
    else {
        return false;
    };
    let Some(b64) = h
        .strip_prefix("Basic ")
        .or_else(|| h.strip_prefix("basic "))
    else {
        return false;
    };
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()
        .is_some_and(|d| d == expected.as_bytes())
}

/// 401 as Asterisk answers it.
pub fn unauthorized() -> HttpResponse {
    HttpResponse::Unauthorized()
        .insert_header((WWW_AUTHENTICATE, "Basic realm=\"Asterisk REST Interface\""))
        .insert_header((CONTENT_TYPE, "application/json"))
        .body(message("Authentication required").to_string())
}

/// A JSON answer with `status`.
pub fn json_answer(status: u16, body: &Value) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .insert_header((CONTENT_TYPE, "application/json"))
        .body(body.to_string())
}
