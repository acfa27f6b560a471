//! ServiceNow's Table API as the emulator plays it: reads with an encoded
//! query (`^` and `^OR` terms; a term on a field the table lacks is
//! dropped, as GlideRecord does; `sys_dictionary` answers the dictionary),
//! creates and updates that ignore keys the table lacks (counted and
//! remembered: `dropped_keys`) and count a reference field that holds no
//! sys_id (`invalid_references`).

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::auth::authorized;
use super::gate::{gate, table_request};
use super::respond::{answer, known_table, not_authenticated, sn_error, text};
use super::state::{merge_fields, Row, Shared};
use super::{Received, GET_LIMIT_DEFAULT, RECORDS_MAX};
use crate::crm::sn_instance::{
    dictionary_def, dictionary_rows, matches, query_terms, DICTIONARY_TABLE,
};

/// `GET /api/now/table/{table}?sysparm_query=…&sysparm_fields=…&sysparm_limit=N`
/// (`sys_dictionary` answers from the instance's dictionary).
pub(super) async fn table_get(
    shared: web::Data<Shared>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    if let Some(r) = gate(&shared, &req, b"").await {
        return r;
    }
    if !authorized(&shared, &req) {
        shared.state().stats.rejected += 1;
        return not_authenticated();
    }
    let table = path.into_inner();
    let q = query.get("sysparm_query").cloned().unwrap_or_default();
    let limit: usize = query
        .get("sysparm_limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(GET_LIMIT_DEFAULT)
        .min(GET_LIMIT_DEFAULT);
    let wanted: Option<Vec<&str>> = query
        .get("sysparm_fields")
        .map(|f| f.split(',').map(str::trim).collect());
    let (def, rows) = if table == DICTIONARY_TABLE {
        (dictionary_def(), dictionary_rows(&shared.config.sn_tables))
    } else {
        let def = match known_table(&shared, &table) {
            Ok(def) => def.clone(),
            Err(r) => return r,
        };
        let st = shared.state();
        let rows = st
            .tables
            .get(&table)
            .map(|rows| {
                rows.iter()
                    .map(|r| {
                        let mut f = r.fields.clone();
                        f.insert("sys_id".into(), Value::String(r.sys_id.clone()));
                        f
                    })
                    .collect()
            })
            .unwrap_or_default();
        (def, rows)
    };
    // Like GlideRecord: a term on a field the table lacks is dropped, and
    // the remaining terms (maybe none) select the rows.
    let terms = query_terms(&q, &def);
    let result: Vec<Value> = rows
        .into_iter()
        .filter(|r| matches(r, &terms))
        .take(limit)
        .map(|r| match &wanted {
            Some(keep) => Value::Object(
                r.into_iter()
                    .filter(|(k, _)| keep.contains(&k.as_str()))
                    .collect(),
            ),
            None => Value::Object(r),
        })
        .collect();
    answer(200, json!({ "result": result }))
}

/// `POST /api/now/table/{table}`: creates a row.
pub(super) async fn table_post(
    shared: web::Data<Shared>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let fields = match table_request(&shared, &req, &body).await {
        Ok(fields) => fields,
        Err(r) => return r,
    };
    let table = path.into_inner();
    let def = match known_table(&shared, &table) {
        Ok(def) => def,
        Err(r) => return r,
    };
    let v = Value::Object(fields.clone());
    let mut st = shared.state();
    // The Table API ignores keys the table lacks.
    let fields = st.keep_known("table:POST", &table, def, fields);
    st.note_references(&table, &fields);
    let sys_id = st.sys_id();
    let key = match text(&v, &shared.config.table_correlation_field) {
        k if k.is_empty() => format!("{table}:{sys_id}"),
        k => k,
    };
    st.arrive(Received {
        key,
        interaction: text(&v, &shared.config.table_interaction_key_field),
        kind: String::new(),
        channel: format!("table:{table}"),
        idempotency_key: None,
        document: v,
    });
    if st.rows < RECORDS_MAX {
        st.rows += 1;
        st.tables.entry(table).or_default().push(Row {
            sys_id: sys_id.clone(),
            coalesce: String::new(),
            fields: fields.clone(),
        });
    }
    let mut result = fields;
    result.insert("sys_id".into(), Value::String(sys_id));
    answer(201, json!({ "result": result }))
}

/// `PATCH /api/now/table/{table}/{sys_id}`: updates a row.
pub(super) async fn table_patch(
    shared: web::Data<Shared>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let fields = match table_request(&shared, &req, &body).await {
        Ok(fields) => fields,
        Err(r) => return r,
    };
    let (table, sys_id) = path.into_inner();
    let def = match known_table(&shared, &table) {
        Ok(def) => def,
        Err(r) => return r,
    };
    let sent = fields.clone();
    let key_field = shared.config.table_interaction_key_field.clone();
    let mut st = shared.state();
    // The Table API ignores keys the table lacks (and answers 200).
    let fields = st.keep_known("table:PATCH", &table, def, fields);
    st.note_references(&table, &fields);
    let patched = st
        .tables
        .get_mut(&table)
        .and_then(|rows| rows.iter_mut().find(|r| r.sys_id == sys_id))
        .map(|row| {
            merge_fields(&mut row.fields, fields.clone());
            let mut result = row.fields.clone();
            result.insert("sys_id".into(), Value::String(sys_id.clone()));
            result
        });
    let Some(result) = patched else {
        return sn_error(404, "No Record found");
    };
    st.serial += 1;
    let key = format!("patch:{sys_id}:{}", st.serial);
    st.arrive(Received {
        key,
        interaction: text(&Value::Object(result.clone()), &key_field),
        kind: "interaction.update".into(),
        channel: format!("patch:{table}"),
        idempotency_key: None,
        document: Value::Object(sent),
    });
    answer(200, json!({ "result": result }))
}
