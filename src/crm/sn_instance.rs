//! What the CRM emulator knows of a ServiceNow instance, so it answers the
//! way a real instance does: which tables exist and their fields (the
//! dictionary), the transform maps behind each Import Set staging table,
//! how an encoded query is read (a term on a field the table lacks is
//! dropped, not failed), and ServiceNow's error bodies.
//!
//! Everything here is plain data and pure functions; the HTTP handlers in
//! [`super::emulator`] use them.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::servicenow::is_sys_id;

/// The phone-log table OpenFrame installs (`sn_openframe_phone_log`; one
/// line of ServiceNow's openframe API page misspells it).
pub const PHONE_LOG_TABLE: &str = "sn_openframe_phone_log";
/// The Advanced Work Assignment work-item table.
pub const AWA_WORK_ITEM_TABLE: &str = "awa_work_item";
/// The Advanced Work Assignment queue table.
pub const AWA_QUEUE_TABLE: &str = "awa_queue";
/// The user table (`assigned_to` references it).
pub const USER_TABLE: &str = "sys_user";

/// Fields every table has.
const SYSTEM_FIELDS: &[&str] = &[
    "sys_id",
    "sys_created_on",
    "sys_updated_on",
    "sys_created_by",
    "sys_updated_by",
];

/// Fields of `interaction` (it does not extend `task`: no
/// `correlation_id`), plus the custom columns of deploy/servicenow.
const INTERACTION_FIELDS: &[&str] = &[
    "number",
    "type",
    "state",
    "channel",
    "queue",
    "opened_for",
    "assigned_to",
    "caller_phone_number",
    "direction",
    "short_description",
    "channel_metadata_table",
    "channel_metadata_document",
    "opened_at",
    "closed_at",
    "work_notes",
    "u_edgecc_correlation_id",
    "u_edgecc_call_id",
    "u_edgecc_sequence",
];

/// Fields of `sn_openframe_phone_log` (`contact` and `agent` reference
/// `sys_user`: ServiceNow's sample OpenFrame handler sets `contact`), plus
/// the custom correlation column.
const PHONE_LOG_FIELDS: &[&str] = &[
    "call_id",
    "direction",
    "phone_number",
    "contact",
    "agent",
    "duration",
    "start_time",
    "end_time",
    "u_edgecc_correlation_id",
];

/// Fields of `awa_work_item`, plus the custom correlation column.
const AWA_WORK_ITEM_FIELDS: &[&str] = &[
    "document_table",
    "document_id",
    "queue",
    "state",
    "active",
    "assigned_to",
    "u_edgecc_correlation_id",
];

/// Fields of `awa_queue`, as far as the emulator needs them.
const AWA_QUEUE_FIELDS: &[&str] = &["name", "active"];

/// Fields of `sys_user`, as far as the emulator needs them (the three
/// phone fields ServiceNow's sample OpenFrame handler finds a caller by).
const USER_FIELDS: &[&str] = &[
    "user_name",
    "email",
    "name",
    "active",
    "phone",
    "mobile_phone",
    "home_phone",
];

/// Fields of `task` (the old default work-item table; kept so an instance
/// configured for it still answers).
const TASK_FIELDS: &[&str] = &[
    "number",
    "state",
    "short_description",
    "correlation_id",
    "correlation_display",
    "assigned_to",
];

/// One table of the emulated instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDef {
    /// Its fields; `None`: any field is accepted and added (a web-service
    /// import set's staging table, which grows a column per new key).
    pub fields: Option<Vec<String>>,
    /// Import Set staging tables: the target table of each transform map,
    /// in map order (empty: staged only, never transformed).
    pub maps: Vec<String>,
}

impl TableDef {
    /// A target table with `fields` (the system fields added).
    pub fn target(fields: &[&str]) -> TableDef {
        let mut all: Vec<String> = SYSTEM_FIELDS.iter().map(|f| f.to_string()).collect();
        all.extend(fields.iter().map(|f| f.to_string()));
        TableDef {
            fields: Some(all),
            maps: Vec::new(),
        }
    }

    /// A staging table whose rows are transformed into `targets`.
    pub fn staging(targets: &[&str]) -> TableDef {
        TableDef {
            fields: None,
            maps: targets.iter().map(|t| t.to_string()).collect(),
        }
    }

    /// Whether the table has `field`.
    pub fn has(&self, field: &str) -> bool {
        self.fields
            .as_ref()
            .is_none_or(|f| f.iter().any(|x| x == field))
    }
}

/// The instance the emulator plays by default: the CCaaS tables, the three
/// staging tables of deploy/servicenow with their maps, `task`, the AWA
/// queues and `sys_user`.
pub fn default_tables() -> BTreeMap<String, TableDef> {
    let mut t = BTreeMap::new();
    t.insert("interaction".into(), TableDef::target(INTERACTION_FIELDS));
    t.insert(PHONE_LOG_TABLE.into(), TableDef::target(PHONE_LOG_FIELDS));
    t.insert(
        AWA_WORK_ITEM_TABLE.into(),
        TableDef::target(AWA_WORK_ITEM_FIELDS),
    );
    t.insert("task".into(), TableDef::target(TASK_FIELDS));
    t.insert(AWA_QUEUE_TABLE.into(), TableDef::target(AWA_QUEUE_FIELDS));
    t.insert(USER_TABLE.into(), TableDef::target(USER_FIELDS));
    t.insert(
        "u_edgecc_interaction_import".into(),
        TableDef::staging(&["interaction"]),
    );
    t.insert(
        "u_edgecc_phone_log_import".into(),
        TableDef::staging(&[PHONE_LOG_TABLE]),
    );
    t.insert(
        "u_edgecc_work_item_import".into(),
        TableDef::staging(&[AWA_WORK_ITEM_TABLE]),
    );
    t
}

/// The dictionary table: one row per (table, field).
pub const DICTIONARY_TABLE: &str = "sys_dictionary";

/// `sys_dictionary`'s own fields, as far as the emulator answers them.
pub fn dictionary_def() -> TableDef {
    TableDef::target(&["name", "element"])
}

/// The rows of `sys_dictionary` for `tables` (staging tables, which take
/// any field, have none).
pub fn dictionary_rows(tables: &BTreeMap<String, TableDef>) -> Vec<Map<String, Value>> {
    let mut rows = Vec::new();
    for (name, def) in tables {
        for field in def.fields.iter().flatten() {
            let mut row = Map::new();
            row.insert("sys_id".into(), Value::String(format!("{name}.{field}")));
            row.insert("name".into(), Value::String(name.clone()));
            row.insert("element".into(), Value::String(field.clone()));
            rows.push(row);
        }
    }
    rows
}

/// ServiceNow's error body: `{"error":{"message","detail"},"status":"failure"}`.
pub fn error_body(message: &str, detail: Option<&str>) -> Value {
    json!({"error": {"message": message, "detail": detail}, "status": "failure"})
}

/// The message ServiceNow answers (with HTTP 400) for a table it lacks.
pub fn invalid_table_message(table: &str) -> String {
    format!("Invalid table {table}")
}

/// One condition of an encoded query: `field=value` alternatives, any of
/// which matches (`a=1^ORb=2`).
pub type QueryTerm = Vec<(String, String)>;

/// The conditions of an encoded query that the table can answer: terms
/// are split on `^` (`^^` is a literal caret), a term starting `OR` is an
/// alternative of the condition before it, and all conditions must hold.
/// A term on a field the table lacks is dropped (an `OR` alternative as an
/// `AND` term), as GlideRecord does with
/// `glide.invalid_query.returns_no_rows = false` (the default); a
/// condition left with no alternative is dropped. Terms that are not
/// `field=value` are dropped too.
pub fn query_terms(query: &str, table: &TableDef) -> Vec<QueryTerm> {
    const CARET: &str = "\u{0}";
    let mut conditions: Vec<QueryTerm> = Vec::new();
    for term in query.replace("^^", CARET).split('^') {
        let (or, term) = match term.strip_prefix("OR") {
            Some(rest) => (true, rest),
            None => (false, term),
        };
        if !or || conditions.is_empty() {
            conditions.push(Vec::new());
        }
        let Some((field, value)) = term.split_once('=') else {
            continue;
        };
        if table.has(field) {
            if let Some(last) = conditions.last_mut() {
                last.push((field.to_string(), value.replace(CARET, "^")));
            }
        }
    }
    conditions.retain(|c| !c.is_empty());
    conditions
}

/// Whether `fields` match every condition (one alternative of each).
pub fn matches(fields: &Map<String, Value>, terms: &[QueryTerm]) -> bool {
    terms.iter().all(|alternatives| {
        alternatives
            .iter()
            .any(|(f, v)| fields.get(f).and_then(Value::as_str) == Some(v.as_str()))
    })
}

/// Reference fields the emulator checks, as (table, field): ServiceNow
/// keeps a sys_id in them, and stores anything else as a broken reference.
const REFERENCE_FIELDS: &[(&str, &str)] = &[
    ("interaction", "channel"),
    ("interaction", "queue"),
    ("interaction", "opened_for"),
    ("interaction", "assigned_to"),
    ("interaction", "channel_metadata_document"),
    (PHONE_LOG_TABLE, "contact"),
    (PHONE_LOG_TABLE, "agent"),
    (AWA_WORK_ITEM_TABLE, "queue"),
    (AWA_WORK_ITEM_TABLE, "assigned_to"),
    (AWA_WORK_ITEM_TABLE, "document_id"),
    ("task", "assigned_to"),
];

/// The reference fields of `table` in `fields` whose value is neither
/// empty nor a sys_id (what a real instance would store as a broken
/// reference), as `field=value`.
pub fn invalid_references(table: &str, fields: &Map<String, Value>) -> Vec<String> {
    fields
        .iter()
        .filter(|(k, _)| REFERENCE_FIELDS.contains(&(table, k.as_str())))
        .filter(|(_, v)| match v {
            Value::String(s) => !s.is_empty() && !is_sys_id(s),
            Value::Null => false,
            _ => true,
        })
        .map(|(k, v)| format!("{k}={v}"))
        .collect()
}

/// `fields` without the keys `table` lacks (the Table API ignores them).
pub fn known_fields(fields: Map<String, Value>, table: &TableDef) -> Map<String, Value> {
    split_fields(fields, table).0
}

/// `fields` split into those `table` has and the names of those it lacks
/// (which a write drops without a word).
pub fn split_fields(
    fields: Map<String, Value>,
    table: &TableDef,
) -> (Map<String, Value>, Vec<String>) {
    let mut dropped = Vec::new();
    let kept = fields
        .into_iter()
        .filter(|(k, _)| {
            let has = table.has(k);
            if !has {
                dropped.push(k.clone());
            }
            has
        })
        .collect();
    (kept, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only a sys_id (or nothing) is a valid reference.
    #[test]
    fn invalid_references_are_found() {
        let row = json!({"queue": "sales", "channel": "0123456789abcdef0123456789abcdef",
                         "assigned_to": "", "state": "new"});
        let row = row.as_object().unwrap();
        assert_eq!(
            invalid_references("interaction", row),
            vec!["queue=\"sales\""]
        );
        assert!(invalid_references("sn_openframe_phone_log", row).is_empty());
    }

    /// A term on a missing field is dropped; `^^` stays a caret.
    #[test]
    fn unknown_query_terms_are_dropped() {
        let tables = default_tables();
        let interaction = &tables["interaction"];
        let term = |f: &str, v: &str| (f.to_string(), v.to_string());
        assert_eq!(
            query_terms("correlation_id=x^u_edgecc_call_id=a^^b", interaction),
            vec![vec![term("u_edgecc_call_id", "a^b")]]
        );
        assert!(query_terms("correlation_id=x", interaction).is_empty());
        // `^OR` alternatives; one on a missing field is dropped.
        let users = &tables[USER_TABLE];
        let q = query_terms("phone=1^ORu_fax=1^ORhome_phone=1^active=true", users);
        assert_eq!(
            q,
            vec![
                vec![term("phone", "1"), term("home_phone", "1")],
                vec![term("active", "true")]
            ]
        );
        let row = |k: &str| {
            let mut m = Map::new();
            m.insert(k.into(), "1".into());
            m.insert("active".into(), "true".into());
            m
        };
        assert!(matches(&row("home_phone"), &q));
        assert!(!matches(&row("mobile_phone"), &q));
        // A write's keys the table lacks are named.
        let (kept, dropped) = split_fields(row("u_fax"), users);
        assert_eq!(dropped, vec!["u_fax".to_string()]);
        assert!(kept.contains_key("active"));
        let staging = &tables["u_edgecc_phone_log_import"];
        assert!(staging.has("u_anything"));
    }
}
