//! Table mode's links, made the way ServiceNow links CCaaS records: the
//! interaction points at its phone log through `channel_metadata_table` /
//! `channel_metadata_document`, and a work item points at its interaction
//! through `document_table` / `document_id`. Both need the interaction's
//! sys_id, which the sync worker's per-call order makes available: the
//! interaction's create is delivered before its phone log and work item.

use awc::http::Method;
use edgecc_storage::{Record, RecordKind};
use serde_json::{json, Map, Value};

use super::super::Outcome;
use super::answer::failure_body;
use super::{Early, ServiceNowAdapter};

/// State-tree key prefix: interaction key → the interaction's sys_id.
pub(super) const KEY_INTERACTION: &str = "i:";

impl ServiceNowAdapter {
    /// The sys_id of `interaction_key`'s interaction: stored, else looked up
    /// by `table_interaction_key_field` (and stored); a permanent outcome
    /// when the instance has none (its create was not delivered).
    pub(super) async fn interaction_sys_id(&self, interaction_key: &str) -> Result<String, Early> {
        let key = format!("{KEY_INTERACTION}{interaction_key}");
        if let Some(id) = self.stored(&key) {
            return Ok(id);
        }
        let found = self
            .lookup(
                &self.config.table_interaction,
                &self.config.table_interaction_key_field,
                interaction_key,
            )
            .await?;
        match found {
            Some(id) => {
                self.remember(&key, &id).await;
                Ok(id)
            }
            None => Err(Outcome::Permanent {
                status: 404,
                reason: format!(
                    "interaction {interaction_key} not found at the CRM (its create was not delivered)"
                ),
            }),
        }
    }

    /// Link fields a create carries: a work item names its interaction.
    pub(super) async fn create_links(&self, record: &Record) -> Result<Map<String, Value>, Early> {
        let mut links = Map::new();
        if record.kind == RecordKind::WorkItemCreate {
            let interaction = self.interaction_sys_id(&record.interaction_key).await?;
            links.insert(
                "document_table".into(),
                Value::String(self.config.table_interaction.clone()),
            );
            links.insert("document_id".into(), Value::String(interaction));
        }
        Ok(links)
    }

    /// After a phone log exists: point its interaction's channel metadata
    /// at it (a PATCH; idempotent, so a retry repeats it harmlessly).
    pub(super) async fn link_phone_log(
        &self,
        record: &Record,
        phone_log: &str,
    ) -> Result<(), Early> {
        let interaction = self.interaction_sys_id(&record.interaction_key).await?;
        let table = &self.config.table_interaction;
        let url = format!("{}/api/now/table/{table}/{interaction}", self.base);
        let body = json!({
            "channel_metadata_table": self.config.table_phone_log,
            "channel_metadata_document": phone_log,
        });
        let answer = self.call(Method::PATCH, &url, &[], Some(&body)).await?;
        if !(200..=299).contains(&answer.status) {
            return Err(self.refused(&answer, table, false));
        }
        match failure_body(&answer) {
            Some(outcome) => Err(outcome),
            None => Ok(()),
        }
    }
}
