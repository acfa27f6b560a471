//! The `webhook` CRM adapter: POST each record's wire document (see
//! [`super::wire`]) to one URL, signed in the style of Stripe's webhooks.
//!
//! # Request
//!
//! ```text
//! POST <url>
//! Content-Type: application/json
//! Idempotency-Key: <correlation id>          (single-record requests only)
//! Edgecc-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
//!
//! <wire document>   or, in batch mode, [<wire document>, ...]
//! ```
//!
//! A batch carries no `Idempotency-Key` header: every document in the array
//! has its own `id` (the same key), and a joined header could outgrow the
//! 8 KiB header limit of common proxies. The signature header is only sent
//! when `secret_file` is configured; [`verify_signature`] is the receiver's
//! side (the emulator uses it), with [`SIGNATURE_TOLERANCE_SECS_DEFAULT`] as
//! the replay window.
//!
//! # Answers
//!
//! See [`classify`]: 2xx, 409 and "already exists" on a create are
//! delivered; 408, 429, 5xx and transport failures retry (and count towards
//! the circuit breaker); other 4xx are permanent. A batch answered with an
//! error status that may be one record's fault is re-sent one record at a
//! time, so one poison record never holds back the others.
//!
//! # Layout
//!
//! - this file — [`WebhookConfig`] and [`WebhookAdapter`]: single and batch
//!   delivery over [`super::transport`].
//! - [`signature`] — `Edgecc-Signature`: [`sign`] and the receiver's
//!   [`verify_signature`].

pub mod signature;

use std::path::PathBuf;
use std::time::Duration;

use awc::http::header::{HeaderValue, CONTENT_TYPE};
use edgecc_storage::Record;
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

pub use signature::{
    sign, verify_signature, SignatureError, SIGNATURE_HEADER, SIGNATURE_TOLERANCE_SECS_DEFAULT,
};

use super::transport::{
    classify, excerpt, exchange, is_create, transport_retry, Answer, ExchangeError,
    CONNECT_TIMEOUT_MS_DEFAULT, REQUEST_TIMEOUT_MS_DEFAULT, TIMEOUT_MS_MAX,
};
use super::{wire, AdapterError, CrmAdapter, LocalBoxFuture, Outcome};
use crate::net::{check_timeout, check_url, http_client, read_secret_file, SettingError};

/// Largest `batch_max`: bounds the request body (100 × 64 KiB records).
pub const BATCH_MAX_LIMIT: usize = 100;
/// The idempotency header's name.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// Why one POST got no answer to classify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum PostError {
    /// The correlation id cannot be a header value: this record can never
    /// be sent as it is (it goes to the dead letters).
    #[error("correlation id is not a valid header value")]
    BadIdempotencyKey,
    /// No answer: the CRM is down or unreachable.
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
}

/// `[crm.webhook]`: where and how to POST records.
///
/// ```toml
/// [crm.webhook]
/// url = "https://crm.example.com/edgecc/records"
/// secret_file = "/run/credentials/edgecc.service/webhook_secret"  # optional
/// connect_timeout_ms = 5000
/// request_timeout_ms = 10000
/// batch_max = 1          # > 1: POST JSON arrays of up to this many records
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The receiver's URL (`http://` or `https://`).
    pub url: String,
    /// File holding the HMAC key for `Edgecc-Signature` (trailing newline
    /// ignored). Only the path is in the config, so serialising the config
    /// never leaks the key. Without it requests are unsigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// TCP + TLS connect timeout, ms.
    #[serde(default = "connect_timeout_ms_default")]
    pub connect_timeout_ms: u64,
    /// Whole-request timeout (until the answer body is read), ms.
    #[serde(default = "request_timeout_ms_default")]
    pub request_timeout_ms: u64,
    /// Records per request: 1 sends one document per request; more sends
    /// JSON arrays (at most [`BATCH_MAX_LIMIT`]).
    #[serde(default = "batch_max_default")]
    pub batch_max: usize,
}

fn connect_timeout_ms_default() -> u64 {
    CONNECT_TIMEOUT_MS_DEFAULT
}
fn request_timeout_ms_default() -> u64 {
    REQUEST_TIMEOUT_MS_DEFAULT
}
fn batch_max_default() -> usize {
    1
}

/// Whether an error status on a batch may be one record's fault, so the
/// batch is re-sent record by record. 408/429/502/503/504 speak of the CRM,
/// not the records: re-sending would only hammer it.
fn batch_status_splits(status: u16) -> bool {
    !matches!(status, 200..=299 | 408 | 429 | 502 | 503 | 504)
}

/// The webhook adapter. Holds an awc client, so it is `!Send`: build it on
/// the arbiter that runs the sync worker.
pub struct WebhookAdapter {
    /// Pooled HTTP client with the configured timeouts.
    client: awc::Client,
    /// Where records are POSTed.
    url: String,
    /// HMAC key for `Edgecc-Signature`; `None` sends unsigned requests.
    secret: Option<Vec<u8>>,
    /// Records per request (1: one document per request).
    batch_max: usize,
    /// Bound on one request including reading the answer (belt and braces
    /// over awc's own timeout, which stops at the headers).
    request_timeout: Duration,
}

impl std::fmt::Debug for WebhookAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookAdapter")
            .field("url", &self.url)
            .field("signed", &self.secret.is_some())
            .field("batch_max", &self.batch_max)
            .finish()
    }
}

impl WebhookAdapter {
    /// Checks the settings without touching files or the network (config
    /// loading and `check-config` run it too). Errors name the key.
    pub fn check(config: &WebhookConfig) -> Result<(), SettingError> {
        check_url("crm.webhook.url", &config.url)?;
        timeouts(config)?;
        if config.batch_max == 0 || config.batch_max > BATCH_MAX_LIMIT {
            return Err(SettingError::new(
                "crm.webhook.batch_max",
                format!("{} is outside 1..={BATCH_MAX_LIMIT}", config.batch_max),
            ));
        }
        Ok(())
    }

    /// Validates `config`, reads the secret file and builds the client.
    /// Errors name the key (`crm.webhook.<key>`).
    pub fn new(config: &WebhookConfig) -> Result<Self, AdapterError> {
        Self::check(config)?;
        let https = check_url("crm.webhook.url", &config.url)?;
        let (connect, request) = timeouts(config)?;
        let secret = match &config.secret_file {
            Some(path) => Some(read_secret_file("crm.webhook.secret_file", path)?),
            None => {
                warn!(url = %config.url, "Webhook secret_file not set; requests are unsigned.");
                None
            }
        };
        Ok(WebhookAdapter {
            client: http_client(connect, request, https)?,
            url: config.url.clone(),
            secret,
            batch_max: config.batch_max,
            request_timeout: request,
        })
    }

    /// POSTs `body`, with `Idempotency-Key` when given.
    async fn post(&self, body: Vec<u8>, key: Option<&str>) -> Result<Answer, PostError> {
        let mut req = self
            .client
            .post(&self.url)
            .insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")));
        if let Some(key) = key {
            let value = HeaderValue::from_str(key).map_err(|_| PostError::BadIdempotencyKey)?;
            req = req.insert_header((IDEMPOTENCY_HEADER, value));
        }
        if let Some(secret) = &self.secret {
            let t = crate::clock::now_ms() / 1000;
            req = req.insert_header((SIGNATURE_HEADER, sign(secret, t, &body)));
        }
        Ok(exchange(req.send_body(body), self.request_timeout).await?)
    }

    /// Delivers one record as one document.
    async fn deliver_one(&self, record: &Record) -> Outcome {
        let body = wire::to_json(record);
        match self.post(body, Some(&record.correlation_id)).await {
            Ok(answer) => {
                let outcome = classify(&answer, is_create(record));
                debug!(correlation_id = %record.correlation_id, status = answer.status,
                    "Webhook answered.");
                outcome
            }
            Err(e @ PostError::BadIdempotencyKey) => Outcome::Permanent {
                status: 0,
                reason: e.to_string(),
            },
            Err(PostError::Exchange(e)) => {
                debug!(correlation_id = %record.correlation_id, reason = %e, "Webhook unreachable.");
                transport_retry(e.to_string())
            }
        }
    }

    /// Delivers records one by one, in order; once the CRM looks down the
    /// rest get the same answer without being tried.
    async fn deliver_each(&self, records: &[Record]) -> Vec<Outcome> {
        let mut out = Vec::with_capacity(records.len());
        for record in records {
            if let Some(down @ Outcome::Retry { crm_down: true, .. }) = out.last() {
                let down: &Outcome = down;
                out.push(down.clone());
                continue;
            }
            out.push(self.deliver_one(record).await);
        }
        out
    }

    /// Delivers a batch as one JSON array; see the module notes.
    async fn deliver_batch(&self, records: &[Record]) -> Vec<Outcome> {
        let body = wire::to_json_array(records);
        match self.post(body, None).await {
            Ok(answer) if (200..=299).contains(&answer.status) => {
                vec![Outcome::Delivered { link: None }; records.len()]
            }
            Ok(answer) if batch_status_splits(answer.status) => {
                warn!(status = answer.status, records = records.len(),
                    reason = %excerpt(&answer.body),
                    "Webhook refused a batch; delivering its records one by one.");
                self.deliver_each(records).await
            }
            Ok(answer) => vec![classify(&answer, false); records.len()],
            Err(e) => vec![transport_retry(e.to_string()); records.len()],
        }
    }
}

/// The connect and request timeouts of `[crm.webhook]`, checked.
fn timeouts(config: &WebhookConfig) -> Result<(Duration, Duration), SettingError> {
    Ok((
        check_timeout(
            "crm.webhook.connect_timeout_ms",
            config.connect_timeout_ms,
            TIMEOUT_MS_MAX,
        )?,
        check_timeout(
            "crm.webhook.request_timeout_ms",
            config.request_timeout_ms,
            TIMEOUT_MS_MAX,
        )?,
    ))
}

impl CrmAdapter for WebhookAdapter {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn batch_max(&self) -> usize {
        self.batch_max
    }

    fn deliver(&self, records: Vec<Record>) -> LocalBoxFuture<'_, Vec<Outcome>> {
        Box::pin(async move {
            if self.batch_max > 1 && records.len() > 1 {
                self.deliver_batch(&records).await
            } else {
                self.deliver_each(&records).await
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Config errors name the key; defaults fill omitted keys; unknown keys
    /// are refused.
    #[test]
    fn config_checks_name_the_key() {
        let c: WebhookConfig = toml::from_str(r#"url = "http://127.0.0.1:9/x""#).unwrap();
        assert_eq!(c.request_timeout_ms, REQUEST_TIMEOUT_MS_DEFAULT);
        assert_eq!(c.batch_max, 1);
        assert!(toml::from_str::<WebhookConfig>("url = \"http://a\"\nsecret = \"x\"").is_err());
        let key_of = |c: &WebhookConfig| match WebhookAdapter::new(c).unwrap_err() {
            AdapterError::Setting(e) => e,
            other => panic!("not a setting error: {other}"),
        };
        let mut bad = c.clone();
        bad.url = "ftp://x".into();
        assert_eq!(key_of(&bad).key, "crm.webhook.url");
        let mut bad = c.clone();
        bad.batch_max = 0;
        assert_eq!(key_of(&bad).key, "crm.webhook.batch_max");
        let mut bad = c.clone();
        bad.request_timeout_ms = TIMEOUT_MS_MAX + 1;
        assert_eq!(key_of(&bad).key, "crm.webhook.request_timeout_ms");
        let mut bad = c;
        bad.secret_file = Some("/nonexistent/secret".into());
        let err = key_of(&bad);
        assert_eq!(err.key, "crm.webhook.secret_file");
        assert!(err.message.contains("/nonexistent/secret"), "{err}");
    }

    /// Only statuses that may be one record's fault split a batch.
    #[test]
    fn batch_split_statuses() {
        for s in [400, 403, 413, 422, 500] {
            assert!(batch_status_splits(s), "{s}");
        }
        for s in [200, 408, 429, 502, 503, 504] {
            assert!(!batch_status_splits(s), "{s}");
        }
    }
}
