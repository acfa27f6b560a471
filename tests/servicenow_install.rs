//! The ServiceNow install shipped as code (deploy/servicenow/
//! edgecc_update_set.xml) agrees with the adapter's defaults and with the
//! emulated instance: every staging table and column the adapter writes,
//! with lengths its ids fit in; one transform map per staging table into
//! the target the emulator transforms into, coalescing on the field the
//! adapter relies on; the sequence script; the date format; the custom
//! columns table mode looks records up by.

use edgecc::crm::servicenow::ServiceNowConfig;
use edgecc::crm::sn_instance::default_tables;

/// The update set.
const UPDATE_SET: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/servicenow/edgecc_update_set.xml"
);
/// A long correlation id as the outbox writes them (site, a UUID call id,
/// kind, a 20-digit sequence): every id column must hold it.
const LONG_CORRELATION_ID: &str =
    "edge-site-01:0f8fad5b-d9cb-469f-a165-70867728950e:interaction.update:18446744073709551615";

/// The record payloads of the update set, unescaped.
fn payloads() -> Vec<String> {
    let xml = std::fs::read_to_string(UPDATE_SET).expect("read the update set");
    xml.split("<payload>")
        .skip(1)
        .map(|p| {
            p.split("</payload>")
                .next()
                .unwrap_or("")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&amp;", "&")
        })
        .collect()
}

/// The text of `<tag>…</tag>` in a payload.
fn field<'a>(payload: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = payload.find(&open)? + open.len();
    let end = payload[start..].find(&format!("</{tag}>"))?;
    Some(&payload[start..start + end])
}

/// The payloads of `table` records whose fields all match `wanted`.
fn find<'a>(all: &'a [String], table: &str, wanted: &[(&str, &str)]) -> Vec<&'a String> {
    let head = format!("<record_update table=\"{table}\">");
    all.iter()
        .filter(|p| p.contains(&head))
        .filter(|p| wanted.iter().all(|(k, v)| field(p, k) == Some(*v)))
        .collect()
}

/// The column's `max_length`.
fn max_length(all: &[String], table: &str, column: &str) -> usize {
    let rows = find(
        all,
        "sys_dictionary",
        &[("name", table), ("element", column)],
    );
    assert_eq!(rows.len(), 1, "one dictionary entry for {table}.{column}");
    field(rows[0], "max_length")
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("{table}.{column} has a max_length"))
}

/// Staging tables, their columns, maps, coalesce fields and the sequence
/// script match the adapter's defaults and the emulator's maps.
#[test]
fn update_set_matches_the_import_adapter() {
    let all = payloads();
    let c = ServiceNowConfig::with_instance("https://x.service-now.com");
    let p = &c.import_field_prefix;
    let emulated = default_tables();
    for (staging, coalesce) in [
        (&c.import_table_interaction, format!("{p}interaction")),
        (
            &c.import_table_phone_log,
            c.import_correlation_field.clone(),
        ),
        (
            &c.import_table_work_item,
            c.import_correlation_field.clone(),
        ),
    ] {
        let tables = find(&all, "sys_db_object", &[("name", staging.as_str())]);
        assert_eq!(tables.len(), 1, "{staging}");
        assert_eq!(field(tables[0], "super_class"), Some("sys_import_set_row"));
        for column in [
            c.import_correlation_field.clone(),
            c.import_sequence_field.clone(),
            format!("{p}kind"),
            format!("{p}interaction"),
            format!("{p}created_at"),
        ] {
            assert!(
                max_length(&all, staging, &column) >= 20,
                "{staging}.{column}"
            );
        }
        for id_column in [&c.import_correlation_field, &format!("{p}interaction")] {
            assert!(
                max_length(&all, staging, id_column) >= LONG_CORRELATION_ID.len(),
                "{staging}.{id_column} must hold a correlation id"
            );
        }
        let maps = find(
            &all,
            "sys_transform_map",
            &[("source_table", staging.as_str())],
        );
        let targets: Vec<&str> = maps
            .iter()
            .filter_map(|m| field(m, "target_table"))
            .collect();
        assert_eq!(targets, emulated[staging.as_str()].maps, "{staging}");
        let map_id = field(maps[0], "sys_id").unwrap();
        let keys = find(
            &all,
            "sys_transform_entry",
            &[("map", map_id), ("coalesce", "true")],
        );
        assert_eq!(keys.len(), 1, "{staging}: one coalesce field");
        assert_eq!(field(keys[0], "source_field"), Some(coalesce.as_str()));
        let target_field = field(keys[0], "target_field").unwrap();
        assert!(
            max_length(&all, targets[0], target_field) >= LONG_CORRELATION_ID.len(),
            "{}.{target_field}",
            targets[0]
        );
        let dates = find(
            &all,
            "sys_transform_entry",
            &[
                ("map", map_id),
                ("source_field", format!("{p}created_at").as_str()),
            ],
        );
        for d in dates {
            assert_eq!(field(d, "date_format"), Some("yyyy-MM-dd HH:mm:ss"));
        }
    }
    let interaction_map = find(
        &all,
        "sys_transform_map",
        &[("source_table", c.import_table_interaction.as_str())],
    );
    let map_id = field(interaction_map[0], "sys_id").unwrap();
    let scripts = find(
        &all,
        "sys_transform_script",
        &[("map", map_id), ("when", "onbefore")],
    );
    assert_eq!(scripts.len(), 1);
    let script = field(scripts[0], "script").unwrap();
    assert!(script.contains(&format!("source.{}", c.import_sequence_field)));
    assert!(script.contains("ignore = true"));
}

/// The custom columns table mode looks records up by exist in the update
/// set and in the emulated dictionary, long enough for a correlation id.
#[test]
fn update_set_adds_the_table_mode_columns() {
    let all = payloads();
    let c = ServiceNowConfig::with_instance("https://x.service-now.com");
    let emulated = default_tables();
    for (table, column) in [
        (&c.table_interaction, &c.table_correlation_field),
        (&c.table_interaction, &c.table_interaction_key_field),
        (&c.table_phone_log, &c.table_correlation_field),
        (&c.table_work_item, &c.table_correlation_field),
    ] {
        assert!(
            max_length(&all, table, column) >= LONG_CORRELATION_ID.len(),
            "{table}.{column}"
        );
        assert!(emulated[table.as_str()].has(column), "{table}.{column}");
    }
}

/// The staging columns of the adapter/update-set contract (issue 22), per
/// staging table: the kind's own target fields, each sent as `u_<field>`.
const CONTRACT: &[(&str, &[&str])] = &[
    (
        "u_edgecc_interaction_import",
        &[
            "type",
            "state",
            "direction",
            "caller_phone_number",
            "short_description",
            "opened_for",
            "assigned_to",
            "channel",
            "queue",
            "opened_at",
            "work_notes",
            "closed_at",
        ],
    ),
    (
        "u_edgecc_phone_log_import",
        &[
            "call_id",
            "direction",
            "phone_number",
            "start_time",
            "contact",
            "agent",
        ],
    ),
    ("u_edgecc_work_item_import", &["queue"]),
];

/// Target fields that are choices: their field maps' choice action is
/// `ignore` (a value the instance lacks leaves the field as it is).
const CHOICES: &[&str] = &["type", "state", "direction"];
/// Target fields that are references: sys_id columns (32), choice action
/// `ignore` too.
const REFERENCES: &[&str] = &[
    "opened_for",
    "assigned_to",
    "channel",
    "queue",
    "contact",
    "agent",
];

/// The map of `staging` and its field maps (source → entry payload).
fn map_entries<'a>(all: &'a [String], staging: &str) -> (&'a str, Vec<&'a String>) {
    let maps = find(all, "sys_transform_map", &[("source_table", staging)]);
    assert_eq!(maps.len(), 1, "{staging}: one transform map");
    let id = field(maps[0], "sys_id").unwrap();
    (
        field(maps[0], "target_table").unwrap(),
        find(all, "sys_transform_entry", &[("map", id)]),
    )
}

/// Issue 22: the update set carries the contract's columns, with lengths
/// (`u_data` long enough for a record, sys_id columns for references), a
/// field map from each `u_<field>` to `<field>` (`opened_at` only from
/// `u_opened_at`; `u_created_at` and `u_data` mapped nowhere), empty
/// fields not copied, choices and references by `ignore`, and the link
/// scripts.
#[test]
fn update_set_follows_the_contract() {
    let all = payloads();
    for (staging, fields) in CONTRACT {
        for common in ["u_correlation_id", "u_kind", "u_interaction", "u_sequence"] {
            assert!(
                max_length(&all, staging, common) >= 20,
                "{staging}.{common}"
            );
        }
        assert!(max_length(&all, staging, "u_created_at") >= 19);
        assert!(
            max_length(&all, staging, "u_data") >= 8_000,
            "{staging}.u_data"
        );
        if staging.contains("work_item") {
            // Not a field map: the link script puts it on the interaction.
            assert!(max_length(&all, staging, "u_work_notes") >= 1_000);
        }
        let (target, entries) = map_entries(&all, staging);
        let maps = find(
            all.as_slice(),
            "sys_transform_map",
            &[("source_table", staging)],
        );
        assert_eq!(field(maps[0], "copy_empty_fields"), Some("false"));
        for f in *fields {
            let column = format!("u_{f}");
            let length = max_length(&all, staging, &column);
            if REFERENCES.contains(f) {
                assert_eq!(length, 32, "{staging}.{column}: a sys_id");
            } else {
                assert!(length >= 19, "{staging}.{column}");
            }
            let to: Vec<_> = entries
                .iter()
                .filter(|e| field(e, "target_field") == Some(f))
                .collect();
            assert_eq!(to.len(), 1, "{staging}: one field map into {target}.{f}");
            assert_eq!(field(to[0], "source_field"), Some(column.as_str()));
            let action = field(to[0], "choice_action").unwrap_or("");
            if CHOICES.contains(f) || REFERENCES.contains(f) {
                assert_eq!(action, "ignore", "{staging}.{column}");
            }
            if f.ends_with("_at") || *f == "start_time" {
                assert_eq!(field(to[0], "date_format"), Some("yyyy-MM-dd HH:mm:ss"));
            }
        }
        for unmapped in ["u_created_at", "u_data", "u_kind"] {
            assert!(
                !entries
                    .iter()
                    .any(|e| field(e, "source_field") == Some(unmapped)),
                "{staging}: {unmapped} is mapped"
            );
        }
    }
    let script = |staging: &str, when: &str| {
        let maps = find(&all, "sys_transform_map", &[("source_table", staging)]);
        let id = field(maps[0], "sys_id").unwrap();
        let s = find(&all, "sys_transform_script", &[("map", id), ("when", when)]);
        assert_eq!(s.len(), 1, "{staging} {when}");
        field(s[0], "script").unwrap().to_string()
    };
    let log = script("u_edgecc_phone_log_import", "onafter");
    assert!(log.contains("edgecc script: link_phone_log"));
    assert!(log.contains("addQuery('u_edgecc_call_id', source.u_interaction)"));
    assert!(log.contains("'channel_metadata_document', target.getUniqueValue()"));
    let item = script("u_edgecc_work_item_import", "onbefore");
    assert!(item.contains("edgecc script: link_work_item"));
    assert!(item.contains("target.document_table = 'interaction'"));
    assert!(item.contains("target.document_id = ix.getUniqueValue()"));
    let seq = script("u_edgecc_interaction_import", "onbefore");
    assert!(seq.contains("edgecc script: sequence"));
}

/// Every field map writes a field the emulated instance's target table has
/// (`sn_instance.rs`), so the emulator, which skips a field its target
/// lacks, plays every map entry. `sn_openframe_phone_log.contact` and
/// `.agent` come with the adapter's branch (s13-snow).
#[test]
fn update_set_maps_only_fields_the_instance_has() {
    let all = payloads();
    let tables = default_tables();
    for (staging, _) in CONTRACT {
        let (target, entries) = map_entries(&all, staging);
        for e in entries {
            let f = field(e, "target_field").unwrap();
            assert!(tables[target].has(f), "{target}.{f}");
        }
    }
}
