//! Import Set mode: one POST per record to the kind's staging table; the
//! instance's coalescing transform maps make every write an upsert. See the
//! parent module's notes for the row and the answer.

use awc::http::Method;
use edgecc_storage::Record;
use serde_json::Value;
use tracing::debug;

use super::super::transport::{excerpt, is_create};
use super::super::Outcome;
use super::answer::{failure_body, mentions, TRANSIENT_MARKERS};
use super::rows::import_row;
use super::ServiceNowAdapter;

impl ServiceNowAdapter {
    /// Import Set mode: one POST per record; see the module notes.
    pub(super) async fn deliver_import(&self, record: &Record) -> Outcome {
        let table = self.table_for(record.kind);
        let row = import_row(record, &self.config);
        let url = format!("{}/api/now/import/{table}", self.base);
        let answer = match self.call(Method::POST, &url, &[], Some(&row)).await {
            Ok(a) => a,
            Err(outcome) => return outcome,
        };
        if !(200..=299).contains(&answer.status) {
            return self.refused(&answer, table, is_create(record));
        }
        if let Some(outcome) = failure_body(&answer) {
            return outcome;
        }
        let parsed: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        let first = match parsed.get("result") {
            Some(Value::Array(rows)) => rows.first(),
            Some(row @ Value::Object(_)) => Some(row),
            _ => None,
        };
        let Some(row) = first else {
            return Outcome::Retry {
                reason: format!("unrecognised import answer: {}", excerpt(&answer.body)),
                retry_after: None,
                crm_down: false,
            };
        };
        let text = |k: &str| row.get(k).and_then(Value::as_str).unwrap_or("");
        match text("status") {
            "inserted" | "updated" | "ignored" | "skipped" => {
                let link = match (text("record_link"), text("table"), text("sys_id")) {
                    (link, _, _) if !link.is_empty() => Some(link.to_string()),
                    (_, t, id) if !t.is_empty() && !id.is_empty() => Some(self.record_url(t, id)),
                    (_, _, id) if !id.is_empty() => Some(id.to_string()),
                    _ => None,
                };
                debug!(correlation_id = %record.correlation_id, status = text("status"),
                    "ServiceNow import row transformed.");
                Outcome::Delivered { link }
            }
            "error" => {
                let message = text("error_message");
                if TRANSIENT_MARKERS.iter().any(|m| mentions(message, m)) {
                    Outcome::Retry {
                        reason: format!(
                            "import error (transient): {}",
                            excerpt(message.as_bytes())
                        ),
                        retry_after: None,
                        crm_down: false,
                    }
                } else {
                    Outcome::Permanent {
                        status: answer.status,
                        reason: format!("import error: {}", excerpt(message.as_bytes())),
                    }
                }
            }
            other => Outcome::Retry {
                reason: format!(
                    "unrecognised import row status `{}`",
                    excerpt(other.as_bytes())
                ),
                retry_after: None,
                crm_down: false,
            },
        }
    }
}
