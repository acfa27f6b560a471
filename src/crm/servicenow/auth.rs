//! ServiceNow credentials: an API key (`x-sn-apikey`), HTTP Basic, or an
//! OAuth 2 grant (password, client credentials or JWT bearer) with its
//! token cached and refreshed before it lapses. Secrets are read from
//! their files once, at start-up.

use std::cell::RefCell;

use awc::http::header::{HeaderName, HeaderValue, ACCEPT, AUTHORIZATION};
use base64::Engine as _;
use serde_json::Value;
use tracing::{debug, error};

use super::super::transport::{excerpt, exchange, transport_retry};
use super::super::Outcome;
use super::jwt::{Signer, JWT_BEARER_GRANT};
use super::{Early, ServiceNowAdapter, ServiceNowAuth, ServiceNowConfig};
use crate::net::{read_secret_file, read_secret_text, SettingError};

/// The header ServiceNow's API key authentication reads.
pub const API_KEY_HEADER: &str = "x-sn-apikey";
/// A token is refreshed this long before ServiceNow says it expires, in ms,
/// so a request never leaves with a token about to lapse.
pub const TOKEN_REFRESH_MARGIN_MS: u64 = 30_000;
/// Token lifetime assumed when the token answer gives none, in ms.
pub const TOKEN_LIFETIME_MS_DEFAULT: u64 = 30 * 60 * 1000;

/// An OAuth access token and when to stop using it.
#[derive(Clone)]
pub(super) struct Token {
    /// The bearer token.
    access: String,
    /// Wall-clock ms after which a new token is fetched first.
    refresh_at_ms: u64,
}

/// Credentials, read from their files at start-up.
pub(super) enum Auth {
    /// `x-sn-apikey: <key>` (ServiceNow's token-based authentication).
    ApiKey(String),
    /// `Authorization: Basic …`, precomputed.
    Basic(String),
    /// An OAuth 2 grant and its cached token.
    OAuth {
        /// The grant form fields (grant_type, client_id, client_secret, and
        /// username/password for the password grant).
        form: Vec<(&'static str, String)>,
        /// The current token; `RefCell` because the adapter lives on one
        /// arbiter and is shared by `&self` across concurrent deliveries.
        token: RefCell<Option<Token>>,
        /// JWT bearer grant: signs the `assertion` each token request adds.
        jwt: Option<Signer>,
    },
}

impl ServiceNowAdapter {
    /// The current bearer token, fetched when missing or about to expire.
    async fn bearer(&self, form: &[(&'static str, String)], force: bool) -> Result<String, Early> {
        if let Auth::OAuth { token, .. } = &self.auth {
            let cached = token.borrow().clone();
            if let Some(t) = cached {
                if !force && crate::clock::now_ms() < t.refresh_at_ms {
                    return Ok(t.access);
                }
            }
        }
        let mut form = form.to_vec();
        if let Auth::OAuth {
            jwt: Some(signer), ..
        } = &self.auth
        {
            let assertion = signer
                .assertion(crate::clock::now_ms())
                .map_err(transport_retry)?;
            form.push(("assertion", assertion));
        }
        let url = format!("{}/oauth_token.do", self.base);
        let send = self
            .client
            .post(&url)
            .insert_header((ACCEPT, HeaderValue::from_static("application/json")))
            .send_form(&form);
        let answer = exchange(send, self.request_timeout)
            .await
            .map_err(|e| transport_retry(format!("OAuth token request: {e}")))?;
        if !(200..=299).contains(&answer.status) {
            error!(status = answer.status, reason = %excerpt(&answer.body),
                "ServiceNow refused the OAuth credentials; check the client id and secret files.");
            return Err(Outcome::Retry {
                reason: format!(
                    "OAuth token request: HTTP {}: {}",
                    answer.status,
                    excerpt(&answer.body)
                ),
                retry_after: answer.retry_after,
                crm_down: true,
            });
        }
        let parsed: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        let Some(access) = parsed.get("access_token").and_then(Value::as_str) else {
            return Err(transport_retry(format!(
                "OAuth token answer has no access_token: {}",
                excerpt(&answer.body)
            )));
        };
        let lifetime_ms = parsed
            .get("expires_in")
            .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
            .map(|s| s.saturating_mul(1000))
            .unwrap_or(TOKEN_LIFETIME_MS_DEFAULT);
        let refresh_at_ms = crate::clock::now_ms()
            + lifetime_ms.saturating_sub(TOKEN_REFRESH_MARGIN_MS.min(lifetime_ms / 2));
        if let Auth::OAuth { token, .. } = &self.auth {
            *token.borrow_mut() = Some(Token {
                access: access.to_string(),
                refresh_at_ms,
            });
        }
        debug!(instance = %self.base, "ServiceNow OAuth token fetched.");
        Ok(access.to_string())
    }

    /// The credential header (name, value) for the next request.
    pub(super) async fn authorization(
        &self,
        force_refresh: bool,
    ) -> Result<(HeaderName, String), Early> {
        match &self.auth {
            Auth::ApiKey(key) => Ok((HeaderName::from_static(API_KEY_HEADER), key.clone())),
            Auth::Basic(value) => Ok((AUTHORIZATION, value.clone())),
            Auth::OAuth { form, .. } => Ok((
                AUTHORIZATION,
                format!("Bearer {}", self.bearer(form, force_refresh).await?),
            )),
        }
    }
}

/// Reads the credentials the auth kind needs; errors name key and file.
pub(super) fn build_auth(config: &ServiceNowConfig) -> Result<Auth, SettingError> {
    let required = |key: &str, what: &str| {
        SettingError::new(
            &format!("crm.servicenow.{key}"),
            format!("required for {what}"),
        )
    };
    let user = || {
        config
            .user
            .clone()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| required("user", "this auth"))
    };
    let password = || match &config.password_file {
        Some(p) => read_secret_text("crm.servicenow.password_file", p),
        None => Err(required("password_file", "this auth")),
    };
    let client = || -> Result<(String, String), SettingError> {
        let id = config
            .oauth_client_id
            .clone()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| required("oauth_client_id", "OAuth"))?;
        let secret = match &config.oauth_client_secret_file {
            Some(p) => read_secret_text("crm.servicenow.oauth_client_secret_file", p)?,
            None => return Err(required("oauth_client_secret_file", "OAuth")),
        };
        Ok((id, secret))
    };
    Ok(match config.auth {
        ServiceNowAuth::ApiKey => {
            let key = match &config.api_key_file {
                Some(p) => read_secret_text("crm.servicenow.api_key_file", p)?,
                None => return Err(required("api_key_file", "auth = \"api_key\"")),
            };
            if HeaderValue::from_str(&key).is_err() || key.is_empty() {
                return Err(SettingError::new(
                    "crm.servicenow.api_key_file",
                    "the key must be one line of visible ASCII".to_string(),
                ));
            }
            Auth::ApiKey(key)
        }
        ServiceNowAuth::Basic => {
            let token = base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                user()?,
                password()?
            ));
            Auth::Basic(format!("Basic {token}"))
        }
        ServiceNowAuth::OauthPassword => {
            let (id, secret) = client()?;
            Auth::OAuth {
                form: vec![
                    ("grant_type", "password".into()),
                    ("client_id", id),
                    ("client_secret", secret),
                    ("username", user()?),
                    ("password", password()?),
                ],
                token: RefCell::new(None),
                jwt: None,
            }
        }
        ServiceNowAuth::OauthClientCredentials => {
            let (id, secret) = client()?;
            Auth::OAuth {
                form: vec![
                    ("grant_type", "client_credentials".into()),
                    ("client_id", id),
                    ("client_secret", secret),
                ],
                token: RefCell::new(None),
                jwt: None,
            }
        }
        ServiceNowAuth::OauthJwtBearer => {
            let (id, secret) = client()?;
            let pem = match &config.jwt_key_file {
                Some(p) => read_secret_file("crm.servicenow.jwt_key_file", p)?,
                None => return Err(required("jwt_key_file", "auth = \"oauth_jwt_bearer\"")),
            };
            let signer = Signer::new(&pem, id.clone(), user()?, config.jwt_kid.clone())?;
            Auth::OAuth {
                form: vec![
                    ("grant_type", JWT_BEARER_GRANT.into()),
                    ("client_id", id),
                    ("client_secret", secret),
                ],
                token: RefCell::new(None),
                jwt: Some(signer),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Missing credentials and unreadable secret files name their key (and
    /// the file); the error text reads as before the typed error.
    #[test]
    fn missing_credentials_name_the_key() {
        let c = ServiceNowConfig::with_instance("https://x.service-now.com");
        let err = build_auth(&c).err().unwrap();
        assert_eq!(err.key, "crm.servicenow.user");
        assert_eq!(
            err.to_string(),
            "key `crm.servicenow.user`: required for this auth"
        );
        let mut c = c;
        c.user = Some("u".into());
        c.password_file = Some("/nonexistent/pw".into());
        let err = build_auth(&c).err().unwrap();
        assert_eq!(err.key, "crm.servicenow.password_file");
        assert!(err.message.contains("/nonexistent/pw"), "{err}");
        c.auth = ServiceNowAuth::OauthClientCredentials;
        let err = build_auth(&c).err().unwrap();
        assert_eq!(err.key, "crm.servicenow.oauth_client_id");
        c.auth = ServiceNowAuth::ApiKey;
        let err = build_auth(&c).err().unwrap();
        assert_eq!(err.key, "crm.servicenow.api_key_file");
    }
}
