#!/usr/bin/env python3
"""Writes edgecc_update_set.xml: the ServiceNow side of edgecc's Import Set
and table modes as one update set (System Update Sets > Retrieved Update
Sets > Import Update Set from XML). Run it after changing a name or length
here; tests/servicenow_install.rs checks the XML against the adapter's
defaults. Deterministic: sys_ids are hashes of the record's identity."""

import hashlib
from xml.sax.saxutils import escape

UPDATE_SET = "edgecc CRM integration"
SCOPE = "global"


def sys_id(*parts):
    return hashlib.md5("/".join(parts).encode()).hexdigest()


def record(table, fields, action="INSERT_OR_UPDATE"):
    """One record_update payload: <table action=…><field>v</field>…</table>."""
    body = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in fields)
    return (f'<?xml version="1.0" encoding="UTF-8"?><record_update table="{table}">'
            f'<{table} action="{action}">{body}</{table}></record_update>')


# Staging tables: (name, label, transform maps [(map name, target, entries, scripts)]).
STRING_COLUMNS = [
    # column, label, max_length: ids exceed ServiceNow's default 40.
    ("u_correlation_id", "Correlation id", 100),
    ("u_kind", "Kind", 40),
    ("u_interaction", "Interaction", 100),
    ("u_sequence", "Sequence", 20),
    ("u_created_at", "Created at", 40),
]

SEQUENCE_SCRIPT = """(function runTransformScript(source, map, log, target) {
    // edgecc sends the outbox sequence in u_sequence; an update older than
    // (or equal to) what the interaction holds is a replay: keep the newer data.
    var incoming = parseInt(source.u_sequence, 10) || 0;
    var held = parseInt(target.u_edgecc_sequence, 10) || 0;
    if (action == 'update' && incoming <= held) {
        ignore = true;
        return;
    }
})(source, map, log, target);"""

DATE_FORMAT = "yyyy-MM-dd HH:mm:ss"

STAGING = [
    ("u_edgecc_interaction_import", "edgecc interaction import", [
        ("edgecc interaction", "interaction", [
            # source, target, coalesce, date_format
            ("u_interaction", "u_edgecc_call_id", True, ""),
            ("u_correlation_id", "u_edgecc_correlation_id", False, ""),
            ("u_sequence", "u_edgecc_sequence", False, ""),
            ("u_created_at", "opened_at", False, DATE_FORMAT),
        ], [("onBefore", SEQUENCE_SCRIPT)]),
    ]),
    ("u_edgecc_phone_log_import", "edgecc phone log import", [
        ("edgecc phone log", "sn_openframe_phone_log", [
            ("u_correlation_id", "u_edgecc_correlation_id", True, ""),
            ("u_created_at", "start_time", False, DATE_FORMAT),
        ], []),
    ]),
    ("u_edgecc_work_item_import", "edgecc work item import", [
        ("edgecc work item", "awa_work_item", [
            ("u_correlation_id", "u_edgecc_correlation_id", True, ""),
        ], []),
    ]),
]

# Custom columns on the target tables: (table, column, label, type, length).
TARGET_COLUMNS = [
    ("interaction", "u_edgecc_correlation_id", "edgecc correlation id", "string", 100),
    ("interaction", "u_edgecc_call_id", "edgecc call id", "string", 100),
    ("interaction", "u_edgecc_sequence", "edgecc sequence", "integer", 40),
    ("sn_openframe_phone_log", "u_edgecc_correlation_id", "edgecc correlation id", "string", 100),
    ("awa_work_item", "u_edgecc_correlation_id", "edgecc correlation id", "string", 100),
]


def updates():
    out = []
    for name, label, maps in STAGING:
        out.append((f"sys_db_object_{sys_id('db', name)}", "Table", record("sys_db_object", [
            ("sys_id", sys_id("db", name)), ("name", name), ("label", label),
            ("super_class", "sys_import_set_row"), ("is_extendable", "false"),
            ("sys_scope", SCOPE)])))
        # The table's collection entry (element empty), as the table
        # designer writes it.
        out.append((f"sys_dictionary_{name}_null", "Dictionary", record("sys_dictionary", [
            ("sys_id", sys_id("dict", name, "")), ("name", name), ("element", ""),
            ("column_label", label), ("internal_type", "collection"),
            ("super_class", "sys_import_set_row"), ("sys_scope", SCOPE)])))
        for col, col_label, length in STRING_COLUMNS:
            out.append((f"sys_dictionary_{name}_{col}", "Dictionary", record("sys_dictionary", [
                ("sys_id", sys_id("dict", name, col)), ("name", name), ("element", col),
                ("column_label", col_label), ("internal_type", "string"),
                ("max_length", length), ("active", "true"), ("sys_scope", SCOPE)])))
        for map_name, target, entries, scripts in maps:
            map_id = sys_id("map", map_name)
            out.append((f"sys_transform_map_{map_id}", "Transform Map", record("sys_transform_map", [
                ("sys_id", map_id), ("name", map_name), ("source_table", name),
                ("target_table", target), ("active", "true"), ("run_business_rules", "true"),
                ("enforce_mandatory_fields", "No"), ("copy_empty_fields", "false"),
                ("sys_scope", SCOPE)])))
            for source, field, coalesce, fmt in entries:
                out.append((f"sys_transform_entry_{sys_id('entry', map_name, source)}",
                            "Field Map", record("sys_transform_entry", [
                    ("sys_id", sys_id("entry", map_name, source)), ("map", map_id),
                    ("source_table", name), ("source_field", source),
                    ("target_table", target), ("target_field", field),
                    ("coalesce", "true" if coalesce else "false"),
                    ("date_format", fmt), ("sys_scope", SCOPE)])))
            for when, script in scripts:
                out.append((f"sys_transform_script_{sys_id('script', map_name, when)}",
                            "Transform Script", record("sys_transform_script", [
                    ("sys_id", sys_id("script", map_name, when)), ("map", map_id),
                    ("when", when.lower()), ("order", 100), ("active", "true"),
                    ("script", script), ("sys_scope", SCOPE)])))
    for table, col, label, kind, length in TARGET_COLUMNS:
        out.append((f"sys_dictionary_{table}_{col}", "Dictionary", record("sys_dictionary", [
            ("sys_id", sys_id("dict", table, col)), ("name", table), ("element", col),
            ("column_label", label), ("internal_type", kind), ("max_length", length),
            ("active", "true"), ("sys_scope", SCOPE)])))
    return out


def main():
    set_id = sys_id("update_set", UPDATE_SET)
    parts = ['<?xml version="1.0" encoding="UTF-8"?>',
             '<unload unload_date="2026-12-06 00:00:00">',
             '<sys_remote_update_set action="INSERT_OR_UPDATE">',
             f'<application display_value="Global">{SCOPE}</application>',
             f'<description>edgecc: staging tables (with lengths), transform maps with the '
             f'sequence script, and the correlation columns of table mode.</description>',
             f'<name>{UPDATE_SET}</name>', '<state>loaded</state>',
             f'<sys_id>{set_id}</sys_id>', '</sys_remote_update_set>']
    for name, kind, payload in updates():
        parts += ['<sys_update_xml action="INSERT_OR_UPDATE">',
                  '<action>INSERT_OR_UPDATE</action>',
                  f'<application display_value="Global">{SCOPE}</application>',
                  f'<name>{escape(name)}</name>',
                  f'<payload>{escape(payload)}</payload>',
                  f'<remote_update_set display_value="{UPDATE_SET}">{set_id}</remote_update_set>',
                  f'<sys_id>{sys_id("xml", name)}</sys_id>',
                  f'<type>{kind}</type>', '</sys_update_xml>']
    parts.append('</unload>')
    with open(__file__.rsplit("/", 1)[0] + "/edgecc_update_set.xml", "w") as f:
        f.write("\n".join(parts) + "\n")


if __name__ == "__main__":
    main()
