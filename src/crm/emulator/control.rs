//! The emulator's own control endpoints (`/_emulator/…`): counters,
//! received records, switching the mode, expiring OAuth tokens.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};
use tracing::warn;

use super::respond::answer;
use super::state::Shared;
use super::{Mode, REFUSE_HTTP_DELAY_MS, REFUSE_MS_HTTP_DEFAULT, REFUSE_MS_MAX};

/// `GET /_emulator/stats`.
pub(super) async fn control_stats(shared: web::Data<Shared>) -> HttpResponse {
    let stats = shared.state().stats.clone();
    answer(200, serde_json::to_value(stats).unwrap_or(Value::Null))
}

/// `GET /_emulator/records`.
pub(super) async fn control_records(shared: web::Data<Shared>) -> HttpResponse {
    let records = shared.state().received.clone();
    answer(200, serde_json::to_value(records).unwrap_or(Value::Null))
}

/// `POST /_emulator/mode`: a refusal is scheduled on the home arbiter (it
/// stops this very server) and always ends, by default after
/// [`REFUSE_MS_HTTP_DEFAULT`].
pub(super) async fn control_mode(shared: web::Data<Shared>, body: web::Bytes) -> HttpResponse {
    let mode: Mode = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => return answer(400, json!({"error": format!("bad mode: {e}")})),
    };
    let mode = match mode {
        Mode::Refuse { for_ms } => Mode::Refuse {
            for_ms: Some(for_ms.unwrap_or(REFUSE_MS_HTTP_DEFAULT).min(REFUSE_MS_MAX)),
        },
        other => other,
    };
    let shared = shared.into_inner();
    let reply = json!({"mode": mode});
    let delayed = matches!(mode, Mode::Refuse { .. });
    let home = shared.home.clone();
    home.spawn_fn(move || {
        actix_rt::spawn(async move {
            if delayed {
                actix_rt::time::sleep(Duration::from_millis(REFUSE_HTTP_DELAY_MS)).await;
            }
            if let Err(e) = shared.apply_mode(mode).await {
                warn!(error = %e, "Emulator mode change failed.");
            }
        });
    });
    answer(202, reply)
}

/// `POST /_emulator/expire_tokens`.
pub(super) async fn control_expire(shared: web::Data<Shared>) -> HttpResponse {
    shared.state().tokens.clear();
    answer(200, json!({"expired": true}))
}
