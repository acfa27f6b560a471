//! Outbound-connection plumbing that no adapter owns: the HTTP client every
//! adapter builds (explicit timeouts, TLS, no redirects), secret files, and
//! the checks of the settings they share (URLs, timeouts). The ARI adapter
//! ([`crate::ari`]) and the CRM adapters ([`crate::crm`]) both build on it;
//! it knows neither.
//!
//! # Layout
//!
//! - [`client`] — [`client::http_client`]: awc with every timeout set and
//!   rustls (ring, webpki roots) for https.
//! - [`secret`] — [`secret::read_secret_file`]: a bounded secret file, one
//!   trailing newline dropped.
//! - this file — [`SettingError`] and the URL and timeout checks.

pub mod client;
pub mod secret;

use std::time::Duration;

pub use client::{http_client, ClientError, CONNECTIONS_MAX};
pub use secret::{read_secret_file, read_secret_text, SECRET_FILE_BYTES_MAX};

/// A setting that is wrong, named by its dotted key (`crm.webhook.url`),
/// so the config loader can report the key and its line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key `{key}`: {message}")]
pub struct SettingError {
    /// The dotted config key at fault.
    pub key: String,
    /// What is wrong with it, for a person.
    pub message: String,
}

impl SettingError {
    /// An error of `key`.
    pub fn new(key: &str, message: impl Into<String>) -> SettingError {
        SettingError {
            key: key.to_string(),
            message: message.into(),
        }
    }
}

/// The config loader keeps `(key, message)` pairs; `?` converts.
impl From<SettingError> for (String, String) {
    fn from(e: SettingError) -> (String, String) {
        (e.key, e.message)
    }
}

/// Checks a `*_timeout_ms` value against `1..=max_ms`.
pub fn check_timeout(key: &str, ms: u64, max_ms: u64) -> Result<Duration, SettingError> {
    if ms == 0 || ms > max_ms {
        return Err(SettingError::new(
            key,
            format!("{ms} ms is outside 1..={max_ms} ms"),
        ));
    }
    Ok(Duration::from_millis(ms))
}

/// Checks a base URL: `http://` or `https://` with a host; answers whether
/// it is https.
pub fn check_url(key: &str, url: &str) -> Result<bool, SettingError> {
    let uri: awc::http::Uri = url
        .parse()
        .map_err(|e| SettingError::new(key, format!("`{url}` is not a URL: {e}")))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => {
            return Err(SettingError::new(
                key,
                format!("`{url}` must start with http:// or https://"),
            ))
        }
    };
    if uri.host().is_none_or(str::is_empty) {
        return Err(SettingError::new(key, format!("`{url}` has no host")));
    }
    Ok(https)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// URL and timeout errors name the key and read as the config loader
    /// prints them.
    #[test]
    fn checks_name_the_key() {
        assert_eq!(check_url("a.url", "https://crm.example"), Ok(true));
        assert_eq!(check_url("a.url", "http://127.0.0.1:9/x"), Ok(false));
        let e = check_url("a.url", "ftp://x").unwrap_err();
        assert_eq!(e.key, "a.url");
        assert_eq!(
            e.to_string(),
            "key `a.url`: `ftp://x` must start with http:// or https://"
        );
        assert_eq!(check_url("a.url", "http://").unwrap_err().key, "a.url");
        assert_eq!(check_timeout("a.t", 5, 10), Ok(Duration::from_millis(5)));
        assert_eq!(
            check_timeout("a.t", 11, 10).unwrap_err().message,
            "11 ms is outside 1..=10 ms"
        );
        assert!(check_timeout("a.t", 0, 10).is_err());
    }
}
