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


# Staging columns. The contract between the adapter and this update set
# (src/crm/servicenow/rows.rs builds the row) is: every row carries COMMON;
# each kind adds its own columns, one per target field, named u_<field>.
# edgecc's own keys live only in u_data (the record as JSON text), never as
# their own columns.
#
# Lengths (ServiceNow docs, ServiceNow/ServiceNowDocs markdown/):
# - a staging column a web-service import creates itself gets 40 characters
#   and longer data is truncated (platform-administration/
#   r_AvailableSystemProperties.md, com.glide.loader.verify_target_field_size,
#   default false), so every column is declared here with its length;
# - a string of 41-255 characters is VARCHAR(n), 256 and up MEDIUMTEXT
#   (platform-administration/r_DatabaseFieldTypes.md); a table may hold at
#   most 10 medium-length or longer strings and a row at most 65,535 bytes
#   (application-development/c_ApplicationDataTables.md): u_data (8,000) and
#   u_work_notes (4,000) are the only two here.
# - reference values are sys_ids: 32 characters.
COMMON = [
    # column, label, max_length
    ("u_correlation_id", "Correlation id", 100),
    ("u_kind", "Kind", 40),
    ("u_interaction", "Interaction", 100),
    ("u_sequence", "Sequence", 20),
    ("u_created_at", "Created at", 40),
    ("u_data", "Data", 8000),
]
SYS_ID = 32
WORK_NOTES = 4000

DATE_FORMAT = "yyyy-MM-dd HH:mm:ss"

# How a field map treats a value (ServiceNow docs, application-development/
# servicenow-sdk/fluent-import-sets-api.md):
# - "copyEmptyFields ... whether to copy empty fields from source and override
#   existing target field values. Default: false": an empty staging value
#   leaves the target field as it is. Every map here keeps the default, so
#   edgecc sends "" for "unchanged" (an update without a state change).
# - choiceAction, for a choice or reference target field, "the action to take
#   if the import set contains a reference or choice value other than those
#   available": create (adds the choice, or a record in the referenced
#   table), ignore ("Ignore the new value from the source table") or reject
#   ("Skip the entire row"). The maps use ignore: a state value missing from
#   the release's interaction.state choices, or a sys_id the instance lacks,
#   leaves that one field as it was and the rest of the row lands (create
#   would add a choice to interaction.state or a stray sys_user record).
CHOICE = "choice"
REFERENCE = "reference"
DATE = "date"


def entry(field, kind="", coalesce=False):
    """A field map u_<field> -> field: (source, target, coalesce, date format, choice action)."""
    return (f"u_{field}", field, coalesce,
            DATE_FORMAT if kind == DATE else "",
            "ignore" if kind in (CHOICE, REFERENCE) else "")


# The scripts. Each starts with an "edgecc script: <name>" line: edgecc's CRM
# emulator plays each named script's effect (src/crm/emulator/transform.rs)
# and answers `error` for a script it does not know, so the emulator cannot
# pretend a script it does not play.
SEQUENCE_SCRIPT = """(function runTransformScript(source, map, log, target) {
    // edgecc script: sequence
    // edgecc sends the outbox sequence in u_sequence; an update older than
    // (or equal to) what the interaction holds is a replay or was overtaken
    // by a newer one: the row is ignored and the newer data kept.
    var incoming = parseInt(source.u_sequence, 10) || 0;
    var held = parseInt(target.u_edgecc_sequence, 10) || 0;
    if (action == 'update' && incoming <= held) {
        ignore = true;
        return;
    }
})(source, map, log, target);"""

# The interaction of the row's call: u_edgecc_call_id (a column this update
# set adds, so the query term is never dropped) = the row's u_interaction.
FIND_INTERACTION = """    if (!source.u_interaction) {
        log.warn('edgecc: row without u_interaction, not linked');
        return;
    }
    var ix = new GlideRecord('interaction');
    ix.addQuery('u_edgecc_call_id', source.u_interaction);
    ix.setLimit(1);
    ix.query();
    if (!ix.next()) {
        log.warn('edgecc: no interaction with u_edgecc_call_id ' + source.u_interaction);
        return;
    }"""

LINK_PHONE_LOG_SCRIPT = """(function runTransformScript(source, map, log, target) {
    // edgecc script: link_phone_log
    // Links the phone log the way OpenFrame does: the call's interaction
    // points at it through channel_metadata_table / channel_metadata_document.
""" + FIND_INTERACTION + """
    ix.setValue('channel_metadata_table', 'sn_openframe_phone_log');
    ix.setValue('channel_metadata_document', target.getUniqueValue());
    ix.update();
})(source, map, log, target);"""

LINK_WORK_ITEM_SCRIPT = """(function runTransformScript(source, map, log, target) {
    // edgecc script: link_work_item
    // A work item is AWA work on a document: the call's interaction
    // (document_table / document_id); the callback note goes on the
    // interaction's work notes (awa_work_item has none).
""" + FIND_INTERACTION + """
    target.document_table = 'interaction';
    target.document_id = ix.getUniqueValue();
    if (source.u_work_notes) {
        ix.work_notes = source.u_work_notes;
        ix.update();
    }
})(source, map, log, target);"""

# Staging tables: (name, label, own columns, transform maps [(map name,
# target, field maps, scripts)]).
STAGING = [
    ("u_edgecc_interaction_import", "edgecc interaction import", [
        ("u_type", "Type", 40),
        ("u_state", "State", 40),
        ("u_direction", "Direction", 40),
        ("u_caller_phone_number", "Caller phone number", 40),
        ("u_short_description", "Short description", 160),
        ("u_opened_for", "Opened for", SYS_ID),
        ("u_assigned_to", "Assigned to", SYS_ID),
        ("u_channel", "Channel", SYS_ID),
        ("u_queue", "Queue", SYS_ID),
        ("u_opened_at", "Opened at", 40),
        ("u_work_notes", "Work notes", WORK_NOTES),
        ("u_closed_at", "Closed at", 40),
    ], [
        ("edgecc interaction", "interaction", [
            # The create and every update of a call land on one interaction.
            ("u_interaction", "u_edgecc_call_id", True, "", ""),
            ("u_correlation_id", "u_edgecc_correlation_id", False, "", ""),
            ("u_sequence", "u_edgecc_sequence", False, "", ""),
            entry("type", CHOICE),
            entry("state", CHOICE),
            entry("direction", CHOICE),
            entry("caller_phone_number"),
            entry("short_description"),
            entry("opened_for", REFERENCE),
            entry("assigned_to", REFERENCE),
            entry("channel", REFERENCE),
            entry("queue", REFERENCE),
            # Only the create carries u_opened_at; u_created_at (every
            # row's own time) is mapped nowhere, so updates never move it.
            entry("opened_at", DATE),
            entry("work_notes"),
            entry("closed_at", DATE),
        ], [("onBefore", SEQUENCE_SCRIPT)]),
    ]),
    ("u_edgecc_phone_log_import", "edgecc phone log import", [
        ("u_call_id", "Call id", 100),
        ("u_direction", "Direction", 40),
        ("u_phone_number", "Phone number", 40),
        ("u_start_time", "Start time", 40),
        ("u_contact", "Contact", SYS_ID),
        ("u_agent", "Agent", SYS_ID),
    ], [
        ("edgecc phone log", "sn_openframe_phone_log", [
            ("u_correlation_id", "u_edgecc_correlation_id", True, "", ""),
            entry("call_id"),
            entry("direction", CHOICE),
            entry("phone_number"),
            entry("start_time", DATE),
            entry("contact", REFERENCE),
            entry("agent", REFERENCE),
        ], [("onAfter", LINK_PHONE_LOG_SCRIPT)]),
    ]),
    ("u_edgecc_work_item_import", "edgecc work item import", [
        ("u_queue", "Queue", SYS_ID),
        ("u_work_notes", "Work notes", WORK_NOTES),
    ], [
        ("edgecc work item", "awa_work_item", [
            ("u_correlation_id", "u_edgecc_correlation_id", True, "", ""),
            entry("queue", REFERENCE),
        ], [("onBefore", LINK_WORK_ITEM_SCRIPT)]),
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
    for name, label, own, maps in STAGING:
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
        for col, col_label, length in COMMON + own:
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
            for source, field, coalesce, fmt, choice_action in entries:
                out.append((f"sys_transform_entry_{sys_id('entry', map_name, source)}",
                            "Field Map", record("sys_transform_entry", [
                    ("sys_id", sys_id("entry", map_name, source)), ("map", map_id),
                    ("source_table", name), ("source_field", source),
                    ("target_table", target), ("target_field", field),
                    ("coalesce", "true" if coalesce else "false"),
                    ("date_format", fmt), ("choice_action", choice_action),
                    ("sys_scope", SCOPE)])))
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
             f'<description>edgecc: staging tables (with lengths), transform maps (field maps, '
             f'the sequence script, the link scripts), and the correlation columns of '
             f'table mode.</description>',
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
