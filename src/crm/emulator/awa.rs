//! ServiceNow's AWA Routing API as the emulator plays it:
//! `POST /api/now/awa/queues/{queue_sys_id}/work_item` with
//! `document_table` and `document_sys_id`. The queue must be a row of
//! `awa_queue` and the document a row of its table (else 404, ServiceNow's
//! error shape); the document's active work item is re-routed to the queue
//! if it has one, else a new `awa_work_item` is made (state `pending`,
//! linked through `document_table` / `document_id`). The answer is
//! `200 {"result": {sys_id, document_table, document_sys_id, queue_sys_id,
//! display_name}}`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::gate::table_request;
use super::respond::{answer, sn_error, text};
use super::state::Shared;
use super::Received;
use crate::crm::sn_instance::{AWA_QUEUE_TABLE, AWA_WORK_ITEM_TABLE};

/// `POST /api/now/awa/queues/{queue}/work_item`.
pub(super) async fn route_work_item(
    shared: web::Data<Shared>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let doc = match table_request(&shared, &req, &body).await {
        Ok(doc) => doc,
        Err(r) => return r,
    };
    let queue = path.into_inner();
    let v = Value::Object(doc.clone());
    let table = text(&v, "document_table");
    let document = text(&v, "document_sys_id");
    let mut st = shared.state();
    let has = |st: &super::state::State, table: &str, sys_id: &str| {
        st.tables
            .get(table)
            .is_some_and(|rows| rows.iter().any(|r| r.sys_id == sys_id))
    };
    if !has(&st, AWA_QUEUE_TABLE, &queue) {
        return sn_error(404, &format!("Queue {queue} not found"));
    }
    if table.is_empty() || document.is_empty() || !has(&st, &table, &document) {
        return sn_error(404, &format!("Document {table}:{document} not found"));
    }
    let active = st.tables.get_mut(AWA_WORK_ITEM_TABLE).and_then(|rows| {
        rows.iter_mut().find(|r| {
            r.fields.get("document_id").and_then(Value::as_str) == Some(document.as_str())
                && r.fields.get("active").and_then(Value::as_str) != Some("false")
        })
    });
    let sys_id = match active {
        Some(item) => {
            item.fields.insert("queue".into(), queue.clone().into());
            item.sys_id.clone()
        }
        None => {
            let mut fields = Map::new();
            fields.insert("document_table".into(), table.clone().into());
            fields.insert("document_id".into(), document.clone().into());
            fields.insert("queue".into(), queue.clone().into());
            fields.insert("state".into(), "pending".into());
            fields.insert("active".into(), "true".into());
            st.insert_row(AWA_WORK_ITEM_TABLE, String::new(), fields)
        }
    };
    st.serial += 1;
    let key = format!("awa:{document}:{}", st.serial);
    st.arrive(Received {
        key,
        interaction: document.clone(),
        kind: "work_item.route".into(),
        channel: format!("awa:{queue}"),
        idempotency_key: None,
        document: v,
    });
    answer(
        200,
        json!({"result": {
            "sys_id": sys_id,
            "document_table": table,
            "document_sys_id": document,
            "queue_sys_id": queue,
            "display_name": format!("Interaction: {document}"),
        }}),
    )
}
