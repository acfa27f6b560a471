//! The bodies a record becomes at ServiceNow: the flat, all-strings
//! staging row of Import Set mode and the Table API row of table mode.

use edgecc_storage::{Record, RecordKind};
use serde_json::{Map, Value};

use super::fields::{glide_datetime, non_empty};
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

/// The staging-table row of a record (import mode): the metadata, the
/// record's body as JSON text in `<prefix>data`, and each of the record's
/// ServiceNow `fields` ([`super::fields`]) as `<prefix><field>`, empty
/// ones included. edgecc's own keys live only in `<prefix>data`.
pub(super) fn import_row(
    record: &Record,
    c: &ServiceNowConfig,
    fields: &Map<String, Value>,
) -> Value {
    let p = &c.import_field_prefix;
    let mut row = Map::new();
    for (field, value) in fields {
        row.insert(format!("{p}{field}"), Value::String(field_text(value)));
    }
    let mut put = |k: String, v: String| {
        row.insert(k, Value::String(v));
    };
    put(format!("{p}data"), field_text(&record_data(record)));
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

/// The Table API body of a record (table mode): its ServiceNow `fields`
/// ([`super::fields`]) that say something, the correlation field on
/// creates and the interaction key on the interaction's create; with a
/// non-empty `table_field_prefix`, also each data key as
/// `<prefix><key>` (custom columns, opt-in). The links are added by the
/// caller.
pub(super) fn table_row(
    record: &Record,
    c: &ServiceNowConfig,
    fields: &Map<String, Value>,
) -> Value {
    let mut row = Map::new();
    if !c.table_field_prefix.is_empty() {
        flatten(&record_data(record), &c.table_field_prefix, &mut row);
    }
    row.extend(non_empty(fields.clone()));
    if record.kind == RecordKind::WorkItemCreate {
        // `awa_work_item` keeps no journal: the note would be dropped.
        row.remove("work_notes");
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
    Value::Object(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row's field names, sorted.
    fn sorted_keys(row: &Value) -> Vec<&str> {
        let mut keys: Vec<&str> = row
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort();
        keys
    }

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

    fn fields(pairs: &[(&str, &str)]) -> Map<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect()
    }

    /// The staging row is the metadata, the body as JSON text and the
    /// ServiceNow fields, prefixed, empty ones included; no data key gets
    /// a column of its own.
    #[test]
    fn import_row_is_metadata_data_and_fields() {
        let c = ServiceNowConfig::with_instance("https://x.service-now.com");
        let r = record(
            RecordKind::InteractionUpdate,
            r#"{"event":"hold","agent":"a1","seq":3}"#,
        );
        let row = import_row(&r, &c, &fields(&[("state", ""), ("work_notes", "n")]));
        let keys = sorted_keys(&row);
        assert_eq!(
            keys,
            vec![
                "u_correlation_id",
                "u_created_at",
                "u_data",
                "u_interaction",
                "u_kind",
                "u_sequence",
                "u_state",
                "u_work_notes"
            ]
        );
        assert_eq!(row["u_correlation_id"], "edge:c-1:x");
        assert_eq!(row["u_kind"], "interaction.update");
        assert_eq!(row["u_interaction"], "c-1");
        assert_eq!(row["u_sequence"], "42");
        assert_eq!(row["u_created_at"], "1970-01-01 00:00:00");
        assert_eq!(row["u_state"], "");
        let data: Value = serde_json::from_str(row["u_data"].as_str().unwrap()).unwrap();
        assert_eq!(data["agent"], "a1");
        assert_eq!(glide_datetime(1_795_278_919_394), "2026-11-21 16:35:19");
        assert_eq!(glide_datetime(951_782_400_999), "2000-02-29 00:00:00");
        let not_json = import_row(&record(RecordKind::PhoneLogCreate, "oops"), &c, &Map::new());
        assert_eq!(not_json["u_data"], "oops");
    }

    /// Table rows carry the non-empty fields, the correlation field on
    /// creates and the interaction key on the interaction create only;
    /// data keys only with a prefix (opt-in).
    #[test]
    fn table_rows_carry_fields_and_correlation() {
        let mut c = ServiceNowConfig::with_instance("https://x.service-now.com");
        let body = r#"{"a":1,"queue":"sales","channel":"phone"}"#;
        let f = fields(&[("type", "phone"), ("queue", "")]);
        let create = table_row(&record(RecordKind::InteractionCreate, body), &c, &f);
        let keys = sorted_keys(&create);
        assert_eq!(
            keys,
            vec!["type", "u_edgecc_call_id", "u_edgecc_correlation_id"]
        );
        assert_eq!(create["u_edgecc_correlation_id"], "edge:c-1:x");
        assert_eq!(create["u_edgecc_call_id"], "c-1");
        let update = table_row(&record(RecordKind::InteractionUpdate, body), &c, &f);
        assert!(update.get("u_edgecc_correlation_id").is_none());
        c.table_field_prefix = "u_x_".into();
        let prefixed = table_row(&record(RecordKind::InteractionUpdate, body), &c, &f);
        assert_eq!(prefixed["u_x_queue"], "sales");
        assert_eq!(prefixed["u_x_a"], "1");
        assert!(prefixed.get("queue").is_none());
    }
}
