//! Table mode's start-up check against the instance's dictionary
//! (`sys_dictionary`): every field a lookup filters on must exist on its
//! table. ServiceNow drops a query term on a field the table lacks and
//! returns other rows (`glide.invalid_query.returns_no_rows` is false by
//! default), so a lookup-before-create on a missing field would "find" a
//! stranger's record, skip the create and report it delivered. The check
//! runs before the first delivery (first each table, so a misnamed table
//! is reported as such, then each field) and its verdict is kept until
//! restart; an answer that is not a verdict (the instance down) is
//! retried.

use std::cell::RefCell;

use awc::http::Method;
use serde_json::Value;
use tracing::{error, info};

use super::super::transport::excerpt;
use super::super::Outcome;
use super::{Early, ServiceNowAdapter, ServiceNowMode};

/// The dictionary check's verdict, once known.
pub(super) type Verdict = RefCell<Option<Result<(), Outcome>>>;

impl ServiceNowAdapter {
    /// The `(config key, table, field)` triples table mode (all four) and
    /// openframe mode (the interaction's key field) filter on.
    fn lookup_fields(&self) -> Vec<(&'static str, &str, &str)> {
        let c = &self.config;
        if c.mode == ServiceNowMode::Openframe {
            return vec![(
                "table_interaction_key_field",
                c.table_interaction.as_str(),
                c.table_interaction_key_field.as_str(),
            )];
        }
        vec![
            (
                "table_correlation_field",
                c.table_interaction.as_str(),
                c.table_correlation_field.as_str(),
            ),
            (
                "table_interaction_key_field",
                c.table_interaction.as_str(),
                c.table_interaction_key_field.as_str(),
            ),
            (
                "table_correlation_field",
                c.table_phone_log.as_str(),
                c.table_correlation_field.as_str(),
            ),
            (
                "table_correlation_field",
                c.table_work_item.as_str(),
                c.table_correlation_field.as_str(),
            ),
        ]
    }

    /// Ok when every lookup field exists; else the outcome every table-mode
    /// record gets (permanent, naming the key) or, when the instance gave
    /// no verdict, the outcome of this attempt.
    pub(super) async fn dictionary_checked(&self) -> Result<(), Early> {
        if let Some(verdict) = self.dictionary.borrow().clone() {
            return verdict;
        }
        // A table the instance lacks answers `400 Invalid table` here,
        // reported against its own key rather than as a missing field.
        let mut tables: Vec<&str> = self.lookup_fields().iter().map(|t| t.1).collect();
        tables.dedup();
        for table in tables {
            let url = format!("{}/api/now/table/{table}", self.base);
            let params = [("sysparm_limit", "1"), ("sysparm_fields", "sys_id")];
            let answer = self.call(Method::GET, &url, &params, None).await?;
            if !(200..=299).contains(&answer.status) {
                let outcome = self.refused(&answer, table, false);
                if matches!(outcome, Outcome::Permanent { .. }) {
                    *self.dictionary.borrow_mut() = Some(Err(outcome.clone()));
                }
                return Err(outcome);
            }
        }
        let url = format!("{}/api/now/table/sys_dictionary", self.base);
        for (key, table, field) in self.lookup_fields() {
            let query = format!("name={table}^element={field}");
            let params = [
                ("sysparm_query", query.as_str()),
                ("sysparm_fields", "name,element"),
                ("sysparm_limit", "1"),
            ];
            let answer = self.call(Method::GET, &url, &params, None).await?;
            if !(200..=299).contains(&answer.status) {
                return Err(self.refused(&answer, "sys_dictionary", false));
            }
            let parsed: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
            let Some(rows) = parsed.get("result").and_then(Value::as_array) else {
                return Err(Outcome::Retry {
                    reason: format!("unrecognised dictionary answer: {}", excerpt(&answer.body)),
                    retry_after: None,
                    crm_down: false,
                });
            };
            // The row's own values are checked too: the query's terms are
            // on sys_dictionary's own fields, but a proxy or an ACL-trimmed
            // answer must not pass for a match.
            let found = rows.iter().any(|r| {
                r.get("name").and_then(Value::as_str) == Some(table)
                    && r.get("element").and_then(Value::as_str) == Some(field)
            });
            if !found {
                error!(key = %format!("crm.servicenow.{key}"), table, field,
                    "ServiceNow table lacks the lookup field; table mode stopped (lookups would match other records).");
                let verdict = Outcome::Permanent {
                    status: answer.status,
                    reason: format!(
                        "configuration: crm.servicenow.{key} = `{field}` is not a field of `{table}` \
                         in sys_dictionary (missing, inherited from a parent table, or the user \
                         cannot read sys_dictionary); a lookup on it would match other records"
                    ),
                };
                *self.dictionary.borrow_mut() = Some(Err(verdict.clone()));
                return Err(verdict);
            }
        }
        info!(instance = %self.base, "ServiceNow lookup fields verified in sys_dictionary.");
        *self.dictionary.borrow_mut() = Some(Ok(()));
        Ok(())
    }
}

/// The sys_id of the first row whose `field` is exactly `value`: a lookup
/// answer is trusted only for rows that carry the value looked for.
pub(super) fn matching_sys_id(rows: &[Value], field: &str, value: &str) -> Option<String> {
    rows.iter()
        .find(|r| r.get(field).and_then(Value::as_str) == Some(value))
        .and_then(|r| r.get("sys_id"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A row without the value (a dropped query term) is not a match.
    #[test]
    fn lookup_rows_must_carry_the_value() {
        let stranger = json!({"sys_id": "s1", "u_edgecc_correlation_id": "other"});
        let ours = json!({"sys_id": "s2", "u_edgecc_correlation_id": "mine"});
        let bare = json!({"sys_id": "s3"});
        let field = "u_edgecc_correlation_id";
        assert_eq!(
            matching_sys_id(&[stranger.clone(), bare.clone()], field, "mine"),
            None
        );
        assert_eq!(
            matching_sys_id(&[stranger, ours], field, "mine").as_deref(),
            Some("s2")
        );
        assert_eq!(matching_sys_id(&[bare], field, ""), None);
    }
}
