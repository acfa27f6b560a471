//! What a ServiceNow answer says beyond its status: a 2xx whose body
//! reports `"status": "failure"`, the `result` of a Table API answer, and
//! the marker words that tell a permanent refusal from a busy instance.

use serde_json::Value;

use super::super::transport::{excerpt, Answer};
use super::super::Outcome;

/// Words in a FAILURE body's message that mean the record will never be
/// accepted as it is (matched case-insensitively).
pub const PERMANENT_MARKERS: &[&str] = &[
    "acl",
    "not authorized",
    "insufficient rights",
    "access denied",
    "invalid table",
    "data policy",
    "mandatory",
    // The openframe API's FAILURE for a missing parameter
    // ("userPhoneNumber is required"): the same body fails every time.
    "required",
];
/// Words in an import row's `error_message` that mean the instance was busy
/// rather than the row wrong (matched case-insensitively).
pub const TRANSIENT_MARKERS: &[&str] = &[
    "timeout",
    "timed out",
    "try again",
    "temporarily",
    "lock",
    "busy",
    "unavailable",
    "maximum execution time",
];
/// Whether `text` has a word starting with `marker` (ASCII case ignored):
/// "ACL" and "ACLs" mention "acl", "Oracle" does not; "locked" mentions
/// "lock", "blocked" does not.
pub(super) fn mentions(text: &str, marker: &str) -> bool {
    let text = text.to_ascii_lowercase();
    text.match_indices(marker).any(|(at, _)| {
        !text[..at]
            .chars()
            .next_back()
            .is_some_and(char::is_alphanumeric)
    })
}

/// A 2xx body that says `"status": "failure"`: the outcome it means.
pub(super) fn failure_body(answer: &Answer) -> Option<Outcome> {
    let parsed: Value = serde_json::from_slice(&answer.body).ok()?;
    let status = parsed.get("status")?.as_str()?;
    if !status.eq_ignore_ascii_case("failure") {
        return None;
    }
    let error = parsed.get("error");
    let part = |k: &str| {
        error
            .and_then(|e| e.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    let message = format!("FAILURE: {} {}", part("message"), part("detail"));
    let message = excerpt(message.trim().as_bytes());
    if PERMANENT_MARKERS.iter().any(|m| mentions(&message, m)) {
        Some(Outcome::Permanent {
            status: answer.status,
            reason: message,
        })
    } else {
        Some(Outcome::Retry {
            reason: message,
            retry_after: answer.retry_after,
            crm_down: false,
        })
    }
}

/// The message of ServiceNow's `400 {"error":{"message":"Invalid table
/// …"}}`, the answer to a table (or staging table) the instance lacks.
pub(super) fn invalid_table(answer: &Answer) -> Option<String> {
    if answer.status != 400 {
        return None;
    }
    let parsed: Value = serde_json::from_slice(&answer.body).ok()?;
    let message = parsed.get("error")?.get("message")?.as_str()?;
    message
        .to_ascii_lowercase()
        .starts_with("invalid table")
        .then(|| excerpt(message.as_bytes()))
}

/// `result.sys_id` of a Table API answer.
pub(super) fn result_sys_id(body: &[u8]) -> Option<String> {
    Some(result_object(body)?.get("sys_id")?.as_str()?.to_string())
}

/// The `result` object of a Table API answer, if the body is one.
pub(super) fn result_object(body: &[u8]) -> Option<serde_json::Map<String, Value>> {
    let parsed: Value = serde_json::from_slice(body).ok()?;
    match parsed {
        Value::Object(mut top) => match top.remove("result")? {
            Value::Object(result) => Some(result),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Markers match whole words from their start, not inside words.
    #[test]
    fn markers_match_words_not_fragments() {
        assert!(mentions("Operation Failed: ACL restricts it", "acl"));
        assert!(mentions("ACLs forbid", "acl"));
        assert!(!mentions("Oracle connector error", "acl"));
        assert!(mentions("row locked by another transaction", "lock"));
        assert!(!mentions("Insert blocked by business rule", "lock"));
        assert!(mentions("Timeout", "timeout"));
        assert!(!mentions("", "acl"));
    }

    /// A FAILURE body is permanent when it names an ACL, else retried.
    #[test]
    fn failure_bodies() {
        let a = |body: &str| Answer {
            status: 200,
            retry_after: None,
            body: body.as_bytes().to_vec(),
        };
        assert!(failure_body(&a(r#"{"result":{}}"#)).is_none());
        assert!(matches!(
            failure_body(&a(
                r#"{"status":"failure","error":{"message":"Operation failed","detail":"ACL restricts the record"}}"#
            )),
            Some(Outcome::Permanent { status: 200, .. })
        ));
        assert!(matches!(
            failure_body(&a(
                r#"{"status":"FAILURE","error":{"message":"Script timed out"}}"#
            )),
            Some(Outcome::Retry {
                crm_down: false,
                ..
            })
        ));
    }

    /// Only a 400 whose error message starts "Invalid table" is one.
    #[test]
    fn invalid_table_answers() {
        let a = |status: u16, body: &str| Answer {
            status,
            retry_after: None,
            body: body.as_bytes().to_vec(),
        };
        let body = r#"{"error":{"message":"Invalid table sn_open_frame_phone_log","detail":null},"status":"failure"}"#;
        assert_eq!(
            invalid_table(&a(400, body)).as_deref(),
            Some("Invalid table sn_open_frame_phone_log")
        );
        assert_eq!(invalid_table(&a(403, body)), None);
        assert_eq!(
            invalid_table(&a(400, r#"{"error":{"message":"Bad"}}"#)),
            None
        );
    }

    /// `result.sys_id` is read from a Table API answer and nothing else.
    #[test]
    fn result_sys_id_of_answers() {
        assert_eq!(
            result_sys_id(br#"{"result":{"sys_id":"abc"}}"#).as_deref(),
            Some("abc")
        );
        assert_eq!(result_sys_id(br#"{"result":[{"sys_id":"abc"}]}"#), None);
        assert_eq!(result_sys_id(b"<html>maintenance</html>"), None);
    }
}
