//! The bodies a record becomes at ServiceNow: the flat, all-strings
//! staging row of Import Set mode and the Table API row of table mode.

use edgecc_storage::{Record, RecordKind};
use serde_json::{Map, Value};

use super::references::REFERENCE_KEYS;
use super::states::{create_state, update_state};
use super::ServiceNowConfig;

/// The record's body as JSON (a body that is not JSON becomes a string).
fn record_data(record: &Record) -> Value {
    serde_json::from_slice(&record.body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&record.body).into_owned()))
}

/// A field name from a data key: lower-cased, other than `[a-z0-9_]` → `_`.
fn field_name(prefix: &str, key: &str) -> String {
    let mut name = String::with_capacity(prefix.len() + key.len());
    name.push_str(prefix);
    name.extend(key.chars().map(|c| {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
            c
        } else {
            '_'
        }
    }));
    name
}

/// A JSON value as ServiceNow field text.
fn field_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(_) | Value::Number(_) => value.to_string(),
        Value::Array(_) | Value::Object(_) => value.to_string(),
    }
}

/// Flattens `data` one level into `<prefix><key>` string fields.
fn flatten(data: &Value, prefix: &str, out: &mut Map<String, Value>) {
    match data {
        Value::Object(fields) => {
            for (k, v) in fields {
                out.insert(field_name(prefix, k), Value::String(field_text(v)));
            }
        }
        other => {
            out.insert(field_name(prefix, "data"), Value::String(field_text(other)));
        }
    }
}

/// An instant in ServiceNow's internal date-time format,
/// `yyyy-MM-dd HH:mm:ss` in UTC (what a transform map reads without a
/// per-field date format, and what the Table API stores).
pub(super) fn glide_datetime(ms: u64) -> String {
    crate::clock::timestamp(ms)
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// The staging-table row of a record (import mode).
pub(super) fn import_row(record: &Record, c: &ServiceNowConfig) -> Value {
    let mut row = Map::new();
    flatten(&record_data(record), &c.import_field_prefix, &mut row);
    let p = &c.import_field_prefix;
    let mut put = |k: String, v: String| {
        row.insert(k, Value::String(v));
    };
    put(
        c.import_correlation_field.clone(),
        record.correlation_id.clone(),
    );
    put(format!("{p}kind"), record.kind.as_str().to_string());
    put(format!("{p}interaction"), record.interaction_key.clone());
    put(c.import_sequence_field.clone(), record.seq.to_string());
    put(
        format!("{p}created_at"),
        glide_datetime(record.created_at_ms),
    );
    Value::Object(row)
}

/// The Table API body of a record (table mode).
pub(super) fn table_row(record: &Record, c: &ServiceNowConfig) -> Value {
    let mut row = Map::new();
    flatten(&record_data(record), &c.table_field_prefix, &mut row);
    // Never an edgecc string in a reference field: the adapter adds the
    // configured sys_ids ([`super::references`]).
    for key in REFERENCE_KEYS {
        row.remove(*key);
    }
    if record.kind != RecordKind::InteractionUpdate {
        row.insert(
            c.table_correlation_field.clone(),
            Value::String(record.correlation_id.clone()),
        );
    }
    if record.kind == RecordKind::InteractionCreate {
        row.insert(
            c.table_interaction_key_field.clone(),
            Value::String(record.interaction_key.clone()),
        );
    }
    // The interaction's own fields, whatever the prefix: ServiceNow's
    // `state` choice, and `type` on the create.
    if let Value::Object(data) = record_data(record) {
        match record.kind {
            RecordKind::InteractionCreate => {
                let reason = data.get("reason").and_then(Value::as_str).unwrap_or("");
                row.insert("type".into(), "phone".into());
                row.insert("state".into(), create_state(reason).into());
            }
            RecordKind::InteractionUpdate => {
                if let Some(state) = update_state(&data) {
                    row.insert("state".into(), state.into());
                }
            }
            _ => {}
        }
    }
    Value::Object(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: RecordKind, body: &str) -> Record {
        Record {
            seq: 42,
            correlation_id: "edge:c-1:x".into(),
            interaction_key: "c-1".into(),
            kind,
            body: body.as_bytes().to_vec(),
            created_at_ms: 0,
            attempts: 0,
            next_attempt_at_ms: 0,
            last_error: None,
        }
    }

    /// The staging row is flat, all strings, prefixed, with the metadata
    /// winning over a data key of the same name.
    #[test]
    fn import_row_is_flat_strings() {
        let c = ServiceNowConfig::with_instance("https://x.service-now.com");
        let r = record(
            RecordKind::InteractionUpdate,
            r#"{"Caller-ANI":"+1555","n":3,"vip":true,"tags":["a"],"x":null,"kind":"evil"}"#,
        );
        let row = import_row(&r, &c);
        assert_eq!(row["u_correlation_id"], "edge:c-1:x");
        assert_eq!(row["u_kind"], "interaction.update");
        assert_eq!(row["u_interaction"], "c-1");
        assert_eq!(row["u_sequence"], "42");
        assert_eq!(row["u_created_at"], "1970-01-01 00:00:00");
        assert_eq!(glide_datetime(1_795_278_919_394), "2026-11-21 16:35:19");
        assert_eq!(glide_datetime(951_782_400_999), "2000-02-29 00:00:00");
        assert_eq!(row["u_caller_ani"], "+1555");
        assert_eq!(row["u_n"], "3");
        assert_eq!(row["u_vip"], "true");
        assert_eq!(row["u_tags"], r#"["a"]"#);
        assert_eq!(row["u_x"], "");
        let not_json = import_row(&record(RecordKind::PhoneLogCreate, "oops"), &c);
        assert_eq!(not_json["u_data"], "oops");
    }

    /// Table rows carry the correlation field on creates and the
    /// interaction key on the interaction create only; edgecc's `queue`
    /// and `channel` strings never reach the reference fields.
    #[test]
    fn table_rows_carry_correlation() {
        let c = ServiceNowConfig::with_instance("https://x.service-now.com");
        let create = table_row(
            &record(
                RecordKind::InteractionCreate,
                r#"{"a":1,"queue":"sales","channel":"phone"}"#,
            ),
            &c,
        );
        assert_eq!(create["u_edgecc_correlation_id"], "edge:c-1:x");
        assert!(create.get("queue").is_none() && create.get("channel").is_none());
        assert_eq!(create["u_edgecc_call_id"], "c-1");
        assert_eq!(create["a"], "1");
        let update = table_row(&record(RecordKind::InteractionUpdate, r#"{"a":1}"#), &c);
        assert!(update.get("u_edgecc_correlation_id").is_none());
    }
}
