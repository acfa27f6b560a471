//! ServiceNow's inbound authentication as the emulator checks it on each
//! request: Basic, `x-sn-apikey`, and bearer tokens (issued by
//! [`super::oauth_token`]).

use actix_web::http::header::AUTHORIZATION;
use actix_web::HttpRequest;
use base64::Engine as _;

use super::state::Shared;

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
