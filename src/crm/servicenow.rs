//! The `servicenow` CRM adapter, in two modes.
//!
//! # `import_set` (preferred)
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
//!   "u_created_at": "2026-11-21T16:35:19.394Z",               // <prefix>created_at
//!   "u_caller": "+15550100", "u_tags": "[\"vip\"]"            // data, one level, as text
//! }
//! ```
//!
//! The record's `data` object is flattened one level into `<prefix><key>`
//! fields (keys lower-cased, other than `[a-z0-9_]` replaced by `_`);
//! nested values are sent as JSON text, `null` as `""`. The metadata fields
//! win over a data key of the same name. The instance's transform maps
//! coalesce, so every write is an upsert and a replay is harmless: phone
//! logs and work items on the correlation field; the interaction map on the
//! interaction field, because an interaction's create and its updates must
//! land on one target record (README, "ServiceNow instance set-up"). The
//! sequence lets the transform script ignore an update older than what the
//! target already holds.
//!
//! The answer is `201 {"import_set":…, "result":[{"status":…, "sys_id":…,
//! "table":…, "record_link":…, "error_message":…}]}`: `inserted`,
//! `updated`, `ignored` and `skipped` are delivered (link: `record_link`,
//! else the target record's URL); `error` is permanent unless its message
//! looks transient ([`TRANSIENT_MARKERS`]: lock, timeout, "try again" …),
//! then it is retried without counting towards the breaker.
//!
//! # `table` (no instance customisation)
//!
//! Creates go to the Table API (`interaction`, `sn_open_frame_phone_log`,
//! `task` by default) after a lookup by the correlation field, so a replay
//! finds the earlier record instead of making a second one. The sys_id of
//! each create is kept in a persisted [`StateTree`] (`c:<correlation id>`,
//! and `i:<interaction key>` for the interaction), so updates PATCH
//! `/api/now/table/{table_interaction}/{sys_id}`; without a stored sys_id the
//! interaction is looked up by `table_interaction_key_field`. A lookup, its
//! create, and the map write for one record happen in one `deliver` call;
//! the sync worker never has two records of one interaction in flight, so
//! two attempts for one call never race.
//!
//! # Answers common to both modes
//!
//! The status classes of [`super::webhook`]'s `classify` apply (2xx, 409,
//! "already exists" delivered; 408/429/5xx retried with `Retry-After`; 403
//! and other 4xx permanent). In addition, a 2xx whose JSON body says
//! `"status": "failure"` (the scripted REST / import error shape) is a
//! failure: permanent when its message names an ACL, rights, an invalid
//! table or a data policy ([`PERMANENT_MARKERS`]), retried (not counting
//! towards the breaker) otherwise. A 401 with OAuth fetches a new token and
//! retries once; a 401 after that, or with Basic auth, is logged at error
//! level and retried with `crm_down` so the breaker opens: bad credentials
//! affect every record, and dead-lettering them all would be worse than
//! waiting for an operator to fix the secret.

use std::cell::RefCell;
use std::path::PathBuf;
use std::time::Duration;

use awc::http::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use awc::http::Method;
use base64::Engine as _;
use edgecc_storage::{Record, RecordKind, StateTree};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tracing::{debug, error, warn};

use super::webhook::{
    check_timeout, check_url, classify, exchange, http_client, is_create, read_secret_text,
    transport_retry, Answer, CONNECT_TIMEOUT_MS_DEFAULT, REQUEST_TIMEOUT_MS_DEFAULT,
};
use super::{excerpt, wire, CrmAdapter, LocalBoxFuture, Outcome};

/// Longest table or field name accepted (ServiceNow's column-name limit).
pub const NAME_BYTES_MAX: usize = 80;
/// Longest field prefix accepted.
pub const PREFIX_BYTES_MAX: usize = 40;
/// A token is refreshed this long before ServiceNow says it expires, in ms,
/// so a request never leaves with a token about to lapse.
pub const TOKEN_REFRESH_MARGIN_MS: u64 = 30_000;
/// Token lifetime assumed when the token answer gives none, in ms.
pub const TOKEN_LIFETIME_MS_DEFAULT: u64 = 30 * 60 * 1000;
/// Words in a FAILURE body's message that mean the record will never be
/// accepted as it is (matched case-insensitively).
pub const PERMANENT_MARKERS: &[&str] = &[
    "acl",
    "not authorized",
    "insufficient rights",
    "access denied",
    "invalid table",
    "data policy",
    "mandatory",
];
/// Words in an import row's `error_message` that mean the instance was busy
/// rather than the row wrong (matched case-insensitively).
pub const TRANSIENT_MARKERS: &[&str] = &[
    "timeout",
    "timed out",
    "try again",
    "temporarily",
    "lock",
    "busy",
    "unavailable",
    "maximum execution time",
];
/// Whether `text` has a word starting with `marker` (ASCII case ignored):
/// "ACL" and "ACLs" mention "acl", "Oracle" does not; "locked" mentions
/// "lock", "blocked" does not.
fn mentions(text: &str, marker: &str) -> bool {
    let text = text.to_ascii_lowercase();
    text.match_indices(marker).any(|(at, _)| {
        !text[..at]
            .chars()
            .next_back()
            .is_some_and(char::is_alphanumeric)
    })
}

/// State-tree key prefix: correlation id of a create → its sys_id.
const KEY_CREATE: &str = "c:";
/// State-tree key prefix: interaction key → the interaction's sys_id.
const KEY_INTERACTION: &str = "i:";

/// How records reach the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceNowMode {
    /// Import Set staging tables with coalescing transform maps (upserts).
    ImportSet,
    /// The Table API directly: lookup-before-create, PATCH by sys_id.
    Table,
}

/// How the adapter authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceNowAuth {
    /// HTTP Basic with `user` and `password_file`.
    Basic,
    /// OAuth 2 password grant: `oauth_client_id`, `oauth_client_secret_file`,
    /// `user`, `password_file`.
    OauthPassword,
    /// OAuth 2 client-credentials grant: `oauth_client_id`,
    /// `oauth_client_secret_file`.
    OauthClientCredentials,
}

/// `[crm.servicenow]`: the instance, the mode, the credentials and the
/// table and field names. Secrets are file paths only.
///
/// ```toml
/// [crm.servicenow]
/// instance_url = "https://acme.service-now.com"
/// mode = "import_set"                 # or "table"
/// auth = "basic"                      # or "oauth_password", "oauth_client_credentials"
/// user = "edgecc.integration"
/// password_file = "/run/credentials/edgecc.service/servicenow_password"
/// # oauth_client_id = "…"
/// # oauth_client_secret_file = "/run/credentials/edgecc.service/servicenow_client_secret"
/// connect_timeout_ms = 5000
/// request_timeout_ms = 10000
/// import_table_interaction = "u_edgecc_interaction_import"
/// import_table_phone_log = "u_edgecc_phone_log_import"
/// import_table_work_item = "u_edgecc_work_item_import"
/// import_correlation_field = "u_correlation_id"
/// import_sequence_field = "u_sequence"
/// import_field_prefix = "u_"
/// table_interaction = "interaction"
/// table_phone_log = "sn_open_frame_phone_log"
/// table_work_item = "task"
/// table_correlation_field = "correlation_id"
/// table_interaction_key_field = "correlation_display"
/// table_field_prefix = ""
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceNowConfig {
    /// The instance's base URL, e.g. `https://acme.service-now.com`.
    pub instance_url: String,
    /// Import Set (upserts, needs staging tables) or Table API.
    #[serde(default = "mode_default")]
    pub mode: ServiceNowMode,
    /// Basic or one of the OAuth 2 grants.
    #[serde(default = "auth_default")]
    pub auth: ServiceNowAuth,
    /// Integration user (Basic and the OAuth password grant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// File holding the user's password (Basic, OAuth password grant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// OAuth application client id (System OAuth > Application Registry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_client_id: Option<String>,
    /// File holding the OAuth client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_client_secret_file: Option<PathBuf>,
    /// TCP + TLS connect timeout, ms.
    #[serde(default = "connect_timeout_ms_default")]
    pub connect_timeout_ms: u64,
    /// Whole-request timeout (including reading the answer), ms.
    #[serde(default = "request_timeout_ms_default")]
    pub request_timeout_ms: u64,
    /// Staging table for `interaction.create` and `interaction.update`.
    #[serde(default = "import_table_interaction_default")]
    pub import_table_interaction: String,
    /// Staging table for `phone_log.create`.
    #[serde(default = "import_table_phone_log_default")]
    pub import_table_phone_log: String,
    /// Staging table for `work_item.create`.
    #[serde(default = "import_table_work_item_default")]
    pub import_table_work_item: String,
    /// Staging field carrying the correlation id (the coalesce field of the
    /// phone-log and work-item transform maps).
    #[serde(default = "import_correlation_field_default")]
    pub import_correlation_field: String,
    /// Staging field carrying the outbox sequence (for the update check).
    #[serde(default = "import_sequence_field_default")]
    pub import_sequence_field: String,
    /// Prefix of every other staging field (`u_` for custom columns).
    #[serde(default = "import_field_prefix_default")]
    pub import_field_prefix: String,
    /// Table mode: the interaction table.
    #[serde(default = "table_interaction_default")]
    pub table_interaction: String,
    /// Table mode: the phone log table.
    #[serde(default = "table_phone_log_default")]
    pub table_phone_log: String,
    /// Table mode: the work item table.
    #[serde(default = "table_work_item_default")]
    pub table_work_item: String,
    /// Table mode: the field holding our correlation id on every table
    /// (`correlation_id` exists on every task-derived table).
    #[serde(default = "table_correlation_field_default")]
    pub table_correlation_field: String,
    /// Table mode: the interaction field holding our interaction key, used
    /// to find the interaction for an update when no sys_id is stored.
    #[serde(default = "table_interaction_key_field_default")]
    pub table_interaction_key_field: String,
    /// Table mode: prefix of the data fields (empty: data keys are the
    /// table's own field names; the Table API ignores unknown fields).
    #[serde(default)]
    pub table_field_prefix: String,
}

fn mode_default() -> ServiceNowMode {
    ServiceNowMode::ImportSet
}
fn auth_default() -> ServiceNowAuth {
    ServiceNowAuth::Basic
}
fn connect_timeout_ms_default() -> u64 {
    CONNECT_TIMEOUT_MS_DEFAULT
}
fn request_timeout_ms_default() -> u64 {
    REQUEST_TIMEOUT_MS_DEFAULT
}
fn import_table_interaction_default() -> String {
    "u_edgecc_interaction_import".into()
}
fn import_table_phone_log_default() -> String {
    "u_edgecc_phone_log_import".into()
}
fn import_table_work_item_default() -> String {
    "u_edgecc_work_item_import".into()
}
fn import_correlation_field_default() -> String {
    "u_correlation_id".into()
}
fn import_sequence_field_default() -> String {
    "u_sequence".into()
}
fn import_field_prefix_default() -> String {
    "u_".into()
}
fn table_interaction_default() -> String {
    "interaction".into()
}
fn table_phone_log_default() -> String {
    "sn_open_frame_phone_log".into()
}
fn table_work_item_default() -> String {
    "task".into()
}
fn table_correlation_field_default() -> String {
    "correlation_id".into()
}
fn table_interaction_key_field_default() -> String {
    "correlation_display".into()
}

impl ServiceNowConfig {
    /// A config with every default, for `instance_url`.
    pub fn with_instance(instance_url: &str) -> ServiceNowConfig {
        ServiceNowConfig {
            instance_url: instance_url.to_string(),
            mode: mode_default(),
            auth: auth_default(),
            user: None,
            password_file: None,
            oauth_client_id: None,
            oauth_client_secret_file: None,
            connect_timeout_ms: CONNECT_TIMEOUT_MS_DEFAULT,
            request_timeout_ms: REQUEST_TIMEOUT_MS_DEFAULT,
            import_table_interaction: import_table_interaction_default(),
            import_table_phone_log: import_table_phone_log_default(),
            import_table_work_item: import_table_work_item_default(),
            import_correlation_field: import_correlation_field_default(),
            import_sequence_field: import_sequence_field_default(),
            import_field_prefix: import_field_prefix_default(),
            table_interaction: table_interaction_default(),
            table_phone_log: table_phone_log_default(),
            table_work_item: table_work_item_default(),
            table_correlation_field: table_correlation_field_default(),
            table_interaction_key_field: table_interaction_key_field_default(),
            table_field_prefix: String::new(),
        }
    }
}

/// Checks a ServiceNow table/field name (or prefix when `prefix`).
fn check_name(key: &str, name: &str, prefix: bool) -> Result<(), String> {
    let max = if prefix {
        PREFIX_BYTES_MAX
    } else {
        NAME_BYTES_MAX
    };
    let ok = (prefix || !name.is_empty())
        && name.len() <= max
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "key `crm.servicenow.{key}`: `{name}` must be 1..={max} characters of a-z, 0-9 and _"
        ))
    }
}

/// An OAuth access token and when to stop using it.
#[derive(Clone)]
struct Token {
    /// The bearer token.
    access: String,
    /// Wall-clock ms after which a new token is fetched first.
    refresh_at_ms: u64,
}

/// Credentials, read from their files at start-up.
enum Auth {
    /// `Authorization: Basic …`, precomputed.
    Basic(String),
    /// An OAuth 2 grant and its cached token.
    OAuth {
        /// The grant form fields (grant_type, client_id, client_secret, and
        /// username/password for the password grant).
        form: Vec<(&'static str, String)>,
        /// The current token; `RefCell` because the adapter lives on one
        /// arbiter and is shared by `&self` across concurrent deliveries.
        token: RefCell<Option<Token>>,
    },
}

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
}

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
    /// `sys_ids` is `storage.state("crm_sys_ids")` (used in table mode).
    /// Errors name the key (`crm.servicenow.<key>`) and the file.
    pub fn new(config: &ServiceNowConfig, sys_ids: StateTree) -> Result<Self, String> {
        Self::check(config)?;
        let https = check_url("crm.servicenow.instance_url", &config.instance_url)?;
        let connect = check_timeout(
            "crm.servicenow.connect_timeout_ms",
            config.connect_timeout_ms,
        )?;
        let request = check_timeout(
            "crm.servicenow.request_timeout_ms",
            config.request_timeout_ms,
        )?;
        let auth = build_auth(config)?;
        Ok(ServiceNowAdapter {
            client: http_client(connect, request, https)?,
            base: config.instance_url.trim_end_matches('/').to_string(),
            config: config.clone(),
            auth,
            sys_ids,
            request_timeout: request,
        })
    }

    /// Checks the settings without touching files or the network (config
    /// loading and `check-config` run it too). Errors name the key.
    pub fn check(config: &ServiceNowConfig) -> Result<(), String> {
        check_url("crm.servicenow.instance_url", &config.instance_url)?;
        check_timeout(
            "crm.servicenow.connect_timeout_ms",
            config.connect_timeout_ms,
        )?;
        check_timeout(
            "crm.servicenow.request_timeout_ms",
            config.request_timeout_ms,
        )?;
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
        check_name("import_field_prefix", &config.import_field_prefix, true)?;
        check_name("table_field_prefix", &config.table_field_prefix, true)
    }

    /// The current bearer token, fetched when missing or about to expire.
    async fn bearer(&self, form: &[(&'static str, String)], force: bool) -> Result<String, Early> {
        if let Auth::OAuth { token, .. } = &self.auth {
            let cached = token.borrow().clone();
            if let Some(t) = cached {
                if !force && crate::clock::now_ms() < t.refresh_at_ms {
                    return Ok(t.access);
                }
            }
        }
        let url = format!("{}/oauth_token.do", self.base);
        let send = self
            .client
            .post(&url)
            .insert_header((ACCEPT, HeaderValue::from_static("application/json")))
            .send_form(&form);
        let answer = exchange(send, self.request_timeout)
            .await
            .map_err(|e| transport_retry(format!("OAuth token request: {e}")))?;
        if !(200..=299).contains(&answer.status) {
            error!(status = answer.status, reason = %excerpt(&answer.body),
                "ServiceNow refused the OAuth credentials; check the client id and secret files.");
            return Err(Outcome::Retry {
                reason: format!(
                    "OAuth token request: HTTP {}: {}",
                    answer.status,
                    excerpt(&answer.body)
                ),
                retry_after: answer.retry_after,
                crm_down: true,
            });
        }
        let parsed: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        let Some(access) = parsed.get("access_token").and_then(Value::as_str) else {
            return Err(transport_retry(format!(
                "OAuth token answer has no access_token: {}",
                excerpt(&answer.body)
            )));
        };
        let lifetime_ms = parsed
            .get("expires_in")
            .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
            .map(|s| s.saturating_mul(1000))
            .unwrap_or(TOKEN_LIFETIME_MS_DEFAULT);
        let refresh_at_ms = crate::clock::now_ms()
            + lifetime_ms.saturating_sub(TOKEN_REFRESH_MARGIN_MS.min(lifetime_ms / 2));
        if let Auth::OAuth { token, .. } = &self.auth {
            *token.borrow_mut() = Some(Token {
                access: access.to_string(),
                refresh_at_ms,
            });
        }
        debug!(instance = %self.base, "ServiceNow OAuth token fetched.");
        Ok(access.to_string())
    }

    /// The `Authorization` value for the next request.
    async fn authorization(&self, force_refresh: bool) -> Result<String, Early> {
        match &self.auth {
            Auth::Basic(value) => Ok(value.clone()),
            Auth::OAuth { form, .. } => Ok(format!(
                "Bearer {}",
                self.bearer(form, force_refresh).await?
            )),
        }
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
            let authorization = self.authorization(refreshed).await?;
            let mut req = self
                .client
                .request(method.clone(), url)
                .insert_header((ACCEPT, HeaderValue::from_static("application/json")))
                .insert_header((AUTHORIZATION, authorization));
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
                .map_err(transport_retry)?;
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
            (ServiceNowMode::Table, _) => &c.table_interaction,
        }
    }

    /// The URL of a record in the instance's UI.
    fn record_url(&self, table: &str, sys_id: &str) -> String {
        format!("{}/{table}.do?sys_id={sys_id}", self.base)
    }

    /// Import Set mode: one POST per record; see the module notes.
    async fn deliver_import(&self, record: &Record) -> Outcome {
        let table = self.table_for(record.kind);
        let row = import_row(record, &self.config);
        let url = format!("{}/api/now/import/{table}", self.base);
        let answer = match self.call(Method::POST, &url, &[], Some(&row)).await {
            Ok(a) => a,
            Err(outcome) => return outcome,
        };
        if !(200..=299).contains(&answer.status) {
            return classify(&answer, is_create(record));
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

    /// Reads a stored sys_id (errors are logged and read as "not stored").
    fn stored(&self, key: &str) -> Option<String> {
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
    async fn remember(&self, key: &str, sys_id: &str) {
        if let Err(e) = self.sys_ids.put(key.as_bytes(), sys_id.as_bytes()).await {
            warn!(key, error = %e, "sys_id not stored; later updates will look it up.");
        }
    }

    /// `GET /api/now/table/{table}?sysparm_query={field}={value}`: the
    /// sys_id of the first match, or `None`; or the outcome to report.
    async fn lookup(&self, table: &str, field: &str, value: &str) -> Result<Option<String>, Early> {
        let url = format!("{}/api/now/table/{table}", self.base);
        // `^` separates encoded-query terms; `^^` is a literal caret.
        let query = format!("{field}={}", value.replace('^', "^^"));
        let params = [
            ("sysparm_query", query.as_str()),
            ("sysparm_limit", "1"),
            ("sysparm_fields", "sys_id"),
        ];
        let answer = self.call(Method::GET, &url, &params, None).await?;
        if !(200..=299).contains(&answer.status) {
            return Err(classify(&answer, false));
        }
        if let Some(outcome) = failure_body(&answer) {
            return Err(outcome);
        }
        let parsed: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        match parsed.get("result").and_then(Value::as_array) {
            Some(rows) => Ok(rows
                .first()
                .and_then(|r| r.get("sys_id"))
                .and_then(Value::as_str)
                .map(str::to_string)),
            None => Err(Outcome::Retry {
                reason: format!("unrecognised lookup answer: {}", excerpt(&answer.body)),
                retry_after: None,
                crm_down: false,
            }),
        }
    }

    /// Table mode, a create: stored sys_id, else lookup, else POST.
    async fn deliver_table_create(&self, record: &Record) -> Outcome {
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
                let body = table_row(record, &self.config);
                let answer = match self.call(Method::POST, &url, &[], Some(&body)).await {
                    Ok(a) => a,
                    Err(outcome) => return outcome,
                };
                if !(200..=299).contains(&answer.status) {
                    return classify(&answer, true);
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
    async fn deliver_table_update(&self, record: &Record) -> Outcome {
        let table = self.config.table_interaction.clone();
        let key = format!("{KEY_INTERACTION}{}", record.interaction_key);
        let sys_id = match self.stored(&key) {
            Some(id) => id,
            None => match self
                .lookup(
                    &table,
                    &self.config.table_interaction_key_field,
                    &record.interaction_key,
                )
                .await
            {
                Ok(Some(id)) => {
                    self.remember(&key, &id).await;
                    id
                }
                Ok(None) => {
                    return Outcome::Permanent {
                        status: 404,
                        reason: format!(
                            "interaction {} not found at the CRM (its create was not delivered)",
                            record.interaction_key
                        ),
                    }
                }
                Err(outcome) => return outcome,
            },
        };
        let url = format!("{}/api/now/table/{table}/{sys_id}", self.base);
        let body = table_row(record, &self.config);
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
            return classify(&answer, false);
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

    /// Delivers one record in the configured mode.
    async fn deliver_one(&self, record: &Record) -> Outcome {
        match (self.config.mode, record.kind) {
            (ServiceNowMode::ImportSet, _) => self.deliver_import(record).await,
            (ServiceNowMode::Table, RecordKind::InteractionUpdate) => {
                self.deliver_table_update(record).await
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

/// Reads the credentials the auth kind needs; errors name key and file.
fn build_auth(config: &ServiceNowConfig) -> Result<Auth, String> {
    let user = || {
        config
            .user
            .clone()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| "key `crm.servicenow.user`: required for this auth".to_string())
    };
    let password = || match &config.password_file {
        Some(p) => read_secret_text("crm.servicenow.password_file", p),
        None => Err("key `crm.servicenow.password_file`: required for this auth".to_string()),
    };
    let client = || -> Result<(String, String), String> {
        let id = config
            .oauth_client_id
            .clone()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                "key `crm.servicenow.oauth_client_id`: required for OAuth".to_string()
            })?;
        let secret = match &config.oauth_client_secret_file {
            Some(p) => read_secret_text("crm.servicenow.oauth_client_secret_file", p)?,
            None => {
                return Err(
                    "key `crm.servicenow.oauth_client_secret_file`: required for OAuth".into(),
                )
            }
        };
        Ok((id, secret))
    };
    Ok(match config.auth {
        ServiceNowAuth::Basic => {
            let token = base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                user()?,
                password()?
            ));
            Auth::Basic(format!("Basic {token}"))
        }
        ServiceNowAuth::OauthPassword => {
            let (id, secret) = client()?;
            Auth::OAuth {
                form: vec![
                    ("grant_type", "password".into()),
                    ("client_id", id),
                    ("client_secret", secret),
                    ("username", user()?),
                    ("password", password()?),
                ],
                token: RefCell::new(None),
            }
        }
        ServiceNowAuth::OauthClientCredentials => {
            let (id, secret) = client()?;
            Auth::OAuth {
                form: vec![
                    ("grant_type", "client_credentials".into()),
                    ("client_id", id),
                    ("client_secret", secret),
                ],
                token: RefCell::new(None),
            }
        }
    })
}

/// A 2xx body that says `"status": "failure"`: the outcome it means.
fn failure_body(answer: &Answer) -> Option<Outcome> {
    let parsed: Value = serde_json::from_slice(&answer.body).ok()?;
    let status = parsed.get("status")?.as_str()?;
    if !status.eq_ignore_ascii_case("failure") {
        return None;
    }
    let error = parsed.get("error");
    let part = |k: &str| {
        error
            .and_then(|e| e.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    let message = format!("FAILURE: {} {}", part("message"), part("detail"));
    let message = excerpt(message.trim().as_bytes());
    if PERMANENT_MARKERS.iter().any(|m| mentions(&message, m)) {
        Some(Outcome::Permanent {
            status: answer.status,
            reason: message,
        })
    } else {
        Some(Outcome::Retry {
            reason: message,
            retry_after: answer.retry_after,
            crm_down: false,
        })
    }
}

/// `result.sys_id` of a Table API answer.
fn result_sys_id(body: &[u8]) -> Option<String> {
    Some(result_object(body)?.get("sys_id")?.as_str()?.to_string())
}

/// The `result` object of a Table API answer, if the body is one.
fn result_object(body: &[u8]) -> Option<serde_json::Map<String, Value>> {
    let parsed: Value = serde_json::from_slice(body).ok()?;
    match parsed {
        Value::Object(mut top) => match top.remove("result")? {
            Value::Object(result) => Some(result),
            _ => None,
        },
        _ => None,
    }
}

/// The record's body as JSON (a body that is not JSON becomes a string).
fn record_data(record: &Record) -> Value {
    serde_json::from_slice(&record.body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&record.body).into_owned()))
}

/// A field name from a data key: lower-cased, other than `[a-z0-9_]` → `_`.
fn field_name(prefix: &str, key: &str) -> String {
    let mut name = String::with_capacity(prefix.len() + key.len());
    name.push_str(prefix);
    name.extend(key.chars().map(|c| {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
            c
        } else {
            '_'
        }
    }));
    name
}

/// A JSON value as ServiceNow field text.
fn field_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(_) | Value::Number(_) => value.to_string(),
        Value::Array(_) | Value::Object(_) => value.to_string(),
    }
}

/// Flattens `data` one level into `<prefix><key>` string fields.
fn flatten(data: &Value, prefix: &str, out: &mut Map<String, Value>) {
    match data {
        Value::Object(fields) => {
            for (k, v) in fields {
                out.insert(field_name(prefix, k), Value::String(field_text(v)));
            }
        }
        other => {
            out.insert(field_name(prefix, "data"), Value::String(field_text(other)));
        }
    }
}

/// The staging-table row of a record (import mode).
fn import_row(record: &Record, c: &ServiceNowConfig) -> Value {
    let mut row = Map::new();
    flatten(&record_data(record), &c.import_field_prefix, &mut row);
    let p = &c.import_field_prefix;
    let mut put = |k: String, v: String| {
        row.insert(k, Value::String(v));
    };
    put(
        c.import_correlation_field.clone(),
        record.correlation_id.clone(),
    );
    put(format!("{p}kind"), record.kind.as_str().to_string());
    put(format!("{p}interaction"), record.interaction_key.clone());
    put(c.import_sequence_field.clone(), record.seq.to_string());
    put(
        format!("{p}created_at"),
        wire::rfc3339_ms(record.created_at_ms),
    );
    Value::Object(row)
}

/// The Table API body of a record (table mode).
fn table_row(record: &Record, c: &ServiceNowConfig) -> Value {
    let mut row = Map::new();
    flatten(&record_data(record), &c.table_field_prefix, &mut row);
    if record.kind != RecordKind::InteractionUpdate {
        row.insert(
            c.table_correlation_field.clone(),
            Value::String(record.correlation_id.clone()),
        );
    }
    if record.kind == RecordKind::InteractionCreate {
        row.insert(
            c.table_interaction_key_field.clone(),
            Value::String(record.interaction_key.clone()),
        );
    }
    Value::Object(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Markers match whole words from their start, not inside words.
    #[test]
    fn markers_match_words_not_fragments() {
        assert!(mentions("Operation Failed: ACL restricts it", "acl"));
        assert!(mentions("ACLs forbid", "acl"));
        assert!(!mentions("Oracle connector error", "acl"));
        assert!(mentions("row locked by another transaction", "lock"));
        assert!(!mentions("Insert blocked by business rule", "lock"));
        assert!(mentions("Timeout", "timeout"));
        assert!(!mentions("", "acl"));
    }

    fn record(kind: RecordKind, body: &str) -> Record {
        Record {
            seq: 42,
            correlation_id: "edge:c-1:x".into(),
            interaction_key: "c-1".into(),
            kind,
            body: body.as_bytes().to_vec(),
            created_at_ms: 0,
            attempts: 0,
            next_attempt_at_ms: 0,
            last_error: None,
        }
    }

    /// The staging row is flat, all strings, prefixed, with the metadata
    /// winning over a data key of the same name.
    #[test]
    fn import_row_is_flat_strings() {
        let c = ServiceNowConfig::with_instance("https://x.service-now.com");
        let r = record(
            RecordKind::InteractionUpdate,
            r#"{"Caller-ANI":"+1555","n":3,"vip":true,"tags":["a"],"x":null,"kind":"evil"}"#,
        );
        let row = import_row(&r, &c);
        assert_eq!(row["u_correlation_id"], "edge:c-1:x");
        assert_eq!(row["u_kind"], "interaction.update");
        assert_eq!(row["u_interaction"], "c-1");
        assert_eq!(row["u_sequence"], "42");
        assert_eq!(row["u_created_at"], "1970-01-01T00:00:00.000Z");
        assert_eq!(row["u_caller_ani"], "+1555");
        assert_eq!(row["u_n"], "3");
        assert_eq!(row["u_vip"], "true");
        assert_eq!(row["u_tags"], r#"["a"]"#);
        assert_eq!(row["u_x"], "");
        let not_json = import_row(&record(RecordKind::PhoneLogCreate, "oops"), &c);
        assert_eq!(not_json["u_data"], "oops");
    }

    /// Table rows carry the correlation field on creates and the
    /// interaction key on the interaction create only.
    #[test]
    fn table_rows_carry_correlation() {
        let c = ServiceNowConfig::with_instance("https://x.service-now.com");
        let create = table_row(&record(RecordKind::InteractionCreate, r#"{"a":1}"#), &c);
        assert_eq!(create["correlation_id"], "edge:c-1:x");
        assert_eq!(create["correlation_display"], "c-1");
        assert_eq!(create["a"], "1");
        let update = table_row(&record(RecordKind::InteractionUpdate, r#"{"a":1}"#), &c);
        assert!(update.get("correlation_id").is_none());
    }

    /// A FAILURE body is permanent when it names an ACL, else retried.
    #[test]
    fn failure_bodies() {
        let a = |body: &str| Answer {
            status: 200,
            retry_after: None,
            body: body.as_bytes().to_vec(),
        };
        assert!(failure_body(&a(r#"{"result":{}}"#)).is_none());
        assert!(matches!(
            failure_body(&a(
                r#"{"status":"failure","error":{"message":"Operation failed","detail":"ACL restricts the record"}}"#
            )),
            Some(Outcome::Permanent { status: 200, .. })
        ));
        assert!(matches!(
            failure_body(&a(
                r#"{"status":"FAILURE","error":{"message":"Script timed out"}}"#
            )),
            Some(Outcome::Retry {
                crm_down: false,
                ..
            })
        ));
    }

    /// Names are checked and the errors name the key; missing credentials
    /// and unreadable secret files name theirs.
    #[test]
    fn config_errors_name_the_key() {
        let mut c = ServiceNowConfig::with_instance("https://x.service-now.com");
        c.table_work_item = "Bad Table".into();
        assert!(check_name("table_work_item", &c.table_work_item, false)
            .unwrap_err()
            .contains("crm.servicenow.table_work_item"));
        let c = ServiceNowConfig::with_instance("https://x.service-now.com");
        let err = build_auth(&c).err().unwrap();
        assert!(err.contains("crm.servicenow.user"), "{err}");
        let mut c = c;
        c.user = Some("u".into());
        c.password_file = Some("/nonexistent/pw".into());
        let err = build_auth(&c).err().unwrap();
        assert!(err.contains("crm.servicenow.password_file") && err.contains("/nonexistent/pw"));
        let parsed: ServiceNowConfig =
            toml::from_str("instance_url = \"https://x\"\nmode = \"table\"").unwrap();
        assert_eq!(parsed.mode, ServiceNowMode::Table);
        assert_eq!(parsed.table_phone_log, "sn_open_frame_phone_log");
        assert!(
            toml::from_str::<ServiceNowConfig>("instance_url = \"x\"\npassword = \"p\"").is_err()
        );
    }
}
