//! ServiceNow's transform of an Import Set row, as the emulator plays it,
//! read from the update set edgecc ships
//! (`deploy/servicenow/edgecc_update_set.xml`, compiled in): the staging
//! columns and their lengths, each transform map's field maps (coalesce,
//! choice action) and its scripts. The emulator and the install cannot
//! drift: a field the update set does not map never reaches a target.
//!
//! What a transform does, per ServiceNow's docs (`ServiceNow/ServiceNowDocs`,
//! `markdown/application-development/servicenow-sdk/fluent-import-sets-api.md`):
//! - only the field maps' targets are written, and only fields the target
//!   table has;
//! - an empty source value is not copied ("copyEmptyFields … Default:
//!   false");
//! - the coalesce fields find the row to update; all of them empty: the row
//!   is skipped (`createOnEmptyCoalesce`, default false); an update that
//!   changes nothing is `ignored`, "No field values changed"
//!   (`api-reference/web-services/r_InsertMultiple.md`);
//! - a choice or reference value the instance does not have follows the
//!   field map's choice action: `ignore` leaves that field, `reject` skips
//!   the row ("Skip the entire row"), `create` (and no action) writes it;
//! - a staging value longer than its column is truncated (web-service
//!   import sets; `com.glide.loader.verify_target_field_size`,
//!   `platform-administration/r_AvailableSystemProperties.md`).
//!
//! The emulator cannot run JavaScript: each shipped script names itself
//! (`// edgecc script: <name>`) and [`ScriptKind`] plays that name's effect.
//! A script without a name the emulator knows makes the row `error`.
//!
//! A staging table's map into a target the update set does not define (a
//! test's extra map) is played as if made with "Auto Map Matching Fields":
//! every staging field the target has, copied, no coalesce.

use std::sync::OnceLock;

use serde_json::{json, Map, Value};

use super::state::{merge_fields, State};
use crate::crm::servicenow::is_sys_id;
use crate::crm::sn_instance::TableDef;

/// The update set, as shipped.
const SHIPPED: &str = include_str!("../../../deploy/servicenow/edgecc_update_set.xml");

/// One field map (`sys_transform_entry`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FieldMap {
    /// Staging column.
    pub(super) source: String,
    /// Target field.
    pub(super) target: String,
    /// Whether the field finds the row to update.
    pub(super) coalesce: bool,
    /// `create`, `ignore`, `reject`, or empty (writes the value).
    pub(super) choice_action: String,
}

/// A transform script's effect, by the name it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ScriptKind {
    /// onBefore: a row whose sequence is not newer than the target's is
    /// ignored.
    Sequence,
    /// onAfter: the call's interaction points at the phone log
    /// (`channel_metadata_table`/`_document`).
    LinkPhoneLog,
    /// onBefore: the work item's `document_table`/`document_id` name the
    /// call's interaction; the row's work notes go on the interaction.
    LinkWorkItem,
    /// A script the emulator does not play.
    Unknown,
}

/// One transform map (`sys_transform_map`) with its entries and scripts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TransformMap {
    /// The map's name.
    pub(super) name: String,
    /// Staging table.
    pub(super) source_table: String,
    /// Target table.
    pub(super) target_table: String,
    /// `copy_empty_fields`.
    pub(super) copy_empty_fields: bool,
    /// Field maps.
    pub(super) entries: Vec<FieldMap>,
    /// Active scripts, in the update set's order.
    pub(super) scripts: Vec<ScriptKind>,
}

/// What the emulator reads of an update set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct UpdateSet {
    /// Transform maps.
    pub(super) maps: Vec<TransformMap>,
    /// `(table, column, max_length)` of every dictionary entry with a length.
    pub(super) columns: Vec<(String, String, usize)>,
}

impl UpdateSet {
    /// The map from `source` into `target`, if the update set defines one.
    pub(super) fn map(&self, source: &str, target: &str) -> Option<&TransformMap> {
        self.maps
            .iter()
            .find(|m| m.source_table == source && m.target_table == target)
    }

    /// `row` with every value of a column `table` declares cut to its
    /// length, as a web-service import stages it.
    pub(super) fn stage(&self, table: &str, mut row: Map<String, Value>) -> Map<String, Value> {
        for (t, column, max) in &self.columns {
            if t != table {
                continue;
            }
            if let Some(Value::String(s)) = row.get_mut(column) {
                if s.chars().count() > *max {
                    *s = s.chars().take(*max).collect();
                }
            }
        }
        row
    }
}

/// The shipped update set, read once.
pub(super) fn shipped() -> &'static UpdateSet {
    static SET: OnceLock<UpdateSet> = OnceLock::new();
    SET.get_or_init(|| parse(SHIPPED))
}

/// XML text unescaped (the entities Python's `saxutils.escape` writes).
fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

/// The raw text of `<tag>…</tag>` in `xml`.
fn raw<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))?;
    Some(&xml[start..start + end])
}

/// The unescaped text of `<tag>` in a record ("" when absent).
fn field(record: &str, tag: &str) -> String {
    raw(record, tag).map(unescape).unwrap_or_default()
}

/// The name a script carries (`edgecc script: <name>`).
fn script_kind(script: &str) -> ScriptKind {
    let name = script
        .split_once("edgecc script: ")
        .map(|(_, rest)| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .unwrap_or_default();
    match name.as_str() {
        "sequence" => ScriptKind::Sequence,
        "link_phone_log" => ScriptKind::LinkPhoneLog,
        "link_work_item" => ScriptKind::LinkWorkItem,
        _ => ScriptKind::Unknown,
    }
}

/// Reads an update set: its `sys_update_xml` payloads are records
/// (`<record_update table="…">`), escaped once more inside `<payload>`.
pub(super) fn parse(xml: &str) -> UpdateSet {
    let records: Vec<(String, String)> = xml
        .split("<payload>")
        .skip(1)
        .filter_map(|p| p.split("</payload>").next())
        .map(unescape)
        .filter_map(|p| {
            let head = p.split_once("<record_update table=\"")?.1;
            let table = head.split('"').next()?.to_string();
            Some((table, p))
        })
        .collect();
    let of = |table: &'static str| {
        records
            .iter()
            .filter(move |(t, _)| t == table)
            .map(|(_, p)| p.as_str())
    };
    let mut set = UpdateSet::default();
    for r in of("sys_dictionary") {
        if let Ok(max) = field(r, "max_length").parse() {
            set.columns
                .push((field(r, "name"), field(r, "element"), max));
        }
    }
    for m in of("sys_transform_map") {
        let id = field(m, "sys_id");
        let entries = of("sys_transform_entry")
            .filter(|e| field(e, "map") == id)
            .map(|e| FieldMap {
                source: field(e, "source_field"),
                target: field(e, "target_field"),
                coalesce: field(e, "coalesce") == "true",
                choice_action: field(e, "choice_action"),
            })
            .collect();
        let scripts = of("sys_transform_script")
            .filter(|s| field(s, "map") == id && field(s, "active") != "false")
            .map(|s| script_kind(&field(s, "script")))
            .collect();
        set.maps.push(TransformMap {
            name: field(m, "name"),
            source_table: field(m, "source_table"),
            target_table: field(m, "target_table"),
            copy_empty_fields: field(m, "copy_empty_fields") == "true",
            entries,
            scripts,
        });
    }
    set
}

/// The choices of the choice fields the emulator checks, as
/// `(table, field, values)`: `interaction.state` as ServiceNow's
/// "Interaction states" page lists them (values cited in
/// `src/crm/servicenow/states.rs`), `direction` and `type` as far as the
/// openframe API's examples show them.
const CHOICES: &[(&str, &str, &[&str])] = &[
    (
        "interaction",
        "state",
        &[
            "new",
            "on_hold",
            "work_in_progress",
            "wrap_up",
            "closed_complete",
            "closed_abandoned",
        ],
    ),
    ("interaction", "direction", &["inbound", "outbound"]),
    ("interaction", "type", &["phone", "chat"]),
];

/// Reference fields (a value that is not a sys_id is one the instance
/// cannot have), as `(table, field)`.
const REFERENCES: &[(&str, &str)] = &[
    ("interaction", "opened_for"),
    ("interaction", "assigned_to"),
    ("interaction", "channel"),
    ("interaction", "queue"),
    ("sn_openframe_phone_log", "contact"),
    ("sn_openframe_phone_log", "agent"),
    ("awa_work_item", "queue"),
];

/// Whether `value` is one `table.field` can hold without its choice
/// action (a known choice, a sys_id in a reference, anything elsewhere).
fn known_value(table: &str, field: &str, value: &str) -> bool {
    if let Some((_, _, values)) = CHOICES.iter().find(|(t, f, _)| *t == table && *f == field) {
        return values.contains(&value);
    }
    if REFERENCES.contains(&(table, field)) {
        return is_sys_id(value);
    }
    true
}

/// The interaction of a row's call: `u_edgecc_call_id` = `interaction`.
fn find_interaction(st: &State, interaction: &str) -> Option<usize> {
    if interaction.is_empty() {
        return None;
    }
    st.tables
        .get("interaction")?
        .iter()
        .position(|r| r.fields.get("u_edgecc_call_id").and_then(Value::as_str) == Some(interaction))
}

/// Sets `field` of the interaction at `index` (if the table has it).
fn set_interaction(st: &mut State, tables: &TableDefs, index: usize, field: &str, value: &str) {
    if !tables.get("interaction").is_some_and(|d| d.has(field)) {
        return;
    }
    if let Some(row) = st
        .tables
        .get_mut("interaction")
        .and_then(|r| r.get_mut(index))
    {
        let mut one = Map::new();
        one.insert(field.into(), Value::String(value.into()));
        merge_fields(&mut row.fields, one);
    }
}

/// The instance's tables.
pub(super) type TableDefs = std::collections::BTreeMap<String, TableDef>;

/// What a transform needs of the import request besides the row.
pub(super) struct Staged<'a> {
    /// The staged row.
    pub(super) row: &'a Map<String, Value>,
    /// The row's call (`<prefix>interaction`).
    pub(super) interaction: &'a str,
    /// The source field holding the outbox sequence.
    pub(super) sequence_field: &'a str,
    /// The staging table.
    pub(super) staging: &'a str,
}

/// Runs the map into `target` over the staged row, answering its `result`
/// entry (without `record_link`, which the handler adds).
pub(super) fn transform(
    st: &mut State,
    tables: &TableDefs,
    staged: &Staged<'_>,
    target: &str,
) -> Value {
    let auto;
    let map = match shipped().map(staged.staging, target) {
        Some(m) => m,
        None => {
            auto = auto_map(staged, target, tables);
            &auto
        }
    };
    let name = map.name.as_str();
    let fail = |message: String| {
        json!({"transform_map": name, "table": target, "status": "error",
               "error_message": message})
    };
    let skip = |message: String| {
        json!({"transform_map": name, "table": target, "status": "skipped",
               "status_message": message})
    };
    let Some(def) = tables.get(target) else {
        return fail(format!("Invalid table {target}"));
    };
    if map.scripts.contains(&ScriptKind::Unknown) {
        return fail(format!(
            "the emulator does not play a script of transform map `{name}`"
        ));
    }
    let source = |f: &str| {
        staged
            .row
            .get(f)
            .map(|v| match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            })
            .unwrap_or_default()
    };

    // The field maps' values: empty ones left out (copy_empty_fields
    // false), fields the target lacks never written, unknown choices and
    // references by the choice action.
    let mut values = Map::new();
    for e in &map.entries {
        let v = source(&e.source);
        if (v.is_empty() && !map.copy_empty_fields) || !def.has(&e.target) {
            continue;
        }
        if !v.is_empty() && !known_value(target, &e.target, &v) {
            match e.choice_action.as_str() {
                "ignore" => continue,
                "reject" => {
                    return skip(format!(
                        "{}: value {v:?} not in the choices: row rejected",
                        e.target
                    ))
                }
                _ => {}
            }
        }
        values.insert(e.target.clone(), Value::String(v));
    }

    let keys: Vec<(&str, String)> = map
        .entries
        .iter()
        .filter(|e| e.coalesce)
        .map(|e| (e.target.as_str(), source(&e.source)))
        .collect();
    let existing = if keys.is_empty() {
        None
    } else if keys.iter().all(|(_, v)| v.is_empty()) {
        return skip("No coalesce value: row skipped".into());
    } else {
        // The row whose coalesce fields hold the row's values (whoever made
        // it), or one this map inserted with that key.
        let first = keys.first().map(|(_, v)| v.as_str()).unwrap_or("");
        st.tables.get(target).and_then(|rows| {
            rows.iter().position(|r| {
                (keys.len() == 1 && r.coalesce == first)
                    || keys.iter().all(|(f, v)| {
                        r.fields.get(*f).and_then(Value::as_str).unwrap_or("") == v.as_str()
                    })
            })
        })
    };

    // onBefore scripts.
    if let Some(i) = existing {
        if map.scripts.contains(&ScriptKind::Sequence) {
            let held_field = map
                .entries
                .iter()
                .find(|e| e.source == staged.sequence_field)
                .map_or("u_edgecc_sequence", |e| e.target.as_str());
            let held: u64 = st.tables[target][i]
                .fields
                .get(held_field)
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let incoming: u64 = source(staged.sequence_field).parse().unwrap_or(0);
            if incoming <= held {
                let sys_id = st.tables[target][i].sys_id.clone();
                return json!({"transform_map": name, "table": target,
                              "status": "ignored", "sys_id": sys_id});
            }
        }
    }
    let interaction = find_interaction(st, staged.interaction);
    if map.scripts.contains(&ScriptKind::LinkWorkItem) {
        if let Some(ix) = interaction {
            let ix_id = st.tables["interaction"][ix].sys_id.clone();
            for (f, v) in [("document_table", "interaction"), ("document_id", &ix_id)] {
                if def.has(f) {
                    values.insert(f.into(), Value::String(v.to_string()));
                }
            }
            let notes = source("u_work_notes");
            if !notes.is_empty() {
                set_interaction(st, tables, ix, "work_notes", &notes);
            }
        }
    }

    st.note_references(target, &values);
    let (status, sys_id) = match existing {
        Some(i) => match st.tables.get_mut(target).and_then(|rows| rows.get_mut(i)) {
            // An update that changes nothing is `ignored`, "No field
            // values changed" (api-reference/web-services/r_InsertMultiple.md).
            Some(row) if values.iter().all(|(k, v)| row.fields.get(k) == Some(v)) => {
                let sys_id = row.sys_id.clone();
                return json!({"transform_map": name, "table": target, "status": "ignored",
                              "status_message": "No field values changed", "sys_id": sys_id});
            }
            Some(row) => {
                merge_fields(&mut row.fields, values);
                ("updated", row.sys_id.clone())
            }
            None => return fail("the coalesced row is gone".into()),
        },
        None => {
            let coalesce = keys.first().map(|(_, v)| v.clone()).unwrap_or_default();
            ("inserted", st.insert_row(target, coalesce, values))
        }
    };

    // onAfter scripts.
    if map.scripts.contains(&ScriptKind::LinkPhoneLog) {
        if let Some(ix) = interaction {
            set_interaction(st, tables, ix, "channel_metadata_table", target);
            set_interaction(st, tables, ix, "channel_metadata_document", &sys_id);
        }
    }
    json!({"transform_map": name, "table": target, "status": status, "sys_id": sys_id})
}

/// A map the update set lacks, as "Auto Map Matching Fields" makes it:
/// each staging field the target has, no coalesce, no script.
fn auto_map(staged: &Staged<'_>, target: &str, tables: &TableDefs) -> TransformMap {
    let def = tables.get(target);
    TransformMap {
        name: format!("auto {} to {target}", staged.staging),
        source_table: staged.staging.to_string(),
        target_table: target.to_string(),
        copy_empty_fields: false,
        entries: staged
            .row
            .keys()
            .filter(|k| def.is_some_and(|d| d.has(k)))
            .map(|k| FieldMap {
                source: k.clone(),
                target: k.clone(),
                coalesce: false,
                choice_action: String::new(),
            })
            .collect(),
        scripts: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped update set parses into its three maps, each script
    /// named, and the staging columns with their lengths.
    #[test]
    fn shipped_update_set_is_read() {
        let set = shipped();
        assert_eq!(set.maps.len(), 3);
        for m in &set.maps {
            assert!(!m.copy_empty_fields, "{}", m.name);
            assert_eq!(m.entries.iter().filter(|e| e.coalesce).count(), 1);
            assert!(!m.scripts.is_empty() && !m.scripts.contains(&ScriptKind::Unknown));
        }
        let ix = set
            .map("u_edgecc_interaction_import", "interaction")
            .unwrap();
        assert_eq!(ix.scripts, vec![ScriptKind::Sequence]);
        assert!(ix
            .entries
            .iter()
            .any(|e| e.source == "u_opened_at" && e.target == "opened_at"));
        assert!(!ix.entries.iter().any(|e| e.source == "u_created_at"));
        let mut row = Map::new();
        row.insert("u_kind".into(), "x".repeat(50).into());
        let cut = set.stage("u_edgecc_interaction_import", row);
        assert_eq!(cut["u_kind"].as_str().unwrap().len(), 40);
    }

    /// An unknown script name is `Unknown`, so the row fails loudly.
    #[test]
    fn scripts_are_known_by_name() {
        assert_eq!(
            script_kind("// edgecc script: sequence\n"),
            ScriptKind::Sequence
        );
        assert_eq!(script_kind("var x = 1;"), ScriptKind::Unknown);
        assert_eq!(script_kind("// edgecc script: other"), ScriptKind::Unknown);
    }
}
