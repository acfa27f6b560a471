//! ServiceNow's inbound authentication as the emulator plays it: Basic,
//! `x-sn-apikey`, bearer tokens, and the OAuth token endpoint that issues
//! them (password, client credentials, JWT bearer).

use std::collections::HashMap;

use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use serde_json::json;
use tracing::debug;

use super::gate::gate;
use super::jwt_grant::verify;
use super::respond::answer;
use super::state::Shared;
use super::TOKENS_MAX;
use crate::crm::servicenow::JWT_BEARER_GRANT;

/// Whether a ServiceNow request carries acceptable credentials.
pub(super) fn authorized(shared: &Shared, req: &HttpRequest) -> bool {
    let config = &shared.config;
    if config.basic.is_none() && config.oauth_client.is_none() && config.api_key.is_none() {
        return true;
    }
    if let Some(key) = &config.api_key {
        let sent = req.headers().get("x-sn-apikey").map(|v| v.as_bytes());
        if sent == Some(key.as_bytes()) {
            return true;
        }
    }
    let Some(value) = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    if let (Some(encoded), Some((user, password))) = (value.strip_prefix("Basic "), &config.basic) {
        return base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .is_some_and(|d| d == format!("{user}:{password}").as_bytes());
    }
    if let Some(token) = value.strip_prefix("Bearer ") {
        return shared.state().tokens.iter().any(|t| t == token);
    }
    false
}

/// `POST /oauth_token.do`: password, client-credentials and JWT bearer
/// grants.
pub(super) async fn oauth_token(
    shared: web::Data<Shared>,
    req: HttpRequest,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    if let Some(r) = gate(&shared, &req, b"").await {
        return r;
    }
    let c = &shared.config;
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let client_ok = c
        .oauth_client
        .as_ref()
        .is_some_and(|(id, secret)| get("client_id") == id && get("client_secret") == secret);
    let mut st = shared.state();
    let grant_ok = match get("grant_type") {
        "client_credentials" => true,
        "password" => c
            .basic
            .as_ref()
            .is_none_or(|(u, p)| get("username") == u && get("password") == p),
        JWT_BEARER_GRANT => match (&c.jwt, &c.oauth_client) {
            (Some(verifier), Some((id, _))) if client_ok => {
                match verify(verifier, id, get("assertion"), &mut st) {
                    Ok(()) => true,
                    Err(reason) => {
                        debug!(%reason, "Emulator: JWT assertion refused.");
                        false
                    }
                }
            }
            _ => false,
        },
        _ => false,
    };
    if !(client_ok && grant_ok) {
        st.stats.rejected += 1;
        // ServiceNow's token endpoint refusing a grant.
        return answer(
            401,
            json!({"error_description": "access_denied", "error": "server_error"}),
        );
    }
    st.serial += 1;
    let token = format!("tok-{:08x}", st.serial);
    if st.tokens.len() >= TOKENS_MAX {
        st.tokens.pop_front();
    }
    st.tokens.push_back(token.clone());
    st.stats.tokens_issued += 1;
    answer(
        200,
        json!({
            "access_token": token,
            "refresh_token": "",
            "scope": "useraccount",
            "token_type": "Bearer",
            "expires_in": c.token_lifetime_secs,
        }),
    )
}
