//! A callback work item routed as ServiceNow's Advanced Work Assignment
//! routes work: `POST /api/now/awa/queues/{awa_queue}/work_item` with the
//! interaction as the document (the AWA Routing API). ServiceNow creates
//! the `awa_work_item` for the interaction, or re-routes the active one it
//! already has, so a replay makes no second item; AWA then offers it to an
//! agent of that queue.
//!
//! Why this API and not the others: the AWA Offer Work API
//! (`/api/now/awa/documents/{table}/{sys_id}/offer`) needs an
//! `assignment.agent_sys_id` for a new assignment — it is for a CCaaS that
//! already chose the agent, and a timed-out call has none; creating the
//! interaction with a queue reference leaves the work item to the
//! instance's service-channel routing conditions, which an integration
//! cannot see or check. The Routing API names the queue and answers with
//! the work item it made.
//!
//! Which queue: the `[crm.servicenow.awa_queues]` entry of the call's own
//! edgecc queue (the record's `queue`), else the default `awa_queue`;
//! with neither, no routing ([`callback_queue`]).

use awc::http::Method;
use edgecc_storage::Record;
use serde_json::{json, Value};
use tracing::debug;

use super::super::transport::excerpt;
use super::super::Outcome;
use super::answer::{failure_body, result_object};
use super::{Early, ServiceNowAdapter, ServiceNowConfig};

/// The AWA Routing API, below the instance URL (`{queue}` is the
/// `awa_queue` sys_id).
pub const AWA_ROUTE_PATH: &str = "/api/now/awa/queues";
/// The table ServiceNow keeps AWA work items in.
pub const AWA_WORK_ITEM_TABLE: &str = "awa_work_item";

/// The AWA queue a callback work item is routed to, and the config key
/// that named it: the `awa_queues` entry of the record's edgecc queue,
/// else the default `awa_queue`; `None` when neither is configured.
pub(super) fn callback_queue(record: &Record, c: &ServiceNowConfig) -> Option<(String, String)> {
    let data: Value = serde_json::from_slice(&record.body).unwrap_or(Value::Null);
    let mapped = data.get("queue").and_then(Value::as_str).and_then(|q| {
        c.awa_queues
            .get(q)
            .map(|id| (id.clone(), format!("crm.servicenow.awa_queues.{q}")))
    });
    mapped.or_else(|| {
        c.awa_queue
            .clone()
            .map(|id| (id, "crm.servicenow.awa_queue".to_string()))
    })
}

impl ServiceNowAdapter {
    /// Routes the interaction `interaction` of the work item `record` to
    /// its AWA queue ([`callback_queue`]), if it has one;
    /// `Ok(Some(work item sys_id))` once ServiceNow answers with the work
    /// item.
    pub(super) async fn route_work_item(
        &self,
        record: &Record,
        interaction: &str,
    ) -> Result<Option<String>, Early> {
        let Some((queue, key)) = callback_queue(record, &self.config) else {
            return Ok(None);
        };
        let url = format!("{}{AWA_ROUTE_PATH}/{queue}/work_item", self.base);
        let body = json!({
            "document_sys_id": interaction,
            "document_table": self.config.table_interaction,
        });
        let answer = self.call(Method::POST, &url, &[], Some(&body)).await?;
        if answer.status == 404 {
            // No such queue (or interaction): the same answer for every
            // callback until the config names a queue the instance has.
            return Err(Outcome::Permanent {
                status: 404,
                reason: format!(
                    "configuration: {key} = `{queue}` (or interaction {interaction}) not found at the instance: {}",
                    excerpt(&answer.body)
                ),
            });
        }
        if !(200..=299).contains(&answer.status) {
            return Err(self.refused(&answer, &self.config.table_interaction, true));
        }
        if let Some(outcome) = failure_body(&answer) {
            return Err(outcome);
        }
        let item = result_object(&answer.body)
            .and_then(|r| r.get("sys_id").and_then(Value::as_str).map(str::to_string));
        match item {
            Some(item) => {
                debug!(interaction, work_item = %item, queue = %queue, "Callback routed as AWA work.");
                Ok(Some(item))
            }
            None => Err(Outcome::Retry {
                reason: format!(
                    "AWA routing answered {} without a work item: {}",
                    answer.status,
                    excerpt(&answer.body)
                ),
                retry_after: None,
                crm_down: false,
            }),
        }
    }
}

impl ServiceNowAdapter {
    /// Table mode with an AWA queue for the record ([`callback_queue`]): a
    /// `work_item.create` notes the callback on its interaction (number and
    /// reason as a work note), then routes the interaction to that queue.
    pub(super) async fn deliver_table_awa(&self, record: &edgecc_storage::Record) -> Outcome {
        let interaction = match self.interaction_sys_id(&record.interaction_key).await {
            Ok(id) => id,
            Err(outcome) => return outcome,
        };
        let data: Value = serde_json::from_slice(&record.body).unwrap_or(Value::Null);
        let number = data
            .get("callback_number")
            .and_then(Value::as_str)
            .unwrap_or("");
        let table = &self.config.table_interaction;
        let url = format!("{}/api/now/table/{table}/{interaction}", self.base);
        // The work item's note ([`super::fields`]) on the interaction, and
        // the number to call back when there is one.
        let fields = self.record_fields(record).await;
        let mut note =
            json!({ "work_notes": fields.get("work_notes").cloned().unwrap_or_default() });
        if !number.is_empty() {
            note["caller_phone_number"] = number.into();
        }
        let answer = match self.call(Method::PATCH, &url, &[], Some(&note)).await {
            Ok(a) => a,
            Err(outcome) => return outcome,
        };
        if !(200..=299).contains(&answer.status) {
            return self.refused(&answer, table, false);
        }
        if let Some(outcome) = failure_body(&answer) {
            return outcome;
        }
        match self.route_work_item(record, &interaction).await {
            Ok(Some(item)) => Outcome::Delivered {
                link: Some(self.record_url(AWA_WORK_ITEM_TABLE, &item)),
            },
            Ok(None) => Outcome::Delivered {
                link: Some(self.record_url(table, &interaction)),
            },
            Err(outcome) => outcome,
        }
    }
}
