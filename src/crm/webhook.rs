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
//! This file also holds the HTTP plumbing both adapters share (client with
//! explicit timeouts and TLS, answer reading, classification, secret files).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use awc::http::header::{HeaderValue, HttpDate, CONTENT_TYPE, RETRY_AFTER};
use edgecc_storage::Record;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tracing::{debug, warn};

use super::{excerpt, wire, CrmAdapter, LocalBoxFuture, Outcome};

/// Default TCP (and TLS handshake) connect timeout, in ms: a CRM on the WAN
/// that cannot accept a connection in 5 s is treated as down.
pub const CONNECT_TIMEOUT_MS_DEFAULT: u64 = 5_000;
/// Default whole-request timeout (send, answer headers and body), in ms.
pub const REQUEST_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Largest timeout accepted for any `*_timeout_ms` key: a longer wait would
/// only hold a record in flight while the breaker should be deciding.
pub const TIMEOUT_MS_MAX: u64 = 300_000;
/// Largest `batch_max`: bounds the request body (100 × 64 KiB records).
pub const BATCH_MAX_LIMIT: usize = 100;
/// Most bytes of a CRM answer read; the rest is dropped (only the status and
/// an excerpt matter).
pub const ANSWER_BODY_BYTES_MAX: usize = 64 * 1024;
/// Largest secret file accepted, in bytes: secrets are short tokens.
pub const SECRET_FILE_BYTES_MAX: u64 = 4 * 1024;
/// Longest `Retry-After` honoured, in seconds; a longer one is capped so a
/// mistyped header cannot park the outbox for days.
pub const RETRY_AFTER_SECS_MAX: u64 = 3_600;
/// Receiver-side replay window for [`verify_signature`], in seconds: the
/// signed timestamp must be within this of the receiver's clock.
pub const SIGNATURE_TOLERANCE_SECS_DEFAULT: u64 = 300;
/// Most pooled connections per adapter (the sync worker's concurrency is
/// bounded anyway; this is the backstop).
pub const CONNECTIONS_MAX: usize = 32;
/// The signature header's name.
pub const SIGNATURE_HEADER: &str = "Edgecc-Signature";
/// The idempotency header's name.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

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

/// Why [`verify_signature`] refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header is not `t=<digits>,v1=<hex>[,v1=<hex>…]`.
    #[error("signature header is malformed")]
    Malformed,
    /// The signed time is further from now than the tolerance (a replay, or
    /// a badly wrong clock on one side).
    #[error("signature timestamp {t} is outside the {tolerance_secs} s tolerance")]
    OutsideTolerance {
        /// The header's `t`.
        t: u64,
        /// The tolerance applied.
        tolerance_secs: u64,
    },
    /// No `v1` value matches the HMAC of this body.
    #[error("signature does not match the body")]
    Mismatch,
}

type HmacSha256 = Hmac<Sha256>;

/// The HMAC-SHA256 of `"<t>.<body>"` under `secret`.
fn mac(secret: &[u8], t: u64, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    let mut m = match HmacSha256::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The `Edgecc-Signature` value for `body` signed at unix time `t`.
pub fn sign(secret: &[u8], t: u64, body: &[u8]) -> String {
    let tag = mac(secret, t, body).finalize().into_bytes();
    let mut hex = String::with_capacity(tag.len() * 2);
    for b in tag {
        hex.push_str(&format!("{b:02x}"));
    }
    format!("t={t},v1={hex}")
}

/// Checks an `Edgecc-Signature` header against `body`: the timestamp must be
/// within `tolerance_secs` of `now_secs` and one `v1` must equal the
/// HMAC-SHA256 of `"<t>.<body>"` (compared in constant time). Several `v1`
/// entries are allowed (key rotation); unknown entries are ignored.
pub fn verify_signature(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now_secs: u64,
    tolerance_secs: u64,
) -> Result<(), SignatureError> {
    let mut t = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match key {
            "t" => {
                if t.is_some() || value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(SignatureError::Malformed);
                }
                t = Some(
                    value
                        .parse::<u64>()
                        .map_err(|_| SignatureError::Malformed)?,
                );
            }
            "v1" => candidates.push(decode_hex(value).ok_or(SignatureError::Malformed)?),
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if t.abs_diff(now_secs) > tolerance_secs {
        return Err(SignatureError::OutsideTolerance { t, tolerance_secs });
    }
    let expected = mac(secret, t, body);
    if candidates
        .iter()
        .any(|c| expected.clone().verify_slice(c).is_ok())
    {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Lower- or upper-case hex to bytes.
fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || s.len() > 128 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Reads a secret from `path` (config key `key`), trimming one trailing
/// newline. Errors name the key and the file.
pub(crate) fn read_secret_file(key: &str, path: &Path) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("key `{key}`: cannot read {}: {e}", path.display()))?;
    if meta.len() > SECRET_FILE_BYTES_MAX {
        return Err(format!(
            "key `{key}`: {} is {} bytes, more than the {SECRET_FILE_BYTES_MAX} a secret may be",
            path.display(),
            meta.len()
        ));
    }
    let mut bytes = std::fs::read(path)
        .map_err(|e| format!("key `{key}`: cannot read {}: {e}", path.display()))?;
    while matches!(bytes.last(), Some(b'\n' | b'\r')) {
        bytes.pop();
    }
    if bytes.is_empty() {
        return Err(format!("key `{key}`: {} is empty", path.display()));
    }
    Ok(bytes)
}

/// Reads a secret file that must be UTF-8 text (passwords, client secrets).
pub(crate) fn read_secret_text(key: &str, path: &Path) -> Result<String, String> {
    String::from_utf8(read_secret_file(key, path)?)
        .map_err(|_| format!("key `{key}`: {} is not UTF-8 text", path.display()))
}

/// Checks a `*_timeout_ms` value.
pub(crate) fn check_timeout(key: &str, ms: u64) -> Result<Duration, String> {
    if ms == 0 || ms > TIMEOUT_MS_MAX {
        return Err(format!(
            "key `{key}`: {ms} ms is outside 1..={TIMEOUT_MS_MAX} ms"
        ));
    }
    Ok(Duration::from_millis(ms))
}

/// Checks a base URL: `http://` or `https://` with a host; answers whether
/// it is https.
pub(crate) fn check_url(key: &str, url: &str) -> Result<bool, String> {
    let uri: awc::http::Uri = url
        .parse()
        .map_err(|e| format!("key `{key}`: `{url}` is not a URL: {e}"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => {
            return Err(format!(
                "key `{key}`: `{url}` must start with http:// or https://"
            ))
        }
    };
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("key `{key}`: `{url}` has no host"));
    }
    Ok(https)
}

/// An HTTP client with every timeout set explicitly, no redirects (a CRM
/// that redirects is misconfigured; following would re-POST elsewhere), and
/// for https a rustls 0.23 (ring) config with the webpki roots.
pub(crate) fn http_client(
    connect_timeout: Duration,
    request_timeout: Duration,
    https: bool,
) -> Result<awc::Client, String> {
    let mut connector = awc::Connector::new()
        .timeout(connect_timeout)
        .handshake_timeout(connect_timeout)
        .limit(CONNECTIONS_MAX);
    if https {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        connector = connector.rustls_0_23(Arc::new(tls));
    }
    Ok(awc::Client::builder()
        .connector(connector)
        .timeout(request_timeout)
        .disable_redirects()
        .finish())
}

/// A CRM's answer: status, parsed `Retry-After`, and the first
/// [`ANSWER_BODY_BYTES_MAX`] bytes of the body.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    /// HTTP status code.
    pub status: u16,
    /// `Retry-After`, as seconds or an HTTP date, capped.
    pub retry_after: Option<Duration>,
    /// The body (empty when it could not be read or was too long).
    pub body: Vec<u8>,
}

/// Awaits a sent request and reads status, `Retry-After` and a bounded
/// body, all within `timeout` (awc's own timeout stops at the answer's
/// headers; this one also covers a body that trickles). A transport failure
/// or the timeout comes back as text.
pub(crate) async fn exchange(
    send: awc::SendClientRequest,
    timeout: Duration,
) -> Result<Answer, String> {
    let work = async {
        let mut resp = send.await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let body = match resp.body().limit(ANSWER_BODY_BYTES_MAX).await {
            Ok(b) => b.to_vec(),
            Err(e) => {
                debug!(status, error = %e, "CRM answer body unreadable; classifying by status.");
                Vec::new()
            }
        };
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    };
    match actix_rt::time::timeout(timeout, work).await {
        Ok(result) => result,
        Err(_) => Err(format!("timed out after {} ms", timeout.as_millis())),
    }
}

/// Parses `Retry-After`: delta seconds or an HTTP date (relative to `now`),
/// capped at [`RETRY_AFTER_SECS_MAX`].
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let secs = if let Ok(secs) = value.parse::<u64>() {
        secs
    } else {
        let date: SystemTime = value.parse::<HttpDate>().ok()?.into();
        date.duration_since(now).map(|d| d.as_secs()).unwrap_or(0)
    };
    Some(Duration::from_secs(secs.min(RETRY_AFTER_SECS_MAX)))
}

/// Classifies an HTTP answer the same way for every CRM:
///
/// | answer                                   | outcome                       |
/// |------------------------------------------|-------------------------------|
/// | 2xx                                      | Delivered                     |
/// | 409 or "already exists" (4xx), create    | Delivered (an earlier attempt landed) |
/// | 409, update                              | Retry (an earlier attempt may be in progress) |
/// | 408, 429, 5xx                            | Retry, crm_down, Retry-After  |
/// | 401, 404, 405 (credentials, URL)         | Retry, crm_down               |
/// | 1xx, 3xx (misconfigured URL)             | Retry, crm_down               |
/// | other 4xx (400, 403, 422 …)              | Permanent, status + excerpt   |
///
/// 401, 404 and 405 say the endpoint or the credentials are wrong, which
/// holds for every record: delivery waits (the breaker opens) until they
/// are fixed, instead of every record going to the dead letters.
///
/// `link` for a 2xx is the `link` or `url` string of a JSON object answer.
pub(crate) fn classify(answer: &Answer, is_create: bool) -> Outcome {
    let status = answer.status;
    match status {
        200..=299 => Outcome::Delivered {
            link: answer_link(&answer.body),
        },
        409 if is_create => Outcome::Delivered { link: None },
        409 => Outcome::Retry {
            reason: format!("HTTP 409: {}", excerpt(&answer.body)),
            retry_after: answer.retry_after,
            crm_down: false,
        },
        408 | 429 | 500..=599 => Outcome::Retry {
            reason: format!("HTTP {status}: {}", excerpt(&answer.body)),
            retry_after: answer.retry_after,
            crm_down: true,
        },
        401 | 404 | 405 => Outcome::Retry {
            reason: format!(
                "HTTP {status} (check the CRM's URL and credentials): {}",
                excerpt(&answer.body)
            ),
            retry_after: None,
            crm_down: true,
        },
        400..=499 => {
            if is_create && contains_ignore_case(&answer.body, "already exists") {
                Outcome::Delivered { link: None }
            } else {
                Outcome::Permanent {
                    status,
                    reason: excerpt(&answer.body),
                }
            }
        }
        _ => Outcome::Retry {
            reason: format!("unexpected HTTP {status}: {}", excerpt(&answer.body)),
            retry_after: None,
            crm_down: true,
        },
    }
}

/// A transport failure (refused, reset, DNS, TLS, timeout): the CRM is down.
pub(crate) fn transport_retry(reason: String) -> Outcome {
    Outcome::Retry {
        reason,
        retry_after: None,
        crm_down: true,
    }
}

/// Case-insensitive substring search in a body.
pub(crate) fn contains_ignore_case(body: &[u8], needle: &str) -> bool {
    String::from_utf8_lossy(body)
        .to_ascii_lowercase()
        .contains(needle)
}

/// The `link` (or `url`) string of a JSON object answer, if any.
fn answer_link(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let link = v.get("link").or_else(|| v.get("url"))?.as_str()?;
    Some(link.chars().take(super::ANSWER_EXCERPT_BYTES_MAX).collect())
}

/// Whether a record kind creates a CRM record (so "already exists" means
/// an earlier attempt landed).
pub(crate) fn is_create(record: &Record) -> bool {
    record.kind != edgecc_storage::RecordKind::InteractionUpdate
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
    pub fn check(config: &WebhookConfig) -> Result<(), String> {
        check_url("crm.webhook.url", &config.url)?;
        check_timeout("crm.webhook.connect_timeout_ms", config.connect_timeout_ms)?;
        check_timeout("crm.webhook.request_timeout_ms", config.request_timeout_ms)?;
        if config.batch_max == 0 || config.batch_max > BATCH_MAX_LIMIT {
            return Err(format!(
                "key `crm.webhook.batch_max`: {} is outside 1..={BATCH_MAX_LIMIT}",
                config.batch_max
            ));
        }
        Ok(())
    }

    /// Validates `config`, reads the secret file and builds the client.
    /// Errors name the key (`crm.webhook.<key>`).
    pub fn new(config: &WebhookConfig) -> Result<Self, String> {
        Self::check(config)?;
        let https = check_url("crm.webhook.url", &config.url)?;
        let connect = check_timeout("crm.webhook.connect_timeout_ms", config.connect_timeout_ms)?;
        let request = check_timeout("crm.webhook.request_timeout_ms", config.request_timeout_ms)?;
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

    /// POSTs `body`, with `Idempotency-Key` when given; the answer or the
    /// transport failure as text.
    async fn post(&self, body: Vec<u8>, key: Option<&str>) -> Result<Answer, String> {
        let mut req = self
            .client
            .post(&self.url)
            .insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")));
        if let Some(key) = key {
            let value = HeaderValue::from_str(key)
                .map_err(|_| "correlation id is not a valid header value".to_string())?;
            req = req.insert_header((IDEMPOTENCY_HEADER, value));
        }
        if let Some(secret) = &self.secret {
            let t = crate::clock::now_ms() / 1000;
            req = req.insert_header((SIGNATURE_HEADER, sign(secret, t, &body)));
        }
        exchange(req.send_body(body), self.request_timeout).await
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
            Err(reason) if reason.starts_with("correlation id") => {
                Outcome::Permanent { status: 0, reason }
            }
            Err(reason) => {
                debug!(correlation_id = %record.correlation_id, %reason, "Webhook unreachable.");
                transport_retry(reason)
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
            Err(reason) => vec![transport_retry(reason); records.len()],
        }
    }
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

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            retry_after: None,
            body: body.as_bytes().to_vec(),
        }
    }

    /// A signature made by `sign` verifies; a changed body, an old stamp, a
    /// malformed header and a wrong key are each refused with their reason.
    #[test]
    fn signature_round_trip_and_refusals() {
        let h = sign(b"k", 1_000, b"{}");
        assert_eq!(verify_signature(b"k", &h, b"{}", 1_100, 300), Ok(()));
        assert_eq!(
            verify_signature(b"k", &h, b"{ }", 1_000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(b"other", &h, b"{}", 1_000, 300),
            Err(SignatureError::Mismatch)
        );
        assert!(matches!(
            verify_signature(b"k", &h, b"{}", 1_301, 300),
            Err(SignatureError::OutsideTolerance { t: 1_000, .. })
        ));
        for bad in ["", "t=1", "v1=00", "t=x,v1=00", "t=1,v1=zz", "garbage"] {
            assert_eq!(
                verify_signature(b"k", bad, b"{}", 1, 300),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
        // Key rotation: any matching v1 is enough.
        let rotated = format!("t=1000,v1=00ff,{}", &h["t=1000,".len()..]);
        assert_eq!(verify_signature(b"k", &rotated, b"{}", 1_000, 0), Ok(()));
    }

    /// The worked example in the README is what `sign` computes.
    #[test]
    fn readme_worked_example() {
        assert_eq!(
            sign(b"whsec_test", 1_795_278_919, br#"{"id":"x"}"#),
            "t=1795278919,v1=58056508e65ec1b6b799e0c38a4cf75390d5f1b94081645b38cf28079aae6242"
        );
    }

    /// Each status class lands in the documented outcome.
    #[test]
    fn classification_table() {
        assert_eq!(
            classify(&answer(201, r#"{"link":"https://crm/x/1"}"#), true),
            Outcome::Delivered {
                link: Some("https://crm/x/1".into())
            }
        );
        assert_eq!(
            classify(&answer(409, ""), true),
            Outcome::Delivered { link: None }
        );
        assert!(matches!(
            classify(&answer(409, ""), false),
            Outcome::Retry {
                crm_down: false,
                ..
            }
        ));
        for s in [401, 404, 405] {
            assert!(matches!(
                classify(&answer(s, ""), false),
                Outcome::Retry { crm_down: true, .. }
            ));
        }
        assert_eq!(
            classify(&answer(422, "Record ALREADY EXISTS"), true),
            Outcome::Delivered { link: None }
        );
        assert!(matches!(
            classify(&answer(422, "already exists"), false),
            Outcome::Permanent { status: 422, .. }
        ));
        for s in [408, 429, 500, 503] {
            assert!(matches!(
                classify(&answer(s, ""), true),
                Outcome::Retry { crm_down: true, .. }
            ));
        }
        assert_eq!(
            classify(&answer(403, "denied"), true),
            Outcome::Permanent {
                status: 403,
                reason: "denied".into()
            }
        );
        assert!(matches!(
            classify(&answer(301, ""), true),
            Outcome::Retry { crm_down: true, .. }
        ));
    }

    /// Retry-After is read as seconds or as an HTTP date, and capped.
    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:57 GMT", now),
            Some(Duration::from_secs(20))
        );
        assert_eq!(
            parse_retry_after("999999", now),
            Some(Duration::from_secs(RETRY_AFTER_SECS_MAX))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    /// Config errors name the key; defaults fill omitted keys; unknown keys
    /// are refused.
    #[test]
    fn config_checks_name_the_key() {
        let c: WebhookConfig = toml::from_str(r#"url = "http://127.0.0.1:9/x""#).unwrap();
        assert_eq!(c.request_timeout_ms, REQUEST_TIMEOUT_MS_DEFAULT);
        assert_eq!(c.batch_max, 1);
        assert!(toml::from_str::<WebhookConfig>("url = \"http://a\"\nsecret = \"x\"").is_err());
        let mut bad = c.clone();
        bad.url = "ftp://x".into();
        assert!(WebhookAdapter::new(&bad)
            .unwrap_err()
            .contains("crm.webhook.url"));
        let mut bad = c.clone();
        bad.batch_max = 0;
        assert!(WebhookAdapter::new(&bad)
            .unwrap_err()
            .contains("crm.webhook.batch_max"));
        let mut bad = c;
        bad.secret_file = Some("/nonexistent/secret".into());
        let err = WebhookAdapter::new(&bad).unwrap_err();
        assert!(err.contains("crm.webhook.secret_file") && err.contains("/nonexistent/secret"));
    }
}
