//! The CRM side's request/answer plumbing, shared by every CRM adapter:
//! timeouts and their limits, one bounded request/answer exchange
//! ([`exchange`]), `Retry-After`, answer excerpts, and the one
//! classification of an HTTP answer into an [`Outcome`] ([`classify`]) so
//! the sync worker has one rule for all CRMs. The adapters
//! ([`super::webhook`], [`super::servicenow`]) add only what their CRM
//! says beyond the status.

use std::time::{Duration, SystemTime};

use awc::http::header::{HttpDate, RETRY_AFTER};
use edgecc_storage::Record;
use tracing::debug;

use super::Outcome;

/// Default TCP (and TLS handshake) connect timeout, in ms: a CRM on the WAN
/// that cannot accept a connection in 5 s is treated as down.
pub const CONNECT_TIMEOUT_MS_DEFAULT: u64 = 5_000;
/// Default whole-request timeout (send, answer headers and body), in ms.
pub const REQUEST_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Largest timeout accepted for any CRM `*_timeout_ms` key: a longer wait
/// would only hold a record in flight while the breaker should be deciding.
pub const TIMEOUT_MS_MAX: u64 = 300_000;
/// Most bytes of a CRM answer read; the rest is dropped (only the status and
/// an excerpt matter).
pub const ANSWER_BODY_BYTES_MAX: usize = 64 * 1024;
/// Longest excerpt of a CRM's answer kept in a dead letter or log line.
pub const ANSWER_EXCERPT_BYTES_MAX: usize = 512;
/// Longest `Retry-After` honoured, in seconds; a longer one is capped so a
/// mistyped header cannot park the outbox for days.
pub const RETRY_AFTER_SECS_MAX: u64 = 3_600;

/// The first [`ANSWER_EXCERPT_BYTES_MAX`] bytes of an answer body, as text.
pub fn excerpt(body: &[u8]) -> String {
    let cut = &body[..body.len().min(ANSWER_EXCERPT_BYTES_MAX)];
    let mut text = String::from_utf8_lossy(cut).into_owned();
    if body.len() > ANSWER_EXCERPT_BYTES_MAX {
        text.push('…');
    }
    text
}

/// A CRM's answer: status, parsed `Retry-After`, and the first
/// [`ANSWER_BODY_BYTES_MAX`] bytes of the body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status code.
    pub status: u16,
    /// `Retry-After`, as seconds or an HTTP date, capped.
    pub retry_after: Option<Duration>,
    /// The body (empty when it could not be read or was too long).
    pub body: Vec<u8>,
}

/// Why a request got no answer. Every variant means the CRM (or the way
/// to it) is down: [`transport_retry`] turns it into the outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    /// Connection refused or reset, DNS, TLS, or awc's own timeout on the
    /// answer's headers (the text is awc's).
    #[error("{0}")]
    Send(String),
    /// The whole exchange, body included, outlasted the request timeout.
    #[error("timed out after {} ms", .0.as_millis())]
    TimedOut(Duration),
}

/// Awaits a sent request and reads status, `Retry-After` and a bounded
/// body, all within `timeout` (awc's own timeout stops at the answer's
/// headers; this one also covers a body that trickles).
pub async fn exchange(
    send: awc::SendClientRequest,
    timeout: Duration,
) -> Result<Answer, ExchangeError> {
    let work = async {
        let mut resp = send.await.map_err(|e| ExchangeError::Send(e.to_string()))?;
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
        Err(_) => Err(ExchangeError::TimedOut(timeout)),
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
/// | 401, 404, 405 (credentials, URL)         | Retry, crm_down (hold)        |
/// | 1xx, 3xx (misconfigured URL)             | Retry, crm_down               |
/// | other 4xx (400, 403, 422 …)              | Permanent, status + excerpt   |
///
/// 401, 404 and 405 say the endpoint or the credentials are wrong, which
/// holds for every record: delivery waits (the breaker opens) until they
/// are fixed, instead of every record going to the dead letters.
///
/// `link` for a 2xx is the `link` or `url` string of a JSON object answer.
pub fn classify(answer: &Answer, is_create: bool) -> Outcome {
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
pub fn transport_retry(reason: String) -> Outcome {
    Outcome::Retry {
        reason,
        retry_after: None,
        crm_down: true,
    }
}

/// Case-insensitive substring search in a body.
pub fn contains_ignore_case(body: &[u8], needle: &str) -> bool {
    String::from_utf8_lossy(body)
        .to_ascii_lowercase()
        .contains(needle)
}

/// The `link` (or `url`) string of a JSON object answer, if any.
fn answer_link(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let link = v.get("link").or_else(|| v.get("url"))?.as_str()?;
    Some(link.chars().take(ANSWER_EXCERPT_BYTES_MAX).collect())
}

/// Whether a record kind creates a CRM record (so "already exists" means
/// an earlier attempt landed).
pub fn is_create(record: &Record) -> bool {
    record.kind != edgecc_storage::RecordKind::InteractionUpdate
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

    /// An excerpt is cut at its bound and says so.
    #[test]
    fn excerpts_are_bounded() {
        assert_eq!(excerpt(b"short"), "short");
        let long = vec![b'a'; ANSWER_EXCERPT_BYTES_MAX + 10];
        let cut = excerpt(&long);
        assert!(cut.ends_with('…'));
        assert_eq!(cut.chars().count(), ANSWER_EXCERPT_BYTES_MAX + 1);
    }
}
