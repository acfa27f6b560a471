//! Table mode: creates through the Table API after a lookup by the
//! correlation field (so a replay finds the earlier record), the sys_id of
//! each create kept in a persisted state tree, updates PATCHed by sys_id;
//! phone logs and work items linked to their interaction ([`super::links`]).

use awc::http::Method;
use edgecc_storage::{Record, RecordKind};
use serde_json::Value;
use tracing::{debug, warn};

use super::super::transport::excerpt;
use super::super::Outcome;
use super::answer::{failure_body, result_object, result_sys_id};
use super::dictionary::matching_sys_id;
use super::links::KEY_INTERACTION;
use super::rows::table_row;
use super::{Early, ServiceNowAdapter};

/// State-tree key prefix: correlation id of a create → its sys_id.
const KEY_CREATE: &str = "c:";

/// A value inside an encoded query: `^` separates terms, `^^` is a
/// literal caret.
pub(super) fn encode_value(value: &str) -> String {
    value.replace('^', "^^")
}

impl ServiceNowAdapter {
    /// Reads a stored sys_id (errors are logged and read as "not stored").
    pub(super) fn stored(&self, key: &str) -> Option<String> {
        match self.sys_ids.get(key.as_bytes()) {
            Ok(v) => v.and_then(|b| String::from_utf8(b).ok()),
            Err(e) => {
                warn!(key, error = %e, "sys_id map unreadable; looking the record up instead.");
                None
            }
        }
    }

    /// Stores a sys_id durably (a failure is logged: the lookup by
    /// correlation field still finds the record next time).
    pub(super) async fn remember(&self, key: &str, sys_id: &str) {
        if let Err(e) = self.sys_ids.put(key.as_bytes(), sys_id.as_bytes()).await {
            warn!(key, error = %e, "sys_id not stored; later updates will look it up.");
        }
    }

    /// `GET /api/now/table/{table}?sysparm_query={query}`: the rows
    /// (at most `limit`, with `sys_id` and `fields`), or the outcome to
    /// report.
    pub(super) async fn query_rows(
        &self,
        table: &str,
        query: &str,
        fields: &[&str],
        limit: usize,
    ) -> Result<Vec<Value>, Early> {
        let url = format!("{}/api/now/table/{table}", self.base);
        let fields = std::iter::once("sys_id")
            .chain(fields.iter().copied())
            .collect::<Vec<_>>()
            .join(",");
        let limit = limit.to_string();
        let params = [
            ("sysparm_query", query),
            ("sysparm_limit", limit.as_str()),
            ("sysparm_fields", fields.as_str()),
        ];
        let answer = self.call(Method::GET, &url, &params, None).await?;
        if !(200..=299).contains(&answer.status) {
            return Err(self.refused(&answer, table, false));
        }
        if let Some(outcome) = failure_body(&answer) {
            return Err(outcome);
        }
        let parsed: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        match parsed.get("result").and_then(Value::as_array) {
            Some(rows) => Ok(rows.clone()),
            None => Err(Outcome::Retry {
                reason: format!("unrecognised lookup answer: {}", excerpt(&answer.body)),
                retry_after: None,
                crm_down: false,
            }),
        }
    }

    /// `GET /api/now/table/{table}?sysparm_query={field}={value}`: the
    /// sys_id of the first row whose `field` is `value` (a row without it
    /// is not ours, whatever the query said), or `None`; or the outcome to
    /// report.
    pub(super) async fn lookup(
        &self,
        table: &str,
        field: &str,
        value: &str,
    ) -> Result<Option<String>, Early> {
        let query = format!("{field}={}", encode_value(value));
        let rows = self.query_rows(table, &query, &[field], 1).await?;
        Ok(matching_sys_id(&rows, field, value))
    }

    /// Table mode, a create: stored sys_id, else lookup, else POST.
    pub(super) async fn deliver_table_create(&self, record: &Record) -> Outcome {
        let table = self.table_for(record.kind).to_string();
        let create_key = format!("{KEY_CREATE}{}", record.correlation_id);
        if let Some(sys_id) = self.stored(&create_key) {
            return Outcome::Delivered {
                link: Some(self.record_url(&table, &sys_id)),
            };
        }
        let found = match self
            .lookup(
                &table,
                &self.config.table_correlation_field,
                &record.correlation_id,
            )
            .await
        {
            Ok(found) => found,
            Err(outcome) => return outcome,
        };
        let sys_id = match found {
            Some(sys_id) => {
                debug!(correlation_id = %record.correlation_id, %sys_id,
                    "ServiceNow record already exists; not creating it again.");
                sys_id
            }
            None => {
                let url = format!("{}/api/now/table/{table}", self.base);
                let fields = self.record_fields(record).await;
                let mut body = table_row(record, &self.config, &fields);
                match self.create_links(record).await {
                    Ok(links) => {
                        if let Value::Object(fields) = &mut body {
                            fields.extend(links);
                        }
                    }
                    Err(outcome) => return outcome,
                }
                let answer = match self.call(Method::POST, &url, &[], Some(&body)).await {
                    Ok(a) => a,
                    Err(outcome) => return outcome,
                };
                if !(200..=299).contains(&answer.status) {
                    return self.refused(&answer, &table, true);
                }
                if let Some(outcome) = failure_body(&answer) {
                    return outcome;
                }
                match result_sys_id(&answer.body) {
                    Some(sys_id) => sys_id,
                    // Not ServiceNow's answer (a proxy or maintenance page,
                    // a cut body): nothing says the row exists. The retry
                    // looks it up by correlation id before posting again.
                    None => {
                        return Outcome::Retry {
                            reason: format!(
                                "create answered {} without a result.sys_id: {}",
                                answer.status,
                                excerpt(&answer.body)
                            ),
                            retry_after: None,
                            crm_down: false,
                        }
                    }
                }
            }
        };
        if record.kind == RecordKind::PhoneLogCreate {
            // Linked before the create is remembered: a failed link is
            // retried through the lookup, which finds this phone log.
            if let Err(outcome) = self.link_phone_log(record, &sys_id).await {
                return outcome;
            }
        }
        self.remember(&create_key, &sys_id).await;
        if record.kind == RecordKind::InteractionCreate {
            let key = format!("{KEY_INTERACTION}{}", record.interaction_key);
            self.remember(&key, &sys_id).await;
        }
        Outcome::Delivered {
            link: Some(self.record_url(&table, &sys_id)),
        }
    }

    /// Table mode, an update: PATCH the interaction by its sys_id.
    pub(super) async fn deliver_table_update(&self, record: &Record) -> Outcome {
        let table = self.config.table_interaction.clone();
        let key = format!("{KEY_INTERACTION}{}", record.interaction_key);
        let sys_id = match self.interaction_sys_id(&record.interaction_key).await {
            Ok(id) => id,
            Err(outcome) => return outcome,
        };
        let url = format!("{}/api/now/table/{table}/{sys_id}", self.base);
        let fields = self.record_fields(record).await;
        let body = table_row(record, &self.config, &fields);
        let answer = match self.call(Method::PATCH, &url, &[], Some(&body)).await {
            Ok(a) => a,
            Err(outcome) => return outcome,
        };
        if answer.status == 404 {
            // The stored sys_id is stale (record deleted or re-created):
            // forget it, so the next attempt looks the interaction up again.
            warn!(interaction = %record.interaction_key, %sys_id,
                "Stored interaction sys_id not found; will look it up again.");
            if let Err(e) = self.sys_ids.remove(key.as_bytes()).await {
                warn!(error = %e, "Stale sys_id not removed.");
            }
            return Outcome::Retry {
                reason: format!("interaction sys_id {sys_id} not found (404)"),
                retry_after: None,
                crm_down: false,
            };
        }
        if !(200..=299).contains(&answer.status) {
            return self.refused(&answer, &table, false);
        }
        if let Some(outcome) = failure_body(&answer) {
            return outcome;
        }
        if result_object(&answer.body).is_none() {
            // A PATCH is idempotent: send it again rather than trust a
            // page that is not ServiceNow's answer.
            return Outcome::Retry {
                reason: format!(
                    "update answered {} without a result: {}",
                    answer.status,
                    excerpt(&answer.body)
                ),
                retry_after: None,
                crm_down: false,
            };
        }
        Outcome::Delivered {
            link: Some(self.record_url(&table, &sys_id)),
        }
    }
}
