//! ServiceNow's Import Set API as the emulator plays it: a row is staged
//! (cut to the shipped staging columns' lengths), then each transform map
//! of its staging table runs over it ([`super::transform`], read from the
//! update set edgecc ships), answering one `result` entry per map.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::gate::table_request;
use super::respond::{answer, known_table, text};
use super::state::Shared;
use super::transform::{shipped, transform, Staged};
use super::{Mode, Received};

/// `POST /api/now/import/{table}`: the row is staged, then each of the
/// staging table's transform maps writes its field maps into its target
/// ([`super::transform`]: coalesce, empty values not copied, only fields
/// the target has, choice actions, the sequence and link scripts); one
/// `result` entry per map. [`Mode::ImportError`] answers `error`; without
/// maps the row stays staged and the answer names the staging table.
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
    let row = shipped().stage(&table, row);
    let c = &shared.config;
    let v = Value::Object(row.clone());
    let key = text(&v, &c.import_correlation_field);
    let interaction = text(&v, &format!("{}interaction", c.import_field_prefix));
    let kind = text(&v, &format!("{}kind", c.import_field_prefix));
    let mut st = shared.state();
    st.arrive(Received {
        key,
        interaction: interaction.clone(),
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
    let source = Staged {
        row: &row,
        interaction: &interaction,
        sequence_field: &c.import_sequence_field,
        staging: &table,
    };
    let mut results = Vec::with_capacity(maps.len());
    for target in &maps {
        if let Some((_, message)) = fault.as_ref().filter(|(t, _)| t.is_empty() || t == target) {
            let map = shipped()
                .map(&table, target)
                .map_or_else(|| format!("auto {table} to {target}"), |m| m.name.clone());
            results.push(
                json!({"transform_map": map, "table": target, "status": "error",
                "error_message": message}),
            );
            continue;
        }
        let mut result = transform(&mut st, &c.sn_tables, &source, target);
        if let Some(sys_id) = result.get("sys_id").and_then(Value::as_str) {
            let link = format!("http://{}/api/now/table/{target}/{sys_id}", shared.addr);
            result["record_link"] = Value::String(link);
        }
        results.push(result);
    }
    answer(
        201,
        json!({"import_set": "ISET0010001", "staging_table": table, "result": results}),
    )
}
