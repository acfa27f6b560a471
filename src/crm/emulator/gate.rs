//! What every CRM request passes first: counted and kept as the last
//! request, then the fault modes (refuse, status, writes, 429, hang), and
//! for ServiceNow writes the credentials, the poison-record and failure
//! modes and the body read as a JSON object.

use std::time::Duration;

use actix_web::http::header::{CONTENT_TYPE, RETRY_AFTER};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::auth::authorized;
use super::respond::{answer, not_authenticated, sn_error};
use super::state::Shared;
use super::{Mode, RawRequest, HANG_MS_MAX, PATTERN_BYTES_MAX};
use crate::crm::sn_instance::error_body;

/// The requests per hour the emulated rate limit rule allows (the
/// documented example's).
pub(super) const RATE_LIMIT_PER_HOUR: u64 = 100;
/// The sys_id of the emulated rate limit rule (`sys_rate_limit_rules`).
pub(super) const RATE_LIMIT_RULE: &str = "0e5c2fd1dbb2330010b5f3f1ca9619a1";

/// The API a rate-limited request went to, as the 429's detail names it.
fn rate_limited_api(path: &str) -> &'static str {
    if path.starts_with("/api/now/import/") {
        "Import Set API"
    } else if path.starts_with("/api/now/table/") {
        "Table API"
    } else {
        "REST API"
    }
}

/// Counts the request, keeps it as the last one, and applies the fault
/// modes every CRM endpoint shares. `Some` is the answer to give instead.
pub(super) async fn gate(shared: &Shared, req: &HttpRequest, body: &[u8]) -> Option<HttpResponse> {
    let mode = {
        let mut st = shared.state();
        st.stats.requests += 1;
        st.last_request = Some(RawRequest {
            method: req.method().to_string(),
            path: req.uri().to_string(),
            headers: req
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_ascii_lowercase(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: String::from_utf8_lossy(body).into_owned(),
        });
        st.mode.clone()
    };
    match mode {
        Mode::Normal | Mode::Reject { .. } | Mode::Failure { .. } | Mode::ImportError { .. } => {
            None
        }
        Mode::Refuse { .. } => Some(answer(503, json!({"error": "refusing"}))),
        Mode::Status { status, body } => Some(
            HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY))
                .body(body),
        ),
        Mode::Writes { .. } if req.method() == actix_web::http::Method::GET => None,
        Mode::Writes { status, body } => Some(
            HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY))
                .body(body),
        ),
        // An inbound REST API rate limit rule firing, as ServiceNow answers
        // it (ServiceNowDocs, api-reference/rest-api-explorer/
        // inbound-REST-API-rate-limiting.md): 429 with X-RateLimit-Limit
        // (requests per hour), X-RateLimit-Reset (a UNIX timestamp: the
        // next reset of the window, here when Retry-After ends),
        // X-RateLimit-Rule (the sys_rate_limit_rules sys_id) and
        // Retry-After (seconds), and the documented error body.
        Mode::RetryAfter { secs } => {
            let reset = crate::clock::now_ms() / 1_000 + secs;
            let api = rate_limited_api(req.path());
            Some(
                HttpResponse::TooManyRequests()
                    .insert_header((RETRY_AFTER, secs.to_string()))
                    .insert_header(("X-RateLimit-Limit", RATE_LIMIT_PER_HOUR.to_string()))
                    .insert_header(("X-RateLimit-Reset", reset.to_string()))
                    .insert_header(("X-RateLimit-Rule", RATE_LIMIT_RULE))
                    .insert_header((CONTENT_TYPE, "application/json"))
                    .body(
                        error_body(
                            "Rate limit exceeded",
                            Some(&format!(
                                "Rate limit of {RATE_LIMIT_PER_HOUR} requests per hour \
                                 for {api} exceeded"
                            )),
                        )
                        .to_string(),
                    ),
            )
        }
        Mode::Hang { ms } => {
            let ms = ms.unwrap_or(HANG_MS_MAX).min(HANG_MS_MAX);
            actix_rt::time::sleep(Duration::from_millis(ms)).await;
            Some(answer(504, json!({"error": "hung"})))
        }
    }
}

/// `Reject` and `Failure` answers for a record request, if they apply.
pub(super) fn record_fault(shared: &Shared, body: &[u8]) -> Option<HttpResponse> {
    let mut st = shared.state();
    match &st.mode {
        Mode::Reject { pattern } => {
            let pattern = pattern.as_bytes();
            let hit = !pattern.is_empty()
                && pattern.len() <= PATTERN_BYTES_MAX
                && body.windows(pattern.len()).any(|w| w == pattern);
            if hit {
                st.stats.rejected += 1;
                return Some(answer(
                    400,
                    json!({"error": "record rejected: matches the reject pattern"}),
                ));
            }
            None
        }
        Mode::Failure { message } => Some(answer(
            200,
            json!({"error": {"message": message, "detail": ""}, "status": "failure"}),
        )),
        _ => None,
    }
}

/// The fault gate, then the credentials (a refusal counted as rejected):
/// what every ServiceNow write passes before its own checks.
pub(super) async fn admitted(
    shared: &Shared,
    req: &HttpRequest,
    body: &[u8],
) -> Result<(), HttpResponse> {
    if let Some(r) = gate(shared, req, body).await {
        return Err(r);
    }
    if !authorized(shared, req) {
        shared.state().stats.rejected += 1;
        return Err(not_authenticated());
    }
    Ok(())
}

/// A ServiceNow write's body as a JSON object, or ServiceNow's 400.
pub(super) fn json_object(body: &[u8]) -> Result<Map<String, Value>, HttpResponse> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(sn_error(400, "Request body is not a JSON object")),
    }
}

/// What every ServiceNow write goes through first: the fault gate,
/// authentication, injected record faults, then the body as a JSON object.
pub(super) async fn table_request(
    shared: &web::Data<Shared>,
    req: &HttpRequest,
    body: &web::Bytes,
) -> Result<Map<String, Value>, HttpResponse> {
    admitted(shared, req, body).await?;
    if let Some(r) = record_fault(shared, body) {
        return Err(r);
    }
    json_object(body)
}
