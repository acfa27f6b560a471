//! The ARI REST client: one awc client with explicit connect and request
//! timeouts, Basic auth or `api_key`, percent-encoded path segments and
//! query values, bounded answer bodies, and ARI's error shapes
//! (`{"message": ...}`, or `{"error": "Allocation failed"}` for an
//! originate to an unreachable endpoint) turned into [`RestError`].

use std::sync::Arc;

use awc::http::Method;
use serde::de::DeserializeOwned;

use super::settings::{AriAuth, AriSettings};
use crate::net::{http_client, ClientError};

/// Largest answer body read: `GET /channels` with a few thousand channels
/// is a few MB.
pub const ANSWER_BODY_BYTES_MAX: usize = 32 * 1024 * 1024;

/// Why a REST call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestError {
    /// No answer: connection refused or reset, or the timeout expired.
    #[error("ARI unreachable: {0}")]
    Transport(String),
    /// Asterisk answered with an error status.
    #[error("ARI answered {status}: {message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The `message` (or `error`) of the JSON body, or a body excerpt.
        message: String,
    },
    /// A 2xx whose body is not what ARI sends.
    #[error("ARI answer unreadable: {0}")]
    Decode(String),
}

impl RestError {
    /// The HTTP status, for status errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Why `edgecc check-config --probe` could not reach Asterisk.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The HTTP client could not be built (TLS set-up).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Asterisk did not answer, or refused.
    #[error(transparent)]
    Rest(#[from] RestError),
}

/// The REST side of the ARI link.
#[derive(Clone)]
pub struct RestClient {
    /// The HTTP client (pooled connections, timeouts set).
    client: awc::Client,
    /// The settings (base URL, credentials, timeouts).
    settings: Arc<AriSettings>,
}

/// Percent-encodes one path segment (everything but RFC 3986 unreserved).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl RestClient {
    /// A client for `settings` (no connection is made yet).
    pub fn new(settings: Arc<AriSettings>) -> Result<RestClient, ClientError> {
        let https = settings.url.starts_with("https://");
        let client = http_client(settings.connect_timeout, settings.request_timeout, https)?;
        Ok(RestClient { client, settings })
    }

    /// The settings.
    pub fn settings(&self) -> &AriSettings {
        &self.settings
    }

    /// Sends `method path?query` (with an optional JSON body) and returns
    /// the status and body of a 2xx answer.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Result<(u16, Vec<u8>), RestError> {
        let url = format!("{}{}", self.settings.url, path);
        let mut pairs: Vec<(&str, &str)> = query.to_vec();
        let api_key;
        if self.settings.auth == AriAuth::ApiKey {
            api_key = format!("{}:{}", self.settings.user, self.settings.password);
            pairs.push(("api_key", &api_key));
        }
        let mut req = self.client.request(method, url);
        if !pairs.is_empty() {
            req = req
                .query(&pairs)
                .map_err(|e| RestError::Transport(format!("query not encodable: {e}")))?;
        }
        if self.settings.auth == AriAuth::Basic {
            req = req.basic_auth(&self.settings.user, &self.settings.password);
        }
        let timeout = self.settings.request_timeout;
        let work = async {
            let send = match body {
                Some(b) => req.send_json(b),
                None => req.send(),
            };
            let mut resp = send
                .await
                .map_err(|e| RestError::Transport(e.to_string()))?;
            let status = resp.status().as_u16();
            let body = resp
                .body()
                .limit(ANSWER_BODY_BYTES_MAX)
                .await
                .map(|b| b.to_vec())
                .map_err(|e| RestError::Transport(format!("answer body: {e}")))?;
            Ok::<_, RestError>((status, body))
        };
        let (status, body) = match actix_rt::time::timeout(timeout, work).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(RestError::Transport(format!(
                    "no answer within {} ms",
                    timeout.as_millis()
                )))
            }
        };
        if (200..300).contains(&status) {
            Ok((status, body))
        } else {
            Err(RestError::Status {
                status,
                message: error_message(&body),
            })
        }
    }

    /// [`Self::call`] decoding a JSON answer.
    pub async fn call_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, RestError> {
        let (_, body) = self.call(method, path, query, None).await?;
        serde_json::from_slice(&body).map_err(|e| RestError::Decode(e.to_string()))
    }

    /// `GET /asterisk/info`: checks credentials and reachability; answers
    /// the Asterisk version.
    pub async fn probe(&self) -> Result<String, RestError> {
        let info: serde_json::Value = self.call_json(Method::GET, "/asterisk/info", &[]).await?;
        Ok(info
            .pointer("/system/version")
            .and_then(|v| v.as_str())
            .unwrap_or("unknown")
            .to_string())
    }
}

/// The `message` or `error` field of an ARI error body, or an excerpt.
pub fn error_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        for k in ["message", "error"] {
            if let Some(m) = v.get(k).and_then(|m| m.as_str()) {
                return m.chars().take(200).collect();
            }
        }
    }
    String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Path segments keep unreserved characters and encode the rest (a
    /// Local channel's `;2` half, spaces, slashes).
    #[test]
    fn segments_are_encoded() {
        assert_eq!(encode_segment("1712.7~3"), "1712.7~3");
        assert_eq!(encode_segment("a;2"), "a%3B2");
        assert_eq!(encode_segment("x/y z"), "x%2Fy%20z");
    }

    /// Both ARI error shapes give their text.
    #[test]
    fn error_bodies() {
        assert_eq!(
            error_message(br#"{"message":"Channel not found"}"#),
            "Channel not found"
        );
        assert_eq!(
            error_message(br#"{"error":"Allocation failed"}"#),
            "Allocation failed"
        );
        assert_eq!(error_message(b"oops"), "oops");
    }
}
