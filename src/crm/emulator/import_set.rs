//! ServiceNow's Import Set API as the emulator plays it: a row is staged,
//! then each transform map of its staging table upserts it into the
//! target with coalesce, answering one `result` entry per map.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::gate::table_request;
use super::respond::{answer, known_table, text};
use super::state::Shared;
use super::{Mode, Received};

/// `POST /api/now/import/{table}`: the row is staged, then each of the
/// staging table's transform maps upserts it into its target, coalescing
/// interaction rows on the interaction key and the others on the
/// correlation id; one `result` entry per map. A row whose sequence is not
/// newer than the target's is `ignored`, an empty coalesce value
/// `skipped`, [`Mode::ImportError`] answers `error`; without maps the row
/// stays staged and the answer names the staging table.
pub(super) async fn import(
    shared: web::Data<Shared>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let row = match table_request(&shared, &req, &body).await {
        Ok(fields) => fields,
        Err(r) => return r,
    };
    let table = path.into_inner();
    let maps = match known_table(&shared, &table) {
        Ok(def) => def.maps.clone(),
        Err(r) => return r,
    };
    let c = &shared.config;
    let v = Value::Object(row.clone());
    let key = text(&v, &c.import_correlation_field);
    let interaction = text(&v, &format!("{}interaction", c.import_field_prefix));
    let kind = text(&v, &format!("{}kind", c.import_field_prefix));
    let sequence: u64 = text(&v, &c.import_sequence_field).parse().unwrap_or(0);
    let coalesce_value = if kind.starts_with("interaction.") {
        interaction.clone()
    } else {
        key.clone()
    };
    let mut st = shared.state();
    st.arrive(Received {
        key,
        interaction,
        kind,
        channel: format!("import:{table}"),
        idempotency_key: None,
        document: v,
    });
    let staged = st.insert_row(&table, String::new(), row.clone());
    if maps.is_empty() {
        // No active transform map (or an asynchronous import set): the row
        // waits in the staging table and the answer names that table.
        let link = format!("http://{}/api/now/table/{table}/{staged}", shared.addr);
        return answer(
            201,
            json!({
                "import_set": "ISET0010001",
                "staging_table": table,
                "result": [{
                    "table": table,
                    "display_name": "sys_id",
                    "display_value": staged,
                    "record_link": link,
                    "status": "inserted",
                    "sys_id": staged,
                }]
            }),
        );
    }
    let fault = match &st.mode {
        Mode::ImportError { target, message } => Some((target.clone(), message.clone())),
        _ => None,
    };
    let seq_field = c.import_sequence_field.clone();
    let mut results = Vec::with_capacity(maps.len());
    for target in &maps {
        let map = format!("edgecc {table} to {target}");
        if let Some((_, message)) = fault.as_ref().filter(|(t, _)| t.is_empty() || t == target) {
            results.push(
                json!({"transform_map": map, "table": target, "status": "error",
                "error_message": message}),
            );
            continue;
        }
        if coalesce_value.is_empty() {
            results.push(
                json!({"transform_map": map, "table": target, "status": "skipped",
                "status_message": "No coalesce value: row skipped"}),
            );
            continue;
        }
        let existing = st
            .tables
            .get_mut(target)
            .and_then(|rows| rows.iter_mut().find(|r| r.coalesce == coalesce_value));
        let (status, sys_id) = match existing {
            Some(held_row) => {
                let held: u64 = held_row
                    .fields
                    .get(&seq_field)
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                if sequence <= held {
                    ("ignored", held_row.sys_id.clone())
                } else {
                    held_row.fields.extend(row.clone());
                    ("updated", held_row.sys_id.clone())
                }
            }
            None => (
                "inserted",
                st.insert_row(target, coalesce_value.clone(), row.clone()),
            ),
        };
        let link = format!("http://{}/api/now/table/{target}/{sys_id}", shared.addr);
        results.push(
            json!({"transform_map": map, "table": target, "status": status,
            "sys_id": sys_id, "record_link": link}),
        );
    }
    answer(
        201,
        json!({"import_set": "ISET0010001", "staging_table": table, "result": results}),
    )
}
