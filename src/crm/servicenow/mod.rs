//! The `servicenow` CRM adapter, in three modes: `openframe` (ServiceNow's
//! CCaaS voice-interaction API, recommended: see the `openframe` module),
//! `import_set` and `table`.
//!
//! # `import_set`
//!
//! Every record is one POST to an Import Set staging table,
//! `/api/now/import/{staging_table}` (one staging table per record kind).
//! The row is flat and all strings:
//!
//! ```text
//! {
//!   "u_correlation_id": "edge-01:c-42:interaction.update:7",  // import_correlation_field
//!   "u_kind": "interaction.update",                           // <prefix>kind
//!   "u_interaction": "c-42",                                  // <prefix>interaction
//!   "u_sequence": "1234",                                     // import_sequence_field
//!   "u_created_at": "2026-11-21 16:35:19",                    // <prefix>created_at, UTC
//!   "u_data": "{\"event\":\"hold\",\"agent\":\"a1\",\"seq\":7}",  // <prefix>data: the body
//!   "u_state": "", "u_assigned_to": "", "u_queue": "",        // <prefix><field>: the record's
//!   "u_work_notes": "edgecc hold: …", "u_closed_at": ""       //   ServiceNow fields (`fields`)
//! }
//! ```
//!
//! The ServiceNow fields are the one mapping of `fields`, each as
//! `<prefix><field>`, empty ones included (a transform map leaves the
//! target field alone for an empty source field); edgecc's own keys
//! (`event`, `seq`, `ani` …) live only in `<prefix>data`. The instance's
//! transform maps coalesce, so every write is an upsert and a replay is
//! harmless: phone logs and work items on the correlation field; the
//! interaction map on the interaction field, because an interaction's
//! create and its updates must land on one target record (README,
//! "ServiceNow instance set-up"). The sequence lets the transform script
//! ignore an update older than what the target already holds.
//!
//! The answer is `201 {"import_set":…, "result":[{"status":…, "sys_id":…,
//! "table":…, "record_link":…, "error_message":…}, …]}`, one `result` entry
//! per transform map. The record is delivered only when every entry is
//! `inserted`, `updated` or `ignored` (link: the first entry's
//! `record_link`, else its target record's URL). `skipped` (nothing reached
//! the target: an empty coalesce value, a row over the size limit) and an
//! entry whose `table` is the staging table (staged but not transformed:
//! no active map, or an asynchronous import set) are permanent; `error` is
//! permanent unless its message looks transient ([`TRANSIENT_MARKERS`]:
//! lock, timeout, "try again" …), then it is retried without counting
//! towards the breaker. A permanent entry wins over a transient one.
//!
//! # `table` (no instance customisation)
//!
//! Creates go to the Table API (`interaction`, `sn_openframe_phone_log`,
//! `awa_work_item` by default) after a lookup by the correlation field
//! (`u_edgecc_correlation_id`, a column deploy/servicenow adds), so a
//! replay finds the earlier record instead of making a second one. Before
//! the first delivery the lookup fields are checked in `sys_dictionary`
//! (ServiceNow drops a query term on a missing field and answers other
//! rows), and a lookup answer counts only for a row that carries the value
//! looked for. The sys_id of
//! each create is kept in a persisted [`StateTree`] (`c:<correlation id>`,
//! and `i:<interaction key>` for the interaction), so updates PATCH
//! `/api/now/table/{table_interaction}/{sys_id}`; without a stored sys_id the
//! interaction is looked up by `table_interaction_key_field`. A phone log,
//! once created, becomes the interaction's `channel_metadata_table` /
//! `channel_metadata_document`; a work item is created with
//! `document_table` / `document_id` naming its interaction. A lookup, its
//! create, and the map write for one record happen in one `deliver` call;
//! the sync worker never has two records of one interaction in flight, so
//! two attempts for one call never race.
//!
//! # Answers common to both modes
//!
//! The status classes of [`super::transport::classify`] apply (2xx, 409,
//! "already exists" delivered; 408/429/5xx retried with `Retry-After`; 403
//! and other 4xx permanent); ServiceNow's `400 Invalid table …` (a table
//! name in the config the instance lacks) is permanent with a reason that
//! names the config key, and logged at error level. In addition, a 2xx whose JSON body says
//! `"status": "failure"` (the scripted REST / import error shape) is a
//! failure: permanent when its message names an ACL, rights, an invalid
//! table, a data policy, a mandatory field or a required parameter
//! ([`PERMANENT_MARKERS`]), retried (not counting
//! towards the breaker) otherwise. A 401 with OAuth fetches a new token and
//! retries once; a 401 after that, or with Basic or API key auth, is logged at error
//! level and retried with `crm_down` so the breaker opens: bad credentials
//! affect every record, and dead-lettering them all would be worse than
//! waiting for an operator to fix the secret.
//!
//! # Layout
//!
//! - this file — [`ServiceNowAdapter`]: build, check, one authenticated
//!   request (`call`: a 401 refreshes an OAuth token once), dispatch by
//!   mode.
//! - [`config`] — [`ServiceNowConfig`] and the name checks.
//! - `auth` — API key, Basic or OAuth 2 and the token cache.
//! - `import_set` — Import Set delivery.
//! - `table` — Table API delivery and the sys_id map.
//! - `dictionary` — table mode's check of its lookup fields.
//! - `links` — phone log and work item linked to their interaction.
//! - `openframe` — the voice-interaction API (`openframe` mode).
//! - `fields` — the one mapping from a record to its target's ServiceNow
//!   fields, used by every mode.
//! - `rows` — the staging row and the Table API row of a record.
//! - `states` — the interaction states sent.
//! - `references` — the sys_ids table mode writes into `channel` and
//!   `queue` (from `service_channel` and `awa_queues`).
//! - `users` — the agent's and the caller's `sys_user` sys_ids (cached)
//!   for `assigned_to` and `opened_for`.
//! - `awa` — callback work items routed through the AWA Routing API.
//! - `jwt` — the signed assertion of the OAuth JWT bearer grant.
//! - `answer` — FAILURE bodies, `result` objects, marker words.

mod answer;
mod auth;
mod awa;
pub mod config;
mod dictionary;
mod fields;
mod import_set;
mod jwt;
mod links;
mod openframe;
mod references;
mod rows;
mod states;
mod table;
mod users;

use std::time::Duration;

use awc::http::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use awc::http::Method;
use edgecc_storage::{Record, RecordKind, StateTree};
use serde_json::Value;
use tracing::{debug, error};

pub use answer::{PERMANENT_MARKERS, TRANSIENT_MARKERS};
pub use auth::{API_KEY_HEADER, TOKEN_LIFETIME_MS_DEFAULT, TOKEN_REFRESH_MARGIN_MS};
pub use awa::{AWA_ROUTE_PATH, AWA_WORK_ITEM_TABLE};
pub use config::{
    ServiceNowAuth, ServiceNowConfig, ServiceNowMode, NAME_BYTES_MAX, PREFIX_BYTES_MAX,
};
pub use fields::ANONYMOUS_CALLER;
pub use jwt::{JWT_BEARER_GRANT, JWT_LIFETIME_SECS};
pub use openframe::VOICE_INTERACTION_PATH;
pub use references::{is_sys_id, SYS_ID_LEN};
pub use users::{USER_CACHE_MAX, USER_CACHE_TTL_MS, USER_TABLE};

use super::transport::{classify, excerpt, exchange, transport_retry, Answer, TIMEOUT_MS_MAX};
use super::{AdapterError, CrmAdapter, LocalBoxFuture, Outcome};
use crate::net::{check_timeout, check_url, http_client, SettingError};
use auth::{build_auth, Auth};
use config::check_name;
use references::check_sys_id;

/// The ServiceNow adapter. Holds an awc client, so it is `!Send`: build it
/// on the arbiter that runs the sync worker.
pub struct ServiceNowAdapter {
    /// Pooled HTTP client with the configured timeouts.
    client: awc::Client,
    /// Instance base URL without a trailing `/`.
    base: String,
    /// The validated configuration (names, mode).
    config: ServiceNowConfig,
    /// Credentials and the token cache.
    auth: Auth,
    /// Table mode's persisted sys_id map (`c:<correlation id>` and
    /// `i:<interaction key>` → sys_id).
    sys_ids: StateTree,
    /// Bound on one request including reading the answer.
    request_timeout: Duration,
    /// Table mode: the verdict of the start-up check of the lookup fields
    /// against `sys_dictionary` (`None` until the instance gave one).
    dictionary: dictionary::Verdict,
    /// Agent id → `sys_user` sys_id, for `assigned_to` (bounded).
    users: users::UserCache,
    /// Caller number → `sys_user` sys_id, for `opened_for` (bounded).
    callers: users::UserCache,
    /// edgecc queues already logged as missing from `awa_queues` (so each
    /// is logged once; bounded by [`UNMAPPED_LOGGED_MAX`]).
    unmapped_queues: std::cell::RefCell<std::collections::HashSet<String>>,
}

/// Most unmapped queue names remembered for logging once.
const UNMAPPED_LOGGED_MAX: usize = 256;

impl std::fmt::Debug for ServiceNowAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceNowAdapter")
            .field("instance_url", &self.base)
            .field("mode", &self.config.mode)
            .field("auth", &self.config.auth)
            .finish()
    }
}

/// Why a request produced no usable answer: already an outcome.
type Early = Outcome;

impl ServiceNowAdapter {
    /// Validates `config`, reads the secret files and builds the client.
    /// `sys_ids` is the `Tree::CrmSysIds` state tree (used in table mode).
    /// Errors name the key (`crm.servicenow.<key>`) and the file.
    pub fn new(config: &ServiceNowConfig, sys_ids: StateTree) -> Result<Self, AdapterError> {
        Self::check(config)?;
        let https = check_url("crm.servicenow.instance_url", &config.instance_url)?;
        let (connect, request) = timeouts(config)?;
        let auth = build_auth(config)?;
        Ok(ServiceNowAdapter {
            client: http_client(connect, request, https)?,
            base: config.instance_url.trim_end_matches('/').to_string(),
            config: config.clone(),
            auth,
            sys_ids,
            request_timeout: request,
            dictionary: Default::default(),
            users: Default::default(),
            callers: Default::default(),
            unmapped_queues: Default::default(),
        })
    }

    /// Checks the settings without touching files or the network (config
    /// loading and `check-config` run it too). Errors name the key.
    pub fn check(config: &ServiceNowConfig) -> Result<(), SettingError> {
        check_url("crm.servicenow.instance_url", &config.instance_url)?;
        timeouts(config)?;
        for (key, name) in [
            ("import_table_interaction", &config.import_table_interaction),
            ("import_table_phone_log", &config.import_table_phone_log),
            ("import_table_work_item", &config.import_table_work_item),
            ("import_correlation_field", &config.import_correlation_field),
            ("import_sequence_field", &config.import_sequence_field),
            ("table_interaction", &config.table_interaction),
            ("table_phone_log", &config.table_phone_log),
            ("table_work_item", &config.table_work_item),
            ("table_correlation_field", &config.table_correlation_field),
            (
                "table_interaction_key_field",
                &config.table_interaction_key_field,
            ),
        ] {
            check_name(key, name, false)?;
        }
        check_name("agent_user_field", &config.agent_user_field, false)?;
        for field in &config.caller_user_fields {
            check_name("caller_user_fields", field, false)?;
        }
        if let Some(queue) = &config.awa_queue {
            check_sys_id("awa_queue", queue)?;
        }
        if let Some(channel) = &config.service_channel {
            check_sys_id("service_channel", channel)?;
        }
        for (queue, sys_id) in &config.awa_queues {
            check_sys_id(&format!("awa_queues.{queue}"), sys_id)?;
        }
        check_name("import_field_prefix", &config.import_field_prefix, true)?;
        check_name("table_field_prefix", &config.table_field_prefix, true)
    }

    /// Sends one request (JSON body optional), refreshing an OAuth token on
    /// a 401 and trying once more. Transport failures and a lasting 401 come
    /// back as the outcome to report.
    async fn call(
        &self,
        method: Method,
        url: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Answer, Early> {
        let mut refreshed = false;
        loop {
            let credential = self.authorization(refreshed).await?;
            let mut req = self
                .client
                .request(method.clone(), url)
                .insert_header((ACCEPT, HeaderValue::from_static("application/json")))
                .insert_header(credential);
            if !query.is_empty() {
                req = req
                    .query(&query)
                    .map_err(|e| transport_retry(format!("cannot encode query: {e}")))?;
            }
            let send = match body {
                Some(v) => req
                    .insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")))
                    .send_body(serde_json::to_vec(v).unwrap_or_default()),
                None => req.send(),
            };
            let answer = exchange(send, self.request_timeout)
                .await
                .map_err(|e| transport_retry(e.to_string()))?;
            if answer.status != 401 {
                return Ok(answer);
            }
            if matches!(self.auth, Auth::OAuth { .. }) && !refreshed {
                debug!(url, "ServiceNow answered 401; refreshing the OAuth token.");
                refreshed = true;
                continue;
            }
            error!(url, reason = %excerpt(&answer.body),
                "ServiceNow refused the credentials (401); holding CRM delivery until fixed.");
            return Err(Outcome::Retry {
                reason: format!("HTTP 401 (credentials refused): {}", excerpt(&answer.body)),
                retry_after: None,
                crm_down: true,
            });
        }
    }

    /// The target table (table mode) or staging table (import mode).
    fn table_for(&self, kind: RecordKind) -> &str {
        let c = &self.config;
        match (self.config.mode, kind) {
            (ServiceNowMode::ImportSet, RecordKind::PhoneLogCreate) => &c.import_table_phone_log,
            (ServiceNowMode::ImportSet, RecordKind::WorkItemCreate) => &c.import_table_work_item,
            (ServiceNowMode::ImportSet, _) => &c.import_table_interaction,
            (ServiceNowMode::Table, RecordKind::PhoneLogCreate) => &c.table_phone_log,
            (ServiceNowMode::Table, RecordKind::WorkItemCreate) => &c.table_work_item,
            (ServiceNowMode::Table | ServiceNowMode::Openframe, _) => &c.table_interaction,
        }
    }

    /// The `[crm.servicenow]` key that names `table` (for error messages).
    fn table_key(&self, table: &str) -> &'static str {
        let c = &self.config;
        [
            ("import_table_interaction", &c.import_table_interaction),
            ("import_table_phone_log", &c.import_table_phone_log),
            ("import_table_work_item", &c.import_table_work_item),
            ("table_interaction", &c.table_interaction),
            ("table_phone_log", &c.table_phone_log),
            ("table_work_item", &c.table_work_item),
        ]
        .into_iter()
        .find(|(_, name)| name.as_str() == table)
        .map_or("instance_url", |(key, _)| key)
    }

    /// The outcome of a non-2xx answer from `table`: ServiceNow's
    /// `400 Invalid table` is a configuration error, logged at error level
    /// and dead-lettered with a reason naming the key (every record of that
    /// kind will get it until the config is fixed; `edgecc outbox dead
    /// requeue` puts them back); anything else goes by
    /// [`super::transport::classify`].
    fn refused(&self, answer: &Answer, table: &str, is_create: bool) -> Outcome {
        let Some(message) = answer::invalid_table(answer) else {
            return classify(answer, is_create);
        };
        let key = self.table_key(table);
        error!(table, key = %format!("crm.servicenow.{key}"), reason = %message,
            "ServiceNow has no such table; fix the config, then requeue the dead letters.");
        Outcome::Permanent {
            status: answer.status,
            reason: format!(
                "configuration: crm.servicenow.{key} = `{table}` is not a table of the instance ({message})"
            ),
        }
    }

    /// The URL of a record in the instance's UI.
    fn record_url(&self, table: &str, sys_id: &str) -> String {
        format!("{}/{table}.do?sys_id={sys_id}", self.base)
    }

    /// Delivers one record in the configured mode.
    async fn deliver_one(&self, record: &Record) -> Outcome {
        if self.config.mode != ServiceNowMode::ImportSet {
            if let Err(outcome) = self.dictionary_checked().await {
                return outcome;
            }
        }
        match (self.config.mode, record.kind) {
            (ServiceNowMode::Openframe, _) => self.deliver_openframe(record).await,
            (ServiceNowMode::ImportSet, _) => self.deliver_import(record).await,
            (ServiceNowMode::Table, RecordKind::InteractionUpdate) => {
                self.deliver_table_update(record).await
            }
            (ServiceNowMode::Table, RecordKind::WorkItemCreate)
                if awa::callback_queue(record, &self.config).is_some() =>
            {
                self.deliver_table_awa(record).await
            }
            (ServiceNowMode::Table, _) => self.deliver_table_create(record).await,
        }
    }
}

impl CrmAdapter for ServiceNowAdapter {
    fn name(&self) -> &'static str {
        "servicenow"
    }

    fn deliver(&self, records: Vec<Record>) -> LocalBoxFuture<'_, Vec<Outcome>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(records.len());
            for record in &records {
                out.push(self.deliver_one(record).await);
            }
            out
        })
    }
}

/// The connect and request timeouts of `[crm.servicenow]`, checked.
fn timeouts(config: &ServiceNowConfig) -> Result<(Duration, Duration), SettingError> {
    Ok((
        check_timeout(
            "crm.servicenow.connect_timeout_ms",
            config.connect_timeout_ms,
            TIMEOUT_MS_MAX,
        )?,
        check_timeout(
            "crm.servicenow.request_timeout_ms",
            config.request_timeout_ms,
            TIMEOUT_MS_MAX,
        )?,
    ))
}
