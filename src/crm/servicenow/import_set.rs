//! Import Set mode: one POST per record to the kind's staging table; the
//! instance's coalescing transform maps make every write an upsert. See the
//! parent module's notes for the row and the answer.

use awc::http::Method;
use edgecc_storage::Record;
use serde_json::Value;
use tracing::{debug, error};

use super::super::transport::{excerpt, is_create};
use super::super::Outcome;
use super::answer::{failure_body, mentions, TRANSIENT_MARKERS};
use super::rows::import_row;
use super::ServiceNowAdapter;

impl ServiceNowAdapter {
    /// Import Set mode: one POST per record; see the module notes.
    pub(super) async fn deliver_import(&self, record: &Record) -> Outcome {
        let table = self.table_for(record.kind);
        let fields = self.record_fields(record).await;
        let row = import_row(record, &self.config, &fields);
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
        let results: Vec<&Value> = match parsed.get("result") {
            Some(Value::Array(rows)) => rows.iter().collect(),
            Some(row @ Value::Object(_)) => vec![row],
            _ => Vec::new(),
        };
        if results.is_empty() {
            return Outcome::Retry {
                reason: format!("unrecognised import answer: {}", excerpt(&answer.body)),
                retry_after: None,
                crm_down: false,
            };
        }
        // One result per transform map: the record is delivered only when
        // every map put it in its target. A permanent fault of any map wins
        // over a transient one (retrying cannot fix it); the maps coalesce,
        // so a retry after a partial success changes nothing that landed.
        let outcomes: Vec<Outcome> = results
            .iter()
            .map(|r| self.import_result(record, table, r, answer.status))
            .collect();
        if let Some(p) = outcomes
            .iter()
            .find(|o| matches!(o, Outcome::Permanent { .. }))
        {
            return p.clone();
        }
        if let Some(r) = outcomes.iter().find(|o| matches!(o, Outcome::Retry { .. })) {
            return r.clone();
        }
        outcomes
            .into_iter()
            .next()
            .unwrap_or(Outcome::Delivered { link: None })
    }

    /// The outcome of one transform map's `result` entry.
    fn import_result(&self, record: &Record, staging: &str, row: &Value, status: u16) -> Outcome {
        let text = |k: &str| row.get(k).and_then(Value::as_str).unwrap_or("");
        let map = text("transform_map");
        if text("table") == staging {
            // Staged, not transformed: no active transform map, or the
            // import set table runs asynchronously. Nothing reached a target
            // and a resend would only stage another row.
            error!(staging, key = %format!("crm.servicenow.{}", self.table_key(staging)),
                "ServiceNow staged the row without transforming it; check the transform map and the synchronous mode.");
            return Outcome::Permanent {
                status,
                reason: format!(
                    "configuration: the row was staged in `{staging}` but not transformed \
                     (no active transform map, or the import set runs asynchronously)"
                ),
            };
        }
        match text("status") {
            "inserted" | "updated" | "ignored" => {
                let link = match (text("record_link"), text("table"), text("sys_id")) {
                    (link, _, _) if !link.is_empty() => Some(link.to_string()),
                    (_, t, id) if !t.is_empty() && !id.is_empty() => Some(self.record_url(t, id)),
                    (_, _, id) if !id.is_empty() => Some(id.to_string()),
                    _ => None,
                };
                debug!(correlation_id = %record.correlation_id, map, status = text("status"),
                    "ServiceNow import row transformed.");
                Outcome::Delivered { link }
            }
            // Nothing reached the target (an empty coalesce value, a row
            // over the row size limit); it would be skipped again.
            "skipped" => Outcome::Permanent {
                status,
                reason: format!(
                    "import row skipped by map `{}` into `{}`: {}",
                    excerpt(map.as_bytes()),
                    excerpt(text("table").as_bytes()),
                    excerpt(text("status_message").as_bytes())
                ),
            },
            "error" => {
                let message = match text("error_message") {
                    "" => text("status_message"),
                    m => m,
                };
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
                        status,
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
