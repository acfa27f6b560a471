//! The JSON document a record becomes on the wire, for every adapter.
//!
//! ```text
//! {
//!   "id": "edge-01:c-42:interaction.create",   // correlation id = idempotency key
//!   "kind": "interaction.create",              // interaction.create | interaction.update |
//!                                              // phone_log.create | work_item.create
//!   "interaction": "c-42",                     // the interaction (call) it belongs to
//!   "sequence": 1234,                          // outbox sequence: increases with time, so a
//!                                              // receiver never lets an older update win
//!   "created_at": "2026-11-21T16:35:19.394Z",  // when edgecc recorded it (UTC, RFC 3339)
//!   "data": { ... }                            // the record's fields (caller, agent, ...)
//! }
//! ```

use edgecc_storage::Record;
use serde::Serialize;
use serde_json::value::RawValue;

/// One record as sent to a CRM.
#[derive(Debug, Serialize)]
pub struct WireRecord<'a> {
    /// The correlation id: stable per CRM record, the idempotency key.
    pub id: &'a str,
    /// The record kind's stable name.
    pub kind: &'static str,
    /// The interaction key (call id).
    pub interaction: &'a str,
    /// The outbox sequence, for ordering at the receiver.
    pub sequence: u64,
    /// RFC 3339 UTC time the record was made.
    pub created_at: String,
    /// The body as the actors wrote it (JSON), passed through unchanged.
    pub data: &'a RawValue,
}

/// The body of a record that is not valid JSON is sent as a JSON string, so
/// a single bad body never stops delivery of the rest.
fn body_json(record: &Record) -> Box<RawValue> {
    match std::str::from_utf8(&record.body)
        .ok()
        .and_then(|s| RawValue::from_string(s.to_string()).ok())
    {
        Some(raw) => raw,
        None => {
            let text = String::from_utf8_lossy(&record.body);
            let quoted = serde_json::to_string(&*text).unwrap_or_else(|_| "null".to_string());
            RawValue::from_string(quoted).unwrap_or_else(|_| {
                RawValue::from_string("null".to_string()).expect("null is JSON")
            })
        }
    }
}

/// Serialises `record` as its wire document.
pub fn to_json(record: &Record) -> Vec<u8> {
    let data = body_json(record);
    let wire = WireRecord {
        id: &record.correlation_id,
        kind: record.kind.as_str(),
        interaction: &record.interaction_key,
        sequence: record.seq,
        created_at: rfc3339_ms(record.created_at_ms),
        data: &data,
    };
    serde_json::to_vec(&wire).unwrap_or_else(|_| b"{}".to_vec())
}

/// Serialises several records as one JSON array (webhook batch mode).
pub fn to_json_array(records: &[Record]) -> Vec<u8> {
    let mut out = Vec::with_capacity(records.len() * 512);
    out.push(b'[');
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&to_json(r));
    }
    out.push(b']');
    out
}

/// Formats ms since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn rfc3339_ms(ms: u64) -> String {
    crate::clock::utc_ms(ms, "Z")
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgecc_storage::RecordKind;

    fn record(body: &[u8]) -> Record {
        Record {
            seq: 7,
            correlation_id: "edge:c-1:interaction.create".into(),
            interaction_key: "c-1".into(),
            kind: RecordKind::InteractionCreate,
            body: body.to_vec(),
            created_at_ms: 1_795_278_919_394,
            attempts: 0,
            next_attempt_at_ms: 0,
            last_error: None,
        }
    }

    /// Known dates format exactly (epoch, a leap day, the captures' day).
    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_795_278_919_394), "2026-11-21T16:35:19.394Z");
    }

    /// The document has every field, and the body passes through as JSON.
    #[test]
    fn document_carries_every_field() {
        let v: serde_json::Value =
            serde_json::from_slice(&to_json(&record(br#"{"caller":"+1555"}"#))).unwrap();
        assert_eq!(v["id"], "edge:c-1:interaction.create");
        assert_eq!(v["kind"], "interaction.create");
        assert_eq!(v["interaction"], "c-1");
        assert_eq!(v["sequence"], 7);
        assert_eq!(v["created_at"], "2026-11-21T16:35:19.394Z");
        assert_eq!(v["data"]["caller"], "+1555");
    }

    /// A body that is not JSON is sent as a string rather than breaking the
    /// document.
    #[test]
    fn non_json_body_becomes_a_string() {
        let v: serde_json::Value = serde_json::from_slice(&to_json(&record(b"not {json"))).unwrap();
        assert_eq!(v["data"], "not {json");
        let arr: serde_json::Value =
            serde_json::from_slice(&to_json_array(&[record(b"{}"), record(b"[1]")])).unwrap();
        assert_eq!(arr.as_array().unwrap().len(), 2);
    }
}
