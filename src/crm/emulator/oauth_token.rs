//! The emulator's OAuth token endpoint, `POST /oauth_token.do`, as
//! ServiceNow answers it: the password, client-credentials and JWT bearer
//! grants ([`super::jwt_grant`]), tokens that [`super::auth`] then accepts,
//! and ServiceNow's refusal body.

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use tracing::debug;

use super::gate::gate;
use super::jwt_grant::verify;
use super::respond::answer;
use super::state::Shared;
use super::TOKENS_MAX;
use crate::crm::servicenow::JWT_BEARER_GRANT;

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
